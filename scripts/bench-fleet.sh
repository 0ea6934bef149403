#!/usr/bin/env bash
# The endpoint fleet's numbers (README, "Performance"), outside CI:
#
#   1. records/s a fleet server (the console, agent_api, on a private PostgreSQL) ingests from
#      AGENTS simulated agents on loopback (`ping32dlp store-bench fleet-upload`: each agent
#      uploads RECORDS synthetic records in batches of 200, all at once, durably);
#      then 1000 history questions one after another over the 50,000 records (p50, p99);
#   2. the latency an agent adds per mail: N mails one after another through ping32dlp-proxy
#      to a real Postfix, with its own SQLite store only, as an agent with the server up, and
#      as an agent with the server down (the mail path must not wait for the server).
#
# Run as root after cargo build --release -p ping32dlp-cli -p ping32dlp-proxy -p ping32dlp-console.
# Env: AGENTS (10), RECORDS (5000 per agent), N (300 mails per case).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
BASE=${BASE:-/tmp/ping32dlp-fleet-bench}
SMTP_PORT=${SMTP_PORT:-2543}; SMTPS_PORT=${SMTPS_PORT:-2483}; MILTER_PORT=${MILTER_PORT:-8923}
SERVER_PORT=${SERVER_PORT:-8053}; PROXY_PORT=${PROXY_PORT:-10621}
AGENTS=${AGENTS:-10}; RECORDS=${RECORDS:-5000}; N=${N:-300}
CONF=$BASE/etc; VMAIL=$BASE/vmail
PROXY=$ROOT/target/release/ping32dlp-proxy
CONSOLE=$ROOT/target/release/ping32dlp-console
CLI=$ROOT/target/release/ping32dlp
die() { echo "FATAL: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "run as root"
for b in "$PROXY" "$CONSOLE" "$CLI"; do [ -x "$b" ] || die "build first: $b"; done
PGDIR=/tmp/ping32dlp-fleet-bench-pg PGPORT=${PGPORT:-25462}
. "$ROOT/scripts/pg-env.sh"
. "$ROOT/scripts/milter/postfix-env.sh"
stop() {
  for f in "$BASE"/*.pid; do [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null || true; rm -f "$f"; done
  pfenv_stop 2>/dev/null || true
  pg_stop 2>/dev/null || true
}
[ -d "$BASE" ] && stop
pfenv_setup
trap stop EXIT
postconf -c "$CONF" -e 'smtpd_milters =' 'non_smtpd_milters ='
pfenv_start_postfix
pg_fresh
URL=$(pg_url)
cat > "$BASE/server.toml" <<EOF
listen = "127.0.0.1:$SERVER_PORT"
agent_api = true
[dlp]
state_dir = "server-state"
store = "$URL"
EOF
start_server() {
  "$CONSOLE" --config "$BASE/server.toml" 2>>"$BASE/server.log" & echo $! > "$BASE/server.pid"
  wait_port "$SERVER_PORT" 20 || die "the server did not start"
}
start_server
SERVER=http://127.0.0.1:$SERVER_PORT
creds=()
for n in $(seq "$AGENTS") x; do
  tok=$("$CLI" fleet token --store "$URL" --state "$BASE/cli" --label "bench $n" | python3 -c "import json,sys; print(json.load(sys.stdin)['token'])")
  "$CLI" agent enrol --server "$SERVER" --state "$BASE/agent$n" --name "bench-$n" --token "$tok" >/dev/null
  [ "$n" = x ] || creds+=(--credential "$BASE/agent$n/agent.credential")
done

echo "== 1. ingestion: $AGENTS agents x $RECORDS records, batches of 200 (PostgreSQL $("$PGBIN/postgres" --version | awk '{print $3}'), durable commits)"
"$CLI" store-bench fleet-upload --server "$SERVER" "${creds[@]}" --records "$RECORDS" --history 1000 | tee "$BASE/ingest.json"

echo "== 2. added latency per mail, $N mails one after another (connect .. 250 after DATA)"
run_proxy() {  # name store-line
  cat > "$BASE/proxy-$1.toml" <<EOF
listen = "127.0.0.1:$PROXY_PORT"
listen_tls = ""
hostname = "localhost"
[dlp]
state_dir = "proxy-$1"
$2
[upstream]
host = "127.0.0.1"
port = $SMTP_PORT
tls = "none"
EOF
  "$PROXY" --config "$BASE/proxy-$1.toml" 2>>"$BASE/proxy-$1.log" & echo $! > "$BASE/proxy.pid"
  wait_port "$PROXY_PORT" 20 || die "proxy $1 did not start"
  python3 "$ROOT/scripts/milter/smtp_client.py" many --port "$PROXY_PORT" --n "$N" --concurrency 1 \
    --subject "bench $1" --body "定例の資料をお送りします。" > "$BASE/lat-$1.txt"
  kill "$(cat "$BASE/proxy.pid")"; rm -f "$BASE/proxy.pid"; sleep 0.5
  python3 - "$1" "$BASE/lat-$1.txt" <<'EOT'
import sys
lines = open(sys.argv[2]).read().splitlines()
lat = sorted(float(l.split()[1]) for l in lines if l.startswith("LAT "))
ok = lines[0]
p = lambda q: lat[min(len(lat) - 1, int(round((len(lat) - 1) * q)))]
print(f"{sys.argv[1]:<22} {ok}  p50 {p(0.5):.1f} ms  p99 {p(0.99):.1f} ms")
EOT
}
mkdir -p "$BASE/proxy-up" "$BASE/proxy-down"
cp "$BASE/agentx/agent.credential" "$BASE/proxy-up/"
run_proxy local ""
run_proxy up "store = \"$SERVER\""
kill "$(cat "$BASE/server.pid")"; rm -f "$BASE/server.pid"
cp "$BASE/agentx/agent.credential" "$BASE/proxy-down/"
run_proxy down "store = \"$SERVER\""
echo "(local: the proxy's own SQLite store; up: an agent with the server reachable; down: the server stopped)"
