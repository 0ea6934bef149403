//! SMTP on both sides: a line-oriented stream (plain or TLS, upgradable by STARTTLS), the
//! client session the proxy serves, and the upstream client it relays through.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use ping32dlp::policy::{Action, Context};
use rustls::{ClientConnection, ServerConnection, StreamOwned};
use rustls_pki_types::ServerName;

use crate::{Shared, Upstream as UpstreamCfg, UpstreamTls};

/// A TCP stream, TLS or not.
pub enum Stream {
    /// Plain TCP.
    Plain(TcpStream),
    /// TLS, server side.
    Server(Box<StreamOwned<ServerConnection, TcpStream>>),
    /// TLS, client side.
    Client(Box<StreamOwned<ClientConnection, TcpStream>>),
    /// Nothing (during an upgrade).
    Gone,
}

impl Stream {
    /// The TLS version in use, if any.
    pub fn tls_version(&self) -> Option<String> {
        let v = match self {
            Stream::Server(s) => s.conn.protocol_version(),
            Stream::Client(s) => s.conn.protocol_version(),
            _ => None,
        }?;
        Some(match v {
            rustls::ProtocolVersion::TLSv1_3 => "TLSv1.3".to_string(),
            rustls::ProtocolVersion::TLSv1_2 => "TLSv1.2".to_string(),
            other => format!("{other:?}"),
        })
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Server(s) => s.read(buf),
            Stream::Client(s) => s.read(buf),
            Stream::Gone => Err(io::ErrorKind::NotConnected.into()),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Server(s) => s.write(buf),
            Stream::Client(s) => s.write(buf),
            Stream::Gone => Err(io::ErrorKind::NotConnected.into()),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Server(s) => s.flush(),
            Stream::Client(s) => s.flush(),
            Stream::Gone => Ok(()),
        }
    }
}

/// The longest command line accepted (RFC 5321 says 512; AUTH lines with tokens are longer).
const MAX_LINE: usize = 16 * 1024;

/// A buffered line reader and writer over a stream.
pub struct Conn {
    s: Stream,
    buf: Vec<u8>,
    pos: usize,
}

impl Conn {
    fn new(s: Stream) -> Conn {
        Conn {
            s,
            buf: Vec::with_capacity(8192),
            pos: 0,
        }
    }

    fn fill(&mut self) -> io::Result<bool> {
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        let mut tmp = [0u8; 16384];
        let n = self.s.read(&mut tmp)?;
        self.buf.extend_from_slice(&tmp[..n]);
        Ok(n > 0)
    }

    /// One line without its CRLF (or LF); `None` at end of stream.
    fn line(&mut self) -> io::Result<Option<Vec<u8>>> {
        loop {
            if let Some(i) = self.buf[self.pos..].iter().position(|b| *b == b'\n') {
                let mut l = self.buf[self.pos..self.pos + i].to_vec();
                self.pos += i + 1;
                if l.last() == Some(&b'\r') {
                    l.pop();
                }
                return Ok(Some(l));
            }
            if self.buf.len() - self.pos > MAX_LINE {
                return Err(io::Error::new(io::ErrorKind::InvalidData, "line too long"));
            }
            if !self.fill()? {
                return Ok(None);
            }
        }
    }

    /// The message after DATA up to the lone dot, dot-unstuffed, with CRLF line ends kept as
    /// sent. `Ok(Err(n))` when it was longer than `max` (the rest is read and dropped).
    fn data(&mut self, max: u64) -> io::Result<Result<Vec<u8>, u64>> {
        let mut out = Vec::new();
        let mut over = 0u64;
        loop {
            let Some(i) = self.buf[self.pos..].iter().position(|b| *b == b'\n') else {
                if self.buf.len() - self.pos > (1 << 20) {
                    // A very long line: keep it whole (data lines have no real limit here).
                    let chunk = self.buf[self.pos..].to_vec();
                    self.pos = self.buf.len();
                    if (out.len() + chunk.len()) as u64 <= max {
                        out.extend_from_slice(&chunk);
                    } else {
                        over += chunk.len() as u64;
                    }
                }
                if !self.fill()? {
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
                continue;
            };
            let line = &self.buf[self.pos..self.pos + i + 1];
            self.pos += i + 1;
            let body = line.strip_suffix(b"\n").unwrap_or(line);
            let body = body.strip_suffix(b"\r").unwrap_or(body);
            if body == b"." {
                return Ok(if over > 0 { Err(over) } else { Ok(out) });
            }
            let line = if line.first() == Some(&b'.') {
                &line[1..]
            } else {
                line
            };
            if (out.len() + line.len()) as u64 <= max && over == 0 {
                out.extend_from_slice(line);
            } else {
                over += line.len() as u64;
            }
        }
    }

    fn send(&mut self, text: &str) -> io::Result<()> {
        self.s.write_all(text.as_bytes())?;
        self.s.flush()
    }

    /// Drops whatever was read but not yet used (pipelined plaintext before a TLS upgrade).
    fn discard_buffered(&mut self) {
        self.buf.clear();
        self.pos = 0;
    }
}

/// An SMTP reply: code and text lines.
#[derive(Debug, Clone)]
pub struct Reply {
    /// Three-digit code.
    pub code: u16,
    /// The lines' texts (after the code and separator).
    pub lines: Vec<String>,
}

impl Reply {
    fn new(code: u16, text: &str) -> Reply {
        Reply {
            code,
            lines: vec![text.to_string()],
        }
    }

    /// As sent on the wire.
    pub fn wire(&self) -> String {
        let mut s = String::new();
        for (i, l) in self.lines.iter().enumerate() {
            let sep = if i + 1 == self.lines.len() { ' ' } else { '-' };
            s.push_str(&format!("{}{sep}{l}\r\n", self.code));
        }
        s
    }

    fn ok(&self) -> bool {
        (200..400).contains(&self.code)
    }

    /// The last line, for logs.
    pub fn text(&self) -> String {
        format!("{} {}", self.code, self.lines.last().map_or("", |s| s))
    }
}

fn read_reply(c: &mut Conn) -> io::Result<Reply> {
    let mut lines = Vec::new();
    loop {
        let l = c
            .line()?
            .ok_or_else(|| io::Error::from(io::ErrorKind::UnexpectedEof))?;
        let l = String::from_utf8_lossy(&l).into_owned();
        if l.len() < 3 || !l.as_bytes()[..3].iter().all(u8::is_ascii_digit) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("bad reply {l:?}"),
            ));
        }
        let code: u16 = l[..3].parse().unwrap_or(0);
        let more = l.as_bytes().get(3) == Some(&b'-');
        lines.push(l.get(4..).unwrap_or("").to_string());
        if !more {
            return Ok(Reply { code, lines });
        }
    }
}

/// A connection to the upstream server.
pub struct Upstream {
    c: Conn,
    /// EHLO keywords (upper case).
    pub caps: Vec<String>,
}

impl Upstream {
    /// Connects, reads the greeting, says EHLO and upgrades to TLS as configured (always
    /// verifying the server's certificate).
    pub fn connect(
        cfg: &UpstreamCfg,
        tls: &Arc<rustls::ClientConfig>,
        ehlo: &str,
    ) -> Result<Upstream, String> {
        let addr: SocketAddr = (cfg.host.as_str(), cfg.port)
            .to_socket_addrs()
            .map_err(|e| format!("{}:{}: {e}", cfg.host, cfg.port))?
            .next()
            .ok_or_else(|| format!("{}:{}: no address", cfg.host, cfg.port))?;
        let timeout = Duration::from_secs(cfg.timeout_seconds.max(1));
        let tcp = TcpStream::connect_timeout(&addr, Duration::from_secs(10))
            .map_err(|e| format!("{addr}: {e}"))?;
        let _ = tcp.set_read_timeout(Some(timeout));
        let _ = tcp.set_write_timeout(Some(timeout));
        let _ = tcp.set_nodelay(true);
        let name = cfg.server_name.clone().unwrap_or_else(|| cfg.host.clone());
        let server_name = ServerName::try_from(name.clone()).map_err(|e| format!("{name}: {e}"))?;
        let client = |tcp: TcpStream| -> Result<Stream, String> {
            let conn = ClientConnection::new(tls.clone(), server_name.clone())
                .map_err(|e| format!("TLS to {name}: {e}"))?;
            Ok(Stream::Client(Box::new(StreamOwned::new(conn, tcp))))
        };
        let stream = if cfg.tls == UpstreamTls::Implicit {
            client(tcp)?
        } else {
            Stream::Plain(tcp)
        };
        let mut up = Upstream {
            c: Conn::new(stream),
            caps: Vec::new(),
        };
        let greet = read_reply(&mut up.c).map_err(|e| format!("{addr}: greeting: {e}"))?;
        if greet.code != 220 {
            return Err(format!("{addr}: greeting {}", greet.text()));
        }
        up.ehlo(ehlo)?;
        if cfg.tls == UpstreamTls::Starttls {
            if !up.caps.iter().any(|c| c == "STARTTLS") {
                return Err(format!(
                    "{addr} does not offer STARTTLS (upstream.tls = \"starttls\")"
                ));
            }
            let r = up.cmd("STARTTLS")?;
            if r.code != 220 {
                return Err(format!("{addr}: STARTTLS {}", r.text()));
            }
            up.c.discard_buffered();
            let Stream::Plain(tcp) = std::mem::replace(&mut up.c.s, Stream::Gone) else {
                return Err("STARTTLS on a TLS connection".into());
            };
            up.c.s = client(tcp)?;
            up.ehlo(ehlo)?;
        }
        Ok(up)
    }

    fn ehlo(&mut self, name: &str) -> Result<(), String> {
        let r = self.cmd(&format!("EHLO {name}"))?;
        if r.code != 250 {
            return Err(format!("EHLO: {}", r.text()));
        }
        self.caps = r
            .lines
            .iter()
            .skip(1)
            .map(|l| {
                l.split_whitespace()
                    .next()
                    .unwrap_or("")
                    .to_ascii_uppercase()
            })
            .collect();
        Ok(())
    }

    /// Sends one command line and reads the reply.
    pub fn cmd(&mut self, line: &str) -> Result<Reply, String> {
        self.c
            .send(&format!("{line}\r\n"))
            .map_err(|e| format!("upstream: {e}"))?;
        read_reply(&mut self.c).map_err(|e| format!("upstream: {e}"))
    }

    /// DATA with the message dot-stuffed; the final reply.
    pub fn data(&mut self, raw: &[u8]) -> Result<Reply, String> {
        let r = self.cmd("DATA")?;
        if r.code != 354 {
            return Ok(r);
        }
        let mut out = Vec::with_capacity(raw.len() + raw.len() / 50 + 8);
        let mut at_line_start = true;
        for &b in raw {
            if at_line_start && b == b'.' {
                out.push(b'.');
            }
            out.push(b);
            at_line_start = b == b'\n';
        }
        if !raw.ends_with(b"\n") {
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b".\r\n");
        self.c
            .s
            .write_all(&out)
            .and_then(|_| self.c.s.flush())
            .map_err(|e| format!("upstream: {e}"))?;
        read_reply(&mut self.c).map_err(|e| format!("upstream: {e}"))
    }

    /// QUIT, ignoring errors.
    pub fn quit(mut self) {
        let _ = self.cmd("QUIT");
    }
}

use ping32dlp::text::{base64_decode as b64decode, base64_encode as b64encode};

/// The client session.
pub struct Session<'a> {
    c: Conn,
    shared: &'a Shared,
    peer: Option<SocketAddr>,
    starttls_allowed: bool,
    helo: Option<String>,
    user: Option<String>,
    up: Option<Upstream>,
    from: Option<String>,
    rcpts: Vec<String>,
}

impl<'a> Session<'a> {
    /// A session on an accepted connection; `implicit_tls` for the TLS port.
    pub fn new(
        tcp: TcpStream,
        shared: &'a Shared,
        implicit_tls: bool,
    ) -> Result<Session<'a>, String> {
        let peer = tcp.peer_addr().ok();
        let _ = tcp.set_read_timeout(Some(Duration::from_secs(
            shared.cfg.read_timeout_seconds.max(1),
        )));
        let _ = tcp.set_nodelay(true);
        let s = if implicit_tls {
            let conn =
                ServerConnection::new(shared.server_tls.clone()).map_err(|e| e.to_string())?;
            Stream::Server(Box::new(StreamOwned::new(conn, tcp)))
        } else {
            Stream::Plain(tcp)
        };
        Ok(Session {
            c: Conn::new(s),
            shared,
            peer,
            starttls_allowed: !implicit_tls,
            helo: None,
            user: None,
            up: None,
            from: None,
            rcpts: Vec::new(),
        })
    }

    fn reply(&mut self, code: u16, text: &str) -> io::Result<()> {
        self.c.send(&Reply::new(code, text).wire())
    }

    fn relay(&mut self, r: &Reply) -> io::Result<()> {
        self.c.send(&r.wire())
    }

    fn reset(&mut self) {
        self.from = None;
        self.rcpts.clear();
    }

    /// Serves the client until QUIT or the connection ends.
    pub fn run(mut self) -> Result<(), String> {
        let host = self.shared.cfg.hostname.clone();
        self.reply(220, &format!("{host} ESMTP ping32dlp-proxy"))
            .map_err(|e| e.to_string())?;
        let r = self.serve(&host);
        if let Some(up) = self.up.take() {
            up.quit();
        }
        r.map_err(|e| e.to_string())
    }

    fn serve(&mut self, host: &str) -> io::Result<()> {
        while let Some(line) = self.c.line()? {
            let line = String::from_utf8_lossy(&line).into_owned();
            let (verb, arg) = match line.split_once(' ') {
                Some((v, a)) => (v.to_ascii_uppercase(), a.trim().to_string()),
                None => (line.trim().to_ascii_uppercase(), String::new()),
            };
            match verb.as_str() {
                "EHLO" | "HELO" if arg.is_empty() => {
                    self.reply(501, "5.5.4 Syntax: EHLO hostname")?
                }
                "EHLO" => {
                    self.reset();
                    self.helo = Some(arg);
                    let mut caps = vec![
                        host.to_string(),
                        "PIPELINING".into(),
                        "8BITMIME".into(),
                        "SMTPUTF8".into(),
                        format!("SIZE {}", self.shared.cfg.max_message_bytes),
                        "ENHANCEDSTATUSCODES".into(),
                    ];
                    if self.starttls_allowed {
                        caps.push("STARTTLS".into());
                    }
                    caps.push("AUTH PLAIN LOGIN".into());
                    self.relay(&Reply {
                        code: 250,
                        lines: caps,
                    })?;
                }
                "HELO" => {
                    self.reset();
                    self.helo = Some(arg);
                    self.reply(250, host)?;
                }
                "STARTTLS" if !self.starttls_allowed => {
                    self.reply(503, "5.5.1 TLS already active")?
                }
                "STARTTLS" => {
                    self.reply(220, "2.0.0 Ready to start TLS")?;
                    // Plaintext pipelined after STARTTLS is never processed (CVE-2011-0411).
                    self.c.discard_buffered();
                    let Stream::Plain(tcp) = std::mem::replace(&mut self.c.s, Stream::Gone) else {
                        return Err(io::ErrorKind::InvalidInput.into());
                    };
                    let conn = ServerConnection::new(self.shared.server_tls.clone())
                        .map_err(|e| io::Error::other(e.to_string()))?;
                    self.c.s = Stream::Server(Box::new(StreamOwned::new(conn, tcp)));
                    self.starttls_allowed = false;
                    self.helo = None;
                    self.reset();
                }
                "AUTH" => self.auth(&arg)?,
                "MAIL" => self.mail(&line)?,
                "RCPT" => self.rcpt(&line)?,
                "DATA" => self.data()?,
                "RSET" => {
                    self.reset();
                    if let Some(up) = self.up.as_mut() {
                        let _ = up.cmd("RSET");
                    }
                    self.reply(250, "2.0.0 Ok")?;
                }
                "NOOP" => self.reply(250, "2.0.0 Ok")?,
                "QUIT" => {
                    self.reply(221, "2.0.0 Bye")?;
                    return Ok(());
                }
                "VRFY" => self.reply(252, "2.5.0 Cannot VRFY user")?,
                "BDAT" => self.reply(502, "5.5.1 CHUNKING is not offered; use DATA")?,
                _ => self.reply(500, "5.5.2 Command not recognized")?,
            }
        }
        Ok(())
    }

    fn ensure_upstream(&mut self) -> Result<(), String> {
        if self.up.is_none() {
            let ehlo = self
                .helo
                .clone()
                .unwrap_or_else(|| self.shared.cfg.hostname.clone());
            self.up = Some(Upstream::connect(
                &self.shared.cfg.upstream,
                &self.shared.client_tls,
                &ehlo,
            )?);
        }
        Ok(())
    }

    fn auth(&mut self, arg: &str) -> io::Result<()> {
        if self.helo.is_none() {
            return self.reply(503, "5.5.1 EHLO first");
        }
        if self.user.is_some() {
            return self.reply(503, "5.5.1 Already authenticated");
        }
        let mut parts = arg.split_whitespace();
        let mech = parts.next().unwrap_or("").to_ascii_uppercase();
        let initial = parts.next().map(str::to_string);
        let (user, pass) = match mech.as_str() {
            "PLAIN" => {
                let resp = match initial {
                    Some(i) => i,
                    None => {
                        self.reply(334, "")?;
                        String::from_utf8_lossy(&self.c.line()?.unwrap_or_default()).into_owned()
                    }
                };
                if resp.trim() == "*" {
                    return self.reply(501, "5.7.0 Authentication cancelled");
                }
                let Some(d) =
                    b64decode(&resp).filter(|d| d.iter().filter(|b| **b == 0).count() == 2)
                else {
                    return self.reply(501, "5.5.2 Cannot decode the response");
                };
                let mut f = d.split(|b| *b == 0).skip(1);
                let u = String::from_utf8_lossy(f.next().unwrap_or_default()).into_owned();
                let p = String::from_utf8_lossy(f.next().unwrap_or_default()).into_owned();
                (u, p)
            }
            "LOGIN" => {
                let u = match initial {
                    Some(i) => i,
                    None => {
                        self.reply(334, "VXNlcm5hbWU6")?;
                        String::from_utf8_lossy(&self.c.line()?.unwrap_or_default()).into_owned()
                    }
                };
                self.reply(334, "UGFzc3dvcmQ6")?;
                let p = String::from_utf8_lossy(&self.c.line()?.unwrap_or_default()).into_owned();
                match (b64decode(&u), b64decode(&p)) {
                    (Some(u), Some(p)) => (
                        String::from_utf8_lossy(&u).into_owned(),
                        String::from_utf8_lossy(&p).into_owned(),
                    ),
                    _ => return self.reply(501, "5.5.2 Cannot decode the response"),
                }
            }
            _ => return self.reply(504, "5.5.4 Unrecognized authentication type"),
        };
        if let Err(e) = self.ensure_upstream() {
            self.shared
                .log(&format!("upstream unavailable for AUTH: {e}"));
            return self.reply(
                454,
                "4.7.0 Temporary authentication failure (upstream unavailable)",
            );
        }
        // Relayed as PLAIN; the credentials are never logged or stored.
        let token = b64encode(format!("\0{user}\0{pass}").as_bytes());
        let up = self.up.as_mut().expect("connected above");
        match up.cmd(&format!("AUTH PLAIN {token}")) {
            Ok(r) => {
                if r.code == 235 {
                    self.user = Some(user);
                }
                self.relay(&r)
            }
            Err(e) => {
                self.up = None;
                self.shared
                    .log(&format!("upstream failed during AUTH: {e}"));
                self.reply(
                    454,
                    "4.7.0 Temporary authentication failure (upstream unavailable)",
                )
            }
        }
    }

    fn mail(&mut self, line: &str) -> io::Result<()> {
        if self.helo.is_none() {
            return self.reply(503, "5.5.1 EHLO first");
        }
        if self.from.is_some() {
            return self.reply(503, "5.5.1 Nested MAIL command");
        }
        let Some(addr) = path_arg(line, "FROM:") else {
            return self.reply(501, "5.5.4 Syntax: MAIL FROM:<address>");
        };
        if let Err(e) = self.ensure_upstream() {
            self.shared.log(&format!("upstream unavailable: {e}"));
            return self.reply(451, "4.4.1 Upstream server unavailable; try again later");
        }
        match self.up.as_mut().expect("connected").cmd(line) {
            Ok(r) => {
                if r.ok() {
                    self.from = Some(addr);
                }
                self.relay(&r)
            }
            Err(e) => {
                self.up = None;
                self.shared.log(&format!("upstream failed at MAIL: {e}"));
                self.reply(451, "4.4.1 Upstream server unavailable; try again later")
            }
        }
    }

    fn rcpt(&mut self, line: &str) -> io::Result<()> {
        if self.from.is_none() {
            return self.reply(503, "5.5.1 MAIL first");
        }
        let Some(addr) = path_arg(line, "TO:") else {
            return self.reply(501, "5.5.4 Syntax: RCPT TO:<address>");
        };
        match self.up.as_mut().map(|u| u.cmd(line)) {
            Some(Ok(r)) => {
                if r.ok() {
                    self.rcpts.push(addr);
                }
                self.relay(&r)
            }
            _ => {
                self.up = None;
                self.reset();
                self.reply(451, "4.4.1 Upstream server unavailable; try again later")
            }
        }
    }

    fn data(&mut self) -> io::Result<()> {
        if self.rcpts.is_empty() {
            return self.reply(
                if self.from.is_some() { 554 } else { 503 },
                "5.5.1 No valid recipients",
            );
        }
        self.reply(354, "End data with <CR><LF>.<CR><LF>")?;
        let raw = match self.c.data(self.shared.cfg.max_message_bytes)? {
            Ok(raw) => raw,
            Err(over) => {
                self.shared.log(&format!(
                    "message refused: {over} bytes over max_message_bytes"
                ));
                self.abort_upstream();
                self.reset();
                return self.reply(552, "5.3.4 Message too big");
            }
        };
        let ctx = Context {
            channel: "proxy".into(),
            user: self.user.clone(),
            host: self.shared.cfg.host_name.clone(),
            client_app: None,
            client_addr: self.peer.map(|p| p.ip().to_string()),
            tls: self.c.s.tls_version(),
            envelope_from: self.from.clone().filter(|f| !f.is_empty()),
            envelope_to: self.rcpts.clone(),
            ..Context::default()
        };
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.shared.pipeline.process_message(&raw, &ctx, &[], true)
        }));
        let d = match result {
            Ok(Ok(d)) => d,
            Ok(Err(e)) => {
                self.shared.log(&format!("not judged: {e}"));
                self.abort_upstream();
                self.reset();
                return self.reply(
                    451,
                    "4.3.0 Data-loss-prevention inspection unavailable; try again later",
                );
            }
            Err(_) => {
                self.shared.log("not judged: internal error (panic)");
                self.abort_upstream();
                self.reset();
                return self.reply(
                    451,
                    "4.3.0 Data-loss-prevention inspection failed; try again later",
                );
            }
        };
        let v = &d.verdict;
        self.shared.log(&format!(
            "{} record={} risk={} user={} {} bytes",
            v.action.as_str(),
            d.record.id,
            v.risk,
            ctx.user.as_deref().unwrap_or("-"),
            raw.len()
        ));
        let out = match v.action {
            Action::Block => {
                self.abort_upstream();
                let text = ping32dlp::service::smtp_text(
                    &v.user_message("en"),
                    "Message blocked by the data-loss-prevention policy",
                );
                self.reply(550, &format!("5.7.1 {text} (incident {})", d.record.id))
            }
            Action::Hold => {
                self.abort_upstream();
                let id = d
                    .approval
                    .as_ref()
                    .map(|a| a.id.clone())
                    .unwrap_or_default();
                self.reply(
                    250,
                    &format!(
                        "2.0.0 Held for approval (request {id}); it will be sent when approved"
                    ),
                )
            }
            _ => {
                let msg = ping32dlp::pipeline::apply_tags(&raw, v);
                match self.up.as_mut().map(|u| u.data(&msg)) {
                    Some(Ok(r)) => self.relay(&r),
                    Some(Err(e)) => {
                        self.up = None;
                        self.shared
                            .log(&format!("upstream failed during DATA: {e}"));
                        self.reply(
                            451,
                            "4.4.2 Upstream server failed; the message was not sent, try again",
                        )
                    }
                    None => self.reply(451, "4.4.1 Upstream server unavailable; try again later"),
                }
            }
        };
        self.reset();
        out
    }

    fn abort_upstream(&mut self) {
        if let Some(up) = self.up.as_mut() {
            if up.cmd("RSET").is_err() {
                self.up = None;
            }
        }
    }
}

/// The address of `MAIL FROM:<a>` / `RCPT TO:<a>` (empty for the null sender).
fn path_arg(line: &str, key: &str) -> Option<String> {
    let rest = line.split_once(' ')?.1.trim_start();
    if !rest.to_ascii_uppercase().starts_with(key) {
        return None;
    }
    let rest = rest[key.len()..].trim_start();
    let rest = rest.strip_prefix('<')?;
    let end = rest.find('>')?;
    Some(rest[..end].to_string())
}

/// Sends a stored message through a fresh upstream connection (the release worker).
pub fn deliver(shared: &Shared, from: &str, to: &[String], raw: &[u8]) -> Result<Reply, String> {
    let cfg = &shared.cfg.upstream;
    let mut up = Upstream::connect(cfg, &shared.client_tls, &shared.cfg.hostname)?;
    if let (Some(u), Some(p)) = (&cfg.release_user, &cfg.release_password) {
        let token = b64encode(format!("\0{u}\0{p}").as_bytes());
        let r = up.cmd(&format!("AUTH PLAIN {token}"))?;
        if r.code != 235 {
            return Err(format!("release AUTH: {}", r.text()));
        }
    }
    let r = up.cmd(&format!("MAIL FROM:<{from}>"))?;
    if !r.ok() {
        return Err(format!("MAIL FROM: {}", r.text()));
    }
    let mut any = false;
    for t in to {
        let r = up.cmd(&format!("RCPT TO:<{t}>"))?;
        if r.ok() {
            any = true;
        } else {
            shared.log(&format!(
                "release: upstream refused a recipient: {}",
                r.text()
            ));
        }
    }
    if !any {
        return Err("every recipient was refused".into());
    }
    let r = up.data(raw)?;
    up.quit();
    if r.ok() {
        Ok(r)
    } else {
        Err(format!("DATA: {}", r.text()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_parse() {
        assert_eq!(
            path_arg("MAIL FROM:<a@b.example> SIZE=10", "FROM:").unwrap(),
            "a@b.example"
        );
        assert_eq!(path_arg("MAIL FROM: <>", "FROM:").unwrap(), "");
        assert_eq!(path_arg("rcpt to:<x@y>", "TO:").unwrap(), "x@y");
        assert!(path_arg("MAIL FROM:a@b", "FROM:").is_none());
    }

    #[test]
    fn data_is_unstuffed_and_limited() {
        // The parser through a loopback TCP pair.
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut w = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (r, _) = l.accept().unwrap();
        w.write_all(b"Subject: x\r\n\r\n..dot\r\nline\r\n.\r\nNEXT\r\n")
            .unwrap();
        let mut c = Conn::new(Stream::Plain(r));
        assert_eq!(
            c.data(1000).unwrap().unwrap(),
            b"Subject: x\r\n\r\n.dot\r\nline\r\n"
        );
        assert_eq!(c.line().unwrap().unwrap(), b"NEXT");
        w.write_all(b"0123456789\r\n0123456789\r\n.\r\n").unwrap();
        assert_eq!(c.data(15).unwrap().unwrap_err(), 12);
    }
}
