"""Request targets for the benchmarks: ids from the bench database, ETags from the API.

    targets.py ids   --out DIR [--clinics 500]   # clinic_ids.txt, org_ids.txt, *_paths.txt (0: all)
                                                 # (items, org clinic pages, searches, reports)
    targets.py etags --base URL --key KEY PATHS OUT   # "PATH<TAB>ETAG" lines for revalidation

`ids` spreads the clinic sample over the whole collection (every n-th id) so item GETs do
not all hit neighbouring rows. Paths files feed wrk (loadtests/wrk/bench.lua, WRK_PATHS);
id files feed loadtests/bare_driver.py, in the same order.
"""

from __future__ import annotations

import argparse
import sys
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

LIST_QUERY = "limit=20&fields=name,code,status"


def export_ids(args: argparse.Namespace) -> int:
    from pymongo import MongoClient

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from enterprise.settings import Settings

    settings = Settings.from_env()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    client: MongoClient[dict[str, Any]] = MongoClient(
        settings.mongodb_uri, serverSelectionTimeoutMS=3000
    )
    try:
        db = client[settings.mongodb_database]
        every = [doc["_id"] for doc in db.clinics.find({}, {"_id": 1}, sort=[("_id", 1)])]
        if not every:
            sys.stderr.write(f"no clinics in {settings.mongodb_database}; seed it first\n")
            return 1
        sample = args.clinics or len(every)
        step = max(1, len(every) // sample)
        clinics = every[::step][:sample]
        orgs = [doc["_id"] for doc in db.organizations.find({}, {"_id": 1}, sort=[("_id", 1)])]
        # One name prefix per organization, taken from one of its clinics: a search that finds.
        prefixes = {
            doc["organizationId"]: doc["nameKey"][:4]
            for doc in db.clinics.find({}, {"organizationId": 1, "nameKey": 1, "_id": 0})
        }
    finally:
        client.close()
    (out / "clinic_ids.txt").write_text("".join(f"{i}\n" for i in clinics))
    (out / "org_ids.txt").write_text("".join(f"{i}\n" for i in orgs))
    (out / "clinic_paths.txt").write_text("".join(f"/api/v1/clinics/{i}\n" for i in clinics))
    (out / "org_clinics_paths.txt").write_text(
        "".join(f"/api/v1/organizations/{i}/clinics?{LIST_QUERY}\n" for i in orgs)
    )
    (out / "search_paths.txt").write_text(
        "".join(
            f"/api/v1/clinics/search?{urlencode({'q': prefixes[i], 'organizationId': str(i)})}\n"
            for i in orgs
            if i in prefixes
        )
    )
    (out / "report_paths.txt").write_text(
        "".join(f"/api/v1/reports/organizations/{i}/summary\n" for i in orgs)
    )
    sys.stderr.write(f"{len(clinics)} clinic ids, {len(orgs)} organization ids in {out}\n")
    return 0


def fetch_etags(args: argparse.Namespace) -> int:
    lines = []
    for path in Path(args.paths).read_text().split():
        request = urllib.request.Request(
            args.base + path, headers={"Authorization": f"Bearer {args.key}"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - 127.0.0.1 only
            etag = response.headers.get("ETag")
        if not etag:
            sys.stderr.write(f"no ETag on {path}\n")
            return 1
        lines.append(f"{path}\t{etag}\n")
    Path(args.out).write_text("".join(lines))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    ids = commands.add_parser("ids")
    ids.add_argument("--out", required=True)
    ids.add_argument("--clinics", type=int, default=500)
    etags = commands.add_parser("etags")
    etags.add_argument("--base", required=True)
    etags.add_argument("--key", required=True)
    etags.add_argument("paths")
    etags.add_argument("out")
    args = parser.parse_args()
    return export_ids(args) if args.command == "ids" else fetch_etags(args)


if __name__ == "__main__":
    sys.exit(main())
