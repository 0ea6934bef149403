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
use ping32dlp::benchdata::{synthetic, Rng, START};
use ping32dlp::policy::{Context, Facts, Policy};
use ping32dlp::report::Report;
use ping32dlp::workflow::{AuditRecord, SqliteStore, Store};
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
    let v = policy.evaluate(&facts, &*store).unwrap();
    let rec = AuditRecord::new(&report, &ctx, &facts, &v, &policy);
    store.insert_batch(&vec![rec; 2000]).unwrap();

    let mut g = c.benchmark_group("policy");
    g.throughput(Throughput::Elements(1));
    g.bench_function("evaluate", |b| {
        b.iter(|| policy.evaluate(&facts, &*store).unwrap())
    });
    g.finish();

    let mut g = c.benchmark_group("audit");
    g.throughput(Throughput::Elements(1));
    g.sample_size(20);
    g.measurement_time(Duration::from_secs(8));
    let one = |store: &SqliteStore| {
        let mut f = facts.clone();
        f.time = ping32dlp::timeutil::now();
        let v = policy.evaluate(&f, store).unwrap();
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

const N: usize = 1_000_000;

fn million() -> SqliteStore {
    let dir = root().join("target/bench-audit");
    std::fs::create_dir_all(&dir).unwrap();
    // Bump the tag when the schema changes: the database is regenerated.
    let path = dir.join("1m-v2.db");
    let done = dir.join("1m-v2.done");
    if !done.exists() {
        for ext in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{ext}", path.display()));
        }
        let store = SqliteStore::open(&path).unwrap();
        let mut r = Rng::new();
        let t = Instant::now();
        for chunk in 0..N / 10_000 {
            let batch: Vec<AuditRecord> = (0..10_000)
                .map(|k| synthetic(&mut r, chunk * 10_000 + k, START, 31))
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
    let queries = ping32dlp::benchdata::queries(ping32dlp::benchdata::START);
    for (name, query) in &queries {
        let n = store.search(query).unwrap().len();
        assert!(n > 0, "{name} finds records");
        g.bench_function(*name, |b| b.iter(|| store.search(query).unwrap()));
    }
    g.finish();
}

criterion_group!(benches, bench_policy, bench_search);
criterion_main!(benches);
