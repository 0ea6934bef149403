//! The shared store on a PostgreSQL server: every gateway (milters, proxies, webmail hooks) and
//! every console of a company writes and reads one audit trail, one set of approvals and one
//! history. Chosen by `store = "postgres://..."`; SQLite in the state directory stays the
//! embedded default.
//!
//! * **Client and pool**: the `postgres` crate (no hand-written wire protocol) through an
//!   `r2d2` pool of `pool_size` connections, TLS by rustls (`sslmode=require` in the URL;
//!   certificates verified against `ca_file` or the system store). Connections are checked
//!   when taken from the pool and replaced when broken, so a restarted server is used again
//!   without restarting anything. Connect and pool waits are bounded (`connect_timeout_seconds`)
//!   and every statement too (`statement_timeout_seconds`, set as the session's
//!   `statement_timeout`): a slow or stopped server is an error, which the integrations answer
//!   by their fail mode.
//! * **Schema**: numbered SQL files (`postgres/NNN_*.sql`) applied in order at open, inside one
//!   transaction holding an advisory lock, so that gateways starting at once do not race;
//!   `schema_migrations` says what is applied. A database newer than the program is refused.
//! * **Partitions**: records and their side rows are partitioned by UTC month of `time`
//!   (`rate_counts` by the month of `minute`). The writer makes the partitions of the months it
//!   writes (under another advisory lock) before inserting; the retention purge drops whole
//!   partitions.
//! * **Group commit**: one writer thread per process takes every record waiting when a
//!   transaction starts into it (up to 512), inserts each table's rows with one `unnest`
//!   statement, commits (the server's `synchronous_commit`, on by default, makes it durable)
//!   and only then answers the callers. Rate counters are upserted in key order so that writers
//!   of several processes cannot deadlock.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::sync::Mutex;
use std::thread::JoinHandle;
use std::time::Duration;

use postgres::types::ToSql;
use r2d2_postgres::PostgresConnectionManager;
use tokio_postgres_rustls::MakeRustlsConnect;

use super::fleet::{Agent, AgentStatus, EnrolToken, Enrolment, FleetPolicy};
use super::{
    links, AdminAction, Approval, ApprovalEvent, ApprovalState, AuditQuery, AuditRecord,
    OutboxItem, PurgeReport, Result, Retention, Stats, Store, StoreConfig, StoredSession,
    WorkflowError,
};
use crate::policy::{domain_of, History, HistoryError, HistoryResult};

/// The migrations, in order: (name, SQL).
const MIGRATIONS: &[(&str, &str)] = &[
    ("001_schema", include_str!("postgres/001_schema.sql")),
    ("002_indexes", include_str!("postgres/002_indexes.sql")),
    ("003_fleet", include_str!("postgres/003_fleet.sql")),
    ("004_roles", include_str!("postgres/004_roles.sql")),
    ("005_admin_log", include_str!("postgres/005_admin_log.sql")),
    (
        "006_department",
        include_str!("postgres/006_department.sql"),
    ),
    ("007_links", include_str!("postgres/007_links.sql")),
];

/// The columns [`pg_link_row`] reads.
const PG_LINK_COLUMNS: &str = "token_sha256, record_id, name, size, sha256, created, expires, max_downloads, downloads, failures, password, sender";

fn pg_link_row(r: &postgres::Row) -> links::DownloadLink {
    let n = |i: usize| u32::try_from(r.get::<_, i64>(i).max(0)).unwrap_or(u32::MAX);
    links::DownloadLink {
        token_sha256: r.get(0),
        record_id: r.get(1),
        name: r.get(2),
        size: r.get::<_, i64>(3).max(0) as u64,
        sha256: r.get(4),
        created: r.get(5),
        expires: r.get(6),
        max_downloads: n(7),
        downloads: n(8),
        failures: n(9),
        password: r.get(10),
        sender: r.get(11),
    }
}

/// The schema version this program writes.
pub const SCHEMA_VERSION: usize = MIGRATIONS.len();

/// Advisory lock keys (arbitrary, fixed): migrations, partition creation.
const LOCK_MIGRATE: i64 = 0x7032_646c_7001;
const LOCK_PARTITIONS: i64 = 0x7032_646c_7002;

/// Tables partitioned by the month of `time`.
const TIME_TABLES: &[&str] = &[
    "records",
    "record_recipients",
    "record_attachments",
    "record_detectors",
];

const FLAG_ENCRYPTED: i32 = 1;
const FLAG_PASSWORD: i32 = 2;
const RATE_SENDER: i16 = 1;
const RATE_SHA: i16 = 2;

type Manager = PostgresConnectionManager<MakeRustlsConnect>;
type Pool = r2d2::Pool<Manager>;
type Conn = r2d2::PooledConnection<Manager>;
type Job = (AuditRecord, SyncSender<Result<i64>>);

fn db<E: std::fmt::Display + 'static>(e: E) -> WorkflowError {
    WorkflowError::Db(describe(e))
}

/// An error's text. The client's own errors say only "db error" or "error connecting to
/// server": the server's message (never its DETAIL, which may quote row values) or the I/O
/// cause is added.
fn describe<E: std::fmt::Display + 'static>(e: E) -> String {
    use std::error::Error as _;
    let any: &dyn std::any::Any = &e;
    if let Some(pe) = any.downcast_ref::<postgres::Error>() {
        if let Some(d) = pe.as_db_error() {
            return format!("{} ({}): {}", d.severity(), d.code().code(), d.message());
        }
        if let Some(src) = pe.source() {
            return format!("{pe}: {src}");
        }
    }
    e.to_string()
}

/// The PostgreSQL store.
pub struct PgStore {
    pool: Pool,
    redacted: String,
    writer: Mutex<Option<Sender<Job>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
    frequent: super::FrequentCache,
}

/// The password: `password_file`, else `$PING32DLP_STORE_PASSWORD`, else `$PGPASSWORD`, else
/// what the URL holds.
fn password(c: &StoreConfig) -> Result<Option<String>> {
    if let Some(f) = &c.password_file {
        let text = std::fs::read_to_string(f)
            .map_err(|e| WorkflowError::Io(format!("{}: {e}", f.display())))?;
        return Ok(Some(text.lines().next().unwrap_or("").to_string()));
    }
    for var in ["PING32DLP_STORE_PASSWORD", "PGPASSWORD"] {
        if let Ok(v) = std::env::var(var) {
            if !v.is_empty() {
                return Ok(Some(v));
            }
        }
    }
    Ok(None)
}

/// The month (UTC) of Unix seconds `t`: (its first second, the first second of the next, and
/// its `YYYYMM` name).
fn month_of(t: i64) -> Result<(i64, i64, String)> {
    // Year 1970 to 9999: partition names and ranges stay sane; a record outside is refused.
    if !(0..253_402_300_800).contains(&t) {
        return Err(WorkflowError::Db(format!(
            "record time {t} is out of range"
        )));
    }
    let (y, m, _) = crate::timeutil::civil(t.div_euclid(86_400));
    let start = crate::timeutil::days_from_civil(y, m, 1) * 86_400;
    let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
    let end = crate::timeutil::days_from_civil(ny, nm, 1) * 86_400;
    Ok((start, end, format!("{y:04}{m:02}")))
}

impl PgStore {
    /// Connects, migrates (under an advisory lock), makes this and next month's partitions
    /// and starts the writer thread.
    pub fn open(c: &StoreConfig) -> Result<PgStore> {
        let mut cfg: postgres::Config = c
            .url
            .parse()
            .map_err(|e| WorkflowError::Db(format!("store `{}`: {e}", c.redacted())))?;
        if let Some(pw) = password(c)? {
            cfg.password(pw);
        }
        cfg.connect_timeout(Duration::from_secs(c.connect_timeout_seconds.max(1)));
        cfg.keepalives(true);
        cfg.keepalives_idle(Duration::from_secs(30));
        cfg.application_name("ping32dlp");
        // JIT compilation costs tens to hundreds of milliseconds and the store's statements are
        // short index lookups: the planner's cost estimates over many partitions would switch it
        // on for searches that take 2 ms without it.
        cfg.options(&format!(
            "-c statement_timeout={} -c jit=off",
            c.statement_timeout_seconds.max(1) * 1000
        ));
        let tls = crate::net::client_config(c.ca_file.as_deref(), "store_ca_file")
            .map_err(WorkflowError::Db)?;
        let manager = PostgresConnectionManager::new(cfg, MakeRustlsConnect::new((*tls).clone()));
        let pool = r2d2::Pool::builder()
            .max_size(c.pool_size.max(1))
            .min_idle(Some(0))
            .connection_timeout(Duration::from_secs(c.connect_timeout_seconds.max(1)))
            .test_on_check_out(true)
            .error_handler(Box::new(r2d2::NopErrorHandler))
            .build_unchecked(manager);
        let redacted = c.redacted();
        let store = PgStore {
            pool,
            redacted: redacted.clone(),
            writer: Mutex::new(None),
            thread: Mutex::new(None),
            frequent: Default::default(),
        };
        {
            let mut conn = store.conn()?;
            migrate(&mut conn).map_err(|e| WorkflowError::Db(format!("{redacted}: {e}")))?;
            let now = crate::timeutil::now();
            let mut months = BTreeSet::new();
            months.insert(month_of(now)?.0);
            months.insert(month_of(now + 32 * 86_400)?.0);
            ensure_partitions(&mut conn, &months, &mut BTreeSet::new())?;
        }
        let (tx, rx) = mpsc::channel::<Job>();
        let pool = store.pool.clone();
        let thread = std::thread::Builder::new()
            .name("ping32dlp-pg-writer".into())
            .spawn(move || writer_loop(pool, rx))
            .map_err(|e| WorkflowError::Io(e.to_string()))?;
        *store
            .writer
            .lock()
            .map_err(|_| db("writer lock poisoned"))? = Some(tx);
        *store
            .thread
            .lock()
            .map_err(|_| db("writer lock poisoned"))? = Some(thread);
        Ok(store)
    }

    /// The URL without its password.
    pub fn url(&self) -> &str {
        &self.redacted
    }

    fn conn(&self) -> Result<Conn> {
        self.pool
            .get()
            .map_err(|e| WorkflowError::Db(format!("{}: {e}", self.redacted)))
    }

    /// Many records in one transaction (imports, generated histories); their ids.
    pub fn insert_batch(&self, recs: &[AuditRecord]) -> Result<Vec<i64>> {
        let mut c = self.conn()?;
        let mut known = BTreeSet::new();
        let st = Inserts::prepare(&mut c)?;
        insert_records(&mut c, &st, recs, &mut known, None).map(|ids| ids.unwrap_or_default())
    }

    /// An audit search, with the plan of every statement it runs added to `plans` when given
    /// (`EXPLAIN (ANALYZE, BUFFERS)`, for the benchmark and DESIGN).
    #[doc(hidden)]
    pub fn search_traced(
        &self,
        q: &AuditQuery,
        plans: Option<&mut Vec<String>>,
    ) -> Result<Vec<AuditRecord>> {
        let mut c = self.conn()?;
        if let Some(d) = Driver::of(q) {
            return search_driven(&mut c, q, &d, plans);
        }
        let mut args = Args::default();
        let sql = build_search(q, None, &mut |v| args.push(v));
        let rows = run(&mut c, &sql, &args, plans)?;
        Ok(rows
            .iter()
            .filter_map(|r| record_from_detail(r.get(0), r.get::<_, &str>(1)))
            .collect())
    }

    /// Runs a statement (benchmarks and tests: `ANALYZE`, `EXPLAIN`); the rows as text.
    #[doc(hidden)]
    pub fn query_text(&self, sql: &str) -> Result<Vec<String>> {
        let mut c = self.conn()?;
        let rows = c.simple_query(sql).map_err(db)?;
        Ok(rows
            .into_iter()
            .filter_map(|m| match m {
                postgres::SimpleQueryMessage::Row(r) => Some(
                    (0..r.len())
                        .map(|i| r.get(i).unwrap_or("").to_string())
                        .collect::<Vec<_>>()
                        .join("\t"),
                ),
                _ => None,
            })
            .collect())
    }
}

impl Drop for PgStore {
    fn drop(&mut self) {
        if let Ok(mut w) = self.writer.lock() {
            w.take();
        }
        if let Ok(mut t) = self.thread.lock() {
            if let Some(t) = t.take() {
                let _ = t.join();
            }
        }
    }
}

/// Applies the migrations not applied yet, in one transaction under an advisory lock.
pub fn migrate(c: &mut postgres::Client) -> std::result::Result<(), String> {
    migrate_to(c, MIGRATIONS.len())
}

/// Applies migrations up to `n` (tests of upgrades from an earlier version).
#[doc(hidden)]
pub fn migrate_to(c: &mut postgres::Client, n: usize) -> std::result::Result<(), String> {
    let mut tx = c.transaction().map_err(describe)?;
    // A migration may build indexes over the whole trail, and a process that starts meanwhile
    // waits for it: neither is bound by the statement timeout.
    tx.batch_execute("SET LOCAL statement_timeout = 0")
        .map_err(describe)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_MIGRATE])
        .map_err(describe)?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, name text NOT NULL, applied bigint NOT NULL)",
    )
    .map_err(describe)?;
    let done: BTreeSet<i32> = tx
        .query("SELECT version FROM schema_migrations", &[])
        .map_err(describe)?
        .iter()
        .map(|r| r.get(0))
        .collect();
    if let Some(&max) = done.iter().next_back() {
        if max as usize > MIGRATIONS.len() {
            return Err(format!(
                "the database has schema version {max}, newer than this program ({})",
                MIGRATIONS.len()
            ));
        }
    }
    for (i, (name, sql)) in MIGRATIONS.iter().enumerate().take(n) {
        let v = (i + 1) as i32;
        if done.contains(&v) {
            continue;
        }
        tx.batch_execute(sql)
            .map_err(|e| format!("migration {name}: {e}"))?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name, applied) VALUES ($1, $2, $3)",
            &[&v, name, &crate::timeutil::now()],
        )
        .map_err(describe)?;
    }
    tx.commit().map_err(describe)
}

/// Makes the partitions of the given months (first seconds) that `known` does not list yet.
fn ensure_partitions(
    c: &mut postgres::Client,
    months: &BTreeSet<i64>,
    known: &mut BTreeSet<i64>,
) -> Result<()> {
    let missing: Vec<i64> = months.difference(known).copied().collect();
    if missing.is_empty() {
        return Ok(());
    }
    let mut tx = c.transaction().map_err(db)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_PARTITIONS])
        .map_err(db)?;
    for start in &missing {
        let (a, b, name) = month_of(*start)?;
        let mut sql = String::new();
        for t in TIME_TABLES {
            sql.push_str(&format!(
                "CREATE TABLE IF NOT EXISTS {t}_p{name} PARTITION OF {t} FOR VALUES FROM ({a}) TO ({b});"
            ));
        }
        sql.push_str(&format!(
            "CREATE TABLE IF NOT EXISTS rate_counts_p{name} PARTITION OF rate_counts FOR VALUES FROM ({}) TO ({});",
            a / 60,
            b / 60
        ));
        tx.batch_execute(&sql).map_err(db)?;
    }
    tx.commit().map_err(db)?;
    known.extend(missing);
    Ok(())
}

/// Group commit: everything queued when a transaction starts goes into it. The connection is
/// dropped after a failure and taken again for the next batch (a restarted server is used
/// again).
fn writer_loop(pool: Pool, rx: Receiver<Job>) {
    let mut conn: Option<(Conn, Inserts)> = None;
    let mut known: BTreeSet<i64> = BTreeSet::new();
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < 512 {
            match rx.try_recv() {
                Ok(j) => batch.push(j),
                Err(_) => break,
            }
        }
        let recs: Vec<AuditRecord> = batch.iter().map(|(r, _)| r.clone()).collect();
        let result = (|| -> Result<Vec<i64>> {
            if conn.is_none() {
                let mut c = pool.get().map_err(db)?;
                let st = Inserts::prepare(&mut c)?;
                conn = Some((c, st));
            }
            let (c, st) = conn.as_mut().expect("set above");
            insert_records(c, st, &recs, &mut known, None).map(|ids| ids.unwrap_or_default())
        })();
        match result {
            Ok(ids) => {
                for ((_, reply), id) in batch.into_iter().zip(ids) {
                    let _ = reply.send(Ok(id));
                }
            }
            Err(e) => {
                conn = None;
                known.clear();
                let msg = e.to_string();
                for (_, reply) in batch {
                    let _ = reply.send(Err(WorkflowError::Db(msg.clone())));
                }
            }
        }
    }
}

/// The writer's statements, prepared once per connection (parsed and planned once, not per
/// group commit).
struct Inserts {
    ids: postgres::Statement,
    records: postgres::Statement,
    recipients: postgres::Statement,
    attachments: postgres::Statement,
    detectors: postgres::Statement,
    rates: postgres::Statement,
}

impl Inserts {
    fn prepare(c: &mut postgres::Client) -> Result<Inserts> {
        let mut p = |sql: &str| c.prepare(sql).map_err(db);
        Ok(Inserts {
            ids: p("SELECT nextval('records_id_seq') FROM generate_series(1, $1::bigint)")?,
            records: p(
                "INSERT INTO records (id, time, channel, \"user\", gateway, sender, sender_domain, subject, action, would_action,
                    risk, external, size, attach_bytes, flags, approval, detail, department)
                 SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
                    $8::text[], $9::text[], $10::text[], $11::integer[], $12::boolean[], $13::bigint[], $14::bigint[],
                    $15::integer[], $16::text[], $17::text[], $18::text[])",
            )?,
            recipients: p(
                "INSERT INTO record_recipients (record_id, time, address, domain, external, role)
                 SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::boolean[], $6::text[])",
            )?,
            attachments: p(
                "INSERT INTO record_attachments (record_id, time, location, name, kind, size, sha256, depth, external)
                 SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::text[], $8::integer[], $9::boolean[])",
            )?,
            detectors: p(
                "INSERT INTO record_detectors (record_id, time, detector)
                 SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[])",
            )?,
            rates: p(
                "INSERT INTO rate_counts (kind, key, minute, n, bytes)
                 SELECT * FROM unnest($1::smallint[], $2::text[], $3::bigint[], $4::bigint[], $5::bigint[])
                 ON CONFLICT (kind, key, minute) DO UPDATE SET n = rate_counts.n + EXCLUDED.n, bytes = rate_counts.bytes + EXCLUDED.bytes",
            )?,
        })
    }
}

/// An agent's upload: its last record number moves from `after` to `last` in the records'
/// transaction (`Store::ingest`).
struct Advance<'a> {
    agent: &'a str,
    after: i64,
    last: i64,
    now: i64,
    holds: &'a [(usize, Approval)],
}

/// Inserts records and their rows in one transaction; returns their ids in order, or `None`
/// when `advance` is given and the agent's number is no longer `after` (nothing is written).
fn insert_records(
    c: &mut postgres::Client,
    st: &Inserts,
    recs: &[AuditRecord],
    known: &mut BTreeSet<i64>,
    advance: Option<&Advance<'_>>,
) -> Result<Option<Vec<i64>>> {
    let mut months = BTreeSet::new();
    for r in recs {
        months.insert(month_of(r.time)?.0);
    }
    ensure_partitions(c, &months, known)?;
    let mut tx = c.transaction().map_err(db)?;
    if let Some(a) = advance {
        let n = tx
            .execute(
                "UPDATE agents SET last_seq = $3, last_seen = $4 WHERE name = $1 AND last_seq = $2 AND revoked IS NULL",
                &[&a.agent, &a.after, &a.last, &a.now],
            )
            .map_err(db)?;
        if n != 1 {
            return Ok(None);
        }
    }
    let n = recs.len() as i64;
    let ids: Vec<i64> = tx
        .query(&st.ids, &[&n])
        .map_err(db)?
        .iter()
        .map(|r| r.get(0))
        .collect();
    // Columns of every table, row by row.
    let mut r_cols = RecordCols::default();
    let (mut rr_id, mut rr_time, mut rr_addr, mut rr_dom, mut rr_ext) =
        (vec![], vec![], vec![], vec![], vec![]);
    let mut rr_role: Vec<Option<String>> = vec![];
    let (mut ra_id, mut ra_time, mut ra_loc, mut ra_name, mut ra_kind, mut ra_size, mut ra_sha) =
        (vec![], vec![], vec![], vec![], vec![], vec![], vec![]);
    let (mut ra_depth, mut ra_ext) = (vec![], vec![]);
    let (mut rd_id, mut rd_time, mut rd_det) = (vec![], vec![], vec![]);
    let mut rates: BTreeMap<(i16, String, i64), (i64, i64)> = BTreeMap::new();
    for (rec, id) in recs.iter().zip(&ids) {
        let mut rec = rec.clone();
        rec.id = *id;
        let external = rec.external();
        let attach_bytes: i64 = rec
            .attachments
            .iter()
            .filter(|a| a.depth == 0)
            .map(|a| a.size as i64)
            .sum();
        r_cols.push(&rec, external, attach_bytes);
        for r in &rec.recipients {
            rr_id.push(*id);
            rr_time.push(rec.time);
            rr_addr.push(r.address.clone());
            rr_dom.push(domain_of(&r.address).to_string());
            rr_ext.push(r.external);
            rr_role.push(r.role.map(|x| x.as_str().to_string()));
        }
        for a in &rec.attachments {
            ra_id.push(*id);
            ra_time.push(rec.time);
            ra_loc.push(a.location.clone());
            ra_name.push(a.name.clone());
            ra_kind.push(a.kind.clone());
            ra_size.push(a.size as i64);
            ra_sha.push(a.sha256.clone());
            ra_depth.push(a.depth as i32);
            ra_ext.push(external);
        }
        for f in rec.findings.iter().filter(|f| f.location == "*") {
            rd_id.push(*id);
            rd_time.push(rec.time);
            rd_det.push(f.detector.clone());
        }
        if external {
            let minute = rec.time.div_euclid(60);
            let e = rates
                .entry((RATE_SENDER, rec.sender.clone(), minute))
                .or_default();
            e.0 += 1;
            e.1 += attach_bytes;
            let shas: BTreeSet<&str> = rec
                .attachments
                .iter()
                .map(|a| a.sha256.as_str())
                .filter(|s| !s.is_empty())
                .collect();
            for sha in shas {
                rates
                    .entry((RATE_SHA, sha.to_string(), minute))
                    .or_default()
                    .0 += 1;
            }
        }
    }
    r_cols.id = ids.clone();
    r_cols.insert(&mut tx, &st.records)?;
    if !rr_id.is_empty() {
        tx.execute(
            &st.recipients,
            &[&rr_id, &rr_time, &rr_addr, &rr_dom, &rr_ext, &rr_role],
        )
        .map_err(db)?;
    }
    if !ra_id.is_empty() {
        tx.execute(
            &st.attachments,
            &[
                &ra_id, &ra_time, &ra_loc, &ra_name, &ra_kind, &ra_size, &ra_sha, &ra_depth,
                &ra_ext,
            ],
        )
        .map_err(db)?;
    }
    if !rd_id.is_empty() {
        tx.execute(&st.detectors, &[&rd_id, &rd_time, &rd_det])
            .map_err(db)?;
    }
    if !rates.is_empty() {
        // In key order (the map is sorted): concurrent writers lock rows in the same order.
        let (mut k, mut key, mut minute, mut n, mut bytes) =
            (vec![], vec![], vec![], vec![], vec![]);
        for ((kind, kk, m), (nn, bb)) in rates {
            k.push(kind);
            key.push(kk);
            minute.push(m);
            n.push(nn);
            bytes.push(bb);
        }
        tx.execute(&st.rates, &[&k, &key, &minute, &n, &bytes])
            .map_err(db)?;
    }
    for (i, a) in advance.map_or(&[][..], |a| a.holds) {
        let mut a = a.clone();
        a.record_id = ids.get(*i).copied().unwrap_or(0);
        insert_approval(&mut tx, &a)?;
        let actor = format!("agent:{}", advance.map_or("", |x| x.agent));
        tx.execute(
            "INSERT INTO approval_events (approval, time, actor, kind, detail) VALUES ($1, $2, $3, 'created', $4)",
            &[&a.id, &a.created, &actor, &a.rule],
        )
        .map_err(db)?;
    }
    tx.commit().map_err(db)?;
    Ok(Some(ids))
}

/// The `records` columns of a batch.
#[derive(Default)]
struct RecordCols {
    id: Vec<i64>,
    time: Vec<i64>,
    channel: Vec<String>,
    user: Vec<Option<String>>,
    gateway: Vec<Option<String>>,
    sender: Vec<String>,
    sender_domain: Vec<String>,
    subject: Vec<String>,
    action: Vec<String>,
    would_action: Vec<String>,
    risk: Vec<i32>,
    external: Vec<bool>,
    size: Vec<i64>,
    attach_bytes: Vec<i64>,
    flags: Vec<i32>,
    approval: Vec<Option<String>>,
    detail: Vec<String>,
    department: Vec<Option<String>>,
}

impl RecordCols {
    fn push(&mut self, rec: &AuditRecord, external: bool, attach_bytes: i64) {
        let flags = i32::from(rec.unscannable.iter().any(|(_, r, _)| r == "encrypted"))
            * FLAG_ENCRYPTED
            + i32::from(rec.password_candidates > 0) * FLAG_PASSWORD;
        self.time.push(rec.time);
        self.channel.push(rec.channel.clone());
        self.user.push(rec.user.clone());
        self.gateway.push(rec.gateway.clone());
        self.sender.push(rec.sender.clone());
        self.sender_domain.push(domain_of(&rec.sender).to_string());
        self.subject.push(rec.subject.clone());
        self.action.push(rec.action.clone());
        self.would_action.push(rec.would_action.clone());
        self.risk.push(rec.risk as i32);
        self.external.push(external);
        self.size.push(rec.size as i64);
        self.attach_bytes.push(attach_bytes);
        self.flags.push(flags);
        self.approval.push(rec.approval.clone());
        self.department.push(rec.department.clone());
        self.detail
            .push(serde_json::to_string(rec).unwrap_or_default());
    }

    fn insert(&self, tx: &mut postgres::Transaction<'_>, st: &postgres::Statement) -> Result<()> {
        let params: [&(dyn ToSql + Sync); 18] = [
            &self.id,
            &self.time,
            &self.channel,
            &self.user,
            &self.gateway,
            &self.sender,
            &self.sender_domain,
            &self.subject,
            &self.action,
            &self.would_action,
            &self.risk,
            &self.external,
            &self.size,
            &self.attach_bytes,
            &self.flags,
            &self.approval,
            &self.detail,
            &self.department,
        ];
        tx.execute(st, &params).map_err(db)?;
        Ok(())
    }
}

/// One approval row (the store's `insert_approval`, and the requests of an agent's upload
/// inside its transaction).
fn insert_approval(c: &mut impl postgres::GenericClient, a: &Approval) -> Result<()> {
    let detail = serde_json::to_string(a).unwrap_or_default();
    c.execute(
        "INSERT INTO approvals (id, record_id, state, created, expires, gateway, detail) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        &[&a.id, &a.record_id, &a.state.as_str(), &a.created, &a.expires, &a.gateway, &detail],
    )
    .map_err(db)?;
    Ok(())
}

const AGENT_COLS: &str =
    "name, secret_sha256, created, label, last_seen, last_seq, revoked, status";

fn agent_from(r: &postgres::Row) -> Agent {
    let status: String = r.get(7);
    Agent {
        name: r.get(0),
        secret_sha256: r.get(1),
        created: r.get(2),
        label: r.get(3),
        last_seen: r.get(4),
        last_seq: r.get(5),
        revoked: r.get(6),
        status: serde_json::from_str(&status).unwrap_or_default(),
    }
}

fn record_from_detail(id: i64, detail: &str) -> Option<AuditRecord> {
    let mut r: AuditRecord = serde_json::from_str(detail).ok()?;
    r.id = id;
    Some(r)
}

fn approval_from(detail: &str, state: &str) -> Option<Approval> {
    let mut a: Approval = serde_json::from_str(detail).ok()?;
    a.state = ApprovalState::parse(state).unwrap_or(a.state);
    Some(a)
}

fn hist<E: std::fmt::Display + 'static>(e: E) -> HistoryError {
    HistoryError(describe(e))
}

impl History for PgStore {
    fn frequent_domains(
        &self,
        since: i64,
        until: i64,
        min_mails: u64,
        limit: usize,
    ) -> HistoryResult<Vec<String>> {
        self.frequent.get(until, || {
            let rows = self
                .conn()
                .map_err(hist)?
                .query(
                    "SELECT domain FROM record_recipients WHERE external AND time >= $1 AND time <= $2
                     GROUP BY domain HAVING COUNT(DISTINCT record_id) >= $3
                     ORDER BY COUNT(DISTINCT record_id) DESC, domain LIMIT $4",
                    &[&since, &until, &(min_mails as i64), &(limit as i64)],
                )
                .map_err(hist)?;
            Ok(rows.iter().map(|r| r.get(0)).collect())
        })
    }
    fn domain_seen(&self, domain: &str, until: i64) -> HistoryResult<bool> {
        self.history_at(i64::MAX).domain_seen(domain, until)
    }
    fn sent_to_before(&self, sender: &str, address: &str, until: i64) -> HistoryResult<bool> {
        self.history_at(i64::MAX)
            .sent_to_before(sender, address, until)
    }
    fn external_sends_of(&self, sha256: &str, since: i64, until: i64) -> HistoryResult<u64> {
        self.history_at(i64::MAX)
            .external_sends_of(sha256, since, until)
    }
    fn sender_external(&self, sender: &str, since: i64, until: i64) -> HistoryResult<(u64, u64)> {
        self.history_at(i64::MAX)
            .sender_external(sender, since, until)
    }
    fn ppap_partner(
        &self,
        sender: &str,
        recipients: &[String],
        since: i64,
        until: i64,
        want_password: bool,
    ) -> HistoryResult<bool> {
        self.history_at(i64::MAX)
            .ppap_partner(sender, recipients, since, until, want_password)
    }
}

impl PgStore {
    fn history_at(&self, before: i64) -> HistoryAt<'_> {
        HistoryAt { s: self, before }
    }
}

/// The history now (`before` = `i64::MAX`: rate windows from the per-minute counters) or as it
/// was before a record (replay: exact queries over the records).
struct HistoryAt<'a> {
    s: &'a PgStore,
    before: i64,
}

impl HistoryAt<'_> {
    fn conn(&self) -> HistoryResult<Conn> {
        self.s.conn().map_err(hist)
    }

    fn rate(&self, kind: i16, key: &str, since: i64, until: i64) -> HistoryResult<(u64, u64)> {
        let row = self
            .conn()?
            .query_one(
                "SELECT coalesce(sum(n), 0)::bigint, coalesce(sum(bytes), 0)::bigint FROM rate_counts
                 WHERE kind = $1 AND key = $2 AND minute >= $3 AND minute <= $4",
                &[&kind, &key, &since.div_euclid(60), &until.div_euclid(60)],
            )
            .map_err(hist)?;
        Ok((row.get::<_, i64>(0) as u64, row.get::<_, i64>(1) as u64))
    }
}

impl History for HistoryAt<'_> {
    fn sent_to_before(&self, sender: &str, address: &str, until: i64) -> HistoryResult<bool> {
        // The record is in the partition of its recipients' time: joined on both.
        let rows = self
            .conn()?
            .query(
                "SELECT 1 FROM record_recipients x JOIN records r ON r.id = x.record_id AND r.time = x.time
                 WHERE x.address = $1 AND x.time <= $3 AND x.record_id < $4 AND r.sender = $2 LIMIT 1",
                &[&address.to_ascii_lowercase(), &sender.to_ascii_lowercase(), &until, &self.before],
            )
            .map_err(hist)?;
        Ok(!rows.is_empty())
    }

    fn domain_seen(&self, domain: &str, until: i64) -> HistoryResult<bool> {
        let rows = self
            .conn()?
            .query(
                "SELECT 1 FROM record_recipients WHERE domain = $1 AND time <= $2 AND record_id < $3 LIMIT 1",
                &[&domain, &until, &self.before],
            )
            .map_err(hist)?;
        Ok(!rows.is_empty())
    }

    fn external_sends_of(&self, sha256: &str, since: i64, until: i64) -> HistoryResult<u64> {
        if self.before == i64::MAX {
            return Ok(self.rate(RATE_SHA, sha256, since, until)?.0);
        }
        let row = self
            .conn()?
            .query_one(
                "SELECT count(DISTINCT record_id) FROM record_attachments
                 WHERE sha256 = $1 AND time >= $2 AND time <= $3 AND external AND record_id < $4",
                &[&sha256, &since, &until, &self.before],
            )
            .map_err(hist)?;
        Ok(row.get::<_, i64>(0) as u64)
    }

    fn sender_external(&self, sender: &str, since: i64, until: i64) -> HistoryResult<(u64, u64)> {
        if self.before == i64::MAX {
            return self.rate(RATE_SENDER, sender, since, until);
        }
        let row = self
            .conn()?
            .query_one(
                "SELECT count(*), coalesce(sum(attach_bytes), 0)::bigint FROM records
                 WHERE sender = $1 AND time >= $2 AND time <= $3 AND external AND id < $4",
                &[&sender, &since, &until, &self.before],
            )
            .map_err(hist)?;
        Ok((row.get::<_, i64>(0) as u64, row.get::<_, i64>(1) as u64))
    }

    fn ppap_partner(
        &self,
        sender: &str,
        recipients: &[String],
        since: i64,
        until: i64,
        want_password: bool,
    ) -> HistoryResult<bool> {
        let flag = if want_password {
            FLAG_PASSWORD
        } else {
            FLAG_ENCRYPTED
        };
        let mut c = self.conn()?;
        let found: Vec<(i64, i64)> = c
            .query(
                "SELECT id, time FROM records WHERE sender = $1 AND time >= $2 AND time <= $3 AND external AND id < $4
                 AND (flags & $5) != 0 ORDER BY time DESC, id DESC LIMIT 20",
                &[&sender, &since, &until, &self.before, &flag],
            )
            .map_err(hist)?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        for (id, time) in found {
            let theirs: Vec<String> = c
                .query(
                    "SELECT address FROM record_recipients WHERE record_id = $1 AND time = $2",
                    &[&id, &time],
                )
                .map_err(hist)?
                .iter()
                .map(|r| r.get(0))
                .collect();
            if recipients.iter().all(|x| theirs.iter().any(|t| t == x)) {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

impl Store for PgStore {
    fn history_before(&self, record_id: i64) -> Box<dyn History + '_> {
        Box::new(self.history_at(record_id))
    }

    fn record(&self, rec: &AuditRecord) -> Result<i64> {
        let (tx, rx) = mpsc::sync_channel(1);
        {
            let w = self.writer.lock().map_err(|_| db("writer lock poisoned"))?;
            w.as_ref()
                .ok_or_else(|| db("store closed"))?
                .send((rec.clone(), tx))
                .map_err(|_| db("audit writer stopped"))?;
        }
        rx.recv().map_err(|_| db("audit writer stopped"))?
    }

    fn set_record_approval(&self, record_id: i64, approval: &str) -> Result<()> {
        self.conn()?
            .execute(
                "UPDATE records SET approval = $2 WHERE id = $1",
                &[&record_id, &approval],
            )
            .map_err(db)?;
        Ok(())
    }

    fn get_record(&self, id: i64) -> Result<Option<AuditRecord>> {
        let rows = self
            .conn()?
            .query("SELECT detail FROM records WHERE id = $1", &[&id])
            .map_err(db)?;
        Ok(rows
            .first()
            .and_then(|r| record_from_detail(id, r.get::<_, &str>(0))))
    }

    fn get_records(&self, ids: &[i64]) -> Result<Vec<AuditRecord>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let rows = self
            .conn()?
            .query("SELECT id, detail FROM records WHERE id = ANY($1)", &[&ids])
            .map_err(db)?;
        Ok(rows
            .iter()
            .filter_map(|r| record_from_detail(r.get(0), r.get::<_, &str>(1)))
            .collect())
    }

    fn search(&self, q: &AuditQuery) -> Result<Vec<AuditRecord>> {
        self.search_traced(q, None)
    }

    fn stats(
        &self,
        since: i64,
        until: i64,
        off: i32,
        top: usize,
        gateway: Option<&str>,
    ) -> Result<Stats> {
        // Six aggregates over the window, each on a connection of its own at once: the
        // dashboard waits for the slowest, not for the sum (each scans the window's rows of
        // one table; see DESIGN for the numbers).
        const SQL: [&str; 6] = [
            "SELECT ((time + $3) / 86400)::text, count(*)::text, (count(*) FILTER (WHERE external))::text, ''
             FROM records WHERE time >= $1 AND time < $2 AND ($4::text IS NULL OR gateway = $4) GROUP BY 1 ORDER BY min(time)",
            "SELECT action, count(*)::text, '', '' FROM records WHERE time >= $1 AND time < $2 AND ($3::text IS NULL OR gateway = $3)
             GROUP BY action ORDER BY count(*) DESC",
            "SELECT sender, count(*)::text, '', '' FROM records WHERE time >= $1 AND time < $2 AND external
             AND ($4::text IS NULL OR gateway = $4)
             GROUP BY sender ORDER BY count(*) DESC, sender LIMIT $3",
            "SELECT domain, count(*)::text, '', '' FROM
                (SELECT DISTINCT domain, record_id FROM record_recipients
                 WHERE time >= $1 AND time < $2 AND external
                 AND ($4::text IS NULL OR (time, record_id) IN (SELECT time, id FROM records WHERE gateway = $4 AND time >= $1 AND time < $2))) x
             GROUP BY domain ORDER BY count(*) DESC, domain LIMIT $3",
            "SELECT detector, count(*)::text, '', '' FROM record_detectors WHERE time >= $1 AND time < $2
             AND ($4::text IS NULL OR (time, record_id) IN (SELECT time, id FROM records WHERE gateway = $4 AND time >= $1 AND time < $2))
             GROUP BY detector ORDER BY count(*) DESC, detector LIMIT $3",
            "SELECT sha256, count(*)::text, min(name), '' FROM
                (SELECT sha256, record_id, min(name) AS name FROM record_attachments
                 WHERE time >= $1 AND time < $2 AND external AND depth = 0 AND sha256 != ''
                 AND ($4::text IS NULL OR (time, record_id) IN (SELECT time, id FROM records WHERE gateway = $4 AND time >= $1 AND time < $2))
                 GROUP BY sha256, record_id) x
             GROUP BY sha256 HAVING count(*) > 1 ORDER BY count(*) DESC, sha256 LIMIT $3",
        ];
        let off_s = i64::from(off) * 60;
        let top = top.max(1) as i64;
        let parts: Vec<Result<Vec<[String; 4]>>> = std::thread::scope(|t| {
            let hs: Vec<_> = SQL
                .iter()
                .enumerate()
                .map(|(i, sql)| {
                    t.spawn(move || -> Result<Vec<[String; 4]>> {
                        // The first takes the UTC offset, the tops the number of rows.
                        let params: Vec<&(dyn ToSql + Sync)> = match i {
                            0 => vec![&since, &until, &off_s, &gateway],
                            1 => vec![&since, &until, &gateway],
                            _ => vec![&since, &until, &top, &gateway],
                        };
                        let rows = self.conn()?.query(*sql, &params).map_err(db)?;
                        Ok(rows
                            .iter()
                            .map(|r| [r.get(0), r.get(1), r.get(2), r.get(3)])
                            .collect())
                    })
                })
                .collect();
            hs.into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(db("dashboard query panicked")))
                })
                .collect()
        });
        let mut parts = parts.into_iter();
        let mut next = || parts.next().unwrap_or_else(|| Ok(Vec::new()));
        let n = |s: &str| s.parse::<u64>().unwrap_or(0);
        let mut s = Stats::default();
        for [d, c, e, _] in next()? {
            let (y, m, dd) = crate::timeutil::civil(d.parse().unwrap_or(0));
            s.per_day
                .push((format!("{y:04}-{m:02}-{dd:02}"), n(&c), n(&e)));
        }
        s.per_action = next()?.into_iter().map(|[k, c, ..]| (k, n(&c))).collect();
        s.top_senders = next()?.into_iter().map(|[k, c, ..]| (k, n(&c))).collect();
        s.top_domains = next()?.into_iter().map(|[k, c, ..]| (k, n(&c))).collect();
        s.top_detectors = next()?.into_iter().map(|[k, c, ..]| (k, n(&c))).collect();
        s.repeated_files = next()?
            .into_iter()
            .map(|[k, c, name, _]| (k, name, n(&c)))
            .collect();
        Ok(s)
    }

    fn each_record(&self, since: i64, f: &mut dyn FnMut(AuditRecord)) -> Result<()> {
        let mut after: (i64, i64) = (since, i64::MIN);
        loop {
            let page: Vec<(i64, i64, String)> = self
                .conn()?
                .query(
                    "SELECT id, time, detail FROM records WHERE time >= $1 AND (time > $1 OR id > $2)
                     ORDER BY time, id LIMIT 500",
                    &[&after.0, &after.1],
                )
                .map_err(db)?
                .iter()
                .map(|r| (r.get(0), r.get(1), r.get(2)))
                .collect();
            let Some(&(id, time, _)) = page.last() else {
                return Ok(());
            };
            after = (time, id);
            for (id, _, d) in page {
                if let Some(rec) = record_from_detail(id, &d) {
                    f(rec);
                }
            }
        }
    }

    fn insert_approval(&self, a: &Approval) -> Result<()> {
        insert_approval(&mut *self.conn()?, a)
    }

    fn approval(&self, id: &str) -> Result<Option<Approval>> {
        let rows = self
            .conn()?
            .query("SELECT detail, state FROM approvals WHERE id = $1", &[&id])
            .map_err(db)?;
        Ok(rows.first().and_then(|r| approval_from(r.get(0), r.get(1))))
    }

    fn approvals(
        &self,
        state: Option<ApprovalState>,
        approver: Option<&str>,
    ) -> Result<Vec<Approval>> {
        let st = state.map(ApprovalState::as_str);
        let rows = self
            .conn()?
            .query(
                "SELECT detail, state FROM approvals WHERE ($1::text IS NULL OR state = $1) ORDER BY created DESC",
                &[&st],
            )
            .map_err(db)?;
        let mut out: Vec<Approval> = rows
            .iter()
            .filter_map(|r| approval_from(r.get(0), r.get(1)))
            .collect();
        if let Some(who) = approver {
            out.retain(|a| {
                a.approvers.is_empty() || a.approvers.iter().any(|x| x.eq_ignore_ascii_case(who))
            });
        }
        Ok(out)
    }

    fn transition(&self, a: &Approval, from: ApprovalState) -> Result<bool> {
        let detail = serde_json::to_string(a).unwrap_or_default();
        let n = self
            .conn()?
            .execute(
                "UPDATE approvals SET state = $2, detail = $3 WHERE id = $1 AND state = $4",
                &[&a.id, &a.state.as_str(), &detail, &from.as_str()],
            )
            .map_err(db)?;
        Ok(n == 1)
    }

    fn add_event(&self, approval: &str, e: &ApprovalEvent) -> Result<()> {
        self.conn()?
            .execute(
                "INSERT INTO approval_events (approval, time, actor, kind, detail) VALUES ($1, $2, $3, $4, $5)",
                &[&approval, &e.time, &e.actor, &e.kind, &e.detail],
            )
            .map_err(db)?;
        Ok(())
    }

    fn events(&self, approval: &str) -> Result<Vec<ApprovalEvent>> {
        let rows = self
            .conn()?
            .query(
                "SELECT time, actor, kind, detail FROM approval_events WHERE approval = $1 ORDER BY time, id",
                &[&approval],
            )
            .map_err(db)?;
        Ok(rows
            .iter()
            .map(|r| ApprovalEvent {
                time: r.get(0),
                actor: r.get(1),
                kind: r.get(2),
                detail: r.get(3),
            })
            .collect())
    }

    fn add_evidence(
        &self,
        sha256: &str,
        size: u64,
        expires: i64,
        record_id: i64,
        location: &str,
    ) -> Result<()> {
        let mut c = self.conn()?;
        let mut tx = c.transaction().map_err(db)?;
        tx.execute(
            "INSERT INTO evidence (sha256, size, created, expires) VALUES ($1, $2, $3, $4)
             ON CONFLICT (sha256) DO UPDATE SET expires = greatest(evidence.expires, EXCLUDED.expires)",
            &[&sha256, &(size as i64), &crate::timeutil::now(), &expires],
        )
        .map_err(db)?;
        tx.execute(
            "INSERT INTO evidence_refs (sha256, record_id, location) VALUES ($1, $2, $3)",
            &[&sha256, &record_id, &location],
        )
        .map_err(db)?;
        tx.commit().map_err(db)
    }

    fn evidence_of(&self, record_id: i64) -> Result<Vec<(String, String)>> {
        let rows = self
            .conn()?
            .query(
                "SELECT r.location, r.sha256 FROM evidence_refs r JOIN evidence e ON e.sha256 = r.sha256
                 WHERE r.record_id = $1 ORDER BY r.id",
                &[&record_id],
            )
            .map_err(db)?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    fn expired_evidence(&self, now: i64) -> Result<Vec<String>> {
        let rows = self
            .conn()?
            .query("SELECT sha256 FROM evidence WHERE expires < $1", &[&now])
            .map_err(db)?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    fn forget_evidence(&self, sha256: &str) -> Result<()> {
        let mut c = self.conn()?;
        let mut tx = c.transaction().map_err(db)?;
        for t in ["evidence", "evidence_refs", "evidence_blobs"] {
            tx.execute(&format!("DELETE FROM {t} WHERE sha256 = $1"), &[&sha256])
                .map_err(db)?;
        }
        tx.commit().map_err(db)
    }

    fn outbox_push(&self, sink: &str, payload: &str, next_try: i64) -> Result<i64> {
        let r = self
            .conn()?
            .query_one(
                "INSERT INTO alert_outbox (sink, payload, attempts, next_try) VALUES ($1, $2, 0, $3) RETURNING id",
                &[&sink, &payload, &next_try],
            )
            .map_err(db)?;
        Ok(r.get(0))
    }

    fn outbox_claim(&self, now: i64, lease: i64, limit: usize) -> Result<Vec<OutboxItem>> {
        let limit = limit as i64;
        let rows = self
            .conn()?
            .query(
                "UPDATE alert_outbox SET next_try = $2 WHERE id IN (
                    SELECT id FROM alert_outbox WHERE next_try >= 0 AND next_try <= $1 ORDER BY id LIMIT $3
                    FOR UPDATE SKIP LOCKED)
                 RETURNING id, sink, payload, attempts",
                &[&now, &(now + lease), &limit],
            )
            .map_err(db)?;
        let mut items: Vec<OutboxItem> = rows
            .iter()
            .map(|r| OutboxItem {
                id: r.get(0),
                sink: r.get(1),
                payload: r.get(2),
                attempts: r.get::<_, i32>(3) as u32,
            })
            .collect();
        items.sort_by_key(|i| i.id);
        Ok(items)
    }

    fn outbox_done(&self, id: i64) -> Result<()> {
        self.conn()?
            .execute("DELETE FROM alert_outbox WHERE id = $1", &[&id])
            .map_err(db)?;
        Ok(())
    }

    fn outbox_retry(&self, id: i64, attempts: u32, next_try: i64, error: &str) -> Result<()> {
        self.conn()?
            .execute(
                "UPDATE alert_outbox SET attempts = $2, next_try = $3, last_error = $4 WHERE id = $1",
                &[&id, &(attempts as i32), &next_try, &error],
            )
            .map_err(db)?;
        Ok(())
    }

    fn outbox_counts(&self) -> Result<(u64, u64)> {
        let r = self
            .conn()?
            .query_one(
                "SELECT count(*) FILTER (WHERE next_try >= 0), count(*) FILTER (WHERE next_try < 0) FROM alert_outbox",
                &[],
            )
            .map_err(db)?;
        Ok((r.get::<_, i64>(0) as u64, r.get::<_, i64>(1) as u64))
    }

    fn backend(&self) -> &'static str {
        "postgres"
    }

    fn count_pending(&self, gateway: Option<&str>) -> Result<u64> {
        let row = self
            .conn()?
            .query_one(
                "SELECT COUNT(*) FROM approvals WHERE state = 'pending'
                 AND ($1::text IS NULL OR gateway IS NULL OR gateway = $1)",
                &[&gateway],
            )
            .map_err(db)?;
        Ok(row.get::<_, i64>(0).max(0) as u64)
    }

    fn approvals_to_carry_out(&self, gateway: &str) -> Result<Vec<Approval>> {
        let rows = self
            .conn()?
            .query(
                "SELECT detail, state FROM approvals WHERE gateway = $1 AND state IN ('approved', 'rejected', 'expired')
                 ORDER BY created",
                &[&gateway],
            )
            .map_err(db)?;
        Ok(rows
            .iter()
            .filter_map(|r| approval_from(r.get(0), r.get(1)))
            .collect())
    }

    fn add_event_once(&self, approval: &str, e: &ApprovalEvent) -> Result<bool> {
        let n = self
            .conn()?
            .execute(
                "INSERT INTO approval_events (approval, time, actor, kind, detail) VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT DO NOTHING",
                &[&approval, &e.time, &e.actor, &e.kind, &e.detail],
            )
            .map_err(db)?;
        Ok(n == 1)
    }

    fn secret(&self, name: &str) -> Result<[u8; 32]> {
        let mut fresh = [0u8; 32];
        getrandom::fill(&mut fresh).map_err(|e| WorkflowError::Io(e.to_string()))?;
        let mut c = self.conn()?;
        c.execute(
            "INSERT INTO secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
            &[&name, &fresh.as_slice()],
        )
        .map_err(db)?;
        let v: Vec<u8> = c
            .query_one("SELECT value FROM secrets WHERE name = $1", &[&name])
            .map_err(db)?
            .get(0);
        <[u8; 32]>::try_from(v.as_slice())
            .map_err(|_| WorkflowError::Db(format!("secret `{name}` is not 32 bytes")))
    }

    fn keeps_blobs(&self) -> bool {
        true
    }

    fn blob_put(&self, sha256: &str, data: &[u8]) -> Result<()> {
        self.conn()?
            .execute(
                "INSERT INTO evidence_blobs (sha256, data) VALUES ($1, $2) ON CONFLICT (sha256) DO NOTHING",
                &[&sha256, &data],
            )
            .map_err(db)?;
        Ok(())
    }

    fn blob_get(&self, sha256: &str) -> Result<Option<Vec<u8>>> {
        let rows = self
            .conn()?
            .query(
                "SELECT data FROM evidence_blobs WHERE sha256 = $1",
                &[&sha256],
            )
            .map_err(db)?;
        Ok(rows.first().map(|r| r.get(0)))
    }

    fn blob_delete(&self, sha256: &str) -> Result<()> {
        self.conn()?
            .execute("DELETE FROM evidence_blobs WHERE sha256 = $1", &[&sha256])
            .map_err(db)?;
        Ok(())
    }

    fn session_put(&self, key: &str, s: &StoredSession) -> Result<()> {
        let detail = serde_json::to_string(s).unwrap_or_default();
        self.conn()?
            .execute(
                "INSERT INTO console_sessions (key, detail, created, last) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (key) DO UPDATE SET detail = EXCLUDED.detail, created = EXCLUDED.created, last = EXCLUDED.last",
                &[&key, &detail, &s.created, &s.last],
            )
            .map_err(db)?;
        Ok(())
    }

    fn enrol_token_add(&self, t: &EnrolToken) -> Result<()> {
        self.conn()?
            .execute(
                "INSERT INTO enrol_tokens (sha256, label, created, expires, created_by) VALUES ($1, $2, $3, $4, $5)",
                &[&t.sha256, &t.label, &t.created, &t.expires, &t.created_by],
            )
            .map_err(db)?;
        Ok(())
    }

    fn enrol_tokens(&self, limit: usize) -> Result<Vec<EnrolToken>> {
        let rows = self
            .conn()?
            .query(
                "SELECT sha256, label, created, expires, created_by, used, agent FROM enrol_tokens ORDER BY created DESC, sha256 LIMIT $1",
                &[&(limit as i64)],
            )
            .map_err(db)?;
        Ok(rows
            .iter()
            .map(|r| EnrolToken {
                sha256: r.get(0),
                label: r.get(1),
                created: r.get(2),
                expires: r.get(3),
                created_by: r.get(4),
                used: r.get(5),
                agent: r.get(6),
            })
            .collect())
    }

    fn enrol(&self, token_sha256: &str, now: i64, a: &Agent) -> Result<Enrolment> {
        let mut c = self.conn()?;
        let mut tx = c.transaction().map_err(db)?;
        let label = tx
            .query(
                "UPDATE enrol_tokens SET used = $2, agent = $3 WHERE sha256 = $1 AND used IS NULL AND expires > $2 RETURNING label",
                &[&token_sha256, &now, &a.name],
            )
            .map_err(db)?;
        let Some(label) = label.first().map(|r| r.get::<_, String>(0)) else {
            return Ok(Enrolment::BadToken);
        };
        let status = serde_json::to_string(&a.status).unwrap_or_default();
        let n = tx
            .execute(
                "INSERT INTO agents (name, secret_sha256, created, label, last_seen, last_seq, status)
                 VALUES ($1, $2, $3, $4, $3, 0, $5) ON CONFLICT (name) DO NOTHING",
                &[&a.name, &a.secret_sha256, &now, &label, &status],
            )
            .map_err(db)?;
        if n != 1 {
            // The token stays unused (the transaction is rolled back).
            return Ok(Enrolment::NameTaken);
        }
        tx.commit().map_err(db)?;
        Ok(Enrolment::Enrolled)
    }

    fn agent(&self, name: &str) -> Result<Option<Agent>> {
        let rows = self
            .conn()?
            .query(
                &format!("SELECT {AGENT_COLS} FROM agents WHERE name = $1"),
                &[&name],
            )
            .map_err(db)?;
        Ok(rows.first().map(agent_from))
    }

    fn agents(&self) -> Result<Vec<Agent>> {
        let rows = self
            .conn()?
            .query(
                &format!("SELECT {AGENT_COLS} FROM agents ORDER BY name"),
                &[],
            )
            .map_err(db)?;
        Ok(rows.iter().map(agent_from).collect())
    }

    fn agent_seen(&self, name: &str, now: i64, status: &AgentStatus) -> Result<()> {
        let status = serde_json::to_string(status).unwrap_or_default();
        self.conn()?
            .execute(
                "UPDATE agents SET last_seen = $2, status = $3 WHERE name = $1",
                &[&name, &now, &status],
            )
            .map_err(db)?;
        Ok(())
    }

    fn agent_revoke(&self, name: &str, now: i64) -> Result<bool> {
        let n = self
            .conn()?
            .execute(
                "UPDATE agents SET revoked = $2 WHERE name = $1 AND revoked IS NULL",
                &[&name, &now],
            )
            .map_err(db)?;
        Ok(n == 1)
    }

    fn fleet_policy_put(&self, text: &str, actor: &str, now: i64) -> Result<i64> {
        let sha = super::fleet::secret_digest(text);
        let row = self
            .conn()?
            .query_one(
                "INSERT INTO fleet_policies (text, sha256, created, actor) VALUES ($1, $2, $3, $4) RETURNING version",
                &[&text, &sha, &now, &actor],
            )
            .map_err(db)?;
        Ok(row.get(0))
    }

    fn fleet_policy(&self) -> Result<Option<FleetPolicy>> {
        let rows = self
            .conn()?
            .query(
                "SELECT version, text, sha256, created, actor FROM fleet_policies ORDER BY version DESC LIMIT 1",
                &[],
            )
            .map_err(db)?;
        Ok(rows.first().map(|r| FleetPolicy {
            version: r.get(0),
            text: r.get(1),
            sha256: r.get(2),
            created: r.get(3),
            actor: r.get(4),
        }))
    }

    fn ingest(
        &self,
        agent: &str,
        after: i64,
        last: i64,
        recs: &[AuditRecord],
        holds: &[(usize, Approval)],
        now: i64,
    ) -> Result<Option<Vec<i64>>> {
        let mut c = self.conn()?;
        let st = Inserts::prepare(&mut c)?;
        let advance = Advance {
            agent,
            after,
            last,
            now,
            holds,
        };
        insert_records(&mut c, &st, recs, &mut BTreeSet::new(), Some(&advance))
    }

    fn session_get(
        &self,
        key: &str,
        now: i64,
        idle: i64,
        max: i64,
    ) -> Result<Option<StoredSession>> {
        let mut c = self.conn()?;
        c.execute(
            "DELETE FROM console_sessions WHERE last <= $1 OR created <= $2",
            &[&(now - idle), &(now - max)],
        )
        .map_err(db)?;
        let rows = c
            .query(
                "UPDATE console_sessions SET last = $2 WHERE key = $1 RETURNING detail",
                &[&key, &now],
            )
            .map_err(db)?;
        Ok(rows
            .first()
            .and_then(|r| serde_json::from_str::<StoredSession>(r.get(0)).ok())
            .map(|mut s| {
                s.last = now;
                s
            }))
    }

    fn session_delete(&self, key: &str) -> Result<()> {
        self.conn()?
            .execute("DELETE FROM console_sessions WHERE key = $1", &[&key])
            .map_err(db)?;
        Ok(())
    }

    fn attempt(
        &self,
        key: &str,
        limit: u32,
        window: i64,
        now: i64,
    ) -> Result<std::result::Result<(), i64>> {
        let limit = limit as i32;
        let mut c = self.conn()?;
        // One statement: a fresh window starts at 1; otherwise the count grows only while it is
        // under the limit. The row lock makes concurrent attempts take their turns.
        let taken = c
            .query(
                "INSERT INTO login_attempts (key, n, since) VALUES ($1, 1, $3)
                 ON CONFLICT (key) DO UPDATE SET
                    n = CASE WHEN login_attempts.since <= $3 - $4 THEN 1 ELSE login_attempts.n + 1 END,
                    since = CASE WHEN login_attempts.since <= $3 - $4 THEN $3 ELSE login_attempts.since END
                 WHERE login_attempts.since <= $3 - $4 OR login_attempts.n < $2
                 RETURNING n",
                &[&key, &limit, &now, &window],
            )
            .map_err(db)?;
        if !taken.is_empty() {
            return Ok(Ok(()));
        }
        let since: i64 = c
            .query_one("SELECT since FROM login_attempts WHERE key = $1", &[&key])
            .map_err(db)?
            .get(0);
        Ok(Err((since + window - now).max(1)))
    }

    fn attempt_refund(&self, key: &str) -> Result<()> {
        self.conn()?
            .execute(
                "UPDATE login_attempts SET n = greatest(n - 1, 0) WHERE key = $1",
                &[&key],
            )
            .map_err(db)?;
        Ok(())
    }

    fn attempts_clear(&self, key: &str) -> Result<()> {
        self.conn()?
            .execute("DELETE FROM login_attempts WHERE key = $1", &[&key])
            .map_err(db)?;
        Ok(())
    }

    fn take_turn(&self, name: &str, every: i64, now: i64) -> Result<bool> {
        let n = self
            .conn()?
            .execute(
                "INSERT INTO turns (name, last) VALUES ($1, $2)
                 ON CONFLICT (name) DO UPDATE SET last = EXCLUDED.last WHERE turns.last <= $2 - $3",
                &[&name, &now, &every],
            )
            .map_err(db)?;
        Ok(n == 1)
    }

    fn purge(&self, r: &Retention, now: i64, actor: &str) -> Result<PurgeReport> {
        let mut rep = PurgeReport {
            time: now,
            actor: actor.to_string(),
            audit_before: now - i64::from(r.audit_days) * 86_400,
            approvals_before: now - i64::from(r.approval_days) * 86_400,
            ..PurgeReport::default()
        };
        let cut = rep.audit_before;
        let mut c = self.conn()?;
        // Whole months before the cutoff: their partitions are dropped.
        let parts: Vec<String> = c
            .query(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
                 JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'records'",
                &[],
            )
            .map_err(db)?
            .iter()
            .map(|r| r.get(0))
            .collect();
        for part in parts {
            let Some(ym) = part.strip_prefix("records_p") else {
                continue;
            };
            let (Ok(y), Ok(m)) = (
                ym.get(..4).unwrap_or("").parse::<i64>(),
                ym.get(4..).unwrap_or("").parse::<u32>(),
            ) else {
                continue;
            };
            let start = crate::timeutil::days_from_civil(y, m, 1) * 86_400;
            let (_, end, name) = month_of(start)?;
            if end > cut {
                continue;
            }
            let n: i64 = c
                .query_one(&format!("SELECT count(*) FROM records_p{name}"), &[])
                .map_err(db)?
                .get(0);
            let mut sql = String::new();
            for t in TIME_TABLES {
                sql.push_str(&format!("DROP TABLE IF EXISTS {t}_p{name};"));
            }
            sql.push_str(&format!("DROP TABLE IF EXISTS rate_counts_p{name};"));
            c.batch_execute(&sql).map_err(db)?;
            rep.records += n as u64;
            rep.partitions += 1;
        }
        // The month that straddles the cutoff: row by row (a day's worth each day; at 100
        // million records a year that outlasts the statement timeout, which is for the mail path).
        let mut tx = c.transaction().map_err(db)?;
        tx.batch_execute("SET LOCAL statement_timeout = 0")
            .map_err(db)?;
        for t in [
            "record_recipients",
            "record_attachments",
            "record_detectors",
        ] {
            tx.execute(&format!("DELETE FROM {t} WHERE time < $1"), &[&cut])
                .map_err(db)?;
        }
        rep.records += tx
            .execute("DELETE FROM records WHERE time < $1", &[&cut])
            .map_err(db)?;
        // Links that stopped working before the cut, and download tries from before it.
        tx.execute("DELETE FROM links WHERE expires < $1", &[&cut])
            .map_err(db)?;
        tx.execute("DELETE FROM link_downloads WHERE time < $1", &[&cut])
            .map_err(db)?;
        tx.execute(
            "DELETE FROM rate_counts WHERE minute < $1",
            &[&cut.div_euclid(60)],
        )
        .map_err(db)?;
        tx.execute(
            "DELETE FROM approval_events WHERE approval IN
                (SELECT id FROM approvals WHERE created < $1 AND state IN ('released', 'discarded'))",
            &[&rep.approvals_before],
        )
        .map_err(db)?;
        rep.approvals = tx
            .execute(
                "DELETE FROM approvals WHERE created < $1 AND state IN ('released', 'discarded')",
                &[&rep.approvals_before],
            )
            .map_err(db)?;
        tx.execute(
            "UPDATE evidence SET expires = created + $1 WHERE expires > created + $1",
            &[&(i64::from(r.evidence_days) * 86_400)],
        )
        .map_err(db)?;
        tx.commit().map_err(db)?;
        Ok(rep)
    }

    fn log_admin(&self, a: &AdminAction) -> Result<()> {
        self.conn()?
            .execute(
                "INSERT INTO admin_actions (time, actor, action, target, detail, client) VALUES ($1, $2, $3, $4, $5, $6)",
                &[&a.time, &a.actor, &a.action, &a.target, &a.detail, &a.client],
            )
            .map_err(db)?;
        Ok(())
    }

    fn link_add(&self, l: &links::DownloadLink) -> Result<()> {
        self.conn()?
            .execute(
                "INSERT INTO links (token_sha256, record_id, name, size, sha256, created, expires, max_downloads, downloads, failures, password, sender)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
                &[
                    &l.token_sha256,
                    &l.record_id,
                    &l.name,
                    &(l.size as i64),
                    &l.sha256,
                    &l.created,
                    &l.expires,
                    &i64::from(l.max_downloads),
                    &i64::from(l.downloads),
                    &i64::from(l.failures),
                    &l.password,
                    &l.sender,
                ],
            )
            .map_err(db)?;
        Ok(())
    }

    fn link_get(&self, token_sha256: &str) -> Result<Option<links::DownloadLink>> {
        let rows = self
            .conn()?
            .query(
                &format!("SELECT {PG_LINK_COLUMNS} FROM links WHERE token_sha256 = $1"),
                &[&token_sha256],
            )
            .map_err(db)?;
        Ok(rows.first().map(pg_link_row))
    }

    fn link_take(&self, token_sha256: &str, now: i64) -> Result<bool> {
        let n = self
            .conn()?
            .execute(
                "UPDATE links SET downloads = downloads + 1 WHERE token_sha256 = $1 AND expires > $2
                 AND (max_downloads = 0 OR downloads < max_downloads)",
                &[&token_sha256, &now],
            )
            .map_err(db)?;
        Ok(n == 1)
    }

    fn link_fail(&self, token_sha256: &str) -> Result<()> {
        self.conn()?
            .execute(
                "UPDATE links SET failures = failures + 1 WHERE token_sha256 = $1",
                &[&token_sha256],
            )
            .map_err(db)?;
        Ok(())
    }

    fn link_log(&self, e: &links::DownloadEvent) -> Result<()> {
        self.conn()?
            .execute(
                "INSERT INTO link_downloads (time, token_sha256, record_id, name, client, outcome) VALUES ($1, $2, $3, $4, $5, $6)",
                &[&e.time, &e.token_sha256, &e.record_id, &e.name, &e.client, &e.outcome],
            )
            .map_err(db)?;
        Ok(())
    }

    fn links_of(
        &self,
        record_id: i64,
    ) -> Result<(Vec<links::DownloadLink>, Vec<links::DownloadEvent>)> {
        let mut c = self.conn()?;
        let ls = c
            .query(
                &format!(
                    "SELECT {PG_LINK_COLUMNS} FROM links WHERE record_id = $1 ORDER BY created, name"
                ),
                &[&record_id],
            )
            .map_err(db)?;
        let es = c
            .query(
                "SELECT time, token_sha256, record_id, name, client, outcome FROM link_downloads
                 WHERE record_id = $1 ORDER BY id LIMIT 10000",
                &[&record_id],
            )
            .map_err(db)?;
        Ok((
            ls.iter().map(pg_link_row).collect(),
            es.iter()
                .map(|r| links::DownloadEvent {
                    time: r.get(0),
                    token_sha256: r.get(1),
                    record_id: r.get(2),
                    name: r.get(3),
                    client: r.get(4),
                    outcome: r.get(5),
                })
                .collect(),
        ))
    }

    fn admin_actions(&self, actor: Option<&str>, limit: usize) -> Result<Vec<AdminAction>> {
        let rows = self
            .conn()?
            .query(
                "SELECT time, actor, action, target, detail, client FROM admin_actions
                 WHERE $1::text IS NULL OR actor = $1 ORDER BY id DESC LIMIT $2",
                &[&actor, &(limit as i64)],
            )
            .map_err(db)?;
        Ok(rows
            .iter()
            .map(|r| AdminAction {
                time: r.get(0),
                actor: r.get(1),
                action: r.get(2),
                target: r.get(3),
                detail: r.get(4),
                client: r.get(5),
            })
            .collect())
    }

    fn log_purge(&self, rep: &PurgeReport) -> Result<()> {
        self.conn()?
            .execute(
                "INSERT INTO purges (time, detail) VALUES ($1, $2)",
                &[&rep.time, &serde_json::to_string(rep).unwrap_or_default()],
            )
            .map_err(db)?;
        Ok(())
    }

    fn purges(&self, limit: usize) -> Result<Vec<PurgeReport>> {
        let rows = self
            .conn()?
            .query(
                "SELECT detail FROM purges ORDER BY id DESC LIMIT $1",
                &[&(limit as i64)],
            )
            .map_err(db)?;
        Ok(rows
            .iter()
            .filter_map(|r| serde_json::from_str(r.get(0)).ok())
            .collect())
    }
}

/// A value of a search.
enum Param {
    Text(String),
    Int(i64),
    Ints(Vec<i64>),
    Texts(Vec<String>),
}

/// The values of one statement, numbered as they are pushed.
#[derive(Default)]
struct Args(Vec<Box<dyn ToSql + Sync>>);

impl Args {
    fn push(&mut self, v: Param) -> String {
        self.0.push(match v {
            Param::Text(t) => Box::new(t),
            Param::Int(i) => Box::new(i),
            Param::Ints(v) => Box::new(v),
            Param::Texts(v) => Box::new(v),
        });
        format!("${}", self.0.len())
    }
    fn refs(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.0.iter().map(|b| b.as_ref()).collect()
    }
}

/// Runs a statement; with `plans`, its plan (the same statement and values) first.
fn run(
    c: &mut Conn,
    sql: &str,
    args: &Args,
    plans: Option<&mut Vec<String>>,
) -> Result<Vec<postgres::Row>> {
    if let Some(p) = plans {
        p.push(sql.to_string());
        for r in c
            .query(
                &format!("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) {sql}"),
                &args.refs(),
            )
            .map_err(db)?
        {
            p.push(r.get::<_, String>(0));
        }
    }
    c.query(sql, &args.refs()).map_err(db)
}

/// What drives a search that has a side-table filter (recipient, domain, SHA-256, detector)
/// and neither a sender nor a user (those are narrower; the plain statement reads them from
/// `records`' index): the first side-table filter, from its index `(column, time, record_id)`
/// (a domain also reads the senders' domains from `records`). Its newest matches are read in
/// index order and only those records are fetched and checked against the other filters.
struct Driver {
    /// (table, column, id column) of each source of matches.
    sources: Vec<(&'static str, &'static str, &'static str)>,
    value: String,
}

impl Driver {
    fn of(q: &AuditQuery) -> Option<Driver> {
        if q.sender.is_some() || q.user.is_some() {
            return None;
        }
        let (value, table, column) = super::side_filters(q)
            .into_iter()
            .find_map(|(v, table, column)| v.map(|v| (v, table, column)))?;
        let mut sources = vec![(table, column, "record_id")];
        if column == "domain" {
            sources.push(("records", "sender_domain", "id"));
        }
        Some(Driver { sources, value })
    }

    /// Whether the side-table filter on `table.column` is this driver's own (already met).
    fn drives(&self, table: &str, column: &str) -> bool {
        self.sources[0].0 == table && self.sources[0].1 == column
    }
}

/// Most candidates one round of a driven search reads (each round reads 4 times the last).
const DRIVEN_MAX_CANDIDATES: i64 = 65_536;

/// The driven search: the newest `k` matches of the driving filter (from each source; a domain
/// has two), then the records among them that pass the other filters, by `time = ANY AND id =
/// ANY` (ids are unique, so the pairs are exact; the times prune partitions); again below the
/// last candidate, with 4 times as many, until `limit` records are found or the matches are
/// exhausted. Every statement reads one index range per partition of the window and stops at
/// its LIMIT, so the cost follows the page and the other filters' selectivity, not the table.
fn search_driven(
    c: &mut Conn,
    q: &AuditQuery,
    d: &Driver,
    mut plans: Option<&mut Vec<String>>,
) -> Result<Vec<AuditRecord>> {
    let limit = if q.limit == 0 { 1000 } else { q.limit };
    let mut k = (limit as i64 * 2).max(64);
    let mut below = (i64::MAX, i64::MAX);
    let mut out = Vec::new();
    loop {
        let mut cands: Vec<(i64, i64)> = Vec::new();
        let mut valid_from: Option<(i64, i64)> = None;
        for (table, column, id) in &d.sources {
            let mut a = Args::default();
            let sql = format!(
                "SELECT time, {id} FROM {table} WHERE {column} = {} AND time >= {} AND time < {} \
                 AND (time, {id}) < ({}, {}) ORDER BY time DESC, {id} DESC LIMIT {}",
                a.push(Param::Text(d.value.clone())),
                a.push(Param::Int(q.since.unwrap_or(i64::MIN))),
                a.push(Param::Int(q.until.unwrap_or(i64::MAX))),
                a.push(Param::Int(below.0)),
                a.push(Param::Int(below.1)),
                a.push(Param::Int(k)),
            );
            let rows = run(c, &sql, &a, plans.as_deref_mut())?;
            let got: Vec<(i64, i64)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
            if got.len() as i64 == k {
                // This source has more below its last row: the merged list is complete only
                // down to there.
                let last = got[got.len() - 1];
                valid_from = Some(valid_from.map_or(last, |v: (i64, i64)| v.max(last)));
            }
            cands.extend(got);
        }
        cands.sort_unstable_by(|a, b| b.cmp(a));
        cands.dedup();
        if let Some(v) = valid_from {
            cands.retain(|c| *c >= v);
        }
        let Some(&last) = cands.last() else {
            return Ok(out);
        };
        let mut a = Args::default();
        let (times, ids): (Vec<i64>, Vec<i64>) = cands.iter().copied().unzip();
        let sql = build_search(
            q,
            Some((a.push(Param::Ints(times)), a.push(Param::Ints(ids)))),
            &mut |v| a.push(v),
        );
        for r in run(c, &sql, &a, plans.as_deref_mut())? {
            if let Some(rec) = record_from_detail(r.get(0), r.get::<_, &str>(1)) {
                out.push(rec);
            }
        }
        if out.len() >= limit || valid_from.is_none() {
            out.truncate(limit);
            return Ok(out);
        }
        below = last;
        k = k.saturating_mul(4).min(DRIVEN_MAX_CANDIDATES);
        // Only the first round's plans are of interest.
        plans = None;
    }
}

/// The SQL of an audit search; `param` turns each value into its placeholder (or a literal).
///
/// General form (`driven` = None): searches with a sender or a user (read from `records`' index
/// in time order), or without side-table filters; side-table filters are probes per candidate
/// record (same record, same time: one partition).
///
/// Driven form (`driven` = the placeholders of the candidates' times and ids): the records
/// among the candidates that pass the other filters; the driver's own filter is already met.
fn build_search(
    q: &AuditQuery,
    driven: Option<(String, String)>,
    param: &mut dyn FnMut(Param) -> String,
) -> String {
    let mut from = String::from("records r");
    let mut sql = String::from(" WHERE true");
    let driver = if driven.is_some() {
        Driver::of(q)
    } else {
        None
    };
    if let Some((times, ids)) = &driven {
        sql.push_str(&format!(" AND r.time = ANY({times}) AND r.id = ANY({ids})"));
    }
    if let Some(u) = &q.user {
        sql.push_str(&format!(
            " AND r.\"user\" = {}",
            param(Param::Text(u.clone()))
        ));
    }
    if let Some(s) = &q.sender {
        sql.push_str(&format!(
            " AND r.sender = {}",
            param(Param::Text(s.to_lowercase()))
        ));
    }
    if let Some(a) = &q.action {
        sql.push_str(&format!(
            " AND r.action = {}",
            param(Param::Text(a.clone()))
        ));
    }
    if let Some(g) = &q.gateway {
        sql.push_str(&format!(
            " AND r.gateway = {}",
            param(Param::Text(g.clone()))
        ));
    }
    if let Some(d) = &q.departments {
        sql.push_str(&format!(
            " AND r.department = ANY({}::text[])",
            param(Param::Texts(d.clone()))
        ));
    }
    if let Some(t) = q.since {
        sql.push_str(&format!(" AND r.time >= {}", param(Param::Int(t))));
    }
    if let Some(t) = q.until {
        sql.push_str(&format!(" AND r.time < {}", param(Param::Int(t))));
    }
    for (n, (value, table, col)) in super::side_filters(q).into_iter().enumerate() {
        let Some(v) = value else { continue };
        if driver.as_ref().is_some_and(|d| d.drives(table, col)) {
            continue;
        }
        let p = param(Param::Text(v));
        // Checked per candidate record: a probe of one index range in the record's own
        // partition. Written as a LATERAL with LIMIT 1 rather than EXISTS so that the planner
        // keeps a nested loop over the candidates in time order, which stops at the LIMIT;
        // with EXISTS it may merge-join whole side tables on `time`.
        let probe = format!(
            "LATERAL (SELECT true AS hit FROM {table} x WHERE x.{col} = {p} AND x.time = r.time AND x.record_id = r.id LIMIT 1) s{n}"
        );
        if col == "domain" {
            from.push_str(&format!(" LEFT JOIN {probe} ON true"));
            sql.push_str(&format!(" AND (r.sender_domain = {p} OR s{n}.hit)"));
        } else {
            from.push_str(&format!(" CROSS JOIN {probe}"));
        }
    }
    if let Some(role) = q.recipient_role {
        let mut cond = format!("x.role = {}", param(Param::Text(role.as_str().into())));
        if let Some(a) = &q.recipient {
            cond.push_str(&format!(
                " AND x.address = {}",
                param(Param::Text(a.to_lowercase()))
            ));
        }
        from.push_str(&format!(
            " CROSS JOIN LATERAL (SELECT true AS hit FROM record_recipients x WHERE {cond} AND x.time = r.time AND x.record_id = r.id LIMIT 1) srole"
        ));
    }
    format!(
        "SELECT r.id, r.detail FROM {from}{sql} ORDER BY r.time DESC, r.id DESC LIMIT {}",
        if q.limit == 0 { 1000 } else { q.limit }
    )
}

/// Seconds since the Unix epoch of a month's start, for tests.
#[doc(hidden)]
pub fn month_start(t: i64) -> i64 {
    month_of(t).map(|m| m.0).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_and_redaction() {
        let (a, b, n) = month_of(1_796_000_000).unwrap(); // 2026-11-29
        assert_eq!(n, "202611");
        assert_eq!(crate::timeutil::rfc3339(a, 0), "2026-11-01T00:00:00Z");
        assert_eq!(crate::timeutil::rfc3339(b, 0), "2026-12-01T00:00:00Z");
        let (_, b, n) = month_of(1_798_000_000).unwrap(); // 2026-12
        assert_eq!(n, "202612");
        assert_eq!(crate::timeutil::rfc3339(b, 0), "2027-01-01T00:00:00Z");
        assert!(month_of(-1).is_err() && month_of(i64::MAX).is_err());
        assert_eq!(
            super::super::redact_url("postgres://dlp:s3cret@db:5432/dlp"),
            "postgres://dlp:***@db:5432/dlp"
        );
        assert_eq!(
            super::super::redact_url("postgres://dlp@db/dlp"),
            "postgres://dlp@db/dlp"
        );
    }
}
