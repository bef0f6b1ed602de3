"""NDJSON exports of an organization's clinics and assignments, streamed from a cursor.

Each export walks one declared index in its own order (equality on `organizationId`, then
the index's sort keys), so it never sorts in memory and its memory is one batch whatever the
organization's size. Everything that can refuse the request (the role, the tenant, the
organization's existence, `fields=`) is checked before the first byte, so a refusal is a
proper 4xx and not a broken stream.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import NamedTuple

from bson import ObjectId

from enterprise.auth import Action, Principal
from enterprise.cursor import SortSpec
from enterprise.errors import NotFound
from enterprise.querying import ResourceSpec, cursor_only, present, projection
from enterprise.repositories.base import Document, Repository
from enterprise.services import assignments, clinics


class ExportKind(NamedTuple):
    spec: ResourceSpec
    # The order of the index that serves {organizationId} + this sort (indexes/).
    sort: SortSpec


KINDS: dict[str, ExportKind] = {
    # clinics_org_created: (organizationId, createdAt desc, _id desc)
    "clinics": ExportKind(clinics.SPEC, (("createdAt", -1), ("_id", -1))),
    # assignments_org_active: (organizationId, isActive, assignedAt desc, _id desc)
    "assignments": ExportKind(assignments.SPEC, (("isActive", 1), ("assignedAt", -1), ("_id", -1))),
}


class ExportsService:
    def __init__(
        self,
        organizations: Repository,
        repositories: dict[str, Repository],
        *,
        batch_size: int = 500,
    ) -> None:
        self._organizations = organizations
        self._repositories = repositories
        self._batch_size = batch_size

    async def open(
        self,
        principal: Principal,
        organization_id: ObjectId,
        kind: str,
        fields: tuple[str, ...] | None,
    ) -> AsyncGenerator[list[Document], None]:
        """Batches of presented documents (`id`, the fields asked for), after the checks."""
        principal.require(Action.READ)
        missing = NotFound(f"organization {organization_id} was not found")
        if principal.tenant is not None and principal.tenant != organization_id:
            raise missing  # another tenant's organization is as absent as a missing one
        if await self._organizations.get(organization_id, {}, {"_id": 1}) is None:
            raise missing
        export = KINDS[kind]
        batches = self._repositories[kind].stream(
            {"organizationId": organization_id},
            export.sort,
            projection(fields, export.spec, extra=export.sort),
            self._batch_size,
        )
        shown = fields if fields is not None else tuple(export.spec.fields)
        return _presented(batches, shown, export.sort)


async def _presented(
    batches: AsyncGenerator[list[Document], None],
    fields: tuple[str, ...] | None,
    sort: SortSpec,
) -> AsyncGenerator[list[Document], None]:
    hidden = cursor_only(fields, sort)
    try:
        async for batch in batches:
            yield [present(document, hidden) for document in batch]
    finally:
        await batches.aclose()  # closes the cursor now, also when the client left early
