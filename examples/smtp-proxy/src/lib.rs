//! `ping32dlp-proxy`: the endpoint SMTP submission proxy. The desktop mail client submits to it
//! instead of the server; every mail is inspected, recorded and judged before it is relayed to
//! the upstream server byte for byte (DKIM and S/MIME survive; a message with bare CR or LF
//! line ends is normalised to CRLF, or refused with `bare_newline = "reject"`).
//!
//! Commands are parsed by `smtp-proto` and what goes upstream is written from the parsed value
//! (`command.rs`). A listener on a non-loopback address requires TLS and authentication
//! (`require_tls`, `require_auth`), and AUTH is never offered in the clear there.
//!
//! The binary is `src/main.rs`; this library is what it runs, what the tests start on loopback
//! ports and what the fuzz targets call.
//!
//! ```text
//! ping32dlp-proxy                       # embedded defaults: 127.0.0.1:10587 (plain + STARTTLS)
//!                                       # and 127.0.0.1:10465 (implicit TLS), upstream
//!                                       # 127.0.0.1:25, built-in rules, monitor-mode policy
//! ping32dlp-proxy --config /etc/ping32dlp/proxy.toml
//! ping32dlp-proxy --check-config FILE
//! ```

#![forbid(unsafe_code)]

pub mod command;
pub mod smtp;
pub mod tls;
pub mod transparent;

use std::io::Write as _;
use std::net::{TcpListener, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ping32dlp::pipeline::Pipeline;
use ping32dlp::service;
use ping32dlp::workflow::ApprovalState;
use ping32dlp_ops::Metrics;
use serde::Deserialize;

/// How to reach the upstream server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UpstreamTls {
    /// Plain SMTP (only for a server on the same host or a trusted network).
    None,
    /// STARTTLS, required (no silent downgrade).
    Starttls,
    /// TLS from the first byte (port 465).
    Implicit,
}

/// The upstream server.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Upstream {
    /// Host name or address.
    pub host: String,
    /// Port.
    pub port: u16,
    /// `none`, `starttls` or `implicit`.
    pub tls: UpstreamTls,
    /// CA certificates (PEM) to verify the server with; default: the system trust store.
    pub ca_file: Option<PathBuf>,
    /// Name to verify the certificate against (and send as SNI); default: `host`.
    pub server_name: Option<String>,
    /// Account the release worker authenticates with when it sends approved mail (the user's
    /// own credentials are never stored). Without it the upstream must accept relay from here.
    pub release_user: Option<String>,
    /// Its password.
    pub release_password: Option<String>,
    /// Seconds to wait for the upstream.
    pub timeout_seconds: u64,
}

impl Default for Upstream {
    fn default() -> Upstream {
        Upstream {
            host: "127.0.0.1".into(),
            port: 25,
            tls: UpstreamTls::None,
            ca_file: None,
            server_name: None,
            release_user: None,
            release_password: None,
            timeout_seconds: 120,
        }
    }
}

/// The configuration file. Every field has a default; paths are relative to the file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Plain SMTP with STARTTLS.
    pub listen: String,
    /// Implicit TLS ("" turns it off).
    pub listen_tls: String,
    /// Name in the greeting and the server certificate.
    pub hostname: String,
    /// Host or terminal name recorded as the audit `host` (default: this machine's name).
    pub host_name: Option<String>,
    /// What every integration shares (`[dlp]`): rules, policy, organisation domains, state
    /// directory (audit database, held mail, TLS files in `tls/`), the store, this gateway's
    /// name, retention.
    pub dlp: service::DlpSettings,
    /// When a mail cannot be judged (the store is down or too slow): `tempfail` (451, the
    /// client retries; the default) or `accept` (relayed with `X-Ping32DLP-Verdict: error`).
    pub fail_mode: service::FailMode,
    /// Largest message accepted (advertised as SIZE).
    pub max_message_bytes: u64,
    /// Concurrent client connections.
    pub max_connections: usize,
    /// Seconds without a command before a client is dropped.
    pub read_timeout_seconds: u64,
    /// Seconds between passes of the release worker (approved mail, notices, expiry).
    pub release_interval_seconds: u64,
    /// Require STARTTLS before AUTH, MAIL, RCPT and DATA on the plain port. Default: on for a
    /// non-loopback listener, off on loopback (an endpoint proxy for this machine's user).
    pub require_tls: Option<bool>,
    /// Require a successful AUTH before MAIL (the proxy relays only for authenticated users).
    /// Default: on for a non-loopback listener, off on loopback.
    pub require_auth: Option<bool>,
    /// Bare CR or LF inside a message: `normalize` (to CRLF, the default) or `reject`.
    pub bare_newline: smtp::BareNewline,
    /// Recipients per message.
    pub max_recipients: usize,
    /// Server certificate (PEM, chain) and key; default: made in `state_dir/tls` on first run.
    pub cert_file: Option<PathBuf>,
    /// Key of `cert_file`.
    pub key_file: Option<PathBuf>,
    /// The upstream server.
    pub upstream: Upstream,
    /// Transparent mode (Linux): outbound SMTP redirected here by nftables and relayed to
    /// each connection's original destination (README, "Transparent mode").
    pub transparent: transparent::TransparentCfg,
    /// `127.0.0.1:9702`: serve Prometheus metrics and `/healthz`, `/readyz` there (off when
    /// not given; loopback only unless `metrics_allow_remote`).
    pub metrics_listen: Option<String>,
    /// Allow `metrics_listen` on an address other than loopback.
    pub metrics_allow_remote: bool,
    /// `kv` (`key=value`, the default) or `json`: the format of the log lines on standard
    /// error (README, "Logs").
    pub log_format: service::LogFormat,
    /// The company directory (LDAP / Active Directory): the sender's groups, department and
    /// manager for the policy (README, "The company directory"). Off unless `url` is set.
    pub directory: ping32dlp_directory::DirectoryCfg,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            listen: "127.0.0.1:10587".into(),
            listen_tls: "127.0.0.1:10465".into(),
            hostname: "localhost".into(),
            host_name: None,
            dlp: service::DlpSettings::default(),
            fail_mode: service::FailMode::Tempfail,
            max_message_bytes: 100 << 20,
            max_connections: 256,
            read_timeout_seconds: 300,
            release_interval_seconds: 2,
            require_tls: None,
            require_auth: None,
            bare_newline: smtp::BareNewline::Normalize,
            max_recipients: 1000,
            cert_file: None,
            key_file: None,
            upstream: Upstream::default(),
            transparent: transparent::TransparentCfg::default(),
            metrics_listen: None,
            metrics_allow_remote: false,
            log_format: service::LogFormat::Kv,
            directory: ping32dlp_directory::DirectoryCfg::default(),
        }
    }
}

impl Config {
    /// Reads a config file; errors name the file, line, column and field.
    pub fn load(path: &Path) -> Result<Config, String> {
        let (mut c, warnings): (Config, _) = service::load_config(path)?;
        for w in warnings {
            service::log_event(
                "ping32dlp-proxy",
                "config_warning",
                &[],
                &format!("warning: {w}"),
            );
        }
        let base = path.parent().unwrap_or(Path::new("."));
        service::resolve(
            base,
            c.cert_file
                .iter_mut()
                .chain(c.key_file.iter_mut())
                .chain(c.upstream.ca_file.iter_mut())
                .chain(c.transparent.ca_file.iter_mut())
                .chain(c.transparent.ca_cert.iter_mut())
                .chain(c.transparent.ca_key.iter_mut()),
        );
        c.directory.resolve(base);
        c.directory
            .check()
            .map_err(|e| format!("{}: {e}", path.display()))?;
        if c.cert_file.is_some() != c.key_file.is_some() {
            return Err(format!(
                "{}: cert_file and key_file go together",
                path.display()
            ));
        }
        if c.max_connections == 0 || c.max_recipients == 0 {
            return Err(format!(
                "{}: max_connections and max_recipients must be at least 1",
                path.display()
            ));
        }
        c.check_exposure()
            .map_err(|e| format!("{}: {e}", path.display()))?;
        c.metrics()
            .address()
            .map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(c)
    }

    /// The metrics listener's settings.
    pub fn metrics(&self) -> ping32dlp_ops::Settings {
        ping32dlp_ops::Settings {
            listen: self.metrics_listen.clone(),
            allow_remote: self.metrics_allow_remote,
        }
    }

    /// TLS is required on a listener (by setting, or by default off loopback).
    pub fn require_tls_on(&self, loopback: bool) -> bool {
        self.require_tls.unwrap_or(!loopback)
    }

    /// AUTH is required on a listener (by setting, or by default off loopback).
    pub fn require_auth_on(&self, loopback: bool) -> bool {
        self.require_auth.unwrap_or(!loopback)
    }

    /// A listener reachable from other machines must require TLS and authentication: without
    /// them the proxy takes passwords in the clear and relays for anyone.
    pub fn check_exposure(&self) -> Result<(), String> {
        self.transparent.check()?;
        for (key, addr, implicit) in [
            ("listen", &self.listen, false),
            ("listen_tls", &self.listen_tls, true),
        ] {
            if addr.is_empty() || is_loopback(addr) {
                continue;
            }
            if !implicit && !self.require_tls_on(false) {
                return Err(format!(
                    "{key} = \"{addr}\" is not a loopback address: require_tls must be on (it is by default)"
                ));
            }
            if !self.require_auth_on(false) {
                return Err(format!(
                    "{key} = \"{addr}\" is not a loopback address: require_auth must be on (it is by default)"
                ));
            }
        }
        Ok(())
    }
}

impl service::Configured for Config {
    fn dlp(&mut self) -> &mut service::DlpSettings {
        &mut self.dlp
    }
}

/// Every address `addr` stands for is a loopback address.
pub fn is_loopback(addr: &str) -> bool {
    match addr.to_socket_addrs() {
        Ok(mut a) => {
            let all: Vec<_> = a.by_ref().collect();
            !all.is_empty() && all.iter().all(|x| x.ip().is_loopback())
        }
        Err(_) => false,
    }
}

/// What every connection shares.
pub struct Shared {
    /// The configuration.
    pub cfg: Config,
    /// The pipeline.
    pub pipeline: Pipeline,
    /// The metrics (served when `metrics_listen` is set).
    pub metrics: Arc<Metrics>,
    server_tls: Arc<rustls::ServerConfig>,
    client_tls: Arc<rustls::ClientConfig>,
    /// Transparent mode's interception CA and upstream verification (when it is on).
    pub transparent: Option<transparent::Interceptor>,
    /// The company directory, when configured.
    pub directory: Option<ping32dlp_directory::Directory>,
}

impl Shared {
    /// One log line on standard error (ids, actions, counts; never credentials or values).
    pub fn log(&self, event: &str, line: &str) {
        service::log_event("ping32dlp-proxy", event, &[], line);
    }

    /// One log event with fields (README, "Logs").
    pub fn event(&self, event: &str, fields: &[(&str, &dyn std::fmt::Display)], msg: &str) {
        service::log_event("ping32dlp-proxy", event, fields, msg);
    }
}

/// Builds the shared state: the pipeline, the local CA (made on first run unless a
/// certificate is configured) and the TLS configurations.
pub fn build(mut cfg: Config) -> Result<(Shared, Option<tls::LocalCa>), String> {
    cfg.check_exposure()?;
    if cfg.host_name.is_none() {
        cfg.host_name = Some(ping32dlp::workflow::host_name());
    }
    // The proxy keeps held mail itself (this gateway carries out the decisions on it): the
    // release worker sends it and the sender's notices through the upstream, so no MTA
    // commands here.
    let mut pipeline = cfg.dlp.open(|w| {
        w.release_command = None;
        w.discard_command = None;
        w.notify_command = None;
        w.carries_out = true;
    })?;
    let metrics = Arc::new(Metrics::new("ping32dlp-proxy").with_channel("proxy"));
    pipeline.set_observer(metrics.clone());
    for fix in pipeline.workflow().permission_fixes() {
        service::log_event(
            "ping32dlp-proxy",
            "state_repaired",
            &[],
            &format!("warning: state directory was readable by others, fixed {fix}"),
        );
    }
    let state = pipeline.workflow().config().state_dir.clone();
    let (cert, key, ca) = match (&cfg.cert_file, &cfg.key_file) {
        (Some(c), Some(k)) => (c.clone(), k.clone(), None),
        _ => {
            let mut names = vec![cfg.hostname.clone(), "localhost".into(), "127.0.0.1".into()];
            names.dedup();
            let ca = tls::local_ca(&state.join("tls"), &names)?;
            (ca.cert_pem.clone(), ca.key_pem.clone(), Some(ca))
        }
    };
    let server_tls = tls::server_config(&cert, &key)?;
    let client_tls = tls::client_config(cfg.upstream.ca_file.as_deref())?;
    let cfg_directory = cfg.directory.clone();
    let transparent = if cfg.transparent.listen.is_empty() {
        None
    } else {
        Some(transparent::Interceptor::new(
            &cfg.transparent,
            &state.join("tls"),
        )?)
    };
    Ok((
        Shared {
            pipeline,
            metrics,
            cfg,
            server_tls,
            client_tls,
            transparent,
            directory: ping32dlp_directory::Directory::new(&cfg_directory)?,
        },
        ca,
    ))
}

static ACTIVE: AtomicUsize = AtomicUsize::new(0);

/// Client connections being served now.
pub fn active_connections() -> usize {
    ACTIVE.load(Ordering::Acquire)
}

/// A connection slot, given back when dropped, on every path (a panic included).
struct Slot(&'static Shared);

impl Drop for Slot {
    fn drop(&mut self) {
        ACTIVE.fetch_sub(1, Ordering::AcqRel);
        self.0.metrics.connection_closed();
    }
}

/// What a listener serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    /// SMTP with STARTTLS (`listen`).
    Plain,
    /// Implicit TLS (`listen_tls`).
    Tls,
    /// Connections redirected by nftables, relayed to their original destination
    /// (`transparent.listen`).
    Transparent,
}

/// Serves a bound listener on a thread of its own: one thread per client, at most
/// `max_connections` at a time (all listeners together).
pub fn serve_listener(
    l: TcpListener,
    shared: &'static Shared,
    kind: Listener,
) -> Result<(), String> {
    let local = l
        .local_addr()
        .map(|a| a.ip().is_loopback())
        .unwrap_or(false);
    let name = l.local_addr().map(|a| a.to_string()).unwrap_or_default();
    std::thread::Builder::new()
        .name(format!("listen-{name}"))
        .spawn(move || {
            for s in l.incoming() {
                let Ok(mut s) = s else {
                    std::thread::sleep(Duration::from_millis(50));
                    continue;
                };
                if ACTIVE.fetch_add(1, Ordering::AcqRel) >= shared.cfg.max_connections {
                    ACTIVE.fetch_sub(1, Ordering::AcqRel);
                    let _ = s.set_write_timeout(Some(Duration::from_secs(2)));
                    let _ = s.write_all(b"421 4.7.0 Too many connections, try again later\r\n");
                    shared.metrics.connection_refused("max_connections");
                    continue;
                }
                shared.metrics.connection_opened();
                let slot = Slot(shared);
                // On a spawn failure the closure and its slot are dropped: the slot comes back.
                let _ = std::thread::Builder::new()
                    .name("smtp-client".into())
                    .spawn(move || {
                        // A second handle keeps the socket open until the slot is back: a
                        // client that sees the close may connect again at once.
                        let held = s.try_clone().ok();
                        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                            match kind {
                                Listener::Transparent => smtp::Session::transparent(s, shared),
                                _ => smtp::Session::new(s, shared, kind == Listener::Tls, local),
                            }
                            .and_then(|s| s.run())
                        }));
                        match r {
                            Ok(Ok(())) => {}
                            Ok(Err(e)) if e.contains("timed out") || e.contains("reset") => {}
                            Ok(Err(e)) => shared
                                .log("connection_error", &format!("client session ended: {e}")),
                            Err(_) => shared.log(
                                "panic",
                                "internal error (panic) in a client session; it was closed",
                            ),
                        }
                        drop(slot);
                        drop(held);
                    });
            }
        })
        .map_err(|e| e.to_string())?;
    Ok(())
}

fn listen(addr: &str, shared: &'static Shared, kind: Listener) -> Result<(), String> {
    let l = TcpListener::bind(addr).map_err(|e| format!("{addr}: {e}"))?;
    serve_listener(l, shared, kind)
}

/// One pass of the release worker: expire what is due, send approved mail, tell the senders
/// of rejected and expired mail. Approved mail is sent at least once: a crash between the
/// upstream's 250 and the record of the release sends it again on the next run.
pub fn release_pass(shared: &Shared) {
    let wf = shared.pipeline.workflow();
    let store = wf.store();
    let me = wf.gateway_name();
    // This gateway's requests, and those of versions before gateways (none named).
    let mine = |a: &ping32dlp::workflow::Approval| {
        a.channel == "proxy" && a.gateway.as_deref().is_none_or(|g| g == me)
    };
    match store.approvals(Some(ApprovalState::Approved), None) {
        Ok(list) => {
            for a in list.into_iter().filter(|a| mine(a)) {
                let raw = match wf.held_message(&a.id) {
                    Ok(Some(raw)) => raw,
                    Ok(None) => {
                        let _ = wf.mark_closed(&a.id, "no held copy to send");
                        continue;
                    }
                    Err(e) => {
                        shared.log("release_failed", &format!("release {}: {e}", a.id));
                        continue;
                    }
                };
                match smtp::deliver(shared, &a.sender, &a.recipients, &raw) {
                    Ok(r) => {
                        let _ = wf
                            .mark_closed(&a.id, &format!("relayed upstream by {me}: {}", r.text()));
                        shared.log(
                            "released",
                            &format!("released {} (record {}): {}", a.id, a.record_id, r.text()),
                        );
                    }
                    Err(e) => shared.log(
                        "release_failed",
                        &format!("release {} failed, will retry: {e}", a.id),
                    ),
                }
            }
        }
        Err(e) => shared.log("release_failed", &format!("release: {e}")),
    }
    if let Ok(list) = store.approvals(Some(ApprovalState::Discarded), None) {
        for a in list
            .into_iter()
            .filter(|a| mine(a) && a.sender.contains('@'))
        {
            let events = store.events(&a.id).unwrap_or_default();
            if events.iter().any(|e| e.kind == "notify") {
                continue;
            }
            let why = if a.decided_by.is_some() {
                ApprovalState::Rejected
            } else {
                ApprovalState::Expired
            };
            let notice = wf.notice(&a, why);
            let detail = match smtp::deliver(shared, "", std::slice::from_ref(&a.sender), &notice) {
                Ok(r) => format!(
                    "notice sent to {} through the upstream: {}",
                    a.sender,
                    r.text()
                ),
                Err(e) => format!("FAILED: notice to {}: {e}", a.sender),
            };
            let _ = store.add_event(
                &a.id,
                &ping32dlp::workflow::ApprovalEvent {
                    time: ping32dlp::timeutil::now(),
                    actor: "system".into(),
                    kind: "notify".into(),
                    detail,
                },
            );
        }
    }
}

const USAGE: &str = "usage: ping32dlp-proxy [--config FILE] [--check-config FILE]

Without --config it starts on embedded defaults: 127.0.0.1:10587 (SMTP with STARTTLS) and
127.0.0.1:10465 (implicit TLS), relaying to 127.0.0.1:25, built-in detectors, the monitor-mode
policy, state in $PING32DLP_STATE_DIR (/var/lib/ping32dlp as root, else
~/.local/state/ping32dlp). On first run it makes a local CA and server certificate in
STATE/tls and prints how to trust the CA.";

/// The program: parse the command line and the configuration, build, listen, release.
pub fn main() {
    let (config, check_only) = service::command_line("ping32dlp-proxy", USAGE);
    let cfg = match &config {
        Some(p) => Config::load(p),
        None => Ok(Config::default()),
    }
    .unwrap_or_else(|e| {
        eprintln!("ping32dlp-proxy: {e}");
        std::process::exit(2);
    });
    service::set_log_format(cfg.log_format);
    let (shared, ca) = build(cfg).unwrap_or_else(|e| {
        eprintln!("ping32dlp-proxy: {e}");
        std::process::exit(2);
    });
    if let Some(ca) = &ca {
        if ca.created {
            eprintln!(
                "ping32dlp-proxy: made a local CA: {}\n  trust it for TLS to this proxy, e.g. on Debian:\n    cp {} /usr/local/share/ca-certificates/ping32dlp-local-ca.crt && update-ca-certificates\n  (Thunderbird: Settings > Certificates > Import; Windows: certutil -addstore Root ca.pem)",
                ca.ca_pem.display(),
                ca.ca_pem.display()
            );
        }
    }
    if let Some(t) = shared.transparent.as_ref().filter(|t| t.created) {
        eprintln!(
            "ping32dlp-proxy: made the interception CA for transparent mode: {}\n  every PC whose mail is intercepted must trust it (as for the local CA below)",
            t.ca_pem.display()
        );
    }
    if check_only {
        println!(
            "ok: listen {} and {}{}, upstream {}:{} ({:?}), policy {} ({} rules)",
            shared.cfg.listen,
            shared.cfg.listen_tls,
            match &shared.transparent {
                Some(_) => format!(", transparent {}", shared.cfg.transparent.listen),
                None => String::new(),
            },
            shared.cfg.upstream.host,
            shared.cfg.upstream.port,
            shared.cfg.upstream.tls,
            shared.pipeline.policy().name,
            shared.pipeline.policy().rules.len()
        );
        return;
    }
    let shared: &'static Shared = Box::leak(Box::new(shared));
    // SIGHUP: rules, dictionaries and policy read again from the same file (README, "Reload").
    service::reload_config_on_sighup(
        "ping32dlp-proxy",
        config.clone(),
        Config::load,
        &shared.pipeline,
    );
    // An endpoint agent (store = "https://..."): policies pushed from the fleet server.
    service::follow_fleet_policy("ping32dlp-proxy", &shared.cfg.dlp, &shared.pipeline);
    let started = listen(&shared.cfg.listen, shared, Listener::Plain)
        .and_then(|_| {
            if shared.cfg.listen_tls.is_empty() {
                Ok(())
            } else {
                listen(&shared.cfg.listen_tls, shared, Listener::Tls)
            }
        })
        .and_then(|_| match &shared.transparent {
            None => Ok(()),
            Some(_) => listen(
                &shared.cfg.transparent.listen,
                shared,
                Listener::Transparent,
            ),
        });
    if let Err(e) = started {
        eprintln!("ping32dlp-proxy: {e}");
        std::process::exit(1);
    }
    ping32dlp_ops::start_gateway(
        "ping32dlp-proxy",
        &shared.cfg.metrics(),
        &shared.metrics,
        &shared.pipeline,
    );
    shared.log(
        "listening",
        &format!(
        "listening on {} (STARTTLS) and {} (TLS), relaying to {}:{} ({:?}), policy {}, state {}",
        shared.cfg.listen,
        if shared.cfg.listen_tls.is_empty() {
            "-"
        } else {
            &shared.cfg.listen_tls
        },
        shared.cfg.upstream.host,
        shared.cfg.upstream.port,
        shared.cfg.upstream.tls,
        shared.pipeline.policy().name,
        shared.pipeline.workflow().config().state_dir.display()
    ),
    );
    if shared.transparent.is_some() {
        shared.log(
            "listening",
            &format!(
                "transparent mode on {}: redirected SMTP relayed to its original destination, TLS on ports {:?} intercepted from the first byte, STARTTLS elsewhere",
                shared.cfg.transparent.listen, shared.cfg.transparent.tls_ports
            ),
        );
    }
    service::spawn_maintenance_observed(
        "ping32dlp-proxy",
        shared.pipeline.workflow().clone(),
        Duration::from_secs(shared.cfg.release_interval_seconds.max(1)),
        Some(shared.metrics.clone()),
    );
    loop {
        release_pass(shared);
        std::thread::sleep(Duration::from_secs(
            shared.cfg.release_interval_seconds.max(1),
        ));
    }
}

/// Fuzzing entry: any bytes as one client command line (the first byte's low bit says whether
/// it ended in CRLF). A MAIL or RCPT that parses must be written upstream as a line that parses
/// back to the same address: the judged recipient is the forwarded one. Not part of the API.
#[doc(hidden)]
pub fn fuzz_command(data: &[u8]) {
    use command::Command;
    let Some((&crlf, line)) = data.split_first() else {
        return;
    };
    match command::parse(line, crlf & 1 == 1) {
        Ok(Command::Mail(m)) => match command::parse(command::mail_line(&m).as_bytes(), true) {
            Ok(Command::Mail(m2)) => assert_eq!(m.address, m2.address),
            other => panic!("{:?} -> {:?}", m.address, other),
        },
        Ok(Command::Rcpt(r)) => match command::parse(command::rcpt_line(&r).as_bytes(), true) {
            Ok(Command::Rcpt(r2)) => assert_eq!(r.address, r2.address),
            other => panic!("{:?} -> {:?}", r.address, other),
        },
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_errors_name_file_line_and_field_and_paths_are_relative() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("proxy.toml");
        std::fs::write(
            &f,
            "listen = \"127.0.0.1:1\"\n[upstream]\ntls = \"sometimes\"\n",
        )
        .unwrap();
        let e = Config::load(&f).unwrap_err();
        assert!(
            e.contains("proxy.toml:3:") && e.contains("sometimes"),
            "{e}"
        );
        std::fs::write(&f, "lisen = \"x\"\n").unwrap();
        assert!(Config::load(&f).unwrap_err().contains("proxy.toml:1:1"));
        std::fs::write(&f, "cert_file = \"c.pem\"\n").unwrap();
        assert!(Config::load(&f).unwrap_err().contains("go together"));
        std::fs::write(
            &f,
            "[dlp]\nstate_dir = \"st\"\n[upstream]\nca_file = \"ca.pem\"\n",
        )
        .unwrap();
        let c = Config::load(&f).unwrap();
        assert_eq!(c.dlp.state_dir.unwrap(), dir.path().join("st"));
        assert_eq!(c.upstream.ca_file.unwrap(), dir.path().join("ca.pem"));
        assert_eq!(c.upstream.port, 25);
    }

    #[test]
    fn the_local_ca_is_made_once_and_gives_working_tls_configs() {
        let dir = tempfile::tempdir().unwrap();
        let names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
        let ca = tls::local_ca(dir.path(), &names).unwrap();
        assert!(ca.created);
        let again = tls::local_ca(dir.path(), &names).unwrap();
        assert!(!again.created);
        tls::server_config(&ca.cert_pem, &ca.key_pem).unwrap();
        tls::client_config(Some(&ca.ca_pem)).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&ca.key_pem).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(tls::client_config(Some(&dir.path().join("missing.pem"))).is_err());
    }
}
