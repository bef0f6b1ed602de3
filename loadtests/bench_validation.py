"""(b) Validation library choice: msgspec vs pydantic v2 on a realistic clinic body.

Both sides enforce the same contract as `enterprise.schemas.Clinic`: strict types, unknown
fields rejected, the same length limits and patterns, a status enum and a nested address.

* msgspec uses the app's own `Clinic` struct (`forbid_unknown_fields=True`, `strict=True`).
* pydantic uses an equivalent `BaseModel` with `ConfigDict(strict=True, extra="forbid")`.

Cases, each decode + validate from the raw request bytes:

* `valid/one-step`: msgspec `json.decode(body, type=Clinic, strict=True)` vs pydantic
  `Clinic.model_validate_json(body)`: each library's fastest path.
* `valid/app-path`: what the service does today (`schemas.parse_json` then
  `schemas.validate`, which also converts to the dict that is stored), vs pydantic's
  `model_validate_json(...).model_dump()`.
* `invalid/one-step`: an unknown field plus a malformed code, i.e. the error path
  (exception raised and caught).

Timing: `timeit` with `number` calls per sample, ROUNDS samples per case, cases interleaved
in each round; the µs/op printed is the median of the samples (min alongside).

    .venv/bin/python loadtests/bench_validation.py [--rounds 7] [--number 20000] [--json]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import timeit
from collections.abc import Callable
from enum import StrEnum
from importlib.metadata import version
from pathlib import Path
from typing import Annotated, Any

import msgspec
from pydantic import BaseModel, ConfigDict, StringConstraints, ValidationError

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from enterprise import schemas  # noqa: E402  (the app's real schema)
from enterprise.errors import DomainError  # noqa: E402

VALID = (
    b'{"name": "Summit Dental Group - Denver Highlands", "code": "DCO-014",'
    b' "address": {"line1": "1234 Tejon St", "city": "Denver", "state": "CO",'
    b' "postalCode": "80211", "country": "US"},'
    b' "status": "ACTIVE", "managerUserId": "user-004211"}'
)
INVALID = (
    b'{"name": "Summit Dental Group - Denver Highlands", "code": "DCO 014!",'
    b' "address": {"line1": "1234 Tejon St", "city": "Denver", "state": "CO",'
    b' "postalCode": "80211", "country": "US"},'
    b' "status": "ACTIVE", "managerUserId": "user-004211", "isAdmin": true}'
)


class Status(StrEnum):
    ACTIVE = "ACTIVE"
    INACTIVE = "INACTIVE"
    CLOSED = "CLOSED"


Short = Annotated[str, StringConstraints(min_length=1, max_length=120)]


class AddressModel(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")

    line1: Short
    city: Short
    state: Annotated[str, StringConstraints(min_length=2, max_length=40)]
    postalCode: Annotated[str, StringConstraints(min_length=3, max_length=12)]
    country: Annotated[str, StringConstraints(min_length=2, max_length=2)] = "US"


class ClinicModel(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")

    name: Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=r"\S")]
    code: Annotated[
        str, StringConstraints(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_-]+$")
    ]
    address: AddressModel
    status: Status = Status.ACTIVE
    managerUserId: (
        Annotated[
            str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")
        ]
        | None
    ) = None


_clinic_decoder = msgspec.json.Decoder(schemas.Clinic, strict=True)


def msgspec_one_step(body: bytes) -> Any:
    return _clinic_decoder.decode(body)


def msgspec_app_path(body: bytes) -> dict[str, Any]:
    return schemas.validate(schemas.parse_json(body), schemas.Clinic)


def pydantic_one_step(body: bytes) -> Any:
    return ClinicModel.model_validate_json(body)


def pydantic_app_path(body: bytes) -> dict[str, Any]:
    return ClinicModel.model_validate_json(body).model_dump(mode="json")


def rejecting(
    call: Callable[[bytes], Any], errors: tuple[type[Exception], ...]
) -> Callable[[], None]:
    def attempt() -> None:
        try:
            call(INVALID)
        except errors:
            return
        raise AssertionError(f"{call.__name__} accepted the invalid body")

    return attempt


CASES: dict[str, Callable[[], Any]] = {
    "valid/one-step msgspec": lambda: msgspec_one_step(VALID),
    "valid/one-step pydantic": lambda: pydantic_one_step(VALID),
    "valid/app-path msgspec": lambda: msgspec_app_path(VALID),
    "valid/app-path pydantic": lambda: pydantic_app_path(VALID),
    "invalid/one-step msgspec": rejecting(msgspec_one_step, (msgspec.ValidationError,)),
    "invalid/one-step pydantic": rejecting(pydantic_one_step, (ValidationError,)),
    "invalid/app-path msgspec": rejecting(msgspec_app_path, (DomainError,)),
    "invalid/app-path pydantic": rejecting(pydantic_app_path, (ValidationError,)),
}


def check_equivalence() -> None:
    """Both libraries accept the valid body with the same result and reject the invalid one."""
    ours = msgspec_app_path(VALID)
    theirs = pydantic_app_path(VALID)
    assert ours == theirs, (ours, theirs)
    for case in CASES.values():
        case()
    try:
        msgspec_one_step(INVALID)
    except msgspec.ValidationError as ex:
        msgspec_error = str(ex)
    try:
        pydantic_one_step(INVALID)
    except ValidationError as ex:
        pydantic_errors = ex.error_count()
    sys.stderr.write(
        f"invalid body: msgspec stops at the first error ({msgspec_error!r}); "
        f"pydantic reports {pydantic_errors} errors\n"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--number", type=int, default=20_000)
    parser.add_argument("--json", action="store_true", help="also print one JSON line")
    args = parser.parse_args()
    check_equivalence()

    samples: dict[str, list[float]] = {name: [] for name in CASES}
    for _ in range(args.rounds):
        for name, case in CASES.items():
            seconds = timeit.timeit(case, number=args.number)
            samples[name].append(seconds / args.number * 1e6)
    medians = {name: statistics.median(values) for name, values in samples.items()}

    out = sys.stdout
    out.write(
        f"python {platform.python_version()}, msgspec {version('msgspec')}, "
        f"pydantic {version('pydantic')} (pydantic-core {version('pydantic-core')}); "
        f"body {len(VALID)} bytes; {args.rounds} rounds x {args.number} calls\n\n"
    )
    out.write("| case | µs/op median | µs/op min |\n|---|---|---|\n")
    for name, values in samples.items():
        out.write(f"| {name} | {medians[name]:.2f} | {min(values):.2f} |\n")
    out.write("\n| pydantic ÷ msgspec | ratio of medians |\n|---|---|\n")
    for case in ("valid/one-step", "valid/app-path", "invalid/one-step", "invalid/app-path"):
        ratio = medians[f"{case} pydantic"] / medians[f"{case} msgspec"]
        out.write(f"| {case} | {ratio:.2f} |\n")
    if args.json:
        out.write("VALIDATION_JSON " + json.dumps({"median_us": medians}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
