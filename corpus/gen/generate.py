#!/usr/bin/env python3
"""Builds the extraction corpus with real tools and writes what each file must yield.

  corpus/gen/generate.py OUT_DIR      (scripts/gen-corpus.sh installs the tools and runs this)
  corpus/gen/generate.py OUT_DIR --only sevenzip|outlook|tables   (remake one group, merge into expected.json)

Tools: LibreOffice headless (docx, xlsx, pptx, odt, ods, odp, doc, xls, rtf, pdf from flat ODF
sources), Info-ZIP (zip, ZipCrypto, CP932 member names), 7-Zip (AES zip; 7z with every method, solid,
AES, encrypted headers), bzip2 and xz, msgforge (Outlook .msg), qpdf (encrypted
PDF), msoffcrypto-tool (encrypted docx), reportlab (a PDF in the non-embedded HeiseiMin font,
UniJIS-UCS2-H), Python's email package (messages in ISO-2022-JP, Shift_JIS, EUC-JP, nested
message/rfc822, RFC 2231 / 2047 names, raw 8-bit names), and hand-built bytes where no tool
writes the case (TNEF winmail.dat, a PDF Form XObject, hostile files).

Writes OUT_DIR/{docs,mail,hostile}/... and OUT_DIR/expected.json: per file, the findings that
must be reported (detector, value, location, sheet/cell or page), the attachments' true types,
and the unscannable reasons. Values are generated test values with valid check digits.
"""
import email.charset
import email.encoders
import email.generator
import email.policy
import io
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import zipfile
import zlib
from email.message import EmailMessage
from email.mime.application import MIMEApplication
from email.mime.base import MIMEBase
from email.mime.message import MIMEMessage
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText

OUT = sys.argv[1] if len(sys.argv) > 1 and not sys.argv[1].startswith("-") else "corpus/extract"
EXPECT = {}

# Valid test values (check digits correct; none belongs to anybody).
MYNUM = ["768426846565", "321223307923", "440268599525", "890786666177", "603137215906"]
CARDS = ["4742180967929089", "5378778932879210", "3589307666193455"]
CORP = "T2841215472803"
PHONE = "090-8765-4321"
PASSWORD = "Xy7#kP2q"


def path(*p):
    full = os.path.join(OUT, *p)
    os.makedirs(os.path.dirname(full), exist_ok=True)
    return full


def expect(rel, findings=(), kinds=None, unscannable=(), message=None, counts=None, absent=()):
    """`counts`: exact number of findings per detector; `absent`: values that must not be reported
    as that detector (decoys)."""
    EXPECT[rel] = {
        "findings": list(findings),
        "kinds": kinds or {},
        "unscannable": list(unscannable),
        "message": message,
    }
    if counts:
        EXPECT[rel]["counts"] = counts
    if absent:
        EXPECT[rel]["absent"] = list(absent)


def run(cmd, cwd=None):
    subprocess.run(cmd, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def soffice(src, fmt, outdir):
    run(["soffice", "--headless", "--convert-to", fmt, "--outdir", outdir, src])


NS = ('xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" '
      'xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" '
      'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" '
      'xmlns:style="urn:oasis:names:tc:opendocument:xmlns:style:1.0" '
      'xmlns:draw="urn:oasis:names:tc:opendocument:xmlns:drawing:1.0" '
      'xmlns:presentation="urn:oasis:names:tc:opendocument:xmlns:presentation:1.0" '
      'xmlns:svg="urn:oasis:names:tc:opendocument:xmlns:svg-compatible:1.0" '
      'xmlns:fo="urn:oasis:names:tc:opendocument:xmlns:xsl-fo-compatible:1.0" '
      'xmlns:meta="urn:oasis:names:tc:opendocument:xmlns:meta:1.0" '
      'xmlns:dc="http://purl.org/dc/elements/1.1/" '
      'xmlns:office2="urn:oasis:names:tc:opendocument:xmlns:office:1.0" ')


def fodt(paragraphs, title, author, header="", footer="", comment=""):
    body = "".join("<text:p>%s</text:p>" % p for p in paragraphs)
    if comment:
        body += ('<text:p>確認事項<office:annotation><dc:creator>%s</dc:creator><text:p>%s</text:p></office:annotation></text:p>' % (author, comment))
    styles = ""
    if header or footer:
        styles = ('<office:automatic-styles><style:page-layout style:name="pm1"/></office:automatic-styles>'
                  '<office:master-styles><style:master-page style:name="Standard" style:page-layout-name="pm1">'
                  '<style:header><text:p>%s</text:p></style:header><style:footer><text:p>%s</text:p></style:footer>'
                  '</style:master-page></office:master-styles>') % (header, footer)
    return ('<?xml version="1.0" encoding="UTF-8"?><office:document %s office:version="1.2" '
            'office:mimetype="application/vnd.oasis.opendocument.text">'
            '<office:meta><dc:title>%s</dc:title><meta:initial-creator>%s</meta:initial-creator><dc:creator>%s</dc:creator></office:meta>'
            '%s<office:body><office:text>%s</office:text></office:body></office:document>') % (NS, title, author, author, styles, body)


def fods(sheets):
    out = []
    for name, rows in sheets:
        rs = "".join("<table:table-row>%s</table:table-row>" % "".join(
            "<table:table-cell office:value-type=\"string\"><text:p>%s</text:p></table:table-cell>" % c for c in row) for row in rows)
        out.append('<table:table table:name="%s">%s</table:table>' % (name, rs))
    return ('<?xml version="1.0" encoding="UTF-8"?><office:document %s office:version="1.2" '
            'office:mimetype="application/vnd.oasis.opendocument.spreadsheet"><office:body><office:spreadsheet>%s'
            '</office:spreadsheet></office:body></office:document>') % (NS, "".join(out))


def fodp(slides):
    pages = "".join(
        '<draw:page draw:name="p%d"><draw:frame svg:x="1cm" svg:y="1cm" svg:width="20cm" svg:height="5cm">'
        '<draw:text-box><text:p>%s</text:p></draw:text-box></draw:frame></draw:page>' % (i + 1, s) for i, s in enumerate(slides))
    return ('<?xml version="1.0" encoding="UTF-8"?><office:document %s office:version="1.2" '
            'office:mimetype="application/vnd.oasis.opendocument.presentation"><office:body><office:presentation>%s'
            '</office:presentation></office:body></office:document>') % (NS, pages)


def documents(tmp):
    """Office documents and PDFs from flat ODF sources, converted by LibreOffice."""
    made = {}
    # A quotation: marking, My Number, card in running text.
    src = os.path.join(tmp, "見積書.fodt")
    open(src, "w", encoding="utf-8").write(fodt(
        ["【社外秘】御見積書", "お客様のマイナンバー：%s" % MYNUM[0],
         "お支払いカード番号 %s" % CARDS[0], "適格請求書発行事業者登録番号：%s" % CORP], "御見積書", "山田太郎",
        header="取扱注意 担当 TEL 03-5321-1111", footer="問い合わせ先 taro@example.co.jp", comment="先方の個人番号は %s" % MYNUM[4]))
    for fmt, ext in [("docx", "docx"), ("odt", "odt"), ("doc:MS Word 97", "doc"), ("rtf", "rtf"), ("pdf", "pdf")]:
        soffice(src, fmt, tmp)
        made[ext] = os.path.join(tmp, "見積書." + ext)
    words = [("jp_my_number", MYNUM[0]), ("credit_card", CARDS[0]), ("jp_corporate_number", CORP), ("confidential_marking", "社外秘")]
    # Headers, footers and comments: where each format keeps them.
    extra = {"docx": [("jp_phone", "03-5321-1111"), ("email_address", "taro@example.co.jp"), ("jp_my_number", MYNUM[4])],
             "odt": [("jp_my_number", MYNUM[4])]}
    for ext in ["docx", "odt", "doc", "rtf", "pdf"]:
        name = "見積書." + ext
        shutil.copy(made[ext], path("docs", name))
        f = [{"detector": d, "value": v, "location": name} for d, v in words + extra.get(ext, [])]
        if ext == "pdf":
            for x in f:
                x["page"] = 1
        expect("docs/" + name, f, kinds={name: ext})
    # A customer list: two sheets, one of them hidden in the xlsx (LibreOffice keeps both).
    src = os.path.join(tmp, "顧客一覧.fods")
    open(src, "w", encoding="utf-8").write(fods([
        ("顧客一覧", [["氏名", "個人番号", "電話番号", "カード番号"],
                   ["佐藤 花子", MYNUM[1], PHONE, CARDS[1]],
                   ["鈴木 一郎", MYNUM[2], "03-5321-1111", CARDS[2]]]),
        ("メモ", [["備考"], ["社外秘"]]),
    ]))
    for fmt, ext in [("xlsx", "xlsx"), ("ods", "ods"), ("xls:MS Excel 97", "xls")]:
        soffice(src, fmt, tmp)
        name = "顧客一覧." + ext
        shutil.copy(os.path.join(tmp, name), path("docs", name))
        f = [{"detector": "jp_my_number", "value": MYNUM[1], "location": name, "sheet": "顧客一覧", "cell": "B2"},
             {"detector": "jp_my_number", "value": MYNUM[2], "location": name, "sheet": "顧客一覧", "cell": "B3"},
             {"detector": "credit_card", "value": CARDS[1], "location": name, "sheet": "顧客一覧", "cell": "D2"},
             {"detector": "jp_phone", "value": PHONE, "location": name, "sheet": "顧客一覧", "cell": "C2"},
             {"detector": "confidential_marking", "value": "社外秘", "location": name, "sheet": "メモ", "cell": "A2"}]
        expect("docs/" + name, f, kinds={name: ext})
    # Slides.
    src = os.path.join(tmp, "説明資料.fodp")
    open(src, "w", encoding="utf-8").write(fodp(["極秘：新製品計画", "担当者の個人番号 %s" % MYNUM[3]]))
    for fmt, ext in [("pptx", "pptx"), ("odp", "odp")]:
        soffice(src, fmt, tmp)
        name = "説明資料." + ext
        shutil.copy(os.path.join(tmp, name), path("docs", name))
        expect("docs/" + name, [{"detector": "jp_my_number", "value": MYNUM[3], "location": name},
                                {"detector": "confidential_marking", "value": "極秘", "location": name}], kinds={name: ext})
    soffice(src, "ppt:MS PowerPoint 97", tmp)
    shutil.copy(os.path.join(tmp, "説明資料.ppt"), path("docs", "説明資料.ppt"))
    expect("docs/説明資料.ppt", [{"detector": "jp_my_number", "value": MYNUM[3], "location": "説明資料.ppt"},
                             {"detector": "confidential_marking", "value": "極秘", "location": "説明資料.ppt"}],
           kinds={"説明資料.ppt": "ppt"})
    # An HTML page in Shift_JIS and a UTF-16 text file with a BOM.
    open(path("docs", "お知らせ.html"), "wb").write(('<html><head><meta charset="Shift_JIS"><title>t</title></head><body><p>社外秘</p>'
                                                  '<table><tr><td>個人番号</td><td>%s</td></tr></table></body></html>' % MYNUM[2]).encode("cp932"))
    expect("docs/お知らせ.html", [{"detector": "jp_my_number", "value": MYNUM[2], "location": "お知らせ.html"}], kinds={"お知らせ.html": "html"})
    open(path("docs", "utf16.txt"), "wb").write(("マイナンバー：%s\r\n" % MYNUM[3]).encode("utf-16"))
    expect("docs/utf16.txt", [{"detector": "jp_my_number", "value": MYNUM[3], "location": "utf16.txt"}], kinds={"utf16.txt": "text"})
    # A RAR 5 archive with encrypted headers (signature and an archive encryption header, as
    # rar -hp writes them): reported, not guessed at.
    open(path("docs", "locked.rar"), "wb").write(b"Rar!\x1a\x07\x01\x00" + b"\x00\x00\x00\x00" + b"\x21\x04" + b"\x00" * 40)
    expect("docs/locked.rar", kinds={"locked.rar": "rar"}, unscannable=[{"location": "locked.rar", "reason": "encrypted"}])
    # Encrypted: PDF with a user password (qpdf), docx (msoffcrypto-tool).
    run(["qpdf", "--encrypt", "userpw", "ownerpw", "256", "--", made["pdf"], path("docs", "暗号化.pdf")])
    expect("docs/暗号化.pdf", kinds={"暗号化.pdf": "pdf"}, unscannable=[{"location": "暗号化.pdf", "reason": "encrypted"}])
    run([sys.executable, "-m", "msoffcrypto.__main__", "-e", "-p", "secret", made["docx"], path("docs", "暗号化.docx")])
    expect("docs/暗号化.docx", kinds={"暗号化.docx": "encrypted_office"}, unscannable=[{"location": "暗号化.docx", "reason": "encrypted"}])
    # A PDF in HeiseiMin-W3 (not embedded, UniJIS-UCS2-H, no ToUnicode), by reportlab.
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont
    from reportlab.pdfgen import canvas
    pdfmetrics.registerFont(UnicodeCIDFont("HeiseiMin-W3"))
    c = canvas.Canvas(path("docs", "平成明朝.pdf"))
    c.setFont("HeiseiMin-W3", 12)
    c.drawString(72, 760, "マイナンバー：%s" % MYNUM[4])
    c.drawString(72, 740, "社外秘")
    c.save()
    expect("docs/平成明朝.pdf", [{"detector": "jp_my_number", "value": MYNUM[4], "location": "平成明朝.pdf", "page": 1},
                              {"detector": "confidential_marking", "value": "社外秘", "location": "平成明朝.pdf", "page": 1}],
           kinds={"平成明朝.pdf": "pdf"})
    # A PDF whose text sits in a Form XObject (lopdf's extract_text misses it).
    open(path("docs", "form-xobject.pdf"), "wb").write(form_xobject_pdf("Card number %s" % CARDS[0]))
    expect("docs/form-xobject.pdf", [{"detector": "credit_card", "value": CARDS[0], "location": "form-xobject.pdf", "page": 1}],
           kinds={"form-xobject.pdf": "pdf"})
    # Text files in Japanese encodings, an xlsx renamed .jpg, an image.
    csv = "氏名,個人番号\n佐藤 花子,%s\n" % MYNUM[1]
    open(path("docs", "名簿_sjis.csv"), "wb").write(csv.encode("cp932"))
    expect("docs/名簿_sjis.csv", [{"detector": "jp_my_number", "value": MYNUM[1], "location": "名簿_sjis.csv"}], kinds={"名簿_sjis.csv": "csv"})
    open(path("docs", "メモ_eucjp.txt"), "wb").write(("社外秘メモ：カード番号%s\n" % CARDS[1]).encode("euc_jp"))
    expect("docs/メモ_eucjp.txt", [{"detector": "credit_card", "value": CARDS[1], "location": "メモ_eucjp.txt"}], kinds={"メモ_eucjp.txt": "text"})
    shutil.copy(path("docs", "顧客一覧.xlsx"), path("docs", "photo.jpg"))
    expect("docs/photo.jpg", [{"detector": "jp_my_number", "value": MYNUM[1], "location": "photo.jpg", "sheet": "顧客一覧", "cell": "B2"}],
           kinds={"photo.jpg": "xlsx"})
    open(path("docs", "logo.png"), "wb").write(tiny_png())
    expect("docs/logo.png", kinds={"logo.png": "png"}, unscannable=[{"location": "logo.png", "reason": "not_inspected"}])
    return made


def tiny_png():
    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)
    raw = b"\x00\xff\x00\x00"
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def form_xobject_pdf(text):
    """A one-page PDF whose page content only draws a Form XObject holding the text."""
    form = ("BT /F1 12 Tf 72 700 Td (%s) Tj ET" % text).encode()
    objs = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /XObject << /X1 5 0 R >> >> /Contents 4 0 R >>",
        b"<< /Length 8 >>\nstream\n/X1 Do\n\nendstream",
        b"<< /Type /XObject /Subtype /Form /BBox [0 0 612 792] /Resources << /Font << /F1 6 0 R >> >> /Length %d >>\nstream\n" % len(form) + form + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
    ]
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for i, o in enumerate(objs, 1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % i + o + b"\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1))
    for off in offsets:
        out.write(b"%010d 00000 n \n" % off)
    out.write(b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objs) + 1, xref))
    return out.getvalue()


def archives(tmp, made):
    """Zips by Info-ZIP (CP932 names, ZipCrypto, nesting) and 7-Zip (AES, 7z)."""
    d = os.path.join(tmp, "z")
    os.makedirs(os.path.join(d, "inner"), exist_ok=True)
    # Member names written as Shift_JIS bytes: what Japanese Windows zips carry.
    sjis = lambda s: os.fsdecode(s.encode("cp932"))
    shutil.copy(path("docs", "顧客一覧.xlsx"), os.path.join(d, "inner", sjis("顧客一覧.xlsx")))
    open(os.path.join(d, sjis("メモ.txt")), "wb").write(("個人番号：%s\n" % MYNUM[0]).encode("cp932"))
    run(["zip", "-q", "-r", "-X", os.path.abspath(path("docs", "見積書.zip")), sjis("メモ.txt"), "inner"], cwd=d)
    expect("docs/見積書.zip", [
        {"detector": "jp_my_number", "value": MYNUM[0], "location": "見積書.zip/メモ.txt"},
        {"detector": "jp_my_number", "value": MYNUM[1], "location": "見積書.zip/inner/顧客一覧.xlsx", "sheet": "顧客一覧", "cell": "B2"},
    ], kinds={"見積書.zip": "zip", "見積書.zip/inner/顧客一覧.xlsx": "xlsx", "見積書.zip/メモ.txt": "text"})
    # PPAP: ZipCrypto (Info-ZIP) and AES-256 (7-Zip), same content.
    run(["zip", "-q", "-X", "-P", PASSWORD, os.path.abspath(path("docs", "ppap_zipcrypto.zip")), sjis("メモ.txt")], cwd=d)
    expect("docs/ppap_zipcrypto.zip", kinds={"ppap_zipcrypto.zip": "zip"},
           unscannable=[{"location": "ppap_zipcrypto.zip/メモ.txt", "reason": "encrypted"}])
    run(["7z", "a", "-tzip", "-mem=AES256", "-p" + PASSWORD, os.path.abspath(path("docs", "ppap_aes.zip")), sjis("メモ.txt")], cwd=d)
    expect("docs/ppap_aes.zip", kinds={"ppap_aes.zip": "zip"}, unscannable=[{"location": "ppap_aes.zip/メモ.txt", "reason": "encrypted"}])
    # zip64, and the compression methods 7-Zip writes into zips.
    with zipfile.ZipFile(path("docs", "zip64.zip"), "w", zipfile.ZIP_DEFLATED) as zz:
        with zz.open("memo.txt", "w", force_zip64=True) as f:
            f.write(("個人番号 %s\n" % MYNUM[4]).encode())
    expect("docs/zip64.zip", [{"detector": "jp_my_number", "value": MYNUM[4], "location": "zip64.zip/memo.txt"}], kinds={"zip64.zip": "zip"})
    for method in ["Deflate64", "BZip2", "LZMA", "PPMd", "Copy"]:
        name = "method-%s.zip" % method.lower()
        run(["7z", "a", "-tzip", "-mm=" + method, os.path.abspath(path("docs", name)), sjis("メモ.txt")], cwd=d)
        expect("docs/" + name, [{"detector": "jp_my_number", "value": MYNUM[0], "location": name + "/メモ.txt"}], kinds={name: "zip"})
    # A zip holding a message holding a docx.
    shutil.copy(made["docx"], os.path.join(d, "見積書.docx"))
    open(os.path.join(d, "forwarded.eml"), "wb").write(simple_message("転送: 見積書", "ご確認ください。", [("見積書.docx", open(made["docx"], "rb").read())]))
    run(["zip", "-q", "-X", os.path.abspath(path("docs", "nested.zip")), "forwarded.eml"], cwd=d)
    expect("docs/nested.zip", [{"detector": "jp_my_number", "value": MYNUM[0], "location": "nested.zip/forwarded.eml/見積書.docx"}],
           kinds={"nested.zip": "zip", "nested.zip/forwarded.eml": "eml", "nested.zip/forwarded.eml/見積書.docx": "docx"})


def sevenzip(tmp):
    """7-Zip archives (every method 7-Zip writes, solid, AES with and without encrypted headers,
    nesting, a bomb) and standalone bzip2 / xz files, from files already in the corpus. Names are
    passed to 7-Zip as UTF-8 (C.UTF-8 locale): a 7z stores UTF-16 names, as 7-Zip on Windows
    writes them."""
    d = os.path.join(tmp, "7z")
    os.makedirs(d, exist_ok=True)
    env = dict(os.environ, LANG="C.UTF-8", LC_ALL="C.UTF-8")
    z7 = lambda args: subprocess.run(["7z"] + args, cwd=d, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    open(os.path.join(d, "メモ.txt"), "wb").write(("個人番号：%s\n" % MYNUM[0]).encode("cp932"))
    shutil.copy(path("docs", "顧客一覧.xlsx"), os.path.join(d, "顧客一覧.xlsx"))
    shutil.copy(path("docs", "見積書.zip"), os.path.join(d, "見積書.zip"))
    memo = lambda name: {"detector": "jp_my_number", "value": MYNUM[0], "location": name + "/メモ.txt"}
    sheet = lambda name: {"detector": "jp_my_number", "value": MYNUM[1], "location": name + "/顧客一覧.xlsx", "sheet": "顧客一覧", "cell": "B2"}
    def out(name, where="docs"):
        full = os.path.abspath(path(where, name))
        if os.path.exists(full):
            os.remove(full)  # `7z a` would add to it
        return full
    # The default (LZMA2, solid) with a text, a workbook and a zip inside.
    z7(["a", "-ms=on", out("archive.7z"), "メモ.txt", "顧客一覧.xlsx", "見積書.zip"])
    expect("docs/archive.7z", [memo("archive.7z"), sheet("archive.7z"),
                               {"detector": "jp_my_number", "value": MYNUM[0], "location": "archive.7z/見積書.zip/メモ.txt"}],
           kinds={"archive.7z": "7z", "archive.7z/顧客一覧.xlsx": "xlsx", "archive.7z/見積書.zip": "zip", "archive.7z/メモ.txt": "text"})
    # One archive per method 7-Zip writes into a 7z.
    for method in ["LZMA", "PPMd", "BZip2", "Deflate", "Copy"]:
        name = "method-%s.7z" % method.lower()
        z7(["a", "-m0=" + method, out(name), "メモ.txt", "顧客一覧.xlsx"])
        expect("docs/" + name, [memo(name), sheet(name)], kinds={name: "7z"})
    # AES-256: names readable, contents encrypted (PPAP); then headers encrypted as well.
    z7(["a", "-p" + PASSWORD, out("ppap.7z"), "メモ.txt"])
    expect("docs/ppap.7z", kinds={"ppap.7z": "7z"}, unscannable=[{"location": "ppap.7z/メモ.txt", "reason": "encrypted"}])
    z7(["a", "-p" + PASSWORD, "-mhe=on", out("ppap-headers.7z"), "メモ.txt"])
    expect("docs/ppap-headers.7z", kinds={"ppap-headers.7z": "7z"}, unscannable=[{"location": "ppap-headers.7z", "reason": "encrypted"}])
    # Standalone compressed files (bzip2 and xz tools).
    for tool, ext in [("bzip2", "bz2"), ("xz", "xz")]:
        data = subprocess.run([tool, "-c", path("docs", "名簿_sjis.csv")], check=True, stdout=subprocess.PIPE).stdout
        name = "名簿_sjis.csv." + ext
        open(path("docs", name), "wb").write(data)
        expect("docs/" + name, [{"detector": "jp_my_number", "value": MYNUM[1], "location": name + "/名簿_sjis.csv"}],
               kinds={name: {"bz2": "bzip2", "xz": "xz"}[ext], name + "/名簿_sjis.csv": "csv"})
    # A bomb: 1 GB of zeros in one LZMA2 entry (about 150 KB).
    with open(os.path.join(d, "zeros.bin"), "wb") as f:
        block = b"\0" * (1 << 20)
        for _ in range(1000):
            f.write(block)
    z7(["a", "-mx=9", out("bomb.7z", "hostile"), "zeros.bin"])
    os.remove(os.path.join(d, "zeros.bin"))
    expect("hostile/bomb.7z", unscannable=[{"location": "bomb.7z/zeros.bin", "reason": "limit_exceeded"}])


def outlook(tmp):
    """Outlook items written by msgforge (a .msg writer from PyPI; no Outlook here): a forwarded
    quotation with a body, To/Cc recipients, a workbook and a zip attached; the same .msg in a
    zip and attached to a mail."""
    from msgforge import Message
    xlsx = open(path("docs", "顧客一覧.xlsx"), "rb").read()
    z = open(path("docs", "見積書.zip"), "rb").read()
    m = Message(
        subject="転送: 見積書の送付",
        text_body="各位\n\n転送します。担当者の個人番号：%s\nよろしくお願いいたします。\n" % MYNUM[2],
        to=[("tanaka@partner.example.com", "田中 一郎")],
        cc=[("sales@example.co.jp", "営業部")],
        sender=("taro@example.co.jp", "山田 太郎"),
    )
    m.attach_bytes("見積書.xlsx", xlsx)
    m.attach_bytes("見積書.zip", z)
    data = m.as_bytes()
    open(path("docs", "転送.msg"), "wb").write(data)
    inner = lambda p: [
        {"detector": "jp_my_number", "value": MYNUM[2], "location": p + "/body"},
        {"detector": "jp_my_number", "value": MYNUM[1], "location": p + "/見積書.xlsx", "sheet": "顧客一覧", "cell": "B2"},
        {"detector": "jp_my_number", "value": MYNUM[0], "location": p + "/見積書.zip/メモ.txt"},
    ]
    kinds = lambda p: {p: "msg", p + "/見積書.xlsx": "xlsx", p + "/見積書.zip": "zip"}
    expect("docs/転送.msg", inner("転送.msg"), kinds=kinds("転送.msg"),
           message={"subject": "転送: 見積書の送付", "to": ["田中 一郎 <tanaka@partner.example.com>"], "cc": ["営業部 <sales@example.co.jp>"]})
    # HTML only: msgforge also writes the text it derives and the HTML wrapped in compressed RTF.
    h = Message(subject="カード情報", html_body="<p>カード番号：<b>%s</b></p>" % CARDS[2], to=[("a@example.com", "A")])
    open(path("docs", "html.msg"), "wb").write(h.as_bytes())
    expect("docs/html.msg", [{"detector": "credit_card", "value": CARDS[2], "location": "html.msg/body"}], kinds={"html.msg": "msg"})
    # In a zip, and attached to a mail.
    with zipfile.ZipFile(path("docs", "msg-in.zip"), "w", zipfile.ZIP_DEFLATED) as zz:
        zz.writestr("転送.msg", data)
    expect("docs/msg-in.zip", inner("msg-in.zip/転送.msg"), kinds=dict(kinds("msg-in.zip/転送.msg"), **{"msg-in.zip": "zip"}))
    open(path("mail", "09-msg-attached.eml"), "wb").write(simple_message("Fw: 見積書", "転送メールを添付します。", [("転送.msg", data)]))
    expect("mail/09-msg-attached.eml", inner("転送.msg"), kinds=kinds("転送.msg"))


def my_number(base11):
    """A My Number: 11 digits and their check digit."""
    d = [int(c) for c in base11]
    t = sum(d[10 - n + 1] * (n + 1 if n <= 6 else n - 5) for n in range(1, 12))
    r = t % 11
    return base11 + str(0 if r <= 1 else 11 - r)


def tables(tmp):
    """Customer lists where the label is only in the column header: a 10,000-row CSV as Excel
    writes it (CP932, CRLF, a title row), the same list as xlsx and ods by LibreOffice, and a
    40-row table in docx, odt and HTML. The order-number column holds 12-digit numbers with
    valid My Number check digits: decoys that only the header tells apart."""
    import random
    rnd = random.Random(20261205)
    header = ["氏名", "個人番号", "携帯電話", "電話番号", "注文番号", "備考"]
    def rows(n):
        out = []
        for i in range(n):
            out.append(["顧客%05d" % i, my_number("%011d" % rnd.randrange(10**10, 10**11)),
                        "090%08d" % rnd.randrange(10**8), "03-%04d-%04d" % (rnd.randrange(10**4), rnd.randrange(10**4)),
                        my_number("%011d" % rnd.randrange(10**10, 10**11)), "なし"])
        return out
    big = rows(10000)
    lines = ["顧客名簿（2026年12月）,,,,,", ",,,,,", ",".join(header)] + [",".join(r) for r in big]
    open(path("docs", "顧客名簿_10000.csv"), "wb").write(("\r\n".join(lines) + "\r\n").encode("cp932"))
    decoys = lambda rs: [{"detector": "jp_my_number", "value": r[4]} for r in rs[::97]]
    name = "顧客名簿_10000.csv"
    expect("docs/" + name, [{"detector": "jp_my_number", "value": r[1], "location": name} for r in big[::997]],
           kinds={name: "csv"}, counts={"jp_my_number": 10000, "jp_phone": 20000}, absent=decoys(big))
    # The same list in a workbook (header in row 3, under a title), converted by LibreOffice.
    src = os.path.join(tmp, "顧客名簿_10000.fods")
    open(src, "w", encoding="utf-8").write(fods([("名簿", [["顧客名簿（2026年12月）"], [], header] + big)]))
    for fmt, ext in [("xlsx", "xlsx"), ("ods", "ods")]:
        soffice(src, fmt, tmp)
        name = "顧客名簿_10000." + ext
        shutil.copy(os.path.join(tmp, name), path("docs", name))
        expect("docs/" + name, [{"detector": "jp_my_number", "value": r[1], "location": name, "sheet": "名簿",
                                 "cell": "B%d" % (i + 4)} for i, r in list(enumerate(big))[::997]],
               kinds={name: ext}, counts={"jp_my_number": 10000, "jp_phone": 20000}, absent=decoys(big))
    # A 40-row table in running documents: a heading, then the table.
    small = rows(40)
    cell = lambda c: "<table:table-cell office:value-type=\"string\"><text:p>%s</text:p></table:table-cell>" % c
    table = ('<table:table table:name="顧客"><table:table-column table:number-columns-repeated="6"/>%s</table:table>'
             % "".join("<table:table-row>%s</table:table-row>" % "".join(cell(c) for c in r) for r in [header] + small))
    doc = fodt(["顧客一覧（社外秘）"], "顧客一覧", "山田太郎").replace("</office:text>", table + "</office:text>")
    src = os.path.join(tmp, "顧客表.fodt")
    open(src, "w", encoding="utf-8").write(doc)
    for fmt, ext in [("docx", "docx"), ("odt", "odt")]:
        soffice(src, fmt, tmp)
        name = "顧客表." + ext
        shutil.copy(os.path.join(tmp, name), path("docs", name))
        expect("docs/" + name, [{"detector": "jp_my_number", "value": r[1], "location": name} for r in small[::7]],
               kinds={name: ext}, counts={"jp_my_number": 40, "jp_phone": 80}, absent=decoys(small))
    html = "<html><body><h1>顧客一覧</h1><table>%s</table></body></html>" % "".join(
        "<tr>%s</tr>\n" % "".join("<td>%s</td>" % c for c in r) for r in [header] + small)
    open(path("docs", "顧客表.html"), "wb").write(html.encode("utf-8"))
    expect("docs/顧客表.html", [{"detector": "jp_my_number", "value": r[1], "location": "顧客表.html"} for r in small[::7]],
           kinds={"顧客表.html": "html"}, counts={"jp_my_number": 40, "jp_phone": 80}, absent=decoys(small))


def simple_message(subject, body, attachments, charset="iso-2022-jp"):
    m = MIMEMultipart()
    m["Subject"] = email.header.Header(subject, charset).encode()
    m["From"] = "山田 太郎 <taro@example.co.jp>"
    m["To"] = "partner@example.com"
    m["Date"] = "Mon, 02 Nov 2026 10:00:00 +0900"
    m["Message-ID"] = "<gen-%d@example.co.jp>" % abs(hash(subject))
    m.attach(MIMEText(body, "plain", charset))
    for name, data in attachments:
        part = MIMEApplication(data)
        part.add_header("Content-Disposition", "attachment", filename=("utf-8", "", name))
        m.attach(part)
    return m.as_bytes()


def messages(tmp, made):
    import email.header  # noqa: F401
    docx = open(made["docx"], "rb").read()
    xlsx = open(path("docs", "顧客一覧.xlsx"), "rb").read()
    # 1. ISO-2022-JP body, RFC 2231 and RFC 2047 names, a raw 8-bit CP932 name, a CP932 zip.
    m = MIMEMultipart()
    m["Subject"] = email.header.Header("【社外秘】見積書の送付", "iso-2022-jp").encode()
    m["From"] = email.header.Header("山田 太郎", "iso-2022-jp").encode() + " <taro@example.co.jp>"
    m["To"] = "tanaka@partner.example.com"
    m["Cc"] = "sales@example.co.jp"
    m["Date"] = "Mon, 02 Nov 2026 10:00:00 +0900"
    m["Message-ID"] = "<quote-1@example.co.jp>"
    m.attach(MIMEText("田中様\n\nお客様の個人番号は%sです。\nよろしくお願いいたします。\n" % MYNUM[2], "plain", "iso-2022-jp"))
    a = MIMEApplication(docx)
    a.add_header("Content-Disposition", "attachment", filename=("shift_jis", "", "見積書.docx"))  # RFC 2231
    m.attach(a)
    b = MIMEApplication(xlsx)
    b.add_header("Content-Disposition", "attachment")
    b.set_param("filename", email.header.Header("顧客一覧.xlsx", "shift_jis").encode(), header="Content-Disposition")  # RFC 2047 in quotes
    m.attach(b)
    c = MIMEText("氏名,カード番号\n佐藤,%s\n" % CARDS[2], "csv", "shift_jis")
    c.add_header("Content-Disposition", "attachment", filename="RAWNAME.csv")
    m.attach(c)
    z = MIMEApplication(open(path("docs", "見積書.zip"), "rb").read())
    z.add_header("Content-Disposition", "attachment", filename=("utf-8", "", "見積書.zip"))
    m.attach(z)
    raw = m.as_bytes().replace(b"RAWNAME.csv", "生名前.csv".encode("cp932"))
    open(path("mail", "01-iso2022jp-attachments.eml"), "wb").write(raw)
    expect("mail/01-iso2022jp-attachments.eml", [
        {"detector": "confidential_marking", "value": "社外秘", "location": "subject"},
        {"detector": "jp_my_number", "value": MYNUM[2], "location": "body"},
        {"detector": "jp_my_number", "value": MYNUM[0], "location": "見積書.docx"},
        {"detector": "jp_my_number", "value": MYNUM[1], "location": "顧客一覧.xlsx", "sheet": "顧客一覧", "cell": "B2"},
        {"detector": "credit_card", "value": CARDS[2], "location": "生名前.csv"},
        {"detector": "jp_my_number", "value": MYNUM[0], "location": "見積書.zip/メモ.txt"},
        {"detector": "jp_my_number", "value": MYNUM[1], "location": "見積書.zip/inner/顧客一覧.xlsx", "sheet": "顧客一覧", "cell": "B2"},
    ], kinds={"見積書.docx": "docx", "顧客一覧.xlsx": "xlsx", "生名前.csv": "csv", "見積書.zip": "zip"},
        message={"subject": "【社外秘】見積書の送付", "to": ["tanaka@partner.example.com"], "cc": ["sales@example.co.jp"]})
    # 2. multipart/alternative: the same card in text and HTML is one finding, at body.
    m = MIMEMultipart("alternative")
    m["Subject"] = "Card details"
    m["From"] = "olivia@example.com"
    m["To"] = "bob@partner.example.com"
    m.attach(MIMEText("Card number: %s\n" % CARDS[0], "plain", "utf-8"))
    m.attach(MIMEText("<html><body><p>Card number: <b>%s</b></p></body></html>" % CARDS[0], "html", "utf-8"))
    open(path("mail", "02-alternative.eml"), "wb").write(m.as_bytes())
    expect("mail/02-alternative.eml", [{"detector": "credit_card", "value": CARDS[0], "location": "body"}], message={"subject": "Card details"})
    # 3. A forwarded message (EUC-JP) holding a spreadsheet: forwarded.eml/契約者一覧.xlsx.
    inner = MIMEMultipart()
    inner["Subject"] = email.header.Header("顧客データ", "euc-jp").encode()
    inner["From"] = "suzuki@example.co.jp"
    inner["To"] = "taro@example.co.jp"
    inner.attach(MIMEText("契約者の一覧です。\n", "plain", "euc-jp"))
    x = MIMEApplication(xlsx)
    x.add_header("Content-Disposition", "attachment", filename=("utf-8", "", "契約者一覧.xlsx"))
    inner.attach(x)
    outer = MIMEMultipart()
    outer["Subject"] = email.header.Header("転送: 顧客データ", "iso-2022-jp").encode()
    outer["From"] = "taro@example.co.jp"
    outer["To"] = "external@another.example.net"
    outer.attach(MIMEText("転送します。\n", "plain", "iso-2022-jp"))
    fw = MIMEMessage(inner)
    fw.add_header("Content-Disposition", "attachment", filename="forwarded.eml")
    outer.attach(fw)
    open(path("mail", "03-forwarded.eml"), "wb").write(outer.as_bytes())
    expect("mail/03-forwarded.eml", [
        {"detector": "jp_my_number", "value": MYNUM[1], "location": "forwarded.eml/契約者一覧.xlsx", "sheet": "顧客一覧", "cell": "B2"},
    ], kinds={"forwarded.eml": "eml", "forwarded.eml/契約者一覧.xlsx": "xlsx"})
    # 4. PPAP: an encrypted zip, then the password in a second mail.
    open(path("mail", "04a-ppap-zip.eml"), "wb").write(simple_message("資料送付", "資料を送付します。パスワードは別送します。", [("資料.zip", open(path("docs", "ppap_zipcrypto.zip"), "rb").read())]))
    expect("mail/04a-ppap-zip.eml", kinds={"資料.zip": "zip"}, unscannable=[{"location": "資料.zip/メモ.txt", "reason": "encrypted"}])
    open(path("mail", "04b-ppap-password.eml"), "wb").write(simple_message("パスワード送付", "先ほどの資料のパスワードをお送りします。\nパスワード：%s\n" % PASSWORD, []))
    expect("mail/04b-ppap-password.eml", message={"subject": "パスワード送付"})
    # 5. winmail.dat (TNEF) with a CSV inside.
    tnef = build_tnef("社員.csv", ("社員番号,個人番号\n1001,%s\n" % MYNUM[3]).encode("cp932"))
    open(path("mail", "05-tnef.eml"), "wb").write(simple_message("Outlook", "winmail.dat を添付します。", [("winmail.dat", tnef)]))
    expect("mail/05-tnef.eml", [{"detector": "jp_my_number", "value": MYNUM[3], "location": "winmail.dat/社員.csv"}],
           kinds={"winmail.dat": "tnef", "winmail.dat/社員.csv": "csv"})
    # 6. Shift_JIS labelled CP932, and an unlabeled Shift_JIS body.
    body = ("口座番号：普通 3948271（みずほ銀行 渋谷支店）\nマイナンバー %s\n" % MYNUM[4]).encode("cp932")
    raw = (b"From: a@example.co.jp\r\nTo: b@example.com\r\nSubject: cp932\r\nMIME-Version: 1.0\r\n"
           b"Content-Type: multipart/mixed; boundary=XX\r\n\r\n--XX\r\nContent-Type: text/plain; charset=CP932\r\n"
           b"Content-Transfer-Encoding: 8bit\r\n\r\n" + body + b"\r\n--XX\r\nContent-Type: text/plain\r\n"
           b"Content-Transfer-Encoding: base64\r\n\r\n" + __import__("base64").encodebytes(("社外秘：カード %s\n" % CARDS[1]).encode("cp932")) + b"\r\n--XX--\r\n")
    open(path("mail", "06-cp932.eml"), "wb").write(raw)
    expect("mail/06-cp932.eml", [
        {"detector": "jp_bank_account", "value": "3948271", "location": "body"},
        {"detector": "jp_my_number", "value": MYNUM[4], "location": "body"},
        {"detector": "credit_card", "value": CARDS[1], "location": "body"},
    ])
    # 7. A Shift_JIS character split across two encoded-words in the subject.
    s = "極秘資料".encode("cp932")
    import base64 as b64
    w1 = "=?shift_jis?B?%s?=" % b64.b64encode(s[:3]).decode()
    w2 = "=?shift_jis?B?%s?=" % b64.b64encode(s[3:]).decode()
    raw = ("From: a@example.co.jp\r\nTo: b@example.com\r\nSubject: %s\r\n %s\r\n\r\nbody\r\n" % (w1, w2)).encode()
    open(path("mail", "07-split-encoded-word.eml"), "wb").write(raw)
    expect("mail/07-split-encoded-word.eml", [{"detector": "confidential_marking", "value": "極秘", "location": "subject"}], message={"subject": "極秘資料"})


def typical(made):
    """A typical outbound mail for the benchmarks: a body and a docx, an xlsx, a PDF and a zip of
    documents."""
    files = [("見積書.docx", open(made["docx"], "rb").read()), ("顧客一覧.xlsx", open(path("docs", "顧客一覧.xlsx"), "rb").read()),
             ("見積書.pdf", open(path("docs", "見積書.pdf"), "rb").read()), ("資料一式.zip", open(path("docs", "見積書.zip"), "rb").read())]
    body = ("田中様\n\nいつもお世話になっております。\n" * 20) + "ご依頼の資料一式をお送りします。\n山田\nTEL 03-1234-5678\n"
    open(path("mail", "08-typical.eml"), "wb").write(simple_message("資料送付の件", body, files))
    expect("mail/08-typical.eml", [
        {"detector": "jp_my_number", "value": MYNUM[0], "location": "見積書.docx"},
        {"detector": "jp_my_number", "value": MYNUM[1], "location": "顧客一覧.xlsx", "sheet": "顧客一覧", "cell": "B2"},
        {"detector": "jp_my_number", "value": MYNUM[0], "location": "見積書.pdf", "page": 1},
        {"detector": "jp_my_number", "value": MYNUM[0], "location": "資料一式.zip/メモ.txt"},
    ], kinds={"見積書.docx": "docx", "顧客一覧.xlsx": "xlsx", "見積書.pdf": "pdf", "資料一式.zip": "zip"})


def build_tnef(name, data):
    """A minimal TNEF stream: signature, key, one attachment (title + data), checksums."""
    def attr(level, aid, payload):
        return struct.pack("<BII", level, aid, len(payload)) + payload + struct.pack("<H", sum(payload) & 0xFFFF)
    out = struct.pack("<IH", 0x223E9F78, 0x0001)
    out += attr(1, 0x00089006, struct.pack("<I", 0x00010000))  # attTnefVersion
    out += attr(2, 0x00069002, b"\x01\x00" + b"\x00" * 12)      # attAttachRendData
    out += attr(2, 0x00018010, name.encode("cp932") + b"\x00")  # attAttachTitle
    out += attr(2, 0x0006800F, data)                             # attAttachData
    return out


def hostile(tmp):
    """Bombs, deep nesting, broken MIME, truncated and sparse spreadsheets."""
    h = lambda n: path("hostile", n)
    # 1e9 zero bytes, deflated (about 1 MB).
    with zipfile.ZipFile(h("bomb.zip"), "w", zipfile.ZIP_DEFLATED) as z:
        with z.open("zeros.bin", "w", force_zip64=True) as f:
            block = b"\0" * (1 << 20)
            for _ in range(1000):
                f.write(block)
    expect("hostile/bomb.zip", unscannable=[{"location": "bomb.zip/zeros.bin", "reason": "limit_exceeded"}])
    # 42.zip-style: 10 x 10 x 10 MiB of zeros.
    leaf = io.BytesIO()
    with zipfile.ZipFile(leaf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("zeros.bin", b"\0" * (10 << 20))
    mid = io.BytesIO()
    with zipfile.ZipFile(mid, "w", zipfile.ZIP_DEFLATED) as z:
        for i in range(10):
            z.writestr("leaf%d.zip" % i, leaf.getvalue())
    with zipfile.ZipFile(h("nested-bomb.zip"), "w", zipfile.ZIP_DEFLATED) as z:
        for i in range(10):
            z.writestr("mid%d.zip" % i, mid.getvalue())
    expect("hostile/nested-bomb.zip", unscannable=[{"location": "nested-bomb.zip/mid2.zip/leaf5.zip/zeros.bin", "reason": "limit_exceeded"}])
    # 12 levels of zip in zip: the container depth limit (10) is hit.
    data = b"secret"
    for i in range(12):
        b = io.BytesIO()
        with zipfile.ZipFile(b, "w") as z:
            z.writestr("l%d.zip" % i if i else "leaf.txt", data)
        data = b.getvalue()
    open(h("deep.zip"), "wb").write(data)
    expect("hostile/deep.zip", unscannable=[{"location": "deep.zip" + "".join("/l%d.zip" % i for i in range(11, 0, -1)), "reason": "limit_exceeded"}])
    # 5,000 parts and 100-deep multiparts.
    parts = "".join("--B\r\nContent-Type: text/plain\r\n\r\npart %d\r\n" % i for i in range(5000))
    open(h("5000-parts.eml"), "w").write("Subject: many\r\nContent-Type: multipart/mixed; boundary=B\r\n\r\n" + parts + "--B--\r\n")
    expect("hostile/5000-parts.eml")
    body = "個人番号 %s\r\n" % MYNUM[0]
    for i in range(100):
        body = "Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n%s\r\n--b%d--\r\n" % (i, i, body, i)
    open(h("100-deep.eml"), "w").write("Subject: deep\r\n" + body)
    expect("hostile/100-deep.eml", unscannable=[{"location": "body", "reason": "limit_exceeded"}])
    # Truncated base64, missing end boundary, invalid header bytes, empty.
    docx_b64 = __import__("base64").encodebytes(open(path("docs", "見積書.docx"), "rb").read()).decode()
    open(h("truncated-base64.eml"), "w").write(
        "Subject: t\r\nContent-Type: multipart/mixed; boundary=B\r\n\r\n--B\r\nContent-Type: application/octet-stream\r\n"
        "Content-Disposition: attachment; filename=\"x.docx\"\r\nContent-Transfer-Encoding: base64\r\n\r\n" + docx_b64[: len(docx_b64) // 2])
    expect("hostile/truncated-base64.eml", unscannable=[{"location": "x.docx", "reason": "corrupt"}])
    open(h("no-end-boundary.eml"), "w").write(
        "Subject: n\r\nContent-Type: multipart/mixed; boundary=B\r\n\r\n--B\r\nContent-Type: text/plain\r\n\r\n個人番号 %s\r\n" % MYNUM[0])
    expect("hostile/no-end-boundary.eml", [{"detector": "jp_my_number", "value": MYNUM[0], "location": "body"}])
    open(h("bad-header-bytes.eml"), "wb").write(b"Subject: \xff\xfe\x00\x01bad\r\nFrom: \x80\x81@\x82\r\n\r\nbody \xff\xff\r\n")
    expect("hostile/bad-header-bytes.eml")
    open(h("empty.eml"), "wb").write(b"")
    expect("hostile/empty.eml")
    # A truncated xlsx and a sparse one (A1 and XFD1048576: dense reading would allocate 17 G cells).
    x = open(path("docs", "顧客一覧.xlsx"), "rb").read()
    open(h("truncated.xlsx"), "wb").write(x[: len(x) // 2])
    expect("hostile/truncated.xlsx", unscannable=[{"location": "truncated.xlsx", "reason": "corrupt"}])
    with zipfile.ZipFile(h("sparse.xlsx"), "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml", '<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="xml" ContentType="application/xml"/></Types>')
        z.writestr("xl/workbook.xml", '<?xml version="1.0"?><workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"><sheets><sheet name="S" sheetId="1" r:id="rId1"/></sheets></workbook>')
        z.writestr("xl/_rels/workbook.xml.rels", '<?xml version="1.0"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="worksheet" Target="worksheets/sheet1.xml"/></Relationships>')
        z.writestr("xl/worksheets/sheet1.xml", '<?xml version="1.0"?><worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><dimension ref="A1:XFD1048576"/><sheetData><row r="1"><c r="A1" t="inlineStr"><is><t>個人番号</t></is></c></row><row r="1048576"><c r="XFD1048576" t="inlineStr"><is><t>%s</t></is></c></row></sheetData></worksheet>' % MYNUM[0])
    expect("hostile/sparse.xlsx", [{"detector": "jp_my_number", "value": MYNUM[0], "location": "sparse.xlsx", "sheet": "S", "cell": "XFD1048576"}])


def main():
    # --only GROUP: remake one group's files next to the committed corpus and merge its entries
    # into expected.json (sevenzip and outlook need no LibreOffice; tables does).
    only = sys.argv[sys.argv.index("--only") + 1] if "--only" in sys.argv else None
    if only:
        EXPECT.update(json.load(open(os.path.join(OUT, "expected.json"), encoding="utf-8")))
        with tempfile.TemporaryDirectory() as tmp:
            {"sevenzip": sevenzip, "outlook": outlook, "tables": tables}[only](tmp)
    else:
        if os.path.isdir(OUT):
            shutil.rmtree(OUT)
        os.makedirs(OUT)
        with tempfile.TemporaryDirectory() as tmp:
            made = documents(tmp)
            archives(tmp, made)
            sevenzip(tmp)
            messages(tmp, made)
            outlook(tmp)
            tables(tmp)
            typical(made)
            hostile(tmp)
    with open(os.path.join(OUT, "expected.json"), "w", encoding="utf-8") as f:
        json.dump(EXPECT, f, ensure_ascii=False, indent=1, sort_keys=True)
    print("wrote %d files and expected.json to %s" % (len(EXPECT), OUT))


if __name__ == "__main__":
    main()
