#!/usr/bin/env bash
# Seeding throughput: `python -m enterprise seed --preset medium` into RUNS fresh databases,
# each with the declared indexes applied first (as `make run` does), then dropped.
#
#   bash loadtests/seed_rate.sh          # RUNS=3 PRESET=medium
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

RUNS="${RUNS:-3}"
PRESET="${PRESET:-medium}"
OUT="$RESULTS/seed_rate.txt"
: >"$OUT"
drop() { "$PY" -c 'import os, sys; from pymongo import MongoClient; MongoClient(os.environ["MONGODB_URI"]).drop_database(sys.argv[1])' "$1"; }

for ((run = 1; run <= RUNS; run++)); do
  db="bench_seed_rate_$run"
  drop "$db"
  MONGODB_DATABASE="$db" "$PY" -m indexes sync >/dev/null
  line="$(MONGODB_DATABASE="$db" timeout 3600 "$PY" -m enterprise seed --preset "$PRESET" --seed 42 2>&1 |
    grep '^seeded')" || { drop "$db"; die "seeding run $run failed"; }
  drop "$db"
  echo "run $run: $line" | tee -a "$OUT"
done
"$PY" - "$OUT" <<'PY'
import re, statistics, sys
rates = [float(m.group(1).replace(",", "")) for m in re.finditer(r"\(([\d,]+) docs/s\)", open(sys.argv[1]).read())]
print(f"median of {len(rates)} runs: {statistics.median(rates):,.0f} docs/s")
PY
