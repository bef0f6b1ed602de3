#!/usr/bin/env bash
# `make loadtest`: a short, bounded locust run of the mixed scenarios (loadtests/locustfile.py)
# against the real stack, held to the budget table (loadtests/k6/budgets.json). Exits with
# locust's status: 1 when a budget was missed.
#
# It seeds `small` into LOCUST_DB when empty, creates a platform_admin key and ORG_KEY_COUNT
# org_admin keys (one per organization) with `python -m enterprise keys create`, starts the API
# (WORKERS workers of the `serve` default, granian) on a free port, samples the workers' CPU
# from /proc every second,
# runs locust and stops the server by process group.
#
# Env: LOCUST_DB (loadtest_small), USERS (20), SPAWN_RATE (10), DURATION (60s), WARMUP (20:
# seconds not judged for P95 and hit rate; the cache starts cold), WORKERS (1), BUDGET_FACTOR
# (1; 0.01 fails on purpose), WRITE_FACTOR (1: the locustfile's write share), ORG_KEY_COUNT (3),
# LABEL (locust: the prefix of every output file), RESULTS (loadtests/results/tmp), LOCUST_PORT
# (18400: where the free-port search starts). Step-load mode: LOCUST_STEP_USERS (stepload.sh).
# Output in $RESULTS: $LABEL_stats.csv (locust), $LABEL-series.csv (per route, per 2 s),
# $LABEL-cpu.csv (server CPU), $LABEL.log (locust's log), $LABEL-steps.json (step mode).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
require curl setsid

export MONGODB_DATABASE="${LOCUST_DB:-loadtest_small}"
# The rate limiter stays on (its cost is part of the service) with quotas out of reach: a few
# shared keys at a step load's rates would otherwise measure one key's quota, not the service.
export RATE_LIMITS="${LOCUST_RATE_LIMITS:-*:*:*=10000000/60}"
LABEL="${LABEL:-locust}"
WORKERS="${WORKERS:-1}"
key_file="$RESULTS/$LABEL-key"
rm -f "$key_file" # seeding writes a demo key only when it seeds; otherwise make one
"$PY" -m indexes sync >/dev/null
"$PY" -m enterprise seed --preset small --if-empty --demo-key-file "$key_file" >/dev/null
if [[ ! -s "$key_file" ]]; then
  "$PY" -m enterprise keys create --name locust --role platform_admin 2>/dev/null >"$key_file"
fi
org_keys=""
for org in $("$PY" - "${ORG_KEY_COUNT:-3}" <<'PY'
import os, sys
from pymongo import MongoClient
client = MongoClient(os.environ["MONGODB_URI"], serverSelectionTimeoutMS=3000)
found = client[os.environ["MONGODB_DATABASE"]].organizations.find({}, {"_id": 1}, sort=[("_id", 1)])
print(" ".join(str(doc["_id"]) for doc in found.limit(int(sys.argv[1]))))
PY
); do
  key="$("$PY" -m enterprise keys create --name locust-org --role org_admin --organization "$org" 2>/dev/null)"
  org_keys+="$org=$key,"
done

port="$(free_port "${LOCUST_PORT:-18400}")"
start_and_wait "$RESULTS/$LABEL-server.log" "http://127.0.0.1:$port/health/ready" \
  "$PY" -m enterprise serve --host 127.0.0.1 --port "$port" --workers "$WORKERS" ||
  die "the API did not start (see $RESULTS/$LABEL-server.log)"
cpu_sampler "$SERVER_PID" "$RESULTS/$LABEL-cpu.csv"

if [[ -n "${LOCUST_STEP_USERS:-}" ]]; then
  bound=$((${LOCUST_STEP_WARMUP:-20} + ${LOCUST_STEP_SECONDS:-20} * (${LOCUST_STEP_MAX:-8} + 1) + 10))
  log "locust step load: +$LOCUST_STEP_USERS users every ${LOCUST_STEP_SECONDS:-20}s (at most ${LOCUST_STEP_MAX:-8} steps), $WORKERS worker(s), 127.0.0.1:$port"
  run_args=(-t "${bound}s")
  export LOCUST_STEP_OUT="$RESULTS/$LABEL-steps.json"
else
  log "locust: ${USERS:-20} users for ${DURATION:-60s}, $WORKERS worker(s), 127.0.0.1:$port"
  run_args=(-u "${USERS:-20}" -r "${SPAWN_RATE:-10}" -t "${DURATION:-60s}" --warmup "${WARMUP:-20}")
fi
rc=0
API_KEY="$(tail -1 "$key_file")" ORG_KEYS="${org_keys%,}" LOCUST_SERIES="$RESULTS/$LABEL-series.csv" \
  "$ROOT/.venv/bin/locust" -f "$ROOT/loadtests/locustfile.py" --headless "${run_args[@]}" \
  --host "http://127.0.0.1:$port" --only-summary --csv "$RESULTS/$LABEL" --loglevel INFO \
  --budget-factor "${BUDGET_FACTOR:-1}" --write-factor "${WRITE_FACTOR:-1}" 2> >(tee "$RESULTS/$LABEL.log" | grep -E 'budget|verdict|step|error' >&2) ||
  rc=$?
stop_all
rm -f "$key_file"
log "locust exit $rc (figures: $RESULTS/$LABEL.log, $RESULTS/${LABEL}_stats.csv)"
exit "$rc"
