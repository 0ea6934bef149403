#!/usr/bin/env python3
"""The employee's mail client in scripts/transparent-test.sh: knows only the remote server's
name or address. Sends MSG (exact bytes, CRLF line ends) and prints one line:
  SENT <code> issuer=<CN of the certificate's issuer>      accepted by whoever answered
  REFUSED <code> <text>                                     a 4xx/5xx answer
  ERROR <exception>                                         TLS or connection failure

usage: send.py HOST PORT plain|starttls|tls CAFILE MSG [--no-sni]"""
import smtplib
import socket
import ssl
import sys

host, port, mode, cafile, msgfile = sys.argv[1:6]
no_sni = "--no-sni" in sys.argv[6:]
ctx = ssl.create_default_context(cafile=cafile)
if no_sni:
    # No server name in the ClientHello (as a client that connects by address): the chain is
    # still verified, the name cannot be.
    ctx.check_hostname = False
msg = open(msgfile, "rb").read()


class NoSni(smtplib.SMTP_SSL):
    def _get_socket(self, host, port, timeout):
        raw = socket.create_connection((host, port), timeout)
        return self.context.wrap_socket(raw, server_hostname=None)


def issuer(sock):
    try:
        cert = sock.getpeercert()
        return dict(x[0] for x in cert["issuer"]).get("commonName", "?")
    except Exception:
        return "-"


try:
    sni = None if no_sni else host
    if mode == "tls":
        s = (NoSni if no_sni else smtplib.SMTP_SSL)(host, int(port), context=ctx, timeout=20)
    else:
        s = smtplib.SMTP(host, int(port), timeout=20)
    s.ehlo("employee-pc.example.co.jp")
    if mode == "starttls":
        s._host = sni
        code, text = s.starttls(context=ctx)
        code, text = s.ehlo("employee-pc.example.co.jp")
        if code >= 400:
            print(f"REFUSED {code} {text.decode(errors='replace')}")
            sys.exit(0)
    who = issuer(s.sock) if mode != "plain" else "-"
    try:
        s.sendmail("taro@example.co.jp", ["bob@partner.example.com"], msg)
        code = 250
    except smtplib.SMTPDataError as e:
        print(f"REFUSED {e.smtp_code} {e.smtp_error.decode(errors='replace')}")
        sys.exit(0)
    except smtplib.SMTPResponseException as e:
        print(f"REFUSED {e.smtp_code} {e.smtp_error.decode(errors='replace')}")
        sys.exit(0)
    s.quit()
    print(f"SENT {code} issuer={who}")
except smtplib.SMTPResponseException as e:
    print(f"REFUSED {e.smtp_code} {e.smtp_error.decode(errors='replace')}")
except Exception as e:
    print(f"ERROR {type(e).__name__}: {e}")
