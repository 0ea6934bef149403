//! The milter against a scripted MTA over a socket pair: what Postfix sends, what comes back.
//! The real-Postfix tests are in `scripts/milter-test.sh`.

use std::io::Write as _;
use std::os::unix::net::UnixStream;
use std::path::Path;

use super::*;
use crate::protocol::{cmd, read_packet, reply, write_packet, Packet};

const POLICY: &str = r#"
[policy]
internal_domains = ["example.co.jp"]
[[rule]]
id = "block-cards"
action = "block"
message_en = "Card numbers may not be mailed outside."
when = { all = [{ recipients = "any_external" }, { detector = ["credit_card"], min_unique = 1 }] }
[[rule]]
id = "hold-my-number"
action = "hold"
approvers = ["boss@example.co.jp"]
when = { all = [{ recipients = "any_external" }, { detector = ["jp_my_number"] }] }
[[rule]]
id = "tag-external"
action = "tag"
subject_prefix = "[社外]"
when = { recipients = "any_external" }
[approval]
notify_command = ""
"#;

fn shared(dir: &Path, tweak: impl FnOnce(&mut Config)) -> &'static Shared {
    let policy = dir.join("policy.toml");
    std::fs::write(&policy, POLICY).unwrap();
    let mut cfg = Config {
        dlp: ping32dlp::service::DlpSettings {
            state_dir: Some(dir.join("state")),
            policy: Some(policy),
            ..Default::default()
        },
        ..Config::default()
    };
    tweak(&mut cfg);
    Box::leak(Box::new(build(cfg).unwrap()))
}

struct Mta {
    s: UnixStream,
}

impl Mta {
    fn start(shared: &'static Shared) -> (Mta, std::thread::JoinHandle<session::End>) {
        let (a, b) = UnixStream::pair().unwrap();
        let h = std::thread::spawn(move || session::Session::new(b, shared).run());
        (Mta { s: a }, h)
    }
    fn send(&mut self, code: u8, data: &[u8]) {
        write_packet(&mut self.s, code, data).unwrap();
    }
    fn recv(&mut self) -> Packet {
        read_packet(&mut self.s).unwrap().expect("a reply")
    }
    /// OPTNEG as Postfix 3.7 does it; returns the reply.
    fn negotiate(&mut self, steps: u32) -> Packet {
        let mut d = Vec::new();
        d.extend_from_slice(&6u32.to_be_bytes());
        d.extend_from_slice(&0x1ffu32.to_be_bytes());
        d.extend_from_slice(&steps.to_be_bytes());
        self.send(cmd::OPTNEG, &d);
        self.recv()
    }
    /// One message; returns the replies to end-of-body.
    fn message(
        &mut self,
        from: &str,
        to: &[&str],
        raw: &[u8],
        replies_expected: bool,
    ) -> Vec<Packet> {
        self.send(
            cmd::MACRO,
            format!("Mi\x004F1A2B3C4D\0{{auth_authen}}\0ichiro\0{{mail_addr}}\0{from}\0")
                .as_bytes(),
        );
        self.send(cmd::MAIL, format!("<{from}>\0SIZE=100\0").as_bytes());
        if replies_expected {
            assert_eq!(self.recv().code, reply::CONTINUE);
        }
        for r in to {
            self.send(cmd::RCPT, format!("<{r}>\0").as_bytes());
            if replies_expected {
                assert_eq!(self.recv().code, reply::CONTINUE);
            }
        }
        let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
        let head = std::str::from_utf8(&raw[..split]).unwrap();
        let mut lines: Vec<String> = Vec::new();
        for l in head.split("\r\n") {
            if l.starts_with([' ', '\t']) {
                let last = lines.last_mut().unwrap();
                last.push_str("\r\n");
                last.push_str(l);
            } else {
                lines.push(l.to_string());
            }
        }
        for l in lines {
            let (n, v) = l.split_once(':').unwrap();
            self.send(cmd::HEADER, format!("{n}\0{v}\0").as_bytes());
            if replies_expected {
                assert_eq!(self.recv().code, reply::CONTINUE);
            }
        }
        self.send(cmd::EOH, b"");
        if replies_expected {
            assert_eq!(self.recv().code, reply::CONTINUE);
        }
        for chunk in raw[split + 4..].chunks(65535) {
            self.send(cmd::BODY, chunk);
            if replies_expected {
                assert_eq!(self.recv().code, reply::CONTINUE);
            }
        }
        self.send(cmd::BODYEOB, b"");
        let mut out = Vec::new();
        loop {
            let p = self.recv();
            let last = matches!(p.code, reply::CONTINUE | reply::REPLYCODE);
            if p.code != reply::PROGRESS {
                out.push(p);
            }
            if last {
                return out;
            }
        }
    }
}

fn corpus(name: &str) -> Vec<u8> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../corpus");
    let p = root.join("policy").join(name);
    let p = if p.exists() {
        p
    } else {
        root.join("extract/mail").join(name)
    };
    let raw = std::fs::read(p).unwrap();
    // Postfix hands the milter CRLF lines.
    let mut out = Vec::with_capacity(raw.len() + raw.len() / 20);
    for (i, b) in raw.iter().enumerate() {
        if *b == b'\n' && (i == 0 || raw[i - 1] != b'\r') {
            out.push(b'\r');
        }
        out.push(*b);
    }
    out
}

fn text(p: &Packet) -> String {
    String::from_utf8_lossy(&p.data).replace('\0', "|")
}

const ALL_NR: u32 = 0x1fffff;

#[test]
fn verdicts_become_milter_replies() {
    let dir = tempfile::tempdir().unwrap();
    let sh = shared(dir.path(), |_| {});
    let (mut mta, h) = Mta::start(sh);
    let neg = mta.negotiate(ALL_NR);
    assert_eq!(neg.code, cmd::OPTNEG);
    mta.send(
        cmd::MACRO,
        b"C{client_addr}\x00192.0.2.7\0{client_name}\0pc42.example.co.jp\0",
    );
    mta.send(cmd::CONNECT, b"pc42.example.co.jp\x004\x00\x19192.0.2.7\0");
    mta.send(cmd::MACRO, b"H{tls_version}\0TLSv1.3\0");
    mta.send(cmd::HELO, b"pc42\0");

    // Internal mail: accepted with the verdict header.
    let r = mta.message(
        "a@example.co.jp",
        &["b@example.co.jp"],
        &corpus("internal.eml"),
        false,
    );
    assert_eq!(r.last().unwrap().code, reply::CONTINUE);
    assert!(
        r.iter().any(|p| p.code == reply::ADDHEADER
            && text(p).starts_with("X-Ping32DLP-Verdict| allow; record=")),
        "{:?}",
        r.iter().map(text).collect::<Vec<_>>()
    );

    // Cards to outside: 550 5.7.1 with the policy's text.
    let r = mta.message(
        "a@example.co.jp",
        &["x@partner.example.com"],
        &corpus("08-typical.eml"),
        false,
    );
    let last = r.last().unwrap();
    assert_eq!(last.code, reply::REPLYCODE);
    assert!(
        text(last).starts_with("550 5.7.1 Card numbers may not be mailed outside. (incident "),
        "{}",
        text(last)
    );

    // My Numbers (no cards) to outside: quarantined with the approval id, subject prefixed.
    let mynumber = "From: a@example.co.jp\r\nTo: x@partner.example.com\r\nSubject: =?UTF-8?B?5ZCN57C/?=\r\nContent-Type: text/plain; charset=UTF-8\r\n\r\n個人番号 1234 5678 9018\r\n";
    let r = mta.message(
        "a@example.co.jp",
        &["x@partner.example.com"],
        mynumber.as_bytes(),
        false,
    );
    let codes: Vec<u8> = r.iter().map(|p| p.code).collect();
    assert!(
        codes.contains(&reply::QUARANTINE),
        "{:?}",
        r.iter().map(text).collect::<Vec<_>>()
    );
    let q = r.iter().find(|p| p.code == reply::QUARANTINE).unwrap();
    let approval = text(q).split_whitespace().nth(2).unwrap().to_string();
    assert!(r.iter().any(|p| p.code == reply::CHGHEADER
        && text(p).contains("Subject|")
        && text(p).contains("=?UTF-8?B?")));
    assert_eq!(*codes.last().unwrap(), reply::CONTINUE);
    let a = sh
        .pipeline
        .workflow()
        .store()
        .approval(&approval)
        .unwrap()
        .unwrap();
    assert_eq!(a.queue_id.as_deref(), Some("4F1A2B3C4D"));
    assert_eq!(a.channel, "milter");
    let rec = sh
        .pipeline
        .workflow()
        .store()
        .get_record(a.record_id)
        .unwrap()
        .unwrap();
    assert_eq!(rec.user.as_deref(), Some("ichiro"));
    assert_eq!(rec.client_addr.as_deref(), Some("192.0.2.7"));
    assert_eq!(rec.tls.as_deref(), Some("TLSv1.3"));
    assert_eq!(rec.host.as_deref(), Some("pc42.example.co.jp"));
    assert_eq!(rec.queue_id.as_deref(), Some("4F1A2B3C4D"));

    // ABORT in the middle, then QUIT.
    mta.send(cmd::MAIL, b"<a@example.co.jp>\0");
    mta.send(cmd::HEADER, b"Subject\0 half\0");
    mta.send(cmd::ABORT, b"");
    mta.send(cmd::QUIT, b"");
    assert!(matches!(h.join().unwrap(), session::End::Quit));
}

#[test]
fn an_mta_without_no_reply_steps_gets_a_reply_to_every_command() {
    let dir = tempfile::tempdir().unwrap();
    let sh = shared(dir.path(), |_| {});
    let (mut mta, h) = Mta::start(sh);
    mta.negotiate(0);
    let r = mta.message(
        "a@example.co.jp",
        &["b@example.co.jp"],
        &corpus("internal.eml"),
        true,
    );
    assert_eq!(r.last().unwrap().code, reply::CONTINUE);
    drop(mta);
    assert!(matches!(h.join().unwrap(), session::End::Quit));
}

#[test]
fn large_messages_spill_and_oversized_ones_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let sh = shared(dir.path(), |c| {
        c.spill_bytes = 64 << 10;
        c.max_message_bytes = 2 << 20;
    });
    let (mut mta, _h) = Mta::start(sh);
    mta.negotiate(ALL_NR);
    // 1 MB: spilled to a file, still inspected (a card number at the very end).
    let mut big =
        b"From: a@example.co.jp\r\nTo: x@partner.example.com\r\nSubject: big\r\n\r\n".to_vec();
    while big.len() < 1 << 20 {
        big.extend_from_slice(b"lorem ipsum dolor sit amet 0123456789\r\n");
    }
    big.extend_from_slice(b"card 4111 1111 1111 1111\r\n");
    let r = mta.message("a@example.co.jp", &["x@partner.example.com"], &big, false);
    assert!(
        text(r.last().unwrap()).starts_with("550 5.7.1"),
        "{}",
        text(r.last().unwrap())
    );
    assert_eq!(
        std::fs::read_dir(&sh.spool_dir).unwrap().count(),
        0,
        "spool files are unlinked"
    );
    // 3 MB: over max_message_bytes.
    while big.len() < 3 << 20 {
        big.extend_from_slice(b"lorem ipsum dolor sit amet 0123456789\r\n");
    }
    let r = mta.message("a@example.co.jp", &["x@partner.example.com"], &big, false);
    assert!(
        text(r.last().unwrap()).starts_with("552 5.3.4"),
        "{}",
        text(r.last().unwrap())
    );
}

#[test]
fn malformed_input_closes_only_that_connection() {
    let dir = tempfile::tempdir().unwrap();
    let sh = shared(dir.path(), |_| {});
    for junk in [
        &[0xffu8, 0xff, 0xff, 0xff, b'B'][..], // absurd length
        &[0, 0, 0, 0][..],                     // zero length
        &[0, 0, 0, 2, b'Z', 0][..],            // unknown command
        &[0, 0, 0, 5, b'O', 0, 0, 0, 6][..],   // short OPTNEG
        &[0, 0, 0, 9, b'B', 1, 2][..],         // truncated packet, then EOF
    ] {
        let (mut mta, h) = Mta::start(sh);
        mta.s.write_all(junk).unwrap();
        mta.s.shutdown(std::net::Shutdown::Write).unwrap();
        assert!(matches!(h.join().unwrap(), session::End::Error(_)));
    }
    // The milter still serves others.
    let (mut mta, _h) = Mta::start(sh);
    mta.negotiate(ALL_NR);
    let r = mta.message(
        "a@example.co.jp",
        &["b@example.co.jp"],
        &corpus("internal.eml"),
        false,
    );
    assert_eq!(r.last().unwrap().code, reply::CONTINUE);
}

#[test]
fn a_failing_store_tempfails_by_default_and_accepts_when_told() {
    for (mode, want) in [(FailMode::Tempfail, "451 4.7.1"), (FailMode::Accept, "")] {
        let dir = tempfile::tempdir().unwrap();
        // A policy that keeps evidence of every mail, and an evidence directory that has become
        // a file: the workflow fails on every message.
        let keep = dir.path().join("keep.toml");
        std::fs::write(&keep, "[[rule]]\nid = \"keep\"\naction = \"audit\"\nevidence_days = 1\nwhen = { channel_in = [\"milter\"] }\n").unwrap();
        let sh = shared(dir.path(), |c| {
            c.fail_mode = mode;
            c.dlp.policy = Some(keep.clone());
        });
        let ev = dir.path().join("state/evidence");
        std::fs::remove_dir_all(&ev).unwrap();
        std::fs::write(&ev, b"not a directory").unwrap();
        let (mut mta, _h) = Mta::start(sh);
        mta.negotiate(ALL_NR);
        let r = mta.message(
            "a@example.co.jp",
            &["b@example.co.jp"],
            &corpus("quote.eml"),
            false,
        );
        let last = r.last().unwrap();
        if want.is_empty() {
            assert_eq!(last.code, reply::CONTINUE);
            assert!(r.iter().any(|p| text(p).contains("error; not inspected")));
        } else {
            assert!(text(last).starts_with(want), "{}", text(last));
        }
    }
}

#[test]
fn listen_notations_and_config_errors() {
    assert_eq!(
        Listen::parse("inet:127.0.0.1:8899").unwrap(),
        Listen::Inet("127.0.0.1:8899".into())
    );
    assert_eq!(
        Listen::parse("inet:8899@127.0.0.1").unwrap(),
        Listen::Inet("127.0.0.1:8899".into())
    );
    assert_eq!(
        Listen::parse("inet6:8899@::1").unwrap(),
        Listen::Inet("[::1]:8899".into())
    );
    assert_eq!(
        Listen::parse("unix:/run/m.sock").unwrap(),
        Listen::Unix("/run/m.sock".into())
    );
    assert!(Listen::parse("tcp://x").is_err());
    assert!(Listen::parse("inet:nohost").is_err());
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("milter.toml");
    std::fs::write(
        &f,
        "listen = \"inet:127.0.0.1:8899\"\nfail_mode = \"explode\"\n",
    )
    .unwrap();
    let e = Config::load(&f).unwrap_err();
    assert!(
        e.contains("milter.toml:2:13") && e.contains("fail_mode") || e.contains("milter.toml:2:"),
        "{e}"
    );
    std::fs::write(&f, "listn = \"x\"\n").unwrap();
    let e = Config::load(&f).unwrap_err();
    assert!(e.contains("milter.toml:1:1") && e.contains("listn"), "{e}");
    std::fs::write(&f, "listen = \"nowhere\"\n").unwrap();
    assert!(Config::load(&f).unwrap_err().contains("listen:"));
    // The layout before [dlp] still loads (with a warning).
    std::fs::write(&f, "policy = \"p.toml\"\nstate_dir = \"st\"\n").unwrap();
    let c = Config::load(&f).unwrap();
    assert_eq!(c.dlp.policy.unwrap(), dir.path().join("p.toml"));
    assert_eq!(c.dlp.state_dir.unwrap(), dir.path().join("st"));
    std::fs::write(
        &f,
        "[dlp]\npolicy = \"p.toml\"\ngateway = \"mx1\"\nstore = \"postgres://dlp@db/dlp\"\n",
    )
    .unwrap();
    let c = Config::load(&f).unwrap();
    assert_eq!(c.dlp.gateway.as_deref(), Some("mx1"));
    assert_eq!(c.dlp.store_config().unwrap().url, "postgres://dlp@db/dlp");
}

#[test]
fn memory_per_connection_is_bounded() {
    // The review: 200 MACRO packets of 1 MiB with distinct names took the process to 211 MiB,
    // 200 RCPTs of 1 MiB to 412 MiB.
    let dir = tempfile::tempdir().unwrap();
    let sh = shared(dir.path(), |_| {});
    let mut s = session::Session::new(session::Replay::new(&[]), sh);
    let big = vec![b'v'; (1 << 20) - 64];
    for i in 0..200 {
        let mut d = b"C".to_vec();
        d.extend_from_slice(format!("{{macro{i}}}").as_bytes());
        d.push(0);
        d.extend_from_slice(&big);
        d.push(0);
        s.handle(cmd::MACRO, &d).unwrap();
    }
    // Known names are kept, but cut.
    let mut d = b"C{client_name}\0".to_vec();
    d.extend_from_slice(&big);
    d.push(0);
    s.handle(cmd::MACRO, &d).unwrap();
    assert!(
        s.retained_bytes() <= 2 * session::MAX_MACRO_VALUE,
        "{}",
        s.retained_bytes()
    );
    s.handle(cmd::MAIL, b"<a@example.co.jp>\0").unwrap();
    let mut path = b"<".to_vec();
    path.extend_from_slice(&big);
    path.extend_from_slice(b"@evil.example>\0");
    for _ in 0..200 {
        s.handle(cmd::RCPT, &path).unwrap();
    }
    for i in 0..2000 {
        s.handle(cmd::RCPT, format!("<r{i}@partner.example>\0").as_bytes())
            .unwrap();
    }
    for _ in 0..100 {
        let mut h = b"Subject\0".to_vec();
        h.extend_from_slice(&vec![b's'; 60_000]);
        h.push(0);
        s.handle(cmd::HEADER, &h).unwrap();
    }
    assert!(s.retained_bytes() < 512 * 1024, "{}", s.retained_bytes());
}

#[test]
fn messages_that_cannot_be_judged_whole_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let sh = shared(dir.path(), |c| c.max_recipients = 3);
    let (mut mta, _h) = Mta::start(sh);
    mta.negotiate(ALL_NR);
    let r = mta.message(
        "a@example.co.jp",
        &[
            "b@example.co.jp",
            "c@example.co.jp",
            "d@example.co.jp",
            "e@evil.example",
        ],
        &corpus("internal.eml"),
        false,
    );
    let last = r.last().unwrap();
    assert_eq!(last.code, reply::REPLYCODE);
    assert!(text(last).starts_with("550 5.7.1"), "{}", text(last));
}

#[test]
fn a_quoted_local_part_belongs_to_its_domain() {
    let dir = tempfile::tempdir().unwrap();
    let sh = shared(dir.path(), |_| {});
    let (mut mta, _h) = Mta::start(sh);
    mta.negotiate(ALL_NR);
    // No {rcpt_addr} macro: the milter parses the path Postfix relayed.
    let r = mta.message(
        "a@example.co.jp",
        &[r#""x@example.co.jp>"@evil.example"#],
        &corpus("internal.eml"),
        false,
    );
    assert_eq!(r.last().unwrap().code, reply::CONTINUE);
    let q = ping32dlp::workflow::AuditQuery {
        limit: 1,
        ..Default::default()
    };
    let rec = sh.pipeline.workflow().store().search(&q).unwrap().remove(0);
    assert!(rec.recipients[0].external, "{:?}", rec.recipients);
    assert!(rec.recipients[0].address.ends_with("@evil.example"));
}

#[test]
fn fuzz_findings_stay_fixed() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/regressions/milter");
    let dir = tempfile::tempdir().unwrap();
    let sh = shared(dir.path(), |_| {});
    if let Ok(entries) = std::fs::read_dir(root) {
        for e in entries {
            crate::fuzz_session(sh, &std::fs::read(e.unwrap().path()).unwrap());
        }
    }
}
