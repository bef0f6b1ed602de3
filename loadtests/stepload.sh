#!/usr/bin/env bash
# The highest rate at which every budget still holds, for 1 and 2 API workers: locust in
# step-load mode (loadtests/locustfile.py, LOCUST_STEP_USERS) through loadtests/locust.sh.
# Each user aims at LOCUST_USER_RATE tasks/s; every LOCUST_STEP_SECONDS the users grow by
# LOCUST_STEP_USERS, and the run stops after the first step that misses a budget (P95 per
# route class, error rate, cache hit rate), or after LOCUST_STEP_MAX steps. Loopback only.
#
#   bash loadtests/stepload.sh                       # workers 1 then 2
#   STEP_WORKERS=1 LOCUST_STEP_SECONDS=10 bash loadtests/stepload.sh
#
# Env: STEP_WORKERS ("1 2"), LOCUST_STEP_USERS (15), LOCUST_STEP_SECONDS (12), LOCUST_STEP_MAX
# (20), LOCUST_USER_RATE (2), LOCUST_STEP_SETTLE (4), LOCUST_STEP_WARMUP (20), and locust.sh's. Writes
# $RESULTS/steps-w<N>-steps.json per worker count and prints a Markdown table.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

export LOCUST_STEP_USERS="${LOCUST_STEP_USERS:-15}" LOCUST_STEP_SECONDS="${LOCUST_STEP_SECONDS:-12}"
export LOCUST_STEP_MAX="${LOCUST_STEP_MAX:-20}" LOCUST_USER_RATE="${LOCUST_USER_RATE:-2}"
export LOCUST_STEP_SETTLE="${LOCUST_STEP_SETTLE:-4}"
rc=0
for workers in ${STEP_WORKERS:-1 2}; do
  WORKERS="$workers" LABEL="steps-w$workers" bash "$ROOT/loadtests/locust.sh" || rc=$?
done
"$PY" "$ROOT/loadtests/report.py" steps "$RESULTS" || rc=$?
exit "$rc"
