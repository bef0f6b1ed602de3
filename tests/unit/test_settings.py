from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path

import pytest

from enterprise.settings import Settings, SettingsError

pytestmark = pytest.mark.unit


def test_cursor_secret_is_required_outside_development() -> None:
    with pytest.raises(SettingsError, match="CURSOR_SECRET"):
        Settings.from_env({})
    assert Settings.from_env({"ENTERPRISE_DEV": "1"}).cursor_secret


def test_values_are_typed_and_named_in_errors() -> None:
    settings = Settings.from_env(
        {
            "CURSOR_SECRET": "s",
            "CACHE_ENABLED": "false",
            "TIMEOUT_SEARCH": "2.5",
            "BUDGET_SEARCH_MS": "250",
        }
    )
    assert (settings.cache_enabled, settings.timeout_search, settings.budgets_ms["search"]) == (
        False,
        2.5,
        250.0,
    )
    with pytest.raises(SettingsError, match="DB_POOL_SIZE"):
        Settings.from_env({"CURSOR_SECRET": "s", "DB_POOL_SIZE": "many"})
    for name, value in (("STREAM_BROTLI_QUALITY", "12"), ("STREAM_GZIP_LEVEL", "0")):
        with pytest.raises(SettingsError, match=name):
            Settings.from_env({"CURSOR_SECRET": "s", name: value})


def test_every_setting_is_documented_in_env_example() -> None:
    text = (Path(__file__).resolve().parents[2] / ".env.example").read_text()
    documented = set(re.findall(r"^([A-Z_0-9]+)=", text, re.M))
    expected = {f.name.upper() for f in fields(Settings) if f.name != "budgets_ms"}
    assert expected <= documented


def test_the_crash_hook_is_refused_outside_development() -> None:
    with pytest.raises(SettingsError, match="TEST_FAULT_CRASH is for tests only"):
        Settings.from_env({"CURSOR_SECRET": "s" * 32, "TEST_FAULT_CRASH": "after-write"})
    with pytest.raises(SettingsError, match="before-write or after-write"):
        Settings.from_env({"ENTERPRISE_DEV": "1", "TEST_FAULT_CRASH": "sometimes"})
    assert Settings.from_env({"ENTERPRISE_DEV": "1"}).test_fault_crash == ""
