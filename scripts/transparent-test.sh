#!/usr/bin/env bash
# Transparent mode end to end, in network namespaces this script creates (nothing leaves the
# machine; TEST-NET-2 addresses):
#
#   "p32c" 198.51.100.1: the employee's PC. nftables redirects the employee's (user nobody)
#         outbound tcp 25/465/587 to ping32dlp-proxy's transparent listener (127.0.0.1:10025)
#         and tcp 443 to Squid (squid-openssl, ssl-bump, intercept), which asks ping32dlp-icap.
#   "p32r" 198.51.100.2 and .3: the remote SMTP server (25/587 STARTTLS, 465 TLS) and the HTTPS
#         upload origin, with certificates from their own CA that the PC does not trust.
#
# The client knows only the remote names (smtp.test, upload.test) and trusts only the company's
# interception CAs. A clean mail / upload arrives byte-identical; a sensitive one is refused and
# never reaches the remote side; the real servers' certificates are verified against the name
# the client asked for (SNI; the [transparent.names] map without SNI; refused otherwise).
#
# Run as root (installs nftables, squid-openssl, curl, openssl; idempotent). Called by
# scripts/test.sh after the release build.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
BASE=${BASE:-/tmp/ping32dlp-transparent-test}
PROXY=$ROOT/target/release/ping32dlp-proxy
ICAP=$ROOT/target/release/ping32dlp-icap
CLI=$ROOT/target/release/ping32dlp
C=p32c; R=p32r
. "$ROOT/scripts/lib.sh"
need_root
need_built "$PROXY" "$ICAP" "$CLI"

need=()
command -v nft >/dev/null || need+=(nftables)
command -v curl >/dev/null || need+=(curl)
command -v openssl >/dev/null || need+=(openssl)
# ssl-bump needs Squid built with OpenSSL (Debian's squid-openssl; it replaces squid).
if ! command -v squid >/dev/null || ! squid -v | grep -q -- '--with-openssl'; then need+=(squid-openssl); fi
apt_install "${need[@]}"
CERTGEN=$(ls /usr/lib/squid/security_file_certgen 2>/dev/null) || die "squid-openssl has no security_file_certgen"

inc() { ip netns exec "$C" "$@"; }
inr() { ip netns exec "$R" "$@"; }
stop_all() {
  if [ -f "$BASE/squid/squid.pid" ]; then
    inc squid -f "$BASE/squid/squid.conf" -k shutdown 2>/dev/null || true
    for _ in $(seq 1 100); do [ -e "$BASE/squid/squid.pid" ] || break; sleep 0.1; done
  fi
  # Everything started in the namespaces dies with them.
  for n in $C $R; do
    if ip netns list | grep -qw "$n"; then
      for p in $(ip netns pids "$n" 2>/dev/null); do kill "$p" 2>/dev/null || true; done
    fi
  done
  sleep 0.3
  for n in $C $R; do
    for p in $(ip netns pids "$n" 2>/dev/null); do kill -9 "$p" 2>/dev/null || true; done
    ip netns del "$n" 2>/dev/null || true
    rm -rf "/etc/netns/$n"
  done
}
wait_port() {  # ns addr port seconds
  local end=$(( $(date +%s) + $4 ))
  while [ "$(date +%s)" -le "$end" ]; do
    ip netns exec "$1" bash -c "exec 3<>/dev/tcp/$2/$3" 2>/dev/null && return 0; sleep 0.1
  done
  return 1
}
stop_all
[ -n "${KEEP:-}" ] || trap stop_all EXIT   # KEEP=1: leave it all running to look at
rm -rf "$BASE"; mkdir -p "$BASE/sink" "$BASE/squid"
chmod 755 "$BASE"

# ---------------------------------------------------------------- certificates
# The remote side's own CA (the PC does not trust it; the proxy and Squid verify with it).
cd "$BASE"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 -subj "/CN=remote test CA" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign" \
  -keyout remote-ca.key -out remote-ca.pem 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=smtp.test" \
  -keyout remote.key -out remote.csr 2>/dev/null
printf 'subjectAltName=DNS:smtp.test,DNS:upload.test\nextendedKeyUsage=serverAuth\n' > remote.ext
openssl x509 -req -in remote.csr -CA remote-ca.pem -CAkey remote-ca.key -CAcreateserial -days 30 \
  -extfile remote.ext -out remote.pem 2>/dev/null
# Squid's bump CA (the company's web interception CA).
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 -subj "/CN=company web interception CA" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
  -keyout bump-ca.key -out bump-ca.pem 2>/dev/null
cd "$ROOT"

# ---------------------------------------------------------------- namespaces
ip netns add $C; ip netns add $R
ip link add p32c0 type veth peer name p32r0
ip link set p32c0 netns $C; ip link set p32r0 netns $R
ip -n $C addr add 198.51.100.1/24 dev p32c0
ip -n $R addr add 198.51.100.2/24 dev p32r0; ip -n $R addr add 198.51.100.3/24 dev p32r0
for n in $C $R; do ip -n $n link set lo up; done
ip -n $C link set p32c0 up; ip -n $R link set p32r0 up
# Names as the PC's resolver gives them (ip netns exec mounts /etc/netns/NAME/hosts on /etc/hosts).
mkdir -p /etc/netns/$C
printf '127.0.0.1 localhost\n198.51.100.2 smtp.test upload.test wrong.test\n198.51.100.3 other.test\n' > /etc/netns/$C/hosts
inc sysctl -qw net.ipv4.conf.all.route_localnet=1
inc nft -f - <<'NFT'
table ip ping32dlp {
  chain out {
    type nat hook output priority -100; policy accept;
    meta skuid "nobody" tcp dport { 25, 465, 587 } redirect to :10025
    meta skuid "nobody" tcp dport 443 redirect to :3131
  }
}
NFT

check "the shipped nftables rules (packaging/etc/ping32dlp-transparent.nft) load (nft -c)" \
  'sed "s/\"ping32dlp\"/\"root\"/" "$ROOT/packaging/etc/ping32dlp-transparent.nft" | inc nft -c -f - >/dev/null 2>&1'

# ---------------------------------------------------------------- the remote side
inr python3 "$ROOT/scripts/transparent/smtp_sink.py" "$BASE/sink" "$BASE/remote.pem" "$BASE/remote.key" 2>"$BASE/sink.err" &
inr python3 "$ROOT/scripts/icap/origin.py" 443 "$BASE/origin.log" 0.0.0.0 "$BASE/remote.pem" "$BASE/remote.key" 2>"$BASE/origin.err" &
wait_port $R 198.51.100.2 465 10 && wait_port $R 198.51.100.2 443 10 || die "remote servers did not start"

# ---------------------------------------------------------------- the PC side
cat > "$BASE/policy.toml" <<EOT
[policy]
name = "transparent-test"
internal_domains = ["example.co.jp"]

[[rule]]
id = "block-ids-and-cards"
action = "block"
message_en = "My Numbers and card numbers may not leave the company."
when = { detector = ["jp_my_number", "credit_card"], min_confidence = "medium" }
EOT
cat > "$BASE/proxy.toml" <<EOT
hostname = "dlp-proxy.test"
listen = "127.0.0.1:10587"
listen_tls = ""

[dlp]
state_dir = "proxy-state"
policy = "policy.toml"

[transparent]
listen = "127.0.0.1:10025"
ca_file = "remote-ca.pem"
names = { "198.51.100.2" = "smtp.test" }
EOT
cat > "$BASE/icap.toml" <<EOT
listen = "127.0.0.1:1346"

[dlp]
state_dir = "icap-state"
policy = "policy.toml"
EOT
"$PROXY" --check-config "$BASE/proxy.toml" >/dev/null 2>"$BASE/check.err" || { cat "$BASE/check.err"; die "proxy config check failed"; }
inc "$PROXY" --config "$BASE/proxy.toml" 2>"$BASE/proxy.log" &
inc "$ICAP" --config "$BASE/icap.toml" 2>"$BASE/icap.log" &
wait_port $C 127.0.0.1 10025 20 || { cat "$BASE/proxy.log"; die "proxy did not start"; }
wait_port $C 127.0.0.1 1346 20 || { cat "$BASE/icap.log"; die "ICAP server did not start"; }
INTERCEPT_CA=$BASE/proxy-state/tls/intercept-ca.pem
[ -f "$INTERCEPT_CA" ] || die "no interception CA made"
cp "$INTERCEPT_CA" "$BASE/pc-trusts.pem"; chmod 644 "$BASE/pc-trusts.pem" "$BASE/bump-ca.pem"

SQ=$BASE/squid
"$CERTGEN" -c -s "$SQ/ssl_db" -M 4MB >/dev/null
cat > "$SQ/squid.conf" <<EOT
http_port 127.0.0.1:3130
https_port 127.0.0.1:3131 intercept ssl-bump tls-cert=$BASE/bump-ca.pem tls-key=$SQ/bump-ca.key generate-host-certificates=on dynamic_cert_mem_cache_size=4MB
sslcrtd_program $CERTGEN -s $SQ/ssl_db -M 4MB
sslcrtd_children 2 startup=1 idle=1
tls_outgoing_options cafile=$BASE/remote-ca.pem
acl step1 at_step SslBump1
ssl_bump peek step1
ssl_bump bump all
visible_hostname dlp-web.test
pid_filename $SQ/squid.pid
cache_log $SQ/cache.log
access_log stdio:$SQ/access.log squid
coredump_dir $SQ
cache deny all
pinger_enable off
dns_nameservers 127.0.0.1
shutdown_lifetime 1 seconds
acl pc src 198.51.100.1 127.0.0.1
http_access allow pc
http_access deny all
icap_enable on
icap_preview_enable on
icap_preview_size 1024
icap_service dlp_req reqmod_precache icap://127.0.0.1:1346/reqmod bypass=off
adaptation_access dlp_req allow all
EOT
cp "$BASE/bump-ca.key" "$SQ/bump-ca.key"
chown -R proxy:proxy "$SQ"
inc squid -k parse -f "$SQ/squid.conf" >"$SQ/parse.log" 2>&1 || { cat "$SQ/parse.log"; die "squid -k parse failed"; }
inc squid -f "$SQ/squid.conf"
wait_port $C 127.0.0.1 3131 30 || { tail "$SQ/cache.log"; die "squid did not start"; }

# ---------------------------------------------------------------- mail
as_employee() { inc runuser -u nobody -- "$@"; }
SEND=$ROOT/scripts/transparent/send.py
mkmsg() {  # file subject body: exact bytes, CRLF
  printf 'From: taro@example.co.jp\r\nTo: bob@partner.example.com\r\nSubject: %s\r\nMessage-ID: <%s@example.co.jp>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n%s\r\n.leading dot stays\r\n' \
    "$2" "$(basename "$1")" "$3" > "$1"
  chmod 644 "$1"
}
sha() { sha256sum "$1" | cut -d' ' -f1; }
received() { grep -c RECEIVED "$BASE/sink/sink.log" 2>/dev/null || true; }
arrived() { grep -q "RECEIVED $2 .* $(sha "$1") " "$BASE/sink/sink.log" 2>/dev/null; }
send() { as_employee python3 "$SEND" "$@" 2>&1 | tail -n1; }

for port_mode in "587 starttls" "465 tls" "25 plain" "25 starttls"; do
  set -- $port_mode; port=$1; mode=$2
  m=$BASE/clean-$port-$mode.eml; mkmsg "$m" "weekly report $port $mode" "see you on Monday"
  out=$(send smtp.test "$port" "$mode" "$BASE/pc-trusts.pem" "$m")
  if [ "$mode" = plain ]; then want="SENT 250 issuer=-"; else want="SENT 250 issuer=ping32dlp interception CA"; fi
  check "clean mail, port $port $mode: accepted through the proxy (client trusts only the interception CA): $out" \
    '[[ "$out" == "$want"* ]]'
  check "clean mail, port $port $mode: arrived at smtp.test byte-identical" 'arrived "$m" "$port"'
  s=$BASE/secret-$port-$mode.eml; mkmsg "$s" "customer list $port" "個人番号 1234 5678 9018 です"
  before=$(received)
  out=$(send smtp.test "$port" "$mode" "$BASE/pc-trusts.pem" "$s")
  check "sensitive mail, port $port $mode: refused with 550 ($out)" '[[ "$out" == "REFUSED 550"* ]]'
  check "sensitive mail, port $port $mode: never reached the remote server" '[ "$(received)" = "$before" ]'
done

out=$(as_employee python3 -c "
import smtplib, ssl
s = smtplib.SMTP('smtp.test', 587, timeout=20); s.ehlo('pc')
plain = s.has_extn('auth')
s.starttls(context=ssl.create_default_context(cafile='$BASE/pc-trusts.pem')); s.ehlo('pc')
print('plain-auth', plain, 'tls-auth', s.has_extn('auth')); s.quit()" 2>&1)
check "AUTH is offered only inside TLS in transparent mode ($out)" '[ "$out" = "plain-auth False tls-auth True" ]'

before=$(received)
m=$BASE/wrong.eml; mkmsg "$m" "wrong name" "hello"
out=$(send wrong.test 587 starttls "$BASE/pc-trusts.pem" "$m")
check "STARTTLS to wrong.test (the real server's certificate is for smtp.test): refused 421 ($out)" \
  '[[ "$out" == "REFUSED 421"* && "$out" == *wrong.test* ]]'
out=$(send wrong.test 465 tls "$BASE/pc-trusts.pem" "$m")
check "TLS to wrong.test: refused 421 ($out)" '[[ "$out" == "REFUSED 421"* ]]'
out=$(send 198.51.100.3 465 tls "$BASE/pc-trusts.pem" "$m" --no-sni)
check "TLS without SNI to an address not in transparent.names: no session ($out)" '[[ "$out" == ERROR* ]]'
check "none of these reached the remote server" '[ "$(received)" = "$before" ]'
m=$BASE/nosni.eml; mkmsg "$m" "no sni" "hello by address"
out=$(send 198.51.100.2 465 tls "$BASE/pc-trusts.pem" "$m" --no-sni)
check "TLS without SNI to 198.51.100.2 (transparent.names: smtp.test): verified and delivered ($out)" \
  '[[ "$out" == "SENT 250"* ]] && arrived "$m" 465'
out=$(inc python3 -c "
import socket; s = socket.create_connection(('127.0.0.1', 10025), timeout=5); print(repr(s.recv(100)))" 2>&1 || true)
check "a connection straight to the transparent listener (not redirected) gets nothing ($out)" '[ "$out" = "b'"''"'" ]'
check "the proxy logged why it refused" 'grep -q "not redirected" "$BASE/proxy.log" && grep -q "no transparent.names entry for 198.51.100.3" "$BASE/proxy.log"'
n=$("$CLI" audit search --state "$BASE/proxy-state" --format csv 2>/dev/null | tail -n +2 | wc -l)
check "every judged mail is in the proxy's audit trail (9 = 5 clean + 4 sensitive + no-SNI: got $n)" '[ "$n" = 9 ]'
check "no My Number in the proxy's log" '! grep -q "1234 5678 9018\|123456789018" "$BASE/proxy.log"'

# ---------------------------------------------------------------- HTTPS webmail through ssl-bump
python3 - "$BASE" <<'EOT'
import sys
d = sys.argv[1]
def multipart(files, boundary="----p32boundary"):
    out = b""
    for k, name, data in files:
        out += f"--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"; filename=\"{name}\"\r\nContent-Type: application/octet-stream\r\n\r\n".encode() + data + b"\r\n"
    return out + f"--{boundary}--\r\n".encode()
open(f"{d}/clean.multipart", "wb").write(multipart([("file", "report.txt", "議事録: 来週の予定\n".encode())]))
open(f"{d}/secret.multipart", "wb").write(multipart([("file", "customers.csv", "氏名,個人番号\n山田太郎,123456789018\n".encode())]))
EOT
chmod 644 "$BASE"/*.multipart
upload() {  # url file: prints the HTTP status
  as_employee curl -sS -o /dev/null -w '%{http_code}' --max-time 60 --cacert "$BASE/bump-ca.pem" \
    -H 'Content-Type: multipart/form-data; boundary=----p32boundary' --data-binary "@$2" "$1" 2>&1 || true
}
origin_got() { grep -c RECEIVED "$BASE/origin.log" 2>/dev/null || true; }
code=$(upload https://upload.test/upload "$BASE/clean.multipart")
check "clean HTTPS upload through ssl-bump: 200 (client trusts only the company's web CA): $code" '[ "$code" = 200 ]'
check "the origin received the clean upload byte-identical" 'grep -q "RECEIVED POST /upload $(stat -c %s "$BASE/clean.multipart") $(sha "$BASE/clean.multipart")" "$BASE/origin.log"'
before=$(origin_got)
code=$(upload https://upload.test/upload "$BASE/secret.multipart")
check "HTTPS upload of a CSV with a My Number: blocked by the ICAP hook (403): $code" '[ "$code" = 403 ]'
check "the origin never received it" '[ "$(origin_got)" = "$before" ]'
code=$(upload https://wrong.test/upload "$BASE/clean.multipart")
check "HTTPS to wrong.test (origin certificate is for upload.test): Squid refuses ($code)" '[ "$code" != 200 ]'
check "the origin never received it" '[ "$(origin_got)" = "$before" ]'
check "Squid's access log shows the bumped requests" 'grep -q "upload.test" "$SQ/access.log"'

echo "transparent-test: $PASS passed, $FAILS failed"
[ "$FAILS" = 0 ]
