"""`python -m enterprise seed`: deterministic demo and scale data, bulk-inserted in batches.

The same `--seed` always yields the same organizations, clinics and assignments (names, codes,
statuses, addresses, provider ids, flags and time offsets); only the ObjectIds and the anchor
of the timestamps ("now") differ between runs. Everything comes from one `random.Random(seed)`
consumed in a fixed order, so the data is streamed in batches and a `large` run (1M+
assignments) never holds every document in memory.

The data obeys the rules the API enforces: organization names are unique case-insensitively
(`nameKey`), clinic codes are unique per organization, each (providerId, clinicId) pair occurs
once, and a provider has at most one active primary clinic (`primaryProviderId` is set only on
active primary assignments, as `AssignmentsService.derive` does).

Exit codes: 0 done (or nothing to do with `--if-empty`), 1 the database already holds data,
2 the database failed.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import itertools
import os
import random
import stat
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

from bson import ObjectId

from enterprise.errors import DomainError
from enterprise.guard import WriteGuard
from enterprise.querying import name_key
from enterprise.repositories.api_keys import ApiKeysRepository
from enterprise.repositories.assignments import AssignmentsRepository
from enterprise.repositories.base import Document, Repository, utcnow
from enterprise.repositories.client import open_client
from enterprise.repositories.clinics import ClinicsRepository
from enterprise.repositories.organizations import OrganizationsRepository
from enterprise.services.api_keys import ApiKeysService
from enterprise.settings import Settings

BATCH_SIZE = 5_000
IN_FLIGHT = 2  # batches sent concurrently: FerretDB works on one while we build the next
DAY_MS = 86_400_000


@dataclass(frozen=True, slots=True)
class Preset:
    organizations: int
    clinics: int
    assignments: int

    @property
    def total(self) -> int:
        return self.organizations + self.clinics + self.assignments


PRESETS: dict[str, Preset] = {
    "small": Preset(organizations=5, clinics=50, assignments=300),
    "medium": Preset(organizations=200, clinics=10_000, assignments=90_000),
    "large": Preset(organizations=1_000, clinics=50_000, assignments=1_000_000),
}

# -- vocabulary -------------------------------------------------------------------------

# fmt: off
_BRANDS = (
    "Bright", "Summit", "Evergreen", "Pacific", "Harbor", "Lakeside", "Riverbend", "Cedar",
    "Aspen", "Sunrise", "Bluebird", "Keystone", "Heritage", "Prairie", "Coastal", "Granite",
    "Willow", "Meridian", "Northstar", "Redwood", "Silver Creek", "Maple", "Oak Valley",
    "Cornerstone", "Liberty", "Golden Gate", "Magnolia", "Juniper", "Beacon", "Pinnacle",
    "Canyon", "Hillside", "Parkview", "Clearwater", "Stonebridge", "Bayview", "Crescent",
    "Timberline", "Gateway", "Horizon",
)
_KINDS = (
    "Dental", "Smiles", "Family Dentistry", "Dental Care", "Orthodontics", "Pediatric Dentistry",
    "Dental Arts", "Oral Health", "Dentistry", "Dental Studio", "Smile Design", "Dental Wellness",
)
_SUFFIXES = (
    "Group", "Partners", "Associates", "Collective", "Network", "Alliance", "Co.", "Centers",
)
_NEIGHBOURHOODS = (
    "Downtown", "Midtown", "Uptown", "Northside", "Southside", "Eastside", "Westside",
    "Old Town", "Riverside", "Lakeview", "Heights", "Park", "Village", "Crossing", "Plaza",
    "Commons", "Station", "Square", "Hills", "Gardens",
)
_STREETS = (
    "Main", "Oak", "Maple", "Cedar", "Elm", "Pine", "Washington", "Lake", "Hill", "Park",
    "Sunset", "Lincoln", "Jefferson", "Madison", "Franklin", "Highland", "Church", "Spring",
    "River", "Valley", "Center", "Market", "Broad", "Union", "Meadow",
)
_STREET_TYPES = ("St", "Ave", "Blvd", "Rd", "Dr", "Ln", "Way", "Pkwy", "Ct", "Pl")

# (city, state, first 3 ZIP digits)
_CITIES: tuple[tuple[str, str, str], ...] = (
    ("Austin", "TX", "787"), ("Dallas", "TX", "752"), ("Houston", "TX", "770"),
    ("San Antonio", "TX", "782"), ("Plano", "TX", "750"), ("Fort Worth", "TX", "761"),
    ("Phoenix", "AZ", "850"), ("Scottsdale", "AZ", "852"), ("Tucson", "AZ", "857"),
    ("Denver", "CO", "802"), ("Boulder", "CO", "803"), ("Colorado Springs", "CO", "809"),
    ("Seattle", "WA", "981"), ("Tacoma", "WA", "984"), ("Spokane", "WA", "992"),
    ("Portland", "OR", "972"), ("Eugene", "OR", "974"), ("Salem", "OR", "973"),
    ("San Diego", "CA", "921"), ("Sacramento", "CA", "958"), ("San Jose", "CA", "951"),
    ("Fresno", "CA", "937"), ("Pasadena", "CA", "911"), ("Irvine", "CA", "926"),
    ("Miami", "FL", "331"), ("Orlando", "FL", "328"), ("Tampa", "FL", "336"),
    ("Jacksonville", "FL", "322"), ("Atlanta", "GA", "303"), ("Savannah", "GA", "314"),
    ("Charlotte", "NC", "282"), ("Raleigh", "NC", "276"), ("Durham", "NC", "277"),
    ("Nashville", "TN", "372"), ("Memphis", "TN", "381"), ("Knoxville", "TN", "379"),
    ("Chicago", "IL", "606"), ("Naperville", "IL", "605"), ("Columbus", "OH", "432"),
    ("Cleveland", "OH", "441"), ("Cincinnati", "OH", "452"), ("Indianapolis", "IN", "462"),
    ("Minneapolis", "MN", "554"), ("St. Paul", "MN", "551"), ("Madison", "WI", "537"),
    ("Milwaukee", "WI", "532"), ("Kansas City", "MO", "641"), ("St. Louis", "MO", "631"),
    ("Omaha", "NE", "681"), ("Salt Lake City", "UT", "841"), ("Provo", "UT", "846"),
    ("Boise", "ID", "837"), ("Las Vegas", "NV", "891"), ("Reno", "NV", "895"),
    ("Albuquerque", "NM", "871"), ("Boston", "MA", "021"), ("Worcester", "MA", "016"),
    ("Providence", "RI", "029"), ("Hartford", "CT", "061"), ("Philadelphia", "PA", "191"),
    ("Pittsburgh", "PA", "152"), ("Baltimore", "MD", "212"), ("Richmond", "VA", "232"),
    ("Arlington", "VA", "222"), ("Newark", "NJ", "071"), ("Buffalo", "NY", "142"),
    ("Rochester", "NY", "146"), ("Albany", "NY", "122"),
)
_STATES = sorted({state for _, state, _ in _CITIES})
_CITIES_BY_STATE = {state: [c for c in _CITIES if c[1] == state] for state in _STATES}

_ROLES = (
    "dentist", "hygienist", "dental_assistant", "orthodontist", "endodontist",
    "periodontist", "oral_surgeon", "pediatric_dentist",
)
_ROLE_WEIGHTS = (40, 30, 15, 5, 3, 3, 2, 2)
_ORG_STATUSES = (("ACTIVE", 85), ("SUSPENDED", 10), ("ARCHIVED", 5))
_TIERS = (("FREE", 15), ("BASIC", 35), ("PRO", 35), ("ENTERPRISE", 15))
_CLINIC_STATUSES = (("ACTIVE", 88), ("INACTIVE", 8), ("CLOSED", 4))
_CLINICS_PER_PROVIDER = (1, 2, 3, 4)
_CLINICS_PER_PROVIDER_WEIGHTS = (55, 25, 13, 7)
# fmt: on


def _pick(rng: random.Random, weighted: Sequence[tuple[str, int]]) -> str:
    return rng.choices([v for v, _ in weighted], [w for _, w in weighted])[0]


def _before(anchor: datetime, rng: random.Random, low_days: float, high_days: float) -> datetime:
    """A moment between `high_days` and `low_days` before `anchor`, at millisecond precision."""
    offset = rng.randrange(int(low_days * DAY_MS), int(high_days * DAY_MS))
    return anchor - timedelta(milliseconds=offset)


def _between(rng: random.Random, start: datetime, end: datetime) -> datetime:
    span = max(1, int((end - start) / timedelta(milliseconds=1)))
    return start + timedelta(milliseconds=rng.randrange(span))


# -- the data ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _ClinicRef:
    id: ObjectId
    organization_id: ObjectId
    created_at: datetime


class DataSet:
    """Streams one preset's documents; consumes `rng` in a fixed order (orgs, clinics, assignments).

    Args:
        preset: how many documents of each kind.
        seed: the `random.Random` seed; same seed, same data.
        anchor: "now" for the timestamps (millisecond precision, UTC).
    """

    def __init__(self, preset: Preset, seed: int, anchor: datetime) -> None:
        if preset.clinics < preset.organizations or preset.organizations < 1:
            raise ValueError("a preset needs at least one clinic per organization")
        self.preset = preset
        self._rng = random.Random(seed)
        self._anchor = anchor
        self._clinics_by_org: dict[ObjectId, list[_ClinicRef]] = {}
        self._org_created: dict[ObjectId, datetime] = {}
        self._org_states: dict[ObjectId, list[str]] = {}
        self._org_brand: dict[ObjectId, str] = {}

    def organizations(self) -> list[Document]:
        rng, anchor = self._rng, self._anchor
        names: set[str] = set()
        documents: list[Document] = []
        for _ in range(self.preset.organizations):
            name, brand = self._unique_org_name(names)
            org_id = ObjectId()
            created = _before(anchor, rng, 30, 5 * 365)
            tier = _pick(rng, _TIERS)
            end = None if tier == "FREE" else anchor + timedelta(days=rng.randrange(-60, 3 * 365))
            documents.append(
                {
                    "_id": org_id,
                    "name": name,
                    "status": _pick(rng, _ORG_STATUSES),
                    "subscriptionTier": tier,
                    "subscriptionEndDate": end,
                    "nameKey": name_key(name),
                    "createdAt": created,
                    "updatedAt": created,
                    "version": 1,
                }
            )
            self._org_created[org_id] = created
            self._org_states[org_id] = rng.sample(_STATES, rng.choice((1, 1, 2, 3)))
            self._org_brand[org_id] = brand
        return documents

    def _unique_org_name(self, taken: set[str]) -> tuple[str, str]:
        """(organization name, the brand its clinics carry), e.g. "Summit Smiles Partners"."""
        rng = self._rng
        for attempt in itertools.count():
            brand = f"{rng.choice(_BRANDS)} {rng.choice(_KINDS)}"
            name = f"{brand} {rng.choice(_SUFFIXES)}"
            if attempt > 20:  # the vocabulary is nearly used up: qualify with a region
                name = f"{name} of {rng.choice(_CITIES)[0]}"
            if attempt > 40:
                name = f"{name} {attempt}"
            if name_key(name) not in taken:
                taken.add(name_key(name))
                return name, brand
        raise AssertionError("unreachable")

    def _clinic_counts(self) -> list[int]:
        """Clinics per organization: at least one each, the rest log-normally skewed."""
        rng = self._rng
        orgs = self.preset.organizations
        weights = [rng.lognormvariate(0.0, 0.9) for _ in range(orgs)]
        spare, total = self.preset.clinics - orgs, sum(weights)
        shares = [w / total * spare for w in weights]
        counts = [1 + int(s) for s in shares]
        by_remainder = sorted(range(orgs), key=lambda i: (-(shares[i] - int(shares[i])), i))
        for i in by_remainder[: self.preset.clinics - sum(counts)]:
            counts[i] += 1
        return counts

    def clinics(self) -> Iterator[Document]:
        rng, anchor = self._rng, self._anchor
        counts = self._clinic_counts()
        for org_id, count in zip(list(self._org_created), counts, strict=True):
            org_created = self._org_created[org_id]
            refs: list[_ClinicRef] = []
            for number in range(1, count + 1):
                state_cities = _CITIES_BY_STATE[rng.choice(self._org_states[org_id])]
                city, state, zip3 = rng.choice(state_cities)
                area = rng.choice(_NEIGHBOURHOODS)
                name = f"{self._org_brand[org_id]} - {city} {area}"
                created = _between(rng, org_created, anchor - timedelta(days=1))
                clinic_id = ObjectId()
                manager = f"user-{rng.randrange(1_000_000):06d}" if rng.random() < 0.8 else None
                refs.append(_ClinicRef(clinic_id, org_id, created))
                yield {
                    "_id": clinic_id,
                    "organizationId": org_id,
                    "name": name,
                    "code": f"{''.join(w[0] for w in city.split()).upper()}{state}-{number:03d}",
                    "address": {
                        "line1": f"{rng.randrange(100, 9999)} {rng.choice(_STREETS)} "
                        f"{rng.choice(_STREET_TYPES)}",
                        "city": city,
                        "state": state,
                        "postalCode": f"{zip3}{rng.randrange(100):02d}",
                        "country": "US",
                    },
                    "status": _pick(rng, _CLINIC_STATUSES),
                    "managerUserId": manager,
                    "nameKey": name_key(name),
                    "createdAt": created,
                    "updatedAt": created,
                    "version": 1,
                }
            self._clinics_by_org[org_id] = refs

    def assignments(self) -> Iterator[Document]:
        """Providers, each at 1-4 clinics of one organization; the first may be primary."""
        if len(self._clinics_by_org) != self.preset.organizations:
            raise RuntimeError("assignments() needs organizations() and clinics() consumed first")
        rng, anchor = self._rng, self._anchor
        orgs = list(self._clinics_by_org)
        cumulative = list(itertools.accumulate(len(self._clinics_by_org[o]) for o in orgs))
        left = self.preset.assignments
        for provider_number in itertools.count(1):
            if left <= 0:
                return
            org_id = orgs[bisect.bisect_right(cumulative, rng.randrange(cumulative[-1]))]
            clinics = self._clinics_by_org[org_id]
            wanted = rng.choices(_CLINICS_PER_PROVIDER, _CLINICS_PER_PROVIDER_WEIGHTS)[0]
            chosen = rng.sample(clinics, min(wanted, len(clinics), left))
            provider = f"prov-{provider_number:07d}"
            roles = [rng.choices(_ROLES, _ROLE_WEIGHTS)[0]]
            if rng.random() < 0.1:
                extra = rng.choice(_ROLES)
                if extra not in roles:
                    roles.append(extra)
            has_primary = rng.random() < 0.95
            for position, clinic in enumerate(chosen):
                active = rng.random() < 0.9
                primary = has_primary and position == 0
                assigned = _between(rng, clinic.created_at, anchor - timedelta(hours=1))
                ended = None if active else _between(rng, assigned, anchor)
                document: Document = {
                    "_id": ObjectId(),
                    "providerId": provider,
                    "clinicId": clinic.id,
                    "organizationId": clinic.organization_id,
                    "roles": list(roles),
                    "isActive": active,
                    "isPrimaryClinic": primary,
                    "endedAt": ended,
                    "assignedAt": assigned,
                    "createdAt": assigned,
                    "updatedAt": assigned,
                    "version": 1,
                }
                if active and primary:
                    document["primaryProviderId"] = provider
                yield document
            left -= len(chosen)
        raise AssertionError("unreachable")


# -- writing ----------------------------------------------------------------------------


class Progress:
    """A plain textual bar on stderr: redrawn in place on a terminal, every 10% otherwise."""

    def __init__(self, total: int, stream: TextIO | None = None, width: int = 30) -> None:
        self._total = max(total, 1)
        self._stream = stream or sys.stderr
        self._width = width
        self._done = 0
        self._started = time.perf_counter()
        self._tty = self._stream.isatty()
        self._last_decile = -1

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self._started

    def advance(self, count: int) -> None:
        self._done += count
        decile = self._done * 10 // self._total
        if self._tty:
            self._draw("\r")
        elif decile != self._last_decile:
            self._draw("")
            self._stream.write("\n")
        self._last_decile = decile

    def _draw(self, prefix: str) -> None:
        share = min(self._done / self._total, 1.0)
        filled = int(share * self._width)
        rate = self._done / self.elapsed if self.elapsed > 0 else 0.0
        self._stream.write(
            f"{prefix}seeding [{'#' * filled}{'.' * (self._width - filled)}] {share:6.1%} "
            f"{self._done:,}/{self._total:,} docs {rate:,.0f} docs/s"
        )
        self._stream.flush()

    def close(self) -> None:
        if self._tty:
            self._stream.write("\n")
            self._stream.flush()


async def _insert_stream(
    repository: Repository, documents: Iterator[Document], progress: Progress
) -> int:
    """Unordered bulk inserts of BATCH_SIZE documents, IN_FLIGHT at a time."""
    pending: set[asyncio.Task[int]] = set()
    inserted = 0

    async def insert(batch: list[Document]) -> int:
        count = await repository.insert_many(batch)
        progress.advance(count)
        return count

    try:
        while batch := list(itertools.islice(documents, BATCH_SIZE)):
            if len(pending) >= IN_FLIGHT:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                inserted += sum(task.result() for task in done)
            pending.add(asyncio.create_task(insert(batch)))
            await asyncio.sleep(0)  # let the new batch go out before we build the next one
        if pending:
            inserted += sum(await asyncio.gather(*pending))
            pending = set()
    finally:
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
    return inserted


def _no_guard() -> WriteGuard:
    """Seeding only inserts: the per-document write guard has nothing to serialise."""
    return WriteGuard(enabled=False, redis=None, workers=1)


async def seed_database(
    db: Any,
    preset: Preset,
    seed: int,
    *,
    anchor: datetime | None = None,
    stream: TextIO | None = None,
) -> tuple[int, float]:
    """Insert one preset into `db`; returns (documents inserted, seconds)."""
    data = DataSet(preset, seed, anchor or utcnow())
    progress = Progress(preset.total, stream)
    inserted = 0
    try:
        organizations = OrganizationsRepository(db, guard=_no_guard())
        inserted += await _insert_stream(organizations, iter(data.organizations()), progress)
        clinics = ClinicsRepository(db, guard=_no_guard())
        inserted += await _insert_stream(clinics, data.clinics(), progress)
        assignments = AssignmentsRepository(db, guard=_no_guard())
        inserted += await _insert_stream(assignments, data.assignments(), progress)
    finally:
        progress.close()
    return inserted, progress.elapsed


# -- the demo key -----------------------------------------------------------------------


def _is_regular_or_missing(path: Path) -> bool:
    try:
        return stat.S_ISREG(path.stat().st_mode)
    except FileNotFoundError:
        return True


def _is_our_stdout(path: Path) -> bool:
    try:
        ours, theirs = os.fstat(sys.stdout.fileno()), path.stat()
    except (OSError, ValueError):
        return False
    return (ours.st_dev, ours.st_ino) == (theirs.st_dev, theirs.st_ino)


def _read_key(path: Path) -> str | None:
    """The key kept in a regular file, if any (a FIFO or /dev/stdout cannot be re-read)."""
    if not path.is_file():
        return None
    return path.read_text().strip() or None


def _write_key(path: Path, raw: str) -> None:
    """Regular files are created with mode 600 (never readable by others, even briefly)."""
    if _is_regular_or_missing(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            os.fchmod(handle.fileno(), 0o600)
            handle.write(raw + "\n")
        return
    with path.open("w") as handle:  # /dev/stdout, a FIFO: nothing to chmod, nothing to re-read
        handle.write(raw + "\n")


async def _demo_key(db: Any, path: Path, seeded: bool, err: TextIO) -> None:
    """Print (and keep in `path`) a platform_admin key valid for this database."""
    service = ApiKeysService(ApiKeysRepository(db, guard=_no_guard()))
    kept = None if seeded else _read_key(path)
    if kept is not None:
        if await service.authenticate(kept) is not None:
            print(kept)  # noqa: T201 - the CLI's output: the key, on its own line
            return
        err.write(f"{path} holds no valid key for this database; creating a new one\n")
    raw, stored = await service.create("demo admin (seed)", "platform_admin", None)
    _write_key(path, raw)
    err.write(f"created demo platform_admin key {stored['_id']}; written to {path}\n")
    if not _is_our_stdout(path):
        print(raw)  # noqa: T201 - the CLI's output: the key, on its own line


# -- the command ------------------------------------------------------------------------


async def run(args: argparse.Namespace, settings: Settings, *, err: TextIO | None = None) -> int:
    """`seed --preset small|medium|large [--seed N] [--if-empty] [--demo-key-file PATH]`."""
    err = err or sys.stderr
    preset = PRESETS[args.preset]
    client = open_client(settings, [])
    db = client[settings.mongodb_database]
    try:
        organizations = OrganizationsRepository(db, guard=_no_guard())
        has_data = await organizations.exists({})
        seeded = False
        if has_data and args.if_empty:
            err.write(
                f"database {settings.mongodb_database!r} already has organizations; "
                "--if-empty: nothing seeded\n"
            )
        elif has_data:
            err.write(
                f"error: database {settings.mongodb_database!r} already has organizations; "
                "seeding again would duplicate names and codes. Use --if-empty to skip, "
                "or an empty MONGODB_DATABASE.\n"
            )
            return 1
        else:
            err.write(
                f"seeding preset {args.preset!r} (seed {args.seed}): "
                f"{preset.organizations:,} organizations, {preset.clinics:,} clinics, "
                f"{preset.assignments:,} assignments into {settings.mongodb_database!r}\n"
            )
            inserted, seconds = await seed_database(db, preset, args.seed, stream=err)
            rate = inserted / seconds if seconds > 0 else float("inf")
            err.write(f"seeded {inserted:,} documents in {seconds:.2f} s ({rate:,.0f} docs/s)\n")
            seeded = True
        if args.demo_key_file:
            await _demo_key(db, Path(args.demo_key_file), seeded, err)
    except DomainError as ex:
        err.write(f"error: {type(ex).__name__}: {ex.detail}\n")
        return 2
    finally:
        await client.close()
    return 0
