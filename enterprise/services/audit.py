"""The audit trail: exactly one record per acknowledged write, kept through a crash.

Without transactions (FerretDB) a write and its record cannot commit together, so the record
comes first and the write carries its id:

1. `intend`: a *pending* record with the version the write will make (a retried update
   rewrites its own record, same id);
2. the write sets `auditId` = the record's id on the document;
3. `committed`: the record becomes *committed*, with the version the write made and the
   fields it changed, before the client's 2xx.

An update's record is written before the update reads the document, so its compare-and-set
window is as narrow as without the trail; its version and changes are filled in when it
commits. (Written between the read and the compare-and-set, it widened the window by a round
trip: 120 concurrent PATCHes of one document on FerretDB v2, load average 12, got 69 answers
200 instead of the 92-95 they get without the trail and with this order.)

A write refused with a 4xx changed nothing and drops its record (`abandon`). A process that
dies, or a write that fails ambiguously (timeout, lost connection: it may have applied),
leaves the record pending; `python -m enterprise audit reconcile` settles records older than a
grace period (longer than any write can be in flight) by `settle`: the document or a later
record shows whether the write happened.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from enterprise.auth import Action, Principal
from enterprise.context import current_request_id
from enterprise.cursor import SortSpec
from enterprise.errors import DomainError, InvalidInput
from enterprise.querying import FilterSpec, ListQuery, ResourceSpec
from enterprise.repositories.audit import ABANDONED, COMMITTED, PENDING, AuditRepository
from enterprise.repositories.base import Document, utcnow
from enterprise.services.base import CrudService, Page
from enterprise.services.writes import STAMP_FIELD, AfterWrite, Committed, Intent

logger = logging.getLogger(__name__)

AUDITED = frozenset({"organizations", "clinics", "assignments", "api_keys"})
NEWEST: SortSpec = (("at", -1),)

SPEC = ResourceSpec(
    name="audit_events",
    fields=frozenset(
        {
            "at",
            "state",
            "action",
            "collection",
            "documentId",
            "organizationId",
            "version",
            "actor",
            "requestId",
            "before",
            "after",
            "settledAt",
        }
    ),
    sorts={"-at": NEWEST},
    default_sort="-at",
    filters={
        "resource": FilterSpec("collection", "enum", AUDITED),
        "id": FilterSpec("documentId", "objectid"),
        "actor": FilterSpec("actor.keyId", "str", max_length=64),
        "since": FilterSpec("at", "since"),
    },
)


class AuditTrail:
    """The write journal and the committed-write observer, in one: see the module doc."""

    def __init__(self, repository: AuditRepository) -> None:
        self._repository = repository

    async def intend(self, intent: Intent) -> None:
        principal = intent.principal
        await self._repository.record(
            {
                "_id": intent.id,
                "at": utcnow(),
                "state": PENDING,
                "action": intent.action.value,
                "collection": intent.collection,
                "documentId": intent.document_id,
                "organizationId": intent.organization_id,
                "version": intent.version,
                "previous": intent.previous,
                "actor": {
                    "keyId": principal.key_id,
                    "role": principal.role.value,
                    "organizationId": principal.organization_id,
                },
                "requestId": current_request_id(),
                "before": intent.before,
                "after": intent.after,
            }
        )

    async def abandon(self, intent: Intent) -> None:
        await self._repository.discard(intent.id)

    async def committed(self, write: Committed) -> None:
        intent = write.intent
        if intent is None:
            return
        known = {
            "version": intent.version,
            "organizationId": intent.organization_id,
            "previous": intent.previous,
            "before": intent.before,
            "after": intent.after,
        }
        try:
            settled = await self._repository.settle(intent.id, COMMITTED, known)
        except DomainError as ex:
            # The write is in the database and its record is durable (pending): the client
            # is told of its write; reconciliation completes the record.
            logger.warning("audit record %s left pending for reconciliation: %s", intent.id, ex)
            return
        if not settled:
            logger.warning("audit record %s was no longer pending when completed", intent.id)


def settle(event: Document, live: Document | None, others: Sequence[Document]) -> str:
    """Whether a pending record's write happened (`committed`) or not (`abandoned`).

    `live` is the document now (version and stamp; None when absent); `others` are the other
    records of the same document. Evidence: a later write read the version this one made (its
    record's `previous` is this record); the document still carries this record's stamp (ids
    are unique, so only this write can have set it); a create's id was chosen with its record,
    so the document's existence proves it; a delete happened when the document is gone and no
    other delete of it is recorded as committed. Not covered: two writes of one document both
    killed after writing and before completing, the later one having read the earlier's stamp
    (the earlier then has no evidence left and is abandoned).
    """
    rest = [other for other in others if other["_id"] != event["_id"]]
    if any(other.get("previous") == event["_id"] for other in rest):
        return COMMITTED
    action = event["action"]
    if action == "delete":
        rival = any(o.get("action") == "delete" and o.get("state") == COMMITTED for o in rest)
        return COMMITTED if live is None and not rival else ABANDONED
    if live is None:
        return ABANDONED
    if action == "create":
        return COMMITTED
    return COMMITTED if live.get(STAMP_FIELD) == event["_id"] else ABANDONED


def _known(event: Document, live: Document | None, state: str) -> dict[str, Any]:
    """What a committed update's record lacked (it was journaled before it read the
    document) and the document it stamped still shows."""
    if state != COMMITTED or live is None or live.get(STAMP_FIELD) != event["_id"]:
        return {}
    known = {"version": live["version"]}
    if event.get("organizationId") is None:
        organization = live["_id"] if event["collection"] == "organizations" else None
        known["organizationId"] = organization or live.get("organizationId")
    return known


class AuditEventsService(CrudService):
    """Reads of the trail (`GET /api/v1/audit-events`), reconciliation and retention.

    Reads share the generic keyset machinery; the trail is written only by `AuditTrail`.
    """

    spec = SPEC

    def __init__(self, repository: AuditRepository, **kwargs: Any) -> None:
        super().__init__(repository, after_write=AfterWrite(()), **kwargs)
        self._audit = repository

    async def find(self, principal: Principal, query: ListQuery, route: str) -> Page:
        """Admins only; an organization's admin sees its organization's records."""
        principal.require(Action.AUDIT)
        if query.count != "none":
            raise InvalidInput("count is not offered for audit events; page with the cursor")
        return await super().find(principal, query, route)

    async def reconcile(self, grace: timedelta, batch: int = 500) -> dict[str, int]:
        """Settle every record pending for longer than `grace`; counts by outcome."""
        outcome = {COMMITTED: 0, ABANDONED: 0}
        cutoff = utcnow() - grace
        while pending := await self._audit.pending(cutoff, batch):
            for event in pending:
                live = await self._audit.written(event["collection"], event["documentId"])
                others = await self._audit.of_document(event["documentId"])
                state = settle(event, live, others)
                if await self._audit.settle(event["_id"], state, _known(event, live, state)):
                    outcome[state] += 1
        return outcome

    async def prune(self, older_than: datetime, *, ttl: bool) -> int | None:
        """Delete records older than `older_than`; None when the server expires them itself
        (`ttl`: the capability record says it has TTL indexes, and one is live)."""
        if ttl and await self._audit.expires_itself():
            return None
        return await self._audit.prune(older_than)
