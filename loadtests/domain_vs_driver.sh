#!/usr/bin/env bash
# (c) Domain path vs bare driver: the API's P50/P95 against the same reads from a bare
# AsyncMongoClient (loadtests/bare_driver.py), same FerretDB, same concurrency, same duration.
# Goal: our P50 <= 1.3 x the bare driver's.
#
#   bash loadtests/domain_vs_driver.sh
#
# Steps:
#   1. Unless $BENCH_DB already holds data (or BENCH_RESEED=1): drop it, `python -m indexes
#      sync`, `python -m enterprise seed --preset medium` (docs/s goes to seed.txt).
#   2. `python -m enterprise keys create --name bench --role platform_admin`.
#   3. Serve with CACHE_ENABLED=false, 1 worker ($SERVER, granian by default, as `serve`).
#   4. ROUNDS rounds of: API item and driver item one at a time (-c 1: what the API adds when
#      FerretDB is not saturated), API item, driver item, API list, driver list (wrk -t1,
#      rotating ids; the driver walks the same ids in the same order).
#      Items at -c $ITEM_CONNECTIONS (16) for $DURATION (10 s); lists at -c $LIST_CONNECTIONS (4)
#      for $LIST_DURATION (30 s): one list costs FerretDB ~1 s whatever the concurrency, so at
#      -c 16 each request would queue ~16 s (past wrk's timeout) and a run would yield a
#      handful of samples.
#
# Item GETs rotate over ITEM_SAMPLE (500) clinic ids spread over the collection (ITEM_SAMPLE=0:
# every clinic, the whole collection); list GETs rotate over all organizations:
# GET /api/v1/organizations/{org}/clinics?limit=20&fields=name,code,status. LISTS=0 skips the
# list runs (items only).
# FerretDB (SQLite backend) only pushes `_id` filters down: every list request scans all
# clinics, so the list's absolute latency is FerretDB's; the ratio is the figure to read.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
require wrk curl setsid

ROUNDS="${ROUNDS:-3}"
DURATION="${DURATION:-10}"
ITEM_CONNECTIONS="${ITEM_CONNECTIONS:-16}"
LIST_CONNECTIONS="${LIST_CONNECTIONS:-4}"
LIST_DURATION="${LIST_DURATION:-30}"
SERVER="${SERVER:-granian}"
ITEM_SAMPLE="${ITEM_SAMPLE:-500}"
LISTS="${LISTS:-1}"
export MONGODB_DATABASE="${BENCH_DB:-bench_enterprise}"
OUT="$RESULTS/domain_vs_driver.jsonl"
: >"$OUT"

has_data() {
  "$PY" - <<'PY'
import os, sys
from pymongo import MongoClient
client = MongoClient(os.environ["MONGODB_URI"], serverSelectionTimeoutMS=3000)
sys.exit(0 if client[os.environ["MONGODB_DATABASE"]].organizations.find_one() else 1)
PY
}

if [[ "${BENCH_RESEED:-0}" == 1 ]] || ! has_data; then
  log "seeding preset medium into $MONGODB_DATABASE (fresh database, indexes first)"
  "$PY" -c 'import os; from pymongo import MongoClient; MongoClient(os.environ["MONGODB_URI"]).drop_database(os.environ["MONGODB_DATABASE"])'
  "$PY" -m indexes sync >"$RESULTS/indexes.txt"
  timeout 900 "$PY" -m enterprise seed --preset medium --seed 42 2> >(tee "$RESULTS/seed.txt" >&2)
  wait
  log "$(grep '^seeded' "$RESULTS/seed.txt")"
else
  log "$MONGODB_DATABASE already holds data; reusing it (BENCH_RESEED=1 to reseed)"
fi

KEY="$("$PY" -m enterprise keys create --name bench --role platform_admin 2>/dev/null)"
[[ "$KEY" == ent_* ]] || die "could not create an API key"
"$PY" "$ROOT/loadtests/targets.py" ids --out "$RESULTS" --clinics "$ITEM_SAMPLE"

PORT="$(free_port "${BENCH_PORT:-18200}")"
BASE="http://127.0.0.1:$PORT"
CACHE_ENABLED=false start_and_wait "$RESULTS/server-domain.log" "$BASE/health/ready" \
  "$PY" -m enterprise serve --port "$PORT" --workers 1 --server "$SERVER" ||
  die "the API did not start; see $RESULTS/server-domain.log"
AUTH=(-H "Authorization: Bearer $KEY")
first_clinic="$(head -1 "$RESULTS/clinic_paths.txt")"
first_list="$(head -1 "$RESULTS/org_clinics_paths.txt")"
for path in "$first_clinic" "$first_list"; do
  code="$(curl -s -o /dev/null -w '%{http_code}' "${AUTH[@]}" "$BASE$path")"
  [[ "$code" == 200 ]] || die "GET $path answered $code"
done
curl -s -D - -o /dev/null "${AUTH[@]}" "$BASE$first_clinic" | grep -iE '^(x-cache|server-timing)' >&2 || true

export CPU_PGID="$SERVER_PID" # server CPU ms per request, next to the driver's own
for ((round = 1; round <= ROUNDS; round++)); do
  export BENCH_ROUND="$round"
  WRK_PATHS="$RESULTS/clinic_paths.txt" wrk_warm "$ITEM_CONNECTIONS" 2 "$BASE" "${AUTH[@]}"
  WRK_PATHS="$RESULTS/clinic_paths.txt" \
    wrk_run api-item-c1 "$OUT" 1 "$DURATION" "$BASE" "${AUTH[@]}"
  timeout $((DURATION + 60)) "$PY" "$ROOT/loadtests/bare_driver.py" item --ids "$RESULTS/clinic_ids.txt" \
    -c 1 -d "$DURATION" --warmup 2 --label driver-item-c1 --round "$round" --out "$OUT" |
    sed 's/^/[driver] /' >&2
  WRK_PATHS="$RESULTS/clinic_paths.txt" \
    wrk_run api-item "$OUT" "$ITEM_CONNECTIONS" "$DURATION" "$BASE" "${AUTH[@]}"
  timeout $((DURATION + 60)) "$PY" "$ROOT/loadtests/bare_driver.py" item --ids "$RESULTS/clinic_ids.txt" \
    -c "$ITEM_CONNECTIONS" -d "$DURATION" --warmup 2 --label driver-item --round "$round" --out "$OUT" |
    sed 's/^/[driver] /' >&2

  ((LISTS)) || continue
  WRK_PATHS="$RESULTS/org_clinics_paths.txt" \
    wrk_run api-list "$OUT" "$LIST_CONNECTIONS" "$LIST_DURATION" "$BASE" "${AUTH[@]}"
  # wrk stops with requests in flight; the server still finishes their scans. Let them drain.
  sleep "${SETTLE:-5}"
  timeout $((LIST_DURATION + 120)) "$PY" "$ROOT/loadtests/bare_driver.py" list --ids "$RESULTS/org_ids.txt" \
    -c "$LIST_CONNECTIONS" -d "$LIST_DURATION" --warmup 2 --label driver-list --round "$round" --out "$OUT" |
    sed 's/^/[driver] /' >&2
done
unset CPU_PGID
stop_server "$SERVER_PID"

"$PY" "$ROOT/loadtests/summarize.py" "$OUT" \
  --ratio "item -c1 api÷driver=api-item-c1/driver-item-c1:p50_ms" \
  --ratio "item -c1 api÷driver=api-item-c1/driver-item-c1:p95_ms" \
  --ratio "item api÷driver=api-item/driver-item:p50_ms" \
  --ratio "item api÷driver=api-item/driver-item:p95_ms" \
  --ratio "item api÷driver=api-item/driver-item:rps" \
  --ratio "list api÷driver=api-list/driver-list:p50_ms" \
  --ratio "list api÷driver=api-list/driver-list:p95_ms" \
  --ratio "list api÷driver=api-list/driver-list:rps"
