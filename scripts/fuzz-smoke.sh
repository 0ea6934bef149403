#!/usr/bin/env bash
# Short fuzz runs of every cargo-fuzz target, seeded from corpus/ (the test command runs this).
#
#   scripts/fuzz-smoke.sh [SECONDS_PER_TARGET]      (default 15)
#   TARGETS="rules policy" scripts/fuzz-smoke.sh 1800   (long runs of some targets, outside CI)
#
# Prints libFuzzer's final figures per target: executions, executions per second, new corpus
# units and peak memory.
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
seed() {  # seed TARGET FILE...   (files over 128 KiB are left out: one 600 KB list would slow a
  local t=$1; shift                 # 15-second run to a few dozen executions; the tests read them)
  mkdir -p "$SEEDS/$t"
  for f in "$@"; do
    [ -f "$f" ] && [ "$(stat -c %s "$f")" -le 131072 ] && cp "$f" "$SEEDS/$t/$(basename "$f" | md5sum | cut -c1-16)"
  done
  if [ -d "fuzz/regressions/$t" ]; then cp fuzz/regressions/"$t"/* "$SEEDS/$t/" 2>/dev/null || true; fi
}
C=corpus/extract
seed message $C/mail/*.eml $C/hostile/*.eml
seed zip $C/docs/*.zip
seed msg $C/docs/*.msg
seed table $C/docs/*.csv corpus/samples/*.csv
seed compressed $C/docs/*.7z $C/docs/*.bz2 $C/docs/*.xz $C/hostile/*.7z
seed pdf $C/docs/*.pdf
seed ooxml $C/docs/*.docx $C/docs/*.pptx $C/docs/*.ppt $C/docs/*.odt $C/docs/*.odp $C/docs/*.doc $C/docs/*.rtf
seed spreadsheet $C/docs/*.xlsx $C/docs/*.xls $C/docs/*.ods $C/hostile/*.xlsx
seed text corpus/samples/*.txt
# XML parts of the office documents (worksheets, shared strings, bodies), each up to 64 KiB.
mkdir -p "$SEEDS/xml"
python3 - "$SEEDS/xml" $C/docs/*.docx $C/docs/*.xlsx $C/docs/*.pptx $C/docs/*.odt $C/docs/*.ods $C/docs/*.odp <<'PY'
import hashlib, sys, zipfile
out = sys.argv[1]
for path in sys.argv[2:]:
    try:
        z = zipfile.ZipFile(path)
    except Exception:
        continue
    for i in z.infolist():
        if i.filename.endswith(".xml") and i.file_size <= 65536:
            data = z.read(i)
            open(f"{out}/{hashlib.md5(data).hexdigest()[:16]}", "wb").write(data)
PY
if [ -d fuzz/regressions/xml ]; then cp fuzz/regressions/xml/* "$SEEDS/xml/" 2>/dev/null || true; fi
seed rules corpus/rules/*.toml src/rules/builtin.toml
seed policy src/policy/default_policy.toml
# Saved engines' bodies (header and checksum cut off), when the release CLI is built.
if [ -x target/release/ping32dlp ]; then
  mkdir -p "$SEEDS/engine_image"
  for r in corpus/rules/*.toml; do
    img=$(mktemp)
    if target/release/ping32dlp rules compile "$r" -o "$img" >/dev/null 2>&1; then
      vlen=$(od -An -tu2 -j20 -N2 "$img" | tr -d ' ')
      tail -c +$((16 + 4 + 2 + vlen + 8 + 1)) "$img" | head -c -32 > "$SEEDS/engine_image/$(basename "$r" .toml)"
    fi
    rm -f "$img"
  done
fi
# Protocol seeds, written here: milter packet streams, ICAP requests, SMTP commands, uploads,
# console requests.
python3 scripts/fuzz-seeds.py "$SEEDS"
cd fuzz
TARGETS=${TARGETS:-message zip compressed ppt msg table pdf ooxml spreadsheet xml text rules policy engine_image milter smtp_command icap upload console_http}
# Built first, every target in one cargo run: a target that does not build fails the run here
# (the runs below keep only libFuzzer's figures from their output).
if ! cargo fuzz build --target-dir ../target/fuzz > ../target/fuzz-build.log 2>&1; then
  tail -40 ../target/fuzz-build.log >&2
  echo "the fuzz targets do not build (log: target/fuzz-build.log)" >&2
  exit 1
fi
for t in $TARGETS; do
  echo "== fuzz $t (${SECS}s)"
  out=$(cargo fuzz run --target-dir ../target/fuzz "$t" "../$SEEDS/$t" -- \
    -max_total_time="$SECS" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 2>&1 || true)
  grep -E "^(stat::number_of_executed_units|stat::average_exec_per_sec|stat::new_units_added|stat::peak_rss_mb|==[0-9]+==ERROR|SUMMARY|.*panicked)" <<<"$out" || true
  if [ -n "$(find artifacts/"$t" -type f 2>/dev/null | head -1)" ]; then
    echo "fuzz target $t found a failing input: see fuzz/artifacts/$t/" >&2
    exit 1
  fi
  if ! grep -q "^stat::number_of_executed_units" <<<"$out"; then
    tail -20 <<<"$out" >&2
    echo "fuzz target $t did not run to the end" >&2
    exit 1
  fi
done
