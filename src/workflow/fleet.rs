//! Endpoint fleet, server side: enrolment tokens, enrolled agents and the records they upload.
//!
//! An admin makes an enrolment token (shown once; the store keeps its SHA-256). An agent
//! exchanges it once for its own credential, `name:secret` (the store keeps the secret's
//! SHA-256). Uploads are idempotent: an agent numbers its records (`seq`, its local record id,
//! which never goes back) and the store keeps the highest it has taken, advanced in the same
//! transaction as the records, so a batch sent twice is stored once. The agent's name is the
//! `gateway` of everything it uploads, set by the server from the credential, never taken from
//! the upload.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{random_hex, Approval, AuditRecord};

/// What an agent last reported about itself.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentStatus {
    /// The user signed in on the PC, as the agent knows it.
    #[serde(default)]
    pub user: Option<String>,
    /// The PC's host name.
    #[serde(default)]
    pub host: Option<String>,
    /// The agent's program and version (`ping32dlp-proxy 0.1.0`).
    #[serde(default)]
    pub version: Option<String>,
    /// The policy version it runs.
    #[serde(default)]
    pub policy_version: Option<String>,
    /// Records judged on the PC and not yet uploaded.
    #[serde(default)]
    pub backlog: u64,
}

/// An enrolled agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agent {
    /// Unique name (`[A-Za-z0-9._-]`, 1 to 64): the gateway of its records and holds.
    pub name: String,
    /// SHA-256 (hex) of its secret.
    pub secret_sha256: String,
    /// Unix seconds of the enrolment.
    pub created: i64,
    /// The enrolment token's label (who or what the admin made it for).
    pub label: String,
    /// Unix seconds of its last request.
    pub last_seen: Option<i64>,
    /// The highest record number taken from it.
    pub last_seq: i64,
    /// Unix seconds of the revocation.
    pub revoked: Option<i64>,
    /// What it last reported.
    pub status: AgentStatus,
}

/// An enrolment token (its SHA-256; the token itself is shown once).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnrolToken {
    /// SHA-256 (hex) of the token.
    pub sha256: String,
    /// What the admin made it for (`sales PC 12`).
    pub label: String,
    /// Unix seconds.
    pub created: i64,
    /// Unix seconds after which it is refused.
    pub expires: i64,
    /// The admin who made it.
    pub created_by: String,
    /// Unix seconds of its one use.
    pub used: Option<i64>,
    /// The agent that used it.
    pub agent: Option<String>,
}

/// A mail an agent holds on its PC, uploaded with its record: the approval request and the
/// attachments the approver may open.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HeldItem {
    /// The request as the agent made it (its id is kept; the server sets record and gateway).
    pub approval: Approval,
    /// The attachments kept for the approver.
    #[serde(default)]
    pub evidence: Vec<EvidenceItem>,
}

/// An attachment kept for the approver of a mail held on a PC.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EvidenceItem {
    /// Location in the message.
    pub location: String,
    /// SHA-256 (hex) of the data.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
    /// The data, base64; `None` when it stays on the PC (larger than [`MAX_EVIDENCE_UPLOAD`]).
    #[serde(default)]
    pub data: Option<String>,
}

/// Largest attachment data uploaded with one held mail (the rest stays on the PC).
pub const MAX_EVIDENCE_UPLOAD: u64 = 8 * 1024 * 1024;

/// A request carried out on the PC that holds it, reported to the server.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Closed {
    /// The request.
    pub id: String,
    /// `released` or `discarded`.
    pub state: super::ApprovalState,
    /// Unix seconds.
    pub time: i64,
}

/// A policy for the agents, as the admin uploaded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetPolicy {
    /// 1, 2, ...: each upload is a new version.
    pub version: i64,
    /// The policy file's text.
    pub text: String,
    /// SHA-256 (hex) of the text.
    pub sha256: String,
    /// Unix seconds.
    pub created: i64,
    /// Who uploaded it.
    pub actor: String,
}

/// The first line of a fleet policy file an agent keeps (`fleet-policy.toml`).
pub const POLICY_HEADER: &str = "# ping32dlp fleet policy version ";

/// The file an agent's forwarder writes a newly fetched policy to, in the state directory.
pub const POLICY_NEW_FILE: &str = "fleet-policy.new.toml";
/// The file of the policy an agent runs (renamed from [`POLICY_NEW_FILE`] once applied).
pub const POLICY_FILE: &str = "fleet-policy.toml";

/// The version written in a fleet policy file's first line.
pub fn policy_file_version(text: &str) -> Option<i64> {
    text.lines()
        .next()?
        .strip_prefix(POLICY_HEADER)?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// A fleet policy's text as an agent keeps it: the header line, then the text.
pub fn policy_file_text(p: &FleetPolicy) -> String {
    format!(
        "{POLICY_HEADER}{} (sha256 {}, uploaded by {})\n{}",
        p.version,
        p.sha256,
        p.actor.replace(['\n', '\r'], " "),
        p.text
    )
}

/// Parses a policy text for the agents and checks it against `engine` (the detectors it
/// names exist); errors carry the line, column and field like `ping32dlp policy check`.
pub fn check_policy_text(
    text: &str,
    name: &std::path::Path,
    engine: &crate::Engine,
) -> Result<crate::policy::Policy, String> {
    let p = crate::policy::parse_policy(text, Some(name)).map_err(|e| e.to_string())?;
    p.check_detectors(engine)?;
    Ok(p)
}

/// What an enrolment came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enrolment {
    /// The agent is enrolled and the token used up.
    Enrolled,
    /// The token is unknown, used or expired.
    BadToken,
    /// Another agent has that name.
    NameTaken,
}

/// SHA-256 of a token or secret, hex.
pub fn secret_digest(secret: &str) -> String {
    secret_digest_bytes(secret.as_bytes())
}

/// SHA-256 of bytes, hex.
pub fn secret_digest_bytes(data: &[u8]) -> String {
    super::hex(&Sha256::digest(data))
}

/// A new enrolment token (24 random bytes, hex) and its stored form.
pub fn new_enrol_token(label: &str, created_by: &str, now: i64, days: i64) -> (String, EnrolToken) {
    let token = random_hex(24);
    let t = EnrolToken {
        sha256: secret_digest(&token),
        label: label.to_string(),
        created: now,
        expires: now + days.max(1) * 86_400,
        created_by: created_by.to_string(),
        used: None,
        agent: None,
    };
    (token, t)
}

/// A new agent secret (32 random bytes, hex).
pub fn new_agent_secret() -> String {
    random_hex(32)
}

/// Whether `name` can name an agent: 1 to 64 of `A-Z a-z 0-9 . _ -`, not starting with `.`
/// or `-`.
pub fn valid_agent_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && !name.starts_with(['.', '-'])
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Splits an agent credential `name:secret`.
pub fn split_credential(cred: &str) -> Option<(&str, &str)> {
    let (name, secret) = cred.trim().rsplit_once(':')?;
    (valid_agent_name(name) && secret.len() == 64 && secret.bytes().all(|b| b.is_ascii_hexdigit()))
        .then_some((name, secret))
}

/// The records of an upload, prepared for storing: numbered, in order, past `after`, with the
/// agent as their gateway. `Err` names what is wrong with the upload.
/// Each record may carry something (`T`: a held mail) that stays with it.
pub fn prepare_upload<T>(
    agent: &str,
    after: i64,
    items: Vec<(i64, AuditRecord, T)>,
) -> Result<(i64, Vec<(AuditRecord, T)>), String> {
    let mut last = after;
    let mut out = Vec::with_capacity(items.len());
    let mut prev = i64::MIN;
    for (seq, mut rec, extra) in items {
        if seq <= prev {
            return Err(format!("record numbers must increase ({seq} after {prev})"));
        }
        prev = seq;
        if seq <= after {
            continue; // already taken: a batch sent again
        }
        rec.id = 0;
        rec.gateway = Some(agent.to_string());
        last = seq;
        out.push((rec, extra));
    }
    Ok((last, out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_credentials() {
        assert!(valid_agent_name("pc-0012.sales"));
        assert!(!valid_agent_name(""));
        assert!(!valid_agent_name("-x"));
        assert!(!valid_agent_name("a b"));
        assert!(!valid_agent_name("a:b"));
        assert!(!valid_agent_name(&"a".repeat(65)));
        let s = new_agent_secret();
        assert_eq!(
            split_credential(&format!("pc1:{s}")),
            Some(("pc1", s.as_str()))
        );
        assert_eq!(split_credential("pc1:short"), None);
        assert_eq!(split_credential(&format!("a b:{s}")), None);
        assert_ne!(secret_digest(&s), s);
        assert_eq!(secret_digest(&s).len(), 64);
    }

    #[test]
    fn uploads_skip_what_was_taken() {
        let rec = |s: &str| AuditRecord {
            id: 99,
            sender: s.into(),
            gateway: Some("someone-else".into()),
            ..Default::default()
        };
        let (last, recs) = prepare_upload(
            "pc1",
            2,
            vec![(1, rec("a"), 1), (2, rec("b"), 2), (5, rec("c"), 3)],
        )
        .unwrap();
        assert_eq!(last, 5);
        assert_eq!(recs.len(), 1);
        assert_eq!(recs[0].0.sender, "c");
        assert_eq!(recs[0].1, 3);
        assert_eq!(recs[0].0.gateway.as_deref(), Some("pc1"));
        assert_eq!(recs[0].0.id, 0);
        let (last, recs) = prepare_upload("pc1", 5, vec![(4, rec("a"), ())]).unwrap();
        assert_eq!((last, recs.len()), (5, 0));
        assert!(prepare_upload("pc1", 0, vec![(3, rec("a"), ()), (3, rec("b"), ())]).is_err());
        let fp = FleetPolicy {
            version: 12,
            text: "[policy]\nname = \"x\"\n".into(),
            sha256: "ab".into(),
            created: 0,
            actor: "admin\nforged".into(),
        };
        let t = policy_file_text(&fp);
        assert_eq!(policy_file_version(&t), Some(12));
        assert_eq!(t.lines().count(), 3);
        assert!(t.ends_with(&fp.text));
        assert_eq!(policy_file_version("[policy]"), None);
        let (t, et) = new_enrol_token("x", "admin", 100, 7);
        assert_eq!(et.sha256, secret_digest(&t));
        assert_eq!(et.expires, 100 + 7 * 86_400);
    }
}
