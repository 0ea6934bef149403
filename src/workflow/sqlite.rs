//! The SQLite store: WAL journal, `synchronous = FULL` (a committed record survives a crash of
//! the process and of the machine), schema migrations by `user_version`, and group commit: one
//! writer thread takes every record waiting at that moment into one transaction and answers each
//! caller after the commit. Several threads and several processes may write at once (SQLite's
//! locking with a busy timeout); readers use their own connection.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::sync::Mutex;
use std::thread::JoinHandle;

use rusqlite::{params, Connection, OptionalExtension};

use super::fleet::{Agent, AgentStatus, EnrolToken, Enrolment, FleetPolicy};
use super::{
    links, AdminAction, Approval, ApprovalEvent, ApprovalState, AuditQuery, AuditRecord,
    OutboxItem, PurgeReport, Result, Retention, Stats, Store, StoredSession, WorkflowError,
};
use crate::policy::{domain_of, History, HistoryError, HistoryResult};

/// Schema migrations, applied in order; `user_version` is the number applied.
const MIGRATIONS: &[&str] = &[
    // 1: records, their recipients, attachments and findings; approvals and their events.
    "CREATE TABLE records (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        time INTEGER NOT NULL, channel TEXT NOT NULL, user TEXT, sender TEXT NOT NULL, sender_domain TEXT NOT NULL,
        subject TEXT NOT NULL, action TEXT NOT NULL, would_action TEXT NOT NULL, risk INTEGER NOT NULL,
        external INTEGER NOT NULL, size INTEGER NOT NULL, attach_bytes INTEGER NOT NULL, flags INTEGER NOT NULL,
        approval TEXT, detail TEXT NOT NULL);
     CREATE INDEX records_time ON records(time);
     CREATE INDEX records_sender ON records(sender, time, external, attach_bytes, flags);
     CREATE INDEX records_user ON records(user, time);
     CREATE INDEX records_action ON records(action, time);
     CREATE INDEX records_sender_domain ON records(sender_domain, time);
     CREATE TABLE record_recipients (record_id INTEGER NOT NULL REFERENCES records(id), address TEXT NOT NULL, domain TEXT NOT NULL,
        external INTEGER NOT NULL, time INTEGER NOT NULL);
     CREATE INDEX rr_record ON record_recipients(record_id);
     CREATE INDEX rr_address ON record_recipients(address, time);
     CREATE INDEX rr_domain ON record_recipients(domain, time, record_id);
     CREATE TABLE record_attachments (record_id INTEGER NOT NULL REFERENCES records(id), location TEXT NOT NULL, name TEXT NOT NULL,
        kind TEXT NOT NULL, size INTEGER NOT NULL, sha256 TEXT NOT NULL, depth INTEGER NOT NULL, time INTEGER NOT NULL, external INTEGER NOT NULL);
     CREATE INDEX ra_sha ON record_attachments(sha256, time, external, record_id);
     -- Rate windows: per minute, external mails and their attachment bytes per sender (kind 1),
     -- external sends per attachment SHA-256 (kind 2). Bounded look-ups for live evaluation.
     CREATE TABLE rate_counts (kind INTEGER NOT NULL, key TEXT NOT NULL, minute INTEGER NOT NULL, n INTEGER NOT NULL,
        bytes INTEGER NOT NULL, PRIMARY KEY (kind, key, minute)) WITHOUT ROWID;
     CREATE INDEX ra_record ON record_attachments(record_id);
     CREATE TABLE record_detectors (record_id INTEGER NOT NULL REFERENCES records(id), detector TEXT NOT NULL, time INTEGER NOT NULL);
     CREATE INDEX rd_detector ON record_detectors(detector, time);
     CREATE INDEX rd_record ON record_detectors(record_id);
     CREATE TABLE approvals (id TEXT PRIMARY KEY, record_id INTEGER NOT NULL, state TEXT NOT NULL, created INTEGER NOT NULL,
        expires INTEGER NOT NULL, detail TEXT NOT NULL);
     CREATE INDEX approvals_state ON approvals(state, created);
     CREATE TABLE approval_events (approval TEXT NOT NULL, time INTEGER NOT NULL, actor TEXT NOT NULL, kind TEXT NOT NULL, detail TEXT NOT NULL);
     CREATE INDEX ae_approval ON approval_events(approval, time);",
    // 2: evidence index and the alert outbox.
    "CREATE TABLE evidence (sha256 TEXT PRIMARY KEY, size INTEGER NOT NULL, created INTEGER NOT NULL, expires INTEGER NOT NULL);
     CREATE TABLE evidence_refs (sha256 TEXT NOT NULL, record_id INTEGER NOT NULL, location TEXT NOT NULL);
     CREATE INDEX er_record ON evidence_refs(record_id);
     CREATE TABLE alert_outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, sink TEXT NOT NULL, payload TEXT NOT NULL,
        attempts INTEGER NOT NULL, next_try INTEGER NOT NULL, last_error TEXT);",
    // 3: gateways, one-time link nonces enforced by the database, console sessions and sign-in
    //    attempts shared by console processes, turns (daily purge), the purge log.
    "ALTER TABLE records ADD COLUMN gateway TEXT;
     CREATE INDEX records_gateway ON records(gateway, time);
     ALTER TABLE approvals ADD COLUMN gateway TEXT;
     CREATE INDEX approvals_gateway ON approvals(gateway, state);
     CREATE UNIQUE INDEX ae_once ON approval_events(approval, kind, detail) WHERE kind = 'link_signin';
     CREATE TABLE console_sessions (key TEXT PRIMARY KEY, detail TEXT NOT NULL, created INTEGER NOT NULL, last INTEGER NOT NULL);
     CREATE TABLE login_attempts (key TEXT PRIMARY KEY, n INTEGER NOT NULL, since INTEGER NOT NULL);
     CREATE TABLE turns (name TEXT PRIMARY KEY, last INTEGER NOT NULL);
     CREATE TABLE purges (id INTEGER PRIMARY KEY AUTOINCREMENT, time INTEGER NOT NULL, detail TEXT NOT NULL);",
    // 4: the endpoint fleet: enrolment tokens and enrolled agents (`fleet`).
    "CREATE TABLE enrol_tokens (sha256 TEXT PRIMARY KEY, label TEXT NOT NULL, created INTEGER NOT NULL,
        expires INTEGER NOT NULL, created_by TEXT NOT NULL, used INTEGER, agent TEXT);
     CREATE TABLE agents (name TEXT PRIMARY KEY, secret_sha256 TEXT NOT NULL, created INTEGER NOT NULL,
        label TEXT NOT NULL, last_seen INTEGER, last_seq INTEGER NOT NULL, revoked INTEGER, status TEXT NOT NULL);
     CREATE TABLE fleet_policies (version INTEGER PRIMARY KEY AUTOINCREMENT, text TEXT NOT NULL, sha256 TEXT NOT NULL,
        created INTEGER NOT NULL, actor TEXT NOT NULL);",
    // 5: recipient roles (to, cc, bcc; NULL in records from before).
    "ALTER TABLE record_recipients ADD COLUMN role TEXT;",
    // 6: the admin log (searches, exports, views of messages and attachments, policy changes).
    "CREATE TABLE admin_actions (id INTEGER PRIMARY KEY AUTOINCREMENT, time INTEGER NOT NULL,
        actor TEXT NOT NULL, action TEXT NOT NULL, target TEXT NOT NULL, detail TEXT NOT NULL,
        client TEXT NOT NULL);
     CREATE INDEX admin_actions_actor ON admin_actions (actor, id);",
    // 7: the sender's department (from the directory) as a column, for admins limited to
    // departments; NULL in records from before.
    "ALTER TABLE records ADD COLUMN department TEXT;
     CREATE INDEX records_department ON records (department, time);",
    // 8: download links that replaced attachments, and every download attempt.
    "CREATE TABLE links (token_sha256 TEXT PRIMARY KEY, record_id INTEGER NOT NULL, name TEXT NOT NULL,
        size INTEGER NOT NULL, sha256 TEXT NOT NULL, created INTEGER NOT NULL, expires INTEGER NOT NULL,
        max_downloads INTEGER NOT NULL, downloads INTEGER NOT NULL, failures INTEGER NOT NULL,
        password TEXT, sender TEXT NOT NULL);
     CREATE INDEX links_record ON links (record_id);
     CREATE TABLE link_downloads (id INTEGER PRIMARY KEY AUTOINCREMENT, time INTEGER NOT NULL,
        token_sha256 TEXT NOT NULL, record_id INTEGER NOT NULL, name TEXT NOT NULL, client TEXT NOT NULL,
        outcome TEXT NOT NULL);
     CREATE INDEX link_downloads_record ON link_downloads (record_id, id);",
];

/// The columns [`link_row`] reads.
const LINK_COLUMNS: &str = "token_sha256, record_id, name, size, sha256, created, expires, max_downloads, downloads, failures, password, sender";

fn link_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<links::DownloadLink> {
    Ok(links::DownloadLink {
        token_sha256: r.get(0)?,
        record_id: r.get(1)?,
        name: r.get(2)?,
        size: r.get::<_, i64>(3)?.max(0) as u64,
        sha256: r.get(4)?,
        created: r.get(5)?,
        expires: r.get(6)?,
        max_downloads: r.get(7)?,
        downloads: r.get(8)?,
        failures: r.get(9)?,
        password: r.get(10)?,
        sender: r.get(11)?,
    })
}

/// The schema version this program writes (the number of [`MIGRATIONS`]).
pub const SCHEMA_VERSION: usize = MIGRATIONS.len();

/// Runs SQL on a database file (tests that write rows the way an earlier version did).
#[doc(hidden)]
pub fn execute_raw(path: &Path, sql: &str) -> Result<()> {
    connect(path)?.execute_batch(sql)?;
    Ok(())
}

/// Applies the first `n` migrations only (tests of upgrades from an earlier version).
#[doc(hidden)]
pub fn create_at_version(path: &Path, n: usize) -> Result<()> {
    let mut c = connect(path)?;
    let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    for (i, m) in MIGRATIONS.iter().enumerate().take(n) {
        tx.execute_batch(m)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
    }
    tx.commit()?;
    Ok(())
}

fn connect(path: &Path) -> Result<Connection> {
    let c = Connection::open(path)
        .map_err(|e| WorkflowError::Db(format!("{}: {e}", path.display())))?;
    c.busy_timeout(std::time::Duration::from_secs(30))?;
    // Switching a new database to WAL takes an exclusive lock, and SQLite answers "database is
    // locked" at once (without the busy handler) when another process is opening it too.
    let start = std::time::Instant::now();
    loop {
        match c.pragma_update(None, "journal_mode", "WAL") {
            Ok(()) => break,
            Err(rusqlite::Error::SqliteFailure(e, _))
                if matches!(
                    e.code,
                    rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
                ) && start.elapsed() < std::time::Duration::from_secs(30) =>
            {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Err(e) => return Err(WorkflowError::Db(format!("{}: {e}", path.display()))),
        }
    }
    c.pragma_update(None, "synchronous", "FULL")?;
    c.pragma_update(None, "foreign_keys", "ON")?;
    Ok(c)
}

fn migrate(c: &mut Connection) -> Result<()> {
    let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let version: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version as usize > MIGRATIONS.len() {
        return Err(WorkflowError::Db(format!(
            "the database has schema version {version}, newer than this program ({})",
            MIGRATIONS.len()
        )));
    }
    for (i, m) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        tx.execute_batch(m)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
    }
    tx.commit()?;
    Ok(())
}

type Job = (AuditRecord, SyncSender<Result<i64>>);

/// The SQLite store.
pub struct SqliteStore {
    path: PathBuf,
    reader: Mutex<Connection>,
    writer: Mutex<Option<Sender<Job>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
    frequent: super::FrequentCache,
}

impl SqliteStore {
    /// Opens (creating and migrating) the database at `path`.
    pub fn open(path: &Path) -> Result<SqliteStore> {
        let mut c = connect(path)?;
        migrate(&mut c)?;
        let (tx, rx) = mpsc::channel::<Job>();
        let wpath = path.to_path_buf();
        let writer = connect(&wpath)?;
        let thread = std::thread::Builder::new()
            .name("ping32dlp-audit-writer".into())
            .spawn(move || writer_loop(writer, rx))
            .map_err(|e| WorkflowError::Io(e.to_string()))?;
        Ok(SqliteStore {
            path: path.to_path_buf(),
            reader: Mutex::new(c),
            frequent: Default::default(),
            writer: Mutex::new(Some(tx)),
            thread: Mutex::new(Some(thread)),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Stores many records in one transaction (imports, generated histories); returns their
    /// ids. Live traffic goes through [`Store::record`], which commits in groups by itself.
    pub fn insert_batch(&self, recs: &[AuditRecord]) -> Result<Vec<i64>> {
        let mut c = self
            .reader
            .lock()
            .map_err(|_| WorkflowError::Db("reader lock poisoned".into()))?;
        let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let ids = recs
            .iter()
            .map(|r| insert_record(&tx, r))
            .collect::<rusqlite::Result<Vec<_>>>()?;
        tx.commit()?;
        Ok(ids)
    }

    /// Up to `limit` records with ids above `after`, in id order, with their ids (an agent's
    /// forwarder: local ids never go back, `AUTOINCREMENT`).
    pub fn records_after(&self, after: i64, limit: usize) -> Result<Vec<(i64, AuditRecord)>> {
        let rows: Vec<(i64, String)> = self.with(|c| {
            let mut st = c.prepare_cached(
                "SELECT id, detail FROM records WHERE id > ?1 ORDER BY id LIMIT ?2",
            )?;
            let rows =
                st.query_map(params![after, limit as i64], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect()
        })?;
        Ok(rows
            .into_iter()
            .filter_map(|(id, d)| record_from_detail(id, &d).map(|r| (id, r)))
            .collect())
    }

    /// Requests released or discarded here that the fleet server has not been told about
    /// (no `reported_closed` event yet): an agent's forwarder reports them.
    pub fn closed_unreported(&self, limit: usize) -> Result<Vec<Approval>> {
        self.with(|c| {
            let mut st = c.prepare_cached(
                "SELECT a.id, a.detail, a.state FROM approvals a WHERE a.state IN ('released', 'discarded')
                 AND NOT EXISTS (SELECT 1 FROM approval_events e WHERE e.approval = a.id AND e.kind = 'reported_closed')
                 ORDER BY a.created LIMIT ?1",
            )?;
            let rows = st.query_map([limit as i64], approval_row)?;
            rows.collect()
        })
    }

    /// How many records have ids above `after`.
    pub fn count_after(&self, after: i64) -> Result<u64> {
        self.with(|c| {
            c.query_row("SELECT count(*) FROM records WHERE id > ?1", [after], |r| {
                r.get::<_, i64>(0)
            })
        })
        .map(|n| n.max(0) as u64)
    }

    /// Updates the query planner's statistics (after a large import).
    pub fn analyze(&self) -> Result<()> {
        self.with(|c| c.execute_batch("ANALYZE"))
    }

    fn with<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T> {
        let c = self
            .reader
            .lock()
            .map_err(|_| WorkflowError::Db("reader lock poisoned".into()))?;
        f(&c).map_err(Into::into)
    }
}

impl Drop for SqliteStore {
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

/// Group commit: everything queued when a transaction starts goes into it.
fn writer_loop(mut c: Connection, rx: Receiver<Job>) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < 512 {
            match rx.try_recv() {
                Ok(j) => batch.push(j),
                Err(_) => break,
            }
        }
        let result = (|| -> rusqlite::Result<Vec<i64>> {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let mut ids = Vec::with_capacity(batch.len());
            for (rec, _) in &batch {
                ids.push(insert_record(&tx, rec)?);
            }
            tx.commit()?;
            Ok(ids)
        })();
        match result {
            Ok(ids) => {
                for ((_, reply), id) in batch.into_iter().zip(ids) {
                    let _ = reply.send(Ok(id));
                }
            }
            Err(e) => {
                for (_, reply) in batch {
                    let _ = reply.send(Err(WorkflowError::Db(e.to_string())));
                }
            }
        }
    }
}

fn insert_record(tx: &rusqlite::Transaction<'_>, rec: &AuditRecord) -> rusqlite::Result<i64> {
    let detail = serde_json::to_string(rec).unwrap_or_default();
    let external = rec.external();
    let attach_bytes: i64 = rec
        .attachments
        .iter()
        .filter(|a| a.depth == 0)
        .map(|a| a.size as i64)
        .sum();
    let flags = i64::from(rec.unscannable.iter().any(|(_, r, _)| r == "encrypted"))
        * FLAG_ENCRYPTED
        + i64::from(rec.password_candidates > 0) * FLAG_PASSWORD;
    tx.prepare_cached(
        "INSERT INTO records (time, channel, user, sender, sender_domain, subject, action, would_action, risk, external, size, approval, detail,
         attach_bytes, flags, gateway, department) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)",
    )?
    .execute(params![rec.time, rec.channel, rec.user, rec.sender, domain_of(&rec.sender), rec.subject, rec.action, rec.would_action, rec.risk, external, rec.size as i64, rec.approval, detail, attach_bytes, flags, rec.gateway, rec.department],
    )?;
    let id = tx.last_insert_rowid();
    {
        let mut st = tx.prepare_cached("INSERT INTO record_recipients (record_id, address, domain, external, time, role) VALUES (?1, ?2, ?3, ?4, ?5, ?6)")?;
        for r in &rec.recipients {
            st.execute(params![
                id,
                r.address,
                domain_of(&r.address),
                r.external,
                rec.time,
                r.role.map(|x| x.as_str())
            ])?;
        }
    }
    {
        let mut st = tx.prepare_cached("INSERT INTO record_attachments (record_id, location, name, kind, size, sha256, depth, time, external) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)")?;
        for a in &rec.attachments {
            st.execute(params![
                id,
                a.location,
                a.name,
                a.kind,
                a.size as i64,
                a.sha256,
                a.depth,
                rec.time,
                external
            ])?;
        }
    }
    {
        let mut st = tx.prepare_cached(
            "INSERT INTO record_detectors (record_id, detector, time) VALUES (?1, ?2, ?3)",
        )?;
        for f in rec.findings.iter().filter(|f| f.location == "*") {
            st.execute(params![id, f.detector, rec.time])?;
        }
    }
    if external {
        let mut st = tx.prepare_cached(
            "INSERT INTO rate_counts (kind, key, minute, n, bytes) VALUES (?1, ?2, ?3, 1, ?4)
             ON CONFLICT (kind, key, minute) DO UPDATE SET n = n + 1, bytes = bytes + ?4",
        )?;
        let minute = rec.time.div_euclid(60);
        st.execute(params![RATE_SENDER, rec.sender, minute, attach_bytes])?;
        let shas: std::collections::BTreeSet<&str> = rec
            .attachments
            .iter()
            .map(|a| a.sha256.as_str())
            .filter(|s| !s.is_empty())
            .collect();
        for sha in shas {
            st.execute(params![RATE_SHA, sha, minute, 0])?;
        }
    }
    Ok(id)
}

const FLAG_ENCRYPTED: i64 = 1;
const FLAG_PASSWORD: i64 = 2;
const RATE_SENDER: i64 = 1;
const RATE_SHA: i64 = 2;

fn record_from_detail(id: i64, detail: &str) -> Option<AuditRecord> {
    let mut r: AuditRecord = serde_json::from_str(detail).ok()?;
    r.id = id;
    Some(r)
}

/// One approval row (the store's `insert_approval`, and the requests of an agent's upload
/// inside its transaction).
fn insert_approval(c: &Connection, a: &Approval) -> rusqlite::Result<()> {
    let detail = serde_json::to_string(a).unwrap_or_default();
    c.execute(
        "INSERT INTO approvals (id, record_id, state, created, expires, detail, gateway) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![a.id, a.record_id, a.state.as_str(), a.created, a.expires, detail, a.gateway],
    )
    .map(|_| ())
}

const AGENT_COLS: &str =
    "name, secret_sha256, created, label, last_seen, last_seq, revoked, status";

fn agent_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Agent> {
    let status: String = r.get(7)?;
    Ok(Agent {
        name: r.get(0)?,
        secret_sha256: r.get(1)?,
        created: r.get(2)?,
        label: r.get(3)?,
        last_seen: r.get(4)?,
        last_seq: r.get(5)?,
        revoked: r.get(6)?,
        status: serde_json::from_str(&status).unwrap_or_default(),
    })
}

fn approval_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Approval> {
    let detail: String = r.get(1)?;
    let state: String = r.get(2)?;
    let mut a: Approval = serde_json::from_str(&detail).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(1, rusqlite::types::Type::Text, Box::new(e))
    })?;
    a.state = ApprovalState::parse(&state).unwrap_or(a.state);
    Ok(a)
}

fn hist(e: rusqlite::Error) -> HistoryError {
    HistoryError(e.to_string())
}

fn hist_w(e: WorkflowError) -> HistoryError {
    HistoryError(e.to_string())
}

impl History for SqliteStore {
    fn frequent_domains(
        &self,
        since: i64,
        until: i64,
        min_mails: u64,
        limit: usize,
    ) -> HistoryResult<Vec<String>> {
        self.frequent.get(until, || {
            self.with(|c| {
                let mut st = c.prepare_cached(
                    "SELECT domain FROM record_recipients WHERE external = 1 AND time >= ?1 AND time <= ?2
                     GROUP BY domain HAVING COUNT(DISTINCT record_id) >= ?3
                     ORDER BY COUNT(DISTINCT record_id) DESC, domain LIMIT ?4",
                )?;
                let rows = st.query_map(
                    params![since, until, min_mails as i64, limit as i64],
                    |r| r.get::<_, String>(0),
                )?;
                rows.collect()
            })
            .map_err(hist_w)
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

impl SqliteStore {
    fn history_at(&self, before: i64) -> HistoryAt<'_> {
        HistoryAt { s: self, before }
    }
}

/// The history as it was before a record (replay, `before` = its id), or now (`i64::MAX`):
/// then the rate windows come from the per-minute counters (bounded work however busy a sender
/// or a file is; windows start on a minute boundary), else from exact queries over the records.
struct HistoryAt<'a> {
    s: &'a SqliteStore,
    before: i64,
}

impl HistoryAt<'_> {
    fn live(&self) -> bool {
        self.before == i64::MAX
    }

    fn rate(&self, kind: i64, key: &str, since: i64, until: i64) -> HistoryResult<(u64, u64)> {
        self.s
            .with(|c| {
                c.prepare_cached("SELECT coalesce(sum(n), 0), coalesce(sum(bytes), 0) FROM rate_counts WHERE kind = ?1 AND key = ?2 AND minute >= ?3 AND minute <= ?4")?
                    .query_row(params![kind, key, since.div_euclid(60), until.div_euclid(60)], |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64)))
            })
            .map_err(hist_w)
    }
}

impl History for HistoryAt<'_> {
    fn sent_to_before(&self, sender: &str, address: &str, until: i64) -> HistoryResult<bool> {
        self.s
            .with(|c| {
                c.prepare_cached(
                    "SELECT 1 FROM record_recipients x JOIN records r ON r.id = x.record_id
                     WHERE x.address = ?1 AND x.time <= ?3 AND x.record_id < ?4 AND r.sender = ?2 LIMIT 1",
                )?
                .query_row(
                    params![address.to_ascii_lowercase(), sender.to_ascii_lowercase(), until, self.before],
                    |_| Ok(()),
                )
                .optional()
            })
            .map(|o| o.is_some())
            .map_err(hist_w)
    }

    fn domain_seen(&self, domain: &str, until: i64) -> HistoryResult<bool> {
        self.s
            .with(|c| {
                c.prepare_cached(
                    "SELECT 1 FROM record_recipients WHERE domain = ?1 AND time <= ?3 AND record_id < ?2 LIMIT 1",
                )?
                .query_row(params![domain, self.before, until], |_| Ok(()))
                .optional()
            })
            .map(|o| o.is_some())
            .map_err(hist_w)
    }

    fn external_sends_of(&self, sha256: &str, since: i64, until: i64) -> HistoryResult<u64> {
        if self.live() {
            return Ok(self.rate(RATE_SHA, sha256, since, until)?.0);
        }
        self.s
            .with(|c| {
                c.prepare_cached(
                    "SELECT count(DISTINCT record_id) FROM record_attachments
                     WHERE sha256 = ?1 AND time >= ?2 AND time <= ?3 AND external = 1 AND record_id < ?4",
                )?
                .query_row(params![sha256, since, until, self.before], |r| r.get::<_, i64>(0))
            })
            .map(|n| n as u64)
            .map_err(hist_w)
    }

    fn sender_external(&self, sender: &str, since: i64, until: i64) -> HistoryResult<(u64, u64)> {
        if self.live() {
            return self.rate(RATE_SENDER, sender, since, until);
        }
        self.s
            .with(|c| {
                c.prepare_cached(
                    "SELECT count(*), coalesce(sum(attach_bytes), 0) FROM records
                     WHERE sender = ?1 AND time >= ?2 AND time <= ?3 AND external = 1 AND id < ?4",
                )?
                .query_row(params![sender, since, until, self.before], |r| {
                    Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64))
                })
            })
            .map_err(hist_w)
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
        let c = self
            .s
            .reader
            .lock()
            .map_err(|_| HistoryError("reader lock poisoned".into()))?;
        let ids: Vec<i64> = c
            .prepare_cached(
                "SELECT id FROM records WHERE sender = ?1 AND time >= ?2 AND time <= ?3 AND external = 1 AND id < ?4
                 AND (flags & ?5) != 0 ORDER BY time DESC, id DESC LIMIT 20",
            )
            .map_err(hist)?
            .query_map(params![sender, since, until, self.before, flag], |r| r.get(0))
            .map_err(hist)?
            .collect::<rusqlite::Result<_>>()
            .map_err(hist)?;
        let mut st = c
            .prepare_cached("SELECT address FROM record_recipients WHERE record_id = ?1")
            .map_err(hist)?;
        for id in ids {
            let theirs: Vec<String> = st
                .query_map([id], |r| r.get(0))
                .map_err(hist)?
                .collect::<rusqlite::Result<_>>()
                .map_err(hist)?;
            if recipients.iter().all(|x| theirs.iter().any(|t| t == x)) {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

impl Store for SqliteStore {
    fn history_before(&self, record_id: i64) -> Box<dyn History + '_> {
        Box::new(self.history_at(record_id))
    }

    fn record(&self, rec: &AuditRecord) -> Result<i64> {
        let (tx, rx) = mpsc::sync_channel(1);
        {
            let w = self
                .writer
                .lock()
                .map_err(|_| WorkflowError::Db("writer lock poisoned".into()))?;
            w.as_ref()
                .ok_or_else(|| WorkflowError::Db("store closed".into()))?
                .send((rec.clone(), tx))
                .map_err(|_| WorkflowError::Db("audit writer stopped".into()))?;
        }
        rx.recv()
            .map_err(|_| WorkflowError::Db("audit writer stopped".into()))?
    }

    fn set_record_approval(&self, record_id: i64, approval: &str) -> Result<()> {
        self.with(|c| {
            c.execute(
                "UPDATE records SET approval = ?2 WHERE id = ?1",
                params![record_id, approval],
            )
            .map(|_| ())
        })
    }

    fn get_record(&self, id: i64) -> Result<Option<AuditRecord>> {
        let d: Option<String> = self.with(|c| {
            c.query_row("SELECT detail FROM records WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .optional()
        })?;
        Ok(d.and_then(|d| record_from_detail(id, &d)))
    }

    fn search(&self, q: &AuditQuery) -> Result<Vec<AuditRecord>> {
        let mut sql = String::from("SELECT r.id, r.detail FROM records r WHERE 1 = 1");
        let mut args: Vec<rusqlite::types::Value> = Vec::new();
        let mut arg = |sql: &mut String, clause: &str, v: rusqlite::types::Value| {
            args.push(v);
            sql.push_str(&clause.replace('?', &format!("?{}", args.len())));
        };
        if let Some(u) = &q.user {
            arg(&mut sql, " AND r.user = ?", u.clone().into());
        }
        if let Some(s) = &q.sender {
            arg(&mut sql, " AND r.sender = ?", s.to_lowercase().into());
        }
        if let Some(a) = &q.action {
            arg(&mut sql, " AND r.action = ?", a.clone().into());
        }
        if let Some(g) = &q.gateway {
            arg(&mut sql, " AND r.gateway = ?", g.clone().into());
        }
        if let Some(ds) = &q.departments {
            // `IN ()` is not SQL: no department matches nothing.
            sql.push_str(" AND (0 = 1");
            for d in ds {
                arg(&mut sql, " OR r.department = ?", d.clone().into());
            }
            sql.push(')');
        }
        if let Some(t) = q.since {
            arg(&mut sql, " AND r.time >= ?", t.into());
        }
        if let Some(t) = q.until {
            arg(&mut sql, " AND r.time < ?", t.into());
        }
        // Side-table filters. The first one drives the query (`id IN` its matches, time-bounded)
        // unless a sender or user already narrows it; the rest are checked per candidate row.
        let mut bounds = String::new();
        if let Some(t) = q.since {
            bounds.push_str(&format!(" AND time >= {t}"));
        }
        if let Some(t) = q.until {
            bounds.push_str(&format!(" AND time < {t}"));
        }
        let mut driving = q.user.is_none() && q.sender.is_none() && q.gateway.is_none();
        let side = super::side_filters(q);
        for (value, table, col) in side {
            let Some(v) = value else { continue };
            let test = if driving {
                format!("r.id IN (SELECT record_id FROM {table} WHERE {col} = ?{bounds})")
            } else {
                format!("EXISTS (SELECT 1 FROM {table} x WHERE x.record_id = r.id AND x.{col} = ?)")
            };
            driving = false;
            if col == "domain" {
                arg(
                    &mut sql,
                    &format!(" AND (r.sender_domain = ? OR {test})"),
                    v.into(),
                );
            } else {
                arg(&mut sql, &format!(" AND {test}"), v.into());
            }
        }
        // A role: of the recipient searched for, or of any recipient (checked per candidate).
        if let Some(role) = q.recipient_role {
            arg(
                &mut sql,
                " AND EXISTS (SELECT 1 FROM record_recipients x WHERE x.record_id = r.id AND x.role = ?",
                role.as_str().to_string().into(),
            );
            if let Some(a) = &q.recipient {
                arg(&mut sql, " AND x.address = ?", a.to_lowercase().into());
            }
            sql.push(')');
        }
        sql.push_str(&format!(
            " ORDER BY r.time DESC, r.id DESC LIMIT {}",
            if q.limit == 0 { 1000 } else { q.limit }
        ));
        self.with(|c| {
            let mut st = c.prepare(&sql)?;
            let rows = st.query_map(rusqlite::params_from_iter(args.iter()), |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (id, d) = row?;
                if let Some(rec) = record_from_detail(id, &d) {
                    out.push(rec);
                }
            }
            Ok(out)
        })
    }

    fn stats(
        &self,
        since: i64,
        until: i64,
        off: i32,
        top: usize,
        gateway: Option<&str>,
    ) -> Result<Stats> {
        let off_s = i64::from(off) * 60;
        let top = top.max(1) as i64;
        self.with(|c| {
            let mut s = Stats::default();
            let mut st = c.prepare("SELECT (time + ?3) / 86400 AS d, count(*), sum(external) FROM records WHERE time >= ?1 AND time < ?2 AND (?4 IS NULL OR gateway = ?4) GROUP BY d ORDER BY d")?;
            for row in st.query_map(params![since, until, off_s, gateway], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?, r.get::<_, i64>(2)?)))? {
                let (d, n, e) = row?;
                let (y, m, dd) = crate::timeutil::civil(d);
                s.per_day.push((format!("{y:04}-{m:02}-{dd:02}"), n as u64, e as u64));
            }
            let mut st = c.prepare("SELECT action, count(*) FROM records WHERE time >= ?1 AND time < ?2 AND (?3 IS NULL OR gateway = ?3) GROUP BY action ORDER BY 2 DESC")?;
            for row in st.query_map(params![since, until, gateway], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))? {
                let (a, n) = row?;
                s.per_action.push((a, n as u64));
            }
            let mut st = c.prepare("SELECT sender, count(*) FROM records WHERE time >= ?1 AND time < ?2 AND external = 1 AND (?4 IS NULL OR gateway = ?4) GROUP BY sender ORDER BY 2 DESC LIMIT ?3")?;
            for row in st.query_map(params![since, until, top, gateway], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))? {
                let (a, n) = row?;
                s.top_senders.push((a, n as u64));
            }
            let mut st = c.prepare(
                "SELECT rr.domain, count(DISTINCT rr.record_id) FROM record_recipients rr JOIN records r ON r.id = rr.record_id
                 WHERE r.time >= ?1 AND r.time < ?2 AND rr.external = 1 AND (?4 IS NULL OR r.gateway = ?4) GROUP BY rr.domain ORDER BY 2 DESC LIMIT ?3",
            )?;
            for row in st.query_map(params![since, until, top, gateway], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))? {
                let (a, n) = row?;
                s.top_domains.push((a, n as u64));
            }
            let mut st = c.prepare("SELECT detector, count(*) FROM record_detectors WHERE time >= ?1 AND time < ?2
                AND (?4 IS NULL OR record_id IN (SELECT id FROM records WHERE gateway = ?4 AND time >= ?1 AND time < ?2)) GROUP BY detector ORDER BY 2 DESC LIMIT ?3")?;
            for row in st.query_map(params![since, until, top, gateway], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))? {
                let (a, n) = row?;
                s.top_detectors.push((a, n as u64));
            }
            let mut st = c.prepare(
                "SELECT sha256, min(name), count(DISTINCT record_id) FROM record_attachments WHERE time >= ?1 AND time < ?2 AND external = 1
                 AND depth = 0 AND sha256 != '' AND (?4 IS NULL OR record_id IN (SELECT id FROM records WHERE gateway = ?4 AND time >= ?1 AND time < ?2))
                 GROUP BY sha256 HAVING count(DISTINCT record_id) > 1 ORDER BY 3 DESC LIMIT ?3",
            )?;
            for row in st.query_map(params![since, until, top, gateway], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, i64>(2)?)))? {
                let (h, n, k) = row?;
                s.repeated_files.push((h, n, k as u64));
            }
            Ok(s)
        })
    }

    fn each_record(&self, since: i64, f: &mut dyn FnMut(AuditRecord)) -> Result<()> {
        // Pages of 500, the connection released in between: the callback may query the store.
        let mut after: (i64, i64) = (since, i64::MIN);
        loop {
            let page: Vec<(i64, i64, String)> = self.with(|c| {
                let mut st = c.prepare_cached(
                    "SELECT id, time, detail FROM records WHERE time >= ?1 AND (time > ?1 OR id > ?2) ORDER BY time, id LIMIT 500",
                )?;
                let rows = st.query_map(params![after.0, after.1], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
                rows.collect()
            })?;
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
        self.with(|c| insert_approval(c, a))
    }

    fn approval(&self, id: &str) -> Result<Option<Approval>> {
        self.with(|c| {
            c.query_row(
                "SELECT id, detail, state FROM approvals WHERE id = ?1",
                [id],
                approval_row,
            )
            .optional()
        })
    }

    fn approvals(
        &self,
        state: Option<ApprovalState>,
        approver: Option<&str>,
    ) -> Result<Vec<Approval>> {
        let mut out = self.with(|c| {
            let mut st = c.prepare("SELECT id, detail, state FROM approvals WHERE (?1 IS NULL OR state = ?1) ORDER BY created DESC")?;
            let rows = st.query_map([state.map(ApprovalState::as_str)], approval_row)?;
            rows.collect::<rusqlite::Result<Vec<_>>>()
        })?;
        if let Some(who) = approver {
            out.retain(|a| {
                a.approvers.is_empty() || a.approvers.iter().any(|x| x.eq_ignore_ascii_case(who))
            });
        }
        Ok(out)
    }

    fn transition(&self, a: &Approval, from: ApprovalState) -> Result<bool> {
        let detail = serde_json::to_string(a).unwrap_or_default();
        self.with(|c| {
            c.execute(
                "UPDATE approvals SET state = ?2, detail = ?3 WHERE id = ?1 AND state = ?4",
                params![a.id, a.state.as_str(), detail, from.as_str()],
            )
            .map(|n| n == 1)
        })
    }

    fn add_event(&self, approval: &str, e: &ApprovalEvent) -> Result<()> {
        self.with(|c| {
            c.execute("INSERT INTO approval_events (approval, time, actor, kind, detail) VALUES (?1, ?2, ?3, ?4, ?5)", params![approval, e.time, e.actor, e.kind, e.detail])
                .map(|_| ())
        })
    }

    fn events(&self, approval: &str) -> Result<Vec<ApprovalEvent>> {
        self.with(|c| {
            let mut st = c.prepare("SELECT time, actor, kind, detail FROM approval_events WHERE approval = ?1 ORDER BY time, rowid")?;
            let rows = st.query_map([approval], |r| Ok(ApprovalEvent { time: r.get(0)?, actor: r.get(1)?, kind: r.get(2)?, detail: r.get(3)? }))?;
            rows.collect()
        })
    }

    fn add_evidence(
        &self,
        sha256: &str,
        size: u64,
        expires: i64,
        record_id: i64,
        location: &str,
    ) -> Result<()> {
        self.with(|c| {
            c.execute(
                "INSERT INTO evidence (sha256, size, created, expires) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(sha256) DO UPDATE SET expires = max(expires, ?4)",
                params![sha256, size as i64, crate::timeutil::now(), expires],
            )?;
            c.execute(
                "INSERT INTO evidence_refs (sha256, record_id, location) VALUES (?1, ?2, ?3)",
                params![sha256, record_id, location],
            )?;
            Ok(())
        })
    }

    fn evidence_of(&self, record_id: i64) -> Result<Vec<(String, String)>> {
        self.with(|c| {
            let mut st = c.prepare("SELECT location, sha256 FROM evidence_refs WHERE record_id = ?1 AND sha256 IN (SELECT sha256 FROM evidence) ORDER BY rowid")?;
            let rows = st.query_map([record_id], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect()
        })
    }

    fn expired_evidence(&self, now: i64) -> Result<Vec<String>> {
        self.with(|c| {
            let mut st = c.prepare("SELECT sha256 FROM evidence WHERE expires < ?1")?;
            let rows = st.query_map([now], |r| r.get(0))?;
            rows.collect()
        })
    }

    fn forget_evidence(&self, sha256: &str) -> Result<()> {
        self.with(|c| {
            c.execute("DELETE FROM evidence WHERE sha256 = ?1", [sha256])?;
            c.execute("DELETE FROM evidence_refs WHERE sha256 = ?1", [sha256])
                .map(|_| ())
        })
    }

    fn outbox_push(&self, sink: &str, payload: &str, next_try: i64) -> Result<i64> {
        self.with(|c| {
            c.execute("INSERT INTO alert_outbox (sink, payload, attempts, next_try) VALUES (?1, ?2, 0, ?3)", params![sink, payload, next_try])?;
            Ok(c.last_insert_rowid())
        })
    }

    fn outbox_claim(&self, now: i64, lease: i64, limit: usize) -> Result<Vec<OutboxItem>> {
        let mut c = self
            .reader
            .lock()
            .map_err(|_| WorkflowError::Db("reader lock poisoned".into()))?;
        let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let items = {
            let mut st = tx.prepare("SELECT id, sink, payload, attempts FROM alert_outbox WHERE next_try >= 0 AND next_try <= ?1 ORDER BY id LIMIT ?2")?;
            let rows = st.query_map(params![now, limit as i64], |r| {
                Ok(OutboxItem {
                    id: r.get(0)?,
                    sink: r.get(1)?,
                    payload: r.get(2)?,
                    attempts: r.get(3)?,
                })
            })?;
            rows.collect::<rusqlite::Result<Vec<_>>>()?
        };
        for it in &items {
            tx.execute(
                "UPDATE alert_outbox SET next_try = ?2 WHERE id = ?1",
                params![it.id, now + lease],
            )?;
        }
        tx.commit()?;
        Ok(items)
    }

    fn outbox_done(&self, id: i64) -> Result<()> {
        self.with(|c| {
            c.execute("DELETE FROM alert_outbox WHERE id = ?1", [id])
                .map(|_| ())
        })
    }

    fn outbox_retry(&self, id: i64, attempts: u32, next_try: i64, error: &str) -> Result<()> {
        self.with(|c| c.execute("UPDATE alert_outbox SET attempts = ?2, next_try = ?3, last_error = ?4 WHERE id = ?1", params![id, attempts, next_try, error]).map(|_| ()))
    }

    fn outbox_counts(&self) -> Result<(u64, u64)> {
        self.with(|c| {
            c.query_row("SELECT coalesce(sum(next_try >= 0), 0), coalesce(sum(next_try < 0), 0) FROM alert_outbox", [], |r| {
                Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64))
            })
        })
    }

    fn backend(&self) -> &'static str {
        "sqlite"
    }

    fn count_pending(&self, gateway: Option<&str>) -> Result<u64> {
        self.with(|c| {
            c.query_row(
                "SELECT COUNT(*) FROM approvals WHERE state = 'pending'
                 AND (?1 IS NULL OR gateway IS NULL OR gateway = ?1)",
                [gateway],
                |r| r.get::<_, i64>(0),
            )
        })
        .map(|n| n.max(0) as u64)
    }

    fn approvals_to_carry_out(&self, gateway: &str) -> Result<Vec<Approval>> {
        self.with(|c| {
            let mut st = c.prepare_cached(
                "SELECT id, detail, state FROM approvals WHERE gateway = ?1 AND state IN ('approved', 'rejected', 'expired') ORDER BY created",
            )?;
            let rows = st.query_map([gateway], approval_row)?;
            rows.collect()
        })
    }

    fn add_event_once(&self, approval: &str, e: &ApprovalEvent) -> Result<bool> {
        self.with(|c| {
            c.execute(
                "INSERT INTO approval_events (approval, time, actor, kind, detail) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT DO NOTHING",
                params![approval, e.time, e.actor, e.kind, e.detail],
            )
            .map(|n| n == 1)
        })
    }

    fn secret(&self, name: &str) -> Result<[u8; 32]> {
        // The key file beside the database (made by earlier versions too: tokens they signed
        // still verify).
        let dir = self.path.parent().unwrap_or(Path::new("."));
        super::load_key(&dir.join(format!("{name}.key")))
    }

    fn session_put(&self, key: &str, s: &StoredSession) -> Result<()> {
        let detail = serde_json::to_string(s).unwrap_or_default();
        self.with(|c| {
            c.execute(
                "INSERT INTO console_sessions (key, detail, created, last) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (key) DO UPDATE SET detail = ?2, created = ?3, last = ?4",
                params![key, detail, s.created, s.last],
            )
            .map(|_| ())
        })
    }

    fn session_get(
        &self,
        key: &str,
        now: i64,
        idle: i64,
        max: i64,
    ) -> Result<Option<StoredSession>> {
        self.with(|c| {
            c.execute(
                "DELETE FROM console_sessions WHERE last <= ?1 OR created <= ?2",
                params![now - idle, now - max],
            )?;
            let d: Option<String> = c
                .query_row(
                    "UPDATE console_sessions SET last = ?2 WHERE key = ?1 RETURNING detail",
                    params![key, now],
                    |r| r.get(0),
                )
                .optional()?;
            Ok(
                d.and_then(|d| serde_json::from_str::<StoredSession>(&d).ok())
                    .map(|mut s| {
                        s.last = now;
                        s
                    }),
            )
        })
    }

    fn session_delete(&self, key: &str) -> Result<()> {
        self.with(|c| {
            c.execute("DELETE FROM console_sessions WHERE key = ?1", [key])
                .map(|_| ())
        })
    }

    fn attempt(
        &self,
        key: &str,
        limit: u32,
        window: i64,
        now: i64,
    ) -> Result<std::result::Result<(), i64>> {
        let mut c = self
            .reader
            .lock()
            .map_err(|_| WorkflowError::Db("reader lock poisoned".into()))?;
        let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let cur: Option<(i64, i64)> = tx
            .query_row(
                "SELECT n, since FROM login_attempts WHERE key = ?1",
                [key],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let (n, since) = match cur {
            Some((n, since)) if since > now - window => (n, since),
            _ => (0, now),
        };
        if n >= i64::from(limit) {
            return Ok(Err((since + window - now).max(1)));
        }
        tx.execute(
            "INSERT INTO login_attempts (key, n, since) VALUES (?1, ?2, ?3)
             ON CONFLICT (key) DO UPDATE SET n = ?2, since = ?3",
            params![key, n + 1, since],
        )?;
        tx.commit()?;
        Ok(Ok(()))
    }

    fn attempt_refund(&self, key: &str) -> Result<()> {
        self.with(|c| {
            c.execute(
                "UPDATE login_attempts SET n = max(n - 1, 0) WHERE key = ?1",
                [key],
            )
            .map(|_| ())
        })
    }

    fn attempts_clear(&self, key: &str) -> Result<()> {
        self.with(|c| {
            c.execute("DELETE FROM login_attempts WHERE key = ?1", [key])
                .map(|_| ())
        })
    }

    fn take_turn(&self, name: &str, every: i64, now: i64) -> Result<bool> {
        self.with(|c| {
            c.execute(
                "INSERT INTO turns (name, last) VALUES (?1, ?2)
                 ON CONFLICT (name) DO UPDATE SET last = ?2 WHERE last <= ?2 - ?3",
                params![name, now, every],
            )
            .map(|n| n == 1)
        })
    }

    fn purge(&self, r: &Retention, now: i64, actor: &str) -> Result<PurgeReport> {
        let mut rep = PurgeReport {
            time: now,
            actor: actor.to_string(),
            audit_before: now - i64::from(r.audit_days) * 86_400,
            approvals_before: now - i64::from(r.approval_days) * 86_400,
            ..PurgeReport::default()
        };
        let mut c = self
            .reader
            .lock()
            .map_err(|_| WorkflowError::Db("reader lock poisoned".into()))?;
        let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let cut = rep.audit_before;
        for t in [
            "record_recipients",
            "record_attachments",
            "record_detectors",
        ] {
            tx.execute(&format!("DELETE FROM {t} WHERE time < ?1"), [cut])?;
        }
        rep.records = tx.execute("DELETE FROM records WHERE time < ?1", [cut])? as u64;
        // Links that stopped working before the cut, and download tries from before it.
        tx.execute("DELETE FROM links WHERE expires < ?1", [cut])?;
        tx.execute("DELETE FROM link_downloads WHERE time < ?1", [cut])?;
        tx.execute(
            "DELETE FROM rate_counts WHERE minute < ?1",
            [cut.div_euclid(60)],
        )?;
        tx.execute(
            "DELETE FROM approval_events WHERE approval IN (SELECT id FROM approvals WHERE created < ?1 AND state IN ('released', 'discarded'))",
            [rep.approvals_before],
        )?;
        rep.approvals = tx.execute(
            "DELETE FROM approvals WHERE created < ?1 AND state IN ('released', 'discarded')",
            [rep.approvals_before],
        )? as u64;
        // Evidence: no copy outlives the store's cap; the copies go with `EvidenceStore::purge`.
        tx.execute(
            "UPDATE evidence SET expires = created + ?1 WHERE expires > created + ?1",
            [i64::from(r.evidence_days) * 86_400],
        )?;
        tx.execute(
            "DELETE FROM evidence_refs WHERE record_id IN (SELECT record_id FROM evidence_refs EXCEPT SELECT id FROM records)",
            [],
        )?;
        tx.commit()?;
        Ok(rep)
    }

    fn log_admin(&self, a: &AdminAction) -> Result<()> {
        self.with(|c| {
            c.execute(
                "INSERT INTO admin_actions (time, actor, action, target, detail, client) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![a.time, a.actor, a.action, a.target, a.detail, a.client],
            )
            .map(|_| ())
        })
    }

    fn link_add(&self, l: &links::DownloadLink) -> Result<()> {
        self.with(|c| {
            c.execute(
                "INSERT INTO links (token_sha256, record_id, name, size, sha256, created, expires, max_downloads, downloads, failures, password, sender)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
                params![l.token_sha256, l.record_id, l.name, l.size as i64, l.sha256, l.created, l.expires, l.max_downloads, l.downloads, l.failures, l.password, l.sender],
            )
            .map(|_| ())
        })
    }

    fn link_get(&self, token_sha256: &str) -> Result<Option<links::DownloadLink>> {
        self.with(|c| {
            c.query_row(
                &format!("SELECT {LINK_COLUMNS} FROM links WHERE token_sha256 = ?1"),
                params![token_sha256],
                link_row,
            )
            .optional()
        })
    }

    fn link_take(&self, token_sha256: &str, now: i64) -> Result<bool> {
        self.with(|c| {
            c.execute(
                "UPDATE links SET downloads = downloads + 1 WHERE token_sha256 = ?1 AND expires > ?2
                 AND (max_downloads = 0 OR downloads < max_downloads)",
                params![token_sha256, now],
            )
            .map(|n| n == 1)
        })
    }

    fn link_fail(&self, token_sha256: &str) -> Result<()> {
        self.with(|c| {
            c.execute(
                "UPDATE links SET failures = failures + 1 WHERE token_sha256 = ?1",
                params![token_sha256],
            )
            .map(|_| ())
        })
    }

    fn link_log(&self, e: &links::DownloadEvent) -> Result<()> {
        self.with(|c| {
            c.execute(
                "INSERT INTO link_downloads (time, token_sha256, record_id, name, client, outcome) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![e.time, e.token_sha256, e.record_id, e.name, e.client, e.outcome],
            )
            .map(|_| ())
        })
    }

    fn links_of(
        &self,
        record_id: i64,
    ) -> Result<(Vec<links::DownloadLink>, Vec<links::DownloadEvent>)> {
        self.with(|c| {
            let mut st = c.prepare(&format!(
                "SELECT {LINK_COLUMNS} FROM links WHERE record_id = ?1 ORDER BY created, name"
            ))?;
            let ls = st
                .query_map(params![record_id], link_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let mut st = c.prepare(
                "SELECT time, token_sha256, record_id, name, client, outcome FROM link_downloads
                 WHERE record_id = ?1 ORDER BY id LIMIT 10000",
            )?;
            let es = st
                .query_map(params![record_id], |r| {
                    Ok(links::DownloadEvent {
                        time: r.get(0)?,
                        token_sha256: r.get(1)?,
                        record_id: r.get(2)?,
                        name: r.get(3)?,
                        client: r.get(4)?,
                        outcome: r.get(5)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok((ls, es))
        })
    }

    fn admin_actions(&self, actor: Option<&str>, limit: usize) -> Result<Vec<AdminAction>> {
        self.with(|c| {
            let mut st = c.prepare(
                "SELECT time, actor, action, target, detail, client FROM admin_actions
                 WHERE ?1 IS NULL OR actor = ?1 ORDER BY id DESC LIMIT ?2",
            )?;
            let rows = st.query_map(params![actor, limit as i64], |r| {
                Ok(AdminAction {
                    time: r.get(0)?,
                    actor: r.get(1)?,
                    action: r.get(2)?,
                    target: r.get(3)?,
                    detail: r.get(4)?,
                    client: r.get(5)?,
                })
            })?;
            rows.collect()
        })
    }

    fn log_purge(&self, rep: &PurgeReport) -> Result<()> {
        self.with(|c| {
            c.execute(
                "INSERT INTO purges (time, detail) VALUES (?1, ?2)",
                params![rep.time, serde_json::to_string(rep).unwrap_or_default()],
            )
            .map(|_| ())
        })
    }

    fn enrol_token_add(&self, t: &EnrolToken) -> Result<()> {
        self.with(|c| {
            c.execute(
                "INSERT INTO enrol_tokens (sha256, label, created, expires, created_by) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![t.sha256, t.label, t.created, t.expires, t.created_by],
            )
            .map(|_| ())
        })
    }

    fn enrol_tokens(&self, limit: usize) -> Result<Vec<EnrolToken>> {
        self.with(|c| {
            let mut st = c.prepare(
                "SELECT sha256, label, created, expires, created_by, used, agent FROM enrol_tokens ORDER BY created DESC, sha256 LIMIT ?1",
            )?;
            let rows = st.query_map([limit as i64], |r| {
                Ok(EnrolToken {
                    sha256: r.get(0)?,
                    label: r.get(1)?,
                    created: r.get(2)?,
                    expires: r.get(3)?,
                    created_by: r.get(4)?,
                    used: r.get(5)?,
                    agent: r.get(6)?,
                })
            })?;
            rows.collect()
        })
    }

    fn enrol(&self, token_sha256: &str, now: i64, a: &Agent) -> Result<Enrolment> {
        let mut c = self
            .reader
            .lock()
            .map_err(|_| WorkflowError::Db("reader lock poisoned".into()))?;
        let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let taken: bool = tx
            .query_row(
                "SELECT 1 FROM agents WHERE name = ?1",
                [&a.name],
                |_| Ok(()),
            )
            .optional()?
            .is_some();
        if taken {
            return Ok(Enrolment::NameTaken);
        }
        let used = tx.execute(
            "UPDATE enrol_tokens SET used = ?2, agent = ?3 WHERE sha256 = ?1 AND used IS NULL AND expires > ?2",
            params![token_sha256, now, a.name],
        )?;
        if used != 1 {
            return Ok(Enrolment::BadToken);
        }
        let label: String = tx.query_row(
            "SELECT label FROM enrol_tokens WHERE sha256 = ?1",
            [token_sha256],
            |r| r.get(0),
        )?;
        tx.execute(
            "INSERT INTO agents (name, secret_sha256, created, label, last_seen, last_seq, status) VALUES (?1, ?2, ?3, ?4, ?3, 0, ?5)",
            params![
                a.name,
                a.secret_sha256,
                now,
                label,
                serde_json::to_string(&a.status).unwrap_or_default()
            ],
        )?;
        tx.commit()?;
        Ok(Enrolment::Enrolled)
    }

    fn agent(&self, name: &str) -> Result<Option<Agent>> {
        self.with(|c| {
            c.query_row(
                &format!("SELECT {AGENT_COLS} FROM agents WHERE name = ?1"),
                [name],
                agent_row,
            )
            .optional()
        })
    }

    fn agents(&self) -> Result<Vec<Agent>> {
        self.with(|c| {
            let mut st = c.prepare(&format!("SELECT {AGENT_COLS} FROM agents ORDER BY name"))?;
            let rows = st.query_map([], agent_row)?;
            rows.collect()
        })
    }

    fn agent_seen(&self, name: &str, now: i64, status: &AgentStatus) -> Result<()> {
        self.with(|c| {
            c.execute(
                "UPDATE agents SET last_seen = ?2, status = ?3 WHERE name = ?1",
                params![name, now, serde_json::to_string(status).unwrap_or_default()],
            )
            .map(|_| ())
        })
    }

    fn agent_revoke(&self, name: &str, now: i64) -> Result<bool> {
        self.with(|c| {
            c.execute(
                "UPDATE agents SET revoked = ?2 WHERE name = ?1 AND revoked IS NULL",
                params![name, now],
            )
            .map(|n| n == 1)
        })
    }

    fn fleet_policy_put(&self, text: &str, actor: &str, now: i64) -> Result<i64> {
        self.with(|c| {
            c.query_row(
                "INSERT INTO fleet_policies (text, sha256, created, actor) VALUES (?1, ?2, ?3, ?4) RETURNING version",
                params![text, super::fleet::secret_digest(text), now, actor],
                |r| r.get(0),
            )
        })
    }

    fn fleet_policy(&self) -> Result<Option<FleetPolicy>> {
        self.with(|c| {
            c.query_row(
                "SELECT version, text, sha256, created, actor FROM fleet_policies ORDER BY version DESC LIMIT 1",
                [],
                |r| {
                    Ok(FleetPolicy {
                        version: r.get(0)?,
                        text: r.get(1)?,
                        sha256: r.get(2)?,
                        created: r.get(3)?,
                        actor: r.get(4)?,
                    })
                },
            )
            .optional()
        })
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
        let mut c = self
            .reader
            .lock()
            .map_err(|_| WorkflowError::Db("reader lock poisoned".into()))?;
        let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let n = tx.execute(
            "UPDATE agents SET last_seq = ?3, last_seen = ?4 WHERE name = ?1 AND last_seq = ?2 AND revoked IS NULL",
            params![agent, after, last, now],
        )?;
        if n != 1 {
            return Ok(None);
        }
        let ids = recs
            .iter()
            .map(|r| insert_record(&tx, r))
            .collect::<rusqlite::Result<Vec<_>>>()?;
        for (i, a) in holds {
            let mut a = a.clone();
            a.record_id = ids.get(*i).copied().unwrap_or(0);
            insert_approval(&tx, &a)?;
            tx.execute(
                "INSERT INTO approval_events (approval, time, actor, kind, detail) VALUES (?1, ?2, ?3, 'created', ?4)",
                params![a.id, a.created, format!("agent:{agent}"), a.rule],
            )?;
        }
        tx.commit()?;
        Ok(Some(ids))
    }

    fn purges(&self, limit: usize) -> Result<Vec<PurgeReport>> {
        self.with(|c| {
            let mut st = c.prepare("SELECT detail FROM purges ORDER BY id DESC LIMIT ?1")?;
            let rows = st.query_map([limit as i64], |r| r.get::<_, String>(0))?;
            let mut out = Vec::new();
            for d in rows {
                if let Ok(p) = serde_json::from_str(&d?) {
                    out.push(p);
                }
            }
            Ok(out)
        })
    }
}
