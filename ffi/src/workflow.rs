//! The workflow: audit trail, approvals, alerts.

use std::ffi::{c_char, c_void};
use std::sync::Arc;

use dlp::workflow::{ApprovalState, Workflow, WorkflowConfig, WorkflowError};

use crate::policy::{ping32dlp_policy, ping32dlp_verdict};
use crate::scan::{ping32dlp_context, ping32dlp_report};
use crate::{
    arg, buf_arg, free_handle, guard, guard_value, json_out, opt_arg, opt_str_arg, out, out_handle,
    out_ok, path_arg, ping32dlp_result, ping32dlp_str, str_arg, Fail,
};

/// `ping32dlp_workflow_approval_decide` flag: decide as an administrator (any approver may be named).
pub const PING32DLP_DECIDE_ADMIN: u32 = 1;

/// Called with each alert as JSON (`len` bytes, also NUL-terminated), on the thread that
/// recorded the message, before `ping32dlp_workflow_record` returns. The JSON is valid only
/// during the call. It must not call `ping32dlp_workflow_set_alert_callback`.
pub type ping32dlp_alert_callback =
    Option<extern "C" fn(userdata: *mut c_void, json: *const c_char, len: usize)>;

/// The audit trail (SQLite in a state directory), evidence store, approvals and alert sinks.
/// Internally synchronised: share one across threads (and processes: the database is shared).
///
/// Made by `ping32dlp_workflow_open`; released by `ping32dlp_workflow_free`, which waits for the
/// alert worker's last delivery pass.
pub struct ping32dlp_workflow {
    wf: Arc<Workflow>,
}

/// The outcome of recording a message: its verdict, audit record id, and approval if held.
///
/// Made by `ping32dlp_workflow_record`; released by `ping32dlp_decision_free`.
pub struct ping32dlp_decision {
    verdict: ping32dlp_verdict,
    record_id: i64,
    approval_id: Option<String>,
    approval_token: Option<String>,
    message: Option<Vec<u8>>,
}

impl ping32dlp_workflow {
    pub(crate) fn new(wf: Arc<Workflow>) -> ping32dlp_workflow {
        ping32dlp_workflow { wf }
    }
}

fn wf<'a>(w: *const ping32dlp_workflow) -> Result<&'a Workflow, Fail> {
    Ok(&arg(w, "workflow")?.wf)
}

/// Opens (creating if needed) a state directory: `audit.db`, `evidence/`, `held/`, the approval
/// link key. `policy` may be NULL; when given, its `[alerts]` sinks and `[approval]` release and
/// discard commands are used. Errors: `PING32DLP_ERR_IO`, `PING32DLP_ERR_DATABASE` (see
/// `ping32dlp_last_error`).
/// Ownership: `*workflow_out` is the caller's (`ping32dlp_workflow_free`), written only on success; the workflow copies what it needs of the policy, which may be freed first.
#[no_mangle]
pub extern "C" fn ping32dlp_workflow_open(
    state_dir: *const c_char,
    policy: *const ping32dlp_policy,
    workflow_out: *mut *mut ping32dlp_workflow,
) -> ping32dlp_result {
    guard(|| {
        let dir = path_arg(state_dir, "state_dir")?;
        out_ok(workflow_out, "workflow_out")?;
        let cfg = match opt_arg(policy) {
            Some(p) => WorkflowConfig::from_policy(dir, &p.p),
            None => WorkflowConfig::new(dir),
        };
        let w = Workflow::open(cfg)?;
        out_handle(
            workflow_out,
            "workflow_out",
            ping32dlp_workflow { wf: Arc::new(w) },
        )
    })
}

/// Opens a workflow on a shared store: `store_url` is `postgres://user@host:port/db` (the
/// password from `$PING32DLP_STORE_PASSWORD` or `$PGPASSWORD`; TLS with `?sslmode=require`,
/// verified against the system's trust store); NULL or "" is SQLite in `state_dir`, as
/// `ping32dlp_workflow_open`. `state_dir` (NULL: the default state directory) keeps what is
/// local to this host: held messages, the spool. `policy` may be NULL, as for
/// `ping32dlp_workflow_open`. The schema is created or migrated at open. Errors:
/// `PING32DLP_ERR_INVALID_ARGUMENT` (a URL of another kind), `PING32DLP_ERR_DATABASE` (cannot
/// connect: `ping32dlp_last_error` says why, without the password), `PING32DLP_ERR_IO`.
/// `*workflow_out` is the caller's: release it with `ping32dlp_workflow_free`.
/// Ownership: as `ping32dlp_workflow_open`.
#[no_mangle]
pub extern "C" fn ping32dlp_workflow_open_store(
    store_url: *const c_char,
    state_dir: *const c_char,
    policy: *const ping32dlp_policy,
    workflow_out: *mut *mut ping32dlp_workflow,
) -> ping32dlp_result {
    guard(|| {
        out_ok(workflow_out, "workflow_out")?;
        let url = opt_str_arg(store_url).filter(|u| !u.is_empty());
        let dir = if state_dir.is_null() {
            dlp::workflow::default_state_dir()
        } else {
            path_arg(state_dir, "state_dir")?
        };
        let mut cfg = match opt_arg(policy) {
            Some(p) => WorkflowConfig::from_policy(dir, &p.p),
            None => WorkflowConfig::new(dir),
        };
        if let Some(u) = url {
            if !(u.starts_with("postgres://")
                || u.starts_with("postgresql://")
                || dlp::workflow::agent::is_server_url(&u))
            {
                return Err(Fail::invalid(format!(
                    "store_url `{}`: use postgres://user@host:port/database, or https://host:port for an enrolled agent (ping32dlp_agent_open takes a CA file)",
                    dlp::workflow::redact_url(&u)
                )));
            }
            cfg.store = Some(dlp::workflow::StoreConfig::new(u));
        }
        let w = Workflow::open(cfg)?;
        out_handle(
            workflow_out,
            "workflow_out",
            ping32dlp_workflow { wf: Arc::new(w) },
        )
    })
}

/// Releases a workflow (after the alert worker's last pass; undelivered alerts stay queued in
/// the database for the next open). NULL is a no-op.
/// Ownership: takes the handle back; it must not be used afterwards.
#[no_mangle]
pub extern "C" fn ping32dlp_workflow_free(workflow: *mut ping32dlp_workflow) {
    free_handle(workflow);
}

struct Userdata(*mut c_void);
// SAFETY: the caller promises that `userdata` may be used from the threads that record
// (documented on `ping32dlp_workflow_set_alert_callback`); the library only passes it back.
unsafe impl Send for Userdata {}
// SAFETY: as above; the library never dereferences it.
unsafe impl Sync for Userdata {}

/// Sets the alert callback (NULL removes it): called for every recorded message whose final
/// action is alert or more severe (the policy's `[alerts] min_action`). `userdata` is passed
/// back as is and must be usable from any thread that records.
/// Ownership: the workflow keeps `callback` and `userdata` until they are replaced or the workflow is freed; the caller keeps `userdata` alive that long.
#[no_mangle]
pub extern "C" fn ping32dlp_workflow_set_alert_callback(
    workflow: *const ping32dlp_workflow,
    callback: ping32dlp_alert_callback,
    userdata: *mut c_void,
) -> ping32dlp_result {
    guard(|| {
        let w = wf(workflow)?;
        let cb = callback.map(|cb| {
            let ud = Userdata(userdata);
            Arc::new(move |json: &str| {
                let c = std::ffi::CString::new(json.replace('\0', " ")).unwrap_or_default();
                let ud = &ud;
                cb(ud.0, c.as_ptr(), c.as_bytes().len());
            }) as dlp::workflow::AlertCallback
        });
        w.alerts().set_callback(cb);
        Ok(())
    })
}

/// Judges a scanned report with the policy (history from the audit trail: domains seen, rates,
/// PPAP pairs) and records it durably: the audit record is committed, evidence kept, an
/// approval opened for a hold, alerts sent, all before this returns. `context` may be NULL
/// (channel `api`). `raw` (may be NULL) is the message's bytes: with a hold they are kept in the
/// state directory for integrations that cannot hold mail themselves
/// (`ping32dlp_workflow_held_message`), as they are to go out when released: with the
/// verdict's headers and subject prefix added and its `bcc` addresses taken out of To / Cc. `flags` is reserved: pass 0. Release `*decision_out`
/// with `ping32dlp_decision_free`.
/// Ownership: `*decision_out` is the caller's (`ping32dlp_decision_free`), written only on success; the decision holds copies and does not depend on the policy, report, context or `raw`.
#[no_mangle]
pub extern "C" fn ping32dlp_workflow_record(
    workflow: *const ping32dlp_workflow,
    policy: *const ping32dlp_policy,
    report: *const ping32dlp_report,
    context: *const ping32dlp_context,
    raw: *const u8,
    raw_len: usize,
    flags: u32,
    decision_out: *mut *mut ping32dlp_decision,
) -> ping32dlp_result {
    guard(|| {
        let w = wf(workflow)?;
        let p = arg(policy, "policy")?;
        let r = arg(report, "report")?;
        let raw = buf_arg(raw, raw_len, "raw")?;
        if flags != 0 {
            return Err(Fail::invalid("flags are reserved and must be 0"));
        }
        out_ok(decision_out, "decision_out")?;
        let ctx = ping32dlp_context::or_default(context);
        let keep = (!raw.is_empty()).then_some(raw);
        let d = dlp::pipeline::record_report(w, r.report.clone(), &ctx, &p.p, keep, None)?;
        out_handle(
            decision_out,
            "decision_out",
            ping32dlp_decision {
                verdict: ping32dlp_verdict::new(d.verdict),
                record_id: d.record.id,
                approval_id: d.approval.map(|a| a.id),
                approval_token: d.approval_token,
                message: d.links.map(|l| l.message),
            },
        )
    })
}

/// The decision's verdict, borrowed: valid as long as the decision; never freed.
/// Ownership: borrowed from the decision; never freed.
#[no_mangle]
pub extern "C" fn ping32dlp_decision_verdict(
    decision: *const ping32dlp_decision,
) -> *const ping32dlp_verdict {
    guard_value(std::ptr::null(), || {
        Some(&opt_arg(decision)?.verdict as *const _)
    })
}

/// The audit record's id (0 for a NULL decision).
/// Ownership: reads the decision; nothing is kept.
#[no_mangle]
pub extern "C" fn ping32dlp_decision_record_id(decision: *const ping32dlp_decision) -> i64 {
    guard_value(0, || Some(opt_arg(decision)?.record_id))
}

/// The approval's id when the mail is held (empty otherwise).
/// Ownership: borrowed from the decision.
#[no_mangle]
pub extern "C" fn ping32dlp_decision_approval_id(
    decision: *const ping32dlp_decision,
) -> ping32dlp_str {
    guard_value(ping32dlp_str::empty(), || {
        Some(ping32dlp_str::opt(
            opt_arg(decision)?.approval_id.as_deref(),
        ))
    })
}

/// The approval's signed link token (for a one-time link mailed to approvers; empty when not
/// held). Sensitive: it lets its holder act on the approval.
/// Ownership: borrowed from the decision.
#[no_mangle]
pub extern "C" fn ping32dlp_decision_approval_token(
    decision: *const ping32dlp_decision,
) -> ping32dlp_str {
    guard_value(ping32dlp_str::empty(), || {
        Some(ping32dlp_str::opt(
            opt_arg(decision)?.approval_token.as_deref(),
        ))
    })
}

/// The message as it must go out when the policy changed its body: with `action = "link"`
/// its attachments were replaced by download links (already stored; the headers are the
/// original's). Writes NULL and 0 when the message goes out as it came (then apply only the
/// verdict's tags). `PING32DLP_ERR_INVALID_ARGUMENT` for a NULL decision or output.
/// Ownership: `*data_out` is borrowed from the decision (valid as long as it); never freed.
#[no_mangle]
pub extern "C" fn ping32dlp_decision_message(
    decision: *const ping32dlp_decision,
    data_out: *mut *const u8,
    len_out: *mut usize,
) -> ping32dlp_result {
    guard(|| {
        let d = arg(decision, "decision")?;
        out_ok(data_out, "data_out")?;
        out_ok(len_out, "len_out")?;
        let (p, n) = match &d.message {
            Some(m) => (m.as_ptr(), m.len()),
            None => (std::ptr::null(), 0),
        };
        out(data_out, "data_out", p)?;
        out(len_out, "len_out", n)
    })
}

/// Releases a decision. NULL is a no-op.
/// Ownership: takes the handle back; it must not be used afterwards.
#[no_mangle]
pub extern "C" fn ping32dlp_decision_free(decision: *mut ping32dlp_decision) {
    free_handle(decision);
}

/// An audit record as JSON (masked values only). `PING32DLP_ERR_NOT_FOUND` when absent.
/// Release `*json_out` with `ping32dlp_string_free`.
/// Ownership: `*json_out_` is the caller's (`ping32dlp_string_free`), written only on success. Arguments are copied; nothing of them is kept.
#[no_mangle]
pub extern "C" fn ping32dlp_workflow_record_json(
    workflow: *const ping32dlp_workflow,
    record_id: i64,
    json_out_: *mut *mut c_char,
) -> ping32dlp_result {
    guard(|| {
        let w = wf(workflow)?;
        out_ok(json_out_, "json_out")?;
        let rec = w
            .store()
            .get_record(record_id)?
            .ok_or_else(|| WorkflowError::NotFound(format!("record {record_id}")))?;
        let v = serde_json::to_value(&rec).map_err(|e| Fail::invalid(e.to_string()))?;
        json_out(&v, json_out_)
    })
}

/// Approvals as a JSON array, newest first. `state` (`pending`, `approved`, `rejected`,
/// `expired`, `released`, `discarded`) and `approver` filter when not NULL. Pending requests
/// past their expiry are expired first. Release `*json_out` with `ping32dlp_string_free`.
/// Ownership: `*json_out_` is the caller's (`ping32dlp_string_free`), written only on success. Arguments are copied; nothing of them is kept.
#[no_mangle]
pub extern "C" fn ping32dlp_workflow_approvals_json(
    workflow: *const ping32dlp_workflow,
    state: *const c_char,
    approver: *const c_char,
    json_out_: *mut *mut c_char,
) -> ping32dlp_result {
    guard(|| {
        let w = wf(workflow)?;
        out_ok(json_out_, "json_out")?;
        let state = match opt_str_arg(state) {
            Some(s) => Some(
                ApprovalState::parse(&s)
                    .ok_or_else(|| Fail::invalid(format!("unknown approval state {s:?}")))?,
            ),
            None => None,
        };
        w.expire_due(dlp::timeutil::now())?;
        let list = w
            .store()
            .approvals(state, opt_str_arg(approver).as_deref())?;
        let v = serde_json::to_value(&list).map_err(|e| Fail::invalid(e.to_string()))?;
        json_out(&v, json_out_)
    })
}

/// One approval as JSON with its history (`events`: created, views, downloads, the decision,
/// release or discard, each with actor and time). Release `*json_out` with
/// `ping32dlp_string_free`.
/// Ownership: `*json_out_` is the caller's (`ping32dlp_string_free`), written only on success. Arguments are copied; nothing of them is kept.
#[no_mangle]
pub extern "C" fn ping32dlp_workflow_approval_json(
    workflow: *const ping32dlp_workflow,
    approval_id: *const c_char,
    json_out_: *mut *mut c_char,
) -> ping32dlp_result {
    guard(|| {
        let w = wf(workflow)?;
        let id = str_arg(approval_id, "approval_id")?;
        out_ok(json_out_, "json_out")?;
        let a = w
            .store()
            .approval(&id)?
            .ok_or_else(|| WorkflowError::NotFound(id.clone()))?;
        let mut v = serde_json::to_value(&a).map_err(|e| Fail::invalid(e.to_string()))?;
        v["events"] = serde_json::to_value(w.store().events(&id)?)
            .map_err(|e| Fail::invalid(e.to_string()))?;
        json_out(&v, json_out_)
    })
}

/// Records that `actor` looked at an approval request: `kind` is `view`, `view_attachment` or
/// `download`; `detail` (may be NULL) names the attachment.
/// Ownership: uses the workflow; the strings are copied.
#[no_mangle]
pub extern "C" fn ping32dlp_workflow_approval_view(
    workflow: *const ping32dlp_workflow,
    approval_id: *const c_char,
    actor: *const c_char,
    kind: *const c_char,
    detail: *const c_char,
) -> ping32dlp_result {
    guard(|| {
        let w = wf(workflow)?;
        let id = str_arg(approval_id, "approval_id")?;
        let actor = str_arg(actor, "actor")?;
        let kind = str_arg(kind, "kind")?;
        if !matches!(kind.as_str(), "view" | "view_attachment" | "download") {
            return Err(Fail::invalid(format!(
                "kind must be view, view_attachment or download, not {kind:?}"
            )));
        }
        let detail = opt_str_arg(detail).unwrap_or_default();
        w.record_view(&id, &actor, &kind, &detail)?;
        Ok(())
    })
}

/// Approves (`approve` true) or rejects a pending approval as `approver`, with a comment (may
/// be NULL). The approver must be one of the request's approvers unless `flags` has
/// `PING32DLP_DECIDE_ADMIN`. The release or discard command runs (milter); integrations that
/// keep the mail themselves deliver it and call `ping32dlp_workflow_approval_close`. Errors:
/// `PING32DLP_ERR_NOT_FOUND`, `PING32DLP_ERR_ALREADY_DECIDED`, `PING32DLP_ERR_FORBIDDEN`.
/// Ownership: uses the workflow; the strings are copied.
#[no_mangle]
pub extern "C" fn ping32dlp_workflow_approval_decide(
    workflow: *const ping32dlp_workflow,
    approval_id: *const c_char,
    approver: *const c_char,
    approve: bool,
    comment: *const c_char,
    flags: u32,
) -> ping32dlp_result {
    guard(|| {
        let w = wf(workflow)?;
        let id = str_arg(approval_id, "approval_id")?;
        let who = str_arg(approver, "approver")?;
        if flags & !PING32DLP_DECIDE_ADMIN != 0 {
            return Err(Fail::invalid(format!("unknown flags {flags:#x}")));
        }
        let comment = opt_str_arg(comment).unwrap_or_default();
        w.decide(
            &id,
            &who,
            approve,
            &comment,
            flags & PING32DLP_DECIDE_ADMIN != 0,
        )?;
        Ok(())
    })
}

/// Checks an approval link token (from `ping32dlp_decision_approval_token`): `PING32DLP_OK`
/// when it belongs to the approval, `PING32DLP_ERR_FORBIDDEN` otherwise.
/// Ownership: reads the workflow; nothing is kept.
#[no_mangle]
pub extern "C" fn ping32dlp_workflow_approval_verify_token(
    workflow: *const ping32dlp_workflow,
    approval_id: *const c_char,
    token: *const c_char,
) -> ping32dlp_result {
    guard(|| {
        let w = wf(workflow)?;
        let id = str_arg(approval_id, "approval_id")?;
        let token = str_arg(token, "token")?;
        let a = w
            .store()
            .approval(&id)?
            .ok_or_else(|| WorkflowError::NotFound(id.clone()))?;
        if w.verify_token(&a, &token) {
            Ok(())
        } else {
            Err(WorkflowError::Forbidden("the token does not match".into()).into())
        }
    })
}

/// The message kept with a hold, ready to be sent when approved (the verdict's tags and `bcc`
/// change applied; see `raw` of `ping32dlp_workflow_record`):
/// `PING32DLP_ERR_NOT_FOUND` when none is kept. Release `*data_out` with `ping32dlp_bytes_free`.
/// Ownership: `*data_out` (`*len_out` bytes) is the caller's (`ping32dlp_bytes_free`), both written only on success.
#[no_mangle]
pub extern "C" fn ping32dlp_workflow_held_message(
    workflow: *const ping32dlp_workflow,
    approval_id: *const c_char,
    data_out: *mut *mut u8,
    len_out: *mut usize,
) -> ping32dlp_result {
    guard(|| {
        let w = wf(workflow)?;
        let id = str_arg(approval_id, "approval_id")?;
        out_ok(data_out, "data_out")?;
        out_ok(len_out, "len_out")?;
        let data = w
            .held_message(&id)?
            .ok_or_else(|| WorkflowError::NotFound(format!("no held message for {id}")))?;
        let boxed = data.into_boxed_slice();
        let len = boxed.len();
        let p = Box::into_raw(boxed) as *mut u8;
        out(len_out, "len_out", len)?;
        out(data_out, "data_out", p)
    })
}

/// Frees bytes from `ping32dlp_workflow_held_message` or `ping32dlp_engine_serialize` (`len` as
/// returned). NULL is a no-op.
/// Ownership: takes back what the library handed out; it must not be used afterwards.
#[no_mangle]
pub extern "C" fn ping32dlp_bytes_free(data: *mut u8, len: usize) {
    if data.is_null() {
        return;
    }
    // SAFETY: made by `Box::into_raw` of a boxed slice of exactly `len` bytes in this library.
    drop(unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(data, len)) });
}

/// Marks a decided approval closed after the integration delivered (approved) or dropped
/// (rejected, expired) the held mail itself; `note` (may be NULL) goes into its history.
/// Ownership: uses the workflow; the strings are copied.
#[no_mangle]
pub extern "C" fn ping32dlp_workflow_approval_close(
    workflow: *const ping32dlp_workflow,
    approval_id: *const c_char,
    note: *const c_char,
) -> ping32dlp_result {
    guard(|| {
        let w = wf(workflow)?;
        let id = str_arg(approval_id, "approval_id")?;
        w.mark_closed(&id, &opt_str_arg(note).unwrap_or_default())?;
        Ok(())
    })
}

/// Expires pending approvals whose time has passed at `now` (Unix seconds; 0 for the current
/// time), discarding their mail. `*expired_out` (may be NULL) receives how many expired.
/// Ownership: uses the workflow; `*expired_out` (may be NULL) is written only on success.
#[no_mangle]
pub extern "C" fn ping32dlp_workflow_expire(
    workflow: *const ping32dlp_workflow,
    now: i64,
    expired_out: *mut usize,
) -> ping32dlp_result {
    guard(|| {
        let w = wf(workflow)?;
        let now = if now == 0 { dlp::timeutil::now() } else { now };
        let n = w.expire_due(now)?.len();
        if !expired_out.is_null() {
            out(expired_out, "expired_out", n)?;
        }
        Ok(())
    })
}
