"""Conditional requests (RFC 9110 §13): If-None-Match → 304, If-Match → 412/428.

* GET/HEAD: after the resource produced a representation with an ETag, a matching
  `If-None-Match` (weak comparison, lists, `*`) turns it into a 304. The response cache uses
  `revalidation` and `not_modified` to answer a hit's revalidation without its body.
* Lists: a `describe` hook yields the list's validator from collection generations before
  any database work, so a matching `If-None-Match` is answered 304 without MongoDB. A
  resource's optional `check_request(req, params)` runs first: a malformed request gets its
  4xx, not a 304 (§13.2.1).
* Writes: `If-Match` is parsed into `req.context.if_match`; the resource hands the service
  the versions those tags hold, for its compare-and-set (a stale tag → 412 there); when the
  setting requires it, a missing one → 428 here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import falcon
from falcon.asgi import Request, Response

from enterprise.etags import opaque

WRITE_METHODS = frozenset({"PUT", "PATCH", "DELETE"})
READ_METHODS = frozenset({"GET", "HEAD"})
REVALIDATE = "private, max-age=0, must-revalidate"


def parse_tags(value: str | None) -> list[str] | None:
    if value is None:
        return None
    if "," not in value:  # the usual case: one tag, echoed back
        value = value.strip()
        return [value] if value else None
    return [part.strip() for part in value.split(",") if part.strip()] or None


def matching_tag(tags: list[str], current: str) -> str | None:
    """The client's tag that weakly matches `current` (RFC 9110 §8.8.3.2), if any."""
    if current in tags:  # the usual case: the tag we sent, echoed back
        return current
    wanted = opaque(current)
    for tag in tags:
        if tag == "*" or opaque(tag) == wanted:
            return current if tag == "*" else tag
    return None


def revalidation(req: Request, current: str) -> str | None:
    """The tag to answer 304 with, if the request's If-None-Match matches `current`."""
    return if_none_match(req.get_header("If-None-Match"), current)


def if_none_match(value: str | None, current: str) -> str | None:
    """The tag to answer 304 with, if an If-None-Match `value` matches `current`."""
    if value is None:
        return None
    if value == current:  # the usual case: the one tag we sent, echoed back as it was
        return current
    tags = parse_tags(value)
    return matching_tag(tags, current) if tags else None


def not_modified(resp: Response, matched: str) -> None:
    """Make `resp`, which holds no representation yet, a 304 (RFC 9110 §15.4.5): the
    validator and caching headers of the 200, no body and no Content-Type.

    `matched` is the client's tag: it names the content coding the client holds (-br, -gzip).
    """
    resp.status = falcon.HTTP_304
    resp.etag = matched
    if resp.get_header("Cache-Control") is None:
        resp.set_header("Cache-Control", REVALIDATE)


def _drop_representation(resp: Response) -> None:
    """A 304 made from a 200 the resource rendered carries none of its representation."""
    resp.content_type = None
    resp.data = None
    resp.text = None
    resp.media = None


class ConditionalMiddleware:
    """Answers revalidations and prepares write preconditions.

    Args:
        describe: async hook `(req, resource, params)` returning an object with a
            `list_etag` attribute (or None); shared with the response cache so generations
            are read once per request.
        require_if_match: whether PUT/PATCH/DELETE on item resources need `If-Match`.
    """

    def __init__(
        self,
        describe: Callable[[Request, object, dict[str, Any]], Awaitable[Any | None]],
        *,
        require_if_match: bool = False,
    ) -> None:
        self._describe = describe
        self._require_if_match = require_if_match

    async def process_resource(
        self, req: Request, resp: Response, resource: object, params: dict[str, Any]
    ) -> None:
        method = req.method
        if method in WRITE_METHODS:
            req.context.if_match = if_match = parse_tags(req.get_header("If-Match"))
            if (
                self._require_if_match
                and if_match is None
                and getattr(resource, "conditional_writes", False)
            ):
                raise falcon.HTTPPreconditionRequired(
                    title="Precondition Required",
                    description="send If-Match with the ETag you last read",
                )
            return
        if method not in READ_METHODS or resource is None:
            return
        # RFC 9110 §13.2.1: a request that would fail without its preconditions gets that
        # failure, not a 304, so the resource checks its parameters first.
        check = getattr(resource, "check_request", None)
        if check is not None:
            check(req, params)
        target = await self._describe(req, resource, params)
        list_etag = getattr(target, "list_etag", None)
        if list_etag is None:
            return
        # Set before the resource runs, so the response cache stores it with the body.
        resp.etag = list_etag
        matched = revalidation(req, list_etag)
        if matched is not None:
            not_modified(resp, matched)
            resp.complete = True

    async def process_response(
        self, req: Request, resp: Response, resource: object, req_succeeded: bool
    ) -> None:
        etag = resp.etag
        # A 304 made earlier (here, or by the response cache) is complete already.
        if not etag or resp.status_code != 200 or req.method not in READ_METHODS:
            return
        # Clients (and shared caches) must revalidate: the validator is cheap to check.
        if resp.get_header("Cache-Control") is None:
            resp.set_header("Cache-Control", REVALIDATE)
        matched = revalidation(req, etag)
        if matched is not None:
            not_modified(resp, matched)
            _drop_representation(resp)
