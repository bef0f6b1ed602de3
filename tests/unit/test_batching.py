from __future__ import annotations

import asyncio
from typing import Any

import pytest

from enterprise.batching import BatchedReader

pytestmark = pytest.mark.unit


class Store:
    def __init__(self) -> None:
        self.values: dict[str, int] = {}
        self.fetches: list[list[str]] = []

    async def fetch(self, keys: list[str]) -> list[Any]:
        self.fetches.append(keys)
        snapshot = [self.values.get(k) for k in keys]
        await asyncio.sleep(0.01)  # a round trip
        return snapshot


async def test_concurrent_reads_share_one_fetch() -> None:
    store = Store()
    store.values = {"a": 1, "b": 2}
    reader = BatchedReader(store.fetch)
    results = await asyncio.gather(
        *(reader.read(["a", "b"] if i % 2 else ["b"]) for i in range(50))
    )
    assert len(store.fetches) == 1
    assert store.fetches[0] == ["a", "b"] or store.fetches[0] == ["b", "a"]
    assert results[1] == [1, 2]
    assert results[0] == [2]


async def test_a_read_never_uses_a_fetch_sent_before_it_arrived() -> None:
    store = Store()
    store.values = {"gen": 1}
    reader = BatchedReader(store.fetch)
    early = asyncio.create_task(reader.read(["gen"]))
    await asyncio.sleep(0.002)  # the first fetch is in flight now
    store.values["gen"] = 2  # a write acknowledged before the next read arrives
    late = await reader.read(["gen"])
    assert await early == [1]
    assert late == [2]
    assert len(store.fetches) == 2


async def test_unavailable_store_and_errors_reach_every_caller() -> None:
    async def down(keys: list[str]) -> None:
        return None

    assert await asyncio.gather(*(BatchedReader(down).read(["a"]) for _ in range(3))) == [None] * 3

    async def broken(keys: list[str]) -> list[Any]:
        raise RuntimeError("boom")

    reader = BatchedReader(broken)
    with pytest.raises(RuntimeError, match="boom"):
        await reader.read(["a"])


async def test_aclose_waits_for_a_read_nobody_awaits() -> None:
    store = Store()
    store.values = {"a": 1}
    reader = BatchedReader(store.fetch)
    pending = reader.submit(["a"])  # e.g. a lease renewal: fire and forget
    await reader.aclose()
    assert pending.done()
    assert pending.result()[1] == [1]


async def test_a_read_sent_alone_does_not_queue_behind_the_shared_read() -> None:
    """A lease renewal must come back within its lease: it is sent at once, beside a shared
    read in flight, not after it (under load each read takes several event-loop turns)."""
    release = asyncio.Event()
    fetched: list[list[str]] = []

    async def fetch(keys: list[str]) -> list[Any]:
        fetched.append(keys)
        if keys == ["slow"]:
            await release.wait()
        return [1] * len(keys)

    reader = BatchedReader(fetch)
    shared = asyncio.ensure_future(reader.read(["slow"]))
    await asyncio.sleep(0.01)
    assert fetched == [["slow"]]  # the shared read is in flight, held
    alone = reader.submit_alone(["seq"])
    await asyncio.wait_for(asyncio.shield(alone), 1)  # answered while the other is held
    assert alone.result()[1] == [1]
    assert not shared.done()
    release.set()
    assert await shared == [1]
    await reader.aclose()
