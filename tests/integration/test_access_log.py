"""One JSON access line per request: what it holds, what it never holds, and its switch."""

from __future__ import annotations

import io
import logging
import logging.handlers
import queue
from typing import Any

import orjson
import pytest

from enterprise import logs
from enterprise.app import create_app
from enterprise.settings import Settings
from middleware.request_context import _request_id
from tests.conftest import make_client, new_key

pytestmark = pytest.mark.integration


async def test_each_request_gives_one_line_with_its_figures_and_key_id_but_not_the_key(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(settings)  # its own MongoDB client, whose listener counts db time
    async with await make_client(app) as http:
        admin = await new_key(app)
        raw_key = admin["Authorization"].removeprefix("Bearer ")
        caplog.clear()
        with caplog.at_level(logging.INFO, logger=logs.ACCESS_LOGGER):
            answer = await http.get("/api/v1/organizations?limit=3", headers=admin)
            await http.get("/api/v1/organizations/not-an-id", headers=admin)
    lines = [r for r in caplog.records if r.name == logs.ACCESS_LOGGER]
    assert len(lines) == 2
    first = lines[0].access  # type: ignore[attr-defined]
    assert first["route"] == "/api/v1/organizations"
    assert (first["method"], first["status"], first["cache"]) == ("GET", 200, "miss")
    assert first["durationMs"] > 0
    assert first["dbCalls"] >= 1
    assert first["dbMs"] >= 0
    assert first["cacheMs"] >= 0
    assert first["keyId"]
    assert first["keyId"] != raw_key
    assert first["requestId"] == answer.headers["x-request-id"]
    second = lines[1].access  # type: ignore[attr-defined]
    assert (second["route"], second["status"]) == ("/api/v1/organizations/{organization_id}", 400)
    for record in lines:
        assert raw_key not in orjson.dumps(record.__dict__, default=str).decode()


async def test_the_switch_turns_it_off(
    settings: Settings, mongo: Any, redis_client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(
        settings.with_overrides(access_log=False), mongo=mongo, redis_client=redis_client
    )
    async with await make_client(app) as http:
        with caplog.at_level(logging.INFO, logger=logs.ACCESS_LOGGER):
            await http.get("/health/live")
    assert not [r for r in caplog.records if r.name == logs.ACCESS_LOGGER]


def test_records_cross_a_queue_to_a_thread_with_their_request_id() -> None:
    """The event loop only enqueues; the listener thread formats and writes the JSON."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.JsonFormatter())
    records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    listener = logging.handlers.QueueListener(records, handler)
    logger = logging.getLogger("tests.access.queue")
    logger.propagate = False
    logger.addHandler(logs._ContextQueueHandler(records))
    token = _request_id.set("req-42")
    try:
        logger.warning("access", extra={"access": {"route": "/x", "status": 200}})
    finally:
        _request_id.reset(token)
        logger.handlers.clear()
    assert records.qsize() == 1
    assert stream.getvalue() == ""  # nothing written on the calling thread
    listener.start()
    listener.stop()
    line = orjson.loads(stream.getvalue())
    assert (line["requestId"], line["route"], line["status"]) == ("req-42", "/x", 200)
