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
    toml::from_str(&text).map_err(|e| {
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

/// Makes relative paths relative to `base` (the directory of the file that named them).
pub fn resolve<'a>(base: &Path, paths: impl IntoIterator<Item = &'a mut PathBuf>) {
    for p in paths {
        if p.is_relative() {
            *p = base.join(&*p);
        }
    }
}

/// What an integration's pipeline is made of.
#[derive(Debug, Clone, Default)]
pub struct PipelineSettings {
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
}

impl PipelineSettings {
    /// Builds the engine, loads and checks the policy against it, opens the workflow (alert
    /// sinks and approval commands from the policy, then `tweak` for what the integration does
    /// itself) and returns the pipeline.
    pub fn open(&self, tweak: impl FnOnce(&mut WorkflowConfig)) -> Result<Pipeline, String> {
        let mut b = Engine::builder();
        for r in &self.rules {
            b = b.rules_file(r).map_err(|e| e.to_string())?;
        }
        for d in &self.dictionaries {
            b = b.dictionary_file(d);
        }
        let engine = Arc::new(b.build().map_err(|e| e.to_string())?);
        let mut policy = match &self.policy {
            Some(p) => Policy::from_file(p).map_err(|e| e.to_string())?,
            None => Policy::default_monitor(),
        };
        policy.check_detectors(&engine).map_err(|e| {
            let file = self
                .policy
                .as_deref()
                .unwrap_or(Path::new("<default policy>"));
            format!("{}: {e}", file.display())
        })?;
        if !self.internal_domains.is_empty() {
            policy.internal_domains = self.internal_domains.clone();
        }
        let state = self.state_dir.clone().unwrap_or_else(default_state_dir);
        let mut w = WorkflowConfig::from_policy(&state, &policy);
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
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut config = None;
    let mut check_only = false;
    let mut i = 0;
    while i < args.len() {
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
    (config, check_only)
}

/// One log line on standard error: time, program, text (callers never pass sensitive values).
pub fn log(program: &str, line: &str) {
    use std::io::Write as _;
    let t = crate::timeutil::rfc3339(crate::timeutil::now(), 0);
    let _ = writeln!(std::io::stderr().lock(), "{t} {program}: {line}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_are_printable_ascii() {
        assert_eq!(
            smtp_text("カード番号 / Cards\r\nmay not\0go", "x"),
            "/ Cards may not go"
        );
        assert_eq!(smtp_text("社外秘", "blocked"), "blocked");
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
