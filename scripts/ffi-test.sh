#!/usr/bin/env bash
# Tests of the C library as a C or Python program sees it (the header drift test is a Rust unit
# test, run by `cargo test`): installs libping32dlp with `make install` into target/ffi-prefix,
# checks the exported symbols and the SONAME, compiles the header as C99 and C++, builds and runs
# the C tests under AddressSanitizer + UndefinedBehaviorSanitizer, builds the C example against
# the shared and the static library, runs it under valgrind, and runs the Python binding's tests.
# Called by scripts/test.sh; needs pkg-config, valgrind and python3-venv (test.sh installs them).
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
