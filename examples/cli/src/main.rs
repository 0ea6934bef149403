//! `ping32dlp`: scan files for sensitive data, benchmark rules, list detectors.
//!
//! Exit status (like grep): 0 = nothing found, 1 = findings, 2 = an error (bad rules, unreadable
//! file). Values are masked unless `--show-values` is given.

use std::io::{self, BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use clap::{Args, Parser, Subcommand};
use ping32dlp::extract::FileKind;
use ping32dlp::{Confidence, Engine, ExtractOptions, Report, Scanner};
use serde_json::{json, Map, Value};

mod fleet;
mod storebench;
mod work;

#[derive(Parser)]
#[command(
    name = "ping32dlp",
    version,
    about = "Data-loss-prevention inspection: find sensitive data in mail and files, apply policy, keep an audit trail"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Scan files or folders (recursively) and report findings.
    Scan(ScanArgs),
    /// Time the compiled engine on one file: one JSON line with MB/s and finding counts.
    Bench(BenchArgs),
    /// List the enabled detectors (with --rules / --dictionary applied).
    Detectors(RuleArgs),
    /// Check values read from stdin, one per line: prints `1` (valid) or `0` per line.
    /// Values are width-folded and separators dropped first, as in scanning.
    Validate {
        /// luhn, my_number, corporate_number, iban, us_ssn
        kind: String,
    },
    /// Rules files: `check` compiles them and prints errors with file, line and field.
    Rules {
        #[command(subcommand)]
        cmd: RulesCmd,
    },
    /// Inspect, judge and record messages (the full pipeline): one JSON line per message,
    /// printed once its audit record is committed.
    Process(work::ProcessArgs),
    /// Policy files: check, test on a message, replay over the audit trail.
    Policy {
        #[command(subcommand)]
        cmd: work::PolicyCmd,
    },
    /// The audit trail: search, stats, show.
    Audit {
        #[command(subcommand)]
        cmd: work::AuditCmd,
    },
    /// Held mails: list, show (recorded), approve, reject, expire.
    Approvals {
        #[command(subcommand)]
        cmd: work::ApprovalsCmd,
    },
    /// Kept copies of sent attachments: get (checked), purge.
    Evidence {
        #[command(subcommand)]
        cmd: work::EvidenceCmd,
    },
    /// This PC as an endpoint agent of the company's fleet server: enrol.
    Agent {
        #[command(subcommand)]
        cmd: fleet::AgentCmd,
    },
    /// Endpoint agents (admin, on the server's store): enrolment tokens, list, revoke.
    Fleet {
        #[command(subcommand)]
        cmd: fleet::FleetCmd,
    },
    /// Store measurements for scripts/bench-store.sh.
    #[command(hide = true)]
    StoreBench {
        #[command(subcommand)]
        cmd: storebench::StoreBenchCmd,
    },
}

#[derive(Subcommand)]
enum RulesCmd {
    /// Compile rules files (and dictionaries) and report the first error, or a summary.
    Check {
        /// Rules files (TOML).
        files: Vec<PathBuf>,
        /// Dictionary files (one term per line).
        #[arg(long = "dictionary", value_name = "FILE")]
        dictionaries: Vec<PathBuf>,
    },
    /// Compile rules files and dictionaries once and save the engine (`--engine FILE` loads it
    /// in every command, and `ping32dlp_engine_deserialize` in the C API): agents with large
    /// dictionaries start without compiling them. Tied to this library version.
    Compile {
        /// Rules files (TOML).
        files: Vec<PathBuf>,
        /// Dictionary files (one term per line).
        #[arg(long = "dictionary", value_name = "FILE")]
        dictionaries: Vec<PathBuf>,
        /// Leave out the built-in detectors.
        #[arg(long)]
        no_builtins: bool,
        /// Where to write the engine.
        #[arg(long, short = 'o', value_name = "FILE")]
        output: PathBuf,
    },
}

#[derive(Args, Clone)]
struct RuleArgs {
    /// A rules file (TOML): add detectors, keywords and dictionaries, retune built-ins. Repeatable.
    #[arg(long = "rules", value_name = "FILE")]
    rules: Vec<PathBuf>,
    /// A dictionary file, one term per line, reported as `dictionary:<name>`. Repeatable.
    #[arg(long = "dictionary", value_name = "FILE")]
    dictionaries: Vec<PathBuf>,
    /// Leave out the built-in detectors (measure your own rules alone).
    #[arg(long)]
    no_builtins: bool,
    /// A saved engine (`ping32dlp rules compile`) instead of rules and dictionaries.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["rules", "dictionaries", "no_builtins"])]
    engine: Option<PathBuf>,
}

#[derive(Args)]
struct ScanArgs {
    /// Files or folders to scan.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// JSON Lines output: one object per input.
    #[arg(long)]
    json: bool,
    /// UNSAFE: print raw sensitive values next to the masked ones. For tests and acceptance
    /// tooling only; never in production logs.
    #[arg(long)]
    show_values: bool,
    /// Report only findings at or above this confidence (low, medium, high).
    #[arg(long, value_name = "LEVEL", default_value = "low")]
    min_confidence: String,
    /// Decode text inputs with this charset instead of detecting it (e.g. cp932, euc-jp).
    #[arg(long, value_name = "LABEL")]
    encoding: Option<String>,
    /// A password to try on encrypted zips and PDFs (PPAP: the password from a later mail).
    /// Repeatable. Passwords found in the message's own body are tried too.
    #[arg(long = "password", value_name = "PASSWORD")]
    passwords: Vec<String>,
    #[command(flatten)]
    rules: RuleArgs,
}

#[derive(Args)]
struct BenchArgs {
    /// The file to scan (read once, decoded once, outside the timing). Repeatable: with several,
    /// each timed round inspects every file once, and the numbers are per round.
    #[arg(long, required = true)]
    input: Vec<PathBuf>,
    /// Timed rounds (after one untimed warm-up round).
    #[arg(long, default_value_t = 5)]
    repeat: usize,
    /// Time the whole inspection of text files too (sniffing, charset detection, CSV tables), as
    /// `scan` does, instead of the detection engine over text decoded outside the timing. Always
    /// so with several inputs.
    #[arg(long)]
    inspect: bool,
    #[command(flatten)]
    rules: RuleArgs,
}

fn build_engine(r: &RuleArgs) -> Result<Engine, AnyErr> {
    if let Some(path) = &r.engine {
        let bytes = std::fs::read(path).map_err(|e| format!("--engine {}: {e}", path.display()))?;
        return Ok(
            Engine::from_bytes(&bytes).map_err(|e| format!("--engine {}: {e}", path.display()))?
        );
    }
    let mut b = Engine::builder();
    if r.no_builtins {
        b = b.without_builtins();
    }
    for f in &r.rules {
        b = b.rules_file(f)?;
    }
    for d in &r.dictionaries {
        b = b.dictionary_file(d);
    }
    Ok(b.build()?)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let res = match cli.cmd {
        Cmd::Scan(a) => scan(a),
        Cmd::Bench(a) => bench(a),
        Cmd::Detectors(r) => detectors(r),
        Cmd::Validate { kind } => validate(&kind),
        Cmd::Process(a) => work::process(a),
        Cmd::Policy { cmd } => work::policy_cmd(cmd),
        Cmd::Audit { cmd } => work::audit_cmd(cmd),
        Cmd::Approvals { cmd } => work::approvals_cmd(cmd),
        Cmd::Evidence { cmd } => work::evidence_cmd(cmd),
        Cmd::Agent { cmd } => fleet::agent_cmd(cmd),
        Cmd::Fleet { cmd } => fleet::fleet_cmd(cmd),
        Cmd::StoreBench { cmd } => storebench::run(cmd),
        Cmd::Rules {
            cmd:
                RulesCmd::Check {
                    files,
                    dictionaries,
                },
        } => {
            let r = RuleArgs {
                rules: files,
                dictionaries,
                no_builtins: false,
                engine: None,
            };
            check_rules(r)
        }
        Cmd::Rules {
            cmd:
                RulesCmd::Compile {
                    files,
                    dictionaries,
                    no_builtins,
                    output,
                },
        } => {
            let r = RuleArgs {
                rules: files,
                dictionaries,
                no_builtins,
                engine: None,
            };
            compile_rules(r, &output)
        }
    };
    match res {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("ping32dlp: {e}");
            ExitCode::from(2)
        }
    }
}

type AnyErr = Box<dyn std::error::Error>;

fn check_rules(r: RuleArgs) -> Result<u8, AnyErr> {
    let engine = build_engine(&r)?;
    let user = engine.detectors().iter().filter(|d| !d.builtin).count();
    println!(
        "ok: {} detectors ({} built-in, {} from rules and dictionaries)",
        engine.detectors().len(),
        engine.detectors().len() - user,
        user
    );
    Ok(0)
}

fn compile_rules(r: RuleArgs, output: &std::path::Path) -> Result<u8, AnyErr> {
    let t0 = Instant::now();
    let engine = build_engine(&r)?;
    let build = t0.elapsed().as_secs_f64();
    let bytes = engine.to_bytes();
    // Written beside the target and renamed: a running agent never reads half an engine.
    let tmp = output.with_extension("tmp");
    std::fs::write(&tmp, &bytes).map_err(|e| format!("{}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, output).map_err(|e| format!("{}: {e}", output.display()))?;
    let t1 = Instant::now();
    Engine::from_bytes(&bytes)?;
    println!(
        "wrote {}: {} detectors, {} bytes (compiled in {:.3} s, loads in {:.3} s)",
        output.display(),
        engine.detectors().len(),
        bytes.len(),
        build,
        t1.elapsed().as_secs_f64()
    );
    Ok(0)
}

fn validate(kind: &str) -> Result<u8, AnyErr> {
    use ping32dlp::validate as v;
    let check: fn(&[u8]) -> bool = match kind {
        "luhn" => v::luhn,
        "my_number" => v::my_number,
        "corporate_number" => v::corporate_number,
        "iban" => v::iban,
        "us_ssn" => v::us_ssn,
        other => {
            return Err(format!(
                "unknown kind `{other}`: use luhn, my_number, corporate_number, iban or us_ssn"
            )
            .into())
        }
    };
    let stdin = io::stdin();
    let mut out = BufWriter::new(io::stdout().lock());
    let mut line = String::new();
    let mut input = stdin.lock();
    loop {
        line.clear();
        if io::BufRead::read_line(&mut input, &mut line)? == 0 {
            break;
        }
        let canon = ping32dlp::validate::canonical(line.trim_end_matches(['\n', '\r']));
        writeln!(out, "{}", u8::from(check(&canon)))?;
    }
    out.flush()?;
    Ok(0)
}

fn detectors(r: RuleArgs) -> Result<u8, AnyErr> {
    let engine = build_engine(&r)?;
    let mut out = BufWriter::new(io::stdout().lock());
    for d in engine.detectors() {
        writeln!(
            out,
            "{:<28} {:<12} {} / {}",
            d.id,
            kind_name(d),
            d.name_en,
            d.name_ja
        )?;
    }
    Ok(0)
}

fn kind_name(d: &ping32dlp::DetectorInfo) -> &'static str {
    match d.kind {
        ping32dlp::DetectorKind::Builtin(_) => "built-in",
        ping32dlp::DetectorKind::Keywords => "keywords",
        ping32dlp::DetectorKind::Dictionary => "dictionary",
        ping32dlp::DetectorKind::Regex => "regex",
    }
}

/// Every file under the given paths, folders walked recursively in name order.
fn collect_files(paths: &[PathBuf], out: &mut Vec<PathBuf>, errors: &mut Vec<(PathBuf, String)>) {
    for p in paths {
        match std::fs::symlink_metadata(p) {
            Ok(m) if m.is_dir() => match std::fs::read_dir(p) {
                Ok(rd) => {
                    let mut kids: Vec<PathBuf> =
                        rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
                    kids.sort();
                    collect_files(&kids, out, errors);
                }
                Err(e) => errors.push((p.clone(), e.to_string())),
            },
            Ok(m) if m.file_type().is_symlink() => {
                if p.is_file() {
                    out.push(p.clone());
                }
            }
            Ok(_) => out.push(p.clone()),
            Err(e) => errors.push((p.clone(), e.to_string())),
        }
    }
}

fn scan(a: ScanArgs) -> Result<u8, AnyErr> {
    let min = Confidence::parse(&a.min_confidence).ok_or_else(|| {
        format!(
            "--min-confidence: `{}` is not low, medium or high",
            a.min_confidence
        )
    })?;
    let forced = match &a.encoding {
        None => None,
        Some(l) => Some(
            ping32dlp::text::encoding_for_label(l)
                .ok_or_else(|| format!("--encoding: unknown charset `{l}`"))?,
        ),
    };
    let opts = ExtractOptions {
        passwords: a.passwords.clone(),
        text_encoding: forced,
        ..ExtractOptions::default()
    };
    let engine = Arc::new(build_engine(&a.rules)?);
    let mut scanner = Scanner::new(engine);
    let mut files = Vec::new();
    let mut walk_errors = Vec::new();
    collect_files(&a.paths, &mut files, &mut walk_errors);
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let (mut any_findings, mut any_error) = (false, false);
    for (p, e) in &walk_errors {
        any_error = true;
        if a.json {
            writeln!(
                out,
                "{}",
                json!({"path": p.display().to_string(), "findings": [], "errors": [e]})
            )?;
        } else {
            eprintln!("ping32dlp: {}: {e}", p.display());
        }
    }
    let progress =
        !a.json && files.len() > 1 && io::stderr().is_terminal() && io::stdout().is_terminal();
    for (n, path) in files.iter().enumerate() {
        if progress {
            eprint!("\r\x1b[K[{}/{}] {}", n + 1, files.len(), path.display());
        }
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) => {
                any_error = true;
                if a.json {
                    writeln!(
                        out,
                        "{}",
                        json!({"path": path.display().to_string(), "findings": [], "errors": [e.to_string()]})
                    )?;
                } else {
                    eprintln!("ping32dlp: {}: {e}", path.display());
                }
                continue;
            }
        };
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut report = scanner.inspect_file(&name, &bytes, &opts);
        report.retain_min_confidence(min);
        // Like grep, but what could not be read counts as found: it is reported.
        any_findings |= !report.findings.is_empty() || !report.unscannable.is_empty();
        if a.json {
            let mut v = report.to_json(a.show_values);
            if let Value::Object(o) = &mut v {
                o.insert("path".into(), json!(path.display().to_string()));
                o.insert("errors".into(), json!([]));
            }
            serde_json::to_writer(&mut out, &v)?;
            writeln!(out)?;
        } else {
            if progress {
                eprint!("\r\x1b[K");
            }
            table_report(&mut out, path, &report, a.show_values)?;
        }
    }
    if progress {
        eprint!("\r\x1b[K");
    }
    out.flush()?;
    Ok(if any_error {
        2
    } else if any_findings {
        1
    } else {
        0
    })
}

/// At most `n` characters, with `...` when cut.
fn clip(s: &str, n: usize) -> String {
    if s.chars().count() > n {
        s.chars()
            .take(n.saturating_sub(3))
            .chain("...".chars())
            .collect()
    } else {
        s.to_string()
    }
}

fn pad(s: &str, w: usize) -> String {
    // East Asian wide characters take two columns.
    let width: usize = s
        .chars()
        .map(|c| {
            if (c as u32) >= 0x1100 && !(0xFF61..=0xFF9F).contains(&(c as u32)) {
                2
            } else {
                1
            }
        })
        .sum();
    format!("{s}{}", " ".repeat(w.saturating_sub(width)))
}

fn esc(s: &str) -> String {
    ping32dlp::text::escape_line(s).into_owned()
}

fn table_report(out: &mut impl Write, path: &Path, r: &Report, show: bool) -> io::Result<()> {
    if r.findings.is_empty() && r.unscannable.is_empty() {
        return Ok(());
    }
    if io::stdout().is_terminal() {
        writeln!(out, "\x1b[1m{}\x1b[0m", path.display())?;
    } else {
        writeln!(out, "{}", path.display())?;
    }
    if let Some(m) = &r.message {
        // Subjects, names and locations are the sender's text: control and bidi characters
        // are shown escaped, never acted on by the terminal.
        writeln!(
            out,
            "  message: {} | from {} | to {}",
            esc(m.subject.as_deref().unwrap_or("(no subject)")),
            esc(&m.from.join(", ")),
            esc(&m.to.join(", "))
        )?;
    }
    for f in &r.findings {
        let mut loc = esc(&f.location);
        if let Some(s) = &f.sheet {
            loc.push_str(&format!("#{s}"));
            if let Some(c) = &f.cell {
                loc.push_str(&format!("!{c}"));
            }
        }
        if let Some(p) = f.page {
            loc.push_str(&format!("#page={p}"));
        }
        let value = if show {
            format!("{} ({})", f.value_masked, f.value)
        } else {
            f.value_masked.to_string()
        };
        let value: String = if value.chars().count() > 60 {
            value.chars().take(57).chain("...".chars()).collect()
        } else {
            value
        };
        let ev: Vec<String> = f
            .evidence
            .iter()
            .map(|e| match e.distance {
                Some(d) => format!("{} {} ({d})", e.kind.as_str(), e.detail),
                None => format!("{} {}", e.kind.as_str(), e.detail),
            })
            .collect();
        writeln!(
            out,
            "  {} {} {} {} {}",
            pad(&loc, 24),
            pad(&f.detector, 24),
            pad(f.confidence.as_str(), 7),
            pad(&value, 28),
            ev.join(", ")
        )?;
    }
    for u in &r.unscannable {
        writeln!(
            out,
            "  {} unscannable: {} ({})",
            pad(&esc(&u.location), 24),
            u.reason.as_str(),
            u.detail
        )?;
    }
    Ok(())
}

/// A name that says plain text (`notes.txt`, `LOG.TXT`).
fn named_text(name: &str) -> bool {
    name.rsplit_once('.')
        .is_some_and(|(_, ext)| ext.eq_ignore_ascii_case("txt"))
}

fn bench(a: BenchArgs) -> Result<u8, AnyErr> {
    let mut inputs = Vec::with_capacity(a.input.len());
    for path in &a.input {
        let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        inputs.push((name, bytes));
    }
    // One text file: the detection engine over the decoded text (decoding outside the timing).
    // Anything else (a message, a document, an archive, several files, `--inspect`): the whole
    // inspection, extraction included. A `.txt` file is text by its name even when it begins like
    // a saved mail (`Subject:` ... `Date:` lines, as the peers harness's clean corpus does):
    // `scan` reads it as a message, but what is measured here is the engine over that text.
    let decoded = match inputs.as_slice() {
        [(name, bytes)] if !a.inspect => match ping32dlp::extract::sniff(bytes, name) {
            FileKind::Text | FileKind::Csv => Some(ping32dlp::text::decode_text(bytes)),
            FileKind::Eml if named_text(name) => Some(ping32dlp::text::decode_text(bytes)),
            _ => None,
        },
        _ => None,
    };
    let t0 = Instant::now();
    let engine = Arc::new(build_engine(&a.rules)?);
    let build_seconds = t0.elapsed().as_secs_f64();
    let mut scanner = Scanner::new(engine.clone());
    let opts = ExtractOptions::default();
    let run = |scanner: &mut Scanner| -> Map<String, Value> {
        let mut counts = Map::new();
        let mut add = |detector: &str, n: usize| {
            let total = counts.get(detector).and_then(Value::as_u64).unwrap_or(0) + n as u64;
            counts.insert(detector.to_string(), json!(total));
        };
        match &decoded {
            Some(d) => {
                for c in scanner.scan_str(&d.text).counts {
                    add(c.detector, c.findings);
                }
            }
            None => {
                for (name, bytes) in &inputs {
                    for c in scanner.inspect_file(name, bytes, &opts).counts {
                        add(&c.detector, c.findings);
                    }
                }
            }
        }
        counts
    };
    let _ = run(&mut scanner); // warm-up
    let repeat = a.repeat.max(1);
    let mut times = Vec::with_capacity(repeat);
    let mut counts = Map::new();
    for _ in 0..repeat {
        let t = Instant::now();
        counts = run(&mut scanner);
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    let median = if repeat % 2 == 1 {
        times[repeat / 2]
    } else {
        (times[repeat / 2 - 1] + times[repeat / 2]) / 2.0
    };
    let size = decoded.as_ref().map_or_else(
        || inputs.iter().map(|(_, b)| b.len()).sum(),
        |d| d.text.len(),
    );
    let v = json!({
        "bytes": size,
        "files": inputs.len(),
        "mode": if decoded.is_some() { "text" } else { "inspect" },
        "seconds_median": median,
        "seconds_min": times[0],
        "mb_per_s": if median > 0.0 { size as f64 / 1e6 / median } else { 0.0 },
        "objects_per_s": if median > 0.0 { inputs.len() as f64 / median } else { 0.0 },
        "repeat": repeat,
        "build_seconds": build_seconds,
        "engine_heap_bytes": engine.heap_bytes(),
        "max_rss_bytes": max_rss(),
        "detectors": engine.detectors().len(),
        "findings": counts,
    });
    println!("{v}");
    Ok(0)
}

/// Peak resident set size of this process (Linux), in bytes.
fn max_rss() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|n| n.parse::<u64>().ok())
            })
        })
        .map_or(0, |kb| kb * 1024)
}
