//! One store test suite, run over SQLite (always) and over PostgreSQL (when
//! `PING32DLP_TEST_PG` names a server, e.g. `postgres://postgres@127.0.0.1:25432`: each test
//! makes a database of its own there; `scripts/store-test.sh` starts a private cluster and sets
//! it). Records and searches, history (live counters and replay), approvals and their
//! compare-and-set, one-time events, the outbox, secrets, console sessions and sign-in
//! attempts, turns, retention purges, evidence kept by the store, migrations from the previous
//! schema, concurrent first opens, and history that fails closed.

use std::path::Path;
use std::sync::Arc;

use ping32dlp::pipeline::Pipeline;
use ping32dlp::policy::{parse_policy, Context, Role};
use ping32dlp::workflow::{
    open_store, Approval, ApprovalEvent, ApprovalState, AttachmentRow, AuditQuery, AuditRecord,
    FindingRow, Recipient, Retention, Store, StoreConfig, StoredSession, Workflow, WorkflowConfig,
};
use ping32dlp::{Engine, ExtractOptions};

/// A place for one test's store: a state directory, and the PostgreSQL database if any.
struct Place {
    dir: tempfile::TempDir,
    pg: Option<StoreConfig>,
    name: String,
}

impl Place {
    fn store(&self) -> Arc<dyn Store> {
        open_store(self.dir.path(), self.pg.as_ref()).unwrap()
    }

    fn config(&self) -> WorkflowConfig {
        let mut c = WorkflowConfig::new(self.dir.path());
        c.store = self.pg.clone();
        c
    }
}

fn pg_base() -> Option<String> {
    std::env::var("PING32DLP_TEST_PG")
        .ok()
        .filter(|s| !s.is_empty())
}

fn recreate(c: &mut postgres::Client, db: &str) {
    c.batch_execute(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
        .unwrap();
    c.batch_execute(&format!("CREATE DATABASE {db} OWNER dlp"))
        .unwrap();
}

fn admin(base: &str) -> postgres::Client {
    postgres::Client::connect(&format!("{base}/postgres"), postgres::NoTls).unwrap()
}

/// The places a test runs in: SQLite, and PostgreSQL when configured.
fn places(test: &str) -> Vec<Place> {
    let mut v = vec![Place {
        dir: tempfile::tempdir().unwrap(),
        pg: None,
        name: "sqlite".into(),
    }];
    if let Some(base) = pg_base() {
        let db = format!("t_{test}_{}", std::process::id());
        let mut c = admin(&base);
        recreate(&mut c, &db);
        let host = base.rsplit_once('@').map_or(base.as_str(), |(_, h)| h);
        v.push(Place {
            dir: tempfile::tempdir().unwrap(),
            pg: Some(StoreConfig::new(format!("postgres://dlp@{host}/{db}"))),
            name: "postgres".into(),
        });
    } else {
        eprintln!("(PING32DLP_TEST_PG not set: {test} runs over SQLite only)");
    }
    v
}

fn rec(
    time: i64,
    sender: &str,
    to: &[(&str, bool)],
    sha: Option<&str>,
    gateway: &str,
) -> AuditRecord {
    AuditRecord {
        time,
        channel: "milter".into(),
        user: Some("ichiro".into()),
        sender: sender.into(),
        recipients: to
            .iter()
            .enumerate()
            .map(|(i, (a, e))| Recipient {
                address: a.to_string(),
                external: *e,
                role: Some(if i == 0 { Role::To } else { Role::Cc }),
            })
            .collect(),
        subject: "見積".into(),
        size: 1000,
        attachments: sha
            .map(|s| AttachmentRow {
                location: "a.xlsx".into(),
                name: "a.xlsx".into(),
                kind: "xlsx".into(),
                size: 500,
                sha256: s.into(),
                origin: None,
                extension_mismatch: false,
                depth: 0,
                unscannable: None,
            })
            .into_iter()
            .collect(),
        findings: vec![FindingRow {
            detector: "jp_my_number".into(),
            location: "*".into(),
            count: 1,
            unique: [1, 1, 1],
            samples: vec!["**** **** 9018".into()],
        }],
        action: "allow".into(),
        would_action: "allow".into(),
        gateway: Some(gateway.into()),
        ..AuditRecord::default()
    }
}

#[test]
fn records_search_stats_and_history() {
    let now = ping32dlp::timeutil::now();
    for p in places("records") {
        let s = p.store();
        let sha = "ab".repeat(32);
        let mut ids = Vec::new();
        for (i, gw) in ["mx1", "mx2", "mx1"].iter().enumerate() {
            let r = rec(
                now - 100 + i as i64,
                "ichiro@example.co.jp",
                &[
                    ("bob@partner.example", true),
                    ("hanako@example.co.jp", false),
                ],
                Some(&sha),
                gw,
            );
            ids.push(s.record(&r).unwrap());
        }
        // An old record, in another month (another partition on PostgreSQL).
        let old = s
            .record(&rec(
                now - 40 * 86_400,
                "jiro@example.co.jp",
                &[("x@other.example", true)],
                None,
                "mx2",
            ))
            .unwrap();
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "{}", p.name);
        let got = s.get_record(ids[1]).unwrap().unwrap();
        assert_eq!(got.gateway.as_deref(), Some("mx2"));
        assert_eq!(got.subject, "見積");
        assert!(s.get_record(old).unwrap().is_some());
        let q = |f: &dyn Fn(&mut AuditQuery)| {
            let mut q = AuditQuery::default();
            f(&mut q);
            s.search(&q)
                .unwrap()
                .into_iter()
                .map(|r| r.id)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            q(&|q| q.gateway = Some("mx1".into())),
            vec![ids[2], ids[0]],
            "{}",
            p.name
        );
        assert_eq!(q(&|q| q.sha256 = Some(sha.clone())).len(), 3);
        assert_eq!(q(&|q| q.domain = Some("other.example".into())), vec![old]);
        assert_eq!(
            q(&|q| q.recipient = Some("bob@partner.example".into())).len(),
            3
        );
        assert_eq!(q(&|q| q.detector = Some("jp_my_number".into())).len(), 4);
        // Recipient roles (kept in their own column; NULL for records from before).
        let role = |r: &str| Role::parse(r);
        let by = |a: Option<&str>, r: &str| {
            q(&|q| {
                q.recipient = a.map(String::from);
                q.recipient_role = role(r)
            })
            .len()
        };
        assert_eq!(by(Some("hanako@example.co.jp"), "cc"), 3, "{}", p.name);
        assert_eq!(by(Some("bob@partner.example"), "cc"), 0, "{}", p.name);
        assert_eq!(by(Some("bob@partner.example"), "to"), 3, "{}", p.name);
        assert_eq!(by(None, "to"), 4, "{}", p.name);
        assert_eq!(by(None, "bcc"), 0, "{}", p.name);
        assert_eq!(
            s.get_record(ids[0]).unwrap().unwrap().recipients[1].role,
            Some(Role::Cc)
        );
        assert_eq!(
            q(&|q| {
                q.since = Some(now - 86_400);
                q.sender = Some("jiro@example.co.jp".into())
            }),
            Vec::<i64>::new()
        );
        assert_eq!(
            q(&|q| {
                q.since = Some(now - 50 * 86_400);
                q.until = Some(now - 30 * 86_400)
            }),
            vec![old]
        );
        let st = s.stats(now - 86_400, now + 1, 540, 5, None).unwrap();
        assert_eq!(st.per_day.iter().map(|d| d.1).sum::<u64>(), 3, "{}", p.name);
        assert_eq!(st.top_senders[0], ("ichiro@example.co.jp".to_string(), 3));
        assert_eq!(st.repeated_files[0].2, 3);
        // History: live counters, and replay before a record.
        assert_eq!(s.external_sends_of(&sha, now - 3600, now), Ok(3));
        assert_eq!(
            s.sender_external("ichiro@example.co.jp", now - 3600, now),
            Ok((3, 1500))
        );
        assert_eq!(s.domain_seen("partner.example", now), Ok(true));
        assert_eq!(s.domain_seen("never.example", now), Ok(false));
        let before = s.history_before(ids[2]);
        assert_eq!(before.external_sends_of(&sha, now - 3600, now), Ok(2));
        let mut seen = Vec::new();
        s.each_record(now - 50 * 86_400, &mut |r| seen.push(r.id))
            .unwrap();
        assert_eq!(seen, vec![old, ids[0], ids[1], ids[2]], "{}", p.name);
    }
}

/// Many records over five months (five partitions on PostgreSQL) with small populations, so
/// that every filter matches many, a record can match a domain twice (sender and recipient, or
/// two recipients), and combined filters keep few of a filter's matches: each store's search
/// must return exactly what a scan of the records returns, newest first, for every filter
/// combination and limit (PostgreSQL's driven searches read candidates in rounds; this checks
/// the rounds, their merging and their fallback).
#[test]
fn searches_return_what_a_scan_returns() {
    let start = 1_767_193_200; // 2026-01-01 JST
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    let mut rnd = |n: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % n
    };
    let mut all = Vec::new();
    for i in 0..2400i64 {
        let sender = format!(
            "s{}@{}",
            rnd(6),
            ["example.co.jp", "partner1.example"][rnd(5).min(1) as usize]
        );
        let recipients = (0..1 + rnd(3))
            .map(|_| {
                let d = ["example.co.jp", "partner1.example", "partner2.example"][rnd(3) as usize];
                Recipient {
                    address: format!("r{}@{d}", rnd(4)),
                    external: d != "example.co.jp",
                    role: None,
                }
            })
            .collect();
        let attachments = (0..rnd(3))
            .map(|k| AttachmentRow {
                location: format!("f{k}.xlsx"),
                name: format!("f{k}.xlsx"),
                kind: "xlsx".into(),
                size: 100,
                sha256: format!("{:064x}", rnd(7)),
                origin: None,
                extension_mismatch: false,
                depth: 0,
                unscannable: None,
            })
            .collect();
        let findings = (0..rnd(3))
            .map(|_| FindingRow {
                detector: ["jp_my_number", "credit_card", "jp_phone"][rnd(3) as usize].into(),
                location: "*".into(),
                count: 1,
                unique: [1, 1, 1],
                samples: vec!["****".into()],
            })
            .collect();
        let action = if rnd(40) == 0 {
            "block"
        } else {
            ["allow", "audit", "hold"][rnd(3) as usize]
        };
        all.push(AuditRecord {
            // Forty records a second, every three days: six months, and every page boundary
            // falls among records of the same second.
            time: start + (i / 40) * 3 * 86_400,
            channel: "milter".into(),
            user: Some(format!("u{}", rnd(4))),
            sender,
            recipients,
            subject: format!("s{i}"),
            size: 100,
            attachments,
            findings,
            action: action.into(),
            would_action: action.into(),
            gateway: Some(format!("gw-{}", rnd(3))),
            ..AuditRecord::default()
        });
    }
    let end = all.last().unwrap().time;
    let matches = |r: &AuditRecord, q: &AuditQuery| -> bool {
        let domain_of = |a: &str| {
            a.rsplit_once('@')
                .map(|x| x.1.to_string())
                .unwrap_or_default()
        };
        q.user.as_ref().is_none_or(|u| r.user.as_ref() == Some(u))
            && q.sender.as_ref().is_none_or(|s| &r.sender == s)
            && q.action.as_ref().is_none_or(|a| &r.action == a)
            && q.gateway
                .as_ref()
                .is_none_or(|g| r.gateway.as_ref() == Some(g))
            && q.since.is_none_or(|t| r.time >= t)
            && q.until.is_none_or(|t| r.time < t)
            && q.recipient
                .as_ref()
                .is_none_or(|a| r.recipients.iter().any(|x| &x.address == a))
            && q.domain.as_ref().is_none_or(|d| {
                &domain_of(&r.sender) == d
                    || r.recipients.iter().any(|x| &domain_of(&x.address) == d)
            })
            && q.sha256
                .as_ref()
                .is_none_or(|h| r.attachments.iter().any(|a| &a.sha256 == h))
            && q.detector
                .as_ref()
                .is_none_or(|d| r.findings.iter().any(|f| &f.detector == d))
    };
    // Filter values: one of each kind (many matches), none, and combinations.
    let sha = format!("{:064x}", 3);
    type Filter = Box<dyn Fn(&mut AuditQuery)>;
    let filters: Vec<(&str, Filter)> = vec![
        ("none", Box::new(|_| {})),
        (
            "sender",
            Box::new(|q| q.sender = Some("s2@example.co.jp".into())),
        ),
        ("user", Box::new(|q| q.user = Some("u1".into()))),
        (
            "recipient",
            Box::new(|q| q.recipient = Some("r1@partner2.example".into())),
        ),
        (
            "domain (sender and recipients)",
            Box::new(|q| q.domain = Some("example.co.jp".into())),
        ),
        (
            "domain (mostly recipients)",
            Box::new(|q| q.domain = Some("partner1.example".into())),
        ),
        (
            "sha256",
            Box::new(|q| q.sha256 = Some(format!("{:064x}", 3))),
        ),
        (
            "detector",
            Box::new(|q| q.detector = Some("credit_card".into())),
        ),
        (
            "detector + rare verdict",
            Box::new(|q| {
                q.detector = Some("jp_phone".into());
                q.action = Some("block".into());
            }),
        ),
        (
            "detector + verdict (a third)",
            Box::new(|q| {
                q.detector = Some("jp_phone".into());
                q.action = Some("hold".into());
            }),
        ),
        (
            "domain (both) + rare verdict",
            Box::new(|q| {
                q.domain = Some("partner1.example".into());
                q.action = Some("block".into());
            }),
        ),
        (
            "recipient + rare verdict",
            Box::new(|q| {
                q.recipient = Some("r0@example.co.jp".into());
                q.action = Some("block".into());
            }),
        ),
        (
            "domain + rare verdict + gateway",
            Box::new(|q| {
                q.domain = Some("partner2.example".into());
                q.action = Some("block".into());
                q.gateway = Some("gw-1".into());
            }),
        ),
        (
            "recipient + sha256 + detector",
            Box::new(move |q| {
                q.recipient = Some("r0@partner1.example".into());
                q.sha256 = Some(sha.clone());
                q.detector = Some("jp_my_number".into());
            }),
        ),
        (
            "sender + domain + detector",
            Box::new(|q| {
                q.sender = Some("s3@example.co.jp".into());
                q.domain = Some("partner2.example".into());
                q.detector = Some("credit_card".into());
            }),
        ),
        (
            "user + recipient",
            Box::new(|q| {
                q.user = Some("u2".into());
                q.recipient = Some("r3@example.co.jp".into());
            }),
        ),
        (
            "nothing matches",
            Box::new(|q| q.recipient = Some("nobody@nowhere.example".into())),
        ),
    ];
    let windows: [(Option<i64>, Option<i64>); 3] = [
        (None, None),
        (Some(start + 40 * 86_400), Some(start + 100 * 86_400)),
        (Some(end - 10 * 86_400), None),
    ];
    let mut stats_seen: Option<String> = None;
    for p in places("searches") {
        let s = p.store();
        let mut expected = all.clone();
        // Eight writers at once: group commit on both backends.
        let ids: Vec<i64> = std::thread::scope(|t| {
            let hs: Vec<_> = all
                .chunks(150)
                .map(|c| {
                    let s = s.clone();
                    t.spawn(move || c.iter().map(|r| s.record(r).unwrap()).collect::<Vec<_>>())
                })
                .collect();
            hs.into_iter().flat_map(|h| h.join().unwrap()).collect()
        });
        for (r, id) in expected.iter_mut().zip(&ids) {
            r.id = *id;
        }
        expected.sort_by_key(|r| std::cmp::Reverse((r.time, r.id)));
        let mut checked = 0;
        for (name, f) in &filters {
            for (since, until) in windows {
                for limit in [1usize, 7, 100, 0] {
                    let mut q = AuditQuery {
                        limit,
                        since,
                        until,
                        ..AuditQuery::default()
                    };
                    f(&mut q);
                    let want: Vec<i64> = expected
                        .iter()
                        .filter(|r| matches(r, &q))
                        .take(if limit == 0 { 1000 } else { limit })
                        .map(|r| r.id)
                        .collect();
                    let got: Vec<i64> = s.search(&q).unwrap().iter().map(|r| r.id).collect();
                    assert_eq!(
                        got, want,
                        "{}: {name}, {since:?}..{until:?}, limit {limit}",
                        p.name
                    );
                    checked += usize::from(!want.is_empty());
                }
            }
        }
        assert!(
            checked > 100,
            "{}: only {checked} searches found anything",
            p.name
        );
        // The dashboard's counts: the same on both stores, and what the records say.
        let mut st = s
            .stats(start + 20 * 86_400, end + 1, 540, 50, None)
            .unwrap();
        st.per_action.sort();
        st.top_senders.sort();
        st.top_domains.sort();
        st.top_detectors.sort();
        st.repeated_files.sort();
        let window: Vec<&AuditRecord> = expected
            .iter()
            .filter(|r| r.time >= start + 20 * 86_400)
            .collect();
        assert_eq!(
            st.per_day.iter().map(|d| d.1).sum::<u64>(),
            window.len() as u64,
            "{}",
            p.name
        );
        let blocks = window.iter().filter(|r| r.action == "block").count() as u64;
        assert!(
            st.per_action.contains(&("block".to_string(), blocks)),
            "{}",
            p.name
        );
        let summary = format!(
            "{:?}",
            (
                &st.per_day,
                &st.per_action,
                &st.top_senders,
                &st.top_domains,
                &st.top_detectors,
                &st.repeated_files
            )
        );
        match &stats_seen {
            None => stats_seen = Some(summary),
            Some(first) => assert_eq!(&summary, first, "{} differs from sqlite", p.name),
        }
    }
}

fn approval(id: &str, record_id: i64, gateway: Option<&str>) -> Approval {
    let now = ping32dlp::timeutil::now();
    Approval {
        id: id.into(),
        record_id,
        state: ApprovalState::Pending,
        created: now,
        expires: now + 3600,
        approvers: vec!["boss@example.co.jp".into()],
        approver_group: None,
        rule: "hold".into(),
        channel: "milter".into(),
        queue_id: Some("ABC123".into()),
        sender: "ichiro@example.co.jp".into(),
        recipients: vec!["bob@partner.example".into()],
        subject: "x".into(),
        decided_by: None,
        decided_at: None,
        comment: None,
        closed_at: None,
        gateway: gateway.map(str::to_string),
        release_on_expiry: false,
    }
}

#[test]
fn approvals_events_outbox_secrets_sessions_turns() {
    let now = ping32dlp::timeutil::now();
    for p in places("approvals") {
        let s = p.store();
        let rid = s
            .record(&rec(now, "a@example.co.jp", &[], None, "mx1"))
            .unwrap();
        s.insert_approval(&approval("aa11", rid, Some("mx1")))
            .unwrap();
        s.insert_approval(&approval("bb22", rid, Some("mx2")))
            .unwrap();
        let mut a = s.approval("aa11").unwrap().unwrap();
        a.state = ApprovalState::Approved;
        a.decided_by = Some("boss@example.co.jp".into());
        assert!(s.transition(&a, ApprovalState::Pending).unwrap());
        assert!(
            !s.transition(&a, ApprovalState::Pending).unwrap(),
            "compare-and-set: once"
        );
        let todo = s.approvals_to_carry_out("mx1").unwrap();
        assert_eq!(todo.len(), 1, "{}", p.name);
        assert_eq!(todo[0].id, "aa11");
        assert!(s.approvals_to_carry_out("mx2").unwrap().is_empty());
        let e = ApprovalEvent {
            time: now,
            actor: "boss".into(),
            kind: "link_signin".into(),
            detail: "link 0011223344556677".into(),
        };
        assert!(s.add_event_once("aa11", &e).unwrap());
        assert!(
            !s.add_event_once("aa11", &e).unwrap(),
            "{}: a nonce once",
            p.name
        );
        s.add_event(
            "aa11",
            &ApprovalEvent {
                kind: "view".into(),
                ..e.clone()
            },
        )
        .unwrap();
        s.add_event(
            "aa11",
            &ApprovalEvent {
                kind: "view".into(),
                ..e.clone()
            },
        )
        .unwrap();
        assert_eq!(s.events("aa11").unwrap().len(), 3);
        // Outbox: a claimed item is leased.
        let id = s.outbox_push("webhook", "{}", now).unwrap();
        let got = s.outbox_claim(now, 60, 10).unwrap();
        assert_eq!(got.len(), 1);
        assert!(s.outbox_claim(now, 60, 10).unwrap().is_empty(), "leased");
        s.outbox_done(id).unwrap();
        assert_eq!(s.outbox_counts().unwrap(), (0, 0));
        // Secrets: made once, the same for every opener.
        let k = s.secret("approval").unwrap();
        assert_eq!(p.store().secret("approval").unwrap(), k);
        // Sessions and attempts, shared by every process on the store.
        let sess = StoredSession {
            user: "boss".into(),
            role: "approver".into(),
            groups: vec!["legal".into()],
            csrf: "c".into(),
            scope: None,
            created: now,
            last: now,
        };
        s.session_put("k1", &sess).unwrap();
        let other = p.store();
        assert_eq!(
            other
                .session_get("k1", now + 5, 60, 3600)
                .unwrap()
                .unwrap()
                .groups,
            vec!["legal"]
        );
        assert!(
            other
                .session_get("k1", now + 200, 60, 3600)
                .unwrap()
                .is_none(),
            "idle"
        );
        for i in 0..3 {
            assert_eq!(s.attempt("ip:x", 3, 60, now).unwrap(), Ok(()), "{i}");
        }
        assert!(
            other.attempt("ip:x", 3, 60, now).unwrap().is_err(),
            "counted across processes"
        );
        assert_eq!(
            s.attempt("ip:x", 3, 60, now + 61).unwrap(),
            Ok(()),
            "a new window"
        );
        // Turns: one caller per period.
        assert!(s.take_turn("purge", 86_400, now).unwrap());
        assert!(!other.take_turn("purge", 86_400, now + 10).unwrap());
        assert!(other.take_turn("purge", 86_400, now + 86_400).unwrap());
    }
}

#[test]
fn fleet_enrolment_uploads_and_revocation() {
    use ping32dlp::workflow::fleet::{self, Agent, AgentStatus, Enrolment};
    let now = ping32dlp::timeutil::now();
    for p in places("fleet") {
        let s = p.store();
        let other = p.store();
        let (token, t) = fleet::new_enrol_token("sales PC", "admin", now, 7);
        s.enrol_token_add(&t).unwrap();
        let (old, mut ot) = fleet::new_enrol_token("old", "admin", now - 10 * 86_400, 1);
        ot.expires = now - 1;
        s.enrol_token_add(&ot).unwrap();
        let agent = |name: &str| Agent {
            name: name.into(),
            secret_sha256: fleet::secret_digest("s"),
            created: 0,
            label: String::new(),
            last_seen: None,
            last_seq: 0,
            revoked: None,
            status: AgentStatus {
                host: Some("pc1".into()),
                ..Default::default()
            },
        };
        let sha = fleet::secret_digest(&token);
        // A token works once, however many try at once.
        let outcomes: Vec<Enrolment> = std::thread::scope(|sc| {
            let hs: Vec<_> = (0..6)
                .map(|i| {
                    let st = if i % 2 == 0 { s.clone() } else { other.clone() };
                    let (sha, a) = (sha.clone(), agent(&format!("pc{i}")));
                    sc.spawn(move || st.enrol(&sha, now, &a).unwrap())
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let won = outcomes
            .iter()
            .filter(|o| **o == Enrolment::Enrolled)
            .count();
        assert_eq!(won, 1, "{}: {outcomes:?}", p.name);
        assert!(outcomes
            .iter()
            .all(|o| matches!(o, Enrolment::Enrolled | Enrolment::BadToken)));
        let winner = s.agents().unwrap().remove(0);
        assert_eq!(winner.label, "sales PC");
        assert_eq!(winner.status.host.as_deref(), Some("pc1"));
        assert_eq!(
            s.enrol(&fleet::secret_digest(&old), now, &agent("late"))
                .unwrap(),
            Enrolment::BadToken,
            "{}: an expired token",
            p.name
        );
        let (t2, e2) = fleet::new_enrol_token("second", "admin", now, 7);
        s.enrol_token_add(&e2).unwrap();
        assert_eq!(
            s.enrol(&fleet::secret_digest(&t2), now, &agent(&winner.name))
                .unwrap(),
            Enrolment::NameTaken
        );
        // The name was taken, so the token is still good.
        assert_eq!(
            s.enrol(&fleet::secret_digest(&t2), now, &agent("pc-b"))
                .unwrap(),
            Enrolment::Enrolled
        );
        let toks = s.enrol_tokens(10).unwrap();
        assert_eq!(toks.len(), 3);
        assert!(toks.iter().all(|t| !t.sha256.contains(&token)));

        // Uploads: stored once, in order, under the agent's name.
        let n = &winner.name;
        let items: Vec<(i64, AuditRecord, ())> = (1..=5)
            .map(|i| {
                let mut r = rec(
                    now - 100 + i,
                    &format!("u{i}@corp.example"),
                    &[("x@ext.example", true)],
                    Some("ab12"),
                    "forged",
                );
                r.id = 1000 + i;
                (i, r, ())
            })
            .collect();
        let (last, recs) = fleet::prepare_upload(n, 0, items.clone()).unwrap();
        let recs: Vec<AuditRecord> = recs.into_iter().map(|(r, ())| r).collect();
        // The third mail is held on the PC: its request comes with it.
        let mut held = approval("a1b2c3d4e5f6", 0, Some(n));
        held.created = now;
        let ids = s
            .ingest(n, 0, last, &recs, &[(2, held.clone())], now)
            .unwrap()
            .unwrap();
        assert_eq!(ids.len(), 5);
        let got = other.approval("a1b2c3d4e5f6").unwrap().unwrap();
        assert_eq!(
            (got.record_id, got.gateway.as_deref()),
            (ids[2], Some(n.as_str()))
        );
        let ev = s.events("a1b2c3d4e5f6").unwrap();
        assert_eq!(
            (ev[0].kind.as_str(), ev[0].actor.clone()),
            ("created", format!("agent:{n}"))
        );
        // The same batch again, through the other handle: the number has moved on.
        assert_eq!(
            other.ingest(n, 0, last, &recs, &[(2, held)], now).unwrap(),
            None
        );
        let a = s.agent(n).unwrap().unwrap();
        let (last2, recs2) = fleet::prepare_upload(n, a.last_seq, items).unwrap();
        assert_eq!((last2, recs2.len()), (5, 0));
        let found = s
            .search(&AuditQuery {
                gateway: Some(n.clone()),
                limit: 100,
                ..Default::default()
            })
            .unwrap();
        assert_eq!(found.len(), 5, "{}", p.name);
        assert!(found
            .iter()
            .all(|r| r.gateway.as_deref() == Some(n.as_str())));
        let mut senders: Vec<_> = found.iter().map(|r| (r.id, r.sender.clone())).collect();
        senders.sort();
        let order: Vec<_> = senders.into_iter().map(|(_, s)| s).collect();
        assert_eq!(
            order,
            (1..=5)
                .map(|i| format!("u{i}@corp.example"))
                .collect::<Vec<_>>()
        );
        // The dashboard for one agent: its mail only, on both stores.
        let st = s.stats(now - 1000, now + 1, 540, 10, Some(n)).unwrap();
        let total: u64 = st.per_day.iter().map(|d| d.1).sum();
        assert_eq!(total, 5, "{}", p.name);
        assert_eq!(st.top_senders.len(), 5);
        assert_eq!(st.top_domains, vec![("ext.example".to_string(), 5)]);
        assert_eq!(st.top_detectors, vec![("jp_my_number".to_string(), 5)]);
        assert_eq!(st.repeated_files.len(), 1);
        let none = s
            .stats(now - 1000, now + 1, 540, 10, Some("nobody"))
            .unwrap();
        assert!(
            none.per_day.is_empty()
                && none.top_detectors.is_empty()
                && none.repeated_files.is_empty()
        );
        // The server's history counts uploaded mail.
        assert_eq!(s.external_sends_of("ab12", now - 1000, now + 1).unwrap(), 5);

        s.agent_seen(
            n,
            now + 5,
            &AgentStatus {
                version: Some("ping32dlp-proxy 0.1.0".into()),
                policy_version: Some("p1".into()),
                backlog: 3,
                ..Default::default()
            },
        )
        .unwrap();
        let a = other.agent(n).unwrap().unwrap();
        assert_eq!(
            (a.last_seen, a.last_seq, a.status.backlog),
            (Some(now + 5), 5, 3)
        );
        // Revoked: refused uploads.
        assert!(s.agent_revoke(n, now + 6).unwrap());
        assert!(!s.agent_revoke(n, now + 7).unwrap());
        let mut r = rec(now, "late@corp.example", &[], None, "x");
        r.gateway = Some(n.clone());
        assert_eq!(s.ingest(n, 5, 6, &[r], &[], now).unwrap(), None);
        assert_eq!(s.agent(n).unwrap().unwrap().revoked, Some(now + 6));
        assert!(s.agent("nobody").unwrap().is_none());
        // Policies for the agents: versions in order, the latest is current.
        assert!(s.fleet_policy().unwrap().is_none());
        let v1 = s
            .fleet_policy_put("[policy]\nname = \"a\"\n", "admin", now)
            .unwrap();
        let v2 = other
            .fleet_policy_put("[policy]\nname = \"b\"\n", "admin2", now + 1)
            .unwrap();
        assert!(v2 > v1);
        let cur = s.fleet_policy().unwrap().unwrap();
        assert_eq!((cur.version, cur.actor.as_str()), (v2, "admin2"));
        assert!(cur.text.contains("\"b\""));
        assert_eq!(cur.sha256, fleet::secret_digest(&cur.text));
    }
}

#[test]
fn concurrent_attempts_count_exactly() {
    let now = ping32dlp::timeutil::now();
    for p in places("attempts") {
        let stores: Vec<Arc<dyn Store>> = (0..4).map(|_| p.store()).collect();
        let ok: usize = std::thread::scope(|sc| {
            let hs: Vec<_> = (0..40)
                .map(|i| {
                    let s = stores[i % 4].clone();
                    sc.spawn(move || s.attempt("acct", 5, 60, now).unwrap().is_ok() as usize)
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).sum()
        });
        assert_eq!(ok, 5, "{}", p.name);
    }
}

#[test]
fn retention_purges_old_records_and_final_approvals() {
    let now = ping32dlp::timeutil::now();
    for p in places("purge") {
        let s = p.store();
        let old = s
            .record(&rec(
                now - 400 * 86_400,
                "a@example.co.jp",
                &[("x@y.example", true)],
                Some(&"cd".repeat(32)),
                "mx1",
            ))
            .unwrap();
        let keep = s
            .record(&rec(
                now - 10,
                "a@example.co.jp",
                &[("x@y.example", true)],
                None,
                "mx1",
            ))
            .unwrap();
        let mut a = approval("old1", old, None);
        a.created = now - 400 * 86_400;
        a.state = ApprovalState::Released;
        s.insert_approval(&a).unwrap();
        let mut pend = approval("pend", old, None);
        pend.created = now - 400 * 86_400;
        s.insert_approval(&pend).unwrap();
        let wf = Workflow::with_store(
            WorkflowConfig {
                retention: Retention {
                    audit_days: 365,
                    evidence_days: 30,
                    approval_days: 365,
                },
                ..p.config()
            },
            s.clone(),
        )
        .unwrap();
        let r = wf.purge("test").unwrap();
        assert_eq!(r.records, 1, "{}: {r:?}", p.name);
        if p.name == "postgres" {
            assert_eq!(r.partitions, 1, "the old month was dropped whole");
        }
        assert_eq!(r.approvals, 1, "pending requests stay");
        assert!(s.get_record(old).unwrap().is_none());
        assert!(s.get_record(keep).unwrap().is_some());
        assert!(s.approval("pend").unwrap().is_some());
        assert_eq!(s.purges(5).unwrap()[0].records, 1);
        // The counters went with the records.
        assert_eq!(s.external_sends_of(&"cd".repeat(32), 0, now), Ok(0));
    }
}

const POLICY: &str = r#"
[policy]
internal_domains = ["example.co.jp"]

[[rule]]
id = "hold-ids"
action = "hold"
approvers = ["boss@example.co.jp"]
evidence_days = 90
when = { all = [{ recipients = "any_external" }, { detector = ["jp_my_number"] }] }

[[rule]]
id = "same-file-thrice"
action = "alert"
when = { same_attachment_sent_external = { min = 3, within = "1h" } }

[approval]
notify_command = ""
release_command = ""
discard_command = ""
"#;

fn corpus(name: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("corpus/policy")
            .join(name),
    )
    .unwrap()
}

fn pipeline(cfg: WorkflowConfig) -> Pipeline {
    let policy = parse_policy(POLICY, None).unwrap();
    let mut cfg = WorkflowConfig {
        discard_command: None,
        notify_command: None,
        ..cfg
    };
    cfg.alerts = policy.alerts.clone();
    Pipeline::new(
        Arc::new(Engine::builtin()),
        policy,
        Arc::new(Workflow::open(cfg).unwrap()),
        ExtractOptions::default(),
    )
}

#[test]
fn gateways_share_history_holds_and_evidence() {
    for p in places("gateways") {
        let gw = |name: &str| {
            let mut c = p.config();
            c.gateway = Some(name.into());
            c.carries_out = true;
            // Its "release command" (Postfix's postsuper in real life) leaves a mark.
            c.release_command = Some(format!(
                "touch {}/released-by-{name}",
                p.dir.path().display()
            ));
            pipeline(c)
        };
        let (a, b) = (gw("mx1"), gw("mx2"));
        let ctx = Context {
            channel: "milter".into(),
            queue_id: Some("Q1".into()),
            ..Context::default()
        };
        // The same file outside through mx1, mx2, mx1: the third is seen by either.
        let raw = corpus("mixed.eml");
        let d1 = a.process_message(&raw, &ctx, &[], false).unwrap();
        let d2 = b.process_message(&raw, &ctx, &[], false).unwrap();
        let d3 = a.process_message(&raw, &ctx, &[], false).unwrap();
        let fired = |d: &ping32dlp::pipeline::Decision| {
            d.verdict
                .matched
                .iter()
                .any(|m| m.rule == "same-file-thrice")
        };
        assert!(!fired(&d1) && !fired(&d2) && fired(&d3), "{}", p.name);
        // The hold of mx1 is carried out by mx1 only, wherever it is decided.
        let held = d1.approval.unwrap();
        assert_eq!(held.gateway.as_deref(), Some("mx1"));
        let console = pipeline(p.config());
        console
            .workflow()
            .decide(&held.id, "boss@example.co.jp", true, "", false)
            .unwrap();
        assert!(b.workflow().carry_out().unwrap().is_empty());
        let done = a.workflow().carry_out().unwrap();
        assert_eq!(done.len(), 1, "{}", p.name);
        assert_eq!(done[0].state, ApprovalState::Released);
        assert!(p.dir.path().join("released-by-mx1").exists());
        assert!(!p.dir.path().join("released-by-mx2").exists());
        // The held mail's attachment is evidence any host can read.
        let kept = console
            .workflow()
            .evidence()
            .of_record(d1.record.id)
            .unwrap();
        assert!(!kept.is_empty(), "{}", p.name);
        let data = console
            .workflow()
            .evidence()
            .get(&kept[0].1)
            .unwrap()
            .unwrap();
        assert!(data.starts_with(b"PK"));
        if p.name == "postgres" {
            assert!(
                !p.dir.path().join("evidence").join(&kept[0].1[..2]).exists(),
                "kept in the database"
            );
        }
        // The records name their gateways.
        let q = AuditQuery {
            gateway: Some("mx2".into()),
            ..AuditQuery::default()
        };
        assert_eq!(console.workflow().store().search(&q).unwrap().len(), 1);
    }
}

#[test]
fn a_release_helper_carries_out_what_an_unprivileged_milter_leaves() {
    for p in places("helper") {
        let gw = |elsewhere: bool| {
            let mut c = p.config();
            c.gateway = Some("mx1".into());
            c.carries_out = true;
            c.carry_out_elsewhere = elsewhere;
            c.release_command = Some(format!(
                "touch {}/released-{}",
                p.dir.path().display(),
                if elsewhere { "by-milter" } else { "by-helper" }
            ));
            pipeline(c)
        };
        // The milter as `ping32dlp` (release_helper = true), the helper as root.
        let (milter, helper) = (gw(true), gw(false));
        let ctx = Context {
            channel: "milter".into(),
            queue_id: Some("Q7".into()),
            ..Context::default()
        };
        let d = milter
            .process_message(&corpus("mixed.eml"), &ctx, &[], false)
            .unwrap();
        let held = d.approval.unwrap();
        assert_eq!(held.gateway.as_deref(), Some("mx1"), "{}", p.name);
        // What the holds_waiting metric counts: this gateway's, another's, all.
        let store = milter.workflow().store();
        let counts = |s: &std::sync::Arc<dyn ping32dlp::workflow::Store>| {
            [Some("mx1"), Some("mx2"), None].map(|g| s.count_pending(g).unwrap())
        };
        assert_eq!(counts(store), [1, 0, 1], "{}", p.name);
        milter
            .workflow()
            .decide(&held.id, "boss@example.co.jp", true, "", false)
            .unwrap();
        assert_eq!(counts(store), [0, 0, 0], "{}", p.name);
        let m = milter.workflow().maintain("mx1/milter");
        assert!(
            m.carried_out.is_empty() && m.errors.is_empty(),
            "{}",
            p.name
        );
        let h = helper.workflow().maintain("mx1/helper");
        assert_eq!(h.carried_out.len(), 1, "{}: {:?}", p.name, h.errors);
        assert_eq!(h.carried_out[0].state, ApprovalState::Released);
        assert!(p.dir.path().join("released-by-helper").exists());
        assert!(!p.dir.path().join("released-by-milter").exists());
    }
}

#[test]
fn upgrades_from_the_previous_schema() {
    // SQLite: a database made with the schema of the previous release (2 migrations).
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("audit.db");
    ping32dlp::workflow::sqlite::create_at_version(&db, 2).unwrap();
    assert!(insert_as_before(&db));
    let s = open_store(dir.path(), None).unwrap();
    let r = s.search(&AuditQuery::default()).unwrap();
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].subject, "old");
    s.record(&rec(
        ping32dlp::timeutil::now(),
        "a@example.co.jp",
        &[],
        None,
        "mx1",
    ))
    .unwrap();
    assert_eq!(
        s.search(&AuditQuery {
            gateway: Some("mx1".into()),
            ..AuditQuery::default()
        })
        .unwrap()
        .len(),
        1
    );
    // PostgreSQL: the first migration only, data in it, then the current program opens it.
    if let Some(base) = pg_base() {
        let db = format!("t_upgrade_{}", std::process::id());
        let mut a = admin(&base);
        recreate(&mut a, &db);
        let host = base.rsplit_once('@').map_or(base.as_str(), |(_, h)| h);
        let url = format!("postgres://dlp@{host}/{db}");
        let mut c = postgres::Client::connect(&url, postgres::NoTls).unwrap();
        ping32dlp::workflow::postgres::migrate_to(&mut c, 1).unwrap();
        let v: i64 = c
            .query_one("SELECT count(*) FROM schema_migrations", &[])
            .unwrap()
            .get(0);
        assert_eq!(v, 1);
        drop(c);
        let s = open_store(
            Path::new("/nonexistent"),
            Some(&StoreConfig::new(url.clone())),
        )
        .unwrap();
        let id = s
            .record(&rec(
                ping32dlp::timeutil::now(),
                "a@example.co.jp",
                &[],
                None,
                "mx1",
            ))
            .unwrap();
        assert!(s.get_record(id).unwrap().is_some());
        let mut c = postgres::Client::connect(&url, postgres::NoTls).unwrap();
        let v: i64 = c
            .query_one("SELECT count(*) FROM schema_migrations", &[])
            .unwrap()
            .get(0);
        assert_eq!(v as usize, ping32dlp::workflow::postgres::SCHEMA_VERSION);
        // Gateways starting at once on a new database: one migrates, the others wait.
        let db2 = format!("t_race_{}", std::process::id());
        recreate(&mut a, &db2);
        let url2 = format!("postgres://dlp@{host}/{db2}");
        std::thread::scope(|sc| {
            let hs: Vec<_> = (0..4)
                .map(|_| {
                    let u = url2.clone();
                    sc.spawn(move || {
                        open_store(Path::new("/nonexistent"), Some(&StoreConfig::new(u)))
                            .map(|_| ())
                    })
                })
                .collect();
            for h in hs {
                h.join().unwrap().unwrap();
            }
        });
    }
}

/// A record written the way the previous release wrote it (no gateway column yet).
fn insert_as_before(db: &Path) -> bool {
    // The previous release's columns; the detail JSON without `gateway`.
    let detail = r#"{"id":0,"time":1700000000,"channel":"milter","user":null,"host":null,"client_app":null,"client_addr":null,"tls":null,"sender":"a@example.co.jp","recipients":[],"subject":"old","body_digest":"","size":1,"message_id":null,"queue_id":null,"attachments":[],"findings":[],"unscannable":[],"password_candidates":0,"action":"allow","would_action":"allow","matched":[],"risk":0,"signals":[],"approval":null}"#;
    ping32dlp::workflow::sqlite::execute_raw(
        db,
        &format!("INSERT INTO records (time, channel, user, sender, sender_domain, subject, action, would_action, risk, external, size, approval, detail, attach_bytes, flags) VALUES (1700000000, 'milter', NULL, 'a@example.co.jp', 'example.co.jp', 'old', 'allow', 'allow', 0, 0, 1, NULL, '{detail}', 0, 0)"),
    )
    .is_ok()
}

#[test]
fn history_fails_closed_when_the_server_goes_away() {
    let Some(base) = pg_base() else {
        eprintln!("(PING32DLP_TEST_PG not set: skipped)");
        return;
    };
    let db = format!("t_gone_{}", std::process::id());
    let mut a = admin(&base);
    recreate(&mut a, &db);
    let host = base.rsplit_once('@').map_or(base.as_str(), |(_, h)| h);
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = WorkflowConfig::new(dir.path());
    let mut sc = StoreConfig::new(format!("postgres://dlp@{host}/{db}"));
    sc.connect_timeout_seconds = 2;
    cfg.store = Some(sc);
    let p = pipeline(cfg);
    let raw = corpus("mixed.eml");
    let ctx = Context {
        channel: "milter".into(),
        ..Context::default()
    };
    p.process_message(&raw, &ctx, &[], false).unwrap();
    a.batch_execute(&format!("DROP DATABASE {db} WITH (FORCE)"))
        .unwrap();
    let e = p.process_message(&raw, &ctx, &[], false).unwrap_err();
    assert!(e.to_string().contains("database"), "{e}");
    // The history itself says it cannot answer (never "nothing seen").
    assert!(p
        .workflow()
        .store()
        .domain_seen("partner.example.com", 0)
        .is_err());
}

#[test]
fn the_admin_log_keeps_who_did_what_newest_first() {
    let now = ping32dlp::timeutil::now();
    for p in places("adminlog") {
        let s = p.store();
        let a = |i: i64, actor: &str, action: &str| ping32dlp::workflow::AdminAction {
            time: now + i,
            actor: actor.into(),
            action: action.into(),
            target: format!("{}", 100 + i),
            detail: "sender=a@example.co.jp 個人番号".into(),
            client: "192.0.2.7".into(),
        };
        s.log_admin(&a(0, "admin@example.co.jp", "audit_search"))
            .unwrap();
        s.log_admin(&a(1, "kansa@example.co.jp", "attachment_download"))
            .unwrap();
        s.log_admin(&a(2, "admin@example.co.jp", "record_view"))
            .unwrap();
        let all = s.admin_actions(None, 10).unwrap();
        assert_eq!(
            all.iter().map(|x| x.action.as_str()).collect::<Vec<_>>(),
            ["record_view", "attachment_download", "audit_search"],
            "{}",
            p.name
        );
        assert_eq!(
            all[1],
            a(1, "kansa@example.co.jp", "attachment_download"),
            "{}",
            p.name
        );
        let mine = s.admin_actions(Some("admin@example.co.jp"), 10).unwrap();
        assert_eq!(mine.len(), 2, "{}", p.name);
        assert_eq!(s.admin_actions(None, 1).unwrap().len(), 1);
        assert!(s.admin_actions(Some("nobody"), 10).unwrap().is_empty());
    }
}

#[test]
fn searches_limited_to_departments() {
    let now = ping32dlp::timeutil::now();
    for p in places("departments") {
        let s = p.store();
        let with = |dept: Option<&str>, i: i64| {
            let mut r = rec(
                now - i,
                "a@example.co.jp",
                &[("x@partner.example.com", true)],
                None,
                "mx1",
            );
            r.department = dept.map(String::from);
            s.record(&r).unwrap()
        };
        let sales = with(Some("営業部"), 3);
        let acct = with(Some("経理部"), 2);
        let none = with(None, 1);
        let q = |d: Option<Vec<&str>>| -> Vec<i64> {
            let mut v: Vec<i64> = s
                .search(&AuditQuery {
                    departments: d.map(|d| d.into_iter().map(String::from).collect()),
                    // Through the side-table path as well.
                    domain: Some("partner.example.com".into()),
                    ..AuditQuery::default()
                })
                .unwrap()
                .iter()
                .map(|r| r.id)
                .collect();
            v.sort();
            v
        };
        assert_eq!(q(None), [sales, acct, none], "{}", p.name);
        assert_eq!(q(Some(vec!["営業部"])), [sales], "{}", p.name);
        assert_eq!(
            q(Some(vec!["営業部", "経理部"])),
            [sales, acct],
            "{}",
            p.name
        );
        assert!(q(Some(vec![])).is_empty(), "{}", p.name);
        assert_eq!(
            s.get_record(sales).unwrap().unwrap().department.as_deref(),
            Some("営業部")
        );
    }
}

#[test]
fn first_time_recipients_are_per_sender_and_address() {
    let now = ping32dlp::timeutil::now();
    for p in places("firsttime") {
        let s = p.store();
        let id = s
            .record(&rec(
                now - 60,
                "taro@example.co.jp",
                &[("yamada@partner.example.com", true)],
                None,
                "mx1",
            ))
            .unwrap();
        let seen =
            |sender: &str, addr: &str, until: i64| s.sent_to_before(sender, addr, until).unwrap();
        assert!(
            seen("taro@example.co.jp", "yamada@partner.example.com", now),
            "{}",
            p.name
        );
        assert!(
            seen("Taro@Example.co.jp", "YAMADA@partner.example.com", now),
            "{}: case",
            p.name
        );
        assert!(
            !seen("jiro@example.co.jp", "yamada@partner.example.com", now),
            "{}: other sender",
            p.name
        );
        assert!(
            !seen("taro@example.co.jp", "sato@partner.example.com", now),
            "{}: other address",
            p.name
        );
        assert!(
            !seen(
                "taro@example.co.jp",
                "yamada@partner.example.com",
                now - 120
            ),
            "{}: not yet",
            p.name
        );
        // Replay: the history before that record has not seen it.
        let before = s.history_before(id);
        assert!(!before
            .sent_to_before("taro@example.co.jp", "yamada@partner.example.com", now)
            .unwrap());
    }
}

#[test]
fn download_links_replace_attachments_count_expire_and_log() {
    use ping32dlp::workflow::links::Fetch;
    let policy = "[policy]\ninternal_domains = [\"example.co.jp\"]\n\n\
        [links]\nurl = \"https://dl.example.co.jp\"\nmax_downloads = 2\npassword = true\n\n\
        [[rule]]\nid = \"files-as-links\"\nmode = \"enforce\"\naction = \"link\"\n\
        when = { all = [{ external_recipient_count = { min = 1 } }, { attachment_count = { min = 1 } }] }\n";
    for p in places("links") {
        let mut cfg = p.config();
        cfg.notify_command = None;
        let pl = Pipeline::new(
            Arc::new(Engine::builtin()),
            parse_policy(policy, None).unwrap(),
            Arc::new(Workflow::open(cfg).unwrap()),
            ExtractOptions::default(),
        );
        let raw = b"From: taro@example.co.jp\r\nTo: buyer@partner.jp\r\nSubject: quote\r\n\
            MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n--b1\r\n\
            Content-Type: text/plain; charset=utf-8\r\n\r\nsee the files\r\n--b1\r\n\
            Content-Type: application/octet-stream; name=\"a.bin\"\r\nContent-Transfer-Encoding: base64\r\n\
            Content-Disposition: attachment; filename=\"a.bin\"\r\n\r\nAAECA/7/gIE=\r\n--b1\r\n\
            Content-Type: text/plain; name=\"b.txt\"\r\nContent-Disposition: attachment; filename=\"b.txt\"\r\n\r\n\
            second file\r\n--b1--\r\n"
            .to_vec();
        let ctx = Context {
            channel: "milter".into(),
            envelope_from: Some("taro@example.co.jp".into()),
            envelope_to: vec!["buyer@partner.jp".into()],
            ..Context::default()
        };
        let d = pl.process_message(&raw, &ctx, &[], false).unwrap();
        let l = d.links.as_ref().expect("links made");
        assert_eq!(
            d.verdict.action,
            ping32dlp::policy::Action::Link,
            "{}",
            p.name
        );
        assert!(!l.files.is_empty());
        assert!(l.message.starts_with(&raw[..l.body_offset]));
        let out = String::from_utf8_lossy(&l.message);
        assert!(!out.contains("filename="), "no attachment left: {out}");
        let password = l.password.clone().unwrap();
        let token = l.files[0].token.clone();
        // The file the mail had, byte for byte.
        let original = vec![0u8, 1, 2, 3, 0xfe, 0xff, 0x80, 0x81];
        assert_eq!(l.files.len(), 2);
        let wf = pl.workflow();
        let now = ping32dlp::timeutil::now();
        assert_eq!(
            wf.fetch_link(&token, Some("wrong"), "192.0.2.1", now)
                .unwrap(),
            Fetch::Refused("wrong_password")
        );
        match wf
            .fetch_link(&token, Some(&password), "192.0.2.2", now)
            .unwrap()
        {
            Fetch::File { data, .. } => assert_eq!(data, original, "{}", p.name),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            wf.fetch_link(&token, Some(&password), "192.0.2.3", now)
                .unwrap(),
            Fetch::File { .. }
        ));
        assert_eq!(
            wf.fetch_link(&token, Some(&password), "192.0.2.4", now)
                .unwrap(),
            Fetch::Refused("limit_reached")
        );
        assert_eq!(
            wf.fetch_link(&"0".repeat(48), None, "192.0.2.5", now)
                .unwrap(),
            Fetch::Refused("unknown")
        );
        // Another file's link, after its expiry.
        if let Some(f) = l.files.get(1) {
            assert_eq!(
                wf.fetch_link(&f.token, Some(&password), "192.0.2.6", now + 8 * 86_400)
                    .unwrap(),
                Fetch::Refused("expired")
            );
        }
        let (links, events) = wf.store().links_of(d.record.id).unwrap();
        assert_eq!(links.len(), l.files.len(), "{}", p.name);
        assert_eq!(
            links[0]
                .downloads
                .max(links.get(1).map_or(0, |x| x.downloads)),
            2
        );
        let outcomes: Vec<&str> = events.iter().map(|e| e.outcome.as_str()).collect();
        assert!(
            outcomes.starts_with(&[
                "wrong_password",
                "downloaded",
                "downloaded",
                "limit_reached"
            ]),
            "{outcomes:?}"
        );
        assert_eq!(events[1].client, "192.0.2.2");
        // Ten wrong passwords lock the link.
        if let Some(f) = l.files.get(1) {
            for _ in 0..10 {
                wf.fetch_link(&f.token, Some("x"), "192.0.2.9", now)
                    .unwrap();
            }
            assert_eq!(
                wf.fetch_link(&f.token, Some(&password), "192.0.2.9", now)
                    .unwrap(),
                Fetch::Refused("locked")
            );
        }
        // The sender's page token.
        let t = wf.links_page_token(d.record.id);
        assert!(wf.verify_links_page_token(d.record.id, &t));
        assert!(!wf.verify_links_page_token(d.record.id + 1, &t));
    }
}

#[test]
fn frequent_partners_are_protected_from_look_alikes() {
    let now = ping32dlp::timeutil::now();
    let policy = "[policy]\ninternal_domains = [\"example.co.jp\"]\n\n\
        [[rule]]\nid = \"lookalike\"\nmode = \"enforce\"\naction = \"block\"\n\
        when = { lookalike_domain = true }\n";
    for p in places("frequent") {
        let s = p.store();
        // abc-shoji.co.jp: mailed in 5 messages (a frequent partner); rare-partner.jp in 4.
        for i in 0..5 {
            s.record(&rec(
                now - 3600 - i,
                "taro@example.co.jp",
                &[("yamada@abc-shoji.co.jp", true)],
                None,
                "mx1",
            ))
            .unwrap();
        }
        for i in 0..4 {
            s.record(&rec(
                now - 3600 - i,
                "taro@example.co.jp",
                &[("sato@rare-partner.jp", true)],
                None,
                "mx1",
            ))
            .unwrap();
        }
        // Old mail (outside 90 days) does not count.
        for i in 0..6 {
            s.record(&rec(
                now - 100 * 86_400 - i,
                "taro@example.co.jp",
                &[("x@old-partner.jp", true)],
                None,
                "mx1",
            ))
            .unwrap();
        }
        assert_eq!(
            s.frequent_domains(now - 90 * 86_400, now, 5, 500).unwrap(),
            ["abc-shoji.co.jp"],
            "{}",
            p.name
        );
        drop(s);
        let pl = Pipeline::new(
            Arc::new(Engine::builtin()),
            parse_policy(policy, None).unwrap(),
            Arc::new(Workflow::open(p.config()).unwrap()),
            ExtractOptions::default(),
        );
        let send = |to: &str| {
            let raw =
                format!("From: taro@example.co.jp\r\nTo: {to}\r\nSubject: s\r\n\r\nhello\r\n");
            let ctx = Context {
                channel: "milter".into(),
                envelope_from: Some("taro@example.co.jp".into()),
                envelope_to: vec![to.into()],
                ..Context::default()
            };
            pl.process_message(raw.as_bytes(), &ctx, &[], false)
                .unwrap()
                .verdict
        };
        let v = send("yamada@abc-sh0ji.co.jp");
        assert_eq!(v.action.as_str(), "block", "{}: {:?}", p.name, v.matched);
        assert!(
            v.matched[0]
                .reasons
                .iter()
                .any(|r| r.contains("looks like abc-shoji.co.jp, a frequent partner")),
            "{:?}",
            v.matched
        );
        assert_eq!(
            send("yamada@abc-shoji.co.jp").action.as_str(),
            "allow",
            "{}",
            p.name
        );
        assert_eq!(
            send("sato@rare-partrer.jp").action.as_str(),
            "allow",
            "{}: not frequent",
            p.name
        );
        assert_eq!(
            send("x@o1d-partner.jp").action.as_str(),
            "allow",
            "{}: too old",
            p.name
        );
    }
}
