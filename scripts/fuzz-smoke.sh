#!/usr/bin/env bash
# Short fuzz runs of every cargo-fuzz target, seeded from corpus/ (the test command runs this).
#
#   scripts/fuzz-smoke.sh [SECONDS_PER_TARGET]      (default 15)
#
# Installs cargo-fuzz if missing. Runs on the stable compiler with RUSTC_BOOTSTRAP=1. A crash
# fails the run and leaves its input in fuzz/artifacts/<target>/: copy it to
# fuzz/regressions/<target>/ once fixed, so tests/fuzz_regressions.rs keeps it fixed.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-15}
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked -q
export RUSTC_BOOTSTRAP=1
SEEDS=target/fuzz-seeds
rm -rf "$SEEDS"
seed() {  # seed TARGET FILE...
  local t=$1; shift
  mkdir -p "$SEEDS/$t"
  for f in "$@"; do [ -f "$f" ] && cp "$f" "$SEEDS/$t/$(basename "$f" | md5sum | cut -c1-16)"; done
  if [ -d "fuzz/regressions/$t" ]; then cp fuzz/regressions/"$t"/* "$SEEDS/$t/" 2>/dev/null || true; fi
}
C=corpus/extract
seed message $C/mail/*.eml $C/hostile/*.eml
seed zip $C/docs/*.zip
seed pdf $C/docs/*.pdf
seed ooxml $C/docs/*.docx $C/docs/*.pptx $C/docs/*.odt $C/docs/*.odp $C/docs/*.doc $C/docs/*.rtf
seed spreadsheet $C/docs/*.xlsx $C/docs/*.xls $C/docs/*.ods $C/hostile/*.xlsx
seed text corpus/samples/*.txt
cd fuzz
for t in message zip pdf ooxml spreadsheet text; do
  echo "== fuzz $t (${SECS}s)"
  cargo fuzz run --target-dir ../target/fuzz "$t" "../$SEEDS/$t" -- \
    -max_total_time="$SECS" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 2>&1 | grep -E "^(stat::number_of_executed_units|stat::peak_rss_mb|==[0-9]+==ERROR|SUMMARY|.*panicked)" || true
  if [ -n "$(find artifacts/"$t" -type f 2>/dev/null | head -1)" ]; then
    echo "fuzz target $t found a failing input: see fuzz/artifacts/$t/" >&2
    exit 1
  fi
done
