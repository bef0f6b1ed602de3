"""`python -m enterprise seed`: deterministic, rule-abiding data; `--if-empty`; the demo key."""

from __future__ import annotations

import argparse
import io
import stat
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from bson import ObjectId
from pymongo import AsyncMongoClient

from enterprise.auth import key_hash
from enterprise.querying import name_key
from enterprise.seed import PRESETS, DataSet, run
from enterprise.settings import Settings
from indexes.sync import sync as sync_indexes

pytestmark = pytest.mark.integration

COLLECTIONS = ("organizations", "clinics", "assignments")
TIMESTAMPS = frozenset({"createdAt", "updatedAt", "assignedAt", "endedAt", "subscriptionEndDate"})


def seed_args(**overrides: Any) -> argparse.Namespace:
    values = {"preset": "small", "seed": 7, "if_empty": False, "demo_key_file": None, **overrides}
    return argparse.Namespace(**values)


async def seeded(settings: Settings, **overrides: Any) -> tuple[int, str]:
    """Run the command; (exit code, what it wrote on stderr)."""
    err = io.StringIO()
    code = await run(seed_args(**overrides), settings, err=err)
    return code, err.getvalue()


async def documents(mongo: AsyncMongoClient[Any], database: str) -> dict[str, list[dict[str, Any]]]:
    db = mongo[database]
    return {name: await db[name].find({}).to_list(None) for name in COLLECTIONS}


def comparable(data: dict[str, list[dict[str, Any]]]) -> dict[str, list[Any]]:
    """Documents without _id and timestamps; references replaced by natural keys, sorted."""
    org_keys = {org["_id"]: org["nameKey"] for org in data["organizations"]}
    clinic_keys = {c["_id"]: (org_keys[c["organizationId"]], c["code"]) for c in data["clinics"]}

    def plain(document: dict[str, Any]) -> dict[str, Any]:
        shown = {k: v for k, v in document.items() if k != "_id" and k not in TIMESTAMPS}
        if "organizationId" in shown:
            shown["organizationId"] = org_keys[shown["organizationId"]]
        if "clinicId" in shown:
            shown["clinicId"] = clinic_keys[shown["clinicId"]]
        shown["timestampsSet"] = sorted(k for k in TIMESTAMPS if document.get(k) is not None)
        return shown

    return {name: sorted((plain(d) for d in docs), key=repr) for name, docs in data.items()}


@pytest.fixture
async def second_database(mongo: AsyncMongoClient[Any]) -> AsyncIterator[str]:
    name = f"test_{uuid.uuid4().hex[:12]}"
    await sync_indexes(mongo[name], prune=False, echo=lambda line: None)
    yield name
    await mongo.drop_database(name)


async def test_same_seed_gives_the_same_documents(
    settings: Settings, mongo: AsyncMongoClient[Any], database: str, second_database: str
) -> None:
    assert (await seeded(settings))[0] == 0
    assert (await seeded(settings.with_overrides(mongodb_database=second_database)))[0] == 0

    first, second = await documents(mongo, database), await documents(mongo, second_database)
    assert {name: len(docs) for name, docs in first.items()} == {
        "organizations": 5,
        "clinics": 50,
        "assignments": 300,
    }
    assert comparable(first) == comparable(second)


def test_same_seed_and_anchor_give_identical_data_including_timestamps() -> None:
    anchor = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)

    def generate(seed: int) -> list[dict[str, Any]]:
        data = DataSet(PRESETS["small"], seed, anchor)
        docs = [*data.organizations(), *data.clinics(), *data.assignments()]
        return [{k: v for k, v in d.items() if not isinstance(v, ObjectId)} for d in docs]

    assert generate(3) == generate(3)
    assert generate(3) != generate(4)


async def test_seeded_data_keeps_the_rules(
    settings: Settings, mongo: AsyncMongoClient[Any], database: str
) -> None:
    code, err = await seeded(settings)
    assert code == 0, err
    assert "docs/s" in err
    data = await documents(mongo, database)
    orgs, clinics, assignments = data["organizations"], data["clinics"], data["assignments"]

    assert len({o["nameKey"] for o in orgs}) == len(orgs)
    assert all(o["nameKey"] == name_key(o["name"]) for o in orgs + clinics)
    assert len({(c["organizationId"], c["code"]) for c in clinics}) == len(clinics)
    assert len({(a["providerId"], a["clinicId"]) for a in assignments}) == len(assignments)

    clinic_org = {c["_id"]: c["organizationId"] for c in clinics}
    assert {c["organizationId"] for c in clinics} <= {o["_id"] for o in orgs}
    assert all(a["organizationId"] == clinic_org[a["clinicId"]] for a in assignments)

    active_primaries = Counter(
        a["providerId"] for a in assignments if a["isActive"] and a["isPrimaryClinic"]
    )
    assert active_primaries
    assert max(active_primaries.values()) == 1
    for a in assignments:
        if a["isActive"] and a["isPrimaryClinic"]:
            assert a["primaryProviderId"] == a["providerId"]
        else:
            assert "primaryProviderId" not in a
        assert (a["endedAt"] is None) == a["isActive"]

    for document in orgs + clinics + assignments:
        assert document["version"] == 1
        for name in ("createdAt", "updatedAt"):
            moment = document[name]
            assert moment.utcoffset() is not None
            assert moment.utcoffset().total_seconds() == 0
            assert moment.microsecond % 1000 == 0


async def test_if_empty_is_a_no_op_the_second_time(
    settings: Settings, mongo: AsyncMongoClient[Any], database: str
) -> None:
    assert (await seeded(settings, if_empty=True))[0] == 0
    before = await documents(mongo, database)

    code, err = await seeded(settings, if_empty=True, seed=8)

    assert code == 0
    assert "nothing seeded" in err
    assert await documents(mongo, database) == before


async def test_seeding_a_database_with_data_without_if_empty_fails(settings: Settings) -> None:
    assert (await seeded(settings))[0] == 0
    code, err = await seeded(settings)
    assert code == 1
    assert "--if-empty" in err


async def test_demo_key_is_written_once_and_reprinted(
    settings: Settings,
    mongo: AsyncMongoClient[Any],
    database: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    key_file = tmp_path / "demo-admin.key"

    assert (await seeded(settings, if_empty=True, demo_key_file=str(key_file)))[0] == 0
    raw = key_file.read_text().strip()
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert capsys.readouterr().out.splitlines() == [raw]
    stored = await mongo[database]["api_keys"].find_one({"keyHash": key_hash(raw)})
    assert stored is not None
    assert stored["role"] == "platform_admin"

    assert (await seeded(settings, if_empty=True, demo_key_file=str(key_file)))[0] == 0
    assert capsys.readouterr().out.splitlines() == [raw]
    assert await mongo[database]["api_keys"].count_documents({}) == 1


async def test_demo_key_is_created_when_the_file_is_missing(
    settings: Settings,
    mongo: AsyncMongoClient[Any],
    database: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert (await seeded(settings, if_empty=True))[0] == 0
    key_file = tmp_path / "later.key"

    assert (await seeded(settings, if_empty=True, demo_key_file=str(key_file)))[0] == 0

    raw = key_file.read_text().strip()
    assert capsys.readouterr().out.splitlines() == [raw]
    assert await mongo[database]["api_keys"].count_documents({"keyHash": key_hash(raw)}) == 1
