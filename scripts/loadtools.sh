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
command -v apt-get >/dev/null 2>&1 ||
  die "${missing[*]} missing and apt-get is not available: install them with your package manager"
sudo=()
if ((EUID != 0)); then
  command -v sudo >/dev/null 2>&1 || die "installing ${missing[*]} needs root (or sudo)"
  sudo=(sudo)
fi
log "installing ${missing[*]} with apt-get"
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq || die "apt-get update failed"
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
  "${missing[@]}" >/dev/null || die "apt-get install ${missing[*]} failed"
log "installed ${missing[*]}"
