//! What the integrations (the milter, the SMTP proxy, the ICAP webmail hook, the web console)
//! share: reading their TOML configuration files with errors that name file, line, column and
//! field, opening the pipeline (rules, policy, organisation domains, state directory) they all
//! run, TLS server configurations, and the text of SMTP replies.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::de::DeserializeOwned;

use crate::pipeline::Pipeline;
use crate::policy::Policy;
use crate::workflow::{default_state_dir, Workflow, WorkflowConfig};

use crate::{Engine, ExtractOptions};

/// Reads a TOML file into `T`; errors read `file:line:column: message` (the message names the
/// field, e.g. "unknown field `listn`, expected one of ...").
pub fn load_toml<T: DeserializeOwned>(path: &Path) -> Result<T, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    from_toml_text(path, &text)
}

/// Makes relative paths relative to `base` (the directory of the file that named them).
pub fn resolve<'a>(base: &Path, paths: impl IntoIterator<Item = &'a mut PathBuf>) {
    for p in paths {
        if p.is_relative() {
            *p = base.join(&*p);
        }
    }
}

/// What every integration's configuration file shares: the `[dlp]` table (rules, policy,
/// organisation domains, the store and this gateway's name, retention). One struct, parsed the
/// same way for the milter, the proxy, the webmail hook and the console.
///
/// ```toml
/// [dlp]
/// policy = "policy.toml"                    # paths are relative to the file
/// rules = ["rules.toml"]
/// dictionaries = ["customers.txt"]
/// internal_domains = ["example.co.jp"]      # replace the policy's when given
/// state_dir = "/var/lib/ping32dlp"          # local state: spool, held mail, TLS files
/// store = "postgres://dlp@db.example.co.jp/dlp?sslmode=require"   # default: SQLite in state_dir
/// store_password_file = "/etc/ping32dlp/db.password"
/// gateway = "mx1"                           # default: the host name
/// audit_days = 1825
/// ```
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DlpSettings {
    /// Rules files added to the built-in detectors.
    pub rules: Vec<PathBuf>,
    /// Dictionary files.
    pub dictionaries: Vec<PathBuf>,
    /// Policy file; `None` is the embedded monitor-mode policy.
    pub policy: Option<PathBuf>,
    /// Organisation domains that replace the policy's, when not empty.
    pub internal_domains: Vec<String>,
    /// State directory; `None` is [`default_state_dir`].
    pub state_dir: Option<PathBuf>,
    /// The shared store (`postgres://user@host:port/db`); `None` is SQLite in `state_dir`.
    pub store: Option<String>,
    /// File with the store's password (else `$PING32DLP_STORE_PASSWORD` or `$PGPASSWORD`).
    pub store_password_file: Option<PathBuf>,
    /// CA certificates (PEM) to verify the store's TLS certificate with (default: system).
    pub store_ca_file: Option<PathBuf>,
    /// Connections to the store from this process (default 8).
    pub store_pool_size: Option<u32>,
    /// Seconds to wait for a store connection or statement (default 5 and 10).
    pub store_timeout_seconds: Option<u64>,
    /// This gateway's name in the audit trail and on the approvals it holds (default: host).
    pub gateway: Option<String>,
    /// Days audit records are kept (default 1825).
    pub audit_days: Option<u32>,
    /// Most days an evidence copy is kept, whatever a rule asks (default 365).
    pub evidence_days: Option<u32>,
    /// Days decided approvals are kept (default 1825).
    pub approval_days: Option<u32>,
}

/// The name this crate had before `[dlp]` (kept for code that builds one by hand).
pub type PipelineSettings = DlpSettings;

/// The keys that were at the top level of every integration's file before `[dlp]` existed.
pub const LEGACY_DLP_KEYS: &[&str] = &[
    "rules",
    "dictionaries",
    "policy",
    "internal_domains",
    "state_dir",
];

impl DlpSettings {
    /// Makes relative paths relative to `base` (the directory of the file that named them).
    pub fn resolve(&mut self, base: &Path) {
        resolve(
            base,
            self.rules
                .iter_mut()
                .chain(self.dictionaries.iter_mut())
                .chain(self.policy.iter_mut())
                .chain(self.state_dir.iter_mut())
                .chain(self.store_password_file.iter_mut())
                .chain(self.store_ca_file.iter_mut()),
        );
    }

    /// The store settings, if a store URL is given.
    pub fn store_config(&self) -> Option<crate::workflow::StoreConfig> {
        let url = self.store.as_ref().filter(|u| !u.is_empty())?;
        let mut c = crate::workflow::StoreConfig::new(url.clone());
        c.password_file = self.store_password_file.clone();
        c.ca_file = self.store_ca_file.clone();
        if let Some(n) = self.store_pool_size {
            c.pool_size = n;
        }
        if let Some(t) = self.store_timeout_seconds {
            c.connect_timeout_seconds = t;
            c.statement_timeout_seconds = t.max(c.statement_timeout_seconds);
        }
        Some(c)
    }

    /// The retention settings (defaults where not given).
    pub fn retention(&self) -> crate::workflow::Retention {
        let d = crate::workflow::Retention::default();
        crate::workflow::Retention {
            audit_days: self.audit_days.unwrap_or(d.audit_days),
            evidence_days: self.evidence_days.unwrap_or(d.evidence_days),
            approval_days: self.approval_days.unwrap_or(d.approval_days),
        }
    }

    /// On an endpoint agent (`store = "https://..."`), the policy from the fleet server that
    /// this agent runs (`fleet-policy.toml` in the state directory), when it has one: it
    /// replaces `policy`.
    pub fn fleet_policy_file(&self) -> Option<PathBuf> {
        let c = self.store_config()?;
        if !crate::workflow::agent::is_server_url(&c.url) {
            return None;
        }
        let f = self
            .state_dir
            .clone()
            .unwrap_or_else(default_state_dir)
            .join(crate::workflow::fleet::POLICY_FILE);
        f.exists().then_some(f)
    }

    /// Builds the engine from the rules and dictionaries, loads the policy and checks it against
    /// the engine (what a reload reads again). Errors name the file, and the line and column
    /// where the file has them.
    pub fn engine_and_policy(&self) -> Result<(Arc<Engine>, Policy), String> {
        let mut b = Engine::builder();
        for r in &self.rules {
            b = b.rules_file(r).map_err(|e| e.to_string())?;
        }
        for d in &self.dictionaries {
            b = b.dictionary_file(d);
        }
        let engine = Arc::new(b.build().map_err(|e| e.to_string())?);
        let mut policy = match (self.fleet_policy_file(), &self.policy) {
            (Some(f), _) => Policy::from_file(&f).map_err(|e| e.to_string())?,
            (None, Some(p)) => Policy::from_file(p).map_err(|e| e.to_string())?,
            (None, None) => Policy::default_monitor(),
        };
        policy.check_detectors(&engine)?;
        if !self.internal_domains.is_empty() {
            policy.internal_domains = self.internal_domains.clone();
        }
        Ok((engine, policy))
    }

    /// Builds the engine, loads and checks the policy against it, opens the workflow (alert
    /// sinks and approval commands from the policy, the store, gateway and retention from
    /// here, then `tweak` for what the integration does itself) and returns the pipeline.
    pub fn open(&self, tweak: impl FnOnce(&mut WorkflowConfig)) -> Result<Pipeline, String> {
        let (engine, policy) = self.engine_and_policy()?;
        let state = self.state_dir.clone().unwrap_or_else(default_state_dir);
        let mut w = WorkflowConfig::from_policy(&state, &policy);
        w.store = self.store_config();
        w.gateway = self.gateway.clone().filter(|g| !g.trim().is_empty());
        w.retention = self.retention();
        tweak(&mut w);
        let workflow = Arc::new(Workflow::open(w).map_err(|e| e.to_string())?);
        Ok(Pipeline::new(
            engine,
            policy,
            workflow,
            ExtractOptions::default(),
        ))
    }
}

/// Reads the rules, dictionaries and policy named by `dlp` again and puts them in `pipeline`
/// (calls in flight finish with the old ones). On an error nothing changes; the error names
/// the file and, for TOML, the line and column. Returns what now runs, for the log.
/// Only rules, dictionaries, the policy and `internal_domains` are read again: listeners, the
/// store, the state directory, and the alert sinks and approval commands a policy names when
/// the daemon starts need a restart.
pub fn reload(pipeline: &Pipeline, dlp: &DlpSettings) -> Result<String, String> {
    let (engine, policy) = dlp.engine_and_policy()?;
    let what = format!(
        "policy {} ({} rules), {} detectors",
        policy.name,
        policy.rules.len(),
        engine.detectors().len()
    );
    pipeline.reload(engine, policy);
    // A policy change is an admin action: the admin log says which file, with what content
    // (its SHA-256), took effect where. Not being able to write it does not undo the reload.
    let file = dlp
        .policy
        .as_ref()
        .map_or_else(|| "(built-in)".to_string(), |p| p.display().to_string());
    let digest = dlp
        .policy
        .as_ref()
        .and_then(|p| std::fs::read(p).ok())
        .map(|t| {
            use sha2::Digest;
            crate::workflow::hex(&sha2::Sha256::digest(&t))
        })
        .unwrap_or_default();
    let host = crate::workflow::host_name();
    if let Err(e) = pipeline.workflow().log_admin(
        "system",
        "policy_reload",
        &file,
        &format!("{what}; sha256 {digest}"),
        &host,
    ) {
        log_event(
            "ping32dlp",
            "admin_log_error",
            &[],
            &format!("policy reload not written to the admin log: {e}"),
        );
    }
    Ok(what)
}

/// On an endpoint agent (`store = "https://..."`), applies each policy the forwarder fetches
/// from the fleet server, without a restart: every 2 seconds, a new
/// `fleet-policy.new.toml` in the state directory is checked against the running engine
/// and swapped in (the organisation domains of `[dlp]` still win); it then becomes
/// `fleet-policy.toml`, which a restart or SIGHUP loads instead of `policy`. A policy that
/// does not fit the engine is refused (logged, kept as `fleet-policy.refused.toml`) and the
/// running one stays. Does nothing for other stores.
pub fn follow_fleet_policy(
    program: &'static str,
    dlp: &DlpSettings,
    pipeline: impl std::ops::Deref<Target = Pipeline> + Send + 'static,
) {
    use crate::workflow::fleet;
    let Some(c) = dlp.store_config() else { return };
    if !crate::workflow::agent::is_server_url(&c.url) {
        return;
    }
    let dir = dlp.state_dir.clone().unwrap_or_else(default_state_dir);
    let domains = dlp.internal_domains.clone();
    let _ = std::thread::Builder::new()
        .name("ping32dlp-fleet-policy".into())
        .spawn(move || loop {
            let new = dir.join(fleet::POLICY_NEW_FILE);
            if let Ok(text) = std::fs::read_to_string(&new) {
                let version = fleet::policy_file_version(&text).unwrap_or(0);
                let engine = pipeline.engine();
                match fleet::check_policy_text(&text, &new, &engine) {
                    Ok(mut p) => {
                        if !domains.is_empty() {
                            p.internal_domains = domains.clone();
                        }
                        let what = format!("policy {} ({} rules)", p.name, p.rules.len());
                        pipeline.set_policy(p);
                        let _ = std::fs::rename(&new, dir.join(fleet::POLICY_FILE));
                        if let Some(o) = pipeline.observer() {
                            o.reloaded(Ok(&what));
                        }
                        log_event(
                            program,
                            "fleet_policy_applied",
                            &[("version", &version)],
                            &what,
                        );
                    }
                    Err(e) => {
                        if let Some(o) = pipeline.observer() {
                            o.reloaded(Err(&e));
                        }
                        let _ = std::fs::rename(&new, dir.join("fleet-policy.refused.toml"));
                        log_event(
                            program,
                            "fleet_policy_refused",
                            &[("version", &version)],
                            &format!("{e}; the running policy stays"),
                        );
                    }
                }
            }
            std::thread::sleep(std::time::Duration::from_secs(2));
        });
}

/// Calls `reload` on every SIGHUP, in a thread of its own, and logs what it answers: a daemon
/// reloads its rules and policy without dropping a connection, and keeps the running ones when
/// the new files are wrong. (Without this, SIGHUP would end the process.)
#[cfg(unix)]
pub fn reload_on_sighup(
    program: &'static str,
    reload: impl Fn() -> Result<String, String> + Send + 'static,
) -> Result<(), String> {
    let mut signals = signal_hook::iterator::Signals::new([signal_hook::consts::SIGHUP])
        .map_err(|e| format!("SIGHUP handler: {e}"))?;
    std::thread::Builder::new()
        .name("sighup".into())
        .spawn(move || {
            for _ in signals.forever() {
                match reload() {
                    Ok(what) => log_event(
                        program,
                        "reload",
                        &[],
                        &format!("reloaded on SIGHUP: {what}"),
                    ),
                    Err(e) => log_event(
                        program,
                        "reload_failed",
                        &[],
                        &format!("reload on SIGHUP failed, the running rules and policy stay: {e}"),
                    ),
                }
            }
        })
        .map_err(|e| format!("SIGHUP thread: {e}"))?;
    Ok(())
}

/// The daemons' SIGHUP wiring: on each signal `load` reads `config` again (the embedded
/// defaults when the daemon runs without one) and its `[dlp]` settings go into `pipeline`
/// ([`reload`]); a handler that cannot be installed is logged, the daemon runs on.
#[cfg(unix)]
pub fn reload_config_on_sighup<C: Configured + Default + 'static>(
    program: &'static str,
    config: Option<PathBuf>,
    load: fn(&Path) -> Result<C, String>,
    pipeline: impl std::ops::Deref<Target = Pipeline> + Send + 'static,
) {
    let installed = reload_on_sighup(program, move || {
        let r = match &config {
            Some(p) => load(p),
            None => Ok(C::default()),
        }
        .and_then(|mut cfg| reload(&pipeline, cfg.dlp()));
        if let Some(o) = pipeline.observer() {
            o.reloaded(r.as_deref().map_err(|e| e.as_str()));
        }
        r
    });
    if let Err(e) = installed {
        log_event(program, "warning", &[], &e);
    }
}

/// What an integration answers when a mail or upload cannot be judged (the store is down or
/// too slow, a history question fails).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FailMode {
    /// Refuse for now (SMTP `451`): the client retries; nothing passes unjudged.
    Tempfail,
    /// Let it through unjudged, marked (`X-Ping32DLP-Verdict: error`).
    Accept,
    /// Refuse (the webmail hook's block page: "inspection unavailable, try again later").
    Block,
}

impl FailMode {
    /// `tempfail`, `accept`, `block`.
    pub fn as_str(self) -> &'static str {
        match self {
            FailMode::Tempfail => "tempfail",
            FailMode::Accept => "accept",
            FailMode::Block => "block",
        }
    }
}

/// An integration's configuration: it has a `[dlp]` table.
pub trait Configured: DeserializeOwned {
    /// Its `[dlp]` table.
    fn dlp(&mut self) -> &mut DlpSettings;
}

/// Reads an integration's configuration file: errors read `file:line:column: message`; the
/// `[dlp]` paths are made relative to the file. Keys of `[dlp]` still written at the top level
/// (the layout before `[dlp]`) are accepted: each gives a warning naming its line and the new
/// place (returned for the caller to log); one set in both places is an error.
pub fn load_config<T: Configured>(path: &Path) -> Result<(T, Vec<String>), String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let (cleaned, legacy) = take_top_level(&text, LEGACY_DLP_KEYS);
    let mut cfg: T = from_toml_text(path, &cleaned)?;
    let mut warnings = Vec::new();
    if !legacy.is_empty() {
        // The legacy values, from the original text with every other key ignored.
        #[derive(serde::Deserialize, Default)]
        #[serde(default)]
        struct Legacy {
            rules: Option<Vec<PathBuf>>,
            dictionaries: Option<Vec<PathBuf>>,
            policy: Option<PathBuf>,
            internal_domains: Option<Vec<String>>,
            state_dir: Option<PathBuf>,
        }
        let old: Legacy = from_toml_text(path, &text)?;
        let d = cfg.dlp();
        for (key, line) in &legacy {
            let both = match key.as_str() {
                "rules" => !std::mem::replace(&mut d.rules, old.rules.clone().unwrap_or_default())
                    .is_empty(),
                "dictionaries" => !std::mem::replace(
                    &mut d.dictionaries,
                    old.dictionaries.clone().unwrap_or_default(),
                )
                .is_empty(),
                "policy" => d
                    .policy
                    .replace(old.policy.clone().unwrap_or_default())
                    .is_some(),
                "internal_domains" => !std::mem::replace(
                    &mut d.internal_domains,
                    old.internal_domains.clone().unwrap_or_default(),
                )
                .is_empty(),
                "state_dir" => d
                    .state_dir
                    .replace(old.state_dir.clone().unwrap_or_default())
                    .is_some(),
                _ => false,
            };
            if both {
                return Err(format!(
                    "{}:{line}:1: `{key}` is set both at the top level and in [dlp]; keep the one in [dlp]",
                    path.display()
                ));
            }
            warnings.push(format!(
                "{}:{line}: `{key}` at the top level is deprecated: move it into the [dlp] table",
                path.display()
            ));
        }
    }
    cfg.dlp().resolve(path.parent().unwrap_or(Path::new(".")));
    Ok((cfg, warnings))
}

fn from_toml_text<T: DeserializeOwned>(path: &Path, text: &str) -> Result<T, String> {
    toml::from_str(text).map_err(|e| {
        let (line, col) = e
            .span()
            .map(|s| {
                let before = &text[..s.start.min(text.len())];
                (
                    before.matches('\n').count() + 1,
                    before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1,
                )
            })
            .unwrap_or((0, 0));
        format!("{}:{line}:{col}: {}", path.display(), e.message().trim())
    })
}

/// The text with the given top-level keys blanked out (every character but line ends replaced
/// by a space, so that positions of everything else stay what they were), and the keys found
/// with their lines.
fn take_top_level(text: &str, keys: &[&str]) -> (String, Vec<(String, usize)>) {
    let Ok(doc) = toml::de::DeTable::parse(text) else {
        return (text.to_string(), Vec::new());
    };
    let mut spans: Vec<(std::ops::Range<usize>, String)> = Vec::new();
    for (k, v) in doc.get_ref().iter() {
        let name = k.get_ref().as_ref();
        if keys.contains(&name) && !matches!(v.get_ref(), toml::de::DeValue::Table(_)) {
            spans.push((k.span().start..v.span().end, name.to_string()));
        }
    }
    if spans.is_empty() {
        return (text.to_string(), Vec::new());
    }
    let mut bytes = text.as_bytes().to_vec();
    let mut found = Vec::new();
    for (r, name) in spans {
        let line = text[..r.start].matches('\n').count() + 1;
        for b in &mut bytes[r.clone()] {
            if *b != b'\n' && *b != b'\r' {
                *b = b' ';
            }
        }
        found.push((name, line));
    }
    found.sort_by_key(|(_, l)| *l);
    // Blanking whole UTF-8 sequences keeps the text UTF-8.
    (
        String::from_utf8(bytes).unwrap_or_else(|_| text.to_string()),
        found,
    )
}

/// A TLS server configuration (rustls with the ring provider, TLS 1.2 and 1.3) from a PEM
/// certificate chain and a PEM private key; errors name the file.
pub fn tls_server_config(
    cert_pem: &Path,
    key_pem: &Path,
) -> Result<Arc<rustls::ServerConfig>, String> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_pem)
        .map_err(|e| format!("{}: {e}", cert_pem.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: {e}", cert_pem.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no certificate in it", cert_pem.display()));
    }
    let key =
        PrivateKeyDer::from_pem_file(key_pem).map_err(|e| format!("{}: {e}", key_pem.display()))?;
    let cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .map_err(|e| format!("{}: {e}", cert_pem.display()))?;
    Ok(Arc::new(cfg))
}

/// SMTP reply text from a policy message: printable ASCII only (replies are not UTF-8, so a
/// Japanese message disappears and the English one remains), at most 400 characters; `fallback`
/// when nothing is left.
pub fn smtp_text(s: &str, fallback: &str) -> String {
    let t: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                ' '
            }
        })
        .collect();
    let t = t.split_whitespace().collect::<Vec<_>>().join(" ");
    if t.is_empty() {
        fallback.to_string()
    } else {
        t.chars().take(400).collect()
    }
}

/// The command line every integration takes: `[--config FILE | --check-config FILE]`, `--help`,
/// `--version`. Returns the config file (if any) and whether only to check it; prints and exits
/// for help, version and mistakes (status 2).
pub fn command_line(program: &str, usage: &str) -> (Option<PathBuf>, bool) {
    let (config, check_only, _) = command_line_with(program, usage, &[]);
    (config, check_only)
}

/// [`command_line`] that also accepts the switches in `flags` (no value); returns those given.
pub fn command_line_with(
    program: &str,
    usage: &str,
    flags: &[&'static str],
) -> (Option<PathBuf>, bool, Vec<&'static str>) {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut config = None;
    let mut check_only = false;
    let mut given = Vec::new();
    let mut i = 0;
    while i < args.len() {
        if let Some(f) = flags.iter().find(|f| **f == args[i]) {
            given.push(*f);
            i += 1;
            continue;
        }
        match args[i].as_str() {
            "--config" | "-c" | "--check-config" => {
                check_only |= args[i] == "--check-config";
                let Some(p) = args.get(i + 1) else {
                    eprintln!("{}: needs a file\n{usage}", args[i]);
                    std::process::exit(2);
                };
                config = Some(PathBuf::from(p));
                i += 2;
            }
            "--help" | "-h" => {
                println!("{usage}");
                std::process::exit(0);
            }
            "--version" | "-V" => {
                println!("{program} {}", env!("CARGO_PKG_VERSION"));
                std::process::exit(0);
            }
            other => {
                eprintln!("unknown argument `{other}`\n{usage}");
                std::process::exit(2);
            }
        }
    }
    (config, check_only, given)
}

/// Starts the background work of a long-running process ([`Workflow::maintain`]: expiry, this
/// gateway's decisions, the daily purge) on a thread of its own, every `every`; what it does is
/// logged.
pub fn spawn_maintenance(program: &'static str, wf: Arc<Workflow>, every: std::time::Duration) {
    spawn_maintenance_observed(program, wf, every, None)
}

/// [`spawn_maintenance`], telling `observer` what each round did (the daemons' metrics).
pub fn spawn_maintenance_observed(
    program: &'static str,
    wf: Arc<Workflow>,
    every: std::time::Duration,
    observer: Option<Arc<dyn crate::pipeline::Observer>>,
) {
    let actor = format!("{}/{program}", crate::workflow::host_name());
    let _ = std::thread::Builder::new()
        .name("ping32dlp-maintenance".into())
        .spawn(move || loop {
            let m = wf.maintain(&actor);
            if let Some(o) = &observer {
                o.maintained(&m);
            }
            for a in &m.expired {
                log_event(
                    program,
                    "hold_expired",
                    &[("approval", &a.id), ("record", &a.record_id)],
                    "",
                );
            }
            for a in &m.carried_out {
                log_event(
                    program,
                    "hold_closed",
                    &[
                        ("approval", &a.id),
                        ("record", &a.record_id),
                        ("state", &a.state.as_str()),
                    ],
                    &format!("request {} {} here", a.id, a.state.as_str()),
                );
            }
            if let Some(p) = &m.purge {
                log_event(
                    program,
                    "purge",
                    &[
                        ("records", &p.records),
                        ("partitions", &p.partitions),
                        ("approvals", &p.approvals),
                        ("evidence", &p.evidence),
                    ],
                    "daily purge",
                );
            }
            for e in &m.errors {
                log_event(program, "background_error", &[], e);
            }
            std::thread::sleep(every);
        });
}

/// How the daemons write their log lines (`log_format` in each daemon's file): one line per
/// event on standard error (journald takes it from there), never a value found in mail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// `time=... program=... event=inspected channel=milter action=block record=42 ...`
    /// (logfmt: `key=value`, values with spaces, `"` or `=` in double quotes, `\"` and `\\`
    /// escaped). The default.
    #[default]
    Kv,
    /// One JSON object per line with the same keys.
    Json,
}

static LOG_FORMAT: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);

/// Sets the format of every later log line of this process.
pub fn set_log_format(f: LogFormat) {
    LOG_FORMAT.store(f as u8, std::sync::atomic::Ordering::Relaxed);
}

/// The format log lines are written in now.
pub fn log_format() -> LogFormat {
    match LOG_FORMAT.load(std::sync::atomic::Ordering::Relaxed) {
        1 => LogFormat::Json,
        _ => LogFormat::Kv,
    }
}

/// One log event on standard error: `event` is its id (README, "Logs": `inspected`,
/// `reload_failed`, ...), `fields` what a log pipeline filters on (ids, actions, counts;
/// callers never pass values found in mail), `msg` the sentence for a human (left out when
/// empty). Control and bidi characters are escaped, so that a user name or an error text
/// with a line break cannot write a second, forged line.
pub fn log_event(program: &str, event: &str, fields: &[(&str, &dyn std::fmt::Display)], msg: &str) {
    use std::io::Write as _;
    let line = event_line(log_format(), program, event, fields, msg);
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

/// A free-text log line: [`log_event`] with the event id `message`.
pub fn log(program: &str, line: &str) {
    log_event(program, "message", &[], line);
}

/// The text of one [`log`] line in the current format (without its line end).
pub fn log_line(program: &str, line: &str) -> String {
    event_line(log_format(), program, "message", &[], line)
}

/// The text of one [`log_event`] line (without its line end).
pub fn event_line(
    format: LogFormat,
    program: &str,
    event: &str,
    fields: &[(&str, &dyn std::fmt::Display)],
    msg: &str,
) -> String {
    let time = crate::timeutil::rfc3339(crate::timeutil::now(), 0);
    let mut pairs: Vec<(&str, String)> = Vec::with_capacity(fields.len() + 4);
    pairs.push(("time", time));
    pairs.push(("program", program.to_string()));
    pairs.push(("event", event.to_string()));
    for (k, v) in fields {
        pairs.push((k, v.to_string()));
    }
    if !msg.is_empty() {
        pairs.push(("msg", msg.to_string()));
    }
    let mut out = String::with_capacity(128);
    match format {
        LogFormat::Kv => {
            for (i, (k, v)) in pairs.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                out.push_str(k);
                out.push('=');
                let v = crate::text::escape_line(v);
                if v.is_empty() || v.contains([' ', '"', '=']) {
                    out.push('"');
                    out.push_str(&v.replace('"', "\\\""));
                    out.push('"');
                } else {
                    out.push_str(&v);
                }
            }
        }
        LogFormat::Json => {
            out.push('{');
            for (i, (k, v)) in pairs.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                let k = serde_json::to_string(k).unwrap_or_default();
                let v = serde_json::to_string(v).unwrap_or_default();
                out.push_str(&k);
                out.push(':');
                out.push_str(&crate::workflow::plain_json(&v));
            }
            out.push('}');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reload swaps rules and policy for the next message; a wrong file changes nothing and
    /// its error names the file, line and column.
    #[test]
    fn reload_swaps_rules_and_policy_and_keeps_them_on_errors() {
        use crate::policy::{Action, Context};
        let dir = tempfile::tempdir().unwrap();
        let policy_file = dir.path().join("policy.toml");
        let rules_file = dir.path().join("rules.toml");
        let monitor = "[policy]\nname = \"first\"\ninternal_domains = [\"example.co.jp\"]\n";
        std::fs::write(&policy_file, monitor).unwrap();
        std::fs::write(&rules_file, "").unwrap();
        let dlp = DlpSettings {
            policy: Some(policy_file.clone()),
            rules: vec![rules_file.clone()],
            state_dir: Some(dir.path().join("state")),
            ..DlpSettings::default()
        };
        let pipeline = dlp.open(|_| {}).unwrap();
        let mail = "From: a@example.co.jp\r\nTo: b@partner.example\r\nSubject: s\r\n\r\n\
                    プロジェクト コード PRJ-ORANGE-77\r\n";
        let ctx = Context {
            channel: "api".into(),
            ..Context::default()
        };
        let send = || {
            pipeline
                .process_message(mail.as_bytes(), &ctx, &[], false)
                .unwrap()
                .action()
        };
        assert_eq!(send(), Action::Allow);
        let old_engine = pipeline.engine();

        // A new detector and a policy that blocks it.
        std::fs::write(
            &rules_file,
            "[[detector]]\nid = \"project_code\"\nname_en = \"Project code\"\n\
             regex = \"PRJ-[A-Z]+-[0-9]+\"\n",
        )
        .unwrap();
        std::fs::write(
            &policy_file,
            format!(
                "{}\n[[rule]]\nid = \"no-projects\"\naction = \"block\"\n\
                 when = {{ all = [{{ recipients = \"any_external\" }}, {{ detector = [\"project_code\"] }}] }}\n",
                monitor.replace("first", "second")
            ),
        )
        .unwrap();
        let what = reload(&pipeline, &dlp).unwrap();
        assert!(what.starts_with("policy second (1 rules)"), "{what}");
        // The change is in the admin log, with the file and its content's SHA-256.
        let log = pipeline.workflow().store().admin_actions(None, 5).unwrap();
        assert_eq!(log[0].action, "policy_reload");
        assert_eq!(log[0].actor, "system");
        assert!(log[0].target.ends_with("policy.toml"));
        let want = {
            use sha2::Digest;
            crate::workflow::hex(&sha2::Sha256::digest(std::fs::read(&policy_file).unwrap()))
        };
        assert!(log[0].detail.ends_with(&want), "{}", log[0].detail);
        assert!(!Arc::ptr_eq(&old_engine, &pipeline.engine()));
        assert_eq!(send(), Action::Block);

        // A broken policy: positioned error, the running rules and policy stay.
        std::fs::write(
            &policy_file,
            "[policy]\nname = \"third\"\n\n[[rule]]\nid = \"x\"\naction = \"explode\"\n",
        )
        .unwrap();
        let e = reload(&pipeline, &dlp).unwrap_err();
        assert!(e.contains("policy.toml:6:"), "{e}");
        assert_eq!(pipeline.policy().name, "second");
        assert_eq!(send(), Action::Block);

        // A policy naming a detector the rules no longer define is refused too.
        std::fs::write(&rules_file, "").unwrap();
        std::fs::write(
            &policy_file,
            std::fs::read_to_string(&policy_file)
                .unwrap()
                .replace("explode", "block")
                .replace(
                    "id = \"x\"",
                    "id = \"x\"\nwhen = { detector = [\"project_code\"] }",
                ),
        )
        .unwrap();
        let e = reload(&pipeline, &dlp).unwrap_err();
        assert!(
            e.contains("policy.toml") && e.contains("project_code"),
            "{e}"
        );
        assert_eq!(pipeline.policy().name, "second");
        assert_eq!(send(), Action::Block);
    }

    #[test]
    fn replies_are_printable_ascii() {
        assert_eq!(
            smtp_text("カード番号 / Cards\r\nmay not\0go", "x"),
            "/ Cards may not go"
        );
        assert_eq!(smtp_text("社外秘", "blocked"), "blocked");
    }

    #[test]
    fn a_user_name_cannot_forge_a_log_line() {
        let l = event_line(
            LogFormat::Kv,
            "ping32dlp-console",
            "message",
            &[],
            "sign-in failed for user:x\n2026-01-01T00:00:00Z ping32dlp-console: admin signed in",
        );
        assert!(!l.contains('\n'), "{l}");
        assert!(
            l.ends_with(r#"user:x\n2026-01-01T00:00:00Z ping32dlp-console: admin signed in""#),
            "{l}"
        );
        let j = event_line(
            LogFormat::Json,
            "ping32dlp-console",
            "sign_in_failed",
            &[("user", &"x\n{\"event\":\"forged\"}\u{202e}")],
            "",
        );
        assert!(!j.contains('\n') && !j.contains('\u{202e}'), "{j}");
        let v: serde_json::Value = serde_json::from_str(&j).unwrap();
        assert_eq!(v["event"], "sign_in_failed");
        assert_eq!(v["user"], "x\n{\"event\":\"forged\"}\u{202e}");
    }

    #[test]
    fn log_events_in_both_formats() {
        let fields: &[(&str, &dyn std::fmt::Display)] = &[
            ("channel", &"milter"),
            ("action", &"block"),
            ("record", &42),
            ("user", &"山田 太郎"),
            ("error", &"a=\"b\" c\\d"),
        ];
        let kv = event_line(LogFormat::Kv, "ping32dlp-milter", "inspected", fields, "");
        let (time, rest) = kv.split_once(' ').unwrap();
        assert!(time.starts_with("time=20") && time.ends_with('Z'), "{kv}");
        assert_eq!(
            rest,
            r#"program=ping32dlp-milter event=inspected channel=milter action=block record=42 user="山田 太郎" error="a=\"b\" c\\d""#
        );
        let with_msg = event_line(LogFormat::Kv, "p", "reload", &[], "reloaded on SIGHUP: x");
        assert!(
            with_msg.ends_with(r#" event=reload msg="reloaded on SIGHUP: x""#),
            "{with_msg}"
        );
        let j = event_line(
            LogFormat::Json,
            "ping32dlp-milter",
            "inspected",
            fields,
            "done",
        );
        let v: serde_json::Value = serde_json::from_str(&j).unwrap();
        assert_eq!(v["program"], "ping32dlp-milter");
        assert_eq!(v["record"], "42");
        assert_eq!(v["user"], "山田 太郎");
        assert_eq!(v["error"], "a=\"b\" c\\d");
        assert_eq!(v["msg"], "done");
        assert!(j.starts_with(r#"{"time":"#), "{j}");
        set_log_format(LogFormat::Json);
        assert_eq!(log_format(), LogFormat::Json);
        set_log_format(LogFormat::Kv);
    }

    #[test]
    fn the_dlp_table_and_old_top_level_keys() {
        #[derive(serde::Deserialize, Debug, Default)]
        #[serde(deny_unknown_fields, default)]
        struct C {
            listen: String,
            dlp: DlpSettings,
        }
        impl Configured for C {
            fn dlp(&mut self) -> &mut DlpSettings {
                &mut self.dlp
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("x.toml");
        std::fs::write(
            &f,
            "listen = \"a\"\nrules = [\n  \"r.toml\",\n]\npolicy = \"p.toml\"\n\n[dlp]\nstore = \"postgres://dlp@db/dlp\"\ngateway = \"mx1\"\n",
        )
        .unwrap();
        let (c, warnings) = load_config::<C>(&f).unwrap();
        assert_eq!(c.listen, "a");
        assert_eq!(c.dlp.rules, vec![dir.path().join("r.toml")]);
        assert_eq!(c.dlp.policy, Some(dir.path().join("p.toml")));
        assert_eq!(c.dlp.gateway.as_deref(), Some("mx1"));
        assert_eq!(warnings.len(), 2);
        assert!(
            warnings[0].contains("x.toml:2:") && warnings[0].contains("[dlp]"),
            "{warnings:?}"
        );
        assert!(warnings[1].contains("x.toml:5:"), "{warnings:?}");
        // Errors keep their positions when old keys were taken out before them.
        std::fs::write(
            &f,
            "rules = [\"r\"]\nlisten = \"a\"\n[dlp]\ngatewy = \"x\"\n",
        )
        .unwrap();
        let e = load_config::<C>(&f).unwrap_err();
        assert!(e.contains("x.toml:4:1:") && e.contains("gatewy"), "{e}");
        // Both places: refused.
        std::fs::write(&f, "policy = \"a\"\n[dlp]\npolicy = \"b\"\n").unwrap();
        assert!(load_config::<C>(&f).unwrap_err().contains("both"));
    }

    #[test]
    fn toml_errors_name_file_line_and_column() {
        #[derive(serde::Deserialize, Debug)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct C {
            listen: String,
        }
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("x.toml");
        std::fs::write(&f, "listen = \"a\"\nlistn = 1\n").unwrap();
        let e = load_toml::<C>(&f).unwrap_err();
        assert!(e.contains("x.toml:2:1:") && e.contains("listn"), "{e}");
        assert!(load_toml::<C>(&dir.path().join("missing.toml")).is_err());
    }
}
