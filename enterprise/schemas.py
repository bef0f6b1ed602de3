"""Request bodies: strict msgspec structs, unknown fields rejected, sizes bounded.

msgspec was chosen over pydantic v2 by measurement (`loadtests/bench_validation.py`).
Create structs double as the full-document schema that a merged PATCH must satisfy.
"""

from __future__ import annotations

from datetime import datetime
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

_decoder = msgspec.json.Decoder()


def parse_json(body: bytes) -> Any:
    """Decode JSON or fail with a 400 (malformed is not a validation problem)."""
    if not body:
        raise InvalidInput("a JSON body is required")
    try:
        return _decoder.decode(body)
    except msgspec.DecodeError as ex:
        raise InvalidInput(f"the body is not valid JSON: {ex}") from ex


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
