"""The OpenAPI document: valid 3.1, generated from the route table, served with an ETag.

`create_app` does no I/O, so the app is built here without servers and asked in process.
"""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest
from openapi_spec_validator import validate

from enterprise import openapi
from enterprise.app import PUBLIC_PREFIXES, create_app
from enterprise.settings import Settings

pytestmark = pytest.mark.unit

# Nothing listens here: building the app must not connect.
SETTINGS = Settings.from_env(
    {
        "ENTERPRISE_DEV": "1",
        "MONGODB_URI": "mongodb://127.0.0.1:9/",
        "REDIS_URL": "redis://127.0.0.1:9/0",
        "LOG_JSON": "false",
    }
)
UNDOCUMENTED = {"head", "options"}  # implied by GET and answered by Falcon


@pytest.fixture(scope="module")
def app() -> Any:
    return create_app(SETTINGS)


@pytest.fixture(scope="module")
def document(app: Any) -> dict[str, Any]:
    return openapi.build(app.state.routes, public_prefixes=PUBLIC_PREFIXES)


def test_the_document_is_valid_openapi_3_1(document: dict[str, Any]) -> None:
    assert document["openapi"].startswith("3.1")
    validate(document)  # raises on any violation of the 3.1 schema


def test_every_route_and_responder_is_documented(app: Any, document: dict[str, Any]) -> None:
    """Generated from the routes, so it cannot drift: each template is a path, each GET
    responder an operation, and nothing is documented that no responder answers."""
    paths = document["paths"]
    assert set(paths) == {template for template, _ in app.state.routes}
    for template, resource in app.state.routes:
        responders = {m for m in openapi.METHODS if hasattr(resource, f"on_{m}")}
        assert set(paths[template]) <= responders, template
        if "get" in responders:
            assert "get" in paths[template], template
    assert "/openapi.json" in paths


def test_writes_take_the_msgspec_schemas(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    post = document["paths"]["/api/v1/organizations"]["post"]
    body = post["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/Organization"}
    assert schemas["Organization"]["required"] == ["name"]
    assert schemas["Organization"]["additionalProperties"] is False
    # A PUT may leave out what it cannot change; a PATCH is a merge patch (null removes).
    put = document["paths"]["/api/v1/assignments/{assignment_id}"]["put"]
    replacement = put["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    assert schemas[replacement.rsplit("/", 1)[-1]]["required"] == []
    patch = schemas["ClinicPatch"]["properties"]["address"]["anyOf"]
    assert {"type": "null"} in patch
    assert "required" not in patch[0]


def test_lists_items_and_errors_are_described(document: dict[str, Any]) -> None:
    listing = document["paths"]["/api/v1/clinics"]["get"]
    names = {p["name"] for p in listing["parameters"]}
    assert {"limit", "cursor", "sort", "fields", "count", "status", "If-None-Match"} <= names
    assert {"200", "304", "400", "401", "403", "414", "429", "503", "504"} <= set(
        listing["responses"]
    )
    item = document["paths"]["/api/v1/clinics/{clinic_id}"]
    assert {"412", "428", "409", "422", "415", "413"} <= set(item["patch"]["responses"])
    assert "204" in item["delete"]["responses"]
    problem = document["components"]["responses"]["422"]["content"]["application/problem+json"]
    assert problem["schema"] == {"$ref": "#/components/schemas/Problem"}
    assert document["components"]["securitySchemes"]["apiKey"]["scheme"] == "bearer"
    assert document["paths"]["/health/live"]["get"]["security"] == []
    assert "security" not in listing  # the document-wide API key applies


def test_a_resource_that_declares_nothing_still_appears() -> None:
    class Bare:
        """Something new."""

        async def on_get(self, req: Any, resp: Any, thing_id: str) -> None:
            return None

        async def on_delete(self, req: Any, resp: Any, thing_id: str) -> None:
            return None

    document = openapi.build([("/api/v1/things/{thing_id}", Bare())])
    validate(document)
    path = document["paths"]["/api/v1/things/{thing_id}"]
    assert set(path) == {"get", "delete"}
    assert path["get"]["summary"] == "Something new."
    assert path["get"]["parameters"][0]["schema"] == openapi.HEX_ID
    assert {"401", "404", "429"} <= set(path["delete"]["responses"])


def test_documenting_a_method_without_a_responder_fails() -> None:
    class Wrong:
        openapi = {"post": openapi.Operation("nothing answers this", "things")}

        async def on_get(self, req: Any, resp: Any) -> None:
            return None

    with pytest.raises(ValueError, match="no responder"):
        openapi.build([("/api/v1/things", Wrong())])


async def test_served_once_with_an_etag_and_revalidated(app: Any) -> None:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
        first = await http.get("/openapi.json")
        assert first.status_code == 200
        assert first.headers["content-type"] == "application/json"
        assert orjson.loads(first.content)["paths"]
        etag = first.headers["etag"]
        again = await http.get("/openapi.json", headers={"If-None-Match": etag})
        assert again.status_code == 304
        assert again.content == b""
        wrong = await http.get("/openapi.json?x=1")
        assert wrong.status_code == 400
        assert wrong.headers["content-type"] == "application/problem+json"
