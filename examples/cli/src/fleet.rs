//! The endpoint fleet: `agent enrol` on a PC, `fleet token | list | revoke` for the admin.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use ping32dlp::timeutil;
use ping32dlp::workflow::{agent, default_state_dir, fleet, StoreConfig};
use serde_json::json;

use crate::work::StateArgs;
use crate::AnyErr;

#[derive(Subcommand)]
pub enum AgentCmd {
    /// Enrol this PC with the company's fleet server (the console) with a one-time token from
    /// its Agents page (or `ping32dlp fleet token`); writes the agent's credential (0600) to
    /// the state directory, where the proxy's `store = "https://..."` finds it.
    Enrol(EnrolArgs),
}

#[derive(Args)]
pub struct EnrolArgs {
    /// The fleet server: https://console.example.co.jp:8025
    #[arg(long, value_name = "URL")]
    server: String,
    /// The one-time enrolment token.
    #[arg(
        long,
        value_name = "TOKEN",
        env = "PING32DLP_ENROL_TOKEN",
        hide_env_values = true
    )]
    token: String,
    /// This agent's name in the console and the audit trail (default: the host name).
    #[arg(long)]
    name: Option<String>,
    /// The agent's state directory (the proxy's `state_dir`).
    #[arg(long, value_name = "DIR")]
    state: Option<PathBuf>,
    /// CA certificates (PEM) to verify the server with (the proxy's `store_ca_file`).
    #[arg(long, value_name = "FILE")]
    ca_file: Option<PathBuf>,
    /// Write the credential here instead (the proxy's `store_password_file`).
    #[arg(long, value_name = "FILE")]
    credential_file: Option<PathBuf>,
}

#[derive(Subcommand)]
pub enum FleetCmd {
    /// Make a one-time enrolment token (printed once; the store keeps its SHA-256).
    Token {
        /// Whom or what it is for (`sales PC 12`).
        #[arg(long)]
        label: String,
        /// Days it stays valid.
        #[arg(long, default_value_t = 7)]
        days: i64,
        #[command(flatten)]
        state: StateArgs,
    },
    /// Enrolled agents: name, last seen, version, policy, backlog, records, state (JSON lines).
    List {
        #[command(flatten)]
        state: StateArgs,
    },
    /// Revoke an agent's credential: the server refuses it from then on.
    Revoke {
        /// The agent's name.
        name: String,
        #[command(flatten)]
        state: StateArgs,
    },
}

pub fn agent_cmd(cmd: AgentCmd) -> Result<u8, AnyErr> {
    match cmd {
        AgentCmd::Enrol(a) => {
            let name = a.name.unwrap_or_else(ping32dlp::workflow::host_name);
            if !fleet::valid_agent_name(&name) {
                return Err(format!(
                    "--name `{name}`: use 1 to 64 of A-Z a-z 0-9 . _ - (not starting with . or -)"
                )
                .into());
            }
            let mut c = StoreConfig::new(a.server.clone());
            c.ca_file = a.ca_file;
            c.password_file = a.credential_file;
            let dir = a.state.unwrap_or_else(default_state_dir);
            let (name, path) = agent::enrol(&dir, &c, &a.token, &name)?;
            println!(
                "{}",
                json!({"enrolled": name, "server": a.server, "credential_file": path})
            );
            Ok(0)
        }
    }
}

pub fn fleet_cmd(cmd: FleetCmd) -> Result<u8, AnyErr> {
    match cmd {
        FleetCmd::Token { label, days, state } => {
            let label = label.trim();
            if label.is_empty() {
                return Err("--label: say whom the token is for".into());
            }
            let store = state.open_or_create_store()?;
            let actor = std::env::var("USER").unwrap_or_else(|_| "cli".into());
            let (token, row) =
                fleet::new_enrol_token(label, &format!("cli:{actor}"), timeutil::now(), days);
            store.enrol_token_add(&row)?;
            println!(
                "{}",
                json!({"token": token, "label": label, "expires": timeutil::rfc3339(row.expires, 0)})
            );
            Ok(0)
        }
        FleetCmd::List { state } => {
            for a in state.open_store()?.agents()? {
                println!(
                    "{}",
                    json!({
                        "name": a.name,
                        "label": a.label,
                        "enrolled": timeutil::rfc3339(a.created, 0),
                        "last_seen": a.last_seen.map(|t| timeutil::rfc3339(t, 0)),
                        "user": a.status.user,
                        "host": a.status.host,
                        "version": a.status.version,
                        "policy_version": a.status.policy_version,
                        "backlog": a.status.backlog,
                        "records": a.last_seq,
                        "revoked": a.revoked.map(|t| timeutil::rfc3339(t, 0)),
                    })
                );
            }
            Ok(0)
        }
        FleetCmd::Revoke { name, state } => {
            if state.open_store()?.agent_revoke(&name, timeutil::now())? {
                println!("{}", json!({"revoked": name}));
                Ok(0)
            } else {
                Err(format!("no agent `{name}`, or it is revoked already").into())
            }
        }
    }
}
