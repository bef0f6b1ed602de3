"""?count=none|estimated|exact: body, X-Total-Count and X-Count-Strategy, and the cap."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import redis.asyncio
from bson import ObjectId
from pymongo import AsyncMongoClient

from enterprise.app import create_app
from enterprise.settings import Settings
from tests.conftest import make_client, new_key
from tests.integration.factories import (
    API,
    assert_problem,
    bulk_clinics,
    clinic_document,
    create_organization,
    organization_document,
)

pytestmark = pytest.mark.integration
Headers = dict[str, str]


async def test_default_is_no_count(client: httpx.AsyncClient, admin: Headers) -> None:
    await create_organization(client, admin)
    response = await client.get(f"{API}/organizations", headers=admin)
    assert response.status_code == 200, response.text
    assert "x-total-count" not in response.headers
    assert response.headers["x-count-strategy"] == "none"
    assert response.json()["count"] == {"value": None, "strategy": "none", "exact": False}
    explicit = await client.get(f"{API}/organizations", params={"count": "none"}, headers=admin)
    assert "x-total-count" not in explicit.headers
    assert explicit.json()["count"]["strategy"] == "none"


async def test_estimated_unfiltered_reads_metadata(
    client: httpx.AsyncClient, admin: Headers, mongo: AsyncMongoClient[Any], database: str
) -> None:
    await mongo[database].organizations.insert_many(
        [organization_document(f"Org {i}") for i in range(37)]
    )
    response = await client.get(
        f"{API}/organizations", params={"count": "estimated"}, headers=admin
    )
    assert response.status_code == 200, response.text
    assert response.headers["x-count-strategy"] == "estimated"
    assert response.headers["x-total-count"] == "37"
    assert response.json()["count"] == {"value": 37, "strategy": "estimated", "exact": False}


async def test_exact(
    client: httpx.AsyncClient, admin: Headers, mongo: AsyncMongoClient[Any], database: str
) -> None:
    org = await create_organization(client, admin)
    await bulk_clinics(mongo, database, org["id"], 75)
    await mongo[database].clinics.insert_many(
        [
            clinic_document(ObjectId(org["id"]), f"Closed {i}", f"X{i}", status="CLOSED")
            for i in range(5)
        ]
    )
    url = f"{API}/organizations/{org['id']}/clinics"
    response = await client.get(url, params={"count": "exact"}, headers=admin)
    assert response.headers["x-count-strategy"] == "exact"
    assert response.headers["x-total-count"] == "80"
    assert response.json()["count"] == {"value": 80, "strategy": "exact", "exact": True}
    closed = await client.get(url, params={"count": "exact", "status": "CLOSED"}, headers=admin)
    assert closed.json()["count"] == {"value": 5, "strategy": "exact", "exact": True}


async def test_count_is_per_query_not_per_page(
    client: httpx.AsyncClient, admin: Headers, mongo: AsyncMongoClient[Any], database: str
) -> None:
    org = await create_organization(client, admin)
    await bulk_clinics(mongo, database, org["id"], 30)
    url = f"{API}/organizations/{org['id']}/clinics"
    first = await client.get(url, params={"count": "exact", "limit": "10"}, headers=admin)
    second = await client.get(first.links["next"]["url"], headers=admin)
    assert second.status_code == 200, second.text
    assert second.json()["count"] == {"value": 30, "strategy": "exact", "exact": True}


async def test_bad_count_is_400(client: httpx.AsyncClient, admin: Headers) -> None:
    response = await client.get(f"{API}/organizations", params={"count": "approx"}, headers=admin)
    assert "count" in assert_problem(response, 400)["detail"]


@pytest.fixture
async def capped(
    settings: Settings, mongo: AsyncMongoClient[Any], redis_client: redis.asyncio.Redis
) -> AsyncIterator[tuple[httpx.AsyncClient, Any]]:
    app = create_app(settings.with_overrides(count_cap=50), mongo=mongo, redis_client=redis_client)
    async with await make_client(app) as http:
        yield http, app


async def test_filtered_estimate_stops_at_the_cap(
    capped: tuple[httpx.AsyncClient, Any], mongo: AsyncMongoClient[Any], database: str
) -> None:
    http, app = capped
    admin = await new_key(app)
    org = await create_organization(http, admin)
    await bulk_clinics(mongo, database, org["id"], 120)
    await mongo[database].clinics.insert_many(
        [
            clinic_document(ObjectId(org["id"]), f"Closed {i}", f"X{i}", status="CLOSED")
            for i in range(7)
        ]
    )
    url = f"{API}/organizations/{org['id']}/clinics"

    over = await http.get(url, params={"count": "estimated"}, headers=admin)
    assert over.status_code == 200, over.text
    assert over.json()["count"] == {"value": 50, "strategy": "estimated", "exact": False}
    assert over.headers["x-total-count"] == "50"
    assert over.headers["x-count-strategy"] == "estimated"

    under = await http.get(url, params={"count": "estimated", "status": "CLOSED"}, headers=admin)
    assert under.json()["count"] == {"value": 7, "strategy": "estimated", "exact": True}

    # The cap bounds estimates only: exact still counts everything.
    exact = await http.get(url, params={"count": "exact"}, headers=admin)
    assert exact.json()["count"] == {"value": 127, "strategy": "exact", "exact": True}


async def test_tenant_estimate_counts_only_the_tenant(
    client: httpx.AsyncClient,
    admin: Headers,
    app: Any,
    mongo: AsyncMongoClient[Any],
    database: str,
) -> None:
    mine = await create_organization(client, admin)
    theirs = await create_organization(client, admin)
    await bulk_clinics(mongo, database, mine["id"], 12)
    await bulk_clinics(mongo, database, theirs["id"], 40)
    reader = await new_key(app, "org_reader", mine["id"])
    response = await client.get(f"{API}/clinics", params={"count": "estimated"}, headers=reader)
    assert response.json()["count"] == {"value": 12, "strategy": "estimated", "exact": True}
    everyone = await client.get(f"{API}/clinics", params={"count": "estimated"}, headers=admin)
    assert everyone.json()["count"] == {"value": 52, "strategy": "estimated", "exact": False}
