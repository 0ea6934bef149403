//! Policy: ordered rules over what was found, who sends to whom, and what happened before,
//! giving a [`Verdict`]: the action to take, every rule that matched and why, and a risk score.
//!
//! ```text
//! Report + Context ─► Facts ─► risk signals ─► rules in order (when / unless, mode, stop)
//!                       ▲                            │
//!                   History (audit trail:            ▼
//!                   seen domains, rates, PPAP)    Verdict {action, matched[], risk, message}
//! ```
//!
//! Facts are what a stored audit record also keeps, so `policy replay` re-evaluates history with
//! a new policy without the raw mail (only `body_contains` needs the body; in replay it is false).

mod alerts;
pub mod calendar;
pub mod lookalike;
mod parse;

pub use alerts::{syslog_target, AlertConfig};

use std::collections::{BTreeMap, BTreeSet, HashSet};

pub use parse::{
    parse_policy, DEFAULT_DISCARD_COMMAND, DEFAULT_NOTIFY_COMMAND, DEFAULT_POLICY,
    DEFAULT_RELEASE_COMMAND,
};

use crate::report::Report;
use crate::rules::Confidence;

/// What to do with a message. Ordered by severity:
/// `Allow < Audit < Tag < Bcc < Link < Alert < Delay < Hold < Block`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Action {
    /// Let it through.
    Allow,
    /// Let it through and mark the audit record.
    Audit,
    /// Let it through with a header added or the subject prefixed.
    Tag,
    /// Let it through with its external `To` / `Cc` recipients moved to `Bcc`: they are taken
    /// out of the headers and still receive it (the envelope is unchanged), so no external
    /// recipient sees the others' addresses. Applied whenever an enforced `bcc` rule matched
    /// and the mail goes out (also after a stricter alert, delay or hold).
    Bcc,
    /// Let it through with its attachments replaced by download links (`[links]`): the files
    /// are kept in the evidence store and served by the download listener, with an expiry, a
    /// download count and an optional password mailed to the sender only. The replacement for
    /// PPAP (an encrypted zip and its password in a second mail). Applied whenever an enforced
    /// `link` rule matched and the mail goes out (also after a stricter alert, delay or hold).
    Link,
    /// Let it through and send an alert.
    Alert,
    /// Send it after a delay (`delay = "10m"`) during which the sender can cancel it (or send
    /// it at once): the misdirection guard. Stricter than alert, less strict than hold.
    Delay,
    /// Hold it until an approver decides.
    Hold,
    /// Refuse it.
    Block,
}

impl Action {
    /// `allow`, `audit`, `tag`, `bcc`, `link`, `alert`, `delay`, `hold`, `block`.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Allow => "allow",
            Action::Audit => "audit",
            Action::Tag => "tag",
            Action::Bcc => "bcc",
            Action::Link => "link",
            Action::Alert => "alert",
            Action::Delay => "delay",
            Action::Hold => "hold",
            Action::Block => "block",
        }
    }

    /// Parses the names above (`hold_for_approval` is accepted for `hold`).
    pub fn parse(s: &str) -> Option<Action> {
        Some(match s {
            "allow" => Action::Allow,
            "audit" => Action::Audit,
            "tag" => Action::Tag,
            "bcc" => Action::Bcc,
            "link" => Action::Link,
            "alert" => Action::Alert,
            "delay" => Action::Delay,
            "hold" | "hold_for_approval" => Action::Hold,
            "block" => Action::Block,
            _ => return None,
        })
    }
}

/// What a rule does on an endpoint agent when a history question it asks cannot be put to the
/// fleet server (`offline = ...` in the rule).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Offline {
    /// Judge with the PC's own history (the default): the rule matches only if that does, and
    /// the verdict says that the history was the PC's only.
    #[default]
    Allow,
    /// Hold the mail for approval (the request reaches the console when the server is back).
    Hold,
    /// Block the mail.
    Block,
}

impl Offline {
    /// `allow`, `hold` or `block`.
    pub fn as_str(self) -> &'static str {
        match self {
            Offline::Allow => "allow",
            Offline::Hold => "hold",
            Offline::Block => "block",
        }
    }
}

/// Whether a rule acts or only records what it would have done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The rule's action is taken.
    Enforce,
    /// The rule is recorded as "would have"; the message is not affected.
    Monitor,
}

impl Mode {
    /// `enforce` or `monitor`.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Enforce => "enforce",
            Mode::Monitor => "monitor",
        }
    }
}

/// Who, how and to whom: given by the integration (milter, proxy, webmail hook) or API caller.
#[derive(Debug, Clone, Default)]
pub struct Context {
    /// `milter`, `proxy`, `webmail`, `api`, `cli`.
    pub channel: String,
    /// Authenticated user.
    pub user: Option<String>,
    /// Host or terminal.
    pub host: Option<String>,
    /// Client application.
    pub client_app: Option<String>,
    /// Client address.
    pub client_addr: Option<String>,
    /// TLS version of the submission, if any.
    pub tls: Option<String>,
    /// Envelope sender (MAIL FROM). Falls back to the From header.
    pub envelope_from: Option<String>,
    /// Envelope recipients (RCPT TO). Fall back to To, Cc and Bcc.
    pub envelope_to: Vec<String>,
    /// Per-attachment origin (file name → local path or application), from an endpoint agent.
    pub origins: Vec<(String, String)>,
    /// Groups of the sender known to the caller (a directory lookup), added to the policy's.
    pub groups: Vec<String>,
    /// The sender's department (a directory lookup).
    pub department: Option<String>,
    /// The sender's manager's address (a directory lookup): `approvers = ["manager"]`.
    pub manager: Option<String>,
    /// Groups of recipients known to the caller (a directory lookup): (address, groups).
    pub recipient_groups: Vec<(String, Vec<String>)>,
    /// MTA queue id (milter), for holding and releasing.
    pub queue_id: Option<String>,
    /// Time of the message (Unix seconds); now when absent.
    pub time: Option<i64>,
    /// Where an upload goes (webmail: the HTTP request's host). Outside the company's hosts it
    /// counts as an external destination, so `recipients = "any_external"` holds for it.
    pub destination_host: Option<String>,
}

impl Context {
    /// The origin the caller gave for an attachment, matched by file name or location.
    pub fn origin_of(&self, a: &crate::extract::Attachment) -> Option<&str> {
        self.origins
            .iter()
            .find(|(n, _)| n == &a.name || n == &a.location)
            .map(|(_, o)| o.as_str())
    }
}

/// Findings of one detector at one location, summarised: what an audit record keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FindingSummary {
    /// Detector id.
    pub detector: String,
    /// Location, or `*` for the whole message.
    pub location: String,
    /// Findings.
    pub count: u32,
    /// Distinct values at or above low, medium, high confidence.
    pub unique: [u32; 3],
    /// A few masked values, for reviewers.
    pub samples: Vec<String>,
}

/// An attachment as the policy sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachmentFact {
    /// Location.
    pub location: String,
    /// File name.
    pub name: String,
    /// True type short name (`xlsx`, `zip`, `encrypted_office`, ...).
    pub kind: String,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256 (hex).
    pub sha256: String,
    /// Extension says another type.
    pub extension_mismatch: bool,
    /// Nesting depth (0 = attached to the message).
    pub depth: u32,
    /// Origin reported by an endpoint agent, if any.
    pub origin: Option<String>,
}

impl AttachmentFact {
    /// The name hides its real extension behind a bidirectional override (U+202E and kin):
    /// `invoice\u{202E}xcod.exe` shows as `invoiceexe.docx`.
    pub fn filename_spoofing(&self) -> bool {
        crate::text::has_bidi_override(&self.name)
    }
}

/// How a recipient was addressed: in the `To` or `Cc` header, or neither (`Bcc`: a `Bcc`
/// header, or an envelope recipient no header names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// In the `To` header (the default when nothing says otherwise).
    #[default]
    To,
    /// In the `Cc` header.
    Cc,
    /// Hidden from the other recipients.
    Bcc,
}

impl Role {
    /// `to`, `cc` or `bcc`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::To => "to",
            Role::Cc => "cc",
            Role::Bcc => "bcc",
        }
    }

    /// Parses `to`, `cc` or `bcc` (any case).
    pub fn parse(s: &str) -> Option<Role> {
        match s.to_ascii_lowercase().as_str() {
            "to" => Some(Role::To),
            "cc" => Some(Role::Cc),
            "bcc" => Some(Role::Bcc),
            _ => None,
        }
    }
}

/// Everything rules look at, from a report and its context, or from a stored audit record.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    /// The engine whose detectors found the findings (from the report; `None` for facts of a
    /// stored record or made by hand). When set, evaluation refuses a policy that names a
    /// detector the engine does not have, instead of letting that rule never match.
    pub engine: Option<std::sync::Arc<crate::Engine>>,
    /// Unix seconds.
    pub time: i64,
    /// Channel.
    pub channel: String,
    /// Authenticated user.
    pub user: Option<String>,
    /// Sender address, lower case.
    pub sender: String,
    /// Recipient addresses, lower case, deduplicated.
    pub recipients: Vec<String>,
    /// The role of each recipient, by index (a missing entry is `To`).
    pub roles: Vec<Role>,
    /// The `From` header's address, lower case (`None` without a message or a From).
    pub header_from: Option<String>,
    /// Subject.
    pub subject: String,
    /// Body text (None when replaying stored records).
    pub body: Option<String>,
    /// Message size in bytes.
    pub size: u64,
    /// Attachments and archive members.
    pub attachments: Vec<AttachmentFact>,
    /// Findings summarised per detector and location, plus `*` rows per detector.
    pub findings: Vec<FindingSummary>,
    /// (location, reason) of what could not be inspected.
    pub unscannable: Vec<(String, String)>,
    /// Password candidates found in the bodies.
    pub password_candidates: usize,
    /// Extra sender groups from the context.
    pub groups: Vec<String>,
    /// The sender's department (from the context).
    pub department: Option<String>,
    /// The sender's manager's address (from the context).
    pub manager: Option<String>,
    /// Recipients' groups from the context: (address, lower case; groups).
    pub recipient_groups: Vec<(String, Vec<String>)>,
    /// Host an upload goes to (webmail), lower case.
    pub destination_host: Option<String>,
}

fn conf_index(c: Confidence) -> usize {
    match c {
        Confidence::Low => 0,
        Confidence::Medium => 1,
        Confidence::High => 2,
    }
}

/// The address inside `Name <addr>`, lower case.
pub fn bare_address(s: &str) -> String {
    let s = s.trim();
    let inner = match (s.rfind('<'), s.rfind('>')) {
        (Some(a), Some(b)) if a < b => &s[a + 1..b],
        _ => s,
    };
    inner.trim().trim_matches('"').to_ascii_lowercase()
}

/// An envelope address (MAIL FROM / RCPT TO as the integration parsed it, or a path in angle
/// brackets) for the policy: one pair of surrounding `<>` removed, trimmed, lower case. Unlike
/// [`bare_address`] it never looks for `<...>` inside: a quoted local part such as
/// `"<x@corp.example>"@evil.example` belongs to `evil.example`.
pub fn envelope_address(s: &str) -> String {
    let s = s.trim();
    let s = s
        .strip_prefix('<')
        .and_then(|x| x.strip_suffix('>'))
        .unwrap_or(s);
    s.trim().to_ascii_lowercase()
}

/// The domain of an address (after the last `@`), lower case.
pub fn domain_of(addr: &str) -> &str {
    addr.rsplit_once('@').map_or("", |(_, d)| d)
}

impl Facts {
    /// Facts of an inspected message.
    pub fn from_report(report: &Report, ctx: &Context) -> Facts {
        let msg = report.message.as_ref();
        let sender = ctx
            .envelope_from
            .as_deref()
            .map(envelope_address)
            .or_else(|| msg.and_then(|m| m.from.first()).map(|f| bare_address(f)))
            .unwrap_or_default();
        let header = |list: Option<&Vec<String>>| -> Vec<String> {
            list.map(|l| l.iter().map(|a| bare_address(a)).collect())
                .unwrap_or_default()
        };
        let (to, cc, bcc) = (
            header(msg.map(|m| &m.to)),
            header(msg.map(|m| &m.cc)),
            header(msg.map(|m| &m.bcc)),
        );
        let role_of = |r: &str| {
            if to.iter().any(|x| x == r) {
                Role::To
            } else if cc.iter().any(|x| x == r) {
                Role::Cc
            } else {
                Role::Bcc
            }
        };
        let mut recipients: Vec<String> = if ctx.envelope_to.is_empty() {
            to.iter().chain(&cc).chain(&bcc).cloned().collect()
        } else {
            ctx.envelope_to
                .iter()
                .map(|a| envelope_address(a))
                .collect()
        };
        let mut seen = HashSet::new();
        recipients.retain(|r| !r.is_empty() && seen.insert(r.clone()));
        let roles = recipients.iter().map(|r| role_of(r)).collect();
        let header_from = msg
            .and_then(|m| m.from.first())
            .map(|f| bare_address(f))
            .filter(|f| !f.is_empty());
        let attachments = report
            .attachments
            .iter()
            .map(|a| AttachmentFact {
                location: a.location.clone(),
                name: a.name.clone(),
                kind: a.kind.short().to_string(),
                size: a.size,
                sha256: a.sha256.clone(),
                extension_mismatch: a.extension_mismatch,
                depth: a.depth,
                origin: ctx.origin_of(a).map(str::to_string),
            })
            .collect();
        // Summaries: per (detector, location) and per detector for the whole message.
        type Acc = (u32, [BTreeSet<String>; 3], Vec<String>);
        let mut acc: BTreeMap<(String, String), Acc> = BTreeMap::new();
        for f in &report.findings {
            for loc in [&*f.location, "*"] {
                let e = acc
                    .entry((f.detector.to_string(), loc.to_string()))
                    .or_default();
                e.0 += 1;
                for k in 0..=conf_index(f.confidence) {
                    e.1[k].insert(f.normalized.to_string());
                }
                if e.2.len() < 3 && !e.2.iter().any(|m| *m == f.value_masked) {
                    e.2.push(f.value_masked.to_string());
                }
            }
        }
        let findings = acc
            .into_iter()
            .map(
                |((detector, location), (count, u, samples))| FindingSummary {
                    detector,
                    location,
                    count,
                    unique: [u[0].len() as u32, u[1].len() as u32, u[2].len() as u32],
                    samples,
                },
            )
            .collect();
        Facts {
            engine: report.engine.clone(),
            time: ctx.time.unwrap_or_else(crate::timeutil::now),
            channel: ctx.channel.clone(),
            user: ctx.user.clone(),
            sender,
            recipients,
            roles,
            header_from,
            subject: msg.and_then(|m| m.subject.clone()).unwrap_or_default(),
            body: Some(report.body_text.clone()),
            size: report.size,
            attachments,
            findings,
            unscannable: report
                .unscannable
                .iter()
                .map(|u| (u.location.clone(), u.reason.as_str().to_string()))
                .collect(),
            password_candidates: report.password_candidates.len(),
            groups: ctx.groups.clone(),
            department: ctx.department.clone(),
            manager: ctx.manager.as_deref().map(bare_address),
            recipient_groups: ctx
                .recipient_groups
                .iter()
                .map(|(a, g)| (envelope_address(a), g.clone()))
                .collect(),
            destination_host: ctx
                .destination_host
                .as_deref()
                .map(normalize_host)
                .filter(|h| !h.is_empty()),
        }
    }
}

/// A host name as a destination: lower case, without port, brackets or a trailing dot.
pub fn normalize_host(h: &str) -> String {
    let h = h.trim();
    let h = if let Some(rest) = h.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else if h.matches(':').count() == 1 {
        h.split(':').next().unwrap_or("")
    } else {
        h
    };
    h.trim_end_matches('.').to_ascii_lowercase()
}

/// A history question that could not be answered (the audit store is down or too slow). The
/// verdict is not given then: integrations answer by their fail mode, never as if nothing
/// had happened before.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryError(pub String);

impl std::fmt::Display for HistoryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "history unavailable: {}", self.0)
    }
}

impl std::error::Error for HistoryError {}

/// An answer of the history.
pub type HistoryResult<T> = Result<T, HistoryError>;

/// Why a policy gave no verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EvalError {
    /// A history question could not be answered (the store is down or slow).
    History(HistoryError),
    /// A rule names a detector that the engine which scanned the mail does not have (a typo
    /// such as `credit_crad`, or a custom detector whose rules file the engine lacks). Such a
    /// rule could never match, so the policy is refused rather than failing open.
    UnknownDetector {
        /// The rule's id.
        rule: String,
        /// The detector it names.
        detector: String,
    },
}

impl std::fmt::Display for EvalError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EvalError::History(e) => e.fmt(f),
            EvalError::UnknownDetector { rule, detector } => write!(
                f,
                "rule `{rule}`: unknown detector `{detector}`: the engine that scanned the mail has no such detector (a typo, or the rules file that defines it was not added to the engine)"
            ),
        }
    }
}

impl std::error::Error for EvalError {}

impl From<HistoryError> for EvalError {
    fn from(e: HistoryError) -> EvalError {
        EvalError::History(e)
    }
}

/// What the audit trail knows: the stateful conditions ask it.
/// Windows are `since ..= until` in Unix seconds; `until` is the evaluated message's time, so
/// that a test or replay of an old message does not count later mail. Every question can fail.
pub trait History {
    /// Had mail gone to this domain by `until`?
    fn domain_seen(&self, domain: &str, until: i64) -> HistoryResult<bool>;
    /// Had this sender mailed this exact address by `until`?
    fn sent_to_before(&self, sender: &str, address: &str, until: i64) -> HistoryResult<bool>;
    /// Earlier messages in the window that sent this attachment (SHA-256) outside.
    fn external_sends_of(&self, sha256: &str, since: i64, until: i64) -> HistoryResult<u64>;
    /// Earlier external messages of the sender in the window: (messages, attachment bytes).
    fn sender_external(&self, sender: &str, since: i64, until: i64) -> HistoryResult<(u64, u64)>;
    /// An earlier message in the window from the sender to the same recipients that carried an
    /// encrypted archive (`want_password` false) or password candidates (`want_password` true).
    fn ppap_partner(
        &self,
        sender: &str,
        recipients: &[String],
        since: i64,
        until: i64,
        want_password: bool,
    ) -> HistoryResult<bool>;
    /// The company's frequent partners: the external domains mail went to in at least
    /// `min_mails` messages in the window, most first, at most `limit` (look-alike domains are
    /// checked against them as against `partner_domains`). Default: none known.
    fn frequent_domains(
        &self,
        _since: i64,
        _until: i64,
        _min_mails: u64,
        _limit: usize,
    ) -> HistoryResult<Vec<String>> {
        Ok(Vec::new())
    }
    /// Whether an answer since the last [`History::clear_offline`] came from partial history
    /// (an endpoint agent's own records, its fleet server not answering).
    fn offline(&self) -> bool {
        false
    }
    /// Starts a new question (see [`History::offline`]).
    fn clear_offline(&self) {}
}

/// Frequent partners (for look-alike domains): external domains mailed in at least this many
/// messages ...
pub const FREQUENT_PARTNER_MIN_MAILS: u64 = 5;
/// ... within this many days ...
pub const FREQUENT_PARTNER_DAYS: i64 = 90;
/// ... at most this many of them, most mailed first.
pub const FREQUENT_PARTNER_LIMIT: usize = 500;

/// No history (a policy test without an audit database): nothing was seen before.
pub struct NoHistory;

impl History for NoHistory {
    fn domain_seen(&self, _: &str, _: i64) -> HistoryResult<bool> {
        Ok(false)
    }
    fn sent_to_before(&self, _: &str, _: &str, _: i64) -> HistoryResult<bool> {
        Ok(false)
    }
    fn external_sends_of(&self, _: &str, _: i64, _: i64) -> HistoryResult<u64> {
        Ok(0)
    }
    fn sender_external(&self, _: &str, _: i64, _: i64) -> HistoryResult<(u64, u64)> {
        Ok((0, 0))
    }
    fn ppap_partner(&self, _: &str, _: &[String], _: i64, _: i64, _: bool) -> HistoryResult<bool> {
        Ok(false)
    }
}

/// A numeric range `{ min = .., max = .. }` (both inclusive, both optional).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Range {
    /// Lower bound.
    pub min: Option<u64>,
    /// Upper bound.
    pub max: Option<u64>,
}

impl Range {
    fn contains(&self, v: u64) -> bool {
        self.min.is_none_or(|m| v >= m) && self.max.is_none_or(|m| v <= m)
    }
    fn describe(&self) -> String {
        match (self.min, self.max) {
            (Some(a), Some(b)) => format!("{a}..={b}"),
            (Some(a), None) => format!(">= {a}"),
            (None, Some(b)) => format!("<= {b}"),
            (None, None) => "any".into(),
        }
    }
}

/// Where a detector condition counts unique values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// All locations of the message together.
    Message,
    /// Any single location (an attachment, the body).
    Attachment,
}

/// A condition. (Field names of the variants are those of the policy file; see docs/policy.md.)
#[derive(Debug, Clone, PartialEq)]
#[allow(missing_docs)]
pub enum Cond {
    /// Every one holds.
    All(Vec<Cond>),
    /// At least one holds.
    Any(Vec<Cond>),
    /// It does not hold.
    Not(Box<Cond>),
    /// Some recipient's domain is in the list.
    RecipientDomainIn(Vec<String>),
    /// Some recipient's domain is not in the list.
    RecipientDomainNotIn(Vec<String>),
    /// `any_external`, `all_external`, `all_internal`.
    Recipients(String),
    /// Number of recipients.
    RecipientCount(Range),
    /// Number of external recipients.
    ExternalRecipientCount(Range),
    /// More than one external domain in one mail.
    MixedExternalDomains,
    /// An external domain never mailed before.
    NewExternalDomain,
    /// An external address the sender has never mailed before.
    FirstTimeRecipient,
    /// Number of external recipients every recipient sees (To and Cc).
    VisibleExternalCount(Range),
    /// Number of external recipients in Bcc (with envelope recipients no header names).
    BccExternalCount(Range),
    /// The From header's address is not the envelope sender.
    FromDiffersFromEnvelope,
    /// An external recipient's domain looks like an internal or partner domain
    /// ([`lookalike`]).
    LookalikeDomain,
    /// Sender address in the list.
    SenderIn(Vec<String>),
    /// Sender domain in the list.
    SenderDomainIn(Vec<String>),
    /// Sender in a group (policy `[groups]` or context groups).
    SenderGroup(String),
    /// The sender's department (from the directory) is one of these.
    SenderDepartment(Vec<String>),
    /// Some recipient is in the group (policy `[groups]` or the directory).
    RecipientGroup(String),
    /// Channel in the list.
    ChannelIn(Vec<String>),
    /// Number of attachments attached to the message itself.
    AttachmentCount(Range),
    /// Some attachment's true type in the list.
    TrueTypeIn(Vec<String>),
    /// Some attachment's extension in the list.
    ExtensionIn(Vec<String>),
    /// Some attachment's extension does not fit its content.
    ExtensionMismatch,
    /// Some attachment's name hides its extension behind a bidirectional override.
    FilenameSpoofing,
    /// The upload's destination host matches one of the patterns (`drive.google.com`,
    /// `*.dropbox.com`).
    DestinationHostIn(Vec<String>),
    /// Message size in bytes.
    MessageSize(Range),
    /// Some attachment's size in bytes.
    AttachmentSize(Range),
    /// A detector (or any of several) found enough distinct values.
    Detector {
        ids: Vec<String>,
        min_confidence: Confidence,
        min_unique: u32,
        scope: Scope,
    },
    /// The subject contains one of the words (case-insensitive).
    SubjectContains(Vec<String>),
    /// A body contains one of the words.
    BodyContains(Vec<String>),
    /// Subject or body contains one of the words.
    TextContains(Vec<String>),
    /// Something could not be inspected for one of these reasons (`any` for any reason).
    UnscannableIn(Vec<String>),
    /// PPAP: an encrypted archive and a password to the same recipients within the window.
    Ppap { within: i64 },
    /// Local time of day in `[from, to)` minutes (may wrap past midnight).
    TimeOfDay { from: u32, to: u32 },
    /// Local weekday (0 = Monday) in the list.
    WeekdayIn(Vec<u32>),
    /// Outside the business calendar: a weekend day, a public holiday, a company day off, or
    /// outside business hours.
    OutsideBusinessHours,
    /// A public holiday or a company day off.
    Holiday,
    /// The same attachment went outside at least `min` times within `within` seconds.
    SameAttachmentSentExternal { min: u64, within: i64 },
    /// The sender's external messages within the window reach `min`.
    SenderExternalMails { min: u64, within: i64 },
    /// The sender's external attachment bytes within the window reach `min`.
    SenderExternalBytes { min: u64, within: i64 },
    /// The risk score is in the range.
    RiskScore(Range),
}

/// A rule.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Stable id.
    pub id: String,
    /// What it is for.
    pub description: String,
    /// Enforce or monitor.
    pub mode: Mode,
    /// `info`, `low`, `medium`, `high`, `critical`.
    pub severity: String,
    /// What it does when it matches.
    pub action: Action,
    /// When it matches.
    pub when: Cond,
    /// Exceptions: it does not match when this holds.
    pub unless: Option<Cond>,
    /// Later rules are not evaluated after a match.
    pub stop: bool,
    /// Text for the user (block reply, hold notice), Japanese and English.
    pub message_ja: Option<String>,
    /// English text.
    pub message_en: Option<String>,
    /// Approvers (hold).
    pub approvers: Vec<String>,
    /// Seconds a `delay` rule holds the mail before it goes out (default 10 minutes).
    pub delay: i64,
    /// Approver group (hold).
    pub approver_group: Option<String>,
    /// Seconds until a hold expires.
    pub expires: i64,
    /// Seconds the download links of a `link` rule work: its `expires` when given, else the
    /// policy's `[links] expires`.
    pub link_expires: Option<i64>,
    /// Header to add (tag): name and value.
    pub add_header: Option<(String, String)>,
    /// Subject prefix (tag).
    pub subject_prefix: Option<String>,
    /// Keep copies of the attachments for this many days.
    pub evidence_days: Option<u32>,
    /// On an endpoint agent whose fleet server does not answer a history question.
    pub offline: Offline,
}

impl Rule {
    /// True when a condition of the rule reads the body text (not kept in the audit trail, so
    /// such conditions cannot be replayed).
    pub fn uses_body(&self) -> bool {
        fn body(c: &Cond) -> bool {
            match c {
                Cond::All(v) | Cond::Any(v) => v.iter().any(body),
                Cond::Not(c) => body(c),
                Cond::BodyContains(_) | Cond::TextContains(_) => true,
                _ => false,
            }
        }
        body(&self.when) || self.unless.as_ref().is_some_and(body)
    }
}

/// Days a held mail's attachments are kept after its request expires.
pub const HOLD_EVIDENCE_EXTRA_DAYS: u32 = 7;

/// `[reports]`: when the weekly report (risk by sender, counts by department; HTML with the two
/// CSV files attached) is mailed, and to whom, through the approval `notify_command`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportSchedule {
    /// Recipients (`weekly_to`); none: no weekly mail.
    pub to: Vec<String>,
    /// Weekday, 0 = Monday (`weekday = "mon"`, the default).
    pub weekday: u32,
    /// Local hour (`hour = 8`, the default), in the policy's time zone.
    pub hour: u32,
    /// `utf-8-bom` (the default), `utf-8` or `cp932`.
    pub csv_encoding: String,
    /// Senders listed in the mail (`top_senders = 20`).
    pub top_senders: usize,
}

impl Default for ReportSchedule {
    fn default() -> ReportSchedule {
        ReportSchedule {
            to: Vec::new(),
            weekday: 0,
            hour: 8,
            csv_encoding: "utf-8-bom".into(),
            top_senders: 20,
        }
    }
}

/// `[links]`: how `link` rules replace attachments by download links.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkSettings {
    /// The download listener's public address (`url = "https://dl.example.co.jp"`), put in
    /// front of `/d/<token>` in the mail. Needed by every `link` rule.
    pub url: Option<String>,
    /// Seconds a link works (`expires = "7d"`, the default).
    pub expires: i64,
    /// Downloads per link (`max_downloads = 10`, the default; 0: no limit).
    pub max_downloads: u32,
    /// Each mail's links need a password, mailed to the sender only (`password = true`).
    pub password: bool,
}

impl Default for LinkSettings {
    fn default() -> LinkSettings {
        LinkSettings {
            url: None,
            expires: 7 * 86_400,
            max_downloads: 10,
            password: false,
        }
    }
}

/// A policy: organisation domains, groups and ordered rules.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Name.
    pub name: String,
    /// Internal (organisation) domains; subdomains are internal too.
    pub internal_domains: Vec<String>,
    /// Partners' domains (external), protected from look-alikes like the internal ones.
    pub partner_domains: Vec<String>,
    /// The company's own web hosts (`intranet.example.co.jp`, `*.example.co.jp`) besides those
    /// under `internal_domains`: uploads to them are not external.
    pub internal_hosts: Vec<String>,
    /// Local time offset for time conditions, in minutes (default +09:00).
    pub utc_offset_min: i32,
    /// Business calendar: public holidays, company days off, weekend, hours (`[calendar]`).
    pub calendar: calendar::Calendar,
    /// The weekly report mailed to admins (`[reports]`).
    pub reports: ReportSchedule,
    /// Download links that replace attachments (`[links]`, `action = "link"`).
    pub links: LinkSettings,
    /// Sender groups.
    pub groups: BTreeMap<String, Vec<String>>,
    /// Default approvers for holds.
    pub approvers: Vec<String>,
    /// Rules, in order.
    pub rules: Vec<Rule>,
    /// Alert sinks (`[alerts]`).
    pub alerts: AlertConfig,
    /// Command that releases a held mail once approved (`{queue_id}`, `{approval}`).
    pub release_command: Option<String>,
    /// Command that deletes a held mail once rejected or expired.
    pub discard_command: Option<String>,
    /// Command that sends the sender a notice (on its standard input, with headers) when a
    /// request is rejected or expires; `None` sends none.
    pub notify_command: Option<String>,
    /// From address of those notices (default `postmaster`).
    pub notify_from: Option<String>,
    /// Address of the web console (`https://dlp.example.co.jp`): when set, every approver with
    /// an address is mailed a one-time sign-in link to a new request (through `notify_command`).
    pub console_url: Option<String>,
    /// A sender may approve their own held mail (`[approval] allow_self_approval`, for a site
    /// with one administrator).
    pub allow_self_approval: bool,
    /// The file it was read from, for positioned errors found after parsing.
    file: Option<std::path::PathBuf>,
    /// Where the rules name detectors (line, column, field), for [`Policy::detector_error`].
    detector_refs: Vec<DetectorRef>,
}

/// A detector id written in a rule's condition, and where.
#[derive(Debug, Clone)]
pub(crate) struct DetectorRef {
    pub rule: usize,
    pub id: String,
    pub line: usize,
    pub column: usize,
    pub field: String,
}

/// One weighted signal of the risk score.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signal {
    /// What.
    pub name: String,
    /// Points added.
    pub weight: u32,
}

/// A matched rule and why it matched.
#[derive(Debug, Clone)]
pub struct RuleMatch {
    /// Rule id.
    pub rule: String,
    /// Its action.
    pub action: Action,
    /// Its mode: a monitor-mode match did not change the verdict.
    pub mode: Mode,
    /// Its severity.
    pub severity: String,
    /// The conditions that made it match, in words.
    pub reasons: Vec<String>,
    /// The detectors whose findings took part.
    pub detectors: Vec<String>,
}

/// The verdict on a message.
#[derive(Debug, Clone)]
pub struct Verdict {
    /// The final action: the most severe action of the enforced matched rules (allow if none).
    pub action: Action,
    /// Every matched rule, enforced and monitored.
    pub matched: Vec<RuleMatch>,
    /// Risk score, 0 to 100.
    pub risk: u32,
    /// The signals behind the score.
    pub signals: Vec<Signal>,
    /// Message for the user (from the rule that decided the action).
    pub message_ja: Option<String>,
    /// English message.
    pub message_en: Option<String>,
    /// Approvers and expiry when held.
    pub approvers: Vec<String>,
    /// Approver group when held.
    pub approver_group: Option<String>,
    /// Hold expiry in seconds.
    pub expires: i64,
    /// Headers to add.
    pub headers: Vec<(String, String)>,
    /// Subject prefixes.
    pub subject_prefix: Option<String>,
    /// External recipients named in `To` / `Cc` to take out of those headers (an enforced
    /// `bcc` rule matched): lower-case addresses. They stay envelope recipients.
    pub bcc: Vec<String>,
    /// Keep attachment copies for this many days (the longest of the matched rules).
    pub evidence_days: Option<u32>,
    /// Replace the attachments by download links (an enforced `link` rule matched).
    pub link: bool,
    /// The links' lifetime in seconds when the first matched `link` rule sets one.
    pub link_expires: Option<i64>,
}

impl Verdict {
    /// Makes `action` the final action for a reason outside the policy file (an integration's
    /// own fail-closed setting, such as the webmail hook's `on_undecodable`), whatever the
    /// policy's mode. It is recorded as a matched, enforced rule named `rule`, so the audit
    /// trail says why; the user messages become `message_ja` / `message_en`.
    pub fn force(
        &mut self,
        rule: &str,
        action: Action,
        reasons: Vec<String>,
        message_ja: &str,
        message_en: &str,
    ) {
        self.matched.push(RuleMatch {
            rule: rule.to_string(),
            action,
            mode: Mode::Enforce,
            severity: "high".into(),
            reasons,
            detectors: Vec::new(),
        });
        if action >= self.action {
            self.action = action;
            self.message_ja = Some(message_ja.to_string());
            self.message_en = Some(message_en.to_string());
        }
    }

    /// What the verdict would do with every monitor-mode rule enforced: the most severe action
    /// of all matched rules. With the built-in policy (all monitor mode) `action` is always
    /// `Allow` and this says what enforcing it would do; show both.
    pub fn would_action(&self) -> Action {
        self.matched
            .iter()
            .map(|m| m.action)
            .max()
            .unwrap_or(Action::Allow)
            .max(self.action)
    }

    /// The verdict as JSON: final action, the action it would take with every monitor rule
    /// enforced, risk and its signals, matched rules with their reasons, the user messages and
    /// the tags. No sensitive values (reasons name detectors and counts, never values).
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::json;
        let would = self.would_action();
        json!({
            "action": self.action.as_str(),
            "would_action": would.as_str(),
            "risk": self.risk,
            "signals": self.signals.iter().map(|s| json!({"signal": s.name, "points": s.weight})).collect::<Vec<_>>(),
            "matched": self.matched.iter().map(|m| json!({
                "rule": m.rule, "action": m.action.as_str(), "mode": m.mode.as_str(), "severity": m.severity,
                "reasons": m.reasons, "detectors": m.detectors,
            })).collect::<Vec<_>>(),
            "message_ja": self.user_message("ja"),
            "message_en": self.user_message("en"),
            "approvers": self.approvers,
            "approver_group": self.approver_group,
            "expires_seconds": self.expires,
            "add_headers": self.headers.iter().map(|(n, x)| json!({"name": n, "value": x})).collect::<Vec<_>>(),
            "subject_prefix": self.subject_prefix,
            "move_to_bcc": self.bcc,
            "attachments_to_links": self.link,
            "evidence_days": self.evidence_days,
        })
    }

    /// The decisive rule's message in the given language (`ja` or anything else for English).
    pub fn user_message(&self, lang: &str) -> String {
        let (ja, en) = (self.message_ja.clone(), self.message_en.clone());
        let m = if lang == "ja" { ja.or(en) } else { en.or(ja) };
        m.unwrap_or_else(|| match self.action {
            Action::Block => "このメールは情報漏えい防止ポリシーにより送信できません / Message refused by the data-loss-prevention policy".into(),
            Action::Hold => "このメールは承認待ちです / Message held for approval".into(),
            Action::Delay => "このメールは送信を保留しています。取り消す場合は通知のリンクから / Message delayed; it can be cancelled from the link in the notice".into(),
            _ => String::new(),
        })
    }
}

/// Detectors whose values are sensitive on their own (risk weights).
fn sensitivity(detector: &str) -> u32 {
    match detector {
        "jp_my_number"
        | "credit_card"
        | "jp_bank_account"
        | "jp_passport"
        | "jp_residence_card"
        | "jp_drivers_license"
        | "jp_basic_pension_number"
        | "us_ssn"
        | "iban"
        | "private_key"
        | "aws_secret_access_key"
        | "aws_access_key_id"
        | "github_token"
        | "slack_token"
        | "google_api_key"
        | "stripe_secret_key" => 3,
        "confidential_marking" => 2,
        "jp_phone" | "phone" | "email_address" | "jp_corporate_number" => 1,
        _ => 2,
    }
}

impl Policy {
    /// Reads and parses a policy file; errors name the file, line and field.
    pub fn from_file(path: &std::path::Path) -> Result<Policy, crate::RuleError> {
        let text = std::fs::read_to_string(path).map_err(|e| crate::RuleError {
            document: "policy",
            file: Some(path.to_path_buf()),
            line: 0,
            column: 0,
            field: String::new(),
            message: format!("cannot read: {e}"),
        })?;
        parse_policy(&text, Some(path))
    }

    /// Detector ids named by the rules' conditions, with the rule: (rule id, detector id).
    pub fn detector_refs(&self) -> Vec<(String, String)> {
        fn walk(c: &Cond, rule: &str, out: &mut Vec<(String, String)>) {
            match c {
                Cond::All(v) | Cond::Any(v) => v.iter().for_each(|c| walk(c, rule, out)),
                Cond::Not(c) => walk(c, rule, out),
                Cond::Detector { ids, .. } => out.extend(
                    ids.iter()
                        .filter(|i| *i != "any")
                        .map(|i| (rule.to_string(), i.clone())),
                ),
                _ => {}
            }
        }
        let mut out = Vec::new();
        for r in &self.rules {
            walk(&r.when, &r.id, &mut out);
            if let Some(u) = &r.unless {
                walk(u, &r.id, &mut out);
            }
        }
        out
    }

    /// Checks that every detector the rules name exists in `engine`: a misspelt id would
    /// never match. The error names the policy's file, line, column and field itself (see
    /// [`Policy::detector_error`]).
    pub fn check_detectors(&self, engine: &crate::Engine) -> Result<(), String> {
        match self.detector_error(engine) {
            Some(e) => Err(e.to_string()),
            None => Ok(()),
        }
    }

    /// The first detector a rule names that `engine` lacks, as an error with the policy's file,
    /// the line and column where the id is written and the field (`rule[2].when.all[1].detector[0]`);
    /// `None` when every detector exists. Its text (`Display`) is what
    /// [`Policy::check_detectors`] returns.
    pub fn detector_error(&self, engine: &crate::Engine) -> Option<crate::RuleError> {
        let (rule, id) = self.unknown_detector(engine)?;
        let index = self.rules.iter().position(|r| r.id == rule).unwrap_or(0);
        let at = self
            .detector_refs
            .iter()
            .find(|d| d.rule == index && d.id == id);
        Some(crate::RuleError {
            document: "policy",
            file: self.file.clone(),
            line: at.map_or(0, |d| d.line),
            column: at.map_or(0, |d| d.column),
            field: at.map_or_else(|| format!("rule[{index}]"), |d| d.field.clone()),
            message: format!(
                "rule `{rule}`: unknown detector `{id}` (not in the engine: a typo, or the rules \
                 file that defines it was not added; `ping32dlp detectors` lists an engine's)"
            ),
        })
    }

    /// The built-in default policy: every rule in monitor mode.
    pub fn default_monitor() -> Policy {
        parse_policy(DEFAULT_POLICY, None).expect("the built-in policy parses (tested)")
    }

    /// Is the address internal?
    pub fn is_internal(&self, addr: &str, sender: &str) -> bool {
        let d = domain_of(addr);
        if self.internal_domains.is_empty() {
            return !d.is_empty() && d == domain_of(sender);
        }
        self.internal_domains
            .iter()
            .any(|i| d == i || d.ends_with(&format!(".{i}")))
    }

    /// Is a web host the company's own (in `internal_hosts`, or under an internal domain)?
    pub fn is_internal_host(&self, host: &str) -> bool {
        let h = normalize_host(host);
        self.internal_hosts.iter().any(|p| host_matches(&h, p))
            || self
                .internal_domains
                .iter()
                .any(|d| h == *d || h.ends_with(&format!(".{d}")))
    }

    /// External destinations: recipients outside the organisation, then an upload's host when
    /// it is not the company's own.
    fn external<'f>(&self, f: &'f Facts) -> Vec<&'f str> {
        let mut v: Vec<&str> = f
            .recipients
            .iter()
            .filter(|r| !self.is_internal(r, &f.sender))
            .map(String::as_str)
            .collect();
        if let Some(h) = f.destination_host.as_deref() {
            if !self.is_internal_host(h) {
                v.push(h);
            }
        }
        v
    }

    /// External recipients the headers show to everyone (role `To` or `Cc`).
    fn external_to_cc(&self, f: &Facts) -> Vec<String> {
        f.recipients
            .iter()
            .zip(f.roles.iter().chain(std::iter::repeat(&Role::To)))
            .filter(|(r, role)| **role != Role::Bcc && !self.is_internal(r, &f.sender))
            .map(|(r, _)| r.to_lowercase())
            .collect()
    }

    /// Recipients plus the upload's host: everything a mail or upload goes to.
    fn destination_count(f: &Facts) -> usize {
        f.recipients.len() + usize::from(f.destination_host.is_some())
    }

    fn external_domains(&self, f: &Facts) -> BTreeSet<String> {
        self.external(f)
            .into_iter()
            .map(|r| {
                if r.contains('@') {
                    domain_of(r).to_string()
                } else {
                    r.to_string()
                }
            })
            .collect()
    }

    /// A recipient in `group`: listed in the policy's `[groups]` (address or `@domain`), or in
    /// that group in the directory.
    fn recipient_in_group<'f>(&self, f: &'f Facts, group: &str) -> Option<&'f str> {
        f.recipients
            .iter()
            .find(|r| {
                f.recipient_groups
                    .iter()
                    .any(|(a, g)| a == *r && g.iter().any(|x| x == group))
                    || self.groups.get(group).is_some_and(|members| {
                        members.iter().any(|m| {
                            let m = m.to_ascii_lowercase();
                            m == **r || m.strip_prefix('@').is_some_and(|d| domain_of(r) == d)
                        })
                    })
            })
            .map(String::as_str)
    }

    fn in_group(&self, f: &Facts, group: &str) -> bool {
        f.groups.iter().any(|g| g == group)
            || self.groups.get(group).is_some_and(|members| {
                members.iter().any(|m| {
                    let m = m.to_ascii_lowercase();
                    m == f.sender
                        || m.strip_prefix('@')
                            .is_some_and(|d| domain_of(&f.sender) == d)
                })
            })
    }

    /// The risk score and its signals.
    pub fn risk(&self, f: &Facts, h: &dyn History) -> HistoryResult<(u32, Vec<Signal>)> {
        let mut sig = Vec::new();
        let mut add = |name: String, w: u32| {
            if w > 0 {
                sig.push(Signal { name, weight: w });
            }
        };
        for s in f.findings.iter().filter(|s| s.location == "*") {
            let w = sensitivity(&s.detector)
                * if s.unique[2] > 0 {
                    10
                } else if s.unique[1] > 0 {
                    5
                } else {
                    2
                };
            let volume = if s.unique[0] >= 10 { 2 } else { 1 };
            add(
                format!("{}: {} value(s)", s.detector, s.unique[0]),
                (w * volume).min(40),
            );
        }
        let external = self.external(f);
        if !external.is_empty() {
            add(format!("{} external recipient(s)", external.len()), 10);
            let domains = self.external_domains(f);
            if domains.len() > 1 {
                add(
                    format!("{} external domains in one mail", domains.len()),
                    10,
                );
            }
            for d in &domains {
                if !h.domain_seen(d, f.time)? {
                    add(format!("first mail to {d}"), 10);
                    break;
                }
            }
            for a in f
                .attachments
                .iter()
                .filter(|a| a.depth == 0 && !a.sha256.is_empty())
            {
                let n = h.external_sends_of(&a.sha256, f.time - 7 * 86_400, f.time)?;
                if n >= 2 {
                    add(
                        format!("{} sent outside {} times in 7 days", a.name, n + 1),
                        15,
                    );
                    break;
                }
            }
            let (mails, _) = h.sender_external(&f.sender, f.time - 3600, f.time)?;
            if mails >= 20 {
                add(
                    format!(
                        "{} external mails from the sender in the last hour",
                        mails + 1
                    ),
                    10,
                );
            }
        }
        if f.unscannable.iter().any(|(_, r)| r == "encrypted") {
            add("encrypted content".into(), 20);
        } else if !f.unscannable.is_empty() {
            add("content not fully inspected".into(), 5);
        }
        if f.attachments.iter().any(|a| a.extension_mismatch) {
            add("extension does not match content".into(), 15);
        }
        if f.attachments.iter().any(AttachmentFact::filename_spoofing) {
            add("file name hides its extension (bidi override)".into(), 25);
        }
        if let Some(why) = self.calendar.outside_business(f.time, self.utc_offset_min) {
            add(format!("outside business hours ({why})"), 5);
        }
        let score = sig.iter().map(|s| s.weight).sum::<u32>().min(100);
        Ok((score, sig))
    }

    /// The first detector a rule names that `engine` does not have: (rule, detector).
    pub fn unknown_detector(&self, engine: &crate::Engine) -> Option<(&str, &str)> {
        fn walk<'a>(c: &'a Cond, engine: &crate::Engine) -> Option<&'a str> {
            match c {
                Cond::All(v) | Cond::Any(v) => v.iter().find_map(|c| walk(c, engine)),
                Cond::Not(c) => walk(c, engine),
                Cond::Detector { ids, .. } => ids
                    .iter()
                    .find(|i| *i != "any" && engine.detector(i).is_none())
                    .map(String::as_str),
                _ => None,
            }
        }
        self.rules.iter().find_map(|r| {
            walk(&r.when, engine)
                .or_else(|| r.unless.as_ref().and_then(|u| walk(u, engine)))
                .map(|d| (r.id.as_str(), d))
        })
    }

    /// Evaluates the policy. `Err` when there can be no verdict: a history question cannot be
    /// answered, or a rule names a detector the facts' engine lacks (see [`EvalError`]); the
    /// caller then answers by its fail mode.
    pub fn evaluate(&self, f: &Facts, h: &dyn History) -> Result<Verdict, EvalError> {
        if let Some((rule, detector)) = f.engine.as_deref().and_then(|e| self.unknown_detector(e)) {
            return Err(EvalError::UnknownDetector {
                rule: rule.to_string(),
                detector: detector.to_string(),
            });
        }
        let (risk, signals) = self.risk(f, h)?;
        let mut v = Verdict {
            action: Action::Allow,
            matched: Vec::new(),
            risk,
            signals,
            message_ja: None,
            message_en: None,
            approvers: Vec::new(),
            approver_group: None,
            expires: 0,
            headers: Vec::new(),
            subject_prefix: None,
            bcc: Vec::new(),
            evidence_days: None,
            link: false,
            link_expires: None,
        };
        for rule in &self.rules {
            let mut reasons = Vec::new();
            let mut dets = Vec::new();
            h.clear_offline();
            let mut matched = self.eval(&rule.when, f, h, risk, &mut reasons, &mut dets)?;
            if matched {
                if let Some(u) = &rule.unless {
                    matched = !self.eval(u, f, h, risk, &mut Vec::new(), &mut Vec::new())?;
                }
            }
            // An endpoint agent whose fleet server did not answer a history question.
            let mut action = rule.action;
            if h.offline() {
                match rule.offline {
                    Offline::Allow if matched => reasons.push(
                        "history of this PC only: the fleet server did not answer".to_string(),
                    ),
                    Offline::Allow => {}
                    Offline::Hold | Offline::Block => {
                        matched = true;
                        action = if rule.offline == Offline::Hold {
                            Action::Hold
                        } else {
                            Action::Block
                        };
                        reasons.push(format!(
                            "the fleet server did not answer a history question: {} (offline = \"{}\")",
                            action.as_str(),
                            rule.offline.as_str()
                        ));
                    }
                }
            }
            if !matched {
                continue;
            }
            dets.sort();
            dets.dedup();
            v.matched.push(RuleMatch {
                rule: rule.id.clone(),
                action,
                mode: rule.mode,
                severity: rule.severity.clone(),
                reasons,
                detectors: dets,
            });
            if rule.mode == Mode::Enforce {
                if action > v.action {
                    v.action = action;
                    v.message_ja = rule.message_ja.clone();
                    v.message_en = rule.message_en.clone();
                    if action == Action::Delay {
                        // The sender may cancel it (or send it at once); it goes out when the
                        // delay is over.
                        v.approvers = vec!["sender".into()];
                        v.approver_group = None;
                        v.expires = rule.delay;
                    }
                    if action == Action::Hold {
                        v.approvers = if rule.approvers.is_empty() {
                            self.approvers.clone()
                        } else {
                            rule.approvers.clone()
                        };
                        // "manager": the sender's manager from the directory; without one,
                        // the policy's default approvers decide (the reasons say so).
                        if v.approvers
                            .iter()
                            .any(|a| a.eq_ignore_ascii_case("manager"))
                        {
                            let manager = f.manager.clone();
                            v.approvers.retain(|a| !a.eq_ignore_ascii_case("manager"));
                            match manager {
                                Some(m) if !v.approvers.contains(&m) => v.approvers.insert(0, m),
                                Some(_) => {}
                                None => {
                                    if v.approvers.is_empty() {
                                        v.approvers = self.approvers.clone();
                                    }
                                    if let Some(last) = v.matched.last_mut() {
                                        last.reasons.push(
                                            "no manager known for the sender (directory): default approvers".into(),
                                        );
                                    }
                                }
                            }
                        }
                        v.approver_group = rule.approver_group.clone();
                        v.expires = rule.expires;
                    }
                }
                if let Some(hd) = &rule.add_header {
                    v.headers.push(hd.clone());
                }
                if action == Action::Bcc && v.bcc.is_empty() {
                    v.bcc = self.external_to_cc(f);
                    if let Some(last) = v.matched.last_mut() {
                        last.reasons.push(format!(
                            "{} external To/Cc recipient(s) moved to Bcc",
                            v.bcc.len()
                        ));
                    }
                }
                if action == Action::Link && !v.link {
                    v.link = true;
                    v.link_expires = rule.link_expires;
                    if let Some(last) = v.matched.last_mut() {
                        last.reasons
                            .push("attachments replaced by download links".to_string());
                    }
                }
                if rule.subject_prefix.is_some() && v.subject_prefix.is_none() {
                    v.subject_prefix = rule.subject_prefix.clone();
                }
            }
            if let Some(d) = rule.evidence_days {
                v.evidence_days = Some(v.evidence_days.map_or(d, |x| x.max(d)));
            }
            if rule.stop {
                break;
            }
        }
        // A held mail's attachments are kept for its approvers to look at: until the request
        // expires and a week after, unless a rule keeps them longer.
        if v.action == Action::Hold {
            let days = HOLD_EVIDENCE_EXTRA_DAYS + (v.expires.max(0) as u64).div_ceil(86_400) as u32;
            v.evidence_days = Some(v.evidence_days.map_or(days, |d| d.max(days)));
        }
        Ok(v)
    }

    /// Whether a verdict of this policy can ask to keep attachments (a rule with
    /// `evidence_days`, or a hold): inspections then keep the decoded attachments.
    pub fn keeps_attachments(&self) -> bool {
        self.rules.iter().any(|r| {
            r.evidence_days.is_some() || (r.action == Action::Hold && r.mode == Mode::Enforce)
        })
    }

    fn eval(
        &self,
        c: &Cond,
        f: &Facts,
        h: &dyn History,
        risk: u32,
        why: &mut Vec<String>,
        dets: &mut Vec<String>,
    ) -> HistoryResult<bool> {
        let lower = |v: &[String]| -> Vec<String> { v.iter().map(|s| s.to_lowercase()).collect() };
        let (ok, reason): (bool, String) = match c {
            Cond::All(cs) => {
                let mut local = Vec::new();
                for c in cs {
                    if !self.eval(c, f, h, risk, &mut local, dets)? {
                        return Ok(false);
                    }
                }
                why.extend(local);
                return Ok(true);
            }
            Cond::Any(cs) => {
                for c in cs {
                    let mut local = Vec::new();
                    if self.eval(c, f, h, risk, &mut local, dets)? {
                        why.extend(local);
                        return Ok(true);
                    }
                }
                return Ok(false);
            }
            Cond::Not(c) => {
                let mut local = Vec::new();
                let ok = !self.eval(c, f, h, risk, &mut local, &mut Vec::new())?;
                if ok {
                    why.push(format!("not ({})", describe(c)));
                }
                return Ok(ok);
            }
            Cond::RecipientDomainIn(list) => {
                let list = lower(list);
                let hit = f
                    .recipients
                    .iter()
                    .find(|r| list.iter().any(|d| domain_of(r) == d));
                (
                    hit.is_some(),
                    format!("recipient {} in listed domains", hit.map_or("", |s| s)),
                )
            }
            Cond::RecipientDomainNotIn(list) => {
                let list = lower(list);
                let hit = f
                    .recipients
                    .iter()
                    .find(|r| !list.iter().any(|d| domain_of(r) == d));
                (
                    hit.is_some(),
                    format!("recipient {} outside listed domains", hit.map_or("", |s| s)),
                )
            }
            Cond::Recipients(kind) => {
                let ext = self.external(f);
                let total = Self::destination_count(f);
                let ok = match kind.as_str() {
                    "any_external" => !ext.is_empty(),
                    "all_external" => total > 0 && ext.len() == total,
                    "all_internal" => total > 0 && ext.is_empty(),
                    _ => false,
                };
                (
                    ok,
                    format!(
                        "recipients {kind}: {} of {} external ({})",
                        ext.len(),
                        total,
                        ext.iter().take(3).copied().collect::<Vec<_>>().join(", ")
                    ),
                )
            }
            Cond::RecipientCount(r) => (
                r.contains(f.recipients.len() as u64),
                format!("{} recipients ({})", f.recipients.len(), r.describe()),
            ),
            Cond::ExternalRecipientCount(r) => {
                let n = self.external(f).len() as u64;
                (
                    r.contains(n),
                    format!("{n} external recipients ({})", r.describe()),
                )
            }
            Cond::VisibleExternalCount(r) | Cond::BccExternalCount(r) => {
                let bcc = matches!(c, Cond::BccExternalCount(_));
                let ext: Vec<&str> = f
                    .recipients
                    .iter()
                    .enumerate()
                    .filter(|(i, a)| {
                        let role = f.roles.get(*i).copied().unwrap_or_default();
                        (role == Role::Bcc) == bcc && !self.is_internal(a, &f.sender)
                    })
                    .map(|(_, a)| a.as_str())
                    .collect();
                let n = ext.len() as u64;
                (
                    r.contains(n),
                    format!(
                        "{n} external recipients in {} ({}){}",
                        if bcc { "Bcc" } else { "To/Cc" },
                        r.describe(),
                        if ext.is_empty() {
                            String::new()
                        } else {
                            format!(
                                ": {}",
                                ext.iter().take(3).copied().collect::<Vec<_>>().join(", ")
                            )
                        }
                    ),
                )
            }
            Cond::FromDiffersFromEnvelope => match &f.header_from {
                Some(h) if !f.sender.is_empty() && *h != f.sender => (
                    true,
                    format!("From header {h} is not the envelope sender {}", f.sender),
                ),
                _ => (false, "From header is the envelope sender".into()),
            },
            Cond::LookalikeDomain => {
                let mut hits: Vec<String> = Vec::new();
                let domains = self.external_domains(f);
                // Frequent partners from the audit trail join the configured ones; a domain
                // that is itself a frequent partner is no look-alike.
                let frequent = if domains.is_empty() {
                    Vec::new()
                } else {
                    h.frequent_domains(
                        f.time - FREQUENT_PARTNER_DAYS * 86_400,
                        f.time,
                        FREQUENT_PARTNER_MIN_MAILS,
                        FREQUENT_PARTNER_LIMIT,
                    )?
                };
                for d in domains {
                    if frequent.contains(&d) {
                        continue;
                    }
                    let protected = self
                        .internal_domains
                        .iter()
                        .chain(&self.partner_domains)
                        .chain(&frequent);
                    if let Some((p, why)) = protected
                        .filter_map(|p| lookalike::looks_like(&d, p).map(|w| (p, w)))
                        .next()
                    {
                        let known = if frequent.contains(p) && !self.partner_domains.contains(p) {
                            ", a frequent partner"
                        } else {
                            ""
                        };
                        hits.push(format!("{d} looks like {p}{known} ({})", why.as_str()));
                    }
                }
                (
                    !hits.is_empty(),
                    if hits.is_empty() {
                        "no look-alike recipient domain".into()
                    } else {
                        format!("look-alike recipient domain: {}", hits.join("; "))
                    },
                )
            }
            Cond::MixedExternalDomains => {
                let d = self.external_domains(f);
                (
                    d.len() > 1,
                    format!(
                        "external domains {}",
                        d.into_iter().collect::<Vec<_>>().join(", ")
                    ),
                )
            }
            Cond::NewExternalDomain => {
                let mut new: Vec<String> = Vec::new();
                for d in self.external_domains(f) {
                    if !h.domain_seen(&d, f.time)? {
                        new.push(d);
                    }
                }
                (
                    !new.is_empty(),
                    format!("never mailed before: {}", new.join(", ")),
                )
            }
            Cond::FirstTimeRecipient => {
                // At most this many recipients are looked up per mail (bounded work on a
                // mass mail); the reason says when the rest were not.
                const MAX: usize = 100;
                let ext: Vec<&str> = f
                    .recipients
                    .iter()
                    .filter(|r| !self.is_internal(r, &f.sender))
                    .map(String::as_str)
                    .collect();
                let mut new: Vec<&str> = Vec::new();
                for r in ext.iter().take(MAX) {
                    if !h.sent_to_before(&f.sender, r, f.time)? {
                        new.push(r);
                    }
                }
                let mut why = format!("first mail from {} to {}", f.sender, new.join(", "));
                if ext.len() > MAX {
                    why.push_str(&format!(
                        " (the first {MAX} of {} external recipients looked up)",
                        ext.len()
                    ));
                }
                (!new.is_empty(), why)
            }
            Cond::SenderIn(list) => (
                lower(list).contains(&f.sender),
                format!("sender {}", f.sender),
            ),
            Cond::SenderDomainIn(list) => (
                lower(list).iter().any(|d| d == domain_of(&f.sender)),
                format!("sender domain {}", domain_of(&f.sender)),
            ),
            Cond::SenderGroup(g) => (
                self.in_group(f, g),
                format!("sender {} in group {g}", f.sender),
            ),
            Cond::ChannelIn(list) => (list.contains(&f.channel), format!("channel {}", f.channel)),
            Cond::AttachmentCount(r) => {
                let n = f.attachments.iter().filter(|a| a.depth == 0).count() as u64;
                (r.contains(n), format!("{n} attachments ({})", r.describe()))
            }
            Cond::TrueTypeIn(list) => {
                let hit = f.attachments.iter().find(|a| list.contains(&a.kind));
                (
                    hit.is_some(),
                    format!(
                        "{} is {}",
                        hit.map_or("", |a| &a.location),
                        hit.map_or("", |a| &a.kind)
                    ),
                )
            }
            Cond::ExtensionIn(list) => {
                let list = lower(list);
                let hit = f.attachments.iter().find(|a| {
                    let e = a
                        .name
                        .rsplit_once('.')
                        .map(|(_, e)| format!(".{}", e.to_lowercase()))
                        .unwrap_or_default();
                    list.iter().any(|x| *x == e || format!(".{x}") == e)
                });
                (
                    hit.is_some(),
                    format!("attachment {}", hit.map_or("", |a| &a.name)),
                )
            }
            Cond::FilenameSpoofing => {
                let hit = f.attachments.iter().find(|a| a.filename_spoofing());
                (
                    hit.is_some(),
                    format!(
                        "{} hides its extension (bidi override)",
                        crate::text::escape_line(hit.map_or("", |a| &a.name))
                    ),
                )
            }
            Cond::DestinationHostIn(list) => {
                let h = f.destination_host.as_deref().unwrap_or("");
                (
                    !h.is_empty() && list.iter().any(|p| host_matches(h, p)),
                    format!("upload to {h}"),
                )
            }
            Cond::ExtensionMismatch => {
                let hit = f.attachments.iter().find(|a| a.extension_mismatch);
                (
                    hit.is_some(),
                    format!(
                        "{} is really {}",
                        hit.map_or("", |a| &a.name),
                        hit.map_or("", |a| &a.kind)
                    ),
                )
            }
            Cond::MessageSize(r) => (
                r.contains(f.size),
                format!("message of {} bytes ({})", f.size, r.describe()),
            ),
            Cond::AttachmentSize(r) => {
                let hit = f.attachments.iter().find(|a| r.contains(a.size));
                (
                    hit.is_some(),
                    format!(
                        "{} of {} bytes ({})",
                        hit.map_or("", |a| &a.name),
                        hit.map_or(0, |a| a.size),
                        r.describe()
                    ),
                )
            }
            Cond::Detector {
                ids,
                min_confidence,
                min_unique,
                scope,
            } => {
                let k = conf_index(*min_confidence);
                let hit = f.findings.iter().find(|s| {
                    (ids.iter().any(|i| i == &s.detector || i == "any"))
                        && (if *scope == Scope::Message {
                            s.location == "*"
                        } else {
                            s.location != "*"
                        })
                        && s.unique[k] >= *min_unique
                });
                if let Some(s) = hit {
                    dets.push(s.detector.clone());
                }
                (
                    hit.is_some(),
                    hit.map_or(String::new(), |s| {
                        let at = if s.location == "*" {
                            "in the message".to_string()
                        } else {
                            format!("in {}", s.location)
                        };
                        format!(
                            "{}: {} distinct value(s) at {}+ {at} (>= {min_unique}), e.g. {}",
                            s.detector,
                            s.unique[k],
                            min_confidence,
                            s.samples.join(", ")
                        )
                    }),
                )
            }
            Cond::SubjectContains(words) => contains(&f.subject, words, "subject"),
            Cond::BodyContains(words) => contains(f.body.as_deref().unwrap_or(""), words, "body"),
            Cond::TextContains(words) => {
                let r = contains(&f.subject, words, "subject");
                if r.0 {
                    r
                } else {
                    contains(f.body.as_deref().unwrap_or(""), words, "body")
                }
            }
            Cond::UnscannableIn(reasons) => {
                let hit = f
                    .unscannable
                    .iter()
                    .find(|(_, r)| reasons.iter().any(|x| x == r || x == "any"));
                (
                    hit.is_some(),
                    hit.map_or(String::new(), |(l, r)| format!("{l} not inspected: {r}")),
                )
            }
            Cond::Ppap { within } => {
                let encrypted_here = f.unscannable.iter().any(|(_, r)| r == "encrypted");
                let ext = self.external(f);
                let ext: Vec<String> = ext
                    .into_iter()
                    .filter(|e| e.contains('@'))
                    .map(str::to_string)
                    .collect();
                let since = f.time - within;
                let ok = !ext.is_empty()
                    && ((f.password_candidates > 0
                        && h.ppap_partner(&f.sender, &ext, since, f.time, false)?)
                        || (encrypted_here
                            && h.ppap_partner(&f.sender, &ext, since, f.time, true)?));
                (
                    ok,
                    "encrypted archive and its password sent separately to the same recipients"
                        .into(),
                )
            }
            Cond::TimeOfDay { from, to } => {
                let (m, _) = crate::timeutil::local_minute_and_weekday(f.time, self.utc_offset_min);
                let ok = if from <= to {
                    (*from..*to).contains(&m)
                } else {
                    m >= *from || m < *to
                };
                (ok, format!("sent at {:02}:{:02}", m / 60, m % 60))
            }
            Cond::SenderDepartment(list) => match &f.department {
                Some(d) if list.iter().any(|x| x == d) => {
                    (true, format!("sender's department {d}"))
                }
                Some(d) => (false, format!("sender's department {d}")),
                None => (false, "sender's department not known".into()),
            },
            Cond::RecipientGroup(g) => match self.recipient_in_group(f, g) {
                Some(r) => (true, format!("recipient {r} in group {g}")),
                None => (false, format!("no recipient in group {g}")),
            },
            Cond::OutsideBusinessHours => {
                match self.calendar.outside_business(f.time, self.utc_offset_min) {
                    Some(why) => (true, format!("outside business hours: {why}")),
                    None => (false, "within business hours".into()),
                }
            }
            Cond::Holiday => match self.calendar.day_off_at(f.time, self.utc_offset_min) {
                Some(why) => (true, why),
                None => (false, "not a holiday or day off".into()),
            },
            Cond::WeekdayIn(days) => {
                let (_, w) = crate::timeutil::local_minute_and_weekday(f.time, self.utc_offset_min);
                (
                    days.contains(&w),
                    format!(
                        "sent on {}",
                        ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"][w as usize % 7]
                    ),
                )
            }
            Cond::SameAttachmentSentExternal { min, within } => {
                if self.external(f).is_empty() {
                    (false, String::new())
                } else {
                    let mut hit = None;
                    for a in f
                        .attachments
                        .iter()
                        .filter(|a| a.depth == 0 && !a.sha256.is_empty())
                    {
                        let n = h.external_sends_of(&a.sha256, f.time - within, f.time)? + 1;
                        if n >= *min {
                            hit = Some((a, n));
                            break;
                        }
                    }
                    (
                        hit.is_some(),
                        hit.map_or(String::new(), |(a, n)| {
                            format!("{} sent outside {n} times within {within} s", a.name)
                        }),
                    )
                }
            }
            Cond::SenderExternalMails { min, within } => {
                let this = u64::from(!self.external(f).is_empty());
                let (n, _) = h.sender_external(&f.sender, f.time - within, f.time)?;
                (
                    n + this >= *min,
                    format!(
                        "{} external mails from {} within {within} s",
                        n + this,
                        f.sender
                    ),
                )
            }
            Cond::SenderExternalBytes { min, within } => {
                let this: u64 = if self.external(f).is_empty() {
                    0
                } else {
                    f.attachments
                        .iter()
                        .filter(|a| a.depth == 0)
                        .map(|a| a.size)
                        .sum()
                };
                let (_, b) = h.sender_external(&f.sender, f.time - within, f.time)?;
                (
                    b + this >= *min,
                    format!(
                        "{} attachment bytes sent outside by {} within {within} s",
                        b + this,
                        f.sender
                    ),
                )
            }
            Cond::RiskScore(r) => (
                r.contains(u64::from(risk)),
                format!("risk score {risk} ({})", r.describe()),
            ),
        };
        if ok {
            why.push(reason);
        }
        Ok(ok)
    }
}

fn contains(text: &str, words: &[String], what: &str) -> (bool, String) {
    let t = text.to_lowercase();
    let hit = words.iter().find(|w| t.contains(&w.to_lowercase()));
    (
        hit.is_some(),
        format!("{what} contains {}", hit.map_or("", |s| s)),
    )
}

/// A host against a pattern: `example.com` (that host only), `*.example.com` or `.example.com`
/// (its subdomains and itself). Case-insensitive; the host is normalised first.
pub fn host_matches(host: &str, pattern: &str) -> bool {
    let h = normalize_host(host);
    let p = pattern.trim().trim_end_matches('.').to_ascii_lowercase();
    match p.strip_prefix("*.").or_else(|| p.strip_prefix('.')) {
        Some(suffix) => h == suffix || h.ends_with(&format!(".{suffix}")),
        None => h == p,
    }
}

/// A short description of a condition (for `not`).
fn describe(c: &Cond) -> String {
    let s = format!("{c:?}");
    s.chars().take(80).collect()
}
