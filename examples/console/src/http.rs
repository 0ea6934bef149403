//! A small HTTP/1.1 server: one request per connection (`Connection: close`), bodies by
//! `Content-Length` only, bounded head and body sizes, read and write timeouts, a cap on
//! concurrent connections, and the security headers every console response carries.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{IpAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

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

fn split_target(target: &str) -> (String, Vec<(String, String)>) {
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

    /// Adds a header.
    pub fn with(mut self, name: &str, value: impl Into<String>) -> Response {
        self.headers.push((name.into(), value.into()));
        self
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        303 => "See Other",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        411 => "Length Required",
        413 => "Content Too Large",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

/// Reads one request. `Ok(None)`: the client closed the connection before sending one.
pub fn read_request(
    stream: &mut impl Read,
    peer: IpAddr,
    max_body: usize,
) -> Result<Option<Request>, u16> {
    let mut r = BufReader::new(stream);
    let mut head = Vec::new();
    loop {
        let n = r
            .by_ref()
            .take((MAX_HEAD + 1 - head.len()) as u64)
            .read_until(b'\n', &mut head)
            .map_err(|_| 400u16)?;
        if n == 0 {
            if head.is_empty() {
                return Ok(None);
            }
            return Err(400);
        }
        if head.len() > MAX_HEAD {
            return Err(431);
        }
        if head.ends_with(b"\n\n") || head.ends_with(b"\r\n\r\n") {
            break;
        }
        if head == b"\r\n" || head == b"\n" {
            head.clear(); // tolerated empty line before the request (RFC 9112 2.2)
        }
    }
    let head = String::from_utf8(head).map_err(|_| 400u16)?;
    let mut lines = head.lines();
    let first = lines.next().ok_or(400u16)?;
    let mut parts = first.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(400);
    };
    if !version.starts_with("HTTP/1.") || !target.starts_with('/') {
        return Err(400);
    }
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(400);
    }
    let mut headers = Vec::new();
    for l in lines.filter(|l| !l.is_empty()) {
        let (k, v) = l.split_once(':').ok_or(400u16)?;
        if k.is_empty() || k.bytes().any(|b| b.is_ascii_whitespace()) {
            return Err(400);
        }
        headers.push((k.to_ascii_lowercase(), v.trim().to_string()));
    }
    let (path, query) = split_target(target);
    let mut req = Request {
        method: method.into(),
        path,
        query,
        headers,
        body: Vec::new(),
        peer,
    };
    if req.header("transfer-encoding").is_some() {
        return Err(411);
    }
    let len = match req.header("content-length") {
        Some(v) => v.parse::<usize>().map_err(|_| 400u16)?,
        None => 0,
    };
    if len > max_body {
        return Err(413);
    }
    if len > 0 {
        let mut body = vec![0u8; len];
        r.read_exact(&mut body).map_err(|_| 400u16)?;
        req.body = body;
    }
    Ok(Some(req))
}

/// Writes a response with the console's security headers; `head_only` for `HEAD`.
pub fn write_response(w: &mut impl Write, resp: &Response, head_only: bool) -> io::Result<()> {
    let mut h = format!("HTTP/1.1 {} {}\r\n", resp.status, reason(resp.status));
    for (k, v) in &resp.headers {
        // Header values we make never hold line breaks; drop any that would.
        if !v.contains(['\r', '\n']) {
            h.push_str(&format!("{k}: {v}\r\n"));
        }
    }
    h.push_str(&format!("Content-Length: {}\r\n", resp.body.len()));
    h.push_str(
        "Content-Security-Policy: default-src 'none'; style-src 'self'; img-src 'self' data:; \
         form-action 'self'; frame-ancestors 'none'; base-uri 'none'\r\n\
         X-Content-Type-Options: nosniff\r\n\
         X-Frame-Options: DENY\r\n\
         Referrer-Policy: no-referrer\r\n\
         Cache-Control: no-store\r\n\
         Connection: close\r\n\r\n",
    );
    w.write_all(h.as_bytes())?;
    if !head_only {
        w.write_all(&resp.body)?;
    }
    w.flush()
}

/// What the server calls for every request.
pub type Handler = dyn Fn(&Request) -> Response + Send + Sync;

/// Accepts connections forever, one thread each, at most `max_connections` at a time (more
/// get `503`, or are closed when TLS is on); with `tls`, every connection is HTTPS.
pub fn serve(
    listener: TcpListener,
    max_connections: usize,
    max_body: usize,
    tls: Option<Arc<rustls::ServerConfig>>,
    handler: Arc<Handler>,
) {
    let active = Arc::new(AtomicUsize::new(0));
    for stream in listener.incoming() {
        let Ok(mut stream) = stream else {
            std::thread::sleep(Duration::from_millis(50));
            continue;
        };
        if active.fetch_add(1, Ordering::SeqCst) >= max_connections {
            active.fetch_sub(1, Ordering::SeqCst);
            if tls.is_none() {
                let _ = stream.set_write_timeout(Some(Duration::from_secs(2)));
                let _ = write_response(&mut stream, &Response::text(503, "busy\n"), false);
            }
            continue;
        }
        let handler = handler.clone();
        let tls = tls.clone();
        let active2 = active.clone();
        let spawned = std::thread::Builder::new()
            .name("console-conn".into())
            .spawn(move || {
                connection(stream, tls, max_body, &*handler);
                active2.fetch_sub(1, Ordering::SeqCst);
            });
        if spawned.is_err() {
            active.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

fn connection(
    mut stream: TcpStream,
    tls: Option<Arc<rustls::ServerConfig>>,
    max_body: usize,
    handler: &Handler,
) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(20)));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(60)));
    let peer = stream
        .peer_addr()
        .map(|a| a.ip())
        .unwrap_or(IpAddr::from([0, 0, 0, 0]));
    match tls {
        None => exchange(&mut stream, peer, max_body, handler),
        Some(cfg) => {
            let Ok(conn) = rustls::ServerConnection::new(cfg) else {
                return;
            };
            let mut s = rustls::StreamOwned::new(conn, stream);
            // The handshake first: a client that does not speak TLS is dropped at once.
            while s.conn.is_handshaking() {
                if s.conn.complete_io(&mut s.sock).is_err() {
                    return;
                }
            }
            exchange(&mut s, peer, max_body, handler);
            s.conn.send_close_notify();
            let _ = s.flush();
        }
    }
}

/// One request and its response.
fn exchange(s: &mut (impl Read + Write), peer: IpAddr, max_body: usize, handler: &Handler) {
    let (resp, head_only) = match read_request(s, peer, max_body) {
        Ok(None) => return,
        Ok(Some(req)) => (
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| handler(&req)))
                .unwrap_or_else(|_| Response::text(500, "internal error\n")),
            req.method == "HEAD",
        ),
        Err(status) => (
            Response::text(status, &format!("{}\n", reason(status))),
            false,
        ),
    };
    let _ = write_response(s, &resp, head_only);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &[u8]) -> Result<Option<Request>, u16> {
        read_request(&mut &raw[..], IpAddr::from([127, 0, 0, 1]), 1024)
    }

    #[test]
    fn requests_parse_and_limits_hold() {
        let r = parse(b"POST /requests/ab%20c?x=1&y=%E6%89%BF HTTP/1.1\r\nHost: h\r\nCookie: a=1; s=xyz\r\nContent-Length: 9\r\n\r\ncomment=1")
            .unwrap()
            .unwrap();
        assert_eq!(r.path, "/requests/ab c");
        assert_eq!(r.q("y"), Some("承"));
        assert_eq!(r.cookie("s"), Some("xyz"));
        assert_eq!(r.form(), vec![("comment".into(), "1".into())]);
        assert!(parse(b"").unwrap().is_none());
        assert_eq!(
            parse(b"GET / HTTP/1.1\r\nContent-Length: 5000\r\n\r\n").unwrap_err(),
            413
        );
        assert_eq!(
            parse(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n").unwrap_err(),
            411
        );
        assert_eq!(parse(b"GET http://x/ HTTP/1.1\r\n\r\n").unwrap_err(), 400);
        assert_eq!(
            parse(b"GET / HTTP/1.1\r\nBad Header: x\r\n\r\n").unwrap_err(),
            400
        );
        let mut big = b"GET / HTTP/1.1\r\nX: ".to_vec();
        big.extend(std::iter::repeat_n(b'a', MAX_HEAD));
        assert_eq!(parse(&big).unwrap_err(), 431);
        assert_eq!(parse(b"GET / HTTP/1.1\r\nHost: h").unwrap_err(), 400);
    }

    #[test]
    fn responses_carry_security_headers_and_no_injected_lines() {
        let mut out = Vec::new();
        let r = Response::redirect("/x").with("X-Evil", "a\r\nSet-Cookie: s=1");
        write_response(&mut out, &r, false).unwrap();
        let s = String::from_utf8(out).unwrap();
        assert!(s.starts_with("HTTP/1.1 303 See Other\r\n"));
        assert!(s.contains("Content-Security-Policy: default-src 'none'"));
        assert!(s.contains("X-Frame-Options: DENY"));
        assert!(!s.contains("Set-Cookie"));
    }
}
