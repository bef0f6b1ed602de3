"""What the app really asks MongoDB: query *shapes* taken from PyMongo command monitoring.

A shape keeps a command's collection, operation, filter structure (field names and
operators, every value dropped), sort, projection and aggregation stages, so two requests
that differ only in ids or names are the same shape. `ShapeRecorder` is a
`CommandListener`; the test fixtures register it and the query-plan gate
(`indexes.gate`) checks every recorded shape against the declared indexes.

Values never leave this module: a recorded file holds names and operators only, so it is
safe to keep and to publish from CI.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bson.regex import Regex
from pymongo import monitoring

# Commands with a filter the planner answers; everything else (inserts, getMore, index and
# admin commands) has nothing to plan.
_FILTERS = {"find": "filter", "count": "query", "distinct": "query", "findAndModify": "query"}
_STATEMENTS = {"update": ("updates", "q"), "delete": ("deletes", "q")}
_LOGICAL = ("$and", "$or", "$nor")
_SYSTEM_DATABASES = frozenset({"admin", "config", "local"})
# Operators whose operand is a value, so a bare token is all the shape keeps.
_ANCHORED = re.compile(r"^\^(?!\.\*)")


@dataclass(frozen=True, slots=True)
class SentShape:
    """One query shape as sent: no values, only structure.

    `filter` is the canonical JSON of the filter's shape: each field maps to its operators
    (`"$eq"`, `"$in"`, `"$gt"`, `"$regex^"` for an anchored prefix, `"$regex"` otherwise),
    and `$and`/`$or` keep their branches.
    """

    collection: str
    operation: str
    filter: str = "{}"
    sort: tuple[tuple[str, int], ...] = ()
    projection: tuple[tuple[str, int], ...] = ()
    stages: tuple[str, ...] = ()

    def filter_doc(self) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads(self.filter)
        return loaded

    def text(self) -> str:
        """One readable line, e.g. `clinics find {organizationId: $eq} sort nameKey 1`."""
        parts = [f"{self.collection} {self.operation}", _filter_text(self.filter_doc())]
        if self.sort:
            parts.append("sort " + ", ".join(f"{name} {d}" for name, d in self.sort))
        if self.projection:
            parts.append("project " + ",".join(_projected(k, v) for k, v in self.projection))
        if self.stages:
            parts.append("then " + " ".join(self.stages))
        return " ".join(parts)

    def as_dict(self) -> dict[str, Any]:
        return {
            "collection": self.collection,
            "operation": self.operation,
            "filter": self.filter_doc(),
            "sort": [list(key) for key in self.sort],
            "projection": [list(key) for key in self.projection],
            "stages": list(self.stages),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SentShape:
        return cls(
            collection=data["collection"],
            operation=data["operation"],
            filter=_canonical(data.get("filter", {})),
            sort=tuple((str(n), int(d)) for n, d in data.get("sort", [])),
            projection=tuple((str(n), int(v)) for n, v in data.get("projection", [])),
            stages=tuple(data.get("stages", [])),
        )


def _projected(name: str, value: int) -> str:
    return name if value else f"-{name}"


def _filter_text(node: Mapping[str, Any]) -> str:
    parts = []
    for key, value in node.items():
        if key in _LOGICAL:
            parts.append(f"{key}: [{', '.join(_filter_text(branch) for branch in value)}]")
        else:
            parts.append(f"{key}: {value}")
    return "{" + ", ".join(parts) + "}"


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _operator(name: str, operand: Any) -> str:
    if name == "$regex":
        pattern = operand.pattern if isinstance(operand, Regex | re.Pattern) else str(operand)
        return "$regex^" if _ANCHORED.match(pattern) else "$regex"
    return name


def _predicate(value: Any) -> str:
    """The operators applied to one field, e.g. `$eq`, `$gte $lt`, `$regex^`."""
    if isinstance(value, Regex | re.Pattern):
        return _operator("$regex", value)
    if isinstance(value, Mapping) and value and all(str(k).startswith("$") for k in value):
        names = sorted({_operator(k, v) for k, v in value.items() if k != "$options"})
        return " ".join(names)
    return "$eq"


def filter_shape(query: Mapping[str, Any]) -> dict[str, Any]:
    """The filter with every value replaced by its operator; branches sorted canonically."""
    shape: dict[str, Any] = {}
    for key, value in query.items():
        if key in _LOGICAL:
            branches = [filter_shape(branch) for branch in value]
            shape[key] = sorted(branches, key=_canonical)
        elif key.startswith("$"):
            shape[key] = "?"  # $expr, $text, $where: opaque to the gate, so it fails them
        else:
            shape[key] = _predicate(value)
    return shape


def _sort(spec: Any) -> tuple[tuple[str, int], ...]:
    if not isinstance(spec, Mapping):
        return ()
    return tuple(
        (str(name), int(d) if isinstance(d, int | float) else 0) for name, d in spec.items()
    )


def _projection(spec: Any) -> tuple[tuple[str, int], ...]:
    if not isinstance(spec, Mapping):
        return ()
    return tuple(
        sorted((str(name), 1 if value in (1, True) else 0) for name, value in spec.items())
    )


def _aggregate(collection: str, pipeline: Sequence[Mapping[str, Any]]) -> SentShape:
    """A leading `$match` is the filter and a `$sort` right after it the sort."""
    stages = list(pipeline)
    query: Mapping[str, Any] = {}
    sort: tuple[tuple[str, int], ...] = ()
    if stages and "$match" in stages[0]:
        query = stages.pop(0)["$match"]
    if stages and "$sort" in stages[0]:
        sort = _sort(stages.pop(0)["$sort"])
    rest = tuple(next(iter(stage)) for stage in stages if stage)
    return SentShape(collection, "aggregate", _canonical(filter_shape(query)), sort, (), rest)


def shapes_of(command_name: str, command: Mapping[str, Any]) -> list[SentShape]:
    """The query shapes in one command; empty for commands the planner does not answer."""
    target = command.get(command_name)
    if not isinstance(target, str):
        return []
    if command_name == "aggregate":
        return [_aggregate(target, command.get("pipeline") or [])]
    if command_name in _STATEMENTS:
        list_name, key = _STATEMENTS[command_name]
        return [
            SentShape(target, command_name, _canonical(filter_shape(statement.get(key) or {})))
            for statement in command.get(list_name) or []
        ]
    if command_name not in _FILTERS:
        return []
    query = command.get(_FILTERS[command_name]) or {}
    if command_name == "count" and not query:
        # estimated_document_count: collection metadata, no index involved.
        return [SentShape(target, "count (metadata)")]
    projection = command.get("fields" if command_name == "findAndModify" else "projection")
    return [
        SentShape(
            target,
            command_name,
            _canonical(filter_shape(query)),
            _sort(command.get("sort")),
            _projection(projection),
        )
    ]


@dataclass(slots=True)
class Tally:
    """How often a shape was sent, and the limits it was sent with."""

    count: int = 0
    limits: set[int] = field(default_factory=set)


class ShapeRecorder(monitoring.CommandListener):
    """Counts the shapes of the commands a client sends while `accept()` says so.

    `accept` tells the app's commands from everything else on the same client (the tests
    pass "a request is being served"), so fixtures' own reads and writes stay out.
    """

    def __init__(self, accept: Callable[[], bool] = lambda: True) -> None:
        self._accept = accept
        self._lock = threading.Lock()
        self.tallies: dict[SentShape, Tally] = {}

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.database_name in _SYSTEM_DATABASES or not self._accept():
            return
        shapes = shapes_of(event.command_name, event.command)
        limit = event.command.get("limit")
        with self._lock:
            for shape in shapes:
                tally = self.tallies.setdefault(shape, Tally())
                tally.count += 1
                if isinstance(limit, int) and limit > 0:
                    tally.limits.add(limit)

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass

    def __iter__(self) -> Iterator[tuple[SentShape, Tally]]:
        with self._lock:
            return iter(list(self.tallies.items()))


def dump(tallies: Mapping[SentShape, Tally], path: Path) -> None:
    """Write shapes with counts as JSON, most frequent first."""
    rows = [
        {**shape.as_dict(), "count": tally.count, "limits": sorted(tally.limits)}
        for shape, tally in sorted(
            tallies.items(), key=lambda item: (-item[1].count, item[0].text())
        )
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"shapes": rows}, indent=1) + "\n")


def load(path: Path) -> dict[SentShape, Tally]:
    """Read what `dump` wrote."""
    data = json.loads(path.read_text())
    return {
        SentShape.from_dict(row): Tally(int(row.get("count", 0)), set(row.get("limits", [])))
        for row in data["shapes"]
    }
