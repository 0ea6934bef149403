#!/usr/bin/env bash
# The shared store's numbers (run by hand; not part of the test command):
#
#   1. durable records per second with 1, 2 and 4 writer processes (16 submitting threads
#      each, group commit) on one PostgreSQL on this machine, and the same on SQLite;
#   2. audit-search latency over 10,000,000 records (the README's query table, median and p95 of
#      30 runs through the store) and the EXPLAIN of each query (target/bench-store/explain.txt);
#   3. the console's request list and 30-day dashboard over 1,000,000 records.
#
#   scripts/bench-store.sh [all|write|search|console]     (after cargo build --release)
# Env: W (work dir), PGPORT, RECORDS (10,000,000), WRITES (records per writer process).
# PostgreSQL runs with shared_buffers = 2GB and synchronous_commit on (durable commits).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
WHAT=${1:-all}
W=${W:-/tmp/ping32dlp-bench-store}
PGDIR=$W/pg PGPORT=${PGPORT:-25452}
RECORDS=${RECORDS:-10000000}
WRITES=${WRITES:-40000}
CLI=$ROOT/target/release/ping32dlp
CONSOLE=$ROOT/target/release/ping32dlp-console
OUT=$ROOT/target/bench-store
for b in "$CLI" "$CONSOLE"; do [ -x "$b" ] || { echo "build first: cargo build --release -p ping32dlp-cli -p ping32dlp-console" >&2; exit 1; }; done
. "$ROOT/scripts/pg-env.sh"
mkdir -p "$W" "$OUT"
trap pg_stop EXIT
if [ ! -f "$W/pg/data/PG_VERSION" ]; then
  pg_fresh "shared_buffers = 2GB
max_wal_size = 2GB
checkpoint_timeout = 15min
work_mem = 32MB"
else
  pg_need; pg_running || pg_start
fi
URL=$(pg_url)

if [ "$WHAT" = all ] || [ "$WHAT" = write ]; then
  echo "== durable records/s (16 submitting threads per process)"
  for procs in 1 2 4; do
    pg_new_db "w$procs"
    "$CLI" store-bench write --store "$(pg_url "w$procs")" --state "$W/x" --records 200 --threads 4 >/dev/null  # migrate first
    start=$(date +%s.%N)
    for p in $(seq 1 "$procs"); do
      "$CLI" store-bench write --store "$(pg_url "w$procs")" --state "$W/x" --records "$WRITES" --threads 16 --seed "$p" > "$W/pw$p.json" &
    done
    wait
    secs=$(echo "$(date +%s.%N) - $start" | bc)
    echo "postgres, $procs writer process(es): $((procs * WRITES)) records in ${secs} s = $(echo "$procs * $WRITES / $secs" | bc) records/s"
    rm -rf "$W/sq$procs"; mkdir -p "$W/sq$procs"
    "$CLI" store-bench write --state "$W/sq$procs" --records 200 --threads 4 >/dev/null 2>&1 \
      || "$CLI" process corpus/policy/internal.eml --state "$W/sq$procs" >/dev/null
    start=$(date +%s.%N)
    for p in $(seq 1 "$procs"); do
      "$CLI" store-bench write --state "$W/sq$procs" --records "$WRITES" --threads 16 --seed "$p" > "$W/sw$p.json" &
    done
    wait
    secs=$(echo "$(date +%s.%N) - $start" | bc)
    echo "sqlite,   $procs writer process(es): $((procs * WRITES)) records in ${secs} s = $(echo "$procs * $WRITES / $secs" | bc) records/s"
  done
fi

if [ "$WHAT" = all ] || [ "$WHAT" = search ]; then
  if [ ! -f "$W/filled-$RECORDS" ]; then
    pg_new_db big
    echo "== filling $RECORDS records (one every 3 s from 2026-01-01: about $((RECORDS * 3 / 86400 / 30)) monthly partitions)"
    "$CLI" store-bench fill --store "$(pg_url big)" --records "$RECORDS" --step 3
    touch "$W/filled-$RECORDS"
  fi
  echo "== audit searches over $RECORDS records (through the store: median / p95 of 30)"
  "$CLI" store-bench queries --store "$(pg_url big)" --state "$W/x" --runs 30 | tee "$OUT/queries.jsonl"
  "$CLI" store-bench explain --store "$(pg_url big)" --state "$W/x" --runs 1 > "$OUT/explain.txt"
  echo "plans: $OUT/explain.txt"
  echo "partitions: $(pg_sql big "SELECT count(*) FROM pg_inherits i JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'records'")"
  echo "size: $(pg_sql big "SELECT pg_size_pretty(pg_database_size('big'))")"
fi

if [ "$WHAT" = all ] || [ "$WHAT" = console ]; then
  if [ ! -f "$W/filled-console" ]; then
    pg_new_db c1m
    echo "== filling 1,000,000 records and 2,500 waiting requests for the console"
    "$CLI" store-bench fill --store "$(pg_url c1m)" --records 1000000 --step 30 --approvals 2500 --recent
    touch "$W/filled-console"
  fi
  PW="bench-$(head -c 6 /dev/urandom | od -An -tx1 | tr -d ' \n')"
  HASH=$(printf '%s\n' "$PW" | "$CONSOLE" hash-password)
  cat > "$W/console.toml" <<EOF
listen = "127.0.0.1:8029"
[dlp]
state_dir = "console-state"
store = "$(pg_url c1m)"
[[account]]
name = "admin"
password_hash = "$HASH"
role = "admin"
EOF
  "$CONSOLE" --config "$W/console.toml" 2>"$W/console.log" &
  CPID=$!
  trap 'kill $CPID 2>/dev/null || true; pg_stop' EXIT
  for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:8029/healthz" >/dev/null && break; sleep 0.1; done
  JAR=$W/cookies
  csrf=$(curl -fs -c "$JAR" "http://127.0.0.1:8029/login" | sed -n 's/.*name="csrf" value="\([0-9a-f]*\)".*/\1/p')
  curl -fs -b "$JAR" -c "$JAR" -o /dev/null --data "csrf=$csrf&user=admin&password=$PW" "http://127.0.0.1:8029/login"
  measure() {
    local times
    times=$(for _ in $(seq 1 15); do curl -fs -b "$JAR" -o /dev/null -w '%{time_total}\n' "http://127.0.0.1:8029$2"; done | sort -n)
    python3 - "$1" <<EOF
import sys
t = [float(x) * 1000 for x in """$times""".split()]
print(f"{sys.argv[1]:<52} median {t[len(t)//2]:8.1f} ms   p95 {t[int(len(t)*0.95)-1]:8.1f} ms")
EOF
  }
  echo "== console over 1,000,000 records (PostgreSQL store)"
  measure "request list (admin, 300 of 2,500 waiting)" "/requests"
  measure "audit search: 30 days, 100 rows" "/audit?since=30d&limit=100"
  measure "dashboard, 7 days" "/dashboard?days=7"
  measure "dashboard, 30 days" "/dashboard?days=30"
fi
