"""The faults tier runs its own FerretDB and Redis (scripts/stack.sh, other ports, own
state folder) and stops and restarts those real processes during traffic. On the documentdb
backend (STACK_BACKEND, inherited) that is its own PostgreSQL cluster and FerretDB v2."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio
from pymongo import AsyncMongoClient

from enterprise.settings import Settings
from indexes.sync import sync as sync_indexes
from tests.conftest import ROOT, STACK_MANAGED, SUITE_RATE_LIMITS, free_port


@dataclass
class FaultStack:
    env: dict[str, str]
    mongodb_uri: str
    redis_url: str

    def run(self, *args: str) -> None:
        subprocess.run(
            ["bash", str(ROOT / "scripts" / "stack.sh"), *args],
            env=self.env,
            check=True,
            stdout=subprocess.DEVNULL,
        )

    def stop(self, server: str) -> None:
        self.run("stop", server)

    def start(self, server: str) -> None:
        self.run("start", server)

    def signal_mongo(self, signum: int) -> None:
        """SIGSTOP hangs the MongoDB-speaking server (it keeps its sockets and never
        answers), SIGCONT resumes it: FerretDB v1, or v2 in front of PostgreSQL.

        SIGSTOP returns once every thread of the server is stopped, and fails if there is
        no server to stop: a test of a hung server must never run against a live one (it
        would pass or fail for the wrong reason). SIGCONT on a stopped server is a no-op."""
        backend = self.env.get("STACK_BACKEND", "documentdb")
        process = "ferretdb2" if backend == "documentdb" else "ferretdb"
        pid_file = Path(self.env["STACK_DIR"]) / "pids" / f"{process}.pid"
        if not pid_file.exists():
            assert signum != signal.SIGSTOP, f"{process} is not running: nothing to hang"
            return
        pid = int(pid_file.read_text())
        os.kill(pid, signum)
        if signum == signal.SIGSTOP:
            _wait_stopped(pid, process)


def _wait_stopped(pid: int, process: str, timeout_s: float = 5.0) -> None:
    """Until every thread of `pid` is stopped (state T or t in /proc)."""
    tasks = Path(f"/proc/{pid}/task")
    if not tasks.exists():  # no procfs: the signal is all there is to go by
        return
    deadline = time.monotonic() + timeout_s
    while True:
        states = {}
        for task in tasks.iterdir():
            try:
                # The state follows the command name in parentheses, which may hold spaces.
                states[task.name] = (task / "stat").read_text().rpartition(")")[2].split()[0]
            except (FileNotFoundError, ProcessLookupError):
                continue  # a thread that ended meanwhile
        running = {tid: state for tid, state in states.items() if state not in ("T", "t")}
        if states and not running:
            return
        assert time.monotonic() < deadline, (
            f"SIGSTOP sent to {process} (pid {pid}), yet after {timeout_s} s these threads "
            f"are not stopped: {running}"
        )
        time.sleep(0.005)


@pytest.fixture(scope="session")
def fault_stack(stack: None) -> Iterator[FaultStack]:
    if not STACK_MANAGED:
        pytest.skip(
            "the faults tier stops and restarts servers it starts with scripts/stack.sh; "
            "these servers are external (STACK_MANAGED=0)"
        )
    main_bin = ROOT / ".stack" / "bin"
    state = ROOT / ".stack" / "faults"
    (state / "bin").mkdir(parents=True, exist_ok=True)
    # Reuse the built servers: no second build (PostgreSQL's extensions are machine-wide).
    for name in ("ferretdb", "ferretdb.sha256", "ferretdb2", "ferretdb2.sha256"):
        if (main_bin / name).exists():
            shutil.copy2(main_bin / name, state / "bin" / name)
    mongo_port, redis_port = free_port(), free_port()
    env = {
        **os.environ,
        "STACK_DIR": str(state),
        "FERRETDB_PORT": str(mongo_port),
        "REDIS_PORT": str(redis_port),
        "POSTGRES_PORT": str(free_port()),
        "FERRETDB_DEBUG_PORT": str(free_port()),
    }
    fault = FaultStack(
        env, f"mongodb://127.0.0.1:{mongo_port}/", f"redis://127.0.0.1:{redis_port}/0"
    )
    fault.run("up")
    try:
        yield fault
    finally:
        fault.run("down")


@pytest.fixture
async def fault_settings(fault_stack: FaultStack) -> AsyncIterator[Settings]:
    name = f"faults_{uuid.uuid4().hex[:12]}"
    async with _client(fault_stack) as client:
        await sync_indexes(client[name], prune=False, echo=lambda line: None)
    yield Settings.from_env(
        {
            "ENTERPRISE_DEV": "1",
            "MONGODB_URI": fault_stack.mongodb_uri,
            "REDIS_URL": fault_stack.redis_url,
            "MONGODB_DATABASE": name,
            "LOG_JSON": "false",
            "CIRCUIT_BREAKER_RESET_TIMEOUT": "1",
            "CIRCUIT_BREAKER_FAILURE_THRESHOLD": "3",
            "RATE_LIMITS": SUITE_RATE_LIMITS,
        }
    )
    fault_stack.start("ferretdb")
    fault_stack.start("redis")
    # A new client: the test may have restarted the server under a pooled connection, which
    # the next command would find closed (FerretDB v2 closes it on stop).
    async with _client(fault_stack) as client:
        await client.drop_database(name)


@asynccontextmanager
async def _client(fault_stack: FaultStack) -> AsyncIterator[AsyncMongoClient[Any]]:
    client: AsyncMongoClient[Any] = AsyncMongoClient(
        fault_stack.mongodb_uri, serverSelectionTimeoutMS=5000
    )
    try:
        yield client
    finally:
        await client.close()


@pytest.fixture
def restore(fault_stack: FaultStack) -> Iterator[FaultStack]:
    """Whatever a test stops is running again afterwards."""
    yield fault_stack
    fault_stack.signal_mongo(signal.SIGCONT)
    fault_stack.start("ferretdb")
    fault_stack.start("redis")


def redis_for(settings: Settings) -> Any:
    return redis.asyncio.from_url(
        settings.redis_url, socket_timeout=0.25, socket_connect_timeout=0.25
    )
