from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterator

import httpx
import orjson
import pytest

from enterprise.context import driver_deadline, remaining
from middleware.deadline import DeadlineMiddleware
from middleware.request_context import Message, Receive, Scope, Send

pytestmark = pytest.mark.unit

DEADLINE_S = 0.05


def deadline_app(app: DeadlineMiddleware) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


async def test_slow_request_gets_504_and_its_work_is_cancelled() -> None:
    cancelled = False

    async def slow(scope: Scope, receive: Receive, send: Send) -> None:
        nonlocal cancelled
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            cancelled = True
            raise

    app = DeadlineMiddleware(slow, timeout_for=lambda method, path: DEADLINE_S)
    began = time.perf_counter()
    async with deadline_app(app) as http:
        resp = await http.get("/api/v1/clinics")

    assert time.perf_counter() - began < DEADLINE_S + 0.1
    assert cancelled
    assert resp.status_code == 504
    assert resp.headers["content-type"] == "application/problem+json"
    assert resp.headers["content-length"] == str(len(resp.content))
    assert orjson.loads(resp.content) == {
        "type": "https://enterprise.example/problems/deadline-exceeded",
        "title": "Gateway Timeout",
        "status": 504,
        "detail": "the request did not finish within its 0.05 s deadline",
        "instance": "/api/v1/clinics",
    }


async def test_fast_request_is_untouched_and_sees_its_budget() -> None:
    budgets: list[float | None] = []
    scopes: list[float] = []

    async def fast(scope: Scope, receive: Receive, send: Send) -> None:
        budgets.append(remaining())
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"done"})

    @contextlib.contextmanager
    def driver_scope(seconds: float) -> Iterator[None]:
        scopes.append(seconds)
        yield

    app = DeadlineMiddleware(
        fast,
        timeout_for=lambda method, path: 5.0 if method == "GET" else 1.0,
        scope_factory=driver_scope,
    )
    async with deadline_app(app) as http:
        resp = await http.get("/x")

    assert (resp.status_code, resp.content) == (200, b"done")
    assert scopes == [5.0]
    assert budgets[0] is not None
    assert 4.9 < budgets[0] <= 5.0
    assert remaining() is None


async def test_work_bounded_by_the_driver_share_ends_inside_the_app() -> None:
    """What repositories do with a read: bounded at `driver_deadline()`, it fails before
    the outer cancel, so the app itself answers (here a 503 a stale entry could replace)."""
    scopes: list[float] = []

    async def hung_read(scope: Scope, receive: Receive, send: Send) -> None:
        try:
            async with asyncio.timeout_at(driver_deadline()):
                await asyncio.sleep(5)  # a driver waiting past its own deadline
        except TimeoutError:
            await send({"type": "http.response.start", "status": 503, "headers": []})
            await send({"type": "http.response.body", "body": b"from the app"})

    @contextlib.contextmanager
    def driver_scope(seconds: float) -> Iterator[None]:
        scopes.append(seconds)
        yield

    app = DeadlineMiddleware(
        hung_read,
        timeout_for=lambda method, path: 0.2,
        scope_factory=driver_scope,
        driver_share=lambda seconds: seconds / 2,
    )
    began = time.perf_counter()
    async with deadline_app(app) as http:
        resp = await http.get("/x")

    assert (resp.status_code, resp.content) == (503, b"from the app")
    assert time.perf_counter() - began >= 0.1  # the share, not less
    assert scopes == [0.1]
    assert driver_deadline() is None  # outside a request


async def test_deadline_after_response_start_stops_quietly(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sent: list[Message] = []

    async def streaming(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await asyncio.sleep(5)

    async def receive() -> Message:
        return {"type": "http.request", "body": b""}

    async def send(message: Message) -> None:
        sent.append(message)

    app = DeadlineMiddleware(streaming, timeout_for=lambda method, path: DEADLINE_S)
    with caplog.at_level(logging.WARNING, logger="middleware.deadline"):
        await app({"type": "http", "method": "GET", "path": "/s"}, receive, send)

    assert [m["type"] for m in sent] == ["http.response.start"]
    assert "after response start" in caplog.text


async def test_timeout_error_raised_by_the_app_itself_propagates() -> None:
    async def broken(scope: Scope, receive: Receive, send: Send) -> None:
        raise TimeoutError("upstream")

    app = DeadlineMiddleware(broken, timeout_for=lambda method, path: 5.0)
    with pytest.raises(TimeoutError, match="upstream"):
        await app({"type": "http", "method": "GET", "path": "/"}, _never, _discard)


async def _never() -> Message:
    raise AssertionError("not called")


async def _discard(message: Message) -> None:
    raise AssertionError(f"unexpected {message}")
