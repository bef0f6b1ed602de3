"""api_keys: looked up by the SHA-256 of the presented key, never by the key itself."""

from pymongo import ASCENDING as ASC
from pymongo import IndexModel

from indexes.shapes import QueryShape

COLLECTION = "api_keys"

INDEXES = [IndexModel([("keyHash", ASC)], name="api_keys_hash_unique", unique=True)]

UNIQUE_FIELDS = {"api_keys_hash_unique": "keyHash"}

# Equality fields an index checks on its keys after the sort (see indexes.gate); none here.
KEY_FILTERS: dict[str, tuple[str, ...]] = {}

SHAPES = [
    QueryShape(
        "api_keys.by_hash",
        COLLECTION,
        "api_keys_hash_unique",
        equality=("keyHash",),
        endpoints=("every authenticated request (cached in process)",),
    )
]
