//! Endpoint fleet, agent side: enrolment with the company server and the forwarder that ships
//! this PC's audit records to it.
//!
//! With `store = "https://console.example.co.jp:8025"` an agent (the SMTP proxy on a PC, a
//! vendor agent through the C ABI) keeps judging mail exactly as before, into its local SQLite
//! store in the state directory, which is also the spool: nothing waits for the server, and a
//! PC that is offline or on a train loses nothing. A forwarder thread reads the records past
//! the server's last record number for this agent (the local record ids, which never go back)
//! and uploads them in order, in batches, with backoff when the server cannot be reached; the
//! server takes each number once, so a batch sent again after a lost answer is stored once.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use super::fleet::{self, AgentStatus, EvidenceItem, FleetPolicy, HeldItem};
use super::{
    private, Approval, ApprovalEvent, ApprovalState, AuditRecord, EvidenceStore, Result,
    SqliteStore, Store, StoreConfig, WorkflowError,
};

/// Records per upload.
const BATCH: usize = 200;
/// Longest wait between tries while the server cannot be reached.
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// A status report at least this often while there is nothing to upload.
const STATUS_EVERY: Duration = Duration::from_secs(30);
/// How often the agent asks for a new policy.
const POLICY_EVERY: Duration = Duration::from_secs(10);
/// How often the agent asks for decisions while it holds mail.
const DECISIONS_EVERY: Duration = Duration::from_secs(2);
/// How long a held mail's record waits for its request to be written before it is sent
/// without one (a process that died between the two).
const REQUEST_GRACE: i64 = 60;

/// The file in the state directory that holds this agent's credential (`NAME:SECRET`, 0600).
pub const CREDENTIAL_FILE: &str = "agent.credential";

/// Whether a store URL names a fleet server (`https://...`, or `http://` on loopback for
/// tests and a TLS proxy on the same host).
pub fn is_server_url(url: &str) -> bool {
    url.starts_with("https://") || url.starts_with("http://")
}

/// Talks to the fleet server's agent API.
pub struct AgentClient {
    base: String,
    http: ureq::Agent,
    credential: Option<String>,
    tls: Option<ureq::tls::TlsConfig>,
}

fn err(url: &str, e: impl std::fmt::Display) -> WorkflowError {
    WorkflowError::Db(format!("fleet server `{url}`: {e}"))
}

fn root_certs(ca_file: Option<&Path>) -> Result<Vec<ureq::tls::Certificate<'static>>> {
    let file: PathBuf = match ca_file {
        Some(p) => p.to_path_buf(),
        None => crate::net::SYSTEM_ROOTS
            .iter()
            .map(PathBuf::from)
            .find(|p| p.exists())
            .ok_or_else(|| {
                WorkflowError::Db("no system trust store found; set store_ca_file".into())
            })?,
    };
    let pem =
        std::fs::read(&file).map_err(|e| WorkflowError::Io(format!("{}: {e}", file.display())))?;
    let mut out = Vec::new();
    for item in ureq::tls::parse_pem(&pem) {
        if let Ok(ureq::tls::PemItem::Certificate(c)) = item {
            out.push(c);
        }
    }
    if out.is_empty() {
        return Err(WorkflowError::Io(format!(
            "{}: no certificates",
            file.display()
        )));
    }
    Ok(out)
}

impl AgentClient {
    /// A client of the server at `url`, verifying its certificate with `ca_file` (default: the
    /// system's trust store); `credential` is `NAME:SECRET` (none before enrolment).
    pub fn new(
        url: &str,
        ca_file: Option<&Path>,
        credential: Option<String>,
    ) -> Result<AgentClient> {
        let base = url.trim_end_matches('/').to_string();
        if !is_server_url(&base) {
            return Err(err(&base, "use https://host:port"));
        }
        if let Some(rest) = base.strip_prefix("http://") {
            let host = rest.split('/').next().unwrap_or("");
            let host = host.rsplit_once(':').map_or(host, |(h, _)| h);
            if !matches!(host, "localhost" | "[::1]") && !host.starts_with("127.") {
                return Err(err(
                    &base,
                    "the agent's credential goes with every call: use https:// (plain http:// only on loopback)",
                ));
            }
        }
        let tls = if base.starts_with("https://") {
            Some(
                ureq::tls::TlsConfig::builder()
                    .provider(ureq::tls::TlsProvider::Rustls)
                    .root_certs(ureq::tls::RootCerts::new_with_certs(&root_certs(ca_file)?))
                    .build(),
            )
        } else {
            None
        };
        let mut c = AgentClient {
            base,
            http: ureq::Agent::new_with_defaults(),
            credential,
            tls,
        };
        c.http = c.http_with_timeout(Duration::from_secs(15))?;
        Ok(c)
    }

    /// An HTTP agent for this server whose calls end after `timeout`.
    fn http_with_timeout(&self, timeout: Duration) -> Result<ureq::Agent> {
        let mut b = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            .user_agent(format!("ping32dlp-agent/{}", env!("CARGO_PKG_VERSION")));
        if let Some(t) = &self.tls {
            b = b.tls_config(t.clone());
        }
        Ok(b.build().into())
    }

    /// The server's address.
    pub fn url(&self) -> &str {
        &self.base
    }

    fn post(&self, path: &str, body: &serde_json::Value) -> Result<(u16, serde_json::Value)> {
        let url = format!("{}{path}", self.base);
        let mut req = self
            .http
            .post(&url)
            .header("Content-Type", "application/json");
        if let Some(c) = &self.credential {
            req = req.header("Authorization", &format!("Bearer {c}"));
        }
        let mut resp = req
            .send(body.to_string().as_bytes())
            .map_err(|e| err(&self.base, e))?;
        let status = resp.status().as_u16();
        let text = resp
            .body_mut()
            .with_config()
            .limit(1024 * 1024)
            .read_to_string()
            .map_err(|e| err(&self.base, e))?;
        let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|_| {
            serde_json::json!({ "error": format!("HTTP {status}: {}", text.trim().chars().take(200).collect::<String>()) })
        });
        Ok((status, v))
    }

    fn refused(&self, status: u16, v: &serde_json::Value) -> WorkflowError {
        let why = v["error"].as_str().unwrap_or("no reason given");
        match status {
            401 | 403 => WorkflowError::Forbidden(format!("fleet server `{}`: {why}", self.base)),
            _ => err(&self.base, format!("HTTP {status}: {why}")),
        }
    }

    /// Enrols with a one-time token; returns the credential `NAME:SECRET`.
    pub fn enrol(&self, token: &str, name: &str, status: &AgentStatus) -> Result<String> {
        let (code, v) = self.post(
            "/agent/v1/enrol",
            &serde_json::json!({ "token": token.trim(), "name": name, "status": status }),
        )?;
        match (code, v["credential"].as_str()) {
            (201, Some(c)) => Ok(c.to_string()),
            _ => Err(self.refused(code, &v)),
        }
    }

    /// Reports the agent's status; returns the server's last record number for it.
    pub fn status(&self, status: &AgentStatus) -> Result<i64> {
        let (code, v) = self.post("/agent/v1/status", &serde_json::json!({ "status": status }))?;
        match (code, v["last_seq"].as_i64()) {
            (200, Some(n)) => Ok(n),
            _ => Err(self.refused(code, &v)),
        }
    }

    /// The agents' policy when the server has one other than version `have`.
    pub fn policy(&self, have: Option<i64>) -> Result<Option<FleetPolicy>> {
        let (code, v) = self.post("/agent/v1/policy", &serde_json::json!({ "have": have }))?;
        if code != 200 {
            return Err(self.refused(code, &v));
        }
        match (v["version"].as_i64(), v["text"].as_str()) {
            (Some(version), Some(text)) => Ok(Some(FleetPolicy {
                version,
                text: text.to_string(),
                sha256: v["sha256"].as_str().unwrap_or("").to_string(),
                created: 0,
                actor: v["actor"].as_str().unwrap_or("").to_string(),
            })),
            _ => Ok(None),
        }
    }

    /// One history question (`/agent/v1/history`); its answer.
    pub fn history(&self, q: &serde_json::Value) -> Result<serde_json::Value> {
        let (code, v) = self.post("/agent/v1/history", q)?;
        if code != 200 {
            return Err(self.refused(code, &v));
        }
        Ok(v["answer"].clone())
    }

    /// The decided requests of mails this agent holds (approved, rejected, expired).
    pub fn decisions(&self) -> Result<Vec<Approval>> {
        let (code, v) = self.post("/agent/v1/decisions", &serde_json::json!({}))?;
        if code != 200 {
            return Err(self.refused(code, &v));
        }
        serde_json::from_value(v["approvals"].clone()).map_err(|e| err(&self.base, e))
    }

    /// Tells the server which requests were carried out here.
    pub fn closed(&self, closed: &[fleet::Closed]) -> Result<()> {
        let (code, v) = self.post("/agent/v1/closed", &serde_json::json!({ "closed": closed }))?;
        if code != 200 {
            return Err(self.refused(code, &v));
        }
        Ok(())
    }

    /// Uploads numbered records (in increasing order), with the requests of the mails held
    /// here; returns the server's last record number.
    pub fn upload(
        &self,
        items: &[(i64, AuditRecord, Option<HeldItem>)],
        status: &AgentStatus,
    ) -> Result<i64> {
        let records: Vec<serde_json::Value> = items
            .iter()
            .map(|(seq, r, held)| match held {
                Some(h) => serde_json::json!({ "seq": seq, "record": r, "held": h }),
                None => serde_json::json!({ "seq": seq, "record": r }),
            })
            .collect();
        let (code, v) = self.post(
            "/agent/v1/records",
            &serde_json::json!({ "records": records, "status": status }),
        )?;
        match (code, v["last_seq"].as_i64()) {
            (200, Some(n)) => Ok(n),
            _ => Err(self.refused(code, &v)),
        }
    }
}

/// How long one history question may take before the PC's own history answers instead.
const HISTORY_TIMEOUT: Duration = Duration::from_secs(2);
/// After the server failed to answer one, how long history questions go straight to the PC's
/// own records (so that an offline PC does not wait on every mail).
const HISTORY_PAUSE: Duration = Duration::from_secs(15);

/// History questions asked of the fleet server (every gateway's and agent's mail), answered
/// from this PC's own store when the server does not answer in time.
pub struct AgentHistory {
    local: Arc<SqliteStore>,
    client: AgentClient,
    paused_until: std::sync::Mutex<Option<Instant>>,
}

impl AgentHistory {
    fn ask(&self, q: serde_json::Value) -> Option<serde_json::Value> {
        if let Ok(p) = self.paused_until.lock() {
            if p.is_some_and(|t| Instant::now() < t) {
                return None;
            }
        }
        match self.client.history(&q) {
            Ok(v) => {
                if let Ok(mut p) = self.paused_until.lock() {
                    *p = None;
                }
                Some(v)
            }
            Err(_) => {
                if let Ok(mut p) = self.paused_until.lock() {
                    *p = Some(Instant::now() + HISTORY_PAUSE);
                }
                None
            }
        }
    }

    /// A view for one evaluation that notes when the PC's own history answered.
    pub fn tracked(&self) -> TrackedHistory<'_> {
        TrackedHistory {
            h: self,
            offline: std::cell::Cell::new(false),
        }
    }
}

/// [`AgentHistory`] for one evaluation ([`crate::policy::History::offline`]).
pub struct TrackedHistory<'a> {
    h: &'a AgentHistory,
    offline: std::cell::Cell<bool>,
}

impl TrackedHistory<'_> {
    fn answer<T: serde::de::DeserializeOwned>(
        &self,
        q: serde_json::Value,
        local: impl FnOnce(&SqliteStore) -> crate::policy::HistoryResult<T>,
    ) -> crate::policy::HistoryResult<T> {
        if let Some(v) = self.h.ask(q).and_then(|v| serde_json::from_value(v).ok()) {
            return Ok(v);
        }
        self.offline.set(true);
        local(&self.h.local)
    }
}

impl crate::policy::History for TrackedHistory<'_> {
    fn sent_to_before(
        &self,
        sender: &str,
        address: &str,
        until: i64,
    ) -> crate::policy::HistoryResult<bool> {
        self.answer(
            serde_json::json!({"q": "sent_to_before", "sender": sender, "address": address, "until": until}),
            |l| l.sent_to_before(sender, address, until),
        )
    }
    fn domain_seen(&self, domain: &str, until: i64) -> crate::policy::HistoryResult<bool> {
        self.answer(
            serde_json::json!({"q": "domain_seen", "domain": domain, "until": until}),
            |l| l.domain_seen(domain, until),
        )
    }
    fn external_sends_of(
        &self,
        sha256: &str,
        since: i64,
        until: i64,
    ) -> crate::policy::HistoryResult<u64> {
        self.answer(
            serde_json::json!({"q": "external_sends_of", "sha256": sha256, "since": since, "until": until}),
            |l| l.external_sends_of(sha256, since, until),
        )
    }
    fn sender_external(
        &self,
        sender: &str,
        since: i64,
        until: i64,
    ) -> crate::policy::HistoryResult<(u64, u64)> {
        self.answer(
            serde_json::json!({"q": "sender_external", "sender": sender, "since": since, "until": until}),
            |l| l.sender_external(sender, since, until),
        )
    }
    fn ppap_partner(
        &self,
        sender: &str,
        recipients: &[String],
        since: i64,
        until: i64,
        want_password: bool,
    ) -> crate::policy::HistoryResult<bool> {
        self.answer(
            serde_json::json!({"q": "ppap_partner", "sender": sender, "recipients": recipients,
                "since": since, "until": until, "want_password": want_password}),
            |l| l.ppap_partner(sender, recipients, since, until, want_password),
        )
    }
    fn offline(&self) -> bool {
        self.offline.get()
    }
    fn clear_offline(&self) {
        self.offline.set(false);
    }
}

/// The program's name, for log lines and the status.
fn program() -> String {
    std::env::args()
        .next()
        .and_then(|a| {
            Path::new(&a)
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
        })
        .unwrap_or_else(|| "ping32dlp".into())
}

/// The version of the fleet policy file in `dir` named `file`, if there is one.
fn file_version(dir: &Path, file: &str) -> Option<i64> {
    let text = std::fs::read_to_string(dir.join(file)).ok()?;
    fleet::policy_file_version(&text)
}

/// Writes a fetched policy where the daemon picks it up ([`fleet::POLICY_NEW_FILE`]): a
/// temporary file, synced, then renamed, so that a reader never sees half of it.
fn stage_policy(dir: &Path, p: &FleetPolicy) -> Result<()> {
    let tmp = dir.join(format!("{}.tmp", fleet::POLICY_NEW_FILE));
    let _ = std::fs::remove_file(&tmp);
    private::write_file(&tmp, fleet::policy_file_text(p).as_bytes())?;
    std::fs::rename(&tmp, dir.join(fleet::POLICY_NEW_FILE))
        .map_err(|e| WorkflowError::Io(format!("{}: {e}", tmp.display())))
}

/// What this agent says about itself (`policy_version`: see [`status_of`]).
pub fn local_status(backlog: u64) -> AgentStatus {
    AgentStatus {
        user: std::env::var("USER")
            .or_else(|_| std::env::var("LOGNAME"))
            .ok()
            .filter(|u| !u.is_empty()),
        host: Some(super::host_name()),
        version: Some(format!("{} {}", program(), env!("CARGO_PKG_VERSION"))),
        policy_version: None,
        backlog,
    }
}

/// [`local_status`] with the version of the fleet policy this agent runs.
fn status_of(dir: &Path, backlog: u64) -> AgentStatus {
    AgentStatus {
        policy_version: file_version(dir, fleet::POLICY_FILE).map(|v| v.to_string()),
        ..local_status(backlog)
    }
}

/// Where the credential of an agent with this state directory and store settings is.
pub fn credential_path(state_dir: &Path, c: &StoreConfig) -> PathBuf {
    c.password_file
        .clone()
        .unwrap_or_else(|| state_dir.join(CREDENTIAL_FILE))
}

/// Enrols this PC with the server and writes its credential to `credential_path` (0600).
/// Refuses when a credential is already there.
pub fn enrol(
    state_dir: &Path,
    c: &StoreConfig,
    token: &str,
    name: &str,
) -> Result<(String, PathBuf)> {
    let path = credential_path(state_dir, c);
    if path.exists() {
        return Err(WorkflowError::Io(format!(
            "{}: this agent is enrolled already (remove the file to enrol again)",
            path.display()
        )));
    }
    let client = AgentClient::new(&c.url, c.ca_file.as_deref(), None)?;
    let cred = client.enrol(token, name, &local_status(0))?;
    if let Some(dir) = path.parent() {
        private::create_dir(dir)?;
    }
    private::write_file(&path, format!("{cred}\n").as_bytes())?;
    let name = cred
        .rsplit_once(':')
        .map_or(cred.as_str(), |(n, _)| n)
        .to_string();
    Ok((name, path))
}

/// Opens an agent's store: the local SQLite store in `state_dir` (which is the spool), with a
/// forwarder thread shipping its records to the server `c.url` names. The thread ends when the
/// store is dropped.
pub fn open_agent_store(state_dir: &Path, c: &StoreConfig) -> Result<Arc<SqliteStore>> {
    Ok(open_agent(state_dir, c)?.0)
}

/// [`open_agent_store`], and the history that asks the server ([`AgentHistory`]).
pub fn open_agent(
    state_dir: &Path,
    c: &StoreConfig,
) -> Result<(Arc<SqliteStore>, Arc<AgentHistory>)> {
    let path = credential_path(state_dir, c);
    let cred = std::fs::read_to_string(&path)
        .map(|s| s.trim().to_string())
        .map_err(|e| {
            WorkflowError::Io(format!(
                "store `{}`: this agent is not enrolled ({}: {e}); run `ping32dlp agent enrol --server {} --token TOKEN` first",
                c.redacted(),
                path.display(),
                c.url
            ))
        })?;
    if super::fleet::split_credential(&cred).is_none() {
        return Err(WorkflowError::Io(format!(
            "{}: not an agent credential (NAME:SECRET)",
            path.display()
        )));
    }
    let client = AgentClient::new(&c.url, c.ca_file.as_deref(), Some(cred.clone()))?;
    private::create_dir(state_dir)?;
    let db = state_dir.join("audit.db");
    private::precreate_file(&db)?;
    let store = Arc::new(SqliteStore::open(&db)?);
    let mut asker = AgentClient::new(&c.url, c.ca_file.as_deref(), Some(cred))?;
    asker.http = asker.http_with_timeout(HISTORY_TIMEOUT)?;
    let history = Arc::new(AgentHistory {
        local: store.clone(),
        client: asker,
        paused_until: std::sync::Mutex::new(None),
    });
    let weak = Arc::downgrade(&store);
    std::thread::Builder::new()
        .name("ping32dlp-forwarder".into())
        .spawn({
            let dir = state_dir.to_path_buf();
            move || forward(weak, client, dir)
        })
        .map_err(|e| WorkflowError::Io(e.to_string()))?;
    Ok((store, history))
}

/// The attachments kept for the approver of the mail recorded as `record_id`, with their data
/// up to [`fleet::MAX_EVIDENCE_UPLOAD`] in all.
fn evidence_for(store: &Arc<SqliteStore>, dir: &Path, record_id: i64) -> Result<Vec<EvidenceItem>> {
    let refs = store.evidence_of(record_id)?;
    if refs.is_empty() {
        return Ok(Vec::new());
    }
    let st: Arc<dyn Store> = store.clone();
    let ev = EvidenceStore::open(&dir.join("evidence"), st)?;
    let mut budget = fleet::MAX_EVIDENCE_UPLOAD;
    let mut out = Vec::with_capacity(refs.len());
    for (location, sha256) in refs {
        let data = ev.get(&sha256).ok().flatten();
        let size = data.as_ref().map_or(0, |d| d.len() as u64);
        let data = data.filter(|_| size <= budget).map(|d| {
            budget -= size;
            crate::text::base64_encode(&d)
        });
        out.push(EvidenceItem {
            location,
            sha256,
            size,
            data,
        });
    }
    Ok(out)
}

/// The next upload: records past `after`, each held mail with its request and attachments;
/// a batch ends after a held mail with attachment data (bounded bodies) and before a held
/// mail whose request is still being written.
fn next_batch(
    s: &Arc<SqliteStore>,
    dir: &Path,
    after: i64,
) -> Result<Vec<(i64, AuditRecord, Option<HeldItem>)>> {
    let now = crate::timeutil::now();
    let mut items = Vec::new();
    for (seq, rec) in s.records_after(after, BATCH)? {
        let held = match &rec.approval {
            None => None,
            Some(id) => match s.approval(id)? {
                Some(approval) => Some(HeldItem {
                    approval,
                    evidence: evidence_for(s, dir, seq)?,
                }),
                None if now - rec.time < REQUEST_GRACE => break,
                None => None,
            },
        };
        let big = held
            .as_ref()
            .is_some_and(|h| h.evidence.iter().any(|e| e.data.is_some()));
        items.push((seq, rec, held));
        if big {
            break;
        }
    }
    Ok(items)
}

/// Takes the server's decisions on the mails held here into the local store (where the
/// daemon's own maintenance carries them out: the proxy delivers or discards), and reports
/// what was carried out.
fn sync_holds(s: &Arc<SqliteStore>, client: &AgentClient, prog: &str) -> Result<()> {
    if s.count_pending(None)? > 0 {
        for d in client.decisions()? {
            let Some(local) = s.approval(&d.id)? else {
                continue;
            };
            if local.state != ApprovalState::Pending
                || !matches!(
                    d.state,
                    ApprovalState::Approved | ApprovalState::Rejected | ApprovalState::Expired
                )
            {
                continue;
            }
            let mut a = local.clone();
            a.state = d.state;
            a.decided_by = d.decided_by.clone();
            a.decided_at = d.decided_at;
            a.comment = d.comment.clone();
            if s.transition(&a, ApprovalState::Pending)? {
                s.add_event(
                    &a.id,
                    &ApprovalEvent {
                        time: crate::timeutil::now(),
                        actor: d.decided_by.clone().unwrap_or_else(|| "server".into()),
                        kind: "decided".into(),
                        detail: format!("{} on the fleet server", d.state.as_str()),
                    },
                )?;
                crate::service::log_event(
                    prog,
                    "fleet_decision",
                    &[("approval", &a.id), ("state", &d.state.as_str())],
                    "",
                );
            }
        }
    }
    let closed = s.closed_unreported(100)?;
    if !closed.is_empty() {
        let report: Vec<fleet::Closed> = closed
            .iter()
            .map(|a| fleet::Closed {
                id: a.id.clone(),
                state: a.state,
                time: a.closed_at.unwrap_or_else(crate::timeutil::now),
            })
            .collect();
        client.closed(&report)?;
        for a in &closed {
            s.add_event_once(
                &a.id,
                &ApprovalEvent {
                    time: crate::timeutil::now(),
                    actor: "forwarder".into(),
                    kind: "reported_closed".into(),
                    detail: client.url().to_string(),
                },
            )?;
        }
    }
    Ok(())
}

/// The forwarder: uploads what the server has not taken, in order; backs off while it cannot.
fn forward(store: Weak<SqliteStore>, client: AgentClient, dir: PathBuf) {
    let prog = program();
    let mut server_last: Option<i64> = None;
    let mut next_policy = Instant::now();
    let mut next_decisions = Instant::now();
    let mut reported_policy: Option<String> = None;
    let mut have_policy =
        file_version(&dir, fleet::POLICY_NEW_FILE).max(file_version(&dir, fleet::POLICY_FILE));
    let mut backoff = Duration::from_secs(1);
    let mut next_status = Instant::now();
    let mut failing: Option<String> = None;
    let mut wait = Duration::ZERO;
    loop {
        // Sleep in short steps, so that the thread ends soon after the store is dropped.
        let until = Instant::now() + wait;
        while Instant::now() < until {
            if store.strong_count() == 0 {
                return;
            }
            std::thread::sleep(Duration::from_millis(100).min(until - Instant::now()));
        }
        let Some(s) = store.upgrade() else { return };
        let step = (|| -> Result<usize> {
            if Instant::now() >= next_policy {
                if let Some(p) = client.policy(have_policy)? {
                    stage_policy(&dir, &p)?;
                    crate::service::log_event(
                        &prog,
                        "fleet_policy_fetched",
                        &[("version", &p.version), ("server", &client.url())],
                        "",
                    );
                    have_policy = Some(p.version);
                }
                next_policy = Instant::now() + POLICY_EVERY;
            }
            if Instant::now() >= next_decisions {
                sync_holds(&s, &client, &prog)?;
                next_decisions = Instant::now() + DECISIONS_EVERY;
            }
            let after = match server_last {
                Some(n) => n,
                None => {
                    let backlog = s.count_after(0)?;
                    let n = client.status(&status_of(&dir, backlog))?;
                    server_last = Some(n);
                    n
                }
            };
            let batch = next_batch(&s, &dir, after)?;
            let backlog = s.count_after(after)?;
            if batch.is_empty() {
                let st = status_of(&dir, backlog);
                if Instant::now() >= next_status || st.policy_version != reported_policy {
                    server_last = Some(client.status(&st)?);
                    reported_policy = st.policy_version;
                    next_status = Instant::now() + STATUS_EVERY;
                }
                return Ok(0);
            }
            let sent = batch.len() as u64;
            let n = client.upload(&batch, &status_of(&dir, backlog.saturating_sub(sent)))?;
            server_last = Some(n);
            next_status = Instant::now() + STATUS_EVERY;
            Ok(batch.len())
        })();
        drop(s);
        match step {
            Ok(n) => {
                if failing.take().is_some() {
                    crate::service::log_event(
                        &prog,
                        "forwarder_resumed",
                        &[("server", &client.url())],
                        "the fleet server answers again; uploading what waited",
                    );
                }
                backoff = Duration::from_secs(1);
                wait = if n == BATCH {
                    Duration::ZERO
                } else {
                    Duration::from_millis(500)
                };
            }
            Err(e) => {
                // Logged when it starts failing and when the reason changes, not every retry.
                let why = e.to_string();
                if failing.as_deref() != Some(why.as_str()) {
                    crate::service::log_event(
                        &prog,
                        "forwarder_failed",
                        &[("server", &client.url())],
                        &format!(
                            "{why}; records wait in the local store and are sent when it answers"
                        ),
                    );
                    failing = Some(why);
                }
                // Ask the server where it is before the next upload (a concurrent upload, or
                // an answer lost on the way).
                server_last = None;
                wait = backoff;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert!(is_server_url("https://dlp.example.co.jp:8025"));
        assert!(is_server_url("http://127.0.0.1:8025"));
        assert!(!is_server_url("postgres://dlp@db/dlp"));
        assert!(AgentClient::new("ftp://x", None, None).is_err());
        let e = AgentClient::new("http://dlp.example.co.jp:8025", None, None)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("use https://"), "{e}");
        assert!(AgentClient::new("http://127.0.0.1:8025/", None, None).is_ok());
    }

    #[test]
    fn unenrolled_agent_is_told_what_to_do() {
        let d = tempfile::tempdir().unwrap();
        let c = StoreConfig::new("http://127.0.0.1:9");
        let e = open_agent_store(d.path(), &c).err().unwrap().to_string();
        assert!(
            e.contains("not enrolled") && e.contains("ping32dlp agent enrol"),
            "{e}"
        );
        std::fs::write(d.path().join(CREDENTIAL_FILE), "nonsense").unwrap();
        let e = open_agent_store(d.path(), &c).err().unwrap().to_string();
        assert!(e.contains("not an agent credential"), "{e}");
    }
}
