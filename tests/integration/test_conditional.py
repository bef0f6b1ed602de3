"""RFC 9110 conditional requests against the real stack."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from pymongo import AsyncMongoClient, monitoring

from enterprise.app import create_app
from enterprise.settings import Settings
from tests.conftest import MONGODB_URI, make_client, new_key

pytestmark = pytest.mark.integration
IDENTITY = {"Accept-Encoding": "identity"}


async def _org(
    client: httpx.AsyncClient, admin: dict[str, str], name: str = "Pearl Dental"
) -> httpx.Response:
    created = await client.post("/api/v1/organizations", json={"name": name}, headers=admin)
    assert created.status_code == 201, created.text
    return created


async def test_item_etag_comes_from_id_and_version(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    org = (await _org(client, admin)).json()
    got = await client.get(f"/api/v1/organizations/{org['id']}", headers={**admin, **IDENTITY})
    assert got.headers["etag"] == f'"{org["id"]}-1"'
    assert got.headers["cache-control"] == "private, max-age=0, must-revalidate"


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("{tag}", 304),
        ('"nope", {tag}', 304),  # a list of tags
        ("W/{tag}", 304),  # weak comparison ignores weakness
        ("*", 304),
        ('"nope"', 200),
        ('"nope", W/"other"', 200),
    ],
)
async def test_if_none_match_on_item(
    client: httpx.AsyncClient, admin: dict[str, str], header: str, expected: int
) -> None:
    org = (await _org(client, admin)).json()
    url = f"/api/v1/organizations/{org['id']}"
    tag = (await client.get(url, headers={**admin, **IDENTITY})).headers["etag"]
    answer = await client.get(
        url, headers={**admin, **IDENTITY, "If-None-Match": header.format(tag=tag)}
    )
    assert answer.status_code == expected
    if expected == 304:
        # RFC 9110 §15.4.5: the validator and caching headers of the 200, no representation
        assert answer.content == b""
        assert answer.headers["etag"] == (tag if header != "W/{tag}" else f"W/{tag}")
        assert answer.headers["cache-control"] == "private, max-age=0, must-revalidate"
        assert answer.headers["vary"] == "Accept-Encoding"
        assert "content-type" not in answer.headers
        assert answer.headers["x-cache"] == "hit"  # answered from the cached entry's ETag


async def test_head_revalidates_like_get(client: httpx.AsyncClient, admin: dict[str, str]) -> None:
    org = (await _org(client, admin)).json()
    url = f"/api/v1/organizations/{org['id']}"
    tag = (await client.head(url, headers={**admin, **IDENTITY})).headers["etag"]
    assert (await client.head(url, headers={**admin, "If-None-Match": tag})).status_code == 304


async def test_list_revalidation_needs_no_mongodb(settings: Settings, redis_client: Any) -> None:
    commands: list[str] = []

    class Listener(monitoring.CommandListener):
        def started(self, event: monitoring.CommandStartedEvent) -> None:
            commands.append(event.command_name)

        def succeeded(self, event: monitoring.CommandSucceededEvent) -> None: ...

        def failed(self, event: monitoring.CommandFailedEvent) -> None: ...

    mongo: AsyncMongoClient[Any] = AsyncMongoClient(
        MONGODB_URI, tz_aware=True, event_listeners=[Listener()]
    )
    app = create_app(settings, mongo=mongo, redis_client=redis_client)
    try:
        async with await make_client(app) as client:
            admin = await new_key(app)
            await _org(client, admin)
            listed = await client.get("/api/v1/organizations", headers={**admin, **IDENTITY})
            tag = listed.headers["etag"]
            assert tag.startswith('W/"')
            commands.clear()
            again = await client.get(
                "/api/v1/organizations", headers={**admin, **IDENTITY, "If-None-Match": tag}
            )
            assert again.status_code == 304
            assert commands == []  # answered from generations in Redis, no MongoDB call
            assert again.headers["etag"] == tag
            assert again.headers["cache-control"] == "private, max-age=0, must-revalidate"
            assert "content-type" not in again.headers
            await _org(client, admin, "Another Group")  # a write moves the generation
            fresh = await client.get(
                "/api/v1/organizations", headers={**admin, **IDENTITY, "If-None-Match": tag}
            )
            assert fresh.status_code == 200
            assert len(fresh.json()["data"]) == 2
    finally:
        await mongo.close()


async def test_compressed_representation_has_its_own_validator(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    for index in range(30):
        await _org(client, admin, f"Compressible Dental Group Number {index:03d}")
    plain = await client.get("/api/v1/organizations?limit=30", headers={**admin, **IDENTITY})
    brotli = await client.get(
        "/api/v1/organizations?limit=30", headers={**admin, "Accept-Encoding": "br"}
    )
    assert brotli.headers["content-encoding"] == "br"
    assert brotli.headers["etag"] != plain.headers["etag"]
    assert brotli.headers["etag"].endswith('-br"')
    again = await client.get(
        "/api/v1/organizations?limit=30",
        headers={**admin, "Accept-Encoding": "br", "If-None-Match": brotli.headers["etag"]},
    )
    assert again.status_code == 304
    assert again.headers["etag"] == brotli.headers["etag"]


async def test_stale_if_match_gives_412_and_writes_nothing(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    org = (await _org(client, admin)).json()
    url = f"/api/v1/organizations/{org['id']}"
    first = await client.patch(
        url, json={"status": "SUSPENDED"}, headers={**admin, "If-Match": f'"{org["id"]}-1"'}
    )
    assert first.status_code == 200, first.text
    assert first.headers["etag"] == f'"{org["id"]}-2"'
    stale = await client.patch(
        url, json={"status": "ARCHIVED"}, headers={**admin, "If-Match": f'"{org["id"]}-1"'}
    )
    assert stale.status_code == 412
    assert stale.headers["content-type"] == "application/problem+json"
    current = (await client.get(url, headers=admin)).json()
    assert (current["status"], current["version"]) == ("SUSPENDED", 2)


async def test_if_match_weak_tag_never_matches_strongly(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    org = (await _org(client, admin)).json()
    url = f"/api/v1/organizations/{org['id']}"
    answer = await client.patch(
        url, json={"status": "SUSPENDED"}, headers={**admin, "If-Match": f'W/"{org["id"]}-1"'}
    )
    assert answer.status_code == 412


async def test_if_match_star_and_compressed_tag(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    org = (await _org(client, admin)).json()
    url = f"/api/v1/organizations/{org['id']}"
    assert (
        await client.patch(url, json={"status": "SUSPENDED"}, headers={**admin, "If-Match": "*"})
    ).status_code == 200
    # A tag taken from a compressed response names the same state of the resource.
    suffixed = f'"{org["id"]}-2-br"'
    assert (
        await client.patch(url, json={"status": "ACTIVE"}, headers={**admin, "If-Match": suffixed})
    ).status_code == 200


async def test_missing_if_match_gives_428_when_required(
    settings: Settings, mongo: Any, redis_client: Any
) -> None:
    app = create_app(
        settings.with_overrides(require_if_match=True), mongo=mongo, redis_client=redis_client
    )
    async with await make_client(app) as client:
        admin = await new_key(app)
        org = (await _org(client, admin)).json()
        url = f"/api/v1/organizations/{org['id']}"
        missing = await client.patch(url, json={"status": "SUSPENDED"}, headers=admin)
        assert missing.status_code == 428
        assert missing.headers["content-type"] == "application/problem+json"
        assert (await client.delete(url, headers=admin)).status_code == 428
        assert (await client.get(url, headers=admin)).json()["version"] == 1
