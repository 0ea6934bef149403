//! The console's HTTP server: hyper (HTTP/1.1, keep-alive) on a small tokio runtime, with a
//! deadline for each request's head, for its body and for a TLS handshake, bounded head and
//! body sizes, caps on connections in all and per client address, and the security headers
//! every console response carries. Handlers are plain functions from [`Request`] to
//! [`Response`], run on tokio's blocking pool.
//!
//! It replaced a hand-written HTTP/1.1 server after an outside review held its 64 thread slots
//! with 100 slow connections (slowloris): now a slow client costs a task until its deadline.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{IpAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};

/// Largest request head (request line and headers).
const MAX_HEAD: usize = 32 * 1024;

/// A parsed request.
#[derive(Debug, Clone)]
pub struct Request {
    /// `GET`, `POST`, ...
    pub method: String,
    /// Path without the query, percent-decoded.
    pub path: String,
    /// Query pairs, decoded.
    pub query: Vec<(String, String)>,
    /// Headers (names lower-case).
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Vec<u8>,
    /// Client address.
    pub peer: IpAddr,
}

impl Request {
    /// First header of that (lower-case) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// A cookie's value.
    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k == "cookie")
            .flat_map(|(_, v)| v.split(';'))
            .filter_map(|c| c.trim().split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v)
    }

    /// A query parameter (empty values count as absent).
    pub fn q(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, v)| k == name && !v.trim().is_empty())
            .map(|(_, v)| v.as_str())
    }

    /// The body's form fields (`application/x-www-form-urlencoded`).
    pub fn form(&self) -> Vec<(String, String)> {
        ping32dlp::text::form_pairs(&String::from_utf8_lossy(&self.body))
    }
}

pub fn split_target(target: &str) -> (String, Vec<(String, String)>) {
    let (p, q) = target.split_once('?').unwrap_or((target, ""));
    let path = String::from_utf8_lossy(&ping32dlp::text::percent_decode(p, false)).into_owned();
    (path, ping32dlp::text::form_pairs(q))
}

/// A response.
#[derive(Debug, Clone)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Headers besides the standard ones.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Vec<u8>,
}

impl Response {
    /// An HTML page.
    pub fn html(status: u16, body: String) -> Response {
        Response {
            status,
            headers: vec![("Content-Type".into(), "text/html; charset=utf-8".into())],
            body: body.into_bytes(),
        }
    }

    /// Plain text.
    pub fn text(status: u16, body: &str) -> Response {
        Response {
            status,
            headers: vec![("Content-Type".into(), "text/plain; charset=utf-8".into())],
            body: body.as_bytes().to_vec(),
        }
    }

    /// `303 See Other` to a local path.
    pub fn redirect(to: &str) -> Response {
        Response {
            status: 303,
            headers: vec![("Location".into(), to.into())],
            body: Vec::new(),
        }
    }

    /// A file to save: `application/octet-stream`, `attachment` with an ASCII fallback name
    /// and the UTF-8 name (RFC 6266 / RFC 5987).
    pub fn download(name: &str, data: Vec<u8>) -> Response {
        let ascii: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "._-".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        Response {
            status: 200,
            headers: vec![
                ("Content-Type".into(), "application/octet-stream".into()),
                (
                    "Content-Disposition".into(),
                    format!(
                        "attachment; filename=\"{ascii}\"; filename*=UTF-8''{}",
                        ping32dlp::text::percent_encode(name)
                    ),
                ),
            ],
            body: data,
        }
    }

    /// Adds a header.
    pub fn with(mut self, name: &str, value: impl Into<String>) -> Response {
        self.headers.push((name.into(), value.into()));
        self
    }
}

/// The security headers every console response carries.
pub const SECURITY_HEADERS: &[(&str, &str)] = &[
    (
        "Content-Security-Policy",
        "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    ),
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "no-referrer"),
    ("Cache-Control", "no-store"),
];

/// What the server calls for every request.
pub type Handler = dyn Fn(&Request) -> Response + Send + Sync;

/// The server's limits. Slow clients are cut off by deadlines, not by a small connection
/// count: a connection costs a task and a buffer, not a thread.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Open connections in all (more are closed at once).
    pub max_connections: usize,
    /// Open connections from one client address.
    pub max_per_client: usize,
    /// Largest request body.
    pub max_body: usize,
    /// Largest request body of the agents' API (`/agent/...`: batches of audit records) and of
    /// a policy upload for the agents.
    pub max_api_body: usize,
    /// Largest request head.
    pub max_head: usize,
    /// Time for a request's head to arrive (and for the next one on a kept-alive connection).
    pub header_timeout: Duration,
    /// Time for a request's body to arrive once its head has.
    pub body_timeout: Duration,
    /// Time for a TLS handshake.
    pub handshake_timeout: Duration,
    /// Longest life of one connection.
    pub connection_lifetime: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_connections: 1024,
            max_per_client: 256,
            max_body: 64 * 1024,
            max_api_body: 16 * 1024 * 1024,
            max_head: MAX_HEAD,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            handshake_timeout: Duration::from_secs(10),
            connection_lifetime: Duration::from_secs(600),
        }
    }
}

fn with_security_headers(resp: &Response, head_only: bool) -> hyper::Response<Full<Bytes>> {
    let mut b = hyper::Response::builder().status(resp.status);
    for (k, v) in &resp.headers {
        // Header values we make never hold line breaks; drop any that would.
        if !v.contains(['\r', '\n']) {
            b = b.header(k.as_str(), v.as_str());
        }
    }
    for (k, v) in SECURITY_HEADERS {
        b = b.header(*k, *v);
    }
    let body = if head_only {
        Bytes::new()
    } else {
        Bytes::from(resp.body.clone())
    };
    b.body(Full::new(body)).unwrap_or_else(|_| {
        let mut r = hyper::Response::new(Full::new(Bytes::from_static(b"internal error\n")));
        *r.status_mut() = hyper::StatusCode::INTERNAL_SERVER_ERROR;
        r
    })
}

/// Turns a hyper request into the console's, with the body limit and deadline applied.
async fn read(
    req: hyper::Request<Incoming>,
    peer: IpAddr,
    limits: &Limits,
) -> Result<Request, u16> {
    let (parts, body) = req.into_parts();
    let max_body =
        if parts.uri.path().starts_with("/agent/") || parts.uri.path() == "/agents/policy" {
            limits.max_api_body
        } else {
            limits.max_body
        };
    if parts
        .headers
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .is_some_and(|n| n > max_body as u64)
    {
        return Err(413);
    }
    let collected = tokio::time::timeout(
        limits.body_timeout,
        http_body_util::Limited::new(body, max_body).collect(),
    )
    .await;
    let body = match collected {
        Err(_) => return Err(408),
        Ok(Err(e)) => {
            return Err(if e.is::<http_body_util::LengthLimitError>() {
                413
            } else {
                400
            })
        }
        Ok(Ok(c)) => c.to_bytes().to_vec(),
    };
    let path = parts.uri.path();
    if !path.starts_with('/') {
        return Err(400);
    }
    let (path, query) = split_target(&match parts.uri.query() {
        Some(q) => format!("{path}?{q}"),
        None => path.to_string(),
    });
    let headers = parts
        .headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_ascii_lowercase(),
                String::from_utf8_lossy(v.as_bytes()).trim().to_string(),
            )
        })
        .collect();
    Ok(Request {
        method: parts.method.as_str().to_string(),
        path,
        query,
        headers,
        body,
        peer,
    })
}

async fn exchange(
    req: hyper::Request<Incoming>,
    peer: IpAddr,
    limits: Arc<Limits>,
    handler: Arc<Handler>,
) -> Result<hyper::Response<Full<Bytes>>, Infallible> {
    let head_only = req.method() == hyper::Method::HEAD;
    let resp = match read(req, peer, &limits).await {
        Err(status) => Response::text(status, &format!("{}\n", reason(status))),
        Ok(req) => {
            // Handlers do blocking work (SQLite, Argon2): off the reactor.
            let done = tokio::task::spawn_blocking(move || {
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| handler(&req)))
            })
            .await;
            match done {
                Ok(Ok(r)) => r,
                _ => Response::text(500, "internal error\n"),
            }
        }
    };
    Ok(with_security_headers(&resp, head_only))
}

fn reason(status: u16) -> &'static str {
    hyper::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Status")
}

/// Connections per client address, given back when a connection ends.
struct PerClient {
    map: Mutex<HashMap<IpAddr, usize>>,
}

struct ClientSlot {
    ip: IpAddr,
    table: Arc<PerClient>,
}

impl PerClient {
    fn take(self: &Arc<Self>, ip: IpAddr, max: usize) -> Option<ClientSlot> {
        let mut m = self.map.lock().unwrap_or_else(|e| e.into_inner());
        let n = m.entry(ip).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(ClientSlot {
            ip,
            table: self.clone(),
        })
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut m = self.table.map.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = m.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.ip);
            }
        }
    }
}

/// Serves forever on `listener` (HTTP/1.1 by hyper, keep-alive, the limits above); with `tls`,
/// every connection is HTTPS (the handshake completes before a request is read). Blocks the
/// calling thread, which runs a small tokio runtime.
pub fn serve(
    listener: TcpListener,
    limits: Limits,
    tls: Option<Arc<rustls::ServerConfig>>,
    handler: Arc<Handler>,
    metrics: Option<Arc<ping32dlp_ops::Metrics>>,
) {
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("console-http")
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            ping32dlp::service::log_event(
                "ping32dlp-console",
                "start_error",
                &[],
                &format!("cannot start: {e}"),
            );
            return;
        }
    };
    rt.block_on(accept_loop(listener, limits, tls, handler, metrics));
}

/// A served connection, counted in the metrics while it lives.
struct Counted(Option<Arc<ping32dlp_ops::Metrics>>);

impl Counted {
    fn new(m: &Option<Arc<ping32dlp_ops::Metrics>>) -> Counted {
        if let Some(m) = m {
            m.connection_opened();
        }
        Counted(m.clone())
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        if let Some(m) = &self.0 {
            m.connection_closed();
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    limits: Limits,
    tls: Option<Arc<rustls::ServerConfig>>,
    handler: Arc<Handler>,
    metrics: Option<Arc<ping32dlp_ops::Metrics>>,
) {
    let refused = |reason: &str| {
        if let Some(m) = &metrics {
            m.connection_refused(reason);
        }
    };
    let limits = Arc::new(limits);
    if listener.set_nonblocking(true).is_err() {
        return;
    }
    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
        return;
    };
    let all = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    let per_client = Arc::new(PerClient {
        map: Mutex::new(HashMap::new()),
    });
    let tls = tls.map(tokio_rustls::TlsAcceptor::from);
    loop {
        let (tcp, addr) = match listener.accept().await {
            Ok(x) => x,
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = all.clone().try_acquire_owned() else {
            refused("max_connections");
            continue; // dropped: closed at once
        };
        let Some(slot) = per_client.take(addr.ip(), limits.max_per_client) else {
            refused("max_connections_per_client");
            continue;
        };
        let counted = Counted::new(&metrics);
        let _ = tcp.set_nodelay(true);
        let (limits, handler, tls) = (limits.clone(), handler.clone(), tls.clone());
        tokio::spawn(async move {
            let _held = (permit, slot, counted);
            let peer = addr.ip();
            let svc = {
                let (limits, handler) = (limits.clone(), handler.clone());
                service_fn(move |req| exchange(req, peer, limits.clone(), handler.clone()))
            };
            let mut b = hyper::server::conn::http1::Builder::new();
            b.timer(TokioTimer::new())
                .header_read_timeout(limits.header_timeout)
                .max_buf_size(limits.max_head.max(8192))
                .keep_alive(true);
            let life = limits.connection_lifetime;
            match tls {
                None => {
                    let conn = b.serve_connection(TokioIo::new(tcp), svc);
                    let _ = tokio::time::timeout(life, conn).await;
                }
                Some(acc) => {
                    let Ok(Ok(s)) =
                        tokio::time::timeout(limits.handshake_timeout, acc.accept(tcp)).await
                    else {
                        return;
                    };
                    let conn = b.serve_connection(TokioIo::new(s), svc);
                    let _ = tokio::time::timeout(life, conn).await;
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::{SocketAddr, TcpStream};
    use std::time::Instant;

    /// A server whose handler echoes what it parsed.
    fn start(limits: Limits) -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let h: Arc<Handler> = Arc::new(|r: &Request| {
            if r.path == "/evil" {
                return Response::redirect("/x").with("X-Evil", "a\r\nSet-Cookie: s=1");
            }
            Response::text(
                200,
                &format!(
                    "{} {} y={:?} s={:?} form={:?}",
                    r.method,
                    r.path,
                    r.q("y"),
                    r.cookie("s"),
                    r.form()
                ),
            )
        });
        std::thread::spawn(move || serve(l, limits, None, h, None));
        addr
    }

    fn raw(addr: SocketAddr, bytes: &[u8]) -> String {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        s.write_all(bytes).unwrap();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    }

    #[test]
    fn requests_parse_and_limits_hold() {
        let addr = start(Limits {
            max_body: 1024,
            ..Limits::default()
        });
        let r = raw(addr, "POST /requests/ab%20c?x=1&y=%E6%89%BF HTTP/1.1\r\nHost: h\r\nCookie: a=1; s=xyz\r\nContent-Length: 9\r\nConnection: close\r\n\r\ncomment=1".as_bytes());
        assert!(r.starts_with("HTTP/1.1 200"), "{r}");
        assert!(
            r.contains("POST /requests/ab c y=Some(\"承\") s=Some(\"xyz\")"),
            "{r}"
        );
        assert!(r.contains("(\"comment\", \"1\")"), "{r}");
        let r = raw(
            addr,
            b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5000\r\nConnection: close\r\n\r\n",
        );
        assert!(r.starts_with("HTTP/1.1 413"), "{r}");
        // Chunked bodies are read too, within the limit.
        let r = raw(addr, b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\na=b&c\r\n0\r\n\r\n");
        assert!(
            r.starts_with("HTTP/1.1 200") && r.contains("(\"a\", \"b\")"),
            "{r}"
        );
        let mut big =
            b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n800\r\n".to_vec();
        big.extend(std::iter::repeat_n(b'a', 0x800));
        big.extend_from_slice(b"\r\n0\r\n\r\n");
        assert!(raw(addr, &big).starts_with("HTTP/1.1 413"));
        let mut head = b"GET / HTTP/1.1\r\nX: ".to_vec();
        head.extend(std::iter::repeat_n(b'a', MAX_HEAD * 4));
        head.extend_from_slice(b"\r\n\r\n");
        let r = raw(addr, &head);
        assert!(r.starts_with("HTTP/1.1 431") || r.is_empty(), "{r}");
        assert!(raw(addr, b"GET / HTTP/1.1\r\nBad Header: x\r\n\r\n").starts_with("HTTP/1.1 400"));
    }

    #[test]
    fn responses_carry_security_headers_and_no_injected_lines() {
        let addr = start(Limits::default());
        let r = raw(
            addr,
            b"GET /evil HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
        );
        assert!(r.starts_with("HTTP/1.1 303 See Other\r\n"), "{r}");
        let low = r.to_ascii_lowercase();
        assert!(low.contains("content-security-policy: default-src 'none'"));
        assert!(low.contains("x-frame-options: deny"));
        assert!(!low.contains("set-cookie"));
    }

    #[test]
    fn slow_clients_do_not_shut_out_others() {
        // The review: 100 slow connections made the old server answer 503 while they lasted.
        let addr = start(Limits {
            header_timeout: Duration::from_secs(2),
            ..Limits::default()
        });
        let mut slow: Vec<TcpStream> = (0..100)
            .map(|_| {
                let mut s = TcpStream::connect(addr).unwrap();
                s.write_all(b"GET / HTTP/1.1\r\nHost: h\r\nX-Slow: ")
                    .unwrap();
                s
            })
            .collect();
        std::thread::sleep(Duration::from_millis(300));
        let t = Instant::now();
        let r = raw(
            addr,
            b"GET /ok HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
        );
        assert!(r.starts_with("HTTP/1.1 200"), "{r}");
        assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
        // Dripping bytes does not keep them alive past the head deadline.
        for _ in 0..4 {
            for s in &mut slow {
                let _ = s.write_all(b"a");
            }
            std::thread::sleep(Duration::from_millis(700));
        }
        let mut closed = 0;
        for s in &mut slow {
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut buf = Vec::new();
            let _ = s.read_to_end(&mut buf);
            let text = String::from_utf8_lossy(&buf);
            if buf.is_empty() || text.starts_with("HTTP/1.1 408") {
                closed += 1;
            }
        }
        assert_eq!(closed, 100);
    }
}
