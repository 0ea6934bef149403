#!/usr/bin/env python3
"""The webmail origin for scripts/icap-test.sh and scripts/transparent-test.sh: answers every
request with 200 and logs one line per request with the method, path, body length and SHA-256 of
the body it received.

usage: origin.py PORT LOG [ADDRESS CERT KEY]   (HTTPS with CERT and KEY; default 127.0.0.1, HTTP)"""
import hashlib
import http.server
import sys


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def handle_any(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            body = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    break
                body += self.rfile.read(size)
                self.rfile.readline()
        with open(sys.argv[2], "a") as f:
            f.write(f"RECEIVED {self.command} {self.path} {len(body)} {hashlib.sha256(body).hexdigest()}\n")
        out = b"ok\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    do_GET = do_POST = do_PUT = handle_any

    def log_message(self, *a):
        pass


server = http.server.ThreadingHTTPServer((sys.argv[3] if len(sys.argv) > 3 else "127.0.0.1", int(sys.argv[1])), Handler)
if len(sys.argv) > 5:
    import ssl
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(sys.argv[4], sys.argv[5])
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
server.serve_forever()
