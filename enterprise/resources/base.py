"""Generic list/item machinery shared by every collection, configured per resource."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

import falcon
import orjson
from bson import ObjectId
from falcon.asgi import Request, Response

from enterprise import generations
from enterprise.errors import PayloadTooLarge, UnsupportedMediaType
from enterprise.etags import item_etag, item_versions
from enterprise.openapi import Document, ListOf, Operation, Patch, Replacement
from enterprise.querying import (
    ListQuery,
    ResourceSpec,
    object_id,
    parse_fields,
    parse_list,
    reject_unknown,
)
from enterprise.schemas import IMMUTABLE, parse_json
from enterprise.services.base import CrudService, Page, Versioned

JSON_TYPES = ("application/json", "application/merge-patch+json")
_CHARSET = re.compile(r"charset\s*=\s*(\"?[^;\s]*)", re.IGNORECASE)
ITEM_PARAMS = frozenset({"fields"})
# (generation names, TTL, is a list): a function of the route and its path parameters only,
# which is what lets `CacheTargets` remember it per path (enterprise/cache_targets.py).
CachePolicy = tuple[list[str], float, bool]


_OBJECT_ID_STR = ObjectId.__str__


def _default(value: Any) -> Any:
    # Three ObjectIds a document: called directly, not through str()'s slot dispatch, it costs
    # 0.5 µs less a document (1.30 -> 0.79 µs for an assignment's `dumps`).
    if type(value) is ObjectId:
        return _OBJECT_ID_STR(value)
    if isinstance(value, ObjectId):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


_OPTIONS = orjson.OPT_UTC_Z | orjson.OPT_NAIVE_UTC


def dumps(payload: Any) -> bytes:
    """JSON, times in UTC with a `Z`. A naive datetime is UTC: exports decode dates naive
    (`Repository.stream`), everything else aware."""
    return orjson.dumps(payload, default=_default, option=_OPTIONS)


@dataclass(frozen=True, slots=True)
class Limits:
    default_limit: int
    max_limit: int
    max_body_bytes: int


async def read_json(req: Request, limits: Limits) -> Any:
    """The request body as JSON: 415 for other media, 413 past the size limit.

    Writes take no query parameters: an unknown one is refused before anything is stored.
    """
    reject_unknown(req.params, frozenset())
    media, _, parameters = (req.content_type or "").partition(";")
    if media.strip().lower() not in JSON_TYPES:
        raise UnsupportedMediaType("send the body as application/json")
    charset = _CHARSET.search(parameters)
    if charset and charset.group(1).strip('"').lower() not in ("utf-8", "utf8"):
        raise UnsupportedMediaType("JSON bodies are UTF-8 (RFC 8259); send charset=utf-8 or none")
    if req.content_length is not None and req.content_length > limits.max_body_bytes:
        raise PayloadTooLarge(f"the body exceeds {limits.max_body_bytes} bytes")
    body = await req.stream.read(limits.max_body_bytes + 1)
    if len(body) > limits.max_body_bytes:
        raise PayloadTooLarge(f"the body exceeds {limits.max_body_bytes} bytes")
    return parse_json(body)


def document_of(service: CrudService) -> Document:
    """The response shape of the service's documents, for the OpenAPI document."""
    return Document(service.schema.__name__ + "Document", service.schema, service.spec)


def collection_operations(
    service: CrudService, limits: Limits, *, creatable: bool
) -> dict[str, Operation]:
    name, document = service.spec.name, document_of(service)
    operations = {
        "get": Operation(
            f"List {name} (keyset pages)",
            name,
            response=ListOf(document),
            list_spec=service.spec,
            max_limit=limits.max_limit,
            conditional_read=True,
        )
    }
    if creatable:
        operations["post"] = Operation(
            f"Create one of {name}",
            name,
            body=service.schema,
            response=document,
            status=201,
            errors=(409,),
        )
    return operations


def item_operations(service: CrudService) -> dict[str, Operation]:
    name, document = service.spec.name, document_of(service)
    write = Operation("", name, response=document, conditional_write=True, errors=(409,))
    return {
        "get": Operation(
            f"Read one of {name}",
            name,
            response=document,
            fields_spec=service.spec,
            conditional_read=True,
        ),
        "put": replace(
            write,
            summary=f"Replace one of {name} (immutable fields may be left out)",
            body=Replacement(service.schema, IMMUTABLE.get(service.schema, frozenset())),
        ),
        "patch": replace(
            write,
            summary=f"Change one of {name} (JSON merge patch)",
            body=Patch(service.schema),
            body_media=JSON_TYPES,
        ),
        "delete": replace(write, summary=f"Delete one of {name}", status=204, response=None),
    }


def list_query(req: Request, spec: ResourceSpec, limits: Limits, **kwargs: Any) -> ListQuery:
    """The request's list parameters, parsed once: `check_request` (before any 304) and the
    responder both ask."""
    if "list_query" not in req.context:
        req.context.list_query = parse_list(
            req.params,
            spec,
            default_limit=limits.default_limit,
            max_limit=limits.max_limit,
            **kwargs,
        )
    query: ListQuery = req.context.list_query
    return query


def send_page(req: Request, resp: Response, page: Page) -> None:
    body = {
        "data": page.data,
        "page": {
            "limit": page.limit,
            "next": page.next,
            "prev": page.prev,
            "hasMore": page.has_more,
        },
        "count": page.count,
    }
    links = []
    for rel, cursor in (("next", page.next), ("prev", page.prev)):
        if cursor:
            params = {**req.params, "cursor": cursor}
            links.append(f'<{req.path}?{urlencode(params)}>; rel="{rel}"')
    if links:
        resp.set_header("Link", ", ".join(links))
    resp.set_header("X-Count-Strategy", page.count["strategy"])
    if page.count["value"] is not None:
        resp.set_header("X-Total-Count", str(page.count["value"]))
    resp.data = dumps(body)


def send_item(resp: Response, item: Versioned, fields: tuple[str, ...] | None = None) -> None:
    document, version = item
    resp.etag = item_etag(document["id"], version, fields)
    resp.data = dumps(document)


class Collection:
    """GET (keyset list) and POST on a collection URL.

    Args:
        service: the collection's service.
        limits: pagination and body limits.
        ttl: response-cache TTL for lists.
        parent: URL parameter naming the parent organization, for nested collections.
    """

    def __init__(
        self,
        service: CrudService,
        limits: Limits,
        *,
        ttl: float,
        parent: str | None = None,
        creatable: bool = True,
    ) -> None:
        self._service = service
        self._limits = limits
        self._ttl = ttl
        self._parent = parent
        self._creatable = creatable
        self.budget_class = service.spec.list_budget
        self.cache_kind = "lists"
        self.openapi = collection_operations(service, limits, creatable=creatable)

    def cache_policy(self, req: Request, params: dict[str, Any]) -> CachePolicy | None:
        name = self._service.spec.name
        if self._parent:
            return [generations.tenant(name, params[self._parent])], self._ttl, True
        return [generations.collection(name)], self._ttl, True

    def check_request(self, req: Request, params: dict[str, Any]) -> None:
        """A malformed list request is a 400 even when If-None-Match would match (RFC 9110
        §13.2.1: preconditions apply only to requests that would otherwise succeed)."""
        self._service.check_cursor(self._query(req, params))

    def _query(self, req: Request, params: dict[str, Any]) -> ListQuery:
        fixed = {}
        if self._parent:
            fixed = {"organizationId": object_id(params[self._parent], self._parent)}
        return list_query(req, self._service.spec, self._limits, fixed=fixed)

    async def on_get(self, req: Request, resp: Response, **params: str) -> None:
        query = self._query(req, params)
        send_page(req, resp, await self._service.find(req.context.principal, query, req.path))

    on_head = on_get

    async def on_post(self, req: Request, resp: Response, **params: str) -> None:
        if not self._creatable:
            raise falcon.HTTPMethodNotAllowed(["GET", "HEAD"])
        body = await read_json(req, self._limits)
        parent = object_id(params[self._parent], self._parent) if self._parent else None
        created = await self._service.create(req.context.principal, body, parent)
        send_item(resp, created)
        resp.status = falcon.HTTP_201
        resp.location = f"/api/v1/{self._service.spec.name}/{created.document['id']}"


class Item:
    """GET/HEAD, PUT, PATCH (JSON merge patch) and DELETE on one document."""

    conditional_writes = True

    def __init__(self, service: CrudService, limits: Limits, *, ttl: float, param: str) -> None:
        self._service = service
        self._limits = limits
        self._ttl = ttl
        self._param = param
        self.budget_class = service.spec.item_budget
        self.cache_kind = service.spec.name
        self.openapi = item_operations(service)

    def cache_policy(self, req: Request, params: dict[str, Any]) -> CachePolicy | None:
        name = generations.document(self._service.spec.name, params[self._param])
        return [name], self._ttl, False

    def _id(self, params: dict[str, str]) -> ObjectId:
        return object_id(params[self._param], self._param)

    async def on_get(self, req: Request, resp: Response, **params: str) -> None:
        reject_unknown(req.params, ITEM_PARAMS)
        fields = parse_fields(req.get_param("fields"), self._service.spec)
        item = await self._service.get(req.context.principal, self._id(params), fields)
        send_item(resp, item, fields)

    on_head = on_get

    async def on_patch(self, req: Request, resp: Response, **params: str) -> None:
        await self._write(req, resp, params, replace=False)

    async def on_put(self, req: Request, resp: Response, **params: str) -> None:
        await self._write(req, resp, params, replace=True)

    async def _write(
        self, req: Request, resp: Response, params: dict[str, str], *, replace: bool
    ) -> None:
        document_id = self._id(params)
        body = await read_json(req, self._limits)
        updated = await self._service.update(
            req.context.principal,
            document_id,
            body,
            _held_versions(req, document_id),
            replace=replace,
        )
        send_item(resp, updated)

    async def on_delete(self, req: Request, resp: Response, **params: str) -> None:
        reject_unknown(req.params, frozenset())
        document_id = self._id(params)
        await self._service.delete(
            req.context.principal, document_id, _held_versions(req, document_id)
        )
        resp.status = falcon.HTTP_204


def _held_versions(req: Request, document_id: ObjectId) -> set[int] | None:
    """The versions of `document_id` the client's `If-Match` holds (strong comparison: a
    weak tag holds none); None when the write has no precondition (no `If-Match`, or `*`)."""
    tags: list[str] | None = req.context.if_match
    return None if tags is None else item_versions(tags, document_id)
