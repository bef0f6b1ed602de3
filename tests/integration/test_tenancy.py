"""Role x endpoint matrix: who may read and write what, and no tenant ever sees another.

Org-scoped keys belong to organization A. Every test gets its own A, B and E (an empty
organization B-side) inserted straight into MongoDB, so one app and database serve the module.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from bson import ObjectId
from pymongo import AsyncMongoClient

from tests.conftest import isolated_app, new_key
from tests.integration.factories import (
    API,
    PROBLEM,
    CommandRecorder,
    address,
    assignment_document,
    clinic_document,
    organization_document,
    unique,
)

pytestmark = pytest.mark.integration

ROLES = ("platform_admin", "org_admin", "org_reader", "sre")


@dataclass
class Env:
    app: Any
    client: httpx.AsyncClient
    mongo: AsyncMongoClient[Any]
    database: str


@pytest.fixture(scope="module")
async def env(mongo: AsyncMongoClient[Any]) -> AsyncIterator[Env]:
    async with isolated_app(mongo) as (app, http, database):
        yield Env(app, http, mongo, database)


@dataclass
class World:
    """Ids (as strings) of one test's data: tenant A (the key's), tenant B, empty org E."""

    org_a: str
    org_b: str
    org_e: str
    clinic_a: str
    clinic_b: str
    assignment_a: str
    assignment_b: str
    provider_a: str
    provider_b: str

    def b_ids(self) -> list[str]:
        return [self.org_b, self.org_e, self.clinic_b, self.assignment_b, self.provider_b]


@pytest.fixture
async def world(env: Env) -> World:
    db = env.mongo[env.database]
    org_a, org_b, org_e = (organization_document(unique(f"Tenant {t}")) for t in "ABE")
    await db.organizations.insert_many([org_a, org_b, org_e])
    clinic_a = clinic_document(org_a["_id"], unique("Alpha clinic"), "CA")
    clinic_b = clinic_document(org_b["_id"], unique("Beta clinic"), "CB")
    await db.clinics.insert_many([clinic_a, clinic_b])
    provider_a, provider_b = f"prov-a-{uuid.uuid4().hex[:8]}", f"prov-b-{uuid.uuid4().hex[:8]}"
    assignment_a = assignment_document(provider_a, clinic_a["_id"], org_a["_id"])
    assignment_b = assignment_document(provider_b, clinic_b["_id"], org_b["_id"])
    await db.assignments.insert_many([assignment_a, assignment_b])
    return World(
        *(
            str(d["_id"])
            for d in (org_a, org_b, org_e, clinic_a, clinic_b, assignment_a, assignment_b)
        ),
        provider_a,
        provider_b,
    )


async def headers_for(env: Env, role: str | None, world: World) -> dict[str, str]:
    if role is None:
        return {}
    organization = world.org_a if role in ("org_admin", "org_reader") else None
    return await new_key(env.app, role, organization)


async def snapshot_b(env: Env, world: World) -> list[Any]:
    """Everything tenant B (and E) owns, as stored."""
    db = env.mongo[env.database]
    ids = [ObjectId(world.org_b), ObjectId(world.org_e)]
    found = [
        await db.organizations.find({"_id": {"$in": ids}}).to_list(None),
        await db.clinics.find({"organizationId": {"$in": ids}}).to_list(None),
        await db.assignments.find({"organizationId": {"$in": ids}}).to_list(None),
    ]
    return [sorted(documents, key=lambda d: d["_id"]) for documents in found]


# -- the matrix ---------------------------------------------------------------------------

Build = Callable[[World], tuple[str, str, dict[str, Any] | None]]


@dataclass(frozen=True)
class Case:
    name: str
    build: Build
    expect: tuple[int, int, int, int]  # platform_admin, org_admin (A), org_reader (A), sre


def _clinic_body() -> dict[str, Any]:
    return {"name": unique("New clinic"), "code": uuid.uuid4().hex[:8], "address": address()}


CASES = [
    # Tenant A's own data.
    Case("list organizations", lambda w: ("GET", "/organizations", None), (200, 200, 200, 403)),
    Case(
        "get own organization",
        lambda w: ("GET", f"/organizations/{w.org_a}", None),
        (200, 200, 200, 403),
    ),
    Case(
        "create organization",
        lambda w: ("POST", "/organizations", {"name": unique("Brand new")}),
        (201, 403, 403, 403),
    ),
    Case(
        "patch own organization",
        lambda w: ("PATCH", f"/organizations/{w.org_a}", {"subscriptionTier": "PRO"}),
        (200, 200, 403, 403),
    ),
    Case(
        "delete own organization (has clinics)",
        lambda w: ("DELETE", f"/organizations/{w.org_a}", None),
        (409, 403, 403, 403),
    ),
    Case(
        "list own clinics",
        lambda w: ("GET", f"/organizations/{w.org_a}/clinics", None),
        (200, 200, 200, 403),
    ),
    Case("list all clinics", lambda w: ("GET", "/clinics", None), (200, 200, 200, 403)),
    Case("get own clinic", lambda w: ("GET", f"/clinics/{w.clinic_a}", None), (200, 200, 200, 403)),
    Case(
        "create own clinic",
        lambda w: ("POST", f"/organizations/{w.org_a}/clinics", _clinic_body()),
        (201, 201, 403, 403),
    ),
    Case(
        "patch own clinic",
        lambda w: ("PATCH", f"/clinics/{w.clinic_a}", {"status": "CLOSED"}),
        (200, 200, 403, 403),
    ),
    Case(
        "delete own clinic",
        lambda w: ("DELETE", f"/clinics/{w.clinic_a}", None),
        (204, 204, 403, 403),
    ),
    Case("list assignments", lambda w: ("GET", "/assignments", None), (200, 200, 200, 403)),
    Case(
        "get own assignment",
        lambda w: ("GET", f"/assignments/{w.assignment_a}", None),
        (200, 200, 200, 403),
    ),
    Case(
        "create own assignment",
        lambda w: ("POST", "/assignments", {"providerId": "prov-new", "clinicId": w.clinic_a}),
        (201, 201, 403, 403),
    ),
    Case(
        "patch own assignment",
        lambda w: ("PATCH", f"/assignments/{w.assignment_a}", {"roles": ["dentist"]}),
        (200, 200, 403, 403),
    ),
    Case(
        "delete own assignment",
        lambda w: ("DELETE", f"/assignments/{w.assignment_a}", None),
        (204, 204, 403, 403),
    ),
    Case("search", lambda w: ("GET", "/clinics/search?q=a", None), (200, 200, 200, 403)),
    Case(
        "own report",
        lambda w: ("GET", f"/reports/organizations/{w.org_a}/summary", None),
        (200, 200, 200, 403),
    ),
    Case(
        "own provider's clinics",
        lambda w: ("GET", f"/providers/{w.provider_a}/clinics?expand=clinic", None),
        (200, 200, 200, 403),
    ),
    Case(
        "own clinic's providers",
        lambda w: ("GET", f"/clinics/{w.clinic_a}/providers", None),
        (200, 200, 200, 403),
    ),
    # Tenant B's data, by id, by filter and by nesting.
    Case(
        "get other organization",
        lambda w: ("GET", f"/organizations/{w.org_b}", None),
        (200, 404, 404, 403),
    ),
    Case(
        "patch other organization",
        lambda w: ("PATCH", f"/organizations/{w.org_b}", {"status": "SUSPENDED"}),
        (200, 404, 403, 403),
    ),
    Case(
        "put other organization",
        lambda w: ("PUT", f"/organizations/{w.org_b}", {"name": unique("Taken over")}),
        (200, 404, 403, 403),
    ),
    Case(
        "delete other organization (empty)",
        lambda w: ("DELETE", f"/organizations/{w.org_e}", None),
        (204, 404, 403, 403),
    ),
    Case(
        "list other organization's clinics",
        lambda w: ("GET", f"/organizations/{w.org_b}/clinics", None),
        (200, 404, 404, 403),
    ),
    Case(
        "list clinics filtered to other organization",
        lambda w: ("GET", f"/clinics?organizationId={w.org_b}", None),
        (200, 404, 404, 403),
    ),
    Case(
        "get other clinic", lambda w: ("GET", f"/clinics/{w.clinic_b}", None), (200, 404, 404, 403)
    ),
    Case(
        "create clinic in other organization",
        lambda w: ("POST", f"/organizations/{w.org_b}/clinics", _clinic_body()),
        (201, 404, 403, 403),
    ),
    Case(
        "patch other clinic",
        lambda w: ("PATCH", f"/clinics/{w.clinic_b}", {"status": "CLOSED"}),
        (200, 404, 403, 403),
    ),
    Case(
        "delete other clinic",
        lambda w: ("DELETE", f"/clinics/{w.clinic_b}", None),
        (204, 404, 403, 403),
    ),
    Case(
        "list assignments filtered to other organization",
        lambda w: ("GET", f"/assignments?organizationId={w.org_b}", None),
        (200, 404, 404, 403),
    ),
    Case(
        "list assignments filtered to other clinic",
        lambda w: ("GET", f"/assignments?clinicId={w.clinic_b}", None),
        (200, 200, 200, 403),
    ),
    Case(
        "get other assignment",
        lambda w: ("GET", f"/assignments/{w.assignment_b}", None),
        (200, 404, 404, 403),
    ),
    Case(
        "create assignment at other clinic",
        lambda w: ("POST", "/assignments", {"providerId": "prov-new", "clinicId": w.clinic_b}),
        (201, 422, 403, 403),
    ),
    Case(
        "patch other assignment",
        lambda w: ("PATCH", f"/assignments/{w.assignment_b}", {"isActive": False}),
        (200, 404, 403, 403),
    ),
    Case(
        "delete other assignment",
        lambda w: ("DELETE", f"/assignments/{w.assignment_b}", None),
        (204, 404, 403, 403),
    ),
    Case(
        "search filtered to other organization",
        lambda w: ("GET", f"/clinics/search?q=beta&organizationId={w.org_b}", None),
        (200, 404, 404, 403),
    ),
    Case(
        "other report",
        lambda w: ("GET", f"/reports/organizations/{w.org_b}/summary", None),
        (200, 404, 404, 403),
    ),
    Case(
        "other provider's clinics",
        lambda w: ("GET", f"/providers/{w.provider_b}/clinics?expand=clinic", None),
        (200, 200, 200, 403),
    ),
    Case(
        "other clinic's providers",
        lambda w: ("GET", f"/clinics/{w.clinic_b}/providers", None),
        (200, 404, 404, 403),
    ),
    # The audit trail: admins only, an org admin's of its organization (B's records, written
    # by the platform admin's rows above, never show: the leak check below).
    Case("audit trail", lambda w: ("GET", "/audit-events", None), (200, 200, 403, 403)),
    Case(
        "other organization's audit trail",
        lambda w: ("GET", f"/audit-events?id={w.org_b}", None),
        (200, 200, 403, 403),
    ),
]

MATRIX = [
    pytest.param(case, role, expected, id=f"{role}-{case.name}")
    for case in CASES
    for role, expected in zip(ROLES, case.expect, strict=True)
]


@pytest.mark.parametrize(("case", "role", "expected"), MATRIX)
async def test_matrix(env: Env, world: World, case: Case, role: str, expected: int) -> None:
    headers = await headers_for(env, role, world)
    method, path, body = case.build(world)
    before = None if role == "platform_admin" else await snapshot_b(env, world)
    response = await env.client.request(method, f"{API}{path}", json=body, headers=headers)
    assert response.status_code == expected, response.text
    if expected >= 400:
        assert response.headers["content-type"].startswith(PROBLEM)
    if before is None:
        return
    # Nothing of tenant B is ever shown to, or changed by, an org-scoped or SRE key.
    assert await snapshot_b(env, world) == before
    if response.status_code < 300:
        leaked = [i for i in world.b_ids() if i in response.text]
        assert leaked == [], f"tenant B's ids in the response: {leaked}"


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
async def test_no_key_is_401(env: Env, world: World, case: Case) -> None:
    method, path, body = case.build(world)
    before = await snapshot_b(env, world)
    response = await env.client.request(method, f"{API}{path}", json=body)
    assert response.status_code == 401, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert await snapshot_b(env, world) == before


@pytest.mark.parametrize(
    "authorization", ["Bearer ent_not-a-real-key", "Basic dXNlcjpwYXNz", "Bearer ", "ent_x"]
)
async def test_bad_key_is_401(env: Env, world: World, authorization: str) -> None:
    response = await env.client.get(
        f"{API}/organizations/{world.org_a}", headers={"Authorization": authorization}
    )
    assert response.status_code == 401, response.text


@pytest.mark.parametrize("path", ["/health/live", "/health/ready"])
async def test_health_needs_no_key(env: Env, path: str) -> None:
    response = await env.client.get(path)
    assert response.status_code == 200, response.text
    assert response.json()["status"] in ("ok", "degraded")


@pytest.mark.parametrize(
    ("role", "details"),
    [(None, False), ("org_reader", False), ("org_admin", False), ("sre", True),
     ("platform_admin", True)],
)  # fmt: skip
async def test_readiness_details_only_for_sre_and_platform_admins(
    env: Env, world: World, role: str | None, details: bool
) -> None:
    response = await env.client.get("/health/ready", headers=await headers_for(env, role, world))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] in ("ok", "degraded")
    if details:
        assert {"checks", "server", "writeGuard", "cache", "rateLimits"} <= set(body)
        assert body["server"]["version"]
    else:
        assert set(body) == {"status"}


async def test_readiness_with_a_bad_key_is_401(env: Env) -> None:
    response = await env.client.get(
        "/health/ready", headers={"Authorization": "Bearer ent_not-a-real-key"}
    )
    assert response.status_code == 401


@pytest.mark.parametrize("role", ["org_admin", "org_reader"])
async def test_lists_show_only_the_tenant(env: Env, world: World, role: str) -> None:
    headers = await headers_for(env, role, world)
    expected = {
        "/organizations": [world.org_a],
        "/clinics": [world.clinic_a],
        f"/organizations/{world.org_a}/clinics": [world.clinic_a],
        "/clinics/search?q=": [world.clinic_a],
        "/assignments": [world.assignment_a],
        f"/providers/{world.provider_b}/clinics": [],
        f"/clinics/{world.clinic_a}/providers": [world.assignment_a],
    }
    for path, ids in expected.items():
        response = await env.client.get(f"{API}{path}", params={"count": "exact"}, headers=headers)
        assert response.status_code == 200, (path, response.text)
        assert [item["id"] for item in response.json()["data"]] == ids, path
        assert response.json()["count"]["value"] == len(ids), path


async def test_admin_sees_both_tenants(env: Env, world: World) -> None:
    headers = await headers_for(env, "platform_admin", world)
    response = await env.client.get(
        f"{API}/clinics", params={"organizationId": world.org_b}, headers=headers
    )
    assert [c["id"] for c in response.json()["data"]] == [world.clinic_b]
    report = await env.client.get(
        f"{API}/reports/organizations/{world.org_b}/summary", headers=headers
    )
    assert report.json()["clinics"]["total"] == 1


async def test_cached_list_is_not_shared_across_tenants(env: Env, world: World) -> None:
    """Same URL, different tenants: the response cache must not hand one's page to the other."""
    reader_a = await headers_for(env, "org_reader", world)
    reader_b = await new_key(env.app, "org_reader", world.org_b)
    for _ in range(2):  # the second round is served from the cache
        a = await env.client.get(f"{API}/clinics", headers=reader_a)
        b = await env.client.get(f"{API}/clinics", headers=reader_b)
        assert [c["id"] for c in a.json()["data"]] == [world.clinic_a]
        assert [c["id"] for c in b.json()["data"]] == [world.clinic_b]


async def test_a_cold_key_is_looked_up_once_however_many_requests_carry_it(
    monitored: tuple[httpx.AsyncClient, CommandRecorder, Any],
) -> None:
    http, recorder, app = monitored
    key = await new_key(app)
    recorder.clear()
    answers = await asyncio.gather(
        *(http.get("/api/v1/organizations", headers=key) for _ in range(20))
    )
    assert [a.status_code for a in answers] == [200] * 20
    assert [c for c in recorder.names() if c[1] == "api_keys"] == [("find", "api_keys")]
