"""What a list or item request asks for, parsed and whitelisted per resource (pure logic).

Each resource declares a `ResourceSpec`: the fields a client may select, the sorts it may
ask for (each backed by a declared index), the filters, its budget classes and cache TTLs.
The generic list/item machinery reads the spec, so the three resources share one code path.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from bson import ObjectId
from bson.errors import InvalidId

from enterprise.cursor import SortSpec, full_sort
from enterprise.errors import InvalidInput

CountStrategy = Literal["none", "estimated", "exact"]
COUNT_STRATEGIES: tuple[CountStrategy, ...] = ("none", "estimated", "exact")
FilterKind = Literal["str", "objectid", "bool", "enum", "prefix", "since"]
RESERVED_PARAMS = frozenset({"limit", "cursor", "sort", "fields", "count", "expand"})
# C0 controls, DEL and lone surrogates (undecodable percent-escapes) in a filter value.
_CONTROL = re.compile("[\x00-\x1f\x7f\ud800-\udfff]")


def object_id(value: str, what: str = "id") -> ObjectId:
    """Parse a 24-hex id or fail with a 400 that names the parameter."""
    try:
        return ObjectId(value)
    except (InvalidId, TypeError) as ex:
        raise InvalidInput(f"{what} must be a 24-character hexadecimal id, got {value!r}") from ex


def name_key(name: str) -> str:
    """The normalised form behind case-insensitive uniqueness and prefix search."""
    return " ".join(name.split()).casefold()


@dataclass(frozen=True, slots=True)
class FilterSpec:
    field: str
    kind: FilterKind = "str"
    choices: frozenset[str] = frozenset()
    max_length: int = 200

    def parse(self, param: str, raw: str) -> Any:
        if len(raw) > self.max_length:
            raise InvalidInput(f"{param} is longer than {self.max_length} characters")
        if _CONTROL.search(raw):
            # MongoDB refuses NUL in a regular expression; no stored value holds these.
            raise InvalidInput(f"{param} holds a control character or an invalid code point")
        if self.kind == "objectid":
            return object_id(raw, param)
        if self.kind == "bool":
            if raw not in ("true", "false"):
                raise InvalidInput(f"{param} must be true or false")
            return raw == "true"
        if self.kind == "enum" and raw not in self.choices:
            raise InvalidInput(f"{param} must be one of {', '.join(sorted(self.choices))}")
        if self.kind == "since":
            return {"$gte": _instant(param, raw)}
        if self.kind == "prefix":
            # Anchored prefix on the normalised key: an index range scan on MongoDB.
            return {"$regex": "^" + _regex_escape(name_key(raw))}
        return raw


def _instant(param: str, raw: str) -> datetime:
    """An ISO 8601 date-time with its offset (`2026-12-01T10:00:00Z`), as UTC."""
    try:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00").replace(" ", "+"))
        if moment.tzinfo is None:
            raise InvalidInput(f"{param} needs a timezone offset, e.g. 2026-12-01T10:00:00Z")
        return moment.astimezone(UTC)
    except (ValueError, OverflowError) as ex:
        raise InvalidInput(f"{param} must be an ISO 8601 date-time, got {raw!r}") from ex


def _regex_escape(text: str) -> str:
    return "".join("\\" + ch if ch in r".^$*+?()[]{}|\/" else ch for ch in text)


@dataclass(frozen=True, slots=True)
class ResourceSpec:
    """How one collection is exposed: the single source for whitelists and policies."""

    name: str
    fields: frozenset[str]
    sorts: Mapping[str, SortSpec]
    default_sort: str
    filters: Mapping[str, FilterSpec] = field(default_factory=dict)
    item_budget: str = "default"
    list_budget: str = "lists"
    id_fields: frozenset[str] = frozenset()  # ObjectId-valued fields shown as strings

    def allowed_fields(self) -> str:
        return ", ".join(sorted(self.fields | {"id"}))


@dataclass(frozen=True, slots=True)
class ListQuery:
    filter: dict[str, Any]
    sort: SortSpec
    fields: tuple[str, ...] | None
    limit: int
    cursor: str | None
    count: CountStrategy
    normalised: str  # canonical query string: cache keys, list ETags, cursor binding


def reject_unknown(params: Mapping[str, Any], allowed: frozenset[str] | set[str]) -> None:
    """A 400 naming every query parameter the endpoint does not take (writes included),
    or one given more than once (its meaning would be ambiguous)."""
    repeated = sorted(name for name, value in params.items() if not isinstance(value, str))
    if repeated:
        raise InvalidInput(f"query parameter(s) {_names(repeated)} given more than once")
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise InvalidInput(
            f"unknown query parameter(s) {_names(unknown)}; "
            f"allowed: {', '.join(sorted(allowed)) or 'none'}"
        )


def _names(names: list[str], shown: int = 5) -> str:
    """A few names, each cut short: a problem never echoes a huge query back."""
    listed = ", ".join(repr(name[:40]) if len(name) > 40 else name for name in names[:shown])
    return listed + (f" and {len(names) - shown} more" if len(names) > shown else "")


def parse_fields(raw: str | None, spec: ResourceSpec) -> tuple[str, ...] | None:
    """`?fields=a,b,address.city` → a sorted, de-duplicated tuple; None means all fields."""
    if raw is None:
        return None
    names = {part.strip() for part in raw.split(",") if part.strip()}
    names.discard("id")
    unknown = sorted(name for name in names if name not in spec.fields)
    if unknown:
        raise InvalidInput(
            f"unknown field(s) {', '.join(unknown)}; allowed: {spec.allowed_fields()}",
            errors=[{"field": "fields", "message": f"unknown: {name}"} for name in unknown],
        )
    # A parent path makes its children redundant (and MongoDB refuses the collision).
    kept = sorted(n for n in names if not any(n.startswith(p + ".") for p in names if p != n))
    return tuple(kept)


def projection(
    fields: tuple[str, ...] | None, spec: ResourceSpec, extra: SortSpec = ()
) -> dict[str, int]:
    """A server-side projection: only what the client asked for, plus sort keys for cursors."""
    wanted = spec.fields if fields is None else fields
    chosen = {name for name in wanted if "." not in name or name.split(".")[0] not in wanted}
    chosen.update(name for name, _ in extra)
    return {"_id": 1, **{name: 1 for name in sorted(chosen) if name != "_id"}}


def parse_list(
    raw_params: Mapping[str, str | list[str]],
    spec: ResourceSpec,
    *,
    default_limit: int,
    max_limit: int,
    fixed: Mapping[str, Any] | None = None,
    extra_params: frozenset[str] = frozenset(),
) -> ListQuery:
    """Validate list parameters against the spec; everything unknown is a 400."""
    reject_unknown(raw_params, RESERVED_PARAMS | set(spec.filters) | extra_params)
    params = {name: value for name, value in raw_params.items() if isinstance(value, str)}
    raw_limit = params.get("limit", str(default_limit))
    if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= max_limit:
        raise InvalidInput(f"limit must be an integer from 1 to {max_limit}")
    sort_name = params.get("sort", spec.default_sort)
    if sort_name not in spec.sorts:
        raise InvalidInput(f"sort must be one of {', '.join(sorted(spec.sorts))}")
    count = next((c for c in COUNT_STRATEGIES if c == params.get("count", "none")), None)
    if count is None:
        raise InvalidInput("count must be one of none, estimated, exact")
    query_filter: dict[str, Any] = dict(fixed or {})
    for param, filter_spec in spec.filters.items():
        if param in params:
            value = filter_spec.parse(param, params[param])
            if query_filter.get(filter_spec.field, value) != value:
                # The path already decides this field; a filter may not widen or move it.
                raise InvalidInput(f"{param} contradicts the URL path")
            query_filter[filter_spec.field] = value
    fields = parse_fields(params.get("fields"), spec)
    normalised = "&".join(
        f"{name}={params[name]}" for name in sorted(set(params) - {"cursor", "fields"})
    )
    if fields is not None:
        normalised += "&fields=" + ",".join(fields)
    return ListQuery(
        filter=query_filter,
        sort=full_sort(spec.sorts[sort_name]),
        fields=fields,
        limit=int(raw_limit),
        cursor=params.get("cursor"),
        count=count,
        normalised=normalised,
    )


def cursor_only(fields: tuple[str, ...] | None, sort: SortSpec) -> tuple[str, ...]:
    """The top-level keys of `sort` fetched only for the cursor, not asked for in `fields`:
    worked out once per list or export, then dropped from each document by `present`."""
    if fields is None:
        return ()
    asked = {name.split(".")[0] for name in fields} | {"_id", "id"}
    tops = (name.split(".")[0] for name, _ in sort)
    return tuple(dict.fromkeys(top for top in tops if top not in asked))


def present(document: dict[str, Any], hidden: tuple[str, ...] = ()) -> dict[str, Any]:
    """A stored document as clients see it: `_id` renamed `id`, the `hidden` keys (from
    `cursor_only`) dropped."""
    document = {"id": document.pop("_id"), **document}
    for top in hidden:
        document.pop(top, None)
    return document
