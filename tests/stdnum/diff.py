#!/usr/bin/env python3
"""Differential test of ping32dlp's validators against python-stdnum.

  diff.py PING32DLP_BIN [--n 10000] [--seed 1]

For each validator (Luhn, My Number, Corporate Number, IBAN), generates --n inputs: random digit
strings of many lengths, values with a correct check digit, and those values with one digit
changed, two digits swapped, a digit dropped or added; written in ASCII, in full-width digits, and
with spaces or hyphens. `ping32dlp validate KIND` and python-stdnum must agree on every input.
IBAN is compared with stdnum's registry-structure and mod 97 checks (check_country=False): the
national check digits inside some BBANs are outside what ping32dlp checks.
Exit 1 and the first disagreements on any mismatch.
"""
import argparse
import random
import subprocess
import sys

from stdnum import iban, luhn
from stdnum.jp import cn, in_
from stdnum.util import clean

FW = str.maketrans("0123456789", "０１２３４５６７８９")


def mutate(rng, s):
    """A near miss of a valid value: change, swap, drop or add one digit."""
    d = list(s)
    k = rng.randrange(4)
    i = rng.randrange(len(d))
    if k == 0:
        d[i] = rng.choice("0123456789".replace(d[i], "") if d[i].isdigit() else "0123456789")
    elif k == 1 and len(d) > 1:
        j = min(i + 1, len(d) - 1)
        d[i], d[j] = d[j], d[i]
    elif k == 2 and len(d) > 1:
        del d[i]
    else:
        d.insert(i, rng.choice("0123456789"))
    return "".join(d)


def dress(rng, s, group):
    """Write a value the way people do: full-width, grouped with spaces or hyphens."""
    k = rng.random()
    if k < 0.2:
        s = s.translate(FW)
    if rng.random() < 0.3:
        sep = rng.choice([" ", "-"])
        s = sep.join(s[i:i + group] for i in range(0, len(s), group))
    return s


def gen_luhn(rng):
    k = rng.random()
    n = rng.randint(1, 24)
    body = "".join(rng.choice("0123456789") for _ in range(n))
    if k < 0.4:
        body = body + luhn.calc_check_digit(body)
    elif k < 0.7:
        body = mutate(rng, body + luhn.calc_check_digit(body))
    return dress(rng, body, 4)


def gen_mynumber(rng):
    body = "".join(rng.choice("0123456789") for _ in range(11))
    full = body + in_.calc_check_digit(body)
    k = rng.random()
    v = full if k < 0.4 else mutate(rng, full) if k < 0.8 else "".join(rng.choice("0123456789") for _ in range(rng.randint(10, 14)))
    return dress(rng, v, 4)


def gen_corpnum(rng):
    body = str(rng.randint(1, 9)) + "".join(rng.choice("0123456789") for _ in range(11))
    full = cn.calc_check_digit(body) + body
    k = rng.random()
    v = full if k < 0.4 else mutate(rng, full) if k < 0.8 else "".join(rng.choice("0123456789") for _ in range(13))
    return dress(rng, v, 4)


def gen_iban(rng, countries):
    cc = rng.choice(countries)
    info = iban._ibandb.info(cc + "00")[0][1]
    bban = ""
    for n, kind in __import__("re").findall(r"(\d+)!([nac])", info["bban"]):
        pool = {"n": "0123456789", "a": "ABCDEFGHIJKLMNOPQRSTUVWXYZ", "c": "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"}[kind]
        bban += "".join(rng.choice(pool) for _ in range(int(n)))
    full = cc + iban.calc_check_digits(cc + "00" + bban) + bban
    k = rng.random()
    if k < 0.4:
        v = full
    elif k < 0.8:
        v = mutate(rng, full)
    else:
        v = cc + "".join(rng.choice("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ") for _ in range(len(full) - 2))
    if rng.random() < 0.3:
        v = " ".join(v[i:i + 4] for i in range(0, len(v), 4))
    return v


def stdnum_iban(v):
    try:
        iban.validate(v, check_country=False)
        return True
    except Exception:
        return False


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("binary")
    ap.add_argument("--n", type=int, default=10000)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    rng = random.Random(a.seed)
    countries = sorted({line.split()[0] for line in open(iban._ibandb.__class__.__module__ and __import__("os").path.join(__import__("os").path.dirname(iban.__file__), "iban.dat"), encoding="utf-8") if line[:2].isalpha() and line[2] == " "})
    cases = {
        # stdnum's luhn module takes bare digits; its jp and iban modules clean their input.
        "luhn": ([gen_luhn(rng) for _ in range(a.n)], lambda v: luhn.is_valid(clean(v, " -"))),
        "my_number": ([gen_mynumber(rng) for _ in range(a.n)], in_.is_valid),
        "corporate_number": ([gen_corpnum(rng) for _ in range(a.n)], cn.is_valid),
        "iban": ([gen_iban(rng, countries) for _ in range(a.n)], stdnum_iban),
    }
    failed = False
    for kind, (values, oracle) in cases.items():
        out = subprocess.run([a.binary, "validate", kind], input="\n".join(values) + "\n", capture_output=True, text=True, check=True)
        ours = [line == "1" for line in out.stdout.splitlines()]
        assert len(ours) == len(values), (kind, len(ours), len(values))
        theirs = [bool(oracle(v)) for v in values]
        diff = [(v, o, t) for v, o, t in zip(values, ours, theirs) if o != t]
        valid = sum(theirs)
        print("%-17s %6d inputs, %5d valid per stdnum, %d disagreements" % (kind, len(values), valid, len(diff)))
        for v, o, t in diff[:10]:
            print("   %r: ping32dlp=%s stdnum=%s" % (v, o, t))
        failed |= bool(diff) or valid == 0 or valid == len(values)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
