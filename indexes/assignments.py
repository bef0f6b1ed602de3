"""assignments: the pair is unique, one active primary clinic per provider, ESR lists."""

from pymongo import ASCENDING as ASC
from pymongo import DESCENDING as DESC
from pymongo import IndexModel

from indexes.shapes import QueryShape

COLLECTION = "assignments"

INDEXES = [
    IndexModel(
        [("providerId", ASC), ("clinicId", ASC)], name="assignments_pair_unique", unique=True
    ),
    # `primaryProviderId` exists only while an assignment is active and primary, so a sparse
    # unique index allows one such assignment per provider. (MongoDB would also accept a
    # partial index; the sparse form works on FerretDB too.)
    IndexModel(
        [("primaryProviderId", ASC)],
        name="assignments_one_active_primary",
        unique=True,
        sparse=True,
    ),
    # organizationId sits after the sort keys of the next two: organization keys add it to
    # every query (tenant scope), and it is checked on index keys without breaking the sort.
    IndexModel(
        [
            ("providerId", ASC),
            ("isActive", ASC),
            ("assignedAt", DESC),
            ("_id", DESC),
            ("organizationId", ASC),
        ],
        name="assignments_provider_active",
    ),
    IndexModel(
        [
            ("clinicId", ASC),
            ("isActive", ASC),
            ("assignedAt", DESC),
            ("_id", DESC),
            ("organizationId", ASC),
        ],
        name="assignments_clinic_active",
    ),
    # clinics/{id}/providers is answered from the index alone. organizationId sits last: the
    # tenant filter is then checked on index keys (still covered) without breaking the sort.
    IndexModel(
        [
            ("clinicId", ASC),
            ("isActive", ASC),
            ("providerId", ASC),
            ("_id", ASC),
            ("isPrimaryClinic", ASC),
            ("organizationId", ASC),
        ],
        name="assignments_clinic_providers_covering",
    ),
    IndexModel(
        [("organizationId", ASC), ("isActive", ASC), ("assignedAt", DESC), ("_id", DESC)],
        name="assignments_org_active",
    ),
    # GET /assignments with no provider, clinic or organization: the service sends isActive
    # as $in [false, true] when absent, so both forms are equality on isActive (ESR), and
    # MongoDB merges the two ranges in assignedAt order. Replaces (assignedAt, _id), which
    # left isActive to be filtered on documents (the query-plan gate caught it).
    IndexModel(
        [("isActive", ASC), ("assignedAt", DESC), ("_id", DESC)], name="assignments_active_assigned"
    ),
]

UNIQUE_FIELDS = {
    "assignments_pair_unique": "clinicId",
    "assignments_one_active_primary": "isPrimaryClinic",
}

# Equality fields an index checks on its keys after the sort (see indexes.gate). The tenant
# scope narrows a provider's or a clinic's assignments, never widens the scan: a clinic has
# one organization, and a provider works for few.
KEY_FILTERS: dict[str, tuple[str, ...]] = {
    "assignments_provider_active": ("organizationId",),
    "assignments_clinic_active": ("organizationId",),
    "assignments_clinic_providers_covering": ("organizationId",),
}

SHAPES = [
    QueryShape(
        "assignments.by_provider",
        COLLECTION,
        "assignments_provider_active",
        equality=("providerId", "isActive"),
        sort=(("assignedAt", -1), ("_id", -1)),
        notes="isActive absent is sent as $in [true, false] so MongoDB merges two index ranges",
        endpoints=("GET /api/v1/assignments?providerId=", "GET /api/v1/providers/{id}/clinics"),
    ),
    QueryShape(
        "assignments.by_clinic",
        COLLECTION,
        "assignments_clinic_active",
        equality=("clinicId", "isActive"),
        sort=(("assignedAt", -1), ("_id", -1)),
        endpoints=("GET /api/v1/assignments?clinicId=",),
    ),
    QueryShape(
        "assignments.clinic_providers.covered",
        COLLECTION,
        "assignments_clinic_providers_covering",
        equality=("clinicId", "isActive"),
        sort=(("providerId", 1), ("_id", 1)),
        projection=("_id", "providerId", "isPrimaryClinic"),
        covered=True,
        endpoints=("GET /api/v1/clinics/{id}/providers",),
    ),
    QueryShape(
        "assignments.by_organization",
        COLLECTION,
        "assignments_org_active",
        equality=("organizationId", "isActive"),
        sort=(("assignedAt", -1), ("_id", -1)),
        endpoints=("GET /api/v1/assignments (organization key)", "reports summary"),
    ),
    QueryShape(
        "assignments.list",
        COLLECTION,
        "assignments_active_assigned",
        equality=("isActive",),
        sort=(("assignedAt", -1), ("_id", -1)),
        endpoints=("GET /api/v1/assignments", "GET /api/v1/assignments?isActive="),
    ),
]
