"""The capability record's claim, checked: concurrent single-document updates are atomic."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from enterprise.capabilities import ServerCapabilities

pytestmark = pytest.mark.contract


async def test_concurrent_increments_all_apply(
    capabilities: ServerCapabilities, mongo: Any, database: str
) -> None:
    if not capabilities.atomic_updates:
        pytest.skip(
            f"{capabilities.server} does not apply concurrent updates of one document atomically "
            "(measured on FerretDB v1.24.2: 50 tasks x 20 $inc left n=37 of 1,000); the service's "
            "write guard covers it, see tests/integration/test_concurrency.py"
        )
    collection = mongo[database]["counters"]
    await collection.insert_one({"_id": "n", "n": 0})

    async def bump() -> None:
        for _ in range(20):
            await collection.update_one({"_id": "n"}, {"$inc": {"n": 1}})

    await asyncio.gather(*(bump() for _ in range(50)))
    assert (await collection.find_one({"_id": "n"}))["n"] == 1000
