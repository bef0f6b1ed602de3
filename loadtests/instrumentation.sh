#!/usr/bin/env bash
# (e) What the SRE instrumentation costs on cached GETs (goal: metrics ÷ off >= 0.95 req/s).
#
#   bash loadtests/instrumentation.sh   # after domain_vs_driver.sh seeded $BENCH_DB
#
# Three servers of the same command and worker count: `off` (METRICS_ENABLED=false,
# ACCESS_LOG=false), `metrics` (Prometheus instruments, in-flight count, cross-worker
# snapshots; no access log) and `all` (as shipped: metrics and the access log). All are warmed
# so every measured GET is a cache hit; then rounds measure them back to back (order
# alternating), and only ratios within a round are compared, as in middleware.sh. Only one
# server is under load at a time.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
require wrk curl setsid

ROUNDS="${INSTRUMENTATION_ROUNDS:-${ROUNDS:-20}}"
DURATION="${INSTRUMENTATION_DURATION:-2}"
CONNECTIONS="${CONNECTIONS:-16}"
WORKERS="${WORKERS:-1}"
SERVER="${SERVER:-granian}"
export MONGODB_DATABASE="${BENCH_DB:-bench_enterprise}"
OUT="$RESULTS/instrumentation.jsonl"
: >"$OUT"

KEY="$("$PY" -m enterprise keys create --name bench-instrumentation --role platform_admin 2>/dev/null)"
[[ "$KEY" == ent_* ]] || die "could not create an API key (is $MONGODB_DATABASE seeded?)"
"$PY" "$ROOT/loadtests/targets.py" ids --out "$RESULTS"
AUTH=(-H "Authorization: Bearer $KEY")

MODES=(off metrics all)
declare -A BASES PIDS METRICS=([off]=false [metrics]=true [all]=true) ACCESS=([off]=false [metrics]=false [all]=true)
for mode in "${MODES[@]}"; do
  port="$(free_port "${BENCH_PORT:-18400}")"
  BASES[$mode]="http://127.0.0.1:$port"
  METRICS_ENABLED="${METRICS[$mode]}" ACCESS_LOG="${ACCESS[$mode]}" CACHE_ENABLED=true \
    start_and_wait "$RESULTS/server-metrics-$mode.log" "${BASES[$mode]}/health/ready" \
    "$PY" -m enterprise serve --port "$port" --workers "$WORKERS" --server "$SERVER" ||
    die "the API (metrics $mode) did not start; see $RESULTS/server-metrics-$mode.log"
  PIDS[$mode]="$SERVER_PID"
done
# Instrumented for real: /metrics answers on one, not on the other.
[[ "$(curl -s -o /dev/null -w '%{http_code}' "${AUTH[@]}" "${BASES[all]}/metrics")" == 200 ]] ||
  die "/metrics does not answer on the instrumented server"
[[ "$(curl -s -o /dev/null -w '%{http_code}' "${AUTH[@]}" "${BASES[off]}/metrics")" == 404 ]] ||
  die "/metrics answers on the server with METRICS_ENABLED=false"

"$PY" -m enterprise cache retire 2>&1 | sed 's/^/[cache] /' >&2
for mode in "${MODES[@]}"; do
  WRK_PATHS="$RESULTS/clinic_paths.txt" wrk_warm "$CONNECTIONS" 3 "${BASES[$mode]}" "${AUTH[@]}"
  path="$(head -1 "$RESULTS/clinic_paths.txt")"
  hit="$(curl -s -D - -o /dev/null "${AUTH[@]}" "${BASES[$mode]}$path" | tr -d '\r' | grep -i '^x-cache:' || true)"
  [[ "${hit,,}" == "x-cache: hit" ]] || die "GET $path (metrics $mode) is not a cache hit ($hit)"
done

measure() { # measure off|metrics|all
  CPU_PGID="${PIDS[$1]}" WRK_PATHS="$RESULTS/clinic_paths.txt" \
    wrk_run "item-metrics-$1" "$OUT" "$CONNECTIONS" "$DURATION" "${BASES[$1]}" "${AUTH[@]}"
}
for ((round = 1; round <= ROUNDS; round++)); do
  export BENCH_ROUND="$round"
  modes=(off metrics all)
  ((round % 2 == 1)) || modes=(all metrics off)
  for mode in "${modes[@]}"; do measure "$mode"; done
done
for mode in "${MODES[@]}"; do stop_server "${PIDS[$mode]}"; done

echo
"$PY" "$ROOT/loadtests/summarize.py" "$OUT" \
  --ratio "metrics÷off=item-metrics-metrics/item-metrics-off:rps" \
  --ratio "metrics+access log÷off=item-metrics-all/item-metrics-off:rps" \
  --ratio "off÷metrics P95=item-metrics-off/item-metrics-metrics:p95_ms" \
  --ratio "CPU per request metrics÷off=item-metrics-metrics/item-metrics-off:cpu_ms_per_req" \
  --ratio "CPU per request all÷off=item-metrics-all/item-metrics-off:cpu_ms_per_req"
