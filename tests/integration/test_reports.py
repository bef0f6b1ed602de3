"""reports/organizations/{id}/summary on a small, known data set."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from enterprise.capabilities import ServerCapabilities
from tests.integration.factories import (
    API,
    assert_problem,
    create_assignment,
    create_clinic,
    create_organization,
)

pytestmark = pytest.mark.integration
Headers = dict[str, str]
STAGES = frozenset({"$match", "$group", "$count"})


@pytest.fixture(autouse=True)
def _aggregation_stages(capabilities: ServerCapabilities) -> None:
    missing = STAGES - capabilities.aggregation_stages
    if missing:
        pytest.skip(f"the server does not implement the report's stages {sorted(missing)}")


@pytest.fixture
async def known(client: httpx.AsyncClient, admin: Headers) -> dict[str, Any]:
    """Organization X: 6 clinics (3 ACTIVE, 1 INACTIVE, 2 CLOSED) and 8 assignments, of which
    5 active (providers dr-1, dr-2, dr-4) and 2 active primaries. Organization Y is noise."""
    org = await create_organization(client, admin, "Known Group")
    statuses = ["ACTIVE", "ACTIVE", "ACTIVE", "INACTIVE", "CLOSED", "CLOSED"]
    c = [(await create_clinic(client, admin, org["id"], status=s))["id"] for s in statuses]
    a = {
        "dr-1@c0": await create_assignment(client, admin, "dr-1", c[0], isPrimaryClinic=True),
        "dr-1@c1": await create_assignment(client, admin, "dr-1", c[1]),
        "dr-1@c2": await create_assignment(client, admin, "dr-1", c[2], isActive=False),
        "dr-2@c0": await create_assignment(client, admin, "dr-2", c[0]),
        "dr-2@c3": await create_assignment(client, admin, "dr-2", c[3], isPrimaryClinic=True),
        "dr-3@c1": await create_assignment(
            client, admin, "dr-3", c[1], isPrimaryClinic=True, isActive=False
        ),
        "dr-4@c4": await create_assignment(client, admin, "dr-4", c[4]),
        "dr-5@c5": await create_assignment(client, admin, "dr-5", c[5], isActive=False),
    }
    noise = await create_organization(client, admin, "Noise Group")
    other = await create_clinic(client, admin, noise["id"], status="CLOSED")
    await create_assignment(client, admin, "dr-1", other["id"])
    await create_assignment(client, admin, "dr-9", other["id"], isPrimaryClinic=True)
    return {"org": org, "clinics": c, "assignments": a}


async def _summary(client: httpx.AsyncClient, headers: Headers, org_id: str) -> dict[str, Any]:
    response = await client.get(f"{API}/reports/organizations/{org_id}/summary", headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_summary_counts(
    client: httpx.AsyncClient, admin: Headers, known: dict[str, Any]
) -> None:
    org = known["org"]
    assert await _summary(client, admin, org["id"]) == {
        "organizationId": org["id"],
        "name": "Known Group",
        "clinics": {"total": 6, "byStatus": {"ACTIVE": 3, "INACTIVE": 1, "CLOSED": 2}},
        "activeAssignments": 5,
        "distinctProviders": 3,
        "primaryAssignments": 2,
    }


async def test_summary_follows_writes(
    client: httpx.AsyncClient, admin: Headers, known: dict[str, Any]
) -> None:
    org_id = known["org"]["id"]
    await _summary(client, admin, org_id)  # now cached
    ended = known["assignments"]["dr-2@c3"]["id"]
    response = await client.patch(
        f"{API}/assignments/{ended}", json={"isActive": False}, headers=admin
    )
    assert response.status_code == 200, response.text
    closed = await client.patch(
        f"{API}/clinics/{known['clinics'][0]}", json={"status": "CLOSED"}, headers=admin
    )
    assert closed.status_code == 200, closed.text
    summary = await _summary(client, admin, org_id)
    assert summary["clinics"] == {"total": 6, "byStatus": {"ACTIVE": 2, "INACTIVE": 1, "CLOSED": 3}}
    assert (
        summary["activeAssignments"],
        summary["distinctProviders"],
        summary["primaryAssignments"],
    ) == (4, 3, 1)


async def test_empty_organization(client: httpx.AsyncClient, admin: Headers) -> None:
    org = await create_organization(client, admin, "Empty Group")
    assert await _summary(client, admin, org["id"]) == {
        "organizationId": org["id"],
        "name": "Empty Group",
        "clinics": {"total": 0, "byStatus": {}},
        "activeAssignments": 0,
        "distinctProviders": 0,
        "primaryAssignments": 0,
    }


async def test_unknown_and_bad_ids(client: httpx.AsyncClient, admin: Headers) -> None:
    assert_problem(
        await client.get(f"{API}/reports/organizations/{'a' * 24}/summary", headers=admin), 404
    )
    assert_problem(
        await client.get(f"{API}/reports/organizations/acme/summary", headers=admin), 400
    )
    org = await create_organization(client, admin)
    response = await client.get(
        f"{API}/reports/organizations/{org['id']}/summary", params={"from": "2020"}, headers=admin
    )
    assert "from" in assert_problem(response, 400)["detail"]
