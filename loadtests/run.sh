#!/usr/bin/env bash
# `make bench`: the benchmarks end to end, each step bounded in time.
#
#   (a) loadtests/server_choice.sh      granian vs uvicorn, 1/2 workers: live, hit, 304, uncached
#   (b) loadtests/bench_validation.py   msgspec vs pydantic v2
#   (c) loadtests/domain_vs_driver.sh   seeds `medium` (if needed), API vs bare driver, no cache
#   (d) loadtests/middleware.sh         cache hits and 304s vs /health/live; br vs gzip
#   (e) loadtests/instrumentation.sh    cached GETs with the SRE instrumentation on vs off
#   (f) loadtests/rate_limit.sh         cached GETs with the rate limiter on vs off
#   (g) loadtests/locust.sh             the mixed locust run held to the budget table
#   (h) loadtests/stepload.sh           the highest rate that holds every budget, 1 and 2 workers
#   (i) loadtests/hot_path.sh           hits, 304s, live, the browser-encoded page beside the
#                                       hello (uvicorn and granian, 1 and 2 workers; the page
#                                       over HOT_LONG_SECONDS, 90, as its TTL expires); the
#                                       uncached item beside the bare driver
#   (j) loadtests/export_bench.py       the NDJSON export beside a bare driver's cursor; RSS
# then loadtests/report.py: one report, $RESULTS/report/report.md with its PNGs.
#
# Env: BENCH_DB (bench_enterprise), BENCH_KEEP_DB=1 keeps it for the next run (saves the
# ~30 s seed), ROUNDS (3), SERVER (granian), RESULTS (loadtests/results/tmp), STEPS
# ("a b c d e f g h i j"), BENCH_QUICK=1: a subset in about 6 minutes (steps a g h, one short round,
# short locust steps: for trying the pipeline, not for figures), BENCH_WRITE_FACTOR (0.25: the
# locust steps' write share, see below), BENCH_PUBLISH=DIR copies the
# report's PNGs there (docs/img),
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
if [[ "${BENCH_QUICK:-0}" == 1 ]]; then
  STEPS="${STEPS:-a g h}"
  export ROUNDS="${ROUNDS:-1}" DURATION="${DURATION:-3}" LOCUST_DURATION="${LOCUST_DURATION:-40s}"
  export LOCUST_STEP_SECONDS="${LOCUST_STEP_SECONDS:-10}" LOCUST_STEP_MAX="${LOCUST_STEP_MAX:-4}"
fi
STEPS="${STEPS:-a b c d e f g h i j}"
# The locust steps run the mix with a quarter of its writes (1 % of tasks): at the locustfile's
# 4 % every write invalidates a document's cached reads so often that the crud hit rate stayed
# under its 0.8 target in every run (0.70-0.77 at 10-33 req/s, docs/benchmarks.md), and the
# step load would stop at its first judged step whatever the rate.
BENCH_WRITE_FACTOR="${BENCH_WRITE_FACTOR:-0.25}"
started="$(date +%s)"
failed=()
rm -f "$RESULTS/failed.txt"
printf '| step | seconds |\n|---|---|\n' >"$RESULTS/timings.md"
machine_info | tee "$RESULTS/machine.txt" >&2

# A step that fails (or, for the load steps, misses a budget) does not stop the others: the
# report is still written, names it, and run.sh exits 1 at the end.
step() { # step NAME SECONDS COMMAND...
  local name="$1" limit="$2" began
  shift 2
  log "== $name (at most ${limit}s) at $(code_version)"
  code_version >"$RESULTS/$name.code"
  began="$(date +%s)"
  timeout "$limit" "$@" | tee "$RESULTS/$name.md" || {
    failed+=("$name")
    log "$name failed, timed out or missed a budget (see $RESULTS)"
  }
  echo "| $name | $(($(date +%s) - began)) |" >>"$RESULTS/timings.md"
}

for s in $STEPS; do
  case "$s" in
    a) step server_choice 900 bash "$ROOT/loadtests/server_choice.sh" ;;
    b) step validation 300 "$PY" "$ROOT/loadtests/bench_validation.py" ;;
    c) step domain_vs_driver 1500 bash "$ROOT/loadtests/domain_vs_driver.sh" ;;
    d) step middleware 600 bash "$ROOT/loadtests/middleware.sh" ;;
    e) step instrumentation 600 bash "$ROOT/loadtests/instrumentation.sh" ;;
    f) step rate_limit 600 bash "$ROOT/loadtests/rate_limit.sh" ;;
    g) DURATION="${LOCUST_DURATION:-60s}" WRITE_FACTOR="$BENCH_WRITE_FACTOR" \
      step locust 300 bash "$ROOT/loadtests/locust.sh" ;;
    h) WRITE_FACTOR="$BENCH_WRITE_FACTOR" step stepload 900 bash "$ROOT/loadtests/stepload.sh" ;;
    i) HOT_LONG_SECONDS="${HOT_LONG_SECONDS:-90}" step hot_path 2100 bash "$ROOT/loadtests/hot_path.sh" ;;
    j) MONGODB_DATABASE="$BENCH_DB" step export 1200 "$PY" "$ROOT/loadtests/export_bench.py" ;;
    *) die "unknown step $s (a b c d e f g h i j)" ;;
  esac
done

if [[ "${BENCH_KEEP_DB:-0}" != 1 && "${BENCH_PRIVATE_STACK:-0}" != 1 ]]; then
  MONGODB_DATABASE="$BENCH_DB" "$PY" -c 'import os; from pymongo import MongoClient; MongoClient(os.environ["MONGODB_URI"]).drop_database(os.environ["MONGODB_DATABASE"])'
  log "dropped $BENCH_DB (BENCH_KEEP_DB=1 keeps it)"
fi
"$PY" "$ROOT/loadtests/report.py" all "$RESULTS" ${BENCH_PUBLISH:+--publish "$BENCH_PUBLISH"}
log "done in $(($(date +%s) - started)) s; report: $RESULTS/report/report.md"
echo "| all | $(($(date +%s) - started)) |" >>"$RESULTS/timings.md"
if ((${#failed[@]})); then
  echo "${failed[*]}" >"$RESULTS/failed.txt"
  log "failed or missed a budget: ${failed[*]} (see the report)"
  exit 1
fi
