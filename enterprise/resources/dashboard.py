"""/dashboard: the SRE page and its two assets, read from the package once.

The page holds no data: it asks the `/api/v1/performance` endpoints with the key typed
into it, so it is served without a key. A strict CSP allows only this origin's script,
style and fetches; nothing inline, nothing from elsewhere (`nosniff` and the other security
headers come from middleware/security_headers.py, as for every answer).
"""

from __future__ import annotations

import asyncio
from importlib import resources

import falcon
from falcon.asgi import Request, Response

from enterprise.openapi import Operation
from enterprise.querying import reject_unknown

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
ASSETS = {
    "index.html": "text/html; charset=utf-8",
    "dashboard.js": "text/javascript; charset=utf-8",
    "dashboard.css": "text/css; charset=utf-8",
}


def _read(name: str) -> bytes:
    return resources.files("enterprise.dashboard").joinpath(name).read_bytes()


class _Assets:
    """The files, read from the package on first use (off the event loop) and kept."""

    def __init__(self) -> None:
        self._files: dict[str, bytes] = {}

    async def send(self, req: Request, resp: Response, name: str) -> None:
        reject_unknown(req.params, frozenset())
        if name not in ASSETS or name == "index.html" and req.path != "/dashboard":
            raise falcon.HTTPNotFound(description=f"no dashboard asset {name!r}")
        if name not in self._files:
            self._files[name] = await asyncio.to_thread(_read, name)
        resp.data = self._files[name]
        resp.content_type = ASSETS[name]
        resp.set_header("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        resp.set_header("Referrer-Policy", "no-referrer")
        resp.set_header("Cache-Control", "no-store")


class Page:
    budget_class = "default"
    openapi = {
        "get": Operation(
            "The SRE dashboard page",
            "dashboard",
            response={"type": "string"},
            media=ASSETS["index.html"],
        )
    }

    def __init__(self, assets: _Assets) -> None:
        self._assets = assets

    async def on_get(self, req: Request, resp: Response) -> None:
        await self._assets.send(req, resp, "index.html")


class Asset:
    budget_class = "default"
    openapi = {
        "get": Operation(
            "The dashboard's script and style sheet",
            "dashboard",
            response={"type": "string"},
            media=(ASSETS["dashboard.js"], ASSETS["dashboard.css"]),
            path={"asset": {"type": "string", "enum": ["dashboard.js", "dashboard.css"]}},
        )
    }

    def __init__(self, assets: _Assets) -> None:
        self._assets = assets

    async def on_get(self, req: Request, resp: Response, asset: str) -> None:
        await self._assets.send(req, resp, asset)


def routes() -> list[tuple[str, object]]:
    assets = _Assets()
    return [("/dashboard", Page(assets)), ("/dashboard/{asset}", Asset(assets))]
