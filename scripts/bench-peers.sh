#!/usr/bin/env bash
# Reproducible side-by-side benchmark against ../shared/peers (Hyperscan, ripgrep, Presidio, the raw
# Rust crates). Builds the release CLI, installs the peers once (--setup; needs root and the
# package registries) and runs them with ping32dlp as one more peer.
#
#   scripts/bench-peers.sh            # 100 MB corpora, 4 rounds (about 8 minutes on 2 cores)
#   scripts/bench-peers.sh --quick    # 20 MB, 3 rounds
#
# Arguments are passed to run-all.sh. Results: $PEERS_CORPUS/results-*/table.md.
set -euo pipefail
cd "$(dirname "$0")/.."
peers=${PEERS_DIR:-../shared/peers}
[ -d "$peers" ] || { echo "no peers harness at $peers (set PEERS_DIR)" >&2; exit 1; }
cargo build --release -q -p ping32dlp-cli
bin=$(pwd)/target/release/ping32dlp
work=${PEERS_WORK:-/tmp/peers-work}
if [ ! -x "$work/.venv/bin/python" ] || ! command -v rg >/dev/null || ! pkg-config --exists libhs 2>/dev/null; then
  PEERS_WORK=$work bash "$peers/run-all.sh" --setup --quick >/dev/null
fi
PEERS_WORK=$work PING32DLP_BIN=$bin bash "$peers/run-all.sh" "$@"
