#!/usr/bin/env bash
# `make bench`: the benchmarks end to end, each step bounded in time.
#
#   (a) loadtests/server_choice.sh      granian vs uvicorn, 1/2 workers, app vs bare Falcon
#   (b) loadtests/bench_validation.py   msgspec vs pydantic v2
#   (c) loadtests/domain_vs_driver.sh   seeds `medium` (if needed), API vs bare driver, no cache
#   (d) loadtests/middleware.sh         cache hits and 304s vs /health/live; br vs gzip
#   (e) loadtests/instrumentation.sh    cached GETs with the SRE instrumentation on vs off
#   (f) loadtests/rate_limit.sh         cached GETs with the rate limiter on vs off
#
# Env: BENCH_DB (bench_enterprise), BENCH_KEEP_DB=1 keeps it for the next run (saves the
# ~30 s seed), ROUNDS (3), SERVER (uvicorn), RESULTS (loadtests/results/tmp), STEPS ("a b c d e f"),
# BENCH_PRIVATE_STACK=1: run against a FerretDB + Redis of its own (free ports, started and
# stopped here) instead of the shared ones, when other people's load queues ahead of ours.
# Every server started is stopped by PID (process group) on exit, also on failure/timeout.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
require wrk curl setsid

export BENCH_DB="${BENCH_DB:-bench_enterprise}"
if [[ "${BENCH_PRIVATE_STACK:-0}" == 1 ]]; then
  trap 'stop_all; private_stack_down' EXIT
  private_stack_up
fi
STEPS="${STEPS:-a b c d e f}"
started="$(date +%s)"
machine_info | tee "$RESULTS/machine.txt" >&2

step() { # step NAME SECONDS COMMAND...
  local name="$1" limit="$2"
  shift 2
  log "== $name (at most ${limit}s) at $(code_version)"
  code_version >"$RESULTS/$name.code"
  timeout "$limit" "$@" | tee "$RESULTS/$name.md" || die "$name failed or timed out (see $RESULTS)"
}

for s in $STEPS; do
  case "$s" in
    a) step server_choice 900 bash "$ROOT/loadtests/server_choice.sh" ;;
    b) step validation 300 "$PY" "$ROOT/loadtests/bench_validation.py" ;;
    c) step domain_vs_driver 1500 bash "$ROOT/loadtests/domain_vs_driver.sh" ;;
    d) step middleware 600 bash "$ROOT/loadtests/middleware.sh" ;;
    e) step instrumentation 600 bash "$ROOT/loadtests/instrumentation.sh" ;;
    f) step rate_limit 600 bash "$ROOT/loadtests/rate_limit.sh" ;;
    *) die "unknown step $s (a b c d e f)" ;;
  esac
done

if [[ "${BENCH_KEEP_DB:-0}" != 1 && "${BENCH_PRIVATE_STACK:-0}" != 1 ]]; then
  MONGODB_DATABASE="$BENCH_DB" "$PY" -c 'import os; from pymongo import MongoClient; MongoClient(os.environ["MONGODB_URI"]).drop_database(os.environ["MONGODB_DATABASE"])'
  log "dropped $BENCH_DB (BENCH_KEEP_DB=1 keeps it)"
fi
log "done in $(($(date +%s) - started)) s; results in $RESULTS"
