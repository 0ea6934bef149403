#!/usr/bin/env bash
# Throughput and added latency of ping32dlp-milter in a real Postfix (loopback, private
# instance; see scripts/milter/postfix-env.sh): messages/s through Postfix with and without the
# milter, at 10 KB (text) and 1 MB (a .docx and a 1 MB CSV attached), and p50 / p99 latency of
# a submission (connect to 250 after DATA) with the milter minus without it.
# The added latency is measured paired: the same Postfix has a second listener without the
# milter, and the client sends every second message there, so both sides of the difference are
# taken in the same seconds under the same load (RUNS runs of NPAIR messages per size; the spread
# over the runs is printed). Throughput is measured as before, with the milter on, then off.
# Goals (issues 6, 18): >= 0.8x of Postfix alone at 10 KB; <= 20 ms p99 added at 10 KB and 1 MB.
# Outside CI (about 10 minutes with the defaults). Run as root after
#   cargo build --release -p ping32dlp-milter -p ping32dlp-cli
# Env: N10K (default 600), N1M (default 120), CONC (default 8), RUNS (5), NPAIR (2000),
#      PLAIN_PORT (2527: the listener without the milter).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
BASE=${BASE:-/tmp/ping32dlp-milter-bench}
SMTP_PORT=${SMTP_PORT:-2526}
SMTPS_PORT=${SMTPS_PORT:-2466}
MILTER_PORT=${MILTER_PORT:-8898}
PLAIN_PORT=${PLAIN_PORT:-2527}
CONF=$BASE/etc
VMAIL=$BASE/vmail
MILTER=$ROOT/target/release/ping32dlp-milter
N10K=${N10K:-600}
N1M=${N1M:-120}
CONC=${CONC:-8}
RUNS=${RUNS:-5}
NPAIR=${NPAIR:-2000}
die() { echo "FATAL: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "run as root"
[ -x "$MILTER" ] || die "build first: cargo build --release -p ping32dlp-milter"
. "$ROOT/scripts/milter/postfix-env.sh"
pfenv_setup
trap pfenv_stop EXIT
port_free "$PLAIN_PORT" || die "127.0.0.1:$PLAIN_PORT is in use"
# The same smtpd without the milter (smtpd_milters is what smtpd applies; non_smtpd_milters
# is only for mail that does not come through smtpd).
echo "127.0.0.1:$PLAIN_PORT inet n - n - - smtpd -o smtpd_milters=" >> "$CONF/master.cf"
cat > "$BASE/milter.toml" <<EOT
listen = "inet:127.0.0.1:$MILTER_PORT"
state_dir = "$BASE/state"
EOT
pfenv_start_milter "$BASE/milter.toml"
[ -n "${PERF_RECORD:-}" ] && { perf record -e cpu-clock -F 2000 -g -o "$BASE/perf.data" -p "$(cat "$BASE/milter.pid")" >/dev/null 2>&1 & }
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
DOCX=$ROOT/corpus/extract/docs/見積書.docx
cpu_ms() {  # user+system CPU of the milter so far, in ms
  awk -v hz="$(getconf CLK_TCK)" '{ printf "%d", ($14 + $15) * 1000 / hz }' "/proc/$(cat "$BASE/milter.pid")/stat"
}
run() {  # label n args...
  local label=$1 n=$2; shift 2
  local c0; c0=$(cpu_ms)
  python3 "$ROOT/scripts/milter/smtp_client.py" many --port "$SMTP_PORT" --n "$n" --concurrency "$CONC" \
    --user ichiro --password secret --subject "bench $label" "$@" > "$BASE/$label.out"
  grep -q "^RESULT ok=$n failed=0" "$BASE/$label.out" || { head -5 "$BASE/$label.out"; die "$label: failures"; }
  case $label in *-with) echo "$label: milter CPU $(awk -v a="$c0" -v b="$(cpu_ms)" -v n="$n" 'BEGIN { printf "%.2f", (b - a) / n }') ms per message";; esac
}
stats() {  # file -> "msgs_per_s p50 p99"
  python3 - "$1" <<'EOT'
import sys
lines = open(sys.argv[1]).read().split("\n")
secs = float(lines[0].split("seconds=")[1]); n = int(lines[0].split("ok=")[1].split()[0])
lat = sorted(float(l.split()[1]) for l in lines if l.startswith("LAT "))
q = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))]
print(f"{n / secs:.1f} {q(0.5):.1f} {q(0.99):.1f}")
EOT
}
BODY10K=$(python3 -c "print(('定例会議の議事録を共有します。次回は来週火曜日です。 meeting notes ' * 120)[:10000])")
wait_port "$PLAIN_PORT" 20 || die "the listener without the milter did not start"
inspected() { grep -c 'event=inspected' "$BASE/milter.log" 2>/dev/null || true; }
inspect_ms() {  # first_line count -> "p50 p99" of the milter's own inspection time (its log's ms=)
  grep 'event=inspected' "$BASE/milter.log" | tail -n +"$1" | head -n "$2" | grep -o ' ms=[0-9.]*' | cut -d= -f2 |
    sort -g | awk '{ v[NR] = $1 } END { i = int(NR * 0.5) + 1; j = int(NR * 0.99) + 1; if (j > NR) j = NR;
      printf "%.1f %.1f", v[i], v[j] }'
}
pair() {  # label n args...: n messages alternating between the two listeners
  local label=$1 n=$2; shift 2
  python3 "$ROOT/scripts/milter/smtp_client.py" many --port "$SMTP_PORT" --port-b "$PLAIN_PORT" --n "$n" \
    --concurrency "$CONC" --user ichiro --password secret --subject "pair $label" "$@" > "$BASE/$label.out"
  grep -q "^RESULT ok=$n failed=0" "$BASE/$label.out" || { head -5 "$BASE/$label.out"; die "$label: failures"; }
}
pair_stats() {  # file -> "p50_alone p99_alone p50_with p99_with"
  python3 - "$1" <<'EOT'
import sys
lines = open(sys.argv[1]).read().split("\n")
def q(tag, p):
    lat = sorted(float(l.split()[1]) for l in lines if l.split(" ")[0] == tag)
    return lat[min(len(lat) - 1, int(p * len(lat)))]
print(f"{q('LATB', 0.5):.1f} {q('LATB', 0.99):.1f} {q('LAT', 0.5):.1f} {q('LAT', 0.99):.1f}")
EOT
}
pair warm-pair 100 --body "$BODY10K"
echo "paired added latency ($RUNS runs of $NPAIR messages per size, half through the milter; concurrency $CONC):"
echo "(latency = connect .. 250 after DATA at the client; inspect = the milter's own time per message, from its log)"
printf '%-5s %4s %11s %11s %11s %11s %10s %10s %12s %12s\n' size run "p50 alone" "p99 alone" "p50 milter" \
  "p99 milter" "p50 added" "p99 added" "inspect p50" "inspect p99"
rm -f "$BASE/pairs.txt"
for s in 10k 1m; do
  for r in $(seq 1 "$RUNS"); do
    before=$(inspected)
    if [ "$s" = 10k ]; then pair "pair-$s-$r" "$NPAIR" --body "$BODY10K"
    else pair "pair-$s-$r" "$NPAIR" --body "see attached" --attach "$DOCX" --attach "$BASE/big.csv"; fi
    n=$(( $(inspected) - before ))
    [ "$n" = $((NPAIR / 2)) ] || die "pair-$s-$r: the milter inspected $n messages, expected $((NPAIR / 2))"
    read -r pa qa pw qw <<<"$(pair_stats "$BASE/pair-$s-$r.out")"
    read -r ia ib <<<"$(inspect_ms $((before + 1)) "$n")"
    awk -v s="$s" -v r="$r" -v pa="$pa" -v qa="$qa" -v pw="$pw" -v qw="$qw" -v ia="$ia" -v ib="$ib" 'BEGIN {
      printf "%-5s %4d %8.1f ms %8.1f ms %8.1f ms %8.1f ms %7.1f ms %7.1f ms %9.1f ms %9.1f ms\n",
        s, r, pa, qa, pw, qw, pw - pa, qw - qa, ia, ib }' | tee -a "$BASE/pairs.txt"
  done
done
spread() {  # column label: the lowest and highest value of a column of pairs.txt, per size
  awk -v c="$1" -v label="$2" '{ k = $1; d = $c + 0; n[k]++; if (!(k in lo) || d < lo[k]) lo[k] = d
      if (!(k in hi) || d > hi[k]) hi[k] = d }
    END { for (k in n) printf "%s: %s %.1f to %.1f ms over %d runs\n", k, label, lo[k], hi[k], n[k] }' \
    "$BASE/pairs.txt" | sort
}
spread 13 "p99 added"
spread 17 "inspect p99"
for mode in with without; do
  if [ "$mode" = without ]; then
    postconf -c "$CONF" -e 'smtpd_milters =' 'non_smtpd_milters =' && pf postfix -c "$CONF" reload >/dev/null && sleep 1
  fi
  run "10k-warm-$mode" 50 --body "$BODY10K"
  run "10k-$mode" "$N10K" --body "$BODY10K"
  run "1m-$mode" "$N1M" --body "see attached" --attach "$DOCX" --attach "$BASE/big.csv"
done
printf '\n%-8s %14s %14s %6s %10s %10s %12s %12s\n' size "alone msg/s" "milter msg/s" ratio "p50 alone" "p99 alone" "p50 added" "p99 added"
for s in 10k 1m; do
  read -r ta pa qa <<<"$(stats "$BASE/$s-without.out")"
  read -r tw pw qw <<<"$(stats "$BASE/$s-with.out")"
  awk -v s="$s" -v ta="$ta" -v tw="$tw" -v pa="$pa" -v qa="$qa" -v pw="$pw" -v qw="$qw" 'BEGIN {
    printf "%-8s %14.1f %14.1f %6.2f %8.1f ms %8.1f ms %9.1f ms %9.1f ms\n", s, ta, tw, tw / ta, pa, qa, pw - pa, qw - qa }'
done
echo "(concurrency $CONC; $N10K x 10 KB, $N1M x 1 MB; latency = connect .. 250 after DATA, per message)"
