#!/usr/bin/env bash
# Runs every test of libping32dlp: formatting, clippy, unit / integration / doc / property tests,
# the CLI tests, the benchmarks' compilation, the C ABI (header drift, symbols, C tests under
# sanitizers, valgrind, the Python binding), the milter and the SMTP proxy with a real Postfix,
# the ICAP webmail hook with a real Squid, the web console in Chromium, fuzz smoke runs, the differential test
# against python-stdnum, and the extraction peers script in its quick mode.
# Installs what the tests need (idempotent). `.ci/run` calls exactly this script.
#
#   scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
T0=$(date +%s)
free_gib() { df -Pk "$ROOT" | awk 'NR==2 { printf "%d", $4 / 1048576 }'; }
step() { printf '\n== [%4ss] %s (disk: %s GiB free)\n' "$(( $(date +%s) - T0 ))" "$*" "$(free_gib)"; }

# A run from a clean clone writes about 15 GB under target/ (debug, release, the sanitizer
# build of the fuzz targets). It builds everything once, so incremental-compilation caches are
# only disk, and line tables are all the tests' backtraces need.
export CARGO_INCREMENTAL=0
export CARGO_PROFILE_DEV_DEBUG=line-tables-only

apt_install() {  # apt_install PACKAGE... (only what is missing)
  local missing=()
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -ne 0 ]; then echo "need root to install: ${missing[*]}" >&2; return 1; fi
  export DEBIAN_FRONTEND=noninteractive
  for _ in 1 2 3 4 5; do  # the dpkg lock may be held by a boot-time job
    apt-get update -qq && apt-get install -y -qq "${missing[@]}" >/dev/null && return 0
    sleep 5
  done
  return 1
}

step "toolchain"
command -v cargo >/dev/null || { echo "cargo not found: install Rust 1.95 (rustup)" >&2; exit 1; }
cargo --version
rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt
rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy
command -v python3 >/dev/null || apt_install python3
python3 -c 'import venv, ensurepip' 2>/dev/null || apt_install python3-venv

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -q -- -D warnings
# The library without its `simd` feature (the scalar paths alone), as a vendor may build it.
cargo clippy -p ping32dlp --all-targets --no-default-features --locked -q -- -D warnings

step "cargo test (unit, integration, properties, CLI, doc tests)"
cargo test --workspace --locked -q

step "release build and benchmarks compile"
cargo build --release --locked -q -p ping32dlp-cli -p ping32dlp-milter -p ping32dlp-proxy -p ping32dlp-icap -p ping32dlp-console
cargo bench --locked --no-run -q 2>&1 | grep -v '^ *Executable' || true

step "C ABI: make install, symbols, header as C/C++, C tests under ASan+UBSan, valgrind, Python"
apt_install pkg-config valgrind binutils libsqlite3-dev
scripts/ffi-test.sh

step "milter against a real Postfix (private instance on loopback)"
if [ "$(id -u)" = 0 ]; then
  scripts/milter-test.sh
else
  echo "SKIPPED: scripts/milter-test.sh needs root (CI runs as root)" >&2
fi

step "SMTP proxy between real clients and a real Postfix upstream"
if [ "$(id -u)" = 0 ]; then
  scripts/proxy-test.sh
else
  echo "SKIPPED: scripts/proxy-test.sh needs root (CI runs as root)" >&2
fi

step "webmail hook (ICAP) with a real Squid"
if [ "$(id -u)" = 0 ]; then
  scripts/icap-test.sh
else
  echo "SKIPPED: scripts/icap-test.sh needs root (CI runs as root)" >&2
fi

step "shared store: PostgreSQL (store suite, two gateways and two consoles, store down, kill -9)"
if [ "$(id -u)" = 0 ]; then
  scripts/store-test.sh
else
  echo "SKIPPED: scripts/store-test.sh needs root (CI runs as root)" >&2
fi

step "endpoint fleet: a server (console + PostgreSQL), three proxy agents, a real Postfix; offline, revoked"
if [ "$(id -u)" = 0 ]; then
  scripts/fleet-test.sh
else
  echo "SKIPPED: scripts/fleet-test.sh needs root (CI runs as root)" >&2
fi

step "company directory: a private OpenLDAP, a real Postfix with the milter, the manager approves in the console"
if [ "$(id -u)" = 0 ]; then
  scripts/directory-test.sh
else
  echo "SKIPPED: scripts/directory-test.sh needs root (CI runs as root)" >&2
fi

step "transparent mode: nftables redirect, SMTP STARTTLS / TLS interception, Squid ssl-bump + ICAP, in network namespaces"
if [ "$(id -u)" = 0 ]; then
  scripts/transparent-test.sh
else
  echo "SKIPPED: scripts/transparent-test.sh needs root (CI runs as root)" >&2
fi

step "web console in a real browser (Chromium over WebDriver, a real Postfix and the milter)"
if [ "$(id -u)" = 0 ]; then
  scripts/console-test.sh
else
  echo "SKIPPED: scripts/console-test.sh needs root (CI runs as root)" >&2
fi

step "Debian packages: cargo-deb, dpkg -i, files, user, modes, systemd-analyze verify, daemons as the service user, remove, purge"
if [ "$(id -u)" = 0 ]; then
  scripts/package-test.sh
else
  echo "SKIPPED: scripts/package-test.sh needs root (CI runs as root)" >&2
fi

step "fuzz smoke runs (every cargo-fuzz target, seeded from corpus/)"
# No step from here on uses the debug build; on a small disk it makes room for the sanitizer
# build (about 4 GB). A CI run once failed here with "No space left on device".
if [ "$(free_gib)" -lt 12 ] && [ -d target/debug ]; then
  echo "only $(free_gib) GiB free: removing target/debug (the remaining steps do not use it)"
  rm -rf target/debug
fi
scripts/fuzz-smoke.sh "${FUZZ_SECONDS:-15}"

step "differential test against python-stdnum"
VENV=$ROOT/target/test-venv
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/python" -c 'import stdnum' 2>/dev/null || "$VENV/bin/pip" install -q 'python-stdnum==2.2'
"$VENV/bin/python" tests/stdnum/diff.py target/release/ping32dlp --n 10000

step "extraction peers, quick mode (Apache Tika via extractous, kreuzberg; five files)"
PING32DLP_BIN=$ROOT/target/release/ping32dlp scripts/bench-extract-peers.sh --quick

step "all tests passed"
