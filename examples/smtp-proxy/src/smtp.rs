//! SMTP on both sides: a line-oriented stream (plain or TLS, upgradable by STARTTLS), the
//! client session the proxy serves, and the upstream client it relays through.

use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, ToSocketAddrs};
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

/// What to do with bare line ends (CR or LF not part of CRLF) inside a message, as Postfix's
/// `smtpd_forbid_bare_newline`: the end of a message is always `CRLF . CRLF`, and what is sent
/// upstream never holds a bare CR or LF, so the proxy and its upstream cannot disagree on where
/// a message ends (SMTP smuggling, CVE-2023-51764).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BareNewline {
    /// Treat each bare CR or LF as a line end and send CRLF (the default).
    Normalize,
    /// Refuse the message with `550 5.5.2`.
    Reject,
}

/// How a DATA section ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Data {
    /// The message: dot-unstuffed, every line ending in CRLF.
    Message(Vec<u8>),
    /// Longer than the limit by this many bytes (read and dropped).
    TooBig(u64),
    /// Bare CR or LF seen with [`BareNewline::Reject`].
    BareNewline,
}

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

    /// One line without its line end, and whether that end was CRLF (else a bare LF); `None`
    /// at end of stream.
    fn line(&mut self) -> io::Result<Option<(Vec<u8>, bool)>> {
        loop {
            if let Some(i) = memchr::memchr(b'\n', &self.buf[self.pos..]) {
                let mut l = self.buf[self.pos..self.pos + i].to_vec();
                self.pos += i + 1;
                let crlf = l.last() == Some(&b'\r');
                if crlf {
                    l.pop();
                }
                return Ok(Some((l, crlf)));
            }
            if self.buf.len() - self.pos > MAX_LINE {
                return Err(io::Error::new(io::ErrorKind::InvalidData, "line too long"));
            }
            if !self.fill()? {
                return Ok(None);
            }
        }
    }

    /// The message after DATA up to `CRLF . CRLF` (the only end RFC 5321 knows: a "." line
    /// after a bare LF is content), dot-unstuffed. Lines are split at LF; a line that ends in
    /// a bare LF, or holds a bare CR, is normalised to CRLF line ends or refuses the message,
    /// by `bare`. Bytes past `max` are read and counted, not kept.
    fn data(&mut self, max: u64, bare: BareNewline) -> io::Result<Data> {
        let mut out = Vec::new();
        let mut over = 0u64;
        let mut saw_bare = false;
        // The DATA command itself ended in CRLF (the parser insists).
        let mut prev_crlf = true;
        loop {
            let Some(i) = memchr::memchr(b'\n', &self.buf[self.pos..]) else {
                if self.buf.len() - self.pos > (1 << 20) {
                    // A very long line: take it as it is (no LF in it, so no line end either).
                    let chunk = self.buf[self.pos..].to_vec();
                    self.pos = self.buf.len();
                    saw_bare |= memchr::memchr(b'\r', &chunk).is_some();
                    push_line(&mut out, &mut over, max, &normalise(&chunk), false);
                    prev_crlf = false;
                }
                if !self.fill()? {
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
                continue;
            };
            let raw = &self.buf[self.pos..self.pos + i];
            self.pos += i + 1;
            let crlf = raw.last() == Some(&b'\r');
            let content = if crlf { &raw[..raw.len() - 1] } else { raw };
            if prev_crlf && crlf && content == b"." {
                return Ok(if bare == BareNewline::Reject && saw_bare {
                    Data::BareNewline
                } else if over > 0 {
                    Data::TooBig(over)
                } else {
                    Data::Message(out)
                });
            }
            let has_cr = memchr::memchr(b'\r', content).is_some();
            saw_bare |= !crlf || has_cr;
            let content = content.strip_prefix(b".").unwrap_or(content);
            let line = if has_cr {
                normalise(content)
            } else {
                content.to_vec()
            };
            push_line(&mut out, &mut over, max, &line, true);
            prev_crlf = crlf;
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

/// A bare CR inside a line becomes CRLF.
fn normalise(content: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(content.len() + 4);
    for (k, &b) in content.iter().enumerate() {
        if b == b'\r' && content.get(k + 1) != Some(&b'\n') {
            v.extend_from_slice(b"\r\n");
        } else {
            v.push(b);
        }
    }
    v
}

fn push_line(out: &mut Vec<u8>, over: &mut u64, max: u64, line: &[u8], end: bool) {
    let n = line.len() as u64 + if end { 2 } else { 0 };
    if *over == 0 && out.len() as u64 + n <= max {
        out.extend_from_slice(line);
        if end {
            out.extend_from_slice(b"\r\n");
        }
    } else {
        *over += n;
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
        let (l, _) = c
            .line()?
            .ok_or_else(|| io::Error::from(io::ErrorKind::UnexpectedEof))?;
        // Reply text goes back to the client: no control characters in it.
        let l: String = String::from_utf8_lossy(&l)
            .chars()
            .map(|ch| if ch.is_control() { ' ' } else { ch })
            .collect();
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
    _own: crate::transparent::Outbound,
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
        let (tcp, own) = crate::transparent::connect(addr, Duration::from_secs(10))
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
            _own: own,
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

use crate::command::{self, Command, Mechanism};

/// The client session.
pub struct Session<'a> {
    c: Conn,
    shared: &'a Shared,
    peer: Option<SocketAddr>,
    /// The listener is on a loopback address (an endpoint proxy for this machine's user).
    local: bool,
    starttls_allowed: bool,
    helo: Option<String>,
    user: Option<String>,
    up: Option<Upstream>,
    from: Option<smtp_proto::MailFrom<String>>,
    rcpts: Vec<String>,
    /// Transparent mode: the connection's original destination, relayed to instead of the
    /// configured upstream.
    target: Option<UpstreamCfg>,
    /// Transparent mode: answered with 421 and closed (the reason is logged).
    refuse: Option<String>,
}

impl<'a> Session<'a> {
    /// A session on an accepted connection; `implicit_tls` for the TLS port; `local` when the
    /// listener is on a loopback address.
    pub fn new(
        tcp: TcpStream,
        shared: &'a Shared,
        implicit_tls: bool,
        local: bool,
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
        Ok(Session::new_on(s, peer, shared, !implicit_tls, local))
    }

    /// A session on a connection redirected to the transparent listener: relayed to its
    /// original destination; TLS on the configured ports is intercepted at once (module
    /// `transparent`).
    pub fn transparent(tcp: TcpStream, shared: &'a Shared) -> Result<Session<'a>, String> {
        let t = shared
            .transparent
            .as_ref()
            .ok_or("transparent mode is off")?;
        let peer = tcp.peer_addr().map_err(|e| e.to_string())?;
        let dst = crate::transparent::original_dst(&tcp).map_err(|e| {
            format!("{peer}: no original destination (not redirected by nftables?): {e}")
        })?;
        if Some(dst) == tcp.local_addr().ok() {
            return Err(format!(
                "{peer}: connected to the transparent listener itself, not redirected; refused"
            ));
        }
        if crate::transparent::is_own(peer) {
            return Err(format!(
                "{peer}: redirect loop: the proxy's own connection to {dst} was redirected back \
                 to it; exempt the proxy's user in the nftables rule (meta skuid != ...)"
            ));
        }
        let _ = tcp.set_read_timeout(Some(Duration::from_secs(
            shared.cfg.read_timeout_seconds.max(1),
        )));
        let mut target = UpstreamCfg {
            host: dst.ip().to_string(),
            port: dst.port(),
            tls: UpstreamTls::None,
            ca_file: None,
            server_name: t.configured_name(dst.ip()),
            release_user: None,
            release_password: None,
            timeout_seconds: shared.cfg.upstream.timeout_seconds,
        };
        if !t.implicit(dst.port()) {
            let mut s = Session::new(tcp, shared, false, true)?;
            s.target = Some(target);
            return Ok(s);
        }
        let (stream, up) = intercept(
            t,
            tcp,
            &mut target,
            UpstreamTls::Implicit,
            &shared.cfg.hostname,
            &peer.to_string(),
        )?;
        let mut s = Session::new_on(stream, Some(peer), shared, false, true);
        s.target = Some(target);
        match up {
            Ok(up) => s.up = Some(up),
            Err(e) => s.refuse = Some(e),
        }
        Ok(s)
    }

    fn new_on(
        s: Stream,
        peer: Option<SocketAddr>,
        shared: &'a Shared,
        starttls_allowed: bool,
        local: bool,
    ) -> Session<'a> {
        Session {
            c: Conn::new(s),
            shared,
            peer,
            local,
            starttls_allowed,
            helo: None,
            user: None,
            up: None,
            from: None,
            rcpts: Vec::new(),
            target: None,
            refuse: None,
        }
    }

    /// The client's EHLO name when it is usable upstream, else the proxy's host name.
    fn ehlo_name(&self) -> String {
        self.helo
            .clone()
            .filter(|h| h.bytes().all(|b| b.is_ascii_graphic()) && !h.is_empty())
            .unwrap_or_else(|| self.shared.cfg.hostname.clone())
    }

    /// Transparent mode, after `220` to the client's STARTTLS: read its ClientHello, connect
    /// to the original destination with STARTTLS verified against the name it asked for,
    /// then finish the client's handshake as that name. A failure upstream is answered with
    /// 421 inside the TLS session (the client sees why).
    fn intercept_starttls(&mut self, tcp: TcpStream) -> io::Result<()> {
        let t = self
            .shared
            .transparent
            .as_ref()
            .expect("transparent session");
        let mut target = self.target.clone().expect("transparent session");
        if let Some(up) = self.up.take() {
            up.quit();
        }
        let peer = self.peer.map(|p| p.to_string()).unwrap_or_default();
        let (stream, up) = intercept(
            t,
            tcp,
            &mut target,
            UpstreamTls::Starttls,
            &self.ehlo_name(),
            &peer,
        )
        .map_err(io::Error::other)?;
        self.c.s = stream;
        self.target = Some(target);
        match up {
            Ok(up) => self.up = Some(up),
            Err(e) => self.refuse = Some(e),
        }
        Ok(())
    }

    /// Answers 421 with the reason a transparent session cannot go on.
    fn refused(&mut self) -> io::Result<bool> {
        let Some(why) = self.refuse.take() else {
            return Ok(false);
        };
        self.shared.event(
            "upstream_error",
            &[(
                "peer",
                &self.peer.map(|p| p.to_string()).unwrap_or_default(),
            )],
            &format!("transparent: original destination refused: {why}"),
        );
        let text = ping32dlp::service::smtp_text(&why, "upstream unavailable");
        self.reply(421, &format!("4.7.0 Cannot relay to the server: {text}"))?;
        Ok(true)
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

    fn tls_active(&self) -> bool {
        matches!(self.c.s, Stream::Server(_))
    }

    /// TLS must be on before anything but EHLO, STARTTLS, NOOP, RSET and QUIT.
    fn needs_tls(&self) -> bool {
        self.shared.cfg.require_tls_on(self.local) && !self.tls_active()
    }

    /// AUTH is offered only over TLS, or in the clear on a loopback listener that does not
    /// require TLS (credentials never cross a network unencrypted).
    /// In transparent mode only inside TLS: the leg to the real server is plain when the
    /// client's is, and a password must not cross the network in the clear because of us.
    fn auth_offered(&self) -> bool {
        if self.target.is_some() {
            return self.tls_active();
        }
        self.tls_active() || (self.local && !self.needs_tls())
    }

    /// Serves the client until QUIT or the connection ends.
    pub fn run(mut self) -> Result<(), String> {
        let host = self.shared.cfg.hostname.clone();
        if self.refused().map_err(|e| e.to_string())? {
            return Ok(());
        }
        self.reply(220, &format!("{host} ESMTP ping32dlp-proxy"))
            .map_err(|e| e.to_string())?;
        let r = self.serve(&host);
        if let Some(up) = self.up.take() {
            up.quit();
        }
        r.map_err(|e| e.to_string())
    }

    fn serve(&mut self, host: &str) -> io::Result<()> {
        while let Some((line, crlf)) = self.c.line()? {
            // Transparent STARTTLS whose upstream failed: the first command inside TLS is
            // answered with 421 (written before it, the reply could be lost to a reset).
            if self.refused()? {
                return Ok(());
            }
            let cmd = match command::parse(&line, crlf) {
                Ok(c) => c,
                Err(r) => {
                    self.reply(r.code, &r.text)?;
                    if r.close {
                        self.shared.log(
                            "protocol_error",
                            &format!(
                                "client {} sent a bare line feed; connection closed",
                                self.peer.map(|p| p.to_string()).unwrap_or_default()
                            ),
                        );
                        return Ok(());
                    }
                    continue;
                }
            };
            let tls_first = matches!(
                cmd,
                Command::Auth { .. } | Command::Mail(_) | Command::Rcpt(_) | Command::Data
            );
            if tls_first && self.needs_tls() {
                self.reply(530, "5.7.0 Must issue a STARTTLS command first")?;
                continue;
            }
            match cmd {
                Command::Ehlo(name) => {
                    self.reset();
                    self.helo = Some(name);
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
                    if self.auth_offered() {
                        caps.push("AUTH PLAIN LOGIN".into());
                    }
                    self.relay(&Reply {
                        code: 250,
                        lines: caps,
                    })?;
                }
                Command::Helo(name) => {
                    self.reset();
                    self.helo = Some(name);
                    self.reply(250, host)?;
                }
                Command::StartTls if !self.starttls_allowed => {
                    self.reply(503, "5.5.1 TLS already active")?
                }
                Command::StartTls => {
                    self.reply(220, "2.0.0 Ready to start TLS")?;
                    // Plaintext pipelined after STARTTLS is never processed (CVE-2011-0411).
                    self.c.discard_buffered();
                    let Stream::Plain(tcp) = std::mem::replace(&mut self.c.s, Stream::Gone) else {
                        return Err(io::ErrorKind::InvalidInput.into());
                    };
                    if self.target.is_some() {
                        self.intercept_starttls(tcp)?;
                    } else {
                        let conn = ServerConnection::new(self.shared.server_tls.clone())
                            .map_err(|e| io::Error::other(e.to_string()))?;
                        self.c.s = Stream::Server(Box::new(StreamOwned::new(conn, tcp)));
                    }
                    self.starttls_allowed = false;
                    self.helo = None;
                    self.user = None;
                    self.reset();
                }
                Command::Auth { .. } if !self.auth_offered() => self.reply(
                    538,
                    "5.7.11 Encryption required for requested authentication mechanism",
                )?,
                Command::Auth { mechanism, initial } => self.auth(mechanism, initial)?,
                Command::Mail(from) => self.mail(from)?,
                Command::Rcpt(to) => self.rcpt(to)?,
                Command::Data => self.data()?,
                Command::Rset => {
                    self.reset();
                    if let Some(up) = self.up.as_mut() {
                        let _ = up.cmd("RSET");
                    }
                    self.reply(250, "2.0.0 Ok")?;
                }
                Command::Noop => self.reply(250, "2.0.0 Ok")?,
                Command::Quit => {
                    self.reply(221, "2.0.0 Bye")?;
                    return Ok(());
                }
                Command::Other("VRFY") => self.reply(252, "2.5.0 Cannot VRFY user")?,
                Command::Bdat => self.reply(502, "5.5.1 CHUNKING is not offered; use DATA")?,
                Command::Other(_) => self.reply(502, "5.5.1 Command not implemented")?,
            }
        }
        Ok(())
    }

    fn ensure_upstream(&mut self) -> Result<(), String> {
        if self.up.is_none() {
            let ehlo = self.ehlo_name();
            self.up = Some(match (&self.target, &self.shared.transparent) {
                (Some(t), Some(i)) => Upstream::connect(t, &i.client_tls, &ehlo)?,
                _ => Upstream::connect(&self.shared.cfg.upstream, &self.shared.client_tls, &ehlo)?,
            });
        }
        Ok(())
    }

    /// A SASL response line (`None` when the client went away).
    fn response(&mut self) -> io::Result<Option<String>> {
        match self.c.line()? {
            Some((l, true)) if !l.contains(&b'\r') && !l.contains(&0) => {
                Ok(Some(String::from_utf8_lossy(&l).into_owned()))
            }
            Some(_) => Ok(Some("*".into())),
            None => Ok(None),
        }
    }

    fn auth(&mut self, mech: Mechanism, initial: Option<String>) -> io::Result<()> {
        if self.helo.is_none() {
            return self.reply(503, "5.5.1 EHLO first");
        }
        if self.user.is_some() {
            return self.reply(503, "5.5.1 Already authenticated");
        }
        let (user, pass) = match mech {
            Mechanism::Plain => {
                let resp = match initial {
                    Some(i) => i,
                    None => {
                        self.reply(334, "")?;
                        self.response()?.unwrap_or_default()
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
            Mechanism::Login => {
                let u = match initial {
                    Some(i) => i,
                    None => {
                        self.reply(334, "VXNlcm5hbWU6")?;
                        self.response()?.unwrap_or_default()
                    }
                };
                self.reply(334, "UGFzc3dvcmQ6")?;
                let p = self.response()?.unwrap_or_default();
                if u.trim() == "*" || p.trim() == "*" {
                    return self.reply(501, "5.7.0 Authentication cancelled");
                }
                match (b64decode(&u), b64decode(&p)) {
                    (Some(u), Some(p)) => (
                        String::from_utf8_lossy(&u).into_owned(),
                        String::from_utf8_lossy(&p).into_owned(),
                    ),
                    _ => return self.reply(501, "5.5.2 Cannot decode the response"),
                }
            }
            Mechanism::Other => return self.reply(504, "5.5.4 Unrecognized authentication type"),
        };
        if user.is_empty() || user.contains(['\0', '\r', '\n']) || pass.contains(['\0', '\r', '\n'])
        {
            return self.reply(501, "5.5.2 Invalid user name or password");
        }
        if let Err(e) = self.ensure_upstream() {
            self.shared.log(
                "upstream_error",
                &format!("upstream unavailable for AUTH: {e}"),
            );
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
                self.shared.log(
                    "upstream_error",
                    &format!("upstream failed during AUTH: {e}"),
                );
                self.reply(
                    454,
                    "4.7.0 Temporary authentication failure (upstream unavailable)",
                )
            }
        }
    }

    fn mail(&mut self, from: smtp_proto::MailFrom<String>) -> io::Result<()> {
        if self.helo.is_none() {
            return self.reply(503, "5.5.1 EHLO first");
        }
        if self.from.is_some() {
            return self.reply(503, "5.5.1 Nested MAIL command");
        }
        if self.user.is_none() && self.shared.cfg.require_auth_on(self.local) {
            return self.reply(530, "5.7.0 Authentication required");
        }
        if from.size as u64 > self.shared.cfg.max_message_bytes {
            return self.reply(552, "5.3.4 Message size exceeds fixed limit");
        }
        if let Err(e) = self.ensure_upstream() {
            self.shared
                .log("upstream_error", &format!("upstream unavailable: {e}"));
            return self.fail_reply();
        }
        // What goes upstream is written from the parsed command, not the client's line.
        let line = command::mail_line(&from);
        match self.up.as_mut().expect("connected").cmd(&line) {
            Ok(r) => {
                if r.ok() {
                    self.from = Some(from);
                }
                self.relay(&r)
            }
            Err(e) => {
                self.up = None;
                self.shared
                    .log("upstream_error", &format!("upstream failed at MAIL: {e}"));
                self.fail_reply()
            }
        }
    }

    fn rcpt(&mut self, to: smtp_proto::RcptTo<String>) -> io::Result<()> {
        if self.from.is_none() {
            return self.reply(503, "5.5.1 MAIL first");
        }
        if self.rcpts.len() >= self.shared.cfg.max_recipients {
            return self.reply(452, "4.5.3 Too many recipients");
        }
        let line = command::rcpt_line(&to);
        match self.up.as_mut().map(|u| u.cmd(&line)) {
            Some(Ok(r)) => {
                if r.ok() {
                    self.rcpts.push(to.address);
                }
                self.relay(&r)
            }
            _ => {
                self.up = None;
                self.reset();
                self.fail_reply()
            }
        }
    }

    /// The answer when the upstream or the store cannot be used: the configured fail mode.
    fn fail_reply(&mut self) -> io::Result<()> {
        self.reply(451, "4.4.1 Upstream server unavailable; try again later")
    }

    fn data(&mut self) -> io::Result<()> {
        if self.rcpts.is_empty() {
            return self.reply(
                if self.from.is_some() { 554 } else { 503 },
                "5.5.1 No valid recipients",
            );
        }
        self.reply(354, "End data with <CR><LF>.<CR><LF>")?;
        let raw = match self.c.data(
            self.shared.cfg.max_message_bytes,
            self.shared.cfg.bare_newline,
        )? {
            Data::Message(raw) => raw,
            Data::TooBig(over) => {
                self.shared.log(
                    "refused",
                    &format!("message refused: {over} bytes over max_message_bytes"),
                );
                self.abort_upstream();
                self.reset();
                return self.reply(552, "5.3.4 Message too big");
            }
            Data::BareNewline => {
                self.shared.log(
                    "refused",
                    "message refused: bare <CR> or <LF> in it (bare_newline = reject)",
                );
                self.abort_upstream();
                self.reset();
                return self.reply(550, "5.5.2 Bare <CR> or <LF> in the message; use CRLF");
            }
        };
        let ctx = Context {
            channel: "proxy".into(),
            user: self.user.clone(),
            host: self.shared.cfg.host_name.clone(),
            client_app: None,
            client_addr: self.peer.map(|p| p.ip().to_string()),
            tls: self.c.s.tls_version(),
            envelope_from: self
                .from
                .as_ref()
                .map(|f| f.address.clone())
                .filter(|f| !f.is_empty()),
            envelope_to: self.rcpts.clone(),
            ..Context::default()
        };
        let mut ctx = ctx;
        if let Some(dir) = &self.shared.directory {
            if let Err(e) = dir.enrich(&mut ctx, &self.shared.pipeline.policy()) {
                let tempfail = dir.tempfail();
                self.shared.log(
                    "directory_error",
                    &format!(
                        "directory unavailable ({}): {e}",
                        if tempfail { "tempfail" } else { "continue" }
                    ),
                );
                if tempfail {
                    self.abort_upstream();
                    self.reset();
                    return self.reply(451, "4.7.1 Company directory unavailable; try again later");
                }
            }
        }
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.shared.pipeline.process_message(&raw, &ctx, &[], true)
        }));
        let d = match result {
            Ok(Ok(d)) => d,
            Ok(Err(e)) if self.shared.cfg.fail_mode == ping32dlp::service::FailMode::Accept => {
                // Relayed unjudged and marked, as the administrator chose (`fail_mode = "accept"`).
                self.shared.log(
                    "fail_mode",
                    &format!("not judged ({e}); fail mode accept: relayed"),
                );
                self.shared.metrics.fail_mode_answer("proxy", "accept");
                let mut msg = b"X-Ping32DLP-Verdict: error; not inspected\r\n".to_vec();
                msg.extend_from_slice(&raw);
                let out = match self.up.as_mut().map(|u| u.data(&msg)) {
                    Some(Ok(r)) => self.relay(&r),
                    _ => {
                        self.up = None;
                        self.fail_reply()
                    }
                };
                self.reset();
                return out;
            }
            Ok(Err(e)) => {
                self.shared.log(
                    "fail_mode",
                    &format!("not judged ({e}); fail mode tempfail: 451"),
                );
                self.shared.metrics.fail_mode_answer("proxy", "tempfail");
                self.abort_upstream();
                self.reset();
                return self.reply(
                    451,
                    "4.3.0 Data-loss-prevention inspection unavailable; try again later",
                );
            }
            Err(_) => {
                self.shared
                    .log("panic", "not judged: internal error (panic)");
                self.shared.metrics.fail_mode_answer("proxy", "tempfail");
                self.abort_upstream();
                self.reset();
                return self.reply(
                    451,
                    "4.3.0 Data-loss-prevention inspection failed; try again later",
                );
            }
        };
        let v = &d.verdict;
        self.shared.event(
            "inspected",
            &[
                ("channel", &"proxy"),
                ("action", &v.action.as_str()),
                ("record", &d.record.id),
                ("risk", &v.risk),
                ("user", &ctx.user.as_deref().unwrap_or("-")),
                (
                    "approval",
                    &d.approval.as_ref().map_or("-", |a| a.id.as_str()),
                ),
                ("findings", &d.report.findings.len()),
                ("bytes", &raw.len()),
            ],
            "",
        );
        let out = match v.action {
            Action::Block => {
                self.abort_upstream();
                let text = ping32dlp::service::smtp_text(
                    &v.user_message("en"),
                    "Message blocked by the data-loss-prevention policy",
                );
                self.reply(550, &format!("5.7.1 {text} (incident {})", d.record.id))
            }
            Action::Hold | Action::Delay => {
                self.abort_upstream();
                let id = d
                    .approval
                    .as_ref()
                    .map(|a| a.id.clone())
                    .unwrap_or_default();
                let text = if v.action == Action::Delay {
                    format!(
                        "2.0.0 Delayed (request {id}): it will be sent in {} min unless you cancel it",
                        (v.expires + 59) / 60
                    )
                } else {
                    format!("2.0.0 Held for approval (request {id}); it will be sent when approved")
                };
                self.reply(250, &text)
            }
            _ => {
                // With `link`, its attachments are replaced by download links.
                let out = d.links.as_ref().map_or(&raw[..], |l| &l.message[..]);
                let msg = ping32dlp::pipeline::apply_tags(out, v);
                match self.up.as_mut().map(|u| u.data(&msg)) {
                    Some(Ok(r)) => self.relay(&r),
                    Some(Err(e)) => {
                        self.up = None;
                        self.shared.log(
                            "upstream_error",
                            &format!("upstream failed during DATA: {e}"),
                        );
                        self.reply(
                            451,
                            "4.4.2 Upstream server failed; the message was not sent, try again",
                        )
                    }
                    None => self.fail_reply(),
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

/// Transparent TLS on `tcp` (implicit, or just after `220` to STARTTLS): reads the client's
/// ClientHello, takes the name it asked for (SNI, else `[transparent.names]`; neither refuses
/// the connection), connects to the original destination `target` with `tls` verified
/// against that name, then finishes the client's handshake as that name. The upstream's
/// failure is returned beside the client's stream, to be answered with 421 inside TLS.
fn intercept(
    t: &crate::transparent::Interceptor,
    mut tcp: TcpStream,
    target: &mut UpstreamCfg,
    tls: UpstreamTls,
    ehlo: &str,
    peer: &str,
) -> Result<(Stream, Result<Upstream, String>), String> {
    let dst = format!("{}:{}", target.host, target.port);
    let hello = crate::transparent::read_hello(&mut tcp).map_err(|e| format!("{peer}: {e}"))?;
    let ip: IpAddr = target.host.parse().map_err(|e| format!("{dst}: {e}"))?;
    let Some(name) = t.name_for(hello.client_hello().server_name(), ip) else {
        return Err(format!(
            "{peer} to {dst}: TLS without a server name (SNI) and no transparent.names entry for {ip}; refused"
        ));
    };
    target.tls = tls;
    target.server_name = Some(name.clone());
    let up =
        Upstream::connect(target, &t.client_tls, ehlo).map_err(|e| format!("{dst} ({name}): {e}"));
    let client = crate::transparent::accept_as(t, hello, &name, tcp)
        .map_err(|e| format!("{peer} as {name}: {e}"))?;
    Ok((Stream::Server(Box::new(client)), up))
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
    let r = up.cmd(&format!("MAIL FROM:{}", command::path(from)))?;
    if !r.ok() {
        return Err(format!("MAIL FROM: {}", r.text()));
    }
    let mut any = false;
    for t in to {
        let r = up.cmd(&format!("RCPT TO:{}", command::path(t)))?;
        if r.ok() {
            any = true;
        } else {
            shared.log(
                "release_failed",
                &format!("release: upstream refused a recipient: {}", r.text()),
            );
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
    fn data_is_unstuffed_and_limited() {
        // The parser through a loopback TCP pair.
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut w = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (r, _) = l.accept().unwrap();
        w.write_all(b"Subject: x\r\n\r\n..dot\r\nline\r\n.\r\nNEXT\r\n")
            .unwrap();
        let mut c = Conn::new(Stream::Plain(r));
        assert_eq!(
            c.data(1000, BareNewline::Normalize).unwrap(),
            Data::Message(b"Subject: x\r\n\r\n.dot\r\nline\r\n".to_vec())
        );
        assert_eq!(c.line().unwrap().unwrap(), (b"NEXT".to_vec(), true));
        w.write_all(b"0123456789\r\n0123456789\r\n.\r\n").unwrap();
        assert_eq!(
            c.data(15, BareNewline::Normalize).unwrap(),
            Data::TooBig(12)
        );
    }

    fn data_of(input: &[u8], bare: BareNewline) -> (Data, Vec<u8>) {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut w = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (r, _) = l.accept().unwrap();
        w.write_all(input).unwrap();
        w.write_all(b"\r\n.\r\nREST\r\n").unwrap();
        let mut c = Conn::new(Stream::Plain(r));
        let d = c.data(1 << 20, bare).unwrap();
        let (rest, _) = c.line().unwrap().unwrap();
        (d, rest)
    }

    #[test]
    fn smuggled_ends_of_data_are_content() {
        // CVE-2023-51764 and kin: none of these end the message; the whole input up to the
        // real CRLF.CRLF is one message, and what goes upstream has CRLF line ends only.
        for smuggle in [
            &b"body\n.\r\nMAIL FROM:<evil@x.example>"[..],
            b"body\r\n.\nMAIL FROM:<evil@x.example>",
            b"body\r.\rMAIL FROM:<evil@x.example>",
            b"body\n.\nMAIL FROM:<evil@x.example>",
            b"body\r\n.\rMAIL FROM:<evil@x.example>",
        ] {
            let (d, rest) = data_of(smuggle, BareNewline::Normalize);
            let Data::Message(m) = d else {
                panic!("{smuggle:?}: {d:?}")
            };
            assert_eq!(rest, b"REST", "{smuggle:?}");
            assert!(String::from_utf8_lossy(&m).contains("MAIL FROM:<evil@x.example>"));
            for (i, &b) in m.iter().enumerate() {
                if b == b'\n' {
                    assert_eq!(m[i - 1], b'\r', "{smuggle:?}: bare LF sent upstream");
                }
                if b == b'\r' {
                    assert_eq!(
                        m.get(i + 1),
                        Some(&b'\n'),
                        "{smuggle:?}: bare CR sent upstream"
                    );
                }
            }
            let (d, rest) = data_of(smuggle, BareNewline::Reject);
            assert_eq!((d, rest.as_slice()), (Data::BareNewline, &b"REST"[..]));
        }
        // A clean message is kept byte for byte.
        let (d, _) = data_of(b"Subject: a\r\n\r\nline\r\n..dot", BareNewline::Reject);
        assert_eq!(
            d,
            Data::Message(b"Subject: a\r\n\r\nline\r\n.dot\r\n".to_vec())
        );
    }
}
