"""Fixtures: the real FerretDB/MongoDB and Redis, a fresh database per test, the app.

The servers are the project's own (`scripts/stack.sh`), started here if they are not up,
unless `STACK_MANAGED=0` says they are external (GitHub Actions service containers).
Every test talks to the real servers over sockets; nothing stands in for them.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio
from pymongo import AsyncMongoClient, MongoClient, monitoring
from pymongo.errors import PyMongoError

from enterprise.app import create_app
from enterprise.capabilities import ServerCapabilities
from enterprise.context import current_request_id
from enterprise.repositories.client import read_capabilities
from enterprise.settings import Settings
from indexes import DECLARED, KEY_FILTERS, SHAPES, capture, gate
from indexes.sync import sync as sync_indexes

ROOT = Path(__file__).resolve().parent.parent
MONGODB_URI = os.environ.get("MONGODB_URI", "mongodb://127.0.0.1:27018/")
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6380/0")
STACK_MANAGED = os.environ.get("STACK_MANAGED", "1") != "0"
STACK_DIR = Path(os.environ.get("STACK_DIR") or ROOT / ".stack")
QUERY_SHAPES_FILE = Path(os.environ.get("QUERY_SHAPES_FILE") or STACK_DIR / "query-shapes.json")

# Every query shape the app sends while serving a request, from every client of this process
# (the shared session client, the monitored ones, the ones apps open for themselves). Fixtures'
# own reads and writes happen outside a request, so they stay out. Checked at session end.
# Set by tests that make the app send unserved queries on purpose, to show the gate failing.
OUTSIDE_GATE: ContextVar[bool] = ContextVar("outside_gate", default=False)
QUERY_SHAPES = capture.ShapeRecorder(
    accept=lambda: current_request_id() is not None and not OUTSIDE_GATE.get()
)
_GATE_PROBLEMS = pytest.StashKey[list[str]]()


def pytest_configure(config: pytest.Config) -> None:
    # Global, so it reaches clients the app opens itself; it must precede every client.
    monitoring.register(QUERY_SHAPES)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """The query-plan gate: every shape the app sent needs a serving index, or the run fails.

    The shapes are also written for `python -m indexes check`, which prints the whole table.
    """
    tallies = dict(QUERY_SHAPES)
    if not tallies:
        return
    capture.dump(tallies, QUERY_SHAPES_FILE)
    rows = gate.check(tallies, gate.Declarations(DECLARED, SHAPES, KEY_FILTERS))
    session.config.stash[_GATE_PROBLEMS] = gate.problems(rows)
    if session.config.stash[_GATE_PROBLEMS] and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    if _GATE_PROBLEMS not in config.stash:
        return
    problems = config.stash[_GATE_PROBLEMS]
    shapes = len(dict(QUERY_SHAPES))
    if not problems:
        terminalreporter.write_line(
            f"query-plan gate: {shapes} shapes, each served by a declared index "
            f"({QUERY_SHAPES_FILE}; `python -m indexes check` prints the table)"
        )
        return
    terminalreporter.section("query-plan gate FAILED", red=True)
    for problem in problems:
        terminalreporter.write_line(problem, red=True)
    terminalreporter.write_line(
        f"{len(problems)} of {shapes} shapes have no serving index; declare one by the ESR rule "
        "in indexes/ or change the query (`python -m indexes check` prints the table)"
    )


def _servers_up() -> bool:
    try:
        with MongoClient(MONGODB_URI, serverSelectionTimeoutMS=1000) as client:
            client.admin.command("ping")
    except PyMongoError:
        return False
    import redis as sync_redis

    try:
        return bool(sync_redis.from_url(REDIS_URL, socket_timeout=1).ping())
    except sync_redis.RedisError:
        return False


@pytest.fixture(scope="session")
def stack() -> None:
    """Make sure the real servers answer; start the project's stack if they don't."""
    if _servers_up():
        return
    if not STACK_MANAGED:
        pytest.fail(f"external servers at {MONGODB_URI} / {REDIS_URL} do not answer")
    subprocess.run(["bash", str(ROOT / "scripts" / "stack.sh"), "up"], check=True)
    assert _servers_up(), "the stack started but does not answer"


@pytest.fixture(scope="session")
async def mongo(stack: None) -> AsyncIterator[AsyncMongoClient[Any]]:
    client: AsyncMongoClient[Any] = AsyncMongoClient(
        MONGODB_URI, tz_aware=True, serverSelectionTimeoutMS=3000
    )
    yield client
    await client.close()


@pytest.fixture(scope="session")
async def capabilities(mongo: AsyncMongoClient[Any]) -> ServerCapabilities:
    """The record the app reads at startup, probes included (scratch database, dropped)."""
    name = f"test_caps_{uuid.uuid4().hex[:12]}"
    try:
        return await read_capabilities(mongo, name)
    finally:
        await mongo.drop_database(name)


@pytest.fixture
async def redis_client(stack: None) -> AsyncIterator[redis.asyncio.Redis]:
    client = redis.asyncio.from_url(REDIS_URL, socket_timeout=0.25, socket_connect_timeout=0.25)
    yield client
    await client.aclose()


@pytest.fixture
async def database(mongo: AsyncMongoClient[Any]) -> AsyncIterator[str]:
    """A fresh database with the declared indexes; dropped afterwards."""
    name = f"test_{uuid.uuid4().hex[:12]}"
    await sync_indexes(mongo[name], prune=False, echo=lambda line: None)
    yield name
    await mongo.drop_database(name)


# The suite drives many requests through one key: limits stay on (every request pays for
# its decision) with a quota no other test reaches; tests of the limits set their own.
SUITE_RATE_LIMITS = "*:*:*=1000000/60"


def settings_for(database: str, **env: str) -> Settings:
    return Settings.from_env(
        {
            "ENTERPRISE_DEV": "1",
            "MONGODB_URI": MONGODB_URI,
            "REDIS_URL": REDIS_URL,
            "MONGODB_DATABASE": database,
            "LOG_JSON": "false",
            "RATE_LIMITS": SUITE_RATE_LIMITS,
            **env,
        }
    )


@pytest.fixture
def settings(database: str) -> Settings:
    return settings_for(database)


@asynccontextmanager
async def isolated_app(
    mongo: AsyncMongoClient[Any],
) -> AsyncIterator[tuple[Any, httpx.AsyncClient, str]]:
    """An app on a fresh database of its own, for module-scoped fixtures that share data."""
    name = f"test_{uuid.uuid4().hex[:12]}"
    await sync_indexes(mongo[name], prune=False, echo=lambda line: None)
    redis_client = redis.asyncio.from_url(
        REDIS_URL, socket_timeout=0.25, socket_connect_timeout=0.25
    )
    app = create_app(settings_for(name), mongo=mongo, redis_client=redis_client)
    try:
        async with await make_client(app) as http:
            yield app, http, name
    finally:
        await redis_client.aclose()
        await mongo.drop_database(name)


class Lifespan:
    """Drives the ASGI lifespan protocol, as a server would, around in-process tests."""

    def __init__(self, app: Any) -> None:
        self._app = app

    async def _run(self, kind: str) -> None:
        sent = False
        outcome: dict[str, Any] = {}

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": f"lifespan.{kind}"}
            raise RuntimeError("lifespan receive called twice")

        async def send(message: dict[str, Any]) -> None:
            outcome.update(message)

        try:
            await self._app({"type": "lifespan", "asgi": {"version": "3.0"}}, receive, send)
        except RuntimeError:
            pass  # Falcon waits for the next event after answering; we stop it there.
        assert outcome.get("type") == f"lifespan.{kind}.complete", outcome

    async def startup(self) -> None:
        await self._run("startup")

    async def shutdown(self) -> None:
        await self._run("shutdown")


class InProcess:
    """The app in this process with its lifespan, as `async with` → an httpx client."""

    def __init__(self, app: Any) -> None:
        self._app = app
        self._http: httpx.AsyncClient | None = None

    async def __aenter__(self) -> httpx.AsyncClient:
        await Lifespan(self._app).startup()
        self._http = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self._app), base_url="http://127.0.0.1"
        )
        return self._http

    async def __aexit__(self, *exc: object) -> None:
        assert self._http is not None
        await self._http.aclose()
        await Lifespan(self._app).shutdown()


async def make_client(app: Any) -> InProcess:
    """`async with await make_client(app) as client:` — startup, client, shutdown."""
    return InProcess(app)


@pytest.fixture
async def app(
    settings: Settings,
    mongo: AsyncMongoClient[Any],
    redis_client: redis.asyncio.Redis,
    capabilities: ServerCapabilities,
) -> Any:
    """The app on the shared clients, with the session's capability record (probed once)."""
    return create_app(settings, mongo=mongo, redis_client=redis_client, capabilities=capabilities)


@pytest.fixture
async def client(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with await make_client(app) as http:
        yield http


async def new_key(
    app: Any, role: str = "platform_admin", organization_id: str | None = None
) -> dict[str, str]:
    from enterprise.repositories.api_keys import ApiKeysRepository
    from enterprise.services.api_keys import ApiKeysService

    state = app.state
    repository = ApiKeysRepository(state.mongo[state.settings.mongodb_database], guard=state.guard)
    raw, _ = await ApiKeysService(repository).create(f"test {role}", role, organization_id)
    return {"Authorization": f"Bearer {raw}"}


@pytest.fixture
async def admin(app: Any) -> dict[str, str]:
    return await new_key(app)


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """`python -m enterprise serve` as a real subprocess (the default server, N workers)."""

    def __init__(
        self, env: dict[str, str], workers: int, port: int | None = None, log: Path | None = None
    ) -> None:
        self.port = port or free_port()
        self._log = log
        self.base_url = f"http://127.0.0.1:{self.port}"
        self._env = {**os.environ, "ENTERPRISE_DEV": "1", "LOG_LEVEL": "WARNING", **env}
        self._workers = workers
        self._process: asyncio.subprocess.Process | None = None

    async def __aenter__(self) -> Server:
        # The server's log: into `log` when given (kept for reading after a run), else dropped.
        stderr = self._log.open("wb") if self._log is not None else subprocess.DEVNULL
        self._process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "enterprise", "serve", "--port", str(self.port),
            "--workers", str(self._workers),
            env=self._env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=stderr,
        )  # fmt: skip
        if self._log is not None:
            stderr.close()  # type: ignore[union-attr]  # the child has its own descriptor
        async with httpx.AsyncClient(base_url=self.base_url) as http:
            for _ in range(200):
                try:
                    if (await http.get("/health/ready")).status_code == 200:
                        return self
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.05)
        await self.__aexit__()
        raise RuntimeError("the server did not become ready in 10 s")

    async def __aexit__(self, *exc: object) -> None:
        if self._process is not None and self._process.returncode is None:
            self._process.terminate()
            try:
                await asyncio.wait_for(self._process.wait(), 10)
            except TimeoutError:
                self._process.kill()
                await self._process.wait()


def server_env(settings: Settings) -> dict[str, str]:
    return {
        "MONGODB_URI": settings.mongodb_uri,
        "REDIS_URL": settings.redis_url,
        "MONGODB_DATABASE": settings.mongodb_database,
        "RATE_LIMITS": settings.rate_limits,
    }
