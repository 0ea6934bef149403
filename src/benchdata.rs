//! Synthetic audit records and the audit-search query table, shared by the criterion benchmark
//! (`benches/workflow.rs`) and `ping32dlp store-bench` (the PostgreSQL benchmark). Not part
//! of the API.
#![doc(hidden)]

use crate::workflow::{AttachmentRow, AuditQuery, AuditRecord, FindingRow, Recipient};

/// The first record's time: 2026-01-01 00:00 JST.
pub const START: i64 = 1_767_193_200;

/// A small deterministic generator (xorshift).
pub struct Rng(u64);

impl Rng {
    /// The fixed seed.
    pub fn new() -> Rng {
        Rng(0x9E37_79B9_7F4A_7C15)
    }
    /// Another stream.
    pub fn seeded(seed: u64) -> Rng {
        Rng(seed | 1)
    }
    /// The next number.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    /// A number below `n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// Detectors of the synthetic findings.
pub const DETECTORS: &[&str] = &[
    "jp_my_number",
    "credit_card",
    "jp_phone",
    "email_address",
    "jp_bank_account",
    "confidential_marking",
    "aws_access_key_id",
];

/// Record `i`: 5,000 senders, partners in 2,000 domains, 50,000 distinct attachments, every
/// `step` seconds from `start`.
pub fn synthetic(r: &mut Rng, i: usize, start: i64, step: i64) -> AuditRecord {
    let user = r.below(5000);
    let sender = format!("user{user}@example.co.jp");
    let n_rcpt = 1 + r.below(3) as usize;
    let recipients = (0..n_rcpt)
        .map(|_| {
            if r.below(3) == 0 {
                Recipient {
                    address: format!("u{}@example.co.jp", r.below(5000)),
                    external: false,
                    role: None,
                }
            } else {
                Recipient {
                    address: format!("c{}@partner{}.example.com", r.below(10), r.below(2000)),
                    external: true,
                    role: None,
                }
            }
        })
        .collect();
    let attachments = (0..r.below(3))
        .map(|k| AttachmentRow {
            location: format!("file{k}.xlsx"),
            name: format!("file{k}.xlsx"),
            kind: "xlsx".into(),
            size: 1000 + r.below(2_000_000),
            sha256: format!("{:064x}", r.below(50_000)),
            origin: None,
            extension_mismatch: false,
            depth: 0,
            unscannable: None,
        })
        .collect();
    let findings = (0..r.below(3))
        .map(|_| FindingRow {
            detector: DETECTORS[r.below(DETECTORS.len() as u64) as usize].into(),
            location: "*".into(),
            count: 1,
            unique: [1, 1, 1],
            samples: vec!["****".into()],
        })
        .collect();
    let action =
        ["allow", "allow", "allow", "audit", "alert", "hold", "block"][r.below(7) as usize];
    AuditRecord {
        gateway: Some(format!("gw-{}", i % 4)),
        time: start + (i as i64) * step,
        channel: "milter".into(),
        user: Some(format!("user{user}")),
        sender,
        recipients,
        subject: format!("subject {i}"),
        size: 10_000,
        attachments,
        findings,
        action: action.into(),
        would_action: action.into(),
        ..AuditRecord::default()
    }
}

impl Default for Rng {
    fn default() -> Rng {
        Rng::new()
    }
}

/// The README's audit-search table: (name, query), for records made from `start`.
pub fn queries(start: i64) -> Vec<(&'static str, AuditQuery)> {
    let q = |f: &dyn Fn(&mut AuditQuery)| {
        let mut q = AuditQuery {
            limit: 100,
            ..AuditQuery::default()
        };
        f(&mut q);
        q
    };
    vec![
        (
            "sender",
            q(&|q| q.sender = Some("user42@example.co.jp".into())),
        ),
        ("user", q(&|q| q.user = Some("user4242".into()))),
        (
            "recipient",
            q(&|q| q.recipient = Some("c3@partner77.example.com".into())),
        ),
        (
            "domain",
            q(&|q| q.domain = Some("partner77.example.com".into())),
        ),
        ("sha256", q(&|q| q.sha256 = Some(format!("{:064x}", 4242)))),
        (
            "detector+week",
            q(&|q| {
                q.detector = Some("aws_access_key_id".into());
                q.since = Some(start + 200 * 86_400);
                q.until = Some(start + 207 * 86_400);
            }),
        ),
        (
            "verdict+day",
            q(&|q| {
                q.action = Some("block".into());
                q.since = Some(start + 100 * 86_400);
                q.until = Some(start + 101 * 86_400);
            }),
        ),
        (
            "time_range_day",
            q(&|q| {
                q.since = Some(start + 300 * 86_400);
                q.until = Some(start + 301 * 86_400);
            }),
        ),
        (
            "sender+detector",
            q(&|q| {
                q.sender = Some("user42@example.co.jp".into());
                q.detector = Some("jp_my_number".into());
            }),
        ),
        (
            "sender+30d",
            q(&|q| {
                q.sender = Some("user42@example.co.jp".into());
                q.since = Some(start + 200 * 86_400);
                q.until = Some(start + 230 * 86_400);
            }),
        ),
        (
            "gateway+day",
            q(&|q| {
                q.gateway = Some("gw-1".into());
                q.since = Some(start + 150 * 86_400);
                q.until = Some(start + 151 * 86_400);
            }),
        ),
    ]
}
