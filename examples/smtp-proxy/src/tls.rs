//! TLS for both sides: the proxy's own local CA and server certificate (made on first run), and
//! the verified client configuration for the upstream server.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::{ClientConfig, ServerConfig};

/// The files of the local CA and server certificate in the state directory.
pub struct LocalCa {
    /// The CA certificate clients must trust.
    pub ca_pem: PathBuf,
    /// The server certificate (signed by the CA).
    pub cert_pem: PathBuf,
    /// Its key (mode 0600).
    pub key_pem: PathBuf,
    /// True when this run made them.
    pub created: bool,
}

pub(crate) fn write_private(path: &Path, data: &str) -> Result<(), String> {
    use std::io::Write as _;
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    let mut f = o
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    f.write_all(data.as_bytes())
        .and_then(|_| f.sync_all())
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// Loads the local CA and server certificate from `dir`, making them on first use: a CA
/// ("ping32dlp local CA", 10 years) and a server certificate for `names` (2 years).
pub fn local_ca(dir: &Path, names: &[String]) -> Result<LocalCa, String> {
    // In the state directory: private like the rest of it (0700, files 0600), so that the state
    // check at the next start has nothing to repair. Give ca.pem to clients as root.
    ping32dlp::workflow::private::create_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let ca = LocalCa {
        ca_pem: dir.join("ca.pem"),
        cert_pem: dir.join("server.pem"),
        key_pem: dir.join("server.key"),
        created: false,
    };
    if ca.ca_pem.exists() && ca.cert_pem.exists() && ca.key_pem.exists() {
        return Ok(ca);
    }
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    };
    let err = |e: rcgen::Error| format!("certificate: {e}");
    let ca_key = KeyPair::generate().map_err(err)?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "ping32dlp local CA");
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let now = rcgen::date_time_ymd(2026, 1, 1);
    ca_params.not_before = now;
    ca_params.not_after = rcgen::date_time_ymd(2036, 1, 1);
    let ca_cert = ca_params.self_signed(&ca_key).map_err(err)?;
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().map_err(err)?;
    let mut params = CertificateParams::new(names.to_vec()).map_err(err)?;
    params
        .distinguished_name
        .push(DnType::CommonName, names.first().map_or("localhost", |s| s));
    params.not_before = now;
    params.not_after = rcgen::date_time_ymd(2028, 1, 1);
    let cert = params.signed_by(&key, &issuer).map_err(err)?;
    write_private(&ca.ca_pem, &ca_cert.pem())?;
    write_private(&ca.key_pem, &key.serialize_pem())?;
    write_private(&ca.cert_pem, &format!("{}{}", cert.pem(), ca_cert.pem()))?;
    Ok(LocalCa {
        created: true,
        ..ca
    })
}

/// The server side: the certificate chain and key from PEM files.
pub fn server_config(cert_pem: &Path, key_pem: &Path) -> Result<Arc<ServerConfig>, String> {
    ping32dlp::service::tls_server_config(cert_pem, key_pem)
}

/// The client side for the upstream: certificates verified against `ca_file`, or the system
/// roots. There is no way to turn verification off.
pub fn client_config(ca_file: Option<&Path>) -> Result<Arc<ClientConfig>, String> {
    ping32dlp::net::client_config(ca_file, "upstream.ca_file")
}
