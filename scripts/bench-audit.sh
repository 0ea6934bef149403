#!/usr/bin/env bash
# Reproducible policy and audit benchmark (criterion, benches/workflow.rs), pinned to one core:
# policy evaluation, evaluation + durable audit write (1 and 16 concurrent submitters, group
# commit), and indexed audit searches over 1,000,000 generated records (generated once into
# target/bench-audit/, a minute or two). Prints one line per benchmark.
#
#   scripts/bench-audit.sh [FILTER]      (a criterion filter, e.g. search_1m)
set -euo pipefail
cd "$(dirname "$0")/.."
FILTER=${1:-}
PIN=()
command -v taskset >/dev/null && PIN=(taskset -c 0)
mkdir -p target/bench-audit
"${PIN[@]}" cargo bench --bench workflow -- ${FILTER:+"$FILTER"} >target/bench-audit/last.log 2>&1 || { tail -30 target/bench-audit/last.log; exit 1; }
python3 - <<'PY'
import json, pathlib
root = pathlib.Path("target/criterion")
print("%-48s %12s %14s" % ("benchmark (one core)", "mean", "per second"))
for est in sorted(root.glob("*/**/new/estimates.json")):
    bench = est.parent.parent.relative_to(root).as_posix()
    if not (bench.startswith("policy") or bench.startswith("audit")):
        continue
    ns = json.loads(est.read_text())["mean"]["point_estimate"]
    unit = "%.1f µs" % (ns / 1e3) if ns < 1e6 else "%.2f ms" % (ns / 1e6)
    print("%-48s %12s %14.0f" % (bench.replace("_", "/", 0), unit, 1e9 / ns))
PY
