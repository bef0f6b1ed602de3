from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import pytest
from pymongo import IndexModel
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import OperationFailure

from indexes import DECLARED
from indexes.planner import explain_index_names
from indexes.sync import live_indexes, plan, sync

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


async def _uri(db: AsyncDatabase[Any]) -> str:
    """The URI the CLI should use to reach the same server as `db`."""
    address = await db.client.address
    assert address is not None
    return f"mongodb://{address[0]}:{address[1]}/"


async def cli(*args: str, uri: str, database: str) -> tuple[int, str]:
    """Run `python -m indexes ...` as users do; returns the exit code and all output."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "indexes", *args, "--uri", uri, "--database", database,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=ROOT,
    )  # fmt: skip
    out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode() + err.decode()


async def cli_on(db: AsyncDatabase[Any], *args: str) -> tuple[int, str]:
    return await cli(*args, uri=await _uri(db), database=db.name)


def line_of(output: str, name: str) -> str:
    return next(line for line in output.splitlines() if f" {name} " in line)


async def test_sync_then_diff_reports_no_drift(db: AsyncDatabase[Any]) -> None:
    code, out = await cli_on(db, "sync")
    assert code == 0, out
    assert line_of(out, "clinics_org_code_unique").split()[-1] == "created"

    code, out = await cli_on(db, "diff")

    assert code == 0, out
    assert out.splitlines()[-1].startswith("no drift")
    assert len(out.splitlines()) == sum(len(models) for models in DECLARED.values()) + 1


async def test_dropped_index_is_drift_named_by_diff(db: AsyncDatabase[Any]) -> None:
    await sync(db, prune=False, echo=lambda _: None)
    await db["clinics"].drop_index("clinics_org_code_unique")

    code, out = await cli_on(db, "diff")

    assert code == 1, out
    assert line_of(out, "clinics_org_code_unique").split()[-1] == "missing"


async def test_extra_index_is_kept_by_sync_and_dropped_by_prune(db: AsyncDatabase[Any]) -> None:
    await sync(db, prune=False, echo=lambda _: None)
    await db["clinics"].create_index([("legacyField", 1)], name="clinics_legacy")

    code, out = await cli_on(db, "sync")
    assert code == 0, out
    assert "extra" in line_of(out, "clinics_legacy")
    assert "clinics_legacy" in await live_indexes(db["clinics"])

    code, out = await cli_on(db, "sync", "--prune")

    assert code == 0, out
    assert line_of(out, "clinics_legacy").split()[-1] == "dropped"
    assert "clinics_legacy" not in await live_indexes(db["clinics"])
    assert (await cli_on(db, "diff"))[0] == 0


async def test_different_index_is_rebuilt_only_with_prune(db: AsyncDatabase[Any]) -> None:
    await db["organizations"].create_index([("createdAt", -1)], name="organizations_created")

    kept = await sync(db, prune=False, echo=lambda _: None)
    entry = kept.get("organizations", "organizations_created")
    assert entry is not None
    assert entry.status == "different"
    assert kept.drift

    rebuilt = await sync(db, prune=True, echo=lambda _: None)

    entry = rebuilt.get("organizations", "organizations_created")
    assert entry is not None
    assert entry.status == "rebuilt"
    live = (await live_indexes(db["organizations"]))["organizations_created"]
    assert list(live["key"].items()) == [("createdAt", -1), ("_id", -1)]
    assert not (await plan(db)).drift


async def _server_refuses_ttl(db: AsyncDatabase[Any]) -> bool:
    """Ask the server itself, so the test holds on FerretDB and on real MongoDB alike."""
    scratch = db["ttl_capability"]
    try:
        await scratch.create_indexes([IndexModel([("at", 1)], expireAfterSeconds=60)])
    except OperationFailure as ex:
        if ex.code == 238 or "not implemented" in str(ex).lower():
            return True
        raise
    finally:
        await scratch.drop()
    return False


async def test_ttl_index_is_a_limitation_only_where_the_server_refuses_it(
    db: AsyncDatabase[Any],
) -> None:
    refuses = await _server_refuses_ttl(db)

    synced = await sync(db, prune=False, echo=lambda _: None)
    after = await plan(db)

    for result in (synced, after):
        entry = result.get("audit_events", "audit_events_retention")
        assert entry is not None
        assert not result.drift
        assert not result.failed
        if refuses:
            assert entry.status == "limitation"
            assert "expireAfterSeconds" in entry.detail
        else:
            assert entry.status in ("created", "ok")
    assert "__indexes_probe" not in await db.list_collection_names()


async def test_unreachable_server_is_a_clear_error() -> None:
    code, out = await cli("diff", uri="mongodb://127.0.0.1:1/", database="unused")

    assert code == 2
    assert "error: cannot reach MongoDB at mongodb://127.0.0.1:1/" in out


@pytest.mark.parametrize("where", ["first", "last"])
@pytest.mark.parametrize("beside", [(), ("n",)], ids=["_id alone", "_id and another field"])
async def test_a_find_by_id_reads_the_id_index(
    db: AsyncDatabase[Any], where: str, beside: tuple[str, ...]
) -> None:
    """Every server must look a document up by `_id` through `_id_`, not by a scan, also
    when the filter holds more (our conditional writes add `version`, tenant scoping adds
    `organizationId`).

    On FerretDB v1 this holds only with scripts/ferretdb/patches (without them the plan is
    `SCAN <table>` and a lookup takes time in proportion to the collection's size).
    """
    scratch = db["by_id"]
    await scratch.insert_many([{"n": n} for n in range(200)])
    document = await scratch.find_one({}, sort=[("_id", 1 if where == "first" else -1)])
    assert document is not None
    query = {"_id": document["_id"]} | {field: document[field] for field in beside}

    explain = await db.command(
        "explain", {"find": "by_id", "filter": query}, verbosity="queryPlanner"
    )

    assert explain_index_names(explain) == ["_id_"], explain
