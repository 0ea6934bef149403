#!/usr/bin/env python3
"""Recall of `ping32dlp scan` against the peers harness' planted values (truth.jsonl).

  scripts/peers_recall.py BIN CORPUS_DIR [--dictionary FILE] [--limit BYTES]

Scans mixed.txt (and clean.txt for false positives) with --json --show-values, maps detector ids
to the peers' types like ../shared/peers/runners/ping32dlp_run.py does, and prints per type:
found/planted and the values missed. Exit 1 if anything planted was missed.
"""
import argparse, bisect, collections, json, os, subprocess, sys

TYPES = {"email_address": "email", "confidential_marking": "jp_confidential", "private_key": "pem_private_key",
         "jp_phone": "phone", "keyword": "keyword", "dictionary": "keyword"}

def peer_type(d):
    if d in TYPES: return TYPES[d]
    if d.startswith("dict") or d.startswith("keyword"): return "keyword"
    return d

def scan(binary, path, extra):
    out = subprocess.run([binary, "scan", "--json", "--show-values", *extra, path], capture_output=True, text=True)
    rows = []
    for line in out.stdout.splitlines():
        for f in json.loads(line)["findings"]:
            rows.append((peer_type(f["detector"]), f["start"], f["end"], f["value"], f["confidence"]))
    return rows

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("binary"); ap.add_argument("corpus")
    ap.add_argument("--dictionary"); ap.add_argument("--limit", type=int, default=0)
    a = ap.parse_args()
    extra = ["--dictionary", a.dictionary] if a.dictionary else []
    mixed = os.path.join(a.corpus, "mixed.txt"); clean = os.path.join(a.corpus, "clean.txt")
    if a.limit:
        for src in (mixed, clean):
            dst = "/tmp/peers-recall-" + os.path.basename(src)
            with open(src, "rb") as f, open(dst, "wb") as g: g.write(f.read(a.limit))
        mixed, clean = "/tmp/peers-recall-mixed.txt", "/tmp/peers-recall-clean.txt"
    nbytes = os.path.getsize(mixed)
    truth = [json.loads(l) for l in open(os.path.join(a.corpus, "truth.jsonl"), encoding="utf-8")]
    truth = [t for t in truth if t["offset"] + t["length"] <= nbytes]
    if not a.dictionary:
        truth = [t for t in truth if t["type"] != "keyword"]
    else:
        truth = [t for t in truth if t["type"] in ("keyword", "jp_confidential")]
    rows = scan(a.binary, mixed, extra)
    by = collections.defaultdict(list)
    for ty, s, e, v, c in rows:
        by[ty].append((s, e))
        if ty == "keyword": by["jp_confidential"].append((s, e))
    for ty in by: by[ty].sort()
    hit, tot, missed = collections.Counter(), collections.Counter(), collections.defaultdict(list)
    for t in truth:
        a0, b0 = t["offset"], t["offset"] + t["length"]
        tot[t["type"]] += 1
        ms = by.get(t["type"], []); st = [m[0] for m in ms]
        i = bisect.bisect_left(st, b0)
        if any(ms[j][1] > a0 for j in range(i - 1, max(-1, i - 50), -1)):
            hit[t["type"]] += 1
        else:
            missed[t["type"]].append(t["value"])
    planted = set((t["offset"]) for t in truth)
    extra_by = collections.Counter(ty for ty, s, e, v, c in rows)
    print("%-22s %9s %8s" % ("type", "found", "reported"))
    for ty in sorted(tot):
        print("%-22s %4d/%-4d %8d  %s" % (ty, hit[ty], tot[ty], extra_by[ty], "; ".join(missed[ty][:4])))
    crow = scan(a.binary, clean, extra)
    cc = collections.Counter(ty for ty, s, e, v, c in crow)
    print("clean (false positives):", dict(cc))
    for ty, s, e, v, c in crow[:12]:
        print("   fp", ty, c, repr(v))
    sys.exit(1 if sum(hit.values()) < len(truth) else 0)

main()
