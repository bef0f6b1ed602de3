"""Does each declared index serve its query shape? Pure checks, no server needed.

`check_shape`/`check_all` hold the declarations to the ESR rule (Equality, Sort, Range) so a
bad pairing fails a unit test instead of a P95 budget. `explain_problems` reads real `explain`
output for the contract tier, where the planner itself has the last word. It reads both
MongoDB's plan tree (`queryPlanner.winningPlan`, stages such as IXSCAN/COLLSCAN/SORT) and
DocumentDB's (FerretDB v2): PostgreSQL's JSON plan under `queryPlanner.Plan`, whose nodes are
"Index Scan"/"Bitmap Index Scan" with an "Index Name", "Seq Scan" and "Sort".
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, NamedTuple

from pymongo import IndexModel

from indexes.shapes import QueryShape

_CHILD_STAGES = ("inputStage", "outerStage", "innerStage", "thenStage", "elseStage")
_POSTGRES_INDEX_SCANS = frozenset({"Index Scan", "Index Only Scan", "Bitmap Index Scan"})


def declared_keys(model: IndexModel) -> list[tuple[str, int]]:
    """A declared index's key pattern; special kinds ("text", "hashed") read as 0."""
    keys = model.document["key"].items()
    return [(name, direction if isinstance(direction, int) else 0) for name, direction in keys]


def _same_order(wanted: Sequence[tuple[str, int]], found: Sequence[tuple[str, int]]) -> bool:
    """Same fields in order, with every direction equal or every direction reversed."""
    if [name for name, _ in wanted] != [name for name, _ in found]:
        return False
    directions = [(want, have) for (_, want), (_, have) in zip(wanted, found, strict=True)]
    return all(w == h for w, h in directions) or all(w == -h for w, h in directions)


def _covered_problems(shape: QueryShape, fields: Sequence[str]) -> list[str]:
    """A covered read may return only index fields; `_id` is returned unless excluded."""
    if not shape.projection:
        return [f"{shape.name}: a covered shape needs an explicit projection"]
    outside = [name for name in shape.projection if name not in fields]
    problems = [
        f"{shape.name}: covered projection field {name!r} is not in index {shape.index}"
        for name in outside
        if name != "_id"
    ]
    if "_id" in outside:
        problems.append(
            f"{shape.name}: covered shape returns _id but index {shape.index} lacks it; "
            "project _id: 0 or add _id to the index"
        )
    return problems


def check_shape(shape: QueryShape, index_keys: Sequence[tuple[str, int]]) -> list[str]:
    """Problems with serving `shape` from an index with `index_keys`; empty when it does.

    The index must start with the equality fields (in any order), then the sort keys in
    order (or all reversed, which MongoDB walks backwards), then the range fields. Extra
    trailing fields are fine: they are how a covering index carries its projection.
    """
    problems: list[str] = []
    fields = [name for name, _ in index_keys]
    equality = set(shape.equality)
    start = len(equality)
    if set(fields[:start]) != equality:
        problems.append(
            f"{shape.name}: index {shape.index} must start with equality fields "
            f"{sorted(equality)}, starts with {fields[:start]}"
        )
    sort = [key for key in shape.sort if key[0] not in equality]
    found = list(index_keys[start : start + len(sort)])
    if not _same_order(sort, found):
        problems.append(
            f"{shape.name}: index {shape.index} needs sort keys {sort} after the equality "
            f"fields (or all reversed), has {found}"
        )
    placed = equality | {name for name, _ in sort}
    ranges = list(dict.fromkeys(name for name in shape.range if name not in placed))
    start += len(sort)
    if set(fields[start : start + len(ranges)]) != set(ranges):
        problems.append(
            f"{shape.name}: index {shape.index} needs range fields {sorted(ranges)} after the "
            f"sort keys, has {fields[start : start + len(ranges)]}"
        )
    if shape.covered:
        problems += _covered_problems(shape, fields)
    return problems


def check_all(
    declared: Mapping[str, Sequence[IndexModel]], shapes: Iterable[QueryShape]
) -> list[str]:
    """Every shape names an index declared on its collection, and that index serves it."""
    problems: list[str] = []
    for shape in shapes:
        models = {model.document["name"]: model for model in declared.get(shape.collection, ())}
        model = models.get(shape.index)
        if model is None:
            problems.append(
                f"{shape.name}: index {shape.index} is not declared on {shape.collection}"
            )
            continue
        problems += check_shape(shape, declared_keys(model))
    return problems


def _winning_plan(explain_doc: Mapping[str, Any]) -> Mapping[str, Any]:
    """The winning plan of a find or an aggregate explain, classic or slot-based engine."""
    planner = explain_doc.get("queryPlanner")
    if planner is None:
        stages = explain_doc.get("stages") or [{}]
        planner = stages[0].get("$cursor", {}).get("queryPlanner", {})
    winning: Mapping[str, Any] = planner.get("winningPlan", {})
    engine_plan: Mapping[str, Any] = winning.get("queryPlan", winning)
    return engine_plan


def _stages(node: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    """Every stage of a plan tree, including each shard's winning plan."""
    node = node.get("queryPlan", node)
    if "stage" in node:
        yield node
    children = [node[key] for key in _CHILD_STAGES if key in node]
    children += node.get("inputStages", [])
    children += [shard.get("winningPlan", {}) for shard in node.get("shards", [])]
    for child in children:
        yield from _stages(child)


def postgres_plan(explain_doc: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """DocumentDB's PostgreSQL plan (the root node), or None for a MongoDB explain."""
    planner = explain_doc.get("queryPlanner")
    if isinstance(planner, Mapping) and isinstance(planner.get("Plan"), Mapping):
        plan: Mapping[str, Any] = planner["Plan"]
        return plan
    return None


def _postgres_nodes(node: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    yield node
    for child in node.get("Plans", []):
        yield from _postgres_nodes(child)


def _postgres_problems(
    plan: Mapping[str, Any], shape: QueryShape, *, allow_sort: bool
) -> list[str]:
    """The same questions as for MongoDB, asked of a PostgreSQL plan.

    PostgreSQL has no covered reads of a document store (the row is the whole document), so
    there is no FETCH to look for; a heap fetch under a bitmap scan is how it reads matches.
    """
    nodes = list(_postgres_nodes(plan))
    kinds = {str(node.get("Node Type")) for node in nodes}
    scanned = {
        str(node.get("Index Name"))
        for node in nodes
        if node.get("Node Type") in _POSTGRES_INDEX_SCANS
    }
    problems: list[str] = []
    if "Seq Scan" in kinds:
        problems.append(f"{shape.name}: plan scans the whole collection (Seq Scan)")
    if shape.index not in scanned:
        problems.append(f"{shape.name}: plan does not scan index {shape.index}")
    problems += [
        f"{shape.name}: plan also scans index {other}" for other in sorted(scanned - {shape.index})
    ]
    if "Sort" in kinds and not allow_sort:
        problems.append(f"{shape.name}: plan sorts the matches (Sort node)")
    return problems


class PlanFacts(NamedTuple):
    """What a plan does, in either server's terms: indexes scanned, full scan, sort step."""

    indexes: frozenset[str]
    full_scan: bool
    sort: bool


def plan_facts(explain_doc: Mapping[str, Any]) -> PlanFacts:
    """The facts of a MongoDB or a DocumentDB explain, for reports (`python -m indexes plans`)."""
    plan = postgres_plan(explain_doc)
    if plan is not None:
        nodes = list(_postgres_nodes(plan))
        kinds = {str(node.get("Node Type")) for node in nodes}
        return PlanFacts(
            frozenset(
                str(node.get("Index Name"))
                for node in nodes
                if node.get("Node Type") in _POSTGRES_INDEX_SCANS
            ),
            "Seq Scan" in kinds,
            "Sort" in kinds,
        )
    stages = list(_stages(_winning_plan(explain_doc)))
    names = {str(stage.get("stage")) for stage in stages}
    return PlanFacts(
        frozenset(
            str(stage.get("indexName"))
            for stage in stages
            if str(stage.get("stage")).endswith("IXSCAN")
        ),
        "COLLSCAN" in names,
        "SORT" in names,
    )


def explain_problems(
    explain_doc: Mapping[str, Any], shape: QueryShape, *, allow_sort: bool = False
) -> list[str]:
    """Problems in a real explain for `shape`; empty when the plan is the one we want.

    Wanted: an index scan on the shape's index only, no in-memory sort (the index order
    serves the sort), and for covered shapes no FETCH (documents are never read).
    `allow_sort` tolerates the sort step, for a server known not to push sorts into its index
    scans (DocumentDB 0.106), so the other questions can still be held to.
    """
    plan = postgres_plan(explain_doc)
    if plan is not None:
        return _postgres_problems(plan, shape, allow_sort=allow_sort)
    stages = list(_stages(_winning_plan(explain_doc)))
    if not stages:
        return [f"{shape.name}: explain output has no winning plan"]
    names = {str(stage.get("stage")) for stage in stages}
    scanned = {
        str(stage.get("indexName"))
        for stage in stages
        if str(stage.get("stage")).endswith("IXSCAN")
    }
    problems: list[str] = []
    if "COLLSCAN" in names:
        problems.append(f"{shape.name}: winning plan scans the whole collection (COLLSCAN)")
    if shape.index not in scanned:
        problems.append(f"{shape.name}: winning plan does not scan index {shape.index}")
    problems += [
        f"{shape.name}: winning plan also scans index {other}"
        for other in sorted(scanned - {shape.index})
    ]
    if "SORT" in names and not allow_sort:
        problems.append(f"{shape.name}: winning plan sorts in memory (SORT stage)")
    if shape.covered and "FETCH" in names:
        problems.append(f"{shape.name}: covered shape reads documents (FETCH stage)")
    return problems


def explain_index_names(explain_doc: Mapping[str, Any]) -> list[str]:
    """The index names a plan reads, in plan order: MongoDB's IXSCAN stages (IDHACK, its
    `_id` lookup, reads `_id_`), DocumentDB's PostgreSQL index scans (their "Index Name" is
    ours), or FerretDB v1's SQLite plan lines
    (`SEARCH <table> USING [COVERING] INDEX <table>_<index> (...)`)."""
    plan = postgres_plan(explain_doc)
    if plan is not None:
        return [
            str(node.get("Index Name"))
            for node in _postgres_nodes(plan)
            if node.get("Node Type") in _POSTGRES_INDEX_SCANS
        ]
    names = [
        "_id_" if stage.get("stage") == "IDHACK" else str(stage.get("indexName"))
        for stage in _stages(_winning_plan(explain_doc))
        if str(stage.get("stage")).endswith("IXSCAN") or stage.get("stage") == "IDHACK"
    ]
    for line in explain_doc.get("queryPlanner", {}).get("Plan", ()):
        words = str(line).split()
        if "INDEX" not in words or "detail=SEARCH" not in words:
            continue
        table = words[words.index("detail=SEARCH") + 1]
        sqlite_name = words[words.index("INDEX") + 1]
        names.append(sqlite_name.removeprefix(f"{table}_"))
    return names
