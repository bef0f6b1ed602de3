#!/usr/bin/env bash
# (f) What the rate limiter costs on cached GETs (goal: on ÷ off >= 0.95 req/s).
#
#   bash loadtests/rate_limit.sh   # after domain_vs_driver.sh seeded $BENCH_DB
#
# Two servers of the same command and worker count: `off` (RATE_LIMIT_ENABLED=false) and `on`
# (as shipped: every request decided by the limiter, from the worker's credit reserved in
# Redis a block at a time, with a quota no run reaches, so every answer is a 200 that paid
# for its decision). Both are warmed so every measured GET is
# a cache hit; then each round measures both, and only ratios within a round are compared.
#
# RATE_LIMIT_PAIRED=1 (the default on 2+ cores) loads both servers at the same time, each
# pinned to the same core (wrk on the other): whatever slows the machine during a round
# slows both alike, and the core's time is split between two always-busy servers, so their
# req/s ratio is the inverse of their CPU per request. RATE_LIMIT_PAIRED=0 measures them back
# to back (order alternating, one server under load at a time), as middleware.sh does.
#
# RATE_LIMIT_CONTROL=1 runs the same rounds with the limiter off in both servers (an A/A
# run): its "on÷off" is what this machine's noise and the servers' placement alone give.
set -euo pipefail
# Paired by default where it can be (2+ cores, taskset): its rounds are the ones that can
# tell 5 % apart on a noisy machine (docs/benchmarks.md).
if (($(nproc) >= 2)) && command -v taskset >/dev/null 2>&1; then
  PAIRED="${RATE_LIMIT_PAIRED:-1}"
else
  PAIRED="${RATE_LIMIT_PAIRED:-0}"
fi
[[ "$PAIRED" == 1 ]] && export BENCH_PIN=1
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
require wrk curl setsid

ROUNDS="${RATE_LIMIT_ROUNDS:-${ROUNDS:-20}}"
DURATION="${RATE_LIMIT_DURATION:-2}"
CONNECTIONS="${CONNECTIONS:-16}"
WORKERS="${WORKERS:-1}"
SERVER="${SERVER:-granian}"
export MONGODB_DATABASE="${BENCH_DB:-bench_enterprise}"
export RATE_LIMITS="*:*:*=60000000/60"
OUT="$RESULTS/rate_limit.jsonl"
: >"$OUT"

KEY="$("$PY" -m enterprise keys create --name bench-rate-limit --role platform_admin 2>/dev/null)"
[[ "$KEY" == ent_* ]] || die "could not create an API key (is $MONGODB_DATABASE seeded?)"
"$PY" "$ROOT/loadtests/targets.py" ids --out "$RESULTS"
AUTH=(-H "Authorization: Bearer $KEY")

MODES=(off on)
CONTROL="${RATE_LIMIT_CONTROL:-0}"

# Each server has a Redis database of its own, so each computes (and stores) its own cache
# entries while it warms: sharing one, the server warmed second read the first one's entries
# and was measured faster in A/A runs (1.01-1.04).
declare -A BASES PIDS ENABLED=([off]=false [on]=true) REDIS_DBS=([off]=14 [on]=15)
[[ "$CONTROL" == 1 ]] && ENABLED[on]=false
for mode in "${MODES[@]}"; do
  port="$(free_port "${BENCH_PORT:-18500}")"
  BASES[$mode]="http://127.0.0.1:$port"
  REDIS_URL="${REDIS_URL%/*}/${REDIS_DBS[$mode]}" \
    "$PY" -m enterprise cache retire 2>&1 | sed "s/^/[cache $mode] /" >&2
  REDIS_URL="${REDIS_URL%/*}/${REDIS_DBS[$mode]}" \
    RATE_LIMIT_ENABLED="${ENABLED[$mode]}" CACHE_ENABLED=true \
    start_and_wait "$RESULTS/server-rate-limit-$mode.log" "${BASES[$mode]}/health/ready" \
    "$PY" -m enterprise serve --port "$port" --workers "$WORKERS" --server "$SERVER" ||
    die "the API (rate limit $mode) did not start; see $RESULTS/server-rate-limit-$mode.log"
  PIDS[$mode]="$SERVER_PID"
done

path="$(head -1 "$RESULTS/clinic_paths.txt")"
for mode in "${MODES[@]}"; do
  WRK_PATHS="$RESULTS/clinic_paths.txt" wrk_warm "$CONNECTIONS" 3 "${BASES[$mode]}" "${AUTH[@]}"
  head="$(curl -s -D - -o /dev/null "${AUTH[@]}" "${BASES[$mode]}$path" | tr -d '\r')"
  grep -qi '^x-cache: hit' <<<"$head" || die "GET $path (rate limit $mode) is not a cache hit"
  limited="$(grep -ci '^ratelimit:' <<<"$head" || true)"
  [[ "${ENABLED[$mode]}" == true && "$limited" == 1 || "${ENABLED[$mode]}" == false && "$limited" == 0 ]] ||
    die "rate limit $mode: $limited RateLimit fields on GET $path"
done

measure() { # measure off|on
  CPU_PGID="${PIDS[$1]}" WRK_PATHS="$RESULTS/clinic_paths.txt" \
    wrk_run "item-ratelimit-$1" "$OUT" "$CONNECTIONS" "$DURATION" "${BASES[$1]}" "${AUTH[@]}"
}
for ((round = 1; round <= ROUNDS; round++)); do
  export BENCH_ROUND="$round"
  modes=(off on)
  ((round % 2 == 1)) || modes=(on off)
  if [[ "$PAIRED" == 1 ]]; then
    measure "${modes[0]}" &
    measure "${modes[1]}"
    wait $! || die "wrk (${modes[0]}) failed in round $round"
  else
    for mode in "${modes[@]}"; do measure "$mode"; done
  fi
done
for mode in "${MODES[@]}"; do stop_server "${PIDS[$mode]}"; done

echo
"$PY" "$ROOT/loadtests/summarize.py" "$OUT" \
  --ratio "on÷off=item-ratelimit-on/item-ratelimit-off:rps" \
  --ratio "off÷on P95=item-ratelimit-off/item-ratelimit-on:p95_ms" \
  --ratio "CPU per request on÷off=item-ratelimit-on/item-ratelimit-off:cpu_ms_per_req"
