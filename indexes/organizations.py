"""organizations: unique case-insensitive name, keyset sorts with the `_id` tiebreak."""

from pymongo import ASCENDING as ASC
from pymongo import DESCENDING as DESC
from pymongo import IndexModel

from indexes.shapes import QueryShape

COLLECTION = "organizations"

INDEXES = [
    # Uniqueness of the normalised name (casefolded, spaces collapsed).
    IndexModel([("nameKey", ASC)], name="organizations_name_unique", unique=True),
    # Seed 002 indexed `name`; keyset paging by name needs `_id` inside the index, or
    # MongoDB sorts in memory.
    IndexModel([("nameKey", ASC), ("_id", ASC)], name="organizations_name_id"),
    IndexModel([("status", ASC), ("nameKey", ASC), ("_id", ASC)], name="organizations_status_name"),
    IndexModel([("createdAt", DESC), ("_id", DESC)], name="organizations_created"),
    IndexModel(
        [("status", ASC), ("createdAt", DESC), ("_id", DESC)], name="organizations_status_created"
    ),
    # ?subscriptionTier= in both sorts (found by the query-plan gate once a test used the
    # filter). status sits last and is checked on keys, so ?status=&subscriptionTier= needs
    # no index of its own: both fields have a handful of values.
    IndexModel(
        [("subscriptionTier", ASC), ("nameKey", ASC), ("_id", ASC), ("status", ASC)],
        name="organizations_tier_name",
    ),
    IndexModel(
        [("subscriptionTier", ASC), ("createdAt", DESC), ("_id", DESC), ("status", ASC)],
        name="organizations_tier_created",
    ),
]

UNIQUE_FIELDS = {"organizations_name_unique": "name"}

# Equality fields an index checks on its keys after the sort (see indexes.gate).
KEY_FILTERS: dict[str, tuple[str, ...]] = {
    "organizations_tier_name": ("status",),
    "organizations_tier_created": ("status",),
}

SHAPES = [
    QueryShape(
        "organizations.list.by_name",
        COLLECTION,
        "organizations_name_id",
        sort=(("nameKey", 1), ("_id", 1)),
        endpoints=("GET /api/v1/organizations",),
    ),
    QueryShape(
        "organizations.list.by_status_name",
        COLLECTION,
        "organizations_status_name",
        equality=("status",),
        sort=(("nameKey", 1), ("_id", 1)),
        endpoints=("GET /api/v1/organizations?status=",),
    ),
    QueryShape(
        "organizations.list.newest",
        COLLECTION,
        "organizations_created",
        sort=(("createdAt", -1), ("_id", -1)),
        endpoints=("GET /api/v1/organizations?sort=-createdAt",),
    ),
    QueryShape(
        "organizations.list.by_status_newest",
        COLLECTION,
        "organizations_status_created",
        equality=("status",),
        sort=(("createdAt", -1), ("_id", -1)),
        endpoints=("GET /api/v1/organizations?status=&sort=-createdAt",),
    ),
    QueryShape(
        "organizations.list.by_tier_name",
        COLLECTION,
        "organizations_tier_name",
        equality=("subscriptionTier",),
        sort=(("nameKey", 1), ("_id", 1)),
        endpoints=("GET /api/v1/organizations?subscriptionTier=",),
    ),
    QueryShape(
        "organizations.list.by_tier_newest",
        COLLECTION,
        "organizations_tier_created",
        equality=("subscriptionTier",),
        sort=(("createdAt", -1), ("_id", -1)),
        endpoints=("GET /api/v1/organizations?subscriptionTier=&sort=-createdAt",),
    ),
]
