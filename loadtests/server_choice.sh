#!/usr/bin/env bash
# (a) Server choice: granian vs uvicorn (uvloop + httptools) on what the service answers,
# at WORKER_COUNTS (1 2): `/health/live`, a cached clinic (a hit, answered before Falcon),
# its 304 revalidation, and the same clinic with the cache off (the database path).
#
#   bash loadtests/server_choice.sh            # 5 rounds, 3 s per run, wrk -t1 -c16
#   ROUNDS=3 WORKER_COUNTS=2 bash loadtests/server_choice.sh
#
# Per worker count, four servers run at once (granian and uvicorn, cache on and cache off),
# each warmed; then in every round each kind is measured on both servers back to back, the
# server order alternating per round, so drift on this shared machine hits both alike. The
# figures that decide are the granian ÷ uvicorn ratios of each round's pair, and their median.
# Output: $RESULTS/server_choice.jsonl and a Markdown summary.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
require wrk curl setsid

ROUNDS="${ROUNDS:-5}"
DURATION="${DURATION:-3}"
CONNECTIONS="${CONNECTIONS:-16}"
WORKER_COUNTS="${WORKER_COUNTS:-1 2}"
OUT="$RESULTS/server_choice.jsonl"
export MONGODB_DATABASE="${BENCH_DB:-bench_enterprise}"
: >"$OUT"

"$PY" -c 'import granian, uvicorn, uvloop, httptools' 2>/dev/null ||
  die "granian/uvicorn/uvloop/httptools missing: .venv/bin/pip install -e '.[bench]'"
seed_if_empty
KEY="$("$PY" -m enterprise keys create --name bench-server-choice --role platform_admin 2>/dev/null)"
[[ "$KEY" == ent_* ]] || die "could not create an API key (is $MONGODB_DATABASE seeded?)"
"$PY" "$ROOT/loadtests/targets.py" ids --out "$RESULTS" --clinics 500 >/dev/null
AUTH=(-H "Authorization: Bearer $KEY")
SERVERS=(granian uvicorn)

declare -A BASE PIDS
measure() { # measure SERVER WORKERS KIND
  local label="$1-w$2-$3" cached="${BASE[$1 on]}"
  case "$3" in
    live) wrk_run "$label" "$OUT" "$CONNECTIONS" "$DURATION" "$cached/health/live" ;;
    item) WRK_PATHS="$RESULTS/clinic_paths.txt" \
      wrk_run "$label" "$OUT" "$CONNECTIONS" "$DURATION" "$cached" "${AUTH[@]}" ;;
    item-304) WRK_PATHS="$RESULTS/etags-$1.txt" \
      wrk_run "$label" "$OUT" "$CONNECTIONS" "$DURATION" "$cached" "${AUTH[@]}" ;;
    uncached) WRK_PATHS="$RESULTS/clinic_paths.txt" \
      wrk_run "$label" "$OUT" "$CONNECTIONS" "$DURATION" "${BASE[$1 off]}" "${AUTH[@]}" ;;
  esac
}

ratios=()
port="${BENCH_PORT:-18100}"
for workers in $WORKER_COUNTS; do
  for server in "${SERVERS[@]}"; do
    for cache in on off; do
      port="$(free_port $((port + 1)))"
      BASE[$server $cache]="http://127.0.0.1:$port"
      CACHE_ENABLED="$([[ $cache == on ]] && echo true || echo false)" start_and_wait \
        "$RESULTS/server-choice-$server-$cache.log" "${BASE[$server $cache]}/health/ready" \
        "$PY" -m enterprise serve --port "$port" --workers "$workers" --server "$server" ||
        die "$server (cache $cache) did not start; see $RESULTS/server-choice-$server-$cache.log"
      PIDS[$server $cache]="$SERVER_PID"
      WRK_PATHS="$RESULTS/clinic_paths.txt" wrk_warm "$CONNECTIONS" 2 "${BASE[$server $cache]}" "${AUTH[@]}"
    done
    "$PY" "$ROOT/loadtests/targets.py" etags --base "${BASE[$server on]}" --key "$KEY" \
      "$RESULTS/clinic_paths.txt" "$RESULTS/etags-$server.txt"
  done
  for ((round = 1; round <= ROUNDS; round++)); do
    export BENCH_ROUND="$round"
    order=(granian uvicorn)
    ((round % 2 == 1)) || order=(uvicorn granian)
    for kind in live item item-304 uncached; do
      for server in "${order[@]}"; do measure "$server" "$workers" "$kind"; done
    done
  done
  for key in "${!PIDS[@]}"; do stop_server "${PIDS[$key]}"; done
  PIDS=()
  for kind in live item item-304 uncached; do
    for metric in rps p99_ms; do
      ratios+=(--ratio "w$workers $kind granian÷uvicorn=granian-w$workers-$kind/uvicorn-w$workers-$kind:$metric")
    done
  done
done
"$PY" "$ROOT/loadtests/summarize.py" "$OUT" "${ratios[@]}"
