"""organizations and organizations/{id}: CRUD, uniqueness, bad input writes nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from pymongo import AsyncMongoClient

from tests.integration.factories import (
    API,
    assert_problem,
    count_all,
    create_clinic,
    create_organization,
)

pytestmark = pytest.mark.integration
Headers = dict[str, str]


async def test_create_returns_201_location_and_etag(
    client: httpx.AsyncClient, admin: Headers
) -> None:
    response = await client.post(
        f"{API}/organizations",
        json={
            "name": "Bright Smiles",
            "subscriptionTier": "PRO",
            "subscriptionEndDate": "2027-01-31T00:00:00Z",
        },
        headers=admin,
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert response.headers["location"] == f"{API}/organizations/{body['id']}"
    assert response.headers["etag"] == f'"{body["id"]}-1"'
    assert body["name"] == "Bright Smiles"
    assert body["status"] == "ACTIVE"
    assert body["subscriptionTier"] == "PRO"
    assert body["subscriptionEndDate"].startswith("2027-01-31T00:00:00")
    assert body["version"] == 1
    assert "nameKey" not in body
    assert "_id" not in body


async def test_crud_round_trip(client: httpx.AsyncClient, admin: Headers) -> None:
    org = await create_organization(
        client, admin, "Round Trip", subscriptionEndDate="2027-01-31T00:00:00Z"
    )
    url = f"{API}/organizations/{org['id']}"

    got = await client.get(url, headers=admin)
    assert got.status_code == 200, got.text
    assert got.headers["etag"] == f'"{org["id"]}-1"'
    assert got.json()["name"] == "Round Trip"

    patched = await client.patch(
        url, json={"status": "SUSPENDED", "subscriptionEndDate": None}, headers=admin
    )
    assert patched.status_code == 200, patched.text
    body = patched.json()
    assert body["status"] == "SUSPENDED"
    assert body["name"] == "Round Trip"  # merge patch keeps what it does not name
    assert body.get("subscriptionEndDate") is None  # null removes the optional field
    assert body["version"] == 2
    assert patched.headers["etag"] == f'"{org["id"]}-2"'

    put = await client.put(
        url, json={"name": "Round Trip II", "subscriptionTier": "BASIC"}, headers=admin
    )
    assert put.status_code == 200, put.text
    replaced = put.json()
    assert replaced["name"] == "Round Trip II"
    assert replaced["subscriptionTier"] == "BASIC"
    assert replaced["status"] == "ACTIVE"  # PUT replaces: omitted fields take their defaults
    assert replaced["version"] == 3

    got = await client.get(url, headers=admin)
    assert got.json()["name"] == "Round Trip II"

    deleted = await client.delete(url, headers=admin)
    assert deleted.status_code == 204
    assert deleted.content == b""
    assert_problem(await client.get(url, headers=admin), 404)
    assert_problem(await client.delete(url, headers=admin), 404)


async def test_list_contains_created(client: httpx.AsyncClient, admin: Headers) -> None:
    names = ["Cedar Dental", "alpha dental", "Birch Dental"]
    for name in names:
        await create_organization(client, admin, name)
    response = await client.get(f"{API}/organizations", headers=admin)
    assert response.status_code == 200, response.text
    body = response.json()
    assert [o["name"] for o in body["data"]] == ["alpha dental", "Birch Dental", "Cedar Dental"]
    assert body["page"] == {"limit": 20, "next": None, "prev": None, "hasMore": False}
    assert "link" not in response.headers


async def test_if_match_stale_gives_412(client: httpx.AsyncClient, admin: Headers) -> None:
    org = await create_organization(client, admin)
    url = f"{API}/organizations/{org['id']}"
    ok = await client.patch(
        url, json={"status": "SUSPENDED"}, headers={**admin, "If-Match": f'"{org["id"]}-1"'}
    )
    assert ok.status_code == 200, ok.text
    stale = await client.patch(
        url, json={"status": "ACTIVE"}, headers={**admin, "If-Match": f'"{org["id"]}-1"'}
    )
    assert_problem(stale, 412)
    assert (await client.get(url, headers=admin)).json()["status"] == "SUSPENDED"


# -- uniqueness ---------------------------------------------------------------------------


async def test_name_is_unique_case_insensitively(
    client: httpx.AsyncClient, admin: Headers, mongo: AsyncMongoClient[Any], database: str
) -> None:
    await create_organization(client, admin, "Acme")
    before = await count_all(mongo, database)
    response = await client.post(f"{API}/organizations", json={"name": "  acme "}, headers=admin)
    body = assert_problem(response, 409)
    assert body["errors"] == [{"field": "name", "message": body["detail"]}]
    assert "name" in body["detail"]
    assert await count_all(mongo, database) == before


async def test_name_collapses_inner_whitespace(client: httpx.AsyncClient, admin: Headers) -> None:
    await create_organization(client, admin, "Acme Dental Group")
    response = await client.post(
        f"{API}/organizations", json={"name": "ACME   dental\tgroup"}, headers=admin
    )
    assert assert_problem(response, 409)["errors"][0]["field"] == "name"


async def test_rename_onto_existing_name_is_409(client: httpx.AsyncClient, admin: Headers) -> None:
    await create_organization(client, admin, "Acme")
    other = await create_organization(client, admin, "Zenith")
    url = f"{API}/organizations/{other['id']}"
    response = await client.patch(url, json={"name": "ACME"}, headers=admin)
    body = assert_problem(response, 409)
    assert body["errors"][0]["field"] == "name"
    got = (await client.get(url, headers=admin)).json()
    assert got["name"] == "Zenith"
    assert got["version"] == 1


async def test_rename_to_own_name_in_other_case_is_fine(
    client: httpx.AsyncClient, admin: Headers
) -> None:
    org = await create_organization(client, admin, "Acme")
    response = await client.patch(
        f"{API}/organizations/{org['id']}", json={"name": "ACME"}, headers=admin
    )
    assert response.status_code == 200, response.text
    assert response.json()["name"] == "ACME"


# -- bad input: 4xx problem+json and nothing written --------------------------------------


BAD_POSTS: list[tuple[str, dict[str, Any], int]] = [
    ("unknown field", {"json": {"name": "X", "colour": "red"}}, 422),
    ("wrong type", {"json": {"name": 42}}, 422),
    ("bad enum", {"json": {"name": "X", "status": "GONE"}}, 422),
    ("blank name", {"json": {"name": "   "}}, 422),
    ("naive datetime", {"json": {"name": "X", "subscriptionEndDate": "2027-01-31T00:00:00"}}, 422),
    ("not an object", {"json": ["name", "X"]}, 422),
    (
        "malformed JSON",
        {"content": b'{"name": "X"', "headers": {"Content-Type": "application/json"}},
        400,
    ),
    ("empty body", {"content": b"", "headers": {"Content-Type": "application/json"}}, 400),
    ("wrong content type", {"content": b"name=X", "headers": {"Content-Type": "text/plain"}}, 415),
    ("form encoded", {"data": {"name": "X"}}, 415),
    ("oversized", {"json": {"name": "X", "pad": "x" * (64 * 1024)}}, 413),
]


@pytest.mark.parametrize(
    ("case", "request_kwargs", "status"), BAD_POSTS, ids=[c[0] for c in BAD_POSTS]
)
async def test_bad_create_writes_nothing(
    client: httpx.AsyncClient,
    admin: Headers,
    mongo: AsyncMongoClient[Any],
    database: str,
    case: str,
    request_kwargs: dict[str, Any],
    status: int,
) -> None:
    kwargs = dict(request_kwargs)
    headers = {**admin, **kwargs.pop("headers", {})}
    before = await count_all(mongo, database)
    response = await client.post(f"{API}/organizations", headers=headers, **kwargs)
    assert_problem(response, status)
    assert await count_all(mongo, database) == before


async def test_oversized_chunked_body_is_413(
    client: httpx.AsyncClient, admin: Headers, mongo: AsyncMongoClient[Any], database: str
) -> None:
    """No Content-Length to trust: the reader stops at the limit."""

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"name": "X", "pad": "'
        for _ in range(80):
            yield b"x" * 1024
        yield b'"}'

    before = await count_all(mongo, database)
    response = await client.post(
        f"{API}/organizations",
        content=chunks(),
        headers={**admin, "Content-Type": "application/json"},
    )
    assert_problem(response, 413)
    assert await count_all(mongo, database) == before


async def test_validation_problem_names_the_field(
    client: httpx.AsyncClient, admin: Headers
) -> None:
    response = await client.post(f"{API}/organizations", json={"name": 42}, headers=admin)
    body = assert_problem(response, 422)
    assert body["errors"][0]["field"] == "name"


async def test_unknown_query_parameter_on_create_writes_nothing(
    client: httpx.AsyncClient, admin: Headers, mongo: AsyncMongoClient[Any], database: str
) -> None:
    before = await count_all(mongo, database)
    response = await client.post(
        f"{API}/organizations", params={"dryRun": "1"}, json={"name": "X"}, headers=admin
    )
    assert "dryRun" in assert_problem(response, 400)["detail"]
    assert await count_all(mongo, database) == before


BAD_PATCHES: list[tuple[str, dict[str, Any], int]] = [
    ("unknown field", {"json": {"colour": "red"}}, 422),
    ("wrong type", {"json": {"status": 3}}, 422),
    ("null required field", {"json": {"name": None}}, 422),
    ("malformed JSON", {"content": b"{", "headers": {"Content-Type": "application/json"}}, 400),
    ("wrong content type", {"content": b"{}", "headers": {"Content-Type": "text/plain"}}, 415),
    ("oversized", {"json": {"name": "x" * (70 * 1024)}}, 413),
]


@pytest.mark.parametrize(
    ("case", "request_kwargs", "status"), BAD_PATCHES, ids=[c[0] for c in BAD_PATCHES]
)
async def test_bad_patch_changes_nothing(
    client: httpx.AsyncClient,
    admin: Headers,
    case: str,
    request_kwargs: dict[str, Any],
    status: int,
) -> None:
    org = await create_organization(client, admin, "Unchanged")
    url = f"{API}/organizations/{org['id']}"
    kwargs = dict(request_kwargs)
    headers = {**admin, **kwargs.pop("headers", {})}
    assert_problem(await client.patch(url, headers=headers, **kwargs), status)
    after = (await client.get(url, headers=admin)).json()
    assert after["name"] == "Unchanged"
    assert after["version"] == 1


@pytest.mark.parametrize("method", ["GET", "PATCH", "PUT", "DELETE"])
async def test_bad_object_id_in_path_is_400(
    client: httpx.AsyncClient,
    admin: Headers,
    mongo: AsyncMongoClient[Any],
    database: str,
    method: str,
) -> None:
    await create_organization(client, admin)
    before = await count_all(mongo, database)
    body = None if method in ("GET", "DELETE") else {"name": "X"}
    response = await client.request(
        method, f"{API}/organizations/not-an-id", json=body, headers=admin
    )
    assert "organization_id" in assert_problem(response, 400)["detail"]
    assert await count_all(mongo, database) == before


async def test_unknown_fields_entry_is_400_naming_allowed(
    client: httpx.AsyncClient, admin: Headers
) -> None:
    org = await create_organization(client, admin)
    for url in (f"{API}/organizations", f"{API}/organizations/{org['id']}"):
        response = await client.get(url, params={"fields": "name,secret"}, headers=admin)
        detail = assert_problem(response, 400)["detail"]
        assert "secret" in detail
        assert "allowed: " in detail
        assert "subscriptionTier" in detail


@pytest.mark.parametrize(
    ("params", "needle"),
    [
        ({"colour": "red"}, "colour"),
        ({"limit": "101"}, "limit"),
        ({"limit": "0"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"sort": "secret"}, "sort"),
        ({"count": "all"}, "count"),
        ({"status": "GONE"}, "status"),
    ],
)
async def test_bad_list_parameters_are_400(
    client: httpx.AsyncClient, admin: Headers, params: dict[str, str], needle: str
) -> None:
    response = await client.get(f"{API}/organizations", params=params, headers=admin)
    assert needle in assert_problem(response, 400)["detail"]


async def test_unknown_query_parameter_on_item_is_400(
    client: httpx.AsyncClient, admin: Headers
) -> None:
    org = await create_organization(client, admin)
    response = await client.get(
        f"{API}/organizations/{org['id']}", params={"expand": "all"}, headers=admin
    )
    assert "expand" in assert_problem(response, 400)["detail"]


# -- projection ---------------------------------------------------------------------------


async def test_fields_selects_item_and_list_fields(
    client: httpx.AsyncClient, admin: Headers
) -> None:
    org = await create_organization(client, admin, "Projected", subscriptionTier="PRO")
    item = await client.get(
        f"{API}/organizations/{org['id']}", params={"fields": "name,status"}, headers=admin
    )
    assert item.status_code == 200, item.text
    assert item.json() == {"id": org["id"], "name": "Projected", "status": "ACTIVE"}
    listed = await client.get(
        f"{API}/organizations", params={"fields": "subscriptionTier"}, headers=admin
    )
    assert listed.json()["data"] == [{"id": org["id"], "subscriptionTier": "PRO"}]


@pytest.mark.parametrize("sort", ["name", "-createdAt"])
async def test_list_filters_by_status_and_tier(
    client: httpx.AsyncClient, admin: Headers, sort: str
) -> None:
    pro = await create_organization(client, admin, "Tier Pro A", subscriptionTier="PRO")
    suspended = await create_organization(
        client, admin, "Tier Pro B", subscriptionTier="PRO", status="SUSPENDED"
    )
    await create_organization(client, admin, "Tier Free", subscriptionTier="FREE")

    async def names(**params: str) -> list[str]:
        query = {"sort": sort, "count": "estimated", "fields": "name", **params}
        response = await client.get(f"{API}/organizations", params=query, headers=admin)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["count"]["value"] == len(body["data"])
        return sorted(item["name"] for item in body["data"])

    assert await names(subscriptionTier="PRO") == [pro["name"], suspended["name"]]
    assert await names(status="SUSPENDED") == [suspended["name"]]
    assert await names(status="ACTIVE", subscriptionTier="PRO") == [pro["name"]]


# -- deleting with dependants -------------------------------------------------------------


async def test_delete_with_clinics_is_409(
    client: httpx.AsyncClient, admin: Headers, mongo: AsyncMongoClient[Any], database: str
) -> None:
    org = await create_organization(client, admin)
    await create_clinic(client, admin, org["id"])
    before = await count_all(mongo, database)
    response = await client.delete(f"{API}/organizations/{org['id']}", headers=admin)
    body = assert_problem(response, 409)
    assert "clinics" in body["detail"]
    assert await count_all(mongo, database) == before
    assert (await client.get(f"{API}/organizations/{org['id']}", headers=admin)).status_code == 200
