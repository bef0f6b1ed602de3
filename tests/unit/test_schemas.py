"""Body decoding and validation as properties (hypothesis): whatever bytes arrive, the
outcome is a value MongoDB can store or a 400/422 — never another exception (a 500).

Examples per property are set below; `pytest -q tests/unit/test_schemas.py` runs
MAX_EXAMPLES for each (the case count the report gives).
"""

from __future__ import annotations

import json
import math
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from enterprise.errors import InvalidInput, ValidationFailed
from enterprise.schemas import (
    INT64,
    MAX_DEPTH,
    Assignment,
    Clinic,
    Organization,
    merge_patch,
    parse_json,
    provider_id_of,
    validate,
)

pytestmark = pytest.mark.unit

MAX_EXAMPLES = 200
CASES = settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,  # the machine is shared: no timing in unit tests
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
SCHEMAS = (Organization, Clinic, Assignment)

# What MongoDB can store: 64-bit integers, finite doubles, valid Unicode.
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=INT64[0], max_value=INT64[1])
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(blacklist_categories=("Cs",)), max_size=30)
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5)
    ),
    max_leaves=20,
)
# Keys the schemas know, so validation gets past "unknown field" and into the types.
known_keys = st.sampled_from(
    sorted({name for schema in SCHEMAS for name in schema.__struct_fields__})
    + ["line1", "city", "state", "postalCode", "country"]
)
plausible_bodies = st.dictionaries(known_keys, json_values | st.dictionaries(known_keys, scalars))


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max(map(_depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(_depth, value), default=0)
    return 0


def _same(a: Any, b: Any) -> bool:
    """Equal as JSON values (floats compared exactly, -0.0 == 0.0 as JSON says)."""
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(map(_same, a, b))
    return type(a) is type(b) and a == b


@CASES
@given(st.binary(max_size=300))
@example(b"\xff")
@example(b"\xef\xbb\xbf{}")
@example(b"[" * 5000)
@example(b'{"a":1e400}')
@example(b'{"a":NaN}')
@example(b'"\\ud800"')
def test_any_bytes_decode_or_give_a_400(body: bytes) -> None:
    try:
        parse_json(body)
    except InvalidInput:
        pass


@CASES
@given(json_values)
def test_storable_json_round_trips(value: Any) -> None:
    """Everything a client may legitimately send decodes to itself."""
    body = orjson.dumps(value)
    if _depth(value) > MAX_DEPTH:
        with pytest.raises(InvalidInput):
            parse_json(body)
    else:
        assert _same(parse_json(body), value)


@CASES
@given(st.dictionaries(st.text(max_size=8), scalars, min_size=1, max_size=5), st.data())
def test_a_duplicate_member_is_a_400(members: dict[str, Any], data: st.DataObject) -> None:
    """RFC 8259 leaves duplicate names undefined; we refuse rather than pick one."""
    twice = data.draw(st.sampled_from(sorted(members)))
    pairs = [*members.items(), (twice, data.draw(scalars))]
    order = data.draw(st.permutations(pairs))
    text = "{" + ",".join(f"{json.dumps(k)}:{json.dumps(v)}" for k, v in order) + "}"
    nested = data.draw(st.sampled_from(["{}", '{{"outer":{}}}', "[{}]"])).format(text)
    with pytest.raises(InvalidInput, match="more than once"):
        parse_json(nested.encode())


@CASES
@given(
    st.one_of(
        st.integers().filter(lambda n: not INT64[0] <= n <= INT64[1]).map(str),
        st.sampled_from(["NaN", "Infinity", "-Infinity", "1e400", "-1e999", "9" * 5000]),
        st.integers(min_value=MAX_DEPTH + 1, max_value=3000).map(lambda n: "[" * n + "]" * n),
        st.integers(min_value=0xD800, max_value=0xDFFF).map(lambda c: f'"\\u{c:04x}"'),
    ),
    st.sampled_from(["{}", '{{"name":{}}}', "[1,{}]"]),
)
def test_numbers_strings_and_depth_mongodb_cannot_store_are_a_400(
    fragment: str, frame: str
) -> None:
    with pytest.raises(InvalidInput):
        parse_json(frame.format(fragment).encode())


@CASES
@given(st.sampled_from(SCHEMAS), plausible_bodies | json_values)
def test_validation_stores_or_gives_a_422(schema: Any, body: Any) -> None:
    try:
        stored = validate(body, schema)
    except ValidationFailed:
        return
    assert set(stored) <= set(schema.__struct_fields__)
    orjson.dumps(stored)  # what is stored is plain data


@CASES
@given(st.sampled_from(SCHEMAS), plausible_bodies, plausible_bodies | json_values)
def test_merge_patch_then_validation_stores_or_gives_a_422(
    schema: Any, current: dict[str, Any], patch: Any
) -> None:
    try:
        stored = validate(merge_patch(current, patch), schema)
    except ValidationFailed:
        return
    assert set(stored) <= set(schema.__struct_fields__)


@CASES
@given(st.text(max_size=80))
def test_a_provider_id_in_a_url_is_checked_like_one_in_a_body(raw: str) -> None:
    try:
        from_url = provider_id_of(raw)
    except InvalidInput:
        with pytest.raises(ValidationFailed):
            validate({"providerId": raw, "clinicId": "a" * 24}, Assignment)
        return
    assert validate({"providerId": from_url, "clinicId": "a" * 24}, Assignment)


def test_datetimes_outside_the_utc_calendar_are_a_422() -> None:
    for value in ("9999-12-31T23:00:00-14:00", "0001-01-01T00:00:00+14:00"):
        with pytest.raises(ValidationFailed, match="outside years"):
            validate({"name": "x", "subscriptionEndDate": value}, Organization)
    stored = validate(
        {"name": "x", "subscriptionEndDate": "2027-01-01T02:00:00+02:00"}, Organization
    )
    assert stored["subscriptionEndDate"].isoformat() == "2027-01-01T00:00:00+00:00"
