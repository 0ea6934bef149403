#!/usr/bin/env python3
"""Helpers of directory-test.sh for `action = "link"` (links instead of PPAP).

  links.py make OUT.eml FROM TO SUBJECT FILE     a mail with FILE attached (Python's email package)
  links.py read MAILFILE                         JSON: attachment names, download links, text
  links.py get URL                               "<status> <has form> <has password field>"
  links.py post URL [PASSWORD]                   "<status> <sha256 of the body>"
  links.py page URL                              "<status>" and the page's text on the next line
"""
import hashlib
import json
import re
import sys
import urllib.error
import urllib.parse
import urllib.request
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser


def make(out, sender, to, subject, path):
    m = EmailMessage()
    m["From"] = sender
    m["To"] = to
    m["Subject"] = subject
    m.set_content("見積書を送ります。\nPlease find the quote attached.\n")
    with open(path, "rb") as f:
        data = f.read()
    m.add_attachment(data, maintype="application", subtype="vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                     filename="見積書.xlsx")
    with open(out, "wb") as f:
        f.write(m.as_bytes(policy=policy.SMTP))


def read(path):
    with open(path, "rb") as f:
        m = BytesParser(policy=policy.default).parse(f)
    names, texts = [], []
    for part in m.walk():
        if part.is_multipart():
            continue
        if part.get_filename():
            names.append(part.get_filename())
        elif part.get_content_maintype() == "text":
            texts.append(part.get_content())
    text = "\n".join(texts)
    links = re.findall(r"https?://[^\s]+/d/[0-9a-f]{48}", text)
    print(json.dumps({"attachments": names, "links": links, "text": text}, ensure_ascii=False))


def request(url, data=None):
    req = urllib.request.Request(url, data=data)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def main():
    cmd = sys.argv[1]
    if cmd == "make":
        make(*sys.argv[2:7])
    elif cmd == "read":
        read(sys.argv[2])
    elif cmd == "get":
        status, body = request(sys.argv[2])
        page = body.decode("utf-8", "replace")
        print(status, int("<form" in page), int('name="password"' in page))
    elif cmd == "post":
        form = {"password": sys.argv[3]} if len(sys.argv) > 3 else {}
        status, body = request(sys.argv[2], urllib.parse.urlencode(form).encode())
        print(status, hashlib.sha256(body).hexdigest())
    elif cmd == "page":
        status, body = request(sys.argv[2])
        print(status)
        print(re.sub(r"<[^>]+>", " ", body.decode("utf-8", "replace")))
    else:
        sys.exit(f"unknown command {cmd}")


if __name__ == "__main__":
    main()
