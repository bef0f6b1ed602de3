# Sourced by scripts/stack.sh and scripts/loadtools.sh: install Debian packages.
#
# apt_install PKG...: apt-get update + install (through sudo when not root). On failure it
# prints why on stderr and returns 1; the caller adds its own advice and exits.
apt_install() {
  local sudo=()
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "apt-get is not available to install $*" >&2
    return 1
  fi
  if ((EUID != 0)); then
    if ! command -v sudo >/dev/null 2>&1; then
      echo "installing $* needs root (or sudo)" >&2
      return 1
    fi
    sudo=(sudo)
  fi
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq || {
    echo "apt-get update failed" >&2
    return 1
  }
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "$@" >/dev/null || {
    echo "apt-get install $* failed" >&2
    return 1
  }
}
