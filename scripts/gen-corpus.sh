#!/usr/bin/env bash
# Rebuilds corpus/extract with real tools (LibreOffice, Info-ZIP, 7-Zip, qpdf, msoffcrypto-tool,
# reportlab, Python's email package). The corpus is committed; this is for changing it.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
need=()
for p in libreoffice-writer-nogui libreoffice-calc-nogui libreoffice-impress-nogui zip p7zip-full bzip2 xz-utils qpdf fonts-noto-cjk; do
  dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then apt-get update -qq && apt-get install -y -qq "${need[@]}" >/dev/null; fi
VENV=target/gen-venv
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/python" -c 'import reportlab, msoffcrypto, msgforge' 2>/dev/null || "$VENV/bin/pip" install -q reportlab==5.1.0 msoffcrypto-tool==6.1.0 msgforge==1.0.0
"$VENV/bin/python" corpus/gen/generate.py corpus/extract "$@"
