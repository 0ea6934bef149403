//! The `ping32dlp` command end to end: vectors through `scan --json --show-values`, exit codes,
//! rules errors, encodings, `bench` output.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ping32dlp"))
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn run(args: &[&str]) -> Output {
    bin().args(args).output().expect("run ping32dlp")
}

fn json_lines(o: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect()
}

#[derive(serde::Deserialize)]
struct VectorFile {
    detector: Option<String>,
    #[serde(default)]
    positive: Vec<Case>,
    #[serde(default)]
    negative: Vec<Case>,
}

#[derive(serde::Deserialize)]
struct Case {
    detector: Option<String>,
    text: String,
    value: Option<String>,
}

/// Every vector written to its own file, scanned in one run over the folder.
#[test]
fn scan_json_finds_the_vectors() {
    let dir = tempfile::tempdir().unwrap();
    let mut expect = Vec::new();
    let vectors = root().join("corpus/vectors");
    let mut paths: Vec<_> = std::fs::read_dir(&vectors)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    paths.sort();
    for path in paths
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
    {
        let f: VectorFile = toml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        for (positive, c) in f
            .positive
            .iter()
            .map(|c| (true, c))
            .chain(f.negative.iter().map(|c| (false, c)))
        {
            let name = format!("case{:04}.txt", expect.len());
            std::fs::write(dir.path().join(&name), &c.text).unwrap();
            let det = c.detector.clone().or_else(|| f.detector.clone()).unwrap();
            expect.push((name, det, positive, c.value.clone(), c.text.clone()));
        }
    }
    let out = run(&[
        "scan",
        "--json",
        "--show-values",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "findings exit 1; stderr {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines = json_lines(&out);
    assert_eq!(lines.len(), expect.len());
    let mut failures = Vec::new();
    for (name, det, positive, value, text) in &expect {
        let line = lines
            .iter()
            .find(|l| l["path"].as_str().unwrap().ends_with(name.as_str()))
            .expect("one line per file");
        assert!(line["errors"].as_array().unwrap().is_empty());
        let findings: Vec<&Value> = line["findings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["detector"] == det.as_str())
            .collect();
        for f in &findings {
            // The JSON fields of the contract.
            for k in [
                "confidence",
                "value_masked",
                "value",
                "location",
                "start",
                "end",
                "evidence",
            ] {
                assert!(f.get(k).is_some(), "{k} missing in {f}");
            }
            let (s, e) = (
                f["start"].as_u64().unwrap() as usize,
                f["end"].as_u64().unwrap() as usize,
            );
            assert_eq!(
                &text[s..e],
                f["value"].as_str().unwrap(),
                "offsets are byte offsets into the file"
            );
        }
        if *positive {
            let want = value.as_deref().unwrap();
            if !findings.iter().any(|f| f["value"] == want) {
                failures.push(format!("{det}: missed {want:?} in {text:?}"));
            }
        } else if let Some(v) = value {
            // A negative with a value: that value must not be found (others may).
            if findings.iter().any(|f| f["value"] == v.as_str()) {
                failures.push(format!("{det}: false positive {v:?} in {text:?}"));
            }
        } else if !findings.is_empty() {
            failures.push(format!("{det}: false positive in {text:?}: {findings:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn values_are_masked_unless_asked() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("a.txt");
    std::fs::write(&p, "個人番号：7684 2684 6565\nカード 4742180967929089").unwrap();
    for json in [true, false] {
        let mut args = vec!["scan"];
        if json {
            args.push("--json");
        }
        args.push(p.to_str().unwrap());
        let out = run(&args);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            !text.contains("7684 2684 6565") && !text.contains("4742180967929089"),
            "{text}"
        );
        assert!(text.contains("6565") && text.contains("9089"), "{text}");
    }
}

#[test]
fn exit_codes_like_grep() {
    let dir = tempfile::tempdir().unwrap();
    let clean = dir.path().join("clean.txt");
    std::fs::write(&clean, "いつもお世話になっております。").unwrap();
    assert_eq!(
        run(&["scan", clean.to_str().unwrap()]).status.code(),
        Some(0)
    );
    let hit = dir.path().join("hit.txt");
    std::fs::write(&hit, "【社外秘】").unwrap();
    assert_eq!(run(&["scan", hit.to_str().unwrap()]).status.code(), Some(1));
    let missing = dir.path().join("missing.txt");
    let out = run(&["scan", "--json", missing.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(!json_lines(&out)[0]["errors"].as_array().unwrap().is_empty());
}

#[test]
fn rules_errors_name_file_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.toml");
    std::fs::write(&rules, "[[detector]]\nid = \"emp\"\nregex = '(unclosed'\n").unwrap();
    let out = run(&[
        "scan",
        "--rules",
        rules.to_str().unwrap(),
        rules.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("rules.toml:3:") && err.contains("detector[0].regex"),
        "{err}"
    );

    std::fs::write(&rules, "[builtin.credit_crad]\nenabled = false\n").unwrap();
    let out = run(&["rules", "check", rules.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("rules.toml:1:")
            && err.contains("builtin.credit_crad")
            && err.contains("no built-in detector"),
        "{err}"
    );

    std::fs::write(
        &rules,
        "[[dictionary]]\nid = \"customers\"\npath = \"nope.txt\"\n",
    )
    .unwrap();
    let out = run(&["rules", "check", rules.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("rules.toml:3:") && err.contains("dictionary[0].path"),
        "{err}"
    );
}

#[test]
fn user_rules_dictionaries_and_retuned_builtins() {
    let dir = tempfile::tempdir().unwrap();
    let dict = dir.path().join("customers.txt");
    // A dictionary in CP932, as Excel exports it.
    let (sjis, _, _) = encoding_rs::SHIFT_JIS.encode("# 顧客名\n東都商会\nAcme Trading\n");
    std::fs::write(&dict, &sjis).unwrap();
    let rules = dir.path().join("rules.toml");
    std::fs::write(
        &rules,
        r#"
[[detector]]
id = "employee_id"
regex = 'EMP-[0-9]{6}'
context = ["社員番号"]

[[keywords]]
id = "codenames"
terms = ["Project Falcon"]

[[dictionary]]
id = "customers"
path = "customers.txt"

[builtin.email_address]
enabled = false

[builtin.jp_phone]
min_count = 2
"#,
    )
    .unwrap();
    let doc = dir.path().join("doc.txt");
    std::fs::write(&doc, "社員番号 EMP-123456 の件。project falcon は東都商会と ACME TRADING 向け。taro@example.co.jp TEL 03-5321-1111").unwrap();
    let out = run(&[
        "scan",
        "--json",
        "--show-values",
        "--rules",
        rules.to_str().unwrap(),
        doc.to_str().unwrap(),
    ]);
    let line = &json_lines(&out)[0];
    let dets: Vec<(&str, &str)> = line["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["detector"].as_str().unwrap(),
                f["value"].as_str().unwrap(),
            )
        })
        .collect();
    assert!(dets.contains(&("employee_id", "EMP-123456")), "{dets:?}");
    assert!(dets.contains(&("codenames", "project falcon")), "{dets:?}");
    assert!(dets.contains(&("customers", "東都商会")), "{dets:?}");
    assert!(dets.contains(&("customers", "ACME TRADING")), "{dets:?}");
    assert!(
        !dets.iter().any(|d| d.0 == "email_address"),
        "disabled: {dets:?}"
    );
    assert!(
        !dets.iter().any(|d| d.0 == "jp_phone"),
        "min_count 2 not reached: {dets:?}"
    );
}

#[test]
fn japanese_encodings_are_decoded() {
    let dir = tempfile::tempdir().unwrap();
    let text = "お客様各位\nマイナンバー：７６８４　２６８４　６５６５\n【社外秘】\n";
    for (name, enc) in [
        ("sjis.txt", encoding_rs::SHIFT_JIS),
        ("euc.txt", encoding_rs::EUC_JP),
        ("jis.txt", encoding_rs::ISO_2022_JP),
    ] {
        let (b, _, _) = enc.encode(text);
        std::fs::write(dir.path().join(name), &b).unwrap();
    }
    let mut utf16 = vec![0xFF, 0xFE];
    utf16.extend(text.encode_utf16().flat_map(u16::to_le_bytes));
    std::fs::write(dir.path().join("utf16.txt"), &utf16).unwrap();
    let out = run(&["scan", "--json", dir.path().to_str().unwrap()]);
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 4);
    for l in &lines {
        let dets: Vec<&str> = l["findings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["detector"].as_str().unwrap())
            .collect();
        assert!(
            dets.contains(&"jp_my_number") && dets.contains(&"confidential_marking"),
            "{l}"
        );
    }
}

/// `--encoding` wins over detection: a UTF-8 file holding `ESC $ B` (a pasted escape) stays
/// UTF-8, where detection alone would read it as ISO-2022-JP and lose the My Number.
#[test]
fn an_explicit_encoding_wins_over_detection() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("pasted.txt");
    let text = "ログ \x1b$B 貼り付け\nマイナンバー：７６８４　２６８４　６５６５\n";
    std::fs::write(&p, text).unwrap();
    let found = |args: &[&str]| {
        let out = run(args);
        json_lines(&out)[0]["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["detector"] == "jp_my_number")
    };
    let path = p.to_str().unwrap();
    assert!(found(&["scan", "--json", "--encoding", "utf-8", path]));
    // And a file that sniffs as binary is read as text when the caller names its charset.
    let (sjis, _, _) =
        encoding_rs::SHIFT_JIS.encode("マイナンバー：７６８４　２６８４　６５６５\n");
    let mut odd = vec![0u8, 1, 2, 3];
    odd.extend_from_slice(&sjis);
    let q = dir.path().join("odd.dat");
    std::fs::write(&q, &odd).unwrap();
    assert!(found(&[
        "scan",
        "--json",
        "--encoding",
        "shift_jis",
        q.to_str().unwrap()
    ]));
}

#[test]
fn bench_prints_one_json_line() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("in.txt");
    std::fs::write(&p, "カード番号 4742180967929089 です。\n".repeat(1000)).unwrap();
    let out = run(&["bench", "--input", p.to_str().unwrap(), "--repeat", "3"]);
    assert!(out.status.success());
    let v = &json_lines(&out)[0];
    assert!(v["bytes"].as_u64().unwrap() > 0);
    assert!(v["seconds_median"].as_f64().unwrap() > 0.0);
    assert!(v["mb_per_s"].as_f64().unwrap() > 0.0);
    assert_eq!(v["findings"]["credit_card"], 1000);
}

#[test]
fn bench_takes_several_inputs_and_inspects_them_whole() {
    let dir = tempfile::tempdir().unwrap();
    let txt = dir.path().join("in.txt");
    std::fs::write(&txt, "カード番号 4742180967929089 です。\n".repeat(10)).unwrap();
    // A CSV whose numbers have their label only in the column header: found only when the
    // file is inspected whole (the table), not as plain text.
    let csv = dir.path().join("list.csv");
    let mut rows = String::from("氏名,個人番号\n");
    for _ in 0..20 {
        rows.push_str("山田,768426846565\n");
    }
    for _ in 0..60 {
        rows.push_str("山田,\n");
    }
    rows.push_str("鈴木,768426846565\n");
    std::fs::write(&csv, rows).unwrap();
    let (t, c) = (txt.to_str().unwrap(), csv.to_str().unwrap());
    let out = run(&["bench", "--input", t, "--input", c, "--repeat", "2"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = &json_lines(&out)[0];
    assert_eq!(v["mode"], "inspect");
    assert_eq!(v["files"], 2);
    let size = std::fs::metadata(&txt).unwrap().len() + std::fs::metadata(&csv).unwrap().len();
    assert_eq!(v["bytes"].as_u64().unwrap(), size);
    assert_eq!(v["findings"]["credit_card"], 10);
    assert_eq!(v["findings"]["jp_my_number"], 21);
    // One text file: the engine over the text, unless --inspect.
    let plain = run(&["bench", "--input", t, "--repeat", "1"]);
    assert_eq!(json_lines(&plain)[0]["mode"], "text");
    let whole = run(&["bench", "--input", t, "--inspect", "--repeat", "1"]);
    assert_eq!(json_lines(&whole)[0]["mode"], "inspect");
    // A `.txt` file that begins like a saved mail is still timed as text (the peers harness's
    // clean corpus does): the engine over all of it, not a message body cut at its limit.
    let mail_like = dir.path().join("clean.txt");
    let mut body =
        String::from("Subject: cloud migration\nFrom: Lucas Perry\nDate: May 11, 2026\n\n");
    body.push_str(&"カード番号 4742180967929089 です。\n".repeat(10));
    std::fs::write(&mail_like, &body).unwrap();
    let m = mail_like.to_str().unwrap();
    let v = &json_lines(&run(&["bench", "--input", m, "--repeat", "1"]))[0];
    assert_eq!(v["mode"], "text");
    assert_eq!(v["bytes"].as_u64().unwrap(), body.len() as u64);
    assert_eq!(v["findings"]["credit_card"], 10);
    let eml = dir.path().join("clean.eml");
    std::fs::write(&eml, &body).unwrap();
    let v = &json_lines(&run(&[
        "bench",
        "--input",
        eml.to_str().unwrap(),
        "--repeat",
        "1",
    ]))[0];
    assert_eq!(v["mode"], "inspect", "a .eml is a message");
}

fn bench_rss(path: &Path) -> u64 {
    let out = run(&["bench", "--input", path.to_str().unwrap(), "--repeat", "1"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    json_lines(&out)[0]["max_rss_bytes"].as_u64().unwrap()
}

/// Peak memory: each bomb stays within 64 MiB above an idle inspection, and a 25 MB message
/// within 3x its size + 64 MiB.
#[test]
fn memory_stays_bounded() {
    let hostile = root().join("corpus/extract/hostile");
    let idle = bench_rss(&hostile.join("empty.eml"));
    for bomb in [
        "bomb.zip",
        "nested-bomb.zip",
        "deep.zip",
        "5000-parts.eml",
        "100-deep.eml",
        "sparse.xlsx",
    ] {
        let rss = bench_rss(&hostile.join(bomb));
        assert!(
            rss < idle + (64 << 20),
            "{bomb}: {} MiB peak vs {} MiB idle",
            rss >> 20,
            idle >> 20
        );
    }
    // A 25 MB message: a large CSV attachment (base64) and a zip of documents.
    let dir = tempfile::tempdir().unwrap();
    let mut csv = String::from("氏名,個人番号\n");
    let mut i = 0u64;
    while csv.len() < 17 << 20 {
        csv.push_str(&format!("社員{i},{:012}\n", i * 7919 % 1_000_000_000_000));
        i += 1;
    }
    let b64 = |data: &[u8]| -> String {
        const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut s = String::with_capacity(data.len() * 4 / 3 + data.len() / 57 * 2);
        for (k, c) in data.chunks(3).enumerate() {
            let n = (u32::from(c[0]) << 16)
                | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
                | u32::from(*c.get(2).unwrap_or(&0));
            for j in 0..4 {
                s.push(if j <= c.len() {
                    A[((n >> (18 - 6 * j)) & 63) as usize] as char
                } else {
                    '='
                });
            }
            if k % 19 == 18 {
                s.push_str("\r\n");
            }
        }
        s
    };
    let zip = std::fs::read(root().join("corpus/extract/docs/見積書.zip")).unwrap();
    let msg = format!(
        "From: a@example.co.jp\r\nTo: b@example.com\r\nSubject: big\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=BB\r\n\r\n\
         --BB\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n大きな添付です。\r\n\
         --BB\r\nContent-Type: text/csv; charset=utf-8\r\nContent-Disposition: attachment; filename=\"big.csv\"\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\r\n\
         --BB\r\nContent-Type: application/zip\r\nContent-Disposition: attachment; filename=\"docs.zip\"\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\r\n--BB--\r\n",
        b64(csv.as_bytes()),
        b64(&zip)
    );
    assert!(
        msg.len() > 23 << 20 && msg.len() < 26 << 20,
        "{}",
        msg.len()
    );
    let p = dir.path().join("big.eml");
    std::fs::write(&p, &msg).unwrap();
    let rss = bench_rss(&p);
    eprintln!(
        "25 MB message ({} bytes): {} MiB peak, {} MiB allowed",
        msg.len(),
        rss >> 20,
        (3 * msg.len() as u64 + (64 << 20)) >> 20
    );
    assert!(
        rss < 3 * msg.len() as u64 + (64 << 20),
        "25 MB message ({} bytes): {} MiB peak",
        msg.len(),
        rss >> 20
    );
}

#[test]
fn message_json_has_headers_attachments_and_unscannable() {
    let p = root().join("corpus/extract/mail/04a-ppap-zip.eml");
    let out = run(&["scan", "--json", p.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "an unscannable item counts as found"
    );
    let v = &json_lines(&out)[0];
    assert_eq!(v["message"]["subject"], "資料送付");
    let att = &v["attachments"][0];
    for k in [
        "location",
        "name",
        "declared_type",
        "true_type",
        "size",
        "sha256",
        "extension_mismatch",
    ] {
        assert!(att.get(k).is_some(), "{k} missing in {att}");
    }
    assert_eq!(v["unscannable"][0]["reason"], "encrypted");
    assert_eq!(v["unscannable"][0]["location"], "資料.zip/メモ.txt");
    // The password from the second mail opens it.
    let out = run(&[
        "scan",
        "--json",
        "--password",
        "Xy7#kP2q",
        p.to_str().unwrap(),
    ]);
    let v = &json_lines(&out)[0];
    assert!(v["unscannable"].as_array().unwrap().is_empty(), "{v}");
    assert_eq!(v["findings"][0]["location"], "資料.zip/メモ.txt");
}
