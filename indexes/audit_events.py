"""audit_events: one record per write (enterprise/services/audit.py); retention by a TTL index.

Read newest first (`at` desc, `_id` tiebreak) by `GET /api/v1/audit-events`: everything
(platform admins), one organization (its admins), one document (`?id=`). `?resource=` and
`?actor=` narrow any of these; they are checked on index keys after the sort (key filters),
not given an index each: the trail is read rarely and newest first, and three optional
filters on three entry points would need a dozen indexes written on every write.
"""

from pymongo import ASCENDING as ASC
from pymongo import DESCENDING as DESC
from pymongo import IndexModel

from indexes.shapes import QueryShape

COLLECTION = "audit_events"
# `AUDIT_RETENTION_DAYS` defaults to the same 90 days (`audit prune`, where TTL is refused).
RETENTION_SECONDS = 90 * 24 * 3600
NEWEST = (("at", DESC), ("_id", DESC))

INDEXES = [
    # Servers with TTL indexes drop old records themselves; `audit prune` ranges on it elsewhere.
    IndexModel([("at", ASC)], name="audit_events_retention", expireAfterSeconds=RETENTION_SECONDS),
    IndexModel([*NEWEST, ("collection", ASC), ("actor.keyId", ASC)], name="audit_events_recent"),
    IndexModel(
        [("organizationId", ASC), *NEWEST, ("collection", ASC), ("actor.keyId", ASC)],
        name="audit_events_organization",
    ),
    # One document's history: the API's ?id= and reconciliation's evidence.
    IndexModel(
        [
            ("documentId", ASC),
            *NEWEST,
            ("collection", ASC),
            ("organizationId", ASC),
            ("actor.keyId", ASC),
        ],
        name="audit_events_document",
    ),
    # `audit reconcile`: the oldest pending records.
    IndexModel([("state", ASC), ("at", ASC), ("_id", ASC)], name="audit_events_pending"),
]

UNIQUE_FIELDS: dict[str, str] = {}

# Equality fields an index checks on its keys after the sort (see indexes.gate).
KEY_FILTERS: dict[str, tuple[str, ...]] = {
    "audit_events_recent": ("collection", "actor.keyId"),
    "audit_events_organization": ("collection", "actor.keyId"),
    "audit_events_document": ("collection", "organizationId", "actor.keyId"),
}

_SORT = (("at", -1), ("_id", -1))

SHAPES = [
    QueryShape(
        "audit_events.list.recent",
        COLLECTION,
        "audit_events_recent",
        sort=_SORT,
        endpoints=("GET /api/v1/audit-events", "GET /api/v1/audit-events?since="),
    ),
    QueryShape(
        "audit_events.list.by_organization",
        COLLECTION,
        "audit_events_organization",
        equality=("organizationId",),
        sort=_SORT,
        endpoints=("GET /api/v1/audit-events (organization-scoped key)",),
    ),
    QueryShape(
        "audit_events.by_document",
        COLLECTION,
        "audit_events_document",
        equality=("documentId",),
        sort=_SORT,
        endpoints=("GET /api/v1/audit-events?id=", "python -m enterprise audit reconcile"),
    ),
    QueryShape(
        "audit_events.pending",
        COLLECTION,
        "audit_events_pending",
        equality=("state",),
        sort=(("at", 1), ("_id", 1)),
        endpoints=("python -m enterprise audit reconcile",),
    ),
    QueryShape(
        "audit_events.expired",
        COLLECTION,
        "audit_events_retention",
        range=("at",),
        endpoints=("python -m enterprise audit prune",),
    ),
]
