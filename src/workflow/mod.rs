//! Workflow: the audit trail, evidence copies, approvals, alerts: what happens after a verdict.
//!
//! * [`AuditRecord`]: one row per mail (who, how, to whom, what, which files, what was found
//!   (masked), the verdict and the rules behind it). Committed durably before the verdict is
//!   returned as final.
//! * [`Store`]: the storage behind it, SQLite by default ([`SqliteStore`]: WAL, `synchronous =
//!   FULL`, schema migrations, group commit), a trait so that a shared server database can come
//!   later. It is also the policy's [`History`](crate::policy::History).
//! * [`EvidenceStore`]: content-addressed copies of sent attachments, checked on read.
//! * Approvals: pending → approved / rejected / expired → released / discarded, every view and
//!   decision recorded with who and when, tokens authenticated with HMAC-SHA-256.
//! * [`AlertSinks`]: JSON Lines file, syslog (RFC 5424 over UDP or TCP), webhook with retry.
//!
//! [`Workflow`] ties them together: `process()` records a verdict, keeps evidence, opens the
//! approval of a held mail and sends alerts.

pub mod agent;
mod alerts;
mod evidence;
pub mod fleet;
pub mod links;
pub mod report;
pub mod sqlite;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};

pub use alerts::{alert_json, plain_json, AlertCallback, AlertConfig, AlertSinks, OutboxItem};
pub use evidence::EvidenceStore;
pub mod private;
pub use sqlite::SqliteStore;
pub mod postgres;

use crate::policy::{Action, AttachmentFact, Context, Facts, FindingSummary, History, Verdict};
use crate::report::Report;

/// Errors of the workflow layer.
#[derive(Debug)]
pub enum WorkflowError {
    /// The database.
    Db(String),
    /// Files (state directory, evidence).
    Io(String),
    /// An approval that does not exist.
    NotFound(String),
    /// A decision on an approval that is no longer pending (already decided, expired).
    AlreadyDecided(String),
    /// Not allowed (the approver is not one of the request's approvers, a bad token).
    Forbidden(String),
    /// Stored evidence whose SHA-256 no longer matches.
    Tampered(String),
    /// The policy cannot judge the mail: it names a detector the scanning engine lacks.
    Policy(String),
}

impl std::fmt::Display for WorkflowError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WorkflowError::Db(m) => write!(f, "database: {m}"),
            WorkflowError::Io(m) => write!(f, "{m}"),
            WorkflowError::NotFound(m) => write!(f, "not found: {m}"),
            WorkflowError::AlreadyDecided(m) => write!(f, "already decided: {m}"),
            WorkflowError::Forbidden(m) => write!(f, "forbidden: {m}"),
            WorkflowError::Tampered(m) => write!(f, "evidence does not match its SHA-256: {m}"),
            WorkflowError::Policy(m) => write!(f, "policy: {m}"),
        }
    }
}

impl std::error::Error for WorkflowError {}

impl From<rusqlite::Error> for WorkflowError {
    fn from(e: rusqlite::Error) -> Self {
        WorkflowError::Db(e.to_string())
    }
}

impl From<crate::policy::HistoryError> for WorkflowError {
    fn from(e: crate::policy::HistoryError) -> Self {
        WorkflowError::Db(e.to_string())
    }
}

impl From<crate::policy::EvalError> for WorkflowError {
    fn from(e: crate::policy::EvalError) -> Self {
        match e {
            crate::policy::EvalError::History(h) => h.into(),
            other => WorkflowError::Policy(other.to_string()),
        }
    }
}

impl From<std::io::Error> for WorkflowError {
    fn from(e: std::io::Error) -> Self {
        WorkflowError::Io(e.to_string())
    }
}

/// Result of the workflow layer.
pub type Result<T> = std::result::Result<T, WorkflowError>;

/// A recipient and whether it is outside the organisation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recipient {
    /// Address, lower case.
    pub address: String,
    /// Outside the organisation's domains.
    pub external: bool,
    /// To, Cc or Bcc (`None` in records from before roles were kept, and for an upload's host).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<crate::policy::Role>,
}

/// An attachment row of an audit record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttachmentRow {
    /// Location in the message.
    pub location: String,
    /// File name.
    pub name: String,
    /// True type (`xlsx`, ...).
    pub kind: String,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256.
    pub sha256: String,
    /// Origin reported by an endpoint agent.
    pub origin: Option<String>,
    /// Extension does not fit the content.
    pub extension_mismatch: bool,
    /// Nesting depth.
    pub depth: u32,
    /// Why it could not be (fully) inspected, if so.
    pub unscannable: Option<String>,
}

/// A matched rule, as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MatchedRule {
    /// Rule id.
    pub rule: String,
    /// Its action.
    pub action: String,
    /// `enforce` or `monitor`.
    pub mode: String,
    /// Severity.
    pub severity: String,
    /// Why it matched (masked samples only).
    pub reasons: Vec<String>,
}

/// A stored finding summary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FindingRow {
    /// Detector.
    pub detector: String,
    /// Location, or `*` for the message.
    pub location: String,
    /// Findings.
    pub count: u32,
    /// Distinct values at low+, medium+, high+.
    pub unique: [u32; 3],
    /// Masked samples.
    pub samples: Vec<String>,
}

/// One audited mail.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AuditRecord {
    /// Assigned when stored.
    pub id: i64,
    /// Unix seconds.
    pub time: i64,
    /// `milter`, `proxy`, `webmail`, `api`, `cli`.
    pub channel: String,
    /// Authenticated user.
    pub user: Option<String>,
    /// Host.
    pub host: Option<String>,
    /// Client application.
    pub client_app: Option<String>,
    /// Client address.
    pub client_addr: Option<String>,
    /// TLS version.
    pub tls: Option<String>,
    /// Sender.
    pub sender: String,
    /// Recipients.
    pub recipients: Vec<Recipient>,
    /// Subject, with found values masked.
    pub subject: String,
    /// SHA-256 of the body texts.
    pub body_digest: String,
    /// Message size.
    pub size: u64,
    /// Message-ID.
    pub message_id: Option<String>,
    /// MTA queue id.
    pub queue_id: Option<String>,
    /// Attachments.
    pub attachments: Vec<AttachmentRow>,
    /// Findings (masked samples).
    pub findings: Vec<FindingRow>,
    /// (location, reason, detail) of what could not be inspected.
    pub unscannable: Vec<(String, String, String)>,
    /// Password candidates found in the bodies (the values are not kept).
    pub password_candidates: u32,
    /// Final action.
    pub action: String,
    /// The action had the monitor-mode rules been enforced.
    pub would_action: String,
    /// Matched rules.
    pub matched: Vec<MatchedRule>,
    /// Risk score.
    pub risk: u32,
    /// Risk signals: (what, points).
    pub signals: Vec<(String, u32)>,
    /// The approval of a held mail.
    pub approval: Option<String>,
    /// An upload's destination host (webmail) and whether it is outside the company.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination: Option<Recipient>,
    /// The gateway (milter, proxy, hook instance) that saw the mail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
    /// The From header's address when the message has one (the envelope sender is `sender`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header_from: Option<String>,
    /// The sender's department from the directory, when it was looked up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub department: Option<String>,
}

pub(crate) fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Random hex of `n` bytes.
pub fn random_hex(n: usize) -> String {
    let mut b = vec![0u8; n];
    getrandom::fill(&mut b).expect("the operating system's random source");
    hex(&b)
}

impl AuditRecord {
    /// The record of an inspected mail.
    pub fn new(
        report: &Report,
        ctx: &Context,
        facts: &Facts,
        verdict: &Verdict,
        policy: &crate::policy::Policy,
    ) -> AuditRecord {
        use sha2::Digest;
        let mut subject = facts.subject.clone();
        for f in report.findings.iter().filter(|f| &*f.location == "subject") {
            subject = subject.replace(f.value.as_str(), &f.value_masked);
        }
        let would = verdict
            .matched
            .iter()
            .map(|m| m.action)
            .max()
            .unwrap_or(Action::Allow)
            .max(verdict.action);
        AuditRecord {
            id: 0,
            time: facts.time,
            channel: facts.channel.clone(),
            user: ctx.user.clone(),
            host: ctx.host.clone(),
            client_app: ctx.client_app.clone(),
            client_addr: ctx.client_addr.clone(),
            tls: ctx.tls.clone(),
            sender: facts.sender.clone(),
            recipients: facts
                .recipients
                .iter()
                .enumerate()
                .map(|(i, r)| Recipient {
                    address: r.clone(),
                    external: !policy.is_internal(r, &facts.sender),
                    role: Some(facts.roles.get(i).copied().unwrap_or_default()),
                })
                .collect(),
            header_from: facts.header_from.clone(),
            department: facts.department.clone(),
            subject,
            body_digest: hex(&sha2::Sha256::digest(report.body_text.as_bytes())),
            size: facts.size,
            message_id: report.message.as_ref().and_then(|m| m.message_id.clone()),
            queue_id: ctx.queue_id.clone(),
            attachments: facts
                .attachments
                .iter()
                .map(|a: &AttachmentFact| AttachmentRow {
                    location: a.location.clone(),
                    name: a.name.clone(),
                    kind: a.kind.clone(),
                    size: a.size,
                    sha256: a.sha256.clone(),
                    origin: a.origin.clone(),
                    extension_mismatch: a.extension_mismatch,
                    depth: a.depth,
                    unscannable: report
                        .unscannable
                        .iter()
                        .find(|u| {
                            u.location == a.location
                                || u.location.starts_with(&format!("{}/", a.location))
                        })
                        .map(|u| format!("{}: {}", u.reason.as_str(), u.detail)),
                })
                .collect(),
            findings: facts
                .findings
                .iter()
                .map(|s: &FindingSummary| FindingRow {
                    detector: s.detector.clone(),
                    location: s.location.clone(),
                    count: s.count,
                    unique: s.unique,
                    samples: s.samples.clone(),
                })
                .collect(),
            unscannable: report
                .unscannable
                .iter()
                .map(|u| {
                    (
                        u.location.clone(),
                        u.reason.as_str().to_string(),
                        u.detail.clone(),
                    )
                })
                .collect(),
            password_candidates: report.password_candidates.len() as u32,
            action: verdict.action.as_str().to_string(),
            would_action: would.as_str().to_string(),
            matched: verdict
                .matched
                .iter()
                .map(|m| MatchedRule {
                    rule: m.rule.clone(),
                    action: m.action.as_str().into(),
                    mode: m.mode.as_str().into(),
                    severity: m.severity.clone(),
                    reasons: m.reasons.clone(),
                })
                .collect(),
            risk: verdict.risk,
            signals: verdict
                .signals
                .iter()
                .map(|s| (s.name.clone(), s.weight))
                .collect(),
            approval: None,
            destination: facts.destination_host.as_ref().map(|h| Recipient {
                address: h.clone(),
                external: !policy.is_internal_host(h),
                role: None,
            }),
            gateway: None,
        }
    }

    /// The policy facts of a stored record (for replay: no body text).
    pub fn facts(&self) -> Facts {
        Facts {
            engine: None,
            time: self.time,
            channel: self.channel.clone(),
            user: self.user.clone(),
            sender: self.sender.clone(),
            recipients: self.recipients.iter().map(|r| r.address.clone()).collect(),
            roles: self
                .recipients
                .iter()
                .map(|r| r.role.unwrap_or_default())
                .collect(),
            header_from: self.header_from.clone(),
            department: self.department.clone(),
            manager: None,
            recipient_groups: Vec::new(),
            subject: self.subject.clone(),
            body: None,
            size: self.size,
            attachments: self
                .attachments
                .iter()
                .map(|a| AttachmentFact {
                    location: a.location.clone(),
                    name: a.name.clone(),
                    kind: a.kind.clone(),
                    size: a.size,
                    sha256: a.sha256.clone(),
                    extension_mismatch: a.extension_mismatch,
                    depth: a.depth,
                    origin: a.origin.clone(),
                })
                .collect(),
            findings: self
                .findings
                .iter()
                .map(|f| FindingSummary {
                    detector: f.detector.clone(),
                    location: f.location.clone(),
                    count: f.count,
                    unique: f.unique,
                    samples: f.samples.clone(),
                })
                .collect(),
            unscannable: self
                .unscannable
                .iter()
                .map(|(l, r, _)| (l.clone(), r.clone()))
                .collect(),
            password_candidates: self.password_candidates as usize,
            groups: Vec::new(),
            destination_host: self.destination.as_ref().map(|d| d.address.clone()),
        }
    }

    /// True when any recipient, or an upload's destination, is external.
    pub fn external(&self) -> bool {
        self.recipients.iter().any(|r| r.external)
            || self.destination.as_ref().is_some_and(|d| d.external)
    }
}

/// Audit search filters (all optional, combined with AND).
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    /// Authenticated user.
    pub user: Option<String>,
    /// Sender address.
    pub sender: Option<String>,
    /// A recipient address.
    pub recipient: Option<String>,
    /// A recipient role: with `recipient`, that recipient in that role; alone, a mail with
    /// a recipient in that role (records from before roles were kept have none).
    pub recipient_role: Option<crate::policy::Role>,
    /// A recipient or sender domain.
    pub domain: Option<String>,
    /// An attachment SHA-256.
    pub sha256: Option<String>,
    /// A detector with findings.
    pub detector: Option<String>,
    /// Final action.
    pub action: Option<String>,
    /// From (Unix seconds, inclusive).
    pub since: Option<i64>,
    /// Until (exclusive).
    pub until: Option<i64>,
    /// The gateway that saw the mail.
    pub gateway: Option<String>,
    /// Only records whose sender's department (from the directory) is one of these (an admin
    /// limited to departments); `Some(empty)` matches nothing, records without a department
    /// match only `None`.
    pub departments: Option<Vec<String>>,
    /// Most rows (newest first); 0 = 1,000.
    pub limit: usize,
}

/// The side-table filters of a search: (value, table, column); `domain` also matches the
/// sender's domain in `records`.
pub(crate) fn side_filters(q: &AuditQuery) -> [(Option<String>, &'static str, &'static str); 4] {
    [
        (
            q.sha256.as_ref().map(|h| h.to_lowercase()),
            "record_attachments",
            "sha256",
        ),
        (
            q.recipient.as_ref().map(|x| x.to_lowercase()),
            "record_recipients",
            "address",
        ),
        (
            q.domain.as_ref().map(|d| d.to_lowercase()),
            "record_recipients",
            "domain",
        ),
        (q.detector.clone(), "record_detectors", "detector"),
    ]
}

/// `audit stats`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Stats {
    /// Per day (local date): (date, mails, external mails).
    pub per_day: Vec<(String, u64, u64)>,
    /// Per final action: (action, mails).
    pub per_action: Vec<(String, u64)>,
    /// Top senders of external mail: (sender, mails).
    pub top_senders: Vec<(String, u64)>,
    /// Top external domains: (domain, mails).
    pub top_domains: Vec<(String, u64)>,
    /// Top detectors: (detector, mails).
    pub top_detectors: Vec<(String, u64)>,
    /// Files sent outside repeatedly: (sha256, name, times).
    pub repeated_files: Vec<(String, String, u64)>,
}

/// Approval states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ApprovalState {
    /// Waiting for a decision.
    Pending,
    /// Approved; the message is to be released.
    Approved,
    /// Rejected; the message is to be discarded.
    Rejected,
    /// Not decided in time; the message is to be discarded.
    Expired,
    /// Approved and released to its recipients.
    Released,
    /// Rejected or expired, and deleted.
    Discarded,
}

impl ApprovalState {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            ApprovalState::Pending => "pending",
            ApprovalState::Approved => "approved",
            ApprovalState::Rejected => "rejected",
            ApprovalState::Expired => "expired",
            ApprovalState::Released => "released",
            ApprovalState::Discarded => "discarded",
        }
    }

    /// Parses a name.
    pub fn parse(s: &str) -> Option<ApprovalState> {
        Some(match s {
            "pending" => ApprovalState::Pending,
            "approved" => ApprovalState::Approved,
            "rejected" => ApprovalState::Rejected,
            "expired" => ApprovalState::Expired,
            "released" => ApprovalState::Released,
            "discarded" => ApprovalState::Discarded,
            _ => return None,
        })
    }
}

/// An approval request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Approval {
    /// Random id.
    pub id: String,
    /// The audit record.
    pub record_id: i64,
    /// State.
    pub state: ApprovalState,
    /// Created (Unix seconds).
    pub created: i64,
    /// Expires (Unix seconds).
    pub expires: i64,
    /// Who may decide.
    pub approvers: Vec<String>,
    /// Approver group, if any.
    pub approver_group: Option<String>,
    /// The rule that held the mail.
    pub rule: String,
    /// Channel that holds the mail.
    pub channel: String,
    /// MTA queue id (milter).
    pub queue_id: Option<String>,
    /// Sender.
    pub sender: String,
    /// Recipients.
    pub recipients: Vec<String>,
    /// Subject (masked).
    pub subject: String,
    /// Who decided.
    pub decided_by: Option<String>,
    /// When.
    pub decided_at: Option<i64>,
    /// Their comment.
    pub comment: Option<String>,
    /// When it was released or discarded.
    pub closed_at: Option<i64>,
    /// The gateway that holds the mail and carries out the decision (its release or discard
    /// command, its spool). `None`: whoever decides carries it out (earlier versions, callers
    /// that hold nothing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
    /// A delayed mail (`action = "delay"`): when it is due it is approved and goes out, where a
    /// hold would expire. The sender may cancel it (reject) or send it at once (approve).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub release_on_expiry: bool,
}

impl Approval {
    /// Whether `who` may see and decide this request: they are listed in `approvers`, or are
    /// in its `approver_group`, or it names no approver and no group. `groups`: the groups
    /// `who` is in; `None` when the caller does not know them (the CLI, the C API), and then a
    /// request that only names a group is open like one that names nobody.
    pub fn assigned_to(&self, who: &str, groups: Option<&[String]>) -> bool {
        // `sender`: the sender confirms (or cancels) their own mail.
        let sender = |x: &String| {
            x.eq_ignore_ascii_case("sender")
                && !self.sender.is_empty()
                && self.sender.eq_ignore_ascii_case(who)
        };
        if self
            .approvers
            .iter()
            .any(|x| x.eq_ignore_ascii_case(who) || sender(x))
        {
            return true;
        }
        match (&self.approver_group, groups) {
            (Some(g), Some(gs)) => gs.iter().any(|x| x == g),
            _ => self.approvers.is_empty(),
        }
    }
}

/// Something that happened to an approval (a view, a download, a decision, a release).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ApprovalEvent {
    /// Unix seconds.
    pub time: i64,
    /// Who.
    pub actor: String,
    /// `created`, `view`, `view_attachment`, `download`, `approve`, `reject`, `expire`, `release`, `discard`.
    pub kind: String,
    /// Details (an attachment location, a comment).
    pub detail: String,
}

/// Storage for records and approvals; also the policy's history.
pub trait Store: History + Send + Sync {
    /// The history as it was before a record was stored (for replay).
    fn history_before(&self, record_id: i64) -> Box<dyn History + '_>;
    /// Stores a record durably; returns its id.
    fn record(&self, rec: &AuditRecord) -> Result<i64>;
    /// Sets the approval id of a record.
    fn set_record_approval(&self, record_id: i64, approval: &str) -> Result<()>;
    /// One record.
    fn get_record(&self, id: i64) -> Result<Option<AuditRecord>>;
    /// Several records by id (in no particular order; ids not found are left out). One
    /// statement on PostgreSQL, for lists such as the console's requests.
    fn get_records(&self, ids: &[i64]) -> Result<Vec<AuditRecord>> {
        let mut out = Vec::with_capacity(ids.len());
        for &id in ids {
            if let Some(r) = self.get_record(id)? {
                out.push(r);
            }
        }
        Ok(out)
    }
    /// Records matching a query, newest first.
    fn search(&self, q: &AuditQuery) -> Result<Vec<AuditRecord>>;
    /// Counts for dashboards.
    fn stats(
        &self,
        since: i64,
        until: i64,
        utc_offset_min: i32,
        top: usize,
        gateway: Option<&str>,
    ) -> Result<Stats>;
    /// Every record since `since`, oldest first.
    fn each_record(&self, since: i64, f: &mut dyn FnMut(AuditRecord)) -> Result<()>;
    /// Stores a new approval.
    fn insert_approval(&self, a: &Approval) -> Result<()>;
    /// One approval.
    fn approval(&self, id: &str) -> Result<Option<Approval>>;
    /// Approvals in a state (all when None), for an approver (all when None), newest first.
    fn approvals(
        &self,
        state: Option<ApprovalState>,
        approver: Option<&str>,
    ) -> Result<Vec<Approval>>;
    /// Updates an approval's state and decision fields, only if its state is still `from`.
    fn transition(&self, a: &Approval, from: ApprovalState) -> Result<bool>;
    /// Appends an event.
    fn add_event(&self, approval: &str, e: &ApprovalEvent) -> Result<()>;
    /// Events of an approval, oldest first.
    fn events(&self, approval: &str) -> Result<Vec<ApprovalEvent>>;
    /// Evidence index: a copy kept until `expires` for `record_id` (the latest expiry wins).
    fn add_evidence(
        &self,
        sha256: &str,
        size: u64,
        expires: i64,
        record_id: i64,
        location: &str,
    ) -> Result<()>;
    /// Evidence kept for a record: (location, SHA-256).
    fn evidence_of(&self, record_id: i64) -> Result<Vec<(String, String)>>;
    /// Evidence whose retention ended before `now`.
    fn expired_evidence(&self, now: i64) -> Result<Vec<String>>;
    /// Forgets an evidence copy (after its file was deleted).
    fn forget_evidence(&self, sha256: &str) -> Result<()>;
    /// Queues a network alert.
    fn outbox_push(&self, sink: &str, payload: &str, next_try: i64) -> Result<i64>;
    /// Takes up to `limit` due alerts, leasing them for `lease` seconds so that another process
    /// does not deliver them too.
    fn outbox_claim(&self, now: i64, lease: i64, limit: usize) -> Result<Vec<OutboxItem>>;
    /// A delivered alert.
    fn outbox_done(&self, id: i64) -> Result<()>;
    /// A failed attempt: next try at `next_try` (-1: given up).
    fn outbox_retry(&self, id: i64, attempts: u32, next_try: i64, error: &str) -> Result<()>;
    /// Queued alerts: (waiting, given up).
    fn outbox_counts(&self) -> Result<(u64, u64)>;

    /// `sqlite` or `postgres`.
    fn backend(&self) -> &'static str;
    /// Decided or expired approvals whose mail `gateway` holds (for its worker), oldest first.
    fn approvals_to_carry_out(&self, gateway: &str) -> Result<Vec<Approval>>;
    /// Pending approvals: those `gateway` holds (and those of no gateway), or all with `None`.
    /// One counting query (the daemons' `holds_waiting` metric asks it at every scrape).
    fn count_pending(&self, gateway: Option<&str>) -> Result<u64> {
        let all = self.approvals(Some(ApprovalState::Pending), None)?;
        Ok(all
            .iter()
            .filter(|a| match (gateway, a.gateway.as_deref()) {
                (Some(me), Some(g)) => g == me,
                _ => true,
            })
            .count() as u64)
    }
    /// Appends an event unless one with the same approval, kind and detail exists (a one-time
    /// link's nonce): `false` when it did. Atomic across processes and hosts.
    fn add_event_once(&self, approval: &str, e: &ApprovalEvent) -> Result<bool>;
    /// A 32-byte secret of the deployment (`approval`: the key of tokens and sign-in links),
    /// made once by whichever process asks first; every process gets the same.
    fn secret(&self, name: &str) -> Result<[u8; 32]>;
    /// Whether evidence copies are kept in the store itself ([`Store::blob_put`]) rather than
    /// in the state directory.
    fn keeps_blobs(&self) -> bool {
        false
    }
    /// Keeps a content-addressed copy (its SHA-256 checked by the caller).
    fn blob_put(&self, _sha256: &str, _data: &[u8]) -> Result<()> {
        Err(WorkflowError::Db("this store keeps no copies".into()))
    }
    /// A kept copy.
    fn blob_get(&self, _sha256: &str) -> Result<Option<Vec<u8>>> {
        Ok(None)
    }
    /// Deletes a kept copy.
    fn blob_delete(&self, _sha256: &str) -> Result<()> {
        Ok(())
    }
    /// Stores a console session under `key` (a hash of its cookie value).
    fn session_put(&self, key: &str, s: &StoredSession) -> Result<()>;
    /// The live session of `key`, its last use set to `now`; `None` (and deleted) when it was
    /// idle for `idle` seconds or is older than `max`.
    fn session_get(
        &self,
        key: &str,
        now: i64,
        idle: i64,
        max: i64,
    ) -> Result<Option<StoredSession>>;
    /// Ends a session.
    fn session_delete(&self, key: &str) -> Result<()>;
    /// Takes a sign-in attempt for `key` in a window of `window` seconds: `Ok(Err(wait))` when
    /// `limit` are counted already, else counts it. Atomic across processes and hosts (two
    /// consoles do not double an attacker's attempts).
    fn attempt(
        &self,
        key: &str,
        limit: u32,
        window: i64,
        now: i64,
    ) -> Result<std::result::Result<(), i64>>;
    /// Gives an attempt back (it succeeded).
    fn attempt_refund(&self, key: &str) -> Result<()>;
    /// Forgets a key's attempts.
    fn attempts_clear(&self, key: &str) -> Result<()>;
    /// True for exactly one caller per `every` seconds across every process on the store (the
    /// daily purge, the expiry sweep): the caller that gets `true` does the work.
    fn take_turn(&self, name: &str, every: i64, now: i64) -> Result<bool>;
    /// Deletes what is older than the cutoffs of `r` (records and their rows, final approvals
    /// and their events) and caps evidence retention at `r.evidence_days`; returns what it did
    /// (the caller purges the evidence copies, then logs the purge).
    fn purge(&self, r: &Retention, now: i64, actor: &str) -> Result<PurgeReport>;
    /// Records a purge in the purge log.
    fn log_purge(&self, rep: &PurgeReport) -> Result<()>;
    /// The latest purges, newest first.
    fn purges(&self, limit: usize) -> Result<Vec<PurgeReport>>;
    /// Records an administrator's action (a search, an export, a view of a message, evidence or
    /// an attachment, a policy change) in the admin log, durably, before it is carried out.
    fn log_admin(&self, a: &AdminAction) -> Result<()>;
    /// Stores a download link ([`links`]).
    fn link_add(&self, l: &links::DownloadLink) -> Result<()>;
    /// The link whose token has this SHA-256.
    fn link_get(&self, token_sha256: &str) -> Result<Option<links::DownloadLink>>;
    /// Counts a download if the link has not expired at `now` and has downloads left, in one
    /// statement (two clients cannot both take the last one); `false` when it may not.
    fn link_take(&self, token_sha256: &str, now: i64) -> Result<bool>;
    /// Counts a wrong password.
    fn link_fail(&self, token_sha256: &str) -> Result<()>;
    /// Logs a download attempt.
    fn link_log(&self, e: &links::DownloadEvent) -> Result<()>;
    /// A record's links and their download attempts (oldest first).
    fn links_of(
        &self,
        record_id: i64,
    ) -> Result<(Vec<links::DownloadLink>, Vec<links::DownloadEvent>)>;
    /// The admin log, newest first: one actor's, or everyone's.
    fn admin_actions(&self, actor: Option<&str>, limit: usize) -> Result<Vec<AdminAction>>;

    /// Stores a new enrolment token.
    fn enrol_token_add(&self, t: &fleet::EnrolToken) -> Result<()>;
    /// Enrolment tokens, newest first.
    fn enrol_tokens(&self, limit: usize) -> Result<Vec<fleet::EnrolToken>>;
    /// Uses the token with SHA-256 `token_sha256` (unused, not expired at `now`) to enrol
    /// `agent`, in one transaction: a token works once, however many try at once.
    fn enrol(&self, token_sha256: &str, now: i64, agent: &fleet::Agent)
        -> Result<fleet::Enrolment>;
    /// One agent.
    fn agent(&self, name: &str) -> Result<Option<fleet::Agent>>;
    /// Every agent, by name.
    fn agents(&self) -> Result<Vec<fleet::Agent>>;
    /// Notes an agent's request and what it reports about itself.
    fn agent_seen(&self, name: &str, now: i64, status: &fleet::AgentStatus) -> Result<()>;
    /// Revokes an agent's credential; false when it was not enrolled or already revoked.
    fn agent_revoke(&self, name: &str, now: i64) -> Result<bool>;
    /// Stores a new policy for the agents; returns its version.
    fn fleet_policy_put(&self, text: &str, actor: &str, now: i64) -> Result<i64>;
    /// The agents' current policy (the latest upload).
    fn fleet_policy(&self) -> Result<Option<fleet::FleetPolicy>>;
    /// Stores an agent's records (already numbered past `after`, gateway set) and the approval
    /// requests of the mails it holds (`holds`: the index of the record in `recs` and the
    /// request, whose `record_id` is set here, with its `created` event), and advances its
    /// last record number from `after` to `last`, all in one transaction; `Ok(None)` when its
    /// number is no longer `after` (a concurrent upload took them) or it is revoked. Returns
    /// the records' ids.
    fn ingest(
        &self,
        agent: &str,
        after: i64,
        last: i64,
        recs: &[AuditRecord],
        holds: &[(usize, Approval)],
        now: i64,
    ) -> Result<Option<Vec<i64>>>;
}

/// A console session as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredSession {
    /// Account name (or the approver address of a sign-in link).
    pub user: String,
    /// `approver` or `admin`.
    pub role: String,
    /// Approver groups.
    pub groups: Vec<String>,
    /// CSRF token of the session's forms.
    pub csrf: String,
    /// A sign-in link's session sees only this request.
    pub scope: Option<String>,
    /// Signed in at (Unix seconds).
    pub created: i64,
    /// Last request (Unix seconds).
    pub last: i64,
}

/// How long the store keeps things, set where the store is configured (`[dlp]` in the
/// integrations' files, `--audit-days` and kin in the CLI). A rule's `evidence_days` is capped by
/// `evidence_days`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Retention {
    /// Audit records (and their rows, rate counters): days.
    pub audit_days: u32,
    /// Evidence copies: most days a copy is kept.
    pub evidence_days: u32,
    /// Decided approvals and their events: days after they were created.
    pub approval_days: u32,
}

/// Default audit retention: five years (Japanese companies commonly keep mail logs three to
/// five years; records were never deleted before this setting existed).
pub const DEFAULT_AUDIT_DAYS: u32 = 1825;
/// Default evidence retention cap: one year.
pub const DEFAULT_EVIDENCE_DAYS: u32 = 365;
/// Default approval retention: five years.
pub const DEFAULT_APPROVAL_DAYS: u32 = 1825;

impl Default for Retention {
    fn default() -> Retention {
        Retention {
            audit_days: DEFAULT_AUDIT_DAYS,
            evidence_days: DEFAULT_EVIDENCE_DAYS,
            approval_days: DEFAULT_APPROVAL_DAYS,
        }
    }
}

/// One entry of the admin log: who did what to what, when, from where. Values are what the
/// administrator asked for (a search's filters, a record id), never message contents.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminAction {
    /// When (Unix seconds).
    pub time: i64,
    /// Who: the console account, or the CLI's `user@host`.
    pub actor: String,
    /// What: `audit_search`, `audit_export`, `record_view`, `message_view`, `attachment_view`,
    /// `attachment_download`, `request_view`, `policy_upload`, `enrol_token`, `agent_revoke`,
    /// `admin_log_view` ...
    pub action: String,
    /// What it was done to: a record or request id, a file, an agent, a policy version.
    pub target: String,
    /// More: a search's filters, a file's name.
    pub detail: String,
    /// The client's address (console) or `cli`.
    pub client: String,
}

/// What a purge did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PurgeReport {
    /// When (Unix seconds).
    pub time: i64,
    /// Which process (`host/program`) or person.
    pub actor: String,
    /// Records older than this were deleted.
    pub audit_before: i64,
    /// Final approvals created before this were deleted.
    pub approvals_before: i64,
    /// Records deleted.
    pub records: u64,
    /// Whole monthly partitions dropped (PostgreSQL).
    pub partitions: u64,
    /// Approvals deleted.
    pub approvals: u64,
    /// Evidence copies whose retention ended.
    pub evidence: u64,
}

/// The frequent-partner list of a store, asked of the database at most every 10 minutes for
/// live mail (a replay of old mail asks every time).
#[derive(Default)]
pub(crate) struct FrequentCache(std::sync::Mutex<Option<(std::time::Instant, Vec<String>)>>);

impl FrequentCache {
    pub(crate) fn get(
        &self,
        until: i64,
        ask: impl FnOnce() -> crate::policy::HistoryResult<Vec<String>>,
    ) -> crate::policy::HistoryResult<Vec<String>> {
        const FRESH: std::time::Duration = std::time::Duration::from_secs(600);
        if (crate::timeutil::now() - until).abs() > 600 {
            return ask();
        }
        let mut g = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((at, v)) = &*g {
            if at.elapsed() < FRESH {
                return Ok(v.clone());
            }
        }
        let v = ask()?;
        *g = Some((std::time::Instant::now(), v.clone()));
        Ok(v)
    }
}

/// Where the workflow keeps its state.
#[derive(Debug, Clone)]
pub struct WorkflowConfig {
    /// State directory (database, evidence, key).
    pub state_dir: PathBuf,
    /// Alert sinks.
    pub alerts: AlertConfig,
    /// Command run when a held message is approved (`{queue_id}`, `{approval}` substituted).
    pub release_command: Option<String>,
    /// Command run when a held message is rejected or expires.
    pub discard_command: Option<String>,
    /// Command that sends the sender a notice when a request is rejected or expires.
    pub notify_command: Option<String>,
    /// From address of those notices (`postmaster` when unset).
    pub notify_from: Option<String>,
    /// Local time offset for stats, in minutes.
    pub utc_offset_min: i32,
    /// The web console's address: approvers are mailed a one-time sign-in link to each new
    /// request (through `notify_command`) when set.
    pub console_url: Option<String>,
    /// Let a sender approve their own held mail (a site with a single administrator). Off by
    /// default: approving one's own mail is refused; when allowed it is recorded as a
    /// `self_approval` event.
    pub allow_self_approval: bool,
    /// The shared store: `None` is SQLite in the state directory; `postgres://...` a database
    /// server shared by every gateway and console.
    pub store: Option<StoreConfig>,
    /// This process's gateway name (recorded with every record; default: the host name).
    pub gateway: Option<String>,
    /// Approvals opened here are carried out here: this process holds the mail (the milter's
    /// MTA queue, the proxy's spool) and runs a worker ([`Workflow::carry_out`]) for the
    /// decisions made anywhere on the store.
    pub carries_out: bool,
    /// With `carries_out`: the decisions are carried out by another process of this gateway
    /// (a privileged release helper, `ping32dlp-milter --release-helper`), so
    /// [`Workflow::maintain`] here leaves them alone. The holds still name this gateway.
    pub carry_out_elsewhere: bool,
    /// Retention of the store.
    pub retention: Retention,
    /// The weekly report mailed to admins (through `notify_command`).
    pub reports: crate::policy::ReportSchedule,
}

impl WorkflowConfig {
    /// A state directory with no alert sinks and no release commands.
    pub fn new(state_dir: impl Into<PathBuf>) -> WorkflowConfig {
        WorkflowConfig {
            state_dir: state_dir.into(),
            alerts: AlertConfig::default(),
            release_command: None,
            discard_command: None,
            notify_command: None,
            notify_from: None,
            utc_offset_min: 540,
            console_url: None,
            allow_self_approval: false,
            store: None,
            gateway: None,
            carries_out: false,
            carry_out_elsewhere: false,
            retention: Retention::default(),
            reports: crate::policy::ReportSchedule::default(),
        }
    }

    /// A state directory with a policy's alert sinks, approval commands, notices and time zone.
    pub fn from_policy(state_dir: impl Into<PathBuf>, p: &crate::policy::Policy) -> WorkflowConfig {
        WorkflowConfig {
            allow_self_approval: p.allow_self_approval,
            state_dir: state_dir.into(),
            alerts: p.alerts.clone(),
            release_command: p.release_command.clone(),
            discard_command: p.discard_command.clone(),
            notify_command: p.notify_command.clone(),
            notify_from: p.notify_from.clone(),
            utc_offset_min: p.utc_offset_min,
            console_url: p.console_url.clone(),
            store: None,
            gateway: None,
            carries_out: false,
            carry_out_elsewhere: false,
            retention: Retention::default(),
            reports: p.reports.clone(),
        }
    }
}

/// The most a release, discard or notify command may take before it is killed.
const COMMAND_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// Runs a command line with `sh -c`, feeding `stdin` if given; fails on a non-zero exit, a
/// failure to start, or after [`COMMAND_TIMEOUT`] (the command is killed).
fn run_shell(line: &str, stdin: Option<&[u8]>) -> std::result::Result<(), String> {
    use std::io::Write as _;
    use std::process::{Command, Stdio};
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(line)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    if let (Some(data), Some(mut pipe)) = (stdin, child.stdin.take()) {
        let _ = pipe.write_all(data); // a command that exits early shows in its status
    }
    let start = std::time::Instant::now();
    loop {
        match child.try_wait().map_err(|e| e.to_string())? {
            Some(status) if status.success() => return Ok(()),
            Some(status) => {
                let mut err = String::new();
                if let Some(mut e) = child.stderr.take() {
                    use std::io::Read as _;
                    let _ = e.read_to_string(&mut err);
                }
                let err: String = err.trim().chars().take(300).collect();
                return Err(format!("{status}: {err}"));
            }
            None if start.elapsed() > COMMAND_TIMEOUT => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("killed after {} s", COMMAND_TIMEOUT.as_secs()));
            }
            None => std::thread::sleep(std::time::Duration::from_millis(20)),
        }
    }
}

/// The sender's notice of a held mail that will not be sent: Japanese and English, UTF-8.
fn notice_message(a: &Approval, why: ApprovalState, from: &str, utc_offset_min: i32) -> Vec<u8> {
    let when = crate::timeutil::rfc3339(a.created, utc_offset_min);
    let to = a.recipients.join(", ");
    let comment = a.comment.as_deref().filter(|c| !c.is_empty());
    let (reason_ja, reason_en) = match why {
        ApprovalState::Expired => (
            "承認の期限までに承認されませんでした。".to_string(),
            "it was not approved before the request expired.".to_string(),
        ),
        _ => {
            let who = a.decided_by.as_deref().unwrap_or("approver");
            (
                format!(
                    "承認者 {who} が却下しました。{}",
                    comment
                        .map(|c| format!("コメント: {c}"))
                        .unwrap_or_default()
                ),
                format!(
                    "{who} rejected it.{}",
                    comment
                        .map(|c| format!(" Comment: {c}"))
                        .unwrap_or_default()
                ),
            )
        }
    };
    let subject = "【ping32dlp】メールは送信されませんでした / Your message was not sent";
    let body = format!(
        "{when} に送信されたメール「{s}」(宛先: {to}) は、情報漏洩対策のポリシー ({rule}) により保留され、送信されませんでした。\r\n\
         理由: {reason_ja}\r\n\
         申請番号: {id}\r\n\
         \r\n\
         Your message \"{s}\" to {to} sent at {when} was held by the data-loss-prevention policy ({rule}) and was not sent: {reason_en}\r\n\
         Request: {id}\r\n",
        s = a.subject,
        rule = a.rule,
        id = a.id,
    );
    auto_mail(from, &a.sender, subject, &a.id, &body)
}

/// An automatic plain-text mail about a request, with its headers (the notify command's input).
fn auto_mail(from: &str, to: &str, subject: &str, approval: &str, body: &str) -> Vec<u8> {
    format!(
        "From: {from}\r\nTo: {to}\r\nSubject: {}\r\nAuto-Submitted: auto-generated\r\n\
         X-Ping32DLP-Approval: {approval}\r\nMIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=UTF-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n{body}",
        crate::text::encode_header_text(subject, false)
    )
    .into_bytes()
}

/// The mail that asks an approver to decide, with their one-time sign-in link.
fn approver_message(
    a: &Approval,
    to: &str,
    from: &str,
    link: &str,
    utc_offset_min: i32,
) -> Vec<u8> {
    let when = crate::timeutil::rfc3339(a.created, utc_offset_min);
    let until = crate::timeutil::rfc3339(a.expires, utc_offset_min);
    let rcpts = a.recipients.join(", ");
    let subject = format!("【ping32dlp】承認依頼 / Approval request: {}", a.subject);
    let body = format!(
        "{sender} さんが {when} に送信したメールが情報漏洩対策のポリシー ({rule}) により保留されています。\r\n\
         宛先: {rcpts}\r\n\
         件名: {s}\r\n\
         {until} までに承認または却下してください。期限を過ぎると送信されません。\r\n\
         \r\n\
         {link}\r\n\
         (このリンクは一度だけ使えます。/ This link works once.)\r\n\
         \r\n\
         A message from {sender} sent at {when} to {rcpts} (\"{s}\") is held by the data-loss-prevention policy ({rule}). Approve or reject it before {until}; after that it is not sent.\r\n\
         Request: {id}\r\n",
        sender = a.sender,
        s = a.subject,
        rule = a.rule,
        id = a.id,
    );
    auto_mail(from, to, &subject, &a.id, &body)
}

/// The sender's own notice: a delayed mail they can cancel or send at once, or a mail held for
/// their own confirmation; with the external recipients and the attached files.
fn sender_message(
    a: &Approval,
    rec: Option<&AuditRecord>,
    from: &str,
    link: &str,
    utc_offset_min: i32,
) -> Vec<u8> {
    let until = crate::timeutil::rfc3339(a.expires, utc_offset_min);
    let external: Vec<&str> = match rec {
        Some(r) => r
            .recipients
            .iter()
            .filter(|x| x.external)
            .map(|x| x.address.as_str())
            .collect(),
        None => a.recipients.iter().map(String::as_str).collect(),
    };
    let files: Vec<&str> = rec
        .map(|r| {
            r.attachments
                .iter()
                .filter(|x| x.depth == 0)
                .map(|x| x.name.as_str())
                .collect()
        })
        .unwrap_or_default();
    let list = |v: &[&str]| {
        if v.is_empty() {
            "(なし / none)".to_string()
        } else {
            v.join(", ")
        }
    };
    let (subject, ja, en) = if a.release_on_expiry {
        (
            format!("【ping32dlp】送信保留中 / Delayed: {}", a.subject),
            format!("このメールは {until} に送信されます。宛先や添付ファイルに誤りがあれば、それまでに次のリンクから送信を取り消してください (すぐに送信することもできます)。"),
            format!("This message goes out at {until}. If a recipient or a file is wrong, cancel it from the link below before then (or send it now)."),
        )
    } else {
        (
            format!("【ping32dlp】送信前の確認 / Please confirm: {}", a.subject),
            format!("このメールは送信前にあなたの確認が必要です。社外の宛先と添付ファイルを確認し、次のリンクから送信または取り消しをしてください ({until} まで)。"),
            format!("This message needs your confirmation before it goes out. Check the external recipients and files, then send or cancel it from the link below (before {until})."),
        )
    };
    let body = format!(
        "{ja}\r\n\
         件名: {s}\r\n\
         社外の宛先 / External recipients: {ext}\r\n\
         添付ファイル / Files: {files}\r\n\
         \r\n\
         {link}\r\n\
         (このリンクは一度だけ使えます。/ This link works once.)\r\n\
         \r\n\
         {en}\r\n\
         Request: {id}\r\n",
        s = a.subject,
        ext = list(&external),
        files = list(&files),
        id = a.id,
    );
    auto_mail(from, &a.sender, &subject, &a.id, &body)
}

/// This machine's name (`/proc/sys/kernel/hostname`, `$HOSTNAME`), `localhost` when unknown:
/// the default gateway name.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// Where the shared store is and how to reach it (`store = "postgres://..."`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreConfig {
    /// `postgres://user@host:port/db` (`?sslmode=require` for TLS). A password in the URL is
    /// accepted but better kept in `password_file` or the environment.
    pub url: String,
    /// A file holding the password (first line); else `$PING32DLP_STORE_PASSWORD`, else
    /// `$PGPASSWORD`, else the URL's.
    pub password_file: Option<PathBuf>,
    /// CA certificates (PEM) to verify the server with when TLS is used; default: the
    /// system's trust store.
    pub ca_file: Option<PathBuf>,
    /// Connections of this process (a writer takes one more).
    pub pool_size: u32,
    /// Seconds to wait for a connection.
    pub connect_timeout_seconds: u64,
    /// Seconds a statement may run before the server cancels it.
    pub statement_timeout_seconds: u64,
}

impl StoreConfig {
    /// A store URL with the default pool and timeouts.
    pub fn new(url: impl Into<String>) -> StoreConfig {
        StoreConfig {
            url: url.into(),
            password_file: None,
            ca_file: None,
            pool_size: 8,
            connect_timeout_seconds: 5,
            statement_timeout_seconds: 10,
        }
    }

    /// The URL without its password, for logs.
    pub fn redacted(&self) -> String {
        redact_url(&self.url)
    }
}

/// A URL with the password part (`user:secret@`) replaced by `user:***@`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (auth, host) = match rest.rsplit_once('@') {
        Some((a, h)) => (a, h),
        None => return url.to_string(),
    };
    let user = auth.split_once(':').map_or(auth, |(u, _)| u);
    if auth.contains(':') {
        format!("{scheme}://{user}:***@{host}")
    } else {
        url.to_string()
    }
}

/// Opens the store: SQLite in `state_dir` when `store` is `None`, else the database server it
/// names (migrated at open under a lock, so that gateways starting at once do not race), or,
/// for `https://`, this agent's local store with a forwarder to that fleet server
/// ([`agent`]).
pub fn open_store(state_dir: &Path, store: Option<&StoreConfig>) -> Result<Arc<dyn Store>> {
    match store {
        None => {
            private::create_dir(state_dir)?;
            let db = state_dir.join("audit.db");
            private::precreate_file(&db)?;
            Ok(Arc::new(SqliteStore::open(&db)?))
        }
        Some(c) if c.url.starts_with("postgres://") || c.url.starts_with("postgresql://") => {
            Ok(Arc::new(postgres::PgStore::open(c)?))
        }
        Some(c) if agent::is_server_url(&c.url) => Ok(agent::open_agent_store(state_dir, c)?),
        Some(c) => Err(WorkflowError::Db(format!(
            "store `{}`: use postgres://user@host:port/database, a fleet server https://host:port (an endpoint agent), or leave it out for SQLite in the state directory",
            c.redacted()
        ))),
    }
}

/// The default state directory: `$PING32DLP_STATE_DIR`, else `/var/lib/ping32dlp` for root,
/// else `$XDG_STATE_HOME/ping32dlp` or `~/.local/state/ping32dlp`.
pub fn default_state_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("PING32DLP_STATE_DIR") {
        return PathBuf::from(d);
    }
    #[cfg(unix)]
    {
        if is_root() {
            return PathBuf::from("/var/lib/ping32dlp");
        }
    }
    if let Some(x) = std::env::var_os("XDG_STATE_HOME") {
        return PathBuf::from(x).join("ping32dlp");
    }
    std::env::var_os("HOME").map_or_else(
        || PathBuf::from("ping32dlp-state"),
        |h| PathBuf::from(h).join(".local/state/ping32dlp"),
    )
}

#[cfg(unix)]
fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

/// What [`Workflow::maintain`] did.
#[derive(Debug, Default)]
pub struct Maintenance {
    /// Requests that expired.
    pub expired: Vec<Approval>,
    /// This gateway's requests released or discarded.
    pub carried_out: Vec<Approval>,
    /// The daily purge, when it was this process's turn.
    pub purge: Option<PurgeReport>,
    /// The weekly report, when it was sent by this process: its recipients.
    pub report_sent_to: Vec<String>,
    /// What failed.
    pub errors: Vec<String>,
}

/// What `Workflow::process` did.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The audit record id.
    pub record_id: i64,
    /// The approval opened for a held mail.
    pub approval: Option<Approval>,
}

/// The workflow: store, evidence, approvals, alerts.
pub struct Workflow {
    store: Arc<dyn Store>,
    /// On an endpoint agent: history asked of the fleet server.
    agent_history: Option<Arc<agent::AgentHistory>>,
    evidence: EvidenceStore,
    alerts: AlertSinks,
    key: [u8; 32],
    cfg: WorkflowConfig,
    permission_fixes: Vec<String>,
}

type HmacSha256 = Hmac<sha2::Sha256>;

impl Workflow {
    /// Opens (creating if needed) the state directory and its SQLite database. The directory
    /// is made private (0700, files 0600) and an existing one is checked and repaired; what
    /// was repaired is in [`Workflow::permission_fixes`].
    pub fn open(cfg: WorkflowConfig) -> Result<Workflow> {
        if let Some(c) = cfg.store.as_ref().filter(|c| agent::is_server_url(&c.url)) {
            let (store, history) = agent::open_agent(&cfg.state_dir, c)?;
            let mut w = Workflow::with_store(cfg, store)?;
            w.agent_history = Some(history);
            return Ok(w);
        }
        let store = open_store(&cfg.state_dir, cfg.store.as_ref())?;
        Workflow::with_store(cfg, store)
    }

    /// On an endpoint agent, the history that asks the fleet server first.
    pub fn agent_history(&self) -> Option<&agent::AgentHistory> {
        self.agent_history.as_deref()
    }

    /// A workflow over another store.
    pub fn with_store(cfg: WorkflowConfig, store: Arc<dyn Store>) -> Result<Workflow> {
        private::create_dir(&cfg.state_dir)?;
        let permission_fixes = private::secure_tree(&cfg.state_dir)?;
        let evidence = EvidenceStore::open(&cfg.state_dir.join("evidence"), store.clone())?;
        let key = store.secret("approval")?;
        let alerts = AlertSinks::new(cfg.alerts.clone(), store.clone())?;
        Ok(Workflow {
            store,
            agent_history: None,
            evidence,
            alerts,
            key,
            cfg,
            permission_fixes,
        })
    }

    /// Files and directories of the state directory that other users could read when it was
    /// opened, and were made private (`path: 0644 -> 0600`). Integrations log them as a
    /// warning.
    pub fn permission_fixes(&self) -> &[String] {
        &self.permission_fixes
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The evidence store.
    pub fn evidence(&self) -> &EvidenceStore {
        &self.evidence
    }

    /// The alert sinks.
    pub fn alerts(&self) -> &AlertSinks {
        &self.alerts
    }

    /// The configuration.
    pub fn config(&self) -> &WorkflowConfig {
        &self.cfg
    }

    /// Records a verdict durably, keeps evidence when a matched rule asks for it, opens the
    /// approval of a held mail (keeping `raw` when the integration cannot hold it itself), and
    /// sends alerts. Returns only after the record is committed.
    pub fn process(
        &self,
        mut rec: AuditRecord,
        verdict: &Verdict,
        attachments: &[(&str, &[u8])],
        keep_raw: Option<&[u8]>,
    ) -> Result<Outcome> {
        // A delay is for mail: an upload cannot wait (the hook lets it through, recorded).
        let delayed = verdict.action == Action::Delay && rec.channel != "webmail";
        let approval = if verdict.action == Action::Hold || delayed {
            let id = random_hex(12);
            rec.approval = Some(id.clone());
            Some(id)
        } else {
            None
        };
        rec.gateway = Some(self.gateway_name());
        let record_id = self.store.record(&rec)?;
        rec.id = record_id;
        if let Some(days) = verdict.evidence_days {
            // The store's retention caps every rule's.
            let days = days.min(self.cfg.retention.evidence_days);
            for (loc, data) in attachments {
                self.evidence.put(data, days, record_id, loc)?;
            }
        }
        let approval = match approval {
            Some(id) => {
                let rule = verdict
                    .matched
                    .iter()
                    .filter(|m| {
                        m.action == verdict.action && m.mode == crate::policy::Mode::Enforce
                    })
                    .map(|m| m.rule.clone())
                    .next()
                    .unwrap_or_default();
                let a = Approval {
                    id: id.clone(),
                    record_id,
                    state: ApprovalState::Pending,
                    created: rec.time,
                    expires: rec.time + verdict.expires.max(if delayed { 1 } else { 60 }),
                    approvers: verdict.approvers.clone(),
                    approver_group: verdict.approver_group.clone(),
                    rule,
                    channel: rec.channel.clone(),
                    queue_id: rec.queue_id.clone(),
                    sender: rec.sender.clone(),
                    recipients: rec.recipients.iter().map(|r| r.address.clone()).collect(),
                    subject: rec.subject.clone(),
                    decided_by: None,
                    decided_at: None,
                    comment: None,
                    closed_at: None,
                    gateway: self.cfg.carries_out.then(|| self.gateway_name()),
                    release_on_expiry: delayed,
                };
                self.store.insert_approval(&a)?;
                if let Some(raw) = keep_raw {
                    self.put_held(&id, raw)?;
                }
                self.store.add_event(
                    &id,
                    &ApprovalEvent {
                        time: rec.time,
                        actor: "system".into(),
                        kind: "created".into(),
                        detail: a.rule.clone(),
                    },
                )?;
                self.notify_approvers(&a)?;
                Some(a)
            }
            None => None,
        };
        if self.alerts.wants(verdict.action) {
            self.alerts.send(&rec)?;
        }
        Ok(Outcome {
            record_id,
            approval,
        })
    }

    fn held_path(&self, id: &str) -> Result<PathBuf> {
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(WorkflowError::NotFound(id.into()));
        }
        Ok(self.cfg.state_dir.join("held").join(format!("{id}.eml")))
    }

    /// Keeps a held message (for integrations that cannot hold mail themselves) as a file under
    /// the state directory, written durably. The database never holds message content.
    fn put_held(&self, id: &str, data: &[u8]) -> Result<()> {
        use std::io::Write;
        let path = self.held_path(id)?;
        let dir = path.parent().expect("held path has a parent");
        private::create_dir(dir)?;
        let tmp = path.with_extension("tmp");
        (|| -> std::io::Result<()> {
            let mut f = private::file_options()
                .create(true)
                .truncate(true)
                .open(&tmp)?;
            f.write_all(data)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &path)?;
            std::fs::File::open(dir)?.sync_all()
        })()
        .map_err(|e| WorkflowError::Io(format!("{}: {e}", path.display())))
    }

    /// A held message kept by [`Workflow::process`] (`None` when the MTA holds it).
    pub fn held_message(&self, id: &str) -> Result<Option<Vec<u8>>> {
        match std::fs::read(self.held_path(id)?) {
            Ok(d) => Ok(Some(d)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(WorkflowError::Io(e.to_string())),
        }
    }

    fn delete_held(&self, id: &str) -> Result<()> {
        match std::fs::remove_file(self.held_path(id)?) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(WorkflowError::Io(e.to_string()))
            }
            _ => Ok(()),
        }
    }

    /// A link token for an approval: HMAC-SHA-256 over its id and expiry with the install's key.
    pub fn token(&self, a: &Approval) -> String {
        hex(&self.mac(&format!("approval:{}:{}", a.id, a.expires)))
    }

    /// Checks a link token (constant time).
    pub fn verify_token(&self, a: &Approval, token: &str) -> bool {
        let want = self.mac(&format!("approval:{}:{}", a.id, a.expires));
        unhex(token).is_some_and(|got| crate::text::constant_time_eq(&want, &got))
    }

    /// HMAC-SHA-256 of `msg` with the install's key.
    fn mac(&self, msg: &str) -> Vec<u8> {
        let mut m = HmacSha256::new_from_slice(&self.key).expect("HMAC takes any key length");
        m.update(msg.as_bytes());
        m.finalize().into_bytes().to_vec()
    }

    /// A one-time sign-in link token for `approver` to request `a`: a random nonce and an
    /// HMAC-SHA-256 over the request id, the approver, the request's expiry and the nonce.
    pub fn link_token(&self, a: &Approval, approver: &str) -> String {
        let nonce = random_hex(8);
        format!("{nonce}.{}", hex(&self.link_mac(a, approver, &nonce)))
    }

    fn link_mac(&self, a: &Approval, approver: &str, nonce: &str) -> Vec<u8> {
        self.mac(&format!(
            "link:{}:{}:{}:{nonce}",
            a.id,
            approver.to_lowercase(),
            a.expires
        ))
    }

    /// The sign-in link of `approver` to request `a` on the console at `base`.
    pub fn link_url(&self, base: &str, a: &Approval, approver: &str) -> String {
        format!(
            "{}/link/{}?u={}&t={}",
            base.trim_end_matches('/'),
            a.id,
            crate::text::percent_encode(approver),
            self.link_token(a, approver)
        )
    }

    /// Uses a sign-in link once: checks its signature (constant time), that the request has
    /// not expired and that the link was not used before, and records its use (`link_signin`).
    /// Returns the request.
    pub fn use_link(&self, id: &str, approver: &str, token: &str) -> Result<Approval> {
        let bad = || WorkflowError::Forbidden("the sign-in link is not valid".into());
        let a = self.store.approval(id)?.ok_or_else(bad)?;
        let (nonce, mac) = token.split_once('.').ok_or_else(bad)?;
        if nonce.len() != 16 || !nonce.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad());
        }
        let want = self.link_mac(&a, approver, nonce);
        if !unhex(mac).is_some_and(|got| crate::text::constant_time_eq(&want, &got)) {
            return Err(bad());
        }
        if a.expires <= crate::timeutil::now() {
            return Err(WorkflowError::Forbidden(
                "the sign-in link has expired with its request".into(),
            ));
        }
        // Used once, whichever console process or host sees it first: the store refuses a
        // second event with the same nonce.
        let used = format!("link {nonce}");
        let first = self.store.add_event_once(
            id,
            &ApprovalEvent {
                time: crate::timeutil::now(),
                actor: approver.into(),
                kind: "link_signin".into(),
                detail: used,
            },
        )?;
        if !first {
            return Err(WorkflowError::Forbidden(
                "the sign-in link was used already; ask for a new one or sign in".into(),
            ));
        }
        Ok(a)
    }

    /// Tells the approvers of a request made elsewhere (a mail held on an endpoint agent's PC,
    /// uploaded to the fleet server) as if it had been made here: [`Self::notify_approvers`].
    pub fn announce(&self, a: &Approval) -> Result<()> {
        self.notify_approvers(a)
    }

    /// Mails every approver with an address a one-time sign-in link to a new request (when
    /// the console's address and the notify command are set). Outcomes are events.
    fn notify_approvers(&self, a: &Approval) -> Result<()> {
        let (Some(base), Some(cmd)) = (&self.cfg.console_url, &self.cfg.notify_command) else {
            return Ok(());
        };
        let from = self.cfg.notify_from.as_deref().unwrap_or("postmaster");
        // `sender` among the approvers: the sender gets a link to confirm or cancel (a
        // delayed mail, or self-confirmation), listing the external recipients and files.
        let sender = a
            .approvers
            .iter()
            .any(|w| w.eq_ignore_ascii_case("sender"))
            .then(|| a.sender.clone())
            .filter(|s| s.contains('@'));
        let mut to: Vec<String> = a
            .approvers
            .iter()
            .filter(|w| w.contains('@'))
            .cloned()
            .collect();
        to.extend(sender.clone());
        for who in &to {
            let link = self.link_url(base, a, who);
            let msg = if Some(who) == sender.as_ref() {
                let rec = self.store.get_record(a.record_id)?;
                sender_message(a, rec.as_ref(), from, &link, self.cfg.utc_offset_min)
            } else {
                approver_message(a, who, from, &link, self.cfg.utc_offset_min)
            };
            let detail = match run_shell(cmd, Some(&msg)) {
                Ok(()) => format!("sign-in link sent to {who}"),
                Err(e) => format!("FAILED: link to {who}: {cmd}: {e}"),
            };
            self.store.add_event(
                &a.id,
                &ApprovalEvent {
                    time: crate::timeutil::now(),
                    actor: "system".into(),
                    kind: "notify_approver".into(),
                    detail,
                },
            )?;
        }
        Ok(())
    }

    /// Records that `actor` looked at an approval (or one of its attachments: `view_attachment`,
    /// `download` with the location as detail).
    pub fn record_view(&self, id: &str, actor: &str, kind: &str, detail: &str) -> Result<()> {
        if self.store.approval(id)?.is_none() {
            return Err(WorkflowError::NotFound(id.into()));
        }
        self.store.add_event(
            id,
            &ApprovalEvent {
                time: crate::timeutil::now(),
                actor: actor.into(),
                kind: kind.into(),
                detail: detail.into(),
            },
        )
    }

    /// Decides a pending approval. `approver` must be assigned to it
    /// ([`Approval::assigned_to`], groups unknown) or `admin` is true. A second decision is
    /// refused. Runs the release or discard command.
    pub fn decide(
        &self,
        id: &str,
        approver: &str,
        approve: bool,
        comment: &str,
        admin: bool,
    ) -> Result<Approval> {
        self.decide_as(id, approver, None, approve, comment, admin)
    }

    /// [`Workflow::decide`] for an approver whose groups are known (`groups`).
    pub fn decide_as(
        &self,
        id: &str,
        approver: &str,
        groups: Option<&[String]>,
        approve: bool,
        comment: &str,
        admin: bool,
    ) -> Result<Approval> {
        let now = crate::timeutil::now();
        self.expire_due(now)?;
        let mut a = self
            .store
            .approval(id)?
            .ok_or_else(|| WorkflowError::NotFound(id.into()))?;
        if a.state != ApprovalState::Pending {
            return Err(WorkflowError::AlreadyDecided(format!(
                "{id} is {}",
                a.state.as_str()
            )));
        }
        if !admin && !a.assigned_to(approver, groups) {
            return Err(WorkflowError::Forbidden(format!(
                "{approver} is not an approver of {id}"
            )));
        }
        let own = approve && self.is_own(&a, approver)?;
        // A sender confirming their own mail is a feature only where the rule names the sender
        // (`approvers = ["sender"]`) or the site allows it; anywhere else it defeats the hold.
        let named = a.approvers.iter().any(|x| x.eq_ignore_ascii_case("sender"));
        if own && !named && !self.cfg.allow_self_approval {
            return Err(WorkflowError::Forbidden(format!(
                "{approver} sent {id} and may not approve it (another approver must)"
            )));
        }
        a.state = if approve {
            ApprovalState::Approved
        } else {
            ApprovalState::Rejected
        };
        a.decided_by = Some(approver.to_string());
        a.decided_at = Some(now);
        a.comment = (!comment.is_empty()).then(|| comment.to_string());
        if !self.store.transition(&a, ApprovalState::Pending)? {
            return Err(WorkflowError::AlreadyDecided(id.into()));
        }
        self.store.add_event(
            id,
            &ApprovalEvent {
                time: now,
                actor: approver.into(),
                kind: if approve { "approve" } else { "reject" }.into(),
                detail: comment.into(),
            },
        )?;
        if own {
            self.store.add_event(
                id,
                &ApprovalEvent {
                    time: now,
                    actor: approver.into(),
                    kind: "self_approval".into(),
                    detail: if named {
                        "the rule names the sender as approver".into()
                    } else {
                        "allowed by allow_self_approval".into()
                    },
                },
            )?;
        }
        // The gateway that holds the mail carries the decision out (its worker); a request
        // without one is carried out here.
        if a.gateway.is_none() {
            self.close(&mut a)?;
        }
        Ok(a)
    }

    /// Did `who` send the held mail (its sender address or its authenticated user)?
    fn is_own(&self, a: &Approval, who: &str) -> Result<bool> {
        let who = who.trim();
        if who.is_empty() {
            return Ok(false);
        }
        if a.sender.eq_ignore_ascii_case(who) {
            return Ok(true);
        }
        let user = self.store.get_record(a.record_id)?.and_then(|r| r.user);
        Ok(user.is_some_and(|u| u.eq_ignore_ascii_case(who)))
    }

    /// Expires pending approvals past their time (and runs the discard command for each).
    pub fn expire_due(&self, now: i64) -> Result<Vec<Approval>> {
        let mut out = Vec::new();
        for mut a in self.store.approvals(Some(ApprovalState::Pending), None)? {
            if a.expires <= now {
                // A delayed mail whose delay is over goes out; a hold expires.
                let (state, kind) = if a.release_on_expiry {
                    a.decided_by = Some("system".into());
                    (ApprovalState::Approved, "delay_over")
                } else {
                    (ApprovalState::Expired, "expire")
                };
                a.state = state;
                a.decided_at = Some(now);
                if self.store.transition(&a, ApprovalState::Pending)? {
                    self.store.add_event(
                        &a.id,
                        &ApprovalEvent {
                            time: now,
                            actor: "system".into(),
                            kind: kind.into(),
                            detail: String::new(),
                        },
                    )?;
                    if a.gateway.is_none() {
                        self.close(&mut a)?;
                    }
                    out.push(a);
                }
            }
        }
        Ok(out)
    }

    /// This process's gateway name: the configured one, else the host name.
    pub fn gateway_name(&self) -> String {
        self.cfg.gateway.clone().unwrap_or_else(host_name)
    }

    /// Carries out the decisions on this gateway's held mail, wherever they were made (a
    /// console on another host, the CLI): runs the release or discard command, tells the sender
    /// of a rejected or expired mail, and closes the request. A command that failed is retried
    /// after a minute. Returns the requests closed. The milter runs this every few seconds;
    /// integrations that deliver held mail themselves (the proxy) use
    /// [`Store::approvals_to_carry_out`] and [`Workflow::mark_closed`].
    pub fn carry_out(&self) -> Result<Vec<Approval>> {
        let now = crate::timeutil::now();
        let mut done = Vec::new();
        for mut a in self.store.approvals_to_carry_out(&self.gateway_name())? {
            let failed_recently = self.store.events(&a.id)?.iter().rev().any(|e| {
                e.detail.starts_with("FAILED")
                    && e.time > now - 60
                    && matches!(e.kind.as_str(), "release" | "discard")
            });
            if failed_recently {
                continue;
            }
            self.close(&mut a)?;
            if matches!(a.state, ApprovalState::Released | ApprovalState::Discarded) {
                done.push(a);
            }
        }
        Ok(done)
    }

    /// Writes an administrator's action to the admin log now (durable before it returns: the
    /// caller carries the action out only on `Ok`).
    pub fn log_admin(
        &self,
        actor: &str,
        action: &str,
        target: &str,
        detail: &str,
        client: &str,
    ) -> Result<()> {
        let clip =
            |s: &str| -> String { s.chars().filter(|c| !c.is_control()).take(2000).collect() };
        self.store.log_admin(&AdminAction {
            time: crate::timeutil::now(),
            actor: clip(actor),
            action: clip(action),
            target: clip(target),
            detail: clip(detail),
            client: clip(client),
        })
    }

    /// Applies the retention of this workflow's configuration: deletes old records and final
    /// approvals, caps and purges evidence copies, and logs the purge in the store.
    pub fn purge(&self, actor: &str) -> Result<PurgeReport> {
        let now = crate::timeutil::now();
        let mut rep = self.store.purge(&self.cfg.retention, now, actor)?;
        rep.evidence = self.evidence.purge(now)? as u64;
        self.store.log_purge(&rep)?;
        Ok(rep)
    }

    /// The background work every long-running process does, every few seconds: expires due
    /// requests (one process of all on the store every 15 s), carries out this gateway's
    /// decisions (when it holds mail), and purges once a day (one process of all). What it did
    /// is returned for the caller to log; each part's error is reported without stopping the
    /// others.
    pub fn maintain(&self, actor: &str) -> Maintenance {
        let now = crate::timeutil::now();
        let mut m = Maintenance::default();
        match self.store.take_turn("expire", 15, now) {
            Ok(true) => match self.expire_due(now) {
                Ok(v) => m.expired = v,
                Err(e) => m.errors.push(format!("expiry: {e}")),
            },
            Ok(false) => {}
            Err(e) => m.errors.push(format!("expiry: {e}")),
        }
        if self.cfg.carries_out && !self.cfg.carry_out_elsewhere {
            match self.carry_out() {
                Ok(v) => m.carried_out = v,
                Err(e) => m.errors.push(format!("decisions: {e}")),
            }
        }
        match self.daily_purge(actor) {
            Ok(p) => m.purge = p,
            Err(e) => m.errors.push(format!("purge: {e}")),
        }
        match self.weekly_report(now) {
            Ok(to) => m.report_sent_to = to,
            Err(e) => m.errors.push(format!("weekly report: {e}")),
        }
        m
    }

    /// Mails the weekly report (`[reports]`) when it is the configured weekday and hour and no
    /// process on the store has sent it in the last six days; returns whom it went to.
    pub fn weekly_report(&self, now: i64) -> Result<Vec<String>> {
        let r = &self.cfg.reports;
        let Some(cmd) = &self.cfg.notify_command else {
            return Ok(Vec::new());
        };
        if r.to.is_empty() {
            return Ok(Vec::new());
        }
        let (minute, weekday) =
            crate::timeutil::local_minute_and_weekday(now, self.cfg.utc_offset_min);
        if weekday != r.weekday || minute / 60 != r.hour {
            return Ok(Vec::new());
        }
        if !self.store.take_turn("weekly_report", 6 * 86_400, now)? {
            return Ok(Vec::new());
        }
        let rep = report::build(&*self.store, now - 7 * 86_400, now + 1, None)?;
        let from = self.cfg.notify_from.as_deref().unwrap_or("postmaster");
        let msg = rep.mail(
            from,
            &r.to,
            self.cfg.utc_offset_min,
            r.top_senders,
            &r.csv_encoding,
        );
        run_shell(cmd, Some(&msg)).map_err(|e| WorkflowError::Io(format!("{cmd}: {e}")))?;
        Ok(r.to.clone())
    }

    /// Runs [`Workflow::purge`] when no process on the store has done so in the last day (one
    /// process of all the gateways and consoles does it). `Ok(None)` when it was not this one's
    /// turn.
    pub fn daily_purge(&self, actor: &str) -> Result<Option<PurgeReport>> {
        if !self
            .store
            .take_turn("purge", 86_400, crate::timeutil::now())?
        {
            return Ok(None);
        }
        self.purge(actor).map(Some)
    }

    /// Runs the release / discard command of a decided approval and moves it to its final state.
    /// Integrations that hold messages themselves (the proxy) close approvals with
    /// [`Workflow::mark_closed`] instead; without a command the approval stays decided.
    fn close(&self, a: &mut Approval) -> Result<()> {
        let (cmd, done, kind) = match a.state {
            ApprovalState::Approved => (
                &self.cfg.release_command,
                ApprovalState::Released,
                "release",
            ),
            ApprovalState::Rejected | ApprovalState::Expired => (
                &self.cfg.discard_command,
                ApprovalState::Discarded,
                "discard",
            ),
            _ => return Ok(()),
        };
        let from = a.state;
        let queue_id = a
            .queue_id
            .clone()
            .filter(|q| !q.is_empty() && q.bytes().all(|b| b.is_ascii_alphanumeric()));
        let detail = match (cmd, queue_id) {
            // Held in the MTA's queue: its command releases or deletes it.
            (Some(cmd), Some(q)) if a.channel == "milter" => {
                let line = cmd.replace("{queue_id}", &q).replace("{approval}", &a.id);
                if let Err(why) = run_shell(&line, None) {
                    self.store.add_event(
                        &a.id,
                        &ApprovalEvent {
                            time: crate::timeutil::now(),
                            actor: "system".into(),
                            kind: kind.into(),
                            detail: format!("FAILED: {line}: {why}"),
                        },
                    )?;
                    return Ok(());
                }
                line
            }
            // Kept by us and not to be sent: delete it now.
            _ if done == ApprovalState::Discarded && a.channel != "milter" => {
                self.delete_held(&a.id)?;
                "held copy deleted".to_string()
            }
            // Approved and kept by us (the proxy delivers it and calls mark_closed), or no command.
            _ => return Ok(()),
        };
        a.state = done;
        a.closed_at = Some(crate::timeutil::now());
        if self.store.transition(a, from)? {
            self.store.add_event(
                &a.id,
                &ApprovalEvent {
                    time: crate::timeutil::now(),
                    actor: "system".into(),
                    kind: kind.into(),
                    detail,
                },
            )?;
            // The SMTP proxy sends its notices through its own upstream (see ping32dlp-proxy);
            // every other channel's go through the notify command.
            if done == ApprovalState::Discarded && a.channel != "proxy" {
                self.notify_sender(a, from)?;
            }
        }
        Ok(())
    }

    /// The sender's notice that a held mail will not be sent (`why`: rejected or expired), as a
    /// message with headers, from `notify_from`: for integrations that deliver it themselves.
    pub fn notice(&self, a: &Approval, why: ApprovalState) -> Vec<u8> {
        let from = self.cfg.notify_from.as_deref().unwrap_or("postmaster");
        notice_message(a, why, from, self.cfg.utc_offset_min)
    }

    /// Tells the sender that a held mail will not be sent, and why (the notify command gets the
    /// notice with its headers on standard input). The outcome is an event of the approval.
    fn notify_sender(&self, a: &Approval, why: ApprovalState) -> Result<()> {
        let Some(cmd) = &self.cfg.notify_command else {
            return Ok(());
        };
        if a.sender.is_empty() || !a.sender.contains('@') {
            return Ok(());
        }
        let notice = self.notice(a, why);
        let detail = match run_shell(cmd, Some(&notice)) {
            Ok(()) => format!("notice sent to {}", a.sender),
            Err(e) => format!("FAILED: notice to {}: {cmd}: {e}", a.sender),
        };
        self.store.add_event(
            &a.id,
            &ApprovalEvent {
                time: crate::timeutil::now(),
                actor: "system".into(),
                kind: "notify".into(),
                detail,
            },
        )
    }

    /// Marks a decided approval released (approved) or discarded (rejected, expired) by an
    /// integration that delivered or dropped the held message itself.
    pub fn mark_closed(&self, id: &str, note: &str) -> Result<Approval> {
        let mut a = self
            .store
            .approval(id)?
            .ok_or_else(|| WorkflowError::NotFound(id.into()))?;
        let (done, kind) = match a.state {
            ApprovalState::Approved => (ApprovalState::Released, "release"),
            ApprovalState::Rejected | ApprovalState::Expired => {
                (ApprovalState::Discarded, "discard")
            }
            s => {
                return Err(WorkflowError::AlreadyDecided(format!(
                    "{id} is {}",
                    s.as_str()
                )))
            }
        };
        let from = a.state;
        a.state = done;
        a.closed_at = Some(crate::timeutil::now());
        if !self.store.transition(&a, from)? {
            return Err(WorkflowError::AlreadyDecided(id.into()));
        }
        self.delete_held(id)?;
        self.store.add_event(
            id,
            &ApprovalEvent {
                time: crate::timeutil::now(),
                actor: "system".into(),
                kind: kind.into(),
                detail: note.into(),
            },
        )?;
        Ok(a)
    }
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(s.get(i * 2..i * 2 + 2)?, 16).ok())
        .collect()
}

/// The install's 32-byte key, created on first use (mode 0600).
pub(crate) fn load_key(path: &Path) -> Result<[u8; 32]> {
    let read = |path: &Path| -> Option<[u8; 32]> {
        let b = std::fs::read(path).ok()?;
        <[u8; 32]>::try_from(b.as_slice()).ok()
    };
    if let Some(k) = read(path) {
        return Ok(k);
    }
    let mut k = [0u8; 32];
    getrandom::fill(&mut k).map_err(|e| WorkflowError::Io(e.to_string()))?;
    // Written under a name of our own, then linked into place: `hard_link` fails when another
    // process made the key first, and then that key is the one everybody uses.
    let tmp = path.with_extension(format!("tmp.{}.{}", std::process::id(), random_hex(4)));
    {
        use std::io::Write;
        let mut f = private::file_options()
            .create_new(true)
            .open(&tmp)
            .map_err(|e| WorkflowError::Io(format!("{}: {e}", tmp.display())))?;
        f.write_all(&k)?;
        f.sync_all()?;
    }
    let linked = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(k),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => read(path)
            .ok_or_else(|| WorkflowError::Io(format!("{}: not a 32-byte key", path.display()))),
        Err(e) => Err(WorkflowError::Io(format!("{}: {e}", path.display()))),
    }
}
