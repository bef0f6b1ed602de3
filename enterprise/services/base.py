"""One generic CRUD + keyset-list machine, configured per collection by a `ResourceSpec`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

from bson import ObjectId

from enterprise import generations
from enterprise.auth import Action, Principal
from enterprise.cursor import Cursor, CursorCodec, binding, boundary
from enterprise.errors import NotFound, PreconditionFailed, ValidationFailed
from enterprise.querying import (
    ListQuery,
    ResourceSpec,
    cursor_only,
    name_key,
    present,
    projection,
)
from enterprise.repositories.base import Changes, Document, Repository
from enterprise.schemas import IMMUTABLE, Strict, merge_patch, validate
from enterprise.services.writes import (
    AfterWrite,
    Committed,
    Intent,
    WriteAction,
    completed,
    recorded,
)


@dataclass(slots=True)
class Page:
    data: list[dict[str, Any]]
    limit: int
    next: str | None
    prev: str | None
    has_more: bool
    count: dict[str, Any] = field(
        default_factory=lambda: {"value": None, "strategy": "none", "exact": False}
    )


class Versioned(NamedTuple):
    """A document as clients see it, and the version its validator names."""

    document: Document
    version: int


class CrudService:
    """Generic rules; subclasses override the hooks that differ per collection."""

    spec: ResourceSpec
    schema: type[Strict]
    tenant_field = "organizationId"

    def __init__(
        self, repository: Repository, *, codec: CursorCodec, after_write: AfterWrite
    ) -> None:
        self._repository = repository
        self._codec = codec
        self._after_write = after_write

    # -- hooks --------------------------------------------------------------------------

    def derive(self, fields: dict[str, Any], current: Document | None) -> dict[str, Any]:
        """Computed, stored fields (normalised keys and the like)."""
        return {}

    async def prepare(
        self, principal: Principal, fields: dict[str, Any], parent: ObjectId | None
    ) -> dict[str, Any]:
        """Fill in what the body does not carry (tenant, denormalised fields)."""
        return fields

    # Fields a create sets to the creation instant (`createdAt` itself).
    stamped_on_create: tuple[str, ...] = ()

    async def before_delete(self, principal: Principal, current: Document) -> None:
        return None

    # -- helpers ------------------------------------------------------------------------

    def scope(self, principal: Principal) -> dict[str, Any]:
        """The tenant filter every query carries; empty for platform-wide keys."""
        return {} if principal.tenant is None else {self.tenant_field: principal.tenant}

    def generations(self, document: Document) -> list[str]:
        name = self.spec.name
        tenant = document.get(self.tenant_field) if self.tenant_field != "_id" else document["_id"]
        return [
            generations.collection(name),
            generations.tenant(name, tenant),
            generations.document(name, document["_id"]),
        ]

    def _not_found(self, document_id: ObjectId) -> NotFound:
        return NotFound(f"{self.spec.name[:-1]} {document_id} was not found")

    # -- reads --------------------------------------------------------------------------

    async def find(self, principal: Principal, query: ListQuery, route: str) -> Page:
        principal.require(Action.READ)
        scope = self.scope(principal)
        for name, tenant in scope.items():
            # Another tenant named by the URL or a filter: as absent as its documents.
            if name in query.filter and query.filter[name] != tenant:
                raise NotFound(f"organization {query.filter[name]} was not found")
        conditions = {**query.filter, **scope}
        return await self.counted(await self.page(conditions, query, route), conditions, query)

    async def counted(self, page: Page, conditions: dict[str, Any], query: ListQuery) -> Page:
        """Add the `?count=` the client asked for (none, estimated or exact)."""
        if query.count != "none":
            value, exact = await self._repository.count(conditions, query.count == "exact")
            page.count = {"value": value, "strategy": query.count, "exact": exact}
        return page

    def check_cursor(self, query: ListQuery) -> None:
        """A cursor we did not sign is a 400 before any precondition is evaluated (RFC 9110
        §13.2.1); what it is bound to is checked with the page."""
        if query.cursor:
            self._codec.verify(query.cursor)

    async def page(self, conditions: dict[str, Any], query: ListQuery, route: str) -> Page:
        bound = binding(route, conditions, query.sort)
        cursor = self._codec.decode(query.cursor, bound) if query.cursor else None
        backwards = cursor is not None and cursor.direction == "prev"
        documents = await self._repository.page(
            conditions,
            query.sort,
            query.limit,
            projection(query.fields, self.spec, extra=query.sort),
            after=cursor.values if cursor else None,
            backwards=backwards,
        )
        shown = query.fields if query.fields is not None else tuple(self.spec.fields)
        hidden = cursor_only(shown, query.sort)
        has_more = len(documents) > query.limit
        documents = documents[: query.limit]
        if backwards:
            documents.reverse()
        first = boundary(documents[0], query.sort) if documents else None
        last = boundary(documents[-1], query.sort) if documents else None
        forward_more = has_more if not backwards else bool(documents)
        backward_more = (cursor is not None and bool(documents)) if not backwards else has_more
        return Page(
            # Sort keys outside the whitelist (nameKey) were fetched for the cursor only.
            data=[present(doc, hidden) for doc in documents],
            limit=query.limit,
            next=self._codec.encode(Cursor(last, "next"), bound) if forward_more and last else None,
            prev=self._codec.encode(Cursor(first, "prev"), bound)
            if backward_more and first
            else None,
            has_more=forward_more,
        )

    async def get(
        self, principal: Principal, document_id: ObjectId, fields: tuple[str, ...] | None
    ) -> Versioned:
        principal.require(Action.READ)
        extra = (("version", 1),)
        document = await self._repository.get(
            document_id, self.scope(principal), projection(fields, self.spec, extra=extra)
        )
        if document is None:
            raise self._not_found(document_id)
        version = document["version"]  # read first: `present` takes the document apart
        return Versioned(present(document, cursor_only(fields, extra)), version)

    # -- writes -------------------------------------------------------------------------

    async def create(
        self, principal: Principal, body: Any, parent: ObjectId | None = None
    ) -> Versioned:
        principal.require(Action.WRITE)
        fields = validate(body, self.schema)
        fields = await self.prepare(principal, fields, parent)
        fields.update(self.derive(fields, None))
        async with self._after_write.journaled() as entry:

            async def journal(document: Document) -> dict[str, Any]:
                intent = self._intent(
                    WriteAction.CREATE, principal, document["_id"], self.tenant_of(document)
                )
                return await entry.intend(intent._replace(version=1, after=recorded(document)))

            stored = await self._repository.insert(
                fields, journal=journal, stamped=self.stamped_on_create
            )
        await self._committed(WriteAction.CREATE, principal, None, stored, entry.intent)
        return self.shown(stored)

    async def update(
        self,
        principal: Principal,
        document_id: ObjectId,
        body: Any,
        held_versions: set[int] | None,
        *,
        replace: bool,
    ) -> Versioned:
        """Apply `body` (a merge patch, or the whole document when `replace`) if the document
        is at one of `held_versions` (the client's precondition; None: none)."""
        principal.require(Action.WRITE)
        editable = set(self.schema.__struct_fields__)
        immutable = IMMUTABLE.get(self.schema, frozenset())
        found: list[Document] = []  # the version the conditional write was made against

        def change(current: Document) -> Changes:
            found[:] = [current]
            if not isinstance(body, dict):
                raise ValidationFailed("the body must be a JSON object")
            for name in immutable & set(body):
                if body[name] != _public(current.get(name)):
                    raise ValidationFailed(
                        f"{name} cannot be changed",
                        errors=[{"field": name, "message": "immutable"}],
                    )
            before = {k: _public(v) for k, v in current.items() if k in editable}
            merged = (
                {**{k: before[k] for k in immutable if k in before}, **body}
                if replace
                else merge_patch(before, body)
            )
            fields = validate(merged, self.schema)
            fields = {k: v for k, v in fields.items() if k not in immutable}
            fields.update(self.derive(fields, current))
            unset = [k for k in current if k in editable and k not in fields and k not in immutable]
            unset += [k for k in self.derived_fields() if k in current and k not in fields]
            return fields, unset

        async with self._after_write.journaled() as entry:
            # Its organization is known before the read only from the id or the key.
            tenant = document_id if self.tenant_field == "_id" else principal.tenant
            stamp = await entry.intend(
                self._intent(WriteAction.UPDATE, principal, document_id, tenant)
            )
            updated = await self._repository.update(
                document_id,
                self.scope(principal),
                change,
                self._precondition(held_versions),
                stamp=stamp,
            )
        await self._committed(WriteAction.UPDATE, principal, found[-1], updated, entry.intent)
        return self.shown(updated)

    async def delete(
        self, principal: Principal, document_id: ObjectId, held_versions: set[int] | None
    ) -> None:
        principal.require(Action.WRITE)
        scope = self.scope(principal)
        current = await self._repository.get(document_id, scope, None)
        if current is None:
            raise self._not_found(document_id)
        await self.before_delete(principal, current)
        async with self._after_write.journaled() as entry:
            # The document as read: a crash after the delete leaves its contents on record.
            intent = self._intent(
                WriteAction.DELETE, principal, document_id, self.tenant_of(current)
            )
            await entry.intend(
                intent._replace(version=current["version"], before=recorded(current))
            )
            removed = await self._repository.delete(
                document_id, scope, self._precondition(held_versions)
            )
        await self._committed(WriteAction.DELETE, principal, removed, None, entry.intent)

    async def _committed(
        self,
        action: WriteAction,
        principal: Principal,
        before: Document | None,
        after: Document | None,
        intent: Intent | None,
    ) -> None:
        document = after if after is not None else before
        assert document is not None
        generations = self.generations(document)
        if intent is not None:
            intent = completed(intent, before, after, self.tenant_of(document))
        await self._after_write(
            Committed(action, self.spec.name, principal, before, after, generations, intent)
        )

    def tenant_of(self, document: Document) -> ObjectId | None:
        return document["_id"] if self.tenant_field == "_id" else document.get(self.tenant_field)

    def _intent(
        self,
        action: WriteAction,
        principal: Principal,
        document_id: ObjectId,
        organization_id: ObjectId | None,
    ) -> Intent:
        """What the journal hears before the write; `completed` fills in the rest."""
        return Intent(ObjectId(), action, self.spec.name, principal, document_id, organization_id)

    def derived_fields(self) -> tuple[str, ...]:
        return ()

    def shown(self, document: Document) -> Versioned:
        public = {k: v for k, v in document.items() if k in self.spec.fields or k == "_id"}
        return Versioned(present(public), document["version"])

    @staticmethod
    def _precondition(held_versions: set[int] | None) -> Any:
        def check(current: Document) -> None:
            if held_versions is not None and current["version"] not in held_versions:
                raise PreconditionFailed(
                    f"the document is at version {current['version']}; re-read it and retry"
                )

        return check


class NamedService(CrudService):
    """Documents whose `name` is unique case-insensitively and searchable by prefix: both
    go through the stored, indexed `nameKey`."""

    def derive(self, fields: dict[str, Any], current: Document | None) -> dict[str, Any]:
        return {"nameKey": name_key(fields["name"])}

    def derived_fields(self) -> tuple[str, ...]:
        return ("nameKey",)


def _public(value: Any) -> Any:
    """Stored value → the form a client sends (ids as strings)."""
    return str(value) if isinstance(value, ObjectId) else value
