//! Where alerts go: the `[alerts]` table of a policy, read by the policy parser and used by the
//! workflow's alert sinks (`workflow::AlertSinks`).

use std::path::PathBuf;

use super::Action;

/// Where alerts go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertConfig {
    /// JSON Lines file.
    pub jsonl: Option<PathBuf>,
    /// Syslog collector: `udp://host:port` or `tcp://host:port`.
    pub syslog: Option<String>,
    /// Syslog facility number (16 = local0).
    pub facility: u8,
    /// Webhook URL (`http://` or `https://`).
    pub webhook: Option<String>,
    /// `Authorization` header value for the webhook.
    pub webhook_authorization: Option<String>,
    /// Least final action that sends an alert (default `alert`).
    pub min_action: Action,
    /// Delivery attempts before a network alert is given up (kept in the outbox as failed).
    pub max_attempts: u32,
}

impl Default for AlertConfig {
    fn default() -> Self {
        AlertConfig {
            jsonl: None,
            syslog: None,
            facility: 16,
            webhook: None,
            webhook_authorization: None,
            min_action: Action::Alert,
            max_attempts: 10,
        }
    }
}

impl AlertConfig {
    /// True when no sink is configured.
    pub fn is_empty(&self) -> bool {
        self.jsonl.is_none() && self.syslog.is_none() && self.webhook.is_none()
    }

    /// Checks the syslog and webhook addresses; the message names what is wrong.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if let Some(s) = &self.syslog {
            syslog_target(s)?;
        }
        if let Some(w) = &self.webhook {
            if !(w.starts_with("http://") || w.starts_with("https://")) || w.len() < 10 {
                return Err(format!("webhook `{w}`: use an http:// or https:// URL"));
            }
        }
        if self.facility > 23 {
            return Err(format!("syslog facility {}: use 0 to 23", self.facility));
        }
        Ok(())
    }
}

/// `udp://host:port` / `tcp://host:port`: (TCP, `host:port`).
pub fn syslog_target(s: &str) -> std::result::Result<(bool, String), String> {
    let (tcp, rest) = if let Some(r) = s.strip_prefix("udp://") {
        (false, r)
    } else if let Some(r) = s.strip_prefix("tcp://") {
        (true, r)
    } else {
        return Err(format!(
            "syslog `{s}`: use udp://host:port or tcp://host:port"
        ));
    };
    let rest = rest.trim_end_matches('/');
    match rest.rsplit_once(':') {
        Some((h, p)) if !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0) => {
            Ok((tcp, rest.to_string()))
        }
        _ => Err(format!(
            "syslog `{s}`: needs a host and a port, e.g. udp://127.0.0.1:514"
        )),
    }
}
