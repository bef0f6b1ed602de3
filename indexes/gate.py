"""The query-plan gate: is every shape the app sent served by a declared index? Pure logic.

A shape is served by an index when, by the ESR rule, the index starts with the shape's
equality fields (any order), continues with its sort keys in order (or all reversed) and then
its range fields, so MongoDB bounds the scan and never sorts in memory
(`planner.check_shape` holds that rule). Two more ways to be served:

- a unique index whose every key is bound by equality: at most one document per value, so
  nothing to sort and nothing to bound further (`_id`, key hashes, per-tenant codes);
- an equality field the index *declares* as a key filter (`KEY_FILTERS` beside the index):
  it sits after the sort keys and is checked on index keys, never on documents. Declaring
  one is a decision, with its reason written next to it.

Shapes that match a declared covered shape must also be covered: the projection and every
filter field inside the index. Everything else (a filter on documents after FETCH, an
in-memory sort, a scan with nothing to bound it) fails and names the shape.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pymongo import IndexModel

from indexes.capture import SentShape, Tally
from indexes.planner import check_shape, declared_keys
from indexes.shapes import QueryShape

_EQUALITY = frozenset({"$eq", "$in"})
_RANGE = frozenset({"$eq", "$gt", "$gte", "$lt", "$lte", "$regex^"})
ID_NAME = "_id_"
ID_INDEX = IndexModel([("_id", 1)], name=ID_NAME, unique=True)  # every collection has it
OK = "ok"


@dataclass(frozen=True, slots=True)
class Predicates:
    """A filter's fields by how an index can use them.

    `ranges` include the fields of a keyset `$or` (its branches compare sort keys only);
    `residual` fields have no index bounds ($ne, unanchored regex, $exists, ...);
    `branches` are the arms of any other `$or`, each of which needs its own index.
    """

    equality: frozenset[str] = frozenset()
    ranges: frozenset[str] = frozenset()
    residual: frozenset[str] = frozenset()
    branches: tuple[Predicates, ...] = ()

    def merged(self, other: Predicates) -> Predicates:
        equality = self.equality | other.equality
        return Predicates(
            equality,
            (self.ranges | other.ranges) - equality,
            (self.residual | other.residual) - equality,
            self.branches + other.branches,
        )

    @property
    def fields(self) -> frozenset[str]:
        return self.equality | self.ranges | self.residual


def predicates(node: Mapping[str, Any], sort_fields: Iterable[str] = ()) -> Predicates:
    """Sort a filter shape's fields into equality, range and residual ones."""
    sort_fields = frozenset(sort_fields)
    found = Predicates()
    for key, value in node.items():
        if key == "$and":
            for branch in value:
                found = found.merged(predicates(branch, sort_fields))
        elif key == "$or":
            arms = [predicates(branch, sort_fields) for branch in value]
            fields = frozenset().union(*(arm.fields for arm in arms))
            if len(arms) == 1:
                found = found.merged(arms[0])
            elif fields <= sort_fields and all(not arm.residual for arm in arms):
                # Keyset: "after this sort position" is a range on the sort keys.
                found = found.merged(Predicates(ranges=fields))
            else:
                found = found.merged(Predicates(branches=tuple(arms)))
        elif key.startswith("$"):
            found = found.merged(Predicates(residual=frozenset({key})))
        else:
            operators = set(str(value).split())
            if operators <= _EQUALITY:
                found = found.merged(Predicates(equality=frozenset({key})))
            elif operators <= _RANGE:
                found = found.merged(Predicates(ranges=frozenset({key})))
            else:
                found = found.merged(Predicates(residual=frozenset({key})))
    return found


@dataclass(frozen=True, slots=True)
class Verdict:
    """Which index serves a shape and how, or why none does."""

    index: str | None
    how: str
    problems: tuple[str, ...] = ()
    declared: str | None = None  # the declared shape it matched, if any

    @property
    def ok(self) -> bool:
        return self.index is not None and not self.problems

    def text(self) -> str:
        if self.ok:
            return self.how
        return "FAIL: " + "; ".join(self.problems)


@dataclass(slots=True)
class Row:
    shape: SentShape
    tally: Tally
    verdict: Verdict


@dataclass(frozen=True, slots=True)
class Declarations:
    """What the gate checks against: indexes, their key filters and the declared shapes."""

    indexes: Mapping[str, Sequence[IndexModel]]
    shapes: Sequence[QueryShape] = ()
    key_filters: Mapping[str, Mapping[str, Sequence[str]]] = field(default_factory=dict)

    def models(self, collection: str) -> list[IndexModel]:
        return [ID_INDEX, *self.indexes.get(collection, ())]


def _without(sort: Sequence[tuple[str, int]], fields: frozenset[str]) -> list[tuple[str, int]]:
    return [key for key in sort if key[0] not in fields]


def _same_or_reversed(a: Sequence[tuple[str, int]], b: Sequence[tuple[str, int]]) -> bool:
    return list(a) == list(b) or list(a) == [(name, -d) for name, d in b]


def _declared_shape(shape: SentShape, found: Predicates, decl: Declarations) -> QueryShape | None:
    """The declared shape this one is an instance of (same equality, sort and ranges); one
    with the equality fields exactly beats one that checks some as key filters."""
    matches = [d for d in decl.shapes if _instance_of(shape, found, d, decl)]
    return min(matches, key=lambda d: len(found.equality - set(d.equality)), default=None)


def _instance_of(
    shape: SentShape, found: Predicates, declared: QueryShape, decl: Declarations
) -> bool:
    if declared.collection != shape.collection:
        return False
    filters = set(decl.key_filters.get(shape.collection, {}).get(declared.index, ()))
    extra = found.equality - set(declared.equality)
    if not set(declared.equality) <= found.equality or not extra <= filters:
        return False
    if not _same_or_reversed(
        _without(shape.sort, found.equality), _without(declared.sort, found.equality)
    ):
        return False
    return found.ranges <= set(declared.range) | {name for name, _ in declared.sort}


def _projected(shape: SentShape) -> tuple[str, ...] | None:
    """Inclusion projection fields; None when the shape returns whole documents."""
    included = tuple(name for name, value in shape.projection if value)
    if not included or len(included) != len(shape.projection):
        return None
    return included


def _index_problems(
    shape: SentShape,
    found: Predicates,
    model: IndexModel,
    key_filters: Sequence[str],
    covered: QueryShape | None,
) -> tuple[str, list[str]]:
    """(how it serves, problems) for one index."""
    keys = declared_keys(model)
    fields = [name for name, _ in keys]
    name = model.document["name"]
    if model.document.get("unique") and fields and set(fields) <= found.equality:
        return "ok: unique key bound, at most one document per value", []
    filtered = frozenset(f for f in key_filters if f in fields) & found.equality
    equality = found.equality - filtered
    sort = tuple(_without(shape.sort, equality))
    if not equality and not sort and not found.ranges:
        return "", [f"nothing in it lets index {name} bound the scan"]
    esr = QueryShape(
        "",
        shape.collection,
        name,
        equality=tuple(sorted(equality)),
        sort=sort,
        range=tuple(sorted(found.ranges)),
    )
    problems = [problem.removeprefix(": ") for problem in check_shape(esr, keys)]
    used = len(equality) + len(sort) + len(found.ranges - equality - {n for n, _ in sort})
    late = [f for f in filtered if f in fields[:used]]
    problems += [f"key filter {f} must come after the ESR keys of {name}" for f in late]
    how = "ok: ESR"
    if filtered:
        how += f", key filter {', '.join(sorted(filtered))}"
    if covered is not None and not problems:
        projection = _projected(shape) or ()
        outside = sorted((found.fields | set(projection)) - set(fields) - {"_id"})
        wants_id = "_id" in projection and "_id" not in fields
        if not projection:
            problems.append(f"declared covered ({covered.name}) but returns documents")
        problems += [
            f"declared covered ({covered.name}) but {f} is not in index {name}" for f in outside
        ]
        if wants_id:
            problems.append(f"declared covered ({covered.name}) but returns _id")
        how += ", covered"
    return how, problems


def _verdict_for(shape: SentShape, found: Predicates, decl: Declarations) -> Verdict:
    declared = _declared_shape(shape, found, decl)
    wants_cover = declared if declared is not None and declared.covered else None
    if wants_cover is not None and not set(_projected(shape) or ()) <= (
        set(wants_cover.projection) | {n for n, _ in wants_cover.sort}
    ):
        wants_cover = None  # same query, but the client asked for fields outside the index
    filters = decl.key_filters.get(shape.collection, {})
    closest: tuple[str, list[str]] | None = None
    served: list[tuple[str, str]] = []
    for model in decl.models(shape.collection):
        name = model.document["name"]
        cover = wants_cover if wants_cover is not None and wants_cover.index == name else None
        if wants_cover is not None and cover is None:
            continue  # a covered shape must be served by the index declared to cover it
        how, problems = _index_problems(shape, found, model, filters.get(name, ()), cover)
        if not problems:
            served.append((name, how))
        elif closest is None or len(problems) < len(closest[1]) or closest[0] == ID_NAME:
            closest = (name, problems)
    name_of = declared.name if declared else None
    if served:
        preferred = [s for s in served if declared is not None and s[0] == declared.index]
        plain = sorted(served, key=lambda s: "key filter" in s[1])  # stable: declared order
        index, how = (preferred or plain)[0]
        return Verdict(index, how, declared=name_of)
    if closest is None:
        reason = f"covered shape {name_of} needs index {declared.index}" if declared else ""
        problem = f"{shape.text()}: no declared index serves it; {reason}".rstrip("; ")
        return Verdict(None, "", (problem,), name_of)
    index, reasons = closest
    problem = f"{shape.text()}: no declared index serves it; closest {index}: " + "; ".join(reasons)
    return Verdict(None, "", (problem,), name_of)


def verdict(shape: SentShape, decl: Declarations) -> Verdict:
    """How `shape` is served by the declarations, or the problems of the closest index."""
    if shape.operation == "count (metadata)":
        return Verdict("(collection metadata)", "ok: no index needed")
    found = predicates(shape.filter_doc(), (name for name, _ in shape.sort))
    if not found.branches:
        return _verdict_for(shape, found, decl)
    # Each arm of a general $or is its own index scan; all of them must be served.
    base = Predicates(found.equality, found.ranges, found.residual)
    arms = [_verdict_for(shape, base.merged(arm), decl) for arm in found.branches]
    problems = tuple(p for arm in arms for p in arm.problems)
    if problems:
        return Verdict(None, "", problems)
    return Verdict(" | ".join(str(arm.index) for arm in arms), "ok: each $or arm indexed")


def check(tallies: Mapping[SentShape, Tally], decl: Declarations) -> list[Row]:
    """One row per captured shape, most frequent first."""
    ordered = sorted(tallies.items(), key=lambda item: (-item[1].count, item[0].text()))
    return [Row(shape, tally, verdict(shape, decl)) for shape, tally in ordered]


def problems(rows: Iterable[Row]) -> list[str]:
    return [problem for row in rows for problem in row.verdict.problems]


def table(rows: Sequence[Row]) -> list[str]:
    """The gate as text: shape → index → verdict, with counts."""
    lines = []
    for row in rows:
        limits = (
            f" limit {','.join(map(str, sorted(row.tally.limits)))}" if row.tally.limits else ""
        )
        declared = f" [{row.verdict.declared}]" if row.verdict.declared else ""
        lines.append(f"{row.tally.count:>5}x {row.shape.text()}{limits}{declared}")
        verdict = row.verdict.text().replace(row.shape.text() + ": ", "")
        lines.append(f"       -> {row.verdict.index or '(none)'}: {verdict}")
    failed = sum(1 for row in rows if not row.verdict.ok)
    total = sum(row.tally.count for row in rows)
    lines.append(f"{len(rows)} shapes ({total} commands), {failed} without a serving index")
    return lines
