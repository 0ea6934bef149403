//! Routes of the console: sign-in (password and one-time links), approval requests, attachment
//! views and downloads, decisions, audit search, record pages and the dashboard. Every route
//! checks the session and role itself; every POST checks the form's CSRF token.

use std::fmt::Write as _;
use std::time::Duration;

use ping32dlp::pipeline::Pipeline;
use ping32dlp::timeutil;
use ping32dlp::workflow::{Approval, ApprovalState, AuditQuery, AuditRecord, WorkflowError};

use crate::auth::{self, Account, Role, Session, Sessions, Throttle};
use crate::html::{self, badge, esc, page};
use crate::http::{Request, Response};
use crate::i18n::{t, Lang};

mod adminlog;
mod agents;
mod links;
mod reports;
pub use agents::MAX_UPLOAD_RECORDS;

/// Cookie names.
const SESSION_COOKIE: &str = "p32_session";
const PRE_COOKIE: &str = "p32_pre";

/// Largest text shown of one attachment.
const PREVIEW_BYTES: usize = 512 * 1024;

/// Settings of the console that are not the pipeline's.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Language when the browser asks for none we have.
    pub default_lang: Lang,
    /// Add `Secure` to cookies (the console is reached over TLS).
    pub secure_cookies: bool,
    /// Failed sign-ins per account and per client address before a pause.
    pub login_attempts: u32,
    /// How long that pause (and the counting window) lasts.
    pub login_window: Duration,
    /// Session idle timeout.
    pub session_idle: Duration,
    /// Longest session.
    pub session_max: Duration,
    /// Serve the agents' API (`/agent/v1/...`): enrolment and uploads of endpoint agents.
    pub agent_api: bool,
    /// The console's address as agents and browsers reach it (shown in enrolment commands).
    pub public_url: String,
}

/// The console.
pub struct App {
    /// Sign-in with the company directory for names that are no local account.
    directory: Option<(
        std::sync::Arc<ping32dlp_directory::Directory>,
        crate::SignIn,
    )>,
    pipeline: Pipeline,
    metrics: std::sync::Arc<ping32dlp_ops::Metrics>,
    accounts: Vec<Account>,
    sessions: Sessions,
    throttle: Throttle,
    settings: Settings,
}

/// One request being answered.
struct Cx<'r> {
    req: &'r Request,
    l: Lang,
    sid: Option<String>,
    s: Option<Session>,
}

type Res = Result<Response, Response>;

/// Who signed in: name, role, approver groups.
type SignedIn = (String, Role, Vec<String>);

/// Pages over the whole company, closed to admins limited to departments.
const COMPANY_WIDE: [&str; 3] = ["/dashboard", "/agents", "/admin-log"];

impl App {
    /// A console over a pipeline (its workflow's store, its engine for previews).
    pub fn new(mut pipeline: Pipeline, accounts: Vec<Account>, mut settings: Settings) -> App {
        if let Some(u) = &pipeline.workflow().config().console_url {
            settings.public_url = u.clone();
        }
        let store = pipeline.workflow().store().clone();
        let metrics = std::sync::Arc::new(ping32dlp_ops::Metrics::new("ping32dlp-console"));
        pipeline.set_observer(metrics.clone());
        App {
            directory: None,
            metrics,
            sessions: Sessions::new(store.clone(), settings.session_idle, settings.session_max),
            throttle: Throttle::new(store, settings.login_window),
            pipeline,
            accounts,
            settings,
        }
    }

    /// Lets names that are no local account sign in with the company directory.
    pub fn with_directory_sign_in(
        mut self,
        dir: std::sync::Arc<ping32dlp_directory::Directory>,
        cfg: crate::SignIn,
    ) -> App {
        self.directory = Some((dir, cfg));
        self
    }

    /// A directory sign-in: `Ok(None)` for a wrong name or password, `Err` for a directory
    /// that cannot be asked or a person the settings do not let in.
    fn directory_sign_in(
        &self,
        user: &str,
        password: &str,
    ) -> Result<Option<SignedIn>, (u16, &'static str)> {
        let Some((dir, cfg)) = &self.directory else {
            return Ok(None);
        };
        let person = match dir.authenticate(user, password) {
            Ok(Some(p)) => p,
            Ok(None) => return Ok(None),
            Err(e) => {
                log(
                    "directory_error",
                    &format!("directory sign-in of {user}: {e}"),
                );
                return Err((
                    503,
                    "The company directory cannot be reached; try again later.",
                ));
            }
        };
        let member = |gs: &[String]| {
            gs.iter()
                .any(|g| person.groups.iter().any(|p| p.eq_ignore_ascii_case(g)))
        };
        let role = if member(&cfg.admin_groups) {
            Role::Admin
        } else if cfg.approver_groups.is_empty() || member(&cfg.approver_groups) {
            Role::Approver
        } else {
            return Err((403, "Your directory account may not use this console."));
        };
        Ok(Some((user.trim().to_lowercase(), role, person.groups)))
    }

    /// The console's metrics (served when `metrics_listen` is set).
    pub fn metrics(&self) -> &std::sync::Arc<ping32dlp_ops::Metrics> {
        &self.metrics
    }

    /// The pipeline (for the expiry thread).
    pub fn pipeline(&self) -> &Pipeline {
        &self.pipeline
    }

    fn offset(&self) -> i32 {
        self.pipeline.workflow().config().utc_offset_min
    }

    /// Answers one request.
    pub fn handle(&self, req: &Request) -> Response {
        let l = Lang::pick(req.header("accept-language"), self.settings.default_lang);
        let sid = req.cookie(SESSION_COOKIE).map(str::to_string);
        let s = sid
            .as_deref()
            .and_then(|id| self.sessions.get(id))
            .map(|mut s| {
                // Department limits come from the account as configured now (a reload applies).
                s.departments = self
                    .accounts
                    .iter()
                    .find(|a| a.name == s.user && s.scope.is_none())
                    .filter(|a| !a.departments.is_empty())
                    .map(|a| a.departments.clone());
                s
            });
        let cx = Cx { req, l, sid, s };
        match self.route(&cx) {
            Ok(r) | Err(r) => r,
        }
    }

    fn route(&self, cx: &Cx) -> Res {
        let segs: Vec<&str> = cx.req.path.split('/').filter(|s| !s.is_empty()).collect();
        if segs.first() == Some(&"agent") {
            return Ok(self.agent_api(cx.req, &segs));
        }
        // Which methods each address takes; anything else is 404 or 405.
        let allow = match segs.as_slice() {
            ["login"] | ["link", _] => "GET, HEAD, POST",
            ["logout"]
            | ["requests", _, "decide"]
            | ["agents", "tokens"]
            | ["agents", "policy"]
            | ["agents", _, "revoke"] => "POST",
            ["style.css"]
            | ["healthz"]
            | []
            | ["requests"]
            | ["requests", _]
            | ["requests", _, "message"]
            | ["requests", _, "attachments", _]
            | ["requests", _, "attachments", _, "download"]
            | ["audit"]
            | ["audit", _]
            | ["dashboard"]
            | ["admin-log"]
            | ["reports"]
            | ["links", _]
            | ["reports", "senders.csv" | "departments.csv"]
            | ["agents"] => "GET, HEAD",
            _ => return Err(self.error(cx, 404, "There is no such page.")),
        };
        let m = cx.req.method.as_str();
        if !allow.split(", ").any(|x| x == m) {
            return Err(self
                .error(cx, 405, "This address does not take that method.")
                .with("Allow", allow));
        }
        let post = m == "POST";
        match (segs.as_slice(), post) {
            (["style.css"], _) => Ok(Response {
                status: 200,
                headers: vec![
                    ("Content-Type".into(), "text/css; charset=utf-8".into()),
                    ("Cache-Control".into(), "max-age=3600".into()),
                ],
                body: html::CSS.as_bytes().to_vec(),
            }),
            (["healthz"], _) => Ok(Response::text(200, "ok\n")),
            ([], _) => {
                let s = self.need(cx, false)?;
                Ok(Response::redirect(
                    match (&s.scope, s.role) {
                        (Some(id), _) => format!("/requests/{id}"),
                        (None, Role::Admin) => "/dashboard".into(),
                        (None, Role::Approver) => "/requests".into(),
                    }
                    .as_str(),
                ))
            }
            (["login"], false) => Ok(self.login_page(cx, None, 200)),
            (["login"], true) => self.login(cx),
            (["logout"], _) => self.logout(cx),
            (["link", id], false) => Ok(self.link_page(cx, id)),
            (["link", id], true) => self.link_signin(cx, id),
            (["requests"], _) => self.requests(cx),
            (["requests", id], _) => self.request(cx, id),
            (["requests", id, "decide"], _) => self.decide(cx, id),
            (["requests", id, "attachments", n], _) => self.attachment(cx, id, n, false),
            (["requests", id, "attachments", n, "download"], _) => self.attachment(cx, id, n, true),
            (["requests", id, "message"], _) => self.message(cx, id),
            (["audit"], _) => self.audit(cx),
            (["audit", id], _) => self.audit_record(cx, id),
            (["dashboard"], _) => self.dashboard(cx),
            (["agents"], _) => self.agents_page(cx),
            (["admin-log"], _) => self.admin_log_page(cx),
            (["reports"], _) => self.reports_page(cx),
            (["links", id], _) => self.links_page(cx, id),
            (["reports", "senders.csv"], _) => self.reports_csv(cx, "senders"),
            (["reports", "departments.csv"], _) => self.reports_csv(cx, "departments"),
            (["agents", "tokens"], _) => self.agents_new_token(cx),
            (["agents", "policy"], _) => self.agents_policy(cx),
            (["agents", name, "revoke"], _) => self.agents_revoke(cx, name),
            _ => Err(self.error(cx, 404, "There is no such page.")),
        }
    }

    // ------------------------------------------------------------ helpers

    fn cookie(&self, name: &str, value: &str, max_age: Option<i64>) -> String {
        let mut c = format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict");
        if self.settings.secure_cookies {
            c.push_str("; Secure");
        }
        if let Some(a) = max_age {
            c.push_str(&format!("; Max-Age={a}"));
        }
        c
    }

    fn error(&self, cx: &Cx, status: u16, text: &str) -> Response {
        let title = match status {
            403 => t(cx.l, "Not allowed"),
            404 => t(cx.l, "Not found"),
            409 => t(cx.l, "Already decided"),
            429 => t(cx.l, "Too many attempts"),
            _ => t(cx.l, "Error"),
        };
        let back = if cx.s.is_some() {
            format!(
                r#"<p><a href="/">{}</a></p>"#,
                esc(t(cx.l, "Back to the start page"))
            )
        } else {
            format!(r#"<p><a href="/login">{}</a></p>"#, esc(t(cx.l, "Sign in")))
        };
        let body = format!(
            r#"<div class="card"><h1>{}</h1>{}{back}</div>"#,
            esc(title),
            html::notice("error", t(cx.l, text))
        );
        Response::html(status, page(cx.l, title, cx.s.as_ref(), "", &body))
    }

    /// The session, or a redirect to sign in (GET) / 403 (others); admins only when `admin`;
    /// sessions from a sign-in link only see their request.
    fn need(&self, cx: &Cx, admin: bool) -> Result<Session, Response> {
        let Some(s) = cx.s.clone() else {
            if cx.req.method == "GET" || cx.req.method == "HEAD" {
                let mut next = cx.req.path.clone();
                if !cx.req.query.is_empty() {
                    let q: Vec<String> = cx
                        .req
                        .query
                        .iter()
                        .map(|(k, v)| {
                            format!(
                                "{}={}",
                                ping32dlp::text::percent_encode(k),
                                ping32dlp::text::percent_encode(v)
                            )
                        })
                        .collect();
                    next = format!("{next}?{}", q.join("&"));
                }
                return Err(Response::redirect(&format!(
                    "/login?next={}",
                    ping32dlp::text::percent_encode(&next)
                )));
            }
            return Err(self.error(cx, 403, "Sign in first."));
        };
        if admin && s.role != Role::Admin {
            return Err(self.error(cx, 403, "This page is for administrators."));
        }
        if s.departments.is_some() && COMPANY_WIDE.iter().any(|p| cx.req.path.starts_with(p)) {
            return Err(self.error(
                cx,
                403,
                "Your account is limited to some departments; this page covers the whole company.",
            ));
        }
        if let Some(scope) = &s.scope {
            let mine = format!("/requests/{scope}");
            let home = cx.req.path == "/";
            if !home && cx.req.path != mine && !cx.req.path.starts_with(&format!("{mine}/")) {
                return Err(self.error(
                    cx,
                    403,
                    "A sign-in link opens only its own request. Sign in with your account to see more.",
                ));
            }
        }
        Ok(s)
    }

    /// Checks a POST: the form's CSRF token against the session's (or, before sign-in, the
    /// pre-session cookie's), and that the browser did not send it from another site.
    fn csrf(
        &self,
        cx: &Cx,
        form: &[(String, String)],
        expected: Option<&str>,
    ) -> Result<(), Response> {
        if cx.req.header("sec-fetch-site") == Some("cross-site") {
            return Err(self.error(cx, 403, "The form was sent from another site."));
        }
        let got = field(form, "csrf").unwrap_or("");
        match expected {
            Some(e)
                if !e.is_empty()
                    && ping32dlp::text::constant_time_eq(e.as_bytes(), got.as_bytes()) =>
            {
                Ok(())
            }
            _ => Err(self.error(
                cx,
                403,
                "The form has expired or did not come from this console. Reload the page and try again.",
            )),
        }
    }

    /// A request the session may see (403 when it is someone else's, 404 when there is none).
    fn approval(&self, cx: &Cx, id: &str, s: &Session) -> Result<Approval, Response> {
        let a = self
            .pipeline
            .workflow()
            .store()
            .approval(id)
            .map_err(|e| self.internal(cx, e))?
            .ok_or_else(|| self.error(cx, 404, "There is no such request."))?;
        if !Self::assigned(&a, s) {
            let rec = match s.departments {
                Some(_) => self
                    .pipeline
                    .workflow()
                    .store()
                    .get_record(a.record_id)
                    .map_err(|e| self.internal(cx, e))?,
                None => None,
            };
            if !Self::in_departments(s, rec.as_ref()) {
                return Err(self.error(cx, 403, "This request is not assigned to you."));
            }
        }
        Ok(a)
    }

    fn internal(&self, cx: &Cx, why: impl std::fmt::Display) -> Response {
        log("internal_error", &format!("error: {why}"));
        self.error(cx, 500, "Something went wrong; the log says what.")
    }

    // ------------------------------------------------------------ sign-in

    fn pre_token(&self, cx: &Cx) -> (String, Option<String>) {
        match cx.req.cookie(PRE_COOKIE).filter(|v| v.len() == 64) {
            Some(v) => (v.to_string(), None),
            None => {
                let v = auth::random_token();
                let c = self.cookie(PRE_COOKIE, &v, Some(3600));
                (v, Some(c))
            }
        }
    }

    fn login_page(&self, cx: &Cx, error: Option<&str>, status: u16) -> Response {
        let (pre, set) = self.pre_token(cx);
        let next = cx
            .req
            .q("next")
            .map(str::to_string)
            .or_else(|| field(&cx.req.form(), "next").map(str::to_string))
            .and_then(|n| safe_next(&n))
            .unwrap_or_default();
        let body = format!(
            r#"<div class="card login"><h1>{title}</h1>{err}<form method="post" action="/login"><input type="hidden" name="csrf" value="{pre}"><input type="hidden" name="next" value="{next}"><label>{user}<input name="user" autocomplete="username" required autofocus></label><label>{pw}<input name="password" type="password" autocomplete="current-password" required></label><button class="btn btn-plain">{title}</button></form><p class="muted small">{hint}</p></div>"#,
            title = esc(t(cx.l, "Sign in")),
            err = error.map(|e| html::notice("error", e)).unwrap_or_default(),
            next = esc(&next),
            user = esc(t(cx.l, "Account")),
            pw = esc(t(cx.l, "Password")),
            hint = esc(t(
                cx.l,
                "Approvers can also use the one-time link in their approval mail."
            )),
        );
        let mut r = Response::html(status, page(cx.l, t(cx.l, "Sign in"), None, "", &body));
        if let Some(c) = set {
            r = r.with("Set-Cookie", c);
        }
        r
    }

    fn login(&self, cx: &Cx) -> Res {
        let form = cx.req.form();
        self.csrf(cx, &form, cx.req.cookie(PRE_COOKIE))?;
        let user = field(&form, "user").unwrap_or("").trim().to_string();
        let password = field(&form, "password").unwrap_or("");
        let ip_key = format!("ip:{}", cx.req.peer);
        let user_key = format!("user:{}", user.to_lowercase());
        let limit = self.settings.login_attempts.max(1);
        // Counted before the password is checked (see `Throttle`).
        let taken = self.throttle.attempt(&ip_key, limit * 4).and_then(|()| {
            self.throttle.attempt(&user_key, limit).inspect_err(|_| {
                self.throttle.refund(&ip_key);
            })
        });
        if let Err(wait) = taken {
            log(
                "sign_in_refused",
                &format!(
                    "sign-in refused for {user_key} from {}: too many failures",
                    cx.req.peer
                ),
            );
            let msg = match cx.l {
                Lang::Ja => format!("失敗が続いたため、{} 秒後にもう一度お試しください。", wait),
                Lang::En => format!("Too many failed attempts. Try again in {wait} s."),
            };
            return Err(self
                .login_page(cx, Some(&msg), 429)
                .with("Retry-After", wait.to_string()));
        }
        let acct = self
            .accounts
            .iter()
            .find(|a| a.name.eq_ignore_ascii_case(&user));
        // A local account, else (when configured) the company directory.
        let who = match acct {
            Some(a) if auth::verify(Some(&a.password_hash), password) => {
                Some((a.name.clone(), a.role, a.groups.clone()))
            }
            Some(_) => None,
            None if self.directory.is_some() => match self.directory_sign_in(&user, password) {
                Ok(w) => w,
                Err((status, why)) => {
                    log(
                        "sign_in_failed",
                        &format!("sign-in of {user_key} from {} refused: {why}", cx.req.peer),
                    );
                    return Err(self.login_page(cx, Some(t(cx.l, why)), status));
                }
            },
            None => {
                // As long as a real check, so that names cannot be told apart by time.
                auth::verify(None, password);
                None
            }
        };
        let Some((name, role, groups)) = who else {
            log(
                "sign_in_failed",
                &format!("sign-in failed for {user_key} from {}", cx.req.peer),
            );
            return Err(self.login_page(
                cx,
                Some(t(cx.l, "The account or the password is wrong.")),
                403,
            ));
        };
        self.throttle.clear(&user_key);
        self.throttle.refund(&ip_key);
        if let Some(old) = &cx.sid {
            self.sessions.remove(old);
        }
        let sid = self
            .sessions
            .create(&name, role, groups, None)
            .map_err(|e| self.internal(cx, e))?;
        log(
            "signed_in",
            &format!(
                "{name} signed in from {}{}",
                cx.req.peer,
                if acct.is_none() {
                    " (company directory)"
                } else {
                    ""
                }
            ),
        );
        let next = field(&form, "next")
            .and_then(safe_next)
            .unwrap_or_else(|| "/".to_string());
        Ok(Response::redirect(&next)
            .with("Set-Cookie", self.cookie(SESSION_COOKIE, &sid, None))
            .with("Set-Cookie", self.cookie(PRE_COOKIE, "", Some(0))))
    }

    fn logout(&self, cx: &Cx) -> Res {
        let form = cx.req.form();
        let Some(s) = &cx.s else {
            return Ok(Response::redirect("/login"));
        };
        self.csrf(cx, &form, Some(&s.csrf))?;
        if let Some(id) = &cx.sid {
            self.sessions.remove(id);
        }
        Ok(Response::redirect("/login")
            .with("Set-Cookie", self.cookie(SESSION_COOKIE, "", Some(0))))
    }

    /// A sign-in link shows a button: mail scanners that fetch links do not use it up.
    fn link_page(&self, cx: &Cx, id: &str) -> Response {
        let (pre, set) = self.pre_token(cx);
        let who = cx.req.q("u").unwrap_or("");
        let tok = cx.req.q("t").unwrap_or("");
        let body = format!(
            r#"<div class="card login"><h1>{title}</h1><p>{text}</p><dl class="kv"><dt>{req}</dt><dd class="mono">{id}</dd><dt>{acct}</dt><dd>{who}</dd></dl><form method="post" action="/link/{id}"><input type="hidden" name="csrf" value="{pre}"><input type="hidden" name="u" value="{who}"><input type="hidden" name="t" value="{tok}"><p><button class="btn btn-plain">{go}</button></p></form></div>"#,
            title = esc(t(cx.l, "Open the approval request")),
            text = esc(t(
                cx.l,
                "This one-time link signs you in to this request only."
            )),
            req = esc(t(cx.l, "Request")),
            acct = esc(t(cx.l, "Account")),
            id = esc(id),
            who = esc(who),
            tok = esc(tok),
            go = esc(t(cx.l, "Open the request")),
        );
        let mut r = Response::html(200, page(cx.l, t(cx.l, "Sign in"), None, "", &body));
        if let Some(c) = set {
            r = r.with("Set-Cookie", c);
        }
        r
    }

    fn link_signin(&self, cx: &Cx, id: &str) -> Res {
        let form = cx.req.form();
        self.csrf(cx, &form, cx.req.cookie(PRE_COOKIE))?;
        let who = field(&form, "u").unwrap_or("").trim().to_string();
        let tok = field(&form, "t").unwrap_or("");
        let ip_key = format!("ip:{}", cx.req.peer);
        if let Err(wait) = self
            .throttle
            .attempt(&ip_key, self.settings.login_attempts.max(1) * 4)
        {
            return Err(self
                .error(cx, 429, "Too many failed attempts. Try again later.")
                .with("Retry-After", wait.to_string()));
        }
        match self.pipeline.workflow().use_link(id, &who, tok) {
            Ok(a) => {
                self.throttle.refund(&ip_key);
                let groups = self
                    .accounts
                    .iter()
                    .find(|x| x.name.eq_ignore_ascii_case(&who))
                    .map(|x| x.groups.clone())
                    .unwrap_or_default();
                let sid = self
                    .sessions
                    .create(&who, Role::Approver, groups, Some(a.id.clone()))
                    .map_err(|e| self.internal(cx, e))?;
                log(
                    "signed_in_link",
                    &format!(
                        "{who} signed in with the link of request {id} from {}",
                        cx.req.peer
                    ),
                );
                Ok(Response::redirect(&format!("/requests/{}", a.id))
                    .with("Set-Cookie", self.cookie(SESSION_COOKIE, &sid, None))
                    .with("Set-Cookie", self.cookie(PRE_COOKIE, "", Some(0))))
            }
            Err(WorkflowError::Forbidden(why)) => Err(self.error(cx, 403, leak_free(&why))),
            Err(e) => {
                self.throttle.refund(&ip_key);
                Err(self.internal(cx, e))
            }
        }
    }

    // ------------------------------------------------------------ requests

    /// Whether the session may see and decide a request: admins any, a sign-in link's session
    /// its own, approvers those assigned to them (their groups included).
    fn assigned(a: &Approval, s: &Session) -> bool {
        match &s.scope {
            Some(scope) => *scope == a.id,
            None => {
                (s.role == Role::Admin && s.departments.is_none())
                    || a.assigned_to(&s.user, Some(&s.groups))
            }
        }
    }

    /// An admin limited to departments sees a record (and its request) when its sender's
    /// department is one of theirs; a record without a department is not theirs.
    fn in_departments(s: &Session, rec: Option<&AuditRecord>) -> bool {
        match &s.departments {
            Some(ds) if s.role == Role::Admin && s.scope.is_none() => rec
                .and_then(|r| r.department.as_ref())
                .is_some_and(|d| ds.contains(d)),
            _ => false,
        }
    }

    fn requests(&self, cx: &Cx) -> Res {
        let s = self.need(cx, false)?;
        let tab = cx.req.q("status").unwrap_or("pending");
        let store = self.pipeline.workflow().store();
        let all = store
            .approvals(None, None)
            .map_err(|e| self.internal(cx, e))?;
        let now = timeutil::now();
        // `?gateway=mx1`: the requests one gateway holds.
        let gw = cx.req.q("gateway");
        // An admin limited to departments: the requests of mail from those departments.
        let mut theirs = std::collections::HashSet::new();
        if s.departments.is_some() {
            let ids: Vec<i64> = all
                .iter()
                .filter(|a| !Self::assigned(a, &s))
                .map(|a| a.record_id)
                .collect();
            for r in store.get_records(&ids).map_err(|e| self.internal(cx, e))? {
                if Self::in_departments(&s, Some(&r)) {
                    theirs.insert(r.id);
                }
            }
        }
        let mine: Vec<&Approval> = all
            .iter()
            .filter(|a| Self::assigned(a, &s) || theirs.contains(&a.record_id))
            .filter(|a| gw.is_none_or(|g| a.gateway.as_deref() == Some(g)))
            .collect();
        let pending_n = mine
            .iter()
            .filter(|a| a.state == ApprovalState::Pending && a.expires > now)
            .count();
        let shown: Vec<&&Approval> = mine
            .iter()
            .filter(|a| {
                let live = a.state == ApprovalState::Pending && a.expires > now;
                match tab {
                    "pending" => live,
                    "done" => !live,
                    _ => true,
                }
            })
            .take(300)
            .collect();
        let l = cx.l;
        let mut o = String::new();
        let _ = write!(
            o,
            r#"<div class="head"><h1>{}</h1><span class="badge b-pending">{} {}</span></div><div class="tabs">"#,
            esc(t(l, "Approval requests")),
            pending_n,
            esc(t(l, "waiting")),
        );
        for (key, label) in [
            ("pending", "Waiting"),
            ("done", "Decided / expired"),
            ("all", "All"),
        ] {
            let on = if key == tab { " class=\"on\"" } else { "" };
            let _ = write!(
                o,
                r#"<a href="/requests?status={key}"{on}>{}</a>"#,
                esc(t(l, label))
            );
        }
        o.push_str("</div><div class=\"card\">");
        if shown.is_empty() {
            o.push_str(&html::muted(t(
                l,
                "Nothing here. New requests appear as mail is held.",
            )));
        } else {
            o.push_str(&html::table_head(&[
                t(l, "State"),
                t(l, "Held at"),
                t(l, "Sender"),
                t(l, "Recipients"),
                t(l, "Subject"),
                t(l, "Why held"),
                t(l, "Attachments"),
            ]));
            // The shown requests' records in one store call (one statement on PostgreSQL).
            let ids: Vec<i64> = shown.iter().map(|a| a.record_id).collect();
            let recs: std::collections::HashMap<i64, AuditRecord> = store
                .get_records(&ids)
                .map_err(|e| self.internal(cx, e))?
                .into_iter()
                .map(|r| (r.id, r))
                .collect();
            for a in shown {
                let rec = recs.get(&a.record_id);
                let state = shown_state(a, now);
                let ext = rec
                    .as_ref()
                    .map(|r| r.recipients.iter().filter(|x| x.external).count())
                    .unwrap_or(0);
                let why = rec
                    .as_ref()
                    .map(|r| detector_summary(r, &self.pipeline, l))
                    .unwrap_or_default();
                let files = rec
                    .as_ref()
                    .map(|r| r.attachments.iter().filter(|f| f.depth == 0).count())
                    .unwrap_or(0);
                let when = if state == "pending" {
                    format!(
                        "{}<br><span class=\"small muted\">{}</span>",
                        esc(&html::time(a.created, self.offset())),
                        esc(&html::left(l, a.expires - now))
                    )
                } else {
                    esc(&html::time(a.created, self.offset()))
                };
                let _ = write!(
                    o,
                    r#"<tr class="row"><td>{badge}{gw}</td><td>{when}</td><td>{sender}</td><td>{rcpt}{ext}</td><td><a href="/requests/{id}">{subject}</a></td><td>{rule}<br><span class="small muted">{why}</span></td><td>{files}</td></tr>"#,
                    badge = badge(l, state),
                    gw = a
                        .gateway
                        .as_ref()
                        .map(|g| format!(
                            r#"<br><a class="small muted" href="/requests?status={}&amp;gateway={}">@ {}</a>"#,
                            esc(tab),
                            esc(&ping32dlp::text::percent_encode(g)),
                            esc(g)
                        ))
                        .unwrap_or_default(),
                    sender = esc(&a.sender),
                    rcpt = esc(&clip(&a.recipients.join(", "), 60)),
                    ext = if ext > 0 {
                        format!(
                            r#"<span class="tag-ext">{} {ext}</span>"#,
                            esc(t(l, "external"))
                        )
                    } else {
                        String::new()
                    },
                    id = esc(&a.id),
                    subject = esc(&non_empty(&clip(&a.subject, 80), t(l, "(no subject)"))),
                    rule = esc(&a.rule),
                    why = esc(&why),
                );
            }
            o.push_str("</table>");
        }
        o.push_str("</div>");
        Ok(Response::html(
            200,
            page(l, t(l, "Approval requests"), Some(&s), "requests", &o),
        ))
    }

    fn request(&self, cx: &Cx, id: &str) -> Res {
        let s = self.need(cx, false)?;
        let a = self.approval(cx, id, &s)?;
        self.admin_log(
            cx,
            &s,
            "request_view",
            &a.id,
            &format!("record {}", a.record_id),
        )?;
        let wf = self.pipeline.workflow();
        wf.record_view(&a.id, &s.user, "view", "")
            .map_err(|e| self.internal(cx, e))?;
        let store = wf.store();
        let rec = store
            .get_record(a.record_id)
            .map_err(|e| self.internal(cx, e))?;
        let events = store.events(&a.id).map_err(|e| self.internal(cx, e))?;
        let kept = wf
            .evidence()
            .of_record(a.record_id)
            .map_err(|e| self.internal(cx, e))?;
        let l = cx.l;
        let now = timeutil::now();
        let state = shown_state(&a, now);
        let mut o = String::new();
        if let Some(done) = cx.req.q("done") {
            let text = match done {
                "approved" => t(l, "Approved. The mail is released to its recipients."),
                _ => t(
                    l,
                    "Rejected. The mail is not sent and the sender is told why.",
                ),
            };
            o.push_str(&html::notice("ok", text));
        }
        let _ = write!(
            o,
            r#"<div class="head"><h1>{subject}</h1>{badge}<span class="muted">{left}</span></div>"#,
            subject = esc(&non_empty(&a.subject, t(l, "(no subject)"))),
            badge = badge(l, state),
            left = if state == "pending" {
                esc(&format!(
                    "{} · {} {}",
                    html::left(l, a.expires - now),
                    t(l, "until"),
                    html::time(a.expires, self.offset())
                ))
            } else {
                String::new()
            },
        );
        o.push_str(r#"<div class="grid">"#);
        // Summary and decision.
        let _ = write!(
            o,
            r#"<div class="card"><h2>{}</h2><dl class="kv"><dt>{}</dt><dd>{}</dd><dt>{}</dt><dd>{}</dd><dt>{}</dt><dd>{}</dd><dt>{}</dt><dd>{}</dd><dt>{}</dt><dd>{}</dd><dt>{}</dt><dd>{}</dd></dl></div>"#,
            esc(t(l, "Message")),
            esc(t(l, "Sender")),
            esc(&a.sender),
            esc(t(l, "Recipients")),
            recipients_html(&a, rec.as_ref(), l),
            esc(t(l, "Held at")),
            esc(&html::time(a.created, self.offset())),
            esc(t(l, "Channel")),
            esc(&format!(
                "{}{}{}",
                a.channel,
                a.gateway
                    .as_ref()
                    .or(rec.as_ref().and_then(|r| r.gateway.as_ref()))
                    .map(|g| format!(" @ {g}"))
                    .unwrap_or_default(),
                rec.as_ref()
                    .and_then(|r| r.user.clone())
                    .map(|u| format!(" · {u}"))
                    .unwrap_or_default()
            )),
            esc(t(l, "Size")),
            esc(&rec.as_ref().map(|r| html::size(r.size)).unwrap_or_default()),
            esc(t(l, "Approvers")),
            esc(&if a.approvers.is_empty() {
                a.approver_group
                    .clone()
                    .unwrap_or_else(|| t(l, "(any approver)").into())
            } else {
                a.approvers.join(", ")
            }),
        );
        o.push_str(&self.decision_box(&a, &s, state, l));
        o.push_str("</div>");
        if let Some(r) = &rec {
            o.push_str(&record_details(r, &self.pipeline, l, Some((&a.id, &kept))));
        } else {
            o.push_str(&html::notice(
                "error",
                t(l, "The audit record of this request is missing."),
            ));
        }
        if wf.held_message(&a.id).ok().flatten().is_some() {
            let _ = write!(
                o,
                r#"<p><a href="/requests/{}/message">{}</a></p>"#,
                esc(&a.id),
                esc(t(l, "Download the whole held message (.eml)"))
            );
        }
        // History.
        let _ = write!(
            o,
            r#"<div class="card"><h2>{}</h2><table><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr>"#,
            esc(t(l, "History")),
            esc(t(l, "Time")),
            esc(t(l, "Who")),
            esc(t(l, "What")),
            esc(t(l, "Detail")),
        );
        for e in &events {
            let _ = write!(
                o,
                r#"<tr><td class="mono nowrap">{}</td><td>{}</td><td class="nowrap">{}</td><td>{}</td></tr>"#,
                esc(&html::time_s(e.time, self.offset())),
                esc(&e.actor),
                esc(t(l, event_label(&e.kind))),
                esc(&e.detail),
            );
        }
        o.push_str("</table></div>");
        Ok(Response::html(
            200,
            page(l, &a.subject, Some(&s), "requests", &o),
        ))
    }

    fn decision_box(&self, a: &Approval, s: &Session, state: &str, l: Lang) -> String {
        if state != "pending" {
            let who = a.decided_by.as_deref().unwrap_or("system");
            let mut o = format!(
                r#"<div class="card"><h2>{}</h2><dl class="kv"><dt>{}</dt><dd>{}</dd>"#,
                esc(t(l, "Decision")),
                esc(t(l, "State")),
                badge(l, state)
            );
            if a.decided_at.is_some() {
                let _ = write!(
                    o,
                    "<dt>{}</dt><dd>{}</dd><dt>{}</dt><dd>{}</dd>",
                    esc(t(l, "By")),
                    esc(who),
                    esc(t(l, "At")),
                    esc(&html::time(a.decided_at.unwrap_or(0), self.offset()))
                );
            }
            if let Some(c) = &a.comment {
                let _ = write!(o, "<dt>{}</dt><dd>{}</dd>", esc(t(l, "Comment")), esc(c));
            }
            o.push_str("</dl></div>");
            return o;
        }
        format!(
            r#"<div class="card decide"><h2>{title}</h2><form method="post" action="/requests/{id}/decide"><input type="hidden" name="csrf" value="{csrf}"><label class="small muted" for="comment">{cl}</label><textarea id="comment" name="comment" maxlength="1000" placeholder="{ph}"></textarea><div class="buttons"><button class="btn btn-approve" name="decision" value="approve">{ap}</button><button class="btn btn-reject" name="decision" value="reject">{rj}</button></div></form><p class="small muted">{note}</p></div>"#,
            title = esc(t(l, "Decision")),
            id = esc(&a.id),
            csrf = esc(&s.csrf),
            cl = esc(t(l, "Comment (sent to the sender when rejected)")),
            ph = esc(t(l, "e.g. checked with the customer's contract")),
            ap = esc(t(
                l,
                if a.release_on_expiry {
                    "Send now"
                } else {
                    "Approve and send"
                }
            )),
            rj = esc(t(
                l,
                if a.release_on_expiry {
                    "Cancel sending"
                } else {
                    "Reject"
                }
            )),
            note = esc(t(
                l,
                "Your views and your decision are recorded with your name and the time."
            )),
        )
    }

    fn decide(&self, cx: &Cx, id: &str) -> Res {
        let s = self.need(cx, false)?;
        let form = cx.req.form();
        self.csrf(cx, &form, Some(&s.csrf))?;
        let a = self.approval(cx, id, &s)?;
        let approve = match field(&form, "decision") {
            Some("approve") => true,
            Some("reject") => false,
            _ => return Err(self.error(cx, 400, "Choose approve or reject.")),
        };
        let comment: String = field(&form, "comment")
            .unwrap_or("")
            .trim()
            .chars()
            .filter(|c| !c.is_control() || *c == '\n')
            .take(1000)
            .collect();
        match self.pipeline.workflow().decide_as(
            &a.id,
            &s.user,
            Some(&s.groups),
            approve,
            &comment,
            s.role == Role::Admin,
        ) {
            Ok(_) => {
                self.metrics
                    .decision(if approve { "approve" } else { "reject" });
                ping32dlp::service::log_event(
                    "ping32dlp-console",
                    "decided",
                    &[
                        ("approval", &a.id),
                        ("record", &a.record_id),
                        ("decision", &if approve { "approve" } else { "reject" }),
                        ("actor", &s.user),
                    ],
                    "",
                );
                Ok(Response::redirect(&format!(
                    "/requests/{}?done={}",
                    a.id,
                    if approve { "approved" } else { "rejected" }
                )))
            }
            Err(WorkflowError::AlreadyDecided(_)) => {
                Err(self.error(cx, 409, "This request was already decided or has expired."))
            }
            Err(WorkflowError::Forbidden(why)) if why.contains("may not approve it") => {
                log(
                    "self_approval_refused",
                    &format!(
                        "{} tried to approve their own request {}: refused",
                        s.user, a.id
                    ),
                );
                Err(self.error(
                    cx,
                    403,
                    "You sent this mail: another approver must approve it.",
                ))
            }
            Err(WorkflowError::Forbidden(_)) => {
                Err(self.error(cx, 403, "This request is not assigned to you."))
            }
            Err(WorkflowError::NotFound(_)) => {
                Err(self.error(cx, 404, "There is no such request."))
            }
            Err(e) => Err(self.internal(cx, e)),
        }
    }

    fn attachment(&self, cx: &Cx, id: &str, n: &str, download: bool) -> Res {
        let s = self.need(cx, false)?;
        let a = self.approval(cx, id, &s)?;
        let wf = self.pipeline.workflow();
        let rec = wf
            .store()
            .get_record(a.record_id)
            .map_err(|e| self.internal(cx, e))?
            .ok_or_else(|| self.error(cx, 404, "There is no such attachment."))?;
        let att = n
            .parse::<usize>()
            .ok()
            .and_then(|i| rec.attachments.get(i))
            .ok_or_else(|| self.error(cx, 404, "There is no such attachment."))?;
        let sha = wf
            .evidence()
            .of_record(a.record_id)
            .map_err(|e| self.internal(cx, e))?
            .into_iter()
            .find(|(loc, _)| *loc == att.location)
            .map(|(_, h)| h)
            .ok_or_else(|| {
                self.error(
                    cx,
                    404,
                    "No copy of this file is kept (only the message's own attachments are).",
                )
            })?;
        let data = wf
            .evidence()
            .get(&sha)
            .map_err(|e| self.internal(cx, e))?
            .ok_or_else(|| self.error(cx, 404, "The kept copy is gone (its retention ended)."))?;
        self.admin_log(
            cx,
            &s,
            if download {
                "attachment_download"
            } else {
                "attachment_view"
            },
            &a.id,
            &format!("{} ({})", att.location, att.sha256),
        )?;
        wf.record_view(
            &a.id,
            &s.user,
            if download {
                "download"
            } else {
                "view_attachment"
            },
            &att.location,
        )
        .map_err(|e| self.internal(cx, e))?;
        if download {
            return Ok(Response::download(&att.name, data));
        }
        let l = cx.l;
        let pv = self.pipeline.preview_file(&att.name, &data, PREVIEW_BYTES);
        let mut o = format!(
            r#"<p><a href="/requests/{id}">← {back}</a></p><div class="head"><h1>{name}</h1><span class="badge b-info">{kind}</span><span class="muted">{size}</span><a class="btn btn-plain" href="/requests/{id}/attachments/{n}/download">{dl}</a></div><p class="small muted">SHA-256 <span class="mono">{sha}</span> · {masked}</p>"#,
            id = esc(&a.id),
            back = esc(t(l, "Back to the request")),
            name = esc(&att.name),
            kind = esc(&att.kind),
            size = esc(&html::size(att.size)),
            n = esc(n),
            dl = esc(t(l, "Download")),
            sha = esc(&att.sha256),
            masked = esc(t(
                l,
                "Text extracted from the file; detected sensitive values are masked."
            )),
        );
        for (loc, why) in &pv.unscannable {
            o.push_str(&html::notice(
                "error",
                &format!("{}: {loc}: {}", t(l, "Could not be read"), t(l, why)),
            ));
        }
        if pv.parts.is_empty() {
            let _ = write!(
                o,
                r#"<div class="card">{}</div>"#,
                html::muted(t(l, "No text could be extracted from this file."))
            );
        }
        for p in &pv.parts {
            let mut where_ = p.location.clone();
            if let Some(pg) = p.page {
                where_.push_str(&format!(" · p.{pg}"));
            }
            if let Some(sh) = &p.sheet {
                where_.push_str(&format!(" · {sh}"));
            }
            let _ = write!(
                o,
                r#"<div class="card"><h2>{}{}</h2><pre class="preview">{}</pre></div>"#,
                esc(&where_),
                if p.findings > 0 {
                    format!(
                        r#" <span class="badge b-bad">{} {}</span>"#,
                        p.findings,
                        esc(t(l, "masked"))
                    )
                } else {
                    String::new()
                },
                esc(&p.text)
            );
        }
        if pv.truncated {
            o.push_str(&html::notice(
                "info",
                t(
                    l,
                    "The text is cut here; download the file to see all of it.",
                ),
            ));
        }
        Ok(Response::html(
            200,
            page(l, &att.name, Some(&s), "requests", &o),
        ))
    }

    fn message(&self, cx: &Cx, id: &str) -> Res {
        let s = self.need(cx, false)?;
        let a = self.approval(cx, id, &s)?;
        let wf = self.pipeline.workflow();
        let data = wf
            .held_message(&a.id)
            .map_err(|e| self.internal(cx, e))?
            .ok_or_else(|| {
                self.error(
                    cx,
                    404,
                    "The held message is not kept here (the mail server holds it).",
                )
            })?;
        self.admin_log(
            cx,
            &s,
            "message_view",
            &a.id,
            &format!("record {}", a.record_id),
        )?;
        wf.record_view(&a.id, &s.user, "download_message", "")
            .map_err(|e| self.internal(cx, e))?;
        Ok(Response::download(&format!("{}.eml", a.id), data))
    }

    // ------------------------------------------------------------ admin

    fn audit(&self, cx: &Cx) -> Res {
        let s = self.need(cx, true)?;
        let l = cx.l;
        let off = self.offset();
        let get = |k: &str| cx.req.q(k).map(|v| v.trim().to_string());
        let mut errors = Vec::new();
        let mut when = |k: &str, default: Option<&str>| -> Option<i64> {
            let v = get(k).or(default.map(str::to_string))?;
            let at = timeutil::parse_when(&v, off);
            if at.is_none() {
                errors.push(format!(
                    "{k} `{v}`: {}",
                    t(l, "use a duration (30d, 12h) or a date (2026-11-01)")
                ));
            }
            at
        };
        let since = when("since", Some("7d"));
        let until = when("until", None);
        let verdict = get("verdict");
        if let Some(v) = &verdict {
            if ping32dlp::policy::Action::parse(v).is_none() {
                errors.push(format!("verdict `{v}`"));
            }
        }
        let role = get("role").filter(|r| !r.is_empty());
        let recipient_role = role.as_deref().and_then(ping32dlp::policy::Role::parse);
        if let (Some(r), None) = (&role, recipient_role) {
            errors.push(format!("role `{r}`"));
        }
        let limit = get("limit")
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(100)
            .clamp(1, 1000);
        let q = AuditQuery {
            user: get("user"),
            sender: get("sender"),
            recipient: get("recipient"),
            recipient_role,
            domain: get("domain"),
            sha256: get("sha256"),
            detector: get("detector"),
            action: verdict.clone(),
            since,
            until,
            gateway: get("gateway"),
            departments: s.departments.clone(),
            limit,
        };
        // A search changes nothing: GET, and no CSRF token (it would end up in the URL).
        let mut o = format!(
            r#"<div class="head"><h1>{}</h1></div><div class="card"><form class="filters" method="get" action="/audit">"#,
            esc(t(l, "Audit log")),
        );
        for (k, label, ph) in [
            ("user", "User", "ichiro"),
            ("sender", "Sender", "ichiro@example.co.jp"),
            ("recipient", "Recipient", "partner@example.com"),
            ("domain", "Domain", "example.com"),
            ("detector", "Detector", "jp_my_number"),
            ("sha256", "Attachment SHA-256", ""),
            ("gateway", "Gateway", "mx1"),
            ("since", "Since", "7d"),
            ("until", "Until", "2026-11-30"),
            ("limit", "Rows", "100"),
        ] {
            let v = get(k).unwrap_or_else(|| {
                if k == "since" {
                    "7d".into()
                } else {
                    String::new()
                }
            });
            let _ = write!(
                o,
                r#"<label>{}<input name="{k}" value="{}" placeholder="{}"></label>"#,
                esc(t(l, label)),
                esc(&v),
                esc(ph)
            );
        }
        let _ = write!(
            o,
            r#"<label>{}<select name="verdict"><option value="">{}</option>"#,
            esc(t(l, "Verdict")),
            esc(t(l, "(any)"))
        );
        for a in [
            "allow", "audit", "tag", "bcc", "alert", "delay", "hold", "block",
        ] {
            let sel = if verdict.as_deref() == Some(a) {
                " selected"
            } else {
                ""
            };
            let _ = write!(o, r#"<option value="{a}"{sel}>{}</option>"#, esc(t(l, a)));
        }
        let _ = write!(
            o,
            r#"</select></label><label>{}<select name="role"><option value="">{}</option>"#,
            esc(t(l, "Recipient role")),
            esc(t(l, "(any)"))
        );
        for (v, label) in [("to", "To"), ("cc", "Cc"), ("bcc", "Bcc")] {
            let sel = if recipient_role.map(|r| r.as_str()) == Some(v) {
                " selected"
            } else {
                ""
            };
            let _ = write!(o, r#"<option value="{v}"{sel}>{label}</option>"#);
        }
        let _ = write!(
            o,
            r#"</select></label><button class="btn btn-plain">{}</button></form></div>"#,
            esc(t(l, "Search"))
        );
        if !errors.is_empty() {
            o.push_str(&html::notice("error", &errors.join("; ")));
            return Err(Response::html(
                400,
                page(l, t(l, "Audit log"), Some(&s), "audit", &o),
            ));
        }
        self.admin_log(cx, &s, "audit_search", "", &Self::query_detail(cx))?;
        let rows = self
            .pipeline
            .workflow()
            .store()
            .search(&q)
            .map_err(|e| self.internal(cx, e))?;
        let _ = write!(
            o,
            r#"<div class="card"><h2>{} {}</h2><table><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr>"#,
            rows.len(),
            esc(t(l, "records")),
            esc(t(l, "Time")),
            esc(t(l, "Verdict")),
            esc(t(l, "Sender")),
            esc(t(l, "Recipients")),
            esc(t(l, "Subject")),
            esc(t(l, "Found")),
            esc(t(l, "Attachments")),
            esc(t(l, "Risk")),
        );
        for r in &rows {
            let ext = r.recipients.iter().filter(|x| x.external).count();
            let _ = write!(
                o,
                r#"<tr class="row"><td class="mono"><a href="/audit/{id}">{time}</a></td><td>{badge}{would}</td><td>{sender}<br><span class="small muted">{chan}</span></td><td>{rcpt}{ext}</td><td>{subj}</td><td class="small">{found}</td><td>{files}</td><td>{risk}</td></tr>"#,
                id = r.id,
                time = esc(&html::time(r.time, off)),
                badge = badge(l, &r.action),
                would = if r.would_action != r.action {
                    format!(
                        r#"<br><span class="small muted">{} {}</span>"#,
                        esc(t(l, "would")),
                        esc(t(l, &r.would_action))
                    )
                } else {
                    String::new()
                },
                sender = esc(&r.sender),
                chan = esc(&format!(
                    "{}{}{}",
                    r.channel,
                    r.gateway
                        .as_ref()
                        .map(|g| format!(" @ {g}"))
                        .unwrap_or_default(),
                    r.user
                        .as_ref()
                        .map(|u| format!(" · {u}"))
                        .unwrap_or_default()
                )),
                rcpt = esc(&clip(
                    &r.recipients
                        .iter()
                        .map(|x| x.address.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                    60
                )),
                ext = if ext > 0 {
                    format!(
                        r#"<span class="tag-ext">{} {ext}</span>"#,
                        esc(t(l, "external"))
                    )
                } else {
                    String::new()
                },
                subj = esc(&clip(&r.subject, 60)),
                found = esc(&detector_summary(r, &self.pipeline, l)),
                files = r.attachments.iter().filter(|f| f.depth == 0).count(),
                risk = r.risk,
            );
        }
        o.push_str("</table></div>");
        Ok(Response::html(
            200,
            page(l, t(l, "Audit log"), Some(&s), "audit", &o),
        ))
    }

    fn audit_record(&self, cx: &Cx, id: &str) -> Res {
        let s = self.need(cx, true)?;
        let l = cx.l;
        let rid: i64 = id
            .parse()
            .map_err(|_| self.error(cx, 404, "There is no such record."))?;
        self.admin_log(cx, &s, "record_view", id, "")?;
        let r = self
            .pipeline
            .workflow()
            .store()
            .get_record(rid)
            .map_err(|e| self.internal(cx, e))?
            .filter(|r| s.departments.is_none() || Self::in_departments(&s, Some(r)))
            .ok_or_else(|| self.error(cx, 404, "There is no such record."))?;
        let off = self.offset();
        let mut o = format!(
            r#"<p><a href="/audit">← {}</a></p><div class="head"><h1>{}</h1>{}</div><div class="grid"><div class="card"><dl class="kv">"#,
            esc(t(l, "Audit log")),
            esc(&non_empty(&r.subject, t(l, "(no subject)"))),
            badge(l, &r.action)
        );
        let rcpts = r
            .recipients
            .iter()
            .map(|x| role_html(x) + &recipient_html(&x.address, x.external, l))
            .collect::<Vec<_>>()
            .join(", ");
        for (k, v) in [
            ("Time", esc(&timeutil::rfc3339(r.time, off))),
            ("Channel", esc(&r.channel)),
            ("Gateway", esc(r.gateway.as_deref().unwrap_or("-"))),
            ("User", esc(r.user.as_deref().unwrap_or("-"))),
            (
                "Client",
                esc(&format!(
                    "{} {} {}",
                    r.host.as_deref().unwrap_or(""),
                    r.client_addr.as_deref().unwrap_or(""),
                    r.client_app.as_deref().unwrap_or("")
                )),
            ),
            ("TLS", esc(r.tls.as_deref().unwrap_or("-"))),
            (
                "Sender",
                match &r.header_from {
                    Some(h) if *h != r.sender => format!(
                        r#"{} <span class="tag-ext">{} {}</span>"#,
                        esc(&r.sender),
                        esc(t(l, "From header")),
                        esc(h)
                    ),
                    _ => esc(&r.sender),
                },
            ),
            ("Recipients", rcpts),
            ("Size", esc(&html::size(r.size))),
            ("Message-ID", esc(r.message_id.as_deref().unwrap_or("-"))),
            ("Queue ID", esc(r.queue_id.as_deref().unwrap_or("-"))),
            ("Would", esc(t(l, &r.would_action))),
            (
                "Risk",
                esc(&format!(
                    "{} {}",
                    r.risk,
                    r.signals
                        .iter()
                        .map(|(k, v)| format!("{k}+{v}"))
                        .collect::<Vec<_>>()
                        .join(" ")
                )),
            ),
        ] {
            let _ = write!(o, "<dt>{}</dt><dd>{v}</dd>", esc(t(l, k)));
        }
        if let Some(aid) = &r.approval {
            let _ = write!(
                o,
                r#"<dt>{}</dt><dd><a href="/requests/{aid}">{aid}</a></dd>"#,
                esc(t(l, "Approval")),
                aid = esc(aid)
            );
        }
        o.push_str("</dl></div></div>");
        o.push_str(&record_details(&r, &self.pipeline, l, None));
        Ok(Response::html(
            200,
            page(l, &r.subject, Some(&s), "audit", &o),
        ))
    }

    fn dashboard(&self, cx: &Cx) -> Res {
        let s = self.need(cx, true)?;
        let l = cx.l;
        let days: i64 = match cx.req.q("days") {
            Some("7") => 7,
            Some("90") => 90,
            _ => 30,
        };
        let now = timeutil::now();
        // From local midnight `days - 1` days ago: whole days, as the chart shows them.
        let local = now + i64::from(self.offset()) * 60;
        let since =
            local - local.rem_euclid(86_400) - i64::from(self.offset()) * 60 - (days - 1) * 86_400;
        let wf = self.pipeline.workflow();
        // One gateway or endpoint agent (`?gateway=pc-12`), or all.
        let gateway = cx.req.q("gateway").map(|g| g.trim().to_string());
        let st = wf
            .store()
            .stats(since, now + 1, self.offset(), 10, gateway.as_deref())
            .map_err(|e| self.internal(cx, e))?;
        let pending = wf
            .store()
            .approvals(Some(ApprovalState::Pending), None)
            .map_err(|e| self.internal(cx, e))?
            .iter()
            .filter(|a| a.expires > now)
            .filter(|a| gateway.is_none() || a.gateway == gateway)
            .count();
        let gw_q = gateway
            .as_deref()
            .map(|g| format!("&amp;gateway={}", esc(&ping32dlp::text::percent_encode(g))))
            .unwrap_or_default();
        let total: u64 = st.per_day.iter().map(|d| d.1).sum();
        let external: u64 = st.per_day.iter().map(|d| d.2).sum();
        let count = |a: &str| st.per_action.iter().find(|x| x.0 == a).map_or(0, |x| x.1);
        let mut o = format!(
            r#"<div class="head"><h1>{}</h1>{}<div class="tabs">"#,
            esc(t(l, "Dashboard")),
            match &gateway {
                Some(g) => format!(
                    r#"<span class="badge b-info">@ {}</span> <a class="small muted" href="/dashboard?days={days}">{}</a>"#,
                    esc(g),
                    esc(t(l, "all gateways and agents"))
                ),
                None => String::new(),
            }
        );
        for d in [7, 30, 90] {
            let on = if d == days { " class=\"on\"" } else { "" };
            let _ = write!(
                o,
                r#"<a href="/dashboard?days={d}{gw_q}"{on}>{}</a>"#,
                esc(&match l {
                    Lang::Ja => format!("{d}日間"),
                    Lang::En => format!("{d} days"),
                })
            );
        }
        o.push_str("</div></div><div class=\"tiles\">");
        for (v, label) in [
            (total, "mails"),
            (external, "to outside"),
            (count("hold"), "held"),
            (count("block"), "blocked"),
            (pending as u64, "waiting for approval"),
        ] {
            let _ = write!(
                o,
                r#"<div class="tile"><b>{v}</b><span>{}</span></div>"#,
                esc(t(l, label))
            );
        }
        o.push_str("</div>");
        let _ = write!(
            o,
            r#"<div class="card"><h2>{}</h2>{}</div><div class="grid">"#,
            esc(t(l, "Outbound mail per day")),
            html::day_bars(&st.per_day, &period_days(now, days, self.offset()), l)
        );
        let order = ["block", "hold", "alert", "tag", "audit", "allow"];
        let verdicts: Vec<(String, u64)> = order
            .iter()
            .map(|a| (t(l, a).to_string(), count(a)))
            .filter(|x| x.1 > 0)
            .collect();
        let none = t(l, "No mail in this period.");
        let det = |id: &str| -> String { detector_name(&self.pipeline, id, l) };
        for (title, rows, class) in [
            ("Verdicts", verdicts, "amber"),
            ("Top senders to outside", st.top_senders.clone(), ""),
            ("Top external domains", st.top_domains.clone(), "red"),
            (
                "Top detectors",
                st.top_detectors.iter().map(|(d, n)| (det(d), *n)).collect(),
                "green",
            ),
        ] {
            let _ = write!(
                o,
                r#"<div class="card"><h2>{}</h2>{}</div>"#,
                esc(t(l, title)),
                html::hbars(&rows, class, none)
            );
        }
        o.push_str("</div>");
        let _ = write!(
            o,
            r#"<div class="card"><h2>{}</h2>"#,
            esc(t(l, "Files sent outside repeatedly"))
        );
        if st.repeated_files.is_empty() {
            o.push_str(&html::muted(t(l, "None in this period.")));
        } else {
            o.push_str(&html::table_head(&[t(l, "File"), "SHA-256", t(l, "Times")]));
            for (sha, name, n) in &st.repeated_files {
                let _ = write!(
                    o,
                    r#"<tr><td>{}</td><td class="mono"><a href="/audit?sha256={sha}&amp;since={days}d">{short}…</a></td><td><b>{n}</b></td></tr>"#,
                    esc(name),
                    sha = esc(sha),
                    short = esc(sha.get(..16).unwrap_or(sha)),
                );
            }
            o.push_str("</table>");
        }
        o.push_str("</div>");
        Ok(Response::html(
            200,
            page(l, t(l, "Dashboard"), Some(&s), "dashboard", &o),
        ))
    }
}

// ---------------------------------------------------------------- pieces

/// Every local date from `days - 1` days ago to today.
fn period_days(now: i64, days: i64, offset_min: i32) -> Vec<String> {
    (0..days)
        .rev()
        .map(|back| {
            let s = timeutil::rfc3339(now - back * 86_400, offset_min);
            s.get(..10).unwrap_or(&s).to_string()
        })
        .collect()
}

fn log(event: &str, line: &str) {
    ping32dlp::service::log_event("ping32dlp-console", event, &[], line);
}

fn field<'a>(form: &'a [(String, String)], name: &str) -> Option<&'a str> {
    form.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// A redirect target we accept: a path on this console.
/// Where to go after signing in: a path on this site only. Control characters and whitespace
/// are removed first (browsers drop a tab in `/\t/evil.example` and go to `//evil.example`),
/// then the path must start with one `/` and hold no backslash.
fn safe_next(p: &str) -> Option<String> {
    let p: String = p
        .chars()
        .filter(|c| !c.is_control() && !c.is_whitespace())
        .collect();
    (p.starts_with('/') && !p.starts_with("//") && !p.contains('\\')).then_some(p)
}

/// Workflow refusals meant for the user (they name no secrets).
fn leak_free(why: &str) -> &'static str {
    if why.contains("used already") {
        "The sign-in link was used already; ask for a new one or sign in."
    } else if why.contains("expired") {
        "The sign-in link has expired with its request."
    } else {
        "The sign-in link is not valid."
    }
}

fn clip(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut o: String = s.chars().take(n).collect();
        o.push('…');
        o
    }
}

fn non_empty(s: &str, or: &str) -> String {
    if s.trim().is_empty() {
        or.to_string()
    } else {
        s.to_string()
    }
}

/// The state to show: a pending request past its expiry is shown as expired.
fn shown_state(a: &Approval, now: i64) -> &'static str {
    if a.state == ApprovalState::Pending && a.expires <= now {
        "expired"
    } else {
        a.state.as_str()
    }
}

fn event_label(kind: &str) -> &'static str {
    match kind {
        "created" => "held",
        "view" => "viewed the request",
        "view_attachment" => "viewed an attachment",
        "download" => "downloaded an attachment",
        "download_message" | "view_message" => "downloaded the message",
        "approve" => "approved",
        "reject" => "rejected",
        "expire" => "expired",
        "release" => "released",
        "discard" => "discarded",
        "notify" => "told the sender",
        "notify_approver" => "mailed the approver",
        "link_signin" => "signed in with the link",
        _ => "other",
    }
}

fn detector_name(p: &Pipeline, id: &str, l: Lang) -> String {
    match p.engine().detector(id) {
        Some(d) => match l {
            Lang::Ja if !d.name_ja.is_empty() => d.name_ja.clone(),
            _ if !d.name_en.is_empty() => d.name_en.clone(),
            _ => id.to_string(),
        },
        None => id.to_string(),
    }
}

/// `My Number ×3, Credit card ×1`.
fn detector_summary(r: &AuditRecord, p: &Pipeline, l: Lang) -> String {
    let mut v: Vec<String> = r
        .findings
        .iter()
        .filter(|f| f.location == "*")
        .map(|f| format!("{} ×{}", detector_name(p, &f.detector, l), f.count))
        .collect();
    if v.is_empty() {
        v = r
            .findings
            .iter()
            .map(|f| detector_name(p, &f.detector, l))
            .collect();
        v.dedup();
    }
    if !r.unscannable.is_empty() {
        v.push(format!("{} {}", t(l, "unscannable"), r.unscannable.len()));
    }
    clip(&v.join(", "), 90)
}

fn recipient_html(addr: &str, external: bool, l: Lang) -> String {
    if external {
        format!(
            r#"<span class="ext">{}</span><span class="tag-ext">{}</span>"#,
            esc(addr),
            esc(t(l, "external"))
        )
    } else {
        format!(r#"<span class="int">{}</span>"#, esc(addr))
    }
}

/// `Cc` / `Bcc` before a recipient so addressed (nothing for To and for old records).
fn role_html(x: &ping32dlp::workflow::Recipient) -> String {
    match x.role {
        Some(ping32dlp::policy::Role::Cc) => r#"<span class="small muted">Cc </span>"#.into(),
        Some(ping32dlp::policy::Role::Bcc) => r#"<span class="small muted">Bcc </span>"#.into(),
        _ => String::new(),
    }
}

fn recipients_html(a: &Approval, rec: Option<&AuditRecord>, l: Lang) -> String {
    match rec {
        Some(r) if !r.recipients.is_empty() => r
            .recipients
            .iter()
            .map(|x| role_html(x) + &recipient_html(&x.address, x.external, l))
            .collect::<Vec<_>>()
            .join("<br>"),
        _ => esc(&a.recipients.join(", ")),
    }
}

/// Why (matched rules), findings (masked samples), attachments (with view and download links
/// when a copy is kept and `links` names the request), and what could not be read.
fn record_details(
    r: &AuditRecord,
    p: &Pipeline,
    l: Lang,
    links: Option<(&str, &[(String, String)])>,
) -> String {
    let mut o = String::new();
    let _ = write!(
        o,
        r#"<div class="grid"><div class="card why"><h2>{}</h2>"#,
        esc(t(l, "Why it was stopped"))
    );
    let matched: Vec<_> = r.matched.iter().collect();
    if matched.is_empty() {
        o.push_str(&html::muted(t(l, "No rule matched.")));
    }
    for m in matched {
        let _ = write!(
            o,
            r#"<p><b>{}</b> {} <span class="small muted">{} · {}</span></p><ul>"#,
            esc(&m.rule),
            badge(l, &m.action),
            esc(t(l, &m.mode)),
            esc(t(l, &m.severity)),
        );
        for why in &m.reasons {
            let _ = write!(o, "<li>{}</li>", esc(why));
        }
        o.push_str("</ul>");
    }
    if r.password_candidates > 0 {
        let _ = write!(
            o,
            r#"<p class="small">{}: {}</p>"#,
            esc(t(l, "Password-like lines in the body")),
            r.password_candidates
        );
    }
    o.push_str("</div>");
    let _ = write!(
        o,
        r#"<div class="card"><h2>{}</h2>"#,
        esc(t(l, "What was found (masked)"))
    );
    let rows: Vec<_> = r.findings.iter().filter(|f| f.location != "*").collect();
    let rows = if rows.is_empty() {
        r.findings.iter().collect()
    } else {
        rows
    };
    if rows.is_empty() {
        o.push_str(&html::muted(t(l, "Nothing sensitive was found.")));
    } else {
        o.push_str(&html::table_head(&[
            t(l, "Detector"),
            t(l, "Where"),
            t(l, "Count"),
            t(l, "Examples"),
        ]));
        for f in rows {
            let _ = write!(
                o,
                r#"<tr><td>{}</td><td>{}</td><td>{} <span class="small muted">({} {})</span></td><td class="mono">{}</td></tr>"#,
                esc(&detector_name(p, &f.detector, l)),
                esc(if f.location == "*" {
                    t(l, "whole message")
                } else {
                    &f.location
                }),
                f.count,
                f.unique[0],
                esc(t(l, "distinct")),
                esc(&f.samples.join(", ")),
            );
        }
        o.push_str("</table>");
    }
    o.push_str("</div></div>");
    let _ = write!(
        o,
        r#"<div class="card"><h2>{}</h2>"#,
        esc(t(l, "Attachments"))
    );
    if r.attachments.is_empty() {
        o.push_str(&html::muted(t(l, "No attachments.")));
    } else {
        o.push_str(&html::table_head(&[
            t(l, "File"),
            t(l, "Type"),
            t(l, "Size"),
            "SHA-256",
            t(l, "Notes"),
            "",
        ]));
        for (i, f) in r.attachments.iter().enumerate() {
            let mut notes = Vec::new();
            if let Some(u) = &f.unscannable {
                notes.push(format!(
                    r#"<span class="badge b-bad">{} {}</span>"#,
                    esc(t(l, "unscannable:")),
                    esc(t(l, u))
                ));
            }
            if f.extension_mismatch {
                notes.push(format!(
                    r#"<span class="badge b-warn">{}</span>"#,
                    esc(t(l, "extension does not match the content"))
                ));
            }
            if let Some(origin) = &f.origin {
                notes.push(esc(origin));
            }
            let actions = match links {
                Some((id, kept)) if kept.iter().any(|(loc, _)| *loc == f.location) => format!(
                    r#"<a href="/requests/{id}/attachments/{i}">{}</a> · <a href="/requests/{id}/attachments/{i}/download">{}</a>"#,
                    esc(t(l, "View")),
                    esc(t(l, "Download")),
                    id = esc(id),
                ),
                _ => String::new(),
            };
            let indent = "　".repeat(f.depth.min(6) as usize);
            let _ = write!(
                o,
                r#"<tr><td>{indent}{}</td><td>{}</td><td>{}</td><td class="mono" title="{sha}">{short}…</td><td>{}</td><td>{actions}</td></tr>"#,
                esc(&f.name),
                esc(&f.kind),
                esc(&html::size(f.size)),
                notes.join(" "),
                sha = esc(&f.sha256),
                short = esc(f.sha256.get(..12).unwrap_or(&f.sha256)),
            );
        }
        o.push_str("</table>");
    }
    for (loc, why, detail) in &r.unscannable {
        let _ = write!(
            o,
            r#"<p class="small"><span class="badge b-bad">{} {}</span> {} <span class="muted">{}</span></p>"#,
            esc(t(l, "unscannable:")),
            esc(t(l, why)),
            esc(loc),
            esc(detail)
        );
    }
    o.push_str("</div>");
    o
}
