"""One JSON access line per request: what it holds, what it never holds, and that the event
loop only queues it (a thread writes it)."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from enterprise.access_log import AccessLog
from enterprise.app import create_app
from enterprise.settings import Settings
from tests.conftest import ROOT, make_client, new_key

pytestmark = pytest.mark.integration


class Sink(io.BytesIO):
    def lines(self) -> list[dict[str, Any]]:
        return [orjson.loads(line) for line in self.getvalue().splitlines()]


@pytest.fixture
def access_log() -> Iterator[tuple[AccessLog, Sink]]:
    sink = Sink()
    log = AccessLog(sink)
    yield log, sink
    log.stop()


async def test_each_request_gives_one_line_with_its_figures_and_key_id_but_not_the_key(
    settings: Settings, access_log: tuple[AccessLog, Sink]
) -> None:
    log, sink = access_log
    log.start()
    app = create_app(settings, access_log=log)  # its own MongoDB client counts db time
    async with await make_client(app) as http:
        admin = await new_key(app)
        raw_key = admin["Authorization"].removeprefix("Bearer ")
        answer = await http.get("/api/v1/organizations?limit=3", headers=admin)
        await http.get("/api/v1/organizations/not-an-id", headers=admin)
    log.stop()
    first, second = sink.lines()
    assert first["requestId"] == answer.headers["x-request-id"]
    assert (first["route"], first["method"]) == ("/api/v1/organizations", "GET")
    assert (first["status"], first["cache"]) == (200, "miss")
    assert first["durationMs"] > 0
    assert first["dbCalls"] >= 1
    assert first["dbMs"] >= 0
    assert first["cacheMs"] >= 0
    assert first["keyId"]
    assert first["keyId"] != raw_key
    assert (second["route"], second["status"]) == ("/api/v1/organizations/{organization_id}", 400)
    assert raw_key.encode() not in sink.getvalue()


async def test_hits_and_304s_answered_before_falcon_give_the_same_line(
    settings: Settings, access_log: tuple[AccessLog, Sink]
) -> None:
    """The hot path records its answers itself (no request objects, no context variables):
    their lines hold the same fields, from the same request."""
    log, sink = access_log
    log.start()
    app = create_app(settings.with_overrides(cache_generation_lease_ms=1000), access_log=log)
    async with await make_client(app) as http:
        admin = await new_key(app)
        url = "/api/v1/organizations?limit=2"
        await http.get(url, headers=admin)  # the miss
        await http.get(url, headers=admin)  # leases the generations the miss created
        answered = app.state.hot_path.answered
        hit = await http.get(url, headers={**admin, "X-Request-Id": "hot-hit"})
        etag = hit.headers["etag"]
        revalidated = await http.get(
            url, headers={**admin, "If-None-Match": etag, "X-Request-Id": "hot-304"}
        )
        assert app.state.hot_path.answered == answered + 2  # both answered before Falcon
    log.stop()
    lines = {line["requestId"]: line for line in sink.lines()}
    assert revalidated.status_code == 304
    miss = next(line for line in sink.lines() if line["cache"] == "miss")
    for request_id, status in (("hot-hit", 200), ("hot-304", 304)):
        line = lines[request_id]
        assert (line["route"], line["method"], line["status"]) == (
            "/api/v1/organizations",
            "GET",
            status,
        )
        assert (line["cache"], line["dbCalls"], line["dbMs"]) == ("hit", 0, 0.0)
        assert line["keyId"] == miss["keyId"]
        assert 0 < line["cacheMs"] <= line["durationMs"]
        assert set(line) == set(miss)


@pytest.mark.parametrize(("switch", "expected"), [("true", "on"), ("false", "off")])
def test_access_log_switches_the_writer(switch: str, expected: str) -> None:
    """The entry module makes (and starts) the writer only when ACCESS_LOG says so."""
    script = "import enterprise.asgi as a; print('off' if a.access_log is None else 'on')"
    env = {**os.environ, "ENTERPRISE_DEV": "1", "ACCESS_LOG": switch, "LOG_LEVEL": "ERROR"}
    done = subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.strip() == expected


async def test_the_event_loop_only_queues_the_thread_writes(
    settings: Settings, access_log: tuple[AccessLog, Sink]
) -> None:
    log, sink = access_log
    app = create_app(settings, access_log=log)  # writer not started yet
    async with await make_client(app) as http:
        await http.get("/health/live")
    assert sink.getvalue() == b""  # queued, not written, on the request's thread
    log.start()
    log.stop()
    [line] = sink.lines()
    assert (line["route"], line["status"], line["keyId"]) == ("/health/live", 200, None)
