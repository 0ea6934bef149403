//! `ping32dlp store-bench`: measurements of the store behind `scripts/bench-store.sh` (hidden
//! from `--help`). `write` times durable records through the store's group commit from many
//! threads; `fill` loads synthetic records in large batches; `queries` times the README's
//! audit searches; `explain` prints PostgreSQL's plans of them.

use std::time::Instant;

use clap::{Args, Subcommand};
use ping32dlp::benchdata::{queries, synthetic, Rng, START};
use ping32dlp::workflow::{postgres::PgStore, StoreConfig};

use crate::AnyErr;

#[derive(Subcommand)]
pub enum StoreBenchCmd {
    /// Durable records per second: `threads` submitters writing `records` in all.
    Write(WriteArgs),
    /// Loads `records` synthetic records (one every `step` seconds from 2026-01-01) in batches.
    Fill(FillArgs),
    /// Times each audit search of the README's table (median and p95 of `runs`).
    Queries(QueryArgs),
    /// EXPLAIN (ANALYZE, BUFFERS) of each audit search (PostgreSQL).
    Explain(QueryArgs),
}

#[derive(Args)]
pub struct WriteArgs {
    #[command(flatten)]
    state: crate::work::StateArgs,
    #[arg(long, default_value_t = 20_000)]
    records: usize,
    #[arg(long, default_value_t = 16)]
    threads: usize,
    /// Distinguishes the records of concurrent writer processes.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

#[derive(Args)]
pub struct FillArgs {
    #[arg(long)]
    store: String,
    #[arg(long, default_value_t = 10_000_000)]
    records: usize,
    #[arg(long, default_value_t = 3)]
    step: i64,
    #[arg(long, default_value_t = 5_000)]
    batch: usize,
    /// Pending approvals to make (of random records).
    #[arg(long, default_value_t = 0)]
    approvals: usize,
    /// Records end now (step back from now) instead of starting on 2026-01-01.
    #[arg(long)]
    recent: bool,
}

#[derive(Args)]
pub struct QueryArgs {
    #[command(flatten)]
    state: crate::work::StateArgs,
    #[arg(long, default_value_t = 30)]
    runs: usize,
}

pub fn run(cmd: StoreBenchCmd) -> Result<u8, AnyErr> {
    match cmd {
        StoreBenchCmd::Write(a) => {
            let store = a.state.open_store()?;
            let per = a.records / a.threads.max(1);
            let t = Instant::now();
            std::thread::scope(|sc| {
                for k in 0..a.threads {
                    let store = store.clone();
                    let seed = a.seed * 1000 + k as u64;
                    sc.spawn(move || {
                        let mut r = Rng::seeded(seed);
                        let now = ping32dlp::timeutil::now();
                        for i in 0..per {
                            let mut rec = synthetic(&mut r, i, now, 0);
                            rec.time = now;
                            store.record(&rec).expect("durable write");
                        }
                    });
                }
            });
            let secs = t.elapsed().as_secs_f64();
            println!(
                "{{\"backend\":\"{}\",\"threads\":{},\"records\":{},\"seconds\":{:.3},\"per_second\":{:.0}}}",
                store.backend(),
                a.threads,
                per * a.threads,
                secs,
                (per * a.threads) as f64 / secs
            );
            Ok(0)
        }
        StoreBenchCmd::Fill(a) => {
            let store = PgStore::open(&StoreConfig::new(a.store.clone()))?;
            let mut r = Rng::new();
            let t = Instant::now();
            let start = if a.recent {
                ping32dlp::timeutil::now() - a.records as i64 * a.step
            } else {
                START
            };
            let mut i = 0;
            let mut ids = Vec::new();
            while i < a.records {
                let n = a.batch.min(a.records - i);
                let batch: Vec<_> = (i..i + n)
                    .map(|k| synthetic(&mut r, k, start, a.step))
                    .collect();
                let got = store.insert_batch(&batch)?;
                if ids.len() < a.approvals {
                    ids.extend(got.iter().zip(&batch).map(|(id, rec)| (*id, rec.clone())));
                }
                i += n;
                if i % 500_000 == 0 {
                    eprintln!("{i} records, {:.0} s", t.elapsed().as_secs_f64());
                }
            }
            use ping32dlp::workflow::{Approval, ApprovalState, Store as _};
            let now = ping32dlp::timeutil::now();
            for (k, (id, rec)) in ids.into_iter().take(a.approvals).enumerate() {
                store.insert_approval(&Approval {
                    id: format!("{:024x}", k + 1),
                    record_id: id,
                    state: ApprovalState::Pending,
                    created: now - 3600,
                    expires: now + 7 * 86_400,
                    approvers: vec!["boss@example.co.jp".into()],
                    approver_group: None,
                    rule: "hold-my-number".into(),
                    channel: "milter".into(),
                    queue_id: Some(format!("Q{k}")),
                    sender: rec.sender.clone(),
                    recipients: rec.recipients.iter().map(|x| x.address.clone()).collect(),
                    subject: rec.subject.clone(),
                    decided_by: None,
                    decided_at: None,
                    comment: None,
                    closed_at: None,
                    gateway: rec.gateway.clone(),
                })?;
            }
            // Statistics for the planner (longer than the store's statement timeout at 10M rows).
            store.query_text(
                "BEGIN; SET LOCAL statement_timeout = 0; \
                 ANALYZE records, record_recipients, record_attachments, record_detectors, approvals; COMMIT",
            )?;
            println!(
                "{{\"records\":{},\"seconds\":{:.0}}}",
                a.records,
                t.elapsed().as_secs_f64()
            );
            Ok(0)
        }
        StoreBenchCmd::Queries(a) => {
            let store = a.state.open_store()?;
            for (name, q) in queries(START) {
                let mut times = Vec::with_capacity(a.runs);
                let mut rows = 0;
                for _ in 0..a.runs {
                    let t = Instant::now();
                    rows = store.search(&q)?.len();
                    times.push(t.elapsed().as_secs_f64() * 1000.0);
                }
                times.sort_by(|x, y| x.total_cmp(y));
                println!(
                    "{{\"query\":\"{name}\",\"rows\":{rows},\"median_ms\":{:.2},\"p95_ms\":{:.2}}}",
                    times[times.len() / 2],
                    times[(times.len() * 95 / 100).min(times.len() - 1)]
                );
            }
            Ok(0)
        }
        StoreBenchCmd::Explain(a) => {
            let Some(c) = a.state.store_config() else {
                return Err("explain needs --store postgres://...".into());
            };
            let store = PgStore::open(&c)?;
            for (name, q) in queries(START) {
                println!("-- {name}: every statement the search runs, with its plan");
                let mut plans = Vec::new();
                store.search_traced(&q, Some(&mut plans))?;
                for l in plans {
                    println!("{l}");
                }
            }
            Ok(0)
        }
    }
}
