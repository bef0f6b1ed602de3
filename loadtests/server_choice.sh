#!/usr/bin/env bash
# (a) Server choice: granian vs uvicorn (uvloop + httptools), 1 and 2 workers, serving
# `/health/live` of the real app and of a bare Falcon hello world (loadtests/hello.py).
#
#   bash loadtests/server_choice.sh            # 3 rounds, 6 s per run, wrk -t1 -c32
#   ROUNDS=1 DURATION=3 bash loadtests/server_choice.sh
#
# Rounds are interleaved (every configuration once per round, servers restarted each time)
# so that drift on a shared machine hits all configurations alike. Each measured run follows
# an unrecorded 2 s warm-up. Latency percentiles (P50/P95/P99) come from wrk's histogram via
# loadtests/wrk/bench.lua. Output: $RESULTS/server_choice.jsonl and a Markdown summary.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
require wrk curl setsid

ROUNDS="${ROUNDS:-3}"
DURATION="${DURATION:-6}"
CONNECTIONS="${CONNECTIONS:-32}"
OUT="$RESULTS/server_choice.jsonl"
# The app reads the server's capabilities at startup, so it needs FerretDB; it does no I/O
# on /health/live.
export MONGODB_DATABASE="${BENCH_DB:-bench_enterprise}"
: >"$OUT"

"$PY" -c 'import uvicorn, uvloop, httptools' 2>/dev/null ||
  die "uvicorn/uvloop/httptools missing: .venv/bin/pip install -e '.[bench]'"

PORT="$(free_port "${BENCH_PORT:-18100}")"
URL="http://127.0.0.1:$PORT/health/live"

for ((round = 1; round <= ROUNDS; round++)); do
  export BENCH_ROUND="$round"
  for server in granian uvicorn; do
    for workers in 1 2; do
      for target in app hello; do
        label="$server-w$workers-$target"
        if [[ "$target" == app ]]; then
          cmd=("$PY" -m enterprise serve)
        else
          cmd=("$PY" "$ROOT/loadtests/hello.py")
        fi
        start_and_wait "$RESULTS/server-$label.log" "$URL" \
          "${cmd[@]}" --port "$PORT" --workers "$workers" --server "$server" ||
          die "$label did not start; see $RESULTS/server-$label.log"
        wrk_warm "$CONNECTIONS" 2 "$URL"
        wrk_run "$label" "$OUT" "$CONNECTIONS" "$DURATION" "$URL"
        stop_server "$SERVER_PID"
      done
    done
  done
done

ratios=()
for server in granian uvicorn; do
  for workers in 1 2; do
    for metric in rps p95_ms; do
      ratios+=(--ratio "$server w$workers app÷hello=$server-w$workers-app/$server-w$workers-hello:$metric")
    done
  done
done
for target in app hello; do
  for workers in 1 2; do
    for metric in rps p95_ms; do
      ratios+=(--ratio "$target w$workers granian÷uvicorn=granian-w$workers-$target/uvicorn-w$workers-$target:$metric")
    done
  done
done
"$PY" "$ROOT/loadtests/summarize.py" "$OUT" "${ratios[@]}"
