#!/usr/bin/env bash
# The shared store with real servers: a private PostgreSQL cluster (initdb in a temporary
# directory, loopback port), then
#
#   1. the store test suite (tests/store.rs) over PostgreSQL (it ran over SQLite in cargo test);
#   2. two private Postfix instances, each with its own ping32dlp-milter and gateway name
#      (gw-a, gw-b), both on the one PostgreSQL store, and two console processes: a mail held at
#      gw-a is listed by both consoles with its gateway, approved in console 2, released by gw-a
#      (delivered byte-identical) and never touched by gw-b; the same attachment sent outside
#      through gw-a, gw-b, gw-a fires "same file outside 3 times in 1 hour" on the third;
#      `ping32dlp audit search --store URL` from a third process sees both gateways' mail;
#   3. PostgreSQL stopped while mail flows: the milters answer 451 and acknowledge nothing;
#      restarted: mail flows again without restarting the milters; `kill -9` of a milter while
#      mail flows: every mail Postfix acknowledged has its record.
#
# Run as root (installs postgresql, postfix; idempotent). Called by scripts/test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
W=${W:-/tmp/ping32dlp-store-test}
MILTER=$ROOT/target/release/ping32dlp-milter
CONSOLE=$ROOT/target/release/ping32dlp-console
CLI=$ROOT/target/release/ping32dlp
PY=(python3 "$ROOT/scripts/milter/smtp_client.py")
PASS=0; FAILS=0
ok() { PASS=$((PASS + 1)); echo "PASS: $*"; }
bad() { FAILS=$((FAILS + 1)); echo "FAIL: $*"; }
die() { echo "FATAL: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "run as root (private Postfix instances need it)"
for b in "$MILTER" "$CONSOLE" "$CLI"; do [ -x "$b" ] || die "build first: $b"; done

PGDIR=$W/pg PGPORT=${PGPORT:-25442}
. "$ROOT/scripts/pg-env.sh"
. "$ROOT/scripts/milter/postfix-env.sh"

# gateway A and B: a Postfix instance, a milter, a policy each (their own release commands).
use() {  # use a|b: the Postfix variables of that instance
  case $1 in
    a) BASE=$W/a SMTP_PORT=2531 SMTPS_PORT=2471 MILTER_PORT=8911 ;;
    b) BASE=$W/b SMTP_PORT=2532 SMTPS_PORT=2472 MILTER_PORT=8912 ;;
  esac
  CONF=$BASE/etc VMAIL=$BASE/vmail
}
stop_all() {
  for g in a b; do use $g; pfenv_stop 2>/dev/null || true; done
  for f in "$W"/console*.pid; do
    [ -f "$f" ] || continue
    local pid; pid=$(cat "$f")
    if [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' < "/proc/$pid/cmdline" | grep -q ping32dlp-console; then kill "$pid" 2>/dev/null || true; fi
    rm -f "$f"
  done
  pg_stop
}
mkdir -p "$W"
stop_all
trap stop_all EXIT

pg_fresh
URL=$(pg_url)
echo "PostgreSQL $("$PGBIN/postgres" --version | awk '{print $3}') on 127.0.0.1:$PGPORT"

# 1. the store suite over PostgreSQL
if PING32DLP_TEST_PG="postgres://postgres@127.0.0.1:$PGPORT" cargo test --locked -q --test store >"$W/store-suite.log" 2>&1; then
  ok "store suite over PostgreSQL: $(grep -o 'ok. [0-9]* passed' "$W/store-suite.log" | tail -n1)"
else bad "store suite over PostgreSQL"; tail -n 30 "$W/store-suite.log"; fi

# 1b. the C library and the Python binding open the store by URL (ffi-test.sh installed them)
if [ -f "$ROOT/target/ffi-prefix/lib/libping32dlp.so" ] && [ -x "$ROOT/target/test-venv/bin/python" ]; then
  if (cd "$W" && PING32DLP_LIBRARY=$ROOT/target/ffi-prefix/lib/libping32dlp.so PING32DLP_TEST_PG_URL=$URL REPO_ROOT=$ROOT \
      "$ROOT/target/test-venv/bin/python" -m pytest -q -p no:cacheprovider "$ROOT/bindings/python/tests" -k store_url) >"$W/py.log" 2>&1; then
    ok "Python binding: Workflow(store=postgres://...) opens the shared store"
  else bad "Python on the store"; tail -n 15 "$W/py.log"; fi
else echo "(Python binding not installed: scripts/ffi-test.sh runs first in scripts/test.sh)"; fi

# 2. two gateways and two consoles on the store
for g in a b; do
  use $g
  pfenv_setup
  cat > "$BASE/policy.toml" <<EOF
[policy]
name = "gateways-test"
internal_domains = ["example.co.jp"]

[[rule]]
id = "hold-my-number"
action = "hold"
approvers = ["boss@example.co.jp"]
expires = "1d"
when = { all = [{ recipients = "any_external" }, { detector = ["jp_my_number"] }] }

[[rule]]
id = "same-file-outside-3-times"
action = "alert"
when = { same_attachment_sent_external = { min = 3, within = "1h" } }

[approval]
release_command = "postsuper -c $CONF -H {queue_id} && postqueue -c $CONF -i {queue_id}"
discard_command = "postsuper -c $CONF -d {queue_id} hold"
notify_command = ""
EOF
  cat > "$BASE/milter.toml" <<EOF
listen = "inet:127.0.0.1:$MILTER_PORT"

[dlp]
policy = "policy.toml"
state_dir = "state"
store = "$URL"
gateway = "gw-$g"
EOF
  pfenv_start_milter "$BASE/milter.toml"
  pfenv_start_postfix
done
HASH_BOSS=$(echo "boss-password-1" | "$CONSOLE" hash-password)
for n in 1 2; do
  cat > "$W/console$n.toml" <<EOF
listen = "127.0.0.1:804$n"

[dlp]
state_dir = "console$n-state"
store = "$URL"

[[account]]
name = "boss@example.co.jp"
password_hash = "$HASH_BOSS"
role = "approver"
EOF
  "$CONSOLE" --config "$W/console$n.toml" 2>>"$W/console$n.log" & echo $! > "$W/console$n.pid"
done
wait_port 8041 20 && wait_port 8042 20 || die "consoles did not start"

# a mail with My Numbers, held at gw-a
use a
"${PY[@]}" send --port 2531 --user ichiro --password secret --subject "held at a" \
  --body "個人番号 1234 5678 9018 を送ります。" --save "$W/held.eml" > "$W/held.out" || true
sleep 1
qid=$(postqueue -c "$W/a/etc" -p 2>/dev/null | awk '/^[0-9A-F]+!/ {sub("!","",$1); print $1; exit}')
[ -n "$qid" ] && ok "held in gw-a's hold queue ($qid)" || { bad "not held: $(cat "$W/held.out")"; }
console() {  # console PORT ACTION [ARGS]: a signed-in approver's browser (Python, cookies)
  python3 - "$@" <<'EOT'
import re, sys, urllib.request, urllib.parse, http.cookiejar
port, action = sys.argv[1], sys.argv[2]
base = f"http://127.0.0.1:{port}"
jar = http.cookiejar.CookieJar()
class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *a, **k): return None
op = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar), NoRedirect())
def get(path):
    try:
        return op.open(base + path, timeout=20).read().decode()
    except urllib.error.HTTPError as e:
        return e.read().decode()
def post(path, data):
    try:
        r = op.open(base + path, urllib.parse.urlencode(data).encode(), timeout=20)
        return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
csrf = lambda page: re.search(r'name="csrf" value="([0-9a-f]+)"', page).group(1)
page = get("/login")
st, _ = post("/login", {"csrf": csrf(page), "user": "boss@example.co.jp", "password": "boss-password-1"})
assert st == 303, st
if action == "list":
    print(get("/requests"))
elif action == "approve":
    page = get("/requests/" + sys.argv[3])
    st, _ = post(f"/requests/{sys.argv[3]}/decide", {"csrf": csrf(page), "decision": "approve", "comment": "ok from console 2"})
    print(st)
EOT
}
aid=$("$CLI" approvals list --store "$URL" --state "$W/cli-state" 2>/dev/null | awk '$2=="pending" {print $1; exit}')
l1=$(console 8041 list); l2=$(console 8042 list)
if [ -n "$aid" ] && grep -q "$aid" <<<"$l1" && grep -q "$aid" <<<"$l2" && grep -q "@ gw-a" <<<"$l2"; then
  ok "both consoles list request $aid, held @ gw-a"
else bad "consoles do not list the request ($aid)"; fi
st=$(console 8042 approve "$aid")
f=""; for _ in $(seq 1 60); do f=$(grep -rlF "held at a" "$W/a/vmail/bob/Maildir/new" 2>/dev/null | head -n1 || true); [ -n "$f" ] && break; sleep 0.25; done
body_sha() {  # the decoded body, line ends normalised (Maildir files use LF)
  python3 -c "import sys,email,hashlib; m=email.message_from_bytes(open(sys.argv[1],'rb').read()); print(hashlib.sha256(m.get_payload(decode=True).replace(b'\r\n', b'\n')).hexdigest())" "$1"
}
sent_sha=$(body_sha "$W/held.eml")
got_sha=$( [ -n "$f" ] && body_sha "$f" || echo none)
if [ "$st" = 303 ] && [ -n "$f" ] && [ "$sent_sha" = "$got_sha" ] && ! grep -q "$aid" "$W/b/milter.log" \
   && grep -q "request $aid released here" "$W/a/milter.log"; then
  ok "approved in console 2 -> released by gw-a (body identical), gw-b never touched it"
else bad "release: decide $st, delivered '${f:-no}', sha $sent_sha / $got_sha"; tail -n 5 "$W/a/milter.log"; fi

# the same attachment outside through gw-a, gw-b, gw-a
printf 'quarterly numbers\n' > "$W/report.csv"
r=()
for port in 2531 2532 2531; do
  "${PY[@]}" send --port "$port" --user ichiro --password secret --subject "same file $port" --body "see attached" --attach "$W/report.csv" >/dev/null || true
  r+=("$("$CLI" audit search --store "$URL" --format json --limit 1 | python3 -c "import json,sys; r=json.loads(sys.stdin.readline()); print(r['gateway'], ','.join(m['rule'] for m in r['matched']))")")
done
if ! grep -q same-file <<<"${r[0]}${r[1]}" && grep -q "gw-a.*same-file-outside-3-times" <<<"${r[2]}" && grep -q "^gw-b" <<<"${r[1]}"; then
  ok "same attachment through gw-a, gw-b, gw-a: the third fires the 3-times rule (${r[*]})"
else bad "cross-gateway history: ${r[*]}"; fi
gws=$("$CLI" audit search --store "$URL" --format json --limit 50 | python3 -c "import json,sys; print(' '.join(sorted({json.loads(l)['gateway'] for l in sys.stdin})))")
[ "$gws" = "gw-a gw-b" ] && ok "audit search --store from a third process sees both gateways ($gws)" || bad "audit search: $gws"

# 3. PostgreSQL stopped while mail flows, then back; kill -9 of a milter under load
pg_stop
out=$("${PY[@]}" send --port 2531 --user ichiro --password secret --subject "while the store is down" --body hello || true)
if grep -q "^RESULT 451" <<<"$out"; then ok "store down -> the milter's fail mode: $out"; else bad "store down: $out"; fi
pg_start
out=""
for _ in $(seq 1 20); do
  out=$("${PY[@]}" send --port 2531 --user ichiro --password secret --subject "after the store is back" --body hello || true)
  grep -q "^RESULT 250" <<<"$out" && break; sleep 0.5
done
if grep -q "^RESULT 250" <<<"$out" && [ "$("$CLI" audit search --store "$URL" --format json --limit 5 | grep -c 'after the store is back')" -ge 1 ]; then
  ok "store back -> mail flows again without restarting the milters"
else bad "after restart: $out"; fi
use b
"${PY[@]}" many --port 2532 --n 400 --concurrency 4 --user ichiro --password secret --subject "burst-kill" --body hello > "$W/burst.out" 2>&1 &
burst=$!
sleep 0.5
kill -9 "$(cat "$W/b/milter.pid")"
wait $burst || true
acked=$(grep -o 'ok=[0-9]*' "$W/burst.out" | cut -d= -f2)
recorded=$("$CLI" audit search --store "$URL" --format json --limit 1000 | grep -c '"subject":"burst-kill ' || true)
if [ -n "$acked" ] && [ "$acked" -gt 0 ] && [ "$acked" -lt 400 ] && [ "$recorded" -ge "$acked" ]; then
  ok "kill -9 of gw-b's milter under load: $acked mails acknowledged, $recorded recorded"
else bad "kill -9: acknowledged ${acked:-?}, recorded $recorded"; head -n 3 "$W/burst.out"; fi
pfenv_start_milter "$W/b/milter.toml"

echo "$PASS passed, $FAILS failed"
[ "$FAILS" = 0 ]
