#!/usr/bin/env python3
"""The "remote" SMTP server of scripts/transparent-test.sh: listens on ports 25 and 587 (STARTTLS
offered) and 465 (TLS from the first byte) on every address of its network namespace, with its
own certificate, and keeps every message it receives as DIR/N.eml (dot-unstuffed, exactly the
bytes after DATA) with one line per message in DIR/sink.log: RECEIVED port tls sha256 length.

usage: smtp_sink.py DIR CERT KEY"""
import hashlib
import itertools
import os
import socket
import socketserver
import ssl
import sys
import threading

DIR, CERT, KEY = sys.argv[1:4]
CTX = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
CTX.load_cert_chain(CERT, KEY)
COUNT = itertools.count(1)
LOCK = threading.Lock()


class Handler(socketserver.StreamRequestHandler):
    timeout = 30

    def setup(self):
        self.port = self.request.getsockname()[1]
        self.tls = False
        if self.port == 465:
            self.request = CTX.wrap_socket(self.request, server_side=True)
            self.tls = True
        super().setup()

    def say(self, line):
        self.wfile.write(line.encode() + b"\r\n")
        self.wfile.flush()

    def handle(self):
        self.say("220 smtp.test ESMTP sink")
        while True:
            line = self.rfile.readline(4096)
            if not line:
                return
            cmd = line.strip().split(b" ")[0].upper()
            if cmd in (b"EHLO", b"HELO"):
                ext = [] if self.tls else ["STARTTLS"]
                lines = ["smtp.test"] + ext + ["8BITMIME", "SIZE 200000000"]
                for i, l in enumerate(lines):
                    self.wfile.write(("250%s%s\r\n" % (" " if i == len(lines) - 1 else "-", l)).encode())
                self.wfile.flush()
            elif cmd == b"STARTTLS" and not self.tls:
                self.say("220 2.0.0 go ahead")
                self.request = CTX.wrap_socket(self.request, server_side=True)
                self.tls = True
                self.rfile = self.request.makefile("rb")
                self.wfile = self.request.makefile("wb")
            elif cmd in (b"MAIL", b"RCPT", b"RSET", b"NOOP"):
                self.say("250 2.0.0 ok")
            elif cmd == b"DATA":
                self.say("354 go ahead")
                data = bytearray()
                while True:
                    l = self.rfile.readline(1 << 20)
                    if not l or l == b".\r\n":
                        break
                    data += l[1:] if l.startswith(b"..") else l
                n = next(COUNT)
                with open(os.path.join(DIR, f"{n}.eml"), "wb") as f:
                    f.write(data)
                with LOCK, open(os.path.join(DIR, "sink.log"), "a") as f:
                    f.write(f"RECEIVED {self.port} {'tls' if self.tls else 'plain'} {hashlib.sha256(data).hexdigest()} {len(data)}\n")
                self.say(f"250 2.0.0 queued as {n}")
            elif cmd == b"QUIT":
                self.say("221 2.0.0 bye")
                return
            else:
                self.say("502 5.5.1 not here")


class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


servers = [Server(("0.0.0.0", p), Handler) for p in (25, 587, 465)]
for s in servers[1:]:
    threading.Thread(target=s.serve_forever, daemon=True).start()
servers[0].serve_forever()
