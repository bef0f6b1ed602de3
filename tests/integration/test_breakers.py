"""The MongoDB breaker around awaited driver calls, on real sockets: a port nobody listens on
(a stopped server) and the real server (answers that must not trip it).

pybreaker 1.4.1 has no asyncio support: the repositories wrap each awaited block in its
`calling()` context manager. These tests show that this really counts the awaited outcome.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pybreaker
import pytest
import redis.asyncio
from bson import ObjectId
from pymongo import AsyncMongoClient

from enterprise.app import create_app
from enterprise.breakers import Circuit, make_breaker
from enterprise.capabilities import ServerCapabilities
from enterprise.errors import Conflict, NotFound, Unavailable
from enterprise.guard import WriteGuard
from enterprise.repositories.clinics import ClinicsRepository
from enterprise.repositories.errors import is_outage
from enterprise.repositories.organizations import OrganizationsRepository
from enterprise.settings import Settings
from tests.conftest import free_port, make_client

pytestmark = pytest.mark.integration
THRESHOLD = 3


def _circuit(reset_timeout: float = 60.0, **options: Any) -> Circuit:
    breaker = make_breaker(
        f"mongodb-test-{uuid.uuid4().hex[:6]}",
        failure_threshold=THRESHOLD,
        reset_timeout=reset_timeout,
        counts=is_outage,
    )
    return Circuit(breaker, **options)


@pytest.fixture
async def nobody() -> AsyncIterator[AsyncMongoClient[Any]]:
    """A client of a port nobody listens on: every call fails as against a stopped server."""
    client: AsyncMongoClient[Any] = AsyncMongoClient(
        f"mongodb://127.0.0.1:{free_port()}/", serverSelectionTimeoutMS=150, connectTimeoutMS=150
    )
    yield client
    await client.close()


def _organizations(client: AsyncMongoClient[Any], database: str, circuit: Circuit) -> Any:
    guard = WriteGuard(enabled=False, redis=None, workers=1)
    return OrganizationsRepository(client[database], guard=guard, circuit=circuit)


def _refused_by_the_breaker(ex: Unavailable) -> bool:
    return isinstance(ex.__cause__, pybreaker.CircuitBreakerError)


async def test_the_breaker_opens_around_awaited_calls_and_then_fails_fast(
    nobody: AsyncMongoClient[Any],
) -> None:
    circuit = _circuit()
    organizations = _organizations(nobody, "breaker", circuit)
    causes = []
    for _ in range(THRESHOLD):
        with pytest.raises(Unavailable) as failed:
            await organizations.get(ObjectId(), {}, None)
        causes.append(type(failed.value.__cause__).__name__)
    assert circuit.breaker.current_state == "open"
    # The failures that tripped it were real awaited driver failures; the last one is
    # reported as the trip itself.
    assert causes[:-1] == ["ServerSelectionTimeoutError"] * (THRESHOLD - 1)
    with pytest.raises(Unavailable) as refused:
        await organizations.get(ObjectId(), {}, None)
    assert _refused_by_the_breaker(refused.value)  # no driver call was attempted
    assert 59 <= refused.value.retry_after <= 60  # seconds until the trial call


async def test_answers_from_the_server_do_not_count(
    mongo: AsyncMongoClient[Any], database: str
) -> None:
    circuit = _circuit()
    guard = WriteGuard(enabled=False, redis=None, workers=1)
    clinics = ClinicsRepository(mongo[database], guard=guard, circuit=circuit)
    organization = ObjectId()
    clinic = {"organizationId": organization, "name": "A", "code": "DUP", "status": "ACTIVE"}
    await clinics.insert(clinic)
    for _ in range(THRESHOLD + 2):
        with pytest.raises(Conflict):  # DuplicateKeyError from the server
            await clinics.insert(dict(clinic))
        with pytest.raises(NotFound):
            await clinics.update(ObjectId(), {}, lambda doc: ({}, []), lambda doc: None)
        with pytest.raises(Exception, match="Unrecognized pipeline stage"):  # OperationFailure
            await clinics.aggregate([{"$noSuchStage": {}}])
    assert circuit.breaker.current_state == "closed"
    assert circuit.breaker.fail_counter == 0


async def test_cancellation_does_not_count(nobody: AsyncMongoClient[Any]) -> None:
    circuit = _circuit()
    organizations = _organizations(nobody, "breaker", circuit)
    for _ in range(THRESHOLD - 1):
        with pytest.raises(Unavailable):
            await organizations.get(ObjectId(), {}, None)
    for _ in range(THRESHOLD):
        call = asyncio.ensure_future(organizations.get(ObjectId(), {}, None))
        await asyncio.sleep(0.02)  # inside the awaited server selection
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
    assert circuit.breaker.current_state == "closed"


async def test_one_trial_while_half_open_and_a_good_trial_closes_it(
    nobody: AsyncMongoClient[Any], mongo: AsyncMongoClient[Any], database: str
) -> None:
    circuit = _circuit(reset_timeout=0.2)
    down = _organizations(nobody, "breaker", circuit)
    for _ in range(THRESHOLD):
        with pytest.raises(Unavailable):
            await down.get(ObjectId(), {}, None)
    await asyncio.sleep(0.3)  # the reset timeout passes: the next call is the trial
    outcomes = await asyncio.gather(
        *(down.get(ObjectId(), {}, None) for _ in range(5)), return_exceptions=True
    )
    assert all(isinstance(outcome, Unavailable) for outcome in outcomes)
    waited = [o for o in outcomes if "trial call is in flight" not in str(o.__cause__)]
    assert len(waited) == 1  # only the trial waited for the server; it failed: open again
    assert "Trial call failed" in str(waited[0].__cause__)
    assert circuit.breaker.current_state == "open"

    await asyncio.sleep(0.3)
    up = _organizations(mongo, database, circuit)
    assert await up.get(ObjectId(), {}, None) is None  # the trial succeeds
    assert circuit.breaker.current_state == "closed"


async def test_open_breaker_answers_503_with_retry_after_and_readiness_shows_it(
    capabilities: ServerCapabilities, redis_client: redis.asyncio.Redis
) -> None:
    settings = Settings.from_env(
        {
            "ENTERPRISE_DEV": "1",
            "MONGODB_URI": f"mongodb://127.0.0.1:{free_port()}/",
            "DB_SERVER_SELECTION_TIMEOUT_MS": "150",
            "MONGODB_DATABASE": "breaker",
            "CIRCUIT_BREAKER_FAILURE_THRESHOLD": "2",
            "CIRCUIT_BREAKER_RESET_TIMEOUT": "30",
            "LOG_JSON": "false",
        }
    )
    app = create_app(settings, redis_client=redis_client, capabilities=capabilities)
    headers = {"Authorization": "Bearer not-cached-so-the-key-lookup-reads-mongodb"}
    async with await make_client(app) as client:
        answers: list[httpx.Response] = []
        for _ in range(3):
            answers.append(await client.get("/api/v1/organizations", headers=headers))
        assert [a.status_code for a in answers] == [503, 503, 503]
        last = answers[-1]
        assert last.headers["content-type"] == "application/problem+json"
        assert "circuit breaker open" in last.json()["detail"]
        assert 29 <= int(last.headers["retry-after"]) <= 30
        ready = await client.get("/health/ready")
        assert ready.status_code == 503
        # What readiness shows sre and platform_admin keys (none can be read here).
        assert app.state.describe()["breakers"] == {"redis": "closed", "mongodb": "open"}


async def test_a_write_that_never_reached_a_server_is_503_and_refused_ones_too(
    nobody: AsyncMongoClient[Any],
) -> None:
    """Server selection failed: the write was never sent, so 503 ("not applied") is true."""
    circuit = _circuit()
    organizations = _organizations(nobody, "breaker", circuit)
    for _ in range(THRESHOLD + 1):
        with pytest.raises(Unavailable):
            await organizations.insert({"name": "never sent"})
    assert circuit.breaker.current_state == "open"


async def test_a_key_being_looked_up_again_does_not_hold_its_requests(app: Any) -> None:
    """When a key's entry has expired, one request looks it up; in an outage that lookup is
    the breaker's trial call, seconds long. The request that started it waits for it a
    moment (`lookup_patience_s`) and then goes on with the principal the key had; the key's
    other requests go on at once. A key never seen is still looked up and waited for."""
    from enterprise.repositories.api_keys import ApiKeysRepository
    from enterprise.services.api_keys import ApiKeysService

    class Held(ApiKeysRepository):
        """The real repository, whose lookups wait until the test lets them go."""

        release = asyncio.Event()

        async def by_hash(self, digest: str) -> Any:
            await self.release.wait()
            return await super().by_hash(digest)

    state = app.state
    db = state.mongo[state.settings.mongodb_database]
    raw, _ = await ApiKeysService(ApiKeysRepository(db, guard=state.guard)).create("k", "sre", None)
    service = ApiKeysService(Held(db, guard=state.guard), cache_seconds=0.01, lookup_patience_s=0.3)
    Held.release.set()
    first = await service.authenticate(raw)
    assert first is not None
    await asyncio.sleep(0.05)  # the entry expires
    Held.release.clear()
    looking = asyncio.create_task(service.authenticate(raw))
    await asyncio.sleep(0.05)
    assert not looking.done()  # the request that started the lookup waits for it a moment
    assert await asyncio.wait_for(service.authenticate(raw), 0.1) == first  # the others don't
    assert await asyncio.wait_for(looking, 1) == first  # then goes on: the lookup is held
    unknown = asyncio.create_task(service.authenticate("ent_never_seen"))
    await asyncio.sleep(0.5)
    assert not unknown.done()  # nothing known about it: it waits for its own lookup
    Held.release.set()
    assert await unknown is None
