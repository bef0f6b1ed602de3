"""assignments, assignments/{id}, providers/{id}/clinics and clinics/{id}/providers."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from bson import ObjectId
from pymongo import AsyncMongoClient

from tests.conftest import new_key
from tests.integration.factories import (
    API,
    CommandRecorder,
    assert_problem,
    assignment_document,
    clinic_document,
    count_all,
    create_assignment,
    create_clinic,
    create_organization,
)

pytestmark = pytest.mark.integration
Headers = dict[str, str]


@pytest.fixture
async def clinics(client: httpx.AsyncClient, admin: Headers) -> list[dict[str, Any]]:
    org = await create_organization(client, admin)
    return [await create_clinic(client, admin, org["id"], name) for name in ("One", "Two", "Three")]


# -- CRUD ---------------------------------------------------------------------------------


async def test_create_denormalises_organization(
    client: httpx.AsyncClient, admin: Headers, clinics: list[dict[str, Any]]
) -> None:
    response = await client.post(
        f"{API}/assignments",
        json={"providerId": "dr-who", "clinicId": clinics[0]["id"], "roles": ["dentist"]},
        headers=admin,
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert response.headers["location"] == f"{API}/assignments/{body['id']}"
    assert response.headers["etag"] == f'"{body["id"]}-1"'
    assert body["organizationId"] == clinics[0]["organizationId"]
    assert body["clinicId"] == clinics[0]["id"]
    assert (body["isActive"], body["isPrimaryClinic"], body["roles"]) == (True, False, ["dentist"])
    assert body["assignedAt"] == body["createdAt"]
    assert body["endedAt"] is None
    assert "primaryProviderId" not in body


async def test_crud_round_trip(
    client: httpx.AsyncClient, admin: Headers, clinics: list[dict[str, Any]]
) -> None:
    created = await create_assignment(client, admin, "dr-a", clinics[0]["id"], roles=["hygienist"])
    url = f"{API}/assignments/{created['id']}"
    got = await client.get(url, headers=admin)
    assert got.status_code == 200, got.text
    assert got.json()["roles"] == ["hygienist"]

    patched = await client.patch(url, json={"roles": ["dentist", "owner"]}, headers=admin)
    assert patched.status_code == 200, patched.text
    assert patched.json()["roles"] == ["dentist", "owner"]
    assert patched.json()["version"] == 2

    ended = await client.patch(url, json={"isActive": False}, headers=admin)
    assert ended.status_code == 200, ended.text
    assert ended.json()["isActive"] is False
    assert ended.json()["endedAt"] is not None  # derived when an assignment ends

    listed = await client.get(
        f"{API}/assignments", params={"clinicId": clinics[0]["id"]}, headers=admin
    )
    assert [a["id"] for a in listed.json()["data"]] == [created["id"]]

    assert (await client.delete(url, headers=admin)).status_code == 204
    assert_problem(await client.get(url, headers=admin), 404)


async def test_list_filters_and_order(
    client: httpx.AsyncClient, admin: Headers, clinics: list[dict[str, Any]]
) -> None:
    first = await create_assignment(client, admin, "dr-a", clinics[0]["id"])
    second = await create_assignment(client, admin, "dr-a", clinics[1]["id"], isActive=False)
    third = await create_assignment(client, admin, "dr-b", clinics[0]["id"])

    async def ids(**params: str) -> list[str]:
        response = await client.get(f"{API}/assignments", params=params, headers=admin)
        assert response.status_code == 200, response.text
        return [a["id"] for a in response.json()["data"]]

    assert await ids() == [third["id"], second["id"], first["id"]]  # newest first
    assert await ids(providerId="dr-a") == [second["id"], first["id"]]
    assert await ids(providerId="dr-a", isActive="true") == [first["id"]]
    assert await ids(clinicId=clinics[0]["id"]) == [third["id"], first["id"]]
    assert_problem(
        await client.get(f"{API}/assignments", params={"isActive": "yes"}, headers=admin), 400
    )


async def test_provider_and_clinic_are_immutable(
    client: httpx.AsyncClient, admin: Headers, clinics: list[dict[str, Any]]
) -> None:
    created = await create_assignment(client, admin, "dr-a", clinics[0]["id"])
    url = f"{API}/assignments/{created['id']}"
    for change in ({"providerId": "dr-z"}, {"clinicId": clinics[1]["id"]}):
        body = assert_problem(await client.patch(url, json=change, headers=admin), 422)
        assert body["errors"][0]["field"] == next(iter(change))
    # Repeating the current value is allowed.
    same = await client.patch(url, json={"providerId": "dr-a"}, headers=admin)
    assert same.status_code == 200, same.text
    assert (await client.get(url, headers=admin)).json()["clinicId"] == clinics[0]["id"]


async def test_unknown_clinic_is_422_and_writes_nothing(
    client: httpx.AsyncClient, admin: Headers, mongo: AsyncMongoClient[Any], database: str
) -> None:
    before = await count_all(mongo, database)
    response = await client.post(
        f"{API}/assignments",
        json={"providerId": "dr-a", "clinicId": str(ObjectId())},
        headers=admin,
    )
    assert assert_problem(response, 422)["errors"][0]["field"] == "clinicId"
    assert await count_all(mongo, database) == before


@pytest.mark.parametrize(
    ("payload", "status"),
    [
        ({"providerId": "dr a", "clinicId": "0" * 24}, 422),  # not an external id
        ({"providerId": "dr-a", "clinicId": "nope"}, 422),
        ({"providerId": "dr-a"}, 422),
        ({"providerId": "dr-a", "clinicId": "0" * 24, "isActive": "yes"}, 422),
        ({"providerId": "dr-a", "clinicId": "0" * 24, "primary": True}, 422),
        ({"providerId": "dr-a", "clinicId": "0" * 24, "roles": ["r"] * 11}, 422),
        ({"providerId": "dr-a", "clinicId": "0" * 24, "endedAt": "2027-01-01T00:00:00"}, 422),
    ],
)
async def test_bad_body_writes_nothing(
    client: httpx.AsyncClient,
    admin: Headers,
    mongo: AsyncMongoClient[Any],
    database: str,
    payload: dict[str, Any],
    status: int,
) -> None:
    before = await count_all(mongo, database)
    assert_problem(await client.post(f"{API}/assignments", json=payload, headers=admin), status)
    assert await count_all(mongo, database) == before


@pytest.mark.parametrize("method", ["GET", "PATCH", "DELETE"])
async def test_bad_assignment_id_is_400(
    client: httpx.AsyncClient, admin: Headers, method: str
) -> None:
    body = {"roles": []} if method == "PATCH" else None
    response = await client.request(method, f"{API}/assignments/zz", json=body, headers=admin)
    assert "assignment_id" in assert_problem(response, 400)["detail"]


# -- uniqueness ---------------------------------------------------------------------------


async def test_pair_is_unique(
    client: httpx.AsyncClient,
    admin: Headers,
    clinics: list[dict[str, Any]],
    mongo: AsyncMongoClient[Any],
    database: str,
) -> None:
    await create_assignment(client, admin, "dr-a", clinics[0]["id"], isActive=False)
    before = await count_all(mongo, database)
    response = await client.post(
        f"{API}/assignments",
        json={"providerId": "dr-a", "clinicId": clinics[0]["id"]},
        headers=admin,
    )
    assert assert_problem(response, 409)["errors"][0]["field"] == "clinicId"
    assert await count_all(mongo, database) == before
    # Same clinic, other provider; same provider, other clinic: both fine.
    await create_assignment(client, admin, "dr-b", clinics[0]["id"])
    await create_assignment(client, admin, "dr-a", clinics[1]["id"])


async def test_one_active_primary_clinic_per_provider(
    client: httpx.AsyncClient,
    admin: Headers,
    clinics: list[dict[str, Any]],
    mongo: AsyncMongoClient[Any],
    database: str,
) -> None:
    first = await create_assignment(client, admin, "dr-a", clinics[0]["id"], isPrimaryClinic=True)
    before = await count_all(mongo, database)
    second = await client.post(
        f"{API}/assignments",
        json={"providerId": "dr-a", "clinicId": clinics[1]["id"], "isPrimaryClinic": True},
        headers=admin,
    )
    assert assert_problem(second, 409)["errors"][0]["field"] == "isPrimaryClinic"
    assert await count_all(mongo, database) == before

    # Another provider may have their own primary at the same clinic.
    await create_assignment(client, admin, "dr-b", clinics[0]["id"], isPrimaryClinic=True)
    # A non-primary or an inactive primary is no conflict.
    plain = await create_assignment(client, admin, "dr-a", clinics[1]["id"])
    await create_assignment(
        client, admin, "dr-a", clinics[2]["id"], isPrimaryClinic=True, isActive=False
    )

    ended = await client.patch(
        f"{API}/assignments/{first['id']}", json={"isActive": False}, headers=admin
    )
    assert ended.status_code == 200, ended.text
    # With the first primary ended, another assignment may become dr-a's primary.
    promoted = await client.patch(
        f"{API}/assignments/{plain['id']}", json={"isPrimaryClinic": True}, headers=admin
    )
    assert promoted.status_code == 200, promoted.text
    assert promoted.json()["isPrimaryClinic"] is True


async def test_primary_collision_on_patch_is_409(
    client: httpx.AsyncClient, admin: Headers, clinics: list[dict[str, Any]]
) -> None:
    await create_assignment(client, admin, "dr-a", clinics[0]["id"], isPrimaryClinic=True)
    other = await create_assignment(client, admin, "dr-a", clinics[1]["id"])
    url = f"{API}/assignments/{other['id']}"
    body = assert_problem(
        await client.patch(url, json={"isPrimaryClinic": True}, headers=admin), 409
    )
    assert body["errors"][0]["field"] == "isPrimaryClinic"
    got = (await client.get(url, headers=admin)).json()
    assert (got["isPrimaryClinic"], got["version"]) == (False, 1)
    # Reactivating an ended primary collides the same way.
    ended = await create_assignment(
        client, admin, "dr-a", clinics[2]["id"], isPrimaryClinic=True, isActive=False
    )
    again = await client.patch(
        f"{API}/assignments/{ended['id']}", json={"isActive": True}, headers=admin
    )
    assert assert_problem(again, 409)["errors"][0]["field"] == "isPrimaryClinic"


async def test_new_primary_accepted_after_deactivating_the_first(
    client: httpx.AsyncClient, admin: Headers, clinics: list[dict[str, Any]]
) -> None:
    first = await create_assignment(client, admin, "dr-a", clinics[0]["id"], isPrimaryClinic=True)
    ended = await client.patch(
        f"{API}/assignments/{first['id']}", json={"isActive": False}, headers=admin
    )
    assert ended.status_code == 200, ended.text
    second = await create_assignment(client, admin, "dr-a", clinics[1]["id"], isPrimaryClinic=True)
    assert second["isPrimaryClinic"] is True


# -- providers views ----------------------------------------------------------------------


async def test_provider_clinics_with_expand(
    client: httpx.AsyncClient, admin: Headers, clinics: list[dict[str, Any]]
) -> None:
    for clinic in clinics[:2]:
        await create_assignment(client, admin, "dr-x", clinic["id"])
    await create_assignment(client, admin, "dr-y", clinics[2]["id"])
    response = await client.get(
        f"{API}/providers/dr-x/clinics", params={"expand": "clinic"}, headers=admin
    )
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert [a["clinicId"] for a in data] == [clinics[1]["id"], clinics[0]["id"]]
    for item in data:
        clinic = next(c for c in clinics if c["id"] == item["clinicId"])
        assert item["clinic"] == {
            "id": clinic["id"],
            "name": clinic["name"],
            "code": clinic["code"],
            "status": "ACTIVE",
            "address": {"city": clinic["address"]["city"], "state": clinic["address"]["state"]},
        }
    plain = await client.get(f"{API}/providers/dr-x/clinics", headers=admin)
    assert all("clinic" not in a for a in plain.json()["data"])
    assert_problem(
        await client.get(f"{API}/providers/dr-x/clinics", params={"expand": "org"}, headers=admin),
        400,
    )


async def test_clinic_providers_lists_active_ones(
    client: httpx.AsyncClient, admin: Headers, clinics: list[dict[str, Any]]
) -> None:
    target = clinics[0]["id"]
    await create_assignment(client, admin, "dr-c", target, isPrimaryClinic=True)
    await create_assignment(client, admin, "dr-a", target)
    await create_assignment(client, admin, "dr-b", target, isActive=False)
    await create_assignment(client, admin, "dr-d", clinics[1]["id"])
    response = await client.get(f"{API}/clinics/{target}/providers", headers=admin)
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert [(p["providerId"], p["isPrimaryClinic"]) for p in data] == [
        ("dr-a", False),
        ("dr-c", True),
    ]
    assert all(set(p) == {"id", "providerId", "isPrimaryClinic"} for p in data)
    assert_problem(await client.get(f"{API}/clinics/{ObjectId()}/providers", headers=admin), 404)
    assert_problem(await client.get(f"{API}/clinics/bad/providers", headers=admin), 400)


@pytest.mark.parametrize("assignments", [3, 30])
async def test_expand_makes_two_commands(
    monitored: tuple[httpx.AsyncClient, CommandRecorder, Any],
    mongo: AsyncMongoClient[Any],
    database: str,
    assignments: int,
) -> None:
    http, recorder, app = monitored
    admin = await new_key(app)
    organization = ObjectId()
    clinic_docs = [
        clinic_document(organization, f"Clinic {i}", f"K{i}") for i in range(assignments)
    ]
    await mongo[database].clinics.insert_many(clinic_docs)
    await mongo[database].assignments.insert_many(
        [assignment_document("dr-many", c["_id"], organization) for c in clinic_docs]
    )
    warm = await http.get(f"{API}/organizations", params={"limit": 1}, headers=admin)
    assert warm.status_code == 200  # the key is now cached in process

    recorder.clear()
    response = await http.get(
        f"{API}/providers/dr-many/clinics",
        params={"expand": "clinic", "limit": "100", "count": "none"},
        headers=admin,
    )
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert len(data) == assignments
    assert all(item["clinic"] is not None for item in data)
    assert recorder.names() == [("find", "assignments"), ("find", "clinics")]
    lookup = recorder.commands[1][2]["filter"]
    assert set(lookup["_id"]["$in"]) == {c["_id"] for c in clinic_docs}


async def test_path_provider_cannot_be_overridden_by_filter(
    client: httpx.AsyncClient, admin: Headers, clinics: list[dict[str, Any]]
) -> None:
    await create_assignment(client, admin, "dr-x", clinics[0]["id"])
    await create_assignment(client, admin, "dr-y", clinics[1]["id"])
    response = await client.get(
        f"{API}/providers/dr-x/clinics", params={"providerId": "dr-y"}, headers=admin
    )
    assert "providerId" in assert_problem(response, 400)["detail"]
    same = await client.get(
        f"{API}/providers/dr-x/clinics", params={"providerId": "dr-x"}, headers=admin
    )
    assert [a["clinicId"] for a in same.json()["data"]] == [clinics[0]["id"]]
