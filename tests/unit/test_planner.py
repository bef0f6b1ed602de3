from __future__ import annotations

from typing import Any

import pytest
from pymongo import IndexModel

from indexes import DECLARED, SHAPES
from indexes.planner import (
    check_all,
    check_shape,
    explain_index_names,
    explain_problems,
    plan_facts,
)
from indexes.shapes import QueryShape

pytestmark = pytest.mark.unit

BY_STATUS = QueryShape(
    "orgs.by_status",
    "organizations",
    "status_name",
    equality=("status",),
    sort=(("nameKey", 1), ("_id", 1)),
)
COVERED = QueryShape(
    "clinics.covered",
    "clinics",
    "org_name",
    equality=("organizationId",),
    sort=(("nameKey", 1), ("_id", 1)),
    projection=("_id", "name"),
    covered=True,
)
COVERED_KEYS = [("organizationId", 1), ("nameKey", 1), ("_id", 1), ("name", 1)]


def test_every_declared_shape_is_served_by_its_index() -> None:
    assert check_all(DECLARED, SHAPES) == []


def test_equality_fields_may_come_in_any_order() -> None:
    shape = QueryShape("s", "c", "i", equality=("a", "b"), sort=(("t", -1),))
    assert check_shape(shape, [("b", 1), ("a", -1), ("t", -1)]) == []


def test_reversed_sort_is_served() -> None:
    assert check_shape(BY_STATUS, [("status", 1), ("nameKey", -1), ("_id", -1)]) == []


def test_sort_before_equality_is_reported() -> None:
    problems = check_shape(BY_STATUS, [("nameKey", 1), ("_id", 1), ("status", 1)])
    assert any("equality fields ['status']" in p for p in problems)


def test_mixed_sort_direction_is_reported() -> None:
    problems = check_shape(BY_STATUS, [("status", 1), ("nameKey", 1), ("_id", -1)])
    assert any("sort keys" in p for p in problems)


def test_range_before_sort_is_reported() -> None:
    shape = QueryShape("s", "c", "i", equality=("a",), sort=(("t", 1),), range=("r",))
    problems = check_shape(shape, [("a", 1), ("r", 1), ("t", 1)])
    assert len(problems) == 2
    assert "range fields ['r']" in problems[1]


def test_covered_projection_inside_index_passes() -> None:
    assert check_shape(COVERED, COVERED_KEYS) == []


def test_covered_projection_outside_index_is_reported() -> None:
    problems = check_shape(COVERED, COVERED_KEYS[:3])
    assert problems == ["clinics.covered: covered projection field 'name' is not in index org_name"]


def test_covered_id_outside_index_is_reported() -> None:
    shape = QueryShape("s", "c", "i", equality=("a",), projection=("_id", "b"), covered=True)
    problems = check_shape(shape, [("a", 1), ("b", 1)])
    assert len(problems) == 1
    assert "returns _id" in problems[0]


def test_check_all_reports_an_undeclared_index() -> None:
    shape = QueryShape("orgs.ghost", "organizations", "organizations_ghost")
    assert check_all(DECLARED, [shape]) == [
        "orgs.ghost: index organizations_ghost is not declared on organizations"
    ]


def test_check_all_reports_a_bad_pair() -> None:
    declared = {"organizations": [IndexModel([("nameKey", 1), ("status", 1)], name="status_name")]}
    problems = check_all(declared, [BY_STATUS])
    assert problems
    assert all(p.startswith("orgs.by_status: index status_name") for p in problems)


def _explain(winning_plan: dict[str, Any]) -> dict[str, Any]:
    return {"queryPlanner": {"winningPlan": winning_plan}, "ok": 1.0}


def _ixscan(index: str = "org_name") -> dict[str, Any]:
    return {"stage": "IXSCAN", "indexName": index, "keyPattern": {}, "direction": "forward"}


GOOD_COVERED = _explain(
    {"stage": "LIMIT", "inputStage": {"stage": "PROJECTION_COVERED", "inputStage": _ixscan()}}
)


def test_explain_good_covered_plan_has_no_problems() -> None:
    assert explain_problems(GOOD_COVERED, COVERED) == []


def test_explain_slot_based_engine_plan_is_read() -> None:
    doc = {
        "queryPlanner": {
            "winningPlan": {
                "queryPlan": GOOD_COVERED["queryPlanner"]["winningPlan"],
                "slotBasedPlan": {},
            }
        }
    }
    assert explain_problems(doc, COVERED) == []


def test_explain_sort_merge_of_two_ranges_on_the_index_passes() -> None:
    doc = _explain(
        {
            "stage": "FETCH",
            "inputStage": {
                "stage": "SORT_MERGE",
                "inputStages": [_ixscan("status_name"), _ixscan("status_name")],
            },
        }
    )
    assert explain_problems(doc, BY_STATUS) == []


def test_explain_collscan_is_reported() -> None:
    doc = _explain({"stage": "SORT", "inputStage": {"stage": "COLLSCAN", "direction": "forward"}})
    problems = explain_problems(doc, BY_STATUS)
    assert any("COLLSCAN" in p for p in problems)
    assert any("does not scan index status_name" in p for p in problems)


def test_explain_in_memory_sort_is_reported() -> None:
    doc = _explain(
        {"stage": "SORT", "inputStage": {"stage": "FETCH", "inputStage": _ixscan("status_name")}}
    )
    assert explain_problems(doc, BY_STATUS) == [
        "orgs.by_status: winning plan sorts in memory (SORT stage)"
    ]


def test_explain_fetch_on_covered_shape_is_reported() -> None:
    doc = _explain(
        {"stage": "PROJECTION_SIMPLE", "inputStage": {"stage": "FETCH", "inputStage": _ixscan()}}
    )
    assert explain_problems(doc, COVERED) == [
        "clinics.covered: covered shape reads documents (FETCH stage)"
    ]


def test_explain_other_index_is_reported() -> None:
    problems = explain_problems(
        _explain({"stage": "FETCH", "inputStage": _ixscan("other")}), BY_STATUS
    )
    assert "orgs.by_status: winning plan also scans index other" in problems


def test_explain_of_an_aggregate_is_read() -> None:
    doc = {"stages": [{"$cursor": GOOD_COVERED}, {"$limit": 20}]}
    assert explain_problems(doc, COVERED) == []


# FerretDB v1 (SQLite backend) puts SQLite's EXPLAIN QUERY PLAN lines under queryPlanner.Plan.
FERRETDB_SEARCH = {
    "queryPlanner": {
        "Plan": [
            "id=3 parent=0 notused=0 detail=SEARCH assignments_616f8939 USING INDEX "
            "assignments_616f8939__id_ (<expr>=?)"
        ]
    }
}
FERRETDB_SCAN = {"queryPlanner": {"Plan": ["id=2 parent=0 notused=0 detail=SCAN clinics_1a2b"]}}


def test_index_names_of_a_ferretdb_search_strip_the_table_prefix() -> None:
    assert explain_index_names(FERRETDB_SEARCH) == ["_id_"]


def test_a_ferretdb_scan_names_no_index() -> None:
    assert explain_index_names(FERRETDB_SCAN) == []


def test_index_names_of_mongodb_plans() -> None:
    ixscan = {
        "queryPlanner": {
            "winningPlan": {"stage": "FETCH", "inputStage": {"stage": "IXSCAN", "indexName": "x"}}
        }
    }
    idhack = {"queryPlanner": {"winningPlan": {"stage": "IDHACK"}}}
    collscan = {"queryPlanner": {"winningPlan": {"stage": "COLLSCAN"}}}
    assert explain_index_names(ixscan) == ["x"]
    assert explain_index_names(idhack) == ["_id_"]
    assert explain_index_names(collscan) == []


# -- DocumentDB (FerretDB v2): PostgreSQL's JSON plan under queryPlanner.Plan ----------------


def _pg(node: dict[str, Any]) -> dict[str, Any]:
    return {"queryPlanner": {"Plan": node}, "explainVersion": "1", "ok": 1.0}


def _pg_bitmap(index: str) -> dict[str, Any]:
    """Limit → Sort → Bitmap Heap Scan → Bitmap Index Scan, as DocumentDB 0.106 plans a page."""
    return {
        "Node Type": "Limit",
        "Plans": [
            {
                "Node Type": "Sort",
                "Sort Key": ["bson_orderby(document, ...)", "object_id"],
                "Plans": [
                    {
                        "Node Type": "Bitmap Heap Scan",
                        "Relation Name": "documents_2821",
                        "Plans": [{"Node Type": "Bitmap Index Scan", "Index Name": index}],
                    }
                ],
            }
        ],
    }


def test_postgres_index_plan_names_its_index() -> None:
    assert explain_problems(_pg(_pg_bitmap("status_name")), BY_STATUS, allow_sort=True) == []


def test_postgres_plain_index_scan_is_read() -> None:
    plan = {
        "Node Type": "Limit",
        "Plans": [{"Node Type": "Index Scan", "Index Name": "status_name"}],
    }
    assert explain_problems(_pg(plan), BY_STATUS) == []


def test_postgres_sort_node_is_reported_unless_allowed() -> None:
    assert explain_problems(_pg(_pg_bitmap("status_name")), BY_STATUS) == [
        "orgs.by_status: plan sorts the matches (Sort node)"
    ]


def test_postgres_seq_scan_is_reported() -> None:
    plan = {"Node Type": "Limit", "Plans": [{"Node Type": "Seq Scan", "Relation Name": "d_1"}]}
    assert explain_problems(_pg(plan), BY_STATUS) == [
        "orgs.by_status: plan scans the whole collection (Seq Scan)",
        "orgs.by_status: plan does not scan index status_name",
    ]


def test_postgres_other_index_is_reported() -> None:
    assert explain_problems(_pg(_pg_bitmap("status_created")), BY_STATUS, allow_sort=True) == [
        "orgs.by_status: plan does not scan index status_name",
        "orgs.by_status: plan also scans index status_created",
    ]


def test_plan_facts_read_both_formats() -> None:
    assert plan_facts(_pg(_pg_bitmap("status_name"))) == (frozenset({"status_name"}), False, True)
    collscan = {"queryPlanner": {"winningPlan": {"stage": "COLLSCAN"}}}
    assert plan_facts(collscan) == (frozenset(), True, False)


def test_index_names_of_a_postgres_plan() -> None:
    plan = {"Node Type": "Index Scan", "Index Name": "_id_", "Relation Name": "documents_6596"}
    assert explain_index_names(_pg(plan)) == ["_id_"]
    assert explain_index_names(_pg({"Node Type": "Seq Scan"})) == []
