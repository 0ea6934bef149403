#!/usr/bin/env python3
"""SMTP client for the milter and proxy tests (Python's smtplib, a real client).

  smtp_client.py send --port P [--tls starttls|implicit --ca CA] [--user U --password PW]
                      --from A --to B [--to C] (--eml FILE | --subject S --body B [--attach FILE]
                      [--pad-bytes N]) [--save FILE]
  smtp_client.py many --port P --n 100 [--concurrency C] (same message options as send)

`send` prints `RESULT <code> <text>` (250 ... or the refusal) and, with --save, writes the exact
message bytes it sent. `many` sends N messages on N concurrent connections and prints
`RESULT ok=<n> failed=<n> seconds=<s>` and per-message latencies as `LAT <ms>`. With
`--port-b Q`, every second message goes to port Q instead and its latency is printed as
`LATB <ms>`: two listeners measured in the same seconds, under the same load.
"""
import argparse
import email.policy
import email.utils
import smtplib
import ssl
import sys
import threading
import time
from email.message import EmailMessage


def build(a):
    if a.eml:
        with open(a.eml, "rb") as f:
            return f.read()
    m = EmailMessage(policy=email.policy.SMTP)
    m["From"] = a.sender
    m["To"] = ", ".join(a.to)
    m["Subject"] = a.subject
    m["Message-ID"] = f"<{time.time_ns()}@client.dlp.test>"
    m["Date"] = email.utils.formatdate(localtime=True)  # else Postfix adds one
    body = a.body
    if a.pad_bytes:
        line = "lorem ipsum dolor sit amet, consectetur adipiscing elit 0123456789\n"
        body = line * (a.pad_bytes // len(line)) + body
    m.set_content(body)
    for path in a.attach or []:
        with open(path, "rb") as f:
            data = f.read()
        name = path.rsplit("/", 1)[-1]
        m.add_attachment(data, maintype="application", subtype="octet-stream", filename=name)
    if a.attach_random:
        import os
        m.add_attachment(os.urandom(a.attach_random), maintype="application",
                         subtype="octet-stream", filename="data.bin")
    return m.as_bytes()


def connect(a):
    if a.tls == "implicit":
        ctx = ssl.create_default_context(cafile=a.ca)
        s = smtplib.SMTP_SSL("127.0.0.1", a.port, context=ctx, timeout=600)
        s.ehlo("client.dlp.test")
    else:
        s = smtplib.SMTP("127.0.0.1", a.port, timeout=600)
        s.ehlo("client.dlp.test")
        if a.tls == "starttls":
            s.starttls(context=ssl.create_default_context(cafile=a.ca))
            s.ehlo("client.dlp.test")
    if a.user:
        s.login(a.user, a.password)
    return s


def send_one(a, raw):
    try:
        s = connect(a)
    except smtplib.SMTPResponseException as e:  # AUTH or STARTTLS refused
        return f"RESULT {e.smtp_code} {e.smtp_error.decode(errors='replace')}"
    try:
        try:
            resp = s.sendmail(a.sender, a.to, raw)
            if resp:
                return f"RESULT partial {resp}"
            code, text = s.noop()
            # smtplib hides the DATA reply; fetch it from the last response
            return "RESULT 250 " + (s.last_data_reply or "")
        except smtplib.SMTPDataError as e:
            return f"RESULT {e.smtp_code} {e.smtp_error.decode(errors='replace')}"
        except smtplib.SMTPSenderRefused as e:
            return f"RESULT {e.smtp_code} {e.smtp_error.decode(errors='replace')}"
        except smtplib.SMTPRecipientsRefused as e:
            code, text = list(e.recipients.values())[0]
            return f"RESULT {code} {text.decode(errors='replace')}"
    finally:
        try:
            s.quit()
        except Exception:
            pass


# Remember the reply to DATA (smtplib's sendmail returns only refused recipients).
_orig_data = smtplib.SMTP.data


def _data(self, msg):
    code, text = _orig_data(self, msg)
    self.last_data_reply = f"{text.decode(errors='replace')}"
    return code, text


smtplib.SMTP.data = _data
smtplib.SMTP.last_data_reply = None


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    for name in ("send", "many"):
        q = sub.add_parser(name)
        q.add_argument("--port", type=int, required=True)
        q.add_argument("--tls", choices=["none", "starttls", "implicit"], default="none")
        q.add_argument("--ca")
        q.add_argument("--user")
        q.add_argument("--password")
        q.add_argument("--from", dest="sender", default="alice@dlp.test")
        q.add_argument("--to", action="append", default=[])
        q.add_argument("--eml")
        q.add_argument("--subject", default="test")
        q.add_argument("--body", default="hello\n")
        q.add_argument("--attach", action="append")
        q.add_argument("--attach-random", type=int, default=0)
        q.add_argument("--pad-bytes", type=int, default=0)
        q.add_argument("--save")
        q.add_argument("--n", type=int, default=1)
        q.add_argument("--concurrency", type=int, default=0, help="many: connections at a time (default: all)")
        q.add_argument("--port-b", type=int, help="many: send every second message to this port (LATB)")
    a = p.parse_args()
    if not a.to:
        a.to = ["bob@dlp.test"]
    if a.cmd == "send":
        raw = build(a)
        if a.save:
            with open(a.save, "wb") as f:
                f.write(raw)
        print(send_one(a, raw))
        return
    results, lats = [], []
    lock = threading.Lock()

    def worker(i):
        b = argparse.Namespace(**vars(a))
        b.subject = f"{a.subject} {i}"
        on_b = a.port_b is not None and i % 2 == 1
        if on_b:
            b.port = a.port_b
        raw = build(b)
        t0 = time.perf_counter()
        try:
            r = send_one(b, raw)
        except Exception as e:  # counted as a failure
            r = f"RESULT error {e}"
        with lock:
            results.append(r)
            lats.append(("LATB" if on_b else "LAT", (time.perf_counter() - t0) * 1000))

    todo = list(range(a.n))

    def runner():
        while True:
            with lock:
                if not todo:
                    return
                i = todo.pop()
            worker(i)

    t0 = time.perf_counter()
    ts = [threading.Thread(target=runner) for _ in range(a.concurrency or a.n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    ok = sum(1 for r in results if r.startswith("RESULT 250"))
    print(f"RESULT ok={ok} failed={len(results) - ok} seconds={time.perf_counter() - t0:.2f}")
    for r in results:
        if not r.startswith("RESULT 250"):
            print("FAILED", r)
    for tag, ms in lats:
        print(f"{tag} {ms:.1f}")


if __name__ == "__main__":
    sys.exit(main())
