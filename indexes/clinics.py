"""clinics: code unique per organization, organization-scoped keyset lists, covered search."""

from pymongo import ASCENDING as ASC
from pymongo import DESCENDING as DESC
from pymongo import IndexModel

from indexes.shapes import QueryShape

COLLECTION = "clinics"

INDEXES = [
    IndexModel(
        [("organizationId", ASC), ("code", ASC)], name="clinics_org_code_unique", unique=True
    ),
    # Serves the organization's clinic list by name AND the prefix search, covered: the
    # search projection (id, name, code, status) is inside the index.
    IndexModel(
        [
            ("organizationId", ASC),
            ("nameKey", ASC),
            ("_id", ASC),
            ("name", ASC),
            ("code", ASC),
            ("status", ASC),
        ],
        name="clinics_org_name_covering",
    ),
    IndexModel(
        [("organizationId", ASC), ("status", ASC), ("nameKey", ASC), ("_id", ASC)],
        name="clinics_org_status_name",
    ),
    IndexModel(
        [("organizationId", ASC), ("createdAt", DESC), ("_id", DESC)], name="clinics_org_created"
    ),
    IndexModel([("nameKey", ASC), ("_id", ASC)], name="clinics_name_id"),
    IndexModel([("createdAt", DESC), ("_id", DESC)], name="clinics_created"),
]

UNIQUE_FIELDS = {"clinics_org_code_unique": "code"}

# Equality fields an index checks on its keys after the sort (see indexes.gate); none here.
KEY_FILTERS: dict[str, tuple[str, ...]] = {}

SHAPES = [
    QueryShape(
        "clinics.org_list.by_name",
        COLLECTION,
        "clinics_org_name_covering",
        equality=("organizationId",),
        sort=(("nameKey", 1), ("_id", 1)),
        endpoints=("GET /api/v1/organizations/{id}/clinics",),
    ),
    QueryShape(
        "clinics.org_list.by_status_name",
        COLLECTION,
        "clinics_org_status_name",
        equality=("organizationId", "status"),
        sort=(("nameKey", 1), ("_id", 1)),
        endpoints=("GET /api/v1/organizations/{id}/clinics?status=",),
    ),
    QueryShape(
        "clinics.org_list.newest",
        COLLECTION,
        "clinics_org_created",
        equality=("organizationId",),
        sort=(("createdAt", -1), ("_id", -1)),
        endpoints=("GET /api/v1/organizations/{id}/clinics?sort=-createdAt",),
    ),
    QueryShape(
        "clinics.search.covered",
        COLLECTION,
        "clinics_org_name_covering",
        equality=("organizationId",),
        sort=(("nameKey", 1), ("_id", 1)),
        range=("nameKey",),
        projection=("_id", "name", "code", "status"),
        covered=True,
        notes="anchored, lower-case prefix on nameKey is an index range",
        endpoints=("GET /api/v1/clinics/search?organizationId=&q=&fields=name,code,status",),
    ),
    QueryShape(
        "clinics.list.by_name",
        COLLECTION,
        "clinics_name_id",
        sort=(("nameKey", 1), ("_id", 1)),
        endpoints=("GET /api/v1/clinics",),
    ),
]
