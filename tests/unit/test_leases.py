"""Generation leases: reuse while leased, drop on a new write sequence, outwait on writes."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from enterprise.batching import BatchedReader
from enterprise.leases import GenerationLeases

pytestmark = pytest.mark.unit

SEQ = "~seq"


class Store:
    """Key values plus a write that increments generations, then the sequence (as cache.py)."""

    def __init__(self) -> None:
        self.values: dict[str, bytes] = {SEQ: b"1", "a": b"10", "b": b"20"}
        self.fetches: list[list[str]] = []
        self.up = True
        self.gate: asyncio.Event | None = None  # when set, answers wait for it

    async def fetch(self, keys: list[str]) -> list[Any] | None:
        if not self.up:
            return None  # what the cache's Redis call returns when Redis is down
        self.fetches.append(keys)
        snapshot = [self.values.get(k) for k in keys]
        await asyncio.sleep(0.001)  # a round trip
        if self.gate is not None:
            await self.gate.wait()
        return snapshot

    def write(self, key: str) -> None:
        self.values[key] = str(int(self.values[key]) + 1).encode()
        self.values[SEQ] = str(int(self.values[SEQ]) + 1).encode()


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def leases_on(store: Store, lease_s: float, clock: Clock | None = None) -> GenerationLeases:
    if clock is None:
        return GenerationLeases(BatchedReader(store.fetch), SEQ, lease_s)
    return GenerationLeases(BatchedReader(store.fetch, clock=clock), SEQ, lease_s, clock=clock)


async def test_values_are_reused_only_while_the_lease_holds() -> None:
    store, clock = Store(), Clock()
    leases = leases_on(store, 0.020, clock)
    assert leases.cached(("a",)) is None  # nothing known yet
    assert await leases.read(["a", "b"]) == ["10", "20"]
    assert store.fetches == [[SEQ, "a", "b"]]

    clock.now += 0.004  # early in the lease: served from memory, no renewal yet
    assert leases.cached(("b", "a")) == "20.10"
    assert leases.cached(("c",)) is None  # never read: unknown
    assert len(store.fetches) == 1

    clock.now += 0.017  # past the lease
    assert leases.cached(("a",)) is None


async def test_a_new_write_sequence_drops_every_value_read_before_it() -> None:
    store, clock = Store(), Clock()
    leases = leases_on(store, 0.020, clock)
    await leases.read(["a", "b"])
    assert leases.cached(("a", "b")) == "10.20"  # remembered joined, too
    store.write("a")
    clock.now += 0.021
    assert leases.cached(("b",)) is None
    assert await leases.read(["a"]) == ["11"]
    clock.now += 0.001
    assert leases.cached(("a",)) == "11"
    assert leases.cached(("b",)) is None  # "b" was read under the old sequence
    assert leases.cached(("a", "b")) is None  # and so was the joined "10.20"


async def test_renewals_keep_a_steady_stream_off_redis() -> None:
    # Lease time runs on a clock of our own, one millisecond per request, so a loaded machine
    # (an event loop that wakes late) cannot make the lease lapse between two requests; a
    # renewal's round trip still takes real time (Store.fetch sleeps), and must come back
    # within the half lease it is given.
    store, clock = Store(), Clock()
    leases = leases_on(store, 0.020, clock)
    await leases.read(["a"])
    waited = 0
    for _ in range(200):  # 0.2 s of requests, one every 1 ms
        if leases.cached(("a",)) is None:
            waited += 1
            await leases.read(["a"])
        await asyncio.sleep(0.001)
        clock.now += 0.001
    assert waited <= 2
    renewals = [keys for keys in store.fetches if keys == [SEQ]]
    assert renewals, "the lease was never renewed in the background"
    assert len(store.fetches) < 60  # one read per several ms, not one per request


async def test_an_older_read_never_extends_a_newer_lease() -> None:
    store, clock = Store(), Clock()
    leases = leases_on(store, 0.020, clock)
    await leases.read(["a"])  # sent at t=100.000
    clock.now += 0.010
    await leases.read(["a"])  # sent at t=100.010: valid until 100.030
    leases._apply(["a"], 100.0, [b"1", b"10"])  # a late answer to a read sent at t=100.000
    clock.now += 0.015
    assert leases.cached(("a",)) == "10"  # still leased by the newer read


async def test_a_write_acknowledged_after_the_commit_wait_is_seen_by_every_reader() -> None:
    """Two workers: B leased "a" just before A's write; after A's wait, B must re-read."""
    store = Store()
    worker_a, worker_b = leases_on(store, 0.050), leases_on(store, 0.050)
    assert await worker_b.read(["a"]) == ["10"]
    assert worker_b.cached(("a",)) == "10"  # B may use "10" now: A has not written yet

    store.write("a")  # A's increments, confirmed by Redis
    started = asyncio.get_running_loop().time()
    await worker_a.commit_wait()  # ... before A acknowledges
    assert asyncio.get_running_loop().time() - started >= 0.050

    assert worker_b.cached(("a",)) is None  # B's lease on the old sequence is over
    assert await worker_b.read(["a"]) == ["11"]


async def test_lease_zero_reads_every_time_and_never_waits() -> None:
    store = Store()
    leases = leases_on(store, 0.0)
    await leases.read(["a"])
    assert leases.cached(("a",)) is None
    started = asyncio.get_running_loop().time()
    await leases.commit_wait()
    assert asyncio.get_running_loop().time() - started < 0.01


async def test_an_unavailable_store_forgets_everything() -> None:
    store, clock = Store(), Clock()
    leases = leases_on(store, 0.020, clock)
    await leases.read(["a"])
    store.up = False
    assert await leases.read(["a"]) is None
    assert leases.cached(("a",)) is None


async def test_a_request_that_finds_the_lease_lapsed_waits_for_the_renewal_in_flight() -> None:
    store, clock = Store(), Clock()
    leases = leases_on(store, 0.010, clock)
    await leases.read(["a"])  # sent at 100.000: leased until 100.010
    store.gate = asyncio.Event()
    clock.now = 100.004
    assert leases.cached(("a",)) == "10"  # before half the lease: no renewal yet
    assert leases.renewals == 0
    clock.now = 100.006
    assert leases.cached(("a",)) == "10"  # past half: a renewal is submitted ...
    assert leases.renewals == 1
    for _ in range(3):
        await asyncio.sleep(0)  # ... and sent at 100.006 (leased until 100.016 once answered)
    clock.now = 100.011
    assert leases.cached(("a",)) is None  # lapsed while the renewal is still in flight
    waiting = asyncio.create_task(leases.after_renewal(("a",)))
    await asyncio.sleep(0.002)
    assert not waiting.done()
    store.gate.set()
    assert await waiting == "10"
    assert store.fetches == [[SEQ, "a"], [SEQ]]  # no read of its own


async def test_an_unknown_key_does_not_wait_for_a_renewal() -> None:
    store = Store()
    leases = leases_on(store, 0.050)
    await leases.read(["a"])
    await asyncio.sleep(0.02)
    assert leases.cached(("b",)) is None  # "b" never read; a renewal is now in flight
    assert await leases.after_renewal(("b",)) is None  # read it at once instead of waiting
