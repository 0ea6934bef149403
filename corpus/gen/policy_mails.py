#!/usr/bin/env python3
"""Builds the policy test messages (corpus/policy/*.eml) with Python's email package.

  corpus/gen/policy_mails.py [OUT_DIR]      (default corpus/policy; stdlib only)

Attachments come from corpus/extract/docs (made with LibreOffice, see generate.py). The values
are generated test values with valid check digits; none belongs to anybody.
"""
import os
import sys
from email.message import EmailMessage
from email.utils import formataddr

OUT = sys.argv[1] if len(sys.argv) > 1 else "corpus/policy"
DOCS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "extract", "docs")
os.makedirs(OUT, exist_ok=True)


def doc(name):
    with open(os.path.join(DOCS, name), "rb") as f:
        return f.read()


def write(name, msg):
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(bytes(msg))


XLSX = ("application", "vnd.openxmlformats-officedocument.spreadsheetml.sheet")

# Internal only, nothing sensitive.
m = EmailMessage()
m["From"] = formataddr(("鈴木 一郎", "ichiro@example.co.jp"))
m["To"] = "hanako@example.co.jp"
m["Subject"] = "会議の件"
m["Date"] = "Mon, 02 Nov 2026 10:00:00 +0900"
m["Message-ID"] = "<policy-internal@example.co.jp>"
m.set_content("来週の会議は 3 階の会議室です。\n", charset="iso-2022-jp")
write("internal.eml", m)

# Two external domains and an internal Cc; My Numbers and a card in the body; a spreadsheet.
m = EmailMessage()
m["From"] = formataddr(("鈴木 一郎", "ichiro@example.co.jp"))
m["To"] = "a@partner.example.com, b@other.example.org"
m["Cc"] = "hanako@example.co.jp"
m["Subject"] = "【社外秘】月次報告"
m["Date"] = "Mon, 02 Nov 2026 23:30:00 +0900"
m["Message-ID"] = "<policy-mixed@example.co.jp>"
m.set_content(
    "各位\n\n極秘の月次報告を送付します。\n"
    "マイナンバー: 7684 2684 6565\n個人番号 3212-2330-7923\n"
    "カード番号 4742 1809 6792 9089\n\nよろしくお願いします。\n",
    charset="utf-8",
)
m.add_attachment(doc("顧客一覧.xlsx"), maintype=XLSX[0], subtype=XLSX[1], filename="顧客一覧.xlsx")
write("mixed.eml", m)

# A spreadsheet renamed to .txt, to one external recipient.
m = EmailMessage()
m["From"] = "ichiro@example.co.jp"
m["To"] = "c@partner.example.com"
m["Subject"] = "memo"
m["Date"] = "Sat, 07 Nov 2026 09:00:00 +0900"
m["Message-ID"] = "<policy-renamed@example.co.jp>"
m.set_content("See the memo.\n")
m.add_attachment(doc("顧客一覧.xlsx"), maintype="text", subtype="plain", filename="memo.txt")
write("renamed.eml", m)

# A plain document to an external recipient (rate and evidence tests send it repeatedly).
m = EmailMessage()
m["From"] = "ichiro@example.co.jp"
m["To"] = "d@partner.example.com"
m["Subject"] = "見積書"
m["Date"] = "Tue, 03 Nov 2026 11:00:00 +0900"
m["Message-ID"] = "<policy-quote@example.co.jp>"
m.set_content("見積書をお送りします。\n", charset="iso-2022-jp")
m.add_attachment(doc("見積書.pdf"), maintype="application", subtype="pdf", filename="見積書.pdf")
write("quote.eml", m)
print("wrote", OUT)
