"""The OpenAPI 3.1 document, generated once from the route table and the msgspec schemas.

Nothing here is kept per route by hand. Each resource may declare an `openapi` attribute, a
mapping from HTTP method to an `Operation` (its summary, body and response types, query
parameters, conditional behaviour); `Collection`/`Item` derive theirs from their service's
`ResourceSpec` and write schema. A resource that declares nothing still appears: one generic
operation per responder (`on_get`, `on_post`, ...), with its path parameters and the problem
responses every route can give. HEAD (a GET without its body) and OPTIONS are left implied.

Request and problem schemas come from `msgspec.json.schema_components`, so the document says
what the decoders and encoders really accept and send.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec
import orjson

from enterprise.querying import COUNT_STRATEGIES, RESERVED_PARAMS, ResourceSpec

METHODS = ("get", "put", "post", "patch", "delete")
REF = "#/components/schemas/{name}"
HEX_ID = {"type": "string", "pattern": "^[0-9a-fA-F]{24}$"}
# Fields the server sets (every document carries the first four), whatever the write schema says.
SERVER_FIELDS: dict[str, Any] = {
    "id": HEX_ID,
    "createdAt": {"type": "string", "format": "date-time"},
    "updatedAt": {"type": "string", "format": "date-time"},
    "version": {"type": "integer", "minimum": 1},
    "assignedAt": {"type": "string", "format": "date-time"},  # set by the service on create
}
PROBLEM_MEDIA = "application/problem+json"
STATUS_TEXT = {
    304: "Not Modified: the representation matches If-None-Match",
    400: "Malformed request: body, query parameter, id or cursor",
    401: "No API key, or an unknown or revoked one",
    403: "The key's role may not do this",
    404: "No such resource (or not visible to this key's organization)",
    409: "A uniqueness or state rule was violated",
    412: "If-Match names a version that is no longer current",
    413: "The body is larger than the limit",
    414: "The query string is longer than the limit",
    415: "The body is not application/json (UTF-8)",
    422: "The body is JSON but breaks the schema; `errors` lists the fields",
    428: "If-Match is required (REQUIRE_IF_MATCH) and was not sent",
    429: "Too many requests for this key; retry after `Retry-After` seconds",
    503: "A dependency cannot serve the request now; retry after `Retry-After` seconds",
    504: "The route's deadline passed; the server-side operation was abandoned",
}


class FieldProblem(msgspec.Struct, omit_defaults=True):
    message: str
    field: str | None = None


class Problem(msgspec.Struct, omit_defaults=True):
    """RFC 9457 problem details, as `enterprise/problems.py` sends them."""

    type: str
    title: str
    status: int
    detail: str
    instance: str
    requestId: str | None = None
    errors: list[FieldProblem] = []


class PageInfo(msgspec.Struct):
    limit: int
    next: str | None
    prev: str | None
    hasMore: bool


class CountInfo(msgspec.Struct):
    value: int | None
    strategy: str
    exact: bool


@dataclass(frozen=True, slots=True)
class Parameter:
    """A query parameter: its JSON schema and whether it must be sent."""

    name: str
    schema: Mapping[str, Any]
    description: str = ""
    required: bool = False


@dataclass(frozen=True, slots=True)
class Operation:
    """What one responder takes and answers.

    Args:
        summary: one line for the operation.
        tag: the group it is listed under.
        body: msgspec type of the JSON request body (None: no body).
        body_media: media types the body may be sent as.
        response: msgspec type of the success body, a JSON schema dict, or None for no body.
        media: media type of the success body.
        status: the success status.
        query: the query parameters it takes (anything else is a 400).
        list_spec: a keyset list: limit, cursor, sort, fields, count and the spec's filters.
        fields_spec: an item read taking `?fields=` from this spec.
        conditional_read: answers 304 to a matching If-None-Match (sends an ETag).
        conditional_write: takes If-Match (412 when stale, 428 when required and missing).
        errors: further problem statuses it can answer.
        description: longer prose, when the summary is not enough.
        max_limit: the largest `?limit=` of a list.
        path: schemas of path parameters that are not 24-hex ids (`*_id` are by default).
        other: non-problem answers besides the success one: status → JSON schema of a body.
    """

    summary: str
    tag: str
    body: Any = None
    body_media: tuple[str, ...] = ("application/json",)
    response: Any = None
    media: str | tuple[str, ...] = "application/json"
    status: int = 200
    query: tuple[Parameter, ...] = ()
    list_spec: ResourceSpec | None = None
    fields_spec: ResourceSpec | None = None
    conditional_read: bool = False
    conditional_write: bool = False
    errors: tuple[int, ...] = ()
    description: str = ""
    max_limit: int = 100
    path: Mapping[str, Any] = field(default_factory=dict)
    other: Mapping[int, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Document:
    """A stored document's response shape: the write schema's fields, all optional (`?fields=`
    selects), plus the server's fields and `extra` ones the service adds."""

    name: str
    schema: type[msgspec.Struct]
    spec: ResourceSpec
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ListOf:
    """A keyset page (`enterprise.resources.base.send_page`) of `document`s."""

    document: Document


@dataclass(frozen=True, slots=True)
class Patch:
    """A JSON merge patch (RFC 7396) of `schema`: any subset of its fields, `null` removes."""

    schema: type[msgspec.Struct]


@dataclass(frozen=True, slots=True)
class Replacement:
    """A PUT body of `schema`, where the `kept` fields (immutable ones) may be left out."""

    schema: type[msgspec.Struct]
    kept: frozenset[str]


def list_parameters(spec: ResourceSpec, max_limit: int) -> tuple[Parameter, ...]:
    """The list parameters `enterprise.querying.parse_list` accepts for `spec`."""
    params = [
        Parameter("limit", {"type": "integer", "minimum": 1, "maximum": max_limit}),
        Parameter("cursor", {"type": "string"}, "the `page.next` or `page.prev` of a page"),
        Parameter("sort", {"type": "string", "enum": sorted(spec.sorts)}),
        fields_parameter(spec),
        Parameter("count", {"type": "string", "enum": list(COUNT_STRATEGIES)}),
    ]
    for name, filter_spec in sorted(spec.filters.items()):
        schema: dict[str, Any] = {"type": "string", "maxLength": filter_spec.max_length}
        if filter_spec.kind == "objectid":
            schema = dict(HEX_ID)
        elif filter_spec.kind == "bool":
            schema = {"type": "string", "enum": ["true", "false"]}
        elif filter_spec.kind == "enum":
            schema = {"type": "string", "enum": sorted(filter_spec.choices)}
        params.append(Parameter(name, schema, f"filter on `{filter_spec.field}`"))
    assert {p.name for p in params} >= RESERVED_PARAMS - {"expand"}
    return tuple(params)


def fields_parameter(spec: ResourceSpec) -> Parameter:
    names = sorted(spec.fields | {"id"})
    return Parameter(
        "fields",
        {"type": "string", "pattern": _fields_pattern(names)},
        "comma-separated; any of " + ", ".join(names),
    )


def _fields_pattern(names: Sequence[str]) -> str:
    # As `parse_fields` reads it: blanks around names and empty items are ignored.
    one = r"\s*(" + "|".join(re.escape(name) for name in names) + r")?\s*"
    return f"^{one}(,{one})*$"


class Builder:
    """Collects schemas while walking the routes; `build()` returns the document."""

    def __init__(self, *, title: str, version: str, public_prefixes: tuple[str, ...]) -> None:
        self._title = title
        self._version = version
        self._public = public_prefixes
        self._types: list[Any] = [Problem, PageInfo, CountInfo]
        self._documents: dict[str, Document] = {}
        self._patches: set[str] = set()
        self._replacements: dict[str, frozenset[str]] = {}
        self._paths: dict[str, dict[str, Any]] = {}

    def add_routes(self, routes: Iterable[tuple[str, object]]) -> None:
        for template, resource in routes:
            self._paths[template] = self._path_item(template, resource)

    def build(self) -> dict[str, Any]:
        _, components = msgspec.json.schema_components(self._types, ref_template=REF)
        for name, document in self._documents.items():
            components[name] = self._document_schema(document, components)
        for name, kept in self._replacements.items():
            replacement = dict(components[name])
            replacement["required"] = [f for f in replacement.get("required", []) if f not in kept]
            replacement["title"] = name + "Replacement"
            components[name + "Replacement"] = replacement
        for name in self._patches:
            components[name + "Patch"] = _patch_schema(components[name], components)
        return {
            "openapi": "3.1.0",
            "info": {
                "title": self._title,
                "version": self._version,
                "description": "Generated from the route table and the msgspec schemas "
                "(`enterprise/openapi.py`). Errors are RFC 9457 problem details.",
            },
            "servers": [{"url": "/"}],
            "paths": self._paths,
            "components": {
                "schemas": dict(sorted(components.items())),
                "securitySchemes": {
                    "apiKey": {
                        "type": "http",
                        "scheme": "bearer",
                        "description": "An API key: `Authorization: Bearer ent_...`",
                    }
                },
            },
            "security": [{"apiKey": []}],
        }

    # -- paths ----------------------------------------------------------------------------

    def _path_item(self, template: str, resource: object) -> dict[str, Any]:
        declared: Mapping[str, Operation] | None = getattr(resource, "openapi", None)
        responders = [m for m in METHODS if callable(getattr(resource, f"on_{m}", None))]
        if declared is None:
            summary = (type(resource).__doc__ or type(resource).__name__).strip().split("\n")[0]
            declared = {m: Operation(summary, _tag(template), response={}) for m in responders}
        unknown = set(declared) - set(responders)
        if unknown:
            raise ValueError(f"{template} documents {sorted(unknown)} but has no responder")
        public = template.startswith(self._public)
        return {
            method: self._operation(template, method, operation, public)
            for method, operation in declared.items()
        }

    def _operation(self, template: str, method: str, op: Operation, public: bool) -> dict[str, Any]:
        result: dict[str, Any] = {
            "operationId": _operation_id(method, template),
            "summary": op.summary,
            "tags": [op.tag],
        }
        if op.description:
            result["description"] = op.description
        names = re.findall(r"{(\w+)}", template)
        params = list(op.query)
        if op.list_spec is not None:
            params += list_parameters(op.list_spec, op.max_limit)
        if op.fields_spec is not None:
            params.append(fields_parameter(op.fields_spec))
        parameters: list[dict[str, Any]] = [
            {"name": n, "in": "path", "required": True, "schema": op.path.get(n, _path(n))}
            for n in names
        ]
        parameters += [
            {
                "name": p.name,
                "in": "query",
                "required": p.required,
                "schema": dict(p.schema),
                **({"description": p.description} if p.description else {}),
            }
            for p in params
        ]
        if op.conditional_read:
            parameters.append(_header("If-None-Match", "an ETag from an earlier answer"))
        if op.conditional_write:
            parameters.append(_header("If-Match", "the ETag of the version being changed"))
        if parameters:
            result["parameters"] = parameters
        if op.body is not None:
            schema = self._schema_of(op.body)
            result["requestBody"] = {
                "required": True,
                "content": {media: {"schema": schema} for media in op.body_media},
            }
        if public:
            result["security"] = []
        result["responses"] = self._responses(op, public, bool(names))
        return result

    def _responses(self, op: Operation, public: bool, has_path_params: bool) -> dict[str, Any]:
        success: dict[str, Any] = {"description": "OK" if op.status < 300 else "Done"}
        media = (op.media,) if isinstance(op.media, str) else op.media
        if op.response is not None:
            schema = self._schema_of(op.response)
            success["content"] = {m: {"schema": schema} for m in media}
        if op.conditional_read:
            success["headers"] = {"ETag": {"schema": {"type": "string"}}}
        responses: dict[str, Any] = {str(op.status): success}
        statuses = {400, 414, 429, 503, 504, *op.errors}
        if not public:
            statuses |= {401, 403}
        if has_path_params:
            statuses.add(404)
        if op.body is not None:
            statuses |= {413, 415, 422}
        if op.conditional_read:
            responses["304"] = {"description": STATUS_TEXT[304]}
        if op.conditional_write:
            statuses |= {412, 428}
        for status in sorted(statuses - set(op.other)):
            responses[str(status)] = {"$ref": f"#/components/responses/{status}"}
        for status, schema in op.other.items():
            responses[str(status)] = {
                "description": STATUS_TEXT.get(status, "See the body"),
                "content": {"application/json": {"schema": schema}},
            }
        return responses

    def _schema_of(self, source: Any) -> dict[str, Any]:
        if isinstance(source, Document):
            self._types.append(source.schema)  # its fields' types come from there
            self._documents.setdefault(source.name, source)
            return {"$ref": REF.format(name=source.name)}
        if isinstance(source, ListOf):
            return {
                "type": "object",
                "properties": {
                    "data": {"type": "array", "items": self._schema_of(source.document)},
                    "page": {"$ref": REF.format(name="PageInfo")},
                    "count": {"$ref": REF.format(name="CountInfo")},
                },
                "required": ["data", "page", "count"],
                "additionalProperties": False,
            }
        if isinstance(source, Patch):
            self._types.append(source.schema)
            self._patches.add(source.schema.__name__)
            return {"$ref": REF.format(name=source.schema.__name__ + "Patch")}
        if isinstance(source, Replacement) and source.kept:
            self._types.append(source.schema)
            self._replacements[source.schema.__name__] = source.kept
            return {"$ref": REF.format(name=source.schema.__name__ + "Replacement")}
        if isinstance(source, Replacement):
            source = source.schema
        if isinstance(source, dict):
            return source
        self._types.append(source)
        return _referenced(source)

    def _document_schema(self, document: Document, components: dict[str, Any]) -> dict[str, Any]:
        base = components[document.schema.__name__]
        written = base.get("properties", {})
        properties: dict[str, Any] = {}
        for name in sorted({f.split(".")[0] for f in document.spec.fields} | {"id"}):
            if name in written and name != "id":  # the struct knows best (nullable, ...)
                schema = written[name]
            elif name in SERVER_FIELDS:
                schema = SERVER_FIELDS[name]
            elif name in document.extra:
                schema = document.extra[name]
            elif name in document.spec.id_fields:
                schema = HEX_ID
            else:
                schema = written.get(name, {})
            properties[name] = _inline(schema, components)
        return {
            "type": "object",
            "title": document.name,
            "description": f"A stored {document.schema.__name__}: `?fields=` selects which "
            "properties are present; `id` always is.",
            "properties": properties,
            "required": ["id"],
            "additionalProperties": False,
        }


def problem_responses() -> dict[str, Any]:
    problem = {"$ref": REF.format(name="Problem")}
    responses: dict[str, Any] = {}
    for status, text in STATUS_TEXT.items():
        if status == 304:
            continue
        entry: dict[str, Any] = {
            "description": text,
            "content": {PROBLEM_MEDIA: {"schema": problem}},
        }
        if status in (429, 503):
            entry["headers"] = {"Retry-After": {"schema": {"type": "string"}}}
        responses[str(status)] = entry
    return responses


def build(
    routes: Iterable[tuple[str, object]],
    *,
    title: str = "enterprise",
    version: str = "1",
    public_prefixes: tuple[str, ...] = (),
) -> dict[str, Any]:
    """The whole document for `routes` (template, resource)."""
    builder = Builder(title=title, version=version, public_prefixes=public_prefixes)
    builder.add_routes(routes)
    document = builder.build()
    document["components"]["responses"] = problem_responses()
    return document


@dataclass(frozen=True, slots=True)
class Rendered:
    body: bytes
    etag: str


def render(document: Mapping[str, Any]) -> Rendered:
    body = orjson.dumps(document, option=orjson.OPT_SORT_KEYS)
    return Rendered(body, hashlib.sha256(body).hexdigest()[:32])


# -- helpers ------------------------------------------------------------------------------


def _referenced(kind: Any) -> dict[str, Any]:
    (schema,), _ = msgspec.json.schema_components([kind], ref_template=REF)
    return dict(schema)


def _inline(schema: Any, components: Mapping[str, Any]) -> Any:
    """`schema` with component references resolved and `required` dropped (a projection
    may select part of a nested object)."""
    if isinstance(schema, list):
        return [_inline(item, components) for item in schema]
    if not isinstance(schema, dict):
        return schema
    if "$ref" in schema:
        return _inline(components[schema["$ref"].rsplit("/", 1)[-1]], components)
    return {
        key: _inline(value, components)
        for key, value in schema.items()
        if key not in ("required", "default", "title", "description")
    }


def _patch_schema(schema: Mapping[str, Any], components: Mapping[str, Any]) -> dict[str, Any]:
    """Every property optional and nullable (null removes it), nested objects merged too."""
    properties = {}
    for name, prop in schema.get("properties", {}).items():
        target = components[prop["$ref"].rsplit("/", 1)[-1]] if "$ref" in prop else {}
        nested = "properties" in target  # a struct: merged member by member
        inner = _patch_schema(target, components) if nested else _inline(prop, components)
        properties[name] = {"anyOf": [inner, {"type": "null"}]} if inner != {} else {}
    return {"type": "object", "properties": properties, "additionalProperties": False}


def _path(name: str) -> dict[str, Any]:
    return dict(HEX_ID) if name.endswith("_id") else {"type": "string"}


def _header(name: str, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "header",
        "required": False,
        "schema": {"type": "string"},
        "description": description,
    }


def _tag(template: str) -> str:
    parts = [p for p in template.split("/") if p and not p.startswith("{")]
    if parts[:2] == ["api", "v1"]:
        parts = parts[2:]
    return parts[0] if parts else "root"


def _operation_id(method: str, template: str) -> str:
    words = re.sub(r"[{}]", "", template).replace("-", "_").replace(".", "_").split("/")
    return method + "".join(w[:1].upper() + w[1:] for w in words if w)
