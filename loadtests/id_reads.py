"""Reads, updates and deletes by `_id` at the start, middle and end of a collection.

    python loadtests/id_reads.py [--collections clinics,assignments] [--repeat 7]

A server that answers an `_id` filter from its `_id_` index takes the same time wherever the
document sits; one that scans takes time in proportion to the document's position. So each
operation is timed on the first, the middle and the last document (in `_id` order), and the
explain of a find by `_id` is printed beside them (its index, or the reason it names none).

Run it against a seeded database (`MONGODB_DATABASE`, e.g. the bench database after
`python -m enterprise seed --preset medium --seed 42`). Updates set a field of our own on the
last document and unset it again; the delete removes the last document and puts it back
unchanged, so the data set is the same afterwards. Prints one Markdown table per collection;
times are medians over --repeat runs, in milliseconds.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pymongo import MongoClient
from pymongo.collection import Collection

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from enterprise.settings import Settings  # noqa: E402
from indexes.planner import explain_index_names  # noqa: E402

MARK = "_benchIdProbe"


def median_ms(repeat: int, operation: Callable[[], object]) -> float:
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        operation()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def positions(collection: Collection[dict[str, Any]]) -> dict[str, Any]:
    ids = [doc["_id"] for doc in collection.find({}, {"_id": 1}).sort("_id", 1)]
    if not ids:
        raise SystemExit(f"{collection.full_name} is empty: seed it first")
    return {"first": ids[0], "middle": ids[len(ids) // 2], "last": ids[-1], "count": len(ids)}


def measure(collection: Collection[dict[str, Any]], repeat: int) -> list[str]:
    where = positions(collection)
    rows = [f"### {collection.name} ({where['count']:,} documents)", ""]
    rows += ["| operation | first | middle | last |", "|---|---|---|---|"]
    reads = [
        f"{median_ms(repeat, lambda i=where[p]: collection.find_one({'_id': i})):.2f}"
        for p in ("first", "middle", "last")
    ]
    rows.append(f"| `find_one` by `_id` (ms) | {' | '.join(reads)} |")

    last = where["last"]
    current = collection.find_one({"_id": last}, {"version": 1, "organizationId": 1})
    assert current is not None
    # What the app sends: a conditional write names the version it read, an organization-
    # scoped key adds its organization to every filter.
    conditional = {"_id": last, "version": current.get("version")}
    rows.append(
        f"| `find_one` by `{{_id, version}}` (ms) | | | "
        f"{median_ms(repeat, lambda: collection.find_one(conditional)):.2f} |"
    )
    write = median_ms(
        repeat, lambda: collection.find_one_and_update(conditional, {"$set": {MARK: 1}})
    )
    rows.append(f"| `find_one_and_update` by `{{_id, version}}` (ms) | | | {write:.2f} |")
    collection.update_one({"_id": last}, {"$unset": {MARK: ""}})
    update = median_ms(
        repeat,
        lambda: (
            collection.update_one({"_id": last}, {"$set": {MARK: 1}}),
            collection.update_one({"_id": last}, {"$unset": {MARK: ""}}),
        ),
    )
    rows.append(f"| `update_one` by `_id` (ms, per write) | | | {update / 2:.2f} |")

    document = collection.find_one({"_id": last})
    assert document is not None

    def delete_and_restore() -> float:
        started = time.perf_counter()
        result = collection.delete_one({"_id": last})
        took = (time.perf_counter() - started) * 1000
        assert result.deleted_count == 1
        collection.insert_one(document)
        return took

    delete = statistics.median(delete_and_restore() for _ in range(repeat))
    rows.append(f"| `delete_one` by `_id` (ms) | | | {delete:.2f} |")

    explain = collection.database.command(
        "explain", {"find": collection.name, "filter": {"_id": last}}, verbosity="queryPlanner"
    )
    names = explain_index_names(explain)
    rows += ["", f"explain of a find by `_id`: index {', '.join(names) or 'none named'}", ""]
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--collections", default="clinics,assignments")
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    settings = Settings.from_env()
    client: MongoClient[dict[str, Any]] = MongoClient(
        settings.mongodb_uri, serverSelectionTimeoutMS=3000
    )
    try:
        db = client[settings.mongodb_database]
        for name in args.collections.split(","):
            sys.stdout.write("\n".join(measure(db[name], args.repeat)) + "\n")
    finally:
        client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
