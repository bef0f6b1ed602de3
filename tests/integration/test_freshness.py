"""After any 2xx write, no GET of the item or of a list containing it returns old data."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from contextlib import AsyncExitStack
from typing import Any

import httpx
import pytest
import redis.asyncio
from bson import ObjectId
from pymongo import AsyncMongoClient

from enterprise.app import create_app
from enterprise.leases import GenerationLeases
from enterprise.settings import Settings
from tests.conftest import Server, make_client, new_key, server_env

pytestmark = pytest.mark.integration
ADDRESS = {"line1": "1 Main St", "city": "Austin", "state": "TX", "postalCode": "78701"}


async def _clinic(http: httpx.AsyncClient, organization: str, name: str) -> tuple[str, str]:
    """A new organization with one clinic: (the clinic's item path, the clinic list path)."""
    org = (await http.post("/api/v1/organizations", json={"name": organization})).json()
    clinic = (
        await http.post(
            f"/api/v1/organizations/{org['id']}/clinics",
            json={"name": name, "code": "C0", "address": ADDRESS},
        )
    ).json()
    return f"/api/v1/clinics/{clinic['id']}", f"/api/v1/organizations/{org['id']}/clinics"


async def _check_rounds(http: httpx.AsyncClient, rounds: int, reads: int) -> set[str]:
    item, listing = await _clinic(http, "Fresh Dental", "Clinic 0")
    seen_cache_states: set[str] = set()
    for round_number in range(1, rounds + 1):
        for _ in range(reads):  # warm every worker's tiers with the current state
            seen_cache_states.add((await http.get(item)).headers.get("x-cache", ""))
            await http.get(listing)
        name = f"Clinic {round_number}"
        assert (await http.patch(item, json={"name": name})).status_code == 200
        for _ in range(reads):
            assert (await http.get(item)).json()["name"] == name
            assert [c["name"] for c in (await http.get(listing)).json()["data"]] == [name]
            assert (await http.get(f"{item}?fields=name")).json()["name"] == name
    return seen_cache_states


async def test_writes_are_visible_at_once_in_one_worker(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    client.headers.update(admin)
    states = await _check_rounds(client, rounds=10, reads=3)
    assert "hit" in states  # the cache was really in play


async def test_writes_are_visible_at_once_across_two_workers(settings: Settings, app: Any) -> None:
    admin = await new_key(app)
    async with Server(server_env(settings), workers=2) as server:
        # No keep-alive: every request takes a new connection, spread over both workers.
        transport = httpx.AsyncHTTPTransport(limits=httpx.Limits(max_keepalive_connections=0))
        async with httpx.AsyncClient(
            base_url=server.base_url, headers=admin, timeout=10, transport=transport
        ) as http:
            states = await _check_rounds(http, rounds=10, reads=6)
    assert "hit" in states


LONG_LEASE_MS = 300  # long enough that a missing commit wait could not go unnoticed


async def _lease_scenario(
    settings: Settings, mongo: AsyncMongoClient[Any], redis_client: redis.asyncio.Redis
) -> tuple[str, str, float]:
    """Worker B reads a clinic (its generations now leased); worker A renames it.

    Returns what B answers right after A's 2xx, the new name and how long the PATCH took.
    """
    leased = settings.with_overrides(cache_generation_lease_ms=LONG_LEASE_MS)
    async with AsyncExitStack() as stack:
        # Two apps, one process: two workers with their own leases and in-process tiers.
        worker_a = create_app(leased, mongo=mongo, redis_client=redis_client)
        worker_b = create_app(leased, mongo=mongo, redis_client=redis_client)
        a = await stack.enter_async_context(await make_client(worker_a))
        b = await stack.enter_async_context(await make_client(worker_b))
        admin = await new_key(worker_a)
        a.headers.update(admin)
        b.headers.update(admin)
        item, _ = await _clinic(a, "Lease Dental", "Before")
        assert (await b.get(item)).headers["x-cache"] == "miss"
        assert (await b.get(item)).headers["x-cache"] == "hit"  # B holds a lease now

        started = time.monotonic()
        assert (await a.patch(item, json={"name": "After"})).status_code == 200
        took = time.monotonic() - started
        return (await b.get(item)).json()["name"], "After", took


async def test_a_write_waits_out_every_lease_before_its_2xx(
    settings: Settings, mongo: AsyncMongoClient[Any], redis_client: redis.asyncio.Redis
) -> None:
    seen, written, took = await _lease_scenario(settings, mongo, redis_client)
    assert seen == written
    assert took >= LONG_LEASE_MS / 1000


async def test_without_the_commit_wait_the_lease_would_serve_old_data(
    settings: Settings,
    mongo: AsyncMongoClient[Any],
    redis_client: redis.asyncio.Redis,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The control for the test above: B really answers from its lease (no Redis read), so
    only the writer's wait makes the write visible there at once."""

    async def acknowledge_at_once(self: GenerationLeases) -> None:
        self.forget()

    monkeypatch.setattr(GenerationLeases, "commit_wait", acknowledge_at_once)
    seen, written, took = await _lease_scenario(settings, mongo, redis_client)
    assert took < LONG_LEASE_MS / 1000
    assert seen == "Before" != written


async def test_cache_retire_makes_every_worker_read_afresh(
    settings: Settings, mongo: AsyncMongoClient[Any], redis_client: redis.asyncio.Redis
) -> None:
    """`python -m enterprise cache retire`: for data changed outside the API (no generation
    moved), every worker's entries go at once, Redis's and the in-process tiers' alike."""
    async with AsyncExitStack() as stack:
        workers = [create_app(settings, mongo=mongo, redis_client=redis_client) for _ in "ab"]
        clients = [await stack.enter_async_context(await make_client(w)) for w in workers]
        admin = await new_key(workers[0])
        for http in clients:
            http.headers.update(admin)
        item, _ = await _clinic(clients[0], "Retire Dental", "Before")
        for http in clients:
            await http.get(item)
            assert (await http.get(item)).headers["x-cache"] == "hit"
        clinic_id = item.rsplit("/", 1)[-1]
        # A manual fix, straight in the database: the cache cannot know.
        await mongo[settings.mongodb_database].clinics.update_one(
            {"_id": ObjectId(clinic_id)}, {"$set": {"name": "Fixed by hand"}}
        )
        assert (await clients[1].get(item)).json()["name"] == "Before"

        retire = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "enterprise", "cache", "retire",
            env={**os.environ, "ENTERPRISE_DEV": "1", **server_env(settings)},
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        _, stderr = await retire.communicate()
        assert retire.returncode == 0, stderr.decode()
        await asyncio.sleep(settings.cache_generation_lease_ms * 2 / 1000)
        answers = [await http.get(item) for http in clients]
        assert [a.json()["name"] for a in answers] == ["Fixed by hand"] * 2
        assert [a.headers["x-cache"] for a in answers] == ["miss", "hit"]  # B shares A's read
