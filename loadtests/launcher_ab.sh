#!/usr/bin/env bash
# Two builds of the FerretDB launcher on the same data, alternating: upstream FerretDB (no
# scripts/ferretdb/patches) against ours. Each round runs, on each build, loadtests/id_reads.py
# (finds and writes by _id at the first, middle and last document) and domain_vs_driver.sh's
# item step (uncached GET /clinics/{id} and a bare AsyncMongoClient doing the same finds).
#
#   bash loadtests/launcher_ab.sh     # after the bench database is seeded (domain_vs_driver.sh)
#
# Env: ROUNDS (3), DURATION (10 s per measurement), ITEM_SAMPLE (0: rotate over every clinic),
# BENCH_DB (bench_enterprise), FERRETDB_DATA (.stack/data/ferretdb, copied, never written).
# Both builds serve a copy of the data on a free port of their own; the shared stack is not
# touched. Rows go to $RESULTS/launcher_ab.jsonl, labelled upstream-* and patched-*; the
# id_reads tables to $RESULTS/<build>-<round>/id_reads.md.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
require wrk curl setsid go

ROUNDS="${ROUNDS:-3}"
export DURATION="${DURATION:-10}" ITEM_SAMPLE="${ITEM_SAMPLE:-0}" LISTS=0
DATA="${FERRETDB_DATA:-$ROOT/.stack/data/ferretdb}"
OUT="$RESULTS/launcher_ab.jsonl"
: >"$OUT"

[[ -d "$DATA" ]] || die "no FerretDB data at $DATA: seed the bench database first"
bash "$ROOT/scripts/stack.sh" install >&2 # ours, with the patches
log "building upstream FerretDB (the launcher without scripts/ferretdb/patches)"
(cd "$ROOT/scripts/ferretdb" && go build -mod=readonly -trimpath -o "$RESULTS/ferretdb-upstream" .)
declare -A BIN=([upstream]="$RESULTS/ferretdb-upstream" [patched]="$ROOT/.stack/bin/ferretdb")

rm -rf "$RESULTS/ab-data"
cp -R "$DATA" "$RESULTS/ab-data"

for ((round = 1; round <= ROUNDS; round++)); do
  if ((round % 2)); then order=(upstream patched); else order=(patched upstream); fi
  for build in "${order[@]}"; do
    port="$(free_port 27290)"
    start_server "$RESULTS/ferretdb-$build.log" "${BIN[$build]}" -listen-addr "127.0.0.1:$port" \
      -data-dir "$RESULTS/ab-data" -log-level warn
    for _ in {1..100}; do port_free "$port" || break; sleep 0.1; done
    log "round $round: $build on 127.0.0.1:$port"
    mkdir -p "$RESULTS/$build-$round"
    MONGODB_URI="mongodb://127.0.0.1:$port/" MONGODB_DATABASE="${BENCH_DB:-bench_enterprise}" \
      "$PY" "$ROOT/loadtests/id_reads.py" --repeat 5 >"$RESULTS/$build-$round/id_reads.md"
    MONGODB_URI="mongodb://127.0.0.1:$port/" RESULTS="$RESULTS/$build-$round" ROUNDS=1 \
      bash "$ROOT/loadtests/domain_vs_driver.sh" >/dev/null
    sed -E "s/\"label\": \"/\"label\": \"$build-/; s/\"round\": [0-9]+/\"round\": $round/" \
      "$RESULTS/$build-$round/domain_vs_driver.jsonl" >>"$OUT"
    stop_server "$SERVER_PID"
  done
done

"$PY" "$ROOT/loadtests/summarize.py" "$OUT" \
  --ratio "api item patched÷upstream=patched-api-item/upstream-api-item:rps" \
  --ratio "api item patched÷upstream=patched-api-item/upstream-api-item:p50_ms" \
  --ratio "driver item patched÷upstream=patched-driver-item/upstream-driver-item:rps" \
  --ratio "patched api÷driver=patched-api-item/patched-driver-item:rps"
