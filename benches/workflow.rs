//! Policy evaluation and durable audit writes; audit search over a million records.
//!
//! * `policy/evaluate`: the default policy on a typical inspected message, with the audit
//!   trail as history (new domains, rates, PPAP look-ups).
//! * `audit/evaluate+durable_write/{1,16}-submitters`: evaluation, the audit record and its
//!   commit (`synchronous = FULL`), with one caller or sixteen at once (connections of a
//!   milter): group commit puts concurrent records into one transaction.
//! * `audit/search_1m/*`: indexed queries over 1,000,000 generated records. The database is
//!   generated once into `target/bench-audit/` (a minute or two) and reused.
//!
//! `scripts/bench-audit.sh` runs this pinned to one core and prints the numbers.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ping32dlp::policy::{Context, Facts, Policy};
use ping32dlp::report::Report;
use ping32dlp::workflow::{
    AttachmentRow, AuditQuery, AuditRecord, FindingRow, Recipient, SqliteStore, Store,
};
use ping32dlp::{Engine, ExtractOptions, Scanner};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn typical() -> (Report, Context) {
    let raw = std::fs::read(root().join("corpus/policy/mixed.eml")).unwrap();
    let mut s = Scanner::new(Arc::new(Engine::builtin()));
    let report = s.inspect_message(&raw, &ExtractOptions::default());
    let ctx = Context {
        channel: "milter".into(),
        user: Some("ichiro".into()),
        ..Context::default()
    };
    (report, ctx)
}

fn bench_policy(c: &mut Criterion) {
    let dir = tempfile::tempdir_in(root().join("target")).unwrap();
    let store = Arc::new(SqliteStore::open(&dir.path().join("audit.db")).unwrap());
    let policy = Arc::new(Policy::default_monitor());
    let (report, ctx) = typical();
    let facts = Facts::from_report(&report, &ctx);
    // Some history to look things up in.
    let v = policy.evaluate(&facts, &*store);
    let rec = AuditRecord::new(&report, &ctx, &facts, &v, &policy);
    store.insert_batch(&vec![rec; 2000]).unwrap();

    let mut g = c.benchmark_group("policy");
    g.throughput(Throughput::Elements(1));
    g.bench_function("evaluate", |b| b.iter(|| policy.evaluate(&facts, &*store)));
    g.finish();

    let mut g = c.benchmark_group("audit");
    g.throughput(Throughput::Elements(1));
    g.sample_size(20);
    g.measurement_time(Duration::from_secs(8));
    let one = |store: &SqliteStore| {
        let mut f = facts.clone();
        f.time = ping32dlp::timeutil::now();
        let v = policy.evaluate(&f, store);
        let rec = AuditRecord::new(&report, &ctx, &f, &v, &policy);
        store.record(&rec).unwrap()
    };
    g.bench_function("evaluate+durable_write/1-submitter", |b| {
        b.iter(|| one(&store))
    });
    g.bench_function("evaluate+durable_write/16-submitters", |b| {
        b.iter_custom(|iters| {
            let per = iters.div_ceil(16);
            let t = Instant::now();
            std::thread::scope(|s| {
                for _ in 0..16 {
                    s.spawn(|| {
                        for _ in 0..per {
                            one(&store);
                        }
                    });
                }
            });
            // Report per message.
            t.elapsed().mul_f64(iters as f64 / (per * 16) as f64)
        })
    });
    g.finish();
}

/// A small deterministic generator (xorshift).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const N: usize = 1_000_000;
const DETECTORS: &[&str] = &[
    "jp_my_number",
    "credit_card",
    "jp_phone",
    "email_address",
    "jp_bank_account",
    "confidential_marking",
    "aws_access_key_id",
];

fn synthetic(r: &mut Rng, i: usize, start: i64) -> AuditRecord {
    let user = r.below(5000);
    let sender = format!("user{user}@example.co.jp");
    let n_rcpt = 1 + r.below(3) as usize;
    let recipients = (0..n_rcpt)
        .map(|_| {
            if r.below(3) == 0 {
                Recipient {
                    address: format!("u{}@example.co.jp", r.below(5000)),
                    external: false,
                }
            } else {
                Recipient {
                    address: format!("c{}@partner{}.example.com", r.below(10), r.below(2000)),
                    external: true,
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
        time: start + (i as i64) * 31, // about a year
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

fn million() -> SqliteStore {
    let dir = root().join("target/bench-audit");
    std::fs::create_dir_all(&dir).unwrap();
    // Bump the tag when the schema changes: the database is regenerated.
    let path = dir.join("1m-v1.db");
    let done = dir.join("1m-v1.done");
    if !done.exists() {
        for ext in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{ext}", path.display()));
        }
        let store = SqliteStore::open(&path).unwrap();
        let mut r = Rng(0x9E37_79B9_7F4A_7C15);
        let start = 1_767_193_200; // 2026-01-01 JST
        let t = Instant::now();
        for chunk in 0..N / 10_000 {
            let batch: Vec<AuditRecord> = (0..10_000)
                .map(|k| synthetic(&mut r, chunk * 10_000 + k, start))
                .collect();
            store.insert_batch(&batch).unwrap();
        }
        store.analyze().unwrap();
        eprintln!(
            "generated {N} records in {:.0} s",
            t.elapsed().as_secs_f64()
        );
        std::fs::write(&done, "").unwrap();
    }
    SqliteStore::open(&path).unwrap()
}

fn bench_search(c: &mut Criterion) {
    let store = million();
    let mut g = c.benchmark_group("audit/search_1m");
    g.sample_size(20);
    let q = |f: fn(&mut AuditQuery)| {
        let mut q = AuditQuery {
            limit: 100,
            ..AuditQuery::default()
        };
        f(&mut q);
        q
    };
    let queries: Vec<(&str, AuditQuery)> = vec![
        (
            "sender",
            q(|q| q.sender = Some("user42@example.co.jp".into())),
        ),
        ("user", q(|q| q.user = Some("user4242".into()))),
        (
            "recipient",
            q(|q| q.recipient = Some("c3@partner77.example.com".into())),
        ),
        (
            "domain",
            q(|q| q.domain = Some("partner77.example.com".into())),
        ),
        ("sha256", q(|q| q.sha256 = Some(format!("{:064x}", 4242)))),
        (
            "detector+time",
            q(|q| {
                q.detector = Some("aws_access_key_id".into());
                q.since = Some(1_767_193_200 + 200 * 86_400);
                q.until = Some(1_767_193_200 + 207 * 86_400);
            }),
        ),
        (
            "verdict+time",
            q(|q| {
                q.action = Some("block".into());
                q.since = Some(1_767_193_200 + 100 * 86_400);
                q.until = Some(1_767_193_200 + 101 * 86_400);
            }),
        ),
        (
            "time_range",
            q(|q| {
                q.since = Some(1_767_193_200 + 300 * 86_400);
                q.until = Some(1_767_193_200 + 301 * 86_400);
            }),
        ),
        (
            "sender+detector",
            q(|q| {
                q.sender = Some("user42@example.co.jp".into());
                q.detector = Some("jp_my_number".into());
            }),
        ),
    ];
    for (name, query) in &queries {
        let n = store.search(query).unwrap().len();
        assert!(n > 0, "{name} finds records");
        g.bench_function(*name, |b| b.iter(|| store.search(query).unwrap()));
    }
    g.finish();
}

criterion_group!(benches, bench_policy, bench_search);
criterion_main!(benches);
