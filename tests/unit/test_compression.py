from __future__ import annotations

import gzip
import zlib
from collections.abc import Callable
from typing import Any

import brotli
import httpx
import orjson
import pytest

from middleware.compression import CompressionMiddleware, negotiate
from middleware.request_context import (
    ASGIApp,
    Message,
    Receive,
    RequestContextMiddleware,
    Scope,
    Send,
)

pytestmark = pytest.mark.unit

BIG = orjson.dumps({"data": [{"id": f"{i:024x}", "name": "Clinic"} for i in range(60)]})
Headers = list[tuple[bytes, bytes]]


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("", None),
        ("   ", None),
        ("br", "br"),
        ("gzip", "gzip"),
        ("gzip, deflate, br", "br"),
        ("GZIP, BR", "br"),
        ("br;q=0, gzip", "gzip"),
        ("gzip;q=0.5, br;q=0.4", "gzip"),
        ("gzip ; q=0.8 ,br; q = 0.8", "br"),
        ("identity;q=0", "br"),
        ("br;q=0, identity;q=0", "gzip"),
        ("*;q=0", None),
        ("*;q=0, identity", None),
        ("*", "br"),
        ("br;q=0, *", "gzip"),
        ("*;q=0.1, gzip;q=0.5", "gzip"),
        ("deflate", None),
        ("x-gzip", "gzip"),
        ("br;q=2, gzip", "gzip"),
        ("br;q=abc, gzip;q=0.1", "gzip"),
        ("br;q=0.9999", None),
        (",,;;", None),
        ("\x00garbage;;q=", None),
    ],
)
def test_negotiate(header: str | None, expected: str | None) -> None:
    assert negotiate(header) == expected


def responder(body: bytes, status: int = 200, headers: Headers | None = None) -> ASGIApp:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        start_headers = [(b"content-type", b"application/json"), *(headers or [])]
        if status not in (204, 304):
            start_headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": start_headers})
        half = len(body) // 2
        await send({"type": "http.response.body", "body": body[:half], "more_body": True})
        await send({"type": "http.response.body", "body": body[half:]})

    return app


async def call(
    app: ASGIApp, accept: str | None = "br, gzip", method: str = "GET"
) -> tuple[int, dict[bytes, bytes], bytes]:
    sent: list[Message] = []
    headers = [] if accept is None else [(b"accept-encoding", accept.encode())]

    async def receive() -> Message:
        return {"type": "http.request", "body": b""}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {"type": "http", "method": method, "path": "/", "headers": headers}
    await CompressionMiddleware(app)(scope, receive, send)
    start, *bodies = sent
    assert [b.get("more_body", False) for b in bodies][-1] is False
    return start["status"], dict(start["headers"]), b"".join(b["body"] for b in bodies)


@pytest.mark.parametrize(
    ("accept", "encoding", "decompress"),
    [("br", b"br", brotli.decompress), ("gzip", b"gzip", gzip.decompress)],
)
async def test_large_body_is_compressed(
    accept: str, encoding: bytes, decompress: Callable[[bytes], bytes]
) -> None:
    status, headers, body = await call(responder(BIG), accept)

    assert status == 200
    assert headers[b"content-encoding"] == encoding
    assert headers[b"content-length"] == str(len(body)).encode()
    assert headers[b"vary"] == b"Accept-Encoding"
    assert len(body) < len(BIG)
    assert decompress(body) == BIG


async def test_gzip_output_is_deterministic() -> None:
    first = await call(responder(BIG), "gzip")
    second = await call(responder(BIG), "gzip")

    assert first[2] == second[2]


@pytest.mark.parametrize(
    ("etag", "expected"),
    [(b'"abc"', b'"abc-br"'), (b'W/"abc"', b'W/"abc-br"'), (b"unquoted", b"unquoted")],
)
async def test_etag_gets_an_encoding_suffix(etag: bytes, expected: bytes) -> None:
    _, headers, _ = await call(responder(BIG, headers=[(b"etag", etag)]), "br")

    assert headers[b"etag"] == expected


async def test_small_body_is_untouched_but_varies() -> None:
    status, headers, body = await call(responder(b'{"ok":true}', headers=[(b"etag", b'"v1"')]))

    assert (status, body) == (200, b'{"ok":true}')
    assert b"content-encoding" not in headers
    assert headers[b"etag"] == b'"v1"'
    assert headers[b"vary"] == b"Accept-Encoding"


@pytest.mark.parametrize("status", [204, 304])
async def test_bodiless_statuses_are_untouched_but_vary(status: int) -> None:
    got_status, headers, body = await call(responder(b"", status, [(b"etag", b'"v1"')]))

    assert (got_status, body) == (status, b"")
    assert headers[b"etag"] == b'"v1"'
    assert headers[b"vary"] == b"Accept-Encoding"
    assert b"content-encoding" not in headers


async def test_already_encoded_body_is_untouched() -> None:
    app = responder(BIG, headers=[(b"content-encoding", b"identity-ish")])
    _, headers, body = await call(app)

    assert body == BIG
    assert headers[b"content-encoding"] == b"identity-ish"


async def test_head_and_identity_requests_are_untouched() -> None:
    _, head_headers, _ = await call(responder(BIG), method="HEAD")
    _, plain_headers, plain_body = await call(responder(BIG), accept=None)

    assert b"content-encoding" not in head_headers
    assert head_headers[b"content-length"] == str(len(BIG)).encode()
    assert plain_body == BIG
    assert plain_headers[b"vary"] == b"Accept-Encoding"


@pytest.mark.parametrize(
    ("vary", "expected"),
    [
        (b"Origin", b"Origin, Accept-Encoding"),
        (b"origin, accept-encoding", b"origin, accept-encoding"),
        (b"*", b"*"),
    ],
)
async def test_vary_is_merged_without_duplicates(vary: bytes, expected: bytes) -> None:
    _, headers, _ = await call(responder(BIG, headers=[(b"vary", vary)]))

    assert headers[b"vary"] == expected


async def test_compression_is_reported_in_server_timing_and_callback() -> None:
    calls: list[tuple[str, int, int, float]] = []
    app = RequestContextMiddleware(
        CompressionMiddleware(responder(BIG), on_compress=lambda *args: calls.append(args))
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        resp = await http.get("/", headers={"Accept-Encoding": "gzip"})

    assert resp.content == BIG  # httpx decodes gzip
    assert "compress;dur=" in resp.headers["server-timing"]
    assert [(enc, raw) for enc, raw, _, _ in calls] == [("gzip", len(BIG))]


def streamer(parts: list[bytes], headers: Headers | None = None) -> ASGIApp:
    """A body of unknown length in several messages, as Falcon sends `resp.stream`."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        start_headers = [(b"content-type", b"application/x-ndjson"), *(headers or [])]
        await send({"type": "http.response.start", "status": 200, "headers": start_headers})
        for part in parts:
            await send({"type": "http.response.body", "body": part, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    return app


PARTS = [orjson.dumps({"id": f"{i:024x}", "name": "Clinic"}) * 40 + b"\n" for i in range(3)]


async def stream_messages(
    app: ASGIApp,
    accept: str | None,
    method: str = "GET",
    stream_levels: tuple[int, int] | None = None,
) -> list[Message]:
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b""}

    async def send(message: Message) -> None:
        sent.append(message)

    headers = [] if accept is None else [(b"accept-encoding", accept.encode())]
    scope = {"type": "http", "method": method, "path": "/", "headers": headers}
    await CompressionMiddleware(app, stream_levels=stream_levels)(scope, receive, send)
    return sent


@pytest.mark.parametrize(
    ("accept", "decoder"),
    [
        ("gzip", lambda: zlib.decompressobj(16 + zlib.MAX_WBITS)),
        ("br", brotli.Decompressor),
    ],
)
async def test_a_stream_is_compressed_chunk_by_chunk_never_buffered(
    accept: str, decoder: Callable[[], Any]
) -> None:
    start, *bodies = await stream_messages(streamer(PARTS, [(b"etag", b'"e1"')]), accept)

    headers = dict(start["headers"])
    assert headers[b"content-encoding"] == accept.encode()
    assert b"content-length" not in headers  # unknown length: chunked
    assert headers[b"vary"] == b"Accept-Encoding"
    assert headers[b"etag"] == f'"e1-{accept}"'.encode()
    assert len(bodies) == len(PARTS) + 1  # one out per one in
    inflate = decoder()
    process = getattr(inflate, "decompress", None) or inflate.process
    for part, body in zip(PARTS, bodies, strict=False):
        assert body["more_body"] is True
        assert process(body["body"]) == part  # each chunk decodes on arrival
    assert bodies[-1]["more_body"] is False
    assert process(bodies[-1]["body"]) == b""


@pytest.mark.parametrize("levels", [(1, 1), (7, 8)])
async def test_a_stream_is_compressed_at_the_stream_levels(levels: tuple[int, int]) -> None:
    """Streams have their own levels (made per request, never reused): the bytes sent are
    those of a compressor at exactly those levels."""
    quality, level = levels
    brotli_out = brotli.Compressor(mode=brotli.MODE_TEXT, quality=quality)
    gzip_out = zlib.compressobj(level, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    expected = {
        "br": [brotli_out.process(part) + brotli_out.flush() for part in PARTS],
        "gzip": [gzip_out.compress(part) + gzip_out.flush(zlib.Z_SYNC_FLUSH) for part in PARTS],
    }
    for accept in ("br", "gzip"):
        _, *bodies = await stream_messages(streamer(PARTS), accept, stream_levels=levels)
        assert [body["body"] for body in bodies[:-1]] == expected[accept]


async def test_a_stream_is_passed_on_as_it_is_for_identity_and_head() -> None:
    for accept, method in ((None, "GET"), ("br", "HEAD")):
        start, *bodies = await stream_messages(streamer(PARTS), accept, method)

        assert b"content-encoding" not in dict(start["headers"])
        assert dict(start["headers"])[b"vary"] == b"Accept-Encoding"
        assert [b["body"] for b in bodies] == [*PARTS, b""]
