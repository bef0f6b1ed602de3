from __future__ import annotations

import pytest

from enterprise.errors import InvalidInput
from enterprise.querying import (
    cursor_only,
    name_key,
    parse_fields,
    parse_list,
    present,
    projection,
)
from enterprise.services.clinics import SEARCH_SPEC, SPEC

pytestmark = pytest.mark.unit


def test_fields_are_whitelisted_and_normalised() -> None:
    assert parse_fields("name, address.city,id,name", SPEC) == ("address.city", "name")
    assert parse_fields("address,address.city", SPEC) == ("address",)
    with pytest.raises(InvalidInput, match="allowed: "):
        parse_fields("name,nameKey", SPEC)


def test_projection_is_server_side_and_lean() -> None:
    assert projection(("name",), SPEC) == {"_id": 1, "name": 1}
    assert projection(("name",), SPEC, extra=(("nameKey", 1), ("_id", 1))) == {
        "_id": 1,
        "name": 1,
        "nameKey": 1,
    }
    assert "nameKey" not in projection(None, SPEC)


def test_sort_keys_fetched_only_for_the_cursor_are_not_shown() -> None:
    sort = (("nameKey", 1), ("address.city", -1), ("_id", 1))
    fetched = {"_id": 7, "name": "A", "nameKey": "a", "address": {"city": "B"}}
    assert present(dict(fetched), cursor_only(("name",), sort)) == {"id": 7, "name": "A"}
    assert present(dict(fetched), cursor_only(("address.city", "name"), sort)) == {
        "id": 7,
        "name": "A",
        "address": {"city": "B"},
    }
    assert present(dict(fetched), cursor_only(("name", "nameKey"), sort))["nameKey"] == "a"
    # No `fields=`: the projection holds only what may be shown, and all of it is.
    assert present(dict(fetched), cursor_only(None, sort)) == {
        "id": 7,
        **{k: v for k, v in fetched.items() if k != "_id"},
    }


def test_list_parameters() -> None:
    query = parse_list({"status": "ACTIVE", "limit": "5"}, SPEC, default_limit=20, max_limit=100)
    assert (query.filter, query.limit, query.sort[-1]) == ({"status": "ACTIVE"}, 5, ("_id", 1))
    for bad in (
        {"limit": "101"},
        {"limit": "0"},
        {"limit": "x"},
        {"sort": "code"},
        {"count": "all"},
        {"status": "OPEN"},
        {"bogus": "1"},
        {"organizationId": "123"},
    ):
        with pytest.raises(InvalidInput):
            parse_list(bad, SPEC, default_limit=20, max_limit=100)


def test_prefix_search_escapes_regex() -> None:
    query = parse_list({"q": "  Dr. (Smile)"}, SEARCH_SPEC, default_limit=20, max_limit=100)
    assert query.filter["nameKey"] == {"$regex": r"^dr\. \(smile\)"}


def test_name_key_is_case_and_space_insensitive() -> None:
    assert name_key("  Bright   SMILES ") == name_key("bright smiles")


def test_repeated_parameter_is_a_400_not_a_crash() -> None:
    with pytest.raises(InvalidInput, match="more than once"):
        parse_list({"status": ["ACTIVE", "CLOSED"]}, SPEC, default_limit=20, max_limit=100)


def test_since_is_an_aware_instant_in_utc() -> None:
    from datetime import UTC, datetime

    from enterprise.services.audit import SPEC as AUDIT

    query = parse_list(
        {"since": "2026-12-01T11:00:00+01:00"}, AUDIT, default_limit=20, max_limit=100
    )
    assert query.filter == {"at": {"$gte": datetime(2026, 12, 1, 10, tzinfo=UTC)}}
    for raw in ("2026-12-01T10:00:00", "yesterday", "99999-01-01T00:00:00Z"):
        with pytest.raises(InvalidInput, match="since"):
            parse_list({"since": raw}, AUDIT, default_limit=20, max_limit=100)
