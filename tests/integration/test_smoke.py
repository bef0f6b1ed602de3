from __future__ import annotations

import httpx
import pytest

pytestmark = pytest.mark.integration


async def test_organization_round_trip(client: httpx.AsyncClient, admin: dict[str, str]) -> None:
    created = await client.post(
        "/api/v1/organizations", json={"name": "Bright Smiles"}, headers=admin
    )
    assert created.status_code == 201, created.text
    org = created.json()
    got = await client.get(f"/api/v1/organizations/{org['id']}", headers=admin)
    assert got.status_code == 200, got.text
    assert got.json()["name"] == "Bright Smiles"
    listed = await client.get("/api/v1/organizations", headers=admin)
    assert listed.status_code == 200, listed.text
    assert [o["id"] for o in listed.json()["data"]] == [org["id"]]
