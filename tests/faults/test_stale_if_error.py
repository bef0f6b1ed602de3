"""Stale-if-error with the real MongoDB-compatible server hung (SIGSTOP: it accepts nothing
and answers nothing, so the driver's deadline ends the read with a 504) or stopped: an
expired entry answers, marked with Cache-Status, within STALE_IF_ERROR_SECONDS; and hot
keys keep being served while their background refresh fails."""

from __future__ import annotations

import asyncio
import gc
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from enterprise.app import create_app
from enterprise.settings import Settings
from tests.conftest import make_client, new_key
from tests.faults.conftest import FaultStack
from tests.faults.test_cache_outage import _seed

# A connection the driver opens to a stopped (SIGSTOP) server is accepted by the kernel and
# never answered; the driver abandons it at the deadline without closing its socket, which
# the garbage collector then reports in whichever test runs next. Each test here collects it
# itself, where this one warning is expected.
pytestmark = [
    pytest.mark.faults,
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
]


@pytest.fixture(autouse=True)
def _collect_abandoned_sockets() -> Iterator[None]:
    yield
    gc.collect()  # the app is closed: its abandoned socket is reported here, not elsewhere


@contextmanager
def _hung(stack: FaultStack) -> Iterator[None]:
    """The MongoDB-compatible server stopped in its tracks (SIGSTOP), resumed on exit: the
    one of the backend under test (a pid file another backend left in the stack directory
    must not be the one signalled: the server answering would then go on answering)."""
    stack.signal_mongo(signal.SIGSTOP)
    try:
        yield
    finally:
        stack.signal_mongo(signal.SIGCONT)


def _settings(fault_settings: Settings, **changes: Any) -> Settings:
    return fault_settings.with_overrides(
        cache_ttl_clinic=1,
        cache_ttl_list=1,
        cache_ttl_jitter=0.0,
        # A hung server holds a read for the driver's share of the request's deadline.
        timeout_default=3.0,
        **changes,
    )


async def _reader(app: Any, client: Any) -> dict[str, str]:
    """A new key, looked up now: keys are looked up again after 10 s, which needs MongoDB,
    and seeding may take that long on a loaded machine."""
    key = await new_key(app)
    assert (await client.get("/api/v1/organizations?limit=1", headers=key)).status_code == 200
    return key


async def test_an_expired_entry_answers_while_mongodb_is_down(
    fault_settings: Settings, restore: FaultStack
) -> None:
    # No stale-while-revalidate window: past its TTL every request recomputes, and fails.
    settings = _settings(fault_settings, cache_stale_seconds=0, stale_if_error_seconds=60)
    app = create_app(settings)
    async with await make_client(app) as client:
        admin = await new_key(app)
        org, clinics = await _seed(client, admin)
        item, page = f"/api/v1/clinics/{clinics[0]}", f"/api/v1/organizations/{org}/clinics"
        accept_br = {**admin, "Accept-Encoding": "br"}
        stored = [await client.get(item, headers=admin), await client.get(page, headers=accept_br)]
        await asyncio.sleep(1.2)  # both expired
        admin = await _reader(app, client)
        with _hung(restore):
            served = [
                await client.get(item, headers=admin),
                await client.get(page, headers={**admin, "Accept-Encoding": "br"}),
            ]
            uncached = await client.get(f"/api/v1/clinics/{clinics[1]}", headers=admin)
    for before, after in zip(stored, served, strict=True):
        assert after.status_code == 200
        assert after.content == before.content
        assert after.headers["etag"] == before.headers["etag"]
        assert after.headers["x-cache"] == "stale"
        status = after.headers["cache-status"]
        assert status.startswith("enterprise; fwd=stale; fwd-status=")
        assert status.split("fwd-status=")[1].split(";")[0] in {"503", "504"}
        assert "retry-after" not in after.headers
        assert after.headers["cache-control"] == "private, max-age=0, must-revalidate"
    assert served[1].headers["content-encoding"] == "br"  # the stored form, stale or not
    assert uncached.status_code in {503, 504}  # nothing stored: nothing to fall back on


async def test_requests_that_waited_for_a_failed_computation_are_answered_stale_too(
    fault_settings: Settings, restore: FaultStack
) -> None:
    """Concurrent requests for one expired entry: one computes, the others wait for it. When
    that computation fails, they are answered from the stale entry as it is, not with the
    failure of a computation of their own."""
    settings = _settings(fault_settings, cache_stale_seconds=0, stale_if_error_seconds=60)
    app = create_app(settings)
    async with await make_client(app) as client:
        admin = await new_key(app)
        _, clinics = await _seed(client, admin)
        item = f"/api/v1/clinics/{clinics[0]}"
        stored = await client.get(item, headers=admin)
        await asyncio.sleep(1.2)  # expired
        admin = await _reader(app, client)
        with _hung(restore):
            served = await asyncio.gather(*(client.get(item, headers=admin) for _ in range(4)))
    for answer in served:
        assert answer.status_code == 200, answer.text
        assert answer.content == stored.content
        assert answer.headers["x-cache"] == "stale"
        assert answer.headers["cache-status"].startswith("enterprise; fwd=stale; fwd-status=")


async def test_with_redis_down_too_the_last_answer_still_answers(
    fault_settings: Settings, restore: FaultStack
) -> None:
    """With Redis stopped the cache keys are made of local generations, so they no longer
    find what was cached under Redis's; the last answer to the same question still does."""
    settings = _settings(fault_settings, cache_stale_seconds=0, stale_if_error_seconds=60)
    app = create_app(settings)
    async with await make_client(app) as client:
        admin = await new_key(app)
        _, clinics = await _seed(client, admin)
        item = f"/api/v1/clinics/{clinics[0]}"
        stored = await client.get(item, headers=admin)
        assert stored.headers["x-cache"] == "miss"
        restore.stop("redis")
        try:
            admin = await _reader(app, client)  # looked up now: stopping Redis takes a while
            with _hung(restore):
                served = await client.get(item, headers=admin)
                uncached = await client.get(f"/api/v1/clinics/{clinics[1]}", headers=admin)
        finally:
            restore.start("redis")
    assert served.status_code == 200, served.text
    assert served.content == stored.content
    assert served.headers["etag"] == stored.headers["etag"]
    assert served.headers["cache-status"].startswith("enterprise; fwd=stale; fwd-status=")
    assert uncached.status_code in {503, 504}  # never asked before: nothing to fall back on


async def test_past_the_stale_if_error_window_the_error_is_the_answer(
    fault_settings: Settings, restore: FaultStack
) -> None:
    settings = _settings(fault_settings, cache_stale_seconds=0, stale_if_error_seconds=1)
    app = create_app(settings)
    async with await make_client(app) as client:
        admin = await new_key(app)
        _, clinics = await _seed(client, admin)
        item = f"/api/v1/clinics/{clinics[0]}"
        assert (await client.get(item, headers=admin)).status_code == 200
        await asyncio.sleep(2.2)  # past TTL (1 s) + window (1 s)
        admin = await _reader(app, client)
        with _hung(restore):
            answer = await client.get(item, headers=admin)
    assert answer.status_code in {503, 504}
    assert answer.headers["content-type"] == "application/problem+json"


async def test_hot_keys_are_served_while_their_refresh_fails(
    fault_settings: Settings, restore: FaultStack
) -> None:
    settings = _settings(
        fault_settings,
        cache_stale_seconds=30,
        stale_if_error_seconds=60,
        cache_generation_lease_ms=1000,
    )
    app = create_app(settings)
    async with await make_client(app) as client:
        admin = await new_key(app)
        _, clinics = await _seed(client, admin)
        item = f"/api/v1/clinics/{clinics[0]}"
        stored = await client.get(item, headers=admin)
        await asyncio.sleep(1.2)
        admin = await _reader(app, client)
        restore.stop("ferretdb")
        answers = []
        for _ in range(20):
            answers.append(await client.get(item, headers=admin))
            await asyncio.sleep(0.05)
        refreshes = app.state.hot_path.refreshes
    assert {a.status_code for a in answers} == {200}
    assert {a.content for a in answers} == {stored.content}
    assert {a.headers["x-cache"] for a in answers} == {"stale"}
    assert refreshes >= 1  # refreshes were tried (and failed) in the background
