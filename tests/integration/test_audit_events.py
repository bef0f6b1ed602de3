"""The audit trail: one record per acknowledged write, read by admins of the right tenant."""

from __future__ import annotations

import asyncio
import os
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import msgspec
import pytest
from bson import ObjectId
from pymongo import AsyncMongoClient

from enterprise.schemas import AuditEventPage
from enterprise.settings import Settings
from tests.conftest import ROOT, Server, new_key, server_env
from tests.integration.factories import (
    API,
    address,
    assert_problem,
    create_clinic,
    create_organization,
    unique,
)

pytestmark = pytest.mark.integration
EVENTS = f"{API}/audit-events"


async def records(mongo: AsyncMongoClient[Any], settings: Settings, **query: Any) -> list[Any]:
    db = mongo[settings.mongodb_database]
    return await db.audit_events.find(query, sort=[("at", 1), ("_id", 1)]).to_list(None)


async def test_each_write_has_one_committed_record_with_actor_and_changes(
    client: httpx.AsyncClient,
    admin: dict[str, str],
    mongo: AsyncMongoClient[Any],
    settings: Settings,
) -> None:
    created = await client.post(
        f"{API}/organizations", json={"name": "Audit Dental"}, headers=admin
    )
    org = created.json()
    url = f"{API}/organizations/{org['id']}"
    patched = await client.patch(url, json={"subscriptionTier": "PRO"}, headers=admin)
    deleted = await client.delete(url, headers=admin)
    assert (created.status_code, patched.status_code, deleted.status_code) == (201, 200, 204)

    found = await records(mongo, settings, documentId=ObjectId(org["id"]))

    assert [(r["action"], r["version"], r["state"]) for r in found] == [
        ("create", 1, "committed"),
        ("update", 2, "committed"),
        ("delete", 2, "committed"),
    ]
    requests = [r.headers["x-request-id"] for r in (created, patched, deleted)]
    assert [r["requestId"] for r in found] == requests
    key = found[0]["actor"]
    assert key["role"] == "platform_admin"
    assert key["organizationId"] is None
    assert {r["actor"]["keyId"] for r in found} == {key["keyId"]}
    assert found[0]["before"] is None
    assert found[0]["after"]["name"] == "Audit Dental"
    assert (found[1]["before"], found[1]["after"]) == (
        {"subscriptionTier": "FREE"},
        {"subscriptionTier": "PRO"},
    )
    assert found[2]["before"]["subscriptionTier"] == "PRO"
    assert found[2]["after"] is None
    assert all(r["organizationId"] == ObjectId(org["id"]) for r in found)


async def test_refused_writes_leave_no_record(
    client: httpx.AsyncClient,
    admin: dict[str, str],
    mongo: AsyncMongoClient[Any],
    settings: Settings,
) -> None:
    org = await create_organization(client, admin, "Refusal Dental")
    url = f"{API}/organizations/{org['id']}"
    answers = [
        await client.post(f"{API}/organizations", json={"name": "refusal  dental"}, headers=admin),
        await client.patch(url, json={"status": "GONE"}, headers=admin),
        await client.patch(url, json={"name": "x"}, headers={**admin, "If-Match": '"stale"'}),
        await client.delete(url, headers={**admin, "If-Match": '"stale"'}),
    ]

    assert [a.status_code for a in answers] == [409, 422, 412, 412]
    found = await records(mongo, settings)
    assert [(r["action"], r["documentId"]) for r in found] == [("create", ObjectId(org["id"]))]


async def test_clinic_and_assignment_writes_are_recorded_in_their_organization(
    client: httpx.AsyncClient,
    admin: dict[str, str],
    mongo: AsyncMongoClient[Any],
    settings: Settings,
) -> None:
    org = await create_organization(client, admin)
    clinic = await create_clinic(client, admin, org["id"])
    assignment = await client.post(
        f"{API}/assignments",
        json={"providerId": "prov-audit", "clinicId": clinic["id"], "roles": ["dentist"]},
        headers=admin,
    )
    moved = await client.put(
        f"{API}/clinics/{clinic['id']}",
        json={"name": "Renamed", "code": clinic["code"], "address": address(city="Peoria")},
        headers=admin,
    )
    assert (assignment.status_code, moved.status_code) == (201, 200)

    found = await records(mongo, settings, organizationId=ObjectId(org["id"]))

    assert [(r["collection"], r["action"]) for r in found] == [
        ("organizations", "create"),
        ("clinics", "create"),
        ("assignments", "create"),
        ("clinics", "update"),
    ]
    update = found[-1]
    assert update["before"]["name"] == clinic["name"]
    assert update["after"]["name"] == "Renamed"
    assert update["before"]["address"]["city"] == "Springfield"
    assert update["after"]["address"]["city"] == "Peoria"
    assert "nameKey" not in update["after"]
    assert "version" not in update["after"]


async def test_key_writes_from_the_command_line_are_recorded_without_the_hash(
    settings: Settings, mongo: AsyncMongoClient[Any]
) -> None:
    env = {**os.environ, **server_env(settings), "ENTERPRISE_DEV": "1"}
    created = await _cli(env, "keys", "create", "--name", "ops", "--role", "sre")
    key_id = created.stderr.split()[2]
    await _cli(env, "keys", "revoke", key_id)

    found = await records(mongo, settings, documentId=ObjectId(key_id))

    assert [(r["collection"], r["action"], r["version"]) for r in found] == [
        ("api_keys", "create", 1),
        ("api_keys", "update", 2),
    ]
    assert {r["actor"]["keyId"] for r in found} == {"cli"}
    assert all(r["state"] == "committed" for r in found)
    assert found[1]["before"] == {"revokedAt": None}
    assert found[1]["after"]["revokedAt"]
    assert created.stdout.strip() not in str(found)
    assert all("keyHash" not in (r["after"] or {}) for r in found)
    stored = await mongo[settings.mongodb_database].api_keys.find_one({"_id": ObjectId(key_id)})
    assert stored is not None
    assert stored["keyHash"] not in str(found)


class _Run:
    def __init__(self, stdout: str, stderr: str) -> None:
        self.stdout, self.stderr = stdout, stderr


async def _cli(env: dict[str, str], *args: str) -> _Run:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "enterprise", *args,
        env=env, cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    return _Run(out.decode(), err.decode())


# -- reading the trail -------------------------------------------------------------------------


async def test_org_admins_see_their_organization_and_others_are_refused(
    app: Any, client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    mine = await create_organization(client, admin)
    theirs = await create_organization(client, admin)
    await create_clinic(client, admin, mine["id"])
    await create_clinic(client, admin, theirs["id"])
    org_admin = await new_key(app, "org_admin", mine["id"])

    seen = (await client.get(EVENTS, headers=org_admin)).json()["data"]
    everything = (await client.get(EVENTS, headers=admin)).json()["data"]
    other = await client.get(EVENTS, params={"id": theirs["id"]}, headers=org_admin)

    assert {e["organizationId"] for e in seen} == {mine["id"]}
    assert len(seen) == 2
    assert {e["organizationId"] for e in everything} == {mine["id"], theirs["id"]}
    assert other.status_code == 200
    assert other.json()["data"] == []
    for role in ("org_reader", "sre", "metrics_scraper"):
        organization = mine["id"] if role == "org_reader" else None
        refused = await client.get(EVENTS, headers=await new_key(app, role, organization))
        assert_problem(refused, 403)


async def test_filters_and_keyset_pages(client: httpx.AsyncClient, admin: dict[str, str]) -> None:
    org = await create_organization(client, admin)
    clinics = [await create_clinic(client, admin, org["id"]) for _ in range(3)]
    for clinic in clinics:
        await client.patch(
            f"{API}/clinics/{clinic['id']}", json={"name": unique("C")}, headers=admin
        )
    since = datetime.now(UTC).isoformat()
    await client.patch(
        f"{API}/clinics/{clinics[0]['id']}", json={"status": "CLOSED"}, headers=admin
    )

    by_resource = (await client.get(EVENTS, params={"resource": "clinics"}, headers=admin)).json()
    by_id = (await client.get(EVENTS, params={"id": clinics[0]["id"]}, headers=admin)).json()
    recent = (await client.get(EVENTS, params={"since": since}, headers=admin)).json()
    actor = by_id["data"][0]["actor"]["keyId"]
    by_actor = (await client.get(EVENTS, params={"actor": actor}, headers=admin)).json()
    nobody = (await client.get(EVENTS, params={"actor": "no-such-key"}, headers=admin)).json()

    assert len(by_resource["data"]) == 7
    assert {e["collection"] for e in by_resource["data"]} == {"clinics"}
    assert [(e["action"], e["version"]) for e in by_id["data"]] == [
        ("update", 3),
        ("update", 2),
        ("create", 1),
    ]
    assert [e["after"] for e in recent["data"]] == [{"status": "CLOSED"}]
    assert len(by_actor["data"]) == 8
    assert nobody["data"] == []
    msgspec.convert(by_id, AuditEventPage, strict=False)

    pages: list[dict[str, Any]] = []
    params: dict[str, Any] = {"limit": 3}
    while True:
        answer = await client.get(EVENTS, params=params, headers=admin)
        assert answer.headers["cache-control"] == "no-store"
        body = answer.json()
        pages.extend(body["data"])
        if not body["page"]["next"]:
            break
        params = {"limit": 3, "cursor": body["page"]["next"]}
    assert len(pages) == 8
    assert len({e["id"] for e in pages}) == 8
    # Newest first, compared as instants: RFC 3339 text leaves out a zero fraction
    # ("…:04Z" is after "…:03.961Z" but sorts before "…:04.059Z" as a string).
    times = [datetime.fromisoformat(e["at"]) for e in pages]
    assert times == sorted(times, reverse=True)


async def test_a_new_write_shows_at_once(client: httpx.AsyncClient, admin: dict[str, str]) -> None:
    org = await create_organization(client, admin)
    before = (await client.get(EVENTS, headers=admin)).json()["data"]
    await client.patch(
        f"{API}/organizations/{org['id']}", json={"status": "ARCHIVED"}, headers=admin
    )
    after = (await client.get(EVENTS, headers=admin)).json()["data"]

    assert len(after) == len(before) + 1
    assert after[0]["after"] == {"status": "ARCHIVED"}


@pytest.mark.parametrize(
    "params",
    [
        {"resource": "patients"},
        {"id": "not-an-id"},
        {"since": "yesterday"},
        {"since": "2026-12-01T10:00:00"},
        {"since": "99999-01-01T00:00:00Z"},
        {"actor": "k" * 65},
        {"count": "exact"},
        {"sort": "at"},
        {"limit": "0"},
        {"cursor": "forged.cursor"},
        {"organization": "x"},
    ],
    ids=lambda p: "&".join(f"{k}={v[:12]}" for k, v in p.items()),
)
async def test_bad_filters_are_400_problems(
    client: httpx.AsyncClient, admin: dict[str, str], params: dict[str, str]
) -> None:
    assert_problem(await client.get(EVENTS, params=params, headers=admin), 400)


# -- concurrency, reconciliation and retention -----------------------------------------------


@pytest.fixture
async def two_workers(settings: Settings, app: Any) -> Any:
    async with Server(server_env(settings), workers=2) as server:
        yield server


async def test_exactly_one_record_per_acknowledged_write_across_two_workers(
    two_workers: Server, app: Any, mongo: AsyncMongoClient[Any], settings: Settings
) -> None:
    """200 concurrent writes (creates, PATCHes racing on shared documents, deletes) through
    two worker processes: every 2xx has one committed record naming its request and version,
    and nothing else is recorded."""
    admin = await new_key(app)
    async with httpx.AsyncClient(
        base_url=two_workers.base_url,
        headers=admin,
        limits=httpx.Limits(max_connections=64),
        timeout=60,
    ) as http:
        orgs = [await create_organization(http, admin) for _ in range(4)]
        victims = [await create_clinic(http, admin, orgs[0]["id"]) for _ in range(20)]
        setup = await records(mongo, settings)

        def write(n: int) -> Any:
            org = orgs[n % 4]
            if n % 4 == 0:
                body = {"name": unique("Busy"), "code": f"B{n:05d}", "address": address()}
                return http.post(f"{API}/organizations/{org['id']}/clinics", json=body)
            if n % 4 == 3 and n // 4 < len(victims):
                return http.delete(f"{API}/clinics/{victims[n // 4]['id']}")
            return http.patch(f"{API}/organizations/{org['id']}", json={"name": unique("Race")})

        answers = await asyncio.gather(*(write(n) for n in range(200)))

    acknowledged = [a for a in answers if a.status_code < 300]
    assert {a.status_code for a in answers} <= {200, 201, 204, 409, 503}
    assert len(acknowledged) >= 100
    found = [r for r in await records(mongo, settings) if r["_id"] not in {s["_id"] for s in setup}]
    by_request = {r["requestId"]: r for r in found}
    assert len(by_request) == len(found) == len(acknowledged)
    assert all(r["state"] == "committed" for r in found)
    for answer in acknowledged:
        record = by_request[answer.headers["x-request-id"]]
        if answer.status_code == 204:
            assert record["action"] == "delete"
        else:
            assert (str(record["documentId"]), record["version"]) == (
                answer.json()["id"],
                answer.json()["version"],
            )
    versions: dict[ObjectId, list[int]] = {}
    for record in found:
        if record["action"] == "update":
            versions.setdefault(record["documentId"], []).append(record["version"])
    for organization, made in versions.items():
        assert sorted(made) == list(range(2, len(made) + 2)), organization


async def test_reconcile_settles_only_what_outlived_the_grace_period(
    mongo: AsyncMongoClient[Any], settings: Settings, client: httpx.AsyncClient, admin: Any
) -> None:
    """Records a crash left pending, as the service writes them, against documents in
    every state a crash can leave; `audit reconcile` decides each from the evidence."""
    db = mongo[settings.mongodb_database]
    org, other, gone, kept = [
        ObjectId((await create_organization(client, admin))["id"]) for _ in range(4)
    ]
    old = datetime.now(UTC) - timedelta(minutes=10)
    landed, lost, unapplied, rival, overwritten, deleted, undeleted, young = (
        ObjectId() for _ in range(8)
    )
    await db.organizations.update_one({"_id": org}, {"$set": {"auditId": landed, "version": 2}})
    # `overwritten` made version 2 of `other`; a later write read it (its `previous`) and
    # made version 3, so the document no longer shows the stamp.
    await db.organizations.update_one({"_id": other}, {"$set": {"auditId": None, "version": 3}})
    await db.organizations.delete_one({"_id": gone})
    later = {**_pending(ObjectId(), "update", other, 3, old), "state": "committed"}
    pending = [
        _pending(landed, "update", org, 2, old),  # the document carries its stamp
        _pending(lost, "create", ObjectId(), 1, old),  # the insert never happened
        _pending(unapplied, "update", org, 3, old),  # the document is still at 2
        _pending(rival, "update", org, 2, old),  # version 2 carries another record's stamp
        _pending(overwritten, "update", other, 2, old),
        {**later, "previous": overwritten},
        _pending(deleted, "delete", gone, 1, old),  # the document is gone
        _pending(undeleted, "delete", kept, 1, old),  # the document is still there
        _pending(young, "update", org, 3, datetime.now(UTC)),  # may still be in flight
    ]
    await db.audit_events.insert_many(pending)
    env = {**os.environ, **server_env(settings), "ENTERPRISE_DEV": "1"}

    run = await _cli(env, "audit", "reconcile", "--grace", "60")

    states = {r["_id"]: r["state"] for r in await records(mongo, settings)}
    expected = {
        landed: "committed",
        lost: "abandoned",
        unapplied: "abandoned",
        rival: "abandoned",
        overwritten: "committed",
        deleted: "committed",
        undeleted: "abandoned",
        young: "pending",
    }
    assert {i: states[i] for i in expected} == expected
    assert "settled 7 pending audit records older than 60 s: 3 committed, 4 abandoned" in run.stdout


def _pending(
    event_id: ObjectId, action: str, document_id: ObjectId, version: int, at: datetime
) -> dict[str, Any]:
    return {
        "_id": event_id,
        "at": at,
        "state": "pending",
        "action": action,
        "collection": "organizations",
        "documentId": document_id,
        "organizationId": document_id,
        "version": version,
        "previous": None,
        "actor": {"keyId": "k", "role": "platform_admin", "organizationId": None},
        "requestId": "r",
        "before": None,
        "after": None,
    }


async def test_prune_deletes_old_records_unless_a_ttl_index_does(
    mongo: AsyncMongoClient[Any], settings: Settings
) -> None:
    db = mongo[settings.mongodb_database]
    env = {**os.environ, **server_env(settings), "ENTERPRISE_DEV": "1"}
    live = [i async for i in await db.audit_events.list_indexes()]
    if any("expireAfterSeconds" in index for index in live):
        kept = await _cli(env, "audit", "prune")
        assert "expires audit records itself" in kept.stdout
        # Dropped before the old record exists: the server's TTL monitor would otherwise
        # delete it first (it did on DocumentDB), and prune would have nothing to do.
        await db.audit_events.drop_index("audit_events_retention")
    now = datetime.now(UTC)
    old, recent = ObjectId(), ObjectId()
    await db.audit_events.insert_many(
        [
            _pending(old, "create", ObjectId(), 1, now - timedelta(days=91)),
            _pending(recent, "create", ObjectId(), 1, now - timedelta(days=89)),
        ]
    )

    pruned = await _cli(env, "audit", "prune")

    assert "pruned 1 audit records older than 90 days" in pruned.stdout
    assert [r["_id"] for r in await records(mongo, settings)] == [recent]
