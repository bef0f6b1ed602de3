"""Declared indexes and the query shapes they serve, per collection. Data, not behaviour.

Apply with `python -m indexes sync`; compare with `python -m indexes diff`. Nothing here
connects to a server at import time.
"""

from __future__ import annotations

from pymongo import IndexModel

from indexes import api_keys, assignments, audit_events, clinics, organizations
from indexes.shapes import QueryShape

_MODULES = (organizations, clinics, assignments, api_keys, audit_events)

DECLARED: dict[str, list[IndexModel]] = {m.COLLECTION: m.INDEXES for m in _MODULES}
SHAPES: list[QueryShape] = [shape for m in _MODULES for shape in m.SHAPES]
UNIQUE_FIELDS: dict[str, dict[str, str]] = {m.COLLECTION: m.UNIQUE_FIELDS for m in _MODULES}
KEY_FILTERS: dict[str, dict[str, tuple[str, ...]]] = {m.COLLECTION: m.KEY_FILTERS for m in _MODULES}

__all__ = ["DECLARED", "KEY_FILTERS", "SHAPES", "UNIQUE_FIELDS", "QueryShape"]
