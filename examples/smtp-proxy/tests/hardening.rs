//! The outside security review of the SMTP proxy, reproduced in process: a real proxy on a
//! loopback port in front of a small recording SMTP server (what the proxy forwards is checked
//! byte for byte). `scripts/proxy-test.sh` repeats the smuggling checks with a real Postfix as
//! the upstream.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ping32dlp::workflow::AuditQuery;
use ping32dlp_proxy::{Config, Shared};

/// What the recording upstream saw: command lines, and each message's bytes.
#[derive(Default)]
struct Seen {
    commands: Vec<String>,
    messages: Vec<Vec<u8>>,
}

/// A minimal SMTP server that accepts everything and records it. Strict framing: a message
/// ends at CRLF . CRLF only.
fn upstream() -> (u16, Arc<Mutex<Seen>>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let s2 = seen.clone();
    std::thread::spawn(move || {
        for c in l.incoming() {
            let Ok(c) = c else { continue };
            let seen = s2.clone();
            std::thread::spawn(move || {
                let mut w = c.try_clone().unwrap();
                let mut r = BufReader::new(c);
                let _ = w.write_all(b"220 up.test ESMTP\r\n");
                let mut line = Vec::new();
                loop {
                    line.clear();
                    if r.read_until(b'\n', &mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let l = String::from_utf8_lossy(&line).trim_end().to_string();
                    seen.lock().unwrap().commands.push(l.clone());
                    let verb = l.split(' ').next().unwrap_or("").to_ascii_uppercase();
                    let reply: &[u8] = match verb.as_str() {
                        "EHLO" => b"250-up.test\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n",
                        "DATA" => {
                            let _ = w.write_all(b"354 go\r\n");
                            let mut msg = Vec::new();
                            loop {
                                let mut l = Vec::new();
                                if r.read_until(b'\n', &mut l).unwrap_or(0) == 0 {
                                    return;
                                }
                                if l == b".\r\n" && (msg.is_empty() || msg.ends_with(b"\r\n")) {
                                    break;
                                }
                                msg.extend_from_slice(&l);
                            }
                            seen.lock().unwrap().messages.push(msg);
                            b"250 2.0.0 queued\r\n"
                        }
                        "QUIT" => {
                            let _ = w.write_all(b"221 bye\r\n");
                            return;
                        }
                        _ => b"250 2.0.0 ok\r\n",
                    };
                    let _ = w.write_all(reply);
                }
            });
        }
    });
    (port, seen)
}

struct Proxy {
    addr: SocketAddr,
    sh: &'static Shared,
    seen: Arc<Mutex<Seen>>,
    _dir: tempfile::TempDir,
}

fn start(tweak: impl FnOnce(&mut Config)) -> Proxy {
    let (port, seen) = upstream();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("policy.toml"),
        "[policy]\ninternal_domains = [\"corp.example\"]\n\n[[rule]]\nid = \"external\"\naction = \"alert\"\nwhen = { recipients = \"any_external\" }\n\n[approval]\nnotify_command = \"\"\n",
    )
    .unwrap();
    let mut cfg = Config {
        listen: "127.0.0.1:0".into(),
        listen_tls: String::new(),
        dlp: ping32dlp::service::DlpSettings {
            state_dir: Some(dir.path().join("state")),
            policy: Some(dir.path().join("policy.toml")),
            ..Default::default()
        },
        ..Config::default()
    };
    cfg.upstream.port = port;
    tweak(&mut cfg);
    let (sh, _) = ping32dlp_proxy::build(cfg).unwrap();
    let sh: &'static Shared = Box::leak(Box::new(sh));
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    ping32dlp_proxy::serve_listener(l, sh, ping32dlp_proxy::Listener::Plain).unwrap();
    Proxy {
        addr,
        sh,
        seen,
        _dir: dir,
    }
}

struct Client {
    r: BufReader<TcpStream>,
    w: TcpStream,
}

impl Client {
    fn new(addr: SocketAddr) -> Client {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut c = Client {
            w: s.try_clone().unwrap(),
            r: BufReader::new(s),
        };
        assert!(c.reply().starts_with("220"));
        c
    }

    /// Reads one (possibly multi-line) reply.
    fn reply(&mut self) -> String {
        let mut all = String::new();
        loop {
            let mut l = String::new();
            if self.r.read_line(&mut l).unwrap_or(0) == 0 {
                return all;
            }
            all.push_str(&l);
            if l.len() < 4 || l.as_bytes()[3] != b'-' {
                return all;
            }
        }
    }

    fn send(&mut self, raw: &[u8]) -> String {
        self.w.write_all(raw).unwrap();
        self.reply()
    }

    fn cmd(&mut self, line: &str) -> String {
        self.send(format!("{line}\r\n").as_bytes())
    }
}

#[test]
fn the_recipient_judged_is_the_recipient_forwarded() {
    let p = start(|_| {});
    let mut c = Client::new(p.addr);
    assert!(c.cmd("EHLO client.test").starts_with("250"));
    assert!(c.cmd("MAIL FROM:<ichiro@corp.example>").starts_with("250"));
    assert!(c
        .cmd(r#"RCPT TO:<"x@corp.example>"@evil.example>"#)
        .starts_with("250"));
    assert!(c.cmd("DATA").starts_with("354"));
    assert!(c
        .send(b"Subject: hi\r\n\r\nhello\r\n.\r\n")
        .starts_with("250"));
    c.cmd("QUIT");
    let seen = p.seen.lock().unwrap();
    assert!(
        seen.commands
            .iter()
            .any(|l| l == r#"RCPT TO:<"x@corp.example>"@evil.example>"#),
        "{:?}",
        seen.commands
    );
    let q = AuditQuery {
        limit: 1,
        ..Default::default()
    };
    let rec =
        p.sh.pipeline
            .workflow()
            .store()
            .search(&q)
            .unwrap()
            .remove(0);
    assert_eq!(rec.recipients.len(), 1);
    assert!(rec.recipients[0].external, "{:?}", rec.recipients);
    assert!(rec.recipients[0].address.ends_with("@evil.example"));
    assert_eq!(rec.action, "alert");
}

#[test]
fn raw_command_lines_never_go_upstream() {
    let p = start(|_| {});
    let mut c = Client::new(p.addr);
    c.cmd("EHLO client.test");
    // A bare CR splitting one line into two commands for a lenient upstream.
    assert!(c
        .cmd("MAIL FROM:<a@corp.example>\rRCPT TO:<b@evil.example>")
        .starts_with("500"));
    assert!(c.cmd("MAIL FROM:<a@corp.example>\0").starts_with("500"));
    // Parameters the proxy does not offer are refused, not passed on.
    assert!(c
        .cmd("MAIL FROM:<a@corp.example> XSHADOW=1")
        .starts_with("555"));
    assert!(c
        .cmd("mail from:<a@corp.example>  body=8bitmime")
        .starts_with("250"));
    assert!(c
        .cmd("RCPT TO:<b@corp.example> NOTIFY=NEVER")
        .starts_with("555"));
    // A bare LF ends the session (Postfix's `reject` behaviour for commands).
    let r = c.send(b"RCPT TO:<b@corp.example>\n");
    assert!(r.starts_with("500"), "{r}");
    let mut rest = String::new();
    let _ = c.r.read_to_string(&mut rest);
    let seen = p.seen.lock().unwrap();
    let sent: Vec<&String> = seen
        .commands
        .iter()
        .filter(|l| l.starts_with("MAIL") || l.starts_with("RCPT"))
        .collect();
    assert_eq!(
        sent,
        vec!["MAIL FROM:<a@corp.example> BODY=8BITMIME"],
        "{:?}",
        seen.commands
    );
}

#[test]
fn smuggled_messages_stay_inside_the_message() {
    let p = start(|_| {});
    for smuggle in [
        &b"\n.\r\nMAIL FROM:<evil@corp.example>\r\nRCPT TO:<victim@evil.example>\r\nDATA\r\n\r\nsmuggled\r\n"[..],
        b"\r\n.\nMAIL FROM:<evil@corp.example>\r\n",
        b"\r.\rMAIL FROM:<evil@corp.example>\r\n",
    ] {
        let mut c = Client::new(p.addr);
        c.cmd("EHLO client.test");
        c.cmd("MAIL FROM:<a@corp.example>");
        c.cmd("RCPT TO:<b@corp.example>");
        c.cmd("DATA");
        let mut msg = b"Subject: x\r\n\r\nfirst".to_vec();
        msg.extend_from_slice(smuggle);
        msg.extend_from_slice(b"\r\n.\r\n");
        assert!(c.send(&msg).starts_with("250"));
        c.cmd("QUIT");
    }
    let seen = p.seen.lock().unwrap();
    let mails: Vec<&String> = seen
        .commands
        .iter()
        .filter(|l| l.starts_with("MAIL"))
        .collect();
    assert_eq!(
        mails.len(),
        3,
        "one MAIL per real message: {:?}",
        seen.commands
    );
    assert!(mails.iter().all(|l| l.contains("a@corp.example")));
    for m in &seen.messages {
        assert!(String::from_utf8_lossy(m).contains("MAIL FROM:<evil@corp.example>"));
    }
    // With bare_newline = "reject" the same message is refused and nothing is forwarded.
    let strict = start(|c| c.bare_newline = ping32dlp_proxy::smtp::BareNewline::Reject);
    let mut c = Client::new(strict.addr);
    c.cmd("EHLO client.test");
    c.cmd("MAIL FROM:<a@corp.example>");
    c.cmd("RCPT TO:<b@corp.example>");
    c.cmd("DATA");
    let r = c.send(b"Subject: x\r\n\r\nfirst\n.\r\nMAIL FROM:<evil@corp.example>\r\n.\r\n");
    assert!(r.starts_with("550 5.5.2"), "{r}");
    assert!(strict.seen.lock().unwrap().messages.is_empty());
}

#[test]
fn tls_and_auth_are_required_where_configured() {
    let p = start(|c| {
        c.require_tls = Some(true);
        c.require_auth = Some(true);
    });
    let mut c = Client::new(p.addr);
    let ehlo = c.cmd("EHLO client.test");
    assert!(
        ehlo.contains("STARTTLS") && !ehlo.contains("AUTH"),
        "{ehlo}"
    );
    assert!(c.cmd("AUTH PLAIN AGljaGlybwBzZWNyZXQ=").starts_with("530"));
    assert!(c.cmd("MAIL FROM:<a@corp.example>").starts_with("530"));
    assert!(
        p.seen.lock().unwrap().commands.is_empty(),
        "nothing reached the upstream"
    );
    // Loopback defaults: neither required, AUTH offered.
    let open = start(|_| {});
    let mut c = Client::new(open.addr);
    assert!(c.cmd("EHLO client.test").contains("AUTH PLAIN LOGIN"));
    // Only authentication required: MAIL before AUTH is refused.
    let auth = start(|c| c.require_auth = Some(true));
    let mut c = Client::new(auth.addr);
    c.cmd("EHLO client.test");
    assert!(c
        .cmd("MAIL FROM:<a@corp.example>")
        .starts_with("530 5.7.0 Authentication required"));
}

#[test]
fn a_public_listener_without_tls_and_auth_is_refused() {
    let mut cfg = Config {
        listen: "0.0.0.0:10587".into(),
        listen_tls: String::new(),
        ..Config::default()
    };
    cfg.check_exposure().unwrap();
    cfg.require_tls = Some(false);
    assert!(cfg.check_exposure().unwrap_err().contains("require_tls"));
    cfg.require_tls = None;
    cfg.require_auth = Some(false);
    assert!(cfg.check_exposure().unwrap_err().contains("require_auth"));
    cfg.listen = "127.0.0.1:10587".into();
    cfg.check_exposure().unwrap();
    assert!(!ping32dlp_proxy::is_loopback("0.0.0.0:25"));
    assert!(ping32dlp_proxy::is_loopback("localhost:25"));
    // And through the config file, as --check-config reads it.
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("proxy.toml");
    std::fs::write(&f, "listen = \"0.0.0.0:10587\"\nrequire_auth = false\n").unwrap();
    let e = Config::load(&f).unwrap_err();
    assert!(
        e.contains("proxy.toml") && e.contains("require_auth"),
        "{e}"
    );
}

#[test]
fn fuzz_findings_stay_fixed() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/regressions/smtp_command");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        ping32dlp_proxy::fuzz_command(&std::fs::read(e.unwrap().path()).unwrap());
        n += 1;
    }
    assert!(n >= 1);
}
