"""Every error leaves as RFC 9457 `application/problem+json`. Mapped once, here."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import falcon
import orjson
from falcon.asgi import Request, Response

from enterprise.context import current_request_id
from enterprise.errors import DomainError, Unavailable

logger = logging.getLogger(__name__)
PROBLEM_BASE = "https://enterprise.example/problems/"
MEDIA_PROBLEM = "application/problem+json"
# A refused request's unread body is read and dropped, up to this much for this long.
DRAIN_BYTES = 16 * 1024 * 1024
DRAIN_SECONDS = 5.0


async def _drain(req: Request) -> None:
    """Read and drop what is left of the request body before the problem is sent.

    A request refused before its body is read (413 on its Content-Length, 415, 401, 429)
    leaves the body in the socket. When the server then closes the connection with unread
    data, TCP resets it, and a client that sends its whole body before reading (httpx,
    requests) meets a reset instead of the answer (granian does close it; uvicorn reads the
    rest itself). So, as a lingering close would: up to 16 MiB within 5 s, then the answer
    goes out whatever is left (past that a reset is the client's lot)."""
    stream = req.stream
    if stream.closed or stream.eof:
        return
    left = DRAIN_BYTES
    try:
        async with asyncio.timeout(DRAIN_SECONDS):
            while left > 0:
                chunk = await stream.read(min(left, 1 << 16))
                if not chunk:
                    return
                left -= len(chunk)
    except TimeoutError:
        return


async def _send(
    req: Request, resp: Response, status: int, title: str, detail: str, slug: str, **extra: Any
) -> None:
    body: dict[str, Any] = {
        "type": PROBLEM_BASE + slug,
        "title": title,
        "status": status,
        "detail": detail,
        "instance": req.path,
    }
    if current_request_id():
        body["requestId"] = current_request_id()
    body.update({k: v for k, v in extra.items() if v})
    resp.status = status
    resp.etag = None  # a validator set before the failure does not describe this body
    resp.content_type = MEDIA_PROBLEM
    resp.data = orjson.dumps(body)
    resp.set_header("Cache-Control", "no-store")
    resp.complete = True
    await _drain(req)


async def domain_error(
    req: Request, resp: Response, ex: DomainError, params: dict[str, Any]
) -> None:
    if isinstance(ex, Unavailable):
        resp.set_header("Retry-After", str(ex.retry_after))
    await _send(req, resp, ex.status, ex.title, ex.detail, ex.slug, errors=ex.errors)


async def http_error(
    req: Request, resp: Response, ex: falcon.HTTPError, params: dict[str, Any]
) -> None:
    """Falcon's own errors (404 route, 405, 401 from middleware) in the same format."""
    headers = ex.headers or {}
    pairs = list(headers.items()) if isinstance(headers, dict) else list(headers)
    for name, value in pairs:
        resp.set_header(name, value)
    title = ex.title or falcon.code_to_http_status(ex.status_code).split(" ", 1)[1]
    slug = title.lower().replace(" ", "-")
    await _send(req, resp, ex.status_code, title, ex.description or title, slug)


async def unexpected(req: Request, resp: Response, ex: Exception, params: dict[str, Any]) -> None:
    """A bug: log it with the request id, answer 500 without internals."""
    logger.exception("unhandled error on %s %s", req.method, req.path)
    await _send(req, resp, 500, "Internal Server Error", "an unexpected error occurred", "internal")


def register(app: falcon.asgi.App[Any, Any]) -> None:
    # Most specific last: Falcon picks the handler of the nearest base class.
    app.add_error_handler(Exception, unexpected)
    app.add_error_handler(falcon.HTTPError, http_error)
    app.add_error_handler(DomainError, domain_error)
