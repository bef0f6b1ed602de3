#!/usr/bin/env bash
# Background refreshes at once per worker (CACHE_REFRESH_CONCURRENCY) against the P99 of
# cached pages while their entries come due.
#
#   BENCH_DB=bench_export bash loadtests/refresh_concurrency.sh
#
# One granian worker per setting (CONCS, "4 2 1"), each with its own Redis database and a
# short list TTL (CACHE_TTL_LIST, 5 s: refreshes six times as often as the shipped 30 s, so
# a 15 s run sees each of the 200 organization pages refreshed about three times). Each
# round loads every server in turn (order reversed every other round) with the browser-
# encoded clinics pages, as hot_path.sh does; then each server's cache counters (stale
# answers: served while their refresh was still to come; misses: a client waited).
# Knobs: CONCS, ROUNDS (4), DURATION (15 s), CONNECTIONS (16), BENCH_PORT (18800).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
require wrk curl setsid

CONCS="${CONCS:-4 2 1}"
ROUNDS="${ROUNDS:-4}"
DURATION="${DURATION:-15}"
CONNECTIONS="${CONNECTIONS:-16}"
export MONGODB_DATABASE="${BENCH_DB:-bench_enterprise}" CACHE_TTL_LIST="${CACHE_TTL_LIST:-5}"
OUT="$RESULTS/refresh_concurrency.jsonl"
: >"$OUT"

seed_if_empty
KEY="$("$PY" -m enterprise keys create --name bench-refresh --role platform_admin 2>/dev/null)"
[[ "$KEY" == ent_* ]] || die "could not create an API key (is $MONGODB_DATABASE seeded?)"
"$PY" "$ROOT/loadtests/targets.py" ids --out "$RESULTS" >/dev/null
AUTH=(-H "Authorization: Bearer $KEY")
BROWSER=(-H "Accept-Encoding: gzip, deflate, br")
PAGES="$RESULTS/org_clinics_paths.txt"

declare -A BASES PIDS
db=10
for c in $CONCS; do
  port="$(free_port $((${BENCH_PORT:-18800} + c)))"
  BASES[$c]="http://127.0.0.1:$port"
  redis_url="${REDIS_URL%/*}/$db"
  db=$((db + 1))
  REDIS_URL="$redis_url" "$PY" -m enterprise cache retire >/dev/null 2>&1
  REDIS_URL="$redis_url" CACHE_REFRESH_CONCURRENCY="$c" CACHE_ENABLED=true \
    start_and_wait "$RESULTS/server-refresh-$c.log" "${BASES[$c]}/health/ready" \
    "$PY" -m enterprise serve --port "$port" --workers 1 --server granian ||
    die "the API (refresh concurrency $c) did not start; see $RESULTS/server-refresh-$c.log"
  PIDS[$c]="$SERVER_PID"
  WRK_PATHS="$PAGES" wrk_warm "$CONNECTIONS" 2 "${BASES[$c]}" "${AUTH[@]}" "${BROWSER[@]}"
done

read -r -a forward <<<"$CONCS"
backward=()
for ((i = ${#forward[@]} - 1; i >= 0; i--)); do backward+=("${forward[i]}"); done
ratios=()
for ((round = 1; round <= ROUNDS; round++)); do
  export BENCH_ROUND="$round"
  order=("${forward[@]}")
  ((round % 2 == 1)) || order=("${backward[@]}")
  for c in "${order[@]}"; do
    WRK_PATHS="$PAGES" wrk_run "refresh-c$c" "$OUT" "$CONNECTIONS" "$DURATION" "${BASES[$c]}" \
      "${AUTH[@]}" "${BROWSER[@]}"
  done
done
for c in "${forward[@]}"; do
  curl -s "${AUTH[@]}" "${BASES[$c]}/health/ready" | "$PY" -c '
import json, sys
cache = json.load(sys.stdin)["cache"]
print(f"[refresh-c'"$c"'] answers {cache["localHits"]:,}: stale {cache["stale"]:,}, "
      f"misses {cache["misses"]:,}, stores {cache["stores"]:,}")' >&2
  stop_server "${PIDS[$c]}"
  ratios+=(--ratio "c$c÷c${forward[0]}=refresh-c$c/refresh-c${forward[0]}:p99_ms")
done
"$PY" "$ROOT/loadtests/summarize.py" "$OUT" "${ratios[@]}"
