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
    /// Records per second a fleet server ingests: one simulated agent per credential file,
    /// each uploading `records` synthetic records in batches of `batch`, all at once.
    FleetUpload(FleetUploadArgs),
}

#[derive(Args)]
pub struct FleetUploadArgs {
    /// The fleet server (the console with agent_api = true).
    #[arg(long)]
    server: String,
    /// CA certificates for an https:// server.
    #[arg(long)]
    ca_file: Option<std::path::PathBuf>,
    /// One agent credential file per simulated agent (`ping32dlp agent enrol` writes them).
    #[arg(long = "credential", required = true)]
    credentials: Vec<std::path::PathBuf>,
    /// Records each agent uploads.
    #[arg(long, default_value_t = 10_000)]
    records: usize,
    /// Records per upload.
    #[arg(long, default_value_t = 200)]
    batch: usize,
    /// Then time this many history questions (one after another, the first agent), as a
    /// policy on an agent asks them.
    #[arg(long, default_value_t = 0)]
    history: usize,
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
        StoreBenchCmd::FleetUpload(a) => fleet_upload(a),
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
                    release_on_expiry: false,
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

fn fleet_upload(a: FleetUploadArgs) -> Result<u8, AnyErr> {
    use ping32dlp::workflow::agent::{local_status, AgentClient};
    let mut clients = Vec::new();
    for f in &a.credentials {
        let cred = std::fs::read_to_string(f).map_err(|e| format!("{}: {e}", f.display()))?;
        clients.push(AgentClient::new(
            &a.server,
            a.ca_file.as_deref(),
            Some(cred.trim().to_string()),
        )?);
    }
    let t = Instant::now();
    let lats: Vec<Vec<f64>> = std::thread::scope(|sc| {
        let hs: Vec<_> = clients
            .iter()
            .enumerate()
            .map(|(k, c)| {
                let (records, batch) = (a.records, a.batch.max(1));
                sc.spawn(move || -> Result<Vec<f64>, String> {
                    let mut r = Rng::seeded(9000 + k as u64);
                    let now = ping32dlp::timeutil::now();
                    let mut seq = c.status(&local_status(0)).map_err(|e| e.to_string())?;
                    let mut lats = Vec::new();
                    let mut i = 0;
                    while i < records {
                        let n = batch.min(records - i);
                        let items: Vec<_> = (0..n)
                            .map(|j| {
                                let mut rec = synthetic(&mut r, i + j, now, 0);
                                rec.time = now;
                                (seq + 1 + j as i64, rec, None)
                            })
                            .collect();
                        let t0 = Instant::now();
                        seq = c
                            .upload(&items, &local_status(0))
                            .map_err(|e| e.to_string())?;
                        lats.push(t0.elapsed().as_secs_f64() * 1000.0);
                        i += n;
                    }
                    Ok(lats)
                })
            })
            .collect();
        hs.into_iter()
            .map(|h| {
                h.join()
                    .expect("agent thread")
                    .unwrap_or_else(|e| panic!("{e}"))
            })
            .collect()
    });
    let secs = t.elapsed().as_secs_f64();
    let mut all: Vec<f64> = lats.into_iter().flatten().collect();
    all.sort_by(f64::total_cmp);
    let pct = |p: f64| all[((all.len() as f64 - 1.0) * p).round() as usize];
    let total = a.records * clients.len();
    println!(
        "{{\"agents\":{},\"records\":{},\"batch\":{},\"seconds\":{:.3},\"per_second\":{:.0},\"upload_ms_p50\":{:.1},\"upload_ms_p99\":{:.1}}}",
        clients.len(),
        total,
        a.batch,
        secs,
        total as f64 / secs,
        pct(0.5),
        pct(0.99)
    );
    if a.history > 0 {
        let c = &clients[0];
        let now = ping32dlp::timeutil::now();
        let mut lat = Vec::with_capacity(a.history);
        for i in 0..a.history {
            let q = match i % 3 {
                0 => {
                    serde_json::json!({"q": "domain_seen", "domain": format!("d{i}.example.com"), "until": now})
                }
                1 => {
                    serde_json::json!({"q": "external_sends_of", "sha256": format!("{i:064x}"), "since": now - 86_400, "until": now})
                }
                _ => {
                    serde_json::json!({"q": "sender_external", "sender": format!("u{}@example.co.jp", i % 50), "since": now - 3600, "until": now})
                }
            };
            let t0 = Instant::now();
            c.history(&q)?;
            lat.push(t0.elapsed().as_secs_f64() * 1000.0);
        }
        lat.sort_by(f64::total_cmp);
        let p = |q: f64| lat[((lat.len() as f64 - 1.0) * q).round() as usize];
        println!(
            "{{\"history_questions\":{},\"ms_p50\":{:.2},\"ms_p99\":{:.2}}}",
            lat.len(),
            p(0.5),
            p(0.99)
        );
    }
    Ok(0)
}
