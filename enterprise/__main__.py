"""`python -m enterprise <command>`: serve, seed, keys, cache, audit. `--help` lists them."""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence

from enterprise.server import SERVERS, run
from enterprise.settings import Settings


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m enterprise",
        description="Organizations, clinics and provider assignments API.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="serve the API (granian; uvicorn on request)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1)
    serve.add_argument(
        "--server",
        choices=SERVERS,
        default="granian",
        help="granian by measurement (docs/benchmarks.md); uvicorn for database-bound traffic",
    )

    seed = commands.add_parser("seed", help="load deterministic demo or scale data")
    seed.add_argument("--preset", choices=("small", "medium", "large"), default="small")
    seed.add_argument("--seed", type=int, default=42)
    seed.add_argument("--if-empty", action="store_true", help="do nothing if data exists")
    seed.add_argument("--demo-key-file", help="write a demo platform_admin key here (mode 600)")

    keys = commands.add_parser("keys", help="create, list or revoke API keys")
    key_commands = keys.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    create = key_commands.add_parser("create", help="create a key; prints the raw key once")
    create.add_argument("--name", required=True)
    create.add_argument(
        "--role",
        required=True,
        choices=("platform_admin", "org_admin", "org_reader", "sre", "metrics_scraper"),
    )
    create.add_argument("--organization", help="organization id for org_admin/org_reader")
    key_commands.add_parser("list", help="list keys (never the raw key)")
    revoke = key_commands.add_parser("revoke", help="revoke a key by id")
    revoke.add_argument("key_id")

    audit = commands.add_parser("audit", help="settle or prune the audit trail")
    audit_commands = audit.add_subparsers(dest="audit_command", required=True, metavar="ACTION")
    reconcile = audit_commands.add_parser(
        "reconcile",
        help="settle records a crash left pending (older than AUDIT_RECONCILE_GRACE_S)",
    )
    reconcile.add_argument(
        "--grace", type=float, help="seconds a record must be pending (default: the setting)"
    )
    audit_commands.add_parser(
        "prune",
        help="delete records older than AUDIT_RETENTION_DAYS (where no TTL index does it)",
    )

    cache = commands.add_parser("cache", help="operate the response cache")
    cache_commands = cache.add_subparsers(dest="cache_command", required=True, metavar="ACTION")
    cache_commands.add_parser(
        "retire",
        help="retire every cached response in every worker (after data changed outside the API)",
    )
    return parser


def serve(args: argparse.Namespace, settings: Settings) -> None:
    # Workers must know how many siblings write concurrently (the write guard needs it).
    os.environ["WORKERS"] = str(args.workers)
    # Workers publish their figures (Prometheus values, SRE snapshots) in one directory, so
    # any of them can answer for all. Given: emptied; not given: a fresh one, removed when
    # the server stops. Set before anything imports prometheus_client, which chooses its
    # multiprocess mode on import: granian forks its workers from this process, so they
    # keep the mode this process chose (uvicorn's start afresh).
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")
    created = not directory
    if created:
        directory = tempfile.mkdtemp(prefix="enterprise-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
    from enterprise.metrics import prepare_directory

    prepare_directory(directory)
    try:
        run(
            "enterprise.asgi:app",
            host=args.host,
            port=args.port,
            workers=args.workers,
            server=args.server,
        )
    finally:
        if created:
            shutil.rmtree(directory, ignore_errors=True)


async def _keys(args: argparse.Namespace, settings: Settings) -> int:
    from enterprise.guard import WriteGuard
    from enterprise.repositories.api_keys import ApiKeysRepository
    from enterprise.repositories.audit import AuditRepository
    from enterprise.repositories.client import open_client
    from enterprise.services.api_keys import ApiKeysService
    from enterprise.services.audit import AuditTrail
    from enterprise.services.writes import AfterWrite

    client = open_client(settings, [])
    try:
        db = client[settings.mongodb_database]
        guard = WriteGuard(enabled=False, redis=None, workers=1)
        audit = AuditTrail(AuditRepository(db, guard=guard))
        repository = ApiKeysRepository(db, guard=guard)
        service = ApiKeysService(repository, after_write=AfterWrite([audit], journal=audit))
        if args.keys_command == "create":
            raw, stored = await service.create(args.name, args.role, args.organization)
            sys.stderr.write(f"created key {stored['_id']} ({args.role}); it is shown once:\n")
            sys.stdout.write(raw + "\n")
        elif args.keys_command == "list":
            for key in await service.all():
                state = "revoked" if key.get("revokedAt") else "active"
                org = key.get("organizationId") or "-"
                sys.stdout.write(
                    f"{key['_id']}  {key['role']:<15} {state:<8} org={org}  {key['name']}\n"
                )
        else:
            await service.revoke(args.key_id)
            sys.stderr.write(f"revoked {args.key_id}\n")
    finally:
        await client.close()
    return 0


async def _audit(args: argparse.Namespace, settings: Settings) -> int:
    from datetime import timedelta

    from enterprise.cursor import CursorCodec
    from enterprise.guard import WriteGuard
    from enterprise.repositories.audit import AuditRepository
    from enterprise.repositories.base import utcnow
    from enterprise.repositories.client import open_client, read_capabilities
    from enterprise.services.audit import AuditEventsService

    client = open_client(settings, [])
    try:
        repository = AuditRepository(
            client[settings.mongodb_database],
            guard=WriteGuard(enabled=False, redis=None, workers=1),
        )
        service = AuditEventsService(repository, codec=CursorCodec(settings.cursor_secret))
        if args.audit_command == "reconcile":
            grace = settings.audit_reconcile_grace_s if args.grace is None else args.grace
            settled = await service.reconcile(timedelta(seconds=grace))
            sys.stdout.write(
                f"settled {settled['committed'] + settled['abandoned']} pending audit records "
                f"older than {grace:g} s: {settled['committed']} committed, "
                f"{settled['abandoned']} abandoned\n"
            )
            return 0
        capabilities = await read_capabilities(client, settings.mongodb_database)
        older_than = utcnow() - timedelta(days=settings.audit_retention_days)
        pruned = await service.prune(older_than, ttl=capabilities.ttl_indexes)
        if pruned is None:
            sys.stdout.write("the server expires audit records itself (TTL index): nothing to do\n")
        else:
            sys.stdout.write(
                f"pruned {pruned} audit records older than {settings.audit_retention_days} days\n"
            )
    finally:
        await client.close()
    return 0


async def _cache(args: argparse.Namespace, settings: Settings) -> int:
    from enterprise.app import open_redis
    from enterprise.breakers import make_breaker
    from enterprise.cache import ResponseCache

    client = open_redis(settings)
    try:
        cache = ResponseCache(
            client,
            make_breaker("redis-cli", failure_threshold=1, reset_timeout=1),
            namespace=settings.mongodb_database,
        )
        if not await cache.retire_all():
            sys.stderr.write(f"Redis at {settings.redis_url} is unavailable: nothing retired\n")
            return 1
        sys.stderr.write(
            f"retired every cached response of {settings.mongodb_database}; workers stop "
            f"serving them within {settings.cache_generation_lease_ms} ms\n"
        )
    finally:
        await client.aclose()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    settings = Settings.from_env()
    if args.command == "serve":
        serve(args, settings)
        return 0
    if args.command == "keys":
        return asyncio.run(_keys(args, settings))
    if args.command == "cache":
        return asyncio.run(_cache(args, settings))
    if args.command == "audit":
        return asyncio.run(_audit(args, settings))
    from enterprise.seed import run as run_seed

    return asyncio.run(run_seed(args, settings))


if __name__ == "__main__":
    sys.exit(main())
