//! ICAP (RFC 3507) on the wire: the request head, the `Encapsulated` header, the encapsulated
//! HTTP header sections and chunked bodies. Hand-written: no maintained Rust ICAP library
//! exists; the encapsulated HTTP request head is parsed by `httparse` (hyper's parser).
//!
//! Every size comes from what arrives and is bounded by a named limit before anything is
//! allocated: the `Encapsulated` offsets are checked (numbers, order, ceiling) before the header
//! sections are read, chunk sizes are parsed with a digit limit and their bytes are kept only up
//! to the caller's budget (the rest is read and counted, never stored), trailers are bounded.
//! `fuzz/fuzz_targets/icap.rs` runs arbitrary bytes through [`read_request`].

use std::io::{self, BufRead, Read};

/// Largest ICAP request head (request line and ICAP headers).
pub const MAX_HEAD: usize = 64 * 1024;
/// Largest encapsulated HTTP header sections together (`req-hdr` + `res-hdr`): Squid's own
/// request header limit is 64 KiB.
pub const MAX_HTTP_HEAD: usize = 128 * 1024;
/// Longest chunk-size line (size, extensions, CRLF).
pub const MAX_CHUNK_LINE: usize = 4096;
/// Longest trailer after the last chunk.
pub const MAX_TRAILER: usize = 16 * 1024;
/// ICAP headers per request.
pub const MAX_HEADERS: usize = 128;
/// Headers of the encapsulated HTTP request.
pub const MAX_HTTP_HEADERS: usize = 256;

/// Why a request could not be read.
#[derive(Debug)]
pub enum Error {
    /// The client closed the connection before a request started.
    Closed,
    /// Not valid ICAP: answer 400 and close.
    Bad(String),
    /// I/O (a timeout included).
    Io(io::Error),
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Error {
        Error::Io(e)
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Closed => f.write_str("closed"),
            Error::Bad(m) => f.write_str(m),
            Error::Io(e) => write!(f, "{e}"),
        }
    }
}

fn bad(m: impl Into<String>) -> Error {
    Error::Bad(m.into())
}

/// An ICAP request head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// `OPTIONS`, `REQMOD`, `RESPMOD` (upper case).
    pub method: String,
    /// The ICAP URI (`icap://host:port/reqmod?x`).
    pub uri: String,
    /// Headers in order, names as sent.
    pub headers: Vec<(String, String)>,
}

impl Head {
    /// The first header of that name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The service path of the URI without query (`reqmod`).
    pub fn service(&self) -> &str {
        self.uri
            .split("://")
            .nth(1)
            .and_then(|s| s.split_once('/'))
            .map(|(_, p)| p.split('?').next().unwrap_or(""))
            .unwrap_or("")
    }

    /// The client asked to close the connection after this request.
    pub fn wants_close(&self) -> bool {
        self.header("Connection")
            .is_some_and(|c| c.eq_ignore_ascii_case("close"))
    }
}

/// Reads one request head. Empty lines before it are skipped (stray CRLF between requests).
pub fn read_head(r: &mut impl BufRead) -> Result<Head, Error> {
    let mut lines: Vec<String> = Vec::new();
    let mut total = 0usize;
    loop {
        let mut l = Vec::new();
        let limit = (MAX_HEAD + 1).saturating_sub(total) as u64;
        let n = r.by_ref().take(limit).read_until(b'\n', &mut l)?;
        if n == 0 {
            return if lines.is_empty() && total == 0 {
                Err(Error::Closed)
            } else {
                Err(bad("truncated ICAP head"))
            };
        }
        total += n;
        if total > MAX_HEAD {
            return Err(bad("ICAP head too large"));
        }
        if l.last() != Some(&b'\n') {
            return Err(bad("truncated ICAP head"));
        }
        let s = std::str::from_utf8(&l)
            .map_err(|_| bad("ICAP head is not UTF-8"))?
            .trim_end_matches(['\r', '\n']);
        if s.contains(['\r', '\0']) {
            return Err(bad("control character in the ICAP head"));
        }
        if s.is_empty() {
            if lines.is_empty() {
                continue;
            }
            break;
        }
        if lines.len() > MAX_HEADERS {
            return Err(bad("too many ICAP headers"));
        }
        lines.push(s.to_string());
    }
    let mut parts = lines[0].split(' ').filter(|p| !p.is_empty());
    let (Some(method), Some(uri), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad(format!("bad request line {:?}", lines[0])));
    };
    if !version.starts_with("ICAP/1.") {
        return Err(bad(format!("not ICAP: {:?}", lines[0])));
    }
    let mut headers = Vec::with_capacity(lines.len() - 1);
    for l in &lines[1..] {
        let (k, v) = l
            .split_once(':')
            .ok_or_else(|| bad(format!("bad header line {l:?}")))?;
        if k.is_empty() || k.bytes().any(|b| b.is_ascii_whitespace()) {
            return Err(bad(format!("bad header name {k:?}")));
        }
        headers.push((k.to_string(), v.trim().to_string()));
    }
    Ok(Head {
        method: method.to_ascii_uppercase(),
        uri: uri.to_string(),
        headers,
    })
}

/// The kind of body an ICAP message carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    /// `req-body`.
    Req,
    /// `res-body`.
    Res,
    /// `opt-body` (OPTIONS).
    Opt,
    /// `null-body`: none.
    Null,
}

/// A checked `Encapsulated` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encapsulated {
    /// Offset of the HTTP request header, if any.
    pub req_hdr: Option<usize>,
    /// Offset of the HTTP response header, if any.
    pub res_hdr: Option<usize>,
    /// The body entry.
    pub body: BodyKind,
    /// Its offset: the length of the header sections before it.
    pub body_offset: usize,
}

impl Encapsulated {
    /// `null-body=0`: nothing encapsulated.
    pub const NONE: Encapsulated = Encapsulated {
        req_hdr: None,
        res_hdr: None,
        body: BodyKind::Null,
        body_offset: 0,
    };

    /// There is a chunked body to read.
    pub fn has_body(&self) -> bool {
        !matches!(self.body, BodyKind::Null)
    }
}

/// Parses and checks `Encapsulated`: known entity names, decimal offsets that start at 0 and
/// never decrease, headers before the one body entry, which comes last, and offsets within
/// [`MAX_HTTP_HEAD`]. Hostile values (`req-body=18446744073709551615`) are errors, never sizes.
pub fn parse_encapsulated(v: &str) -> Result<Encapsulated, String> {
    let mut e = Encapsulated::NONE;
    let mut last: Option<usize> = None;
    let mut body_seen = false;
    for part in v.split(',') {
        let part = part.trim();
        let (name, off) = part
            .split_once('=')
            .ok_or_else(|| format!("`{part}`: expected name=offset"))?;
        let off = off.trim();
        if off.is_empty() || off.len() > 7 || !off.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!(
                "`{part}`: the offset is not a small decimal number"
            ));
        }
        let off: usize = off.parse().map_err(|_| format!("`{part}`: bad offset"))?;
        if off > MAX_HTTP_HEAD {
            return Err(format!(
                "`{part}`: HTTP headers over {MAX_HTTP_HEAD} bytes are not accepted"
            ));
        }
        if body_seen {
            return Err(format!("`{part}`: nothing may follow the body entry"));
        }
        match last {
            None if off != 0 => return Err(format!("`{part}`: the first offset must be 0")),
            Some(l) if off < l => return Err(format!("`{part}`: offsets must not decrease")),
            _ => {}
        }
        last = Some(off);
        match name.trim().to_ascii_lowercase().as_str() {
            "req-hdr" if e.req_hdr.is_none() && e.res_hdr.is_none() => e.req_hdr = Some(off),
            "res-hdr" if e.res_hdr.is_none() => e.res_hdr = Some(off),
            "req-body" => (e.body, body_seen) = (BodyKind::Req, true),
            "res-body" => (e.body, body_seen) = (BodyKind::Res, true),
            "opt-body" => (e.body, body_seen) = (BodyKind::Opt, true),
            "null-body" => (e.body, body_seen) = (BodyKind::Null, true),
            other => return Err(format!("`{other}`: unknown or repeated entity")),
        }
        if body_seen {
            e.body_offset = off;
        }
    }
    if !body_seen {
        return Err("no body entry (req-body, res-body, opt-body or null-body)".into());
    }
    Ok(e)
}

/// The encapsulated HTTP header sections.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sections {
    /// The HTTP request header (request line, headers, empty line), if sent.
    pub req_hdr: Vec<u8>,
    /// The HTTP response header, if sent.
    pub res_hdr: Vec<u8>,
}

/// Reads the header sections that `e` announces (exactly `body_offset` bytes, at most
/// [`MAX_HTTP_HEAD`], which [`parse_encapsulated`] checked).
pub fn read_sections(r: &mut impl Read, e: &Encapsulated) -> Result<Sections, Error> {
    let mut all = Vec::new();
    let n = r
        .by_ref()
        .take(e.body_offset.min(MAX_HTTP_HEAD) as u64)
        .read_to_end(&mut all)?;
    if n < e.body_offset {
        return Err(bad("connection closed inside the HTTP header sections"));
    }
    let end = e.body_offset;
    let mut s = Sections::default();
    match (e.req_hdr, e.res_hdr) {
        (Some(a), Some(b)) => {
            s.req_hdr = all[a..b].to_vec();
            s.res_hdr = all[b..end].to_vec();
        }
        (Some(a), None) => s.req_hdr = all[a..end].to_vec(),
        (None, Some(b)) => s.res_hdr = all[b..end].to_vec(),
        (None, None) => {}
    }
    Ok(s)
}

/// Reads chunks up to the last one and its trailer. Bytes are appended to `out` while it
/// holds at most `max`; past that they are read and counted in `over`, never stored. Returns
/// whether the last chunk carried `ieof` (the preview was the whole body).
pub fn read_chunked(
    r: &mut impl BufRead,
    out: &mut Vec<u8>,
    max: u64,
    over: &mut u64,
) -> Result<bool, Error> {
    loop {
        let mut line = Vec::new();
        r.by_ref()
            .take(MAX_CHUNK_LINE as u64)
            .read_until(b'\n', &mut line)?;
        if line.is_empty() {
            return Err(bad("connection closed inside a chunked body"));
        }
        if line.last() != Some(&b'\n') {
            return Err(bad("chunk-size line too long or truncated"));
        }
        let s = std::str::from_utf8(&line).map_err(|_| bad("chunk-size line is not text"))?;
        let s = s.trim();
        let (size, ext) = s.split_once(';').unwrap_or((s, ""));
        let size = size.trim();
        if size.is_empty() || size.len() > 15 || !size.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad(format!("bad chunk size {:?}", size)));
        }
        let size = u64::from_str_radix(size, 16).map_err(|_| bad("bad chunk size"))?;
        if size == 0 {
            let mut trailer = 0usize;
            loop {
                let mut t = Vec::new();
                r.by_ref()
                    .take(MAX_CHUNK_LINE as u64)
                    .read_until(b'\n', &mut t)?;
                trailer += t.len();
                if t.is_empty() || t == b"\r\n" || t == b"\n" {
                    break;
                }
                if trailer > MAX_TRAILER {
                    return Err(bad("chunked trailer too long"));
                }
            }
            return Ok(ext.trim().eq_ignore_ascii_case("ieof"));
        }
        let mut left = size;
        let mut buf = [0u8; 16384];
        while left > 0 {
            let n = left.min(buf.len() as u64) as usize;
            r.read_exact(&mut buf[..n])?;
            if *over == 0 && out.len() as u64 + n as u64 <= max {
                out.extend_from_slice(&buf[..n]);
            } else {
                *over += n as u64;
            }
            left -= n as u64;
        }
        let mut crlf = [0u8; 2];
        r.read_exact(&mut crlf)?;
        if &crlf != b"\r\n" {
            return Err(bad("chunk not followed by CRLF"));
        }
    }
}

/// Reads and drops a chunked body.
pub fn skip_chunked(r: &mut impl BufRead) -> Result<(), Error> {
    let mut sink = Vec::new();
    let mut over = 0;
    read_chunked(r, &mut sink, 0, &mut over).map(|_| ())
}

/// The encapsulated HTTP request head, parsed by httparse.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HttpHead {
    /// `POST`, `PUT`, ...
    pub method: String,
    /// The request target as sent (absolute URL through a proxy, or a path).
    pub target: String,
    /// Headers in order (values as lossy UTF-8).
    pub headers: Vec<(String, String)>,
}

impl HttpHead {
    /// Parses `req-hdr` bytes; `Err` when they are not an HTTP request head.
    pub fn parse(bytes: &[u8]) -> Result<HttpHead, String> {
        let mut hs = vec![httparse::EMPTY_HEADER; MAX_HTTP_HEADERS];
        let mut req = httparse::Request::new(&mut hs);
        match req.parse(bytes) {
            Ok(httparse::Status::Complete(_)) => {}
            Ok(httparse::Status::Partial) => return Err("HTTP request head is incomplete".into()),
            Err(e) => return Err(format!("HTTP request head: {e}")),
        }
        Ok(HttpHead {
            method: req.method.unwrap_or("").to_string(),
            target: req.path.unwrap_or("").to_string(),
            headers: req
                .headers
                .iter()
                .map(|h| {
                    (
                        h.name.to_string(),
                        String::from_utf8_lossy(h.value).trim().to_string(),
                    )
                })
                .collect(),
        })
    }

    /// The first header of that name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The destination host: `Host`, else the authority of an absolute target.
    pub fn host(&self) -> String {
        self.header("Host").map(str::to_string).unwrap_or_else(|| {
            self.target
                .split("://")
                .nth(1)
                .and_then(|s| s.split('/').next())
                .unwrap_or("")
                .to_string()
        })
    }

    /// Path and query of the target (an absolute URL loses its scheme and authority).
    pub fn path_and_query(&self) -> &str {
        match self.target.split_once("://") {
            Some((_, rest)) => rest.find('/').map_or("/", |i| &rest[i..]),
            None => &self.target,
        }
    }
}

/// A whole REQMOD or RESPMOD request as [`read_request`] reads it (for the fuzz target and the
/// tests; the server reads the parts itself so that it can answer a preview in between).
#[derive(Debug, Clone)]
pub struct Request {
    /// The head.
    pub head: Head,
    /// Its `Encapsulated` header.
    pub encapsulated: Encapsulated,
    /// The header sections.
    pub sections: Sections,
    /// The body (up to `max`).
    pub body: Vec<u8>,
    /// Body bytes past `max`.
    pub over: u64,
}

/// Reads one whole request, keeping at most `max` body bytes (a preview is read with the rest
/// of the body as if `100 Continue` had been sent).
pub fn read_request(r: &mut impl BufRead, max: u64) -> Result<Request, Error> {
    let head = read_head(r)?;
    let encapsulated = match head.header("Encapsulated") {
        Some(v) => parse_encapsulated(v).map_err(Error::Bad)?,
        None if head.method == "OPTIONS" => Encapsulated::NONE,
        None => return Err(bad("no Encapsulated header")),
    };
    let sections = read_sections(r, &encapsulated)?;
    let mut body = Vec::new();
    let mut over = 0;
    if encapsulated.has_body() {
        let ieof = read_chunked(r, &mut body, max, &mut over)?;
        if head.header("Preview").is_some() && !ieof {
            read_chunked(r, &mut body, max, &mut over)?;
        }
    }
    Ok(Request {
        head,
        encapsulated,
        sections,
        body,
        over,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_encapsulated_values_are_refused_not_allocated() {
        assert!(parse_encapsulated("req-hdr=0, req-body=18446744073709551615").is_err());
        assert!(parse_encapsulated("req-hdr=0, req-body=99999999999").is_err());
        assert!(parse_encapsulated("req-hdr=0, req-body=200000").is_err());
        assert!(
            parse_encapsulated("req-hdr=5, req-body=10").is_err(),
            "not from 0"
        );
        assert!(parse_encapsulated("req-hdr=0, req-body=10, res-hdr=20").is_err());
        assert!(parse_encapsulated("req-body=10, req-hdr=0").is_err());
        assert!(parse_encapsulated("req-hdr=0, req-body=-1").is_err());
        assert!(parse_encapsulated("req-hdr=0").is_err(), "no body entry");
        assert!(parse_encapsulated("x-hdr=0, null-body=3").is_err());
        let e = parse_encapsulated("req-hdr=0, res-hdr=137, res-body=296").unwrap();
        assert_eq!(
            (e.req_hdr, e.res_hdr, e.body_offset),
            (Some(0), Some(137), 296)
        );
        assert_eq!(e.body, BodyKind::Res);
        let e = parse_encapsulated("null-body=0").unwrap();
        assert!(!e.has_body());
    }

    #[test]
    fn a_whole_request_reads_with_bounded_body() {
        let http =
            "POST /up HTTP/1.1\r\nHost: files.example.net\r\nContent-Type: text/plain\r\n\r\n";
        let raw = format!(
            "REQMOD icap://127.0.0.1:1344/reqmod ICAP/1.0\r\nHost: x\r\nEncapsulated: req-hdr=0, req-body={}\r\nPreview: 4\r\n\r\n{http}4\r\nabcd\r\n0\r\n\r\n6; x=y\r\nefghij\r\n0\r\n\r\n",
            http.len()
        );
        let req = read_request(&mut raw.as_bytes(), 8).unwrap();
        assert_eq!(req.head.service(), "reqmod");
        assert_eq!(req.body, b"abcd");
        assert_eq!(req.over, 6);
        let h = HttpHead::parse(&req.sections.req_hdr).unwrap();
        assert_eq!(h.host(), "files.example.net");
        assert_eq!(h.path_and_query(), "/up");
    }

    #[test]
    fn malformed_heads_and_chunks_are_errors() {
        assert!(matches!(read_head(&mut &b""[..]), Err(Error::Closed)));
        assert!(matches!(
            read_head(&mut &b"GET / HTTP/1.1\r\n\r\n"[..]),
            Err(Error::Bad(_))
        ));
        assert!(matches!(
            read_head(&mut &b"OPTIONS icap://x/ ICAP/1.0\r\nA\rB: c\r\n\r\n"[..]),
            Err(Error::Bad(_))
        ));
        let mut big = b"OPTIONS icap://x/ ICAP/1.0\r\nX: ".to_vec();
        big.extend(std::iter::repeat_n(b'a', MAX_HEAD));
        assert!(matches!(read_head(&mut big.as_slice()), Err(Error::Bad(_))));
        let mut out = Vec::new();
        let mut over = 0;
        for body in [
            &b"fffffffffffffffffff\r\n"[..],
            b"zz\r\n",
            b"3\r\nabcXX",
            b"",
        ] {
            assert!(read_chunked(&mut &body[..], &mut out, 100, &mut over).is_err());
        }
    }
}
