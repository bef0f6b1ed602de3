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
        try:
            from granian.constants import Interfaces
            from granian.server import Server
        except ImportError as ex:
            raise SystemExit(
                f"--server granian needs the bench extra: pip install -e '.[bench]' ({ex})"
            ) from ex

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
