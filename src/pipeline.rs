//! The whole path of one outbound mail: inspect → facts → policy → audit record (durable) →
//! evidence, approval, alerts → the decision the integration applies. Milter, proxy, ICAP, the
//! C ABI and `ping32dlp process` all go through [`Pipeline`].
//!
//! ```no_run
//! use std::sync::Arc;
//! use ping32dlp::{pipeline::Pipeline, policy::{Context, Policy}, workflow::{Workflow, WorkflowConfig}};
//!
//! let policy = Policy::from_file("policy.toml".as_ref())?;
//! let mut cfg = WorkflowConfig::new("/var/lib/ping32dlp");
//! cfg.alerts = policy.alerts.clone();
//! let workflow = Arc::new(Workflow::open(cfg)?); // SQLite audit trail, evidence, approvals
//! let pipeline = Pipeline::new(Arc::new(ping32dlp::Engine::builtin()), policy, workflow, Default::default());
//! let ctx = Context { channel: "milter".into(), user: Some("ichiro".into()), ..Context::default() };
//! let raw = std::fs::read("mail.eml")?;
//! let d = pipeline.process_message(&raw, &ctx, &[], false)?; // returns after the record is committed
//! println!("{} (record {}, risk {})", d.verdict.action.as_str(), d.record.id, d.verdict.risk);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::sync::{Arc, Mutex, RwLock};

use crate::extract::ExtractOptions;
use crate::policy::{Action, Context, Facts, Policy, Verdict};
use crate::report::Report;
use crate::workflow::{Approval, AuditRecord, Result, Workflow};
use crate::{Engine, Scanner};

/// What to do with a mail, and why.
#[derive(Debug, Clone)]
pub struct Decision {
    /// The verdict (final action, matched rules, risk, user message, tags).
    pub verdict: Verdict,
    /// The audit record as stored (with its id).
    pub record: AuditRecord,
    /// The approval opened for a held mail.
    pub approval: Option<Approval>,
    /// Its authenticated link token.
    pub approval_token: Option<String>,
    /// The inspection report (sensitive: raw values; never log it unmasked).
    pub report: Report,
    /// With `action = "link"`: the message as it must go out, its attachments replaced by
    /// download links (already stored; the files' bytes are not kept here).
    pub links: Option<crate::workflow::links::PreparedLinks>,
}

impl Decision {
    /// The final action.
    pub fn action(&self) -> Action {
        self.verdict.action
    }
}

/// An integration's own rule over the policy's verdict, run before it is recorded.
pub type Gate<'a> = dyn Fn(&Facts, &mut Verdict) + Sync + 'a;

/// What an integration adds to one inspection ([`Pipeline::process_message_with`]).
#[derive(Default)]
pub struct Extra<'a> {
    /// Passwords to try on encrypted archives and PDFs.
    pub passwords: &'a [String],
    /// Keep the message bytes with a hold (integrations that cannot hold mail themselves).
    pub keep_raw: bool,
    /// What the integration could not read before the pipeline saw the bytes (an upload's
    /// unknown content encoding, a fragment that cannot be put together): reported, recorded
    /// and seen by the policy like extraction's own unscannable items.
    pub unscannable: Vec<crate::extract::Unscannable>,
    /// Called with the facts and the policy's verdict before the verdict is recorded: an
    /// integration's own fail-closed rule (see [`Verdict::force`]).
    pub gate: Option<&'a Gate<'a>>,
}

/// A masked, readable view of a file ([`Pipeline::preview_file`]).
#[derive(Debug, Clone, Default)]
pub struct Preview {
    /// Text parts in document order.
    pub parts: Vec<PreviewPart>,
    /// What could not be read: (location, reason).
    pub unscannable: Vec<(String, String)>,
    /// Text was cut at the size limit.
    pub truncated: bool,
}

/// One part of a [`Preview`].
#[derive(Debug, Clone, Default)]
pub struct PreviewPart {
    /// Where the text comes from (`見積書.zip/data.xlsx`).
    pub location: String,
    /// PDF page, if any.
    pub page: Option<u32>,
    /// Sheet name, if any.
    pub sheet: Option<String>,
    /// The text with detected values masked.
    pub text: String,
    /// Values masked in it.
    pub findings: usize,
}

/// One inspection as an [`Observer`] sees it: no values, only what metrics count.
pub struct Inspected<'a> {
    /// The integration's channel (`milter`, `proxy`, `webmail`, ...).
    pub channel: &'a str,
    /// Bytes of the message or file.
    pub bytes: usize,
    /// Seconds from the call to the committed record.
    pub seconds: f64,
    /// The decision, or why none could be made and recorded (the store failed).
    pub outcome: std::result::Result<&'a Decision, &'a crate::workflow::WorkflowError>,
}

/// Told about every inspection of a [`Pipeline`] and the daemons' background work: how the
/// daemons feed their Prometheus metrics. Called on the inspecting thread: keep it cheap.
pub trait Observer: Send + Sync {
    /// One message or file was inspected (or could not be recorded).
    fn inspected(&self, i: &Inspected<'_>);
    /// One round of [`Workflow::maintain`] ended (holds carried out, expired, errors).
    fn maintained(&self, _m: &crate::workflow::Maintenance) {}
    /// A reload was tried: `Ok` with what now runs, or the error (the old rules stay).
    fn reloaded(&self, _r: std::result::Result<&str, &str>) {}
}

/// Engine, policy and workflow, shared by all connections of an integration.
pub struct Pipeline {
    /// Rules and policy, replaced together by a reload.
    current: RwLock<Current>,
    workflow: Arc<Workflow>,
    options: ExtractOptions,
    scanners: Mutex<Vec<Scanner>>,
    observer: Option<Arc<dyn Observer>>,
}

#[derive(Clone)]
struct Current {
    engine: Arc<Engine>,
    policy: Arc<Policy>,
}

impl Pipeline {
    /// A pipeline; `options` sets the limits (passwords are added per call).
    pub fn new(
        engine: Arc<Engine>,
        policy: Policy,
        workflow: Arc<Workflow>,
        options: ExtractOptions,
    ) -> Pipeline {
        Pipeline {
            current: RwLock::new(Current {
                engine,
                policy: Arc::new(policy),
            }),
            workflow,
            options,
            scanners: Mutex::new(Vec::new()),
            observer: None,
        }
    }

    /// Tells `observer` about every inspection from now on (the daemons' metrics).
    pub fn set_observer(&mut self, observer: Arc<dyn Observer>) {
        self.observer = Some(observer);
    }

    /// The observer, if one is set.
    pub fn observer(&self) -> Option<&Arc<dyn Observer>> {
        self.observer.as_ref()
    }

    fn observed(
        &self,
        channel: &str,
        bytes: usize,
        started: std::time::Instant,
        r: Result<Decision>,
    ) -> Result<Decision> {
        if let Some(o) = &self.observer {
            o.inspected(&Inspected {
                channel,
                bytes,
                seconds: started.elapsed().as_secs_f64(),
                outcome: r.as_ref(),
            });
        }
        r
    }

    fn current(&self) -> Current {
        match self.current.read() {
            Ok(c) => c.clone(),
            Err(e) => e.into_inner().clone(),
        }
    }

    fn set_current(&self, f: impl FnOnce(&mut Current)) {
        match self.current.write() {
            Ok(mut g) => f(&mut g),
            Err(e) => f(&mut e.into_inner()),
        }
    }

    /// The current policy.
    pub fn policy(&self) -> Arc<Policy> {
        self.current().policy
    }

    /// Replaces the policy (a reload); calls in flight finish with the old one.
    pub fn set_policy(&self, p: Policy) {
        self.set_current(|c| c.policy = Arc::new(p));
    }

    /// Replaces rules and policy together (a reload: SIGHUP on the daemons). Calls in flight
    /// finish with the old ones; the next call inspects with `engine` and decides by `policy`.
    /// The caller has checked `policy` against `engine` ([`Policy::check_detectors`]).
    pub fn reload(&self, engine: Arc<Engine>, policy: Policy) {
        self.set_current(|c| {
            c.engine = engine;
            c.policy = Arc::new(policy);
        });
        // Pooled scanners hold the old engine.
        if let Ok(mut v) = self.scanners.lock() {
            v.clear();
        }
    }

    /// The workflow.
    pub fn workflow(&self) -> &Arc<Workflow> {
        &self.workflow
    }

    /// The current engine.
    pub fn engine(&self) -> Arc<Engine> {
        self.current().engine
    }

    /// A pooled scanner over `engine` (the one that goes with the policy in use).
    fn scanner(&self, engine: &Arc<Engine>) -> Scanner {
        let pooled = self.scanners.lock().ok().and_then(|mut v| v.pop());
        match pooled {
            Some(s) if Arc::ptr_eq(s.engine(), engine) => s,
            _ => Scanner::new(engine.clone()),
        }
    }

    fn give_back(&self, s: Scanner) {
        if !Arc::ptr_eq(s.engine(), &self.engine()) {
            return; // a reload happened while it worked
        }
        if let Ok(mut v) = self.scanners.lock() {
            if v.len() < 64 {
                v.push(s);
            }
        }
    }

    fn options(&self, policy: &Policy, passwords: &[String]) -> ExtractOptions {
        let mut o = self.options.clone();
        o.passwords.extend(passwords.iter().cloned());
        o.keep_attachments = policy.keeps_attachments();
        o
    }

    /// Inspects a raw message and decides. The audit record is committed before this returns.
    /// `keep_raw`: keep the message bytes with a hold (for integrations that cannot hold mail
    /// themselves, such as the SMTP proxy).
    pub fn process_message(
        &self,
        raw: &[u8],
        ctx: &Context,
        passwords: &[String],
        keep_raw: bool,
    ) -> Result<Decision> {
        self.process_message_with(
            raw,
            ctx,
            Extra {
                passwords,
                keep_raw,
                ..Extra::default()
            },
        )
    }

    /// [`Pipeline::process_message`] with what an integration adds: unscannable items of its
    /// own and a gate over the verdict before it is recorded.
    pub fn process_message_with(
        &self,
        raw: &[u8],
        ctx: &Context,
        extra: Extra<'_>,
    ) -> Result<Decision> {
        let started = std::time::Instant::now();
        let r = self.process_message_inner(raw, ctx, extra);
        self.observed(&ctx.channel, raw.len(), started, r)
    }

    fn process_message_inner(
        &self,
        raw: &[u8],
        ctx: &Context,
        extra: Extra<'_>,
    ) -> Result<Decision> {
        let Current { engine, policy } = self.current();
        let opts = self.options(&policy, extra.passwords);
        let mut scanner = self.scanner(&engine);
        let mut report = scanner.inspect_message(raw, &opts);
        self.give_back(scanner);
        report.unscannable.extend(extra.unscannable);
        record_gated(
            &self.workflow,
            report,
            ctx,
            &policy,
            Some((raw, extra.keep_raw)),
            None,
            extra.gate,
        )
    }

    /// A readable view of a file with nothing sensitive in it: its extracted text, part by
    /// part, with every detected value replaced by its masked form, at most `max_bytes` of
    /// text in all. For approvers who must see what is being sent without the console showing
    /// raw values.
    pub fn preview_file(&self, name: &str, data: &[u8], max_bytes: usize) -> Preview {
        let Current { engine, policy } = self.current();
        let mut opts = self.options(&policy, &[]);
        opts.keep_attachments = false;
        let ex = crate::extract::extract_file(name, data, &opts);
        let mut scanner = self.scanner(&engine);
        let mut out = Preview {
            unscannable: ex
                .unscannable
                .iter()
                .map(|u| (u.location.clone(), u.reason.as_str().to_string()))
                .collect(),
            ..Preview::default()
        };
        let mut left = max_bytes;
        for seg in &ex.segments {
            if left == 0 {
                out.truncated = true;
                break;
            }
            let r = scanner.scan_str(&seg.text);
            let mut spans: Vec<(usize, usize, &str)> = r
                .findings
                .iter()
                .map(|f| (f.start, f.end, f.value_masked))
                .collect();
            spans.sort_by_key(|x| (x.0, std::cmp::Reverse(x.1)));
            let mut text = String::with_capacity(seg.text.len().min(left));
            let mut at = 0;
            for (start, end, masked) in &spans {
                if *start < at || *end > seg.text.len() {
                    continue;
                }
                text.push_str(&seg.text[at..*start]);
                text.push_str(masked);
                at = *end;
            }
            text.push_str(&seg.text[at..]);
            if text.len() > left {
                let mut cut = left;
                while !text.is_char_boundary(cut) {
                    cut -= 1;
                }
                text.truncate(cut);
                out.truncated = true;
            }
            left -= text.len();
            out.parts.push(PreviewPart {
                location: seg.location.clone(),
                page: seg.page,
                sheet: seg.sheet.clone(),
                findings: spans.len(),
                text,
            });
        }
        self.give_back(scanner);
        out
    }

    /// Inspects one uploaded file (webmail) and decides.
    pub fn process_file(&self, name: &str, data: &[u8], ctx: &Context) -> Result<Decision> {
        let started = std::time::Instant::now();
        let Current { engine, policy } = self.current();
        let opts = self.options(&policy, &[]);
        let mut scanner = self.scanner(&engine);
        let report = scanner.inspect_file(name, data, &opts);
        self.give_back(scanner);
        let r = self.decide(report, ctx, &policy, None, Some((name, data)));
        self.observed(&ctx.channel, data.len(), started, r)
    }

    fn decide(
        &self,
        report: Report,
        ctx: &Context,
        policy: &Policy,
        keep_raw: Option<&[u8]>,
        file: Option<(&str, &[u8])>,
    ) -> Result<Decision> {
        record_report(&self.workflow, report, ctx, policy, keep_raw, file)
    }
}

/// Judges an inspection report with a policy (history from the workflow's store) and records
/// it: the audit record is committed, evidence kept, an approval opened for a hold and alerts
/// sent before this returns. `keep_raw` keeps the message with a hold; `file` is an uploaded
/// file whose bytes the evidence store may keep. [`Pipeline`] calls this after inspecting; the
/// C ABI calls it with a report the caller's scanner made.
pub fn record_report(
    workflow: &Workflow,
    report: Report,
    ctx: &Context,
    policy: &Policy,
    keep_raw: Option<&[u8]>,
    file: Option<(&str, &[u8])>,
) -> Result<Decision> {
    record_gated(
        workflow,
        report,
        ctx,
        policy,
        keep_raw.map(|r| (r, true)),
        file,
        None,
    )
}

fn record_gated(
    workflow: &Workflow,
    report: Report,
    ctx: &Context,
    policy: &Policy,
    message: Option<(&[u8], bool)>,
    file: Option<(&str, &[u8])>,
    gate: Option<&Gate<'_>>,
) -> Result<Decision> {
    // The message's bytes, and whether to keep them with a hold (integrations that cannot
    // hold mail themselves).
    let keep_raw = message.and_then(|(raw, keep)| keep.then_some(raw));
    let facts = Facts::from_report(&report, ctx);
    let store = workflow.store().clone();
    let tracked;
    let history: &dyn crate::policy::History = match workflow.agent_history() {
        Some(a) => {
            tracked = a.tracked();
            &tracked
        }
        None => &*store,
    };
    let mut verdict = policy.evaluate(&facts, history)?;
    if let Some(g) = gate {
        g(&facts, &mut verdict);
    }
    // `link`: the attachments are replaced by download links before anything is kept or
    // sent. A message whose attachments cannot be taken out safely is refused (fail closed).
    let mut links = None;
    if verdict.link && verdict.action != Action::Block {
        let made = match message {
            // The files of an endpoint agent stay on the PC, where no download listener can
            // reach them: refused rather than sent with dead links or with the files.
            Some(_) if workflow.agent_history().is_some() => Err(
                "an endpoint agent cannot serve download links (its files stay on the PC)"
                    .to_string(),
            ),
            Some((raw, _)) => crate::workflow::links::prepare(
                raw,
                &crate::policy::LinkSettings {
                    expires: verdict.link_expires.unwrap_or(policy.links.expires),
                    ..policy.links.clone()
                },
                crate::timeutil::now(),
                policy.utc_offset_min,
            ),
            // An upload (the webmail hook) has no mail to rewrite: it goes as it is, like a
            // delay there; the matched rule is recorded.
            None if file.is_some() => Ok(None),
            None => Err("this integration gives no message to rewrite".to_string()),
        };
        match made {
            Ok(p) => links = p,
            Err(why) => verdict.force(
                "links",
                Action::Block,
                vec![format!("the attachments could not be replaced by download links: {why}")],
                "添付ファイルをダウンロードリンクに置き換えられないため、送信できません",
                "The attachments could not be replaced by download links, so the message was refused",
            ),
        }
    }
    let mut record = AuditRecord::new(&report, ctx, &facts, &verdict, policy);
    let mut kept: Vec<(&str, &[u8])> = report
        .kept
        .iter()
        .map(|(l, b)| (l.as_str(), b.as_slice()))
        .collect();
    if let Some((name, data)) = file {
        kept.push((name, data));
    }
    // A held message is kept as it will go out when released: with the verdict's tags and
    // its external To/Cc moved to Bcc.
    let tagged;
    let keep_raw = match (keep_raw, &links) {
        (Some(_), Some(l)) => {
            tagged = apply_tags(&l.message, &verdict);
            Some(&tagged[..])
        }
        (keep_raw, _) => match keep_raw {
            Some(raw)
                if !verdict.headers.is_empty()
                    || verdict.subject_prefix.is_some()
                    || !verdict.bcc.is_empty() =>
            {
                tagged = apply_tags(raw, &verdict);
                Some(&tagged[..])
            }
            other => other,
        },
    };
    let outcome = workflow.process(record.clone(), &verdict, &kept, keep_raw)?;
    if let Some(l) = &mut links {
        workflow.store_links(outcome.record_id, &record.sender, l)?;
        for f in &mut l.files {
            f.data = Vec::new();
        }
    }
    record.id = outcome.record_id;
    record.approval = outcome.approval.as_ref().map(|a| a.id.clone());
    let approval_token = outcome.approval.as_ref().map(|a| workflow.token(a));
    Ok(Decision {
        verdict,
        record,
        approval: outcome.approval,
        approval_token,
        report,
        links,
    })
}

/// Applies a verdict's tags to a raw message: its headers are added at the top, its subject
/// prefix is put before the subject (RFC 2047-encoded when not ASCII), and its `bcc`
/// addresses are taken out of `To` and `Cc` ([`move_to_bcc`]).
pub fn apply_tags(raw: &[u8], v: &Verdict) -> Vec<u8> {
    if !v.bcc.is_empty() {
        let moved = move_to_bcc(raw, &v.bcc);
        let mut v = v.clone();
        v.bcc.clear();
        return apply_tags(&moved, &v);
    }
    if v.headers.is_empty() && v.subject_prefix.is_none() {
        return raw.to_vec();
    }
    let crlf = raw.windows(2).take(8192).any(|w| w == b"\r\n");
    let nl: &[u8] = if crlf { b"\r\n" } else { b"\n" };
    let mut out = Vec::with_capacity(raw.len() + 256);
    for (name, value) in &v.headers {
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(encode_header_text(value, false).as_bytes());
        out.extend_from_slice(nl);
    }
    let Some(prefix) = &v.subject_prefix else {
        out.extend_from_slice(raw);
        return out;
    };
    // Header block: up to the first empty line.
    let header_end = find_header_end(raw);
    let mut pos = 0;
    let mut done = false;
    while pos < header_end {
        let line_end =
            memchr::memchr(b'\n', &raw[pos..header_end]).map_or(header_end, |i| pos + i + 1);
        let line = &raw[pos..line_end];
        if !done && line.len() >= 8 && line[..8].eq_ignore_ascii_case(b"subject:") {
            let rest = &line[8..];
            let trimmed = rest
                .iter()
                .position(|b| *b != b' ' && *b != b'\t')
                .unwrap_or(rest.len());
            let value = &rest[trimmed..];
            let encoded_next = value.starts_with(b"=?");
            out.extend_from_slice(b"Subject: ");
            out.extend_from_slice(encode_header_text(prefix, encoded_next).as_bytes());
            if !value.is_empty() && !matches!(value[0], b'\r' | b'\n') {
                out.push(b' ');
            }
            out.extend_from_slice(value);
            done = true;
        } else {
            out.extend_from_slice(line);
        }
        pos = line_end;
    }
    if !done {
        out.extend_from_slice(b"Subject: ");
        out.extend_from_slice(encode_header_text(prefix, false).as_bytes());
        out.extend_from_slice(nl);
    }
    out.extend_from_slice(&raw[header_end..]);
    out
}

/// The addresses of a `To` or `Cc` header value, written out again without those in `hide`
/// (lower-case addresses), or `None` when the value names none of them (leave it as it is).
/// `Some` of an empty list: nothing is left (a `To` becomes `undisclosed-recipients:;`, a `Cc`
/// goes). Names are kept, quoted or RFC 2047-encoded; groups are flattened.
pub fn recipients_without(value: &[u8], hide: &[String]) -> Option<Vec<String>> {
    if hide.is_empty() {
        return None;
    }
    let mut mini = Vec::with_capacity(value.len() + 8);
    mini.extend_from_slice(b"To: ");
    mini.extend_from_slice(value);
    mini.extend_from_slice(b"\r\n\r\n");
    let parsed = mail_parser::MessageParser::default().parse_headers(&mini[..]);
    let mut kept = Vec::new();
    let mut removed = false;
    for a in parsed
        .as_ref()
        .and_then(|p| p.to())
        .into_iter()
        .flat_map(|l| l.iter())
    {
        let Some(addr) = a.address() else { continue };
        if hide.iter().any(|h| h.eq_ignore_ascii_case(addr.trim())) {
            removed = true;
            continue;
        }
        kept.push(match a.name().map(str::trim).filter(|n| !n.is_empty()) {
            Some(n) => format!("{} <{addr}>", display_name(n)),
            None => addr.to_string(),
        });
    }
    // A value the parser cannot read whole may still show a hidden address: then it is
    // written out again with only what was read.
    let shown = || {
        let lower = String::from_utf8_lossy(value).to_lowercase();
        hide.iter().any(|h| lower.contains(h.as_str()))
    };
    (removed || shown()).then_some(kept)
}

/// A display name as a header can carry it: as is when it is plain ASCII words, quoted when it
/// holds specials, RFC 2047-encoded when it is not ASCII.
fn display_name(n: &str) -> String {
    let n: String = n.chars().filter(|c| !c.is_control()).collect();
    if !n.is_ascii() {
        return encode_header_text(&n, false);
    }
    if n.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b" !#$%&'*+-/=?^_`{|}~".contains(&b))
    {
        return n;
    }
    let escaped = n.replace('\\', "\\\\").replace('"', "\\\"");
    format!("\"{escaped}\"")
}

/// Takes the verdict's `bcc` addresses (external `To` / `Cc` recipients) out of a raw message's
/// `To` and `Cc` headers (action `bcc`); the rest of the message is unchanged.
pub fn move_to_bcc(raw: &[u8], hide: &[String]) -> Vec<u8> {
    if hide.is_empty() {
        return raw.to_vec();
    }
    let crlf = raw.windows(2).take(8192).any(|w| w == b"\r\n");
    let nl: &[u8] = if crlf { b"\r\n" } else { b"\n" };
    let header_end = find_header_end(raw);
    let mut out = Vec::with_capacity(raw.len());
    let mut pos = 0;
    while pos < header_end {
        // One field: its first line and the folded lines after it.
        let mut end =
            memchr::memchr(b'\n', &raw[pos..header_end]).map_or(header_end, |i| pos + i + 1);
        while end < header_end && matches!(raw[end], b' ' | b'\t') {
            end = memchr::memchr(b'\n', &raw[end..header_end]).map_or(header_end, |i| end + i + 1);
        }
        let field = &raw[pos..end];
        pos = end;
        let name = field.iter().position(|&b| b == b':').map(|i| &field[..i]);
        let to = name.is_some_and(|n| n.eq_ignore_ascii_case(b"to"));
        let cc = name.is_some_and(|n| n.eq_ignore_ascii_case(b"cc"));
        if !(to || cc) {
            out.extend_from_slice(field);
            continue;
        }
        let value = &field[3..]; // after `To:` or `Cc:`
        let Some(kept) = recipients_without(value.trim_ascii(), hide) else {
            out.extend_from_slice(field);
            continue;
        };
        if kept.is_empty() && cc {
            continue;
        }
        out.extend_from_slice(if to { b"To: " } else { b"Cc: " });
        if kept.is_empty() {
            out.extend_from_slice(b"undisclosed-recipients:;");
        }
        for (i, k) in kept.iter().enumerate() {
            if i > 0 {
                out.push(b',');
                out.extend_from_slice(nl);
                out.push(b' ');
            }
            out.extend_from_slice(k.as_bytes());
        }
        out.extend_from_slice(nl);
    }
    out.extend_from_slice(&raw[header_end..]);
    out
}

pub(crate) fn find_header_end(raw: &[u8]) -> usize {
    let mut i = 0;
    while i < raw.len() {
        let line_end = memchr::memchr(b'\n', &raw[i..]).map_or(raw.len(), |k| i + k + 1);
        let line = &raw[i..line_end];
        if line == b"\n" || line == b"\r\n" {
            return i;
        }
        i = line_end;
    }
    raw.len()
}

/// Moved to [`crate::text::encode_header_text`]; kept here for callers of earlier versions.
pub use crate::text::encode_header_text;

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict(headers: Vec<(String, String)>, prefix: Option<&str>) -> Verdict {
        Verdict {
            action: Action::Allow,
            matched: Vec::new(),
            risk: 0,
            signals: Vec::new(),
            message_ja: None,
            message_en: None,
            approvers: Vec::new(),
            approver_group: None,
            expires: 0,
            headers,
            subject_prefix: prefix.map(String::from),
            bcc: Vec::new(),
            evidence_days: None,
            link: false,
            link_expires: None,
        }
    }

    #[test]
    fn tags_add_headers_and_prefix_subjects() {
        let raw = b"From: a@x.jp\r\nSubject: Quote\r\n\r\nbody Subject: not this\r\n";
        let out = apply_tags(
            raw,
            &verdict(vec![("X-DLP".into(), "external".into())], Some("[EXT]")),
        );
        assert_eq!(out, b"X-DLP: external\r\nFrom: a@x.jp\r\nSubject: [EXT] Quote\r\n\r\nbody Subject: not this\r\n");
        let raw = b"Subject: =?ISO-2022-JP?B?GyRCOCtAUSRqGyhC?=\n\nx";
        let out = String::from_utf8(apply_tags(raw, &verdict(vec![], Some("[社外]")))).unwrap();
        assert!(out.starts_with("Subject: =?UTF-8?B?"), "{out}");
        let parsed = mail_parser::MessageParser::default()
            .parse(out.as_bytes())
            .unwrap();
        assert_eq!(parsed.subject(), Some("[社外] 見積り"));
        // No Subject header: one is added.
        let out = apply_tags(b"From: a@x.jp\n\nx", &verdict(vec![], Some("[EXT]")));
        assert_eq!(out, b"From: a@x.jp\nSubject: [EXT]\n\nx");
    }

    #[test]
    fn bcc_takes_external_addresses_out_of_to_and_cc_only() {
        let hide = vec!["a@partner.jp".to_string(), "b@other.com".to_string()];
        let raw = "From: taro@corp.co.jp\r\n\
To: \"Sato, A\" <A@Partner.jp>, 鈴木 <suzuki@corp.co.jp>,\r\n b@other.com\r\n\
Cc: b@other.com\r\n\
Cc: team: hanako@corp.co.jp, a@partner.jp;\r\n\
Subject: To: a@partner.jp\r\n\
\r\n\
To: a@partner.jp in the body stays\r\n";
        let out = String::from_utf8(move_to_bcc(raw.as_bytes(), &hide)).unwrap();
        let m = mail_parser::MessageParser::default()
            .parse(out.as_bytes())
            .unwrap();
        let addrs = |a: Option<&mail_parser::Address<'_>>| -> Vec<String> {
            a.map(|a| {
                a.iter()
                    .filter_map(|x| x.address().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
        };
        assert_eq!(addrs(m.to()), ["suzuki@corp.co.jp"], "{out}");
        assert_eq!(m.to().unwrap().first().unwrap().name(), Some("鈴木"));
        // The first Cc named only an external address: gone; the group's member stays.
        assert_eq!(addrs(m.cc()), ["hanako@corp.co.jp"], "{out}");
        assert_eq!(out.matches("Cc:").count(), 1, "{out}");
        assert!(out.contains("Subject: To: a@partner.jp\r\n"), "{out}");
        assert!(
            out.ends_with("\r\n\r\nTo: a@partner.jp in the body stays\r\n"),
            "{out}"
        );
        // Only external recipients in To: undisclosed-recipients.
        let out = move_to_bcc(b"To: a@partner.jp\nSubject: x\n\nbody", &hide);
        assert_eq!(out, b"To: undisclosed-recipients:;\nSubject: x\n\nbody");
        // Nothing to hide in a header: byte for byte the same.
        let raw = b"To:  <x@corp.co.jp> (comment)\r\n\r\nb";
        assert_eq!(move_to_bcc(raw, &hide), raw);
        // Names with specials are quoted again, non-ASCII ones encoded.
        assert_eq!(
            recipients_without(b"\"Sato, A\" <s@corp.jp>, a@partner.jp", &hide).unwrap(),
            ["\"Sato, A\" <s@corp.jp>"]
        );
        let v = recipients_without(
            "=?UTF-8?B?6Yi05pyo?= <s@corp.jp>, a@partner.jp".as_bytes(),
            &hide,
        );
        assert_eq!(v.unwrap(), ["=?UTF-8?B?6Yi05pyo?= <s@corp.jp>"]);
    }

    #[test]
    fn bcc_never_panics_on_hostile_headers() {
        let hide = vec!["a@x.jp".to_string()];
        for raw in [
            &b"To:"[..],
            b"To: \r\n\r\n",
            b"to:a@x.jp",
            b"Cc:\n \n \n",
            b"To: \"unterminated <a@x.jp>\r\n\r\n",
            b"To: a@x.jp,,,,;;;:::<<<>>>\xff\xfe\r\n\r\n",
            b"\r\n\r\nTo: a@x.jp",
        ] {
            let out = move_to_bcc(raw, &hide);
            assert!(!String::from_utf8_lossy(&out).contains("a@x.jp") || raw.starts_with(b"\r\n"));
        }
    }
}
