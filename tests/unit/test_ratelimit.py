"""Quota rules and the in-process GCRA of the rate limiter's fallback."""

from __future__ import annotations

import pytest

from enterprise.ratelimit import LocalBuckets, Quota, Rules
from enterprise.settings import Settings, SettingsError

pytestmark = pytest.mark.unit


def test_the_most_specific_rule_wins() -> None:
    rules = Rules.parse("*:*:*=100/60, *:*:GET=1000/60, org_reader:*:*=50/60, *:reports:GET=5/60")
    assert rules.quota("org_admin", "lists", "POST") == Quota(100, 60)
    assert rules.quota("org_admin", "lists", "GET") == Quota(1000, 60)
    assert rules.quota("org_reader", "lists", "GET") == Quota(50, 60)  # role beats method
    assert rules.quota("org_admin", "reports", "GET") == Quota(5, 60)
    assert Rules.parse("sre:*:*=1/1").quota("org_admin", "lists", "GET") is None


@pytest.mark.parametrize(
    "text", ["*:*=1/60", "*:*:*=0/60", "*:*:*=ten/60", "*:*:*=10", "*:*:*=60000001/60"]
)
def test_malformed_rules_name_the_setting(text: str) -> None:
    with pytest.raises(SettingsError, match="RATE_LIMITS"):
        Settings.from_env({"ENTERPRISE_DEV": "1", "RATE_LIMITS": text})


def test_the_finest_rate_is_one_per_microsecond() -> None:
    assert Rules.parse("*:*:*=60000000/60").quota("sre", "lists", "GET") == Quota(60_000_000, 60)


def test_local_share_defaults_to_one_over_workers() -> None:
    settings = Settings.from_env({"ENTERPRISE_DEV": "1", "WORKERS": "4"})
    assert settings.local_rate_share == 0.25
    assert LocalBuckets(0.25).share_of(Quota(10, 60)) == 3  # rounded up
    assert LocalBuckets(0.25).share_of(Quota(1, 60)) == 1


def test_local_gcra_admits_a_burst_then_one_per_interval() -> None:
    now = [1000.0]
    buckets = LocalBuckets(1.0, clock=lambda: now[0])
    quota = Quota(3, 60)  # one every 20 s, bursts of 3
    decisions = [buckets.decide("k", quota) for _ in range(4)]
    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert [d.remaining for d in decisions[:3]] == [2, 1, 0]
    assert decisions[3].retry_after_s == 20
    now[0] += 20
    assert buckets.decide("k", quota).allowed
    assert not buckets.decide("k", quota).allowed
    assert buckets.decide("other", quota).allowed


def test_cors_never_pairs_a_wildcard_with_credentials() -> None:
    with pytest.raises(SettingsError, match="CORS_ORIGINS"):
        Settings.from_env(
            {"ENTERPRISE_DEV": "1", "CORS_ORIGINS": "*", "CORS_ALLOW_CREDENTIALS": "true"}
        )
