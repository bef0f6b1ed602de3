"""The query-plan gate end to end: the real app's commands, captured by PyMongo command
monitoring on the real server, fail the gate when an index is missing from the declarations
or when the app starts sending a query no index serves."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import redis.asyncio
from pymongo import AsyncMongoClient

from enterprise.app import create_app
from enterprise.context import current_request_id
from enterprise.querying import FilterSpec
from enterprise.services.organizations import OrganizationsService
from enterprise.settings import Settings
from indexes import DECLARED, KEY_FILTERS, SHAPES, capture, gate
from tests.conftest import MONGODB_URI, OUTSIDE_GATE, make_client, new_key
from tests.integration.factories import API, create_organization

pytestmark = pytest.mark.integration


@pytest.fixture
async def recorded(
    settings: Settings, redis_client: redis.asyncio.Redis
) -> AsyncIterator[tuple[httpx.AsyncClient, capture.ShapeRecorder, dict[str, str]]]:
    """The app on a client of its own whose shapes this test alone sees; no response cache,
    so every request reaches MongoDB."""
    recorder = capture.ShapeRecorder(accept=lambda: current_request_id() is not None)
    mongo: AsyncMongoClient[Any] = AsyncMongoClient(
        MONGODB_URI, tz_aware=True, event_listeners=[recorder]
    )
    app = create_app(
        settings.with_overrides(cache_enabled=False), mongo=mongo, redis_client=redis_client
    )
    async with await make_client(app) as http:
        yield http, recorder, await new_key(app)
    await mongo.close()


def _without(index: str) -> gate.Declarations:
    kept = {c: [m for m in ms if m.document["name"] != index] for c, ms in DECLARED.items()}
    return gate.Declarations(kept, SHAPES, KEY_FILTERS)


def _problems(recorder: capture.ShapeRecorder, declarations: gate.Declarations) -> list[str]:
    return gate.problems(gate.check(dict(recorder), declarations))


async def test_removing_an_index_fails_the_gate(
    recorded: tuple[httpx.AsyncClient, capture.ShapeRecorder, dict[str, str]],
) -> None:
    http, recorder, admin = recorded
    for _ in range(3):
        await create_organization(http, admin)
    first = await http.get(f"{API}/organizations?sort=-createdAt&limit=2", headers=admin)
    assert first.status_code == 200, first.text
    cursor = first.json()["page"]["next"]
    second = await http.get(
        f"{API}/organizations?sort=-createdAt&limit=2&cursor={cursor}", headers=admin
    )
    assert second.status_code == 200, second.text

    full = gate.Declarations(DECLARED, SHAPES, KEY_FILTERS)
    assert _problems(recorder, full) == []
    problems = _problems(recorder, _without("organizations_created"))
    assert sorted(p.split(" project ")[0] for p in problems) == [
        "organizations find {$or: [{_id: $lt, createdAt: $eq}, {createdAt: $lt}]} "
        "sort createdAt -1, _id -1",
        "organizations find {} sort createdAt -1, _id -1",
    ]


async def test_a_new_query_without_an_index_fails_the_gate(
    recorded: tuple[httpx.AsyncClient, capture.ShapeRecorder, dict[str, str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    http, recorder, admin = recorded
    spec = OrganizationsService.spec
    # A developer adds a filter on the display name, which no index starts with.
    filters = {**spec.filters, "name": FilterSpec("name")}
    monkeypatch.setattr(OrganizationsService, "spec", dataclasses.replace(spec, filters=filters))
    await create_organization(http, admin, name="Acme Dental")
    token = OUTSIDE_GATE.set(True)  # the session's own gate must not see this query
    try:
        response = await http.get(f"{API}/organizations?name=Acme%20Dental", headers=admin)
    finally:
        OUTSIDE_GATE.reset(token)
    assert response.status_code == 200, response.text
    assert [item["name"] for item in response.json()["data"]] == ["Acme Dental"]

    (problem,) = _problems(recorder, gate.Declarations(DECLARED, SHAPES, KEY_FILTERS))
    assert problem.startswith("organizations find {name: $eq} sort nameKey 1, _id 1")
    assert "no declared index serves it" in problem
