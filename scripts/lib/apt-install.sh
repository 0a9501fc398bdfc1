# shellcheck shell=bash
# Sourced by the bench and profiling scripts: installs a Debian package when a command is
# missing (apt-get; sudo when not root), with one `apt-get update` retry for a stale list.
#
#   ensure_command SCRIPT COMMAND PACKAGE
#       returns at once when COMMAND is on PATH; otherwise installs PACKAGE or exits 1
#       with a message naming SCRIPT and what to run by hand. After an install, SUDO is
#       the array to prefix follow-up root commands with (empty when root).

ensure_command() {
  local script=$1 command=$2 package=$3
  command -v "$command" >/dev/null 2>&1 && return 0
  SUDO=()
  if [ "$(id -u)" -ne 0 ]; then
    if ! command -v sudo >/dev/null 2>&1; then
      echo "$script: $command is not installed and installing it needs root (no sudo here):" \
        "run 'apt-get install $package' as root" >&2
      exit 1
    fi
    SUDO=(sudo)
  fi
  echo "$script: installing $package (apt-get) ..." >&2
  _apt_install() {
    ${SUDO[@]+"${SUDO[@]}"} env DEBIAN_FRONTEND=noninteractive \
      apt-get install -y --no-install-recommends "$package" >&2
  }
  if ! _apt_install && ! { ${SUDO[@]+"${SUDO[@]}"} apt-get update >&2 && _apt_install; }; then
    echo "$script: installing $package with apt-get failed (see above);" \
      "install it by hand (apt-get install $package) and run again" >&2
    exit 1
  fi
  command -v "$command" >/dev/null 2>&1 || {
    echo "$script: $package installed but $command is not on PATH ($PATH)" >&2
    exit 1
  }
}
