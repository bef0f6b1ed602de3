"""Request bodies: strict msgspec structs, unknown fields rejected, sizes bounded.

msgspec was chosen over pydantic v2 by measurement (`loadtests/bench_validation.py`).
Create structs double as the full-document schema that a merged PATCH must satisfy.

Bodies are decoded strictly (`parse_json`): UTF-8 only, RFC 8259 only (no NaN/Infinity),
no duplicate member names (RFC 8259 leaves their meaning open, and two parsers may pick
different ones), numbers MongoDB can store (64-bit integers, finite doubles), strings it can
store (no lone surrogates), nesting at most `MAX_DEPTH` deep. Anything else is a 400 before
any schema is consulted, so nothing malformed reaches a service.
"""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any

import msgspec

from enterprise.errors import InvalidInput, ValidationFailed

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200, pattern=r"\S")]
Code = Annotated[str, msgspec.Meta(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_-]+$")]
Short = Annotated[str, msgspec.Meta(min_length=1, max_length=120)]
ExternalId = Annotated[
    str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")
]
HexId = Annotated[str, msgspec.Meta(pattern=r"^[0-9a-fA-F]{24}$")]
Role = Annotated[str, msgspec.Meta(min_length=1, max_length=40, pattern=r"^[A-Za-z_]+$")]
# msgspec parses ISO strings itself (the dec_hook never sees them): require the offset here.
AwareDatetime = Annotated[datetime, msgspec.Meta(tz=True)]


class OrganizationStatus(StrEnum):
    ACTIVE = "ACTIVE"
    SUSPENDED = "SUSPENDED"
    ARCHIVED = "ARCHIVED"


class ClinicStatus(StrEnum):
    ACTIVE = "ACTIVE"
    INACTIVE = "INACTIVE"
    CLOSED = "CLOSED"


class SubscriptionTier(StrEnum):
    FREE = "FREE"
    BASIC = "BASIC"
    PRO = "PRO"
    ENTERPRISE = "ENTERPRISE"


class Strict(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=False):
    pass


class Organization(Strict):
    name: Name
    status: OrganizationStatus = OrganizationStatus.ACTIVE
    subscriptionTier: SubscriptionTier = SubscriptionTier.FREE
    subscriptionEndDate: AwareDatetime | None = None


class Address(Strict):
    line1: Short
    city: Short
    state: Annotated[str, msgspec.Meta(min_length=2, max_length=40)]
    postalCode: Annotated[str, msgspec.Meta(min_length=3, max_length=12)]
    country: Annotated[str, msgspec.Meta(min_length=2, max_length=2)] = "US"


class Clinic(Strict):
    """Body of POST organizations/{id}/clinics; organizationId comes from the URL."""

    name: Name
    code: Code
    address: Address
    status: ClinicStatus = ClinicStatus.ACTIVE
    managerUserId: ExternalId | None = None


class Assignment(Strict):
    providerId: ExternalId
    clinicId: HexId
    roles: Annotated[list[Role], msgspec.Meta(max_length=10)] = []
    isActive: bool = True
    isPrimaryClinic: bool = False
    endedAt: AwareDatetime | None = None


# Fields a write may not change after creation (PATCH/PUT naming them is a 422).
IMMUTABLE: dict[type[Strict], frozenset[str]] = {
    Organization: frozenset(),
    Clinic: frozenset(),
    Assignment: frozenset({"providerId", "clinicId"}),
}

# A provider id in a URL obeys the same rule as in a body.
PROVIDER_ID: dict[str, Any] = msgspec.json.schema(ExternalId)
_PROVIDER_ID = re.compile(PROVIDER_ID["pattern"])

# Our documents nest three levels at most; 32 leaves room and bounds every walk.
MAX_DEPTH = 32
INT64 = (-(2**63), 2**63 - 1)
# Longer digit strings cannot be 64-bit integers: refused before int() parses them.
_MAX_INT_DIGITS = 20


def provider_id_of(raw: str) -> str:
    """A provider id from a URL, or a 400 (it becomes a query value)."""
    if len(raw) > PROVIDER_ID["maxLength"] or not _PROVIDER_ID.match(raw):
        raise InvalidInput("provider_id must be 1 to 64 characters of letters, digits and _ . : -")
    return raw


class _Malformed(ValueError):
    """Raised inside the decoder's hooks; becomes one 400."""


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _Malformed(f"member {key[:60]!r} appears more than once in an object")
            seen.add(key)
    return result


def _integer(text: str) -> int:
    value = int(text) if len(text.lstrip("-")) <= _MAX_INT_DIGITS else None
    if value is None or not INT64[0] <= value <= INT64[1]:
        raise _Malformed(f"the number {text[:30]} is outside the 64-bit integer range")
    return value


def _number(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _Malformed(f"the number {text[:30]} is too large for a double")
    return value


def _constant(text: str) -> Any:
    raise _Malformed(f"{text} is not JSON")


_decoder = json.JSONDecoder(
    object_pairs_hook=_no_duplicates,
    parse_int=_integer,
    parse_float=_number,
    parse_constant=_constant,
    strict=True,  # control characters inside strings are refused
)


def parse_json(body: bytes) -> Any:
    """Decode a request body strictly (module docstring) or fail with a 400: malformed is
    not a validation problem, and never a 500."""
    if not body:
        raise InvalidInput("a JSON body is required")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as ex:
        raise InvalidInput(f"the body is not UTF-8: byte {ex.start} is invalid") from ex
    try:
        value = _decoder.decode(text)
    except json.JSONDecodeError as ex:
        raise InvalidInput(f"the body is not valid JSON: {ex}") from ex
    except _Malformed as ex:
        raise InvalidInput(f"the body is not acceptable JSON: {ex}") from ex
    except RecursionError as ex:
        raise InvalidInput(f"the body nests deeper than {MAX_DEPTH} levels") from ex
    _check_tree(value, 0)
    return value


def _check_tree(value: Any, depth: int) -> None:
    """Depth (`depth` containers hold `value`), and strings MongoDB can store (UTF-8 has
    no lone surrogates)."""
    if isinstance(value, str):
        _check_string(value)
        return
    if isinstance(value, dict | list) and depth >= MAX_DEPTH:
        raise InvalidInput(f"the body nests deeper than {MAX_DEPTH} levels")
    if isinstance(value, dict):
        for key, item in value.items():
            _check_string(key)
            _check_tree(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _check_tree(item, depth + 1)


def _check_string(text: str) -> None:
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as ex:
            raise InvalidInput("the body holds a lone UTF-16 surrogate (\\ud800-\\udfff)") from ex


def validate(data: Any, schema: type[Strict]) -> dict[str, Any]:
    """Validate decoded JSON against `schema`; return the plain dict to store."""
    if not isinstance(data, dict):
        raise ValidationFailed("the body must be a JSON object")
    try:
        struct = msgspec.convert(data, schema, strict=True, dec_hook=_dec_hook)
    except msgspec.ValidationError as ex:
        message = str(ex)
        path = message.rsplit("at `$.", 1)[-1].rstrip("`") if "at `$." in message else None
        errors = [{"field": path or "body", "message": message}]
        raise ValidationFailed(
            f"the body does not match the {schema.__name__} schema: {message}", errors=errors
        ) from ex
    result: dict[str, Any] = msgspec.to_builtins(struct, builtin_types=(datetime,))
    for name, value in result.items():
        if isinstance(value, datetime):
            try:
                # Stored in UTC: an offset near year 1 or 9999 would leave the calendar.
                result[name] = value.astimezone(UTC)
            except OverflowError as ex:
                message = "the datetime is outside years 1 to 9999 in UTC"
                errors = [{"field": name, "message": message}]
                raise ValidationFailed(f"{name}: {message}", errors=errors) from ex
    return result


def _dec_hook(kind: type, value: Any) -> Any:
    if kind is datetime and isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError as ex:
            raise msgspec.ValidationError(f"invalid datetime {value!r}") from ex
        if parsed.tzinfo is None:
            raise msgspec.ValidationError("datetimes need a timezone, e.g. 2027-01-31T00:00:00Z")
        return parsed
    raise NotImplementedError


def merge_patch(target: dict[str, Any], patch: Any) -> dict[str, Any]:
    """RFC 7396 JSON merge patch: `null` removes, objects merge recursively."""
    if not isinstance(patch, dict):
        raise ValidationFailed("a merge patch must be a JSON object")
    result = dict(target)
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = merge_patch(result[key], value)
        else:
            result[key] = value
    return result


# -- responses ------------------------------------------------------------------------------


class AuditActor(msgspec.Struct):
    """Who wrote: the API key (or `cli` for the command line), its role and organization."""

    keyId: str
    role: str
    organizationId: HexId | None


class AuditEvent(msgspec.Struct):
    """One record of `GET /api/v1/audit-events`: one write and the fields it changed.

    `state` is `committed` for a write in the database, `pending` while its write may still
    be in flight (or its process died; `audit reconcile` settles it), `abandoned` when
    reconciliation found it never applied. Never holds a key's hash or secret.
    """

    id: HexId
    at: datetime
    state: Annotated[str, msgspec.Meta(pattern=r"^(pending|committed|abandoned)$")]
    action: Annotated[str, msgspec.Meta(pattern=r"^(create|update|delete)$")]
    collection: str
    documentId: HexId
    organizationId: HexId | None
    version: int | None  # None: an update still pending (its version is known once it commits)
    actor: AuditActor
    requestId: str | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    settledAt: datetime | None = None


class PageInfo(msgspec.Struct):
    limit: int
    next: str | None
    prev: str | None
    hasMore: bool


class Count(msgspec.Struct):
    value: int | None
    strategy: str
    exact: bool


class AuditEventPage(msgspec.Struct):
    data: list[AuditEvent]
    page: PageInfo
    count: Count
