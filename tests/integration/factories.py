"""Test data: through the HTTP API (small, exercises the service) or bulk into MongoDB.

Bulk documents carry exactly the fields the service stores, so the API reads them as its own:
`nameKey` (normalised name), tz-aware UTC `createdAt`/`updatedAt` at millisecond precision,
`version` 1, and ObjectId references.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from bson import ObjectId
from pymongo import AsyncMongoClient, monitoring

from enterprise.querying import name_key

_serial = itertools.count(1)
API = "/api/v1"
PROBLEM = "application/problem+json"


def unique(prefix: str) -> str:
    return f"{prefix} {next(_serial):05d}"


def address(city: str = "Springfield", state: str = "IL", **overrides: Any) -> dict[str, Any]:
    return {
        "line1": "1 Main St",
        "city": city,
        "state": state,
        "postalCode": "62701",
        "country": "US",
        **overrides,
    }


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    """An RFC 9457 problem with the given status; returns its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM), response.headers
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert {"type", "title", "detail", "instance"} <= set(body)
    return body


# -- through the API ---------------------------------------------------------------------


async def create_organization(
    client: httpx.AsyncClient, headers: dict[str, str], name: str | None = None, **fields: Any
) -> dict[str, Any]:
    response = await client.post(
        f"{API}/organizations", json={"name": name or unique("Org"), **fields}, headers=headers
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def create_clinic(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    organization_id: str,
    name: str | None = None,
    code: str | None = None,
    **fields: Any,
) -> dict[str, Any]:
    payload = {
        "name": name or unique("Clinic"),
        "code": code or f"C{next(_serial):06d}",
        "address": fields.pop("address", address()),
        **fields,
    }
    response = await client.post(
        f"{API}/organizations/{organization_id}/clinics", json=payload, headers=headers
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def create_assignment(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    provider_id: str,
    clinic_id: str,
    **fields: Any,
) -> dict[str, Any]:
    response = await client.post(
        f"{API}/assignments",
        json={"providerId": provider_id, "clinicId": clinic_id, **fields},
        headers=headers,
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


# -- straight into MongoDB ----------------------------------------------------------------


def stored_now(offset_ms: int = 0) -> datetime:
    """UTC now at millisecond precision (what BSON keeps), shifted by `offset_ms`."""
    now = datetime.now(UTC) + timedelta(milliseconds=offset_ms)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def _stamped(fields: dict[str, Any], at: datetime) -> dict[str, Any]:
    return {"_id": ObjectId(), **fields, "createdAt": at, "updatedAt": at, "version": 1}


def organization_document(
    name: str, *, at: datetime | None = None, **fields: Any
) -> dict[str, Any]:
    body = {
        "name": name,
        "status": "ACTIVE",
        "subscriptionTier": "FREE",
        "subscriptionEndDate": None,
        **fields,
    }
    return _stamped({**body, "nameKey": name_key(name)}, at or stored_now())


def clinic_document(
    organization_id: ObjectId, name: str, code: str, *, at: datetime | None = None, **fields: Any
) -> dict[str, Any]:
    body = {
        "name": name,
        "code": code,
        "address": fields.pop("address", address()),
        "status": "ACTIVE",
        "managerUserId": None,
        **fields,
    }
    return _stamped(
        {**body, "organizationId": organization_id, "nameKey": name_key(name)}, at or stored_now()
    )


def assignment_document(
    provider_id: str,
    clinic_id: ObjectId,
    organization_id: ObjectId,
    *,
    at: datetime | None = None,
    is_active: bool = True,
    is_primary: bool = False,
) -> dict[str, Any]:
    moment = at or stored_now()
    document = {
        "providerId": provider_id,
        "clinicId": clinic_id,
        "organizationId": organization_id,
        "roles": [],
        "isActive": is_active,
        "isPrimaryClinic": is_primary,
        "endedAt": None if is_active else moment,
        "assignedAt": moment,
    }
    if is_active and is_primary:
        document["primaryProviderId"] = provider_id
    return _stamped(document, moment)


async def bulk_clinics(
    mongo: AsyncMongoClient[Any],
    database: str,
    organization_id: ObjectId | str,
    count: int,
    *,
    prefix: str = "Clinic",
) -> list[dict[str, Any]]:
    """`count` clinics of one organization, with shuffled names and spread createdAt."""
    organization = ObjectId(organization_id)
    base = stored_now(-count * 10)
    documents = [
        clinic_document(
            organization,
            # Mixed case and a shared prefix for many: sorting must use nameKey, not name.
            f"{prefix} {(i * 7919) % count:05d}{' Dental' if i % 3 else ' dental'}",
            f"B{i:06d}",
            at=base + timedelta(milliseconds=(i // 4) * 10),  # ties on createdAt on purpose
        )
        for i in range(count)
    ]
    await mongo[database].clinics.insert_many(documents, ordered=False)
    return documents


async def count_all(mongo: AsyncMongoClient[Any], database: str) -> dict[str, int]:
    """Documents per tenant collection: the 'nothing was written' check."""
    db = mongo[database]
    return {
        name: await db[name].count_documents({})
        for name in ("organizations", "clinics", "assignments")
    }


# -- command monitoring -------------------------------------------------------------------


class CommandRecorder(monitoring.CommandListener):
    """Records every command a client sends (name, collection, body) for counting."""

    IGNORED = frozenset({"hello", "ismaster", "isMaster", "ping", "buildInfo", "endSessions"})

    def __init__(self) -> None:
        self.commands: list[tuple[str, str, dict[str, Any]]] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name in self.IGNORED:
            return
        target = event.command.get(event.command_name)
        self.commands.append(
            (event.command_name, target if isinstance(target, str) else "", dict(event.command))
        )

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass

    def clear(self) -> None:
        self.commands.clear()

    def names(self) -> list[tuple[str, str]]:
        return [(name, target) for name, target, _ in self.commands]
