#!/usr/bin/env bash
# Page times of the web console over a filled state directory: the policy test mails processed
# REPEAT times each (default 2,500: 10,000 records, 2,500 held), then every page an approver or
# an admin opens most, fetched N times (default 30) with curl; prints median and p95 in ms.
#
#   scripts/bench-console.sh            # after: cargo build --release -p ping32dlp-cli -p ping32dlp-console
# Env: BASE, PORT, REPEAT, N.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
BASE=${BASE:-/tmp/ping32dlp-console-bench}
PORT=${PORT:-8027}
REPEAT=${REPEAT:-2500}
N=${N:-30}
CLI=$ROOT/target/release/ping32dlp
CONSOLE=$ROOT/target/release/ping32dlp-console
for b in "$CLI" "$CONSOLE"; do [ -x "$b" ] || { echo "build first: cargo build --release -p ping32dlp-cli -p ping32dlp-console" >&2; exit 1; }; done
command -v curl >/dev/null || { echo "curl is needed" >&2; exit 1; }

rm -rf "$BASE"; mkdir -p "$BASE"
cat > "$BASE/policy.toml" <<'EOF'
[policy]
internal_domains = ["example.co.jp"]
[approval]
release_command = "true"
discard_command = "true"
notify_command = ""
[[rule]]
id = "hold-my-number"
action = "hold"
approvers = ["boss@example.co.jp"]
expires = "7d"
when = { all = [{ recipients = "any_external" }, { detector = ["jp_my_number"] }] }
[[rule]]
id = "alert-external"
action = "alert"
when = { recipients = "any_external" }
EOF
t0=$(date +%s.%N)
"$CLI" process corpus/policy --policy "$BASE/policy.toml" --state "$BASE/state" --repeat "$REPEAT" \
  --jobs 2 --context channel=milter --context user=ichiro >/dev/null
echo "filled: $((REPEAT * 4)) records in $(echo "$(date +%s.%N) - $t0" | bc) s"

PW="bench-$(head -c 6 /dev/urandom | od -An -tx1 | tr -d ' \n')"
HASH=$(printf '%s\n' "$PW" | "$CONSOLE" hash-password)
cat > "$BASE/console.toml" <<EOF
listen = "127.0.0.1:$PORT"
state_dir = "state"
policy = "policy.toml"
[[account]]
name = "admin"
password_hash = "$HASH"
role = "admin"
EOF
"$CONSOLE" --config "$BASE/console.toml" 2>"$BASE/console.log" &
PID=$!
trap 'kill $PID 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.1; done

JAR=$BASE/cookies
csrf=$(curl -fs -c "$JAR" "http://127.0.0.1:$PORT/login" | sed -n 's/.*name="csrf" value="\([0-9a-f]*\)".*/\1/p')
curl -fs -b "$JAR" -c "$JAR" -o /dev/null --data "csrf=$csrf&user=admin&password=$PW" "http://127.0.0.1:$PORT/login"
# A request of the mail with a spreadsheet attached (【社外秘】月次報告).
read -r aid rid < <("$CLI" approvals list --state "$BASE/state" --json | python3 -c '
import json, sys
rows = [json.loads(l) for l in sys.stdin.read().splitlines()]
a = next((r for r in rows if "月次報告" in r["subject"]), rows[0])
print(a["id"], a["record_id"])')

measure() {  # label path
  local times
  times=$(for _ in $(seq 1 "$N"); do
    curl -fs -b "$JAR" -o /dev/null -w '%{time_total}\n' "http://127.0.0.1:$PORT$2"
  done | sort -n)
  python3 - "$1" <<EOF
import sys
t = [float(x) * 1000 for x in """$times""".split()]
print(f"{sys.argv[1]:<44} median {t[len(t)//2]:7.1f} ms   p95 {t[int(len(t)*0.95)-1]:7.1f} ms")
EOF
}
measure "request list (admin, 300 of 2,500 waiting)" "/requests"
measure "request page" "/requests/$aid"
measure "attachment view (masked xlsx)" "/requests/$aid/attachments/0"
measure "audit search: 30 days, 100 rows" "/audit?since=30d&limit=100"
measure "audit search: sender + detector" "/audit?sender=ichiro%40example.co.jp&detector=jp_my_number&since=30d"
measure "audit record page" "/audit/$rid"
measure "dashboard, 30 days" "/dashboard?days=30"
