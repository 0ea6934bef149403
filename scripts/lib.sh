# What the test scripts share (source it): pass/fail counting, checks, root and binaries,
# package installs that never start the packages' system services.
PASS=0; FAILS=0
ok() { PASS=$((PASS + 1)); echo "PASS: $*"; }
bad() { FAILS=$((FAILS + 1)); echo "FAIL: $*"; }
die() { echo "FATAL: $*" >&2; exit 1; }
check() { if eval "$2"; then ok "$1"; else bad "$1"; fi; }   # description, shell test
need_root() { [ "$(id -u)" = 0 ] || die "run as root"; }
need_built() { for b in "$@"; do [ -x "$b" ] || die "build first: cargo build --release --workspace ($b)"; done; }
apt_install() {  # packages: installed with policy-rc.d in place, so no system daemon starts
  [ $# -gt 0 ] || return 0
  local made=0
  export DEBIAN_FRONTEND=noninteractive
  [ -e /usr/sbin/policy-rc.d ] || { printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod 755 /usr/sbin/policy-rc.d; made=1; }
  apt-get -o DPkg::Lock::Timeout=600 update -qq
  apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends "$@" >/dev/null
  [ "$made" = 1 ] && rm -f /usr/sbin/policy-rc.d
  return 0
}
