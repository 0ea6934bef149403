//! Alert sinks: a JSON Lines file (appended and synced at once), syslog (RFC 5424, over UDP or
//! over TCP with octet-counting framing, RFC 6587) and a webhook (HTTP POST of the JSON alert).
//! Network sinks go through an outbox in the store: an alert is queued durably, a worker thread
//! delivers it and retries with exponential backoff (1 s, 2 s, 4 s, ... up to an hour) until
//! `max_attempts`; undelivered alerts survive restarts. Alerts carry masked samples only.

use std::io::Write;
use std::net::{TcpStream, ToSocketAddrs, UdpSocket};
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::json;

use super::{AuditRecord, Result, Store, WorkflowError};
pub use crate::policy::AlertConfig;
use crate::policy::{syslog_target, Action};

/// A queued network alert.
#[derive(Debug, Clone)]
pub struct OutboxItem {
    /// Row id.
    pub id: i64,
    /// `syslog` or `webhook`.
    pub sink: String,
    /// The alert (JSON).
    pub payload: String,
    /// Attempts so far.
    pub attempts: u32,
}

/// The alert of a record: what a SOC needs, values masked.
pub fn alert_json(rec: &AuditRecord) -> serde_json::Value {
    json!({
        "type": "ping32dlp.alert",
        "time": crate::timeutil::rfc3339(rec.time, 0),
        "record": rec.id,
        "channel": rec.channel,
        "user": rec.user,
        "host": rec.host,
        "client_app": rec.client_app,
        "sender": rec.sender,
        "recipients": rec.recipients.iter().map(|r| json!({"address": r.address, "external": r.external})).collect::<Vec<_>>(),
        "subject": rec.subject,
        "message_id": rec.message_id,
        "queue_id": rec.queue_id,
        "action": rec.action,
        "would_action": rec.would_action,
        "risk": rec.risk,
        "rules": rec.matched.iter().map(|m| json!({"rule": m.rule, "action": m.action, "mode": m.mode, "severity": m.severity, "reasons": m.reasons})).collect::<Vec<_>>(),
        "findings": rec.findings.iter().filter(|f| f.location == "*").map(|f| json!({"detector": f.detector, "count": f.count, "samples": f.samples})).collect::<Vec<_>>(),
        "attachments": rec.attachments.iter().filter(|a| a.depth == 0).map(|a| json!({"name": a.name, "type": a.kind, "size": a.size, "sha256": a.sha256})).collect::<Vec<_>>(),
        "unscannable": rec.unscannable.iter().map(|(l, r, _)| json!({"location": l, "reason": r})).collect::<Vec<_>>(),
        "approval": rec.approval,
    })
}

/// JSON text with every remaining control character (DEL, C1) and bidirectional formatting
/// character written as a `\uXXXX` escape: serde_json escapes only U+0000..U+001F, and a
/// subject or file name with U+202E or ESC sequences must not act on a terminal or a log viewer
/// that shows the alert. Such characters only occur inside JSON strings, where the escape is
/// valid and means the same character.
pub fn plain_json(s: &str) -> String {
    if !s
        .chars()
        .any(|c| c.is_control() || crate::text::is_bidi_control(c))
    {
        return s.to_string();
    }
    let mut o = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        if c.is_control() || crate::text::is_bidi_control(c) {
            o.push_str(&format!("\\u{:04x}", c as u32));
        } else {
            o.push(c);
        }
    }
    o
}

/// The configured sinks and the outbox worker.
pub struct AlertSinks {
    cfg: AlertConfig,
    store: Arc<dyn Store>,
    file: Mutex<Option<std::fs::File>>,
    notify: Mutex<Option<Sender<()>>>,
    worker: Mutex<Option<JoinHandle<()>>>,
    callback: Mutex<Option<AlertCallback>>,
}

/// An in-process alert sink (the C ABI's alert callback): called with each alert's JSON, on the
/// thread that recorded the message, after the JSONL file was written.
pub type AlertCallback = Arc<dyn Fn(&str) + Send + Sync>;

impl AlertSinks {
    /// Opens the file sink and starts the delivery worker (which first retries what earlier runs
    /// left in the outbox).
    pub fn new(cfg: AlertConfig, store: Arc<dyn Store>) -> Result<AlertSinks> {
        cfg.validate().map_err(WorkflowError::Io)?;
        let file = match &cfg.jsonl {
            Some(p) => {
                if let Some(d) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(d)
                        .map_err(|e| WorkflowError::Io(format!("{}: {e}", d.display())))?;
                }
                let mut o = std::fs::OpenOptions::new();
                o.append(true).create(true);
                #[cfg(unix)]
                {
                    use std::os::unix::fs::OpenOptionsExt;
                    o.mode(0o640);
                }
                Some(
                    o.open(p)
                        .map_err(|e| WorkflowError::Io(format!("{}: {e}", p.display())))?,
                )
            }
            None => None,
        };
        let (notify, worker) = if cfg.syslog.is_some() || cfg.webhook.is_some() {
            let (tx, rx) = mpsc::channel::<()>();
            let (c2, s2) = (cfg.clone(), store.clone());
            let h = std::thread::Builder::new()
                .name("ping32dlp-alerts".into())
                .spawn(move || {
                    let deliverer = Deliverer::new(c2);
                    loop {
                        deliverer.pass(&*s2);
                        match rx.recv_timeout(Duration::from_millis(500)) {
                            Ok(()) => while rx.try_recv().is_ok() {},
                            Err(RecvTimeoutError::Timeout) => {}
                            Err(RecvTimeoutError::Disconnected) => {
                                deliverer.pass(&*s2);
                                return;
                            }
                        }
                    }
                })
                .map_err(|e| WorkflowError::Io(e.to_string()))?;
            (Some(tx), Some(h))
        } else {
            (None, None)
        };
        Ok(AlertSinks {
            cfg,
            store,
            file: Mutex::new(file),
            notify: Mutex::new(notify),
            worker: Mutex::new(worker),
            callback: Mutex::new(None),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &AlertConfig {
        &self.cfg
    }

    /// Sets (or with `None` removes) the in-process callback.
    pub fn set_callback(&self, cb: Option<AlertCallback>) {
        match self.callback.lock() {
            Ok(mut g) => *g = cb,
            Err(e) => *e.into_inner() = cb,
        }
    }

    fn callback(&self) -> Option<AlertCallback> {
        self.callback.lock().ok().and_then(|g| g.clone())
    }

    /// True when a record's final action calls for an alert.
    pub fn wants(&self, action: Action) -> bool {
        action >= self.cfg.min_action && (!self.cfg.is_empty() || self.callback().is_some())
    }

    /// Sends the alert of a record: written to the file now, queued for the network sinks.
    pub fn send(&self, rec: &AuditRecord) -> Result<()> {
        let payload = plain_json(&alert_json(rec).to_string());
        if let Ok(mut f) = self.file.lock() {
            if let Some(f) = f.as_mut() {
                let p = self
                    .cfg
                    .jsonl
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default();
                f.write_all(format!("{payload}\n").as_bytes())
                    .and_then(|_| f.sync_data())
                    .map_err(|e| WorkflowError::Io(format!("{p}: {e}")))?;
            }
        }
        if let Some(cb) = self.callback() {
            cb(&payload);
        }
        let now = crate::timeutil::now();
        if self.cfg.syslog.is_some() {
            self.store.outbox_push("syslog", &payload, now)?;
        }
        if self.cfg.webhook.is_some() {
            self.store.outbox_push("webhook", &payload, now)?;
        }
        if let Ok(n) = self.notify.lock() {
            if let Some(n) = n.as_ref() {
                let _ = n.send(());
            }
        }
        Ok(())
    }

    /// Stops the worker after one last delivery pass (what is still undelivered stays queued).
    pub fn shutdown(&self) {
        if let Ok(mut n) = self.notify.lock() {
            n.take();
        }
        if let Ok(mut w) = self.worker.lock() {
            if let Some(w) = w.take() {
                let _ = w.join();
            }
        }
    }
}

impl Drop for AlertSinks {
    fn drop(&mut self) {
        self.shutdown();
    }
}

struct Deliverer {
    cfg: AlertConfig,
    agent: ureq::Agent,
    hostname: String,
}

impl Deliverer {
    fn new(cfg: AlertConfig) -> Deliverer {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(10)))
            .http_status_as_error(false)
            .build()
            .into();
        let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "-".into());
        Deliverer {
            cfg,
            agent,
            hostname,
        }
    }

    /// Delivers what is due; failures are rescheduled with backoff.
    fn pass(&self, store: &dyn Store) {
        loop {
            let now = crate::timeutil::now();
            let Ok(items) = store.outbox_claim(now, 120, 50) else {
                return;
            };
            if items.is_empty() {
                return;
            }
            for it in items {
                let r = match it.sink.as_str() {
                    "syslog" => self.syslog(&it.payload),
                    "webhook" => self.webhook(&it.payload),
                    other => Err(format!("unknown sink {other}")),
                };
                let attempts = it.attempts + 1;
                let _ = match r {
                    Ok(()) => store.outbox_done(it.id),
                    Err(e) => {
                        let next = if attempts >= self.cfg.max_attempts {
                            -1
                        } else {
                            crate::timeutil::now()
                                + (1i64 << attempts.min(12).saturating_sub(1)).min(3600)
                        };
                        store.outbox_retry(it.id, attempts, next, &e)
                    }
                };
            }
        }
    }

    fn syslog(&self, payload: &str) -> std::result::Result<(), String> {
        let target = self
            .cfg
            .syslog
            .as_deref()
            .ok_or("no syslog sink configured")?;
        let (tcp, addr) = syslog_target(target)?;
        let v: serde_json::Value = serde_json::from_str(payload).map_err(|e| e.to_string())?;
        let action = v["action"].as_str().unwrap_or("alert");
        // Severity: warning for block and hold, notice for the rest.
        let severity = if matches!(action, "block" | "hold") {
            4
        } else {
            5
        };
        let pri = u32::from(self.cfg.facility) * 8 + severity;
        let time = v["time"].as_str().unwrap_or("-");
        let sd = format!(
            "[ping32dlp@32473 record=\"{}\" action=\"{}\" risk=\"{}\"]",
            v["record"].as_i64().unwrap_or(0),
            sd_escape(action),
            v["risk"].as_u64().unwrap_or(0)
        );
        let mut body = payload.to_string();
        if !tcp && body.len() > 7000 {
            // Keep a datagram deliverable: drop the lists, keep the summary.
            let mut small = v.clone();
            for k in [
                "findings",
                "attachments",
                "rules",
                "recipients",
                "unscannable",
            ] {
                let n = small[k].as_array().map_or(0, Vec::len);
                small[k] = json!(format!("{n} item(s), see the audit record"));
            }
            body = plain_json(&small.to_string());
        }
        let msg = format!(
            "<{pri}>1 {time} {} ping32dlp {} alert {sd} \u{feff}{body}",
            self.hostname,
            std::process::id()
        );
        let sock = addr
            .to_socket_addrs()
            .map_err(|e| format!("{addr}: {e}"))?
            .next()
            .ok_or_else(|| format!("{addr}: no address"))?;
        if tcp {
            let mut s = TcpStream::connect_timeout(&sock, Duration::from_secs(5))
                .map_err(|e| format!("{addr}: {e}"))?;
            s.set_write_timeout(Some(Duration::from_secs(5)))
                .map_err(|e| e.to_string())?;
            s.write_all(format!("{} {msg}", msg.len()).as_bytes())
                .map_err(|e| format!("{addr}: {e}"))?;
            s.flush().map_err(|e| e.to_string())?;
        } else {
            let bind = if sock.is_ipv6() {
                "[::]:0"
            } else {
                "0.0.0.0:0"
            };
            let u = UdpSocket::bind(bind).map_err(|e| e.to_string())?;
            u.send_to(msg.as_bytes(), sock)
                .map_err(|e| format!("{addr}: {e}"))?;
        }
        Ok(())
    }

    fn webhook(&self, payload: &str) -> std::result::Result<(), String> {
        let url = self.cfg.webhook.as_deref().ok_or("no webhook configured")?;
        let mut req = self
            .agent
            .post(url)
            .header("Content-Type", "application/json")
            .header(
                "User-Agent",
                concat!("ping32dlp/", env!("CARGO_PKG_VERSION")),
            );
        if let Some(a) = &self.cfg.webhook_authorization {
            req = req.header("Authorization", a);
        }
        let resp = req.send(payload).map_err(|e| format!("{url}: {e}"))?;
        let status = resp.status().as_u16();
        if (200..300).contains(&status) {
            Ok(())
        } else {
            Err(format!("{url}: HTTP {status}"))
        }
    }
}

fn sd_escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace(']', "\\]")
}
