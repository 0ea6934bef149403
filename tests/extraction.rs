//! The extraction corpus (`corpus/extract`, made by `corpus/gen/generate.py` with LibreOffice,
//! Info-ZIP, 7-Zip, qpdf, msoffcrypto-tool, reportlab and Python's email package) against what
//! the generator planted (`corpus/extract/expected.json`). Every message is run with LF and with
//! CRLF line ends.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use ping32dlp::{Engine, ExtractOptions, Report, Scanner};
use serde_json::Value;

fn corpus() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus/extract")
}

fn expected() -> BTreeMap<String, Value> {
    serde_json::from_str(&std::fs::read_to_string(corpus().join("expected.json")).unwrap()).unwrap()
}

fn inspect(scanner: &mut Scanner, rel: &str, data: &[u8], opts: &ExtractOptions) -> Report {
    let name = rel.rsplit('/').next().unwrap();
    scanner.inspect_file(name, data, opts)
}

fn check(rel: &str, want: &Value, r: &Report, failures: &mut Vec<String>) {
    for f in want["findings"].as_array().unwrap() {
        let ok = r.findings.iter().any(|g| {
            g.detector == f["detector"].as_str().unwrap()
                && g.value.contains(f["value"].as_str().unwrap())
                && g.location == f["location"].as_str().unwrap()
                && f.get("sheet")
                    .is_none_or(|s| g.sheet.as_deref() == s.as_str())
                && f.get("cell")
                    .is_none_or(|c| g.cell.as_deref() == c.as_str())
                && f.get("page")
                    .is_none_or(|p| g.page.map(u64::from) == p.as_u64())
        });
        if !ok {
            failures.push(format!(
                "{rel}: missing {f}; got {:?}",
                r.findings
                    .iter()
                    .map(|g| (
                        &g.detector,
                        &g.value,
                        &g.location,
                        &g.sheet,
                        &g.cell,
                        g.page
                    ))
                    .collect::<Vec<_>>()
            ));
        }
    }
    for (loc, kind) in want["kinds"].as_object().unwrap() {
        match r.attachments.iter().find(|a| &a.location == loc) {
            Some(a) if a.kind.short() == kind.as_str().unwrap() => {}
            other => failures.push(format!(
                "{rel}: {loc} should be {kind}, is {:?}",
                other.map(|a| a.kind)
            )),
        }
    }
    // Exact counts per detector, and decoys that must not be reported.
    if let Some(counts) = want.get("counts").and_then(Value::as_object) {
        for (det, n) in counts {
            let got = r.findings.iter().filter(|f| &f.detector == det).count();
            if Some(got as u64) != n.as_u64() {
                failures.push(format!("{rel}: {got} {det} findings, want {n}"));
            }
        }
    }
    for a in want
        .get("absent")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let (det, v) = (
            a["detector"].as_str().unwrap(),
            a["value"].as_str().unwrap(),
        );
        if r.findings
            .iter()
            .any(|f| f.detector == det && f.normalized == v)
        {
            failures.push(format!("{rel}: decoy {v} reported as {det}"));
        }
    }
    for u in want["unscannable"].as_array().unwrap() {
        let ok = r.unscannable.iter().any(|g| {
            g.location == u["location"].as_str().unwrap()
                && g.reason.as_str() == u["reason"].as_str().unwrap()
        });
        if !ok {
            failures.push(format!(
                "{rel}: missing unscannable {u}; got {:?}",
                r.unscannable
            ));
        }
    }
    if let Some(m) = want["message"].as_object() {
        let got = r.message.as_ref();
        if let Some(s) = m.get("subject") {
            if got.and_then(|g| g.subject.as_deref()) != s.as_str() {
                failures.push(format!(
                    "{rel}: subject {:?}, want {s}",
                    got.map(|g| &g.subject)
                ));
            }
        }
        for (k, list) in [("to", got.map(|g| &g.to)), ("cc", got.map(|g| &g.cc))] {
            if let Some(want_list) = m.get(k) {
                let want_list: Vec<&str> = want_list
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_str().unwrap())
                    .collect();
                if list.map(|l| l.iter().map(String::as_str).collect::<Vec<_>>())
                    != Some(want_list.clone())
                {
                    failures.push(format!("{rel}: {k} {list:?}, want {want_list:?}"));
                }
            }
        }
    }
}

fn line_ends(data: &[u8], crlf: bool) -> Vec<u8> {
    let lf: Vec<u8> = data.iter().copied().filter(|&b| b != b'\r').collect();
    if !crlf {
        return lf;
    }
    let mut out = Vec::with_capacity(lf.len() + lf.len() / 40);
    for b in lf {
        if b == b'\n' {
            out.push(b'\r');
        }
        out.push(b);
    }
    out
}

#[test]
fn corpus_yields_what_was_planted() {
    let mut scanner = Scanner::new(Arc::new(Engine::builtin()));
    let opts = ExtractOptions::default();
    let mut failures = Vec::new();
    let exp = expected();
    assert!(exp.len() >= 40);
    for (rel, want) in &exp {
        let data = std::fs::read(corpus().join(rel)).unwrap();
        if rel.ends_with(".eml") && !rel.starts_with("hostile/") {
            for crlf in [false, true] {
                let r = inspect(&mut scanner, rel, &line_ends(&data, crlf), &opts);
                check(
                    &format!("{rel} ({})", if crlf { "CRLF" } else { "LF" }),
                    want,
                    &r,
                    &mut failures,
                );
            }
        } else {
            let r = inspect(&mut scanner, rel, &data, &opts);
            check(rel, want, &r, &mut failures);
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn ppap_password_from_the_second_mail_opens_the_first() {
    let mut scanner = Scanner::new(Arc::new(Engine::builtin()));
    let pw_mail = std::fs::read(corpus().join("mail/04b-ppap-password.eml")).unwrap();
    let r = scanner.inspect_file("04b.eml", &pw_mail, &ExtractOptions::default());
    assert_eq!(r.password_candidates, ["Xy7#kP2q"]);
    let zip_mail = std::fs::read(corpus().join("mail/04a-ppap-zip.eml")).unwrap();
    let opts = ExtractOptions {
        passwords: r.password_candidates.clone(),
        ..ExtractOptions::default()
    };
    let r = scanner.inspect_file("04a.eml", &zip_mail, &opts);
    assert!(r.unscannable.is_empty(), "{:?}", r.unscannable);
    assert!(
        r.findings
            .iter()
            .any(|f| f.detector == "jp_my_number" && f.location == "資料.zip/メモ.txt"),
        "{:?}",
        r.findings
    );
    for zip in ["docs/ppap_aes.zip", "docs/ppap_zipcrypto.zip"] {
        let data = std::fs::read(corpus().join(zip)).unwrap();
        let r = scanner.inspect_file("x.zip", &data, &opts);
        assert!(
            r.findings.iter().any(|f| f.detector == "jp_my_number"),
            "{zip}: {:?} {:?}",
            r.findings,
            r.unscannable
        );
        let wrong = ExtractOptions {
            passwords: vec!["wrong-pass".into()],
            ..ExtractOptions::default()
        };
        let r = scanner.inspect_file("x.zip", &data, &wrong);
        assert!(
            r.unscannable
                .iter()
                .any(|u| u.reason.as_str() == "encrypted"),
            "{zip}: {:?}",
            r.unscannable
        );
    }
}

#[test]
fn attachment_metadata() {
    let mut scanner = Scanner::new(Arc::new(Engine::builtin()));
    let data = std::fs::read(corpus().join("mail/01-iso2022jp-attachments.eml")).unwrap();
    let r = scanner.inspect_file("m.eml", &data, &ExtractOptions::default());
    let docx = r
        .attachments
        .iter()
        .find(|a| a.location == "見積書.docx")
        .expect("docx");
    assert_eq!(
        docx.declared_type.as_deref(),
        Some("application/octet-stream")
    );
    assert_eq!(docx.sha256.len(), 64);
    assert!(
        docx.properties
            .iter()
            .any(|(k, v)| k == "title" && v == "御見積書"),
        "{:?}",
        docx.properties
    );
    assert!(
        docx.properties
            .iter()
            .any(|(k, v)| k == "author" && v == "山田太郎"),
        "{:?}",
        docx.properties
    );
    let photo = std::fs::read(corpus().join("docs/photo.jpg")).unwrap();
    let r = scanner.inspect_file("photo.jpg", &photo, &ExtractOptions::default());
    assert!(r.attachments[0].extension_mismatch);
    let m = r.message.as_ref();
    assert!(m.is_none());
}

#[test]
fn hostile_inputs_are_bounded_and_reported() {
    let mut scanner = Scanner::new(Arc::new(Engine::builtin()));
    let opts = ExtractOptions::default();
    for entry in std::fs::read_dir(corpus().join("hostile")).unwrap() {
        let p = entry.unwrap().path();
        let data = std::fs::read(&p).unwrap();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        let r = scanner.inspect_file(&name, &data, &opts);
        // Bounded: the text kept never exceeds the per-message budget.
        assert!(r.findings.len() < 100_000, "{name}");
        if name.contains("bomb") || name == "deep.zip" || name == "100-deep.eml" {
            assert!(
                r.unscannable
                    .iter()
                    .any(|u| u.reason.as_str() == "limit_exceeded"),
                "{name}: {:?}",
                r.unscannable
            );
        }
    }
}

#[test]
fn every_byte_prefix_of_a_message_is_safe() {
    // Truncations of a real message at many points: never a panic.
    let data = std::fs::read(corpus().join("mail/01-iso2022jp-attachments.eml")).unwrap();
    let mut scanner = Scanner::new(Arc::new(Engine::builtin()));
    let step = (data.len() / 200).max(1);
    for end in (0..data.len()).step_by(step) {
        let _ = scanner.inspect_file("m.eml", &data[..end], &ExtractOptions::default());
    }
}

/// Every named limit, made small enough for a corpus file to hit it: reported as
/// `limit_exceeded` with the limit's name, and what came before is still inspected.
#[test]
fn each_limit_is_reported_by_name() {
    let mut scanner = Scanner::new(Arc::new(Engine::builtin()));
    let read = |rel: &str| std::fs::read(corpus().join(rel)).unwrap();
    type Tighten = Box<dyn Fn(&mut ping32dlp::Limits)>;
    let cases: Vec<(&str, &str, Tighten)> = vec![
        (
            "hostile/5000-parts.eml",
            "mime_parts",
            Box::new(|l| l.mime_parts = 100),
        ),
        ("hostile/100-deep.eml", "mime_depth", Box::new(|_| {})),
        ("hostile/deep.zip", "container_depth", Box::new(|_| {})),
        (
            "docs/見積書.zip",
            "archive_entries",
            Box::new(|l| l.archive_entries = 1),
        ),
        (
            "mail/08-typical.eml",
            "message_entries",
            Box::new(|l| l.message_entries = 3),
        ),
        ("hostile/bomb.zip", "compression_ratio", Box::new(|_| {})),
        (
            "docs/zip64.zip",
            "entry_size",
            Box::new(|l| l.entry_bytes = 10),
        ),
        (
            "docs/nested.zip",
            "message_decompressed",
            Box::new(|l| l.message_decompressed = 1000),
        ),
        (
            "docs/見積書.docx",
            "text_per_object",
            Box::new(|l| l.text_per_object = 20),
        ),
        (
            "mail/08-typical.eml",
            "text_per_message",
            Box::new(|l| l.text_per_message = 200),
        ),
        ("docs/顧客一覧.xlsx", "cells", Box::new(|l| l.cells = 3)),
        (
            "docs/見積書.pdf",
            "pdf_objects",
            Box::new(|l| l.pdf_objects = 2),
        ),
        (
            "docs/見積書.pdf",
            "pdf_pages",
            Box::new(|l| l.pdf_pages = 0),
        ),
        (
            "mail/08-typical.eml",
            "raw_message",
            Box::new(|l| l.raw_message = 1000),
        ),
        (
            "mail/08-typical.eml",
            "time_budget",
            Box::new(|l| l.time_budget = std::time::Duration::ZERO),
        ),
    ];
    for (rel, limit, tighten) in cases {
        let mut opts = ExtractOptions::default();
        tighten(&mut opts.limits);
        let r = inspect(&mut scanner, rel, &read(rel), &opts);
        assert!(
            r.unscannable
                .iter()
                .any(|u| u.reason.as_str() == "limit_exceeded" && u.detail == limit),
            "{rel}: expected limit_exceeded {limit}, got {:?}",
            r.unscannable
        );
    }
    // What was read before a limit is still inspected: the first sheet cells of the workbook.
    let mut opts = ExtractOptions::default();
    opts.limits.cells = 6;
    let r = inspect(
        &mut scanner,
        "docs/顧客一覧.xlsx",
        &read("docs/顧客一覧.xlsx"),
        &opts,
    );
    assert!(
        r.findings
            .iter()
            .any(|f| f.detector == "jp_my_number" && f.cell.as_deref() == Some("B2")),
        "{:?}",
        r.findings
    );
}

#[test]
fn headers_and_passwords() {
    let mut scanner = Scanner::new(Arc::new(Engine::builtin()));
    let data = std::fs::read(corpus().join("mail/01-iso2022jp-attachments.eml")).unwrap();
    let r = scanner.inspect_file("m.eml", &data, &ExtractOptions::default());
    let m = r.message.unwrap();
    assert_eq!(m.from, ["山田 太郎 <taro@example.co.jp>"]);
    assert_eq!(m.message_id.as_deref(), Some("quote-1@example.co.jp"));
    assert_eq!(m.date.as_deref(), Some("2026-11-02T10:00:00+09:00"));
    let docx = r
        .attachments
        .iter()
        .find(|a| a.location == "見積書.docx")
        .unwrap();
    let raw: Vec<u8> = std::fs::read(corpus().join("docs/見積書.docx")).unwrap();
    assert_eq!(docx.sha256, ping32dlp::extract::sha256_hex(&raw));
    assert_eq!(docx.size, raw.len() as u64);
    // A PDF with a user password opens with it.
    let pdf = std::fs::read(corpus().join("docs/暗号化.pdf")).unwrap();
    let opts = ExtractOptions {
        passwords: vec!["userpw".into()],
        ..ExtractOptions::default()
    };
    let r = scanner.inspect_file("暗号化.pdf", &pdf, &opts);
    assert!(r.unscannable.is_empty(), "{:?}", r.unscannable);
    assert!(
        r.findings
            .iter()
            .any(|f| f.detector == "jp_my_number" && f.page == Some(1)),
        "{:?}",
        r.findings
    );
}

#[test]
fn sevenz_passwords_solid_blocks_and_limits() {
    let mut scanner = Scanner::new(Arc::new(Engine::builtin()));
    let read = |n: &str| std::fs::read(corpus().join("docs").join(n)).unwrap();
    let with = |pw: &[&str]| ExtractOptions {
        passwords: pw.iter().map(|p| p.to_string()).collect(),
        ..ExtractOptions::default()
    };
    // AES members and AES headers: the wrong password first, then the right one.
    for name in ["ppap.7z", "ppap-headers.7z"] {
        let r = scanner.inspect_file(name, &read(name), &with(&["wrong", "Xy7#kP2q"]));
        assert!(r.unscannable.is_empty(), "{name}: {:?}", r.unscannable);
        assert!(
            r.findings
                .iter()
                .any(|f| f.detector == "jp_my_number" && f.location == format!("{name}/メモ.txt")),
            "{name}: {:?}",
            r.findings
        );
        let r = scanner.inspect_file(name, &read(name), &with(&["wrong"]));
        assert!(r.findings.is_empty(), "{name}: {:?}", r.findings);
        let u: Vec<_> = r
            .unscannable
            .iter()
            .map(|u| (u.location.as_str(), u.reason.as_str(), u.detail.as_str()))
            .collect();
        if name == "ppap.7z" {
            // Readable headers: the member is named, with its size.
            assert_eq!(u, [("ppap.7z/メモ.txt", "encrypted", "7z_aes")]);
            let a = r
                .attachments
                .iter()
                .find(|a| a.location == "ppap.7z/メモ.txt");
            assert_eq!(a.map(|a| a.size), Some(23));
        } else {
            assert_eq!(u, [("ppap-headers.7z", "encrypted", "7z_headers")]);
        }
    }
    // A solid block cut by the entry limit: the member before is read, the one cut is reported,
    // and so is the later one that cannot be reached without decoding the rest of the block.
    let mut opts = ExtractOptions::default();
    opts.limits.entry_bytes = 1000;
    let r = scanner.inspect_file("archive.7z", &read("archive.7z"), &opts);
    let u: Vec<_> = r
        .unscannable
        .iter()
        .map(|u| (u.location.as_str(), u.detail.as_str()))
        .collect();
    assert!(
        u.contains(&("archive.7z/見積書.zip", "entry_size")),
        "{u:?}"
    );
    assert!(
        u.contains(&("archive.7z/顧客一覧.xlsx", "solid_block")),
        "{u:?}"
    );
    assert!(r
        .findings
        .iter()
        .any(|f| f.location == "archive.7z/メモ.txt"));
    // Entries over the limit are reported; truncated archives are corrupt, never a panic.
    let mut opts = ExtractOptions::default();
    opts.limits.archive_entries = 1;
    let r = scanner.inspect_file("method-lzma.7z", &read("method-lzma.7z"), &opts);
    assert!(r
        .unscannable
        .iter()
        .any(|u| u.location == "method-lzma.7z" && u.detail == "archive_entries"));
    let whole = read("archive.7z");
    for cut in [whole.len() / 3, whole.len() - 40, 40, 6] {
        let r = scanner.inspect_file("archive.7z", &whole[..cut], &ExtractOptions::default());
        assert!(
            r.unscannable.iter().any(
                |u| u.reason.as_str() == "corrupt" || u.reason.as_str() == "unsupported_format"
            ),
            "cut at {cut}: {:?}",
            r.unscannable
        );
    }
}

/// A .msg holding another .msg: Outlook's "forward as attachment". No tool here writes one, so
/// it is put together from the msgforge-made `転送.msg` with the cfb crate: an outer message
/// whose subject is an 8-bit string in code page 932, whose only body is RTF, and whose
/// attachment (method 5) is the whole `転送.msg` as an embedded message storage.
fn forwarded_msg(body_stream: (&str, Vec<u8>)) -> Vec<u8> {
    use std::io::{Cursor, Read, Write};
    let inner = std::fs::read(corpus().join("docs/転送.msg")).unwrap();
    let mut src = cfb::CompoundFile::open(Cursor::new(inner)).unwrap();
    let mut out = cfb::CompoundFile::create(Cursor::new(Vec::new())).unwrap();
    let prop = |tag: u32, v: u32| {
        let mut e = tag.to_le_bytes().to_vec();
        e.extend_from_slice(&6u32.to_le_bytes());
        e.extend_from_slice(&u64::from(v).to_le_bytes());
        e
    };
    let put = |out: &mut cfb::CompoundFile<Cursor<Vec<u8>>>, path: &str, data: &[u8]| {
        out.create_stream(path).unwrap().write_all(data).unwrap();
    };
    let mut props = vec![0u8; 32];
    props.extend(prop(0x3FFD_0003, 932)); // PR_MESSAGE_CODEPAGE
    put(&mut out, "/__properties_version1.0", &props);
    let (subject, _, _) = encoding_rs::SHIFT_JIS.encode("FW: 見積書（社外秘）");
    put(&mut out, "/__substg1.0_0037001E", &subject);
    put(&mut out, body_stream.0, &body_stream.1);
    let att = "/__attach_version1.0_#00000000";
    out.create_storage(att).unwrap();
    let mut props = vec![0u8; 8];
    props.extend(prop(0x3705_0003, 5)); // ATTACH_EMBEDDED_MSG
    put(&mut out, &format!("{att}/__properties_version1.0"), &props);
    let name: Vec<u8> = "転送.msg"
        .encode_utf16()
        .flat_map(u16::to_le_bytes)
        .collect();
    put(&mut out, &format!("{att}/__substg1.0_3001001F"), &name);
    let emb = format!("{att}/__substg1.0_3701000D");
    out.create_storage(&emb).unwrap();
    let entries: Vec<(String, bool)> = src
        .walk()
        .filter(|e| !e.is_root())
        .map(|e| (e.path().to_string_lossy().into_owned(), e.is_stream()))
        .collect();
    for (path, is_stream) in entries {
        let to = format!("{emb}{path}");
        if !is_stream {
            out.create_storage(&to).unwrap();
            continue;
        }
        let mut data = Vec::new();
        src.open_stream(&path)
            .unwrap()
            .read_to_end(&mut data)
            .unwrap();
        if path == "/__properties_version1.0" {
            // An embedded message's property header is 24 bytes, the top level's 32.
            data.drain(24..32);
        }
        put(&mut out, &to, &data);
    }
    out.flush().unwrap();
    out.into_inner().into_inner()
}

#[test]
fn msg_in_msg_codepage_strings_and_rtf_bodies() {
    let mut scanner = Scanner::new(Arc::new(Engine::builtin()));
    // A stored ("MELA") RTF body.
    let rtf = b"{\\rtf1\\ansi Card number 4742180967929089\\par}";
    let mut stored = ((rtf.len() + 12) as u32).to_le_bytes().to_vec();
    stored.extend_from_slice(&(rtf.len() as u32).to_le_bytes());
    stored.extend_from_slice(&0x414C_454Du32.to_le_bytes());
    stored.extend_from_slice(&[0u8; 4]);
    stored.extend_from_slice(rtf);
    // The LZFu-compressed RTF that msgforge wrote for html.msg (HTML encapsulated in RTF).
    let html_msg = std::fs::read(corpus().join("docs/html.msg")).unwrap();
    let mut c = cfb::CompoundFile::open(std::io::Cursor::new(html_msg)).unwrap();
    let mut lzfu = Vec::new();
    std::io::Read::read_to_end(
        &mut c.open_stream("/__substg1.0_10090102").unwrap(),
        &mut lzfu,
    )
    .unwrap();
    for (body, card) in [(stored, "4742180967929089"), (lzfu, "3589307666193455")] {
        let data = forwarded_msg(("/__substg1.0_10090102", body));
        let r = scanner.inspect_file("fw.msg", &data, &ExtractOptions::default());
        let m = r.message.as_ref().expect("message information");
        assert_eq!(m.subject.as_deref(), Some("FW: 見積書（社外秘）"));
        let has = |det: &str, loc: &str, value: &str| {
            r.findings
                .iter()
                .any(|f| f.detector == det && f.location == loc && f.value.contains(value))
        };
        assert!(has("credit_card", "fw.msg/body", card), "{:?}", r.findings);
        assert!(has("jp_my_number", "fw.msg/転送.msg/body", "440268599525"));
        assert!(has(
            "jp_my_number",
            "fw.msg/転送.msg/見積書.xlsx",
            "321223307923"
        ));
        assert!(has(
            "jp_my_number",
            "fw.msg/転送.msg/見積書.zip/メモ.txt",
            "768426846565"
        ));
        assert!(r
            .attachments
            .iter()
            .any(|a| a.location == "fw.msg/転送.msg" && a.kind.short() == "msg"));
        assert!(r.unscannable.is_empty(), "{:?}", r.unscannable);
    }
    // Truncated or damaged: reported, never a panic.
    let whole = std::fs::read(corpus().join("docs/転送.msg")).unwrap();
    for cut in [whole.len() / 2, 600, 512] {
        let r = scanner.inspect_file("転送.msg", &whole[..cut], &ExtractOptions::default());
        assert!(
            r.unscannable
                .iter()
                .any(|u| u.location.starts_with("転送.msg") && u.reason.as_str() == "corrupt"),
            "cut at {cut}: {:?}",
            r.unscannable
        );
    }
}

/// A My Number with a valid check digit from 11 digits.
fn my_number(base: u64) -> String {
    let d: Vec<u32> = format!("{base:011}")
        .bytes()
        .map(|b| u32::from(b - b'0'))
        .collect();
    let s: u32 = (1..=11)
        .map(|n| d[11 - n] * if n <= 6 { n as u32 + 1 } else { n as u32 - 5 })
        .sum();
    let r = s % 11;
    format!("{base:011}{}", if r <= 1 { 0 } else { 11 - r })
}

#[test]
fn column_headers_speak_for_whole_columns() {
    let mut scanner = Scanner::new(Arc::new(Engine::builtin()));
    // A title, a blank line, the header, then 300 rows: the header is thousands of characters
    // above most values. The order-number column holds numbers with valid check digits too.
    let mut rows = vec![
        "顧客一覧（2026年11月）".to_string(),
        String::new(),
        "氏名,個人番号,携帯電話,注文番号,備考".to_string(),
    ];
    for i in 0..300u64 {
        rows.push(format!(
            "顧客{i},{},090{:08},{},なし",
            my_number(10_000_000_000 + i * 7_919),
            12_340_000 + i,
            my_number(20_000_000_000 + i * 104_729),
        ));
    }
    let utf8 = rows.join("\r\n");
    let files: Vec<(&str, Vec<u8>)> = vec![
        ("顧客_utf8.csv", utf8.clone().into_bytes()),
        (
            "顧客_sjis.csv",
            encoding_rs::SHIFT_JIS.encode(&utf8).0.into_owned(),
        ),
        (
            "顧客_euc.csv",
            encoding_rs::EUC_JP.encode(&utf8).0.into_owned(),
        ),
        ("顧客.tsv", utf8.replace(',', "\t").into_bytes()),
        // Excel's "Unicode text" export (UTF-16LE with a BOM, tabs, a `.txt`) and its "Text
        // (tab delimited)" export (Shift_JIS, a `.txt`): tables by their layout, not their name.
        ("顧客_unicode.txt", {
            let mut b = vec![0xFF, 0xFE];
            for u in utf8.replace(',', "\t").encode_utf16() {
                b.extend_from_slice(&u.to_le_bytes());
            }
            b
        }),
        (
            "顧客_tab.txt",
            encoding_rs::SHIFT_JIS
                .encode(&utf8.replace(',', "\t"))
                .0
                .into_owned(),
        ),
        ("顧客.html", {
            // The same list as an HTML table (a webmail body or a saved page), title above it.
            let mut h = String::from("<html><body><h1>顧客一覧（2026年11月）</h1><table>");
            for line in rows.iter().skip(2) {
                h.push_str("<tr>");
                for cell in line.split(',') {
                    h.push_str(&format!("<td>{cell}</td>"));
                }
                h.push_str("</tr>\n");
            }
            h.push_str("</table></body></html>");
            h.into_bytes()
        }),
    ];
    for (name, data) in files {
        let r = scanner.inspect_file(name, &data, &ExtractOptions::default());
        let of = |det: &str| {
            r.findings
                .iter()
                .filter(|f| f.detector == det)
                .collect::<Vec<_>>()
        };
        let my = of("jp_my_number");
        let phones = of("jp_phone");
        assert_eq!(
            my.len(),
            300,
            "{name}: {:?}",
            my.iter().map(|f| &f.value).collect::<Vec<_>>()
        );
        assert_eq!(phones.len(), 300, "{name}");
        for f in my.iter().chain(phones.iter()) {
            assert_eq!(f.confidence, ping32dlp::Confidence::High, "{name}: {f:?}");
            assert!(
                f.evidence
                    .iter()
                    .any(|e| e.detail.starts_with("column header ")),
                "{name}: {:?}",
                f.evidence
            );
        }
        // No order number is reported as a My Number.
        assert!(my.iter().all(|f| !f.normalized.starts_with('2')), "{name}");
    }
    // The same list as a `.txt` with commas (a CSV saved under another name): its lines after
    // the title are a table inside the text.
    let r = scanner.inspect_file("顧客.txt", utf8.as_bytes(), &ExtractOptions::default());
    let high = r
        .findings
        .iter()
        .filter(|f| f.detector == "jp_my_number" && f.confidence == ping32dlp::Confidence::High)
        .count();
    assert_eq!(high, 300);
    // The same lines with a space after every comma, as prose writes them: running text, only
    // values near a label count.
    let prose = utf8.replace(',', ", ");
    let r = scanner.inspect_file("顧客.txt", prose.as_bytes(), &ExtractOptions::default());
    let high = r
        .findings
        .iter()
        .filter(|f| f.detector == "jp_my_number" && f.confidence == ping32dlp::Confidence::High)
        .count();
    assert!(high < 300, "{high}");
}

/// Cells copied out of a sheet and pasted into a mail (tab-separated lines between a greeting
/// and a signature), or the lines of a CSV file pasted the same way, are a table: every row's
/// values take their column's header, however far below it, and the signature's number outside
/// the table keeps its label from the window.
#[test]
fn a_table_pasted_into_a_mail_body() {
    let mut scanner = Scanner::new(Arc::new(Engine::builtin()));
    let header = |f: &ping32dlp::ReportFinding| {
        f.evidence
            .iter()
            .any(|e| e.detail.starts_with("column header "))
    };
    for d in ["\t", ","] {
        let mut body =
            String::from("田中様\r\n\r\nお世話になっております。\r\n顧客リストです。\r\n\r\n");
        body.push_str(&format!("氏名{d}個人番号{d}携帯電話\r\n"));
        for i in 0..60u64 {
            body.push_str(&format!(
                "顧客{i}{d}{}{d}090{:08}\r\n",
                my_number(30_000_000_000 + i * 7_919),
                55_000_000 + i
            ));
        }
        body.push_str("\r\nよろしくお願いいたします。\r\n山田\r\nTEL 03-5321-1111\r\n");
        let eml = format!(
            "From: a@example.co.jp\r\nTo: b@example.com\r\nSubject: list\r\nMIME-Version: 1.0\r\n\
             Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n{body}"
        );
        let r = scanner.inspect_file("paste.eml", eml.as_bytes(), &ExtractOptions::default());
        for det in ["jp_my_number", "jp_phone"] {
            let of: Vec<_> = r.findings.iter().filter(|f| f.detector == det).collect();
            let table: Vec<_> = of.iter().filter(|f| header(f)).collect();
            assert_eq!(table.len(), 60, "{d:?} {det}: {of:?}");
            assert!(table
                .iter()
                .all(|f| f.confidence == ping32dlp::Confidence::High));
        }
        let sig = r
            .findings
            .iter()
            .find(|f| f.value == "03-5321-1111")
            .expect("the signature's number");
        assert_eq!(sig.confidence, ping32dlp::Confidence::High);
    }
    // A tab-indented list in prose is not a table.
    let prose = "From: a@example.co.jp\r\nTo: b@example.com\r\nSubject: s\r\n\r\n\
                 手順:\r\n\t一、申請\r\n\t二、個人番号 123456789018 の確認\r\n\t三、完了\r\n";
    let r = scanner.inspect_file("prose.eml", prose.as_bytes(), &ExtractOptions::default());
    assert!(r.findings.iter().all(|f| !header(f)), "{:?}", r.findings);
    assert!(r.findings.iter().any(|f| f.detector == "jp_my_number"));
}
