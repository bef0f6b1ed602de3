#!/usr/bin/env bash
# Install the browser the dashboard tests drive, when missing: Debian's chromium and
# chromium-driver (/usr/bin/chromium, /usr/bin/chromedriver). Idempotent: does nothing when
# both are on PATH. No browser download of a test tool's own: there is no network but the
# package registries, and Debian's build is the one the tests pin their flags to.
set -euo pipefail

log() { printf '[browser] %s\n' "$*"; }
die() {
  printf '[browser] error: %s\n' "$*" >&2
  exit 1
}

if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
  log "$(chromium --version 2>/dev/null | head -n1) and chromedriver present"
  exit 0
fi
# shellcheck source=scripts/apt.sh
source "$(dirname "${BASH_SOURCE[0]}")/apt.sh"
log "installing chromium and chromium-driver with apt-get (about 100 MB, once)"
apt_install chromium chromium-driver ||
  die "could not install chromium and chromium-driver (above): use your package manager"
log "installed $(chromium --version 2>/dev/null | head -n1)"
