"""Opaque keyset cursors: signed, bound to route + filter + sort, carrying the `_id` tiebreak.

A cursor is `base64url(json payload) "." base64url(hmac)`. The payload holds the sort-key
values of the boundary document, the direction and a short hash of the query it belongs to,
so a cursor reused with another filter or sort is refused instead of silently skipping rows.
Pure functions only: the repository turns `keyset_filter` output into a MongoDB query.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import orjson
from bson import ObjectId

from enterprise.errors import InvalidInput

Direction = Literal["next", "prev"]
SortSpec = tuple[tuple[str, int], ...]


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _pack(value: Any) -> Any:
    if isinstance(value, ObjectId):
        return {"$o": str(value)}
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
        return {"$d": int(moment.timestamp() * 1000)}
    if value is None or isinstance(value, str | int | float | bool):
        return value
    raise TypeError(f"cannot put {type(value).__name__} in a cursor")


def _unpack(value: Any) -> Any:
    if isinstance(value, dict):
        if "$o" in value:
            return ObjectId(value["$o"])
        if "$d" in value:
            return datetime.fromtimestamp(value["$d"] / 1000, tz=UTC)
        raise ValueError("unknown tagged value")
    return value


def binding(route: str, query_filter: dict[str, Any], sort: SortSpec) -> str:
    """A short digest of what the cursor may be used with."""
    material = orjson.dumps(
        [route, query_filter, list(sort)], default=_pack, option=orjson.OPT_SORT_KEYS
    )
    return hashlib.sha256(material).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class Cursor:
    values: tuple[Any, ...]  # sort-key values of the boundary document, `_id` last
    direction: Direction


class CursorCodec:
    """Signs and verifies cursors with a server secret."""

    def __init__(self, secret: str) -> None:
        if not secret:
            raise ValueError("a cursor secret is required")
        self._key = secret.encode()

    def _sign(self, body: bytes) -> bytes:
        return hmac.new(self._key, body, hashlib.sha256).digest()[:16]

    def encode(self, cursor: Cursor, bound_to: str) -> str:
        body = orjson.dumps(
            {"v": [_pack(v) for v in cursor.values], "d": cursor.direction, "b": bound_to}
        )
        return f"{_b64(body)}.{_b64(self._sign(body))}"

    def verify(self, token: str) -> bytes:
        """The cursor's payload if we signed it; else `InvalidInput` (HTTP 400). Enough to
        refuse a tampered cursor before a precondition is evaluated; `decode` also checks
        what it is bound to."""
        try:
            body_text, signature_text = token.split(".", 1)
            body = _unb64(body_text)
            signature = _unb64(signature_text)
        except ValueError as ex:
            raise InvalidInput("the cursor is malformed") from ex
        if not hmac.compare_digest(signature, self._sign(body)):
            raise InvalidInput("the cursor has been tampered with or was issued by another server")
        return body

    def decode(self, token: str, bound_to: str) -> Cursor:
        """Verify and open a cursor; any problem is an `InvalidInput` (HTTP 400)."""
        body = self.verify(token)
        try:
            payload = orjson.loads(body)
            values = tuple(_unpack(v) for v in payload["v"])
            direction = payload["d"]
            bound = payload["b"]
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as ex:
            raise InvalidInput("the cursor is malformed") from ex
        if bound != bound_to:
            raise InvalidInput(
                "the cursor belongs to another filter or sort; start from the first page"
            )
        if direction not in ("next", "prev"):
            raise InvalidInput("the cursor is malformed")
        return Cursor(values=values, direction=direction)


def full_sort(sort: SortSpec) -> SortSpec:
    """The sort with the `_id` tiebreak appended in the direction of the last key."""
    if sort and sort[-1][0] == "_id":
        return sort
    last_direction = sort[-1][1] if sort else 1
    return (*sort, ("_id", last_direction))


def reverse(sort: SortSpec) -> SortSpec:
    return tuple((name, -direction) for name, direction in sort)


def keyset_filter(sort: SortSpec, values: tuple[Any, ...]) -> dict[str, Any]:
    """Documents strictly after `values` in `sort` order (the classic expanded OR form).

    For sort (a asc, b desc, _id asc) after (x, y, z) this yields
    `{$or: [{a: {$gt: x}}, {a: x, b: {$lt: y}}, {a: x, b: y, _id: {$gt: z}}]}`, which MongoDB
    answers from a compound index on the same keys with bounded scans.
    """
    if len(sort) != len(values):
        raise InvalidInput("the cursor does not match the sort")
    branches: list[dict[str, Any]] = []
    for position, (name, direction) in enumerate(sort):
        branch: dict[str, Any] = {sort[i][0]: values[i] for i in range(position)}
        branch[name] = {"$gt" if direction == 1 else "$lt": values[position]}
        branches.append(branch)
    return branches[0] if len(branches) == 1 else {"$or": branches}


def boundary(document: dict[str, Any], sort: SortSpec) -> tuple[Any, ...]:
    """The sort-key values of a document, reading dotted paths."""
    values = []
    for name, _ in sort:
        value: Any = document
        for part in name.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        values.append(value)
    return tuple(values)
