#!/usr/bin/env bash
# ping32dlp-icap with a real Squid (private instance on loopback) and curl, plus c-icap-client
# straight against the ICAP server:
#
#   OPTIONS; REQMOD 204 and echo (no Allow: 204); a clean multipart upload reaches the origin
#   byte-identical; a .docx with My Numbers gets the 403 page and the origin is never contacted;
#   JSON with a base64 attachment holding card numbers is blocked (also gzip-encoded); 5 MB+
#   bodies both ways; the ICAP server down gives Squid's fail-closed 500. Review findings through
#   Squid: a zstd-encoded upload, a .docx in a multipart part without filename=, an encoding
#   nobody can decode, and a .docx uploaded in three Content-Range pieces (the last is refused).
#
# Run as root (installs squid-openssl, c-icap, curl; idempotent). Called by scripts/test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
BASE=${BASE:-/tmp/ping32dlp-icap-test}
PROXY_PORT=${PROXY_PORT:-3129}
ICAP_PORT=${ICAP_PORT:-1345}
ORIGIN_PORT=${ORIGIN_PORT:-8081}
METRICS_PORT=${METRICS_PORT:-9703}
SQ=$BASE/squid
ICAP=$ROOT/target/release/ping32dlp-icap
export DEBIAN_FRONTEND=noninteractive
PASS=0; FAILS=0
ok() { PASS=$((PASS + 1)); echo "PASS: $*"; }
bad() { FAILS=$((FAILS + 1)); echo "FAIL: $*"; }
die() { echo "FATAL: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "run as root"
[ -x "$ICAP" ] || die "build first: cargo build --release -p ping32dlp-icap"

# squid-openssl (Debian's Squid built with OpenSSL; it replaces squid): transparent-test.sh needs
# its ssl-bump, and one Squid serves both suites.
if ! command -v squid >/dev/null || ! squid -v | grep -q -- '--with-openssl' || ! command -v c-icap-client >/dev/null || ! command -v curl >/dev/null; then
  made=0
  [ -e /usr/sbin/policy-rc.d ] || { printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod 755 /usr/sbin/policy-rc.d; made=1; }
  apt-get -o DPkg::Lock::Timeout=600 update -qq
  apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends squid-openssl c-icap curl >/dev/null
  [ "$made" = 1 ] && rm -f /usr/sbin/policy-rc.d
fi

kill_pidfile() {
  [ -f "$1" ] || return 0
  local pid; pid=$(cat "$1")
  if [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' < "/proc/$pid/cmdline" | grep -q "$2"; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
  rm -f "$1"
}
stop_all() {
  if [ -f "$SQ/squid.pid" ] && [ -f "$SQ/squid.conf" ]; then
    squid -f "$SQ/squid.conf" -k shutdown 2>/dev/null || true
    for _ in $(seq 1 300); do [ -e "$SQ/squid.pid" ] || break; sleep 0.1; done
  fi
  kill_pidfile "$BASE/icap.pid" ping32dlp-icap
  kill_pidfile "$BASE/origin.pid" origin.py
}
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_port() {
  local end=$(( $(date +%s) + $2 ))
  while [ "$(date +%s)" -le "$end" ]; do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done
  return 1
}
[ -d "$BASE" ] && stop_all
trap stop_all EXIT
for p in "$PROXY_PORT" "$ICAP_PORT" "$ORIGIN_PORT"; do port_free "$p" || die "127.0.0.1:$p is in use"; done
rm -rf "$BASE"; mkdir -p "$SQ"

cat > "$BASE/policy.toml" <<EOT
[policy]
name = "icap-test"
internal_domains = ["example.co.jp"]

[[rule]]
id = "block-ids-and-cards"
action = "block"
message_ja = "個人番号・カード番号を含むファイルはアップロードできません。"
message_en = "Files with My Numbers or card numbers may not be uploaded."
when = { detector = ["jp_my_number", "credit_card"], min_confidence = "medium" }

[approval]
notify_command = ""
EOT
cat > "$BASE/icap.toml" <<EOT
listen = "127.0.0.1:$ICAP_PORT"
metrics_listen = "127.0.0.1:$METRICS_PORT"

[dlp]
state_dir = "state"
policy = "policy.toml"
EOT
cat > "$SQ/squid.conf" <<EOT
http_port 127.0.0.1:$PROXY_PORT
visible_hostname dlp-proxy.test
pid_filename $SQ/squid.pid
cache_log $SQ/cache.log
access_log stdio:$SQ/access.log squid
coredump_dir $SQ
cache deny all
pinger_enable off
shutdown_lifetime 1 seconds
http_access allow localhost
http_access deny all
icap_enable on
icap_preview_enable on
icap_preview_size 1024
icap_persistent_connections on
icap_send_client_ip on
icap_send_client_username on
icap_client_username_header X-Authenticated-User
icap_service dlp_req reqmod_precache icap://127.0.0.1:$ICAP_PORT/reqmod bypass=off
adaptation_access dlp_req allow all
EOT
chown -R proxy:proxy "$SQ"
squid -k parse -f "$SQ/squid.conf" > "$SQ/parse.log" 2>&1 || { cat "$SQ/parse.log"; die "squid -k parse failed"; }
python3 "$ROOT/scripts/icap/origin.py" "$ORIGIN_PORT" "$BASE/origin.log" 2>"$BASE/origin.err" & echo $! > "$BASE/origin.pid"
"$ICAP" --config "$BASE/icap.toml" 2>>"$BASE/icap.log" & echo $! > "$BASE/icap.pid"
wait_port "$ORIGIN_PORT" 10 && wait_port "$ICAP_PORT" 20 || die "origin or ICAP server did not start"
squid -f "$SQ/squid.conf"
wait_port "$PROXY_PORT" 30 || { tail "$SQ/cache.log"; die "squid did not start"; }
echo "$(squid -v | head -n1) on :$PROXY_PORT, ping32dlp-icap on :$ICAP_PORT, origin on :$ORIGIN_PORT"

ORIGIN="http://127.0.0.1:$ORIGIN_PORT"
pcurl() { curl -sS --noproxy '' -x "http://127.0.0.1:$PROXY_PORT" --max-time 120 "$@"; }
received() { if [ -f "$BASE/origin.log" ]; then grep -c RECEIVED "$BASE/origin.log" || true; else echo 0; fi; }
sha() { sha256sum "$1" | cut -d' ' -f1; }
DOCX="$ROOT/corpus/extract/docs/見積書.docx"
printf 'quarterly report, nothing secret\n' > "$BASE/clean.txt"
# A multipart body built here so that its exact bytes are known.
python3 - "$BASE" <<'EOT'
import os, sys, base64, gzip, json
d = sys.argv[1]
def multipart(fields, files, boundary="----p32boundary"):
    out = b""
    for k, v in fields:
        out += f"--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n".encode()
    for k, name, data in files:
        out += f"--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"; filename=\"{name}\"\r\nContent-Type: application/octet-stream\r\n\r\n".encode() + data + b"\r\n"
    return out + f"--{boundary}--\r\n".encode()
open(f"{d}/clean.multipart", "wb").write(multipart([("to", "bob@partner.example.com"), ("subject", "資料")], [("file", "report.txt", b"quarterly report, nothing secret\n")]))
big = os.urandom(3_000_000)
open(f"{d}/big_clean.multipart", "wb").write(multipart([("to", "bob@partner.example.com")], [("file", "data.bin", big + b"A" * 2_500_000)]))
open(f"{d}/big_secret.multipart", "wb").write(multipart([("to", "bob@partner.example.com")], [("file", "list.txt", b"lorem ipsum\n" * 450_000 + b"card 4111 1111 1111 1111\n")]))
def luhn(prefix):  # a valid card number that is not a published test value
    digits = [int(c) for c in prefix]
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2 == 0:
            d *= 2
            d = d - 9 if d > 9 else d
        total += d
    return prefix + str((10 - total % 10) % 10)
cards = " / ".join(luhn(p) for p in ("453914880343646", "537842110092113"))
card = base64.b64encode(f"顧客のカード番号: {cards}\n".encode()).decode()
j = json.dumps({"message": {"subject": "list", "toRecipients": [{"emailAddress": {"address": "x@partner.example.com"}}]},
                "attachments": [{"name": "cards.txt", "contentBytes": card}]}).encode()
open(f"{d}/cards.json", "wb").write(j)
open(f"{d}/cards.json.gz", "wb").write(gzip.compress(j))
EOT

# 0. c-icap-client straight against the server
out=$(c-icap-client -i 127.0.0.1 -p "$ICAP_PORT" -s reqmod -v 2>&1 || true)
if grep -q "Methods: REQMOD" <<<"$out" && grep -q "ISTag" <<<"$out" && grep -q "Allow: 204" <<<"$out"; then
  ok "c-icap-client OPTIONS -> Methods: REQMOD, ISTag, Allow: 204"; else bad "OPTIONS"; echo "$out" | head; fi
out=$(c-icap-client -i 127.0.0.1 -p "$ICAP_PORT" -s reqmod -req "$ORIGIN/upload" -f "$BASE/clean.txt" -v 2>&1 || true)
if grep -q "ICAP/1.0 204" <<<"$out"; then ok "c-icap-client REQMOD clean -> 204"; else bad "REQMOD 204"; echo "$out" | head; fi
out=$(c-icap-client -i 127.0.0.1 -p "$ICAP_PORT" -s reqmod -req "$ORIGIN/upload" -f "$BASE/clean.txt" -no204 -nopreview -v 2>&1 || true)
if grep -q "Encapsulated: req-hdr=0, req-body=" <<<"$out"; then ok "c-icap-client REQMOD clean without Allow: 204 -> 200 echo"
else bad "echo"; echo "$out" | head -20; fi
out=$(c-icap-client -i 127.0.0.1 -p "$ICAP_PORT" -s reqmod -req "$ORIGIN/upload" -f "$DOCX" -v 2>&1 || true)
if grep -q "HTTP/1.1 403 Forbidden" <<<"$out"; then ok "c-icap-client REQMOD .docx with My Numbers -> encapsulated 403"
else bad "REQMOD docx"; echo "$out" | head -20; fi

# 1. clean multipart through Squid: reaches the origin byte-identical
n0=$(received)
code=$(pcurl -o /dev/null -w "%{http_code}" -H "Content-Type: multipart/form-data; boundary=----p32boundary" \
  --data-binary @"$BASE/clean.multipart" "$ORIGIN/upload")
if [ "$code" = 200 ] && [ "$(received)" -gt "$n0" ] && tail -n1 "$BASE/origin.log" | grep -q "$(sha "$BASE/clean.multipart")"; then
  ok "clean multipart upload via Squid -> 200, origin received it byte-identical"
else bad "clean upload: http $code"; tail -2 "$BASE/origin.log"; fi

# 2. a .docx with My Numbers (curl -F) -> 403 page, origin never contacted
n0=$(received)
code=$(pcurl -o "$BASE/r_docx.html" -w "%{http_code}" -F "to=bob@partner.example.com" -F "attachment=@$DOCX" "$ORIGIN/upload")
if [ "$code" = 403 ] && grep -q "アップロードはブロックされました" "$BASE/r_docx.html" && grep -q "Upload blocked" "$BASE/r_docx.html" \
   && grep -q "Incident: <code>[0-9]" "$BASE/r_docx.html" && [ "$(received)" = "$n0" ]; then
  ok ".docx with My Numbers via Squid -> 403 page (ja/en, incident id), origin not contacted"
else bad "docx: http $code"; fi

# 3. JSON with a base64 attachment holding card numbers -> blocked; also gzip-encoded
n0=$(received)
code=$(pcurl -o /dev/null -w "%{http_code}" -H "Content-Type: application/json" --data-binary @"$BASE/cards.json" "$ORIGIN/api/send")
code2=$(pcurl -o /dev/null -w "%{http_code}" -H "Content-Type: application/json" -H "Content-Encoding: gzip" \
  --data-binary @"$BASE/cards.json.gz" "$ORIGIN/api/send")
if [ "$code" = 403 ] && [ "$code2" = 403 ] && [ "$(received)" = "$n0" ]; then
  ok "JSON with base64 card numbers -> 403 (plain and gzip-encoded), origin not contacted"
else bad "json: http $code / gzip $code2"; fi

# 4. 5 MB+ bodies both ways (Squid sends no Allow: 204 for them: the server echoes)
n0=$(received)
code=$(pcurl -o /dev/null -w "%{http_code}" -H "Content-Type: multipart/form-data; boundary=----p32boundary" \
  --data-binary @"$BASE/big_clean.multipart" "$ORIGIN/upload")
if [ "$code" = 200 ] && tail -n1 "$BASE/origin.log" | grep -q "$(sha "$BASE/big_clean.multipart")"; then
  ok "5.5 MB clean upload -> 200, byte-identical at the origin"
else bad "big clean: http $code"; fi
n0=$(received)
code=$(pcurl -o /dev/null -w "%{http_code}" -H "Content-Type: multipart/form-data; boundary=----p32boundary" \
  --data-binary @"$BASE/big_secret.multipart" "$ORIGIN/upload")
if [ "$code" = 403 ] && [ "$(received)" = "$n0" ]; then ok "5.4 MB upload with a card number at the end -> 403"
else bad "big secret: http $code"; fi

# 4b. what the security review got through, now through Squid
python3 - "$BASE" "$DOCX" <<'EOT'
import sys
d, docx = sys.argv[1], open(sys.argv[2], "rb").read()
text = "顧客のカード番号 4539 1488 0343 6467 と 5378 4211 0092 1131".encode()
# zstd: one raw block (single segment, 1-byte content size).
open(f"{d}/cards.zst", "wb").write(bytes([0x28, 0xb5, 0x2f, 0xfd, 0x20, len(text)]) +
                                   (1 | (len(text) << 3)).to_bytes(3, "little") + text)
open(f"{d}/noname.multipart", "wb").write(
    b"--b\r\nContent-Disposition: form-data; name=\"blob\"\r\nContent-Type: application/octet-stream\r\n\r\n"
    + docx + b"\r\n--b--\r\n")
n = len(docx)
cuts = [0, n // 3, 2 * n // 3, n]
for i in range(3):
    open(f"{d}/piece{i}", "wb").write(docx[cuts[i]:cuts[i + 1]])
    open(f"{d}/piece{i}.range", "w").write(f"bytes {cuts[i]}-{cuts[i + 1] - 1}/{n}")
EOT
n0=$(received)
c1=$(pcurl -o /dev/null -w "%{http_code}" -H "Content-Type: text/plain" -H "Content-Encoding: zstd" --data-binary @"$BASE/cards.zst" "$ORIGIN/up")
c2=$(pcurl -o /dev/null -w "%{http_code}" -H "Content-Type: multipart/form-data; boundary=b" --data-binary @"$BASE/noname.multipart" "$ORIGIN/up")
c3=$(pcurl -o "$BASE/r_compress.html" -w "%{http_code}" -H "Content-Type: text/plain" -H "Content-Encoding: compress" --data-binary "not compressible by anyone" "$ORIGIN/up")
if [ "$c1" = 403 ] && [ "$c2" = 403 ] && [ "$c3" = 403 ] && grep -q "cannot be inspected" "$BASE/r_compress.html" && [ "$(received)" = "$n0" ]; then
  ok "zstd upload, .docx in a part without filename, undecodable encoding -> 403 (origin not contacted)"
else bad "review cases: zstd $c1, no-filename $c2, compress $c3"; fi
codes=""
for i in 0 1 2; do
  codes="$codes $(pcurl -o /dev/null -w "%{http_code}" -X PUT -H "Content-Type: application/octet-stream" \
    -H "Content-Range: $(cat "$BASE/piece$i.range")" --data-binary @"$BASE/piece$i" "$ORIGIN/upload/session-1?token=t")"
done
if [ "$codes" = " 200 200 403" ]; then ok "a .docx in three Content-Range pieces: pieces pass, the last is refused (whole file judged)"
else bad "chunked upload:$codes"; fi

# 5. GET passes; the audit trail has the uploads (channel webmail, destination host)
code=$(pcurl -o /dev/null -w "%{http_code}" "$ORIGIN/inbox")
[ "$code" = 200 ] && ok "GET via Squid -> 200" || bad "GET: $code"
n=$("$ROOT/target/release/ping32dlp" audit search --state "$BASE/state" --format json --verdict block | wc -l)
[ "$n" -ge 4 ] && ok "$n blocked uploads recorded (channel webmail)" || bad "audit: $n blocked"

# 5b. SIGHUP reloads the policy: the next upload gets the new verdict; a broken file changes nothing
printf '極秘 来期の計画\n' > "$BASE/secret.txt"
up_secret() { pcurl -o /dev/null -w "%{http_code}" -F "attachment=@$BASE/secret.txt" "$ORIGIN/upload" || true; }
before=$(up_secret)
cp "$BASE/policy.toml" "$BASE/policy.orig"
cat >> "$BASE/policy.toml" <<'EOT'

[[rule]]
id = "block-confidential"
action = "block"
when = { detector = ["confidential_marking"] }
EOT
IPID=$(cat "$BASE/icap.pid")
kill -HUP "$IPID"
end=$(( $(date +%s) + 20 ))
until grep -q "reloaded on SIGHUP: policy icap-test (2 rules)" "$BASE/icap.log" || [ "$(date +%s)" -gt "$end" ]; do sleep 0.1; done
after=$(up_secret)
printf '\n[[rule]]\nid = "broken"\naction = "explode"\n' >> "$BASE/policy.toml"
kill -HUP "$IPID"
end=$(( $(date +%s) + 20 ))
until grep -q "reload on SIGHUP failed" "$BASE/icap.log" || [ "$(date +%s)" -gt "$end" ]; do sleep 0.1; done
broken=$(up_secret)
if [ "$before" = 200 ] && [ "$after" = 403 ] && [ "$broken" = 403 ] && kill -0 "$IPID" 2>/dev/null \
   && grep "reload on SIGHUP failed" "$BASE/icap.log" | grep -q "policy.toml:[0-9]*:[0-9]*"; then
  ok "SIGHUP: 極秘 upload $before before, $after after the new policy, $broken after a broken one (positioned error logged, same process)"
else bad "SIGHUP reload: $before / $after / $broken"; tail -n 3 "$BASE/icap.log"; fi
cp "$BASE/policy.orig" "$BASE/policy.toml"

# Metrics and health on the hook's metrics listener.
if out=$(python3 "$ROOT/scripts/metrics_value.py" --check "http://127.0.0.1:$METRICS_PORT" webmail icap-test); then ok "$out"
else bad "$out"; fi

# 6. ICAP server down, bypass=off -> Squid's 500, origin not contacted
kill_pidfile "$BASE/icap.pid" ping32dlp-icap; sleep 0.5
n0=$(received)
code=$(pcurl -o /dev/null -w "%{http_code}" -F "attachment=@$BASE/clean.txt" "$ORIGIN/upload" || true)
if [ "$code" = 500 ] && [ "$(received)" = "$n0" ]; then ok "ICAP server down -> Squid 500 (fail closed)"
else bad "icap down: http $code"; fi

echo "--- ICAP log (last lines)"; tail -n 6 "$BASE/icap.log"
echo "$PASS passed, $FAILS failed"
[ "$FAILS" = 0 ]
