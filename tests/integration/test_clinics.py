"""organizations/{id}/clinics, clinics, clinics/{id} and clinics/search."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from pymongo import AsyncMongoClient

from tests.conftest import new_key
from tests.integration.factories import (
    API,
    CommandRecorder,
    address,
    assert_problem,
    count_all,
    create_clinic,
    create_organization,
)

pytestmark = pytest.mark.integration
Headers = dict[str, str]


@pytest.fixture
async def org(client: httpx.AsyncClient, admin: Headers) -> dict[str, Any]:
    return await create_organization(client, admin, "Clinic Owner")


# -- CRUD ---------------------------------------------------------------------------------


async def test_create_under_organization(
    client: httpx.AsyncClient, admin: Headers, org: dict[str, Any]
) -> None:
    response = await client.post(
        f"{API}/organizations/{org['id']}/clinics",
        json={"name": "Downtown", "code": "DT-1", "address": address(city="Chicago")},
        headers=admin,
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert response.headers["location"] == f"{API}/clinics/{body['id']}"
    assert response.headers["etag"] == f'"{body["id"]}-1"'
    assert body["organizationId"] == org["id"]
    assert body["status"] == "ACTIVE"
    assert body["address"] == address(city="Chicago")
    assert body["version"] == 1
    assert "nameKey" not in body


async def test_crud_round_trip(
    client: httpx.AsyncClient, admin: Headers, org: dict[str, Any]
) -> None:
    clinic = await create_clinic(client, admin, org["id"], "North", "N1", managerUserId="user-7")
    url = f"{API}/clinics/{clinic['id']}"

    got = await client.get(url, headers=admin)
    assert got.status_code == 200, got.text
    assert got.json()["managerUserId"] == "user-7"

    patched = await client.patch(
        url, json={"address": {"city": "Evanston"}, "managerUserId": None}, headers=admin
    )
    assert patched.status_code == 200, patched.text
    body = patched.json()
    assert body["address"] == address(city="Evanston")  # nested objects merge
    assert body.get("managerUserId") is None
    assert body["version"] == 2
    assert body["organizationId"] == org["id"]

    put = await client.put(
        url,
        json={"name": "North II", "code": "N2", "address": address(), "status": "INACTIVE"},
        headers=admin,
    )
    assert put.status_code == 200, put.text
    assert put.json()["code"] == "N2"
    assert put.json()["status"] == "INACTIVE"

    deleted = await client.delete(url, headers=admin)
    assert deleted.status_code == 204
    assert_problem(await client.get(url, headers=admin), 404)


async def test_organization_id_cannot_be_patched(
    client: httpx.AsyncClient, admin: Headers, org: dict[str, Any]
) -> None:
    other = await create_organization(client, admin)
    clinic = await create_clinic(client, admin, org["id"])
    response = await client.patch(
        f"{API}/clinics/{clinic['id']}", json={"organizationId": other["id"]}, headers=admin
    )
    assert_problem(response, 422)
    got = (await client.get(f"{API}/clinics/{clinic['id']}", headers=admin)).json()
    assert got["organizationId"] == org["id"]


async def test_lists_nested_and_flat(
    client: httpx.AsyncClient, admin: Headers, org: dict[str, Any]
) -> None:
    other = await create_organization(client, admin)
    mine = [await create_clinic(client, admin, org["id"], name) for name in ("beta", "Alpha")]
    theirs = await create_clinic(client, admin, other["id"], "Gamma")

    nested = await client.get(f"{API}/organizations/{org['id']}/clinics", headers=admin)
    assert nested.status_code == 200, nested.text
    assert [c["name"] for c in nested.json()["data"]] == ["Alpha", "beta"]

    flat = await client.get(f"{API}/clinics", headers=admin)
    assert [c["id"] for c in flat.json()["data"]] == [mine[1]["id"], mine[0]["id"], theirs["id"]]

    by_org = await client.get(
        f"{API}/clinics", params={"organizationId": other["id"]}, headers=admin
    )
    assert [c["id"] for c in by_org.json()["data"]] == [theirs["id"]]


async def test_post_on_flat_collection_is_405(client: httpx.AsyncClient, admin: Headers) -> None:
    response = await client.post(f"{API}/clinics", json={}, headers=admin)
    assert_problem(response, 405)


async def test_list_filters(client: httpx.AsyncClient, admin: Headers, org: dict[str, Any]) -> None:
    await create_clinic(client, admin, org["id"], "A", address=address(city="Austin", state="TX"))
    closed = await create_clinic(
        client, admin, org["id"], "B", status="CLOSED", address=address(city="Dallas", state="TX")
    )
    await create_clinic(client, admin, org["id"], "C", address=address(city="Denver", state="CO"))
    url = f"{API}/organizations/{org['id']}/clinics"

    async def names(**params: str) -> list[str]:
        response = await client.get(url, params=params, headers=admin)
        assert response.status_code == 200, response.text
        return [c["name"] for c in response.json()["data"]]

    assert await names(state="TX") == ["A", "B"]
    assert await names(city="Denver") == ["C"]
    assert await names(status="CLOSED") == [closed["name"]]
    assert await names(status="ACTIVE", state="TX") == ["A"]


# -- uniqueness ---------------------------------------------------------------------------


async def test_code_unique_per_organization(
    client: httpx.AsyncClient,
    admin: Headers,
    org: dict[str, Any],
    mongo: AsyncMongoClient[Any],
    database: str,
) -> None:
    await create_clinic(client, admin, org["id"], code="MAIN")
    before = await count_all(mongo, database)
    response = await client.post(
        f"{API}/organizations/{org['id']}/clinics",
        json={"name": "Another", "code": "MAIN", "address": address()},
        headers=admin,
    )
    body = assert_problem(response, 409)
    assert body["errors"][0]["field"] == "code"
    assert await count_all(mongo, database) == before


async def test_same_code_in_another_organization_is_fine(
    client: httpx.AsyncClient, admin: Headers, org: dict[str, Any]
) -> None:
    other = await create_organization(client, admin)
    await create_clinic(client, admin, org["id"], code="MAIN")
    clinic = await create_clinic(client, admin, other["id"], code="MAIN")
    assert clinic["code"] == "MAIN"


async def test_code_collision_on_patch_is_409(
    client: httpx.AsyncClient, admin: Headers, org: dict[str, Any]
) -> None:
    await create_clinic(client, admin, org["id"], code="ONE")
    second = await create_clinic(client, admin, org["id"], code="TWO")
    url = f"{API}/clinics/{second['id']}"
    body = assert_problem(await client.patch(url, json={"code": "ONE"}, headers=admin), 409)
    assert body["errors"][0]["field"] == "code"
    got = (await client.get(url, headers=admin)).json()
    assert (got["code"], got["version"]) == ("TWO", 1)


# -- bad input ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"name": "X", "code": "A1", "address": address(), "wifi": True}, "wifi"),
        ({"name": "X", "code": "has space", "address": address()}, "code"),
        ({"name": "X", "code": "A1", "address": {**address(), "zip": "1"}}, "zip"),
        ({"name": "X", "code": "A1", "address": address(city=7)}, "address.city"),
        ({"name": "X", "code": "A1"}, "address"),
    ],
)
async def test_invalid_body_is_422_and_writes_nothing(
    client: httpx.AsyncClient,
    admin: Headers,
    org: dict[str, Any],
    mongo: AsyncMongoClient[Any],
    database: str,
    payload: dict[str, Any],
    field: str,
) -> None:
    before = await count_all(mongo, database)
    response = await client.post(
        f"{API}/organizations/{org['id']}/clinics", json=payload, headers=admin
    )
    body = assert_problem(response, 422)
    assert field in body["detail"]
    assert await count_all(mongo, database) == before


async def test_create_under_bad_or_missing_organization(
    client: httpx.AsyncClient, admin: Headers, mongo: AsyncMongoClient[Any], database: str
) -> None:
    payload = {"name": "X", "code": "A1", "address": address()}
    before = await count_all(mongo, database)
    assert_problem(
        await client.post(f"{API}/organizations/xyz/clinics", json=payload, headers=admin), 400
    )
    missing = "0" * 24
    assert_problem(
        await client.post(f"{API}/organizations/{missing}/clinics", json=payload, headers=admin),
        404,
    )
    assert await count_all(mongo, database) == before


@pytest.mark.parametrize("method", ["GET", "PATCH", "PUT", "DELETE"])
async def test_bad_clinic_id_is_400(client: httpx.AsyncClient, admin: Headers, method: str) -> None:
    body = None if method in ("GET", "DELETE") else {"name": "X"}
    response = await client.request(method, f"{API}/clinics/1234", json=body, headers=admin)
    assert "clinic_id" in assert_problem(response, 400)["detail"]


async def test_oversized_and_malformed_bodies(
    client: httpx.AsyncClient,
    admin: Headers,
    org: dict[str, Any],
    mongo: AsyncMongoClient[Any],
    database: str,
) -> None:
    url = f"{API}/organizations/{org['id']}/clinics"
    before = await count_all(mongo, database)
    big = {"name": "X", "code": "A1", "address": address(line1="x" * 70_000)}
    assert_problem(await client.post(url, json=big, headers=admin), 413)
    assert_problem(
        await client.post(
            url, content=b"{'name': 1}", headers={**admin, "Content-Type": "application/json"}
        ),
        400,
    )
    assert_problem(
        await client.post(
            url, content=b"<clinic/>", headers={**admin, "Content-Type": "application/xml"}
        ),
        415,
    )
    assert await count_all(mongo, database) == before


# -- ?fields= ------------------------------------------------------------------------------


async def test_fields_projects_items_and_lists_at_the_server(
    monitored: tuple[httpx.AsyncClient, CommandRecorder, Any],
) -> None:
    http, recorder, app = monitored
    admin = await new_key(app)
    org = await create_organization(http, admin)
    clinic = await create_clinic(
        http, admin, org["id"], "Projected", address=address(city="Peoria"), managerUserId="m-1"
    )
    expected = {"id": clinic["id"], "name": "Projected", "address": {"city": "Peoria"}}

    recorder.clear()
    item = await http.get(
        f"{API}/clinics/{clinic['id']}", params={"fields": "name,address.city"}, headers=admin
    )
    assert item.status_code == 200, item.text
    assert item.json() == expected
    finds = [body for name, _, body in recorder.commands if name == "find"]
    assert set(finds[-1]["projection"]) == {"_id", "name", "address.city", "version"}

    for url in (f"{API}/clinics", f"{API}/organizations/{org['id']}/clinics"):
        recorder.clear()
        listed = await http.get(url, params={"fields": "name,address.city"}, headers=admin)
        assert listed.status_code == 200, listed.text
        assert listed.json()["data"] == [expected]
        finds = [body for name, _, body in recorder.commands if name == "find"]
        # Sort keys ride along for the cursor and are dropped before the response.
        assert set(finds[-1]["projection"]) == {"_id", "name", "address.city", "nameKey"}


async def test_fields_parent_path_wins(
    client: httpx.AsyncClient, admin: Headers, org: dict[str, Any]
) -> None:
    clinic = await create_clinic(client, admin, org["id"], address=address(city="Joliet"))
    response = await client.get(
        f"{API}/clinics/{clinic['id']}", params={"fields": "address,address.city"}, headers=admin
    )
    assert response.json() == {"id": clinic["id"], "address": address(city="Joliet")}


async def test_unknown_fields_entry_is_400(
    client: httpx.AsyncClient, admin: Headers, org: dict[str, Any]
) -> None:
    response = await client.get(
        f"{API}/organizations/{org['id']}/clinics",
        params={"fields": "name,address.planet"},
        headers=admin,
    )
    detail = assert_problem(response, 400)["detail"]
    assert "address.planet" in detail
    assert "address.city" in detail


# -- search -------------------------------------------------------------------------------


@pytest.fixture
async def searchable(client: httpx.AsyncClient, admin: Headers) -> dict[str, Any]:
    first = await create_organization(client, admin)
    second = await create_organization(client, admin)
    made = {}
    for org, name, city, state, status in [
        (first, "Smile Center", "Austin", "TX", "ACTIVE"),
        (first, "smiley kids", "Dallas", "TX", "ACTIVE"),
        (first, "SMILEs Closed", "Austin", "TX", "CLOSED"),
        (first, "Bright Teeth", "Austin", "TX", "ACTIVE"),
        (first, "a.b (test)", "Austin", "TX", "ACTIVE"),
        (first, "axb xtestx", "Austin", "TX", "ACTIVE"),
        (second, "Smile West", "Denver", "CO", "ACTIVE"),
    ]:
        made[name] = await create_clinic(
            client, admin, org["id"], name, status=status, address=address(city=city, state=state)
        )
    return {"first": first, "second": second, "clinics": made}


async def _search(client: httpx.AsyncClient, admin: Headers, **params: str) -> list[str]:
    response = await client.get(f"{API}/clinics/search", params=params, headers=admin)
    assert response.status_code == 200, response.text
    return [c["name"] for c in response.json()["data"]]


async def test_search_is_a_case_insensitive_prefix(
    client: httpx.AsyncClient, admin: Headers, searchable: dict[str, Any]
) -> None:
    assert await _search(client, admin, q="sMiLe") == [
        "Smile Center",
        "Smile West",
        "SMILEs Closed",
        "smiley kids",
    ]
    assert await _search(client, admin, q="  SMILE  c") == ["Smile Center"]  # normalised too
    assert await _search(client, admin, q="center") == []  # a prefix, not a substring


async def test_search_filters(
    client: httpx.AsyncClient, admin: Headers, searchable: dict[str, Any]
) -> None:
    first = searchable["first"]["id"]
    assert await _search(client, admin, q="smile", organizationId=first) == [
        "Smile Center",
        "SMILEs Closed",
        "smiley kids",
    ]
    assert await _search(client, admin, q="smile", organizationId=first, status="ACTIVE") == [
        "Smile Center",
        "smiley kids",
    ]
    assert await _search(client, admin, q="smile", state="TX", city="Austin") == [
        "Smile Center",
        "SMILEs Closed",
    ]
    assert await _search(client, admin, q="smile", state="CO") == ["Smile West"]


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        ("a.b", ["a.b (test)"]),  # '.' is not "any character" (would also match "axb")
        ("a.b (", ["a.b (test)"]),
        ("a.b (test)", ["a.b (test)"]),
        (".*", []),
        ("(", []),
        ("[a-z]", []),
        ("a|s", []),
        ("\\", []),
        ("^smile", []),
        ("smile$", []),
    ],
)
async def test_search_metacharacters_are_literal(
    client: httpx.AsyncClient,
    admin: Headers,
    searchable: dict[str, Any],
    q: str,
    expected: list[str],
) -> None:
    assert await _search(client, admin, q=q) == expected


async def test_search_rejects_unknown_parameters(client: httpx.AsyncClient, admin: Headers) -> None:
    response = await client.get(
        f"{API}/clinics/search", params={"q": "a", "near": "x"}, headers=admin
    )
    assert "near" in assert_problem(response, 400)["detail"]


async def test_path_organization_cannot_be_overridden_by_filter(
    client: httpx.AsyncClient, admin: Headers, org: dict[str, Any]
) -> None:
    other = await create_organization(client, admin)
    await create_clinic(client, admin, other["id"])
    response = await client.get(
        f"{API}/organizations/{org['id']}/clinics",
        params={"organizationId": other["id"]},
        headers=admin,
    )
    assert "organizationId" in assert_problem(response, 400)["detail"]
