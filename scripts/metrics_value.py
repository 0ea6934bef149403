#!/usr/bin/env python3
"""Reads a ping32dlp daemon's metrics listener, for the integration suites.

    metrics_value.py URL                  -> "STATUS BODY" of any path (/healthz, /readyz)
    metrics_value.py URL/metrics NAME [LABEL=VALUE ...]
                                          -> the sum of NAME's samples having those labels,
                                             or "none" when there is no such sample
    metrics_value.py --check BASE CHANNEL POLICY
                                          -> what the proxy and ICAP suites expect after their
                                             traffic: mail inspected on CHANNEL, some blocked,
                                             one good and one broken reload, /readyz ready
                                             with POLICY; exit status 1 otherwise
"""
import re
import sys
import urllib.error
import urllib.request

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def fetch(url):
    try:
        r = urllib.request.urlopen(url, timeout=10)
        return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except OSError as e:
        return 0, str(e)


def value(body, name, want):
    total, seen = 0.0, False
    for line in body.splitlines():
        m = SAMPLE.match(line)
        if not m or m.group(1) != name:
            continue
        labels = dict(LABEL.findall(m.group(2) or ""))
        if all(labels.get(k) == v for k, v in want.items()):
            total += float(m.group(3))
            seen = True
    return total if seen else None


def check(base, channel, policy):
    _, body = fetch(base + "/metrics")
    inspected = value(body, "ping32dlp_inspected_total", {"channel": channel})
    blocked = value(body, "ping32dlp_inspected_total", {"channel": channel, "action": "block"})
    ok = value(body, "ping32dlp_reloads_total", {"outcome": "ok"})
    failed = value(body, "ping32dlp_reloads_total", {"outcome": "failed"})
    status, ready = fetch(base + "/readyz")
    ready = ready.strip()
    text = "metrics: %s inspected on %s (%s blocked), reloads ok/failed %s/%s; /readyz: %s %s" % (
        inspected, channel, blocked, ok, failed, status, ready)
    good = (inspected or 0) > 0 and (blocked or 0) >= 1 and (ok, failed) == (1, 1) \
        and status == 200 and ready.startswith("ready: policy %s " % policy)
    print(text)
    sys.exit(0 if good else 1)


def main():
    if sys.argv[1] == "--check":
        check(*sys.argv[2:5])
    status, body = fetch(sys.argv[1])
    if len(sys.argv) == 2:
        print(status, body.strip())
        return
    v = value(body, sys.argv[2], dict(a.split("=", 1) for a in sys.argv[3:]))
    print("none" if v is None else "%g" % v)


if __name__ == "__main__":
    main()
