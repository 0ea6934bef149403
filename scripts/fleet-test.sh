#!/usr/bin/env bash
# The endpoint fleet with real processes on loopback: a server (ping32dlp-console over HTTPS
# with the agents' API, on a private PostgreSQL), three endpoint agents (ping32dlp-proxy, each
# with its own state directory and credential, store = "https://..."), a real Postfix as their
# upstream.
#
#   1. an admin makes three one-time tokens (`ping32dlp fleet token`); each PC enrols
#      (`ping32dlp agent enrol`); a used token is refused;
#   2. mail through each agent (a clean one delivered, one with card numbers refused 550): the
#      server's audit trail (`ping32dlp audit search --store URL`) and the console (Agents page,
#      audit search by agent) list every mail with its agent's name;
#   3. offline: the server stopped, 200 mails through agent 1 (every one judged, delivered by
#      Postfix, none refused, none lost); the server restarted: every record arrives once, in
#      the order the agent judged them;
#   4. a revoked agent keeps judging mail on its PC, and the server refuses its uploads;
#   and in between: a policy pushed from the console reaches every agent; mail held on an
#   agent is approved or rejected in the console and delivered (byte-identical) or not by that
#   agent; a vendor agent on the C ABI (ffi/tests/fleet/agent.c) enrols and records.
#
# Run as root (installs postgresql, postfix; idempotent). Called by scripts/test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
BASE=${BASE:-/tmp/ping32dlp-fleet-test}
SMTP_PORT=${SMTP_PORT:-2541}
SMTPS_PORT=${SMTPS_PORT:-2481}
MILTER_PORT=${MILTER_PORT:-8921}     # unused: the upstream runs without a milter
SERVER_PORT=${SERVER_PORT:-8051}
CONF=$BASE/etc
VMAIL=$BASE/vmail
PROXY=$ROOT/target/release/ping32dlp-proxy
CONSOLE=$ROOT/target/release/ping32dlp-console
CLI=$ROOT/target/release/ping32dlp
PY=(python3 "$ROOT/scripts/milter/smtp_client.py")
PASS=0; FAILS=0
ok() { PASS=$((PASS + 1)); echo "PASS: $*"; }
bad() { FAILS=$((FAILS + 1)); echo "FAIL: $*"; }
die() { echo "FATAL: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "run as root (a private Postfix instance needs it)"
for b in "$PROXY" "$CONSOLE" "$CLI"; do [ -x "$b" ] || die "build first: $b"; done

PGDIR=/tmp/ping32dlp-fleet-pg PGPORT=${PGPORT:-25452}
. "$ROOT/scripts/pg-env.sh"
. "$ROOT/scripts/milter/postfix-env.sh"

kill_pidfile() {  # file name: kill the process if it is still that program
  [ -f "$1" ] || return 0
  local pid; pid=$(cat "$1")
  if [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' < "/proc/$pid/cmdline" | grep -q "$2"; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
  rm -f "$1"
}
stop_all() {
  for n in 1 2 3; do kill_pidfile "$BASE/agent$n.pid" ping32dlp-proxy; done
  kill_pidfile "$BASE/server.pid" ping32dlp-console
  pfenv_stop 2>/dev/null || true
  pg_stop 2>/dev/null || true
}
[ -d "$BASE" ] && stop_all
for p in "$SERVER_PORT" 10601 10602 10603 10611 10612 10613; do port_free "$p" || die "127.0.0.1:$p is in use"; done
pfenv_setup     # makes $BASE afresh: Postfix, its CA (tls/ca.pem) and the server certificate
trap stop_all EXIT
postconf -c "$CONF" -e 'smtpd_milters =' 'non_smtpd_milters ='
pfenv_start_postfix
pg_fresh
URL=$(pg_url)

# The fleet server's certificate (localhost), from the test CA.
openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
  -keyout "$BASE/tls/console.key" -out "$BASE/tls/console.csr" 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' > "$BASE/tls/console.ext"
openssl x509 -req -in "$BASE/tls/console.csr" -CA "$BASE/tls/ca.pem" -CAkey "$BASE/tls/ca.key" \
  -CAcreateserial -days 2 -extfile "$BASE/tls/console.ext" -out "$BASE/tls/console.pem" 2>/dev/null
ADMIN_PW="admin-$(head -c 6 /dev/urandom | od -An -tx1 | tr -d ' \n')"
cat > "$BASE/server.toml" <<EOF
listen = "127.0.0.1:$SERVER_PORT"
tls_cert = "tls/console.pem"
tls_key = "tls/console.key"
agent_api = true

[dlp]
state_dir = "server-state"
store = "$URL"

[[account]]
name = "security-admin"
password_hash = "$(printf '%s\n' "$ADMIN_PW" | "$CONSOLE" hash-password)"
role = "admin"
EOF
"$CONSOLE" --check-config "$BASE/server.toml"
start_server() {
  "$CONSOLE" --config "$BASE/server.toml" 2>>"$BASE/server.log" &
  echo $! > "$BASE/server.pid"
  wait_port "$SERVER_PORT" 20 || die "the fleet server did not listen (see $BASE/server.log)"
}
start_server
SERVER=https://localhost:$SERVER_PORT

# 1. three tokens, three enrolments; a used token is refused
for n in 1 2 3; do
  "$CLI" fleet token --store "$URL" --label "PC $n" --state "$BASE/cli-state" > "$BASE/token$n.json"
  tok=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['token'])" "$BASE/token$n.json")
  "$CLI" agent enrol --server "$SERVER" --ca-file "$BASE/tls/ca.pem" --state "$BASE/agent$n" \
    --name "pc-$n" --token "$tok" > "$BASE/enrol$n.out" 2>&1 || true
done
modes=$(stat -c %a "$BASE"/agent{1,2,3}/agent.credential 2>/dev/null | sort -u | tr '\n' ' ')
rc=0; "$CLI" agent enrol --server "$SERVER" --ca-file "$BASE/tls/ca.pem" --state "$BASE/agent4" --name pc-4 \
  --token "$tok" > "$BASE/enrol4.out" 2>&1 || rc=$?
if grep -q '"enrolled":"pc-3"' "$BASE/enrol3.out" && [ "$modes" = "600 " ] && [ "$rc" != 0 ] \
   && grep -q "unknown, used or expired" "$BASE/enrol4.out"; then
  ok "three agents enrolled with one-time tokens (credentials 0600); a used token is refused"
else bad "enrolment: $(cat "$BASE"/enrol*.out | tr '\n' ' ') modes=$modes rc=$rc"; fi

# The agents: each PC's proxy with its own state directory, credential and port.
cat > "$BASE/policy.toml" <<EOF
[policy]
name = "fleet-test"
internal_domains = ["example.co.jp"]

[[rule]]
id = "block-cards-outside"
action = "block"
message_en = "Card numbers may not be sent outside."
when = { all = [{ recipients = "any_external" }, { detector = ["credit_card"] }] }
EOF
start_agent() {
  local n=$1
  cat > "$BASE/agent$n.toml" <<EOF
listen = "127.0.0.1:1060$n"
listen_tls = "127.0.0.1:1061$n"
hostname = "localhost"

[dlp]
state_dir = "agent$n"
policy = "policy.toml"
store = "$SERVER"
store_ca_file = "tls/ca.pem"

[upstream]
host = "127.0.0.1"
port = $SMTP_PORT
tls = "starttls"
ca_file = "tls/ca.pem"
server_name = "mx.dlp.test"
EOF
  "$PROXY" --config "$BASE/agent$n.toml" 2>>"$BASE/agent$n.log" &
  echo $! > "$BASE/agent$n.pid"
}
for n in 1 2 3; do start_agent $n; done
for n in 1 2 3; do wait_port "1060$n" 20 || die "agent $n did not listen (see $BASE/agent$n.log)"; done

delivered() { grep -rlF -- "$1" "$VMAIL/bob/Maildir/new" 2>/dev/null | wc -l; }
local_count() {  # agent number: records in its local store (their ids are 1..N)
  "$CLI" audit search --state "$BASE/agent$1" --format json --limit 100000 | wc -l
}
wait_records() {  # agent count seconds: until the server has taken that many of its records
  local end=$(( $(date +%s) + $3 )) got
  while :; do
    got=$("$CLI" fleet list --store "$URL" --state "$BASE/cli-state" \
      | python3 -c "import json,sys
for l in sys.stdin:
    a=json.loads(l)
    if a['name']=='$1': print(a['records'])")
    [ "${got:-0}" -ge "$2" ] && return 0
    [ "$(date +%s)" -ge "$end" ] && { echo "${got:-0}"; return 1; }
    sleep 0.3
  done
}

# 2. mail through each agent
all_ok=1
for n in 1 2 3; do
  out=$("${PY[@]}" send --port "1060$n" --subject "fleet clean $n" --body "定例の資料です。" || true)
  grep -q "^RESULT 250" <<<"$out" || { all_ok=0; echo "agent $n clean: $out"; }
  out=$("${PY[@]}" send --port "1060$n" --subject "fleet cards $n" --body "カード番号 4742 1809 6792 9089" || true)
  grep -q "^RESULT 550 5.7.1 Card numbers" <<<"$out" || { all_ok=0; echo "agent $n cards: $out"; }
done
sleep 1
for n in 1 2 3; do [ "$(delivered "fleet clean $n")" = 1 ] && [ "$(delivered "fleet cards $n")" = 0 ] || all_ok=0; done
[ "$all_ok" = 1 ] && ok "through each agent: clean mail delivered by Postfix, card numbers refused 550 5.7.1" \
  || bad "mail through the agents"
uploaded=1
for n in 1 2 3; do wait_records "pc-$n" 2 20 >/dev/null || uploaded=0; done
"$CLI" audit search --store "$URL" --state "$BASE/cli-state" --format json --limit 100 > "$BASE/search.json"
listed=$(python3 - "$BASE/search.json" <<'EOT'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
seen = sorted((r.get("gateway"), r["subject"], r["action"]) for r in rows if r["subject"].startswith("fleet"))
want = sorted([(f"pc-{n}", f"fleet clean {n}", "allow") for n in (1, 2, 3)]
              + [(f"pc-{n}", f"fleet cards {n}", "block") for n in (1, 2, 3)])
print("yes" if seen == want else f"no: {seen}")
EOT
)
table=$("$CLI" audit search --store "$URL" --state "$BASE/cli-state" --limit 100)
if [ "$uploaded" = 1 ] && [ "$listed" = yes ] && grep -q "@ pc-2" <<<"$table"; then
  ok "the server's audit trail has all six mails, each under its agent (audit search --store: @ pc-1..3)"
else bad "server trail: uploaded=$uploaded listed=$listed"; fi

# The console, signed in as the admin over HTTPS: `console check` (the Agents page, an audit
# search by agent), `console policy FILE` (upload a policy for the agents; prints the status
# and the page's error text).
console() {
  python3 - "$SERVER" "$BASE/tls/ca.pem" "$ADMIN_PW" "$@" <<'EOT'
import html, http.cookiejar, re, ssl, sys, urllib.error, urllib.parse, urllib.request
base, ca, pw, action = sys.argv[1:5]
ctx = ssl.create_default_context(cafile=ca)
jar = http.cookiejar.CookieJar()
class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *a, **k): return None
op = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar), urllib.request.HTTPSHandler(context=ctx), NoRedirect())
def get(p):
    try:
        return op.open(base + p, timeout=20).read().decode()
    except urllib.error.HTTPError as e:
        return e.read().decode()
def post(p, data):
    try:
        r = op.open(base + p, urllib.parse.urlencode(data).encode(), timeout=20)
        return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
csrf = lambda page: re.search(r'name="csrf" value="([0-9a-f]+)"', page).group(1)
st, _ = post("/login", {"csrf": csrf(get("/login")), "user": "security-admin", "password": pw})
assert st == 303, st
if action == "check":
    agents = get("/agents")
    missing = [f"pc-{n}" for n in (1, 2, 3) if f">pc-{n}<" not in agents]
    audit = get("/audit?gateway=pc-2&since=1d")
    assert not missing, f"Agents page lacks {missing}"
    assert "fleet clean 2" in audit and "fleet cards 2" in audit and "fleet clean 1" not in audit, "audit by agent"
    print("yes")
elif action == "decide":
    aid, what = sys.argv[5], sys.argv[6]
    st, _ = post(f"/requests/{aid}/decide", {"csrf": csrf(get(f"/requests/{aid}")), "decision": what, "comment": "from the fleet test"})
    print(st)
elif action == "attachment":
    aid = sys.argv[5]
    try:
        r = op.open(f"{base}/requests/{aid}/attachments/0", timeout=20)
        page = r.read().decode()
        name = re.search(r"<h1>([^<]*)</h1>", page)
        print(r.status, name.group(1) if name else "")
    except urllib.error.HTTPError as e:
        print(e.code, "")
elif action == "policy":
    st, page = post("/agents/policy", {"csrf": csrf(get("/agents")), "policy": open(sys.argv[5]).read()})
    err = re.search(r'<pre class="mono small">(.*?)</pre>', page, re.S)
    print(st, html.unescape(err.group(1)) if err else "")
EOT
}
if [ "$(console check 2>&1 | tail -n1)" = yes ]; then
  ok "the console lists the three agents and searches the audit trail by agent (HTTPS)"
else bad "console: $(console check 2>&1 | tail -n3)"; fi

# 2b. a policy pushed from the console reaches every agent, which applies it without a restart
out=$("${PY[@]}" send --port 10602 --subject "before push" --body "個人番号 1234 5678 9018 です。" || true)
grep -q "^RESULT 250" <<<"$out" || bad "before the push, a My Number passes: $out"
cp "$BASE/policy.toml" "$BASE/pushed.toml"
cat >> "$BASE/pushed.toml" <<'EOF'

[[rule]]
id = "block-my-number-outside"
action = "block"
message_en = "My Numbers may not be sent outside."
when = { all = [{ recipients = "any_external" }, { detector = ["jp_my_numbr"] }] }

[[rule]]
id = "same-file-outside-twice"
action = "block"
offline = "hold"
approvers = ["boss@example.co.jp"]
message_en = "This file was sent outside already."
when = { same_attachment_sent_external = { min = 2, within = "1h" } }

[[rule]]
id = "hold-confidential"
action = "hold"
approvers = ["boss@example.co.jp"]
when = { all = [{ recipients = "any_external" }, { detector = ["confidential_marking"] }] }
EOF
bad_out=$(console policy "$BASE/pushed.toml")
sed -i 's/jp_my_numbr/jp_my_number/' "$BASE/pushed.toml"
good_out=$(console policy "$BASE/pushed.toml")
if grep -q "^400 uploaded policy:[0-9]*:[0-9]*: .*jp_my_numbr" <<<"$bad_out" && [ "${good_out%% *}" = 303 ]; then
  ok "a policy with an error is refused with its line and column ($(cut -c5-48 <<<"$bad_out")...); the fixed one is stored"
else bad "policy upload: bad [$bad_out] good [$good_out]"; fi
end=$(( $(date +%s) + 40 ))
while :; do
  running=$("$CLI" fleet list --store "$URL" --state "$BASE/cli-state" \
    | python3 -c "import json,sys; print(sum(1 for l in sys.stdin if json.loads(l)['policy_version']=='1'))")
  { [ "$running" = 3 ] || [ "$(date +%s)" -ge "$end" ]; } && break
  sleep 0.5
done
refused=0
for n in 1 2 3; do
  out=$("${PY[@]}" send --port "1060$n" --subject "after push $n" --body "個人番号 1234 5678 9018 です。" || true)
  grep -q "^RESULT 550 5.7.1 My Numbers may not be sent outside" <<<"$out" && refused=$((refused + 1))
done
if [ "$running" = 3 ] && [ "$refused" = 3 ] && grep -q "event=fleet_policy_applied version=1" "$BASE/agent1.log"; then
  ok "the pushed policy reached all three agents (they report version 1); the next My Number is refused on each"
else bad "policy push: $running agents run version 1, $refused refused"; fi

# 2d. a vendor agent on the C ABI (ffi/tests/fleet/agent.c against the installed library):
#     enrols, takes the pushed policy, records three mails; the server has them under its name
if [ -f "$ROOT/target/ffi-prefix/lib/pkgconfig/ping32dlp.pc" ]; then
  export PKG_CONFIG_PATH=$ROOT/target/ffi-prefix/lib/pkgconfig
  cc -std=c11 -Wall -Wextra -Werror $(pkg-config --cflags ping32dlp) "$ROOT/ffi/tests/fleet/agent.c" \
    -o "$BASE/c-agent" $(pkg-config --libs ping32dlp)
  "$CLI" fleet token --store "$URL" --state "$BASE/cli-state" --label "vendor agent" > "$BASE/token-c.json"
  tok=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['token'])" "$BASE/token-c.json")
  rc=0; LD_LIBRARY_PATH=$ROOT/target/ffi-prefix/lib "$BASE/c-agent" "$SERVER" "$BASE/tls/ca.pem" "$tok" \
    "$BASE/c-agent-state" "$ROOT" > "$BASE/c-agent.out" 2>&1 || rc=$?
  held_c=$("$CLI" approvals list --store "$URL" --state "$BASE/cli-state" --json 2>/dev/null \
    | python3 -c "import json,sys; print(sum(1 for l in sys.stdin if json.loads(l).get('gateway')=='c-agent'))")
  if [ "$rc" = 0 ] && wait_records c-agent 3 20 >/dev/null && [ "$held_c" = 1 ] \
     && grep -q "RECORD .* block" "$BASE/c-agent.out" && grep -q "RECORD .* hold" "$BASE/c-agent.out"; then
    ok "a C agent (libping32dlp): enrolled, took the pushed policy (block, hold), its 3 records and 1 request are on the server"
  else bad "C agent (rc=$rc, held on server $held_c): $(tr '\n' ' ' < "$BASE/c-agent.out")"; fi
else echo "(the C library is not installed: scripts/ffi-test.sh runs first in scripts/test.sh)"; fi

# 2e. history questions are asked of the server: a file sent outside through agent 1 and then
#     through agent 3 is "the same file outside twice" (agent 3's own records have never seen it)
head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$BASE/shared.txt"; echo " 週報" >> "$BASE/shared.txt"
out1=$("${PY[@]}" send --port 10601 --subject "shared file 1" --body "資料です" --attach "$BASE/shared.txt" || true)
wait_records pc-1 "$(local_count 1)" 20 >/dev/null || true
out3=$("${PY[@]}" send --port 10603 --subject "shared file 3" --body "資料です" --attach "$BASE/shared.txt" || true)
if grep -q "^RESULT 250" <<<"$out1" && grep -q "^RESULT 550 5.7.1 This file was sent outside already" <<<"$out3"; then
  ok "history from the server: a file sent outside through agent 1 is refused as a repeat through agent 3"
else bad "history across agents: [$out1] [$out3]"; fi

# 2c. mail held on agent 2: the request is on the server; approved in the console, agent 2
#     delivers it byte-identical; rejected, it is never delivered
held_send() {  # subject [attachment]: prints the request id
  local out att=()
  [ -n "${2:-}" ] && att=(--attach "$2")
  out=$("${PY[@]}" send --port 10602 --subject "$1" --body "社外秘: 来期の価格表です。" "${att[@]}" --save "$BASE/$1.eml" || true)
  sed -n 's/.*request \([0-9a-f]*\).*/\1/p' <<<"$out"
}
on_server() {  # approval-id seconds: until the server lists the request
  local end=$(( $(date +%s) + $2 ))
  until "$CLI" approvals list --store "$URL" --state "$BASE/cli-state" 2>/dev/null | grep -q "^$1"; do
    [ "$(date +%s)" -ge "$end" ] && return 1
    sleep 0.3
  done
}
server_state() {
  "$CLI" approvals list --store "$URL" --state "$BASE/cli-state" --status all 2>/dev/null | awk -v id="$1" '$1==id {print $2}'
}
a_ok=$(held_send "held approve" "$ROOT/corpus/extract/docs/logo.png")
a_no=$(held_send "held reject")
if [ -n "$a_ok" ] && [ -n "$a_no" ] && on_server "$a_ok" 20 && on_server "$a_no" 20; then
  ok "two mails held on agent 2 ($a_ok, $a_no): their requests are on the server, pending"
else bad "held on agent 2: [$a_ok] [$a_no] not on the server"; fi
att=$(console attachment "$a_ok")
if [ "$att" = "200 logo.png" ]; then
  ok "the approver opens the held mail's attachment in the console (uploaded from the PC as evidence)"
else bad "attachment of $a_ok: $att"; fi
d1=$(console decide "$a_ok" approve); d2=$(console decide "$a_no" reject)
end=$(( $(date +%s) + 30 ))
until [ "$(delivered "held approve")" = 1 ] || [ "$(date +%s)" -ge "$end" ]; do sleep 0.3; done
f=$(grep -rlF -- "held approve" "$VMAIL/bob/Maildir/new" 2>/dev/null | head -n1 || true)
end=$(( $(date +%s) + 30 ))
until [ "$(server_state "$a_ok")" = released ] && [ "$(server_state "$a_no")" = discarded ] || [ "$(date +%s)" -ge "$end" ]; do sleep 0.3; done
if [ "$d1 $d2" = "303 303" ] && [ -n "$f" ] && python3 - "$f" "$BASE/held approve.eml" <<'EOT'
import sys
d = open(sys.argv[1], "rb").read().replace(b"\r\n", b"\n")
s = open(sys.argv[2], "rb").read().replace(b"\r\n", b"\n")
sys.exit(0 if d.endswith(s) and len(s) > 100 else 1)
EOT
then
  ok "approved in the console -> agent 2 delivered it byte-identical; the server shows it $(server_state "$a_ok")"
else bad "approve on the server: decide $d1, delivered [$f], state $(server_state "$a_ok")"; fi
if [ "$(delivered "held reject")" = 0 ] && [ "$(server_state "$a_no")" = discarded ]; then
  ok "rejected in the console -> never delivered by agent 2; the server shows it discarded"
else bad "reject on the server: delivered $(delivered "held reject"), state $(server_state "$a_no")"; fi

kill_pidfile "$BASE/agent2.pid" ping32dlp-proxy
start_agent 2
wait_port 10602 20 || die "agent 2 did not listen again (see $BASE/agent2.log)"
out=$("${PY[@]}" send --port 10602 --subject "after restart" --body "個人番号 1234 5678 9018 です。" || true)
if grep -q "^RESULT 550 5.7.1 My Numbers may not be sent outside" <<<"$out" && [ -f "$BASE/agent2/fleet-policy.toml" ]; then
  ok "restarted, agent 2 runs the pushed policy it kept (fleet-policy.toml), not its own file"
else bad "after a restart: $out"; fi

# 3. offline: 200 mails through agent 1 while the server is down, then the server comes back
kill_pidfile "$BASE/server.pid" ping32dlp-console
t0=$(date +%s.%N)
out=$("${PY[@]}" many --port 10601 --n 200 --concurrency 1 --subject "offline" --body "hello" || true)
t1=$(date +%s.%N)
end=$(( $(date +%s) + 60 ))
while [ "$(delivered "Subject: offline ")" -lt 200 ] && [ "$(date +%s)" -le "$end" ]; do sleep 0.3; done
out_g=$("${PY[@]}" send --port 10601 --subject "shared file again" --body "資料です" --attach "$BASE/shared.txt" || true)
why_g=$("$CLI" audit search --state "$BASE/agent1" --format json --limit 1 | python3 -c "import json,sys
r=json.loads(sys.stdin.readline()); print(r['action'], any('fleet server did not answer' in x for m in r['matched'] for x in m['reasons']))")
if grep -q "^RESULT 250 2.0.0 Held for approval" <<<"$out_g" && [ "$why_g" = "hold True" ]; then
  ok "server down: a history question is answered by the PC alone, so the rule's offline = \"hold\" holds the repeat (the verdict says why)"
else bad "offline history: [$out_g] [$why_g]"; fi
local_n=$("$CLI" audit search --state "$BASE/agent1" --format json --limit 1000 \
  | python3 -c "import json,sys; print(sum(1 for l in sys.stdin if json.loads(l)['subject'].startswith('offline ')))")
if grep -q "^RESULT ok=200 failed=0" <<<"$out" && [ "$(delivered "Subject: offline ")" = 200 ] && [ "$local_n" = 200 ] \
   && grep -q "event=forwarder_failed" "$BASE/agent1.log"; then
  ok "server down: 200 mails judged and delivered through agent 1 in $(python3 -c "print(round($t1-$t0,1))") s, 200 records in its local store"
else bad "offline: $(head -n1 <<<"$out"), delivered $(delivered "Subject: offline "), local $local_n"; fi
start_server
n1=$(local_count 1)
if wait_records pc-1 "$n1" 90 >/dev/null; then
  "$CLI" audit search --store "$URL" --state "$BASE/cli-state" --gateway pc-1 --format json --limit 1000 > "$BASE/pc1.json"
  "$CLI" audit search --state "$BASE/agent1" --format json --limit 1000 > "$BASE/pc1-local.json"
  order=$(python3 - "$BASE/pc1.json" "$BASE/pc1-local.json" <<'EOT'
import json, sys
def offline(path):
    rows = [json.loads(l) for l in open(path)]
    return [s for _, s in sorted((r["id"], r["subject"]) for r in rows if r["subject"].startswith("offline "))]
server, local = offline(sys.argv[1]), offline(sys.argv[2])
print("yes" if server == local and len(set(server)) == 200 else f"no: {len(server)} on the server, {len(set(server))} distinct, same order: {server == local}")
EOT
)
  if [ "$order" = yes ] && grep -q "event=forwarder_resumed" "$BASE/agent1.log"; then
    ok "server back: all 200 records arrived once, in the agent's order"
  else bad "after the server came back: $order"; fi
else bad "the server did not get agent 1's records back: $(wait_records pc-1 "$n1" 1) of $n1"; fi

# 4. a revoked agent is refused; its PC keeps judging mail
"$CLI" fleet revoke pc-3 --store "$URL" --state "$BASE/cli-state" >/dev/null
out=$("${PY[@]}" send --port 10603 --subject "after revocation" --body "hello" || true)
wait_log "$BASE/agent3.log" "revoked" 70
n3=$("$CLI" fleet list --store "$URL" --state "$BASE/cli-state" | python3 -c "import json,sys
for l in sys.stdin:
    a=json.loads(l)
    if a['name']=='pc-3': print(a['records'], a['revoked'] is not None)")
if grep -q "^RESULT 250" <<<"$out" && grep -q "revoked" "$BASE/agent3.log" && [ "$n3" = "$(( $(local_count 3) - 1 )) True" ]; then
  ok "revoked agent: its uploads are refused (the server stops at its last record before), mail on its PC is still judged"
else bad "revocation: $out / $n3"; fi

echo "fleet-test: $PASS passed, $FAILS failed"
[ "$FAILS" = 0 ]
