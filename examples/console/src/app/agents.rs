//! The endpoint fleet in the console: the agents' API (`/agent/v1/...`, JSON, a per-agent
//! credential) and the admin's Agents page (enrolment tokens, the list, revocation).
//!
//! API (DESIGN, "The endpoint fleet"):
//!
//! ```text
//! POST /agent/v1/enrol    {"token", "name", "status"}           -> 201 {"name", "credential"}
//! POST /agent/v1/records  {"records": [{"seq", "record"}], "status"?}  -> {"last_seq", "stored"}
//! POST /agent/v1/status   {"status"}                             -> {"last_seq"}
//! POST /agent/v1/decisions {}                    -> {"approvals": [decided requests it holds]}
//! POST /agent/v1/closed   {"closed": [{"id", "state", "time"}]}  -> {"done"}
//! POST /agent/v1/history  {"q": "domain_seen" | "sent_to_before" | "external_sends_of" | "sender_external" |
//!                         "ppap_partner", ...}                  -> {"answer"} (every gateway's mail)
//! POST /agent/v1/policy   {"have": VERSION | null}  -> {"version", "sha256", "text"}, or
//!                         {"version"} when the agent has it, {"version": null} when none
//! ```
//!
//! Every call but `enrol` carries `Authorization: Bearer NAME:SECRET`. An agent can only add
//! records under its own name (the server sets the gateway) and read its own number; it
//! cannot read the audit trail.

use std::fmt::Write as _;

use serde::Deserialize;

use ping32dlp::timeutil;
use ping32dlp::workflow::fleet::{self, Agent, AgentStatus, Enrolment, HeldItem};
use ping32dlp::workflow::{ApprovalEvent, ApprovalState, AuditRecord};

use super::{field, App, Cx, Res};
use crate::html::{self, esc, page};
use crate::http::{Request, Response};
use crate::i18n::t;

/// Records in one upload.
pub const MAX_UPLOAD_RECORDS: usize = 1000;
/// How far back an uploaded record's time may be (older times are moved up to it).
const MAX_AGE: i64 = 366 * 86_400;
/// How far ahead of the server's clock (later times are moved back to it).
const MAX_AHEAD: i64 = 300;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EnrolBody {
    token: String,
    name: String,
    #[serde(default)]
    status: AgentStatus,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UploadItem {
    seq: i64,
    record: AuditRecord,
    #[serde(default)]
    held: Option<HeldItem>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClosedBody {
    closed: Vec<fleet::Closed>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UploadBody {
    records: Vec<UploadItem>,
    #[serde(default)]
    status: Option<AgentStatus>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyBody {
    #[serde(default)]
    have: Option<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StatusBody {
    status: AgentStatus,
}

fn json(status: u16, v: serde_json::Value) -> Response {
    Response {
        status,
        headers: vec![
            ("Content-Type".into(), "application/json".into()),
            ("Cache-Control".into(), "no-store".into()),
        ],
        body: v.to_string().into_bytes(),
    }
}

fn api_error(status: u16, why: &str) -> Response {
    json(status, serde_json::json!({ "error": why }))
}

/// Status text an agent reports, bounded (it is shown on the Agents page).
fn clean_status(mut s: AgentStatus) -> AgentStatus {
    let clip = |v: Option<String>| {
        v.map(|v| {
            v.chars()
                .filter(|c| !c.is_control())
                .take(200)
                .collect::<String>()
        })
    };
    s.user = clip(s.user);
    s.host = clip(s.host);
    s.version = clip(s.version);
    s.policy_version = clip(s.policy_version);
    s
}

impl App {
    /// Answers the agents' API (`/agent/v1/...`).
    pub(super) fn agent_api(&self, req: &Request, segs: &[&str]) -> Response {
        if !self.settings.agent_api {
            return api_error(404, "the agent API is off on this console (agent_api)");
        }
        if req.method != "POST" {
            return api_error(405, "POST only").with("Allow", "POST");
        }
        let r = match segs {
            ["agent", "v1", "enrol"] => self.api_enrol(req),
            ["agent", "v1", "records"] => self.api_records(req),
            ["agent", "v1", "status"] => self.api_status(req),
            ["agent", "v1", "policy"] => self.api_policy(req),
            ["agent", "v1", "decisions"] => self.api_decisions(req),
            ["agent", "v1", "history"] => self.api_history(req),
            ["agent", "v1", "closed"] => self.api_closed(req),
            _ => Err(api_error(404, "no such call")),
        };
        match r {
            Ok(r) | Err(r) => r,
        }
    }

    fn store(&self) -> &std::sync::Arc<dyn ping32dlp::workflow::Store> {
        self.pipeline.workflow().store()
    }

    fn api_internal(&self, why: impl std::fmt::Display) -> Response {
        super::log("internal_error", &format!("agent API: {why}"));
        api_error(500, "internal error; the console's log says what")
    }

    /// The agent a request's credential names, if the credential is good and not revoked.
    fn authenticated(&self, req: &Request) -> Result<Agent, Response> {
        let cred = req
            .header("authorization")
            .and_then(|h| h.strip_prefix("Bearer "))
            .and_then(fleet::split_credential)
            .ok_or_else(|| {
                api_error(
                    401,
                    "an agent credential is needed (Authorization: Bearer NAME:SECRET)",
                )
            })?;
        let a = self
            .store()
            .agent(cred.0)
            .map_err(|e| self.api_internal(e))?;
        let digest = fleet::secret_digest(cred.1);
        match a {
            Some(a)
                if ping32dlp::text::constant_time_eq(
                    a.secret_sha256.as_bytes(),
                    digest.as_bytes(),
                ) =>
            {
                if a.revoked.is_some() {
                    return Err(api_error(403, "this agent's credential is revoked"));
                }
                Ok(a)
            }
            _ => Err(api_error(401, "unknown agent or wrong secret")),
        }
    }

    fn api_enrol(&self, req: &Request) -> Res {
        let b: EnrolBody = serde_json::from_slice(&req.body)
            .map_err(|e| api_error(400, &format!("enrolment: {e}")))?;
        if !fleet::valid_agent_name(&b.name) {
            return Err(api_error(
                400,
                "an agent name is 1 to 64 of A-Z a-z 0-9 . _ - (not starting with . or -)",
            ));
        }
        let secret = fleet::new_agent_secret();
        let now = timeutil::now();
        let agent = Agent {
            name: b.name.clone(),
            secret_sha256: fleet::secret_digest(&secret),
            created: now,
            label: String::new(),
            last_seen: Some(now),
            last_seq: 0,
            revoked: None,
            status: clean_status(b.status),
        };
        let out = self
            .store()
            .enrol(&fleet::secret_digest(b.token.trim()), now, &agent)
            .map_err(|e| self.api_internal(e))?;
        match out {
            Enrolment::Enrolled => {
                ping32dlp::service::log_event(
                    "ping32dlp-console",
                    "agent_enrolled",
                    &[("agent", &b.name), ("peer", &req.peer)],
                    "",
                );
                Ok(json(
                    201,
                    serde_json::json!({ "name": b.name, "credential": format!("{}:{secret}", b.name) }),
                ))
            }
            Enrolment::BadToken => {
                ping32dlp::service::log_event(
                    "ping32dlp-console",
                    "agent_enrol_refused",
                    &[("agent", &b.name), ("peer", &req.peer)],
                    "unknown, used or expired enrolment token",
                );
                Err(api_error(
                    403,
                    "the enrolment token is unknown, used or expired",
                ))
            }
            Enrolment::NameTaken => Err(api_error(
                409,
                "another agent has that name; choose another (the token is still good)",
            )),
        }
    }

    fn api_records(&self, req: &Request) -> Res {
        let a = self.authenticated(req)?;
        let b: UploadBody = serde_json::from_slice(&req.body)
            .map_err(|e| api_error(400, &format!("upload: {e}")))?;
        if b.records.len() > MAX_UPLOAD_RECORDS {
            return Err(api_error(
                413,
                &format!("at most {MAX_UPLOAD_RECORDS} records per upload"),
            ));
        }
        let now = timeutil::now();
        let items = b
            .records
            .into_iter()
            .map(|i| {
                let mut r = i.record;
                r.time = r.time.clamp(now - MAX_AGE, now + MAX_AHEAD);
                // An approval id stays only with the request it names, uploaded with it.
                if i.held.as_ref().map(|h| &h.approval.id) != r.approval.as_ref() {
                    r.approval = None;
                }
                (i.seq, r, i.held)
            })
            .collect();
        let (last, items) =
            fleet::prepare_upload(&a.name, a.last_seq, items).map_err(|e| api_error(400, &e))?;
        let stored = items.len();
        let mut holds = Vec::new();
        let mut evidence = Vec::new();
        for (i, (_, held)) in items.iter().enumerate() {
            let Some(h) = held else { continue };
            let mut ap = h.approval.clone();
            if ap.id.is_empty() || ap.id.len() > 64 || !ap.id.bytes().all(|b| b.is_ascii_hexdigit())
            {
                return Err(api_error(400, "a held mail's request id must be hex"));
            }
            ap.gateway = Some(a.name.clone());
            ap.channel = "proxy".into();
            holds.push((i, ap));
            evidence.push((i, h));
        }
        let recs: Vec<AuditRecord> = items.iter().map(|(r, _)| r.clone()).collect();
        if !recs.is_empty() {
            let ids = match self
                .store()
                .ingest(&a.name, a.last_seq, last, &recs, &holds, now)
                .map_err(|e| self.api_internal(e))?
            {
                Some(ids) => ids,
                None => {
                    return Err(api_error(
                        409,
                        "another upload of this agent changed its record number; send again",
                    ))
                }
            };
            // The attachments the approver may open, kept as the gateways keep theirs.
            let wf = self.pipeline.workflow();
            for (i, h) in evidence {
                let Some(&record_id) = ids.get(i) else {
                    continue;
                };
                let ap = &h.approval;
                let days = ping32dlp::policy::HOLD_EVIDENCE_EXTRA_DAYS
                    + ((ap.expires - ap.created).max(0) as u64).div_ceil(86_400) as u32;
                for e in &h.evidence {
                    let data = e
                        .data
                        .as_deref()
                        .and_then(ping32dlp::text::base64_decode)
                        .filter(|d| fleet::secret_digest_bytes(d) == e.sha256.to_ascii_lowercase());
                    let event = match data {
                        Some(d) => wf
                            .evidence()
                            .put(&d, days, record_id, &e.location)
                            .map(|_| None)
                            .map_err(|x| self.api_internal(x))?,
                        None => Some(format!("{} ({} bytes) stays on the PC", e.location, e.size)),
                    };
                    if let Some(detail) = event {
                        let _ = self.store().add_event(
                            &ap.id,
                            &ApprovalEvent {
                                time: now,
                                actor: format!("agent:{}", a.name),
                                kind: "evidence_skipped".into(),
                                detail,
                            },
                        );
                    }
                }
            }
            for (_, ap) in &holds {
                if ap.state == ApprovalState::Pending {
                    if let Err(e) = wf.announce(ap) {
                        super::log("notify_failed", &format!("request {}: {e}", ap.id));
                    }
                }
            }
        }
        if let Some(st) = b.status {
            self.store()
                .agent_seen(&a.name, now, &clean_status(st))
                .map_err(|e| self.api_internal(e))?;
        }
        Ok(json(
            200,
            serde_json::json!({ "last_seq": last, "stored": stored }),
        ))
    }

    /// A policy's history question, answered over the whole store (counts and yes/no only:
    /// the same answers a gateway's policy gets, never records).
    fn api_history(&self, req: &Request) -> Res {
        self.authenticated(req)?;
        let v: serde_json::Value = serde_json::from_slice(&req.body)
            .map_err(|e| api_error(400, &format!("history: {e}")))?;
        let s = |k: &str| v[k].as_str().unwrap_or("");
        let n = |k: &str| v[k].as_i64().unwrap_or(0);
        let h = self.store();
        let bad = |e: ping32dlp::policy::HistoryError| self.api_internal(e);
        let answer = match s("q") {
            "domain_seen" => {
                serde_json::json!(h.domain_seen(s("domain"), n("until")).map_err(bad)?)
            }
            "sent_to_before" => serde_json::json!(h
                .sent_to_before(s("sender"), s("address"), n("until"))
                .map_err(bad)?),
            "external_sends_of" => serde_json::json!(h
                .external_sends_of(s("sha256"), n("since"), n("until"))
                .map_err(bad)?),
            "sender_external" => serde_json::json!(h
                .sender_external(s("sender"), n("since"), n("until"))
                .map_err(bad)?),
            "ppap_partner" => {
                let rcpts: Vec<String> = v["recipients"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|x| x.as_str().map(str::to_string))
                            .take(1000)
                            .collect()
                    })
                    .unwrap_or_default();
                serde_json::json!(h
                    .ppap_partner(
                        s("sender"),
                        &rcpts,
                        n("since"),
                        n("until"),
                        v["want_password"].as_bool().unwrap_or(false)
                    )
                    .map_err(bad)?)
            }
            other => {
                return Err(api_error(
                    400,
                    &format!("unknown history question `{other}`"),
                ))
            }
        };
        Ok(json(200, serde_json::json!({ "answer": answer })))
    }

    fn api_decisions(&self, req: &Request) -> Res {
        let a = self.authenticated(req)?;
        let decided = self
            .store()
            .approvals_to_carry_out(&a.name)
            .map_err(|e| self.api_internal(e))?;
        Ok(json(200, serde_json::json!({ "approvals": decided })))
    }

    fn api_closed(&self, req: &Request) -> Res {
        let a = self.authenticated(req)?;
        let b: ClosedBody = serde_json::from_slice(&req.body)
            .map_err(|e| api_error(400, &format!("closed: {e}")))?;
        let store = self.store();
        let mut done = 0;
        for c in b.closed.iter().take(MAX_UPLOAD_RECORDS) {
            let kind = match c.state {
                ApprovalState::Released => "release",
                ApprovalState::Discarded => "discard",
                _ => return Err(api_error(400, "a closed request is released or discarded")),
            };
            let Some(mut ap) = store.approval(&c.id).map_err(|e| self.api_internal(e))? else {
                continue;
            };
            // Only what this agent holds; a released request stays released.
            if ap.gateway.as_deref() != Some(a.name.as_str())
                || matches!(ap.state, ApprovalState::Released | ApprovalState::Discarded)
            {
                continue;
            }
            // Released means an approver said yes: never from pending or a no.
            if c.state == ApprovalState::Released && ap.state != ApprovalState::Approved {
                continue;
            }
            let from = ap.state;
            ap.state = c.state;
            ap.closed_at = Some(c.time.min(timeutil::now()));
            if store
                .transition(&ap, from)
                .map_err(|e| self.api_internal(e))?
            {
                store
                    .add_event(
                        &ap.id,
                        &ApprovalEvent {
                            time: timeutil::now(),
                            actor: format!("agent:{}", a.name),
                            kind: kind.into(),
                            detail: "carried out on the PC".into(),
                        },
                    )
                    .map_err(|e| self.api_internal(e))?;
                done += 1;
            }
        }
        Ok(json(200, serde_json::json!({ "done": done })))
    }

    fn api_status(&self, req: &Request) -> Res {
        let a = self.authenticated(req)?;
        let b: StatusBody = serde_json::from_slice(&req.body)
            .map_err(|e| api_error(400, &format!("status: {e}")))?;
        self.store()
            .agent_seen(&a.name, timeutil::now(), &clean_status(b.status))
            .map_err(|e| self.api_internal(e))?;
        Ok(json(200, serde_json::json!({ "last_seq": a.last_seq })))
    }

    fn api_policy(&self, req: &Request) -> Res {
        self.authenticated(req)?;
        let b: PolicyBody = serde_json::from_slice(&req.body)
            .map_err(|e| api_error(400, &format!("policy: {e}")))?;
        let cur = self
            .store()
            .fleet_policy()
            .map_err(|e| self.api_internal(e))?;
        Ok(json(
            200,
            match cur {
                None => serde_json::json!({ "version": null }),
                Some(p) if Some(p.version) == b.have => serde_json::json!({ "version": p.version }),
                Some(p) => serde_json::json!({
                    "version": p.version,
                    "sha256": p.sha256,
                    "actor": p.actor,
                    "text": p.text,
                }),
            },
        ))
    }

    /// `POST /agents/policy`: a new policy for the agents, checked like `ping32dlp policy
    /// check` (against this console's rules) before it is stored.
    pub(super) fn agents_policy(&self, cx: &Cx) -> Res {
        let s = self.need(cx, true)?;
        let form = cx.req.form();
        self.csrf(cx, &form, Some(&s.csrf))?;
        let text = field(&form, "policy").unwrap_or("").replace("\r\n", "\n");
        if text.trim().is_empty() {
            return Err(self.error(cx, 400, "Paste the policy file's text."));
        }
        let engine = self.pipeline.engine();
        if let Err(e) =
            fleet::check_policy_text(&text, std::path::Path::new("uploaded policy"), &engine)
        {
            let l = cx.l;
            let body = format!(
                r#"<p><a href="/agents">← {back}</a></p><div class="card"><h1>{title}</h1>{err}<pre class="mono small">{e}</pre></div>"#,
                back = esc(t(l, "Agents")),
                title = esc(t(l, "Policy for agents")),
                err = html::notice("error", t(l, "The policy was not stored: it has an error.")),
                e = esc(&e),
            );
            return Err(Response::html(
                400,
                page(l, t(l, "Policy for agents"), Some(&s), "agents", &body),
            ));
        }
        use sha2::Digest;
        let sha: String = sha2::Sha256::digest(text.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        self.admin_log(
            cx,
            &s,
            "policy_upload",
            "agents",
            &format!("sha256 {sha}, {} bytes", text.len()),
        )?;
        let v = self
            .store()
            .fleet_policy_put(&text, &s.user, timeutil::now())
            .map_err(|e| self.internal(cx, e))?;
        ping32dlp::service::log_event(
            "ping32dlp-console",
            "fleet_policy_uploaded",
            &[("version", &v), ("actor", &s.user), ("bytes", &text.len())],
            "",
        );
        Ok(Response::redirect("/agents"))
    }

    // ------------------------------------------------------------ the Agents page

    /// `GET /agents`: enrolled agents, the form for a new enrolment token, recent tokens.
    pub(super) fn agents_page(&self, cx: &Cx) -> Res {
        let s = self.need(cx, true)?;
        let l = cx.l;
        let store = self.store();
        let agents = store.agents().map_err(|e| self.internal(cx, e))?;
        let tokens = store.enrol_tokens(20).map_err(|e| self.internal(cx, e))?;
        let off = self.offset();
        let now = timeutil::now();
        let mut o = format!(
            r#"<div class="head"><h1>{}</h1><span class="muted">{}</span></div>"#,
            esc(t(l, "Agents")),
            agents.len()
        );
        if !self.settings.agent_api {
            o.push_str(&html::notice(
                "info",
                t(
                    l,
                    "The agent API is off: set agent_api = true in the console's file to let agents enrol.",
                ),
            ));
        }
        o.push_str(r#"<div class="card">"#);
        if agents.is_empty() {
            o.push_str(&html::muted(t(l, "No agent is enrolled yet.")));
        } else {
            o.push_str(&html::table_head(&[
                t(l, "Agent"),
                t(l, "User"),
                t(l, "Last seen"),
                t(l, "Version"),
                t(l, "Policy version"),
                t(l, "Not yet uploaded"),
                t(l, "Records"),
                t(l, "State"),
            ]));
            for a in &agents {
                let seen = a
                    .last_seen
                    .map_or_else(|| "-".to_string(), |x| html::time(x, off));
                let state = match a.revoked {
                    Some(at) => format!(
                        r#"<span class="badge b-block">{}</span> <span class="small muted">{}</span>"#,
                        esc(t(l, "revoked")),
                        esc(&html::time(at, off))
                    ),
                    None => format!(
                        r#"<span class="badge b-allow">{}</span><form method="post" action="/agents/{name}/revoke" class="inline"><input type="hidden" name="csrf" value="{csrf}"><button class="link">{rv}</button></form>"#,
                        esc(t(l, "active")),
                        name = esc(&a.name),
                        csrf = esc(&s.csrf),
                        rv = esc(t(l, "Revoke")),
                    ),
                };
                let _ = write!(
                    o,
                    r#"<tr class="row"><td><a href="/audit?gateway={q}&amp;since=30d">{name}</a> <a class="small muted" href="/dashboard?days=30&amp;gateway={q}">▤</a><br><span class="small muted">{label} {host}</span></td><td>{user}</td><td>{seen}</td><td class="small">{ver}</td><td class="small mono">{pol}</td><td>{backlog}</td><td>{seq}</td><td>{state}</td></tr>"#,
                    q = ping32dlp::text::percent_encode(&a.name),
                    name = esc(&a.name),
                    label = esc(&a.label),
                    host = esc(a.status.host.as_deref().unwrap_or("")),
                    user = esc(a.status.user.as_deref().unwrap_or("-")),
                    ver = esc(a.status.version.as_deref().unwrap_or("-")),
                    pol = esc(a.status.policy_version.as_deref().unwrap_or("-")),
                    backlog = a.status.backlog,
                    seq = a.last_seq,
                );
            }
            o.push_str("</table>");
        }
        o.push_str("</div>");
        let pol = store.fleet_policy().map_err(|e| self.internal(cx, e))?;
        let _ = write!(
            o,
            r#"<div class="card"><h2>{}</h2>"#,
            esc(t(l, "Policy for agents"))
        );
        match &pol {
            Some(p) => {
                let running = agents
                    .iter()
                    .filter(|a| a.revoked.is_none())
                    .filter(|a| a.status.policy_version.as_deref() == Some(&p.version.to_string()))
                    .count();
                let _ = write!(
                    o,
                    r#"<p>{ver} <b>{v}</b> · {by} {actor} · {at} · <span class="mono small">{sha}</span></p><p class="small muted">{run}: {running} / {all}</p>"#,
                    ver = esc(t(l, "Version")),
                    v = p.version,
                    by = esc(t(l, "uploaded by")),
                    actor = esc(&p.actor),
                    at = esc(&html::time(p.created, off)),
                    sha = esc(&p.sha256[..16.min(p.sha256.len())]),
                    run = esc(t(l, "Agents running it")),
                    all = agents.iter().filter(|a| a.revoked.is_none()).count(),
                );
            }
            None => o.push_str(&html::muted(t(
                l,
                "No policy uploaded: agents use their own policy file.",
            ))),
        }
        let _ = write!(
            o,
            r#"<form method="post" action="/agents/policy"><input type="hidden" name="csrf" value="{csrf}"><label class="small muted" for="policy">{lbl}</label><textarea id="policy" name="policy" rows="12" class="mono" required>{cur}</textarea><p><button class="btn btn-plain">{up}</button></p></form></div>"#,
            csrf = esc(&s.csrf),
            lbl = esc(t(
                l,
                "A policy file (TOML), checked against this console's rules before it is stored; agents apply it without restarting."
            )),
            cur = esc(pol.as_ref().map_or("", |p| p.text.as_str())),
            up = esc(t(l, "Upload for all agents")),
        );
        let _ = write!(
            o,
            r#"<div class="card"><h2>{title}</h2><p class="small muted">{hint}</p><form method="post" action="/agents/tokens" class="filters"><input type="hidden" name="csrf" value="{csrf}"><label>{lbl}<input name="label" maxlength="100" required></label><label>{days}<input name="days" type="number" min="1" max="90" value="7"></label><button class="btn btn-plain">{make}</button></form>"#,
            title = esc(t(l, "New enrolment token")),
            hint = esc(t(
                l,
                "A token enrols one agent, once, before it expires. It is shown once; the console keeps only its SHA-256."
            )),
            csrf = esc(&s.csrf),
            lbl = esc(t(l, "For (PC, user)")),
            days = esc(t(l, "Valid days")),
            make = esc(t(l, "Make a token")),
        );
        if !tokens.is_empty() {
            o.push_str(&html::table_head(&[
                t(l, "For (PC, user)"),
                t(l, "Made"),
                t(l, "Expires"),
                t(l, "Used by"),
            ]));
            for tk in &tokens {
                let used = match (&tk.agent, tk.used) {
                    (Some(a), Some(at)) => format!("{} ({})", esc(a), esc(&html::time(at, off))),
                    _ if tk.expires <= now => esc(t(l, "expired")),
                    _ => esc(t(l, "not used yet")),
                };
                let _ = write!(
                    o,
                    "<tr><td>{}</td><td>{} <span class=\"small muted\">{}</span></td><td>{}</td><td>{used}</td></tr>",
                    esc(&tk.label),
                    esc(&html::time(tk.created, off)),
                    esc(&tk.created_by),
                    esc(&html::time(tk.expires, off)),
                );
            }
            o.push_str("</table>");
        }
        o.push_str("</div>");
        Ok(Response::html(
            200,
            page(l, t(l, "Agents"), Some(&s), "agents", &o),
        ))
    }

    /// `POST /agents/tokens`: makes an enrolment token and shows it once.
    pub(super) fn agents_new_token(&self, cx: &Cx) -> Res {
        let s = self.need(cx, true)?;
        let form = cx.req.form();
        self.csrf(cx, &form, Some(&s.csrf))?;
        let l = cx.l;
        let label: String = field(&form, "label")
            .unwrap_or("")
            .trim()
            .chars()
            .filter(|c| !c.is_control())
            .take(100)
            .collect();
        if label.is_empty() {
            return Err(self.error(cx, 400, "Say whom the token is for."));
        }
        let days = field(&form, "days")
            .and_then(|d| d.trim().parse::<i64>().ok())
            .unwrap_or(7)
            .clamp(1, 90);
        let now = timeutil::now();
        self.admin_log(cx, &s, "enrol_token", &label, &format!("valid {days} days"))?;
        let (token, row) = fleet::new_enrol_token(&label, &s.user, now, days);
        self.store()
            .enrol_token_add(&row)
            .map_err(|e| self.internal(cx, e))?;
        ping32dlp::service::log_event(
            "ping32dlp-console",
            "enrol_token_made",
            &[("actor", &s.user), ("label", &label), ("days", &days)],
            "",
        );
        let body = format!(
            r#"<p><a href="/agents">← {back}</a></p><div class="card"><h1>{title}</h1><p>{once}</p><p class="mono big">{token}</p><p class="small muted">{use_it}</p><pre class="mono small">ping32dlp agent enrol --server {server} --name NAME --token {token}</pre><p class="small muted">{for_} {label} · {exp} {expires}</p></div>"#,
            back = esc(t(l, "Agents")),
            title = esc(t(l, "Enrolment token")),
            once = esc(t(
                l,
                "Copy it now: it is not shown again. It enrols one agent."
            )),
            token = esc(&token),
            use_it = esc(t(l, "On the PC, as the agent's user:")),
            server = esc(&self.settings.public_url),
            for_ = esc(t(l, "For (PC, user)")),
            label = esc(&label),
            exp = esc(t(l, "Expires")),
            expires = esc(&html::time(row.expires, self.offset())),
        );
        Ok(Response::html(
            200,
            page(l, t(l, "Enrolment token"), Some(&s), "agents", &body),
        )
        .with("Cache-Control", "no-store"))
    }

    /// `POST /agents/NAME/revoke`.
    pub(super) fn agents_revoke(&self, cx: &Cx, name: &str) -> Res {
        let s = self.need(cx, true)?;
        let form = cx.req.form();
        self.csrf(cx, &form, Some(&s.csrf))?;
        self.admin_log(cx, &s, "agent_revoke", name, "")?;
        let done = self
            .store()
            .agent_revoke(name, timeutil::now())
            .map_err(|e| self.internal(cx, e))?;
        if !done {
            return Err(self.error(cx, 404, "There is no such agent, or it is already revoked."));
        }
        ping32dlp::service::log_event(
            "ping32dlp-console",
            "agent_revoked",
            &[("agent", &name), ("actor", &s.user)],
            "",
        );
        Ok(Response::redirect("/agents"))
    }
}
