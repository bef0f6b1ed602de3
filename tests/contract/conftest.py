"""Contract-tier helpers: what a server must offer for a contract test to mean anything."""

from __future__ import annotations

import pytest

from enterprise.capabilities import ServerCapabilities


def require_index_plans(capabilities: ServerCapabilities) -> None:
    """Skip, with the measured reason, where explain cannot show index plans."""
    if not capabilities.index_backed_reads:
        pytest.skip(
            f"{capabilities.server} {capabilities.version} answers every filter but _id with a "
            "full scan (explain: SCAN, filterPushdown=false), so index plans can only be "
            "checked on MongoDB"
        )
