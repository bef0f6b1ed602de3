"""Explain every declared query shape on the data a database holds, as its planner decides.

`python -m indexes plans` and the contract tier use this: the filter takes its equality
values from a real document (so the planner sees selectivity as the API would meet it), and
no `hint` is sent, so the answer is the plan the server would really run.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from indexes.planner import plan_facts
from indexes.shapes import QueryShape


def _value(document: Mapping[str, Any], path: str) -> Any:
    """A field's value by its dotted path (`address.city`)."""
    value: Any = document
    for part in path.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    return value


async def shape_query(db: AsyncDatabase[Any], shape: QueryShape) -> dict[str, Any] | None:
    """Equality values of a stored document that has them all, a prefix range on the rest;
    None when no document has them (an empty collection says nothing about plans)."""
    sample = await db[shape.collection].find_one(
        {field: {"$exists": True} for field in shape.equality}
    )
    if sample is None:
        return None
    query: dict[str, Any] = {field: _value(sample, field) for field in shape.equality}
    for field in shape.range:
        query[field] = {"$regex": "^a"}
    return query


async def explain_shape(
    db: AsyncDatabase[Any], shape: QueryShape, query: Mapping[str, Any]
) -> dict[str, Any]:
    """`explain` (queryPlanner) of the find the API sends for `shape`."""
    command: dict[str, Any] = {"find": shape.collection, "filter": dict(query), "limit": 21}
    if shape.sort:
        command["sort"] = dict(shape.sort)
    if shape.projection:
        command["projection"] = {field: 1 for field in shape.projection} | (
            {} if "_id" in shape.projection else {"_id": 0}
        )
    explain: dict[str, Any] = await db.command("explain", command, verbosity="queryPlanner")
    return explain


async def plan_lines(db: AsyncDatabase[Any], shapes: list[QueryShape]) -> list[str]:
    """One line per shape: the index it wants, the indexes the plan scans, full scan, sort."""
    lines = [f"{'shape':<38}{'wanted index':<40}{'plan scans':<40}{'full scan':<11}sort"]
    for shape in shapes:
        query = await shape_query(db, shape)
        if query is None:
            lines.append(f"{shape.name:<38}{shape.index:<40}(no data in {shape.collection})")
            continue
        facts = plan_facts(await explain_shape(db, shape, query))
        scans = ", ".join(sorted(facts.indexes)) or "-"
        lines.append(
            f"{shape.name:<38}{shape.index:<40}{scans:<40}"
            f"{'yes' if facts.full_scan else 'no':<11}{'yes' if facts.sort else 'no'}"
        )
    return lines
