#!/usr/bin/env bash
# Install the load generators the benchmarks use, when missing: wrk and hey (Debian packages).
# Idempotent: does nothing when both are on PATH. k6 is not packaged here; its scripts run
# through `docker compose --profile k6` (see loadtests/k6/README.md).
set -euo pipefail

log() { printf '[loadtools] %s\n' "$*"; }
die() {
  printf '[loadtools] error: %s\n' "$*" >&2
  exit 1
}

missing=()
for tool in wrk hey; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if ((${#missing[@]} == 0)); then
  log "wrk and hey present"
  exit 0
fi
# shellcheck source=scripts/apt.sh
source "$(dirname "${BASH_SOURCE[0]}")/apt.sh"
log "installing ${missing[*]} with apt-get"
apt_install "${missing[@]}" || die "could not install ${missing[*]} (above): use your package manager"
log "installed ${missing[*]}"
