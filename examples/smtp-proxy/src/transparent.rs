//! Transparent mode (Linux): outbound SMTP of this machine's users (ports 25, 587 and 465) is
//! redirected to a loopback listener by nftables; the proxy asks the kernel where each
//! connection was going (`SO_ORIGINAL_DST`) and relays there, so the employee's mail client
//! keeps its own server settings.
//!
//! TLS is intercepted with the interception CA (the company's, or one made in the state
//! directory): the proxy reads the client's ClientHello, takes the name the client asked for
//! (SNI; without SNI the `[transparent.names]` entry of the destination address, else the
//! connection is refused), connects to the original destination and verifies the real
//! server's certificate against that name, and only then finishes the client's handshake with
//! a certificate for that name signed by the interception CA. For STARTTLS the client's EHLO
//! and STARTTLS are answered locally first. A plain session stays plain on both sides.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io;
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use rustls::server::{Accepted, Acceptor};
use rustls::{ClientConfig, ServerConfig};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde::Deserialize;

/// The `[transparent]` settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TransparentCfg {
    /// The loopback address nftables redirects outbound SMTP to (`""`: off, the default).
    pub listen: String,
    /// Original destination ports where TLS starts with the first byte (default `[465]`);
    /// on the others the client may ask for STARTTLS.
    pub tls_ports: Vec<u16>,
    /// CA certificates (PEM) the real servers are verified with; default: the system trust
    /// store. Verification cannot be turned off.
    pub ca_file: Option<PathBuf>,
    /// The interception CA's certificate (PEM), given to the PCs as trusted; default: made on
    /// first run as `STATE/tls/intercept-ca.pem`.
    pub ca_cert: Option<PathBuf>,
    /// Its private key (PEM); goes with `ca_cert`.
    pub ca_key: Option<PathBuf>,
    /// Destination address to server name, for clients that send no SNI (most send it when
    /// they connect by name): `"198.51.100.2" = "smtp.example.net"`.
    pub names: BTreeMap<String, String>,
}

impl Default for TransparentCfg {
    fn default() -> TransparentCfg {
        TransparentCfg {
            listen: String::new(),
            tls_ports: vec![465],
            ca_file: None,
            ca_cert: None,
            ca_key: None,
            names: BTreeMap::new(),
        }
    }
}

impl TransparentCfg {
    /// Checks what serde cannot: a loopback listener, the CA files together, the names map.
    pub fn check(&self) -> Result<(), String> {
        if self.listen.is_empty() {
            return Ok(());
        }
        if !crate::is_loopback(&self.listen) {
            return Err(format!(
                "transparent.listen = \"{}\" must be a loopback address: it relays to whatever \
                 destination a connection was redirected from, so only this machine's \
                 redirected connections may reach it",
                self.listen
            ));
        }
        if self.ca_cert.is_some() != self.ca_key.is_some() {
            return Err("transparent.ca_cert and transparent.ca_key go together".into());
        }
        self.name_map().map(|_| ())
    }

    fn name_map(&self) -> Result<HashMap<IpAddr, String>, String> {
        let mut m = HashMap::new();
        for (addr, name) in &self.names {
            let ip: IpAddr = addr.parse().map_err(|_| {
                format!("transparent.names.\"{addr}\": not an IP address (the key is the destination address)")
            })?;
            ServerName::try_from(name.as_str()).map_err(|e| {
                format!("transparent.names.\"{addr}\" = \"{name}\": not a server name: {e}")
            })?;
            m.insert(ip, name.clone());
        }
        Ok(m)
    }
}

/// Certificates minted for names are made again after this long (they are valid for 30 days).
const REMINT: Duration = Duration::from_secs(7 * 24 * 3600);
/// Names whose certificates are kept; the cache starts again when full.
const MAX_NAMES: usize = 4096;

/// What transparent sessions share: the interception CA, the minted certificates, the upstream
/// verification and the names map.
pub struct Interceptor {
    issuer: Issuer<'static, KeyPair>,
    ca_der: CertificateDer<'static>,
    /// The interception CA's certificate (to be trusted by the PCs).
    pub ca_pem: PathBuf,
    /// True when this run made the CA.
    pub created: bool,
    /// Verifies the real servers.
    pub client_tls: Arc<ClientConfig>,
    names: HashMap<IpAddr, String>,
    tls_ports: Vec<u16>,
    minted: Mutex<HashMap<String, (Instant, Arc<ServerConfig>)>>,
}

impl Interceptor {
    /// Loads (or on first run makes, in `tls_dir`) the interception CA.
    pub fn new(cfg: &TransparentCfg, tls_dir: &Path) -> Result<Interceptor, String> {
        cfg.check()?;
        let (cert, key, created) = match (&cfg.ca_cert, &cfg.ca_key) {
            (Some(c), Some(k)) => (c.clone(), k.clone(), false),
            _ => {
                let c = tls_dir.join("intercept-ca.pem");
                let k = tls_dir.join("intercept-ca.key");
                let made = !(c.exists() && k.exists());
                if made {
                    make_ca(tls_dir, &c, &k)?;
                }
                (c, k, made)
            }
        };
        let pem = std::fs::read_to_string(&cert).map_err(|e| format!("{}: {e}", cert.display()))?;
        let key_pem =
            std::fs::read_to_string(&key).map_err(|e| format!("{}: {e}", key.display()))?;
        let kp = KeyPair::from_pem(&key_pem).map_err(|e| format!("{}: {e}", key.display()))?;
        use rustls_pki_types::pem::PemObject;
        let ca_der = CertificateDer::from_pem_slice(pem.as_bytes())
            .map_err(|e| format!("{}: {e}", cert.display()))?;
        let issuer = Issuer::from_ca_cert_pem(&pem, kp)
            .map_err(|e| format!("{}: not a usable CA with that key: {e}", cert.display()))?;
        Ok(Interceptor {
            issuer,
            ca_der,
            ca_pem: cert,
            created,
            client_tls: ping32dlp::net::client_config(
                cfg.ca_file.as_deref(),
                "transparent.ca_file",
            )?,
            names: cfg.name_map()?,
            tls_ports: cfg.tls_ports.clone(),
            minted: Mutex::new(HashMap::new()),
        })
    }

    /// TLS starts with the first byte on connections to this port.
    pub fn implicit(&self, port: u16) -> bool {
        self.tls_ports.contains(&port)
    }

    /// The name to verify the real server against: the client's SNI, else the configured
    /// name of the destination address.
    pub fn name_for(&self, sni: Option<&str>, dst: IpAddr) -> Option<String> {
        sni.map(str::to_owned)
            .or_else(|| self.names.get(&dst).cloned())
    }

    /// The configured name of a destination address (`[transparent.names]`).
    pub fn configured_name(&self, dst: IpAddr) -> Option<String> {
        self.names.get(&dst).cloned()
    }

    /// A server configuration presenting a certificate for `name` signed by the interception
    /// CA (made on first use, kept for a week).
    pub fn server_config(&self, name: &str) -> Result<Arc<ServerConfig>, String> {
        let mut m = self.minted.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((at, c)) = m.get(name) {
            if at.elapsed() < REMINT {
                return Ok(c.clone());
            }
        }
        if m.len() >= MAX_NAMES {
            m.clear();
        }
        let c = self.mint(name)?;
        m.insert(name.to_string(), (Instant::now(), c.clone()));
        Ok(c)
    }

    fn mint(&self, name: &str) -> Result<Arc<ServerConfig>, String> {
        let err = |e: rcgen::Error| format!("certificate for {name}: {e}");
        let key = KeyPair::generate().map_err(err)?;
        let mut p = CertificateParams::new(vec![name.to_string()]).map_err(err)?;
        p.distinguished_name.push(DnType::CommonName, name);
        let now = time::OffsetDateTime::now_utc();
        p.not_before = now - time::Duration::days(1);
        p.not_after = now + time::Duration::days(30);
        let cert = p.signed_by(&key, &self.issuer).map_err(err)?;
        let chain = vec![cert.der().clone(), self.ca_der.clone()];
        let key = PrivateKeyDer::try_from(key.serialize_der()).map_err(|e| e.to_string())?;
        let cfg =
            ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .map_err(|e| e.to_string())?
                .with_no_client_auth()
                .with_single_cert(chain, key)
                .map_err(|e| format!("certificate for {name}: {e}"))?;
        Ok(Arc::new(cfg))
    }
}

fn make_ca(dir: &Path, cert: &Path, key: &Path) -> Result<(), String> {
    ping32dlp::workflow::private::create_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let err = |e: rcgen::Error| format!("interception CA: {e}");
    let kp = KeyPair::generate().map_err(err)?;
    let mut p = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    p.distinguished_name.push(
        DnType::CommonName,
        format!(
            "ping32dlp interception CA ({})",
            ping32dlp::workflow::host_name()
        ),
    );
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let now = time::OffsetDateTime::now_utc();
    p.not_before = now - time::Duration::days(1);
    p.not_after = now + time::Duration::days(3650);
    let c = p.self_signed(&kp).map_err(err)?;
    crate::tls::write_private(key, &kp.serialize_pem())?;
    crate::tls::write_private(cert, &c.pem())
}

/// Where a redirected connection was going (`SO_ORIGINAL_DST`, IPv4 or IPv6).
pub fn original_dst(tcp: &TcpStream) -> io::Result<SocketAddr> {
    let s = socket2::SockRef::from(tcp);
    let a = match tcp.local_addr()? {
        SocketAddr::V4(_) => s.original_dst_v4()?,
        SocketAddr::V6(_) => s.original_dst_v6()?,
    };
    a.as_socket()
        .ok_or_else(|| io::Error::other("original destination is not an IP address"))
}

/// Reads the client's ClientHello (up to the read timeout set on `tcp`).
pub fn read_hello(tcp: &mut TcpStream) -> Result<Accepted, String> {
    let mut acceptor = Acceptor::default();
    loop {
        match acceptor.read_tls(tcp) {
            Ok(0) => return Err("client closed before its TLS ClientHello".into()),
            Ok(_) => {}
            Err(e) => return Err(format!("reading the TLS ClientHello: {e}")),
        }
        match acceptor.accept() {
            Ok(Some(a)) => return Ok(a),
            Ok(None) => {}
            Err((e, mut alert)) => {
                let _ = alert.write_all(tcp);
                return Err(format!("TLS ClientHello: {e}"));
            }
        }
    }
}

/// Finishes the client's handshake with the certificate minted for `name`.
pub fn accept_as(
    i: &Interceptor,
    hello: Accepted,
    name: &str,
    mut tcp: TcpStream,
) -> Result<rustls::StreamOwned<rustls::ServerConnection, TcpStream>, String> {
    let cfg = i.server_config(name)?;
    match hello.into_connection(cfg) {
        Ok(conn) => Ok(rustls::StreamOwned::new(conn, tcp)),
        Err((e, mut alert)) => {
            let _ = alert.write_all(&mut tcp);
            Err(format!("TLS handshake: {e}"))
        }
    }
}

/// Local ports of the proxy's own outbound connections: a connection redirected back to the
/// proxy from one of them is a redirect loop (nftables does not exempt the proxy's user).
static OUTBOUND: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

/// An outbound connection's port, listed while it lives.
pub struct Outbound(Option<u16>);

impl Drop for Outbound {
    fn drop(&mut self) {
        if let Some(p) = self.0 {
            if let Some(s) = OUTBOUND.lock().unwrap_or_else(|p| p.into_inner()).as_mut() {
                s.remove(&p);
            }
        }
    }
}

/// Connects to `addr` from a port listed as the proxy's own before the first packet leaves.
pub fn connect(addr: SocketAddr, timeout: Duration) -> io::Result<(TcpStream, Outbound)> {
    use socket2::{Domain, Socket, Type};
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    let any: SocketAddr = match addr {
        SocketAddr::V4(_) => (std::net::Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (std::net::Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    s.bind(&any.into())?;
    let port = s.local_addr()?.as_socket().map(|a| a.port());
    if let Some(p) = port {
        OUTBOUND
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_or_insert_with(HashSet::new)
            .insert(p);
    }
    let guard = Outbound(port);
    s.connect_timeout(&addr.into(), timeout)?;
    Ok((s.into(), guard))
}

/// The peer is one of the proxy's own outbound connections.
pub fn is_own(peer: SocketAddr) -> bool {
    OUTBOUND
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .as_ref()
        .is_some_and(|s| s.contains(&peer.port()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;

    #[test]
    fn settings_are_checked_with_the_field_named() {
        let mut c = TransparentCfg {
            listen: "0.0.0.0:10025".into(),
            ..TransparentCfg::default()
        };
        assert!(c.check().unwrap_err().contains("loopback"));
        c.listen = "127.0.0.1:10025".into();
        c.check().unwrap();
        c.names.insert("smtp.example".into(), "x".into());
        assert!(c
            .check()
            .unwrap_err()
            .contains("transparent.names.\"smtp.example\""));
        c.names.clear();
        c.names.insert("198.51.100.2".into(), "bad name!".into());
        assert!(c.check().unwrap_err().contains("not a server name"));
        c.names.clear();
        c.ca_cert = Some("ca.pem".into());
        assert!(c.check().unwrap_err().contains("go together"));
    }

    #[test]
    fn minted_certificates_chain_to_the_interception_ca_for_the_asked_name() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = TransparentCfg {
            listen: "127.0.0.1:0".into(),
            names: [("198.51.100.2".to_string(), "smtp.example.net".to_string())].into(),
            ..TransparentCfg::default()
        };
        let i = Interceptor::new(&cfg, dir.path()).unwrap();
        assert!(i.created);
        assert!(!Interceptor::new(&cfg, dir.path()).unwrap().created);
        assert_eq!(
            i.name_for(None, "198.51.100.2".parse().unwrap()).as_deref(),
            Some("smtp.example.net")
        );
        assert_eq!(i.name_for(None, "198.51.100.3".parse().unwrap()), None);
        assert_eq!(
            i.name_for(Some("mail.example.org"), "198.51.100.2".parse().unwrap())
                .as_deref(),
            Some("mail.example.org")
        );
        // A real handshake over loopback: a client trusting only the interception CA accepts
        // the minted certificate for the name it asked for, and refuses it for another name.
        let server = i.server_config("mail.example.org").unwrap();
        assert!(Arc::ptr_eq(
            &server,
            &i.server_config("mail.example.org").unwrap()
        ));
        let client = ping32dlp::net::client_config(Some(&i.ca_pem), "test").unwrap();
        for (asked, ok) in [("mail.example.org", true), ("other.example.org", false)] {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = l.local_addr().unwrap();
            let server = server.clone();
            let h = std::thread::spawn(move || {
                let (s, _) = l.accept().unwrap();
                let conn = rustls::ServerConnection::new(server).unwrap();
                let mut t = rustls::StreamOwned::new(conn, s);
                let _ = t.write_all(b"220 hello\r\n");
                let _ = t.flush();
            });
            let tcp = TcpStream::connect(addr).unwrap();
            let conn = rustls::ClientConnection::new(
                client.clone(),
                ServerName::try_from(asked.to_string()).unwrap(),
            )
            .unwrap();
            let mut t = rustls::StreamOwned::new(conn, tcp);
            let mut buf = [0u8; 11];
            let r = io::Read::read_exact(&mut t, &mut buf);
            assert_eq!(r.is_ok(), ok, "{asked}: {r:?}");
            drop(t);
            h.join().unwrap();
        }
    }

    #[test]
    fn a_connection_from_one_of_our_own_ports_is_recognised() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let (tcp, guard) = connect(l.local_addr().unwrap(), Duration::from_secs(2)).unwrap();
        let (_s, peer) = l.accept().unwrap();
        assert!(is_own(peer));
        drop(guard);
        assert!(!is_own(peer));
        drop(tcp);
    }
}
