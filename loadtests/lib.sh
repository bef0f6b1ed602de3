# Shared helpers for the benchmark scripts (sourced, not run).
#
# Servers are started in their own session (setsid), so the PID we record is also the process
# group id of everything that server forks (granian/uvicorn workers). stop_server and the EXIT
# trap signal exactly those groups: never processes found by name.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PY:-$ROOT/.venv/bin/python}"
RESULTS="${RESULTS:-$ROOT/loadtests/results/tmp}"
mkdir -p "$RESULTS"

export ENTERPRISE_DEV="${ENTERPRISE_DEV:-1}"
export FERRETDB_PORT="${FERRETDB_PORT:-27018}"
export REDIS_PORT="${REDIS_PORT:-6380}"
export MONGODB_URI="${MONGODB_URI:-mongodb://127.0.0.1:$FERRETDB_PORT/}"
export REDIS_URL="${REDIS_URL:-redis://127.0.0.1:$REDIS_PORT/0}"
export LOG_LEVEL="${LOG_LEVEL:-WARNING}"
# One key drives every benchmark: the limiter stays on (each request pays for its decision,
# as in production) with a quota no run reaches. loadtests/rate_limit.sh measures its cost.
export RATE_LIMITS="${RATE_LIMITS:-*:*:*=60000000/60}"

STARTED_PIDS=()

# BENCH_PIN=1 (on 2+ cores, with taskset): servers started by start_server run on CPU 1 and
# wrk on CPU 0, so the two never compete for a core and a ratio of two servers measured one
# after the other is not decided by where the scheduler put them. Off by default: the
# figures in docs/benchmarks.md say when it was on. (FerretDB and Redis are not pinned.)
PIN_SERVER=()
PIN_LOAD=()
if [[ "${BENCH_PIN:-0}" == 1 ]]; then
  command -v taskset >/dev/null 2>&1 || { echo "BENCH_PIN=1 needs taskset" >&2; exit 1; }
  (($(nproc) >= 2)) || { echo "BENCH_PIN=1 needs 2 cores" >&2; exit 1; }
  PIN_SERVER=(taskset -c 1)
  PIN_LOAD=(taskset -c 0)
fi

log() { printf '[bench %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() {
  log "error: $*"
  exit 1
}

require() {
  local tool
  for tool in "$@"; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool is missing (scripts/loadtools.sh installs wrk and hey)"
  done
}

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# free_port START: START or the next free port above it.
free_port() {
  local p="$1"
  while ! port_free "$p"; do p=$((p + 1)); done
  echo "$p"
}

# start_server LOGFILE COMMAND...: run COMMAND in a new session; sets SERVER_PID.
start_server() {
  local logfile="$1"
  shift
  setsid "${PIN_SERVER[@]}" "$@" >"$logfile" 2>&1 </dev/null &
  SERVER_PID=$!
  STARTED_PIDS+=("$SERVER_PID")
}

# wait_http URL [SECONDS]: until URL answers 200, or fail.
wait_http() {
  local url="$1" limit="${2:-30}" i
  for ((i = 0; i < limit * 10; i++)); do
    if curl -fs -o /dev/null --max-time 1 "$url"; then return 0; fi
    sleep 0.1
  done
  return 1
}

# start_and_wait LOGFILE URL COMMAND...: start_server, wait for URL; on failure show why, stop
# that server and try once more (a cold start can stall on a saturated machine).
start_and_wait() {
  local logfile="$1" url="$2" attempt
  shift 2
  for attempt in 1 2; do
    start_server "$logfile" "$@"
    if wait_http "$url" 60; then return 0; fi
    log "no answer from $url after 60 s (attempt $attempt); process state:"
    ps -o pid,stat,wchan:20,etime,time,args -g "$SERVER_PID" >&2 || true
    tail -5 "$logfile" >&2 || true
    stop_server "$SERVER_PID"
  done
  return 1
}

# stop_server PID: TERM its process group, then KILL it if it is still there after 10 s.
stop_server() {
  local pid="$1" i
  kill -TERM -- "-$pid" 2>/dev/null || return 0
  for ((i = 0; i < 100; i++)); do
    kill -0 -- "-$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL -- "-$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  local kept=()
  for p in "${STARTED_PIDS[@]}"; do [[ "$p" == "$pid" ]] || kept+=("$p"); done
  STARTED_PIDS=("${kept[@]}")
}

stop_all() {
  local pid
  for pid in "${STARTED_PIDS[@]}"; do stop_server "$pid"; done
}
trap stop_all EXIT
trap 'exit 130' INT TERM

# group_cpu_ticks PGID: user + system CPU ticks (1/CLK_TCK s) of every process in the group.
group_cpu_ticks() {
  local total=0 pid stat rest
  for pid in $(pgrep -g "$1"); do
    stat="$(cat "/proc/$pid/stat" 2>/dev/null)" || continue
    rest="${stat##*) }" # fields after the command name; utime and stime are fields 14 and 15
    read -r -a fields <<<"$rest"
    total=$((total + fields[11] + fields[12]))
  done
  echo "$total"
}

# cpu_sampler PGID OUT: every second until stopped, append "epoch,cpu_seconds,processes" of the
# group (the API server and its workers) to OUT. It ends by itself once the group is gone.
cpu_sampler() {
  local pgid="$1" out="$2" hz
  hz="$(getconf CLK_TCK)"
  echo "t,cpu_s,processes" >"$out"
  (
    while kill -0 -- "-$pgid" 2>/dev/null; do
      printf '%s,%s,%s\n' "$(date +%s.%N)" \
        "$(awk -v t="$(group_cpu_ticks "$pgid")" -v hz="$hz" 'BEGIN { printf "%.2f", t / hz }')" \
        "$(pgrep -g "$pgid" | wc -l)" >>"$out"
      sleep 1
    done
  ) &
}

# wrk_run LABEL JSONL CONNECTIONS SECONDS URL [WRK ARGS...]: one measured wrk run; appends
# {"label":..., ...wrk summary} to JSONL. Set WRK_PATHS for rotating paths, CPU_PGID to also
# record the server's CPU milliseconds per request (its process group, workers included).
wrk_run() {
  local label="$1" out="$2" conns="$3" secs="$4" url="$5"
  shift 5
  local raw ticks_before=0 cpu_field=""
  [[ -z "${CPU_PGID:-}" ]] || ticks_before="$(group_cpu_ticks "$CPU_PGID")"
  raw="$(timeout $((secs + 30)) "${PIN_LOAD[@]}" wrk -t1 -c"$conns" -d"${secs}s" --timeout 10s --latency \
    -s "$ROOT/loadtests/wrk/bench.lua" "$@" "$url")" || die "wrk failed for $label: $raw"
  local json
  json="$(grep '^WRK_JSON ' <<<"$raw" | sed 's/^WRK_JSON //')"
  [[ -n "$json" ]] || die "no summary from wrk for $label: $raw"
  if [[ -n "${CPU_PGID:-}" ]]; then
    local ticks=$(($(group_cpu_ticks "$CPU_PGID") - ticks_before)) requests
    requests="$(sed -E 's/.*"requests": ([0-9]+).*/\1/' <<<"$json")"
    cpu_field="$(awk -v t="$ticks" -v n="$requests" -v hz="$(getconf CLK_TCK)" \
      'BEGIN { printf "\"cpu_ms_per_req\": %.3f, ", (n > 0 ? t * 1000 / hz / n : 0) }')"
  fi
  printf '{"label": "%s", "round": %d, "at": "%s", "load1": %s, %s%s\n' "$label" "${BENCH_ROUND:-0}" \
    "$(date -u +%FT%TZ)" "$(cut -d' ' -f1 /proc/loadavg)" "$cpu_field" "${json#\{}" >>"$out"
  log "$label: $(sed -E 's/.*"rps": ([0-9.]+).*"p50_ms": ([0-9.]+).*"p95_ms": ([0-9.]+).*"p99_ms": ([0-9.]+).*"status": ([0-9]+).*/\1 req\/s  p50 \2 ms  p95 \3 ms  p99 \4 ms  status errors \5/' <<<"$json")"
}

# wrk_warm CONNECTIONS SECONDS URL [WRK ARGS...]: an unrecorded warm-up run.
# seed_if_empty: the `medium` preset into $MONGODB_DATABASE when it has no clinics.
seed_if_empty() {
  if [[ "$("$PY" - <<'EOF'
from pymongo import MongoClient
from enterprise.settings import Settings
s = Settings.from_env()
print(MongoClient(s.mongodb_uri)[s.mongodb_database].clinics.estimated_document_count())
EOF
  )" == 0 ]]; then
    log "seeding preset medium into $MONGODB_DATABASE"
    "$PY" -m indexes sync >/dev/null
    "$PY" -m enterprise seed --preset medium --seed 42 >&2
  fi
}

wrk_warm() {
  local conns="$1" secs="$2" url="$3"
  shift 3
  timeout $((secs + 30)) wrk -t1 -c"$conns" -d"${secs}s" --timeout 10s \
    -s "$ROOT/loadtests/wrk/bench.lua" "$@" "$url" >/dev/null || die "wrk warm-up failed on $url"
}

# code_version: the commit under test, and whether the working tree differs from it (others
# may be editing while a benchmark runs; the figures belong to this exact state).
code_version() {
  local dirty
  dirty="$(git -C "$ROOT" status --porcelain --untracked-files=no -- enterprise middleware indexes 2>/dev/null |
    awk '{print $2}' | tr '\n' ' ')"
  echo "$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)${dirty:+ + uncommitted: $dirty}"
}

machine_info() {
  echo "date: $(date -u +%FT%TZ)"
  echo "code: $(code_version)"
  echo "nproc: $(nproc)"
  echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
  echo "kernel: $(uname -r)"
  echo "python: $("$PY" -V 2>&1)"
  echo "wrk: $(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2)"
  "$PY" - <<'PY'
from importlib.metadata import version
for name in ("granian", "uvicorn", "uvloop", "httptools", "falcon", "pymongo", "msgspec", "pydantic"):
    try:
        print(f"{name}: {version(name)}")
    except Exception as ex:  # noqa: BLE001 - report what is missing
        print(f"{name}: missing ({ex})")
PY
}

# private_stack_up: a FerretDB + Redis of our own (scripts/stack.sh with its own STACK_DIR and
# free ports), so other people's load on the shared servers does not queue ahead of ours.
# The CPU is still shared. Exports MONGODB_URI/REDIS_URL; private_stack_down stops exactly
# these servers (stack.sh stops by the pid files in STACK_DIR) and removes their data.
PRIVATE_STACK_DIR="$RESULTS/stack"
private_stack_up() {
  mkdir -p "$PRIVATE_STACK_DIR/bin"
  if [[ -x "$ROOT/.stack/bin/ferretdb" && ! -x "$PRIVATE_STACK_DIR/bin/ferretdb" ]]; then
    cp -p "$ROOT/.stack/bin/ferretdb" "$ROOT/.stack/bin/ferretdb.sha256" "$PRIVATE_STACK_DIR/bin/"
  fi
  PRIVATE_FERRETDB_PORT="$(free_port 27190)"
  PRIVATE_REDIS_PORT="$(free_port 6390)"
  STACK_DIR="$PRIVATE_STACK_DIR" FERRETDB_PORT="$PRIVATE_FERRETDB_PORT" \
    REDIS_PORT="$PRIVATE_REDIS_PORT" bash "$ROOT/scripts/stack.sh" up >&2
  export MONGODB_URI="mongodb://127.0.0.1:$PRIVATE_FERRETDB_PORT/"
  export REDIS_URL="redis://127.0.0.1:$PRIVATE_REDIS_PORT/0"
  log "private stack: $MONGODB_URI $REDIS_URL"
}

private_stack_down() {
  [[ -d "$PRIVATE_STACK_DIR/pids" ]] || return 0
  STACK_DIR="$PRIVATE_STACK_DIR" FERRETDB_PORT="${PRIVATE_FERRETDB_PORT:-27190}" \
    REDIS_PORT="${PRIVATE_REDIS_PORT:-6390}" bash "$ROOT/scripts/stack.sh" down >&2 || true
  rm -rf "$PRIVATE_STACK_DIR/data" "$PRIVATE_STACK_DIR/pids"
}
