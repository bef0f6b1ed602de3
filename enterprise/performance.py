"""The SRE read model: every worker's snapshot (`enterprise/telemetry.py`) combined into
the bodies of the `/api/v1/performance/*` endpoints. Pure functions, no I/O.

How workers are combined, so the answer is the same whichever worker gives it:
- latency windows: each worker's window is an HdrHistogram; they are *added* bucket by
  bucket and the percentiles read from the sum (never averaged); counts, errors and
  over-target counts add; the maximum is the largest;
- cache lookups, evictions, entries, write-guard refusals: summed;
- breakers: each worker's own breaker is listed; a breaker's state is the worst of them
  (open > half-open > closed);
- slow queries: the union, newest first;
- degraded: true when any worker is.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Any, NamedTuple

from hdrh.histogram import HdrHistogram

from enterprise.histogram import Window
from middleware.budgets import ALLOWED_OVER_FRACTION, WINDOWS, window_summary

COMBINED = (
    "every live worker's snapshot: histograms added bucket by bucket (percentiles read from "
    "the sum), counts summed, maxima maxed; breakers at their worst state"
)
AT_RISK_FRACTION = 0.8  # a P95 above 80 % of its target is at risk
HIT_RATE_TARGETS = {"organizations": 0.8, "clinics": 0.8, "assignments": 0.7, "lists": 0.6}
CACHE_KINDS = ("organizations", "clinics", "assignments", "lists", "reports")
_BREAKER_ORDER = {"closed": 0, "half-open": 1, "open": 2}
SLOW_QUERIES_SHOWN = 100


class AlertRule(NamedTuple):
    """Fires when both windows burn the error budget at least `burn` times as fast as it
    accrues: the long window says it is not a blip, the short one that it is still going."""

    name: str
    severity: str
    long: str
    short: str
    burn: float
    min_requests: int = 10  # in the short window: a few slow requests page no one


# The error budget of a P95 target is 5 % of requests over it, so a burn rate of 20 is every
# request over target. fast: half the requests over target for the last minute and five;
# slow: twice the allowed share for the last five minutes and the hour.
ALERT_RULES = (
    AlertRule("fast-burn", "page", long="5m", short="1m", burn=10.0),
    AlertRule("slow-burn", "ticket", long="1h", short="5m", burn=2.0),
)


@functools.lru_cache(maxsize=4096)
def _histogram(encoded: str) -> HdrHistogram:
    # A window unchanged since the last poll arrives with the same encoding: decode it once.
    # Safe to share: adding windows builds a new histogram and never changes its inputs.
    return HdrHistogram.decode(encoded.encode("ascii"))


def _decode(encoded: dict[str, Any]) -> Window:
    histogram = encoded.get("histogram")
    return Window(
        int(encoded["windowS"]),
        _histogram(histogram) if histogram else None,
        int(encoded["overTarget"]),
        int(encoded["errors"]),
        float(encoded["max"]),
    )


def _windows(rows: Iterable[dict[str, Any]]) -> dict[str, Window]:
    """Sum of the encoded windows of one route (or query class) over workers."""
    summed: dict[str, Window] = {}
    for row in rows:
        for name, encoded in row["windows"].items():
            window = _decode(encoded)
            summed[name] = summed[name] + window if name in summed else window
    return summed


def _by_route(snapshots: list[dict[str, Any]]) -> dict[str, tuple[dict[str, Any], list[Any]]]:
    routes: dict[str, tuple[dict[str, Any], list[Any]]] = {}
    for snapshot in snapshots:
        for row in snapshot["routes"]:
            routes.setdefault(row["route"], (row, []))[1].append(row)
    return dict(sorted(routes.items()))


def _status(windows: dict[str, dict[str, Any]], target_ms: float) -> str:
    recent = windows["5m"] if windows["5m"]["count"] else windows["1m"]
    if not recent["count"]:
        return "no-data"
    if recent["p95"] > target_ms:
        return "breached"
    if recent["p95"] > target_ms * AT_RISK_FRACTION or windows["1m"]["status"] == "breach":
        return "at-risk"
    return "ok"


def _route_windows(rows: list[dict[str, Any]], target_ms: float) -> dict[str, dict[str, Any]]:
    summed = _windows(rows)
    shown = {}
    for name, seconds in WINDOWS.items():
        figures = window_summary(summed[name], target_ms)
        count = figures["count"]
        figures["ratePerS"] = round(count / seconds, 3)
        figures["errorRate"] = round(figures["errors"] / count, 4) if count else None
        shown[name] = figures
    return shown


def summary(snapshots: list[dict[str, Any]], now: float) -> dict[str, Any]:
    """Per route: requests, rate, P50/P95/P99 per window, errors, budget and status; per
    query class: P95 against its target; per worker: uptime, RSS, in-flight."""
    routes = []
    for route, (first, rows) in _by_route(snapshots).items():
        method, _, template = route.partition(" ")
        windows = _route_windows(rows, first["targetMs"])
        routes.append(
            {
                "route": route,
                "method": method if template else None,
                "template": template or route,
                "class": first["class"],
                "budgetMs": first["targetMs"],
                "status": _status(windows, first["targetMs"]),
                "windows": windows,
            }
        )
    queries = []
    names = sorted({name for s in snapshots for name in s["queries"]})
    for name in names:
        rows = [s["queries"][name] for s in snapshots if name in s["queries"]]
        target = rows[0]["targetMs"]
        windows = {w: window_summary(x, target) for w, x in _windows(rows).items()}
        queries.append(
            {
                "class": name,
                "targetMs": target,
                "status": _status(windows, target),
                "windows": {
                    w: {"count": f["count"], "p95": f["p95"], "p99": f["p99"]}
                    for w, f in windows.items()
                },
            }
        )
    return {
        "combined": COMBINED,
        "answeredBy": snapshots[0]["pid"],  # the worker that took its snapshot now
        "workers": [
            {
                "pid": s["pid"],
                "uptimeS": s["uptimeS"],
                "rssBytes": s["rssBytes"],
                "inflight": s["inflight"],
                "snapshotAgeS": round(max(0.0, now - s["at"]), 3),
            }
            for s in sorted(snapshots, key=lambda s: s["pid"])
        ],
        "inflight": sum(s["inflight"] for s in snapshots),
        "routes": routes,
        "queries": queries,
    }


def firing_alerts(snapshots: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Alerts whose rule holds now, without their since-when (`budgets` adds it)."""
    alerts = []
    for route, (_, rows) in _by_route(snapshots).items():
        windows = _windows(rows)
        for rule in ALERT_RULES:
            long_stats, short_stats = windows[rule.long].stats(), windows[rule.short].stats()
            if short_stats.count < rule.min_requests:
                continue
            long_burn = long_stats.over_target / long_stats.count / ALLOWED_OVER_FRACTION
            short_burn = short_stats.over_target / short_stats.count / ALLOWED_OVER_FRACTION
            if long_burn >= rule.burn and short_burn >= rule.burn:
                alerts.append(
                    {
                        "id": f"{rule.name}|{route}",
                        "route": route,
                        "rule": rule.name,
                        "severity": rule.severity,
                        "burnRates": {
                            rule.long: round(long_burn, 3),
                            rule.short: round(short_burn, 3),
                        },
                        "threshold": rule.burn,
                    }
                )
    return alerts


def budgets(
    snapshots: list[dict[str, Any]], alerts: list[dict[str, Any]], since: dict[str, float]
) -> dict[str, Any]:
    """Each budget with its P95 and burn rate per window, and the firing alerts."""
    rows = []
    for route, (first, route_rows) in _by_route(snapshots).items():
        windows = _route_windows(route_rows, first["targetMs"])
        rows.append(
            {
                "route": route,
                "class": first["class"],
                "targetMs": first["targetMs"],
                "windows": {
                    name: {
                        "count": w["count"],
                        "p95": w["p95"],
                        "overTarget": w["breaches"],
                        "burnRate": w["burn_rate"],
                        "status": w["status"],
                    }
                    for name, w in windows.items()
                },
            }
        )
    return {
        "combined": COMBINED,
        "answeredBy": snapshots[0]["pid"],  # the worker that took its snapshot now
        "errorBudget": f"{ALLOWED_OVER_FRACTION:.0%} of requests over the P95 target; "
        "burn rate 1.0 spends it exactly as fast as it accrues",
        "rules": [rule._asdict() for rule in ALERT_RULES],
        "budgets": rows,
        "alerts": [{**alert, "since": since.get(alert["id"])} for alert in alerts],
    }


def cache_stats(snapshots: list[dict[str, Any]]) -> dict[str, Any]:
    """Per resource kind: hits, misses, stale, hit rate against its target; per tier;
    degraded state; entries; evictions."""
    kinds: dict[str, dict[str, Any]] = {
        kind: {"hits": 0, "misses": 0, "stale": 0, "tiers": {"local": 0, "redis": 0}}
        for kind in CACHE_KINDS
    }
    for snapshot in snapshots:
        for lookup in snapshot["cache"]["lookups"]:
            row = kinds.setdefault(
                lookup["kind"],
                {"hits": 0, "misses": 0, "stale": 0, "tiers": {"local": 0, "redis": 0}},
            )
            outcome = {"hit": "hits", "miss": "misses", "stale": "stale"}[lookup["outcome"]]
            row[outcome] += lookup["count"]
            if lookup["tier"] in row["tiers"]:
                row["tiers"][lookup["tier"]] += lookup["count"]
    shown = []
    for kind, row in kinds.items():
        served = row["hits"] + row["stale"] + row["misses"]
        rate = round((row["hits"] + row["stale"]) / served, 4) if served else None
        target = HIT_RATE_TARGETS.get(kind)
        shown.append(
            {
                "kind": kind,
                **row,
                "hitRate": rate,
                "target": target,
                "meetsTarget": None if rate is None or target is None else rate > target,
            }
        )
    caches = [s["cache"] for s in snapshots]
    return {
        "combined": COMBINED,
        "answeredBy": snapshots[0]["pid"],  # the worker that took its snapshot now
        "kinds": shown,
        "tiers": {
            tier: sum(row["tiers"][tier] for row in kinds.values()) for tier in ("local", "redis")
        },
        "degraded": any(c["degraded"] for c in caches),
        "degradedWorkers": [s["pid"] for s in snapshots if s["cache"]["degraded"]],
        "entries": sum(c["entries"] for c in caches),
        "evictions": sum(c["evictions"] for c in caches),
        "redisErrors": sum(c["redisErrors"] for c in caches),
        "writeGuardRefusals": sum(s["writeGuard"]["refused"] for s in snapshots),
    }


def circuit_breakers(snapshots: list[dict[str, Any]]) -> dict[str, Any]:
    """Every breaker: its worst state over workers, and each worker's state, failures,
    opened-at and next try (epoch seconds)."""
    breakers: dict[str, list[dict[str, Any]]] = {}
    for snapshot in snapshots:
        for row in snapshot["breakers"]:
            breakers.setdefault(row["name"], []).append({"pid": snapshot["pid"], **row})
    shown = []
    for name, rows in sorted(breakers.items()):
        worst = max(rows, key=lambda r: _BREAKER_ORDER.get(r["state"], 0))
        opened = [r["openedAt"] for r in rows if r["openedAt"] is not None]
        tries = [r["nextTryAt"] for r in rows if r["nextTryAt"] is not None]
        shown.append(
            {
                "name": name,
                "state": worst["state"],
                "failures": sum(r["failures"] for r in rows),
                "openedAt": min(opened) if opened else None,
                "nextTryAt": min(tries) if tries else None,
                "workers": [{k: v for k, v in r.items() if k != "name"} for r in rows],
            }
        )
    return {"combined": COMBINED, "answeredBy": snapshots[0]["pid"], "breakers": shown}


def slow_queries(snapshots: list[dict[str, Any]], threshold_ms: float) -> dict[str, Any]:
    """Recent commands over the threshold from every worker, newest first."""
    entries = [
        {"pid": snapshot["pid"], **entry}
        for snapshot in snapshots
        for entry in snapshot["slowQueries"]
    ]
    entries.sort(key=lambda e: e["at"], reverse=True)
    return {
        "combined": COMBINED,
        "answeredBy": snapshots[0]["pid"],  # the worker that took its snapshot now
        "thresholdMs": threshold_ms,
        "queries": entries[:SLOW_QUERIES_SHOWN],
    }
