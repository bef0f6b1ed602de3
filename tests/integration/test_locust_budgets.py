"""`make loadtest` exits non-zero when a budget is missed: a short, bounded locust run of the
mixed scenarios (loadtests/locust.sh) against a real API server, with every P95 budget scaled
down a thousandfold so no server can hold it, whatever the machine's speed."""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path

import pytest

from tests.conftest import MONGODB_URI, REDIS_URL, ROOT, free_port

pytestmark = pytest.mark.integration


async def test_a_missed_budget_makes_the_run_exit_1(database: str, tmp_path: Path) -> None:
    if shutil.which("setsid") is None or not (Path(ROOT) / ".venv/bin/locust").exists():
        pytest.skip("needs setsid and .venv/bin/locust (the dev extra installs locust)")
    env = {
        **os.environ,
        "MONGODB_URI": MONGODB_URI,
        "REDIS_URL": REDIS_URL,
        "LOCUST_DB": database,
        "RESULTS": str(tmp_path),
        "LOCUST_PORT": str(free_port()),
        "USERS": "3",
        "SPAWN_RATE": "3",
        "DURATION": "6s",
        "WARMUP": "0",
        "ORG_KEY_COUNT": "1",
        "BUDGET_FACTOR": "0.001",
    }
    with (tmp_path / "run.log").open("wb") as output:
        process = await asyncio.create_subprocess_exec(
            "bash", str(Path(ROOT) / "loadtests/locust.sh"), env=env, cwd=ROOT,
            stdout=output, stderr=output,
        )  # fmt: skip
        status = await asyncio.wait_for(process.wait(), 180)
    assert status == 1, (tmp_path / "run.log").read_text()[-3000:]
    log = (tmp_path / "locust.log").read_text()
    assert "budget missed: crud P95" in log  # 0.15 ms: below locust's 1 ms resolution
    assert "verdict: budgets missed" in log
    assert "errors: 0 of" in log  # it failed on the budget, not on errors
    series = (tmp_path / "locust-series.csv").read_text().splitlines()
    assert series[0].startswith("epoch,route,class,requests")
    assert len(series) > 1
    cpu = (tmp_path / "locust-cpu.csv").read_text().splitlines()
    assert cpu[0] == "t,cpu_s,processes"
    assert len(cpu) > 2
