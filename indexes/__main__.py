"""`python -m indexes sync [--prune] | diff | shapes | check | plans`: the explicit way to touch
indexes.

Exit codes, so CI and deploy scripts can act on them:
- `diff`: 0 no drift, 1 drift, 2 error (server unreachable, ...).
- `sync`: 0 applied (limitations are the server's and do not fail it), 2 something failed.
- `shapes`: 0 every query shape is served by its index, 1 otherwise.
- `check`: 0 every captured query shape has a serving index, 1 otherwise, 2 no capture file.
- `plans`: 0 (a report: each shape's plan on the database's data, as the server's planner
  chooses it; run it after `python -m enterprise seed`), 2 error.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path

from pymongo import AsyncMongoClient
from pymongo.errors import ConnectionFailure, PyMongoError

from indexes import DECLARED, KEY_FILTERS, SHAPES, capture, gate
from indexes.planner import check_all, declared_keys
from indexes.plans import plan_lines
from indexes.sync import diff, sync

DEFAULT_URI = "mongodb://127.0.0.1:27018/"
DEFAULT_DATABASE = "enterprise"
TIMEOUT_MS = 3000


def _echo(line: str) -> None:
    sys.stdout.write(line + "\n")


def _error(message: str) -> None:
    sys.stderr.write(f"error: {message}\n")


def _redact(uri: str) -> str:
    """The URI without its password, fit for an error message."""
    return re.sub(r"://([^:/@]+):[^@/]*@", r"://\1:***@", uri)


def build_parser() -> argparse.ArgumentParser:
    """Subcommands; connection options go after the subcommand, like `diff --uri ...`."""
    server = argparse.ArgumentParser(add_help=False)
    server.add_argument("--uri", default=os.environ.get("MONGODB_URI", DEFAULT_URI))
    server.add_argument("--database", default=os.environ.get("MONGODB_DATABASE", DEFAULT_DATABASE))
    parser = argparse.ArgumentParser(prog="python -m indexes", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("sync", parents=[server], help="create missing indexes")
    run.add_argument("--prune", action="store_true", help="also drop extras, rebuild different")
    commands.add_parser("diff", parents=[server], help="compare declared with live indexes")
    commands.add_parser("shapes", help="query shapes with their index and ESR keys")
    check = commands.add_parser(
        "check", help="captured query shapes (make test writes them) -> index -> verdict"
    )
    check.add_argument("file", nargs="?", type=Path, default=default_shapes_file())
    commands.add_parser("plans", parents=[server], help="explain every shape on the live data")
    return parser


def default_shapes_file() -> Path:
    """Where the test suite writes the shapes it captured (see tests/conftest.py)."""
    stack = Path(os.environ.get("STACK_DIR") or ".stack")
    return Path(os.environ.get("QUERY_SHAPES_FILE") or stack / "query-shapes.json")


def declarations() -> gate.Declarations:
    return gate.Declarations(DECLARED, SHAPES, KEY_FILTERS)


def check(path: Path) -> int:
    """Print the gate's table for the shapes captured in `path`."""
    if not path.is_file():
        _error(f"{path} not found: `make test` writes it (or pass a file)")
        return 2
    rows = gate.check(capture.load(path), declarations())
    for line in gate.table(rows):
        _echo(line)
    return 1 if gate.problems(rows) else 0


def _keys(keys: Sequence[tuple[str, int]]) -> str:
    return ", ".join(f"{name} {direction}" for name, direction in keys)


def shapes() -> int:
    """Print every shape beside its index; the ESR keys are what the index should start with."""
    indexes = {(c, m.document["name"]): m for c, models in DECLARED.items() for m in models}
    for shape in SHAPES:
        model = indexes.get((shape.collection, shape.index))
        _echo(f"{shape.name}  ->  {shape.collection}.{shape.index}")
        _echo(f"    ESR keys:   {_keys(shape.index_keys())}")
        _echo(f"    index keys: {_keys(declared_keys(model)) if model else '(not declared)'}")
        if shape.covered:
            _echo(f"    covered:    {', '.join(shape.projection)}")
    problems = check_all(DECLARED, SHAPES)
    for problem in problems:
        _echo(f"problem: {problem}")
    _echo(f"{len(SHAPES)} shapes, {len(problems)} problems")
    return 1 if problems else 0


async def _run(args: argparse.Namespace) -> int:
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(
        args.uri, serverSelectionTimeoutMS=TIMEOUT_MS, connectTimeoutMS=TIMEOUT_MS
    )
    try:
        await client.admin.command("ping")
        db = client[args.database]
        if args.command == "plans":
            for line in await plan_lines(db, list(SHAPES)):
                _echo(line)
            return 0
        if args.command == "diff":
            result = await diff(db, _echo)
            _echo(result.summary())
            return 1 if result.drift else 0
        result = await sync(db, prune=args.prune, echo=_echo)
        _echo(result.summary())
        return 2 if result.failed else 0
    except ConnectionFailure as ex:
        reason = str(ex).split(", Timeout:")[0]
        _error(f"cannot reach MongoDB at {_redact(args.uri)} within {TIMEOUT_MS} ms: {reason}")
        return 2
    except PyMongoError as ex:
        _error(f"{type(ex).__name__}: {ex}")
        return 2
    finally:
        await client.close()


def main(argv: Sequence[str] | None = None) -> int:
    """Parse, run, return the exit code (see the module docstring)."""
    args = build_parser().parse_args(argv)
    if args.command == "shapes":
        return shapes()
    if args.command == "check":
        return check(args.file)
    return asyncio.run(_run(args))


if __name__ == "__main__":
    sys.exit(main())
