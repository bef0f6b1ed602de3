#!/usr/bin/env bash
# Local servers for development and CI: a MongoDB-wire server and Redis, all on 127.0.0.1 only.
# Two backends for the MongoDB side, picked by STACK_BACKEND:
#   ferretdb    FerretDB v1 on embedded SQLite, built from scripts/ferretdb (light: one process,
#               ~1 min to build; scans for every filter but _id, updates not atomic)
#   documentdb  FerretDB v2.5.0 on PostgreSQL 15 + DocumentDB (built by scripts/documentdb.sh
#               from Debian packages and ../shared/vendor; real indexes, atomic updates)
#
# Usage: scripts/stack.sh up|down|status|env|install
#        scripts/stack.sh start|stop|restart|logs ferretdb|postgres|redis
#   "ferretdb" is the backend's MongoDB-wire server (v1 or v2); "postgres" exists on documentdb.
#   `down` stops the servers of both backends.
#
# Environment:
#   STACK_BACKEND  documentdb (default) or ferretdb
#   FERRETDB_PORT  (default 27018; not 27017, to stay clear of a system mongod)
#   REDIS_PORT     (default 6380;  not 6379,  to stay clear of a system redis)
#   POSTGRES_PORT  documentdb only (default 5433; not 5432, to stay clear of a system cluster)
#   FERRETDB_DEBUG_PORT  documentdb only: FerretDB v2's metrics/debug HTTP (default 8089)
#   VENDOR_DIR     documentdb only: the source archives (default <repo>/../shared/vendor)
#   STACK_DIR      (default <repo>/.stack: bin/, data/, logs/, pids/)
#   STACK_READY_TIMEOUT  seconds to wait for a server to answer (default 30)
#   FERRETDB_LOG_LEVEL   debug|info|warn|error (default warn; info logs every connection)
#   FERRETDB_SHUTDOWN_TIMEOUT  how long clients still connected may delay a stop (default 500ms)
#
# Every command is idempotent. Processes are stopped by the pid in their pid file, never by name.
# No Go or no apt-get? Use Docker instead: `docker compose up -d mongo mongo-init redis`.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
FERRETDB_PORT="${FERRETDB_PORT:-27018}"
REDIS_PORT="${REDIS_PORT:-6380}"
STACK_BACKEND="${STACK_BACKEND:-documentdb}"
POSTGRES_PORT="${POSTGRES_PORT:-5433}"
FERRETDB_DEBUG_PORT="${FERRETDB_DEBUG_PORT:-8089}"
STACK_DIR="${STACK_DIR:-$REPO/.stack}"
READY_TIMEOUT="${STACK_READY_TIMEOUT:-30}"
FERRETDB_LOG_LEVEL="${FERRETDB_LOG_LEVEL:-warn}"
FERRETDB_SHUTDOWN_TIMEOUT="${FERRETDB_SHUTDOWN_TIMEOUT:-500ms}"
STOP_TIMEOUT=10
HOST=127.0.0.1

FERRETDB_SRC="$REPO/scripts/ferretdb"
FERRETDB_BIN="$STACK_DIR/bin/ferretdb"
FERRETDB_STAMP="$STACK_DIR/bin/ferretdb.sha256"
FERRETDB2_BIN="$STACK_DIR/bin/ferretdb2"
PG_BIN=/usr/lib/postgresql/15/bin
VENV_PYTHON="$REPO/.venv/bin/python"
DOCKER_HINT="or run the servers with Docker instead: \`docker compose up -d mongo mongo-init redis\` (see docker-compose.yml)"

# ---------------------------------------------------------------------------------------------
# helpers

# shellcheck source=scripts/apt.sh
source "$REPO/scripts/apt.sh"
# shellcheck source=scripts/common.sh
source "$REPO/scripts/common.sh"

log() { printf '[stack] %s\n' "$*"; }
die() {
  printf '[stack] error: %s\n' "$*" >&2
  exit 1
}



validate_port() { # validate_port NAME VALUE
  if ! [[ "$2" =~ ^[0-9]+$ ]] || (($2 < 1 || $2 > 65535)); then
    die "$1 must be a TCP port number, got '$2'"
  fi
}

port_of() {
  case "$1" in
    ferretdb | ferretdb2) echo "$FERRETDB_PORT" ;;
    postgres) echo "$POSTGRES_PORT" ;;
    redis) echo "$REDIS_PORT" ;;
  esac
}

# The processes each backend runs, in start order. `ferretdb2` is FerretDB v2, `ferretdb` v1.
backend_servers() {
  case "$STACK_BACKEND" in
    documentdb) echo postgres ferretdb2 redis ;;
    *) echo ferretdb redis ;;
  esac
}

# process_of NAME: the process a command-line name means on this backend.
process_of() {
  if [[ "$1" == ferretdb && "$STACK_BACKEND" == documentdb ]]; then echo ferretdb2; else echo "$1"; fi
}

pid_file() { echo "$STACK_DIR/pids/$1.pid"; }

ensure_dirs() {
  mkdir -p "$STACK_DIR/bin" "$STACK_DIR/data/ferretdb" "$STACK_DIR/data/redis" \
    "$STACK_DIR/logs" "$STACK_DIR/pids"
  if [[ "$STACK_BACKEND" == documentdb ]]; then
    mkdir -p "$STACK_DIR/data/ferretdb2" "$STACK_DIR/run"
  fi
}

# Serialise start/stop/install between concurrent callers (e.g. parallel fault tests).
lock() {
  ensure_dirs
  if command -v flock >/dev/null 2>&1; then
    exec 9>"$STACK_DIR/.lock"
    flock -w 120 9 || die "could not take $STACK_DIR/.lock within 120 s"
  fi
}

# alive PID: the process exists and is not a zombie (an unreaped zombie still passes kill -0).
alive() {
  kill -0 "$1" 2>/dev/null || return 1
  local stat
  stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 0 # no procfs: trust kill -0
  stat="${stat##*) }"
  [[ "${stat:0:1}" != Z ]]
}

port_open() { # port_open PORT: something accepts TCP connections on 127.0.0.1:PORT
  (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null
}

# is_ours NAME PID: PID is alive and is the process we started (guards against pid reuse).
is_ours() {
  local name="$1" pid="$2" cmd
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  alive "$pid" || return 1
  [[ -r "/proc/$pid/cmdline" ]] || return 0 # no procfs: trust kill -0
  cmd="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null || true)"
  case "$name" in
    ferretdb) [[ "$cmd" == *ferretdb* ]] ;;
    ferretdb2) [[ "$cmd" == *ferretdb2* ]] ;;
    postgres) [[ "$cmd" == *postgres* ]] ;;
    redis) [[ "$cmd" == *redis-server* ]] ;;
  esac
}

# running_pid NAME: prints the pid from the pid file if that process is ours and alive.
running_pid() {
  local file pid
  file="$(pid_file "$1")"
  [[ -s "$file" ]] || return 1
  pid="$(tr -dc '0-9' <"$file")"
  is_ours "$1" "$pid" || return 1
  echo "$pid"
}

# answers NAME: the server answers a protocol-level ping (fast, single attempt).
answers() {
  case "$1" in
    ferretdb | ferretdb2) port_open "$FERRETDB_PORT" ;;
    postgres) "$PG_BIN/pg_isready" -q -h "$HOST" -p "$POSTGRES_PORT" -t 1 ;;
    redis) [[ "$(redis-cli -h "$HOST" -p "$REDIS_PORT" ping 2>/dev/null)" == PONG ]] ;;
  esac
}

tail_log() {
  local f="$STACK_DIR/logs/$1.log"
  if [[ -s "$f" ]]; then
    printf '[stack] last lines of %s:\n' "$f" >&2
    tail -n 20 "$f" >&2
  fi
}

# Keep logs from growing without bound across many restarts.
rotate_log() {
  local f="$STACK_DIR/logs/$1.log" size
  [[ -f "$f" ]] || return 0
  size="$(wc -c <"$f")"
  if ((size > 10 * 1024 * 1024)); then mv -f "$f" "$f.1"; fi
}

# ---------------------------------------------------------------------------------------------
# install


source_hash() {
  (cd "$FERRETDB_SRC" && cat main.go go.mod go.sum patches/*.patch) | sha256sum | cut -d' ' -f1
}

# patched_build_dir GO: a build directory holding our launcher and a copy of the FerretDB
# module from the Go module cache with scripts/ferretdb/patches applied, wired in with a
# `replace` directive; prints its path. Fails, naming the patch, when one does not apply as
# written (a new FerretDB version must be re-checked, not built without the fix).
patched_build_dir() {
  local go="$1" build="$STACK_DIR/build/ferretdb" module patch
  rm -rf "$build"
  mkdir -p "$build"
  cp "$FERRETDB_SRC"/main.go "$FERRETDB_SRC"/go.mod "$FERRETDB_SRC"/go.sum "$build/"
  (cd "$build" && "$go" mod download github.com/FerretDB/FerretDB) >&2 ||
    die "could not download the FerretDB module (see above); $DOCKER_HINT"
  module="$(cd "$build" && "$go" list -mod=readonly -m -f '{{.Dir}}' github.com/FerretDB/FerretDB)"
  [[ -d "$module" ]] || die "the FerretDB module is not in the Go module cache ($module)"
  cp -R "$module" "$build/ferretdb-module"
  chmod -R u+w "$build/ferretdb-module"
  for patch in "$FERRETDB_SRC"/patches/*.patch; do
    patch --directory="$build/ferretdb-module" --strip=1 --forward --batch --fuzz=0 \
      --no-backup-if-mismatch --quiet <"$patch" >&2 ||
      die "patch $(basename "$patch") does not apply to $(basename "$module"): the line it changes is not there as expected"
  done
  (cd "$build" && "$go" mod edit -replace github.com/FerretDB/FerretDB=./ferretdb-module)
  echo "$build"
}

install_ferretdb() {
  local t0 go want have="" tmp build
  t0="$(now_ms)"
  ensure_dirs
  want="$(source_hash)"
  [[ -f "$FERRETDB_STAMP" ]] && have="$(cat "$FERRETDB_STAMP")"
  if [[ -x "$FERRETDB_BIN" && "$want" == "$have" ]]; then
    log "ferretdb: launcher up to date ($FERRETDB_BIN) [$(elapsed "$t0")]"
    return 0
  fi
  go="$(find_go)" || die "Go (>= 1.24) is needed to build the FerretDB launcher and was not found on PATH or in /usr/local/go/bin: install it from https://go.dev/dl/, $DOCKER_HINT"
  if [[ -x "$FERRETDB_BIN" ]]; then
    log "ferretdb: sources changed, rebuilding launcher with $("$go" version | cut -d' ' -f3)"
  else
    log "ferretdb: building launcher with $("$go" version | cut -d' ' -f3) (with cold Go caches this takes 1-3 minutes)"
  fi
  tmp="$FERRETDB_BIN.tmp.$$"
  build="$(patched_build_dir "$go")"
  if ! (cd "$build" && "$go" build -mod=readonly -trimpath -buildvcs=false -o "$tmp" .); then
    rm -f "$tmp"
    die "building the FerretDB launcher failed (see the Go output above); $DOCKER_HINT"
  fi
  mv -f "$tmp" "$FERRETDB_BIN"
  echo "$want" >"$FERRETDB_STAMP"
  log "ferretdb: built $FERRETDB_BIN [$(elapsed "$t0")]"
  if running_pid ferretdb >/dev/null; then
    log "ferretdb: a server is running the previous binary; \`$0 restart ferretdb\` to use the new one"
  fi
}

redis_version() { redis-server --version | sed -n 's/.* v=\([^ ]*\).*/\1/p'; }

install_redis() {
  local t0
  t0="$(now_ms)"
  if command -v redis-server >/dev/null 2>&1 && command -v redis-cli >/dev/null 2>&1; then
    log "redis: $(redis_version) already installed [$(elapsed "$t0")]"
    return 0
  fi
  log "redis: installing redis-server with apt-get"
  apt_install redis-server redis-tools ||
    die "could not install redis-server (above): install Redis >= 6 with your package manager, $DOCKER_HINT"
  log "redis: installed $(redis_version) [$(elapsed "$t0")]"
}

# PostgreSQL 15 + DocumentDB + FerretDB v2: scripts/documentdb.sh, a no-op once built.
install_documentdb() {
  STACK_DIR="$STACK_DIR" bash "$REPO/scripts/documentdb.sh" install ||
    die "installing the documentdb backend failed (above); STACK_BACKEND=ferretdb needs only Go, $DOCKER_HINT"
}

cmd_install() {
  local t0
  t0="$(now_ms)"
  if [[ "$STACK_BACKEND" == documentdb ]]; then install_documentdb; else install_ferretdb; fi
  install_redis
  log "install done [$(elapsed "$t0")]"
}

# ---------------------------------------------------------------------------------------------
# readiness

# Wait until FerretDB answers a MongoDB ping; give up early if the process dies.
wait_ferretdb() {
  local pid="$1" deadline rc=3
  if [[ -x "$VENV_PYTHON" ]]; then
    "$VENV_PYTHON" - "$HOST" "$FERRETDB_PORT" "$pid" "$READY_TIMEOUT" <<'PY' && rc=0 || rc=$?
import os, sys, time
try:
    from pymongo import MongoClient
except ImportError:
    sys.exit(3)
host, port, pid, timeout = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])


def dead(pid):
    # An exited child of the calling shell stays a zombie until reaped: treat "Z" as dead.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(") ")[2][:1] == "Z"
    except FileNotFoundError:
        if os.path.isdir("/proc/self"):
            return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass
    return False


deadline = time.monotonic() + timeout
client = MongoClient(host, port, directConnection=True, serverSelectionTimeoutMS=300,
                     connectTimeoutMS=300)
try:
    while True:
        if dead(pid):
            print("[stack] ferretdb: process exited during startup", file=sys.stderr)
            sys.exit(1)
        try:
            client.admin.command("ping")
            sys.exit(0)
        except Exception:
            if time.monotonic() > deadline:
                sys.exit(1)
            time.sleep(0.05)
finally:
    client.close()
PY
    ((rc != 3)) && return "$rc"
    # rc 3: the venv has no pymongo (yet); fall back to a port check.
  fi
  deadline=$(($(now_ms) + READY_TIMEOUT * 1000))
  while (($(now_ms) < deadline)); do
    alive "$pid" || return 1
    port_open "$FERRETDB_PORT" && return 0
    sleep 0.05
  done
  return 1
}

wait_redis() {
  local deadline
  deadline=$(($(now_ms) + READY_TIMEOUT * 1000))
  while (($(now_ms) < deadline)); do
    answers redis && return 0
    sleep 0.05
  done
  return 1
}

# ---------------------------------------------------------------------------------------------
# start / stop

start_ferretdb() {
  local t0 pid
  t0="$(now_ms)"
  if pid="$(running_pid ferretdb)"; then
    if answers ferretdb; then
      log "ferretdb: already up (pid $pid, port $FERRETDB_PORT)"
      return 0
    fi
    log "ferretdb: pid $pid is alive but port $FERRETDB_PORT does not answer yet; waiting"
    wait_ferretdb "$pid" || {
      tail_log ferretdb
      die "ferretdb (pid $pid) does not answer on port $FERRETDB_PORT; try \`$0 restart ferretdb\`"
    }
    log "ferretdb: up (pid $pid, port $FERRETDB_PORT) [$(elapsed "$t0")]"
    return 0
  fi
  rm -f "$(pid_file ferretdb)"
  port_open "$FERRETDB_PORT" &&
    die "port $FERRETDB_PORT is already in use by another process; stop it or set FERRETDB_PORT"
  install_ferretdb # no-op unless the sources changed since the last build
  rotate_log ferretdb
  local launcher=("$FERRETDB_BIN" -listen-addr "$HOST:$FERRETDB_PORT" -data-dir "$STACK_DIR/data/ferretdb"
    -log-level "$FERRETDB_LOG_LEVEL" -shutdown-timeout "$FERRETDB_SHUTDOWN_TIMEOUT")
  # setsid: own session, so Ctrl-C in the caller's terminal does not reach the server.
  # In a non-interactive shell the background job is not a group leader, so setsid execs
  # in place and $! is the server's own pid.
  if command -v setsid >/dev/null 2>&1; then
    setsid nohup "${launcher[@]}" </dev/null >>"$STACK_DIR/logs/ferretdb.log" 2>&1 9>&- &
  else
    nohup "${launcher[@]}" </dev/null >>"$STACK_DIR/logs/ferretdb.log" 2>&1 9>&- &
  fi
  pid=$!
  echo "$pid" >"$(pid_file ferretdb)"
  if ! wait_ferretdb "$pid"; then
    tail_log ferretdb
    kill -KILL "$pid" 2>/dev/null || true
    rm -f "$(pid_file ferretdb)"
    die "ferretdb did not answer a ping on port $FERRETDB_PORT within ${READY_TIMEOUT}s (log: $STACK_DIR/logs/ferretdb.log)"
  fi
  log "ferretdb: up (pid $pid, port $FERRETDB_PORT) [$(elapsed "$t0")]"
}

start_redis() {
  local t0 pid
  t0="$(now_ms)"
  if pid="$(running_pid redis)"; then
    if wait_redis; then
      log "redis: already up (pid $pid, port $REDIS_PORT)"
      return 0
    fi
    tail_log redis
    die "redis (pid $pid) does not answer on port $REDIS_PORT; try \`$0 restart redis\`"
  fi
  rm -f "$(pid_file redis)"
  port_open "$REDIS_PORT" &&
    die "port $REDIS_PORT is already in use by another process; stop it or set REDIS_PORT"
  command -v redis-server >/dev/null 2>&1 || install_redis
  rotate_log redis
  redis-server --bind "$HOST" --port "$REDIS_PORT" --protected-mode yes \
    --save '' --appendonly no --daemonize yes \
    --pidfile "$(pid_file redis)" --logfile "$STACK_DIR/logs/redis.log" \
    --dir "$STACK_DIR/data/redis" 9>&- ||
    { tail_log redis; die "redis-server failed to start"; }
  if ! wait_redis; then
    tail_log redis
    die "redis did not answer PING on port $REDIS_PORT within ${READY_TIMEOUT}s (log: $STACK_DIR/logs/redis.log)"
  fi
  # A daemonized redis writes its pid file itself; give it a moment if it is not there yet.
  for _ in {1..40}; do
    pid="$(running_pid redis)" && break
    sleep 0.05
  done
  [[ -n "${pid:-}" ]] || die "redis answers on port $REDIS_PORT but wrote no pid file $(pid_file redis)"
  log "redis: up (pid $pid, port $REDIS_PORT) [$(elapsed "$t0")]"
}

# ---------------------------------------------------------------------------------------------
# documentdb backend: PostgreSQL 15 (own cluster, run as the postgres user) + FerretDB v2

# as_postgres CMD...: run CMD as the postgres user (PostgreSQL refuses to run as root). setpriv
# execs in place, so a backgrounded `as_postgres postgres ...` has the server's own pid.
as_postgres() { setpriv --reuid=postgres --regid=postgres --init-groups "$@"; }

# The cluster lives in $STACK_DIR unless the postgres user cannot reach it there (a checkout
# under a private home folder); then under the postgres user's home, one cluster per STACK_DIR.
pg_data_dir() {
  local dir="$STACK_DIR/data/postgres" key
  mkdir -p "$dir"
  chown postgres:postgres "$dir"
  chmod 700 "$dir"
  if as_postgres test -w "$dir"; then
    echo "$dir"
    return 0
  fi
  key="$(printf '%s' "$STACK_DIR" | sha256sum | cut -c1-12)"
  dir="$(getent passwd postgres | cut -d: -f6)/enterprise-$key"
  mkdir -p "$dir"
  chown postgres:postgres "$dir"
  chmod 700 "$dir"
  echo "$dir"
}

pg_socket_dir() {
  local dir="$STACK_DIR/run"
  mkdir -p "$dir"
  chown postgres:postgres "$dir"
  if ! as_postgres test -w "$dir"; then
    dir="$(pg_data_dir)"
  fi
  echo "$dir"
}

# Settings DocumentDB needs (from its packaging/10-preload.sh), plus the two that turn an
# equality + sort query on a compound index into a plain index scan.
init_postgres() {
  local data="$1" t0
  [[ -s "$data/PG_VERSION" ]] && return 0
  t0="$(now_ms)"
  as_postgres "$PG_BIN/initdb" -D "$data" -U postgres --auth=trust --encoding=UTF8 \
    --locale=C.UTF-8 >>"$STACK_DIR/logs/postgres.log" 2>&1 ||
    { tail_log postgres; die "initdb of $data failed"; }
  cat >>"$data/postgresql.conf" <<'CONF'

# --- scripts/stack.sh (documentdb backend) ---
listen_addresses = '127.0.0.1'
shared_preload_libraries = 'pg_cron,pg_documentdb_core,pg_documentdb'
cron.database_name = 'postgres'
documentdb.enableCompact = true
documentdb.enableLetAndCollationForQueryMatch = true
documentdb.enableNowSystemVariable = true
documentdb.enableSortbyIdPushDownToPrimaryKey = true
documentdb.enableSchemaValidation = true
documentdb.enableBypassDocumentValidation = true
documentdb.enableUserCrud = true
documentdb.maxUserLimit = 100
documentdb.defaultUseCompositeOpClass = on
documentdb.enableIndexOrderbyPushdown = on
# Disposable development data: a crash may lose the last commits, never corrupt the cluster.
synchronous_commit = off
CONF
  log "postgres: initialised cluster $data [$(elapsed "$t0")]"
}

wait_postgres() {
  local pid="$1" deadline
  deadline=$(($(now_ms) + READY_TIMEOUT * 1000))
  while (($(now_ms) < deadline)); do
    alive "$pid" || return 1
    answers postgres && return 0
    sleep 0.1
  done
  return 1
}

start_postgres() {
  local t0 pid data sockets
  t0="$(now_ms)"
  if pid="$(running_pid postgres)"; then
    wait_postgres "$pid" || { tail_log postgres; die "postgres (pid $pid) does not answer on port $POSTGRES_PORT; try \`$0 restart postgres\`"; }
    log "postgres: already up (pid $pid, port $POSTGRES_PORT)"
    return 0
  fi
  rm -f "$(pid_file postgres)"
  port_open "$POSTGRES_PORT" &&
    die "port $POSTGRES_PORT is already in use by another process; stop it or set POSTGRES_PORT"
  [[ -x "$PG_BIN/postgres" ]] || install_documentdb
  rotate_log postgres
  data="$(pg_data_dir)"
  sockets="$(pg_socket_dir)"
  init_postgres "$data"
  # Port and sockets on the command line, so the faults tier's cluster can take others. WAL:
  # with the default max_wal_size (1 GB) one test run left 721 MB of it; test data needs less.
  # File-based persisted cursors: without them DocumentDB asks FerretDB to keep the PostgreSQL
  # connection of every sorted query's cursor, even one drained in its first batch, and
  # FerretDB then closes that connection (FerretDB-DocumentDB#270): a new backend (a fork and
  # DocumentDB's start-up) per sorted read. A 21-document page took 12.2 ms sequentially with
  # two forks per query; 0.86 ms and none with them (docs/benchmarks.md). On the command line,
  # so clusters made before this line get it at their next start too.
  setsid nohup setpriv --reuid=postgres --regid=postgres --init-groups \
    "$PG_BIN/postgres" -D "$data" -c port="$POSTGRES_PORT" -c listen_addresses="$HOST" \
    -c unix_socket_directories="$sockets" -c max_wal_size=256MB -c min_wal_size=64MB \
    -c documentdb.enableFileBasedPersistedCursors=on -c documentdb.useFileBasedPersistedCursors=on \
    </dev/null >>"$STACK_DIR/logs/postgres.log" 2>&1 9>&- &
  pid=$!
  echo "$pid" >"$(pid_file postgres)"
  if ! wait_postgres "$pid"; then
    tail_log postgres
    kill -INT "$pid" 2>/dev/null || true
    rm -f "$(pid_file postgres)"
    die "postgres did not answer on port $POSTGRES_PORT within ${READY_TIMEOUT}s (log: $STACK_DIR/logs/postgres.log)"
  fi
  # Idempotent; pulls in pg_cron, rum, postgis, vector and documentdb_core.
  "$PG_BIN/psql" -q -X -v ON_ERROR_STOP=1 -h "$HOST" -p "$POSTGRES_PORT" -U postgres -d postgres \
    -c 'CREATE EXTENSION IF NOT EXISTS documentdb CASCADE' >>"$STACK_DIR/logs/postgres.log" 2>&1 ||
    { tail_log postgres; die "CREATE EXTENSION documentdb CASCADE failed (log: $STACK_DIR/logs/postgres.log)"; }
  log "postgres: up (pid $pid, port $POSTGRES_PORT) [$(elapsed "$t0")]"
}

start_ferretdb2() {
  local t0 pid
  t0="$(now_ms)"
  start_postgres # FerretDB v2 is a front end of PostgreSQL: nothing to serve without it
  if pid="$(running_pid ferretdb2)"; then
    wait_ferretdb "$pid" || { tail_log ferretdb2; die "ferretdb2 (pid $pid) does not answer on port $FERRETDB_PORT; try \`$0 restart ferretdb\`"; }
    log "ferretdb2: already up (pid $pid, port $FERRETDB_PORT)"
    return 0
  fi
  rm -f "$(pid_file ferretdb2)"
  port_open "$FERRETDB_PORT" &&
    die "port $FERRETDB_PORT is already in use by another process (FerretDB v1? \`$0 down\`); stop it or set FERRETDB_PORT"
  [[ -x "$FERRETDB2_BIN" ]] || install_documentdb
  rotate_log ferretdb2
  local server=("$FERRETDB2_BIN" --postgresql-url="postgres://postgres@$HOST:$POSTGRES_PORT/postgres"
    --listen-addr="$HOST:$FERRETDB_PORT" --debug-addr="$HOST:$FERRETDB_DEBUG_PORT"
    --state-dir="$STACK_DIR/data/ferretdb2" --no-auth --telemetry=disable
    --log-level="${FERRETDB_LOG_LEVEL^^}")
  setsid nohup "${server[@]}" </dev/null >>"$STACK_DIR/logs/ferretdb2.log" 2>&1 9>&- &
  pid=$!
  echo "$pid" >"$(pid_file ferretdb2)"
  if ! wait_ferretdb "$pid"; then
    tail_log ferretdb2
    kill -KILL "$pid" 2>/dev/null || true
    rm -f "$(pid_file ferretdb2)"
    die "ferretdb2 did not answer a ping on port $FERRETDB_PORT within ${READY_TIMEOUT}s (log: $STACK_DIR/logs/ferretdb2.log)"
  fi
  log "ferretdb2: up (pid $pid, port $FERRETDB_PORT) [$(elapsed "$t0")]"
}

stop_one() {
  local name="$1" t0 pid file deadline
  t0="$(now_ms)"
  file="$(pid_file "$name")"
  if ! pid="$(running_pid "$name")"; then
    [[ -e "$file" ]] && log "$name: removing stale pid file"
    rm -f "$file"
    log "$name: not running"
    return 0
  fi
  # PostgreSQL: SIGINT is its fast shutdown; SIGTERM would wait for every client to leave.
  if [[ "$name" == postgres ]]; then kill -INT "$pid" 2>/dev/null || true; else kill -TERM "$pid" 2>/dev/null || true; fi
  deadline=$(($(now_ms) + STOP_TIMEOUT * 1000))
  while alive "$pid" && (($(now_ms) < deadline)); do
    sleep 0.02
  done
  if alive "$pid"; then
    log "$name: pid $pid still alive after ${STOP_TIMEOUT}s, sending KILL"
    kill -KILL "$pid" 2>/dev/null || true
    for _ in {1..250}; do
      alive "$pid" || break
      sleep 0.02
    done
  fi
  rm -f "$file"
  log "$name: stopped (pid $pid) [$(elapsed "$t0")]"
}

# ---------------------------------------------------------------------------------------------
# commands

print_env() {
  echo "export MONGODB_URI=mongodb://$HOST:$FERRETDB_PORT/"
  echo "export REDIS_URL=redis://$HOST:$REDIS_PORT/0"
}

cmd_status() {
  local name port pid state
  printf '%-9s %-8s %-6s %s\n' SERVER PID PORT STATE
  # shellcheck disable=SC2046 # a list of names
  for name in $(backend_servers); do
    port="$(port_of "$name")"
    if pid="$(running_pid "$name")"; then
      if answers "$name"; then state=up; else state="not answering"; fi
    else
      pid=-
      if port_open "$port"; then state="down (port in use by another process)"; else state=down; fi
    fi
    printf '%-9s %-8s %-6s %s\n' "$name" "$pid" "$port" "$state"
  done
  echo "backend: $STACK_BACKEND; stack dir: $STACK_DIR"
}

check_name() {
  case "${1:-}" in
    ferretdb | redis) ;;
    postgres) [[ "$STACK_BACKEND" == documentdb ]] || die "postgres runs only with STACK_BACKEND=documentdb" ;;
    *) die "expected 'ferretdb', 'postgres' or 'redis', got '${1:-}'" ;;
  esac
}

usage() {
  sed -n '2,27p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

main() {
  validate_port FERRETDB_PORT "$FERRETDB_PORT"
  validate_port REDIS_PORT "$REDIS_PORT"
  validate_port POSTGRES_PORT "$POSTGRES_PORT"
  validate_port FERRETDB_DEBUG_PORT "$FERRETDB_DEBUG_PORT"
  case "$STACK_BACKEND" in
    ferretdb | documentdb) ;;
    *) die "STACK_BACKEND must be 'ferretdb' or 'documentdb', got '$STACK_BACKEND'" ;;
  esac
  local cmd="${1:-}" t0 name
  t0="$(now_ms)"
  case "$cmd" in
    install)
      lock
      cmd_install
      ;;
    up)
      lock
      cmd_install
      if [[ "$STACK_BACKEND" == documentdb ]]; then start_ferretdb2; else start_ferretdb; fi
      start_redis
      log "stack up ($STACK_BACKEND) [$(elapsed "$t0")]; to use it:"
      print_env
      ;;
    down)
      lock
      # Both backends: a switch of STACK_BACKEND must not leave the other one running.
      for name in ferretdb ferretdb2 postgres redis; do
        [[ -e "$(pid_file "$name")" || " $(backend_servers) " == *" $name "* ]] && stop_one "$name"
      done
      log "stack down [$(elapsed "$t0")]"
      ;;
    start | stop | restart)
      check_name "${2:-}"
      name="$(process_of "$2")"
      lock
      case "$cmd" in
        start) "start_$name" ;;
        stop) stop_one "$name" ;;
        restart)
          stop_one "$name"
          "start_$name"
          ;;
      esac
      ;;
    status) cmd_status ;;
    env) print_env ;;
    logs)
      check_name "${2:-}"
      tail -n "${LINES_TO_SHOW:-50}" "$STACK_DIR/logs/$(process_of "$2").log"
      ;;
    -h | --help | help) usage ;;
    *)
      usage >&2
      exit 2
      ;;
  esac
}

main "$@"
