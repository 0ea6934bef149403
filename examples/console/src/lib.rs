//! `ping32dlp-console`: the web console for approvers and administrators, over the same state
//! directory (SQLite audit trail, approvals, kept copies) as the milter, the SMTP proxy, the
//! webmail hook and the CLI.
//!
//! ```text
//! ping32dlp-console                          # embedded defaults: http://127.0.0.1:8025,
//!                                            # default state directory, built-in policy
//! ping32dlp-console --config /etc/ping32dlp/console.toml
//! ping32dlp-console hash-password < pw.txt   # an Argon2id hash for an [[account]]
//! ```

//!
//! The binary is `src/main.rs`; this library is what it runs, what its tests start on loopback
//! ports and what the fuzz target calls.

#![forbid(unsafe_code)]

pub mod app;
pub mod auth;
pub mod downloads;
pub mod html;
pub mod http;
pub mod i18n;
#[cfg(test)]
mod tests;

use std::io::BufRead as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ping32dlp::service;
use serde::Deserialize;

use crate::app::{App, Settings};
use crate::auth::{Account, Role};
use crate::i18n::Lang;

const PROGRAM: &str = "ping32dlp-console";

const USAGE: &str = "usage: ping32dlp-console [--config FILE | --check-config FILE]
       ping32dlp-console hash-password      (reads the password from standard input)

Serves the approver and admin web console (default http://127.0.0.1:8025) over the state
directory that the milter, proxy, webmail hook and CLI write.";

/// The configuration file; paths are relative to it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address and port.
    pub listen: String,
    /// What every integration shares (`[dlp]`): rules (detectors for attachment views),
    /// policy (its release, discard and notify commands run on decisions of requests that no
    /// gateway carries out), organisation domains, state directory, the store, retention.
    pub dlp: service::DlpSettings,
    /// `ja` or `en`: when the browser asks for neither.
    pub language: String,
    /// Serve HTTPS with this PEM certificate chain (and `tls_key`); cookies are then `Secure`.
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// Mark cookies `Secure` without `tls_cert`: when a TLS reverse proxy is in front.
    pub secure_cookies: bool,
    /// Failed sign-ins per account before a pause (four times that per client address).
    pub login_attempts: u32,
    /// Minutes of that pause and of the counting window.
    pub login_pause_minutes: u64,
    /// Minutes without a request after which a session ends.
    pub session_idle_minutes: u64,
    /// Hours after which a session ends anyway.
    pub session_hours: u64,
    /// Open connections in all (slow clients are cut off by deadlines, so this can be large).
    pub max_connections: usize,
    /// Open connections from one client address.
    pub max_connections_per_client: usize,
    /// Seconds between expiry sweeps (expired requests are discarded and their senders told).
    pub expire_every_seconds: u64,
    /// Local accounts.
    #[serde(rename = "account")]
    pub accounts: Vec<Account>,
    /// `127.0.0.1:9704`: serve Prometheus metrics and `/healthz`, `/readyz` there (off when
    /// not given; loopback only unless `metrics_allow_remote`). The console's own `/healthz`
    /// stays on its main listener.
    pub metrics_listen: Option<String>,
    /// Allow `metrics_listen` on an address other than loopback.
    pub metrics_allow_remote: bool,
    /// `kv` (`key=value`, the default) or `json`: the format of the log lines on standard
    /// error (README, "Logs").
    pub log_format: service::LogFormat,
    /// Serve the agents' API (`/agent/v1/...`) for endpoint agents (README, "The endpoint
    /// fleet"). Needs `tls_cert` (agents send their credential), or a loopback `listen`, or
    /// `secure_cookies` (TLS ends at a reverse proxy in front).
    pub agent_api: bool,
    /// The company directory (LDAP / Active Directory), for `[sign_in] directory = true`.
    pub directory: ping32dlp_directory::DirectoryCfg,
    /// Sign-in with the company directory.
    pub sign_in: SignIn,
    /// `0.0.0.0:8443`: serve the download links of `action = "link"` there, and nothing else
    /// (a listener of its own, meant for a DMZ; off when not given). Needs
    /// `download_tls_cert` / `download_tls_key`, a loopback address, or
    /// `download_behind_tls_proxy = true`.
    pub download_listen: Option<String>,
    /// The PEM certificate chain of the download listener.
    pub download_tls_cert: Option<PathBuf>,
    /// Its private key.
    pub download_tls_key: Option<PathBuf>,
    /// TLS for the download listener ends at a reverse proxy in front of it.
    pub download_behind_tls_proxy: bool,
}

/// `[sign_in]`: who may sign in with their directory password, and as what.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SignIn {
    /// Names that are no `[[account]]` sign in with the directory (`[directory]`): the name is
    /// the person's mail address, the password is checked by binding as their entry.
    pub directory: bool,
    /// Directory groups whose members sign in as admins.
    pub admin_groups: Vec<String>,
    /// Directory groups whose members sign in as approvers; empty: every person found in the
    /// directory (who is not an admin) may sign in as an approver.
    pub approver_groups: Vec<String>,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            listen: "127.0.0.1:8025".into(),
            dlp: service::DlpSettings::default(),
            language: "ja".into(),
            tls_cert: None,
            tls_key: None,
            secure_cookies: false,
            login_attempts: 5,
            login_pause_minutes: 15,
            session_idle_minutes: 30,
            session_hours: 12,
            max_connections: 1024,
            max_connections_per_client: 256,
            expire_every_seconds: 30,
            accounts: Vec::new(),
            metrics_listen: None,
            metrics_allow_remote: false,
            log_format: service::LogFormat::Kv,
            agent_api: false,
            directory: ping32dlp_directory::DirectoryCfg::default(),
            sign_in: SignIn::default(),
            download_listen: None,
            download_tls_cert: None,
            download_tls_key: None,
            download_behind_tls_proxy: false,
        }
    }
}

impl Config {
    fn load(path: &Path) -> Result<Config, String> {
        let (mut c, warnings): (Config, _) = service::load_config(path)?;
        for w in warnings {
            service::log_event(PROGRAM, "config_warning", &[], &format!("warning: {w}"));
        }
        let base = path.parent().unwrap_or(Path::new("."));
        service::resolve(
            base,
            c.tls_cert
                .iter_mut()
                .chain(c.tls_key.iter_mut())
                .chain(c.download_tls_cert.iter_mut())
                .chain(c.download_tls_key.iter_mut()),
        );
        c.directory.resolve(base);
        c.check().map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(c)
    }

    /// The metrics listener's settings.
    pub fn metrics(&self) -> ping32dlp_ops::Settings {
        ping32dlp_ops::Settings {
            listen: self.metrics_listen.clone(),
            allow_remote: self.metrics_allow_remote,
        }
    }

    fn check(&self) -> Result<(), String> {
        if !self.directory.url.is_empty() {
            self.directory.check()?;
        }
        if self.sign_in.directory && self.directory.url.is_empty() {
            return Err(
                "sign_in.directory: needs the company directory ([directory] url = ...)".into(),
            );
        }
        if self.sign_in.directory && self.directory.cleartext() {
            return Err(format!(
                "sign_in.directory: employees' passwords would cross the network in the clear to {}; use ldaps:// or starttls = true",
                self.directory.url
            ));
        }
        let groups =
            !self.sign_in.admin_groups.is_empty() || !self.sign_in.approver_groups.is_empty();
        if groups && !self.sign_in.directory {
            return Err(
                "sign_in.admin_groups / approver_groups: set sign_in.directory = true as well"
                    .into(),
            );
        }
        if Lang::parse(&self.language).is_none() {
            return Err(format!("language `{}`: use ja or en", self.language));
        }
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            return Err("tls_cert and tls_key go together".into());
        }
        if self.download_tls_cert.is_some() != self.download_tls_key.is_some() {
            return Err("download_tls_cert and download_tls_key go together".into());
        }
        if let Some(d) = &self.download_listen {
            let addr = d.parse::<std::net::SocketAddr>().map_err(|_| {
                format!("download_listen `{d}`: use an address and port, such as `0.0.0.0:8443`")
            })?;
            if Some(addr.to_string())
                == self
                    .listen
                    .parse::<std::net::SocketAddr>()
                    .ok()
                    .map(|a| a.to_string())
            {
                return Err(format!("download_listen `{d}`: the downloads need a listener of their own, not the console's"));
            }
            if self.download_tls_cert.is_none()
                && !self.download_behind_tls_proxy
                && !addr.ip().is_loopback()
            {
                return Err(format!(
                    "download_listen `{d}`: links and passwords would cross the network in the clear; set download_tls_cert and download_tls_key, or download_behind_tls_proxy = true when a TLS proxy is in front"
                ));
            }
        } else if self.download_tls_cert.is_some() {
            return Err("download_tls_cert: set download_listen as well".into());
        }
        self.metrics().address()?;
        if self.agent_api && self.tls_cert.is_none() && !self.secure_cookies {
            let loopback = self
                .listen
                .parse::<std::net::SocketAddr>()
                .is_ok_and(|a| a.ip().is_loopback());
            if !loopback {
                return Err(format!(
                    "agent_api: agents send their credential with every call; serve it over TLS (tls_cert, tls_key), behind a TLS proxy (secure_cookies = true) or on loopback only (listen is `{}`)",
                    self.listen
                ));
            }
        }
        if self.max_connections == 0
            || self.max_connections_per_client == 0
            || self.session_idle_minutes == 0
            || self.session_hours == 0
        {
            return Err(
                "max_connections, max_connections_per_client, session_idle_minutes and session_hours must be above 0".into(),
            );
        }
        let mut seen = std::collections::HashSet::new();
        for (i, a) in self.accounts.iter().enumerate() {
            if a.name.trim().is_empty() {
                return Err(format!("account[{i}].name is empty"));
            }
            if !seen.insert(a.name.to_lowercase()) {
                return Err(format!("account[{i}].name `{}` is listed twice", a.name));
            }
            auth::check_hash(&a.password_hash)
                .map_err(|e| format!("account[{i}].password_hash (`{}`): {e}", a.name))?;
        }
        Ok(())
    }

    fn settings(&self) -> Settings {
        Settings {
            default_lang: Lang::parse(&self.language).unwrap_or(Lang::Ja),
            secure_cookies: self.secure_cookies || self.tls_cert.is_some(),
            login_attempts: self.login_attempts.max(1),
            login_window: Duration::from_secs(self.login_pause_minutes.max(1) * 60),
            session_idle: Duration::from_secs(self.session_idle_minutes * 60),
            session_max: Duration::from_secs(self.session_hours * 3600),
            agent_api: self.agent_api,
            public_url: format!(
                "{}://{}",
                if self.tls_cert.is_some() || self.secure_cookies {
                    "https"
                } else {
                    "http"
                },
                self.listen
            ),
        }
    }
}

impl service::Configured for Config {
    fn dlp(&mut self) -> &mut service::DlpSettings {
        &mut self.dlp
    }
}

/// Without configured accounts, an `admin` account whose password is made on first start and
/// written to `console-admin.password` (mode 0600) in the state directory; the log says where,
/// never what. The Argon2 hash is kept beside it.
fn initial_admin(state_dir: &Path) -> Result<Account, String> {
    let file = state_dir.join("console-admin.hash");
    if let Ok(h) = std::fs::read_to_string(&file) {
        let h = h.trim().to_string();
        auth::check_hash(&h).map_err(|e| format!("{}: {e}", file.display()))?;
        return Ok(Account {
            name: "admin".into(),
            password_hash: h,
            role: Role::Admin,
            groups: Vec::new(),
            departments: Vec::new(),
        });
    }
    let mut raw = [0u8; 12];
    getrandom::fill(&mut raw).map_err(|e| e.to_string())?;
    let password: String = raw
        .iter()
        .map(|b| b"abcdefghjkmnpqrstuvwxyz23456789"[*b as usize % 31] as char)
        .collect();
    let hash = auth::hash_password(&password)?;
    ping32dlp::workflow::private::create_dir(state_dir).map_err(|e| e.to_string())?;
    let pw_file = state_dir.join("console-admin.password");
    let write = |path: &Path, text: &str| -> Result<(), String> {
        use std::io::Write as _;
        let mut f = ping32dlp::workflow::private::file_options()
            .create_new(true)
            .open(path)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        writeln!(f, "{text}").map_err(|e| format!("{}: {e}", path.display()))
    };
    let _ = std::fs::remove_file(&pw_file);
    write(&pw_file, &password)?;
    write(&file, &hash)?;
    service::log_event(
        PROGRAM, "initial_admin", &[],
        &format!(
            "no [[account]] configured: sign in as `admin` with the password in {} (mode 0600; \
             delete the file once you have it, and configure accounts with `ping32dlp-console hash-password`)",
            pw_file.display()
        ),
    );
    Ok(Account {
        name: "admin".into(),
        password_hash: hash,
        role: Role::Admin,
        groups: Vec::new(),
        departments: Vec::new(),
    })
}

fn hash_password_cmd() -> i32 {
    let mut line = String::new();
    if std::io::stdin().lock().read_line(&mut line).is_err() {
        eprintln!("could not read the password from standard input");
        return 2;
    }
    let pw = line.trim_end_matches(['\r', '\n']);
    if pw.chars().count() < 8 {
        eprintln!("the password is shorter than 8 characters");
        return 2;
    }
    match auth::hash_password(pw) {
        Ok(h) => {
            println!("{h}");
            0
        }
        Err(e) => {
            eprintln!("{e}");
            1
        }
    }
}

/// The program: `hash-password`, or parse the command line and the configuration, open the
/// pipeline, and serve.
pub fn main() {
    if std::env::args().nth(1).as_deref() == Some("hash-password") {
        std::process::exit(hash_password_cmd());
    }
    let (config, check_only) = service::command_line(PROGRAM, USAGE);
    let cfg = match &config {
        Some(p) => Config::load(p),
        None => Ok(Config::default()),
    }
    .unwrap_or_else(|e| {
        eprintln!("{PROGRAM}: {e}");
        std::process::exit(2);
    });
    service::set_log_format(cfg.log_format);
    let pipeline = cfg.dlp.open(|_| {}).unwrap_or_else(|e| {
        eprintln!("{PROGRAM}: {e}");
        std::process::exit(2);
    });
    let tls = match (&cfg.tls_cert, &cfg.tls_key) {
        (Some(c), Some(k)) => Some(service::tls_server_config(c, k).unwrap_or_else(|e| {
            eprintln!("{PROGRAM}: {e}");
            std::process::exit(2);
        })),
        _ => None,
    };
    if check_only {
        println!("{}: ok", config.unwrap_or_default().display());
        return;
    }
    let mut accounts = cfg.accounts.clone();
    if accounts.is_empty() {
        match initial_admin(&pipeline.workflow().config().state_dir) {
            Ok(a) => accounts.push(a),
            Err(e) => {
                eprintln!("{PROGRAM}: {e}");
                std::process::exit(2);
            }
        }
    }
    let listener = TcpListener::bind(&cfg.listen).unwrap_or_else(|e| {
        eprintln!("{PROGRAM}: listen {}: {e}", cfg.listen);
        std::process::exit(2);
    });
    let mut app = App::new(pipeline, accounts, cfg.settings());
    if cfg.sign_in.directory {
        match ping32dlp_directory::Directory::new(&cfg.directory) {
            Ok(Some(dir)) => app = app.with_directory_sign_in(Arc::new(dir), cfg.sign_in.clone()),
            Ok(None) => {
                eprintln!("{PROGRAM}: sign_in.directory: needs [directory] url");
                std::process::exit(2);
            }
            Err(e) => {
                eprintln!("{PROGRAM}: {e}");
                std::process::exit(2);
            }
        }
    }
    let app = Arc::new(app);
    // Expiry (one process of all on the store does it at a time) and the daily purge.
    service::spawn_maintenance_observed(
        PROGRAM,
        app.pipeline().workflow().clone(),
        Duration::from_secs(cfg.expire_every_seconds.max(5)),
        Some(app.metrics().clone()),
    );
    // SIGHUP: rules, dictionaries and policy read again (accounts and listeners need a restart).
    let reload_app = app.clone();
    let reload_from = config.clone();
    if let Err(e) = service::reload_on_sighup(PROGRAM, move || {
        let r = match &reload_from {
            Some(p) => Config::load(p),
            None => Ok(Config::default()),
        }
        .and_then(|cfg| service::reload(reload_app.pipeline(), &cfg.dlp));
        ping32dlp::pipeline::Observer::reloaded(
            reload_app.metrics().as_ref(),
            r.as_deref().map_err(|e| e.as_str()),
        );
        r
    }) {
        service::log_event(PROGRAM, "warning", &[], &format!("warning: {e}"));
    }
    service::log_event(
        PROGRAM,
        "listening",
        &[],
        &format!(
            "listening on {}://{} (state {})",
            if tls.is_some() { "https" } else { "http" },
            listener
                .local_addr()
                .map(|a| a.to_string())
                .unwrap_or_default(),
            app.pipeline().workflow().config().state_dir.display()
        ),
    );
    if let Some(addr) = &cfg.download_listen {
        let tls = match (&cfg.download_tls_cert, &cfg.download_tls_key) {
            (Some(c), Some(k)) => Some(service::tls_server_config(c, k).unwrap_or_else(|e| {
                eprintln!("{PROGRAM}: {e}");
                std::process::exit(2);
            })),
            _ => None,
        };
        let l = TcpListener::bind(addr).unwrap_or_else(|e| {
            eprintln!("{PROGRAM}: download_listen {addr}: {e}");
            std::process::exit(2);
        });
        service::log_event(
            PROGRAM,
            "listening",
            &[("listener", &"downloads")],
            &format!(
                "download links served on {}://{}",
                if tls.is_some() { "https" } else { "http" },
                l.local_addr().map(|a| a.to_string()).unwrap_or_default()
            ),
        );
        let dl = Arc::new(downloads::Downloads::new(app.pipeline().workflow().clone()));
        let limits = http::Limits {
            max_connections: cfg.max_connections,
            max_per_client: cfg.max_connections_per_client,
            ..http::Limits::default()
        };
        if let Err(e) = std::thread::Builder::new()
            .name("downloads".into())
            .spawn(move || http::serve(l, limits, tls, Arc::new(move |req| dl.handle(req)), None))
        {
            eprintln!("{PROGRAM}: cannot start the download listener: {e}");
            std::process::exit(2);
        }
    }
    let probe_app = app.clone();
    let probe = ping32dlp_ops::pipeline_probe(
        ProbeTarget(probe_app),
        true, // the console sees every gateway's holds
    );
    ping32dlp_ops::start_or_exit(PROGRAM, &cfg.metrics(), app.metrics(), probe);
    let handler = app.clone();
    http::serve(
        listener,
        http::Limits {
            max_connections: cfg.max_connections,
            max_per_client: cfg.max_connections_per_client,
            ..http::Limits::default()
        },
        tls,
        Arc::new(move |req| handler.handle(req)),
        Some(app.metrics().clone()),
    );
}

/// The console's pipeline, for the readiness probe.
struct ProbeTarget(Arc<App>);

impl std::ops::Deref for ProbeTarget {
    type Target = ping32dlp::pipeline::Pipeline;
    fn deref(&self) -> &ping32dlp::pipeline::Pipeline {
        self.0.pipeline()
    }
}

/// The enrolled agent of [`fuzz_request`]'s console: its name and secret (the seeds in
/// `scripts/fuzz-seeds.py` send `Authorization: Bearer fuzz-pc:<secret>`).
#[doc(hidden)]
pub const FUZZ_AGENT: (&str, &str) = (
    "fuzz-pc",
    "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
);
/// An enrolment token of [`fuzz_request`]'s console, unused at the start (the first request
/// that enrols with it uses it up, as a real token).
#[doc(hidden)]
pub const FUZZ_ENROL_TOKEN: &str = "fuzz-enrol-token-0123456789abcdef0123456789abcdef";

/// Fuzzing entry: any bytes as one HTTP request (parsed by httparse, as hyper does) to a
/// console over a scratch state directory with one admin, the agents' API on and one agent
/// enrolled ([`FUZZ_AGENT`], so the calls past the credential check are reached), and to the
/// download listener over the same store. Returns the two statuses (`None` when the bytes are
/// no complete request). Not part of the API.
#[doc(hidden)]
pub fn fuzz_request(data: &[u8]) -> Option<(u16, u16)> {
    use ping32dlp::workflow::fleet;
    use std::sync::OnceLock;
    static APP: OnceLock<(App, tempfile::TempDir)> = OnceLock::new();
    let (app, _) = APP.get_or_init(|| {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let pipeline = service::DlpSettings {
            state_dir: Some(dir.path().join("state")),
            ..service::DlpSettings::default()
        }
        .open(|_| {})
        .expect("a pipeline");
        let admin = Account {
            name: "admin".into(),
            // A fixed hash: Argon2 per run would be slow.
            password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$6wM0iqW1c7wCa6tFKUo6xQfWxxdbgtkR+p/kp8W3XTo".into(),
            role: Role::Admin,
            groups: Vec::new(),
            departments: Vec::new(),
        };
        let mut settings = Config::default().settings();
        settings.agent_api = true;
        let app = App::new(pipeline, vec![admin], settings);
        let store = app.pipeline().workflow().store();
        let now = ping32dlp::timeutil::now();
        let token = |t: &str| fleet::EnrolToken {
            sha256: fleet::secret_digest(t),
            label: "fuzz".into(),
            created: now,
            expires: now + 3650 * 86_400,
            created_by: "admin".into(),
            used: None,
            agent: None,
        };
        let first = "fuzz-first-enrolment";
        store.enrol_token_add(&token(first)).expect("a token");
        store.enrol_token_add(&token(FUZZ_ENROL_TOKEN)).expect("a token");
        let agent = fleet::Agent {
            name: FUZZ_AGENT.0.into(),
            secret_sha256: fleet::secret_digest(FUZZ_AGENT.1),
            created: now,
            label: "fuzz".into(),
            last_seen: None,
            last_seq: 0,
            revoked: None,
            status: fleet::AgentStatus::default(),
        };
        let enrolled = store
            .enrol(&fleet::secret_digest(first), now, &agent)
            .expect("an enrolment");
        assert_eq!(enrolled, fleet::Enrolment::Enrolled);
        (app, dir)
    });
    let mut hs = [httparse::EMPTY_HEADER; 64];
    let mut req = httparse::Request::new(&mut hs);
    let Ok(httparse::Status::Complete(n)) = req.parse(data) else {
        return None;
    };
    let (Some(method), Some(target)) = (req.method, req.path) else {
        return None;
    };
    if !target.starts_with('/') {
        return None;
    }
    let (path, query) = http::split_target(target);
    let r = http::Request {
        method: method.to_string(),
        path,
        query,
        headers: req
            .headers
            .iter()
            .map(|h| {
                (
                    h.name.to_ascii_lowercase(),
                    String::from_utf8_lossy(h.value).trim().to_string(),
                )
            })
            .collect(),
        body: data[n..].to_vec(),
        peer: std::net::IpAddr::from([127, 0, 0, 1]),
    };
    let resp = app.handle(&r);
    assert!((100..600).contains(&resp.status));
    // The download listener (its own router) takes the same request.
    static DOWNLOADS: OnceLock<downloads::Downloads> = OnceLock::new();
    let d = DOWNLOADS.get_or_init(|| downloads::Downloads::new(app.pipeline().workflow().clone()));
    let download = d.handle(&r);
    assert!((100..600).contains(&download.status));
    Some((resp.status, download.status))
}
