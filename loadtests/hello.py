"""A bare Falcon ASGI hello world: the reference for the server-choice benchmark.

Served with exactly the options `python -m enterprise serve` uses, so the only difference
from the real app's `/health/live` is our middleware stack:

    python loadtests/hello.py --server granian|uvicorn --workers N --port P
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import falcon.asgi


class Hello:
    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        resp.data = b'{"status":"ok"}'
        resp.content_type = falcon.MEDIA_JSON
        resp.set_header("Cache-Control", "no-store")


def create_app() -> falcon.asgi.App:
    app = falcon.asgi.App()
    app.add_route("/health/live", Hello())
    return app


app = create_app()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", choices=("granian", "uvicorn"), default="granian")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.path.insert(1, str(Path(__file__).resolve().parent.parent))
    from enterprise.server import run

    run("hello:app", host=args.host, port=args.port, workers=args.workers, server=args.server)


if __name__ == "__main__":
    main()
