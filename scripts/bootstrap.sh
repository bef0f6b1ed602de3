#!/usr/bin/env bash
# Create .venv (Python >= 3.12) and install the package in editable mode with extras.
#
# Usage: scripts/bootstrap.sh [EXTRAS]      EXTRAS defaults to "dev"; e.g. "bench" or "dev,bench"
# Env:   PYTHON  interpreter used to create the venv (default: python3.12, python3.13, python3,
#                then the 3.12 and 3.13 that pyenv keeps under $PYENV_ROOT, ~/.pyenv by default)
#
# Idempotent and fast when nothing changed: pip runs only when pyproject.toml (or the extras)
# differ from the stamp kept in .venv.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$REPO/.venv"
EXTRAS="${1:-dev}"

log() { printf '[bootstrap] %s\n' "$*"; }
die() {
  printf '[bootstrap] error: %s\n' "$*" >&2
  exit 1
}

[[ "$EXTRAS" =~ ^[a-z0-9,_-]+$ ]] || die "invalid extras '$EXTRAS'"

# shellcheck source=scripts/common.sh
source "$REPO/scripts/common.sh"

# python_ok EXE: EXE runs and is a CPython the project supports (>= 3.12, < 3.14; not 3.11:
# see requires-python in pyproject.toml).
python_ok() {
  "$1" -c 'import sys; sys.exit(0 if (3, 12) <= sys.version_info[:2] < (3, 14) else 1)' 2>/dev/null
}

# The first supported interpreter: on PATH, else one pyenv has installed but not selected (its
# shims then refuse to run it, so its own binary is used).
find_python() {
  local candidate
  for candidate in ${PYTHON:-} python3.12 python3.13 python3 \
    "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.12*/bin/python3 \
    "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.13*/bin/python3; do
    if command -v "$candidate" >/dev/null 2>&1 && python_ok "$candidate"; then
      command -v "$candidate"
      return 0
    fi
  done
  return 1
}

t0="$(now_ms)"

if [[ -x "$VENV/bin/python" ]] && python_ok "$VENV/bin/python"; then
  log ".venv exists ($("$VENV/bin/python" -V 2>&1))"
else
  py="$(find_python)" || die "Python 3.12 or 3.13 not found; install one or set PYTHON=/path/to/python3.12"
  if [[ -e "$VENV" ]]; then
    log ".venv is broken or uses an unsupported Python; recreating it"
    rm -rf "$VENV"
  fi
  log "creating .venv with $py ($("$py" -V 2>&1))"
  "$py" -m venv "$VENV"
  "$VENV/bin/python" -m pip install --disable-pip-version-check -q --upgrade pip
fi

stamp="$VENV/.bootstrap-${EXTRAS//,/-}.sha256"
want="$( (cat "$REPO/pyproject.toml"; echo "extras=$EXTRAS") | sha256sum | cut -d' ' -f1)"
have=""
[[ -f "$stamp" ]] && have="$(cat "$stamp")"

if [[ "$want" == "$have" ]]; then
  log "'.[$EXTRAS]' up to date (pyproject.toml unchanged) [$(elapsed "$t0")]"
  exit 0
fi

log "pip install -e '.[$EXTRAS]' (pyproject.toml changed or first install)"
t1="$(now_ms)"
PIP_DISABLE_PIP_VERSION_CHECK=1 "$VENV/bin/python" -m pip install -q -e "${REPO}[${EXTRAS}]"
echo "$want" >"$stamp"
log "installed '.[$EXTRAS]' [pip $(elapsed "$t1"), total $(elapsed "$t0")]"
