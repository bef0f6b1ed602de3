"""A worker killed around a write: its audit record stays pending and `audit reconcile`
settles it by what reached the database.

The real server (`python -m enterprise serve`, 2 workers, which the server's supervisor
respawns) runs with `TEST_FAULT_CRASH`, which SIGKILLs the worker either after the write
(record pending, document written) or before it (record pending, nothing written).
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from typing import Any

import httpx
import pytest
from pymongo import AsyncMongoClient

from enterprise.settings import Settings
from tests.conftest import ROOT, Server, new_key, server_env
from tests.integration.factories import API, organization_document, unique

pytestmark = pytest.mark.faults

OUTCOME = {"after-write": "committed", "before-write": "abandoned"}


async def _reconcile(settings: Settings, *args: str) -> str:
    env = {**os.environ, **server_env(settings), "ENTERPRISE_DEV": "1"}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "enterprise", "audit", "reconcile", *args,
        env=env, cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    return out.decode()


# granian stops the whole server when a worker it respawned dies within 5.5 s (a crash
# loop, `granian/server/common.py`); a supervisor above it (compose, systemd) restarts it.
# Kills here are spaced past that, as real crashes are.
CRASH_LOOP_S = 6.0


async def _killed(http: httpx.AsyncClient, method: str, url: str, **kwargs: Any) -> None:
    """Send a write whose worker dies before answering: the connection drops, no status.
    Then wait until the server has its workers again (its supervisor starts a new one) and
    the crash-loop window has passed, so the next write meets a worker."""
    killed = time.monotonic()
    with pytest.raises(httpx.TransportError):
        await http.request(method, url, **kwargs)
    while time.monotonic() - killed < CRASH_LOOP_S + 10:
        try:
            answered = (await http.get("/health/ready")).status_code == 200
        except httpx.TransportError:
            answered = False
        if answered and time.monotonic() - killed >= CRASH_LOOP_S:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"no worker answered within {CRASH_LOOP_S + 10:.0f} s of the kill")


@pytest.mark.parametrize("point", ["after-write", "before-write"])
async def test_a_killed_worker_leaves_pending_records_that_reconcile_settles(
    point: str,
    settings: Settings,
    app: Any,
    client: httpx.AsyncClient,
    mongo: AsyncMongoClient[Any],
) -> None:
    db = mongo[settings.mongodb_database]
    admin = await new_key(app)
    to_update, to_delete = (
        organization_document(unique("Patch me")),
        organization_document(unique("Delete me")),
    )
    await db.organizations.insert_many([to_update, to_delete])
    name = unique("Crash Dental")
    env = {**server_env(settings), "TEST_FAULT_CRASH": point}
    async with (
        Server(env, workers=2) as server,
        httpx.AsyncClient(
            base_url=server.base_url,
            headers=admin,
            timeout=30,
            limits=httpx.Limits(max_keepalive_connections=0),
        ) as http,
    ):
        await _killed(http, "POST", f"{API}/organizations", json={"name": name})
        await _killed(
            http, "PATCH", f"{API}/organizations/{to_update['_id']}", json={"status": "SUSPENDED"}
        )
        await _killed(http, "DELETE", f"{API}/organizations/{to_delete['_id']}")

    pending = await db.audit_events.find({}, sort=[("at", 1)]).to_list(None)
    assert [(r["action"], r["state"]) for r in pending] == [
        ("create", "pending"),
        ("update", "pending"),
        ("delete", "pending"),
    ]
    created = await db.organizations.find_one({"name": name})
    updated = await db.organizations.find_one({"_id": to_update["_id"]})
    deleted = await db.organizations.find_one({"_id": to_delete["_id"]})
    assert updated is not None
    if point == "after-write":
        assert created is not None
        assert created["auditId"] == pending[0]["_id"]
        assert (updated["version"], updated["status"]) == (2, "SUSPENDED")
        assert deleted is None
    else:
        assert created is None
        assert (updated["version"], updated["status"]) == (1, "ACTIVE")
        assert deleted is not None

    # Within the grace period the writes might still be in flight: nothing is decided.
    assert "settled 0 pending" in await _reconcile(settings)
    out = await _reconcile(settings, "--grace", "0")

    # A delete's record holds the document as read before it: its contents stay on record.
    assert pending[2]["before"]["name"] == to_delete["name"]
    state = OUTCOME[point]
    settled = await db.audit_events.find({}, sort=[("at", 1)]).to_list(None)
    assert [r["state"] for r in settled] == [state, state, state]
    committed = 3 if state == "committed" else 0
    counts = f"{committed} committed, {3 - committed} abandoned"
    assert f"settled 3 pending audit records older than 0 s: {counts}" in out
    shown = (await client.get(f"{API}/audit-events", headers=admin)).json()["data"]
    assert {e["id"]: e["state"] for e in shown} == {str(r["_id"]): state for r in settled}
    assert all(e["settledAt"] for e in shown)
