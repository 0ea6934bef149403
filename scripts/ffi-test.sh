#!/usr/bin/env bash
# Tests of the C library as a C or Python program sees it (the header drift test is a Rust unit
# test, run by `cargo test`): installs libping32dlp with `make install` into target/ffi-prefix,
# checks the exported symbols and the SONAME, compiles the header as C99 and C++, builds and runs
# the C tests under AddressSanitizer + UndefinedBehaviorSanitizer, builds the C example against
# the shared and the static library, runs it under valgrind, and runs the Python binding's tests.
# Called by scripts/test.sh; needs pkg-config, valgrind, binutils, libsqlite3-dev and python3-venv
# (test.sh installs them).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
PREFIX=$ROOT/target/ffi-prefix
OUT=$ROOT/target/ffi-test
mkdir -p "$OUT"

make -s build install PREFIX="$PREFIX" >/dev/null
export PKG_CONFIG_PATH=$PREFIX/lib/pkgconfig
export LD_LIBRARY_PATH=$PREFIX/lib
CFLAGS=$(pkg-config --cflags ping32dlp)
LIBS=$(pkg-config --libs ping32dlp)

echo "-- exported symbols match ffi/symbols.txt"
nm -D --defined-only "$PREFIX/lib/libping32dlp.so" | awk '$2 == "T" {print $3}' | sort > "$OUT/symbols.txt"
diff -u ffi/symbols.txt "$OUT/symbols.txt"
readelf -d "$PREFIX/lib/libping32dlp.so" | grep -q 'SONAME.*\[libping32dlp\.so\.0\]'
echo "   $(wc -l < ffi/symbols.txt) symbols, SONAME libping32dlp.so.0"

echo "-- ABI against the last release (ffi/abi/), licence notices and SBOM up to date"
python3 scripts/abi-check.py --self-test
python3 scripts/abi-check.py --so "$PREFIX/lib/libping32dlp.so"
python3 scripts/licenses.py --check
for f in THIRD_PARTY_NOTICES.md sbom.cdx.json; do
  [ -s "$PREFIX/share/doc/libping32dlp/$f" ] || { echo "FAIL: make install did not install $f" >&2; exit 1; }
done
python3 -c 'import json,sys; b=json.load(open(sys.argv[1])); assert b["bomFormat"] == "CycloneDX" and len(b["components"]) > 50' \
  "$PREFIX/share/doc/libping32dlp/sbom.cdx.json"

echo "-- installed files: a stripped .so with its debug info beside it; only ping32dlp_* global in the .a"
SO=$(readlink -f "$PREFIX/lib/libping32dlp.so")
if readelf -S --wide "$SO" | grep -q ' \.debug_'; then echo "FAIL: $SO has debug sections" >&2; exit 1; fi
readelf -S --wide "$SO" | grep -q '\.gnu_debuglink'
DBG=$PREFIX/lib/.debug/$(basename "$SO").debug
readelf -S --wide "$DBG" | grep -q ' \.debug_line'
so_mb=$(( $(stat -c %s "$SO") / 1048576 )); a_mb=$(( $(stat -c %s "$PREFIX/lib/libping32dlp.a") / 1048576 ))
[ "$so_mb" -lt 24 ] || { echo "FAIL: libping32dlp.so is $so_mb MiB" >&2; exit 1; }
# readelf, not nm: binutils' nm hands objects to the LTO plugin.
readelf -s --wide "$PREFIX/lib/libping32dlp.a" \
  | awk '($5 == "GLOBAL" || $5 == "WEAK") && $7 != "UND" {print $8}' | sort -u > "$OUT/a-globals.txt"
diff -u ffi/symbols.txt "$OUT/a-globals.txt" || { echo "FAIL: libping32dlp.a exports more than ping32dlp_*" >&2; exit 1; }
echo "   .so ${so_mb} MiB stripped (debug info in lib/.debug), .a ${a_mb} MiB exporting only the $(wc -l < ffi/symbols.txt) ping32dlp_* functions"

echo "-- one C program: libping32dlp.a + the system's SQLite + another Rust static library"
(cd ffi/tests/other-staticlib && CARGO_TARGET_DIR="$ROOT/target/other-staticlib" cargo build --release --locked -q)
cc -std=c11 -Wall -Wextra -Werror $CFLAGS ffi/tests/mixed/link_mix.c -o "$OUT/link_mix" \
   "$PREFIX/lib/libping32dlp.a" "$ROOT/target/other-staticlib/release/libother_staticlib.a" \
   $(pkg-config --libs sqlite3) $(pkg-config --libs-only-l --static ping32dlp | sed 's/-lping32dlp//')
"$OUT/link_mix" "$(pkg-config --modversion sqlite3)" | sed 's/^/   /'

echo "-- the header compiles as C99 and C++ with every warning"
printf '#include <ping32dlp.h>\nint main(void){return ping32dlp_version()[0]==0;}\n' > "$OUT/h.c"
cc -std=c99 -Wall -Wextra -Werror -pedantic $CFLAGS "$OUT/h.c" -o "$OUT/h-c" $LIBS
c++ -x c++ -std=c++11 -Wall -Wextra -Werror $CFLAGS "$OUT/h.c" -o "$OUT/h-cpp" $LIBS

echo "-- C tests under -fsanitize=address,undefined"
SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer -g"
for t in ffi/tests/*.c; do
  name=$(basename "$t" .c)
  cc -std=c11 -Wall -Wextra -Werror $SAN $CFLAGS "$t" -o "$OUT/$name" $LIBS -lpthread
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1 "$OUT/$name" "$ROOT"
done

echo "-- C example: shared and static, same output; valgrind"
cc -std=c11 -Wall -Wextra -Werror examples/c/scan_eml.c -o "$OUT/scan_eml" $CFLAGS $LIBS
cc -std=c11 -Wall -Wextra -Werror examples/c/scan_eml.c -o "$OUT/scan_eml_static" $CFLAGS \
   "$PREFIX/lib/libping32dlp.a" $(pkg-config --libs-only-l --static ping32dlp | sed 's/-lping32dlp//')
MAIL=corpus/extract/mail/01-iso2022jp-attachments.eml
"$OUT/scan_eml" "$MAIL" > "$OUT/shared.txt"
"$OUT/scan_eml_static" "$MAIL" > "$OUT/static.txt"
diff -u "$OUT/shared.txt" "$OUT/static.txt"
grep -q '^verdict: allow' "$OUT/shared.txt"
grep -q '^would: hold' "$OUT/shared.txt"
# README's shortest agent: the file, verbatim in README, builds and says what it would do.
python3 - <<'PY'
import sys
readme, prog = open("README.md", encoding="utf-8").read(), open("examples/c/verdict.c", encoding="utf-8").read()
sys.exit(0 if prog.strip() in readme else "README.md no longer holds examples/c/verdict.c verbatim")
PY
cc -std=c11 -Wall -Wextra -Werror examples/c/verdict.c -o "$OUT/verdict" $CFLAGS $LIBS
"$OUT/verdict" "$MAIL" | tee "$OUT/verdict.txt" | grep -Eq '^[0-9]+ findings: allow now, hold when enforced \(risk [0-9]+\)$'
sed 's/^/   /' "$OUT/verdict.txt"
grep -q '^finding: jp_my_number in 見積書.docx' "$OUT/shared.txt"
# A blocking policy: exit status 1 and the rule's message.
status=0; "$OUT/scan_eml" "$MAIL" ffi/tests/block.toml > "$OUT/block.txt" || status=$?
[ "$status" = 1 ] && grep -q '^verdict: block' "$OUT/block.txt"
valgrind -q --leak-check=full --errors-for-leak-kinds=definite,indirect --error-exitcode=99 \
  "$OUT/scan_eml" "$MAIL" > /dev/null
echo "   valgrind: no errors, no leaks"

echo "-- Python binding (pip install ./bindings/python; pytest)"
VENV=$ROOT/target/test-venv
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/python" -c 'import pytest' 2>/dev/null || "$VENV/bin/pip" install -q 'pytest==8.3.4'
"$VENV/bin/pip" install -q --no-deps --force-reinstall ./bindings/python
rm -rf bindings/python/build bindings/python/*.egg-info
(cd "$OUT" && PING32DLP_LIBRARY=$PREFIX/lib/libping32dlp.so REPO_ROOT=$ROOT \
  "$VENV/bin/python" -m pytest -q -p no:cacheprovider --doctest-modules --pyargs ping32dlp "$ROOT/bindings/python/tests")
