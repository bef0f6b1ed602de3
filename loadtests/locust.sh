#!/usr/bin/env bash
# `make loadtest`: a short, bounded locust run against the real stack, held to the budget
# table (loadtests/k6/budgets.json). Exits with locust's status: 1 when a budget was missed.
#
# Env: LOCUST_DB (loadtest_small, seeded with the `small` preset when empty), USERS (10),
# SPAWN_RATE (5), DURATION (20s), WORKERS (1), BUDGET_FACTOR (1; 0.01 fails on purpose),
# RESULTS (loadtests/results/tmp). The server is started here and stopped by process group.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
require curl setsid

export MONGODB_DATABASE="${LOCUST_DB:-loadtest_small}"
key_file="$RESULTS/locust-key"
rm -f "$key_file"  # seeding writes a demo key only when it seeds; otherwise make one
"$PY" -m indexes sync >/dev/null
"$PY" -m enterprise seed --preset small --if-empty --demo-key-file "$key_file" >/dev/null
if [[ ! -s "$key_file" ]]; then
  "$PY" -m enterprise keys create --name locust --role platform_admin >"$key_file"
fi
port="$(free_port 18400)"
start_and_wait "$RESULTS/locust-server.log" "http://127.0.0.1:$port/health/ready" \
  "$PY" -m enterprise serve --host 127.0.0.1 --port "$port" --workers "${WORKERS:-1}" ||
  die "the API did not start (see $RESULTS/locust-server.log)"

log "locust: ${USERS:-10} users for ${DURATION:-20s} against 127.0.0.1:$port"
rc=0
API_KEY="$(tail -1 "$key_file")" "$ROOT/.venv/bin/locust" -f "$ROOT/loadtests/locustfile.py" \
  --headless -u "${USERS:-10}" -r "${SPAWN_RATE:-5}" -t "${DURATION:-20s}" \
  --host "http://127.0.0.1:$port" --only-summary --csv "$RESULTS/locust" \
  --budget-factor "${BUDGET_FACTOR:-1}" || rc=$?
stop_all
rm -f "$key_file"
log "locust exit $rc (csv: $RESULTS/locust_stats.csv)"
exit "$rc"
