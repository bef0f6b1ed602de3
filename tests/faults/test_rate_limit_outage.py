"""Redis stopped: each worker limits alone with its share of the quota (1 / WORKERS); after
Redis is back the shared buckets count again (the script reloaded after the restart)."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from enterprise.app import create_app
from enterprise.settings import Settings
from tests.conftest import make_client, new_key
from tests.faults.conftest import FaultStack

pytestmark = pytest.mark.faults
API = "/api/v1"


def _remaining(answer: httpx.Response) -> int:
    return int(answer.headers["ratelimit"].split(";r=")[1].split(";")[0])


async def test_fallback_admits_the_worker_share_while_redis_is_down(
    fault_settings: Settings, restore: FaultStack
) -> None:
    # This process stands for one of two workers: its share is 20 / 2 = 10.
    settings = fault_settings.with_overrides(
        rate_limits="*:*:GET=20/3600,*:*:*=100/3600", workers=2
    )
    app = create_app(settings)
    async with await make_client(app) as client:
        admin = await new_key(app)
        created = await client.post(f"{API}/organizations", json={"name": "Outage"}, headers=admin)
        url = f"{API}/organizations/{created.json()['id']}"
        for _ in range(5):  # Redis up: 5 of the shared 20 spent
            assert (await client.get(url, headers=admin)).status_code == 200

        restore.stop("redis")
        down = [await client.get(url, headers=admin) for _ in range(30)]
        assert [a.status_code for a in down] == [200] * 10 + [429] * 20
        assert down[0].headers["ratelimit-policy"] == '"default";q=10;w=3600'
        assert [_remaining(a) for a in down[:10]] == list(range(9, -1, -1))
        assert all(int(a.headers["retry-after"]) >= 1 for a in down[10:])

        restore.start("redis")
        # Once the breaker lets calls through again, Redis decides (q=20). This stack's Redis
        # keeps no data (`--save ''`): the restart emptied the bucket, so a whole 20 is there.
        # Until then, and for each pooled connection the restart closed, the spent local
        # share answers (q=10, all 429): no request is admitted twice.
        deadline = time.monotonic() + 15
        admitted = refused_by_redis = 0
        while refused_by_redis == 0:
            assert time.monotonic() < deadline, f"Redis never took over again ({admitted})"
            answer = await client.get(url, headers=admin)
            tier_quota = answer.headers["ratelimit-policy"]
            if answer.status_code == 200:
                assert tier_quota == '"default";q=20;w=3600'
                assert _remaining(answer) == 19 - admitted
                admitted += 1
            elif tier_quota == '"default";q=20;w=3600':
                refused_by_redis += 1
            else:
                await asyncio.sleep(0.05)
        assert admitted == 20
