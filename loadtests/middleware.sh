#!/usr/bin/env bash
# (d) Middleware figures, cache ENABLED, 1 worker, same server as (c):
#   * cached GET item ÷ /health/live: req/s and P95 (goal >= 0.6)
#   * 304 revalidation (If-None-Match with the item's ETag) ÷ /health/live (goal >= 0.8)
#   * brotli q4 vs gzip 6 on a real ~50 KB list body (loadtests/bench_compression.py)
#
#   bash loadtests/middleware.sh     # after domain_vs_driver.sh seeded $BENCH_DB
#
# Items rotate over the 500 clinic ids of (c). One unrecorded pass warms the response cache
# (TTL 300 s, in-process LRU 5000 entries), so measured GETs are hits (X-Cache: hit, checked).
# Each round measures live, item and 304 back to back; ratios are taken within a round. The
# order alternates (live first in odd rounds, last in even ones), so a drift of the machine's
# speed within a round favours neither side of a ratio.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
require wrk curl setsid

# Many short rounds: this shared machine's speed drifts by tens of percent within seconds, and
# only ratios measured back to back inside a round are compared.
ROUNDS="${MIDDLEWARE_ROUNDS:-${ROUNDS:-20}}"
DURATION="${MIDDLEWARE_DURATION:-2}"
CONNECTIONS="${CONNECTIONS:-16}"
SERVER="${SERVER:-granian}"
export MONGODB_DATABASE="${BENCH_DB:-bench_enterprise}"
OUT="$RESULTS/middleware.jsonl"
: >"$OUT"

KEY="$("$PY" -m enterprise keys create --name bench-middleware --role platform_admin 2>/dev/null)"
[[ "$KEY" == ent_* ]] || die "could not create an API key (is $MONGODB_DATABASE seeded?)"
"$PY" "$ROOT/loadtests/targets.py" ids --out "$RESULTS" # ids of this database, never stale ones

PORT="$(free_port "${BENCH_PORT:-18300}")"
BASE="http://127.0.0.1:$PORT"
CACHE_ENABLED=true start_and_wait "$RESULTS/server-middleware.log" "$BASE/health/ready" \
  "$PY" -m enterprise serve --port "$PORT" --workers 1 --server "$SERVER" ||
  die "the API did not start; see $RESULTS/server-middleware.log"
AUTH=(-H "Authorization: Bearer $KEY")

# Entries left by a run minutes ago would expire in the middle of this one (TTL 300 s), and
# those rounds would measure MongoDB: retire them, so every entry is stored now.
"$PY" -m enterprise cache retire 2>&1 | sed 's/^/[cache] /' >&2
# Warm the cache with every item once (plus a short wrk pass), then collect their ETags.
"$PY" "$ROOT/loadtests/targets.py" etags --base "$BASE" --key "$KEY" \
  "$RESULTS/clinic_paths.txt" "$RESULTS/clinic_etags.txt"
WRK_PATHS="$RESULTS/clinic_paths.txt" wrk_warm "$CONNECTIONS" 2 "$BASE" "${AUTH[@]}"
first="$(head -1 "$RESULTS/clinic_etags.txt")"
path="${first%%$'\t'*}" etag="${first#*$'\t'}"
hit="$(curl -s -D - -o /dev/null "${AUTH[@]}" "$BASE$path" | tr -d '\r' | grep -i '^x-cache:' || true)"
[[ "${hit,,}" == "x-cache: hit" ]] || die "GET $path is not a cache hit after warm-up ($hit)"
status="$(curl -s -o /dev/null -w '%{http_code}' "${AUTH[@]}" -H "If-None-Match: $etag" "$BASE$path")"
[[ "$status" == 304 ]] || die "If-None-Match $etag on $path answered $status, not 304"
log "checked: $path is a cache hit; If-None-Match answers 304"

cache_misses() {
  curl -s "${AUTH[@]}" "$BASE/health/ready" | "$PY" -c 'import json, sys; print(json.load(sys.stdin)["cache"]["misses"])'
}
misses_before="$(cache_misses)"
export CPU_PGID="$SERVER_PID"
measure() { # measure KIND: one measured run of KIND in the current round
  case "$1" in
    live) wrk_run live "$OUT" "$CONNECTIONS" "$DURATION" "$BASE/health/live" ;;
    item-cached) WRK_PATHS="$RESULTS/clinic_paths.txt" \
      wrk_run item-cached "$OUT" "$CONNECTIONS" "$DURATION" "$BASE" "${AUTH[@]}" ;;
    item-304) WRK_PATHS="$RESULTS/clinic_etags.txt" \
      wrk_run item-304 "$OUT" "$CONNECTIONS" "$DURATION" "$BASE" "${AUTH[@]}" ;;
  esac
}

for ((round = 1; round <= ROUNDS; round++)); do
  export BENCH_ROUND="$round"
  wrk_warm "$CONNECTIONS" 1 "$BASE/health/live"
  kinds=(live item-cached item-304)
  ((round % 2 == 1)) || kinds=(item-304 item-cached live)
  for kind in "${kinds[@]}"; do measure "$kind"; done
done

unset CPU_PGID
missed=$(($(cache_misses) - misses_before))
((missed == 0)) || die "$missed cache misses during the measured rounds: those rounds measured MongoDB"
"$PY" "$ROOT/loadtests/bench_compression.py" --base "$BASE" --key "$KEY" \
  --save "$RESULTS/clinics-limit-100.json" | tee "$RESULTS/compression.txt"
stop_server "$SERVER_PID"

echo
"$PY" "$ROOT/loadtests/summarize.py" "$OUT" \
  --ratio "cached item÷live=item-cached/live:rps" \
  --ratio "live÷cached item=live/item-cached:p95_ms" \
  --ratio "304÷live=item-304/live:rps" \
  --ratio "live÷304=live/item-304:p95_ms"
