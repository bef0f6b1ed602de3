"""The local stack as the benchmarks need it: FerretDB v2 keeps its PostgreSQL connections.

DocumentDB runs a sorted find as a persistent cursor and, unless its cursors are kept in files
(`scripts/stack.sh`), asks FerretDB to keep the cursor's connection even when the first batch
drains it; FerretDB v2.5 then closes that connection, and every sorted read starts a new
PostgreSQL backend (docs/benchmarks.md, "Most of a refresh was the stand-in reconnecting").
Checked on FerretDB's own pool counters, from its debug HTTP endpoint.
"""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from typing import Any

import pytest
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

pytestmark = pytest.mark.integration

_OPENED = "ferretdb_unstable_pool_opened_total"


def _connections_opened(url: str) -> float:
    with urllib.request.urlopen(url, timeout=2) as response:
        for line in response.read().decode().splitlines():
            if line.startswith(_OPENED + " "):
                return float(line.split()[1])
    raise AssertionError(f"{url} does not report {_OPENED}")


async def test_sorted_reads_reuse_ferretdb_v2s_postgresql_connections(
    mongo: AsyncMongoClient[Any], db: AsyncDatabase[Any]
) -> None:
    info = await mongo.admin.command("buildInfo")
    if not isinstance(info.get("ferretdb"), dict):
        pytest.skip("not FerretDB v2: no PostgreSQL connections behind the server")
    url = f"http://127.0.0.1:{os.environ.get('FERRETDB_DEBUG_PORT', '8089')}/debug/metrics"
    try:
        before = _connections_opened(url)
    except (urllib.error.URLError, OSError) as ex:
        pytest.skip(f"FerretDB v2's debug endpoint {url} does not answer ({ex}): not our stack")
    await db.items.insert_many([{"k": i % 7, "n": i} for i in range(60)])

    # More reads than FerretDB keeps idle connections (pool_min_conns, 10): a pool that
    # loses a connection per read must open new ones to serve them.
    for i in range(40):
        page = db.items.find({"k": i % 7}, {"n": 1}).sort([("n", 1), ("_id", 1)]).limit(5)
        assert len(await page.to_list()) == 5

    # Without file-based cursors each of these sorted reads cost FerretDB its connection.
    assert _connections_opened(url) - before <= 2
