"""After any 2xx write, no GET of the item or of a list containing it returns old data."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from enterprise.settings import Settings
from tests.conftest import Server, new_key, server_env

pytestmark = pytest.mark.integration
ADDRESS = {"line1": "1 Main St", "city": "Austin", "state": "TX", "postalCode": "78701"}


async def _check_rounds(http: httpx.AsyncClient, rounds: int, reads: int) -> set[str]:
    org = (await http.post("/api/v1/organizations", json={"name": "Fresh Dental"})).json()
    clinic = (
        await http.post(
            f"/api/v1/organizations/{org['id']}/clinics",
            json={"name": "Clinic 0", "code": "C0", "address": ADDRESS},
        )
    ).json()
    item, listing = f"/api/v1/clinics/{clinic['id']}", f"/api/v1/organizations/{org['id']}/clinics"
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
            assert (await http.get(f"/api/v1/clinics/{clinic['id']}?fields=name")).json()[
                "name"
            ] == name
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
