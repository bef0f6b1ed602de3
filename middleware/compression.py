"""Response compression (br or gzip) negotiated with q-values, with per-encoding validators.

Most responses are small JSON documents sent in one message, so such a body is buffered whole:
that lets us decide on the real size, set an exact ``Content-Length`` and skip compression
where it would not pay. A streamed response (several body messages and no Content-Length:
an NDJSON export) is never buffered: each chunk is compressed and flushed as it comes, so
the client can decode every chunk on arrival and memory stays at one chunk.
``Vary: Accept-Encoding`` goes on every response so shared caches never serve a compressed
body to a client that did not ask for it, and compressed representations get their own ETag
so a validator never names two different byte sequences.
"""

from __future__ import annotations

import functools
import gzip
import logging
import re
import time
import zlib
from collections.abc import Callable, Iterable
from typing import Any

import brotli

from enterprise.context import record_timing
from middleware.request_context import ASGIApp, Message, Receive, Scope, Send

logger = logging.getLogger(__name__)

Headers = list[tuple[bytes, bytes]]

_SUPPORTED = ("br", "gzip")  # in order of preference on equal q
_QVALUE = re.compile(r"[01](?:\.\d{1,3})?")
_ETAG = re.compile(rb'(W/)?"([^"]*)"')
_NO_BODY_STATUSES = frozenset({204, 304})


def _parse_accept_encoding(value: str) -> dict[str, float]:
    """Map each listed coding (lower-cased) to its q-value; malformed entries are dropped."""
    weights: dict[str, float] = {}
    for entry in value.split(","):
        coding, *params = (part.strip() for part in entry.split(";"))
        if not coding:
            continue
        q = 1.0
        for param in params:
            key, _, raw = param.partition("=")
            if key.strip().lower() != "q":
                continue
            raw = raw.strip()
            q = float(raw) if _QVALUE.fullmatch(raw) else -1.0
        if 0.0 <= q <= 1.0:
            weights.setdefault(coding.lower(), q)
    if "gzip" not in weights and "x-gzip" in weights:
        weights["gzip"] = weights["x-gzip"]  # RFC 9110 §8.4.1.3: x-gzip is an alias
    return weights


def negotiate(accept_encoding: str | None) -> str | None:
    """Pick the content coding for a request, per RFC 9110 §12.5.3.

    Returns ``"br"``, ``"gzip"`` or ``None`` for identity.

    Rules, in order:

    1. No header or an empty header means identity (curl and health checks send none; an empty
       value explicitly asks for no coding).
    2. Among br and gzip, the highest q above 0 wins, whether listed by name or matched by
       ``*`` (which only covers codings not listed). On equal q, br beats gzip.
    3. Otherwise identity, unless identity is excluded (``identity;q=0``, or ``*;q=0`` without
       an ``identity`` entry).
    4. If identity is excluded, a supported coding the client did not explicitly refuse is
       used (``identity;q=0`` alone gives br).
    5. If every option is refused, we still answer identity rather than 406: a readable
       response beats an error for a client whose header is almost certainly a mistake.

    Codings are case-insensitive; entries with a malformed q-value are ignored, not guessed.
    """
    if not accept_encoding or not accept_encoding.strip():
        return None
    weights = _parse_accept_encoding(accept_encoding)
    star = weights.get("*")

    best: str | None = None
    best_q = 0.0
    for coding in _SUPPORTED:
        q = weights.get(coding, star if star is not None else 0.0)
        if q > best_q:
            best, best_q = coding, q
    if best is not None:
        return best

    identity_q = weights.get("identity", star if star is not None else 1.0)
    if identity_q > 0.0:
        return None
    if star is None:  # without "*", a coding that is not listed was not refused either
        for coding in _SUPPORTED:
            if coding not in weights:
                return coding
    return None


@functools.lru_cache(maxsize=256)
def negotiated(raw_accept: bytes | str | None) -> str | None:
    """`negotiate` per raw header value: clients send the same few values over and over."""
    if isinstance(raw_accept, bytes):
        return negotiate(raw_accept.decode("latin-1"))
    return negotiate(raw_accept)


def encoded_forms(
    body: bytes, *, minimum_size: int, brotli_quality: int, gzip_level: int
) -> dict[str, bytes]:
    """Each supported coding of `body` that is smaller than it; none below `minimum_size`.

    Made once when a response is stored in the cache, so its hits never compress again.
    """
    if len(body) < minimum_size:
        return {}
    began = time.perf_counter()
    forms = {
        "br": brotli.compress(body, mode=brotli.MODE_TEXT, quality=brotli_quality),
        "gzip": gzip.compress(body, compresslevel=gzip_level, mtime=0),
    }
    record_timing("compress", (time.perf_counter() - began) * 1000.0)
    return {coding: form for coding, form in forms.items() if len(form) < len(body)}


def coded_etag(etag: str, coding: str) -> str:
    """The validator of the `coding` form of the representation tagged `etag`."""
    return _suffixed_etag(etag.encode("latin-1"), coding).decode("latin-1")


# ASGI header names are lower-case, in requests and in responses (ASGI HTTP spec).
def _header(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> bytes | None:
    for key, value in headers:
        if key == name:
            return value
    return None


def _with_vary(headers: Headers) -> Headers:
    """Add Accept-Encoding to Vary, merging with an existing Vary and never duplicating."""
    first = None
    for index, (key, value) in enumerate(headers):
        if key == b"vary":
            tokens = [token.strip().lower() for token in value.split(b",")]
            if b"*" in tokens or b"accept-encoding" in tokens:
                return headers
            if first is None:
                first = index
    if first is None:
        return [*headers, (b"vary", b"Accept-Encoding")]
    key, value = headers[first]
    merged = value + b", Accept-Encoding" if value.strip() else b"Accept-Encoding"
    return [*headers[:first], (key, merged), *headers[first + 1 :]]


def _suffixed_etag(etag: bytes, encoding: str) -> bytes:
    match = _ETAG.fullmatch(etag.strip())
    if match is None:
        logger.debug("leaving malformed etag untouched: %r", etag)
        return etag
    weak, opaque = match.groups()
    return b'%s"%s-%s"' % (weak or b"", opaque, encoding.encode("ascii"))


class CompressionMiddleware:
    """Pure ASGI wrapper that compresses response bodies (Starlette ``GZipMiddleware`` shape).

    A body is compressed only when the status allows a body (not 1xx/204/304), the method is
    not HEAD, it is at least ``minimum_size`` bytes, the inner app did not already encode it
    and compressing actually makes it smaller.

    Args:
        app: The inner ASGI app.
        minimum_size: Smaller bodies are sent as they are; below ~1 KB the saved bytes do not
            pay for the CPU and the extra header.
        brotli_quality: 4–5 gives most of br's gain at gzip-like CPU cost.
        gzip_level: zlib level for gzip.
        stream_levels: (brotli quality, gzip level) of streamed bodies, by default the same
            as the others. A stream is compressed on every request and can be large: the
            fastest levels may pay better there.
        on_compress: Called with (encoding, raw bytes, compressed bytes, cpu ms) for metrics.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        minimum_size: int = 1024,
        brotli_quality: int = 4,
        gzip_level: int = 6,
        stream_levels: tuple[int, int] | None = None,
        on_compress: Callable[[str, int, int, float], None] | None = None,
    ) -> None:
        self.app = app
        self.minimum_size = minimum_size
        self.brotli_quality = brotli_quality
        self.gzip_level = gzip_level
        self.stream_levels = stream_levels or (brotli_quality, gzip_level)
        self.on_compress = on_compress

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        encoding = negotiated(_header(scope.get("headers", ()), b"accept-encoding"))
        is_head = scope.get("method") == "HEAD"
        start: Message | None = None
        chunks: list[bytes] = []
        stream: _StreamCompressor | None = None

        async def buffering_send(message: Message) -> None:
            nonlocal start, stream
            if message["type"] != "http.response.body":
                if message["type"] == "http.response.start":
                    start = message
                else:
                    await send(message)
            elif stream is not None:
                await send(stream.body_message(message))
            elif start is None:
                await send(message)
            elif message.get("more_body", False) and not chunks and _streamed(start):
                headers = _with_vary(list(start.get("headers", ())))
                if self._compressible(start["status"], headers, encoding, is_head):
                    assert encoding is not None
                    stream = _StreamCompressor(encoding, *self.stream_levels)
                    headers = _encoded_headers(headers, encoding, None)
                    await send({**start, "headers": headers})
                    await send(stream.body_message(message))
                else:
                    await send({**start, "headers": headers})
                    await send(message)
                start = None
            else:
                chunks.append(message.get("body", b""))
                if not message.get("more_body", False):
                    await self._finish(start, b"".join(chunks), encoding, is_head, send)
                    start = None

        await self.app(scope, receive, buffering_send)

    def _compressible(
        self, status: int, headers: Headers, encoding: str | None, is_head: bool
    ) -> bool:
        return (
            encoding is not None
            and not is_head
            and status >= 200
            and status not in _NO_BODY_STATUSES
            and _header(headers, b"content-encoding") is None
        )

    async def _finish(
        self, start: Message, body: bytes, encoding: str | None, is_head: bool, send: Send
    ) -> None:
        headers = _with_vary(list(start.get("headers", ())))
        if len(body) >= self.minimum_size and self._compressible(
            start["status"], headers, encoding, is_head
        ):
            assert encoding is not None
            compressed = self._compress(body, encoding)
            if compressed is not None:
                body, headers = compressed, _encoded_headers(headers, encoding, len(compressed))
        await send({**start, "headers": headers})
        await send({"type": "http.response.body", "body": body, "more_body": False})

    def _compress(self, body: bytes, encoding: str) -> bytes | None:
        began = time.perf_counter()
        if encoding == "br":
            out: bytes = brotli.compress(body, mode=brotli.MODE_TEXT, quality=self.brotli_quality)
        else:
            out = gzip.compress(body, compresslevel=self.gzip_level, mtime=0)
        ms = (time.perf_counter() - began) * 1000.0
        record_timing("compress", ms)
        if self.on_compress is not None:
            self.on_compress(encoding, len(body), len(out), ms)
        return out if len(out) < len(body) else None


def _streamed(start: Message) -> bool:
    """A body in several messages with no Content-Length is a stream of unknown size (Falcon's
    `resp.stream`): it is passed on chunk by chunk. A body of known length is buffered."""
    return _header(start.get("headers", ()), b"content-length") is None


def _encoded_headers(headers: Headers, encoding: str, length: int | None) -> Headers:
    """Headers of the encoded representation; `length` None: streamed, no Content-Length."""
    result: Headers = []
    for key, value in headers:
        if key == b"content-length":
            continue
        if key == b"etag":
            value = _suffixed_etag(value, encoding)
        result.append((key, value))
    result.append((b"content-encoding", encoding.encode("ascii")))
    if length is not None:
        result.append((b"content-length", str(length).encode("ascii")))
    return result


class _StreamCompressor:
    """One streamed body, compressed chunk by chunk; every chunk is flushed, so what the
    client has received so far always decodes."""

    def __init__(self, encoding: str, brotli_quality: int, gzip_level: int) -> None:
        self._brotli: Any = None
        self._gzip: Any = None
        if encoding == "br":
            self._brotli = brotli.Compressor(mode=brotli.MODE_TEXT, quality=brotli_quality)
        else:  # wbits 16 + 15: the gzip container, as gzip.compress writes it
            self._gzip = zlib.compressobj(gzip_level, zlib.DEFLATED, 16 + zlib.MAX_WBITS)

    def body_message(self, message: Message) -> Message:
        data: bytes = message.get("body", b"")
        more = message.get("more_body", False)
        if self._brotli is not None:
            out = self._brotli.process(data) + (self._brotli.flush() if more else b"")
            out += b"" if more else self._brotli.finish()
        else:
            out = self._gzip.compress(data)
            out += self._gzip.flush(zlib.Z_SYNC_FLUSH if more else zlib.Z_FINISH)
        return {"type": "http.response.body", "body": out, "more_body": more}
