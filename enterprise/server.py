"""How an ASGI app is served: one place for the server options.

`python -m enterprise serve` and the benchmark's bare hello world (`loadtests/hello.py`) both
call `run`, so the server comparison measures the same settings the service runs with.
"""

from __future__ import annotations

SERVERS = ("uvicorn", "granian")


def run(target: str, *, host: str, port: int, workers: int, server: str = "uvicorn") -> None:
    """Serve `target` ("module:app"); blocks until the server stops.

    uvicorn (uvloop + httptools) is the default, chosen by measurement (docs/benchmarks.md);
    granian needs the bench extra.
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
