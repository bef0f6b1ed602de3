"""Security headers on every kind of answer: fresh, cache hit, 304, problem+json, 429,
writes; HSTS only when configured; the dashboard keeps its own policy."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import redis.asyncio
from pymongo import AsyncMongoClient

from enterprise.app import create_app
from enterprise.capabilities import ServerCapabilities
from enterprise.resources.dashboard import CONTENT_SECURITY_POLICY
from tests.conftest import make_client, new_key, settings_for

pytestmark = pytest.mark.integration
API_POLICY = "default-src 'none'; frame-ancestors 'none'"
REVALIDATE = "private, max-age=0, must-revalidate"


def _secure(answer: httpx.Response, *, cache_control: str | None = None) -> None:
    assert answer.headers.get_list("x-content-type-options") == ["nosniff"], answer.headers
    assert len(answer.headers.get_list("content-security-policy")) == 1
    assert "strict-transport-security" not in answer.headers
    if cache_control is not None:
        assert answer.headers.get_list("cache-control") == [cache_control], answer.headers


async def test_every_kind_of_answer_carries_them(
    database: str,
    mongo: AsyncMongoClient[Any],
    redis_client: redis.asyncio.Redis,
    capabilities: ServerCapabilities,
) -> None:
    settings = settings_for(database, RATE_LIMITS="*:*:GET=4/3600,*:*:*=100/3600")
    app = create_app(settings, mongo=mongo, redis_client=redis_client, capabilities=capabilities)
    async with await make_client(app) as client:
        admin = await new_key(app)
        created = await client.post(
            "/api/v1/organizations", json={"name": "Headers"}, headers=admin
        )
        assert created.status_code == 201
        _secure(created, cache_control="no-store")  # an authenticated write: never stored
        url = f"/api/v1/organizations/{created.json()['id']}"
        fresh = await client.get(url, headers=admin)
        _secure(fresh, cache_control=REVALIDATE)  # validated reads stay revalidatable
        assert fresh.headers["content-security-policy"] == API_POLICY
        hit = await client.get(url, headers=admin)
        assert hit.headers["x-cache"] == "hit"
        _secure(hit, cache_control=REVALIDATE)
        revalidated = await client.get(url, headers={**admin, "If-None-Match": hit.headers["etag"]})
        assert revalidated.status_code == 304
        _secure(revalidated, cache_control=REVALIDATE)
        missing = await client.get("/api/v1/organizations/0123456789abcdef01234567", headers=admin)
        assert missing.status_code == 404
        assert missing.headers["content-type"].startswith("application/problem+json")
        _secure(missing, cache_control="no-store")
        await client.get(url, headers=admin)
        refused = await client.get(url, headers=admin)
        assert refused.status_code == 429
        _secure(refused, cache_control="no-store")
        anonymous = await client.get(url)
        assert anonymous.status_code == 401
        _secure(anonymous, cache_control="no-store")
        _secure(await client.get("/health/live"), cache_control="no-store")

        page = await client.get("/dashboard")
        assert page.headers.get_list("content-security-policy") == [CONTENT_SECURITY_POLICY]
        _secure(page)


async def test_hsts_when_configured(
    database: str,
    mongo: AsyncMongoClient[Any],
    redis_client: redis.asyncio.Redis,
    capabilities: ServerCapabilities,
) -> None:
    settings = settings_for(database, HSTS_SECONDS="31536000")
    app = create_app(settings, mongo=mongo, redis_client=redis_client, capabilities=capabilities)
    async with await make_client(app) as client:
        answer = await client.get("/health/live")
    assert answer.headers["strict-transport-security"] == "max-age=31536000; includeSubDomains"
