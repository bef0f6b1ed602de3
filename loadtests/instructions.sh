#!/usr/bin/env bash
# Instructions per request, counted by valgrind (callgrind) in the whole server process:
# the bare Falcon hello (loadtests/hello.py, the yardstick), /health/live, a cached GET item
# (a hit), its 304 revalidation and the same item with the cache off, and each one's ratio
# to the hello (hello ÷ kind: 1.0 costs what the framework's hello world costs).
#
#   bash loadtests/instructions.sh          # after `make seed` (or BENCH_DB=<seeded database>)
#
# Why: this machine's speed drifts by tens of percent within seconds, so req/s ratios need
# many rounds. An instruction count does not drift: it shows what a change to the hit or 304
# path saved, run after run, in two minutes. It is a proxy (no cache misses, no kernel time),
# so the figures that count stay the wrk ratios of middleware.sh.
#
# Method: one uvicorn worker runs under callgrind; hey sends N requests (-c 16) once to warm
# up, then callgrind's counters are zeroed, the same N requests are sent again and the
# counters dumped. The server runs ~50x slower under valgrind, so generation leases are set to
# 1 s (the maximum): renewals then come about as often per request as at full speed with 20 ms;
# and the clinic TTL to an hour, so that minutes of valgrind time do not turn hits into
# refreshes and misses; the SRE snapshot runs once a minute instead of every second, since
# its cost per request grows with valgrind's slowdown and the machine's load (periodic work
# divided by fewer requests). INSTRUCTIONS_PARTS picks what runs (default: hello cached
# uncached).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

N="${INSTRUCTIONS_REQUESTS:-2000}"
export MONGODB_DATABASE="${BENCH_DB:-enterprise}"
OUT="$RESULTS/instructions.jsonl"
: >"$OUT"

if ! command -v callgrind_control >/dev/null 2>&1; then
  # shellcheck source=scripts/apt.sh
  source "$ROOT/scripts/apt.sh"
  log "installing valgrind with apt-get"
  apt_install valgrind || die "could not install valgrind (above)"
fi
require hey curl setsid callgrind_control

KEY="$("$PY" -m enterprise keys create --name bench-instructions --role platform_admin 2>/dev/null)"
[[ "$KEY" == ent_* ]] || die "could not create an API key (is $MONGODB_DATABASE seeded?)"
"$PY" "$ROOT/loadtests/targets.py" ids --out "$RESULTS" >/dev/null

PORT="$(free_port "${BENCH_PORT:-18600}")"
BASE="http://127.0.0.1:$PORT"
path="" etag=""

send() { # kind: N requests of that kind
  case "$1" in
    hello | live) hey -n "$N" -c 16 "$BASE/health/live" ;;
    item-cached | item-uncached) hey -n "$N" -c 16 -H "Authorization: Bearer $KEY" "$BASE$path" ;;
    item-304) hey -n "$N" -c 16 -H "Authorization: Bearer $KEY" -H "If-None-Match: $etag" "$BASE$path" ;;
  esac
}
declare -A EXPECTED=([hello]=200 [live]=200 [item-cached]=200 [item-304]=304 [item-uncached]=200)

count() { # kind...: warm up, zero the counters, send N, dump: one JSON line per kind
  local kind dump total statuses
  for kind in "$@"; do
    send "$kind" >/dev/null
    callgrind_control -z "$SERVER_PID" >/dev/null 2>&1
    send "$kind" >"$RESULTS/hey-$kind.txt"
    callgrind_control -d "$SERVER_PID" >/dev/null 2>&1
    dump="$(ls -t "$RESULTS"/callgrind."$SERVER_PID".* | head -1)"
    total="$(sed -n 's/^summary: //p' "$dump")"
    statuses="$(grep -E '^\s+\[[0-9]{3}\]' "$RESULTS/hey-$kind.txt" | tr -s ' \t' ' ' | paste -sd, -)"
    [[ "$statuses" == " [${EXPECTED[$kind]}] $N responses" ]] ||
      die "$kind: expected $N answers ${EXPECTED[$kind]}, got: $statuses"
    printf '{"kind": "%s", "requests": %d, "instructions": %d, "per_request": %d, "statuses": "%s"}\n' \
      "$kind" "$N" "$total" "$((total / N))" "${statuses# }" | tee -a "$OUT" >&2
  done
}

# serve LOG COMMAND...: start one server under callgrind, wait for it.
serve() {
  local logfile="$1"
  shift
  PYTHONHASHSEED=0 SRE_SNAPSHOT_INTERVAL_S=60 start_server "$logfile" valgrind --tool=callgrind \
    --callgrind-out-file="$RESULTS/callgrind.%p" "$@"
  wait_http "$BASE/health/live" 300 || die "the server did not start; see $logfile"
}

PARTS=" ${INSTRUCTIONS_PARTS:-hello cached uncached} "
path="$(head -1 "$RESULTS/clinic_paths.txt")"

if [[ "$PARTS" == *" hello "* ]]; then
  serve "$RESULTS/server-instructions-hello.log" \
    "$PY" "$ROOT/loadtests/hello.py" --port "$PORT" --workers 1 --server uvicorn
  count hello
  stop_server "$SERVER_PID"
fi

if [[ "$PARTS" == *" cached "* ]]; then
  CACHE_ENABLED=true CACHE_GENERATION_LEASE_MS=1000 CACHE_TTL_CLINIC=3600 \
    serve "$RESULTS/server-instructions.log" \
    "$PY" -m enterprise serve --port "$PORT" --workers 1 --server uvicorn
  "$PY" "$ROOT/loadtests/targets.py" etags --base "$BASE" --key "$KEY" \
    "$RESULTS/clinic_paths.txt" "$RESULTS/clinic_etags.txt"
  first="$(head -1 "$RESULTS/clinic_etags.txt")"
  path="${first%%$'\t'*}" etag="${first#*$'\t'}"
  count live item-cached item-304
  stop_server "$SERVER_PID"
fi

if [[ "$PARTS" == *" uncached "* ]]; then
  CACHE_ENABLED=false serve "$RESULTS/server-instructions-uncached.log" \
    "$PY" -m enterprise serve --port "$PORT" --workers 1 --server uvicorn
  count item-uncached
  stop_server "$SERVER_PID"
fi

"$PY" - "$OUT" <<'EOF'
import json, sys
rows = {r["kind"]: r for r in map(json.loads, open(sys.argv[1]))}
hello = rows["hello"]["per_request"] if "hello" in rows else float("nan")
print("| kind | instructions per request | hello ÷ kind | answers |")
print("|---|---|---|---|")
for kind, row in rows.items():
    print(f"| {kind} | {row['per_request']:,} | {hello / row['per_request']:.3f} | {row['statuses']} |")
EOF
