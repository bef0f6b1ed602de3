from __future__ import annotations

import re

import httpx
import pytest

from enterprise.context import current_request_id, current_timings, record_timing
from middleware.request_context import (
    Message,
    Receive,
    RequestContextMiddleware,
    Scope,
    Send,
)

pytestmark = pytest.mark.unit

seen: dict[str, object] = {}


async def inner(scope: Scope, receive: Receive, send: Send) -> None:
    seen["request_id"] = current_request_id()
    record_timing("db", 1.5)
    record_timing("db", 2.5)
    record_timing("cache", 0.25)
    record_timing("compress", 0.5)
    headers = [(b"content-type", b"text/plain"), (b"x-request-id", b"from-inner")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b"ok"})


def client() -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=RequestContextMiddleware(inner))
    return httpx.AsyncClient(transport=transport, base_url="http://test")


async def test_valid_incoming_request_id_is_kept_and_visible_inside() -> None:
    async with client() as http:
        resp = await http.get("/", headers={"X-Request-Id": "abc.DEF_12-3"})

    assert resp.status_code == 200
    assert resp.headers.get_list("x-request-id") == ["abc.DEF_12-3"]
    assert seen["request_id"] == "abc.DEF_12-3"


@pytest.mark.parametrize("incoming", [None, "", "has space", "x" * 129, "semi;colon"])
async def test_missing_or_invalid_request_id_is_replaced(incoming: str | None) -> None:
    headers = {} if incoming is None else {"X-Request-Id": incoming}
    async with client() as http:
        resp = await http.get("/", headers=headers)

    assert re.fullmatch(r"[0-9a-f]{32}", resp.headers["x-request-id"])
    assert seen["request_id"] == resp.headers["x-request-id"]


async def test_server_timing_reports_app_db_cache_and_other_phases() -> None:
    async with client() as http:
        resp = await http.get("/")

    timing = resp.headers["server-timing"]
    assert re.fullmatch(
        r'app;dur=\d+\.\d, db;dur=4\.0;desc="2 calls", '
        r'cache;dur=0\.2;desc="1 call", compress;dur=0\.5',
        timing,
    ), timing


def test_helpers_outside_a_request() -> None:
    record_timing("db", 1.0)

    assert current_request_id() is None
    assert current_timings() is None


async def test_non_http_scopes_pass_through_untouched() -> None:
    sent: list[Message] = []

    async def lifespan_app(scope: Scope, receive: Receive, send: Send) -> None:
        assert current_request_id() is None
        await send({"type": "lifespan.startup.complete"})

    async def receive() -> Message:
        return {"type": "lifespan.startup"}

    async def send(message: Message) -> None:
        sent.append(message)

    await RequestContextMiddleware(lifespan_app)({"type": "lifespan"}, receive, send)

    assert sent == [{"type": "lifespan.startup.complete"}]
