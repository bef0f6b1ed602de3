"""Every error leaves as RFC 9457 `application/problem+json`. Mapped once, here."""

from __future__ import annotations

import logging
from typing import Any

import falcon
import orjson
from falcon.asgi import Request, Response

from enterprise.errors import DomainError, Unavailable
from middleware.request_context import current_request_id

logger = logging.getLogger(__name__)
PROBLEM_BASE = "https://enterprise.example/problems/"
MEDIA_PROBLEM = "application/problem+json"


def _send(
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


async def domain_error(
    req: Request, resp: Response, ex: DomainError, params: dict[str, Any]
) -> None:
    if isinstance(ex, Unavailable):
        resp.set_header("Retry-After", str(ex.retry_after))
    _send(req, resp, ex.status, ex.title, ex.detail, ex.slug, errors=ex.errors)


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
    _send(req, resp, ex.status_code, title, ex.description or title, slug)


async def unexpected(req: Request, resp: Response, ex: Exception, params: dict[str, Any]) -> None:
    """A bug: log it with the request id, answer 500 without internals."""
    logger.exception("unhandled error on %s %s", req.method, req.path)
    _send(req, resp, 500, "Internal Server Error", "an unexpected error occurred", "internal")


def register(app: falcon.asgi.App[Any, Any]) -> None:
    # Most specific last: Falcon picks the handler of the nearest base class.
    app.add_error_handler(Exception, unexpected)
    app.add_error_handler(falcon.HTTPError, http_error)
    app.add_error_handler(DomainError, domain_error)
