//! What the ping32dlp daemons (milter, SMTP proxy, ICAP hook, console) share for running in
//! production: their Prometheus metrics ([`Metrics`], fed by the pipeline's
//! [`Observer`] hook and by the daemons' listeners) and the small HTTP listener that serves
//! them with the health checks ([`serve`]: `/metrics`, `/healthz`, `/readyz`).
//!
//! The listener is off unless a daemon's configuration sets `metrics_listen`; it accepts only
//! loopback addresses unless `metrics_allow_remote = true`. It answers `GET` and `HEAD` on three
//! paths and nothing else, holds at most [`MAX_CONNECTIONS`] connections, and closes a
//! connection that has not sent its request head within [`HEAD_TIMEOUT`]. No metric carries a
//! value found in mail: labels are channels, actions, detector ids and reasons.

#![forbid(unsafe_code)]

use std::convert::Infallible;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use ping32dlp::pipeline::{Inspected, Observer};
use ping32dlp::workflow::Maintenance;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

/// Connections the metrics listener holds at once; more are closed at once.
pub const MAX_CONNECTIONS: usize = 32;
/// Time a connection has to send a request head.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest life of one connection (keep-alive included).
pub const CONNECTION_LIFETIME: Duration = Duration::from_secs(60);
/// Longest a scrape or readiness check waits for the store.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// Upper bounds (seconds) of the inspection latency histogram: 1 ms to 60 s.
pub const LATENCY_BUCKETS: [f64; 16] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ChannelAction {
    channel: String,
    action: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ChannelLabel {
    channel: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DetectorLabel {
    detector: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ChannelMode {
    channel: String,
    mode: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DecisionLabel {
    decision: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    program: String,
    version: String,
}

/// One daemon's metrics. Cheap to update from any thread; [`Metrics::encode`] writes them in
/// the OpenMetrics text format Prometheus scrapes. Metric names are in README, "Metrics".
pub struct Metrics {
    registry: Registry,
    inspected: Family<ChannelAction, Counter>,
    latency: Family<ChannelLabel, Histogram, fn() -> Histogram>,
    bytes: Family<ChannelLabel, Counter>,
    findings: Family<DetectorLabel, Counter>,
    unscannable: Family<ReasonLabel, Counter>,
    store_errors: Family<ChannelLabel, Counter>,
    fail_mode: Family<ChannelMode, Counter>,
    holds_waiting: Gauge,
    hold_outcomes: Family<OutcomeLabel, Counter>,
    background_errors: Counter,
    connections_open: Gauge,
    connections_refused: Family<ReasonLabel, Counter>,
    reloads: Family<OutcomeLabel, Counter>,
    decisions: Family<DecisionLabel, Counter>,
}

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

impl Metrics {
    /// The metrics of `program` (`ping32dlp-milter`, ...), with its build info.
    pub fn new(program: &str) -> Metrics {
        let mut registry = Registry::with_prefix("ping32dlp");
        let m = Metrics {
            inspected: Family::default(),
            latency: Family::new_with_constructor(latency_histogram),
            bytes: Family::default(),
            findings: Family::default(),
            unscannable: Family::default(),
            store_errors: Family::default(),
            fail_mode: Family::default(),
            holds_waiting: Gauge::default(),
            hold_outcomes: Family::default(),
            background_errors: Counter::default(),
            connections_open: Gauge::default(),
            connections_refused: Family::default(),
            reloads: Family::default(),
            decisions: Family::default(),
            registry: Registry::default(),
        };
        registry.register(
            "build",
            "The program and version that runs",
            Info::new(BuildLabels {
                program: program.to_string(),
                version: env!("CARGO_PKG_VERSION").to_string(),
            }),
        );
        registry.register(
            "inspected",
            "Messages and uploads inspected and recorded, by channel and final action",
            m.inspected.clone(),
        );
        registry.register_with_unit(
            "inspection_duration",
            "Time from receiving a whole message or upload to its committed audit record",
            prometheus_client::registry::Unit::Seconds,
            m.latency.clone(),
        );
        registry.register_with_unit(
            "inspected",
            "Bytes of messages and uploads inspected",
            prometheus_client::registry::Unit::Bytes,
            m.bytes.clone(),
        );
        registry.register(
            "findings",
            "Findings by detector id (counts only, never values)",
            m.findings.clone(),
        );
        registry.register(
            "unscannable",
            "Parts that could not be read, by reason (encrypted, limit exceeded, ...)",
            m.unscannable.clone(),
        );
        registry.register(
            "store_errors",
            "Inspections that could not be judged or recorded (the store failed)",
            m.store_errors.clone(),
        );
        registry.register(
            "fail_mode_answers",
            "Answers given by the configured fail mode instead of a verdict",
            m.fail_mode.clone(),
        );
        registry.register(
            "holds_waiting",
            "Held mails of this gateway waiting for a decision",
            m.holds_waiting.clone(),
        );
        registry.register(
            "holds_closed",
            "Holds of this gateway carried out or expired, by outcome",
            m.hold_outcomes.clone(),
        );
        registry.register(
            "background_errors",
            "Failures of the background work (expiry, release, purge)",
            m.background_errors.clone(),
        );
        registry.register(
            "connections_open",
            "Client connections being served (MTA, mail client, proxy or browser)",
            m.connections_open.clone(),
        );
        registry.register(
            "connections_refused",
            "Client connections refused, by reason",
            m.connections_refused.clone(),
        );
        registry.register(
            "reloads",
            "Reloads of rules and policy (SIGHUP), by outcome",
            m.reloads.clone(),
        );
        registry.register(
            "approval_decisions",
            "Decisions on held mail made through this process (console, link), by decision",
            m.decisions.clone(),
        );
        Metrics { registry, ..m }
    }

    /// Shows every series of `channel` from the start, at zero (so that `rate()` and alerts
    /// over them work before the first mail): inspected by each action, bytes, latency,
    /// store errors; and the reload outcomes.
    pub fn with_channel(self, channel: &str) -> Metrics {
        use ping32dlp::policy::Action;
        for a in [
            Action::Allow,
            Action::Audit,
            Action::Tag,
            Action::Bcc,
            Action::Alert,
            Action::Delay,
            Action::Hold,
            Action::Block,
        ] {
            let _ = self.inspected.get_or_create(&ChannelAction {
                channel: channel.to_string(),
                action: a.as_str().to_string(),
            });
        }
        let c = ChannelLabel {
            channel: channel.to_string(),
        };
        let _ = self.bytes.get_or_create(&c);
        let _ = self.latency.get_or_create(&c);
        let _ = self.store_errors.get_or_create(&c);
        for outcome in ["ok", "failed"] {
            let _ = self.reloads.get_or_create(&OutcomeLabel {
                outcome: outcome.to_string(),
            });
        }
        self
    }

    /// The metrics in the OpenMetrics text format (ends with `# EOF`).
    pub fn encode(&self) -> String {
        let mut s = String::with_capacity(8192);
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut s, &self.registry);
        s
    }

    /// A client connection was accepted.
    pub fn connection_opened(&self) {
        self.connections_open.inc();
    }

    /// A client connection ended.
    pub fn connection_closed(&self) {
        self.connections_open.dec();
    }

    /// A client connection was refused (`max_connections`, `tls_handshake`, ...).
    pub fn connection_refused(&self, reason: &str) {
        self.connections_refused
            .get_or_create(&ReasonLabel {
                reason: reason.to_string(),
            })
            .inc();
    }

    /// The fail mode answered (`tempfail`, `accept`, `block`) on `channel`.
    pub fn fail_mode_answer(&self, channel: &str, mode: &str) {
        self.fail_mode
            .get_or_create(&ChannelMode {
                channel: channel.to_string(),
                mode: mode.to_string(),
            })
            .inc();
    }

    /// An approver decided a held mail here (`approve` or `reject`).
    pub fn decision(&self, decision: &str) {
        self.decisions
            .get_or_create(&DecisionLabel {
                decision: decision.to_string(),
            })
            .inc();
    }

    /// Sets the number of held mails waiting.
    pub fn set_holds_waiting(&self, n: usize) {
        self.holds_waiting.set(i64::try_from(n).unwrap_or(i64::MAX));
    }
}

impl Observer for Metrics {
    fn inspected(&self, i: &Inspected<'_>) {
        let channel = ChannelLabel {
            channel: i.channel.to_string(),
        };
        self.bytes.get_or_create(&channel).inc_by(i.bytes as u64);
        let d = match i.outcome {
            Ok(d) => d,
            Err(_) => {
                self.store_errors.get_or_create(&channel).inc();
                return;
            }
        };
        self.latency.get_or_create(&channel).observe(i.seconds);
        self.inspected
            .get_or_create(&ChannelAction {
                channel: channel.channel,
                action: d.verdict.action.as_str().to_string(),
            })
            .inc();
        for c in &d.report.counts {
            self.findings
                .get_or_create(&DetectorLabel {
                    detector: c.detector.clone(),
                })
                .inc_by(c.findings as u64);
        }
        for u in &d.report.unscannable {
            self.unscannable
                .get_or_create(&ReasonLabel {
                    reason: u.reason.as_str().to_string(),
                })
                .inc();
        }
    }

    fn maintained(&self, m: &Maintenance) {
        for a in m.carried_out.iter().chain(&m.expired) {
            self.hold_outcomes
                .get_or_create(&OutcomeLabel {
                    outcome: a.state.as_str().to_string(),
                })
                .inc();
        }
        self.background_errors.inc_by(m.errors.len() as u64);
    }

    fn reloaded(&self, r: Result<&str, &str>) {
        let outcome = if r.is_ok() { "ok" } else { "failed" };
        self.reloads
            .get_or_create(&OutcomeLabel {
                outcome: outcome.to_string(),
            })
            .inc();
    }
}

/// Held mails waiting for a decision in `store` (what `holds_waiting` shows): those `gateway`
/// holds, or all of them (the console) when `None`.
pub fn holds_waiting(
    store: &dyn ping32dlp::workflow::Store,
    gateway: Option<&str>,
) -> Result<usize, String> {
    let n = store.count_pending(gateway).map_err(|e| e.to_string())?;
    Ok(usize::try_from(n).unwrap_or(usize::MAX))
}

/// The settings every daemon has for this listener (top-level keys of its file).
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// `127.0.0.1:9187`; `None`: no listener.
    pub listen: Option<String>,
    /// Allow an address other than loopback.
    pub allow_remote: bool,
}

impl Settings {
    /// The address to listen on, `None` when off. Errors name the field.
    pub fn address(&self) -> Result<Option<SocketAddr>, String> {
        let Some(s) = self
            .listen
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
        else {
            return Ok(None);
        };
        let addr: SocketAddr = s.parse().map_err(|_| {
            format!("metrics_listen: `{s}` is not an address and port (127.0.0.1:9187, [::1]:9187)")
        })?;
        if !addr.ip().is_loopback() && !self.allow_remote {
            return Err(format!(
                "metrics_listen: `{s}` is not a loopback address; metrics and health are served \
                 without authentication, so set metrics_allow_remote = true to expose them \
                 (and firewall the port)"
            ));
        }
        Ok(Some(addr))
    }
}

/// What `/readyz` and every scrape ask of the daemon: `Ok` with a short text (policy and
/// store) when it can judge mail, else why not. It may set gauges (holds waiting) on the way.
pub type Probe = dyn Fn(&Metrics) -> Result<String, String> + Send + Sync;

/// The listener, started by [`serve`].
pub struct Listener {
    /// The address it is bound to (the port when 0 was asked).
    pub addr: SocketAddr,
}

/// Binds `addr` now (so that a wrong address or a taken port stops the daemon at start) and
/// serves `/metrics`, `/healthz` and `/readyz` on a thread of its own with a small tokio
/// runtime.
pub fn serve(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    probe: Arc<Probe>,
) -> Result<Listener, String> {
    let l = TcpListener::bind(addr).map_err(|e| format!("metrics_listen {addr}: {e}"))?;
    let bound = l.local_addr().map_err(|e| e.to_string())?;
    l.set_nonblocking(true).map_err(|e| e.to_string())?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("metrics listener: {e}"))?;
    std::thread::Builder::new()
        .name("metrics-http".into())
        .spawn(move || rt.block_on(accept_loop(l, metrics, probe)))
        .map_err(|e| format!("metrics listener thread: {e}"))?;
    Ok(Listener { addr: bound })
}

async fn accept_loop(l: TcpListener, metrics: Arc<Metrics>, probe: Arc<Probe>) {
    let Ok(l) = tokio::net::TcpListener::from_std(l) else {
        return;
    };
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok((tcp, _)) = l.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            continue; // closed at once
        };
        let (metrics, probe) = (metrics.clone(), probe.clone());
        tokio::spawn(async move {
            let _permit = permit;
            let svc = service_fn(move |req| answer(req, metrics.clone(), probe.clone()));
            let mut b = hyper::server::conn::http1::Builder::new();
            b.timer(TokioTimer::new())
                .header_read_timeout(HEAD_TIMEOUT)
                .max_buf_size(16 * 1024)
                .keep_alive(true);
            let conn = b.serve_connection(TokioIo::new(tcp), svc);
            let _ = tokio::time::timeout(CONNECTION_LIFETIME, conn).await;
        });
    }
}

/// The probe on the blocking pool, bounded by [`PROBE_TIMEOUT`].
async fn run_probe(metrics: Arc<Metrics>, probe: Arc<Probe>) -> Result<String, String> {
    let job = tokio::task::spawn_blocking(move || probe(&metrics));
    match tokio::time::timeout(PROBE_TIMEOUT, job).await {
        Ok(Ok(r)) => r,
        Ok(Err(_)) => Err("internal error in the readiness check".into()),
        Err(_) => Err(format!(
            "no answer from the store within {} s",
            PROBE_TIMEOUT.as_secs()
        )),
    }
}

fn reply(status: u16, content_type: &str, body: String) -> hyper::Response<Full<Bytes>> {
    let mut r = hyper::Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or_default();
    let h = r.headers_mut();
    if let Ok(v) = content_type.parse() {
        h.insert(hyper::header::CONTENT_TYPE, v);
    }
    h.insert(
        hyper::header::CACHE_CONTROL,
        hyper::header::HeaderValue::from_static("no-store"),
    );
    h.insert(
        "x-content-type-options",
        hyper::header::HeaderValue::from_static("nosniff"),
    );
    r
}

const TEXT: &str = "text/plain; charset=utf-8";

async fn answer(
    req: hyper::Request<hyper::body::Incoming>,
    metrics: Arc<Metrics>,
    probe: Arc<Probe>,
) -> Result<hyper::Response<Full<Bytes>>, Infallible> {
    let head = req.method() == hyper::Method::HEAD;
    if req.method() != hyper::Method::GET && !head {
        let mut r = reply(405, TEXT, "only GET and HEAD\n".into());
        r.headers_mut().insert(
            hyper::header::ALLOW,
            hyper::header::HeaderValue::from_static("GET, HEAD"),
        );
        return Ok(r);
    }
    let mut r = match req.uri().path() {
        "/healthz" => reply(200, TEXT, "ok\n".into()),
        "/readyz" => match run_probe(metrics, probe).await {
            Ok(what) => reply(200, TEXT, format!("ready: {what}\n")),
            Err(why) => reply(503, TEXT, format!("not ready: {why}\n")),
        },
        "/metrics" => {
            // Gauges the probe sets (holds waiting) are fresh; a failing store shows as
            // the last value and in /readyz.
            let _ = run_probe(metrics.clone(), probe).await;
            reply(
                200,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                metrics.encode(),
            )
        }
        _ => reply(404, TEXT, "not found: /metrics, /healthz, /readyz\n".into()),
    };
    if head {
        *r.body_mut() = Full::new(Bytes::new());
    }
    Ok(r)
}

/// The usual probe of a daemon with a pipeline: the store answers (holds waiting counted on
/// the way: this gateway's, or all with `all_gateways`, as the console sees them) and a policy
/// is loaded.
pub fn pipeline_probe<P>(pipeline: P, all_gateways: bool) -> Arc<Probe>
where
    P: std::ops::Deref<Target = ping32dlp::pipeline::Pipeline> + Send + Sync + 'static,
{
    Arc::new(move |m: &Metrics| {
        let wf = pipeline.workflow();
        let me = (!all_gateways).then(|| wf.gateway_name());
        let n =
            holds_waiting(wf.store().as_ref(), me.as_deref()).map_err(|e| format!("store: {e}"))?;
        m.set_holds_waiting(n);
        let policy = pipeline.policy();
        Ok(format!(
            "policy {} ({} rules), store {}, {n} holds waiting",
            policy.name,
            policy.rules.len(),
            wf.store().backend()
        ))
    })
}

/// Starts the listener of a daemon when `settings` ask for one; `/readyz` and each scrape run
/// `probe` (usually [`pipeline_probe`]). Logs where it listens. (The daemon has made
/// `metrics` the pipeline's observer before sharing the pipeline.)
pub fn start_for_pipeline(
    program: &str,
    settings: &Settings,
    metrics: &Arc<Metrics>,
    probe: Arc<Probe>,
) -> Result<Option<Listener>, String> {
    let Some(addr) = settings.address()? else {
        return Ok(None);
    };
    let l = serve(addr, metrics.clone(), probe)?;
    ping32dlp::service::log_event(
        program,
        "metrics_listening",
        &[],
        &format!(
            "metrics and health on http://{}/metrics, /healthz, /readyz",
            l.addr
        ),
    );
    Ok(Some(l))
}

/// [`start_for_pipeline`] for a daemon's `main`: a listener that cannot start (a taken port)
/// stops the daemon with the error and exit status 2, like any other configuration error.
pub fn start_or_exit(
    program: &str,
    settings: &Settings,
    metrics: &Arc<Metrics>,
    probe: Arc<Probe>,
) {
    if let Err(e) = start_for_pipeline(program, settings, metrics, probe) {
        eprintln!("{program}: {e}");
        std::process::exit(2);
    }
}

/// [`start_or_exit`] for a mail gateway (milter, proxy, ICAP hook): `/readyz` and each scrape
/// ask `pipeline`'s store for this gateway's holds ([`pipeline_probe`]).
pub fn start_gateway(
    program: &str,
    settings: &Settings,
    metrics: &Arc<Metrics>,
    pipeline: &'static ping32dlp::pipeline::Pipeline,
) {
    start_or_exit(program, settings, metrics, pipeline_probe(pipeline, false));
}

#[cfg(test)]
mod tests;
