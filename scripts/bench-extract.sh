#!/usr/bin/env bash
# Reproducible extraction benchmark: throughput of whole-message inspection and peak memory on
# large and hostile inputs, with `ping32dlp bench` (one JSON line each, summarised here).
#
#   scripts/bench-extract.sh [REPEAT]      (default 200)
set -euo pipefail
cd "$(dirname "$0")/.."
REPEAT=${1:-200}
cargo build --release -q -p ping32dlp-cli
BIN=target/release/ping32dlp
C=corpus/extract
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
# A 25 MB message: a 17 MiB CSV attachment and a zip of documents, base64.
python3 - "$TMP/big.eml" "$C/docs/見積書.zip" <<'PY'
import base64, sys
rows = ["氏名,個人番号"] + ["社員%d,%012d" % (i, i * 7919 % 10**12) for i in range(900000)]
csv = "\n".join(rows).encode()[: 17 << 20]
z = open(sys.argv[2], "rb").read()
msg = (b"From: a@example.co.jp\r\nTo: b@example.com\r\nSubject: big\r\nMIME-Version: 1.0\r\n"
       b"Content-Type: multipart/mixed; boundary=BB\r\n\r\n--BB\r\nContent-Type: text/plain\r\n\r\nbig\r\n"
       b"--BB\r\nContent-Type: text/csv\r\nContent-Disposition: attachment; filename=big.csv\r\nContent-Transfer-Encoding: base64\r\n\r\n"
       + base64.encodebytes(csv) + b"\r\n--BB\r\nContent-Type: application/zip\r\nContent-Disposition: attachment; filename=docs.zip\r\n"
       b"Content-Transfer-Encoding: base64\r\n\r\n" + base64.encodebytes(z) + b"\r\n--BB--\r\n")
open(sys.argv[1], "wb").write(msg)
PY
row() {  # row LABEL FILE REPEAT
  "$BIN" bench --input "$2" --repeat "$3" | python3 -c "
import json, sys
j = json.load(sys.stdin)
print('%-34s %10d B  %8.1f MB/s  %8.0f msg/s  peak RSS %4d MiB' % ('$1', j['bytes'], j['mb_per_s'], j['objects_per_s'], j['max_rss_bytes'] >> 20))"
}
echo "whole-message inspection (extraction + detection), one core:"
row "typical (body, docx, xlsx, pdf, zip)" "$C/mail/08-typical.eml" "$REPEAT"
row "ISO-2022-JP, 5 attachments" "$C/mail/01-iso2022jp-attachments.eml" "$REPEAT"
row "forwarded message with xlsx" "$C/mail/03-forwarded.eml" "$REPEAT"
row "25 MB message" "$TMP/big.eml" 3
echo "hostile inputs (peak RSS of the whole process; idle = empty.eml):"
for f in empty.eml bomb.zip nested-bomb.zip deep.zip 5000-parts.eml 100-deep.eml sparse.xlsx truncated.xlsx; do
  row "$f" "$C/hostile/$f" 3
done
