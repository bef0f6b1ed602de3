"""The hot path wrapper on its own: answers from `find`, and background refreshes bounded
per key and in number."""

from __future__ import annotations

import asyncio
from typing import Any

from middleware.hot_path import Hit, HotPathMiddleware
from middleware.response_cache import REFRESH


class _Entry:
    def __init__(self, body: bytes) -> None:
        self.body = body
        self.etag = '"e-1"'
        self.content_type = "application/json"
        self.headers: list[tuple[str, str]] = []
        self.stored_at = 0.0
        self.ttl = 10.0
        self.forms: dict[str, bytes] = {}
        self.prepared: dict[str | None, Any] = {}


async def _get(app: Any, path: str, headers: list[tuple[bytes, bytes]] | None = None) -> list[Any]:
    sent: list[Any] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": path, "query_string": b"",
             "headers": headers or []}  # fmt: skip
    await app(scope, receive, send)
    return sent


async def test_hits_refresh_once_per_key_and_at_most_max_refreshes_at_once() -> None:
    release = asyncio.Event()
    replayed: list[str] = []

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        assert scope[REFRESH]
        replayed.append(scope["path"])
        await release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    def find(scope: Any) -> Hit:
        return Hit(_Entry(b"{}"), "stale", scope["path"], None, 11.0)

    recorded: list[tuple[int, str]] = []
    app = HotPathMiddleware(
        inner,
        find=find,
        record=lambda hit, status, ms, request_id, timings: recorded.append((status, hit.state)),
        max_refreshes=3,
    )
    for path in ("/a", "/a", "/b", "/c", "/d", "/e"):
        sent = await _get(app, path)
        assert sent[0]["status"] == 200
        assert (b"x-cache", b"stale") in sent[0]["headers"]
    await asyncio.sleep(0)
    assert replayed == ["/a", "/b", "/c"]  # /a once; /d and /e wait for a free slot
    assert app.refreshes == 3
    release.set()
    await app.aclose()
    await _get(app, "/d")
    await asyncio.sleep(0)
    assert replayed[-1] == "/d"
    release.set()
    await app.aclose()
    assert recorded == [(200, "stale")] * 7


async def test_a_matching_if_none_match_is_answered_304_without_a_body() -> None:
    async def inner(scope: Any, receive: Any, send: Any) -> None:
        raise AssertionError("the app must not run for a hit")

    app = HotPathMiddleware(
        inner,
        find=lambda scope: Hit(_Entry(b"{}"), "hit", None, None, 1.0),
        record=lambda *args: None,
    )
    start, body = await _get(app, "/x", [(b"if-none-match", b'W/"e-1-br"')])
    assert start["status"] == 304
    assert (b"etag", b'W/"e-1-br"') in start["headers"]
    assert body["body"] == b""
