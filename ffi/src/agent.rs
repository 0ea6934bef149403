//! The endpoint fleet from C: enrol with the fleet server, open a workflow whose records go to
//! it (the local store is the spool), and take the policies it pushes.

use std::ffi::{c_char, CString};
use std::sync::Arc;

use dlp::workflow::{agent, fleet, StoreConfig, Workflow, WorkflowConfig};

use crate::engine::{ping32dlp_engine, ping32dlp_error};
use crate::policy::{check_against, ping32dlp_policy, policy_result};
use crate::workflow::ping32dlp_workflow;
use crate::{
    arg, guard, opt_arg, opt_str_arg, out, out_handle, out_ok, path_arg, ping32dlp_result, str_arg,
    Fail,
};

fn server_config(server_url: *const c_char, ca_file: *const c_char) -> Result<StoreConfig, Fail> {
    let url = str_arg(server_url, "server_url")?;
    if !agent::is_server_url(&url) {
        return Err(Fail::invalid(format!(
            "server_url `{}`: use https://host:port (the fleet server)",
            dlp::workflow::redact_url(&url)
        )));
    }
    let mut c = StoreConfig::new(url);
    if !ca_file.is_null() {
        c.ca_file = Some(path_arg(ca_file, "ca_file")?);
    }
    Ok(c)
}

/// Enrols this PC with the fleet server (`https://host:port`, the console with `agent_api`)
/// with a one-time `token` from its Agents page, as `name` (NULL: the host name), and writes
/// the agent's credential to `agent.credential` in `state_dir` (mode 0600). `ca_file` (NULL:
/// the system's trust store) verifies the server. Errors: `PING32DLP_ERR_INVALID_ARGUMENT` (a
/// bad URL or name), `PING32DLP_ERR_FORBIDDEN` (the token is unknown, used or expired),
/// `PING32DLP_ERR_IO` (already enrolled: the credential file exists), `PING32DLP_ERR_DATABASE`
/// (the server cannot be reached or refused otherwise; `ping32dlp_last_error` says why).
/// Ownership: `*name_out` (may be NULL) receives the enrolled name, the caller's
/// (`ping32dlp_string_free`), written only on success. Arguments are copied.
#[no_mangle]
pub extern "C" fn ping32dlp_agent_enrol(
    server_url: *const c_char,
    ca_file: *const c_char,
    token: *const c_char,
    name: *const c_char,
    state_dir: *const c_char,
    name_out: *mut *mut c_char,
) -> ping32dlp_result {
    guard(|| {
        let c = server_config(server_url, ca_file)?;
        let token = str_arg(token, "token")?;
        let dir = path_arg(state_dir, "state_dir")?;
        let name = opt_str_arg(name).unwrap_or_else(dlp::workflow::host_name);
        if !fleet::valid_agent_name(&name) {
            return Err(Fail::invalid(format!(
                "name `{name}`: use 1 to 64 of A-Z a-z 0-9 . _ - (not starting with . or -)"
            )));
        }
        let (got, _) = agent::enrol(&dir, &c, &token, &name)?;
        if !name_out.is_null() {
            let s = CString::new(got).map_err(|e| Fail::invalid(e.to_string()))?;
            out(name_out, "name_out", s.into_raw())?;
        }
        Ok(())
    })
}

/// Opens a workflow for an enrolled agent: records go to the SQLite store in `state_dir` (the
/// spool: nothing waits for the network) and a background thread uploads them to the fleet
/// server in order, exactly once, retrying while it cannot be reached; requests of held mail go
/// with them and decisions come back into this store (carry them out as with
/// `ping32dlp_workflow_open`); new policies are fetched for `ping32dlp_agent_policy_update`.
/// `policy` and `ca_file` may be NULL. Errors: as `ping32dlp_workflow_open`, and
/// `PING32DLP_ERR_IO` when this state directory is not enrolled.
/// Ownership: `*workflow_out` is the caller's (`ping32dlp_workflow_free`, which also ends the
/// upload thread), written only on success; the policy is copied.
#[no_mangle]
pub extern "C" fn ping32dlp_agent_open(
    server_url: *const c_char,
    ca_file: *const c_char,
    state_dir: *const c_char,
    policy: *const ping32dlp_policy,
    workflow_out: *mut *mut ping32dlp_workflow,
) -> ping32dlp_result {
    guard(|| {
        let c = server_config(server_url, ca_file)?;
        let dir = path_arg(state_dir, "state_dir")?;
        out_ok(workflow_out, "workflow_out")?;
        let mut cfg = match opt_arg(policy) {
            Some(p) => WorkflowConfig::from_policy(dir, &p.p),
            None => WorkflowConfig::new(dir),
        };
        cfg.store = Some(c);
        let w = Workflow::open(cfg)?;
        out_handle(
            workflow_out,
            "workflow_out",
            ping32dlp_workflow::new(Arc::new(w)),
        )
    })
}

/// Takes the policy the fleet server pushed, if a new one arrived in `state_dir` since the last
/// call: checks it against `engine` (the one that scans the mail) and, when it fits, writes it
/// to `*policy_out` and its version to `*version_out` (may be NULL), and keeps it as the
/// agent's policy (`fleet-policy.toml`, which is the version the agent reports). Nothing new:
/// `PING32DLP_OK` with `*policy_out` set to NULL. A policy that does not fit:
/// `PING32DLP_ERR_POLICY` with the position in `*error_out` (may be NULL); it is set aside and
/// the caller keeps the policy it runs. Call it every few seconds; swap policies between
/// messages.
/// Ownership: `*policy_out` is the caller's (`ping32dlp_policy_free`); `*error_out` is the
/// caller's (`ping32dlp_error_free`), written only on `PING32DLP_ERR_POLICY`.
#[no_mangle]
pub extern "C" fn ping32dlp_agent_policy_update(
    state_dir: *const c_char,
    engine: *const ping32dlp_engine,
    policy_out: *mut *mut ping32dlp_policy,
    version_out: *mut i64,
    error_out: *mut *mut ping32dlp_error,
) -> ping32dlp_result {
    guard(|| {
        let dir = path_arg(state_dir, "state_dir")?;
        let e = arg(engine, "engine")?;
        out(policy_out, "policy_out", std::ptr::null_mut())?;
        let new = dir.join(fleet::POLICY_NEW_FILE);
        let Ok(text) = std::fs::read_to_string(&new) else {
            return Ok(());
        };
        let version = fleet::policy_file_version(&text).unwrap_or(0);
        let set_aside = || {
            let _ = std::fs::rename(&new, dir.join("fleet-policy.refused.toml"));
        };
        let p = match dlp::policy::parse_policy(&text, Some(&new)) {
            Ok(p) => p,
            Err(err) => {
                set_aside();
                return policy_result(Err(err), policy_out, error_out);
            }
        };
        if let Err(f) = check_against(&p, &e.inner, Some(&new), error_out) {
            set_aside();
            return Err(f);
        }
        std::fs::rename(&new, dir.join(fleet::POLICY_FILE)).map_err(|x| {
            Fail(
                crate::ping32dlp_result::PING32DLP_ERR_IO,
                format!("{}: {x}", new.display()),
            )
        })?;
        if !version_out.is_null() {
            out(version_out, "version_out", version)?;
        }
        out_handle(policy_out, "policy_out", ping32dlp_policy { p })
    })
}
