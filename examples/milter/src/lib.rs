//! `ping32dlp-milter`: a milter (protocol v6, no libmilter) that puts every mail passing Postfix
//! or Sendmail through the ping32dlp pipeline: inspect, record durably, judge, and answer with
//! accept (plus headers), `550 5.7.1`, or quarantine into the hold queue pending approval.
//!
//! ```text
//! ping32dlp-milter                      # embedded defaults: inet:127.0.0.1:8899, built-in
//!                                       # rules, monitor-mode policy, SQLite in the state dir
//! ping32dlp-milter --config /etc/ping32dlp/milter.toml
//! ping32dlp-milter --check-config FILE  # parse, build rules and policy, print the settings
//! ```

//!
//! The binary is `src/main.rs`; this library is what it runs, what the tests drive and what the
//! fuzz target calls.

#![forbid(unsafe_code)]

pub mod protocol;
pub mod session;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use ping32dlp::pipeline::Pipeline;
use ping32dlp::service;
use ping32dlp_ops::Metrics;
use serde::Deserialize;

/// What to answer when a mail cannot be judged (the store is down, say): `tempfail`
/// (`451 4.7.1`, the default), `accept` (with `X-Ping32DLP-Verdict: error`) or `block`
/// (`550 5.7.1`).
pub use service::FailMode;

/// The configuration file (`--config`). Every field has a default; paths are relative to the
/// file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// `inet:127.0.0.1:8899`, `inet:8899@127.0.0.1` (Sendmail style), `inet6:[::1]:8899` or
    /// `unix:/run/ping32dlp/milter.sock`.
    pub listen: String,
    /// What every integration shares (`[dlp]`): rules, policy, organisation domains, state
    /// directory, the store, this gateway's name, retention.
    pub dlp: service::DlpSettings,
    /// `tempfail` (default), `accept` or `block` when a mail cannot be judged.
    pub fail_mode: FailMode,
    /// Add `X-Ping32DLP-Verdict: <action>; record=<id>; risk=<n>` to mail that goes through.
    pub verdict_header: bool,
    /// Concurrent MTA connections; more are closed at once (the MTA applies its default action).
    pub max_connections: usize,
    /// A message larger than this is spooled to a temporary file while it arrives.
    pub spill_bytes: u64,
    /// A message larger than this is refused with `552 5.3.4` (it cannot be inspected whole).
    pub max_message_bytes: u64,
    /// Spilled (large) messages inspected at the same time; others wait. Bounds memory.
    pub max_large_inspections: usize,
    /// Seconds without a packet from the MTA before the connection is closed.
    pub read_timeout_seconds: u64,
    /// Envelope recipients per message (Postfix's `smtpd_recipient_limit` is 1000); a message
    /// with more is refused, since it could not be judged on all of them.
    pub max_recipients: usize,
    /// Headers per message; a message with more is refused.
    pub max_headers: usize,
    /// Decisions on this milter's holds are carried out by `ping32dlp-milter --release-helper`
    /// (run as root beside it), not by the milter: for a milter that runs as an unprivileged
    /// user, which cannot run `postsuper` or `sendmail` (the Debian package's unit).
    pub release_helper: bool,
    /// `127.0.0.1:9701`: serve Prometheus metrics and `/healthz`, `/readyz` there (off when
    /// not given; loopback only unless `metrics_allow_remote`).
    pub metrics_listen: Option<String>,
    /// Allow `metrics_listen` on an address other than loopback.
    pub metrics_allow_remote: bool,
    /// `kv` (`key=value`, the default) or `json`: the format of the log lines on standard
    /// error (README, "Logs").
    pub log_format: service::LogFormat,
    /// The company directory (LDAP / Active Directory): the sender's groups, department and
    /// manager for the policy (README, "Directory"). Off unless `url` is set.
    pub directory: ping32dlp_directory::DirectoryCfg,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            listen: "inet:127.0.0.1:8899".into(),
            dlp: service::DlpSettings::default(),
            fail_mode: FailMode::Tempfail,
            verdict_header: true,
            max_connections: 512,
            spill_bytes: 4 << 20,
            max_message_bytes: 200 << 20,
            max_large_inspections: 2,
            read_timeout_seconds: 600,
            max_recipients: 1000,
            max_headers: 10_000,
            release_helper: false,
            metrics_listen: None,
            metrics_allow_remote: false,
            log_format: service::LogFormat::Kv,
            directory: ping32dlp_directory::DirectoryCfg::default(),
        }
    }
}

impl service::Configured for Config {
    fn dlp(&mut self) -> &mut service::DlpSettings {
        &mut self.dlp
    }
}

impl Config {
    /// Reads a config file; errors name the file, line, column and field. Warnings (keys of
    /// `[dlp]` still at the top level) are logged.
    pub fn load(path: &Path) -> Result<Config, String> {
        let (mut c, warnings): (Config, _) = service::load_config(path)?;
        c.directory.resolve(path.parent().unwrap_or(Path::new(".")));
        for w in warnings {
            service::log_event(
                "ping32dlp-milter",
                "config_warning",
                &[],
                &format!("warning: {w}"),
            );
        }
        c.check().map_err(|m| format!("{}: {m}", path.display()))?;
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
        Listen::parse(&self.listen).map_err(|m| format!("listen: {m}"))?;
        self.directory.check()?;
        self.metrics().address()?;
        if self.max_connections == 0 {
            return Err("max_connections: must be at least 1".into());
        }
        if self.max_recipients == 0 || self.max_headers == 0 {
            return Err("max_recipients and max_headers must be at least 1".into());
        }
        if self.max_large_inspections == 0 {
            return Err("max_large_inspections: must be at least 1".into());
        }
        if self.spill_bytes > self.max_message_bytes {
            return Err("spill_bytes: must not exceed max_message_bytes".into());
        }
        Ok(())
    }
}

/// Where to listen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listen {
    /// TCP.
    Inet(String),
    /// A Unix socket path.
    Unix(PathBuf),
}

impl Listen {
    /// Parses the milter socket notations of Postfix and Sendmail.
    pub fn parse(s: &str) -> Result<Listen, String> {
        let s = s.trim();
        if let Some(p) = s.strip_prefix("unix:").or_else(|| s.strip_prefix("local:")) {
            if p.is_empty() {
                return Err("unix: needs a path".into());
            }
            return Ok(Listen::Unix(PathBuf::from(p)));
        }
        let rest = s
            .strip_prefix("inet:")
            .or_else(|| s.strip_prefix("inet6:"))
            .ok_or_else(|| format!("`{s}`: use inet:HOST:PORT, inet:PORT@HOST or unix:PATH"))?;
        let addr = match rest.split_once('@') {
            Some((port, host)) if host.contains(':') => format!("[{host}]:{port}"),
            Some((port, host)) => format!("{host}:{port}"),
            None => rest.to_string(),
        };
        let ok = std::net::ToSocketAddrs::to_socket_addrs(&addr.as_str())
            .map(|mut a| a.next().is_some())
            .unwrap_or(false);
        if !ok {
            return Err(format!("`{s}` is not an address and port"));
        }
        Ok(Listen::Inet(addr))
    }
}

/// Lets a bounded number of large inspections run at once.
pub struct Gate {
    free: Mutex<usize>,
    cv: Condvar,
}

/// A place taken in the gate; given back on drop.
pub struct GateTicket<'a>(&'a Gate);

impl Gate {
    fn new(n: usize) -> Gate {
        Gate {
            free: Mutex::new(n),
            cv: Condvar::new(),
        }
    }

    /// Waits for a free place.
    pub fn enter(&self) -> GateTicket<'_> {
        let mut f = self.free.lock().unwrap_or_else(|e| e.into_inner());
        while *f == 0 {
            f = self.cv.wait(f).unwrap_or_else(|e| e.into_inner());
        }
        *f -= 1;
        GateTicket(self)
    }
}

impl Drop for GateTicket<'_> {
    fn drop(&mut self) {
        let mut f = self.0.free.lock().unwrap_or_else(|e| e.into_inner());
        *f += 1;
        self.0.cv.notify_one();
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
    spool_dir: PathBuf,
    big_gate: Gate,
    /// The company directory, when configured.
    pub directory: Option<ping32dlp_directory::Directory>,
}

impl Shared {
    /// One log line on standard error (no sensitive values: ids, actions, counts).
    pub fn log(&self, event: &str, line: &str) {
        service::log_event("ping32dlp-milter", event, &[], line);
    }

    /// One log event with fields (README, "Logs").
    pub fn event(&self, event: &str, fields: &[(&str, &dyn std::fmt::Display)], msg: &str) {
        service::log_event("ping32dlp-milter", event, fields, msg);
    }
}

/// Builds the shared state: the pipeline and the spool directory.
pub fn build(cfg: Config) -> Result<Shared, String> {
    // The milter holds mail in the MTA's queue: its decisions are carried out here.
    let mut pipeline = cfg.dlp.open(|w| {
        w.carries_out = true;
        w.carry_out_elsewhere = cfg.release_helper;
    })?;
    let metrics = Arc::new(Metrics::new("ping32dlp-milter").with_channel("milter"));
    pipeline.set_observer(metrics.clone());
    for fix in pipeline.workflow().permission_fixes() {
        service::log_event(
            "ping32dlp-milter",
            "state_repaired",
            &[],
            &format!("warning: state directory was readable by others, fixed {fix}"),
        );
    }
    let spool_dir = pipeline.workflow().config().state_dir.join("spool");
    ping32dlp::workflow::private::create_dir(&spool_dir).map_err(|e| e.to_string())?;
    let big_gate = Gate::new(cfg.max_large_inspections);
    let directory = ping32dlp_directory::Directory::new(&cfg.directory)?;
    Ok(Shared {
        directory,
        pipeline,
        metrics,
        cfg,
        spool_dir,
        big_gate,
    })
}

const USAGE: &str = "usage: ping32dlp-milter [--config FILE] [--check-config FILE]
       ping32dlp-milter --release-helper --config FILE   (as root: carries out decisions)

Without --config it starts on embedded defaults: listens on inet:127.0.0.1:8899, built-in
detectors, the monitor-mode policy, the audit database in the state directory
($PING32DLP_STATE_DIR, /var/lib/ping32dlp as root, else ~/.local/state/ping32dlp).

Postfix (main.cf):
  smtpd_milters = inet:127.0.0.1:8899
  non_smtpd_milters = $smtpd_milters
  milter_default_action = tempfail
  milter_content_timeout = 300s

With release_helper = true in the file, the milter (as an unprivileged, sandboxed user) leaves
approved and rejected holds to `ping32dlp-milter --release-helper` with the same file, run as
root: it runs release_command / discard_command (postsuper) and notify_command (sendmail) for
this gateway's holds every 2 seconds.";

/// The program: parse the command line and the configuration, build, listen, serve.
pub fn main() {
    let (config, check_only, flags) =
        service::command_line_with("ping32dlp-milter", USAGE, &["--release-helper"]);
    let cfg = match &config {
        Some(p) => Config::load(p),
        None => Ok(Config::default()),
    };
    let cfg = cfg.unwrap_or_else(|e| {
        eprintln!("ping32dlp-milter: {e}");
        std::process::exit(2);
    });
    let listen = Listen::parse(&cfg.listen).expect("checked when loaded");
    service::set_log_format(cfg.log_format);
    if flags.contains(&"--release-helper") {
        release_helper(&cfg, check_only);
    }
    let shared = build(cfg).unwrap_or_else(|e| {
        eprintln!("ping32dlp-milter: {e}");
        std::process::exit(2);
    });
    if check_only {
        let wf = shared.pipeline.workflow();
        println!(
            "ok: listen {}, {} detectors, policy {} ({} rules), state {}, store {}, gateway {}",
            shared.cfg.listen,
            shared.pipeline.engine().detectors().len(),
            shared.pipeline.policy().name,
            shared.pipeline.policy().rules.len(),
            wf.config().state_dir.display(),
            wf.config()
                .store
                .as_ref()
                .map_or("sqlite (state directory)".to_string(), |s| s.redacted()),
            wf.gateway_name()
        );
        return;
    }
    let shared: &'static Shared = Box::leak(Box::new(shared));
    // SIGHUP: rules, dictionaries and policy read again from the same file (README, "Reload").
    service::reload_config_on_sighup(
        "ping32dlp-milter",
        config.clone(),
        Config::load,
        &shared.pipeline,
    );
    service::spawn_maintenance_observed(
        "ping32dlp-milter",
        shared.pipeline.workflow().clone(),
        Duration::from_secs(2),
        Some(shared.metrics.clone()),
    );
    ping32dlp_ops::start_gateway(
        "ping32dlp-milter",
        &shared.cfg.metrics(),
        &shared.metrics,
        &shared.pipeline,
    );
    if let Err(e) = serve(listen, shared) {
        eprintln!("ping32dlp-milter: {e}");
        std::process::exit(1);
    }
}

/// `--release-helper`: carries out the decisions on this milter's holds (release, discard,
/// notices: the policy's commands, which need root for `postsuper`) every 2 seconds, forever.
/// The same configuration file as the milter, so the same store and gateway name.
fn release_helper(cfg: &Config, check_only: bool) -> ! {
    const PROGRAM: &str = "ping32dlp-milter-release";
    let pipeline = cfg.dlp.open(|w| w.carries_out = true).unwrap_or_else(|e| {
        eprintln!("{PROGRAM}: {e}");
        std::process::exit(2);
    });
    let wf = pipeline.workflow().clone();
    if check_only {
        println!("ok: release helper for gateway {}", wf.gateway_name());
        std::process::exit(0);
    }
    service::log_event(
        PROGRAM,
        "listening",
        &[("gateway", &wf.gateway_name())],
        "carrying out the decisions on this gateway's held mail every 2 s",
    );
    service::spawn_maintenance(PROGRAM, wf, Duration::from_secs(2));
    loop {
        std::thread::park();
    }
}

static ACTIVE: AtomicUsize = AtomicUsize::new(0);

/// MTA connections being served now.
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

/// Accepts MTA connections forever on `listen`.
pub fn serve(listen: Listen, shared: &'static Shared) -> Result<(), String> {
    let timeout = Some(Duration::from_secs(shared.cfg.read_timeout_seconds.max(1)));
    match listen {
        Listen::Inet(addr) => {
            let l = std::net::TcpListener::bind(&addr).map_err(|e| format!("{addr}: {e}"))?;
            shared.log(
                "listening",
                &format!(
                    "listening on inet:{addr}, policy {}, state {}",
                    shared.pipeline.policy().name,
                    shared.pipeline.workflow().config().state_dir.display()
                ),
            );
            for s in l.incoming() {
                match s {
                    Ok(s) => {
                        let _ = s.set_read_timeout(timeout);
                        let _ = s.set_nodelay(true);
                        spawn(s, shared);
                    }
                    Err(e) => {
                        shared.log("accept_error", &format!("accept: {e}"));
                        std::thread::sleep(Duration::from_millis(50));
                    }
                }
            }
        }
        #[cfg(unix)]
        Listen::Unix(path) => {
            if path.exists() {
                // A stale socket of an earlier run (a live one would refuse the bind below
                // anyway only if it is not a socket; unlink only sockets).
                use std::os::unix::fs::FileTypeExt;
                if std::fs::metadata(&path).is_ok_and(|m| m.file_type().is_socket()) {
                    let _ = std::fs::remove_file(&path);
                }
            }
            let l = std::os::unix::net::UnixListener::bind(&path)
                .map_err(|e| format!("{}: {e}", path.display()))?;
            shared.log(
                "listening",
                &format!("listening on unix:{}", path.display()),
            );
            for s in l.incoming() {
                match s {
                    Ok(s) => {
                        let _ = s.set_read_timeout(timeout);
                        spawn(s, shared);
                    }
                    Err(e) => {
                        shared.log("accept_error", &format!("accept: {e}"));
                        std::thread::sleep(Duration::from_millis(50));
                    }
                }
            }
        }
        #[cfg(not(unix))]
        Listen::Unix(_) => return Err("unix sockets need a Unix system".into()),
    }
    Ok(())
}

/// Serves one MTA connection on a thread of its own (or closes it when `max_connections` are
/// busy: the MTA then applies its `milter_default_action`).
pub fn spawn<C: session::Conn + 'static>(conn: C, shared: &'static Shared) {
    if ACTIVE.fetch_add(1, Ordering::AcqRel) >= shared.cfg.max_connections {
        ACTIVE.fetch_sub(1, Ordering::AcqRel);
        shared.log(
            "connection_refused",
            "too many connections: closing one (the MTA applies milter_default_action)",
        );
        shared.metrics.connection_refused("max_connections");
        conn.close();
        return;
    }
    shared.metrics.connection_opened();
    let slot = Slot(shared);
    let r = std::thread::Builder::new()
        .name("milter-conn".into())
        .stack_size(1 << 20)
        .spawn(move || {
            let _slot = slot;
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                session::Session::new(conn, shared).run()
            }));
            match r {
                Ok(session::End::Error(e)) => {
                    shared.log("connection_error", &format!("connection closed: {e}"))
                }
                Ok(session::End::Quit) => {}
                Err(_) => shared.log(
                    "panic",
                    "internal error (panic) on a connection; it was closed",
                ),
            }
        });
    // On a spawn failure the closure (and its slot) was dropped: the slot is back.
    if let Err(e) = r {
        shared.log(
            "thread_error",
            &format!("cannot start a connection thread: {e}"),
        );
    }
}

/// Fuzzing entry: any bytes as what an MTA sends on one connection (packets in a row), into
/// a real session over a real pipeline. Not part of the API.
#[doc(hidden)]
pub fn fuzz_session(shared: &'static Shared, data: &[u8]) {
    let conn = session::Replay::new(data);
    let _ = session::Session::new(conn, shared).run();
}

#[cfg(test)]
mod tests;
