"""API keys, principals and the role policy.

Keys are random 32-byte tokens shown once; only their SHA-256 is stored. A key either belongs
to the platform (no organization) or to one organization, which then scopes every query.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum

from bson import ObjectId

from enterprise.errors import Forbidden


class Role(StrEnum):
    PLATFORM_ADMIN = "platform_admin"
    ORG_ADMIN = "org_admin"
    ORG_READER = "org_reader"
    SRE = "sre"
    METRICS_SCRAPER = "metrics_scraper"  # /metrics only (Prometheus)


class Action(StrEnum):
    READ = "read"  # tenant data
    WRITE = "write"  # tenant data
    ADMIN = "admin"  # create/delete organizations, see every tenant
    OPERATE = "operate"  # performance and SRE endpoints
    SCRAPE = "scrape"  # /metrics
    AUDIT = "audit"  # the audit trail (of the key's organization, for org-scoped keys)


POLICY: dict[Role, frozenset[Action]] = {
    Role.PLATFORM_ADMIN: frozenset(Action),
    Role.ORG_ADMIN: frozenset({Action.READ, Action.WRITE, Action.AUDIT}),
    Role.ORG_READER: frozenset({Action.READ}),
    Role.SRE: frozenset({Action.OPERATE, Action.SCRAPE}),
    Role.METRICS_SCRAPER: frozenset({Action.SCRAPE}),
}

KEY_PREFIX = "ent_"


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def key_hash(raw_key: str) -> str:
    return hashlib.sha256(raw_key.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Principal:
    key_id: str
    name: str
    role: Role
    organization_id: ObjectId | None
    # "<role>|<tenant or platform>": what cached responses are partitioned by.
    cache_scope: str = field(init=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "cache_scope", f"{self.role.value}|{self.scope_label}")

    @property
    def tenant(self) -> ObjectId | None:
        """The organization every query is confined to; None for platform-wide keys."""
        return self.organization_id if self.role is not Role.PLATFORM_ADMIN else None

    @property
    def scope_label(self) -> str:
        return str(self.tenant) if self.tenant is not None else "platform"

    def require(self, action: Action) -> None:
        if action not in POLICY[self.role]:
            raise Forbidden(f"the {self.role.value} role may not {action.value}")


Authenticate = Callable[[str], Awaitable["Principal | None"]]


def with_metrics_token(authenticate: Authenticate, token: str) -> Authenticate:
    """`authenticate`, also accepting `METRICS_TOKEN` as a scrape-only principal, so a
    Prometheus server needs no API key in the database. No token: `authenticate` itself."""
    if not token:
        return authenticate
    scraper = Principal(
        key_id="metrics-token",
        name="metrics token",
        role=Role.METRICS_SCRAPER,
        organization_id=None,
    )
    expected = token.encode()

    async def check(raw_key: str) -> Principal | None:
        if hmac.compare_digest(raw_key.encode(), expected):
            return scraper
        return await authenticate(raw_key)

    return check
