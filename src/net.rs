//! TLS client configurations (rustls with the ring provider): the SMTP proxy's upstream, the
//! PostgreSQL store. Certificates are always verified, against a given CA file or the system's
//! trust store.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;

/// Where Debian, Red Hat and Alpine keep the system's trust store.
pub const SYSTEM_ROOTS: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem",
];

/// A verifying TLS client configuration: roots from `ca_file` (PEM) or the system trust store.
/// `setting` names the option that sets the CA file, for the error message.
pub fn client_config(ca_file: Option<&Path>, setting: &str) -> Result<Arc<ClientConfig>, String> {
    let mut roots = RootCertStore::empty();
    let files: Vec<PathBuf> = match ca_file {
        Some(p) => vec![p.to_path_buf()],
        None => SYSTEM_ROOTS
            .iter()
            .map(PathBuf::from)
            .filter(|p| p.exists())
            .take(1)
            .collect(),
    };
    for f in &files {
        for c in CertificateDer::pem_file_iter(f).map_err(|e| format!("{}: {e}", f.display()))? {
            let c = c.map_err(|e| format!("{}: {e}", f.display()))?;
            let _ = roots.add(c);
        }
    }
    if roots.is_empty() {
        return Err(match ca_file {
            Some(p) => format!("{}: no certificates", p.display()),
            None => format!("no system trust store found; set {setting}"),
        });
    }
    let cfg =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
    Ok(Arc::new(cfg))
}
