"""audit_events: append-only; retention by a TTL index (90 days)."""

from pymongo import ASCENDING as ASC
from pymongo import DESCENDING as DESC
from pymongo import IndexModel

from indexes.shapes import QueryShape

COLLECTION = "audit_events"
RETENTION_SECONDS = 90 * 24 * 3600

INDEXES = [
    IndexModel([("at", ASC)], name="audit_events_retention", expireAfterSeconds=RETENTION_SECONDS),
    IndexModel(
        [("collection", ASC), ("documentId", ASC), ("at", DESC)], name="audit_events_document"
    ),
]

UNIQUE_FIELDS: dict[str, str] = {}

# Equality fields an index checks on its keys after the sort (see indexes.gate); none here.
KEY_FILTERS: dict[str, tuple[str, ...]] = {}

SHAPES = [
    QueryShape(
        "audit_events.by_document",
        COLLECTION,
        "audit_events_document",
        equality=("collection", "documentId"),
        sort=(("at", -1),),
    )
]
