//! The outside security review of the webmail hook, reproduced against a real hook on a
//! loopback port over a real state directory: each test sends what the reviewer sent and checks
//! the defence (hostile `Encapsulated` offsets, connection slots after panics and bad requests,
//! uploads that used to pass undecoded, chunked uploads, destination hosts, slow clients).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::time::Duration;

use ping32dlp::workflow::AuditQuery;
use ping32dlp_icap::{Config, Shared};

const POLICY: &str = r#"
[policy]
name = "icap-hardening"
internal_domains = ["example.co.jp"]
internal_hosts = ["intranet.example.net"]

[[rule]]
id = "block-ids-and-cards"
action = "block"
when = { detector = ["jp_my_number", "credit_card"], min_confidence = "medium" }

[[rule]]
id = "external-uploads"
action = "alert"
when = { recipients = "any_external" }

[[rule]]
id = "uploads-to-dropbox"
action = "audit"
when = { destination_host = ["*.dropbox.com"] }

[approval]
notify_command = ""
"#;

struct Hook {
    addr: SocketAddr,
    sh: &'static Shared,
    _dir: tempfile::TempDir,
}

fn start(tweak: impl FnOnce(&mut Config)) -> Hook {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("policy.toml"), POLICY).unwrap();
    let mut cfg = Config {
        dlp: ping32dlp::service::DlpSettings {
            state_dir: Some(dir.path().join("state")),
            policy: Some(dir.path().join("policy.toml")),
            ..Default::default()
        },
        max_connections: 4,
        max_body_bytes: 4 << 20,
        ..Config::default()
    };
    tweak(&mut cfg);
    let sh: &'static Shared = Box::leak(Box::new(ping32dlp_icap::build(cfg).unwrap()));
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || ping32dlp_icap::run(l, sh));
    Hook {
        addr,
        sh,
        _dir: dir,
    }
}

fn chunked(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for c in body.chunks(8000) {
        out.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
        out.extend_from_slice(c);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

/// Sends raw bytes, closes the write side and reads the whole answer.
fn exchange(addr: SocketAddr, raw: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(raw).unwrap();
    let _ = s.shutdown(std::net::Shutdown::Write);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// A REQMOD of an upload to `host` with these extra HTTP headers; the answer.
fn upload(h: &Hook, host: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> String {
    let mut http = format!("POST http://{host}{path} HTTP/1.1\r\nHost: {host}\r\n");
    for (k, v) in headers {
        http.push_str(&format!("{k}: {v}\r\n"));
    }
    http.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    let mut raw = format!(
        "REQMOD icap://127.0.0.1/reqmod ICAP/1.0\r\nHost: 127.0.0.1\r\nAllow: 204\r\nConnection: close\r\nEncapsulated: req-hdr=0, req-body={}\r\n\r\n{http}",
        http.len()
    )
    .into_bytes();
    raw.extend(chunked(body));
    exchange(h.addr, &raw)
}

fn blocked(answer: &str) -> bool {
    answer.starts_with("ICAP/1.0 200") && answer.contains("HTTP/1.1 403 Forbidden")
}

fn passed(answer: &str) -> bool {
    answer.starts_with("ICAP/1.0 204")
}

fn corpus(name: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../corpus/extract/docs")
            .join(name),
    )
    .unwrap()
}

const CARDS: &str = "顧客のカード番号 4539 1488 0343 6467 と 5378 4211 0092 1131";

fn last_record(h: &Hook) -> ping32dlp::workflow::AuditRecord {
    let q = AuditQuery {
        limit: 1,
        ..Default::default()
    };
    h.sh.pipeline
        .workflow()
        .store()
        .search(&q)
        .unwrap()
        .remove(0)
}

#[test]
fn hostile_encapsulated_offsets_never_size_a_buffer_and_slots_come_back() {
    let h = start(|_| {});
    for offset in ["18446744073709551615", "99999999999", "1073741824", "-5"] {
        for method in ["REQMOD", "RESPMOD"] {
            let raw = format!(
                "{method} icap://127.0.0.1/reqmod ICAP/1.0\r\nHost: x\r\nEncapsulated: req-hdr=0, req-body={offset}\r\n\r\nPOST / HTTP/1.1\r\n\r\n"
            );
            let a = exchange(h.addr, raw.as_bytes());
            assert!(a.starts_with("ICAP/1.0 400"), "{method} {offset}: {a:?}");
            // The connection's thread gives its slot back before the socket closes, so a
            // client that saw the close (`exchange` reads to the end) finds its slot free: with
            // eight requests on four slots, none gets a 503 (it did once when the slot came
            // back after the close, on a loaded machine).
            assert_eq!(
                ping32dlp_icap::active_connections(h.sh),
                0,
                "{method} {offset}: slot still held after the close"
            );
        }
    }
    // Far more bad requests than connection slots: every slot came back.
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(ping32dlp_icap::active_connections(h.sh), 0);
    let a = upload(
        &h,
        "files.example.net",
        "/up",
        &[("Content-Type", "text/plain")],
        b"hello",
    );
    assert!(passed(&a), "{a}");
}

#[test]
fn undecodable_and_oversized_bodies_are_refused_not_inspected_raw() {
    use std::io::Write as _;
    let h = start(|_| {});
    // gzip that decodes to more than max_body_bytes: refused (the raw gzip was inspected).
    let mut g = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let mut plain = vec![b' '; 5 << 20];
    plain.extend_from_slice(CARDS.as_bytes());
    g.write_all(&plain).unwrap();
    let gz = g.finish().unwrap();
    let a = upload(
        &h,
        "files.example.net",
        "/up",
        &[("Content-Type", "text/plain"), ("Content-Encoding", "gzip")],
        &gz,
    );
    assert!(blocked(&a), "gzip bomb: {a}");
    let r = last_record(&h);
    assert_eq!(r.action, "block");
    assert!(r.matched.iter().any(|m| m.rule == "webmail:on_undecodable"));
    assert!(r
        .unscannable
        .iter()
        .any(|(_, reason, _)| reason == "limit_exceeded"));
    // An encoding nobody can decode.
    let a = upload(
        &h,
        "files.example.net",
        "/up",
        &[
            ("Content-Type", "text/plain"),
            ("Content-Encoding", "compress"),
        ],
        b"\x1f\x9d\x90garbage",
    );
    assert!(blocked(&a), "compress: {a}");
    // zstd is decoded and judged on its content: cards -> block by the policy itself.
    let zst = zstd_raw(CARDS.as_bytes());
    let a = upload(
        &h,
        "files.example.net",
        "/up",
        &[("Content-Type", "text/plain"), ("Content-Encoding", "zstd")],
        &zst,
    );
    assert!(blocked(&a), "zstd: {a}");
    assert!(last_record(&h)
        .matched
        .iter()
        .any(|m| m.rule == "block-ids-and-cards"));
    // Body over max_body_bytes: refused and recorded.
    let big = vec![b'a'; (4 << 20) + 10];
    let a = upload(
        &h,
        "files.example.net",
        "/up",
        &[("Content-Type", "text/plain")],
        &big,
    );
    assert!(blocked(&a) && a.contains("Upload not allowed"), "too big");
    assert!(last_record(&h)
        .matched
        .iter()
        .any(|m| m.rule == "webmail:max_body_bytes"));
    // Opaque binary of no known format is not "undecodable" (allow_unknown_binary); a known
    // format that cannot be read is (a cut zip).
    let random: Vec<u8> = (0..100_000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let a = upload(
        &h,
        "files.example.net",
        "/clip.bin",
        &[("Content-Type", "application/octet-stream")],
        &random,
    );
    assert!(passed(&a), "opaque binary: {a}");
    let docx = corpus("見積書.docx");
    let a = upload(
        &h,
        "files.example.net",
        "/cut.docx",
        &[("Content-Type", "application/octet-stream")],
        &docx[..docx.len() / 2],
    );
    assert!(blocked(&a), "a cut docx: {a}");
    // With on_undecodable = "policy" the unknown encoding goes to the policy, which allows.
    let lax = start(|c| c.on_undecodable = ping32dlp_icap::OnUndecodable::Policy);
    let a = upload(
        &lax,
        "files.example.net",
        "/up",
        &[
            ("Content-Type", "text/plain"),
            ("Content-Encoding", "compress"),
        ],
        b"\x1f\x9d\x90garbage",
    );
    assert!(passed(&a), "{a}");
}

/// A zstd frame of one raw block (single segment, one-byte content size).
fn zstd_raw(data: &[u8]) -> Vec<u8> {
    assert!(data.len() < 256);
    let mut out = vec![0x28, 0xb5, 0x2f, 0xfd, 0x20, data.len() as u8];
    let hdr = 1u32 | ((data.len() as u32) << 3);
    out.extend_from_slice(&hdr.to_le_bytes()[..3]);
    out.extend_from_slice(data);
    out
}

#[test]
fn multipart_parts_that_used_to_pass_are_inspected() {
    let h = start(|_| {});
    let docx = corpus("見積書.docx");
    let ct = ("Content-Type", "multipart/form-data; boundary=XX");
    // A part without filename= holding a .docx (Blob without a name).
    let mut body = b"--XX\r\nContent-Disposition: form-data; name=\"blob\"\r\nContent-Type: application/octet-stream\r\n\r\n".to_vec();
    body.extend_from_slice(&docx);
    body.extend_from_slice(b"\r\n--XX--\r\n");
    assert!(
        blocked(&upload(&h, "f.example.net", "/u", &[ct], &body)),
        "no filename"
    );
    // Content-Transfer-Encoding: base64.
    let body = format!(
        "--XX\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a.docx\"\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\r\n--XX--\r\n",
        ping32dlp::text::base64_encode_mime(&docx)
    );
    assert!(
        blocked(&upload(&h, "f.example.net", "/u", &[ct], body.as_bytes())),
        "base64 part"
    );
    // No closing boundary.
    let body = format!(
        "--XX\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a.txt\"\r\n\r\n{CARDS}\r\n"
    );
    assert!(
        blocked(&upload(&h, "f.example.net", "/u", &[ct], body.as_bytes())),
        "unclosed"
    );
    // A bare token in Content-Disposition before filename.
    let body = format!(
        "--XX\r\nContent-Disposition: form-data; inline; name=\"f\"; filename=\"a.txt\"\r\nContent-Type: text/plain\r\n\r\n{CARDS}\r\n--XX--\r\n"
    );
    assert!(
        blocked(&upload(&h, "f.example.net", "/u", &[ct], body.as_bytes())),
        "bare token"
    );
}

#[test]
fn forms_json_and_text_encodings_are_decoded() {
    let h = start(|_| {});
    let docx = corpus("見積書.docx");
    let form = ("Content-Type", "application/x-www-form-urlencoded");
    let json = ("Content-Type", "application/json");
    // Percent-encoded binary in a form.
    let pct: String = docx.iter().map(|b| format!("%{b:02X}")).collect();
    let body = format!("to=x%40partner.example.com&file={pct}");
    assert!(
        blocked(&upload(&h, "f.example.net", "/u", &[form], body.as_bytes())),
        "percent docx"
    );
    // Base64 text in a form field.
    let body = format!(
        "note={}",
        ping32dlp::text::percent_encode(&ping32dlp::text::base64_encode(CARDS.as_bytes()))
    );
    assert!(
        blocked(&upload(&h, "f.example.net", "/u", &[form], body.as_bytes())),
        "b64 field"
    );
    // JSON: a data: URL, base64 split over two fields, a byte array, a hex string.
    let b = ping32dlp::text::base64_encode(&docx);
    let (p1, p2) = b.split_at(b.len() / 2 / 4 * 4);
    let cases = [
        format!(
            r#"{{"file":"data:application/vnd.openxmlformats-officedocument.wordprocessingml.document;base64,{b}"}}"#
        ),
        format!(r#"{{"chunks":["{p1}","{p2}"]}}"#),
        format!(
            r#"{{"bytes":[{}]}}"#,
            CARDS
                .bytes()
                .map(|x| x.to_string())
                .collect::<Vec<_>>()
                .join(",")
        ),
        format!(
            r#"{{"hex":"{}"}}"#,
            CARDS
                .bytes()
                .map(|x| format!("{x:02x}"))
                .collect::<String>()
        ),
    ];
    for (i, c) in cases.iter().enumerate() {
        assert!(
            blocked(&upload(&h, "f.example.net", "/api", &[json], c.as_bytes())),
            "json case {i}"
        );
    }
    // A text body that is base64 of text.
    let body = ping32dlp::text::base64_encode(CARDS.as_bytes());
    assert!(
        blocked(&upload(
            &h,
            "f.example.net",
            "/note",
            &[("Content-Type", "text/plain")],
            body.as_bytes()
        )),
        "b64 body"
    );
    // UTF-16LE without a BOM.
    let body: Vec<u8> = "card numbers 4539 1488 0343 6467 and 5378 4211 0092 1131"
        .encode_utf16()
        .flat_map(|u| u.to_le_bytes())
        .collect();
    assert!(
        blocked(&upload(
            &h,
            "f.example.net",
            "/note.txt",
            &[("Content-Type", "application/octet-stream")],
            &body
        )),
        "utf-16le"
    );
    // A clean JSON upload still passes.
    assert!(passed(&upload(
        &h,
        "f.example.net",
        "/api",
        &[json],
        br#"{"subject":"hello","body":"nothing here"}"#
    )));
}

#[test]
fn chunked_uploads_are_judged_whole() {
    let h = start(|_| {});
    let docx = corpus("見積書.docx");
    let total = docx.len();
    let pieces = [0, total / 3, 2 * total / 3, total];
    let mut answers = Vec::new();
    for w in pieces.windows(2) {
        let range = format!("bytes {}-{}/{total}", w[0], w[1] - 1);
        answers.push(upload(
            &h,
            "graph.example.net",
            "/upload/session-1?token=abc",
            &[
                ("Content-Type", "application/octet-stream"),
                ("Content-Range", &range),
            ],
            &docx[w[0]..w[1]],
        ));
    }
    assert!(
        passed(&answers[0]) && passed(&answers[1]),
        "pieces alone pass"
    );
    assert!(
        blocked(&answers[2]),
        "the last piece completes the docx: blocked"
    );
    // A range that contradicts the body cannot be tracked: refused.
    let a = upload(
        &h,
        "graph.example.net",
        "/upload/session-2",
        &[
            ("Content-Type", "application/octet-stream"),
            ("Content-Range", "bytes 0-99/1000"),
        ],
        b"short",
    );
    assert!(blocked(&a), "{a}");
}

#[test]
fn uploads_to_outside_hosts_match_recipient_rules() {
    let h = start(|_| {});
    let ct = ("Content-Type", "text/plain");
    assert!(passed(&upload(
        &h,
        "www.dropbox.com",
        "/up",
        &[ct],
        b"hello"
    )));
    let r = last_record(&h);
    let rules: Vec<&str> = r.matched.iter().map(|m| m.rule.as_str()).collect();
    assert!(
        rules.contains(&"external-uploads") && rules.contains(&"uploads-to-dropbox"),
        "{rules:?}"
    );
    assert_eq!(r.destination.as_ref().unwrap().address, "www.dropbox.com");
    assert!(r.external());
    // The company's own hosts are not external.
    for host in ["intranet.example.net", "mail.example.co.jp:8443"] {
        assert!(passed(&upload(&h, host, "/up", &[ct], b"hello")));
        let r = last_record(&h);
        assert!(r.matched.is_empty(), "{host}: {:?}", r.matched);
        assert!(!r.external());
    }
}

#[test]
fn slow_clients_are_cut_off_at_the_head_deadline() {
    let h = start(|c| c.head_timeout_seconds = 1);
    let mut s = TcpStream::connect(h.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let started = std::time::Instant::now();
    // One byte every 300 ms: within the idle timeout, never a whole head.
    let mut closed = false;
    for b in b"OPTIONS icap://127.0.0.1/reqmod ICAP/1.0\r\nHost: x\r\n" {
        if s.write_all(&[*b]).is_err() {
            closed = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(300));
        if started.elapsed() > Duration::from_secs(4) {
            break;
        }
    }
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    assert!(closed || started.elapsed() < Duration::from_secs(6));
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        ping32dlp_icap::active_connections(h.sh),
        0,
        "the slot came back"
    );
}

#[test]
fn state_directory_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let h = start(|_| {});
    let docx = corpus("見積書.docx");
    let _ = upload(
        &h,
        "f.example.net",
        "/a.docx",
        &[("Content-Type", "application/octet-stream")],
        &docx,
    );
    let state = h.sh.pipeline.workflow().config().state_dir.clone();
    let mut stack = vec![state];
    while let Some(p) = stack.pop() {
        let m = std::fs::symlink_metadata(&p).unwrap();
        assert_eq!(
            m.permissions().mode() & 0o077,
            0,
            "{} is readable by others",
            p.display()
        );
        if m.is_dir() {
            for e in std::fs::read_dir(&p).unwrap() {
                stack.push(e.unwrap().path());
            }
        }
    }
}

#[test]
fn fuzz_findings_stay_fixed() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/regressions");
    for (target, run) in [
        ("icap", ping32dlp_icap::fuzz_request as fn(&[u8])),
        ("upload", ping32dlp_icap::fuzz_upload),
    ] {
        if let Ok(dir) = std::fs::read_dir(root.join(target)) {
            for e in dir {
                run(&std::fs::read(e.unwrap().path()).unwrap());
            }
        }
    }
}
