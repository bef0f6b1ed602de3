"""How an ASGI app is served: one place for the server options.

`python -m enterprise serve` and the benchmark's bare hello world (`loadtests/hello.py`) both
call `run`, so the server comparison measures the same settings the service runs with.
"""

from __future__ import annotations

SERVERS = ("granian", "uvicorn")


def run(target: str, *, host: str, port: int, workers: int, server: str = "granian") -> None:
    """Serve `target` ("module:app"); blocks until the server stops.

    granian is the default, chosen by measurement (docs/benchmarks.md, server choice): it
    answers cache hits and 304s 1.2-1.5x more at one worker (1.1x held to one core), with a
    shorter tail, because it parses and writes HTTP in Rust where uvicorn checks every
    response header in Python. uvicorn (uvloop + httptools) stays available: with the
    database on the same cores it answers uncached reads up to 1.2x more.
    """
    if server == "granian":
        from granian.constants import Interfaces
        from granian.server import Server

        Server(
            target,
            address=host,
            port=port,
            interface=Interfaces.ASGI,
            workers=workers,
            log_access=False,
            backpressure=512,
            # A worker that dies (a crash, the OOM killer) is started again, as uvicorn's
            # supervisor does; by default granian stops the whole server instead. (It still
            # stops when a respawned worker dies within 5.5 s: a crash loop.)
            respawn_failed_workers=True,
            respawn_interval=0.5,
        ).serve()
        return
    import uvicorn

    uvicorn.run(
        target,
        host=host,
        port=port,
        workers=workers,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        access_log=False,
        server_header=False,
    )
