"""Contract-tier helpers: what a server must offer for a contract test to mean anything."""

from __future__ import annotations

import pytest

from enterprise.capabilities import ServerCapabilities


def require_index_plans(capabilities: ServerCapabilities) -> None:
    """Skip, with the measured reason, where explain cannot show index plans."""
    if not capabilities.index_backed_reads:
        pytest.skip(
            f"{capabilities.server} {capabilities.version} reads through no index but _id "
            "(capability record: index_backed_reads=False; FerretDB v1 explains every other "
            "filter as a full SCAN), so index plans are checked on MongoDB or FerretDB v2"
        )
