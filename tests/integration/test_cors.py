"""CORS for the configured origins: preflights answered before the app, the allowed origin
echoed (never `*` with credentials), `Vary: Origin`, and the fields scripts need exposed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import redis.asyncio
from pymongo import AsyncMongoClient

from enterprise.app import create_app
from enterprise.capabilities import ServerCapabilities
from tests.conftest import make_client, new_key, settings_for

pytestmark = pytest.mark.integration
APP = "https://app.example.com"
PREFLIGHT = {"Origin": APP, "Access-Control-Request-Method": "PATCH"}


@pytest.fixture
async def cors(
    database: str,
    mongo: AsyncMongoClient[Any],
    redis_client: redis.asyncio.Redis,
    capabilities: ServerCapabilities,
    request: pytest.FixtureRequest,
) -> AsyncIterator[tuple[Any, httpx.AsyncClient]]:
    env = getattr(request, "param", {"CORS_ORIGINS": f"{APP}, https://admin.example.com"})
    app = create_app(
        settings_for(database, **env),
        mongo=mongo,
        redis_client=redis_client,
        capabilities=capabilities,
    )
    async with await make_client(app) as client:
        yield app, client


async def test_preflight_from_an_allowed_origin(cors: tuple[Any, httpx.AsyncClient]) -> None:
    _, client = cors
    answer = await client.options(
        "/api/v1/organizations/0123456789abcdef01234567",
        headers={**PREFLIGHT, "Access-Control-Request-Headers": "Authorization, If-Match"},
    )
    assert answer.status_code == 204, answer.text
    assert answer.headers["access-control-allow-origin"] == APP
    assert "PATCH" in answer.headers["access-control-allow-methods"]
    assert "if-match" in answer.headers["access-control-allow-headers"]
    assert answer.headers["access-control-max-age"] == "600"
    assert "Origin" in answer.headers["vary"]
    assert "access-control-allow-credentials" not in answer.headers
    assert answer.headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize(
    "headers",
    [
        {**PREFLIGHT, "Origin": "https://evil.example.com"},
        {**PREFLIGHT, "Origin": "https://app.example.com.evil.example.com"},
        {**PREFLIGHT, "Access-Control-Request-Method": "TRACE"},
        {**PREFLIGHT, "Access-Control-Request-Headers": "authorization, x-forwarded-host"},
    ],
)
async def test_preflight_refused(
    cors: tuple[Any, httpx.AsyncClient], headers: dict[str, str]
) -> None:
    _, client = cors
    answer = await client.options("/api/v1/organizations", headers=headers)
    assert answer.status_code == 403
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["status"] == 403
    assert not any(name.startswith("access-control-") for name in answer.headers)


async def test_answers_echo_the_allowed_origin_and_expose_fields(
    cors: tuple[Any, httpx.AsyncClient],
) -> None:
    app, client = cors
    admin = await new_key(app)
    answer = await client.get("/api/v1/organizations", headers={**admin, "Origin": APP})
    assert answer.status_code == 200
    assert answer.headers["access-control-allow-origin"] == APP
    exposed = {
        h.strip().lower() for h in answer.headers["access-control-expose-headers"].split(",")
    }
    assert {
        "etag",
        "link",
        "ratelimit",
        "ratelimit-policy",
        "x-request-id",
        "retry-after",
    } <= exposed
    assert "Origin" in answer.headers.get_list("vary")

    stranger = await client.get(
        "/api/v1/organizations", headers={**admin, "Origin": "https://evil.example.com"}
    )
    assert stranger.status_code == 200  # CORS is enforced by the browser, which sees no grant
    assert "access-control-allow-origin" not in stranger.headers
    assert "Origin" in stranger.headers.get_list("vary")

    problem = await client.get("/api/v1/organizations", headers={"Origin": APP})
    assert problem.status_code == 401  # a script may read why it failed
    assert problem.headers["access-control-allow-origin"] == APP


@pytest.mark.parametrize(
    "cors",
    [{"CORS_ORIGINS": APP, "CORS_ALLOW_CREDENTIALS": "true"}],
    indirect=True,
)
async def test_credentials_echo_the_origin_never_a_wildcard(
    cors: tuple[Any, httpx.AsyncClient],
) -> None:
    _, client = cors
    answer = await client.options("/api/v1/organizations", headers=PREFLIGHT)
    assert answer.headers["access-control-allow-origin"] == APP
    assert answer.headers["access-control-allow-credentials"] == "true"
    live = await client.get("/health/live", headers={"Origin": APP})
    assert live.headers["access-control-allow-origin"] == APP
    assert live.headers["access-control-allow-credentials"] == "true"


@pytest.mark.parametrize("cors", [{"CORS_ORIGINS": "*"}], indirect=True)
async def test_a_wildcard_list_answers_any_origin_without_credentials(
    cors: tuple[Any, httpx.AsyncClient],
) -> None:
    _, client = cors
    answer = await client.get("/health/live", headers={"Origin": "https://anyone.example"})
    assert answer.headers["access-control-allow-origin"] == "*"
    assert "access-control-allow-credentials" not in answer.headers


@pytest.mark.parametrize("cors", [{}], indirect=True)
async def test_no_origins_configured_means_no_cors(cors: tuple[Any, httpx.AsyncClient]) -> None:
    _, client = cors
    answer = await client.get("/health/live", headers={"Origin": APP})
    assert not any(name.startswith("access-control-") for name in answer.headers)
    preflight = await client.options("/api/v1/organizations", headers=PREFLIGHT)
    assert "access-control-allow-origin" not in preflight.headers


async def test_hits_answered_before_the_app_carry_vary_and_cross_origin_ones_their_grant(
    cors: tuple[Any, httpx.AsyncClient],
) -> None:
    """The hot path answers hits outside the CORS wrapper: it adds `Vary: Origin` itself, and
    leaves requests with an Origin to the app, so they keep their grant."""
    app, client = cors
    admin = await new_key(app)
    created = await client.post("/api/v1/organizations", json={"name": "Cors"}, headers=admin)
    url = f"/api/v1/organizations/{created.json()['id']}"
    for _ in range(2):  # the miss, then the read that leases the new generations
        await client.get(url, headers=admin)
    before = app.state.hot_path.answered
    hit = await client.get(url, headers=admin)
    assert hit.headers["x-cache"] == "hit"
    assert app.state.hot_path.answered == before + 1  # answered before the app
    assert "Origin" in hit.headers.get_list("vary")
    assert hit.headers["x-content-type-options"] == "nosniff"
    revalidated = await client.get(url, headers={**admin, "If-None-Match": hit.headers["etag"]})
    assert revalidated.status_code == 304
    assert "Origin" in revalidated.headers.get_list("vary")

    crossing = await client.get(url, headers={**admin, "Origin": APP})
    assert crossing.headers["x-cache"] == "hit"  # still from the cache, through the app
    assert app.state.hot_path.answered == before + 2  # the 304 above; not this one
    assert crossing.headers["access-control-allow-origin"] == APP
    assert "Origin" in crossing.headers.get_list("vary")
