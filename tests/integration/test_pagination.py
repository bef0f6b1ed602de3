"""Keyset pagination: complete walks both ways, under concurrent writes, and cursor safety."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import pytest
from bson import ObjectId
from pymongo import AsyncMongoClient

from tests.conftest import isolated_app, new_key
from tests.integration.factories import (
    API,
    address,
    assert_problem,
    assignment_document,
    bulk_clinics,
    clinic_document,
    create_organization,
    organization_document,
    stored_now,
)

pytestmark = pytest.mark.integration
Headers = dict[str, str]
CLINICS = 2500


async def walk(
    client: httpx.AsyncClient,
    headers: Headers,
    url: str,
    params: dict[str, str],
    rel: str = "next",
    between: Any = None,
    max_pages: int = 10_000,
) -> tuple[list[str], list[httpx.Response]]:
    """Follow `Link: rel=<rel>` from `url` to the end; the ids in list order."""
    ids: list[str] = []
    pages: list[httpx.Response] = []
    response = await client.get(url, params=params, headers=headers)
    while True:
        assert response.status_code == 200, response.text
        pages.append(response)
        body = response.json()
        page_ids = [item["id"] for item in body["data"]]
        ids.extend(page_ids if rel == "next" else reversed(page_ids))
        link = response.links.get(rel)
        cursor = body["page"][rel]
        assert (link is None) == (cursor is None), (response.headers.get("link"), body["page"])
        if link is None or len(pages) == max_pages:
            return ids, pages
        assert f"cursor={cursor}" in link["url"]
        if between is not None:
            await between()
        response = await client.get(link["url"], headers=headers)


def by_name(documents: list[dict[str, Any]]) -> list[str]:
    return [str(d["_id"]) for d in sorted(documents, key=lambda d: (d["nameKey"], d["_id"]))]


def newest_first(documents: list[dict[str, Any]], field: str = "createdAt") -> list[str]:
    ordered = sorted(documents, key=lambda d: (d[field], d["_id"]), reverse=True)
    return [str(d["_id"]) for d in ordered]


@dataclass
class BigList:
    client: httpx.AsyncClient
    admin: Headers
    organization_id: str
    documents: list[dict[str, Any]]


@pytest.fixture(scope="module")
async def big(mongo: AsyncMongoClient[Any]) -> AsyncIterator[BigList]:
    """2,500 clinics in one organization, inserted once for the read-only walks below."""
    async with isolated_app(mongo) as (app, http, database):
        admin = await new_key(app)
        org = await create_organization(http, admin, "Big Group")
        documents = await bulk_clinics(mongo, database, org["id"], CLINICS)
        yield BigList(http, admin, org["id"], documents)


@pytest.mark.parametrize(("sort", "order"), [("name", by_name), ("-createdAt", newest_first)])
async def test_walk_sees_every_clinic_once_both_ways(big: BigList, sort: str, order: Any) -> None:
    client, admin = big.client, big.admin
    url = f"{API}/organizations/{big.organization_id}/clinics"
    forward, pages = await walk(client, admin, url, {"limit": "100", "sort": sort})
    assert forward == order(big.documents)
    assert len(pages) == CLINICS // 100
    first, last = pages[0], pages[-1]
    assert first.json()["page"]["prev"] is None
    assert first.json()["page"]["hasMore"] is True
    assert 'rel="next"' in first.headers["link"]
    assert f"sort={sort}" in first.headers["link"]
    assert last.json()["page"]["next"] is None
    assert last.json()["page"]["hasMore"] is False
    assert 'rel="prev"' in last.headers["link"]

    # Back from the last page through `prev` (the full backward walks run on the smaller
    # lists below: each page of this one costs FerretDB a full sort of 2,500 documents).
    start = httpx.URL(str(last.request.url))
    backward, back_pages = await walk(
        client, admin, start.path, dict(start.params), rel="prev", max_pages=3
    )
    assert backward == list(reversed(forward))[:300]
    assert [p.json()["data"] for p in back_pages] == [p.json()["data"] for p in pages[-1:-4:-1]]


async def assert_walks_both_ways(
    client: httpx.AsyncClient,
    headers: Headers,
    url: str,
    params: dict[str, str],
    expected: list[str],
) -> None:
    forward, pages = await walk(client, headers, url, params)
    assert forward == expected
    start = httpx.URL(str(pages[-1].request.url))
    backward, back_pages = await walk(client, headers, start.path, dict(start.params), rel="prev")
    assert backward == list(reversed(expected))
    assert [p.json()["data"] for p in back_pages] == [p.json()["data"] for p in reversed(pages)]
    assert back_pages[-1].json()["page"]["prev"] is None
    assert back_pages[-1].json()["page"]["hasMore"] is True


async def test_flat_list_walk_with_fields(
    client: httpx.AsyncClient, admin: Headers, mongo: AsyncMongoClient[Any], database: str
) -> None:
    documents = []
    for _ in range(3):
        org = await create_organization(client, admin)
        documents += await bulk_clinics(mongo, database, org["id"], 100)
    forward, pages = await walk(client, admin, f"{API}/clinics", {"limit": "100", "fields": "code"})
    assert forward == by_name(documents)
    assert all(set(item) == {"id", "code"} for p in pages for item in p.json()["data"])
    for sort, order in (("name", by_name), ("-createdAt", newest_first)):
        await assert_walks_both_ways(
            client, admin, f"{API}/clinics", {"limit": "70", "sort": sort}, order(documents)
        )


@pytest.mark.parametrize("sort", ["name", "-createdAt"])
async def test_walk_under_concurrent_inserts_and_deletes(
    client: httpx.AsyncClient,
    admin: Headers,
    mongo: AsyncMongoClient[Any],
    database: str,
    sort: str,
) -> None:
    org_id = (await create_organization(client, admin))["id"]
    documents = await bulk_clinics(mongo, database, org_id, 1000)
    existing = {str(d["_id"]) for d in documents}
    rng = random.Random(sort)
    doomed = rng.sample(sorted(existing), 300)
    deleted: set[str] = set()
    inserted: set[str] = set()
    done = asyncio.Event()
    stepped = asyncio.Event()
    clinics = mongo[database].clinics

    async def churn() -> None:
        for step, victim in enumerate(doomed):
            if done.is_set():
                return
            # Names land anywhere in the walk; direct inserts also tie on createdAt.
            name = f"Clinic {rng.randrange(1000):05d} Zz{step}"
            if step % 2:  # straight into MongoDB
                twin = rng.choice(documents)
                document = clinic_document(
                    ObjectId(org_id), name, f"NEW{step}", at=twin["createdAt"]
                )
                await clinics.insert_one(document)
                inserted.add(str(document["_id"]))
                await clinics.delete_one({"_id": ObjectId(victim)})
            else:  # through the API
                created = await client.post(
                    f"{API}/organizations/{org_id}/clinics",
                    json={"name": name, "code": f"NEW{step}", "address": address()},
                    headers=admin,
                )
                assert created.status_code == 201, created.text
                inserted.add(created.json()["id"])
                gone = await client.delete(f"{API}/clinics/{victim}", headers=admin)
                assert gone.status_code == 204, gone.text
            deleted.add(victim)
            stepped.set()
            await asyncio.sleep(0)

    async def interleave() -> None:
        # Between page requests, wait for the churn's next step, however slow the machine
        # (or the writes: each also writes its audit record), so the churn overlaps the walk.
        stepped.clear()
        waiter = asyncio.ensure_future(stepped.wait())
        try:
            await asyncio.wait([waiter, task], timeout=60, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()

    task = asyncio.create_task(churn())
    try:
        seen, pages = await walk(
            client,
            admin,
            f"{API}/organizations/{org_id}/clinics",
            {"limit": "100", "sort": sort},
            between=interleave,
        )
    finally:
        done.set()
        await task
    assert len(pages) > 5
    assert len(deleted) > 5, "the churn did not overlap the walk"
    assert [i for i, n in Counter(seen).items() if n > 1] == [], "a document was seen twice"
    assert (existing - deleted) - set(seen) == set(), "a never-deleted document was skipped"
    assert set(seen) <= existing | inserted


async def test_organizations_walk(
    client: httpx.AsyncClient, admin: Headers, mongo: AsyncMongoClient[Any], database: str
) -> None:
    base = stored_now(-100_000)
    documents = [
        organization_document(f"Org {(i * 37) % 250:03d}", at=base + timedelta(seconds=i // 3))
        for i in range(250)
    ]
    await mongo[database].organizations.insert_many(documents)
    url = f"{API}/organizations"
    await assert_walks_both_ways(client, admin, url, {"limit": "30"}, by_name(documents))
    await assert_walks_both_ways(
        client, admin, url, {"limit": "30", "sort": "-createdAt"}, newest_first(documents)
    )


async def test_assignments_walk(
    client: httpx.AsyncClient, admin: Headers, mongo: AsyncMongoClient[Any], database: str
) -> None:
    org, clinic = ObjectId(), ObjectId()
    base = stored_now(-100_000)
    documents = [
        assignment_document(
            f"dr-{i}", clinic, org, at=base + timedelta(milliseconds=i // 5), is_active=i % 4 != 0
        )
        for i in range(230)
    ]
    await mongo[database].assignments.insert_many(documents)
    url = f"{API}/assignments"
    await assert_walks_both_ways(
        client, admin, url, {"limit": "50"}, newest_first(documents, "assignedAt")
    )
    await assert_walks_both_ways(
        client,
        admin,
        url,
        {"limit": "50", "isActive": "true"},
        newest_first([d for d in documents if d["isActive"]], "assignedAt"),
    )


# -- cursor safety ------------------------------------------------------------------------


@pytest.fixture
async def next_cursor(
    client: httpx.AsyncClient, admin: Headers, mongo: AsyncMongoClient[Any], database: str
) -> tuple[str, str]:
    org = await create_organization(client, admin)
    await bulk_clinics(mongo, database, org["id"], 30)
    url = f"{API}/organizations/{org['id']}/clinics"
    response = await client.get(url, params={"limit": "10"}, headers=admin)
    cursor = response.json()["page"]["next"]
    assert cursor
    return url, cursor


def _flip(char: str) -> str:
    return "B" if char == "A" else "A"


async def test_tampered_signature_is_400(
    client: httpx.AsyncClient, admin: Headers, next_cursor: tuple[str, str]
) -> None:
    url, cursor = next_cursor
    body, signature = cursor.split(".")
    tampered = f"{body}.{_flip(signature[0])}{signature[1:]}"
    response = await client.get(url, params={"limit": "10", "cursor": tampered}, headers=admin)
    assert "tampered" in assert_problem(response, 400)["detail"]


async def test_tampered_payload_is_400(
    client: httpx.AsyncClient, admin: Headers, next_cursor: tuple[str, str]
) -> None:
    url, cursor = next_cursor
    body, signature = cursor.split(".")
    tampered = f"{body[:5]}{_flip(body[5])}{body[6:]}.{signature}"
    response = await client.get(url, params={"limit": "10", "cursor": tampered}, headers=admin)
    assert_problem(response, 400)


@pytest.mark.parametrize("cursor", ["garbage", "a.b.c", ".", "%%%.%%%"])
async def test_malformed_cursor_is_400(
    client: httpx.AsyncClient, admin: Headers, next_cursor: tuple[str, str], cursor: str
) -> None:
    url, _ = next_cursor
    assert_problem(await client.get(url, params={"cursor": cursor}, headers=admin), 400)


@pytest.mark.parametrize(
    "change",
    [{"status": "ACTIVE"}, {"sort": "-createdAt"}, {"state": "IL"}],
)
async def test_cursor_reused_with_other_filter_or_sort_is_400(
    client: httpx.AsyncClient, admin: Headers, next_cursor: tuple[str, str], change: dict[str, str]
) -> None:
    url, cursor = next_cursor
    response = await client.get(
        url, params={"limit": "10", "cursor": cursor, **change}, headers=admin
    )
    assert "another filter or sort" in assert_problem(response, 400)["detail"]


async def test_cursor_reused_on_another_route_is_400(
    client: httpx.AsyncClient, admin: Headers, next_cursor: tuple[str, str]
) -> None:
    _, cursor = next_cursor
    other = await create_organization(client, admin)
    for url in (f"{API}/clinics", f"{API}/organizations/{other['id']}/clinics"):
        assert_problem(await client.get(url, params={"cursor": cursor}, headers=admin), 400)


async def test_cursor_keeps_working_with_other_limit_or_fields(
    client: httpx.AsyncClient, admin: Headers, next_cursor: tuple[str, str]
) -> None:
    url, cursor = next_cursor
    response = await client.get(
        url, params={"limit": "50", "cursor": cursor, "fields": "name"}, headers=admin
    )
    assert response.status_code == 200, response.text
    assert len(response.json()["data"]) == 20
    assert response.json()["page"]["next"] is None
