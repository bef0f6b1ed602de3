#!/usr/bin/env bash
# Builds the second local backend, offline, from Debian packages, the Go module proxy and the
# source archives in ../shared/vendor/: PostgreSQL 15 + pg_cron + pgvector + DocumentDB, and
# FerretDB v2.5.0 (the MongoDB wire protocol in front of it). scripts/stack.sh runs the servers.
#
# Usage: scripts/documentdb.sh install     build what is missing (a second run is a no-op)
#        scripts/documentdb.sh check       exit 0 when everything is installed, 1 otherwise
#
# Environment:
#   VENDOR_DIR  folder with the source archives (default <repo>/../shared/vendor)
#   STACK_DIR   default <repo>/.stack: bin/ferretdb2 and build/ go here
#
# PostgreSQL extensions install into Debian's PostgreSQL 15 (`make install`, as root); a stamp
# beside them (sha256 of archive + build flags) says which build is there, so a second run
# builds nothing. The FerretDB binary is stamped the same way in $STACK_DIR/bin.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STACK_DIR="${STACK_DIR:-$REPO/.stack}"
VENDOR_DIR="${VENDOR_DIR:-$REPO/../shared/vendor}"
PG_MAJOR=15
PG_CONFIG="/usr/lib/postgresql/$PG_MAJOR/bin/pg_config"
BUILD_DIR="$STACK_DIR/build"
FERRETDB2_VERSION=v2.5.0
FERRETDB2_MODULE=github.com/FerretDB/FerretDB/v2
FERRETDB2_OVERLAY="$REPO/scripts/ferretdb2"
FERRETDB2_BIN="$STACK_DIR/bin/ferretdb2"

# Debian packages: PostgreSQL 15 and what DocumentDB links against. Not postgresql-15-cron:
# Debian's pg_cron 1.4.2 is too old (`CREATE EXTENSION documentdb CASCADE` fails with
# "invalid schedule: 2 seconds"); pg_cron 1.6.3 is built from the vendored archive instead.
APT_PACKAGES=(postgresql-$PG_MAJOR postgresql-server-dev-$PG_MAJOR postgresql-$PG_MAJOR-postgis-3
  postgresql-$PG_MAJOR-rum libbson-dev libpcre2-dev libintelrdfpmath-dev libicu-dev libkrb5-dev
  cmake pkg-config build-essential)

# archive -> sha256, from ../shared/vendor/README.md
declare -A ARCHIVE_SHA256=(
  [documentdb-0.106.0-ferretdb-2.5.0.tar.gz]=c06c5b2287ac9e439c9fbcfc1095c605d81975e1e6792aa83eb4c9f7008b7eff
  [pgvector-0.8.0.tar.gz]=f735d37c1f8a32a0c46f29db63860bdc1ed06a423d4280767afbd38f1fe58778
  [pg_cron-1.6.3.tar.gz]=105b669241ea200f0e9a5ffbc2c4e8c33b0dfaba2b13e06cdb4621382b7995d5
)
# libbson: Debian ships 1.23, DocumentDB 0.106 expects 1.28, which added this subtype.
DOCUMENTDB_COPT='-DBSON_SUBTYPE_SENSITIVE=0x08 -Wno-error=switch'

# shellcheck source=scripts/apt.sh
source "$REPO/scripts/apt.sh"
# shellcheck source=scripts/common.sh
source "$REPO/scripts/common.sh"

log() { printf '[documentdb] %s\n' "$*"; }
die() {
  printf '[documentdb] error: %s\n' "$*" >&2
  exit 1
}



jobs_flag() { echo "-j$(nproc 2>/dev/null || echo 2)"; }

# ---------------------------------------------------------------------------------------------
# Debian packages

apt_missing() {
  local pkg missing=()
  for pkg in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null | grep -qx installed || missing+=("$pkg")
  done
  echo "${missing[@]}"
}

install_packages() {
  local t0 missing
  t0="$(now_ms)"
  missing="$(apt_missing)"
  if [[ -z "$missing" ]]; then
    log "apt: PostgreSQL $PG_MAJOR and build dependencies installed [$(elapsed "$t0")]"
    return 0
  fi
  log "apt: installing $missing"
  # shellcheck disable=SC2086 # a list of package names
  apt_install $missing || die "could not install Debian packages: $missing (above)"
  log "apt: installed [$(elapsed "$t0")]"
}

# ---------------------------------------------------------------------------------------------
# vendored archives

# archive NAME: prints the verified path of a vendored archive, or dies saying what is missing.
archive() {
  local name="$1" path want have
  path="$VENDOR_DIR/$name"
  want="${ARCHIVE_SHA256[$name]}"
  [[ -f "$path" ]] || die "missing source archive $path
  (VENDOR_DIR=$VENDOR_DIR). It is the unmodified \`git archive\` of the tag listed in
  shared/vendor/README.md; put it there or point VENDOR_DIR at a folder that has it."
  have="$(sha256sum "$path" | cut -d' ' -f1)"
  [[ "$have" == "$want" ]] || die "$path has sha256 $have, expected $want: refusing to build from it"
  echo "$path"
}

# stamp NAME: where the stamp of an installed extension lives (beside the extension files).
stamp_file() { echo "$("$PG_CONFIG" --sharedir)/extension/enterprise-$1.stamp"; }

# unpack ARCHIVE DIR: a fresh copy of the sources in DIR.
unpack() {
  rm -rf "$2"
  mkdir -p "$2"
  tar -xzf "$1" -C "$2" --strip-components=1
}

# build_extension NAME ARCHIVE CHECK_FILE MAKE_ARGS...: make + make install, unless the stamp
# says this exact build is installed and its library is still there.
build_extension() {
  local name="$1" path="$2" check="$3" t0 want have="" src
  shift 3
  t0="$(now_ms)"
  want="$(printf '%s %s' "${ARCHIVE_SHA256[$(basename "$path")]}" "$*" | sha256sum | cut -d' ' -f1)"
  [[ -f "$(stamp_file "$name")" ]] && have="$(cat "$(stamp_file "$name")")"
  if [[ "$want" == "$have" && -f "$check" ]]; then
    log "$name: installed [$(elapsed "$t0")]"
    return 0
  fi
  log "$name: building from $(basename "$path")"
  src="$BUILD_DIR/$name"
  unpack "$path" "$src"
  make -C "$src" -s "$(jobs_flag)" PG_CONFIG="$PG_CONFIG" "$@" >"$BUILD_DIR/$name.log" 2>&1 &&
    make -C "$src" -s PG_CONFIG="$PG_CONFIG" "$@" install >>"$BUILD_DIR/$name.log" 2>&1 ||
    { tail -n 30 "$BUILD_DIR/$name.log" >&2; die "building $name failed (log: $BUILD_DIR/$name.log)"; }
  echo "$want" >"$(stamp_file "$name")"
  log "$name: built and installed [$(elapsed "$t0")]"
}

# The Intel decimal library ships no pkg-config file; DocumentDB's Makefile asks for one.
write_intelmathlib_pc() {
  mkdir -p "$BUILD_DIR/pkgconfig"
  cat >"$BUILD_DIR/pkgconfig/intelmathlib.pc" <<'PC'
prefix=/usr
libdir=${prefix}/lib/x86_64-linux-gnu
includedir=${prefix}/include

Name: intelmathlib
Description: Intel Decimal Floating-Point Math Library (Debian libintelrdfpmath-dev)
Version: 2.0u2
Libs: -L${libdir} -lbidgcc000
Cflags: -I${includedir}
PC
  local multiarch
  multiarch="$(gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)"
  sed -i "s|x86_64-linux-gnu|$multiarch|" "$BUILD_DIR/pkgconfig/intelmathlib.pc"
}

install_extensions() {
  local libdir pgvector pg_cron documentdb
  libdir="$("$PG_CONFIG" --pkglibdir)"
  mkdir -p "$BUILD_DIR"
  # Each on its own line: a failed $(archive ...) in an argument list would not stop set -e.
  pgvector="$(archive pgvector-0.8.0.tar.gz)"
  pg_cron="$(archive pg_cron-1.6.3.tar.gz)"
  documentdb="$(archive documentdb-0.106.0-ferretdb-2.5.0.tar.gz)"
  build_extension pgvector "$pgvector" "$libdir/vector.so" with_llvm=no
  build_extension pg_cron "$pg_cron" "$libdir/pg_cron.so" with_llvm=no
  write_intelmathlib_pc
  PKG_CONFIG_PATH="$BUILD_DIR/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}" \
    build_documentdb "$documentdb" "$libdir"
}

# DocumentDB is two extensions from one archive: pg_documentdb_core, then pg_documentdb.
build_documentdb() {
  local path="$1" libdir="$2" t0 want have="" src part
  t0="$(now_ms)"
  want="$(printf '%s %s' "${ARCHIVE_SHA256[$(basename "$path")]}" "$DOCUMENTDB_COPT" | sha256sum | cut -d' ' -f1)"
  [[ -f "$(stamp_file documentdb)" ]] && have="$(cat "$(stamp_file documentdb)")"
  if [[ "$want" == "$have" && -f "$libdir/pg_documentdb.so" && -f "$libdir/pg_documentdb_core.so" ]]; then
    log "documentdb: installed [$(elapsed "$t0")]"
    return 0
  fi
  log "documentdb: building from $(basename "$path") (about 40 s on 2 cores)"
  src="$BUILD_DIR/documentdb"
  unpack "$path" "$src"
  : >"$BUILD_DIR/documentdb.log"
  for part in pg_documentdb_core pg_documentdb; do
    make -C "$src/$part" -s "$(jobs_flag)" PG_CONFIG="$PG_CONFIG" with_llvm=no \
      COPT="$DOCUMENTDB_COPT" >>"$BUILD_DIR/documentdb.log" 2>&1 &&
      make -C "$src/$part" -s PG_CONFIG="$PG_CONFIG" with_llvm=no COPT="$DOCUMENTDB_COPT" \
        install >>"$BUILD_DIR/documentdb.log" 2>&1 ||
      { tail -n 30 "$BUILD_DIR/documentdb.log" >&2; die "building $part failed (log: $BUILD_DIR/documentdb.log)"; }
  done
  echo "$want" >"$(stamp_file documentdb)"
  log "documentdb: built and installed [$(elapsed "$t0")]"
}

# ---------------------------------------------------------------------------------------------
# FerretDB v2


ferretdb2_hash() {
  (echo "$FERRETDB2_MODULE@$FERRETDB2_VERSION" && cd "$FERRETDB2_OVERLAY" &&
    cat version.txt gomaxprocs_go125.go) | sha256sum | cut -d' ' -f1
}

# The module as published lacks build/version/version.txt (generated by FerretDB's release
# tooling; its go:embed needs it) and, on Go >= 1.25, a setGOMAXPROCS (its only definition is
# tagged !go1.25). Copy the module, add both from scripts/ferretdb2/, build cmd/ferretdb.
install_ferretdb2() {
  local t0 go want have="" dir src tmp
  t0="$(now_ms)"
  want="$(ferretdb2_hash)"
  [[ -f "$FERRETDB2_BIN.sha256" ]] && have="$(cat "$FERRETDB2_BIN.sha256")"
  if [[ -x "$FERRETDB2_BIN" && "$want" == "$have" ]]; then
    log "ferretdb2: $FERRETDB2_VERSION built ($FERRETDB2_BIN) [$(elapsed "$t0")]"
    return 0
  fi
  go="$(find_go)" || die "Go (>= 1.24) is needed to build FerretDB $FERRETDB2_VERSION and was not found"
  log "ferretdb2: building $FERRETDB2_VERSION with $("$go" version | cut -d' ' -f3) (about 1 min with cold Go caches)"
  dir="$(cd "$BUILD_DIR" && GOFLAGS=-mod=mod "$go" mod download -json "$FERRETDB2_MODULE@$FERRETDB2_VERSION" |
    sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')" || die "go mod download $FERRETDB2_MODULE@$FERRETDB2_VERSION failed"
  [[ -d "$dir" ]] || die "go mod download gave no module folder for $FERRETDB2_MODULE@$FERRETDB2_VERSION"
  src="$BUILD_DIR/ferretdb2"
  rm -rf "$src"
  cp -r "$dir" "$src"
  chmod -R u+w "$src"
  cp "$FERRETDB2_OVERLAY/version.txt" "$src/build/version/version.txt"
  cp "$FERRETDB2_OVERLAY/gomaxprocs_go125.go" "$src/cmd/ferretdb/gomaxprocs_go125.go"
  mkdir -p "$(dirname "$FERRETDB2_BIN")"
  tmp="$FERRETDB2_BIN.tmp.$$"
  if ! (cd "$src" && "$go" build -mod=readonly -trimpath -buildvcs=false -o "$tmp" ./cmd/ferretdb); then
    rm -f "$tmp"
    die "building FerretDB $FERRETDB2_VERSION failed (see the Go output above)"
  fi
  mv -f "$tmp" "$FERRETDB2_BIN"
  echo "$want" >"$FERRETDB2_BIN.sha256"
  log "ferretdb2: built $FERRETDB2_BIN [$(elapsed "$t0")]"
}

# ---------------------------------------------------------------------------------------------

cmd_install() {
  local t0
  t0="$(now_ms)"
  ((EUID == 0)) || die "installing PostgreSQL extensions needs root (make install into $PG_CONFIG's folders)"
  mkdir -p "$BUILD_DIR"
  install_packages
  install_extensions
  install_ferretdb2
  log "install done [$(elapsed "$t0")]"
}

cmd_check() {
  local libdir
  [[ -z "$(apt_missing)" ]] || return 1
  libdir="$("$PG_CONFIG" --pkglibdir)"
  [[ -f "$libdir/pg_documentdb.so" && -f "$libdir/pg_cron.so" && -f "$libdir/vector.so" ]] || return 1
  [[ -x "$FERRETDB2_BIN" && "$(cat "$FERRETDB2_BIN.sha256" 2>/dev/null)" == "$(ferretdb2_hash)" ]]
}

case "${1:-install}" in
  install) cmd_install ;;
  check) cmd_check ;;
  *)
    sed -n '2,13p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
    exit 2
    ;;
esac
