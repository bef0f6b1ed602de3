"""The tenant scope merged into a query."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def scoped(query: Mapping[str, Any], scope: Mapping[str, Any]) -> dict[str, Any]:
    """`query` narrowed to `scope` (the tenant). A scope on a field the query also names
    (organizations are scoped by `_id`) must narrow it, never replace it: `{**q, **scope}`
    would turn "organization B" into "the caller's own organization"."""
    if not set(query) & set(scope):
        return {**query, **scope}
    return {"$and": [dict(query), dict(scope)]}
