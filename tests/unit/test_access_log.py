"""The access log's two ways to make a line: the app's (a dict through orjson) and the hot
path's (formatted directly). A consumer must not be able to tell them apart."""

from __future__ import annotations

import io

import orjson
import pytest

from enterprise.access_log import AccessLog, _line
from enterprise.context import RequestTimings

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("status", "ms", "cache_ms", "x_cache", "key_id"),
    [
        (200, 0.41237, 0.1004, "hit", "6b115a37ccd90d19d9dfddd5"),
        (304, 12.0, 11.99951, "stale", "6b115a37ccd90d19d9dfddd5"),
        (200, 0.0321, 0.0, None, None),  # a fixed answer (/health/live): no cache, no key
    ],
)
def test_a_hit_line_is_the_line_the_app_would_write(
    status: int, ms: float, cache_ms: float, x_cache: str | None, key_id: str | None
) -> None:
    sink = io.BytesIO()
    log = AccessLog(sink, interval_s=0.01)
    timings = RequestTimings()
    if cache_ms:
        timings.add("cache", cache_ms)
    log.observe_hit("/api/v1/clinics/{clinic_id}", status, x_cache, key_id, ms, "r-1.a_B", timings)
    log.start()
    log.stop()
    written = orjson.loads(sink.getvalue())
    expected = orjson.loads(
        _line(
            0.0,
            "r-1.a_B",
            "GET",
            "/api/v1/clinics/{clinic_id}",
            status,
            ms,
            0.0,
            0,
            timings.cache_ms,
            x_cache or "none",
            key_id,
        )  # fmt: skip
    )
    assert written.pop("at").endswith("+00:00")
    expected.pop("at")
    assert list(written.items()) == list(expected.items())  # same fields, same order
