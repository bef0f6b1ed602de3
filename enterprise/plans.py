"""Query shapes and plan summaries for the slow-query report: pure functions, no I/O.

A *shape* is a command with every value replaced by ``"?"``: field names, operators, sort
directions and pipeline stages stay, so two requests for different clinics have one shape,
and nothing a patient or provider typed ever reaches the report. Plans are remembered per
shape (`enterprise/repositories/explain.py`), so the key must not depend on values either.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import orjson

REDACTED = "?"
# Parts of a command that hold query values; everything else keeps `$field` references.
_FILTERS = frozenset({"filter", "query", "q", "$match"})
# Latency targets (ms) per class of database query (the SRE figures).
QUERY_CLASS_TARGETS_MS: dict[str, float] = {"single": 10.0, "list": 50.0, "aggregation": 100.0}
_SINGLE = frozenset({"findAndModify", "insert", "update", "delete"})
_LIST = frozenset({"count", "getMore", "distinct"})


def redact(value: Any, *, in_filter: bool = True) -> Any:
    """``value`` with its values replaced by ``"?"``; a list of plain values becomes
    ``["?"]`` whatever its length, so `$in` over 3 or 300 ids is one shape."""
    if isinstance(value, dict):
        return {
            key: redact(item, in_filter=in_filter or key in _FILTERS) for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        if value and all(isinstance(item, dict) for item in value):
            return [redact(item, in_filter=in_filter) for item in value]
        return [REDACTED] if value else []
    if not in_filter and isinstance(value, str | int | float) and not isinstance(value, bool):
        # Outside a filter: `$field` paths and numbers are the pipeline's structure
        # ({"$sum": 1}, {"$group": {"_id": "$status"}}); other text may be data.
        if isinstance(value, str):
            return value if value.startswith("$") and " " not in value else REDACTED
        return value
    return REDACTED


def command_shape(command_name: str, command: Mapping[str, Any]) -> dict[str, Any]:
    """The shape of one command: what it filters, sorts, projects and aggregates by."""
    shape: dict[str, Any] = {}
    if command_name == "find":
        for part in ("filter", "sort", "projection"):
            if part in command:
                shape[part] = (
                    _keep_keys(command[part]) if part != "filter" else redact(command[part])
                )
        if "limit" in command:
            shape["limit"] = REDACTED
    elif command_name == "aggregate":
        shape["pipeline"] = [redact(stage, in_filter=False) for stage in command["pipeline"]]
    elif command_name in ("count", "distinct", "findAndModify"):
        shape["query"] = redact(command.get("query") or {})
        if command_name == "distinct":
            shape["key"] = command.get("key")
    elif command_name in ("update", "delete"):
        statements = command.get("updates" if command_name == "update" else "deletes") or []
        shape["q"] = [redact(s.get("q", {})) for s in statements[:1]]
    return shape


def _keep_keys(value: Any) -> Any:
    # Sorts and projections are structure, not data: keep them, numbers included.
    return dict(value) if isinstance(value, dict) else REDACTED


def shape_key(command_name: str, collection: str, shape: dict[str, Any]) -> str:
    """A short stable key for (command, collection, shape): the plan memo's key."""
    material = orjson.dumps([command_name, collection, shape], option=orjson.OPT_SORT_KEYS)
    return hashlib.blake2s(material, digest_size=8).hexdigest()


def query_class(command_name: str, command: Mapping[str, Any]) -> str | None:
    """single document, list or aggregation; None for commands that are not queries
    (hello, ping, buildInfo, explain, createIndexes …)."""
    if command_name == "aggregate":
        return "aggregation"
    if command_name in _SINGLE:
        return "single"
    if command_name == "find":
        selector = (command.get("filter") or {}).get("_id")
        if command.get("limit") == 1 or (selector is not None and not isinstance(selector, dict)):
            return "single"
        return "list"
    if command_name in _LIST:
        return "list"
    return None


def explainable(command_name: str) -> bool:
    """Reads only: explaining a write with executionStats is not worth the risk."""
    return command_name in ("find", "aggregate", "count", "distinct")


def summarize_plan(explained: dict[str, Any]) -> dict[str, Any]:
    """Winning stage, index, keys and documents examined, documents returned; or, where the
    server's explain has no such plan (FerretDB), ``available: false`` and the reason."""
    planner, stats = _planner_and_stats(explained)
    winning = (planner or {}).get("winningPlan")
    if not isinstance(winning, dict):
        summary: dict[str, Any] = {
            "available": False,
            "reason": "the server's explain has no winningPlan or executionStats "
            "(FerretDB v1 answers with its SQLite plan and pushdown flags only)",
        }
        if planner and isinstance(planner.get("Plan"), list):
            summary["serverPlan"] = [str(line) for line in planner["Plan"]][:10]
        pushdown = {
            part: explained[f"{part}Pushdown"]
            for part in ("filter", "sort", "limit")
            if f"{part}Pushdown" in explained
        }
        if pushdown:
            summary["pushdown"] = pushdown
        return summary
    stages: list[str] = []
    index = None
    node: Any = winning.get("queryPlan", winning)
    while isinstance(node, dict):
        stages.append(str(node.get("stage", "?")))
        if index is None and node.get("indexName"):
            index = node["indexName"]
        children = node.get("inputStages") or []
        node = node.get("inputStage") or (children[0] if children else None)
    stats = stats or {}
    return {
        "available": True,
        "winningStage": stages[0] if stages else None,
        "stages": stages,
        "index": index,
        "keysExamined": stats.get("totalKeysExamined"),
        "docsExamined": stats.get("totalDocsExamined"),
        "returned": stats.get("nReturned"),
    }


def _planner_and_stats(
    explained: dict[str, Any],
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    if "queryPlanner" in explained:
        return explained["queryPlanner"], explained.get("executionStats")
    # An aggregation's explain on MongoDB: the query part sits in the first stage's $cursor.
    for stage in explained.get("stages") or []:
        cursor = stage.get("$cursor") if isinstance(stage, dict) else None
        if cursor:
            return cursor.get("queryPlanner"), cursor.get("executionStats")
    return None, None
