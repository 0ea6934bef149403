#!/usr/bin/env python3
"""ABI check of libping32dlp: the header and the exported symbols against the last release's.

    scripts/abi-check.py --baseline ffi/abi/0.1.0 --header include/ping32dlp.h --so LIB.so
    scripts/abi-check.py --self-test      (shows that each kind of break is caught)

The baseline folder holds the released `ping32dlp.h` and `SONAME`. A break is a function that
is gone or whose return or parameter types changed, a constant (`#define` or enum value) that is
gone or changed, or a struct whose fields changed; additions are fine. A break fails the check
unless the library's SONAME (read from the .so with readelf) differs from the baseline's. Every
function of the baseline must also be exported by the .so. At a release, copy the header and
the SONAME into ffi/abi/<version>/ (the newest folder is the baseline).

Parameter names and comments do not matter; a change of meaning without a change of types cannot
be seen here and is the CHANGELOG's to state (with a SONAME bump).
"""

import argparse
import os
import re
import subprocess
import sys
import tempfile

VERSION_MACROS = {"PING32DLP_VERSION_MAJOR", "PING32DLP_VERSION_MINOR", "PING32DLP_VERSION_PATCH"}


def strip(text):
    """The header without comments and preprocessor lines."""
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    text = re.sub(r"//[^\n]*", " ", text)
    return "\n".join(l for l in text.splitlines() if not l.lstrip().startswith("#"))


def split_top(s, sep=","):
    """Splits at `sep` outside parentheses."""
    out, depth, cur = [], 0, ""
    for ch in s:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == sep and depth == 0:
            out.append(cur)
            cur = ""
        else:
            cur += ch
    out.append(cur)
    return out


def norm_type(t):
    t = re.sub(r"\s*\*\s*", " * ", t)
    return re.sub(r"\s+", " ", t).strip()


def param_type(p):
    """A parameter's type without its name (also inside a function pointer: `(*name)`)."""
    p = p.strip()
    if "(" in p:
        p = re.sub(r"\(\s*\*\s*\w+\s*\)", "(*)", p, count=1)
        return norm_type(p)
    toks = re.findall(r"\w+|\*|\[.*?\]", p)
    if len(toks) >= 2 and re.fullmatch(r"\w+", toks[-1]) and toks[-1] not in {"void", "char", "int"}:
        p = p[: p.rfind(toks[-1])]
    return norm_type(p)


def parse(text):
    """{'functions': {name: signature}, 'constants': {name: value}, 'structs': {name: fields}}."""
    consts = {}
    for name, value in re.findall(r"^#define (PING32DLP_\w+) (.+)$", text, flags=re.M):
        if name not in VERSION_MACROS:
            consts[name] = value.strip()
    body = strip(text)
    for name, value in re.findall(r"\b(PING32DLP_\w+)\s*=\s*(-?\w+)", body):
        consts[name] = value
    structs = {}
    for name, fields in re.findall(r"\bstruct\s+(\w+)\s*\{([^}]*)\}", body):
        structs[name] = [norm_type(f) for f in fields.split(";") if f.strip()]
    # Function pointer types (callbacks) count as structs: their shape is ABI.
    for ret, name, params in re.findall(r"typedef\s+([^;()]+?)\s*\(\s*\*\s*(\w+)\s*\)\s*\(([^;]*?)\)\s*;", body):
        structs[name] = [norm_type(ret)] + [param_type(p) for p in split_top(params)]
    funcs = {}
    for m in re.finditer(r"\b(ping32dlp_\w+)\s*\(", body):
        start, depth, i = m.end(), 1, m.end()
        while i < len(body) and depth:
            depth += {"(": 1, ")": -1}.get(body[i], 0)
            i += 1
        if not body[i:].lstrip().startswith(";"):
            continue  # not a declaration
        params = body[start : i - 1]
        prev = max(body.rfind(";", 0, m.start()), body.rfind("}", 0, m.start()), body.rfind("{", 0, m.start()))
        ret = norm_type(body[prev + 1 : m.start()])
        if not ret or "=" in ret:
            continue
        types = [param_type(p) for p in split_top(params)] if params.strip() else []
        funcs[m.group(1)] = f"{ret} ({', '.join(types)})"
    return {"functions": funcs, "constants": consts, "structs": structs}


def breaks(old, new):
    """What `new` breaks of `old`, one line each."""
    out = []
    for kind in ("functions", "constants", "structs"):
        for name, sig in old[kind].items():
            if name not in new[kind]:
                out.append(f"{kind[:-1]} {name} removed")
            elif new[kind][name] != sig:
                out.append(f"{kind[:-1]} {name} changed: {sig} -> {new[kind][name]}")
    return out


def soname(so):
    out = subprocess.run(["readelf", "-d", so], capture_output=True, text=True, check=True).stdout
    m = re.search(r"SONAME.*\[(.+?)\]", out)
    return m.group(1) if m else ""


def exported(so):
    out = subprocess.run(["nm", "-D", "--defined-only", so], capture_output=True, text=True, check=True).stdout
    return {l.split()[-1] for l in out.splitlines() if " T " in l}


def check(baseline_dir, header, so):
    with open(os.path.join(baseline_dir, "ping32dlp.h"), encoding="utf-8") as f:
        old = parse(f.read())
    with open(os.path.join(baseline_dir, "SONAME"), encoding="utf-8") as f:
        old_soname = f.read().strip()
    with open(header, encoding="utf-8") as f:
        new = parse(f.read())
    if len(old["functions"]) < 10 or len(new["functions"]) < 10:
        return ["the header parser found almost no functions: is this ping32dlp.h?"], None
    problems = breaks(old, new)
    if so:
        missing = sorted(set(old["functions"]) - exported(so))
        problems += [f"function {n} not exported by {so}" for n in missing]
        new_soname = soname(so)
    else:
        new_soname = old_soname
    added = sorted(set(new["functions"]) - set(old["functions"]))
    if problems and new_soname != old_soname:
        print(f"abi-check: {len(problems)} breaks, allowed by the SONAME bump {old_soname} -> {new_soname}")
        return [], added
    return problems, added


def self_test(header):
    """Each kind of break, made in a copy of the header, must be caught; the header against
    itself and with an added function must pass."""
    text = open(header, encoding="utf-8").read()
    base = tempfile.mkdtemp(prefix="abi-base-")
    with open(os.path.join(base, "ping32dlp.h"), "w", encoding="utf-8") as f:
        f.write(text)
    with open(os.path.join(base, "SONAME"), "w", encoding="utf-8") as f:
        f.write("libping32dlp.so.0\n")
    cases = {
        "unchanged": (text, False),
        "a function added": (text.replace("#endif  /* PING32DLP_H */", "void ping32dlp_new_thing(int x);\n#endif  /* PING32DLP_H */")
                             if "#endif  /* PING32DLP_H */" in text else text + "\nvoid ping32dlp_new_thing(int x);\n", False),
        "a parameter renamed": (text.replace("size_t *len_out);", "size_t *length_out);", 1), False),
        "a function removed": (re.sub(r"\nvoid ping32dlp_engine_free\([^;]*;", "\n", text), True),
        "a parameter type changed": (text.replace("size_t *len_out);", "uint32_t *len_out);", 1), True),
        "a return type changed": (re.sub(r"\nsize_t ping32dlp_engine_detector_count\(", "\nuint32_t ping32dlp_engine_detector_count(", text), True),
        "a parameter added": (text.replace("void ping32dlp_engine_free(struct ping32dlp_engine *engine);",
                                           "void ping32dlp_engine_free(struct ping32dlp_engine *engine, int flags);"), True),
        "a callback type changed": (re.sub(r"(typedef void \(\*ping32dlp_alert_callback\)\([^;]*?)size_t", r"\1uint32_t", text), True),
        "an enum value changed": (text.replace("PING32DLP_ERR_IO = 300", "PING32DLP_ERR_IO = 399"), True),
        "a constant changed": (text.replace("#define PING32DLP_CTX_USER 2", "#define PING32DLP_CTX_USER 22"), True),
        "a struct field changed": (re.sub(r"(struct ping32dlp_str \{[^}]*?)size_t len;", r"\1uint32_t len;", text), True),
    }
    failed = 0
    for what, (mutated, should_break) in cases.items():
        if mutated == text and what != "unchanged":
            print(f"self-test: could not make '{what}' (the header changed shape)")
            failed += 1
            continue
        with tempfile.NamedTemporaryFile("w", suffix=".h", delete=False, encoding="utf-8") as f:
            f.write(mutated)
        problems, _ = check(base, f.name, None)
        os.unlink(f.name)
        if bool(problems) != should_break:
            print(f"self-test: '{what}': expected {'a break' if should_break else 'no break'}, got {problems}")
            failed += 1
    print(f"abi-check self-test: {len(cases) - failed}/{len(cases)} cases as expected")
    return failed == 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline", help="folder with the released ping32dlp.h and SONAME")
    ap.add_argument("--header", default="include/ping32dlp.h")
    ap.add_argument("--so", help="the built libping32dlp.so (SONAME and exported symbols)")
    ap.add_argument("--self-test", action="store_true")
    a = ap.parse_args()
    if a.self_test:
        sys.exit(0 if self_test(a.header) else 1)
    if not a.baseline:
        dirs = sorted(os.listdir("ffi/abi"), key=lambda v: [int(x) for x in re.findall(r"\d+", v)])
        a.baseline = os.path.join("ffi/abi", dirs[-1])
    problems, added = check(a.baseline, a.header, a.so)
    if problems:
        print(f"abi-check: the ABI of {a.baseline} is broken (bump the SONAME, or undo):")
        for p in problems:
            print("  " + p)
        sys.exit(1)
    print(f"abi-check: compatible with {a.baseline}; {len(added)} functions added since")


if __name__ == "__main__":
    main()
