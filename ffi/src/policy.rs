//! Policies and verdicts.

use std::ffi::c_char;

use dlp::policy::{Action, Facts, Mode, NoHistory, Policy, RuleMatch, Verdict};

use crate::engine::{ping32dlp_engine, ping32dlp_error};
use crate::ping32dlp_result::*;
use crate::scan::{ping32dlp_context, ping32dlp_report};
use crate::{
    arg, buf_arg, free_handle, guard, guard_value, json_out, opt_arg, out_handle, out_ok, path_arg,
    ping32dlp_result, ping32dlp_str, Fail,
};

/// What a rule or verdict does with a mail, from least to most severe.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ping32dlp_action {
    /// Let it through.
    PING32DLP_ACTION_ALLOW = 0,
    /// Let it through; the audit record is marked.
    PING32DLP_ACTION_AUDIT = 1,
    /// Let it through with a header added or the subject prefixed.
    PING32DLP_ACTION_TAG = 2,
    /// Let it through and send an alert.
    PING32DLP_ACTION_ALERT = 3,
    /// Hold it until an approver decides.
    PING32DLP_ACTION_HOLD = 4,
    /// Refuse it.
    PING32DLP_ACTION_BLOCK = 5,
    /// Send it after a delay during which the sender can cancel it (in the order of strictness
    /// between alert and hold; a new value, so at the end).
    PING32DLP_ACTION_DELAY = 6,
    /// Send it with the external `To` / `Cc` recipients taken out of those headers (they
    /// still receive it, as Bcc): see `ping32dlp_verdict_bcc`. In the order of strictness
    /// between tag and alert; a new value, so at the end.
    PING32DLP_ACTION_BCC = 7,
    /// Let it through with its attachments replaced by download links (`[links]` of the
    /// policy). The recording calls that take the raw message (`ping32dlp_workflow_*` with a
    /// kept message) rewrite it; without the message a `link` verdict becomes a block. In the
    /// order of strictness between bcc and alert; a new value, so at the end.
    PING32DLP_ACTION_LINK = 8,
}

pub(crate) fn action(a: Action) -> ping32dlp_action {
    use ping32dlp_action::*;
    match a {
        Action::Allow => PING32DLP_ACTION_ALLOW,
        Action::Audit => PING32DLP_ACTION_AUDIT,
        Action::Tag => PING32DLP_ACTION_TAG,
        Action::Bcc => PING32DLP_ACTION_BCC,
        Action::Link => PING32DLP_ACTION_LINK,
        Action::Alert => PING32DLP_ACTION_ALERT,
        Action::Delay => PING32DLP_ACTION_DELAY,
        Action::Hold => PING32DLP_ACTION_HOLD,
        Action::Block => PING32DLP_ACTION_BLOCK,
    }
}

/// A policy: ordered rules, organisation domains, groups, alert and approval settings.
/// Immutable; shared by any number of threads.
///
/// Made by `ping32dlp_policy_load`, `ping32dlp_policy_parse` or
/// `ping32dlp_policy_new_default`; released by `ping32dlp_policy_free`.
pub struct ping32dlp_policy {
    pub(crate) p: Policy,
}

/// A verdict: the final action, the matched rules and why, the risk score and its signals, the
/// message for the user and the tags to apply.
///
/// Made by `ping32dlp_policy_evaluate` (released by `ping32dlp_verdict_free`) or borrowed from a
/// decision (`ping32dlp_decision_verdict`, valid as long as the decision; never freed).
pub struct ping32dlp_verdict {
    pub(crate) v: Verdict,
    message_ja: String,
    message_en: String,
}

impl ping32dlp_verdict {
    pub(crate) fn new(v: Verdict) -> ping32dlp_verdict {
        ping32dlp_verdict {
            message_ja: v.user_message("ja"),
            message_en: v.user_message("en"),
            v,
        }
    }
}

/// One matched rule of a verdict. Borrowed from the verdict.
pub struct ping32dlp_rule_match {
    _private: [u8; 0],
}

pub(crate) fn policy_result(
    r: Result<Policy, dlp::RuleError>,
    policy_out: *mut *mut ping32dlp_policy,
    error_out: *mut *mut ping32dlp_error,
) -> Result<(), Fail> {
    match r {
        Ok(p) => out_handle(policy_out, "policy_out", ping32dlp_policy { p }),
        Err(e) => {
            let msg = e.to_string();
            if !error_out.is_null() {
                out_handle(error_out, "error_out", ping32dlp_error::new(e))?;
            }
            Err(Fail(PING32DLP_ERR_POLICY, msg))
        }
    }
}

/// Loads a policy file (TOML; see docs/policy.md). On `PING32DLP_ERR_POLICY`, `*error_out` (if
/// not NULL) receives the error with file, line and field.
/// Ownership: `*policy_out` is the caller's (`ping32dlp_policy_free`), written only on success; `*error_out` is the caller's (`ping32dlp_error_free`), written only on `PING32DLP_ERR_POLICY`. The policy keeps nothing of its arguments.
#[no_mangle]
pub extern "C" fn ping32dlp_policy_load(
    path: *const c_char,
    policy_out: *mut *mut ping32dlp_policy,
    error_out: *mut *mut ping32dlp_error,
) -> ping32dlp_result {
    guard(|| {
        let path = path_arg(path, "path")?;
        out_ok(policy_out, "policy_out")?;
        let text = read_policy_file(&path)?;
        policy_result(
            dlp::policy::parse_policy(&text, Some(&path)),
            policy_out,
            error_out,
        )
    })
}

/// A policy file's text; a file that cannot be read is `PING32DLP_ERR_IO` (not a policy error).
fn read_policy_file(path: &std::path::Path) -> Result<String, Fail> {
    std::fs::read_to_string(path).map_err(|e| {
        Fail(
            PING32DLP_ERR_IO,
            format!("{}: cannot read: {e}", path.display()),
        )
    })
}

/// Fails with `PING32DLP_ERR_POLICY` (and the error in `*error_out`) when the policy names a
/// detector the engine lacks.
pub(crate) fn check_against(
    p: &Policy,
    engine: &dlp::Engine,
    file: Option<&std::path::Path>,
    error_out: *mut *mut ping32dlp_error,
) -> Result<(), Fail> {
    let Some(mut err) = p.detector_error(engine) else {
        return Ok(());
    };
    if err.file.is_none() {
        err.file = file.map(|f| f.to_path_buf());
    }
    let msg = err.to_string();
    if !error_out.is_null() {
        out_handle(error_out, "error_out", ping32dlp_error::new(err))?;
    }
    Err(Fail(PING32DLP_ERR_POLICY, msg))
}

/// Loads a policy file and checks it against the engine that will scan the mail: a rule that
/// names a detector the engine lacks (`credit_crad`) is `PING32DLP_ERR_POLICY`, with the rule
/// and detector in `*error_out`, instead of a rule that never matches. A file that cannot be
/// read is `PING32DLP_ERR_IO`. The policy does not keep the engine.
/// Ownership: `*policy_out` is the caller's (`ping32dlp_policy_free`); `*error_out` is written
/// only on `PING32DLP_ERR_POLICY` and is the caller's (`ping32dlp_error_free`).
#[no_mangle]
pub extern "C" fn ping32dlp_policy_load_for_engine(
    path: *const c_char,
    engine: *const ping32dlp_engine,
    policy_out: *mut *mut ping32dlp_policy,
    error_out: *mut *mut ping32dlp_error,
) -> ping32dlp_result {
    guard(|| {
        let path = path_arg(path, "path")?;
        let e = arg(engine, "engine")?;
        out_ok(policy_out, "policy_out")?;
        let text = read_policy_file(&path)?;
        match dlp::policy::parse_policy(&text, Some(&path)) {
            Ok(p) => {
                check_against(&p, &e.inner, Some(&path), error_out)?;
                out_handle(policy_out, "policy_out", ping32dlp_policy { p })
            }
            Err(err) => policy_result(Err(err), policy_out, error_out),
        }
    })
}

/// Parses a policy from TOML text (`len` bytes of UTF-8) and checks it against the engine, as
/// `ping32dlp_policy_load_for_engine`.
/// Ownership: as `ping32dlp_policy_load_for_engine`; the text is not kept.
#[no_mangle]
pub extern "C" fn ping32dlp_policy_parse_for_engine(
    toml: *const u8,
    len: usize,
    engine: *const ping32dlp_engine,
    policy_out: *mut *mut ping32dlp_policy,
    error_out: *mut *mut ping32dlp_error,
) -> ping32dlp_result {
    guard(|| {
        let text = buf_arg(toml, len, "toml")?;
        let e = arg(engine, "engine")?;
        out_ok(policy_out, "policy_out")?;
        match parse_text(text) {
            Ok(p) => {
                check_against(&p, &e.inner, None, error_out)?;
                out_handle(policy_out, "policy_out", ping32dlp_policy { p })
            }
            Err(err) => policy_result(Err(err), policy_out, error_out),
        }
    })
}

fn parse_text(text: &[u8]) -> Result<Policy, dlp::RuleError> {
    match std::str::from_utf8(text) {
        Ok(t) => dlp::policy::parse_policy(t, None),
        Err(e) => Err(dlp::RuleError {
            document: "policy",
            file: None,
            line: 0,
            column: 0,
            field: String::new(),
            message: format!("the policy text is not UTF-8 ({e})"),
        }),
    }
}

/// Parses a policy from TOML text (`len` bytes of UTF-8).
/// Ownership: `*policy_out` is the caller's (`ping32dlp_policy_free`), written only on success; `*error_out` is the caller's (`ping32dlp_error_free`), written only on `PING32DLP_ERR_POLICY`. The text is not kept.
#[no_mangle]
pub extern "C" fn ping32dlp_policy_parse(
    toml: *const u8,
    len: usize,
    policy_out: *mut *mut ping32dlp_policy,
    error_out: *mut *mut ping32dlp_error,
) -> ping32dlp_result {
    guard(|| {
        let text = buf_arg(toml, len, "toml")?;
        out_ok(policy_out, "policy_out")?;
        policy_result(parse_text(text), policy_out, error_out)
    })
}

/// The embedded default policy: monitor mode (records what it would do, blocks nothing).
/// Ownership: `*policy_out` is the caller's (`ping32dlp_policy_free`), written only on success. Arguments are copied; nothing of them is kept.
#[no_mangle]
pub extern "C" fn ping32dlp_policy_new_default(
    policy_out: *mut *mut ping32dlp_policy,
) -> ping32dlp_result {
    guard(|| {
        out_handle(
            policy_out,
            "policy_out",
            ping32dlp_policy {
                p: Policy::default_monitor(),
            },
        )
    })
}

/// Checks that every detector the policy names exists in the engine. On
/// `PING32DLP_ERR_POLICY`, `*error_out` (if not NULL) names the rule and detector.
/// Ownership: reads the policy and engine; `*error_out` is the caller's (`ping32dlp_error_free`), written only on `PING32DLP_ERR_POLICY`.
#[no_mangle]
pub extern "C" fn ping32dlp_policy_check(
    policy: *const ping32dlp_policy,
    engine: *const ping32dlp_engine,
    error_out: *mut *mut ping32dlp_error,
) -> ping32dlp_result {
    guard(|| {
        let p = arg(policy, "policy")?;
        let e = arg(engine, "engine")?;
        check_against(&p.p, &e.inner, None, error_out)
    })
}

/// Releases a policy. NULL is a no-op.
/// Ownership: takes the handle back; it must not be used afterwards.
#[no_mangle]
pub extern "C" fn ping32dlp_policy_free(policy: *mut ping32dlp_policy) {
    free_handle(policy);
}

/// Judges a report with the policy, without history: conditions on the audit trail (a domain
/// never seen, rates, PPAP pairs) see an empty trail. A policy that names a detector the
/// report's engine lacks is refused with `PING32DLP_ERR_POLICY` (the rule and detector in
/// `ping32dlp_last_error`), rather than judged with a rule that can never match. Use `ping32dlp_workflow_record` to judge
/// with history and record. `context` may be NULL (channel `api`). `*verdict_out` is the
/// caller's: release it with `ping32dlp_verdict_free`.
/// Ownership: `*verdict_out` is the caller's (`ping32dlp_verdict_free`), written only on success. The verdict holds copies of what it shows: it does not depend on the policy, report or context, which may be freed first.
#[no_mangle]
pub extern "C" fn ping32dlp_policy_evaluate(
    policy: *const ping32dlp_policy,
    report: *const ping32dlp_report,
    context: *const ping32dlp_context,
    verdict_out: *mut *mut ping32dlp_verdict,
) -> ping32dlp_result {
    guard(|| {
        let p = arg(policy, "policy")?;
        let r = arg(report, "report")?;
        out_ok(verdict_out, "verdict_out")?;
        let ctx = ping32dlp_context::or_default(context);
        let facts = Facts::from_report(&r.report, &ctx);
        let v =
            p.p.evaluate(&facts, &NoHistory)
                .map_err(dlp::workflow::WorkflowError::from)?;
        out_handle(verdict_out, "verdict_out", ping32dlp_verdict::new(v))
    })
}

/// Releases a verdict made by `ping32dlp_policy_evaluate`. NULL is a no-op. Never call it on a
/// decision's verdict.
/// Ownership: takes the handle back; it must not be used afterwards.
#[no_mangle]
pub extern "C" fn ping32dlp_verdict_free(verdict: *mut ping32dlp_verdict) {
    free_handle(verdict);
}

fn verdict<'a>(v: *const ping32dlp_verdict) -> Option<&'a ping32dlp_verdict> {
    opt_arg(v)
}

/// The final action: the most severe action of the matched rules in enforce mode. Monitor-mode
/// rules never change it (the built-in policy is all monitor mode, so it always says ALLOW
/// there): `ping32dlp_verdict_would_action` says what enforcing them would do. A NULL verdict
/// gives BLOCK (never "allow" for a caller's mistake).
/// Ownership: reads the verdict.
#[no_mangle]
pub extern "C" fn ping32dlp_verdict_action(v: *const ping32dlp_verdict) -> ping32dlp_action {
    guard_value(ping32dlp_action::PING32DLP_ACTION_BLOCK, || {
        Some(action(verdict(v)?.v.action))
    })
}

/// The would-be action: the most severe action of all matched rules, monitor-mode ones
/// included; what the verdict would be with the policy enforced. Equal to
/// `ping32dlp_verdict_action` when no monitor-mode rule matched. BLOCK for a NULL verdict.
/// Ownership: reads the verdict.
#[no_mangle]
pub extern "C" fn ping32dlp_verdict_would_action(v: *const ping32dlp_verdict) -> ping32dlp_action {
    guard_value(ping32dlp_action::PING32DLP_ACTION_BLOCK, || {
        Some(action(verdict(v)?.v.would_action()))
    })
}

/// The name of an action (`"allow"`, `"audit"`, `"tag"`, `"alert"`, `"hold"`, `"block"`,
/// `"delay"`, `"bcc"`), as in JSON and logs; `"unknown"` for another value.
/// Ownership: a static string; never freed.
#[no_mangle]
pub extern "C" fn ping32dlp_action_str(a: u32) -> *const c_char {
    let s: &'static str = match a {
        0 => "allow\0",
        1 => "audit\0",
        2 => "tag\0",
        3 => "alert\0",
        4 => "hold\0",
        5 => "block\0",
        6 => "delay\0",
        7 => "bcc\0",
        8 => "link\0",
        _ => "unknown\0",
    };
    s.as_ptr().cast()
}

/// The risk score (0 to 100), explained by the signals; 100 for a NULL verdict.
/// Ownership: reads the verdict.
#[no_mangle]
pub extern "C" fn ping32dlp_verdict_risk(v: *const ping32dlp_verdict) -> u32 {
    guard_value(100, || Some(verdict(v)?.v.risk))
}

/// The message for the sender in `lang` (`"ja"` for Japanese, anything else or NULL for
/// English). Valid as long as the verdict.
/// Ownership: borrowed from the verdict.
#[no_mangle]
pub extern "C" fn ping32dlp_verdict_message(
    v: *const ping32dlp_verdict,
    lang: *const c_char,
) -> ping32dlp_str {
    guard_value(ping32dlp_str::empty(), || {
        let v = verdict(v)?;
        let ja = crate::opt_str_arg(lang).is_some_and(|l| l.starts_with("ja"));
        Some(ping32dlp_str::new(if ja {
            &v.message_ja
        } else {
            &v.message_en
        }))
    })
}

/// Number of matched rules (enforce and monitor).
/// Ownership: reads the verdict; nothing is kept.
#[no_mangle]
pub extern "C" fn ping32dlp_verdict_rule_count(v: *const ping32dlp_verdict) -> usize {
    guard_value(0, || Some(verdict(v)?.v.matched.len()))
}

/// Matched rule `index` (policy order), or NULL.
/// Ownership: borrowed from the verdict; never freed.
#[no_mangle]
pub extern "C" fn ping32dlp_verdict_rule(
    v: *const ping32dlp_verdict,
    index: usize,
) -> *const ping32dlp_rule_match {
    guard_value(std::ptr::null(), || {
        let m: &RuleMatch = verdict(v)?.v.matched.get(index)?;
        Some((m as *const RuleMatch).cast())
    })
}

fn rule<'a>(m: *const ping32dlp_rule_match) -> Option<&'a RuleMatch> {
    opt_arg(m.cast::<RuleMatch>())
}

/// The rule's id.
/// Ownership: borrowed from the verdict it came from.
#[no_mangle]
pub extern "C" fn ping32dlp_rule_match_id(m: *const ping32dlp_rule_match) -> ping32dlp_str {
    guard_value(ping32dlp_str::empty(), || {
        Some(ping32dlp_str::new(&rule(m)?.rule))
    })
}

/// The rule's action (what it does, or would do in monitor mode); BLOCK for a NULL match.
/// Ownership: reads the rule_match; nothing is kept.
#[no_mangle]
pub extern "C" fn ping32dlp_rule_match_action(m: *const ping32dlp_rule_match) -> ping32dlp_action {
    guard_value(ping32dlp_action::PING32DLP_ACTION_BLOCK, || {
        Some(action(rule(m)?.action))
    })
}

/// True when the rule is in monitor mode (recorded as "would have", not applied); false (the
/// rule applies) for a NULL match.
/// Ownership: reads the rule_match; nothing is kept.
#[no_mangle]
pub extern "C" fn ping32dlp_rule_match_is_monitor(m: *const ping32dlp_rule_match) -> bool {
    guard_value(false, || Some(rule(m)?.mode == Mode::Monitor))
}

/// The rule's severity (`low`, `medium`, `high`, `critical`).
/// Ownership: borrowed from the verdict it came from.
#[no_mangle]
pub extern "C" fn ping32dlp_rule_match_severity(m: *const ping32dlp_rule_match) -> ping32dlp_str {
    guard_value(ping32dlp_str::empty(), || {
        Some(ping32dlp_str::new(&rule(m)?.severity))
    })
}

/// Number of reasons (the conditions that made the rule match, in words).
/// Ownership: reads the rule_match; nothing is kept.
#[no_mangle]
pub extern "C" fn ping32dlp_rule_match_reason_count(m: *const ping32dlp_rule_match) -> usize {
    guard_value(0, || Some(rule(m)?.reasons.len()))
}

/// Reason `index`: `jp_my_number: 3 unique (>= 1) at 顧客.xlsx`.
/// Ownership: borrowed from the verdict it came from.
#[no_mangle]
pub extern "C" fn ping32dlp_rule_match_reason(
    m: *const ping32dlp_rule_match,
    index: usize,
) -> ping32dlp_str {
    guard_value(ping32dlp_str::empty(), || {
        Some(ping32dlp_str::new(rule(m)?.reasons.get(index)?))
    })
}

/// Number of headers the verdict adds to the mail (tag actions).
/// Ownership: reads the verdict; nothing is kept.
#[no_mangle]
pub extern "C" fn ping32dlp_verdict_header_count(v: *const ping32dlp_verdict) -> usize {
    guard_value(0, || Some(verdict(v)?.v.headers.len()))
}

/// Name of header `index` to add.
/// Ownership: borrowed from the verdict.
#[no_mangle]
pub extern "C" fn ping32dlp_verdict_header_name(
    v: *const ping32dlp_verdict,
    index: usize,
) -> ping32dlp_str {
    guard_value(ping32dlp_str::empty(), || {
        Some(ping32dlp_str::new(&verdict(v)?.v.headers.get(index)?.0))
    })
}

/// Value of header `index` to add.
/// Ownership: borrowed from the verdict.
#[no_mangle]
pub extern "C" fn ping32dlp_verdict_header_value(
    v: *const ping32dlp_verdict,
    index: usize,
) -> ping32dlp_str {
    guard_value(ping32dlp_str::empty(), || {
        Some(ping32dlp_str::new(&verdict(v)?.v.headers.get(index)?.1))
    })
}

/// The prefix to put before the subject (empty when none).
/// Ownership: borrowed from the verdict.
#[no_mangle]
pub extern "C" fn ping32dlp_verdict_subject_prefix(v: *const ping32dlp_verdict) -> ping32dlp_str {
    guard_value(ping32dlp_str::empty(), || {
        Some(ping32dlp_str::opt(verdict(v)?.v.subject_prefix.as_deref()))
    })
}

/// Number of external recipients to take out of the `To` and `Cc` headers (an enforced `bcc`
/// rule matched, whatever the final action): they stay envelope recipients, so they receive
/// the mail as Bcc. Rewrite those headers before the mail goes out.
/// Ownership: reads the verdict; nothing is kept.
#[no_mangle]
pub extern "C" fn ping32dlp_verdict_bcc_count(v: *const ping32dlp_verdict) -> usize {
    guard_value(0, || Some(verdict(v)?.v.bcc.len()))
}

/// External recipient `index` to take out of `To` / `Cc` (a lower-case address).
/// Ownership: borrowed from the verdict.
#[no_mangle]
pub extern "C" fn ping32dlp_verdict_bcc(
    v: *const ping32dlp_verdict,
    index: usize,
) -> ping32dlp_str {
    guard_value(ping32dlp_str::empty(), || {
        Some(ping32dlp_str::new(verdict(v)?.v.bcc.get(index)?))
    })
}

/// The verdict as JSON (action, would-be action, risk and signals, matched rules with reasons,
/// messages, tags); no sensitive values. Release `*json_out` with `ping32dlp_string_free`.
/// Ownership: `*json_out_` is the caller's (`ping32dlp_string_free`), written only on success. Arguments are copied; nothing of them is kept.
#[no_mangle]
pub extern "C" fn ping32dlp_verdict_to_json(
    v: *const ping32dlp_verdict,
    json_out_: *mut *mut c_char,
) -> ping32dlp_result {
    guard(|| json_out(&arg(v, "verdict")?.v.to_json(), json_out_))
}
