#!/usr/bin/env python3
"""Seeds for the protocol fuzz targets (called by scripts/fuzz-smoke.sh):

  milter        packet streams as Postfix sends them (negotiation, macros, envelope, headers,
                body chunks, end of message), one clean and one with a quoted recipient
  smtp_command  command lines a client sends (first byte: 1 = CRLF-terminated)
  icap          REQMOD / RESPMOD / OPTIONS requests with previews and chunked bodies
  upload        bodies of each kind (first byte selects content type and encoding)
  console_http  requests to the console's routes

usage: fuzz-seeds.py SEEDS_DIR
"""
import gzip
import json
import os
import struct
import sys

out = sys.argv[1]


def put(target, name, data):
    d = os.path.join(out, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def pkt(code, data=b""):
    return struct.pack(">I", len(data) + 1) + code + data


def milter_stream(rcpt, body):
    s = pkt(b"O", struct.pack(">III", 6, 0x1FF, 0x1FFFFF))
    s += pkt(b"D", b"C{client_addr}\x00192.0.2.1\x00{client_name}\x00pc.example\x00")
    s += pkt(b"C", b"pc.example\x004\x00\x19192.0.2.1\x00")
    s += pkt(b"H", b"pc.example\x00")
    s += pkt(b"D", b"Mi\x00ABC123\x00{auth_authen}\x00ichiro\x00")
    s += pkt(b"M", b"<ichiro@example.co.jp>\x00SIZE=100\x00")
    s += pkt(b"R", rcpt + b"\x00")
    s += pkt(b"L", b"Subject\x00 hello\x00")
    s += pkt(b"L", b"From\x00 ichiro@example.co.jp\x00")
    s += pkt(b"N")
    s += pkt(b"B", body)
    s += pkt(b"E")
    s += pkt(b"Q")
    return s


put("milter", "clean", milter_stream(b"<bob@example.co.jp>", b"hello\r\n"))
put("milter", "quoted", milter_stream(b'<"x@example.co.jp>"@evil.example>',
                                      "カード 4111 1111 1111 1111\r\n".encode()))
put("milter", "abort", pkt(b"O", struct.pack(">III", 2, 1, 0)) + pkt(b"M", b"<a@b>\x00") + pkt(b"A"))

for i, line in enumerate([
    b"EHLO client.example",
    b"MAIL FROM:<ichiro@example.co.jp> SIZE=1000 BODY=8BITMIME SMTPUTF8",
    b'RCPT TO:<"x@corp.example>"@evil.example>',
    b"RCPT TO:<@relay.example:bob@partner.example>",
    b"AUTH PLAIN AGljaGlybwBzZWNyZXQ=",
    b"MAIL FROM:<>",
    b"RCPT TO:<\xe5\xb1\xb1\xe7\x94\xb0@\xe4\xbe\x8b\xe3\x81\x88.jp>",
    b"DATA",
    b"STARTTLS",
]):
    put("smtp_command", f"c{i}", b"\x01" + line)


def chunked(b):
    return b"%x\r\n" % len(b) + b + b"\r\n0\r\n\r\n" if b else b"0\r\n\r\n"


def icap(method, http, body, preview=None):
    enc = b"req-hdr=0, req-body=%d" % len(http) if body is not None else b"req-hdr=0, null-body=%d" % len(http)
    head = method + b" icap://127.0.0.1:1344/reqmod ICAP/1.0\r\nHost: 127.0.0.1\r\nAllow: 204\r\nEncapsulated: " + enc + b"\r\n"
    if preview is not None:
        head += b"Preview: %d\r\n" % preview
    req = head + b"\r\n" + http
    if body is not None:
        if preview is not None and preview < len(body):
            req += b"%x\r\n" % preview + body[:preview] + b"\r\n0\r\n\r\n" + chunked(body[preview:])
        else:
            req += b"%x\r\n" % len(body) + body + b"\r\n0; ieof\r\n\r\n" if preview is not None else chunked(body)
    return req


mp = (b"--b\r\nContent-Disposition: form-data; name=\"to\"\r\n\r\nbob@partner.example\r\n"
      b"--b\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a.txt\"\r\n\r\ncard 4111 1111 1111 1111\r\n--b--\r\n")
http_mp = (b"POST http://mail.example.net/upload HTTP/1.1\r\nHost: mail.example.net\r\n"
           b"Content-Type: multipart/form-data; boundary=b\r\nContent-Length: %d\r\n\r\n" % len(mp))
put("icap", "multipart", icap(b"REQMOD", http_mp, mp, preview=16))
j = json.dumps({"message": {"toRecipients": [{"emailAddress": {"address": "x@p.example"}}]},
                "attachments": [{"name": "c.txt", "contentBytes": "Y2FyZCA0MTExIDExMTEgMTExMSAxMTEx"}]}).encode()
gz = gzip.compress(j)
http_gz = (b"POST /api HTTP/1.1\r\nHost: graph.example.net\r\nContent-Type: application/json\r\n"
           b"Content-Encoding: gzip\r\n\r\n")
put("icap", "json-gzip", icap(b"REQMOD", http_gz, gz))
http_range = (b"PUT /upload/s1?token=x HTTP/1.1\r\nHost: files.example.net\r\n"
              b"Content-Range: bytes 0-9/20\r\n\r\n")
put("icap", "range", icap(b"REQMOD", http_range, b"0123456789"))
put("icap", "options", b"OPTIONS icap://127.0.0.1:1344/reqmod ICAP/1.0\r\nHost: x\r\n\r\n")
put("icap", "respmod", b"RESPMOD icap://127.0.0.1:1344/respmod ICAP/1.0\r\nHost: x\r\n"
    b"Encapsulated: req-hdr=0, res-hdr=18, res-body=37\r\n\r\nGET / HTTP/1.1\r\n\r\nHTTP/1.1 200 OK\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
put("icap", "get", icap(b"REQMOD", b"GET http://x.example/ HTTP/1.1\r\nHost: x.example\r\n\r\n", None))

put("upload", "multipart", b"\x00" + mp)
put("upload", "form", b"\x01to=a%40b.example&file=%50%4B%03%04%00%ff&b64=Y2FyZCA0MTExIDExMTEgMTExMSAxMTEx")
put("upload", "json", b"\x02" + j)
put("upload", "json-gzip", bytes([0x02 | (1 << 3)]) + gz)
put("upload", "text-b64", b"\x03Y2FyZCA0MTExIDExMTEgMTExMSAxMTEx")
put("upload", "dataurl", b"\x02" + json.dumps({"f": "data:text/plain;base64,Y2FyZCA0MTEx", "h": "6361726420343131", "b": list(range(20))}).encode())

for i, r in enumerate([
    b"GET /login?next=%2Frequests HTTP/1.1\r\nHost: c\r\n\r\n",
    b"POST /login HTTP/1.1\r\nHost: c\r\nCookie: p32_pre=abc\r\nContent-Type: application/x-www-form-urlencoded\r\n\r\ncsrf=abc&user=admin&password=x&next=%2F%09%2Fevil",
    b"GET /requests/0123456789abcdef?state=all HTTP/1.1\r\nHost: c\r\nCookie: p32_session=zz\r\n\r\n",
    b"POST /link/0123456789abcdef HTTP/1.1\r\nHost: c\r\nSec-Fetch-Site: same-origin\r\n\r\nu=boss%40example.co.jp&t=abc&csrf=x",
    b"GET /audit?user=%3Cscript%3E&since=2026-01-01 HTTP/1.1\r\nHost: c\r\nAccept-Language: en;q=0.5, ja\r\n\r\n",
    b"HEAD /static/style.css HTTP/1.1\r\nHost: c\r\n\r\n",
    b"GET /d/0123456789abcdef0123456789abcdef0123456789abcdef HTTP/1.1\r\nHost: dl\r\n\r\n",
    b"POST /d/0123456789abcdef0123456789abcdef0123456789abcdef HTTP/1.1\r\nHost: dl\r\n\r\npassword=abc%20def",
    b"GET /links/1?t=00 HTTP/1.1\r\nHost: c\r\n\r\n",
]):
    put("console_http", f"r{i}", r)

# The agents' API (on in the fuzzed console, with agent fuzz-pc enrolled: FUZZ_AGENT in
# examples/console/src/lib.rs): every call, with its credential, and an enrolment.
AGENT_AUTH = b"Authorization: Bearer fuzz-pc:" + b"00112233445566778899aabbccddeeff" * 2 + b"\r\n"
record = {
    "id": 0, "time": 1765000000, "channel": "proxy", "user": "ichiro", "host": "pc-12",
    "client_app": "Outlook", "client_addr": "192.0.2.7", "tls": "TLSv1.3",
    "sender": "ichiro@example.co.jp",
    "recipients": [{"address": "x@partner.example.com", "external": True}],
    "subject": "見積書", "body_digest": "ab" * 32, "size": 68000, "message_id": "<a@b>",
    "queue_id": None,
    "attachments": [{"location": "見積書.zip/a.xlsx", "name": "a.xlsx", "kind": "xlsx", "size": 6000,
                     "sha256": "cd" * 32, "origin": "attachment", "extension_mismatch": False,
                     "depth": 1, "unscannable": None}],
    "findings": [{"detector": "jp_my_number", "location": "body", "count": 2, "unique": [0, 1, 1],
                  "samples": ["1234-****-9018"]}],
    "unscannable": [["a.zip", "encrypted", "zip AES"]], "password_candidates": 1,
    "action": "hold", "would_action": "hold",
    "matched": [{"rule": "r1", "action": "hold", "mode": "enforce", "severity": "high",
                 "reasons": ["jp_my_number >= 1"]}],
    "risk": 70, "signals": [["ppap", 30]], "approval": "abcdef012345",
}
status = {"user": "ichiro", "host": "pc-12", "version": "0.1.0", "policy_version": "3", "backlog": 2}
agent_calls = [
    ("records", {"records": [{"seq": 1, "record": record}, {"seq": 2, "record": dict(record, action="allow")}],
                 "status": status}),
    ("status", {"status": status}),
    ("policy", {"have": None}),
    ("policy", {"have": 3}),
    ("decisions", {}),
    ("closed", {"closed": [{"id": "abcdef012345", "state": "released", "time": 1765000100}]}),
    ("history", {"q": "domain_seen", "domain": "partner.example.com", "until": 1765000000}),
    ("history", {"q": "sent_to_before", "sender": "ichiro@example.co.jp", "address": "x@partner.example.com", "until": 1765000000}),
    ("history", {"q": "external_sends_of", "sha256": "cd" * 32, "since": 0, "until": 1765000000}),
    ("history", {"q": "sender_external", "sender": "ichiro@example.co.jp", "since": 0, "until": 1765000000}),
    ("history", {"q": "ppap_partner", "recipients": ["x@partner.example.com"], "sender": "ichiro@example.co.jp",
                 "since": 0, "until": 1765000000, "want_password": True}),
]
for i, (call, body) in enumerate(agent_calls):
    b = json.dumps(body, ensure_ascii=False).encode()
    put("console_http", f"agent{i}", b"POST /agent/v1/" + call.encode() + b" HTTP/1.1\r\nHost: c\r\n"
        + AGENT_AUTH + b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(b) + b)
enrol = json.dumps({"token": "fuzz-enrol-token-0123456789abcdef0123456789abcdef", "name": "pc-new",
                    "status": status}).encode()
put("console_http", "agent-enrol", b"POST /agent/v1/enrol HTTP/1.1\r\nHost: c\r\nContent-Type: application/json\r\n\r\n" + enrol)
put("console_http", "agent-wrong", b"POST /agent/v1/records HTTP/1.1\r\nHost: c\r\nAuthorization: Bearer fuzz-pc:" + b"0" * 64 + b"\r\n\r\n{}")


# PowerPoint Document streams: records (version/instance, type, length) with containers
# (version 0xF) holding text atoms, a master to skip, a comment string and an encrypted marker.
def rec(ver_inst, rtype, body):
    return struct.pack("<HHI", ver_inst, rtype, len(body)) + body


u16 = lambda t: t.encode("utf-16-le")
slide = rec(0x0F, 0x03EE, rec(0x0F, 0xF00D, rec(0, 0x0FA0, u16("個人番号\r768426846565"))) + rec(0, 0x0FA8, b"Card 4742180967929089"))
master = rec(0x0F, 0x03F8, rec(0, 0x0FA0, u16("マスター タイトルの書式設定")))
put("ppt", "document", rec(0x0F, 0x03E8, master + slide) + rec(0, 0x0FBA, u16("社外秘")))
put("ppt", "notes", rec(0x0F, 0x03F0, rec(0x0F, 0xF002, rec(0, 0x0FA0, u16("ノート：カード番号 4111 1111 1111 1111")))))
put("ppt", "encrypted", rec(0x0F, 0x2F14, rec(0, 0x2F15, b"\x00" * 16)))
