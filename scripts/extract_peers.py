#!/usr/bin/env python3
"""Extraction peers: ping32dlp against Apache Tika (the extractous package) and kreuzberg on the
project's extraction corpus (corpus/extract, planted values in expected.json).

Run by scripts/bench-extract-peers.sh with the python of a venv that holds both peers. Three
parts, each tool driven the same way:

1. Reading: one process per file with a timeout. A peer's process extracts the text and writes it
   to a file; ping32dlp's process is `ping32dlp scan --json --show-values FILE`. Per format:
   files read without error, failed (an error that names no reason, a timeout, a crash), reported
   (the tool said why it could not read something: encrypted, password, unsupported), and silent
   (a file with something unreadable in it, per expected.json, that the tool passed without a word).
2. Values: the project's detectors (`ping32dlp scan` over each peer's text, as .txt) against the
   values planted in each file; ping32dlp's own pipeline gets the original file. Decoys that must
   not be reported (expected.json `absent`) are counted when found.
3. Speed, warm: one process per tool over the files every tool read, a warm-up round, then timed
   rounds; MB/s of input file bytes per round (median). ping32dlp: `ping32dlp bench --input ...`
   (extraction and detection); the peers: extraction alone.
"""
import argparse
import datetime
import importlib.metadata
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import unicodedata

PEERS = ("extractous", "kreuzberg")
TOOLS = ("ping32dlp",) + PEERS
# Text longer than this is cut by the peer; high enough that no corpus file is cut (Tika's
# default, 100,000 characters, would cut the 10,000-row lists).
MAX_CHARS = 500_000_000
# An error message that says why a file could not be read.
REASON = re.compile(
    r"encrypt|password|protected|not (yet )?support|unsupported|bomb|exceeds? limit", re.I
)
QUICK_FILES = [
    "docs/見積書.docx",
    "docs/archive.7z",
    "docs/説明資料.ppt",
    "docs/ppap.7z",
    "mail/08-typical.eml",
]


def peer_extractor(peer):
    """A function path -> text for one peer, in its default configuration."""
    if peer == "extractous":
        from extractous import Extractor

        ex = Extractor().set_extract_string_max_length(MAX_CHARS)

        def run(path):
            text, _meta = ex.extract_file_to_string(path)
            return text

        return run
    if peer == "kreuzberg":
        from kreuzberg import extract_file_sync

        def run(path):
            return extract_file_sync(path).content

        return run
    raise SystemExit(f"unknown peer {peer}")


def child_one(peer, path, out):
    """One file, one process: write the text, print a JSON status."""
    try:
        text = peer_extractor(peer)(path)
    except Exception as e:  # the peer's own error, reported as such
        print(json.dumps({"error": f"{type(e).__name__}: {e}"[:500]}))
        return 3
    with open(out, "w", encoding="utf-8", errors="surrogatepass") as f:
        f.write(text or "")
    print(json.dumps({"chars": len(text or "")}))
    return 0


def child_warm(peer, listfile, rounds):
    """Every file of the list, a warm-up round then `rounds` timed rounds."""
    run = peer_extractor(peer)
    files = [l for l in open(listfile, encoding="utf-8").read().split("\n") if l]
    size = sum(os.path.getsize(f) for f in files)
    times = []
    for r in range(rounds + 1):
        t = time.perf_counter()
        for f in files:
            run(f)
        if r:
            times.append(time.perf_counter() - t)
    print(json.dumps({"bytes": size, "seconds": times}))
    return 0


def norm(v):
    v = unicodedata.normalize("NFKC", v)
    return re.sub(r"[\s\-]", "", v).lower()


def fmt_of(rel):
    if rel.startswith("hostile/"):
        return "hostile"
    name = os.path.basename(rel).lower()
    return name.rsplit(".", 1)[-1] if "." in name else "(none)"


def scan_json(binary, paths, timeout):
    """`ping32dlp scan --json --show-values` -> {path: object}; raises on a timeout."""
    p = subprocess.run(
        [binary, "scan", "--json", "--show-values", *paths],
        capture_output=True,
        timeout=timeout,
    )
    out = {}
    for line in p.stdout.decode("utf-8", "replace").splitlines():
        if line.strip():
            o = json.loads(line)
            out[o["path"]] = o
    return p.returncode, out, p.stderr.decode("utf-8", "replace")


def found_pairs(obj):
    return [(f["detector"], norm(f.get("value", ""))) for f in obj.get("findings", [])]


def score(want, pairs):
    """(planted, found, decoys) for one file's expectations and one tool's findings."""
    absent = {(a["detector"], norm(a["value"])) for a in want.get("absent", [])}
    decoys = len({p for p in pairs if p in absent})
    if "counts" in want:
        planted = found = 0
        for det, n in want["counts"].items():
            got = sum(1 for d, v in pairs if d == det and (d, v) not in absent)
            planted += n
            found += min(n, got)
        return planted, found, decoys
    plant = {(f["detector"], norm(f["value"])) for f in want.get("findings", [])}
    return len(plant), len(plant & set(pairs)), decoys


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--one", nargs=3, metavar=("PEER", "FILE", "OUT"))
    ap.add_argument("--warm", nargs=3, metavar=("PEER", "LIST", "ROUNDS"))
    ap.add_argument("--bin")
    ap.add_argument("--corpus", default="corpus/extract")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--timeout", type=float, default=60.0)
    ap.add_argument("--out")
    a = ap.parse_args()
    if a.one:
        return child_one(*a.one)
    if a.warm:
        return child_warm(a.warm[0], a.warm[1], int(a.warm[2]))
    if not a.bin:
        ap.error("--bin is required")

    expected = json.load(open(os.path.join(a.corpus, "expected.json"), encoding="utf-8"))
    rels = sorted(expected)
    if a.quick:
        rels = [r for r in QUICK_FILES if r in expected]
        a.rounds = 1
    work = tempfile.mkdtemp(prefix="extract-peers-")
    try:
        return compare(a, expected, rels, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def compare(a, expected, rels, work):
    me = os.path.abspath(__file__)
    status = {t: {} for t in TOOLS}  # tool -> rel -> ok | failed | reported
    pairs = {t: {} for t in TOOLS}  # tool -> rel -> [(detector, value)]
    notes = {t: {} for t in TOOLS}  # tool -> rel -> error text
    for i, rel in enumerate(rels):
        path = os.path.join(a.corpus, rel)
        try:
            rc, objs, err = scan_json(a.bin, [path], a.timeout)
            o = objs.get(path)
            if rc == 2 or o is None or o.get("errors"):
                status["ping32dlp"][rel] = "failed"
                notes["ping32dlp"][rel] = (err or str(o and o.get("errors")))[:200]
            else:
                status["ping32dlp"][rel] = "reported" if o.get("unscannable") else "ok"
                pairs["ping32dlp"][rel] = found_pairs(o)
        except subprocess.TimeoutExpired:
            status["ping32dlp"][rel] = "failed"
            notes["ping32dlp"][rel] = "timeout"
        for peer in PEERS:
            d = os.path.join(work, peer)
            os.makedirs(d, exist_ok=True)
            out = os.path.join(d, f"{i:04d}.txt")
            try:
                p = subprocess.run(
                    [sys.executable, me, "--one", peer, path, out],
                    capture_output=True,
                    timeout=a.timeout,
                )
                line = (p.stdout.decode("utf-8", "replace").strip().splitlines() or ["{}"])[-1]
                try:
                    res = json.loads(line)
                except ValueError:
                    res = {}
                if p.returncode == 0 and "chars" in res:
                    status[peer][rel] = "ok"
                else:
                    msg = res.get("error") or p.stderr.decode("utf-8", "replace")[-300:] or (
                        f"exit {p.returncode}"
                    )
                    status[peer][rel] = "reported" if REASON.search(msg) else "failed"
                    notes[peer][rel] = msg.replace("\n", " ")[:200]
            except subprocess.TimeoutExpired:
                status[peer][rel] = "failed"
                notes[peer][rel] = f"timeout {a.timeout:.0f} s"
    # The project's detectors over each peer's text, one scan per peer.
    for pi, peer in enumerate(PEERS):
        d = os.path.join(work, peer)
        texts = sorted(os.listdir(d)) if os.path.isdir(d) else []
        if not texts:
            continue
        _rc, objs, _err = scan_json(a.bin, [os.path.join(d, t) for t in texts], 600)
        for path, o in objs.items():
            rel = rels[int(os.path.basename(path)[:4])]
            pairs[peer][rel] = found_pairs(o)

    # Speed: the files every tool read (no hostile ones), warm.
    same = [
        r
        for r in rels
        if not r.startswith("hostile/") and all(status[t].get(r) == "ok" for t in TOOLS)
    ]
    # speed: group -> tool -> (bytes, median seconds); groups: "all", then each format.
    groups = [("all", same)]
    if not a.quick:
        groups += [
            (f, [r for r in same if fmt_of(r) == f])
            for f in sorted({fmt_of(r) for r in same})
        ]
    speed = {}
    for gi, (name, members) in enumerate(groups):
        if members:
            paths = [os.path.join(a.corpus, r) for r in members]
            speed[name] = warm_all(a, me, paths, os.path.join(work, f"warm-{gi}.txt"))
    report = render(a, expected, rels, status, pairs, notes, same, speed)
    print(report)
    if a.out:
        with open(a.out, "w", encoding="utf-8") as f:
            f.write(report + "\n")
    return check(a, expected, rels, status, pairs, speed)


def warm_all(a, me, paths, listfile):
    """tool -> (bytes, median seconds per round) over `paths`, each tool in one process."""
    out = {}
    args = [a.bin, "bench", "--repeat", str(a.rounds), "--inspect"]
    for p in paths:
        args += ["--input", p]
    j = json.loads(subprocess.run(args, capture_output=True, check=True, timeout=1800).stdout)
    out["ping32dlp"] = (j["bytes"], j["seconds_median"])
    with open(listfile, "w", encoding="utf-8") as f:
        f.write("\n".join(paths) + "\n")
    for peer in PEERS:
        p = subprocess.run(
            [sys.executable, me, "--warm", peer, listfile, str(a.rounds)],
            capture_output=True,
            timeout=3600,
        )
        if p.returncode == 0:
            j = json.loads(p.stdout.decode().strip().splitlines()[-1])
            out[peer] = (j["bytes"], statistics.median(j["seconds"]))
        else:
            print(f"{peer} warm run failed: {p.stderr.decode()[-500:]}", file=sys.stderr)
    return out


def table_head(*columns):
    """The first two lines of a Markdown table."""
    return ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]


def render(a, expected, rels, status, pairs, notes, same, speed):
    formats = sorted({fmt_of(r) for r in rels}, key=lambda f: (f == "hostile", f))
    bin_version = subprocess.run([a.bin, "--version"], capture_output=True).stdout.decode().strip()
    cpu = next(
        (l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")),
        platform.processor(),
    )
    versions = ", ".join(f"{p} {importlib.metadata.version(p)}" for p in PEERS)
    out = [
        f"Extraction peers, {datetime.date.today().isoformat()}: {bin_version}, {versions}; "
        f"{cpu}, {os.cpu_count()} cores; corpus {a.corpus} ({len(rels)} files"
        f"{', quick mode' if a.quick else ''}).",
        "",
        "Reading, files per format (one process per file, timeout "
        f"{a.timeout:.0f} s): read / failed / reported a reason; silent = files with something "
        "unreadable inside (encrypted, over a limit) passed without a word.",
        "",
        *table_head(
            "format",
            "files",
            "with unreadable parts",
            *(f"{t} read / failed / reported / silent" for t in TOOLS),
        ),
    ]
    totals = {t: [0, 0, 0, 0] for t in TOOLS}
    values = {t: [0, 0] for t in TOOLS}
    rows_v = []
    for f in formats:
        rs = [r for r in rels if fmt_of(r) == f]
        unread = [r for r in rs if expected[r].get("unscannable")]
        cells = []
        for t in TOOLS:
            st = [status[t].get(r) for r in rs]
            c = [
                st.count("ok"),
                st.count("failed"),
                st.count("reported"),
                sum(1 for r in unread if status[t].get(r) == "ok"),
            ]
            totals[t] = [x + y for x, y in zip(totals[t], c)]
            cells.append(" / ".join(map(str, c)))
        out.append(f"| {f} | {len(rs)} | {len(unread)} | " + " | ".join(cells) + " |")
        planted = sum(score(expected[r], [])[0] for r in rs)
        vc = []
        for t in TOOLS:
            f_sum = d_sum = 0
            for r in rs:
                _, fnd, dec = score(expected[r], pairs[t].get(r, []))
                f_sum, d_sum = f_sum + fnd, d_sum + dec
            values[t][0] += f_sum
            values[t][1] += d_sum
            vc.append(f"{f_sum}" + (f" ({d_sum} decoys)" if d_sum else ""))
        if planted:
            rows_v.append(f"| {f} | {planted} | " + " | ".join(vc) + " |")
    n_unread = sum(1 for r in rels if expected[r].get("unscannable"))
    out.append(
        f"| all | {len(rels)} | {n_unread} | "
        + " | ".join(" / ".join(map(str, totals[t])) for t in TOOLS)
        + " |"
    )
    all_planted = sum(score(expected[r], [])[0] for r in rels)
    out += [
        "",
        "Values: planted values found by ping32dlp's detectors (over each peer's text; "
        "ping32dlp's own pipeline over the file).",
        "",
        *table_head("format", "planted", *TOOLS),
        *rows_v,
        f"| all | {all_planted} | "
        + " | ".join(
            f"{values[t][0]}" + (f" ({values[t][1]} decoys)" if values[t][1] else "")
            for t in TOOLS
        )
        + " |",
        "",
    ]
    if speed:
        total = speed["all"]["ping32dlp"][0]
        out += [
            f"Speed, warm: one process per tool over the {len(same)} files every tool read "
            f"({total:,} bytes), a warm-up round then {a.rounds} timed "
            f"round{'s' if a.rounds > 1 else ''}, median; MB/s of input file bytes. "
            "ping32dlp: extraction and detection (`ping32dlp bench --inspect`); peers: "
            "extraction alone, default configuration, from Python. Per format: the same, over "
            "that format's files.",
            "",
            *table_head(
                "files", "bytes", "ping32dlp MB/s", *(f"{p} MB/s (ping32dlp is ×)" for p in PEERS)
            ),
        ]
        for name, tools in speed.items():
            def mbs(t):
                b, sec = tools[t]
                return b / 1e6 / sec if sec > 0 else float("inf")

            mine = mbs("ping32dlp") if "ping32dlp" in tools else None
            cells = []
            for p in PEERS:
                if p in tools and mine is not None:
                    cells.append(f"{mbs(p):.2f} ({mine / mbs(p):.1f}×)")
                else:
                    cells.append("-")
            label = f"**{name}**" if name == "all" else name
            out.append(
                f"| {label} | {tools['ping32dlp'][0]:,} | {mine:.2f} | " + " | ".join(cells) + " |"
            )
        out.append("")
    failures = [
        f"- {t}: {r}: {notes[t][r]}" for t in TOOLS for r in rels if r in notes[t]
    ]
    if failures:
        out += ["Errors and reasons given:", "", *failures]
    return "\n".join(out)


def check(a, expected, rels, status, pairs, speed):
    """Exit status: the run must have worked (every tool ran, ping32dlp found what was planted)."""
    bad = []
    for t in TOOLS:
        if not any(status[t].get(r) == "ok" for r in rels):
            bad.append(f"{t} read no file")
        if t not in speed.get("all", {}):
            bad.append(f"no speed for {t}")
    for r in rels:
        p, f, d = score(expected[r], pairs["ping32dlp"].get(r, []))
        if f < p or d:
            bad.append(f"ping32dlp found {f} of {p} planted values ({d} decoys) in {r}")
        if expected[r].get("unscannable") and status["ping32dlp"].get(r) != "reported":
            bad.append(f"ping32dlp did not report what it could not read in {r}")
    for b in bad:
        print(f"extract-peers: {b}", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
