//! Policy and workflow commands: `process`, `policy`, `audit`, `approvals`, `evidence`.

use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use clap::{Args, Subcommand};
use ping32dlp::pipeline::{apply_tags, Pipeline};
use ping32dlp::policy::{self, Action, Context, Facts, NoHistory, Policy, Verdict};
use ping32dlp::timeutil;
use ping32dlp::workflow::{
    default_state_dir, open_store, ApprovalState, AuditQuery, AuditRecord, Retention, SqliteStore,
    Store, StoreConfig, Workflow, WorkflowConfig,
};
use ping32dlp::{ExtractOptions, Scanner};
use serde_json::{json, Value};

use crate::{build_engine, AnyErr, RuleArgs};

#[derive(Args, Clone, Default)]
pub struct StateArgs {
    /// State directory: audit database, evidence copies, approval key. Default:
    /// $PING32DLP_STATE_DIR, else /var/lib/ping32dlp as root, else ~/.local/state/ping32dlp.
    #[arg(long, value_name = "DIR")]
    state: Option<PathBuf>,
    /// The shared store instead of the state directory's SQLite database:
    /// postgres://user@host:port/db (password from --store-password-file,
    /// $PING32DLP_STORE_PASSWORD or $PGPASSWORD).
    #[arg(
        long,
        value_name = "URL",
        env = "PING32DLP_STORE",
        hide_env_values = true
    )]
    store: Option<String>,
    /// A file holding the store's password.
    #[arg(long, value_name = "FILE")]
    store_password_file: Option<PathBuf>,
    /// CA certificates (PEM) to verify the store's TLS certificate with.
    #[arg(long, value_name = "FILE")]
    store_ca_file: Option<PathBuf>,
}

impl StateArgs {
    fn dir(&self) -> PathBuf {
        self.state.clone().unwrap_or_else(default_state_dir)
    }

    /// The shared store's settings, if one is named.
    pub fn store_config(&self) -> Option<StoreConfig> {
        let url = self.store.as_ref().filter(|u| !u.is_empty())?;
        let mut c = StoreConfig::new(url.clone());
        c.password_file = self.store_password_file.clone();
        c.ca_file = self.store_ca_file.clone();
        Some(c)
    }

    /// The existing store (an error when there is no audit database in the state directory).
    pub fn open_store(&self) -> Result<Arc<dyn Store>, AnyErr> {
        self.store()
    }

    /// The store, made when missing (a new state directory).
    pub fn open_or_create_store(&self) -> Result<Arc<dyn Store>, AnyErr> {
        Ok(open_store(&self.dir(), self.store_config().as_ref())?)
    }

    fn store(&self) -> Result<Arc<dyn Store>, AnyErr> {
        if let Some(c) = self.store_config() {
            return Ok(open_store(&self.dir(), Some(&c))?);
        }
        let db = self.dir().join("audit.db");
        if !db.exists() {
            return Err(format!(
                "no audit database at {} (run `ping32dlp process` first, or pass --state DIR or --store URL)",
                db.display()
            )
            .into());
        }
        Ok(Arc::new(SqliteStore::open(&db)?))
    }
}

#[derive(Args, Clone)]
pub struct ContextArgs {
    /// Message context, KEY=VALUE, repeatable: channel, user, host, app, client_addr, tls,
    /// from (envelope sender), to (envelope recipients, comma-separated), group (sender group),
    /// origin (ATTACHMENT=PATH-OR-APP), queue_id, time (RFC 3339 or Unix seconds).
    #[arg(long = "context", value_name = "KEY=VALUE")]
    context: Vec<String>,
}

impl ContextArgs {
    fn build(&self, default_channel: &str, offset: i32) -> Result<Context, AnyErr> {
        let mut c = Context {
            channel: default_channel.to_string(),
            ..Context::default()
        };
        for kv in &self.context {
            let (k, v) = kv
                .split_once('=')
                .ok_or_else(|| format!("--context `{kv}`: use KEY=VALUE"))?;
            let v = v.trim().to_string();
            match k.trim() {
                "channel" => {
                    if !["milter", "proxy", "webmail", "api", "cli"].contains(&v.as_str()) {
                        return Err(format!(
                            "--context channel=`{v}`: use milter, proxy, webmail, api or cli"
                        )
                        .into());
                    }
                    c.channel = v;
                }
                "user" => c.user = Some(v),
                "host" => c.host = Some(v),
                "app" | "client_app" => c.client_app = Some(v),
                "client_addr" => c.client_addr = Some(v),
                "tls" => c.tls = Some(v),
                "from" => c.envelope_from = Some(v),
                "to" => c.envelope_to.extend(
                    v.split(',')
                        .map(|s| s.trim().to_string())
                        .filter(|s| !s.is_empty()),
                ),
                "group" => c.groups.push(v),
                "origin" => {
                    let (n, o) = v.split_once('=').ok_or_else(|| {
                        format!("--context origin=`{v}`: use origin=ATTACHMENT-NAME=PATH")
                    })?;
                    c.origins.push((n.to_string(), o.to_string()));
                }
                "queue_id" => c.queue_id = Some(v),
                "time" => {
                    c.time = Some(match v.parse::<i64>() {
                        Ok(t) => t,
                        Err(_) => timeutil::parse_rfc3339(&v, offset).ok_or_else(|| {
                            format!("--context time=`{v}`: use RFC 3339 (2026-11-02T10:00:00+09:00) or Unix seconds")
                        })?,
                    })
                }
                other => {
                    return Err(format!(
                        "--context: unknown key `{other}` (use channel, user, host, app, client_addr, tls, from, to, group, origin, queue_id, time)"
                    )
                    .into())
                }
            }
        }
        Ok(c)
    }
}

pub fn load_policy(path: Option<&Path>) -> Result<Policy, AnyErr> {
    Ok(match path {
        Some(p) => policy::Policy::from_file(p)?,
        None => policy::Policy::default_monitor(),
    })
}

fn workflow_for(state: &StateArgs, pol: &Policy) -> Result<Workflow, AnyErr> {
    let mut cfg = WorkflowConfig::from_policy(state.dir(), pol);
    cfg.store = state.store_config();
    Ok(Workflow::open(cfg)?)
}

/// `--since 30d`, `--since 2026-11-01`, `--since 2026-11-01T09:00:00+09:00`.
fn parse_when(s: &str, offset: i32, field: &str) -> Result<i64, AnyErr> {
    timeutil::parse_when(s, offset).ok_or_else(|| {
        format!(
            "{field} `{s}`: use a duration (30d, 12h) or a date (2026-11-01, 2026-11-01T09:00:00+09:00)"
        )
        .into()
    })
}

// ---------------------------------------------------------------- process

#[derive(Args)]
pub struct ProcessArgs {
    /// Messages (.eml) or folders of them; `-` reads one message from stdin.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// Policy file (TOML). Default: the built-in monitor-mode policy.
    #[arg(long, value_name = "FILE")]
    policy: Option<PathBuf>,
    #[command(flatten)]
    state: StateArgs,
    #[command(flatten)]
    context: ContextArgs,
    /// Process every input this many times (load and durability tests).
    #[arg(long, default_value_t = 1)]
    repeat: usize,
    /// Worker threads.
    #[arg(long, default_value_t = 1)]
    jobs: usize,
    /// A password to try on encrypted attachments. Repeatable.
    #[arg(long = "password", value_name = "PASSWORD")]
    passwords: Vec<String>,
    /// Write each message with the verdict's tags applied (added headers, subject prefix) to
    /// this folder.
    #[arg(long, value_name = "DIR")]
    tagged_out: Option<PathBuf>,
    #[command(flatten)]
    rules: RuleArgs,
}

/// Inspects, judges and records messages: one JSON line per message, printed only after its
/// audit record is committed (an acknowledgement).
pub fn process(a: ProcessArgs) -> Result<u8, AnyErr> {
    let pol = load_policy(a.policy.as_deref())?;
    let ctx = a.context.build("cli", pol.utc_offset_min)?;
    let engine = Arc::new(build_engine(&a.rules)?);
    pol.check_detectors(&engine)?;
    let wf = Arc::new(workflow_for(&a.state, &pol)?);
    let pipeline = Arc::new(Pipeline::new(
        engine,
        pol,
        wf.clone(),
        ExtractOptions::default(),
    ));
    let mut inputs: Vec<PathBuf> = Vec::new();
    let mut errors = Vec::new();
    let stdin_data = if a.paths.iter().any(|p| p.as_os_str() == "-") {
        let mut b = Vec::new();
        io::Read::read_to_end(&mut io::stdin(), &mut b)?;
        Some(b)
    } else {
        None
    };
    let files: Vec<PathBuf> = a
        .paths
        .iter()
        .filter(|p| p.as_os_str() != "-")
        .cloned()
        .collect();
    crate::collect_files(&files, &mut inputs, &mut errors);
    for (p, e) in &errors {
        eprintln!("ping32dlp: {}: {e}", p.display());
    }
    if stdin_data.is_some() {
        inputs.push(PathBuf::from("-"));
    }
    if let Some(d) = &a.tagged_out {
        std::fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
    }
    let mut queue: Vec<(usize, PathBuf)> = Vec::new();
    for r in 0..a.repeat.max(1) {
        for p in &inputs {
            queue.push((r, p.clone()));
        }
    }
    queue.reverse();
    let queue = Mutex::new(queue);
    let out = Mutex::new(io::stdout());
    let failed = Mutex::new(false);
    let worst = Mutex::new(Action::Allow);
    std::thread::scope(|s| {
        for _ in 0..a.jobs.clamp(1, 64) {
            s.spawn(|| loop {
                let Some((round, path)) = queue.lock().unwrap().pop() else {
                    return;
                };
                let data = if path.as_os_str() == "-" {
                    stdin_data.clone().unwrap_or_default()
                } else {
                    match std::fs::read(&path) {
                        Ok(d) => d,
                        Err(e) => {
                            eprintln!("ping32dlp: {}: {e}", path.display());
                            *failed.lock().unwrap() = true;
                            continue;
                        }
                    }
                };
                match pipeline.process_message(&data, &ctx, &a.passwords, true) {
                    Ok(d) => {
                        let v = &d.verdict;
                        {
                            let mut w = worst.lock().unwrap();
                            *w = (*w).max(v.action);
                        }
                        if let Some(dir) = &a.tagged_out {
                            let name = format!(
                                "{}-{round}.eml",
                                path.file_stem().map_or("stdin".into(), |s| s.to_string_lossy())
                            );
                            if let Err(e) = std::fs::write(dir.join(&name), apply_tags(&data, v)) {
                                eprintln!("ping32dlp: {name}: {e}");
                            }
                        }
                        let line = json!({
                            "path": path.display().to_string(),
                            "record": d.record.id,
                            "action": v.action.as_str(),
                            "would_action": d.record.would_action,
                            "risk": v.risk,
                            "rules": v.matched.iter().map(|m| json!({"rule": m.rule, "action": m.action.as_str(), "mode": m.mode.as_str()})).collect::<Vec<_>>(),
                            "approval": d.approval.as_ref().map(|x| x.id.clone()),
                            "message": v.user_message("en"),
                        });
                        let mut o = out.lock().unwrap();
                        let _ = writeln!(o, "{line}");
                        let _ = o.flush();
                    }
                    Err(e) => {
                        eprintln!("ping32dlp: {}: {e}", path.display());
                        *failed.lock().unwrap() = true;
                    }
                }
            });
        }
    });
    drop(pipeline);
    let failed = *failed.lock().unwrap() || !errors.is_empty();
    Ok(if failed { 2 } else { 0 })
}

// ---------------------------------------------------------------- policy

#[derive(Subcommand)]
pub enum PolicyCmd {
    /// Check a policy file: the first error with file, line and field, or a summary.
    Check {
        /// Policy file (TOML).
        file: PathBuf,
        #[command(flatten)]
        rules: RuleArgs,
    },
    /// Explain the verdict of a policy on a message (nothing is recorded).
    Test(PolicyTestArgs),
    /// Re-evaluate the stored audit records with another policy and print what would change.
    Replay(ReplayArgs),
    /// Print the built-in default policy (monitor mode), to start your own from.
    Default,
}

#[derive(Args)]
pub struct PolicyTestArgs {
    /// Policy file (TOML).
    policy: PathBuf,
    /// The message (.eml).
    message: PathBuf,
    #[command(flatten)]
    context: ContextArgs,
    /// Use this state directory's audit trail as history (new domains, rates, PPAP pairs).
    /// Without it, nothing was sent before.
    #[arg(long, value_name = "DIR")]
    state: Option<PathBuf>,
    /// A password to try on encrypted attachments. Repeatable.
    #[arg(long = "password", value_name = "PASSWORD")]
    passwords: Vec<String>,
    /// JSON output.
    #[arg(long)]
    json: bool,
    /// Judge the mail as if sent at this time (RFC 3339 or Unix seconds; default: now, as live
    /// processing does). The message's own Date header is never used: the sender writes it.
    #[arg(long, value_name = "TIME")]
    time: Option<String>,
    #[command(flatten)]
    rules: RuleArgs,
}

#[derive(Args)]
pub struct ReplayArgs {
    /// The policy to try (TOML).
    #[arg(long, value_name = "FILE")]
    policy: PathBuf,
    /// Records since (a duration such as 30d, or a date).
    #[arg(long, default_value = "30d")]
    since: String,
    #[command(flatten)]
    state: StateArgs,
    /// Examples shown per change.
    #[arg(long, default_value_t = 3)]
    examples: usize,
    /// JSON output.
    #[arg(long)]
    json: bool,
}

pub fn policy_cmd(cmd: PolicyCmd) -> Result<u8, AnyErr> {
    match cmd {
        PolicyCmd::Check { file, rules } => {
            let p = policy::Policy::from_file(&file)?;
            p.check_detectors(&build_engine(&rules)?)?;
            let (mut enforce, mut monitor) = (0, 0);
            for r in &p.rules {
                match r.mode {
                    policy::Mode::Enforce => enforce += 1,
                    policy::Mode::Monitor => monitor += 1,
                }
            }
            println!(
                "{}: ok: policy `{}`, {} rule(s) ({enforce} enforce, {monitor} monitor), internal domains: {}",
                file.display(),
                p.name,
                p.rules.len(),
                if p.internal_domains.is_empty() { "the sender's own".to_string() } else { p.internal_domains.join(", ") }
            );
            Ok(0)
        }
        PolicyCmd::Default => {
            print!("{}", policy::DEFAULT_POLICY);
            Ok(0)
        }
        PolicyCmd::Test(a) => policy_test(a),
        PolicyCmd::Replay(a) => replay(a),
    }
}

fn verdict_json(v: &Verdict, facts: &Facts) -> Value {
    let mut j = v.to_json();
    j["facts"] = json!({
        "channel": facts.channel,
        "sender": facts.sender,
        "recipients": facts.recipients,
        "roles": facts.recipients.iter().enumerate().map(|(i, _)| facts.roles.get(i).copied().unwrap_or_default().as_str()).collect::<Vec<_>>(),
        "header_from": facts.header_from,
        "attachments": facts.attachments.iter().map(|a| json!({"location": a.location, "type": a.kind, "size": a.size, "extension_mismatch": a.extension_mismatch, "origin": a.origin})).collect::<Vec<_>>(),
        "findings": facts.findings.iter().filter(|f| f.location == "*").map(|f| json!({"detector": f.detector, "count": f.count, "unique": f.unique[0], "samples": f.samples})).collect::<Vec<_>>(),
        "unscannable": facts.unscannable.iter().map(|(l, r)| json!({"location": l, "reason": r})).collect::<Vec<_>>(),
        "password_candidates": facts.password_candidates,
    });
    j
}

fn policy_test(a: PolicyTestArgs) -> Result<u8, AnyErr> {
    let pol = policy::Policy::from_file(&a.policy)?;
    let ctx = a.context.build("cli", pol.utc_offset_min)?;
    let engine = Arc::new(build_engine(&a.rules)?);
    pol.check_detectors(&engine)?;
    let raw = std::fs::read(&a.message).map_err(|e| format!("{}: {e}", a.message.display()))?;
    let mut scanner = Scanner::new(engine);
    let opts = ExtractOptions {
        passwords: a.passwords.clone(),
        ..ExtractOptions::default()
    };
    let report = scanner.inspect_message(&raw, &opts);
    let mut ctx = ctx;
    // Like live processing: now, or the time given. Never the Date header, which the sender
    // writes (a mail dated inside business hours must not escape an after-hours rule).
    if let Some(t) = &a.time {
        ctx.time = Some(match t.parse::<i64>() {
            Ok(t) => t,
            Err(_) => timeutil::parse_rfc3339(t, pol.utc_offset_min).ok_or_else(|| {
                format!("--time `{t}`: use RFC 3339 (2026-11-02T10:00:00+09:00) or Unix seconds")
            })?,
        });
    }
    let facts = Facts::from_report(&report, &ctx);
    let store = match &a.state {
        Some(d) => Some(
            StateArgs {
                state: Some(d.clone()),
                ..StateArgs::default()
            }
            .store()?,
        ),
        None => None,
    };
    let v = match &store {
        Some(s) => pol.evaluate(&facts, &**s)?,
        None => pol.evaluate(&facts, &NoHistory)?,
    };
    let j = verdict_json(&v, &facts);
    let stdout = io::stdout();
    let mut o = BufWriter::new(stdout.lock());
    if a.json {
        writeln!(o, "{j}")?;
        return Ok(0);
    }
    writeln!(
        o,
        "verdict: {}   (monitor-mode rules would make it: {})   risk {}/100",
        v.action.as_str().to_uppercase(),
        j["would_action"].as_str().unwrap_or(""),
        v.risk
    )?;
    writeln!(
        o,
        "message: {} -> {} via {}",
        facts.sender,
        facts.recipients.join(", "),
        facts.channel
    )?;
    if v.matched.is_empty() {
        writeln!(o, "no rule matched")?;
    }
    for m in &v.matched {
        let tag = if m.mode == policy::Mode::Monitor {
            " [monitor: recorded, not applied]"
        } else {
            ""
        };
        writeln!(
            o,
            "rule {} -> {} ({} severity){tag}",
            m.rule,
            m.action.as_str(),
            m.severity
        )?;
        for r in &m.reasons {
            writeln!(o, "    because {r}")?;
        }
    }
    if !v.signals.is_empty() {
        writeln!(o, "risk signals:")?;
        for s in &v.signals {
            writeln!(o, "    +{:>3}  {}", s.weight, s.name)?;
        }
    }
    for (n, x) in &v.headers {
        writeln!(o, "tag: add header {n}: {x}")?;
    }
    if let Some(p) = &v.subject_prefix {
        writeln!(o, "tag: subject prefix {p}")?;
    }
    if v.action == Action::Hold {
        writeln!(
            o,
            "hold: approvers {}{}; expires after {} s",
            if v.approvers.is_empty() {
                "(any)".into()
            } else {
                v.approvers.join(", ")
            },
            v.approver_group
                .as_ref()
                .map(|g| format!(", group {g}"))
                .unwrap_or_default(),
            v.expires
        )?;
    }
    if v.action == Action::Delay {
        writeln!(
            o,
            "delay: sent after {} s unless the sender cancels it",
            v.expires
        )?;
    }
    if let Some(d) = v.evidence_days {
        writeln!(o, "evidence: attachments kept {d} days")?;
    }
    if matches!(v.action, Action::Block | Action::Hold) {
        writeln!(o, "user message (ja): {}", v.user_message("ja"))?;
        writeln!(o, "user message (en): {}", v.user_message("en"))?;
    }
    Ok(0)
}

fn replay(a: ReplayArgs) -> Result<u8, AnyErr> {
    let pol = policy::Policy::from_file(&a.policy)?;
    let since = parse_when(&a.since, pol.utc_offset_min, "--since")?;
    let store = a.state.store()?;
    let body_rules: Vec<String> = pol
        .rules
        .iter()
        .filter(|r| r.uses_body())
        .map(|r| r.id.clone())
        .collect();
    // (old action, new action) -> (count, examples)
    type Changes = std::collections::BTreeMap<(String, String), (u64, Vec<Value>)>;
    let mut final_changes: Changes = Default::default();
    let mut would_changes: Changes = Default::default();
    let mut totals: std::collections::BTreeMap<String, (u64, u64)> = Default::default();
    let mut n = 0u64;
    let mut failed: Option<String> = None;
    store.each_record(since, &mut |rec: AuditRecord| {
        if failed.is_some() {
            return;
        }
        n += 1;
        let facts = rec.facts();
        let h = store.history_before(rec.id);
        let v = match pol.evaluate(&facts, &*h) {
            Ok(v) => v,
            Err(e) => {
                failed = Some(e.to_string());
                return;
            }
        };
        let would = v
            .matched
            .iter()
            .map(|m| m.action)
            .max()
            .unwrap_or(Action::Allow)
            .max(v.action);
        totals.entry(rec.action.clone()).or_default().0 += 1;
        totals.entry(v.action.as_str().to_string()).or_default().1 += 1;
        let example = || {
            json!({
                "record": rec.id,
                "time": timeutil::rfc3339(rec.time, pol.utc_offset_min),
                "sender": rec.sender,
                "recipients": rec.recipients.iter().map(|r| r.address.clone()).collect::<Vec<_>>(),
                "subject": rec.subject,
                "was_rules": rec.matched.iter().map(|m| m.rule.clone()).collect::<Vec<_>>(),
                "now_rules": v.matched.iter().map(|m| format!("{} ({} {})", m.rule, m.mode.as_str(), m.action.as_str())).collect::<Vec<_>>(),
                "reasons": v.matched.iter().flat_map(|m| m.reasons.clone()).take(4).collect::<Vec<_>>(),
            })
        };
        if rec.action != v.action.as_str() {
            let e = final_changes
                .entry((rec.action.clone(), v.action.as_str().to_string()))
                .or_default();
            e.0 += 1;
            if e.1.len() < a.examples {
                e.1.push(example());
            }
        } else if rec.would_action != would.as_str() {
            let e = would_changes
                .entry((rec.would_action.clone(), would.as_str().to_string()))
                .or_default();
            e.0 += 1;
            if e.1.len() < a.examples {
                e.1.push(example());
            }
        }
    })?;
    if let Some(e) = failed {
        return Err(format!("replay stopped: {e}").into());
    }
    let changes_json = |c: &Changes| -> Vec<Value> {
        c.iter()
            .map(|((from, to), (k, ex))| json!({"from": from, "to": to, "records": k, "examples": ex}))
            .collect()
    };
    if a.json {
        println!(
            "{}",
            json!({
                "policy": pol.name,
                "since": timeutil::rfc3339(since, pol.utc_offset_min),
                "records": n,
                "per_action": totals.iter().map(|(k, (was, now))| json!({"action": k, "was": was, "now": now})).collect::<Vec<_>>(),
                "changes": changes_json(&final_changes),
                "monitor_changes": changes_json(&would_changes),
                "not_replayable": body_rules,
            })
        );
        return Ok(0);
    }
    let stdout = io::stdout();
    let mut o = BufWriter::new(stdout.lock());
    writeln!(
        o,
        "replayed {n} record(s) since {} with policy `{}`",
        timeutil::rfc3339(since, pol.utc_offset_min),
        pol.name
    )?;
    writeln!(o, "{:<8} {:>8} {:>8}", "action", "was", "now")?;
    for (k, (was, now)) in &totals {
        writeln!(o, "{k:<8} {was:>8} {now:>8}")?;
    }
    if final_changes.is_empty() {
        writeln!(o, "no final action would change")?;
    }
    for ((from, to), (k, ex)) in &final_changes {
        writeln!(o, "\n{from} -> {to}: {k} record(s)")?;
        for e in ex {
            print_example(&mut o, e)?;
        }
    }
    for ((from, to), (k, ex)) in &would_changes {
        writeln!(o, "\nmonitor only, would be {from} -> {to}: {k} record(s)")?;
        for e in ex {
            print_example(&mut o, e)?;
        }
    }
    if !body_rules.is_empty() {
        writeln!(
            o,
            "\nnote: rule(s) {} test body text, which the audit trail does not keep; on replay those conditions are false",
            body_rules.join(", ")
        )?;
    }
    Ok(0)
}

fn print_example(o: &mut impl Write, e: &Value) -> io::Result<()> {
    writeln!(
        o,
        "    #{} {} {} -> {} \"{}\"",
        e["record"],
        e["time"].as_str().unwrap_or(""),
        e["sender"].as_str().unwrap_or(""),
        e["recipients"]
            .as_array()
            .map(|r| r
                .iter()
                .filter_map(|x| x.as_str())
                .collect::<Vec<_>>()
                .join(", "))
            .unwrap_or_default(),
        e["subject"].as_str().unwrap_or("")
    )?;
    writeln!(
        o,
        "        now: {}",
        e["now_rules"]
            .as_array()
            .map(|r| r
                .iter()
                .filter_map(|x| x.as_str())
                .collect::<Vec<_>>()
                .join("; "))
            .unwrap_or_default()
    )?;
    for r in e["reasons"].as_array().into_iter().flatten() {
        writeln!(o, "        because {}", r.as_str().unwrap_or(""))?;
    }
    Ok(())
}

// ---------------------------------------------------------------- audit

#[derive(Subcommand)]
pub enum AuditCmd {
    /// Search the audit trail (filters combine with AND; newest first).
    Search(Box<SearchArgs>),
    /// Volumes and top lists: per day, senders, external domains, detectors, repeated files.
    Stats(StatsArgs),
    /// Reports over a window: each sender's risk with what makes it up, and per department
    /// the external mails, holds, blocks and top files (table, CSV for Excel, HTML, JSON).
    Report(ReportArgs),
    /// One record in full (JSON).
    Show {
        /// Record id.
        id: i64,
        #[command(flatten)]
        state: StateArgs,
    },
    /// The admin log: searches, exports and views made in the console and with this command,
    /// and policy and fleet changes, newest first.
    AdminLog {
        #[command(flatten)]
        state: StateArgs,
        /// Only this administrator's actions (a console account, or `user@host` for the CLI).
        #[arg(long)]
        actor: Option<String>,
        /// Most rows.
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// Applies the retention now: deletes records older than --audit-days (whole monthly
    /// partitions on PostgreSQL), decided approvals older than --approval-days, evidence copies
    /// past their time (each capped at --evidence-days). The purge is logged in the store.
    Purge(PurgeArgs),
}

#[derive(Args)]
pub struct PurgeArgs {
    #[command(flatten)]
    state: StateArgs,
    /// Days audit records are kept.
    #[arg(long, default_value_t = ping32dlp::workflow::DEFAULT_AUDIT_DAYS)]
    audit_days: u32,
    /// Most days an evidence copy is kept.
    #[arg(long, default_value_t = ping32dlp::workflow::DEFAULT_EVIDENCE_DAYS)]
    evidence_days: u32,
    /// Days decided approvals are kept.
    #[arg(long, default_value_t = ping32dlp::workflow::DEFAULT_APPROVAL_DAYS)]
    approval_days: u32,
    /// List the latest purges instead.
    #[arg(long)]
    log: bool,
}

fn purge(a: PurgeArgs) -> Result<u8, AnyErr> {
    if a.log {
        for p in a.state.store()?.purges(50)? {
            println!("{}", serde_json::to_string(&p)?);
        }
        return Ok(0);
    }
    let mut cfg = WorkflowConfig::new(a.state.dir());
    cfg.store = a.state.store_config();
    cfg.retention = Retention {
        audit_days: a.audit_days,
        evidence_days: a.evidence_days,
        approval_days: a.approval_days,
    };
    let wf = Workflow::open(cfg)?;
    let who = std::env::var("USER").unwrap_or_else(|_| "cli".into());
    let p = wf.purge(&format!(
        "{}/ping32dlp audit purge ({who})",
        ping32dlp::workflow::host_name()
    ))?;
    println!(
        "purged: {} records ({} monthly partitions dropped), {} approvals, {} evidence copies (records before {}, approvals before {})",
        p.records,
        p.partitions,
        p.approvals,
        p.evidence,
        timeutil::rfc3339(p.audit_before, 0),
        timeutil::rfc3339(p.approvals_before, 0)
    );
    Ok(0)
}

#[derive(Args)]
pub struct SearchArgs {
    #[command(flatten)]
    state: StateArgs,
    /// Authenticated user.
    #[arg(long)]
    user: Option<String>,
    /// Sender address.
    #[arg(long)]
    sender: Option<String>,
    /// Recipient address.
    #[arg(long)]
    recipient: Option<String>,
    /// Recipient role: to, cc or bcc (with --recipient: that recipient so addressed; alone:
    /// mails with such a recipient)
    #[arg(long)]
    role: Option<String>,
    /// Sender or recipient domain.
    #[arg(long)]
    domain: Option<String>,
    /// Attachment SHA-256.
    #[arg(long)]
    sha256: Option<String>,
    /// Detector with findings.
    #[arg(long)]
    detector: Option<String>,
    /// Final action (verdict): allow, audit, tag, bcc, alert, delay, hold, block.
    #[arg(long = "verdict", alias = "action")]
    verdict: Option<String>,
    /// The gateway that saw the mail.
    #[arg(long)]
    gateway: Option<String>,
    /// The sender's department (from the company directory); repeat for several.
    #[arg(long = "department")]
    departments: Vec<String>,
    /// From (duration such as 7d, or a date).
    #[arg(long)]
    since: Option<String>,
    /// Until (exclusive).
    #[arg(long)]
    until: Option<String>,
    /// Most records.
    #[arg(long, default_value_t = 100)]
    limit: usize,
    /// table, json (one record per line) or csv.
    #[arg(long, default_value = "table")]
    format: String,
    /// CSV encoding: utf-8, utf-8-bom (what Excel opens as UTF-8) or cp932 (Shift_JIS for
    /// older Japanese Excel; characters it lacks become &#NNNN;).
    #[arg(long, default_value = "utf-8")]
    csv_encoding: String,
    /// UTC offset for shown times.
    #[arg(long, default_value = "+09:00")]
    timezone: String,
}

#[derive(Args)]
pub struct ReportArgs {
    #[command(flatten)]
    state: StateArgs,
    /// From (duration or date).
    #[arg(long, default_value = "7d")]
    since: String,
    /// Until (exclusive; default now).
    #[arg(long)]
    until: Option<String>,
    /// `sender` or `department` (CSV holds one of them; the table and HTML both).
    #[arg(long, default_value = "sender")]
    by: String,
    /// table, csv, html or json.
    #[arg(long, default_value = "table")]
    format: String,
    /// CSV encoding: utf-8, utf-8-bom or cp932 (for Japanese Excel).
    #[arg(long, default_value = "utf-8")]
    csv_encoding: String,
    /// Only mail of these departments; repeat for several.
    #[arg(long = "department")]
    departments: Vec<String>,
    /// Senders shown in the table and HTML.
    #[arg(long, default_value_t = 20)]
    top: usize,
    /// UTC offset of the days.
    #[arg(long, default_value = "+09:00")]
    timezone: String,
}

#[derive(Args)]
pub struct StatsArgs {
    #[command(flatten)]
    state: StateArgs,
    /// From (duration or date).
    #[arg(long, default_value = "30d")]
    since: String,
    /// Until (exclusive; default now).
    #[arg(long)]
    until: Option<String>,
    /// Entries per top list.
    #[arg(long, default_value_t = 10)]
    top: usize,
    /// Only the mail of this gateway or endpoint agent.
    #[arg(long)]
    gateway: Option<String>,
    /// UTC offset of the days.
    #[arg(long, default_value = "+09:00")]
    timezone: String,
    /// JSON output.
    #[arg(long)]
    json: bool,
}

fn offset(s: &str) -> Result<i32, AnyErr> {
    timeutil::parse_offset(s)
        .ok_or_else(|| format!("--timezone `{s}`: use an offset like +09:00").into())
}

/// A search's filters as `key=value` pairs (for the admin log).
fn query_summary(q: &AuditQuery) -> String {
    let mut v = Vec::new();
    let mut add = |k: &str, x: Option<String>| {
        if let Some(x) = x {
            v.push(format!("{k}={x}"));
        }
    };
    add("user", q.user.clone());
    add("sender", q.sender.clone());
    add("recipient", q.recipient.clone());
    add("role", q.recipient_role.map(|r| r.as_str().to_string()));
    add("domain", q.domain.clone());
    add("sha256", q.sha256.clone());
    add("detector", q.detector.clone());
    add("verdict", q.action.clone());
    add("since", q.since.map(|t| ping32dlp::timeutil::rfc3339(t, 0)));
    add("until", q.until.map(|t| ping32dlp::timeutil::rfc3339(t, 0)));
    add("gateway", q.gateway.clone());
    add("department", q.departments.as_ref().map(|d| d.join(",")));
    v.join(" ")
}

/// Writes what an administrator does with this command to the admin log first (as
/// `user@host`, from `cli`); a log that cannot be written stops the command.
fn log_cli_admin(
    store: &dyn Store,
    action: &str,
    target: &str,
    detail: &str,
) -> Result<(), AnyErr> {
    let user = std::env::var("SUDO_USER")
        .or_else(|_| std::env::var("USER"))
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".into());
    store
        .log_admin(&ping32dlp::workflow::AdminAction {
            time: ping32dlp::timeutil::now(),
            actor: format!("{user}@{}", ping32dlp::workflow::host_name()),
            action: action.into(),
            target: target.into(),
            detail: detail
                .chars()
                .filter(|c| !c.is_control())
                .take(2000)
                .collect(),
            client: "cli".into(),
        })
        .map_err(|e| format!("the admin log cannot be written, so nothing was done: {e}").into())
}

pub fn audit_cmd(cmd: AuditCmd) -> Result<u8, AnyErr> {
    match cmd {
        AuditCmd::Search(a) => search(*a),
        AuditCmd::Stats(a) => stats(a),
        AuditCmd::Report(a) => report(a),
        AuditCmd::Purge(a) => purge(a),
        AuditCmd::AdminLog {
            state,
            actor,
            limit,
            json,
        } => {
            let s = state.store()?;
            let rows = s.admin_actions(actor.as_deref(), limit.max(1))?;
            let stdout = io::stdout();
            let mut o = BufWriter::new(stdout.lock());
            for r in &rows {
                if json {
                    writeln!(o, "{}", serde_json::to_string(r)?)?;
                } else {
                    writeln!(
                        o,
                        "{}  {:<24} {:<20} {:<12} {}  [{}]",
                        ping32dlp::timeutil::rfc3339(r.time, 0),
                        r.actor,
                        r.action,
                        r.target,
                        r.detail,
                        r.client
                    )?;
                }
            }
            o.flush()?;
            Ok(0)
        }
        AuditCmd::Show { id, state } => {
            let s = state.store()?;
            log_cli_admin(&*s, "record_view", &id.to_string(), "")?;
            let r = s.get_record(id)?.ok_or_else(|| format!("no record {id}"))?;
            let mut v = serde_json::to_value(&r)?;
            v["evidence"] = json!(s
                .evidence_of(id)?
                .iter()
                .map(|(l, h)| json!({"location": l, "sha256": h}))
                .collect::<Vec<_>>());
            println!("{}", serde_json::to_string_pretty(&v)?);
            Ok(0)
        }
    }
}

fn search(a: SearchArgs) -> Result<u8, AnyErr> {
    let off = offset(&a.timezone)?;
    if let Some(v) = &a.verdict {
        if Action::parse(v).is_none() {
            return Err(format!(
                "--verdict `{v}`: use allow, audit, tag, bcc, alert, delay, hold or block"
            )
            .into());
        }
    }
    if !["table", "json", "csv"].contains(&a.format.as_str()) {
        return Err(format!("--format `{}`: use table, json or csv", a.format).into());
    }
    if !["utf-8", "utf8", "utf-8-bom", "cp932", "shift_jis"].contains(&a.csv_encoding.as_str()) {
        return Err(format!(
            "--csv-encoding `{}`: use utf-8, utf-8-bom or cp932",
            a.csv_encoding
        )
        .into());
    }
    let recipient_role = match a.role.as_deref() {
        None => None,
        Some(r) => Some(
            ping32dlp::policy::Role::parse(r)
                .ok_or_else(|| format!("--role `{r}`: use to, cc or bcc"))?,
        ),
    };
    let q = AuditQuery {
        user: a.user.clone(),
        sender: a.sender.clone(),
        recipient: a.recipient.clone(),
        recipient_role,
        domain: a.domain.clone(),
        sha256: a.sha256.clone(),
        detector: a.detector.clone(),
        action: a.verdict.clone(),
        since: a
            .since
            .as_deref()
            .map(|s| parse_when(s, off, "--since"))
            .transpose()?,
        until: a
            .until
            .as_deref()
            .map(|s| parse_when(s, off, "--until"))
            .transpose()?,
        gateway: a.gateway.clone(),
        departments: (!a.departments.is_empty()).then(|| a.departments.clone()),
        limit: a.limit.max(1),
    };
    let store = a.state.store()?;
    log_cli_admin(
        &*store,
        if a.format == "csv" {
            "audit_export"
        } else {
            "audit_search"
        },
        "",
        &query_summary(&q),
    )?;
    let rows = store.search(&q)?;
    let stdout = io::stdout();
    let mut o = BufWriter::new(stdout.lock());
    let detectors = |r: &AuditRecord| -> String {
        r.findings
            .iter()
            .filter(|f| f.location == "*")
            .map(|f| format!("{}x{}", f.detector, f.count))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let recips = |r: &AuditRecord| -> String {
        r.recipients
            .iter()
            .map(|x| {
                let role = match x.role {
                    Some(ping32dlp::policy::Role::Cc) => "cc:",
                    Some(ping32dlp::policy::Role::Bcc) => "bcc:",
                    _ => "",
                };
                if x.external {
                    format!("{role}{} (ext)", x.address)
                } else {
                    format!("{role}{}", x.address)
                }
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    let files = |r: &AuditRecord| -> String {
        r.attachments
            .iter()
            .filter(|x| x.depth == 0)
            .map(|x| x.name.clone())
            .collect::<Vec<_>>()
            .join(" | ")
    };
    match a.format.as_str() {
        "json" => {
            for r in &rows {
                writeln!(o, "{}", serde_json::to_string(r)?)?;
            }
        }
        "csv" => {
            // Written to memory first, then encoded as asked.
            let mut text = String::new();
            let w = &mut text;
            use std::fmt::Write as _;
            writeln!(w, "id,time,channel,user,sender,recipients,subject,attachments,detectors,action,would_action,risk,rules,gateway,header_from")?;
            for r in &rows {
                let fields = [
                    r.id.to_string(),
                    timeutil::rfc3339(r.time, off),
                    r.channel.clone(),
                    r.user.clone().unwrap_or_default(),
                    r.sender.clone(),
                    recips(r),
                    r.subject.clone(),
                    files(r),
                    detectors(r),
                    r.action.clone(),
                    r.would_action.clone(),
                    r.risk.to_string(),
                    r.matched
                        .iter()
                        .map(|m| m.rule.clone())
                        .collect::<Vec<_>>()
                        .join(" "),
                    r.gateway.clone().unwrap_or_default(),
                    r.header_from.clone().unwrap_or_default(),
                ];
                writeln!(
                    w,
                    "{}",
                    fields
                        .iter()
                        .map(|f| csv_field(f))
                        .collect::<Vec<_>>()
                        .join(",")
                )?;
            }
            // For Excel: CRLF line ends and a BOM, or CP932.
            let bytes = ping32dlp::workflow::report::csv_bytes(&text, &a.csv_encoding)
                .unwrap_or_else(|| text.into_bytes());
            o.write_all(&bytes)?;
        }
        _ => {
            writeln!(
                o,
                "{:>7}  {:<25} {:<6} {:<28} {:<40} subject / attachments / detectors / @ gateway",
                "id", "time", "action", "sender", "recipients"
            )?;
            for r in &rows {
                writeln!(
                    o,
                    "{:>7}  {:<25} {:<6} {} {} {}",
                    r.id,
                    timeutil::rfc3339(r.time, off),
                    r.action,
                    crate::pad(&r.sender, 28),
                    crate::pad(&crate::clip(&recips(r), 40), 40),
                    crate::clip(&r.subject, 50)
                )?;
                let f = files(r);
                if !f.is_empty() {
                    writeln!(o, "{:>42}files: {}", "", f)?;
                }
                let d = detectors(r);
                if !d.is_empty() {
                    writeln!(o, "{:>42}found: {}", "", d)?;
                }
                if let Some(g) = &r.gateway {
                    writeln!(o, "{:>42}@ {}", "", g)?;
                }
                if let Some(h) = r.header_from.as_ref().filter(|h| **h != r.sender) {
                    writeln!(o, "{:>42}From header: {}", "", h)?;
                }
            }
            writeln!(o, "{} record(s)", rows.len())?;
        }
    }
    Ok(0)
}

fn csv_field(s: &str) -> String {
    ping32dlp::workflow::report::csv_field(s)
}

fn report(a: ReportArgs) -> Result<u8, AnyErr> {
    use ping32dlp::workflow::report;
    let off = offset(&a.timezone)?;
    let since = parse_when(&a.since, off, "--since")?;
    let until = match &a.until {
        Some(u) => parse_when(u, off, "--until")?,
        None => timeutil::now() + 1,
    };
    if !["sender", "department"].contains(&a.by.as_str()) {
        return Err(format!("--by `{}`: use sender or department", a.by).into());
    }
    if !["table", "csv", "html", "json"].contains(&a.format.as_str()) {
        return Err(format!("--format `{}`: use table, csv, html or json", a.format).into());
    }
    if report::csv_bytes("", &a.csv_encoding).is_none() {
        return Err(format!(
            "--csv-encoding `{}`: use utf-8, utf-8-bom or cp932",
            a.csv_encoding
        )
        .into());
    }
    let store = a.state.store()?;
    let limit = (!a.departments.is_empty()).then_some(a.departments.as_slice());
    log_cli_admin(
        &*store,
        "report",
        &a.by,
        &format!(
            "since={} until={} format={}{}",
            timeutil::rfc3339(since, 0),
            timeutil::rfc3339(until, 0),
            a.format,
            limit.map_or(String::new(), |d| format!(" department={}", d.join(",")))
        ),
    )?;
    let r = report::build(&*store, since, until, limit)?;
    let stdout = io::stdout();
    let mut o = BufWriter::new(stdout.lock());
    match a.format.as_str() {
        "json" => writeln!(o, "{}", serde_json::to_string(&r)?)?,
        "html" => o.write_all(
            r.html("情報漏洩対策 週次レポート / DLP report", off, a.top)
                .as_bytes(),
        )?,
        "csv" => {
            let text = if a.by == "department" {
                r.departments_csv()
            } else {
                r.senders_csv()
            };
            o.write_all(&report::csv_bytes(&text, &a.csv_encoding).unwrap_or_default())?;
        }
        _ => {
            writeln!(
                o,
                "{:<32} {:<12} {:>4} {:>6} {:>6} {:>5} {:>5}  why",
                "sender", "department", "risk", "mails", "ext", "held", "block"
            )?;
            for s in r.senders.iter().take(a.top) {
                writeln!(
                    o,
                    "{} {} {:>4} {:>6} {:>6} {:>5} {:>5}  {}",
                    crate::pad(&s.sender, 32),
                    crate::pad(s.department.as_deref().unwrap_or("-"), 12),
                    s.risk,
                    s.mails,
                    s.external,
                    s.held,
                    s.blocked,
                    s.why.join("; ")
                )?;
            }
            writeln!(o)?;
            writeln!(
                o,
                "{} {:>6} {:>6} {:>5} {:>5} {:>7}  top files sent outside",
                crate::pad("department", 16),
                "mails",
                "ext",
                "held",
                "block",
                "senders"
            )?;
            for d in &r.departments {
                writeln!(
                    o,
                    "{} {:>6} {:>6} {:>5} {:>5} {:>7}  {}",
                    crate::pad(&d.department, 16),
                    d.mails,
                    d.external,
                    d.held,
                    d.blocked,
                    d.senders,
                    d.top_files
                        .iter()
                        .map(|(n, k)| format!("{n} ({k})"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )?;
            }
        }
    }
    o.flush()?;
    Ok(0)
}

fn stats(a: StatsArgs) -> Result<u8, AnyErr> {
    let off = offset(&a.timezone)?;
    let since = parse_when(&a.since, off, "--since")?;
    let until = match &a.until {
        Some(u) => parse_when(u, off, "--until")?,
        None => timeutil::now() + 1,
    };
    let store = a.state.store()?;
    let s = store.stats(since, until, off, a.top, a.gateway.as_deref())?;
    let (waiting, failed) = store.outbox_counts()?;
    if a.json {
        let mut v = serde_json::to_value(&s)?;
        v["alerts_waiting"] = json!(waiting);
        v["alerts_failed"] = json!(failed);
        println!("{v}");
        return Ok(0);
    }
    let stdout = io::stdout();
    let mut o = BufWriter::new(stdout.lock());
    writeln!(o, "per day (mails, external):")?;
    for (d, n, e) in &s.per_day {
        writeln!(o, "  {d}  {n:>8} {e:>8}")?;
    }
    writeln!(o, "per verdict:")?;
    for (k, n) in &s.per_action {
        writeln!(o, "  {k:<8} {n:>8}")?;
    }
    let list = |o: &mut BufWriter<io::StdoutLock<'_>>,
                title: &str,
                l: &[(String, u64)]|
     -> io::Result<()> {
        writeln!(o, "{title}:")?;
        for (k, n) in l {
            writeln!(o, "  {n:>8}  {k}")?;
        }
        Ok(())
    };
    list(&mut o, "top senders of external mail", &s.top_senders)?;
    list(&mut o, "top external domains", &s.top_domains)?;
    list(&mut o, "top detectors (mails)", &s.top_detectors)?;
    writeln!(o, "files sent outside more than once:")?;
    for (h, n, k) in &s.repeated_files {
        writeln!(o, "  {k:>8}  {n}  {}", &h[..h.len().min(16)])?;
    }
    if waiting + failed > 0 {
        writeln!(
            o,
            "alerts waiting for delivery: {waiting}, given up: {failed}"
        )?;
    }
    Ok(0)
}

// ---------------------------------------------------------------- approvals

#[derive(Subcommand)]
pub enum ApprovalsCmd {
    /// Approval requests (pending by default).
    List {
        #[command(flatten)]
        state: StateArgs,
        /// pending, approved, rejected, expired, released, discarded or all.
        #[arg(long = "status", default_value = "pending")]
        status: String,
        /// Only requests this approver may decide.
        #[arg(long)]
        approver: Option<String>,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// One request with its record and history; the view is recorded.
    Show {
        /// Approval id.
        id: String,
        #[command(flatten)]
        state: StateArgs,
        /// Who is looking (recorded). Default: $SUDO_USER or $USER.
        #[arg(long = "as", value_name = "WHO")]
        who: Option<String>,
        /// Also write this attachment's kept copy (location as in the record) to --out; the
        /// view is recorded.
        #[arg(long)]
        attachment: Option<String>,
        /// Write the held message itself to --out; the view is recorded.
        #[arg(long)]
        message: bool,
        /// Output file for --attachment / --message.
        #[arg(long)]
        out: Option<PathBuf>,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Approve a pending request (the mail is released).
    Approve(DecideArgs),
    /// Reject a pending request (the mail is discarded).
    Reject(DecideArgs),
    /// Expire pending requests past their time now.
    Expire {
        #[command(flatten)]
        state: StateArgs,
        /// Policy file (its release and discard commands).
        #[arg(long, value_name = "FILE")]
        policy: Option<PathBuf>,
    },
}

#[derive(Args)]
pub struct DecideArgs {
    /// Approval id.
    id: String,
    #[command(flatten)]
    state: StateArgs,
    /// Who decides (must be one of the request's approvers unless --admin). Default:
    /// $SUDO_USER or $USER.
    #[arg(long = "as", value_name = "WHO")]
    who: Option<String>,
    /// Comment, recorded with the decision.
    #[arg(long, default_value = "")]
    comment: String,
    /// The request's link token (from the notification); checked when given.
    #[arg(long)]
    token: Option<String>,
    /// Decide as an administrator (any request).
    #[arg(long)]
    admin: bool,
    /// Policy file (its release and discard commands).
    #[arg(long, value_name = "FILE")]
    policy: Option<PathBuf>,
}

fn who(w: &Option<String>) -> String {
    w.clone()
        .or_else(|| std::env::var("SUDO_USER").ok())
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "unknown".into())
}

fn open_workflow(state: &StateArgs, policy: Option<&Path>) -> Result<Workflow, AnyErr> {
    let db = state.dir().join("audit.db");
    if state.store_config().is_none() && !db.exists() {
        return Err(format!(
            "no audit database at {} (pass --state DIR or --store URL)",
            db.display()
        )
        .into());
    }
    let pol = load_policy(policy)?;
    workflow_for(state, &pol)
}

pub fn approvals_cmd(cmd: ApprovalsCmd) -> Result<u8, AnyErr> {
    match cmd {
        ApprovalsCmd::List {
            state,
            status,
            approver,
            json,
        } => {
            let st = if status == "all" {
                None
            } else {
                Some(ApprovalState::parse(&status).ok_or_else(|| {
                    format!("--status `{status}`: use pending, approved, rejected, expired, released, discarded or all")
                })?)
            };
            let wf = open_workflow(&state, None)?;
            wf.expire_due(timeutil::now())?;
            let list = wf.store().approvals(st, approver.as_deref())?;
            let stdout = io::stdout();
            let mut o = BufWriter::new(stdout.lock());
            for a in &list {
                if json {
                    writeln!(o, "{}", serde_json::to_string(a)?)?;
                } else {
                    writeln!(
                        o,
                        "{}  {:<9} {}  expires {}  {} -> {}  \"{}\"  rule {}  approvers {}",
                        a.id,
                        a.state.as_str(),
                        timeutil::rfc3339(a.created, 540),
                        timeutil::rfc3339(a.expires, 540),
                        a.sender,
                        a.recipients.join(", "),
                        crate::clip(&a.subject, 40),
                        a.rule,
                        if a.approvers.is_empty() {
                            "(any)".into()
                        } else {
                            a.approvers.join(", ")
                        }
                    )?;
                }
            }
            if !json {
                writeln!(o, "{} request(s)", list.len())?;
            }
            Ok(0)
        }
        ApprovalsCmd::Show {
            id,
            state,
            who: w,
            attachment,
            message,
            out,
            json: as_json,
        } => {
            let wf = open_workflow(&state, None)?;
            let actor = who(&w);
            let a = wf
                .store()
                .approval(&id)?
                .ok_or_else(|| format!("no approval request {id}"))?;
            wf.record_view(&id, &actor, "view", "")?;
            let rec = wf.store().get_record(a.record_id)?;
            if let Some(loc) = &attachment {
                let out = out.clone().ok_or("--attachment needs --out FILE")?;
                let sha = wf
                    .evidence()
                    .of_record(a.record_id)?
                    .into_iter()
                    .find(|(l, _)| l == loc)
                    .map(|(_, h)| h)
                    .ok_or_else(|| format!("no kept copy of `{loc}` for this request (a rule keeps copies with evidence_days)"))?;
                let data = wf
                    .evidence()
                    .get(&sha)?
                    .ok_or_else(|| format!("the copy of `{loc}` is gone (retention ended)"))?;
                std::fs::write(&out, data).map_err(|e| format!("{}: {e}", out.display()))?;
                wf.record_view(&id, &actor, "view_attachment", loc)?;
            }
            if message {
                let out = out.clone().ok_or("--message needs --out FILE")?;
                let data = wf
                    .held_message(&id)?
                    .ok_or("the held message is not kept here (the MTA holds it)")?;
                std::fs::write(&out, data).map_err(|e| format!("{}: {e}", out.display()))?;
                wf.record_view(&id, &actor, "view_message", "")?;
            }
            let events = wf.store().events(&id)?;
            if as_json {
                println!(
                    "{}",
                    json!({"approval": a, "record": rec, "events": events, "token": wf.token(&a)})
                );
                return Ok(0);
            }
            println!("approval {} ({}), rule {}", a.id, a.state.as_str(), a.rule);
            println!("  {} -> {}", a.sender, a.recipients.join(", "));
            println!("  subject: {}", a.subject);
            if let Some(r) = &rec {
                for f in r.attachments.iter().filter(|f| f.depth == 0) {
                    println!(
                        "  attachment: {} ({}, {} bytes, sha256 {})",
                        f.location, f.kind, f.size, f.sha256
                    );
                }
                for f in r.findings.iter().filter(|f| f.location == "*") {
                    println!(
                        "  found: {} x{} e.g. {}",
                        f.detector,
                        f.count,
                        f.samples.join(", ")
                    );
                }
                for m in &r.matched {
                    println!(
                        "  rule {} ({} {}): {}",
                        m.rule,
                        m.mode,
                        m.action,
                        m.reasons.join("; ")
                    );
                }
            }
            println!(
                "  approvers: {}",
                if a.approvers.is_empty() {
                    "(any)".into()
                } else {
                    a.approvers.join(", ")
                }
            );
            println!("  expires: {}", timeutil::rfc3339(a.expires, 540));
            println!("history:");
            for e in &events {
                println!(
                    "  {}  {:<16} {:<16} {}",
                    timeutil::rfc3339(e.time, 540),
                    e.actor,
                    e.kind,
                    e.detail
                );
            }
            Ok(0)
        }
        ApprovalsCmd::Approve(d) => decide(d, true),
        ApprovalsCmd::Reject(d) => decide(d, false),
        ApprovalsCmd::Expire { state, policy } => {
            let wf = open_workflow(&state, policy.as_deref())?;
            let done = wf.expire_due(timeutil::now())?;
            for a in &done {
                println!("{} expired", a.id);
            }
            println!("{} request(s) expired", done.len());
            Ok(0)
        }
    }
}

fn decide(d: DecideArgs, approve: bool) -> Result<u8, AnyErr> {
    let wf = open_workflow(&d.state, d.policy.as_deref())?;
    let actor = who(&d.who);
    if let Some(t) = &d.token {
        let a = wf
            .store()
            .approval(&d.id)?
            .ok_or_else(|| format!("no approval request {}", d.id))?;
        if !wf.verify_token(&a, t) {
            return Err(format!("approval {}: the token does not match", d.id).into());
        }
    }
    let a = wf.decide(&d.id, &actor, approve, &d.comment, d.admin)?;
    println!(
        "{} {} by {} ({})",
        a.id,
        if approve { "approved" } else { "rejected" },
        actor,
        a.state.as_str()
    );
    Ok(0)
}

// ---------------------------------------------------------------- evidence

#[derive(Subcommand)]
pub enum EvidenceCmd {
    /// Write a kept copy (checked against its SHA-256) to a file.
    Get {
        /// SHA-256 of the attachment.
        sha256: String,
        /// Output file.
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        state: StateArgs,
    },
    /// Delete copies whose retention has ended.
    Purge {
        #[command(flatten)]
        state: StateArgs,
    },
}

pub fn evidence_cmd(cmd: EvidenceCmd) -> Result<u8, AnyErr> {
    match cmd {
        EvidenceCmd::Get { sha256, out, state } => {
            let wf = open_workflow(&state, None)?;
            log_cli_admin(
                &**wf.store(),
                "evidence_get",
                &sha256,
                &out.display().to_string(),
            )?;
            let data = wf
                .evidence()
                .get(&sha256)?
                .ok_or_else(|| format!("no kept copy with SHA-256 {sha256}"))?;
            std::fs::write(&out, data).map_err(|e| format!("{}: {e}", out.display()))?;
            Ok(0)
        }
        EvidenceCmd::Purge { state } => {
            let wf = open_workflow(&state, None)?;
            let n = wf.evidence().purge(timeutil::now())?;
            println!("{n} copy(ies) deleted");
            Ok(0)
        }
    }
}
