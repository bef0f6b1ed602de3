#!/usr/bin/env bash
# The same API on two local servers, side by side in one run: FerretDB v1 (SQLite) and
# FerretDB v2 on PostgreSQL + DocumentDB. P50/P95 of four uncached reads on the `medium` seed.
#
#   BACKENDS="ferretdb=mongodb://127.0.0.1:27018/ documentdb=mongodb://127.0.0.1:27028/" \
#     bash loadtests/backends.sh
#
# For each backend: seed `medium` into $BENCH_DB (once; BENCH_RESEED=1 seeds again) after
# `python -m indexes sync`, create a key, export its targets and serve the API on it with
# CACHE_ENABLED=false (every request reaches the server), one worker of the `serve` default
# server (granian). Then ROUNDS
# rounds; in each, every backend in turn (order alternating per round) answers:
#   item    GET /clinics/{id}, rotating over 500 ids spread over the collection, -c 16
#   page    GET /organizations/{org}/clinics?limit=20&fields=name,code,status, -c 4
#   search  GET /clinics/search?q=<prefix>&organizationId=<org>, -c 4
#   report  GET /reports/organizations/{org}/summary, -c 2
# each for DURATION seconds (10); KINDS picks some of them ("item page search report"). A
# request wrk gave up on still runs in the server afterwards, so measure a kind that outlasts
# wrk's 10 s timeout (FerretDB v1's report scans) in a run of its own, that backend last.
# Figures are medians over rounds; the ratio rows divide the second backend's figure by the
# first's within each round.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
require wrk curl setsid

BACKENDS="${BACKENDS:?set BACKENDS="name=mongodb://... name=mongodb://..." (see the header)}"
ROUNDS="${ROUNDS:-3}"
KINDS="${KINDS:-item page search report}"
DURATION="${DURATION:-10}"
SERVER="${SERVER:-granian}"
export MONGODB_DATABASE="${BENCH_DB:-bench_enterprise}"
OUT="$RESULTS/backends.jsonl"
: >"$OUT"

declare -A BASE KEY
names=()
redis_db=1
for entry in $BACKENDS; do
  name="${entry%%=*}"
  uri="${entry#*=}"
  names+=("$name")
  dir="$RESULTS/$name"
  mkdir -p "$dir"
  export MONGODB_URI="$uri"
  if [[ "${BENCH_RESEED:-0}" == 1 ]] || ! "$PY" - <<'PY'; then
import os, sys
from pymongo import MongoClient
client = MongoClient(os.environ["MONGODB_URI"], serverSelectionTimeoutMS=3000)
sys.exit(0 if client[os.environ["MONGODB_DATABASE"]].assignments.find_one() else 1)
PY
    log "$name: seeding medium into $MONGODB_DATABASE (indexes first)"
    "$PY" -c 'import os; from pymongo import MongoClient; MongoClient(os.environ["MONGODB_URI"]).drop_database(os.environ["MONGODB_DATABASE"])'
    "$PY" -m indexes sync >"$dir/indexes.txt"
    timeout 1200 "$PY" -m enterprise seed --preset medium --seed 42 2>"$dir/seed.txt"
    log "$name: $(grep '^seeded' "$dir/seed.txt")"
  fi
  KEY[$name]="$("$PY" -m enterprise keys create --name bench --role platform_admin 2>/dev/null)"
  [[ "${KEY[$name]}" == ent_* ]] || die "$name: could not create an API key"
  "$PY" "$ROOT/loadtests/targets.py" ids --out "$dir"
  port="$(free_port $((18300 + redis_db * 10)))"
  BASE[$name]="http://127.0.0.1:$port"
  # Each API gets a Redis database of its own: both backends hold a database of this name.
  REDIS_URL="${REDIS_URL%/*}/$redis_db" CACHE_ENABLED=false start_and_wait "$dir/server.log" \
    "${BASE[$name]}/health/ready" "$PY" -m enterprise serve --port "$port" --workers 1 \
    --server "$SERVER" || die "$name: the API did not start; see $dir/server.log"
  redis_db=$((redis_db + 1))
done

declare -A PATHS=([item]=clinic_paths [page]=org_clinics_paths [search]=search_paths [report]=report_paths)
declare -A CONNECTIONS=([item]=16 [page]=4 [search]=4 [report]=2)

measure() { # measure NAME ROUND
  local name="$1" dir="$RESULTS/$1" auth=(-H "Authorization: Bearer ${KEY[$1]}") kind
  export BENCH_ROUND="$2"
  WRK_PATHS="$dir/clinic_paths.txt" wrk_warm 16 2 "${BASE[$name]}" "${auth[@]}"
  for kind in $KINDS; do
    WRK_PATHS="$dir/${PATHS[$kind]}.txt" wrk_run "$name-$kind" "$OUT" "${CONNECTIONS[$kind]}" \
      "$DURATION" "${BASE[$name]}" "${auth[@]}"
  done
  sleep "${SETTLE:-3}" # requests wrk left in flight finish before the other backend's turn
}

for ((round = 1; round <= ROUNDS; round++)); do
  if ((round % 2)); then order=("${names[@]}"); else order=($(printf '%s\n' "${names[@]}" | tac)); fi
  for name in "${order[@]}"; do measure "$name" "$round"; done
done
stop_all

ratios=()
if ((${#names[@]} == 2)); then
  for kind in $KINDS; do
    for metric in p50_ms p95_ms; do
      ratios+=(--ratio "$kind ${names[1]}÷${names[0]}=${names[1]}-$kind/${names[0]}-$kind:$metric")
    done
  done
fi
"$PY" "$ROOT/loadtests/summarize.py" "$OUT" "${ratios[@]}"
