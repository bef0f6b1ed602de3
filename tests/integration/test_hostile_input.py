"""Hostile input over a real server process: every malformed body and every oversized,
repeated or undecodable query parameter gets a 4xx problem+json, and nothing is written.

"Nothing written" is checked on every collection of the database (so a collection added
later, such as an audit trail, is covered too) and on the versions of the targeted documents.
"""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from pymongo import AsyncMongoClient

from enterprise.settings import Settings
from tests.conftest import Server, new_key, server_env
from tests.integration.factories import PROBLEM, address

pytestmark = pytest.mark.integration

JSON = "application/json"
DEEP = 20_000  # 40 KB: under the body limit, far past any recursion limit
# (what, body bytes, content type): each must be refused with a 4xx problem.
BODIES: list[tuple[str, bytes, str | None]] = [
    ("empty", b"", JSON),
    ("truncated", b'{"name": "Tr', JSON),
    ("trailing garbage", b'{"name": "A"} {}', JSON),
    ("invalid UTF-8", b'{"name": "\xff\xfe"}', JSON),
    ("overlong UTF-8", b'{"name": "\xc0\xaf"}', JSON),
    ("UTF-16", '{"name": "A"}'.encode("utf-16"), JSON),
    ("UTF-8 BOM", b'\xef\xbb\xbf{"name": "A"}', JSON),
    ("lone surrogate escape", b'{"name": "A\\ud800"}', JSON),
    ("raw control character", b'{"name": "A\x01"}', JSON),
    ("duplicate key", b'{"name": "A", "name": "B"}', JSON),
    ("nested duplicate key", b'{"address": {"city": "A", "city": "B"}}', JSON),
    ("NaN", b'{"name": NaN}', JSON),
    ("Infinity", b'{"name": -Infinity}', JSON),
    ("huge double", b'{"name": 1e400}', JSON),
    ("huge integer", b'{"name": ' + b"9" * 4000 + b"}", JSON),
    ("int beyond 64 bits", b'{"isActive": 18446744073709551616}', JSON),
    ("deep arrays", b"[" * DEEP + b"]" * DEEP, JSON),
    ("deep objects", b'{"a":' * 5000 + b"1" + b"}" * 5000, JSON),
    ("33 levels", b'{"name": ' + b"[" * 33 + b"]" * 33 + b"}", JSON),
    ("huge string", json.dumps({"name": "x" * 60_000}).encode(), JSON),
    ("over the size limit", json.dumps({"name": "x" * 70_000}).encode(), JSON),
    ("10 MB", b'{"name": "' + b"x" * 10_000_000 + b'"}', JSON),
    ("array body", b"[]", JSON),
    ("string body", b'"name"', JSON),
    ("null body", b"null", JSON),
    ("text/plain", b'{"name": "A"}', "text/plain"),
    ("form", b"name=A", "application/x-www-form-urlencoded"),
    ("multipart", b"--x\r\n\r\nA\r\n--x--", "multipart/form-data; boundary=x"),
    ("no content type", b'{"name": "A"}', None),
    ("latin-1 charset", b'{"name": "A"}', "application/json; charset=latin-1"),
    ("gzip-encoded", b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03", JSON),
]


@pytest.fixture
async def target(
    settings: Settings, app: Any, mongo: AsyncMongoClient[Any]
) -> AsyncIterator[dict[str, Any]]:
    """A real server on a fresh database holding one of each document."""
    admin = await new_key(app)
    # Hundreds of refusals from one key: its write quota is not what is tested here.
    env = {**server_env(settings), "RATE_LIMITS": "*:*:*=1000000/60"}
    async with Server(env, workers=1) as server:
        async with httpx.AsyncClient(base_url=server.base_url, headers=admin, timeout=60) as http:
            org = (await http.post("/api/v1/organizations", json={"name": "Hostile"})).json()
            clinic = (
                await http.post(
                    f"/api/v1/organizations/{org['id']}/clinics",
                    json={"name": "Hostile Clinic", "code": "H1", "address": address()},
                )
            ).json()
            assignment = (
                await http.post(
                    "/api/v1/assignments", json={"providerId": "p-1", "clinicId": clinic["id"]}
                )
            ).json()
            yield {
                "http": http,
                "server": server,
                "admin": admin,
                "db": mongo[settings.mongodb_database],
                "documents": {
                    f"/api/v1/organizations/{org['id']}": org["version"],
                    f"/api/v1/clinics/{clinic['id']}": clinic["version"],
                    f"/api/v1/assignments/{assignment['id']}": assignment["version"],
                },
                "writes": [
                    ("POST", "/api/v1/organizations"),
                    ("POST", f"/api/v1/organizations/{org['id']}/clinics"),
                    ("POST", "/api/v1/assignments"),
                    ("PUT", f"/api/v1/organizations/{org['id']}"),
                    ("PATCH", f"/api/v1/organizations/{org['id']}"),
                    ("PATCH", f"/api/v1/clinics/{clinic['id']}"),
                    ("PUT", f"/api/v1/assignments/{assignment['id']}"),
                ],
            }


async def _snapshot(target: dict[str, Any]) -> dict[str, Any]:
    db = target["db"]
    counts = {name: await db[name].count_documents({}) for name in await db.list_collection_names()}
    versions = {}
    for url in target["documents"]:
        response = await target["http"].get(url)
        assert response.status_code == 200, response.text
        versions[url] = response.json()["version"]
    return {"counts": counts, "versions": versions}


def _assert_problem(response: httpx.Response, what: str) -> None:
    assert 400 <= response.status_code < 500, (what, response.status_code, response.text[:300])
    assert response.headers["content-type"] == PROBLEM, (what, response.headers)
    body = response.json()
    assert body["status"] == response.status_code
    assert len(response.content) < 2000, (what, "a problem never echoes the input back")


async def test_malformed_bodies_are_4xx_problems_and_write_nothing(
    target: dict[str, Any],
) -> None:
    before = await _snapshot(target)
    http: httpx.AsyncClient = target["http"]
    statuses: dict[str, set[int]] = {}
    for what, body, media in BODIES:
        for method, url in target["writes"]:
            headers = {"Content-Type": media} if media else {}
            if what == "gzip-encoded":
                headers["Content-Encoding"] = "gzip"
            response = await http.request(method, url, content=body, headers=headers)
            _assert_problem(response, f"{what}: {method} {url}")
            statuses.setdefault(what, set()).add(response.status_code)
    assert await _snapshot(target) == before
    # The decoder's own refusals are 400s, whatever the endpoint.
    for what in ("duplicate key", "NaN", "huge double", "lone surrogate escape", "deep arrays"):
        assert statuses[what] == {400}, (what, statuses[what])
    assert statuses["10 MB"] == {413}
    assert statuses["text/plain"] == statuses["latin-1 charset"] == {415}


async def test_hostile_query_strings_are_4xx_problems_and_write_nothing(
    target: dict[str, Any],
) -> None:
    before = await _snapshot(target)
    http: httpx.AsyncClient = target["http"]
    organization = next(iter(target["documents"]))
    reads = ["/api/v1/organizations", "/api/v1/clinics/search", organization]
    queries = {
        "oversized": "status=" + "A" * 9000,
        "too many": "&".join(f"p{i}=1" for i in range(40)),
        "repeated": "limit=1&limit=2",
        "repeated fields": "fields=name&fields=status",
        "unknown": "nope=1",
        "long unknown": "x" * 5000 + "=1",
        "bad escape": "limit=%zz",
        "undecodable": "status=%ED%A0%80",
        "NUL": "status=A%00",
        "limit overflow": "limit=99999999999999999999999",
        "fields unknown": "fields=nameKey",
        "tampered cursor": "cursor=eyJ2IjpbXX0.AAAAAAAAAAAAAAAAAAAAAA",
    }
    for what, query in queries.items():
        for url in reads:
            response = await http.get(f"{url}?{query}")
            _assert_problem(response, f"{what}: GET {url}")
            # A matching If-None-Match does not turn a bad request into a 304.
            response = await http.get(f"{url}?{query}", headers={"If-None-Match": "*"})
            _assert_problem(response, f"{what} with If-None-Match: GET {url}")
        for method, url in target["writes"]:
            response = await http.request(method, f"{url}?{query}", json={"name": "Q"})
            _assert_problem(response, f"{what}: {method} {url}")
    search = await http.get("/api/v1/clinics/search?q=%00%ff")
    _assert_problem(search, "NUL in a regular expression")
    provider = await http.get("/api/v1/providers/%ED%A0%80/clinics")
    _assert_problem(provider, "undecodable provider id")
    assert await _snapshot(target) == before


def test_a_request_line_beyond_the_servers_limit_is_refused_before_the_app(
    target: dict[str, Any],
) -> None:
    """Megabytes of query never reach the app: the ASGI server answers 400 itself."""
    server: Server = target["server"]
    key = target["admin"]["Authorization"]
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(
            f"GET /api/v1/organizations?status={'A' * 1_000_000} HTTP/1.1\r\n"
            f"Host: 127.0.0.1\r\nAuthorization: {key}\r\nConnection: close\r\n\r\n".encode()
        )
        head = sock.recv(200)
    assert head.startswith(b"HTTP/1.1 4"), head
