#!/usr/bin/env bash
# Relay throughput and added latency of ping32dlp-proxy: messages/s and per-message latency
# (connect .. 250 after DATA) sending straight to a real Postfix upstream vs through the proxy,
# at 10 KB and at 1 MB with attachments (a .docx and a 1 MB CSV). The proxy relays to the
# upstream in plain SMTP here so that the numbers are the proxy's own cost (TLS costs the same
# either way). Goals (issue 7): >= 0.8x throughput and <= 20 ms p99 added at 1 MB.
# Outside CI. Run as root after cargo build --release -p ping32dlp-proxy.
# Env: N10K (default 400), N1M (default 100), CONC (default 8).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
BASE=${BASE:-/tmp/ping32dlp-proxy-bench}
SMTP_PORT=${SMTP_PORT:-2528}; SMTPS_PORT=${SMTPS_PORT:-2468}; MILTER_PORT=${MILTER_PORT:-8896}
PLAIN_PORT=${PLAIN_PORT:-10588}
CONF=$BASE/etc; VMAIL=$BASE/vmail; MILTER=/bin/false
PROXY=$ROOT/target/release/ping32dlp-proxy
N10K=${N10K:-400}; N1M=${N1M:-100}; CONC=${CONC:-8}
die() { echo "FATAL: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "run as root"
[ -x "$PROXY" ] || die "build first: cargo build --release -p ping32dlp-proxy"
. "$ROOT/scripts/milter/postfix-env.sh"
pfenv_setup
trap 'kill "$(cat "$BASE/proxy.pid" 2>/dev/null)" 2>/dev/null; pfenv_stop' EXIT
postconf -c "$CONF" -e 'smtpd_milters =' 'non_smtpd_milters ='
cat > "$BASE/proxy.toml" <<EOT
listen = "127.0.0.1:$PLAIN_PORT"
listen_tls = ""
state_dir = "state"
[upstream]
host = "127.0.0.1"
port = $SMTP_PORT
tls = "none"
EOT
"$PROXY" --config "$BASE/proxy.toml" 2>>"$BASE/proxy.log" & echo $! > "$BASE/proxy.pid"
wait_port "$PLAIN_PORT" 20 || die "proxy did not start"
pfenv_start_postfix
python3 - "$BASE/big.csv" <<'EOT'
import random, sys
random.seed(7)
names = ["佐藤", "鈴木", "高橋", "田中", "伊藤", "渡辺", "山本", "中村"]
with open(sys.argv[1], "w", encoding="utf-8") as f:
    f.write("氏名,部署,内線,メモ\n")
    while f.tell() < 1_000_000:
        f.write(f"{random.choice(names)} {random.choice(names)},営業{random.randint(1,9)}課,{random.randint(1000,9999)},定例会議の議事録を共有します\n")
EOT
BODY10K=$(python3 -c "print(('定例会議の議事録を共有します。次回は来週火曜日です。 meeting notes ' * 120)[:10000])")
run() {  # label port n args...
  local label=$1 port=$2 n=$3; shift 3
  python3 "$ROOT/scripts/milter/smtp_client.py" many --port "$port" --n "$n" --concurrency "$CONC" \
    --user ichiro --password secret --subject "bench $label" "$@" > "$BASE/$label.out"
  grep -q "^RESULT ok=$n failed=0" "$BASE/$label.out" || { head -5 "$BASE/$label.out"; die "$label: failures"; }
}
stats() {
  python3 - "$1" <<'EOT'
import sys
lines = open(sys.argv[1]).read().split("\n")
secs = float(lines[0].split("seconds=")[1]); n = int(lines[0].split("ok=")[1].split()[0])
lat = sorted(float(l.split()[1]) for l in lines if l.startswith("LAT "))
q = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))]
print(f"{n / secs:.1f} {q(0.5):.1f} {q(0.99):.1f}")
EOT
}
for target in direct proxy; do
  port=$SMTP_PORT; [ "$target" = proxy ] && port=$PLAIN_PORT
  run "warm-$target" "$port" 30 --body "$BODY10K"
  run "10k-$target" "$port" "$N10K" --body "$BODY10K"
  run "1m-$target" "$port" "$N1M" --body "see attached" --attach "$ROOT/corpus/extract/docs/見積書.docx" --attach "$BASE/big.csv"
done
printf '\n%-6s %14s %14s %6s %10s %10s %12s %12s\n' size "direct msg/s" "proxy msg/s" ratio "p50 direct" "p99 direct" "p50 added" "p99 added"
for s in 10k 1m; do
  read -r td pd qd <<<"$(stats "$BASE/$s-direct.out")"
  read -r tp pp qp <<<"$(stats "$BASE/$s-proxy.out")"
  awk -v s="$s" -v td="$td" -v tp="$tp" -v pd="$pd" -v qd="$qd" -v pp="$pp" -v qp="$qp" 'BEGIN {
    printf "%-6s %14.1f %14.1f %6.2f %7.1f ms %7.1f ms %9.1f ms %9.1f ms\n", s, td, tp, tp / td, pd, qd, pp - pd, qp - qd }'
done
echo "(concurrency $CONC; $N10K x 10 KB, $N1M x 1 MB; monitor-mode default policy, every mail recorded durably)"
