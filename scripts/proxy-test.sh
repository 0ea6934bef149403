#!/usr/bin/env bash
# ping32dlp-proxy between real clients (swaks, Python smtplib; plain, STARTTLS and implicit TLS,
# trusting the proxy's generated CA) and a real upstream (a private Postfix instance on
# loopback, STARTTLS with a verified certificate, Cyrus SASL):
#
#   clean mail relayed byte-identical; cards in a .docx -> 550 5.7.1; My Numbers -> 250 held,
#   delivered byte-identical after `ping32dlp approvals approve`, not after reject (and the
#   sender gets a notice); AUTH relayed (wrong password -> 535); upstream down -> 451, then
#   sent once; a 50 MB message; 100 concurrent clients; SMTP smuggling attempts (bare LF / CR
#   around the end of data, CVE-2023-51764) reach Postfix as one message each, never as a
#   second, smuggled one; a quoted recipient is forwarded as the address that was judged.
#
# Run as root (installs postfix, swaks, Cyrus SASL tools; idempotent). Called by scripts/test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
BASE=${BASE:-/tmp/ping32dlp-proxy-test}
SMTP_PORT=${SMTP_PORT:-2527}
SMTPS_PORT=${SMTPS_PORT:-2467}
MILTER_PORT=${MILTER_PORT:-8897}     # unused: the upstream runs without a milter
PLAIN_PORT=${PLAIN_PORT:-10587}
TLS_PORT=${TLS_PORT:-10465}
METRICS_PORT=${METRICS_PORT:-9702}
CONF=$BASE/etc
VMAIL=$BASE/vmail
STATE=$BASE/state
PROXY=$ROOT/target/release/ping32dlp-proxy
CLI=$ROOT/target/release/ping32dlp
MILTER=/bin/false
PASS=0; FAILS=0
ok() { PASS=$((PASS + 1)); echo "PASS: $*"; }
bad() { FAILS=$((FAILS + 1)); echo "FAIL: $*"; }
die() { echo "FATAL: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "run as root (a private Postfix instance needs it)"
[ -x "$PROXY" ] && [ -x "$CLI" ] || die "build first: cargo build --release -p ping32dlp-proxy -p ping32dlp-cli"
. "$ROOT/scripts/milter/postfix-env.sh"
stop_proxy() {
  if [ -f "$BASE/proxy.pid" ]; then
    local pid; pid=$(cat "$BASE/proxy.pid")
    if [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' < "/proc/$pid/cmdline" | grep -q ping32dlp-proxy; then
      kill "$pid" 2>/dev/null || true
    fi
    rm -f "$BASE/proxy.pid"
  fi
}
[ -d "$BASE" ] && stop_proxy
for p in "$PLAIN_PORT" "$TLS_PORT"; do port_free "$p" || die "127.0.0.1:$p is in use"; done
pfenv_setup
trap 'stop_proxy; pfenv_stop' EXIT
postconf -c "$CONF" -e 'smtpd_milters =' 'non_smtpd_milters ='

cat > "$BASE/policy.toml" <<EOT
[policy]
name = "proxy-test"
internal_domains = ["example.co.jp"]

[[rule]]
id = "block-cards-in-documents"
action = "block"
message_en = "Card numbers in attachments may not be sent outside."
when = { all = [{ recipients = "any_external" }, { detector = ["credit_card"], scope = "attachment" }] }

[[rule]]
id = "hold-my-number"
action = "hold"
approvers = ["boss@example.co.jp"]
when = { all = [{ recipients = "any_external" }, { detector = ["jp_my_number"] }] }

[approval]
notify_from = "dlp-noreply@dlp.test"
EOT
cat > "$BASE/proxy.toml" <<EOT
listen = "127.0.0.1:$PLAIN_PORT"
listen_tls = "127.0.0.1:$TLS_PORT"
hostname = "localhost"
release_interval_seconds = 1
metrics_listen = "127.0.0.1:$METRICS_PORT"
log_format = "json"

[dlp]
state_dir = "state"
policy = "policy.toml"

[upstream]
host = "127.0.0.1"
port = $SMTP_PORT
tls = "starttls"
ca_file = "tls/ca.pem"
server_name = "mx.dlp.test"
EOT
"$PROXY" --check-config "$BASE/proxy.toml" 2> "$BASE/first-run.txt"
grep -q "made a local CA" "$BASE/first-run.txt" && ok "first run made a local CA and printed how to trust it"
"$PROXY" --config "$BASE/proxy.toml" 2>>"$BASE/proxy.log" &
echo $! > "$BASE/proxy.pid"
wait_port "$PLAIN_PORT" 20 && wait_port "$TLS_PORT" 20 || die "the proxy did not listen (see $BASE/proxy.log)"
pfenv_start_postfix
PCA=$STATE/tls/ca.pem

wait_delivered() {
  local end=$(( $(date +%s) + $3 ))
  while [ "$(date +%s)" -le "$end" ]; do
    local f; f=$(grep -rlF -- "$2" "$VMAIL/$1/Maildir/new" 2>/dev/null | head -n1 || true)
    [ -n "$f" ] && { echo "$f"; return 0; }
    sleep 0.1
  done
  return 1
}
count_delivered() { grep -rlF -- "$2" "$VMAIL/$1/Maildir/new" 2>/dev/null | wc -l; }
identical() {  # delivered-file sent-file: the delivered message ends with exactly the sent bytes
  python3 - "$1" "$2" <<'EOT'
import sys
d = open(sys.argv[1], "rb").read().replace(b"\r\n", b"\n")
s = open(sys.argv[2], "rb").read().replace(b"\r\n", b"\n")
sys.exit(0 if d.endswith(s) and len(s) > 100 else 1)
EOT
}
PY=(python3 "$ROOT/scripts/milter/smtp_client.py")
AUTH=(--user ichiro --password secret)

# 1. clean mail over STARTTLS (verifying the proxy's CA): relayed byte-identical
out=$("${PY[@]}" send --port "$PLAIN_PORT" --tls starttls --ca "$PCA" "${AUTH[@]}" --subject "clean via proxy" \
  --body "週次の定例資料です。" --attach "$ROOT/corpus/extract/docs/logo.png" --save "$BASE/clean.eml" || true)
if grep -q "^RESULT 250" <<<"$out" && f=$(wait_delivered bob "clean via proxy" 15) && identical "$f" "$BASE/clean.eml"; then
  ok "clean mail (smtplib, STARTTLS to the proxy, STARTTLS upstream) -> delivered byte-identical"
else bad "clean relay: $out"; fi

# 2. cards in a .docx over implicit TLS -> 550 5.7.1, not delivered
rc=0; out=$(swaks --server "127.0.0.1:$TLS_PORT" --tls-on-connect --tls-verify --tls-ca-path "$PCA" \
  --from alice@dlp.test --to bob@dlp.test --auth PLAIN --auth-user ichiro --auth-password secret \
  --header "Subject: proxy quote" --attach-name "見積書.docx" --attach @"$ROOT/corpus/extract/docs/見積書.docx" 2>&1) || rc=$?
if [ "$rc" = 26 ] && grep -q "<~\* 550 5.7.1 Card numbers in attachments may not be sent outside" <<<"$out" \
   && ! wait_delivered bob "proxy quote" 1 >/dev/null; then
  ok "cards in a .docx (swaks, implicit TLS to the proxy) -> 550 5.7.1, not delivered"
else bad "docx block (rc=$rc)"; echo "$out" | tail -4; fi

# 3. AUTH relayed: a wrong password gets the upstream's 535; the right one is the audit user
out=$("${PY[@]}" send --port "$PLAIN_PORT" --user ichiro --password wrong --subject "bad auth" || true)
if grep -q "^RESULT 535" <<<"$out"; then ok "wrong password -> upstream's $out"; else bad "bad auth: $out"; fi
rc=0; out=$(swaks --server "127.0.0.1:$PLAIN_PORT" --from alice@dlp.test --to bob@dlp.test \
  --auth LOGIN --auth-user ichiro --auth-password secret --header "Subject: swaks plain login" --body "hello" 2>&1) || rc=$?
user=$("$CLI" audit search --state "$STATE" --format json --limit 1 | python3 -c "import json,sys; r=json.loads(sys.stdin.readline()); print(r['user'], r['channel'])")
if [ "$rc" = 0 ] && wait_delivered bob "swaks plain login" 15 >/dev/null && [ "$user" = "ichiro proxy" ]; then
  ok "AUTH LOGIN relayed (swaks, plain); audit user ichiro, channel proxy"
else bad "auth login (rc=$rc, user=$user)"; echo "$out" | tail -3; fi

# 4. held, approved -> delivered byte-identical by the release worker
out=$("${PY[@]}" send --port "$PLAIN_PORT" --tls starttls --ca "$PCA" "${AUTH[@]}" --subject "held approve" \
  --body "個人番号 1234 5678 9018 を送ります。" --save "$BASE/held.eml" || true)
aid=$(sed -n 's/.*request \([0-9a-f]*\).*/\1/p' <<<"$out")
if grep -q "^RESULT 250 2.0.0 Held for approval" <<<"$out" && [ -n "$aid" ] && ! wait_delivered bob "held approve" 2 >/dev/null; then
  ok "My Numbers -> 250 held for approval ($aid), not delivered"
else bad "hold: $out"; fi
"$CLI" approvals approve "$aid" --state "$STATE" --as boss@example.co.jp >/dev/null
if f=$(wait_delivered bob "held approve" 20) && identical "$f" "$BASE/held.eml"; then
  ok "approved -> relayed by the release worker, byte-identical"
else bad "approved mail not delivered"; tail -3 "$BASE/proxy.log"; fi

# 5. held, rejected -> never delivered; the sender is told
out=$("${PY[@]}" send --port "$PLAIN_PORT" "${AUTH[@]}" --subject "held reject" --body "個人番号 1234 5678 9018" || true)
aid=$(sed -n 's/.*request \([0-9a-f]*\).*/\1/p' <<<"$out")
"$CLI" approvals reject "$aid" --state "$STATE" --as boss@example.co.jp --comment "not this one" >/dev/null
if f=$(wait_delivered alice "X-Ping32DLP-Approval: $aid" 20) && grep -q "not this one" "$f" \
   && ! wait_delivered bob "held reject" 1 >/dev/null; then
  ok "rejected -> not delivered; the sender got a notice through the upstream"
else bad "reject/notice ($aid)"; fi

# 6. upstream down -> 451, nothing accepted; after it is back, sent exactly once
pf postfix -c "$CONF" stop >/dev/null; sleep 0.5
out=$("${PY[@]}" send --port "$PLAIN_PORT" --subject "upstream down once" --body "hello" || true)
if grep -q "^RESULT 451" <<<"$out"; then ok "upstream down -> $out"; else bad "upstream down: $out"; fi
pfenv_start_postfix
out=$("${PY[@]}" send --port "$PLAIN_PORT" --subject "upstream down once" --body "hello" || true)
sleep 1
if grep -q "^RESULT 250" <<<"$out" && wait_delivered bob "upstream down once" 15 >/dev/null \
   && [ "$(count_delivered bob "upstream down once")" = 1 ]; then
  ok "upstream back: the retried mail delivered exactly once"
else bad "after upstream restart: $out, $(count_delivered bob "upstream down once") copies"; fi

# 7. a 50 MB message
out=$("${PY[@]}" send --port "$PLAIN_PORT" "${AUTH[@]}" --subject "proxy fifty" --body "big" --attach-random 38000000 || true)
size=$(wait_delivered bob "proxy fifty" 60 | xargs -r stat -c %s)
hwm=$(grep VmHWM "/proc/$(cat "$BASE/proxy.pid")/status" | awk '{print $2}')
if grep -q "^RESULT 250" <<<"$out" && [ "${size:-0}" -gt 50000000 ]; then
  ok "a ${size} byte message relayed (proxy peak RSS $((hwm / 1024)) MiB)"
else bad "50 MB: $out (${size:-0} bytes delivered)"; fi

# 8. 100 concurrent clients
n0=$(find "$VMAIL/bob/Maildir/new" -type f | wc -l)
out=$("${PY[@]}" many --port "$PLAIN_PORT" --n 100 "${AUTH[@]}" --subject "proxy concurrent" --body "hello" || true)
end=$(( $(date +%s) + 60 ))
while [ "$(find "$VMAIL/bob/Maildir/new" -type f | wc -l)" -lt $((n0 + 100)) ] && [ "$(date +%s)" -le "$end" ]; do sleep 0.2; done
if grep -q "^RESULT ok=100 failed=0" <<<"$out" && [ "$(find "$VMAIL/bob/Maildir/new" -type f | wc -l)" -ge $((n0 + 100)) ]; then
  ok "100 concurrent clients: $(head -n1 <<<"$out"), all delivered"
else bad "concurrent: $(head -n3 <<<"$out")"; fi

# 9. SMTP smuggling: what follows a bare <LF>.<CR><LF> (or <CR><LF>.<LF>, <CR>.<CR>, <LF>.<LF>)
#    is part of the message; Postfix gets one message to bob, and the smuggled one to alice
#    never exists.
smuggle_out=$(python3 - "$PLAIN_PORT" <<'EOT'
import base64, socket, sys
port = int(sys.argv[1])
variants = [b"\n.\r\n", b"\r\n.\n", b"\r.\r", b"\n.\n"]
for i, end in enumerate(variants):
    s = socket.create_connection(("127.0.0.1", port), timeout=20)
    f = s.makefile("rb")
    def reply():
        while True:
            l = f.readline()
            if len(l) < 4 or l[3:4] != b"-":
                return l
    def cmd(line):
        s.sendall(line + b"\r\n")
        return reply()
    reply()
    cmd(b"EHLO smuggler.test")
    cmd(b"AUTH PLAIN " + base64.b64encode(b"\0ichiro\0secret"))
    cmd(b"MAIL FROM:<alice@dlp.test>")
    cmd(b"RCPT TO:<bob@dlp.test>")
    cmd(b"DATA")
    body = (b"Subject: smuggle-%d\r\n\r\nfirst part" % i + end +
            b"MAIL FROM:<bob@dlp.test>\r\nRCPT TO:<alice@dlp.test>\r\nDATA\r\n"
            b"Subject: smuggled-%d\r\n\r\nsmuggled body\r\n.\r\n" % i)
    s.sendall(body)
    print(i, reply().decode().strip())
    cmd(b"QUIT")
EOT
)
sleep 2
n_ok=$(grep -c " 250 " <<<"$smuggle_out" || true)
one_each=1
for i in 0 1 2 3; do
  [ "$(count_delivered bob "smuggle-$i")" = 1 ] || one_each=0
  [ "$(count_delivered alice "smuggled-$i")" = 0 ] || one_each=0
done
if [ "$n_ok" = 4 ] && [ "$one_each" = 1 ]; then
  ok "4 smuggling attempts through the proxy: Postfix delivered each as one message to bob, nothing smuggled to alice"
else bad "smuggling: $smuggle_out"; for i in 0 1 2 3; do echo "bob smuggle-$i: $(count_delivered bob "smuggle-$i"), alice smuggled-$i: $(count_delivered alice "smuggled-$i")"; done; fi

# 10. a quoted local part: judged as the domain Postfix routes it to, and forwarded as such
#     (Postfix queues it for elsewhere.invalid; bob never gets it); a bare CR in RCPT -> 500
out=$(python3 - "$PLAIN_PORT" <<'EOT'
import base64, socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=20)
f = s.makefile("rb")
def reply():
    while True:
        l = f.readline()
        if len(l) < 4 or l[3:4] != b"-":
            return l.decode().strip()
def cmd(line):
    s.sendall(line + b"\r\n")
    return reply()
reply(); cmd(b"EHLO q.test"); cmd(b"AUTH PLAIN " + base64.b64encode(b"\0ichiro\0secret"))
cmd(b"MAIL FROM:<alice@dlp.test>")
print(cmd(b"RCPT TO:<bob@dlp.test>\rRCPT TO:<alice@dlp.test>"))
print(cmd(b'RCPT TO:<"bob@dlp.test>"@elsewhere.invalid>'))
cmd(b"DATA")
s.sendall(b"Subject: quoted-recipient\r\n\r\nhello\r\n.\r\n")
print(reply())
cmd(b"QUIT")
EOT
)
sleep 1
rec=$("$CLI" audit search --state "$STATE" --format json --limit 1 | python3 -c "import json,sys; r=json.loads(sys.stdin.readline()); print(' '.join('%s:%s' % (x['address'], x['external']) for x in r['recipients']))")
if [ "$(sed -n 1p <<<"$out" | cut -c1-3)" = 500 ] && [ "$(sed -n 2p <<<"$out" | cut -c1-3)" = 250 ] \
   && [ "$(sed -n 3p <<<"$out" | cut -c1-3)" = 250 ] && grep -q "@elsewhere.invalid:True" <<<"$rec" \
   && ! wait_delivered bob "quoted-recipient" 2 >/dev/null; then
  ok "a bare CR in RCPT -> 500; a quoted local part is judged external ($rec) and never reaches bob"
else bad "quoted recipient: $out / $rec"; fi

# 11. SIGHUP reloads the policy: the next mail gets the new verdict; a broken file changes nothing
secret() { "${PY[@]}" send --port "$PLAIN_PORT" --tls starttls --ca "$PCA" "${AUTH[@]}" --subject "$1" --body "極秘 資料" || true; }
before=$(secret "secret before reload")
cp "$BASE/policy.toml" "$BASE/policy.orig"
cat >> "$BASE/policy.toml" <<'EOT'

[[rule]]
id = "block-confidential"
action = "block"
message_en = "Reloaded: confidential mail stays inside."
when = { all = [{ recipients = "any_external" }, { detector = ["confidential_marking"] }] }
EOT
PPID_=$(cat "$BASE/proxy.pid")
kill -HUP "$PPID_"
wait_log "$BASE/proxy.log" "reloaded on SIGHUP" 20
after=$(secret "secret after reload")
printf '\n[[rule]]\nid = "broken"\naction = "explode"\n' >> "$BASE/policy.toml"
kill -HUP "$PPID_"
wait_log "$BASE/proxy.log" "reload on SIGHUP failed" 20
broken=$(secret "secret after a broken reload")
if grep -q "^RESULT 250" <<<"$before" && grep -q "^RESULT 550 5.7.1 Reloaded" <<<"$after" \
   && grep -q "^RESULT 550 5.7.1 Reloaded" <<<"$broken" && kill -0 "$PPID_" 2>/dev/null \
   && grep "reload on SIGHUP failed" "$BASE/proxy.log" | grep -q "policy.toml:[0-9]*:[0-9]*"; then
  ok "SIGHUP: a 極秘 mail passes before, is refused after the new policy and after a broken one (positioned error logged)"
else bad "SIGHUP reload: $before / $after / $broken"; tail -n 3 "$BASE/proxy.log"; fi
cp "$BASE/policy.orig" "$BASE/policy.toml"

# Metrics and health on the proxy's metrics listener.
if out=$(python3 "$ROOT/scripts/metrics_value.py" --check "http://127.0.0.1:$METRICS_PORT" proxy proxy-test); then ok "$out"
else bad "$out"; fi

# log_format = "json": every line of the proxy's log is one JSON object with time, program and
# event; each judged mail one `inspected` event with channel, action and record; no value from
# a mail (the My Number 1234 5678 9018 above) anywhere in the log.
if out=$(python3 - "$BASE/proxy.log" "$METRICS_PORT" <<'EOF'
import json, re, sys, urllib.request
lines = open(sys.argv[1], encoding="utf-8").read().splitlines()
events = [json.loads(l) for l in lines]
assert all({"time", "program", "event"} <= e.keys() and e["program"] == "ping32dlp-proxy" for e in events)
insp = [e for e in events if e["event"] == "inspected"]
assert all(e["channel"] == "proxy" and e["action"] and e["record"].isdigit() for e in insp)
metrics = urllib.request.urlopen("http://127.0.0.1:%s/metrics" % sys.argv[2]).read().decode()
counted = sum(float(m) for m in re.findall(r'^ping32dlp_inspected_total\{channel="proxy",action="[a-z]+"\} (\S+)$', metrics, re.M))
assert len(insp) == counted, (len(insp), counted)
text = open(sys.argv[1], encoding="utf-8").read()
assert not re.search(r"1234 ?5678 ?9018|123456789018", text)
print("%d lines, all JSON objects with an event id; %d inspected events (= the metrics' count); kinds: %s"
      % (len(events), len(insp), ", ".join(sorted({e["event"] for e in events}))))
EOF
); then ok "log: $out"; else bad "JSON log: $out"; tail -n 3 "$BASE/proxy.log"; fi

echo "--- proxy log (last lines)"; tail -n 6 "$BASE/proxy.log"
echo "$PASS passed, $FAILS failed"
[ "$FAILS" = 0 ]
