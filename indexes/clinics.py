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
    # search projection (id, name, code, status) is inside the index. The search filters
    # (status, state, city) are checked on its keys: an organization has tens to hundreds of
    # clinics, so walking its names is bounded, and one index serves every combination.
    IndexModel(
        [
            ("organizationId", ASC),
            ("nameKey", ASC),
            ("_id", ASC),
            ("name", ASC),
            ("code", ASC),
            ("status", ASC),
            ("address.state", ASC),
            ("address.city", ASC),
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
    # Search across organizations by city or state (platform keys): equality on the place,
    # then the name order; the other filters are checked on keys within that place.
    IndexModel(
        [
            ("address.city", ASC),
            ("nameKey", ASC),
            ("_id", ASC),
            ("address.state", ASC),
            ("status", ASC),
        ],
        name="clinics_city_name",
    ),
    IndexModel(
        [("address.state", ASC), ("nameKey", ASC), ("_id", ASC), ("status", ASC)],
        name="clinics_state_name",
    ),
    IndexModel([("createdAt", DESC), ("_id", DESC)], name="clinics_created"),
]

UNIQUE_FIELDS = {"clinics_org_code_unique": "code"}

# Equality fields an index checks on its keys after the sort (see indexes.gate), with the
# reasons beside the indexes above.
KEY_FILTERS: dict[str, tuple[str, ...]] = {
    "clinics_org_name_covering": ("status", "address.state", "address.city"),
    "clinics_city_name": ("address.state", "status"),
    "clinics_state_name": ("status",),
}

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
    QueryShape(
        "clinics.search.by_city",
        COLLECTION,
        "clinics_city_name",
        equality=("address.city",),
        sort=(("nameKey", 1), ("_id", 1)),
        range=("nameKey",),
        endpoints=("GET /api/v1/clinics/search?city=&q=",),
    ),
    QueryShape(
        "clinics.search.by_state",
        COLLECTION,
        "clinics_state_name",
        equality=("address.state",),
        sort=(("nameKey", 1), ("_id", 1)),
        range=("nameKey",),
        endpoints=("GET /api/v1/clinics/search?state=&q=",),
    ),
]
