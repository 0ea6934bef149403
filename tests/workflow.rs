//! The workflow against a real SQLite file: several writer threads, the approval state machine,
//! evidence, restarts, alert sinks (JSON Lines, syslog over UDP and TCP, a webhook that fails
//! before it answers), and a search for planted raw values in everything we write.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, UdpSocket};
use std::path::Path;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use ping32dlp::pipeline::Pipeline;
use ping32dlp::policy::{parse_policy, Context};
use ping32dlp::workflow::{
    ApprovalState, AuditQuery, Store, Workflow, WorkflowConfig, WorkflowError,
};
use ping32dlp::{Engine, ExtractOptions};

fn corpus(name: &str) -> Vec<u8> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    std::fs::read(root.join("policy").join(name))
        .or_else(|_| std::fs::read(root.join("extract/mail").join(name)))
        .unwrap()
}

const POLICY: &str = r#"
[policy]
internal_domains = ["example.co.jp"]

[[rule]]
id = "hold-ids"
action = "hold"
approvers = ["boss@example.co.jp"]
expires = "1h"
evidence_days = 30
when = { all = [{ recipients = "any_external" }, { detector = ["jp_my_number"] }] }

[[rule]]
id = "alert-external"
action = "alert"
when = { recipients = "any_external" }
"#;

fn pipeline(state: &Path, extra: &str, release: Option<String>) -> Pipeline {
    let mut policy = parse_policy(&format!("{POLICY}\n{extra}"), None).unwrap();
    let mut cfg = WorkflowConfig::new(state);
    cfg.alerts = policy.alerts.clone();
    cfg.release_command = release.clone();
    cfg.discard_command = release;
    policy.release_command = None;
    let wf = Arc::new(Workflow::open(cfg).unwrap());
    Pipeline::new(
        Arc::new(Engine::builtin()),
        policy,
        wf,
        ExtractOptions::default(),
    )
}

fn ctx(channel: &str) -> Context {
    Context {
        channel: channel.into(),
        user: Some("ichiro".into()),
        host: Some("PC-0042".into()),
        ..Context::default()
    }
}

#[test]
fn threads_write_concurrently() {
    let dir = tempfile::tempdir().unwrap();
    let p = Arc::new(pipeline(dir.path(), "", None));
    let msg = Arc::new(corpus("quote.eml"));
    let ids: Vec<i64> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..8)
            .map(|_| {
                let (p, msg) = (p.clone(), msg.clone());
                s.spawn(move || {
                    (0..50)
                        .map(|_| {
                            p.process_message(&msg, &ctx("api"), &[], false)
                                .unwrap()
                                .record
                                .id
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        hs.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    let mut sorted = ids.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), 400);
    let store = p.workflow().store();
    let found = store
        .search(&AuditQuery {
            limit: 10_000,
            ..AuditQuery::default()
        })
        .unwrap();
    assert_eq!(found.len(), 400);
    // Rate windows see them all.
    let sha = &found[0].attachments[0].sha256;
    assert_eq!(store.external_sends_of(sha, 0, i64::MAX), Ok(400));
}

#[test]
fn approvals_state_machine_and_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let raw = corpus("mixed.eml");
    let (id, token, record_id) = {
        let p = pipeline(dir.path(), "", None);
        let d = p.process_message(&raw, &ctx("proxy"), &[], true).unwrap();
        assert_eq!(d.verdict.action.as_str(), "hold");
        let a = d.approval.clone().unwrap();
        assert_eq!(a.state, ApprovalState::Pending);
        assert_eq!(a.approvers, ["boss@example.co.jp"]);
        assert_eq!(a.expires - a.created, 3600);
        let wf = p.workflow();
        // The held copy is kept (the proxy cannot hold mail in a queue).
        assert_eq!(wf.held_message(&a.id).unwrap().unwrap(), raw);
        // Evidence: the attachment, checked against its SHA-256.
        let kept = wf.evidence().of_record(d.record.id).unwrap();
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].0, "顧客一覧.xlsx");
        let data = wf.evidence().get(&kept[0].1).unwrap().unwrap();
        assert_eq!(data.len() as u64, d.record.attachments[0].size);
        (a.id, d.approval_token.unwrap(), d.record.id)
    };
    // Restart: everything is still there.
    let p = pipeline(dir.path(), "", None);
    let wf = p.workflow();
    let a = wf.store().approval(&id).unwrap().unwrap();
    assert_eq!(a.record_id, record_id);
    assert!(wf.verify_token(&a, &token));
    assert!(!wf.verify_token(&a, &token.replace(&token[..2], "00")) || token.starts_with("00"));
    assert!(!wf.verify_token(&a, "zz"));
    // Views are recorded with who and when.
    wf.record_view(&id, "boss@example.co.jp", "view", "")
        .unwrap();
    wf.record_view(
        &id,
        "boss@example.co.jp",
        "view_attachment",
        "顧客一覧.xlsx",
    )
    .unwrap();
    assert!(matches!(
        wf.record_view("00ff", "x", "view", ""),
        Err(WorkflowError::NotFound(_))
    ));
    // Only an approver decides.
    assert!(matches!(
        wf.decide(&id, "mallory@example.co.jp", true, "", false),
        Err(WorkflowError::Forbidden(_))
    ));
    let a = wf
        .decide(&id, "boss@example.co.jp", true, "取引先と確認済み", false)
        .unwrap();
    assert_eq!(a.state, ApprovalState::Approved);
    assert_eq!(a.decided_by.as_deref(), Some("boss@example.co.jp"));
    // A second decision is refused, whoever makes it.
    assert!(matches!(
        wf.decide(&id, "boss@example.co.jp", false, "", false),
        Err(WorkflowError::AlreadyDecided(_))
    ));
    assert!(matches!(
        wf.decide(&id, "admin", false, "", true),
        Err(WorkflowError::AlreadyDecided(_))
    ));
    // The proxy delivers it and closes it; the held copy goes.
    let a = wf.mark_closed(&id, "delivered").unwrap();
    assert_eq!(a.state, ApprovalState::Released);
    assert!(wf.held_message(&id).unwrap().is_none());
    assert!(wf.mark_closed(&id, "again").is_err());
    let kinds: Vec<String> = wf
        .store()
        .events(&id)
        .unwrap()
        .into_iter()
        .map(|e| format!("{}:{}", e.actor, e.kind))
        .collect();
    assert_eq!(
        kinds,
        [
            "system:created",
            "boss@example.co.jp:view",
            "boss@example.co.jp:view_attachment",
            "boss@example.co.jp:approve",
            "system:release"
        ]
    );

    // Expiry: a second held mail, not decided in time, is expired and its copy deleted.
    let d = p.process_message(&raw, &ctx("proxy"), &[], true).unwrap();
    let id2 = d.approval.unwrap().id;
    assert!(wf
        .expire_due(ping32dlp::timeutil::now())
        .unwrap()
        .is_empty());
    let expired = wf.expire_due(ping32dlp::timeutil::now() + 3601).unwrap();
    assert_eq!(expired.len(), 1);
    assert_eq!(expired[0].state, ApprovalState::Discarded);
    assert!(wf.held_message(&id2).unwrap().is_none());
    assert!(matches!(
        wf.decide(&id2, "boss@example.co.jp", true, "", false),
        Err(WorkflowError::AlreadyDecided(_))
    ));
    // Rejection.
    let d = p.process_message(&raw, &ctx("proxy"), &[], true).unwrap();
    let id3 = d.approval.unwrap().id;
    let a = wf
        .decide(&id3, "BOSS@example.co.jp", false, "no", false)
        .unwrap();
    assert_eq!(a.state, ApprovalState::Discarded);
    assert_eq!(
        wf.store()
            .approvals(Some(ApprovalState::Discarded), None)
            .unwrap()
            .len(),
        2
    );
}

#[test]
fn milter_holds_are_released_by_command() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("commands.log");
    let cmd = format!("echo {{queue_id}} {{approval}} >> {}", log.display());
    let p = pipeline(&dir.path().join("state"), "", Some(cmd));
    let mut c = ctx("milter");
    c.queue_id = Some("4ABC123DEF".into());
    let d = p
        .process_message(&corpus("mixed.eml"), &c, &[], false)
        .unwrap();
    let id = d.approval.unwrap().id;
    assert!(p.workflow().held_message(&id).unwrap().is_none());
    let a = p
        .workflow()
        .decide(&id, "boss@example.co.jp", true, "", false)
        .unwrap();
    assert_eq!(a.state, ApprovalState::Released);
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        format!("4ABC123DEF {id}\n")
    );
    // A queue id that is not alphanumeric is never put into a shell command.
    c.queue_id = Some("x;rm -rf /".into());
    let d = p
        .process_message(&corpus("mixed.eml"), &c, &[], false)
        .unwrap();
    let id = d.approval.unwrap().id;
    let a = p
        .workflow()
        .decide(&id, "boss@example.co.jp", true, "", false)
        .unwrap();
    assert_eq!(a.state, ApprovalState::Approved);
    assert_eq!(std::fs::read_to_string(&log).unwrap().lines().count(), 1);
}

#[test]
fn rejected_and_expired_holds_tell_the_sender_why() {
    let dir = tempfile::tempdir().unwrap();
    let notices = dir.path().join("notices");
    std::fs::create_dir(&notices).unwrap();
    let mut policy = parse_policy(POLICY, None).unwrap();
    let mut cfg = WorkflowConfig::new(dir.path().join("state"));
    cfg.discard_command = Some("true".into());
    cfg.notify_command = Some(format!("cat > {}/$$.eml", notices.display()));
    cfg.notify_from = Some("dlp-noreply@example.co.jp".into());
    policy.release_command = None;
    let p = Pipeline::new(
        Arc::new(Engine::builtin()),
        policy,
        Arc::new(Workflow::open(cfg).unwrap()),
        ExtractOptions::default(),
    );
    let mut c = ctx("milter");
    c.queue_id = Some("4ABC123DEF".into());
    let held = |p: &Pipeline| {
        p.process_message(&corpus("mixed.eml"), &c, &[], false)
            .unwrap()
            .approval
            .unwrap()
            .id
    };
    let rejected = held(&p);
    let a = p
        .workflow()
        .decide(
            &rejected,
            "boss@example.co.jp",
            false,
            "宛先が違います",
            false,
        )
        .unwrap();
    assert_eq!(a.state, ApprovalState::Discarded);
    let expired = held(&p);
    p.workflow().expire_due(i64::MAX / 2).unwrap();
    let mut texts: Vec<String> = std::fs::read_dir(&notices)
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect();
    texts.sort_by_key(|t| t.contains("expired"));
    assert_eq!(texts.len(), 2);
    let sender = p
        .workflow()
        .store()
        .approval(&rejected)
        .unwrap()
        .unwrap()
        .sender;
    for t in &texts {
        assert!(t.starts_with("From: dlp-noreply@example.co.jp\r\n"), "{t}");
        assert!(t.contains(&format!("To: {sender}\r\n")), "{t}");
        assert!(t.contains("Auto-Submitted: auto-generated"), "{t}");
        assert!(
            t.contains("Your message was not sent") || t.contains("=?UTF-8?B?"),
            "{t}"
        );
    }
    assert!(
        texts[0].contains("宛先が違います") && texts[0].contains("boss@example.co.jp rejected it")
    );
    assert!(texts[0].contains(&rejected));
    assert!(texts[1].contains("expired") && texts[1].contains(&expired));
    let events = p.workflow().store().events(&rejected).unwrap();
    assert!(events
        .iter()
        .any(|e| e.kind == "notify" && e.detail.starts_with("notice sent to")));
}

#[test]
fn evidence_is_checked_and_purged() {
    let dir = tempfile::tempdir().unwrap();
    let p = pipeline(dir.path(), "", None);
    let ev = p.workflow().evidence();
    let sha = ev.put(b"evidence bytes", 0, 1, "a.txt").unwrap();
    assert_eq!(ev.get(&sha).unwrap().unwrap(), b"evidence bytes");
    assert_eq!(ev.get(&"0".repeat(64)).unwrap(), None);
    assert_eq!(ev.get("../../etc/passwd").unwrap(), None);
    // Tampering is detected on read.
    let file = dir.path().join("evidence").join(&sha[..2]).join(&sha);
    std::fs::write(&file, b"changed").unwrap();
    assert!(matches!(ev.get(&sha), Err(WorkflowError::Tampered(_))));
    // Retention: 0 days ends now.
    assert_eq!(ev.purge(ping32dlp::timeutil::now() + 1).unwrap(), 1);
    assert!(!file.exists());
    assert_eq!(ev.get(&sha).unwrap(), None);
}

fn http_server(fail_first: usize) -> (u16, mpsc::Receiver<String>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut n = 0;
        for s in l.incoming() {
            let Ok(mut s) = s else { return };
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut len = 0;
            loop {
                let mut line = String::new();
                if r.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap();
                }
                if line == "\r\n" {
                    break;
                }
            }
            let mut body = vec![0; len];
            r.read_exact(&mut body).unwrap();
            n += 1;
            let status = if n <= fail_first {
                "500 Internal Server Error"
            } else {
                "200 OK"
            };
            let _ = write!(
                s,
                "HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
            if n > fail_first {
                let _ = tx.send(String::from_utf8(body).unwrap());
            }
        }
    });
    (port, rx)
}

/// Planted values of mixed.eml (My Numbers and a card in the body; the spreadsheet's values).
const RAW_VALUES: &[&str] = &[
    "768426846565",
    "7684 2684 6565",
    "321223307923",
    "3212-2330-7923",
    "4742180967929089",
    "4742 1809 6792 9089",
    "5378778932879210",
    "440268599525",
];

fn assert_no_raw(what: &str, bytes: &[u8]) {
    for v in RAW_VALUES {
        assert!(
            !bytes.windows(v.len()).any(|w| w == v.as_bytes()),
            "{what} contains the raw value {v}"
        );
    }
}

#[test]
fn alerts_reach_every_sink_masked_and_survive_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
    let (hook_port, hooks) = http_server(2);
    let jsonl = dir.path().join("alerts.jsonl");
    let sinks = |syslog: String| {
        format!(
            "[alerts]\njsonl = \"{}\"\nsyslog = \"{syslog}\"\nwebhook = \"http://127.0.0.1:{hook_port}/hook\"\nwebhook_authorization = \"Bearer t0ken\"\n",
            jsonl.display()
        )
    };
    let raw = corpus("mixed.eml");
    {
        let p = pipeline(
            &state,
            &sinks(format!("udp://{}", udp.local_addr().unwrap())),
            None,
        );
        let d = p.process_message(&raw, &ctx("milter"), &[], false).unwrap();
        assert_eq!(d.verdict.action.as_str(), "hold");
        // Internal mail: no alert.
        p.process_message(&corpus("internal.eml"), &ctx("milter"), &[], false)
            .unwrap();
        let mut buf = vec![0; 65536];
        let n = udp.recv(&mut buf).unwrap();
        let msg = String::from_utf8(buf[..n].to_vec()).unwrap();
        // RFC 5424: <PRI>1 TIMESTAMP HOST APP PROCID MSGID [SD] BOM MSG; local0.warning = 132.
        assert!(msg.starts_with("<132>1 "), "{msg}");
        assert!(msg.contains(" ping32dlp "), "{msg}");
        assert!(msg.contains("[ping32dlp@32473 record=\""), "{msg}");
        let json_at = msg.find('\u{feff}').unwrap() + 3;
        let v: serde_json::Value = serde_json::from_str(&msg[json_at..]).unwrap();
        assert_eq!(v["action"], "hold");
        assert_no_raw("syslog message", msg.as_bytes());
        // The webhook fails twice, then takes the alert (retried with backoff).
        let body = hooks.recv_timeout(Duration::from_secs(30)).unwrap();
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["rules"][0]["rule"], "hold-ids");
        assert_no_raw("webhook body", body.as_bytes());
    }
    // JSON Lines: one line per alerting mail.
    let lines = std::fs::read_to_string(&jsonl).unwrap();
    assert_eq!(lines.lines().count(), 1);
    assert_no_raw("alerts.jsonl", lines.as_bytes());
    // TCP syslog that is down at first: the alert waits in the outbox across a restart.
    let tcp_addr = tcp.local_addr().unwrap();
    drop(tcp);
    {
        let p = pipeline(&state, &sinks(format!("tcp://{tcp_addr}")), None);
        p.process_message(&raw, &ctx("milter"), &[], false).unwrap();
        // Webhook delivered; syslog retried and failing.
        hooks.recv_timeout(Duration::from_secs(30)).unwrap();
    }
    {
        let (waiting, _) = ping32dlp::workflow::SqliteStore::open(&state.join("audit.db"))
            .unwrap()
            .outbox_counts()
            .unwrap();
        assert_eq!(waiting, 1, "the syslog alert is still queued");
    }
    let tcp = TcpListener::bind(tcp_addr).unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let (mut s, _) = tcp.accept().unwrap();
        let mut all = Vec::new();
        s.read_to_end(&mut all).unwrap();
        tx.send(all).unwrap();
    });
    std::thread::sleep(Duration::from_millis(1100));
    {
        let _p = pipeline(&state, &sinks(format!("tcp://{tcp_addr}")), None);
        let framed = rx.recv_timeout(Duration::from_secs(30)).unwrap();
        let s = String::from_utf8(framed).unwrap();
        // Octet counting (RFC 6587): "LEN SP MSG".
        let (len, msg) = s.split_once(' ').unwrap();
        assert_eq!(len.parse::<usize>().unwrap(), msg.len());
        assert!(msg.starts_with("<132>1 "));
        assert_no_raw("syslog over TCP", s.as_bytes());
    }
    // The database and its WAL hold no raw values either.
    for f in std::fs::read_dir(&state).unwrap() {
        let f = f.unwrap().path();
        if f.is_file() {
            assert_no_raw(&f.display().to_string(), &std::fs::read(&f).unwrap());
        }
    }
}

#[test]
fn approvers_get_one_time_links_and_holds_keep_attachments() {
    let dir = tempfile::tempdir().unwrap();
    let mail_log = dir.path().join("approver-mail.log");
    // A hold rule without evidence_days: the attachment is kept for the approver anyway.
    let src = POLICY.replace("evidence_days = 30\n", "");
    let policy = parse_policy(&src, None).unwrap();
    let mut cfg = WorkflowConfig::from_policy(dir.path().join("state"), &policy);
    cfg.notify_command = Some(format!("cat >> {}", mail_log.display()));
    cfg.console_url = Some("https://dlp.example.co.jp/".into());
    let wf = Arc::new(Workflow::open(cfg).unwrap());
    let p = Pipeline::new(
        Arc::new(Engine::builtin()),
        policy,
        wf.clone(),
        ExtractOptions::default(),
    );
    let d = p
        .process_message(&corpus("mixed.eml"), &ctx("milter"), &[], false)
        .unwrap();
    let a = d.approval.unwrap();
    let kept = wf.evidence().of_record(a.record_id).unwrap();
    assert_eq!(kept.len(), 1, "{kept:?}");

    // The approver's mail names the request and carries the link.
    let mail = std::fs::read_to_string(&mail_log).unwrap();
    assert!(mail.contains("To: boss@example.co.jp") && mail.contains(&a.id));
    let link = mail
        .lines()
        .find(|l| l.starts_with("https://dlp.example.co.jp/link/"))
        .expect("a link");
    let token = link.split("&t=").nth(1).unwrap().trim();
    assert!(link.contains("?u=boss%40example.co.jp&t="));
    let events = wf.store().events(&a.id).unwrap();
    assert!(events
        .iter()
        .any(|e| e.kind == "notify_approver" && e.detail.contains("boss@example.co.jp")));

    // Another approver, another request, a changed token: refused; then once, and only once.
    assert!(matches!(
        wf.use_link(&a.id, "other@example.co.jp", token),
        Err(WorkflowError::Forbidden(_))
    ));
    let mut bad = token.to_string();
    let last = bad.pop().unwrap();
    bad.push(if last == '0' { '1' } else { '0' });
    assert!(wf.use_link(&a.id, "boss@example.co.jp", &bad).is_err());
    assert!(wf.use_link(&a.id, "boss@example.co.jp", "x.y").is_err());
    assert!(wf.use_link("nope", "boss@example.co.jp", token).is_err());
    assert_eq!(
        wf.use_link(&a.id, "BOSS@example.co.jp", token).unwrap().id,
        a.id
    );
    let again = wf.use_link(&a.id, "boss@example.co.jp", token).unwrap_err();
    assert!(again.to_string().contains("used already"), "{again}");
    // A fresh link works; links of an expired request do not.
    let fresh = wf.link_token(&a, "boss@example.co.jp");
    assert!(wf.use_link(&a.id, "boss@example.co.jp", &fresh).is_ok());
    let mut old = a.clone();
    old.id = "ab".repeat(12);
    old.expires = ping32dlp::timeutil::now() - 1;
    wf.store().insert_approval(&old).unwrap();
    let t = wf.link_token(&old, "boss@example.co.jp");
    let e = wf.use_link(&old.id, "boss@example.co.jp", &t).unwrap_err();
    assert!(e.to_string().contains("expired"), "{e}");

    // Who is assigned: listed approvers; a group's members; with groups unknown (the CLI),
    // a request that names only a group is open like one that names nobody.
    let legal = vec!["legal".to_string()];
    assert!(a.assigned_to("BOSS@example.co.jp", None));
    assert!(!a.assigned_to("other@example.co.jp", Some(&legal)));
    let mut g = a.clone();
    g.approvers.clear();
    g.approver_group = Some("legal".into());
    assert!(g.assigned_to("x@example.co.jp", Some(&legal)));
    assert!(!g.assigned_to("x@example.co.jp", Some(&[])));
    assert!(g.assigned_to("x@example.co.jp", None));
    g.approver_group = None;
    assert!(g.assigned_to("anyone@example.co.jp", Some(&[])));

    // The masked preview of the kept attachment shows no raw value.
    let data = wf.evidence().get(&kept[0].1).unwrap().unwrap();
    let pv = p.preview_file(&kept[0].0, &data, 1 << 20);
    assert!(!pv.parts.is_empty() && pv.parts.iter().any(|x| x.findings > 0));
    for f in d.report.findings.iter().filter(|f| f.location != "body") {
        if f.value.chars().filter(char::is_ascii_digit).count() >= 8 {
            assert!(
                pv.parts.iter().all(|x| !x.text.contains(f.value.as_str())),
                "{}",
                f.value
            );
        }
    }
    let cut = p.preview_file(&kept[0].0, &data, 10);
    assert!(cut.truncated && cut.parts.iter().map(|x| x.text.len()).sum::<usize>() <= 10);
}

#[test]
fn senders_cannot_approve_their_own_mail() {
    let dir = tempfile::tempdir().unwrap();
    let raw = corpus("mixed.eml");
    // The sender is an approver of the rule (a badly written policy) and an admin: still no.
    let p = pipeline(dir.path(), "", None);
    let d = p.process_message(&raw, &ctx("proxy"), &[], true).unwrap();
    let id = d.approval.unwrap().id;
    let wf = p.workflow();
    for who in ["ichiro@example.co.jp", "ICHIRO@example.co.jp", "ichiro"] {
        let e = wf.decide(&id, who, true, "", true).unwrap_err();
        assert!(matches!(e, WorkflowError::Forbidden(_)), "{who}: {e}");
    }
    // Rejecting (withdrawing) one's own mail is allowed.
    let a = wf
        .decide(&id, "ichiro@example.co.jp", false, "", true)
        .unwrap();
    assert_eq!(a.state, ApprovalState::Discarded);
    // A single-admin site allows it, and the event says so.
    let dir2 = tempfile::tempdir().unwrap();
    let p = pipeline(dir2.path(), "", None);
    let mut cfg = p.workflow().config().clone();
    cfg.allow_self_approval = true;
    let wf = Workflow::with_store(cfg, p.workflow().store().clone()).unwrap();
    let d = p.process_message(&raw, &ctx("proxy"), &[], true).unwrap();
    let id = d.approval.unwrap().id;
    wf.decide(&id, "ichiro@example.co.jp", true, "", true)
        .unwrap();
    let events = wf.store().events(&id).unwrap();
    assert!(
        events.iter().any(|e| e.kind == "self_approval"),
        "{events:?}"
    );
}

#[test]
fn alert_json_has_no_raw_control_or_bidi_characters() {
    let s = ping32dlp::workflow::plain_json(
        &serde_json::json!({"subject": "a\u{7f}b\u{202e}c\u{9b}d", "n": 1}).to_string(),
    );
    assert!(!s.chars().any(|c| c.is_control() || c == '\u{202e}'), "{s}");
    let back: serde_json::Value = serde_json::from_str(&s).unwrap();
    assert_eq!(back["subject"], "a\u{7f}b\u{202e}c\u{9b}d");
}

#[test]
fn recipient_roles_and_the_header_from_are_judged_kept_and_searched() {
    let dir = tempfile::tempdir().unwrap();
    let extra = r#"
[[rule]]
id = "many-visible"
action = "hold"
approvers = ["boss@example.co.jp"]
when = { to_external_count = { min = 2 } }

[[rule]]
id = "spoofed-from"
action = "block"
when = { from_differs_from_envelope = true }

[[rule]]
id = "lookalike"
action = "block"
when = { lookalike_domain = true }
"#;
    let p = pipeline(dir.path(), extra, None);
    let mail = |from: &str, to: &str, cc: &str, bcc: &str| {
        format!(
            "From: {from}\r\nTo: {to}\r\nCc: {cc}\r\n{bcc}Subject: roles\r\nMessage-ID: <r@example.co.jp>\r\n\r\nhello\r\n"
        )
        .into_bytes()
    };
    // One external in To, one in Cc (visible: 2), one in a Bcc header, one envelope-only.
    let raw = mail(
        "Taro <taro@example.co.jp>",
        "a@partner.example.com",
        "b@other.example.org, jiro@example.co.jp",
        "Bcc: c@third.example.net\r\n",
    );
    let mut c = ctx("proxy");
    c.envelope_from = Some("taro@example.co.jp".into());
    c.envelope_to = [
        "a@partner.example.com",
        "b@other.example.org",
        "jiro@example.co.jp",
        "c@third.example.net",
        "hidden@fourth.example.net",
    ]
    .map(String::from)
    .to_vec();
    let d = p.process_message(&raw, &c, &[], true).unwrap();
    assert_eq!(d.verdict.action.as_str(), "hold", "{:?}", d.verdict.matched);
    let why: Vec<&String> = d
        .verdict
        .matched
        .iter()
        .filter(|m| m.rule == "many-visible")
        .flat_map(|m| &m.reasons)
        .collect();
    assert!(
        why.iter()
            .any(|e| e.contains("2 external recipients in To/Cc")),
        "{why:?}"
    );
    let roles: Vec<(String, Option<&str>)> = d
        .record
        .recipients
        .iter()
        .map(|r| (r.address.clone(), r.role.map(|x| x.as_str())))
        .collect();
    assert_eq!(
        roles,
        vec![
            ("a@partner.example.com".into(), Some("to")),
            ("b@other.example.org".into(), Some("cc")),
            ("jiro@example.co.jp".into(), Some("cc")),
            ("c@third.example.net".into(), Some("bcc")),
            ("hidden@fourth.example.net".into(), Some("bcc")),
        ]
    );
    assert_eq!(d.record.header_from.as_deref(), Some("taro@example.co.jp"));
    // Search by role: the store keeps them (and a stored record replays with them).
    let store = p.workflow().store();
    let q = |recipient: Option<&str>, role: &str| AuditQuery {
        recipient: recipient.map(String::from),
        recipient_role: ping32dlp::policy::Role::parse(role),
        ..AuditQuery::default()
    };
    assert_eq!(
        store
            .search(&q(Some("b@other.example.org"), "cc"))
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        store
            .search(&q(Some("b@other.example.org"), "to"))
            .unwrap()
            .len(),
        0
    );
    assert_eq!(store.search(&q(None, "bcc")).unwrap().len(), 1);
    let stored = store.get_record(d.record.id).unwrap().unwrap();
    assert_eq!(stored.facts().roles, d.record.facts().roles);
    // The From header is not the envelope sender: blocked, and the evidence says both.
    let raw = mail(
        "Boss <boss@example.co.jp>",
        "a@partner.example.com",
        "x@example.co.jp",
        "",
    );
    c.envelope_to = vec!["a@partner.example.com".into()];
    let d = p.process_message(&raw, &c, &[], true).unwrap();
    assert_eq!(d.verdict.action.as_str(), "block");
    assert!(d.verdict.matched.iter().any(|m| m.rule == "spoofed-from"
        && m.reasons
            .iter()
            .any(|e| e.contains("boss@example.co.jp") && e.contains("taro@example.co.jp"))));
    // A look-alike of the company's own domain.
    let raw = mail(
        "taro@example.co.jp",
        "cfo@examp1e.co.jp",
        "x@example.co.jp",
        "",
    );
    c.envelope_to = vec!["cfo@examp1e.co.jp".into()];
    let d = p.process_message(&raw, &c, &[], true).unwrap();
    assert!(
        d.verdict.matched.iter().any(|m| m.rule == "lookalike"
            && m.reasons
                .iter()
                .any(|e| e.contains("examp1e.co.jp looks like example.co.jp"))),
        "{:?}",
        d.verdict.matched
    );
}

#[test]
fn delayed_mail_goes_out_when_the_delay_is_over_unless_the_sender_cancels() {
    let dir = tempfile::tempdir().unwrap();
    let extra = r#"
[[rule]]
id = "delay-outside"
action = "delay"
delay = "5m"
when = { all = [{ recipients = "any_external" }, { subject_contains = ["[delay]"] }] }

[[rule]]
id = "confirm-outside"
action = "hold"
approvers = ["sender"]
when = { all = [{ recipients = "any_external" }, { subject_contains = ["[confirm]"] }] }
"#;
    let notices = dir.path().join("notices.log");
    let mut policy = parse_policy(&format!("{POLICY}\n{extra}"), None).unwrap();
    let mut cfg = WorkflowConfig::new(dir.path());
    cfg.console_url = Some("https://dlp.example.co.jp".into());
    cfg.notify_command = Some(format!("cat >> {}", notices.display()));
    policy.release_command = None;
    let p = Pipeline::new(
        Arc::new(Engine::builtin()),
        policy,
        Arc::new(Workflow::open(cfg).unwrap()),
        ExtractOptions::default(),
    );
    let mail = |subject: &str| {
        format!("From: taro@example.co.jp\r\nTo: bob@partner.example.com\r\nSubject: {subject}\r\n\r\nhello\r\n").into_bytes()
    };
    let mut c = ctx("proxy");
    c.envelope_from = Some("taro@example.co.jp".into());
    c.envelope_to = vec!["bob@partner.example.com".into()];
    let keep = p
        .process_message(&mail("[delay] keep"), &c, &[], true)
        .unwrap();
    let cancel = p
        .process_message(&mail("[delay] cancel"), &c, &[], true)
        .unwrap();
    assert_eq!(keep.verdict.action.as_str(), "delay");
    let (k, x) = (keep.approval.unwrap(), cancel.approval.unwrap());
    assert!(k.release_on_expiry && k.approvers == ["sender"]);
    assert!(
        (k.expires - k.created - 300).abs() <= 1,
        "{}",
        k.expires - k.created
    );
    // The sender was told, with a link, the external recipients and when it goes out.
    let n = std::fs::read_to_string(&notices).unwrap();
    assert!(
        n.contains("To: taro@example.co.jp")
            && n.contains("bob@partner.example.com")
            && n.contains("/link/"),
        "{n}"
    );
    // Somebody else cannot cancel it; the sender can.
    let wf = p.workflow();
    assert!(wf
        .decide(&x.id, "jiro@example.co.jp", false, "", false)
        .is_err());
    let done = wf
        .decide(&x.id, "taro@example.co.jp", false, "wrong recipient", false)
        .unwrap();
    assert!(matches!(
        done.state,
        ApprovalState::Rejected | ApprovalState::Discarded
    ));
    // When the delay is over, the other goes out (approved by the system); the cancelled one
    // stays cancelled.
    let due = wf.expire_due(k.expires).unwrap();
    assert_eq!(
        due.iter().map(|a| a.id.as_str()).collect::<Vec<_>>(),
        [k.id.as_str()]
    );
    let k2 = wf.store().approval(&k.id).unwrap().unwrap();
    assert!(
        matches!(k2.state, ApprovalState::Approved | ApprovalState::Released),
        "{:?}",
        k2.state
    );
    assert_eq!(k2.decided_by.as_deref(), Some("system"));
    let x2 = wf.store().approval(&x.id).unwrap().unwrap();
    assert!(matches!(
        x2.state,
        ApprovalState::Rejected | ApprovalState::Discarded
    ));
    // Self-confirmation: held for the sender, who confirms it.
    let conf = p
        .process_message(&mail("[confirm] report"), &c, &[], true)
        .unwrap();
    let a = conf.approval.unwrap();
    assert!(!a.release_on_expiry);
    let n = std::fs::read_to_string(&notices).unwrap();
    assert!(n.contains("送信前にあなたの確認が必要です"), "{n}");
    let ok = wf
        .decide(&a.id, "taro@example.co.jp", true, "", false)
        .unwrap();
    assert!(matches!(
        ok.state,
        ApprovalState::Approved | ApprovalState::Released
    ));
}

#[test]
fn bcc_rule_hides_visible_external_recipients_also_in_a_held_copy() {
    let dir = tempfile::tempdir().unwrap();
    let extra = r#"
[[rule]]
id = "visible-to-bcc"
action = "bcc"
when = { to_external_count = { min = 2 } }
"#;
    let p = pipeline(dir.path(), extra, None);
    let mail = |body: &str| {
        format!(
            "From: taro@example.co.jp\r\nTo: \"A\" <a@partner.example.com>, jiro@example.co.jp\r\nCc: b@other.example.org\r\nSubject: x\r\n\r\n{body}\r\n"
        )
        .into_bytes()
    };
    let mut c = ctx("proxy");
    c.envelope_from = Some("taro@example.co.jp".into());
    c.envelope_to = [
        "a@partner.example.com",
        "jiro@example.co.jp",
        "b@other.example.org",
        "c@hidden.example.net",
    ]
    .map(String::from)
    .to_vec();
    // The alert rule decides the final action; the bcc rule's change still applies.
    let d = p.process_message(&mail("hello"), &c, &[], true).unwrap();
    assert_eq!(d.verdict.action.as_str(), "alert");
    assert_eq!(
        d.verdict.bcc,
        ["a@partner.example.com", "b@other.example.org"]
    );
    assert!(d.verdict.to_json()["move_to_bcc"].as_array().unwrap().len() == 2);
    let out =
        String::from_utf8(ping32dlp::pipeline::apply_tags(&mail("hello"), &d.verdict)).unwrap();
    assert!(
        out.starts_with("From: taro@example.co.jp\r\nTo: jiro@example.co.jp\r\nSubject: x\r\n"),
        "{out}"
    );
    // Held (a My Number to outside): the copy kept for release already has them moved.
    let d = p
        .process_message(&mail("個人番号: 1234 5678 9018"), &c, &[], true)
        .unwrap();
    assert_eq!(d.verdict.action.as_str(), "hold");
    let id = d.approval.as_ref().unwrap().id.clone();
    let held = String::from_utf8(p.workflow().held_message(&id).unwrap().unwrap()).unwrap();
    assert!(
        !held.contains("partner.example.com") && !held.contains("other.example.org"),
        "{held}"
    );
    assert!(held.contains("個人番号"), "{held}");
    // Below the threshold nothing changes.
    let one = b"From: taro@example.co.jp\r\nTo: a@partner.example.com\r\nSubject: x\r\n\r\nhi\r\n";
    let d = p.process_message(one, &c, &[], true).unwrap();
    assert!(d.verdict.bcc.is_empty());
}

#[test]
fn first_time_recipient_matches_until_the_sender_has_mailed_the_address() {
    let dir = tempfile::tempdir().unwrap();
    let extra = r#"
[[rule]]
id = "first-time"
action = "audit"
when = { first_time_recipient = true }
"#;
    let p = pipeline(dir.path(), extra, None);
    let send = |from: &str, to: &str| {
        let raw = format!("From: {from}\r\nTo: {to}\r\nSubject: x\r\n\r\nhello\r\n");
        let mut c = ctx("milter");
        c.envelope_from = Some(from.into());
        c.envelope_to = vec![to.into(), "jiro@example.co.jp".into()];
        let d = p.process_message(raw.as_bytes(), &c, &[], false).unwrap();
        d.verdict
            .matched
            .iter()
            .find(|m| m.rule == "first-time")
            .map(|m| m.reasons.join(" | "))
    };
    let first = send("taro@example.co.jp", "yamada@partner.example.com");
    assert!(
        first.as_deref().is_some_and(
            |r| r.contains("first mail from taro@example.co.jp to yamada@partner.example.com")
        ),
        "{first:?}"
    );
    assert_eq!(
        send("taro@example.co.jp", "yamada@partner.example.com"),
        None
    );
    assert!(send("hanako@example.co.jp", "yamada@partner.example.com").is_some());
    assert!(send("taro@example.co.jp", "sato@partner.example.com").is_some());
}

#[test]
fn the_weekly_report_is_mailed_once_at_its_hour() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("mail.txt");
    let text = format!(
        "{POLICY}\n[reports]\nweekly_to = [\"security@example.co.jp\", \"cio@example.co.jp\"]\nweekday = \"friday\"\nhour = 7\ncsv_encoding = \"cp932\"\n"
    );
    let policy = parse_policy(&text, None).unwrap();
    assert_eq!((policy.reports.weekday, policy.reports.hour), (4, 7));
    let mut cfg = WorkflowConfig::from_policy(dir.path(), &policy);
    cfg.notify_command = Some(format!("cat >> {}", out.display()));
    let p = Pipeline::new(
        Arc::new(Engine::builtin()),
        policy,
        Arc::new(Workflow::open(cfg.clone()).unwrap()),
        ExtractOptions::default(),
    );
    let mut c = ctx("milter");
    c.envelope_from = Some("taro@example.co.jp".into());
    c.envelope_to = vec!["yamada@partner.example.com".into()];
    c.department = Some("営業部".into());
    let raw = b"From: taro@example.co.jp\r\nTo: yamada@partner.example.com\r\nSubject: x\r\n\r\n\xe5\x80\x8b\xe4\xba\xba\xe7\x95\xaa\xe5\x8f\xb7: 1234 5678 9018\r\n";
    let d = p.process_message(raw, &c, &[], false).unwrap();
    assert_eq!(d.verdict.action.as_str(), "hold");
    // Another process on the store whose schedule says now.
    let now = ping32dlp::timeutil::now();
    let (minute, weekday) = ping32dlp::timeutil::local_minute_and_weekday(now, 540);
    cfg.reports.weekday = weekday;
    cfg.reports.hour = minute / 60;
    let wf = Workflow::open(cfg).unwrap();
    assert!(
        wf.weekly_report(now - 3600).unwrap().is_empty(),
        "not at another hour"
    );
    let sent = wf.weekly_report(now).unwrap();
    assert_eq!(sent, ["security@example.co.jp", "cio@example.co.jp"]);
    let mail = std::fs::read_to_string(&out).unwrap();
    assert!(
        mail.contains("To: security@example.co.jp, cio@example.co.jp\r\n"),
        "{mail}"
    );
    assert!(mail.contains("Content-Type: multipart/mixed"));
    assert!(mail.contains("filename=\"senders-") && mail.contains("filename=\"departments-"));
    assert!(mail.contains("text/csv; charset=Shift_JIS"));
    let parsed = mail_parser::MessageParser::default()
        .parse(mail.as_bytes())
        .unwrap();
    let html = parsed.body_html(0).unwrap();
    assert!(
        html.contains("taro@example.co.jp") && html.contains("営業部"),
        "{html}"
    );
    assert!(html.contains("highest mail risk"), "{html}");
    // Declared Shift_JIS and read back through that charset (so the bytes are CP932).
    let csv = parsed.attachment(0).unwrap().text_contents().unwrap();
    assert!(csv.starts_with("sender,department,risk"), "{csv}");
    assert!(csv.contains("taro@example.co.jp,営業部,"), "{csv}");
    // Once a week, however many processes ask.
    assert!(wf.weekly_report(now).unwrap().is_empty());
    assert_eq!(std::fs::read_to_string(&out).unwrap(), mail);
}
