#!/usr/bin/env bash
# The web console end to end, in a real browser: a real Postfix with ping32dlp-milter holds a
# mail with a My Number and a .docx; ping32dlp-console serves the same state directory; Debian's
# Chromium, driven over WebDriver by chromedriver from a Rust test
# (examples/console/tests/browser.rs), signs in as the approver, opens the request, views the
# attachment, approves; the test then checks that the views and the decision are recorded and
# that Postfix delivered the mail; the admin's dashboard and the request's history are checked
# too. Screenshots go to target/console-artifacts/ (requests.png, request.png,
# attachment.png, dashboard.png, history.png). Also checks the sign-in link mailed to the approver.
#
# Run as root (installs postfix, chromium, chromium-driver and a Japanese font; idempotent).
# Called by scripts/test.sh after the release build. Env: BASE, SMTP_PORT, SMTPS_PORT,
# MILTER_PORT, CONSOLE_PORT, WEBDRIVER_PORT.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
BASE=${BASE:-/tmp/ping32dlp-console-test}
SMTP_PORT=${SMTP_PORT:-2535}
SMTPS_PORT=${SMTPS_PORT:-2475}
MILTER_PORT=${MILTER_PORT:-8897}
CONSOLE_PORT=${CONSOLE_PORT:-8026}
METRICS_PORT=${METRICS_PORT:-9704}
WEBDRIVER_PORT=${WEBDRIVER_PORT:-9515}
CONF=$BASE/etc
VMAIL=$BASE/vmail
STATE=$BASE/state
MILTER=$ROOT/target/release/ping32dlp-milter
CONSOLE=$ROOT/target/release/ping32dlp-console
CLI=$ROOT/target/release/ping32dlp
CLIENT=$ROOT/scripts/milter/smtp_client.py
ARTIFACTS=$ROOT/target/console-artifacts
export DEBIAN_FRONTEND=noninteractive

die() { echo "FATAL: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "run as root (a private Postfix instance needs it)"
for b in "$MILTER" "$CONSOLE" "$CLI"; do
  [ -x "$b" ] || die "build first: cargo build --release -p ping32dlp-cli -p ping32dlp-milter -p ping32dlp-console"
done

# The browser, its driver and a Japanese font for the screenshots.
need=()
for p in chromium chromium-driver fonts-ipafont-gothic; do dpkg -s "$p" >/dev/null 2>&1 || need+=("$p"); done
if [ ${#need[@]} -gt 0 ]; then
  apt-get -o DPkg::Lock::Timeout=600 update -qq
  apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends "${need[@]}" >/dev/null
fi
chromium --version
chromedriver --version

. "$ROOT/scripts/milter/postfix-env.sh"
stop_all() {
  for f in console.pid chromedriver.pid; do
    [ -f "$BASE/$f" ] && kill "$(cat "$BASE/$f")" 2>/dev/null || true
    rm -f "$BASE/$f"
  done
  pfenv_stop
}
pfenv_setup
for p in "$CONSOLE_PORT" "$WEBDRIVER_PORT"; do port_free "$p" || die "127.0.0.1:$p is in use"; done
trap stop_all EXIT

cat > "$BASE/policy.toml" <<EOF
[policy]
name = "console-test"
internal_domains = ["example.co.jp"]

[[rule]]
id = "hold-my-number"
description = "My Numbers to outside recipients"
action = "hold"
severity = "high"
approvers = ["boss@example.co.jp"]
expires = "1d"
when = { all = [{ recipients = "any_external" }, { detector = ["jp_my_number"] }] }

[approval]
release_command = "postsuper -c $CONF -H {queue_id} && postqueue -c $CONF -i {queue_id}"
discard_command = "postsuper -c $CONF -d {queue_id} hold"
notify_command = "cat >> $BASE/notices.log"
notify_from = "dlp-noreply@dlp.test"
console_url = "http://127.0.0.1:$CONSOLE_PORT"
EOF
cat > "$BASE/milter.toml" <<EOF
listen = "inet:127.0.0.1:$MILTER_PORT"

[dlp]
state_dir = "$STATE"
policy = "policy.toml"
EOF

# Accounts: an approver and an administrator, Argon2 hashes made by the console itself.
BOSS_PW="boss-$(head -c 6 /dev/urandom | od -An -tx1 | tr -d ' \n')"
ADMIN_PW="admin-$(head -c 6 /dev/urandom | od -An -tx1 | tr -d ' \n')"
boss_hash=$(printf '%s\n' "$BOSS_PW" | "$CONSOLE" hash-password)
admin_hash=$(printf '%s\n' "$ADMIN_PW" | "$CONSOLE" hash-password)
cat > "$BASE/console.toml" <<EOF
listen = "127.0.0.1:$CONSOLE_PORT"
metrics_listen = "127.0.0.1:$METRICS_PORT"
language = "ja"

[dlp]
state_dir = "$STATE"
policy = "policy.toml"

[[account]]
name = "boss@example.co.jp"
password_hash = "$boss_hash"
role = "approver"

[[account]]
name = "security-admin"
password_hash = "$admin_hash"
role = "admin"
EOF
"$MILTER" --check-config "$BASE/milter.toml"
"$CONSOLE" --check-config "$BASE/console.toml"

pfenv_start_milter "$BASE/milter.toml"
pfenv_start_postfix
"$CONSOLE" --config "$BASE/console.toml" 2>>"$BASE/console.log" &
echo $! > "$BASE/console.pid"
wait_port "$CONSOLE_PORT" 20 || die "the console did not listen (see $BASE/console.log)"
chromedriver --port="$WEBDRIVER_PORT" --allowed-ips=127.0.0.1 >"$BASE/chromedriver.log" 2>&1 &
echo $! > "$BASE/chromedriver.pid"
wait_port "$WEBDRIVER_PORT" 20 || die "chromedriver did not listen (see $BASE/chromedriver.log)"

# Some ordinary traffic for the dashboard, then a mail to an outside recipient with a My Number in the body and a .docx: held.
for to in bob@dlp.test alice@dlp.test bob@dlp.test; do
  python3 "$CLIENT" send --port "$SMTP_PORT" --user ichiro --password secret --to "$to" \
    --subject "週次報告" --body "今週の進捗をお送りします。" --n 2 >/dev/null
done
SUBJECT="顧客データ送付 $(date +%s)"
out=$(python3 "$CLIENT" send --port "$SMTP_PORT" --tls starttls --ca "$BASE/tls/ca.pem" --user ichiro --password secret \
  --to bob@dlp.test --subject "$SUBJECT" --body "お世話になっております。マイナンバー: 7684 2684 6565 を送付します。" \
  --attach "$ROOT/corpus/extract/docs/見積書.docx")
qid=$(sed -n 's/.*queued as \([0-9A-Za-z]*\).*/\1/p' <<<"$out" | head -n1)
[ -n "$qid" ] || die "the mail was not queued: $out"
sleep 0.5
postqueue -c "$CONF" -p | grep -q "^${qid}!" || die "$qid is not in the hold queue"
aid=$("$CLI" approvals list --state "$STATE" --json | python3 -c "
import json,sys
for l in sys.stdin:
    a=json.loads(l)
    if a.get('queue_id')=='$qid': print(a['id'])")
[ -n "$aid" ] || die "no approval request for $qid"
echo "held: queue id $qid, approval $aid"

# The approver was mailed a one-time sign-in link; it opens the request, once.
link=$(grep -m1 -o "http://127.0.0.1:$CONSOLE_PORT/link/$aid?[^ ]*" "$BASE/notices.log" || true)
[ -n "$link" ] || die "no sign-in link in the approver's notice ($BASE/notices.log)"
python3 - "$link" "$aid" <<'EOF'
import http.cookiejar, re, sys, urllib.error, urllib.parse, urllib.request
link, aid = sys.argv[1], sys.argv[2]
def opener():
    jar = http.cookiejar.CookieJar()
    return urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
def use(o):
    page = o.open(link).read().decode()
    form = dict(re.findall(r'name="(csrf|u|t)" value="([^"]*)"', page))
    data = urllib.parse.urlencode(form).encode()
    base = link.split("/link/")[0]
    try:
        r = o.open(urllib.request.Request(f"{base}/link/{aid}", data=data))
        return r.status, r.geturl(), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, "", e.read().decode()
status, url, body = use(opener())
assert status == 200 and url.endswith(f"/requests/{aid}") and "承認して送信" in body, (status, url)
status, _, body = use(opener())
assert status == 403 and "使用済み" in body, status
print("PASS: the mailed one-time link signs the approver in to the request, and only once")
EOF

# SIGHUP: the console reads the policy again and keeps serving.
kill -HUP "$(cat "$BASE/console.pid")"
wait_log "$BASE/console.log" "reloaded on SIGHUP: policy" 20
grep -q "reloaded on SIGHUP: policy" "$BASE/console.log" && kill -0 "$(cat "$BASE/console.pid")" \
  && wait_port "$CONSOLE_PORT" 5 || die "the console did not reload on SIGHUP (see $BASE/console.log)"
echo "PASS: SIGHUP: $(grep -o "reloaded on SIGHUP: .*" "$BASE/console.log" | tail -n1), still serving"

# The browser.
CONSOLE_URL="http://127.0.0.1:$CONSOLE_PORT" WEBDRIVER_URL="http://127.0.0.1:$WEBDRIVER_PORT" \
APPROVAL_ID="$aid" QUEUE_ID="$qid" SUBJECT_MARKER="$SUBJECT" ARTIFACTS="$ARTIFACTS" STATE_DIR="$STATE" \
APPROVER_USER="boss@example.co.jp" APPROVER_PASSWORD="$BOSS_PW" \
ADMIN_USER="security-admin" ADMIN_PASSWORD="$ADMIN_PW" RECIPIENT_MAILDIR="$VMAIL/bob/Maildir/new" \
  cargo test --locked -q -p ping32dlp-console --test browser -- --ignored --nocapture

postqueue -c "$CONF" -p | grep -q "^${qid}" && die "$qid is still queued after approval"
ls -l "$ARTIFACTS"
echo "PASS: console end to end in Chromium (screenshots in $ARTIFACTS)"

# The approval is counted on the console's metrics listener; the hold no longer waits.
MV=(python3 "$ROOT/scripts/metrics_value.py")
M="http://127.0.0.1:$METRICS_PORT"
approved=$("${MV[@]}" "$M/metrics" ping32dlp_approval_decisions_total decision=approve)
waiting=$("${MV[@]}" "$M/metrics" ping32dlp_holds_waiting)
conns=$("${MV[@]}" "$M/metrics" ping32dlp_connections_open)
ready=$("${MV[@]}" "$M/readyz")
[ "$approved" = 1 ] && [ "$waiting" = 0 ] && [ "$conns" != none ] && grep -q "^200 ready:" <<<"$ready" \
  || die "console metrics: approved $approved, waiting $waiting, connections $conns, readyz $ready"
echo "PASS: console metrics: 1 approval counted, $waiting holds waiting, $conns connections open; /readyz: $ready"
