#!/usr/bin/env bash
# ping32dlp-milter against a real Postfix on loopback (a private instance: its own config and
# queue directories under $BASE; the system Postfix is never touched), with swaks and Python's
# smtplib as clients over plain SMTP, STARTTLS and implicit TLS, SASL-authenticated:
#
#   clean mail -> delivered with X-Ping32DLP-Verdict; card numbers in a .docx -> 550 5.7.1;
#   My Numbers -> hold queue, `ping32dlp approvals approve` delivers it byte-identical (body
#   SHA-256), reject deletes it and the sender gets a notice; audit rows carry user, client,
#   TLS, envelope and queue id; a 50 MB message with bounded milter memory; 100 concurrent
#   sessions; SIGHUP reloads; a real Prometheus scrapes the milter's metrics while mail flows;
#   milter down -> 451 (fail closed).
#
# Run as root (installs postfix, swaks, Cyrus SASL tools; idempotent). Called by scripts/test.sh
# after the release build. Env: BASE, SMTP_PORT, SMTPS_PORT, MILTER_PORT, METRICS_PORT, PROM_PORT.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
BASE=${BASE:-/tmp/ping32dlp-milter-test}
SMTP_PORT=${SMTP_PORT:-2525}
SMTPS_PORT=${SMTPS_PORT:-2465}
MILTER_PORT=${MILTER_PORT:-8899}
METRICS_PORT=${METRICS_PORT:-9701}
PROM_PORT=${PROM_PORT:-9790}
CONF=$BASE/etc
VMAIL=$BASE/vmail
STATE=$BASE/state
MILTER=$ROOT/target/release/ping32dlp-milter
CLI=$ROOT/target/release/ping32dlp
CLIENT=$ROOT/scripts/milter/smtp_client.py
export DEBIAN_FRONTEND=noninteractive

PASS=0; FAILS=0
ok() { PASS=$((PASS + 1)); echo "PASS: $*"; }
bad() { FAILS=$((FAILS + 1)); echo "FAIL: $*"; }
die() { echo "FATAL: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (a private Postfix instance needs it)"
[ -x "$MILTER" ] && [ -x "$CLI" ] || die "build first: cargo build --release -p ping32dlp-milter -p ping32dlp-cli"

. "$ROOT/scripts/milter/postfix-env.sh"
pfenv_setup
# Debian's Prometheus (section 7c), started below as a private instance; never the system one.
command -v prometheus >/dev/null || apt-get -o DPkg::Lock::Timeout=600 install -y -q \
  --no-install-recommends prometheus >/dev/null || die "cannot install prometheus"
PROM_PID=
cleanup() { [ -n "$PROM_PID" ] && kill "$PROM_PID" 2>/dev/null; pfenv_stop; }
trap cleanup EXIT

# The policy and the milter's configuration.
cat > "$BASE/policy.toml" <<EOF
[policy]
name = "milter-test"
internal_domains = ["example.co.jp"]

[[rule]]
id = "block-cards-in-documents"
action = "block"
severity = "high"
message_en = "Card numbers in attachments may not be sent outside."
message_ja = "添付ファイルのカード番号は社外に送信できません。"
when = { all = [{ recipients = "any_external" }, { detector = ["credit_card"], scope = "attachment" }] }

[[rule]]
id = "hold-my-number"
action = "hold"
approvers = ["boss@example.co.jp"]
expires = "1d"
when = { all = [{ recipients = "any_external" }, { detector = ["jp_my_number"] }] }

[[rule]]
id = "tag-external"
action = "tag"
add_header = "X-DLP-External: yes"
when = { recipients = "any_external" }

[approval]
release_command = "postsuper -c $CONF -H {queue_id} && postqueue -c $CONF -i {queue_id}"
discard_command = "postsuper -c $CONF -d {queue_id} hold"
notify_command = "sendmail -C $CONF -t -i"
notify_from = "dlp-noreply@dlp.test"
EOF
cat > "$BASE/milter.toml" <<EOF
listen = "inet:127.0.0.1:$MILTER_PORT"
metrics_listen = "127.0.0.1:$METRICS_PORT"

[dlp]
state_dir = "$STATE"
policy = "policy.toml"
EOF
"$MILTER" --check-config "$BASE/milter.toml"

pfenv_start_milter "$BASE/milter.toml"
pfenv_start_postfix
# ------------------------------------------------------------------ helpers
wait_delivered() {  # user string seconds -> prints the file
  local end=$(( $(date +%s) + $3 ))
  while [ "$(date +%s)" -le "$end" ]; do
    local f
    f=$(grep -rlF -- "$2" "$VMAIL/$1/Maildir/new" 2>/dev/null | head -n1 || true)
    [ -n "$f" ] && { echo "$f"; return 0; }
    sleep 0.1
  done
  return 1
}
delivered_count() { find "$VMAIL/$1/Maildir/new" -type f 2>/dev/null | wc -l; }
queue_id_of() { sed -n 's/.*queued as \([0-9A-Za-z]*\).*/\1/p' | head -n1; }
body_sha() {  # file -> SHA-256 of the body (after the first empty line), line ends as LF
  python3 - "$1" <<'EOF'
import hashlib, re, sys
raw = open(sys.argv[1], "rb").read().replace(b"\r\n", b"\n")
print(hashlib.sha256(raw.split(b"\n\n", 1)[1]).hexdigest())
EOF
}
json_field() { python3 -c "import json,sys; d=json.load(sys.stdin); print(eval(sys.argv[1], {}, {'d': d}))" "$1"; }
AUTH=(--auth PLAIN --auth-user ichiro --auth-password secret)
SW=(swaks --server "127.0.0.1:$SMTP_PORT" --from alice@dlp.test --helo pc42.example.co.jp --timeout 120)
PY=(python3 "$CLIENT")

# ------------------------------------------------------------------ 1. clean mail
rc=0; out=$("${SW[@]}" "${AUTH[@]}" --to bob@dlp.test --header "Subject: clean swaks" --body "nothing sensitive here" 2>&1) || rc=$?
if [ "$rc" = 0 ] && f=$(wait_delivered bob "Subject: clean swaks" 15) \
   && grep -q "^X-Ping32DLP-Verdict: tag; record=" "$f" && grep -q "^X-DLP-External: yes" "$f"; then
  ok "clean mail (swaks, SASL) -> 250, delivered with X-Ping32DLP-Verdict and the tag header"
else bad "clean mail (rc=$rc)"; echo "$out" | tail -5; fi

out=$("${PY[@]}" send --port "$SMTP_PORT" --tls starttls --ca "$BASE/tls/ca.pem" --user ichiro --password secret \
  --subject "clean smtplib starttls" --body "hello" || true)
if grep -q "^RESULT 250" <<<"$out" && f=$(wait_delivered bob "clean smtplib starttls" 15) && grep -q "^X-Ping32DLP-Verdict:" "$f"; then
  ok "clean mail (smtplib, STARTTLS) -> $out"
else bad "clean smtplib starttls: $out"; fi

# ------------------------------------------------------------------ 2. cards in a .docx -> 550
DOCX="$ROOT/corpus/extract/docs/見積書.docx"
rc=0; out=$("${SW[@]}" "${AUTH[@]}" --to bob@dlp.test --header "Subject: quote" --body "please see the attachment" \
  --attach-type application/vnd.openxmlformats-officedocument.wordprocessingml.document --attach-name "見積書.docx" \
  --attach @"$DOCX" 2>&1) || rc=$?
if [ "$rc" = 26 ] && grep -q "<\*\* 550 5.7.1 Card numbers in attachments may not be sent outside. (incident [0-9]*)" <<<"$out"; then
  ok "cards in a .docx (swaks) -> 550 5.7.1 with the policy's text"
else bad "docx block (rc=$rc)"; echo "$out" | grep -E "^ *<" | tail -5; fi
out=$("${PY[@]}" send --port "$SMTPS_PORT" --tls implicit --ca "$BASE/tls/ca.pem" --user ichiro --password secret \
  --subject "quote over TLS" --attach "$DOCX" || true)
if grep -q "^RESULT 550 5.7.1" <<<"$out"; then ok "cards in a .docx (smtplib, implicit TLS) -> $out"
else bad "docx block over implicit TLS: $out"; fi
rc=0; out=$(swaks --server "127.0.0.1:$SMTPS_PORT" --tls-on-connect --tls-verify --tls-ca-path "$BASE/tls/ca.pem" \
  --from alice@dlp.test --helo pc42 "${AUTH[@]}" --to bob@dlp.test --header "Subject: swaks tls quote" \
  --attach-name "見積書.docx" --attach @"$DOCX" 2>&1) || rc=$?
if [ "$rc" = 26 ] && grep -q "<~\* 550 5.7.1" <<<"$out"; then ok "cards in a .docx (swaks, implicit TLS, verified cert) -> 550"
else bad "swaks implicit TLS block (rc=$rc)"; echo "$out" | tail -5; fi

# ------------------------------------------------------------------ 3. hold, approve -> delivered byte-identical
out=$("${PY[@]}" send --port "$SMTP_PORT" --tls starttls --ca "$BASE/tls/ca.pem" --user ichiro --password secret \
  --subject "payroll approve" --body "社員の個人番号: 1234 5678 9018 をお送りします。" --save "$BASE/sent/approve.eml" || true)
qid=$(queue_id_of <<<"$out")
sleep 0.5
if grep -q "^RESULT 250" <<<"$out" && [ -n "$qid" ] && postqueue -c "$CONF" -p | grep -q "^${qid}!" \
   && ! wait_delivered bob "payroll approve" 1 >/dev/null; then
  ok "My Numbers (STARTTLS) -> 250 queued as $qid, in the hold queue ('$qid!'), not delivered"
else bad "hold: $out (qid=$qid)"; postqueue -c "$CONF" -p | head; fi
aid=$("$CLI" approvals list --state "$STATE" --json | python3 -c "
import json,sys
for l in sys.stdin:
    a=json.loads(l)
    if a.get('queue_id')=='$qid': print(a['id'])")
if [ -n "$aid" ]; then ok "approval $aid records queue id $qid"; else bad "no approval with queue id $qid"; fi
"$CLI" approvals show "$aid" --state "$STATE" --as boss@example.co.jp >/dev/null
"$CLI" approvals approve "$aid" --state "$STATE" --as boss@example.co.jp --comment "payroll partner"
if f=$(wait_delivered bob "payroll approve" 30); then
  if [ "$(body_sha "$f")" = "$(body_sha "$BASE/sent/approve.eml")" ]; then
    ok "approved -> released from the hold queue and delivered; body SHA-256 identical to what was sent"
  else bad "approved mail delivered with a different body"; fi
else bad "approved mail not delivered"; postqueue -c "$CONF" -p | head; fi
state=""
for _ in $(seq 1 40); do  # the milter's worker carries the decision out within seconds
  state=$("$CLI" approvals show "$aid" --state "$STATE" --as auditor --json | json_field 'd["approval"]["state"]')
  [ "$state" = released ] && break; sleep 0.25
done
[ "$state" = released ] && ok "approval $aid is released by the milter (views and decision recorded; no --policy needed)" || bad "approval state $state"

# ------------------------------------------------------------------ 4. hold, reject -> deleted, sender told
out=$("${PY[@]}" send --port "$SMTP_PORT" --user ichiro --password secret --subject "payroll reject" \
  --body "個人番号 1234 5678 9018" || true)
qid=$(queue_id_of <<<"$out"); sleep 0.5
aid=$("$CLI" approvals list --state "$STATE" --json | python3 -c "
import json,sys
for l in sys.stdin:
    a=json.loads(l)
    if a.get('queue_id')=='$qid': print(a['id'])")
"$CLI" approvals reject "$aid" --state "$STATE" --as boss@example.co.jp --comment "wrong recipient"
for _ in $(seq 1 40); do postqueue -c "$CONF" -p | grep -q "^${qid}" || break; sleep 0.25; done
if [ -n "$qid" ] && ! postqueue -c "$CONF" -p | grep -q "^${qid}" && ! wait_delivered bob "payroll reject" 2 >/dev/null; then
  ok "rejected -> $qid deleted from the hold queue, never delivered"
else bad "reject: $qid still queued or delivered"; fi
if f=$(wait_delivered alice "X-Ping32DLP-Approval: $aid" 30) && grep -q "wrong recipient" "$f" && grep -q "was not sent" "$f"; then
  ok "the sender was told why (notice in alice's mailbox with the approver's comment)"
else bad "no notice to the sender"; fi

# ------------------------------------------------------------------ 5. audit rows carry every field
rec=$("$CLI" audit search --state "$STATE" --format json --verdict hold | python3 -c "
import json,sys
for l in sys.stdin:
    if 'payroll approve' in json.loads(l)['subject']: print(l.strip()); break")
if python3 - "$rec" <<'EOF'
import json, sys
r = json.loads(sys.argv[1])
need = {"channel": "milter", "user": "ichiro@dlp.test", "client_addr": "127.0.0.1", "tls": "TLSv1.3"}
bad = [k for k, v in need.items() if r.get(k) != v]
bad += [k for k in ("queue_id", "sender", "recipients", "subject", "host", "time", "approval") if not r.get(k)]
if r.get("sender") != "alice@dlp.test" or r.get("recipients", [{}])[0].get("address") != "bob@dlp.test":
    bad.append("envelope")
if bad:
    print("missing or wrong:", bad, json.dumps(r, ensure_ascii=False)[:600]); sys.exit(1)
EOF
then ok "audit row: channel, user (SASL), client, TLS, host, envelope, subject, queue id, approval"
else bad "audit row fields"; fi

# ------------------------------------------------------------------ 6. a 50 MB message, bounded memory
before=$(grep VmHWM "/proc/$(cat "$BASE/milter.pid")/status" | awk '{print $2}')
t0=$(date +%s.%N)
out=$("${PY[@]}" send --port "$SMTP_PORT" --user ichiro --password secret --subject "fifty megabytes" \
  --body "big" --attach-random 38000000 || true)
t1=$(date +%s.%N)
hwm=$(grep VmHWM "/proc/$(cat "$BASE/milter.pid")/status" | awk '{print $2}')
size=$(wait_delivered bob "fifty megabytes" 60 | xargs -r stat -c %s)
echo "   50 MB: $out; delivered ${size:-0} bytes in $(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.1f", b-a}') s; milter VmHWM ${before} kB -> ${hwm} kB"
if grep -q "^RESULT 250" <<<"$out" && [ "${size:-0}" -gt 50000000 ] && [ "$hwm" -lt 262144 ]; then
  ok "a ${size} byte message passes; milter peak RSS $((hwm / 1024)) MiB (< 256 MiB)"
else bad "50 MB message (peak ${hwm} kB, delivered ${size:-0})"; fi

# ------------------------------------------------------------------ 7. 100 concurrent sessions
n0=$(delivered_count bob)
out=$("${PY[@]}" many --port "$SMTP_PORT" --n 100 --user ichiro --password secret --subject "concurrent" --body "hello" || true)
sleep 1
end=$(( $(date +%s) + 60 ))
while [ "$(delivered_count bob)" -lt $((n0 + 100)) ] && [ "$(date +%s)" -le "$end" ]; do sleep 0.2; done
if grep -q "^RESULT ok=100 failed=0" <<<"$out" && [ "$(delivered_count bob)" -ge $((n0 + 100)) ]; then
  ok "100 concurrent sessions: $(head -n1 <<<"$out"), all delivered"
else bad "concurrent: $(head -n3 <<<"$out"); delivered $(( $(delivered_count bob) - n0 ))"; fi

# ------------------------------------------------------------------ 7b. SIGHUP reloads the policy
# A milter connection opened before the reload must still be answered after it.
MPID=$(cat "$BASE/milter.pid")
rm -f "$BASE/hup.go"
python3 - "$MILTER_PORT" "$BASE/hup.go" > "$BASE/hup.conn" 2>&1 <<'EOF' &
import os, socket, struct, sys, time
def pkt(cmd, data=b""):
    return struct.pack(">I", len(data) + 1) + cmd + data
def read(s):
    n = struct.unpack(">I", s.recv(4, socket.MSG_WAITALL))[0]
    return s.recv(n, socket.MSG_WAITALL)
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=60)
s.sendall(pkt(b"O", struct.pack(">III", 6, 0x1FF, 0)))
print("optneg", read(s)[:1].decode())
sys.stdout.flush()
end = time.time() + 60
while not os.path.exists(sys.argv[2]) and time.time() < end:
    time.sleep(0.05)
s.sendall(pkt(b"C", b"pc1.example.co.jp\0U"))
print("connect", read(s)[:1].decode())
EOF
HUPCONN=$!
send_secret() {  # subject -> RESULT line
  "${PY[@]}" send --port "$SMTP_PORT" --user ichiro --password secret --subject "$1" --body "極秘 資料です" || true
}
out=$(send_secret "secret before reload")
if grep -q "^RESULT 250" <<<"$out"; then ok "before the reload a 極秘 mail passes ($out)"
else bad "before reload: $out"; fi
cp "$BASE/policy.toml" "$BASE/policy.orig"
cat >> "$BASE/policy.toml" <<'EOF'

[[rule]]
id = "block-confidential-after-reload"
action = "block"
message_en = "Reloaded: confidential mail stays inside."
when = { all = [{ recipients = "any_external" }, { detector = ["confidential_marking"] }] }
EOF
kill -HUP "$MPID"
wait_log "$BASE/milter.log" "reloaded on SIGHUP: policy milter-test (4 rules)" 20
out=$(send_secret "secret after reload")
if grep -q "^RESULT 550 5.7.1 Reloaded: confidential mail stays inside." <<<"$out" && kill -0 "$MPID" 2>/dev/null; then
  ok "SIGHUP with a new policy: the next mail gets the new verdict, same process ($out)"
else bad "after SIGHUP: $out"; tail -n 3 "$BASE/milter.log"; fi
printf '\n[[rule]]\nid = "broken"\naction = "explode"\n' >> "$BASE/policy.toml"
kill -HUP "$MPID"
wait_log "$BASE/milter.log" "reload on SIGHUP failed" 20
err=$(grep "reload on SIGHUP failed" "$BASE/milter.log" | tail -n1)
out=$(send_secret "secret after a broken reload")
if grep -q "policy.toml:[0-9]*:[0-9]*" <<<"$err" && grep -q "^RESULT 550 5.7.1 Reloaded" <<<"$out" && kill -0 "$MPID" 2>/dev/null; then
  ok "SIGHUP with a broken policy: logged with its position, the running policy stays ($out)"
  echo "   log: ${err#*: }"
else bad "broken reload: log '$err', mail $out"; fi
cp "$BASE/policy.orig" "$BASE/policy.toml"
touch "$BASE/hup.go"
wait "$HUPCONN" || true
if [ "$(cat "$BASE/hup.conn" | tr '\n' ' ')" = "optneg O connect c " ]; then
  ok "a milter connection opened before both reloads is still served after them"
else bad "connection across the reload: $(cat "$BASE/hup.conn")"; fi

# ------------------------------------------------------------------ 7c. Prometheus scrapes the milter
# A real Prometheus scrapes the milter every second while mail flows through Postfix; its HTTP
# API must show the inspected-messages counter grown by exactly the mails sent, the latency
# histogram filled, and the holds and reloads of the sections above.
http_get() {  # url -> "status body"
  python3 - "$1" <<'EOF'
import sys, urllib.request, urllib.error
try:
    r = urllib.request.urlopen(sys.argv[1], timeout=10); print(r.status, r.read().decode().strip())
except urllib.error.HTTPError as e:
    print(e.code, e.read().decode().strip())
except Exception as e:
    print("000", e)
EOF
}
promq() {  # PromQL -> the value of the first result, or "none"
  python3 - "http://127.0.0.1:$PROM_PORT/api/v1/query" "$1" <<'EOF'
import json, sys, urllib.parse, urllib.request
try:
    u = sys.argv[1] + "?" + urllib.parse.urlencode({"query": sys.argv[2]})
    r = json.load(urllib.request.urlopen(u, timeout=10))["data"]["result"]
    print(r[0]["value"][1] if r else "none")
except Exception:
    print("none")
EOF
}
prom_wait() {  # PromQL expected seconds -> 0 when the value reaches what is expected
  local end=$(( $(date +%s) + $3 )) v=none
  while [ "$(date +%s)" -le "$end" ]; do
    v=$(promq "$1"); [ "$v" = "$2" ] && return 0; sleep 0.5
  done
  echo "   $1 = $v (expected $2)"; return 1
}
mkdir -p "$BASE/prometheus"
cat > "$BASE/prometheus/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: ping32dlp-milter
    static_configs:
      - targets: ["127.0.0.1:$METRICS_PORT"]
EOF
prometheus --config.file="$BASE/prometheus/prometheus.yml" --storage.tsdb.path="$BASE/prometheus/data" \
  --web.listen-address="127.0.0.1:$PROM_PORT" > "$BASE/prometheus/log" 2>&1 &
PROM_PID=$!
INSP='sum(ping32dlp_inspected_total{job="ping32dlp-milter",channel="milter"})'
# The baseline: Prometheus sees the target up and the same count as the milter itself.
direct=$(http_get "http://127.0.0.1:$METRICS_PORT/metrics" | grep -o 'ping32dlp_inspected_total{channel="milter",action="[a-z]*"} [0-9]*' | awk '{s+=$2} END {print s+0}')
if prom_wait 'up{job="ping32dlp-milter"}' 1 30 && prom_wait "$INSP" "$direct" 20; then
  ok "Prometheus scrapes the milter: up, ${direct} messages inspected so far"
else bad "Prometheus does not scrape the milter"; tail -n 5 "$BASE/prometheus/log"; fi
before=$(promq "$INSP")
lat_before=$(promq 'sum(ping32dlp_inspection_duration_seconds_count{channel="milter"})')
sent=0
for i in 1 2 3 4 5 6 7; do
  out=$("${PY[@]}" send --port "$SMTP_PORT" --user ichiro --password secret --subject "metrics $i" --body "hello $i" || true)
  grep -q "^RESULT 250" <<<"$out" && sent=$((sent + 1))
done
if [ "$sent" = 7 ] && prom_wait "$INSP" "$((before + 7))" 20 \
   && prom_wait 'sum(ping32dlp_inspection_duration_seconds_count{channel="milter"})' "$((lat_before + 7))" 10; then
  ok "7 mails through Postfix: Prometheus' inspected counter went $before -> $((before + 7)), latency histogram count +7"
else bad "inspected counter after 7 mails (sent $sent): $(promq "$INSP") from $before"; fi
p99=$(promq 'histogram_quantile(0.99, sum by (le) (ping32dlp_inspection_duration_seconds_bucket{channel="milter"}))')
le1=$(promq 'sum(ping32dlp_inspection_duration_seconds_bucket{channel="milter",le="1.0"})')
if python3 -c "import sys; v=float(sys.argv[1]); sys.exit(0 if 0 < v < 60 else 1)" "$p99" 2>/dev/null && [ "$le1" != none ] && [ "$le1" -gt 0 ]; then
  ok "latency histogram filled: p99 ${p99} s, ${le1} inspections under 1 s"
else bad "latency histogram: p99 '$p99', le=1 '$le1'"; fi
blocked=$(promq 'sum(ping32dlp_inspected_total{action="block"})')
cards=$(promq 'sum(ping32dlp_findings_total{detector="credit_card"})')
closed=$(promq 'sum(ping32dlp_holds_closed_total)')
failed=$(promq 'ping32dlp_reloads_total{outcome="failed"}')
if [ "$blocked" != none ] && [ "$blocked" -ge 1 ] && [ "$cards" != none ] && [ "$cards" -ge 1 ] \
   && [ "$closed" != none ] && [ "$closed" -ge 2 ] && [ "$failed" = 1 ]; then
  ok "by action, detector, hold outcome and reload: blocked $blocked, credit_card findings $cards, holds closed $closed, failed reloads $failed"
else bad "labelled series: blocked $blocked, cards $cards, closed $closed, failed reloads $failed"; fi
labels=$(http_get "http://127.0.0.1:$METRICS_PORT/metrics" | grep -o '{[^}]*}' | sort -u)
if grep -Eq '[0-9]{6,}' <<<"$labels"; then bad "a number from mail in the metric labels: $(grep -E '[0-9]{6,}' <<<"$labels" | head -n 2)"
else ok "no value from mail in the metrics ($(wc -l <<<"$labels") label sets)"; fi
h=$(http_get "http://127.0.0.1:$METRICS_PORT/healthz"); r=$(http_get "http://127.0.0.1:$METRICS_PORT/readyz")
if [ "$h" = "200 ok" ] && grep -q "^200 ready: policy milter-test" <<<"$r"; then ok "/healthz: $h; /readyz: $r"
else bad "health: '$h' / '$r'"; fi
kill "$PROM_PID" 2>/dev/null; wait "$PROM_PID" 2>/dev/null || true; PROM_PID=

# ------------------------------------------------------------------ 7d. log lines: one per event, key=value
# Every line of the milter's log is `time=... program=ping32dlp-milter event=<id> ...`, each mail
# judged gives one `event=inspected` line with channel, action and record, and no value from a
# mail (the My Number 1234 5678 9018 of sections 3 and 4) is in the log.
lines=$(wc -l < "$BASE/milter.log")
odd=$(grep -Evc '^time=[0-9T:-]+Z program=ping32dlp-milter event=[a-z_]+( |$)' "$BASE/milter.log" || true)
insp=$(grep -Ec '^time=\S+ program=ping32dlp-milter event=inspected channel=milter action=(allow|audit|tag|alert|hold|block) record=[0-9]+ ' "$BASE/milter.log" || true)
counted=$(python3 "$ROOT/scripts/metrics_value.py" "http://127.0.0.1:$METRICS_PORT/metrics" ping32dlp_inspected_total channel=milter)
if [ "$odd" = 0 ] && [ "$insp" -ge 100 ] && [ "$insp" = "$counted" ] && ! grep -Eq '1234 ?5678 ?9018|123456789018' "$BASE/milter.log"; then
  ok "log: $lines lines all key=value with an event id, $insp event=inspected lines (= the metrics' count), no value from mail"
  echo "   $(grep -m1 'event=inspected' "$BASE/milter.log")"
else bad "log: $odd lines not key=value, $insp inspected lines, metrics count $counted"; grep -Ev '^time=' "$BASE/milter.log" | head -n 3; fi

# ------------------------------------------------------------------ 8. milter down -> 451
kill "$(cat "$BASE/milter.pid")"; rm -f "$BASE/milter.pid"; sleep 0.3
out=$("${PY[@]}" send --port "$SMTP_PORT" --subject "milter down" || true)
if grep -q "^RESULT 451 4.7.1" <<<"$out"; then ok "milter down -> $out (milter_default_action = tempfail)"
else bad "milter down: $out"; fi

echo "--- milter log (last lines)"; tail -n 8 "$BASE/milter.log"
echo "$PASS passed, $FAILS failed"
[ "$FAILS" = 0 ]
