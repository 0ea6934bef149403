#!/usr/bin/env bash
# Extraction peers: ping32dlp against Apache Tika (extractous, Tika compiled to a native library)
# and kreuzberg on the project's extraction corpus (corpus/extract): what each reads, fails on or
# reports as unreadable, how many planted values the project's detectors find in each one's
# text, and warm MB/s. How each tool is driven: scripts/extract_peers.py.
#
#   scripts/bench-extract-peers.sh            # the whole corpus, 5 timed rounds (a few minutes)
#   scripts/bench-extract-peers.sh --quick    # five files, one round: checks that it works
#
# The peers are PyPI wheels (pinned below) installed once into a venv at
# $EXTRACT_PEERS_VENV (default /var/tmp/ping32dlp-extract-peers); nothing is downloaded at run
# time after that. Results: stdout, and target/extract-peers.md.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${EXTRACT_PEERS_VENV:-/var/tmp/ping32dlp-extract-peers}
want="extractous==0.3.0 kreuzberg==4.10.4"
have() {
  "$venv/bin/python" - $want <<'PY' 2>/dev/null
import importlib.metadata as m, sys
sys.exit(any(m.version(s.split("==")[0]) != s.split("==")[1] for s in sys.argv[1:]))
PY
}
if ! have; then
  python3 -m venv "$venv"
  # shellcheck disable=SC2086
  "$venv/bin/pip" install -q --disable-pip-version-check $want
  have || { echo "bench-extract-peers: could not install $want into $venv" >&2; exit 1; }
fi
# PING32DLP_BIN: a release CLI already built (the test command's, built beside the daemons:
# building the CLI alone would unify dependency features differently and compile again).
bin=${PING32DLP_BIN:-}
if [ -z "$bin" ]; then
  cargo build --release --locked -q -p ping32dlp-cli
  bin=$(pwd)/target/release/ping32dlp
fi
mkdir -p target
exec "$venv/bin/python" scripts/extract_peers.py --bin "$bin" \
  --corpus corpus/extract --out target/extract-peers.md "$@"
