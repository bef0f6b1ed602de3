"""NDJSON exports: every document once, `fields=` honoured, tenant-scoped, streamed in
batches, compressed as they stream, and the cursor closed when the client leaves."""

from __future__ import annotations

import asyncio
import gzip
import zlib
from collections.abc import AsyncIterator
from typing import Any

import brotli
import httpx
import orjson
import pytest
import redis.asyncio

from enterprise.settings import Settings
from tests.conftest import new_key
from tests.integration.conftest import monitored_app
from tests.integration.factories import (
    API,
    CommandRecorder,
    assert_problem,
    create_assignment,
    create_clinic,
    create_organization,
)

pytestmark = pytest.mark.integration

BATCH = 2


class Env:
    def __init__(self, app: Any, http: httpx.AsyncClient, recorder: CommandRecorder) -> None:
        self.app, self.http, self.recorder = app, http, recorder
        self.admin: dict[str, str] = {}
        self.org: dict[str, Any] = {}
        self.other: dict[str, Any] = {}
        self.clinics: list[dict[str, Any]] = []


@pytest.fixture
async def env(settings: Settings, redis_client: redis.asyncio.Redis) -> AsyncIterator[Env]:
    """An app exporting in batches of two, on a client whose commands are recorded; one
    organization with 7 clinics and 3 assignments, another with one clinic."""
    async with monitored_app(settings, redis_client, export_batch_size=BATCH) as monitored:
        http, recorder, app = monitored
        found = Env(app, http, recorder)
        found.admin = await new_key(app)
        found.org = await create_organization(http, found.admin)
        found.other = await create_organization(http, found.admin)
        found.clinics = [await create_clinic(http, found.admin, found.org["id"]) for _ in range(7)]
        await create_clinic(http, found.admin, found.other["id"])
        for n in range(3):
            await create_assignment(http, found.admin, f"prov-{n}", found.clinics[n]["id"])
        yield found


def lines(body: bytes) -> list[dict[str, Any]]:
    assert body.endswith(b"\n")
    return [orjson.loads(line) for line in body.splitlines()]


async def test_export_streams_every_clinic_of_the_organization_once(env: Env) -> None:
    response = await env.http.get(
        f"{API}/organizations/{env.org['id']}/clinics/export", headers=env.admin
    )

    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/x-ndjson"
    assert "content-length" not in response.headers  # streamed, not buffered
    exported = lines(response.content)
    assert sorted(doc["id"] for doc in exported) == sorted(c["id"] for c in env.clinics)
    assert {doc["organizationId"] for doc in exported} == {env.org["id"]}


@pytest.mark.parametrize("kind", ["clinics", "assignments"])
async def test_each_exported_document_reads_as_its_own_item_does(env: Env, kind: str) -> None:
    """Exports decode dates naive (cheaper) and item reads aware: both must be written alike,
    times in UTC with a `Z`, to the millisecond."""
    response = await env.http.get(
        f"{API}/organizations/{env.org['id']}/{kind}/export", headers=env.admin
    )

    exported = lines(response.content)
    assert len(exported) == {"clinics": 7, "assignments": 3}[kind]
    for document in exported:
        item = await env.http.get(f"{API}/{kind}/{document['id']}", headers=env.admin)
        assert item.status_code == 200, item.text
        assert document == item.json()
        assert document["createdAt"].endswith("Z"), document


async def test_fields_are_honoured_and_unknown_ones_refused(env: Env) -> None:
    url = f"{API}/organizations/{env.org['id']}/assignments/export"

    response = await env.http.get(url, params={"fields": "providerId"}, headers=env.admin)
    refused = await env.http.get(url, params={"fields": "keyHash"}, headers=env.admin)

    assert response.status_code == 200
    exported = lines(response.content)
    assert len(exported) == 3
    assert all(set(doc) == {"id", "providerId"} for doc in exported)
    assert_problem(refused, 400)


async def test_an_organization_key_exports_only_its_own_organization(env: Env) -> None:
    own = await new_key(env.app, "org_reader", env.org["id"])

    mine = await env.http.get(f"{API}/organizations/{env.org['id']}/clinics/export", headers=own)
    theirs = await env.http.get(
        f"{API}/organizations/{env.other['id']}/clinics/export", headers=own
    )
    sre = await env.http.get(
        f"{API}/organizations/{env.org['id']}/clinics/export", headers=await new_key(env.app, "sre")
    )

    assert mine.status_code == 200
    assert len(lines(mine.content)) == 7
    assert_problem(theirs, 404)  # another tenant's organization is as absent as a missing one
    assert_problem(sre, 403)


async def test_a_missing_organization_is_404_before_any_byte(env: Env) -> None:
    response = await env.http.get(
        f"{API}/organizations/{'0' * 24}/clinics/export", headers=env.admin
    )
    assert_problem(response, 404)


@pytest.mark.parametrize("coding", ["gzip", "br"])
async def test_export_is_compressed_as_it_streams(env: Env, coding: str) -> None:
    url = f"{API}/organizations/{env.org['id']}/clinics/export"
    plain = await env.http.get(url, headers=env.admin)

    async with env.http.stream(
        "GET", url, headers={**env.admin, "Accept-Encoding": coding}
    ) as response:
        assert response.headers["content-encoding"] == coding
        assert "accept-encoding" in response.headers["vary"].lower()
        raw = b"".join([chunk async for chunk in response.aiter_raw()])

    decoded = gzip.decompress(raw) if coding == "gzip" else brotli.decompress(raw)
    assert sorted(lines(decoded), key=str) == sorted(lines(plain.content), key=str)


async def test_each_batch_is_a_chunk_the_client_can_decode_on_arrival(env: Env) -> None:
    """7 clinics in batches of 2: four gzip chunks, each decodable with what came before."""
    chunks = await asgi_chunks(env, "gzip", leave_after=None)

    assert len(chunks) >= 4
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    seen = 0
    for chunk in chunks[:-1]:
        seen += inflater.decompress(chunk).count(b"\n")
        assert seen > 0  # sync-flushed: lines are readable before the stream ends
    assert seen + inflater.decompress(chunks[-1]).count(b"\n") == 7


async def test_a_client_leaving_mid_export_closes_the_cursor(env: Env) -> None:
    env.recorder.clear()

    chunks = await asgi_chunks(env, None, leave_after=1)

    assert 1 <= len(chunks) < 4  # stopped well before the 4 batches of 7 clinics
    names = env.recorder.names()
    assert ("find", "clinics") in names
    assert ("killCursors", "clinics") in names, names  # closed now, not at its timeout


async def asgi_chunks(env: Env, coding: str | None, *, leave_after: int | None) -> list[bytes]:
    """GET the clinics export straight through ASGI, as a server would; the client leaves
    (http.disconnect) once it has `leave_after` body chunks. Returns the non-empty chunks."""
    auth = env.admin["Authorization"].encode()
    headers = [(b"host", b"127.0.0.1"), (b"authorization", auth)]
    if coding is not None:
        headers.append((b"accept-encoding", coding.encode()))
    path = f"{API}/organizations/{env.org['id']}/clinics/export"
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
        "scheme": "http", "path": path, "raw_path": path.encode(), "root_path": "",
        "query_string": b"", "headers": headers,
        "server": ("127.0.0.1", 80), "client": ("127.0.0.1", 50000),
    }  # fmt: skip
    chunks: list[bytes] = []
    gone, requested = asyncio.Event(), False

    async def receive() -> dict[str, Any]:
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await gone.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            assert message["status"] == 200
        elif message.get("body"):
            chunks.append(message["body"])
            if leave_after is not None and len(chunks) >= leave_after:
                gone.set()
        if message["type"] == "http.response.body" and not message.get("more_body", False):
            gone.set()  # the response is complete: what a server reports next

    await asyncio.wait_for(env.app(scope, receive, send), 10)
    return chunks
