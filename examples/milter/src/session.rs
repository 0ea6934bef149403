//! One MTA connection: the milter state machine. Postfix opens one connection per SMTP session
//! and may send several messages on it (each after MAIL, ended by end-of-body or ABORT).
//!
//! Envelope, macros and headers are collected; the message (headers as received, then the body)
//! is spooled in memory up to `spill_bytes` and in an unlinked temporary file beyond; at the end
//! of the body the pipeline inspects it, commits the audit record and the verdict becomes the
//! reply: accept (with headers), `550 5.7.1`, or quarantine with the approval id.

use std::collections::HashMap;
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::net::Shutdown;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use ping32dlp::pipeline::Decision;
use ping32dlp::policy::{Action, Context};

use crate::protocol::{self, cmd, reply, step, Offer};
use crate::Shared;

/// A stream the session can talk over and shut down.
pub trait Conn: Read + Write + Send {
    /// Closes both directions (used when the MTA misbehaves).
    fn close(&self);
    /// Called after each packet is read.
    fn after_read(&self) {}
}

impl Conn for std::net::TcpStream {
    fn close(&self) {
        let _ = self.shutdown(Shutdown::Both);
    }

    /// The MTA sends most commands without waiting for a reply (the `NR_*` steps). Its next
    /// small packet then waits in its socket (Nagle) until our side ACKs the previous one, and
    /// Linux delays that ACK by up to 40 ms when it has nothing to send back: 39 ms per message
    /// in the Postfix benchmark. Quick-ACK mode, which Linux clears by itself, is set again
    /// after every packet.
    fn after_read(&self) {
        #[cfg(target_os = "linux")]
        let _ = rustix::net::sockopt::set_tcp_quickack(self, true);
    }
}

#[cfg(unix)]
impl Conn for std::os::unix::net::UnixStream {
    fn close(&self) {
        let _ = self.shutdown(Shutdown::Both);
    }
}

/// Recorded MTA bytes played into a session, replies dropped (the fuzz target).
#[doc(hidden)]
pub struct Replay<'a> {
    data: &'a [u8],
}

impl<'a> Replay<'a> {
    /// A connection whose MTA sends `data` and then closes.
    pub fn new(data: &'a [u8]) -> Replay<'a> {
        Replay { data }
    }
}

impl Read for Replay<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.data.read(buf)
    }
}

impl Write for Replay<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Conn for Replay<'_> {
    fn close(&self) {}
}

/// The macros the milter asks for and uses; any other name the MTA sends is dropped, so that
/// an MTA (or anything on its socket) cannot grow a connection's memory with made-up macros.
const KEPT_MACROS: &[&str] = &[
    "i",
    "j",
    "auth_authen",
    "auth_type",
    "client_addr",
    "client_name",
    "daemon_name",
    "tls_version",
    "cipher",
    "mail_addr",
    "rcpt_addr",
];

/// The longest macro value kept (longer ones are cut; no macro we use is near it).
pub const MAX_MACRO_VALUE: usize = 1024;
/// The longest envelope address accepted (RFC 5321: 256 for a path; Postfix allows more).
pub const MAX_ADDRESS: usize = 2048;
/// Subject headers remembered per message (for the subject prefix tag).
pub const MAX_SUBJECTS: usize = 4;
/// Bytes of `To` / `Cc` header values remembered per message (for the `bcc` action, which
/// rewrites them); a message with more cannot be sent by a `bcc` rule (451).
pub const MAX_ADDRESS_HEADER_BYTES: usize = 256 * 1024;

/// The message being received.
struct Message {
    from: String,
    rcpts: Vec<String>,
    spool: Spool,
    /// Received `Subject` headers (for the index CHGHEADER needs), the first few.
    subjects: Vec<Vec<u8>>,
    /// Received `To` and `Cc` headers, in order (`true` for `Cc`), for the `bcc` action.
    address_headers: Vec<(bool, Vec<u8>)>,
    /// More `To` / `Cc` bytes came than [`MAX_ADDRESS_HEADER_BYTES`].
    address_headers_overflow: bool,
    in_body: bool,
    /// Headers received.
    headers: usize,
    /// Why the message cannot be judged whole (too many recipients or headers, an envelope
    /// address over the limit): it is refused at the end.
    refuse: Option<&'static str>,
}

/// Message bytes: in memory, then in a temporary file (unlinked at creation) past a threshold.
enum Spool {
    Memory(Vec<u8>),
    File(BufWriter<std::fs::File>, u64),
}

impl Spool {
    fn len(&self) -> u64 {
        match self {
            Spool::Memory(v) => v.len() as u64,
            Spool::File(_, n) => *n,
        }
    }

    fn push(&mut self, data: &[u8], shared: &Shared) -> io::Result<()> {
        if let Spool::Memory(v) = self {
            if (v.len() + data.len()) as u64 > shared.cfg.spill_bytes {
                let f = tempfile::tempfile_in(&shared.spool_dir)?;
                let mut w = BufWriter::with_capacity(1 << 16, f);
                w.write_all(v)?;
                let n = v.len() as u64;
                *self = Spool::File(w, n);
            }
        }
        match self {
            Spool::Memory(v) => v.extend_from_slice(data),
            Spool::File(w, n) => {
                w.write_all(data)?;
                *n += data.len() as u64;
            }
        }
        Ok(())
    }

    fn into_bytes(self) -> io::Result<Vec<u8>> {
        match self {
            Spool::Memory(v) => Ok(v),
            Spool::File(w, n) => {
                let mut f = w.into_inner().map_err(|e| e.into_error())?;
                f.seek(SeekFrom::Start(0))?;
                let mut v = Vec::with_capacity(n as usize);
                f.read_to_end(&mut v)?;
                Ok(v)
            }
        }
    }

    fn spilled(&self) -> bool {
        matches!(self, Spool::File(..))
    }
}

/// The state of one connection.
pub struct Session<'a, C: Conn> {
    conn: C,
    shared: &'a Shared,
    agreed: Offer,
    macros: HashMap<String, String>,
    client_name: Option<String>,
    client_addr: Option<String>,
    msg: Option<Message>,
    /// Bytes the message had over `max_message_bytes` (not kept).
    overflow: u64,
}

/// Why a session ended.
#[derive(Debug)]
pub enum End {
    /// QUIT or the MTA closed the connection.
    Quit,
    /// A protocol error or I/O error: the connection was closed.
    Error(String),
}

impl<'a, C: Conn> Session<'a, C> {
    /// A session over a connected stream.
    pub fn new(conn: C, shared: &'a Shared) -> Session<'a, C> {
        Session {
            conn,
            shared,
            agreed: Offer {
                version: 2,
                actions: 0,
                steps: 0,
            },
            macros: HashMap::new(),
            client_name: None,
            client_addr: None,
            msg: None,
            overflow: 0,
        }
    }

    /// Serves the connection until QUIT, end of stream or an error (which closes it).
    pub fn run(mut self) -> End {
        let end = loop {
            let p = match protocol::read_packet(&mut self.conn) {
                Ok(Some(p)) => {
                    self.conn.after_read();
                    p
                }
                Ok(None) => break End::Quit,
                Err(e) => break End::Error(format!("read: {e}")),
            };
            match self.handle(p.code, &p.data) {
                Ok(true) => {}
                Ok(false) => break End::Quit,
                Err(e) => break End::Error(e),
            }
        };
        self.conn.close();
        end
    }

    fn send(&mut self, code: u8, data: &[u8]) -> Result<(), String> {
        protocol::write_packet(&mut self.conn, code, data).map_err(|e| format!("write: {e}"))
    }

    /// Replies "continue" unless the negotiated options say the MTA expects no reply.
    fn ack(&mut self, code: u8) -> Result<(), String> {
        match protocol::no_reply_bit(code) {
            Some(bit) if self.agreed.steps & bit != 0 => Ok(()),
            _ => self.send(reply::CONTINUE, &[]),
        }
    }

    /// Handles one command; `Ok(false)` ends the session.
    pub(crate) fn handle(&mut self, code: u8, data: &[u8]) -> Result<bool, String> {
        match code {
            cmd::OPTNEG => {
                let offer = Offer::parse(data).ok_or("OPTNEG too short")?;
                if offer.version < 2 {
                    return Err(format!(
                        "milter protocol version {} is too old",
                        offer.version
                    ));
                }
                let (agreed, payload) = protocol::negotiate(offer);
                self.agreed = agreed;
                self.send(cmd::OPTNEG, &payload)?;
            }
            cmd::MACRO => {
                // First byte: the command the macros belong to; then name/value pairs. Only the
                // macros this milter uses are kept, each bounded.
                if let Some(rest) = data.get(1..) {
                    if data.first() == Some(&cmd::RCPT) {
                        self.macros.remove("rcpt_addr");
                    }
                    if data.first() == Some(&cmd::MAIL) {
                        self.macros.remove("mail_addr");
                    }
                    let parts = protocol::split_strings(rest);
                    for pair in parts.chunks(2) {
                        if let [k, v] = pair {
                            let k = String::from_utf8_lossy(k);
                            let k = k.trim_start_matches('{').trim_end_matches('}');
                            if let Some(name) = KEPT_MACROS.iter().find(|n| **n == k) {
                                let v = &v[..v.len().min(MAX_MACRO_VALUE)];
                                self.macros.insert(
                                    (*name).to_string(),
                                    String::from_utf8_lossy(v).into_owned(),
                                );
                            }
                        }
                    }
                }
            }
            cmd::CONNECT => {
                let parts = protocol::split_strings(data);
                self.client_name = parts
                    .first()
                    .map(|h| String::from_utf8_lossy(h).into_owned());
                // hostname\0 family port(u16) address\0
                if let Some(rest) = data.iter().position(|b| *b == 0).map(|i| &data[i + 1..]) {
                    if rest.len() > 3 && matches!(rest[0], b'4' | b'6') {
                        let addr = &rest[3..];
                        let end = addr.iter().position(|b| *b == 0).unwrap_or(addr.len());
                        self.client_addr = Some(String::from_utf8_lossy(&addr[..end]).into());
                    }
                }
                self.ack(code)?;
            }
            cmd::HELO | cmd::DATA | cmd::UNKNOWN => self.ack(code)?,
            cmd::MAIL => {
                let parts = protocol::split_strings(data);
                // The MTA's own parse of the path ({mail_addr}) when it sent one, else ours of
                // the path it relayed: both give the address it will use.
                let from = self.macros.remove("mail_addr").map(Ok).unwrap_or_else(|| {
                    envelope_path(b"MAIL FROM:", parts.first().copied().unwrap_or(b"<>"))
                });
                let refuse = from.is_err().then_some("an unreadable envelope sender");
                self.start_message(from.unwrap_or_default())?;
                if let Some(m) = self.msg.as_mut() {
                    m.refuse = m.refuse.or(refuse);
                }
                self.ack(code)?;
            }
            cmd::RCPT => {
                let parts = protocol::split_strings(data);
                let to = self.macros.remove("rcpt_addr").map(Ok).unwrap_or_else(|| {
                    envelope_path(b"RCPT TO:", parts.first().copied().unwrap_or(b""))
                });
                let max = self.shared.cfg.max_recipients;
                if let Some(m) = self.msg.as_mut() {
                    match to {
                        Ok(_) if m.rcpts.len() >= max => {
                            m.refuse = m.refuse.or(Some("more recipients than max_recipients"))
                        }
                        Ok(t) => m.rcpts.push(t),
                        Err(()) => m.refuse = m.refuse.or(Some("an unreadable envelope recipient")),
                    }
                }
                self.ack(code)?;
            }
            cmd::HEADER => {
                let parts = protocol::split_strings(data);
                let (name, value) = match parts.as_slice() {
                    [n, v, ..] => (*n, *v),
                    [n] => (*n, &b""[..]),
                    [] => return Err("empty header".into()),
                };
                let leadspc = self.agreed.steps & step::HDR_LEADSPC != 0;
                let mut line = Vec::with_capacity(name.len() + value.len() + 4);
                line.extend_from_slice(name);
                line.push(b':');
                if !leadspc {
                    line.push(b' ');
                }
                line.extend_from_slice(value);
                line.extend_from_slice(b"\r\n");
                self.append(&line)?;
                let max_headers = self.shared.cfg.max_headers;
                if let Some(m) = self.msg.as_mut() {
                    m.headers += 1;
                    if m.headers > max_headers {
                        m.refuse = m.refuse.or(Some("more headers than max_headers"));
                    }
                    if name.eq_ignore_ascii_case(b"subject") && m.subjects.len() < MAX_SUBJECTS {
                        m.subjects.push(value.to_vec());
                    }
                    let cc = name.eq_ignore_ascii_case(b"cc");
                    if cc || name.eq_ignore_ascii_case(b"to") {
                        let kept: usize = m.address_headers.iter().map(|(_, v)| v.len()).sum();
                        if kept + value.len() <= MAX_ADDRESS_HEADER_BYTES {
                            m.address_headers.push((cc, value.to_vec()));
                        } else {
                            m.address_headers_overflow = true;
                        }
                    }
                }
                self.ack(code)?;
            }
            cmd::EOH => {
                self.append(b"\r\n")?;
                if let Some(m) = self.msg.as_mut() {
                    m.in_body = true;
                }
                self.ack(code)?;
            }
            cmd::BODY => {
                self.append(data)?;
                self.ack(code)?;
            }
            cmd::BODYEOB => {
                if !data.is_empty() {
                    self.append(data)?;
                }
                self.end_of_message()?;
            }
            cmd::ABORT => {
                self.msg = None;
                self.overflow = 0;
            }
            cmd::QUIT => return Ok(false),
            cmd::QUIT_NC => {
                self.msg = None;
                self.macros.clear();
                self.client_name = None;
                self.client_addr = None;
            }
            other => return Err(format!("unknown command {:?}", other as char)),
        }
        Ok(true)
    }

    /// Bytes the session keeps besides the message spool: macros, envelope, subjects (for the
    /// memory-bound tests).
    #[cfg(test)]
    pub(crate) fn retained_bytes(&self) -> usize {
        let m: usize = self.macros.iter().map(|(k, v)| k.len() + v.len()).sum();
        let msg = self.msg.as_ref().map_or(0, |m| {
            m.from.len()
                + m.rcpts.iter().map(String::len).sum::<usize>()
                + m.subjects.iter().map(Vec::len).sum::<usize>()
                + m.address_headers
                    .iter()
                    .map(|(_, v)| v.len())
                    .sum::<usize>()
        });
        m + msg
    }

    fn start_message(&mut self, from: String) -> Result<(), String> {
        self.overflow = 0;
        self.msg = Some(Message {
            from,
            rcpts: Vec::new(),
            spool: Spool::Memory(Vec::new()),
            subjects: Vec::new(),
            address_headers: Vec::new(),
            address_headers_overflow: false,
            in_body: false,
            headers: 0,
            refuse: None,
        });
        Ok(())
    }

    fn append(&mut self, data: &[u8]) -> Result<(), String> {
        if self.msg.is_none() {
            // Headers without MAIL (some MTAs with NOMAIL): start an envelope-less message.
            self.start_message(String::new())?;
        }
        let max = self.shared.cfg.max_message_bytes;
        let m = self.msg.as_mut().expect("started above");
        if m.spool.len() + data.len() as u64 > max {
            self.overflow += data.len() as u64;
            return Ok(());
        }
        m.spool
            .push(data, self.shared)
            .map_err(|e| format!("spool: {e}"))
    }

    fn macro_value(&self, name: &str) -> Option<String> {
        self.macros.get(name).filter(|v| !v.is_empty()).cloned()
    }

    fn end_of_message(&mut self) -> Result<(), String> {
        let Some(m) = self.msg.take() else {
            return self.send(reply::CONTINUE, &[]);
        };
        let queue_id = self.macro_value("i");
        if let Some(why) = m.refuse {
            self.shared.log(
                "not_judged",
                &format!(
                    "{} cannot be judged: {why}; refused",
                    queue_id.as_deref().unwrap_or("-")
                ),
            );
            return self.send(
                reply::REPLYCODE,
                format!("550 5.7.1 Message refused by data-loss prevention: {why}\0").as_bytes(),
            );
        }
        if self.overflow > 0 {
            self.shared.log(
                "too_big",
                &format!(
                    "{} too big to inspect: {} bytes over max_message_bytes, refused",
                    queue_id.as_deref().unwrap_or("-"),
                    self.overflow
                ),
            );
            return self.send(
                reply::REPLYCODE,
                b"552 5.3.4 Message too big for data-loss-prevention inspection\0",
            );
        }
        let ctx = Context {
            channel: "milter".into(),
            user: self.macro_value("auth_authen"),
            host: self
                .macro_value("client_name")
                .or_else(|| self.client_name.clone()),
            client_addr: self
                .macro_value("client_addr")
                .or_else(|| self.client_addr.clone()),
            tls: self.macro_value("tls_version"),
            envelope_from: Some(if m.from.is_empty() {
                self.macro_value("mail_addr").unwrap_or_default()
            } else {
                m.from.clone()
            })
            .filter(|f| !f.is_empty()),
            envelope_to: m.rcpts.clone(),
            queue_id: queue_id.clone(),
            ..Context::default()
        };
        let mut ctx = ctx;
        if let Some(dir) = &self.shared.directory {
            if let Err(e) = dir.enrich(&mut ctx, &self.shared.pipeline.policy()) {
                let tempfail = dir.tempfail();
                self.shared.event(
                    "directory_error",
                    &[
                        ("queue_id", &queue_id.as_deref().unwrap_or("-")),
                        ("mode", &if tempfail { "tempfail" } else { "continue" }),
                    ],
                    &format!("directory unavailable: {e}"),
                );
                if tempfail {
                    return self.send(
                        reply::REPLYCODE,
                        b"451 4.7.1 Company directory unavailable, try again later\0",
                    );
                }
            }
        }
        let big = m.spool.spilled();
        let subjects = m.subjects;
        let address_headers = (!m.address_headers_overflow).then_some(m.address_headers);
        let _gate = big.then(|| self.shared.big_gate.enter());
        let raw = m.spool.into_bytes().map_err(|e| format!("spool: {e}"))?;
        let started = Instant::now();
        // Small messages are inspected in milliseconds: on this thread. Large ones on another,
        // with PROGRESS packets meanwhile.
        let result = if big {
            self.inspect_with_progress(&raw, &ctx)?
        } else {
            inspect(&self.shared.pipeline, &raw, &ctx)
        };
        drop(raw);
        let ms = started.elapsed().as_millis();
        match result {
            Ok(d) => {
                self.shared.event(
                    "inspected",
                    &[
                        ("channel", &"milter"),
                        ("action", &d.verdict.action.as_str()),
                        ("record", &d.record.id),
                        ("risk", &d.verdict.risk),
                        ("queue_id", &queue_id.as_deref().unwrap_or("-")),
                        ("user", &ctx.user.as_deref().unwrap_or("-")),
                        (
                            "approval",
                            &d.approval.as_ref().map_or("-", |a| a.id.as_str()),
                        ),
                        ("findings", &d.report.findings.len()),
                        ("ms", &ms),
                    ],
                    "",
                );
                self.apply(&d, &subjects, address_headers.as_deref())
            }
            Err(e) => {
                self.shared.event(
                    "fail_mode",
                    &[
                        ("channel", &"milter"),
                        ("mode", &self.shared.cfg.fail_mode.as_str()),
                        ("queue_id", &queue_id.as_deref().unwrap_or("-")),
                    ],
                    &format!("not judged: {e}"),
                );
                self.shared
                    .metrics
                    .fail_mode_answer("milter", self.shared.cfg.fail_mode.as_str());
                match self.shared.cfg.fail_mode {
                    crate::FailMode::Tempfail => self.send(
                        reply::REPLYCODE,
                        b"451 4.7.1 Data-loss-prevention inspection unavailable, try again later\0",
                    ),
                    crate::FailMode::Accept => {
                        self.add_header("X-Ping32DLP-Verdict", "error; not inspected")?;
                        self.send(reply::CONTINUE, &[])
                    }
                    crate::FailMode::Block => self.send(
                        reply::REPLYCODE,
                        b"550 5.7.1 Data-loss-prevention inspection unavailable; the message was not sent\0",
                    ),
                }
            }
        }
    }

    /// Runs the pipeline on another thread and sends PROGRESS every few seconds meanwhile, so
    /// that a long inspection does not hit Postfix's milter timeouts.
    #[allow(clippy::type_complexity)]
    fn inspect_with_progress(
        &mut self,
        raw: &[u8],
        ctx: &Context,
    ) -> Result<Result<Decision, String>, String> {
        let shared: &Shared = self.shared;
        let pipeline = &shared.pipeline;
        std::thread::scope(|s| {
            let (tx, rx) = mpsc::channel();
            s.spawn(move || {
                let _ = tx.send(inspect(pipeline, raw, ctx));
            });
            loop {
                match rx.recv_timeout(Duration::from_secs(5)) {
                    Ok(r) => return Ok(r),
                    Err(mpsc::RecvTimeoutError::Timeout) => self.send(reply::PROGRESS, &[])?,
                    Err(mpsc::RecvTimeoutError::Disconnected) => {
                        return Ok(Err("inspection thread ended".into()))
                    }
                }
            }
        })
    }

    fn add_header(&mut self, name: &str, value: &str) -> Result<(), String> {
        if self.agreed.actions & protocol::action::ADDHDRS == 0 {
            return Ok(());
        }
        let value = header_value(value);
        let mut data = Vec::new();
        data.extend_from_slice(name.as_bytes());
        data.push(0);
        if self.agreed.steps & step::HDR_LEADSPC != 0 {
            data.push(b' ');
        }
        data.extend_from_slice(value.as_bytes());
        data.push(0);
        self.send(reply::ADDHEADER, &data)
    }

    /// The verdict as milter replies. `address_headers`: the `To` / `Cc` headers received
    /// (`None` when there were too many to keep).
    fn apply(
        &mut self,
        d: &Decision,
        subjects: &[Vec<u8>],
        address_headers: Option<&[(bool, Vec<u8>)]>,
    ) -> Result<(), String> {
        let v = &d.verdict;
        if v.action != Action::Block && !v.bcc.is_empty() {
            let can = self.agreed.actions & protocol::action::CHGHDRS != 0;
            match address_headers {
                Some(h) if can => self.move_to_bcc(&v.bcc, h)?,
                _ => {
                    // Sending it as it is would show the addresses the policy hides.
                    return self.send(
                        reply::REPLYCODE,
                        b"451 4.7.1 The policy moves external recipients to Bcc, but the headers cannot be changed here\0",
                    );
                }
            }
        }
        if let (Some(l), false) = (&d.links, v.action == Action::Block) {
            if self.agreed.actions & protocol::action::CHGBODY == 0 {
                // Sending it as it is would send the files the policy keeps back.
                return self.send(
                    reply::REPLYCODE,
                    b"451 4.7.1 The policy replaces attachments by download links, but the MTA does not allow body changes\0",
                );
            }
            // The headers are the original's; only the body changes, in chunks of at most
            // 65535 bytes (MILTER_CHUNK_SIZE).
            for chunk in l.message[l.body_offset..].chunks(65_535) {
                self.send(reply::REPLBODY, chunk)?;
            }
        }
        match v.action {
            Action::Block => {
                let text = ping32dlp::service::smtp_text(
                    &v.user_message("en"),
                    "Message blocked by the data-loss-prevention policy",
                );
                let line = format!("550 5.7.1 {text} (incident {})\0", d.record.id);
                return self.send(reply::REPLYCODE, line.as_bytes());
            }
            Action::Hold | Action::Delay
                if self.agreed.actions & protocol::action::QUARANTINE == 0 =>
            {
                // The MTA cannot hold mail: refuse it for now rather than let it through.
                return self.send(
                    reply::REPLYCODE,
                    b"451 4.7.1 Held for approval, but the MTA does not allow quarantine\0",
                );
            }
            _ => {}
        }
        for (name, value) in &v.headers {
            self.add_header(name, value)?;
        }
        if let Some(prefix) = &v.subject_prefix {
            self.prefix_subject(prefix, subjects)?;
        }
        if self.shared.cfg.verdict_header {
            let mut value = format!(
                "{}; record={}; risk={}",
                v.action.as_str(),
                d.record.id,
                v.risk
            );
            if let Some(a) = &d.approval {
                value.push_str(&format!("; approval={}", a.id));
            }
            self.add_header("X-Ping32DLP-Verdict", &value)?;
        }
        if matches!(v.action, Action::Hold | Action::Delay) {
            let id = d.approval.as_ref().map(|a| a.id.as_str()).unwrap_or("-");
            let what = if v.action == Action::Delay {
                "delayed"
            } else {
                "approval"
            };
            let reason = format!("ping32dlp {what} {id} (record {})\0", d.record.id);
            self.send(reply::QUARANTINE, reason.as_bytes())?;
        }
        self.send(reply::CONTINUE, &[])
    }

    /// Action `bcc`: rewrites each `To` / `Cc` header that names one of `hide` without it
    /// (CHGHEADER; an emptied `Cc` is deleted, an emptied `To` becomes
    /// `undisclosed-recipients:;`). The envelope is not changed, so they still receive it.
    fn move_to_bcc(&mut self, hide: &[String], headers: &[(bool, Vec<u8>)]) -> Result<(), String> {
        let mut changes = Vec::new();
        let (mut to_index, mut cc_index) = (0u32, 0u32);
        for (cc, value) in headers {
            let index = if *cc {
                cc_index += 1;
                cc_index
            } else {
                to_index += 1;
                to_index
            };
            let Some(kept) = ping32dlp::pipeline::recipients_without(value, hide) else {
                continue;
            };
            let new = match (kept.is_empty(), *cc) {
                (true, true) => String::new(),
                (true, false) => "undisclosed-recipients:;".to_string(),
                _ => kept.join(", "),
            };
            changes.push((*cc, index, new));
        }
        // Last first: deleting a Cc must not renumber the ones still to change.
        for (cc, index, value) in changes.into_iter().rev() {
            let mut data = Vec::new();
            data.extend_from_slice(&index.to_be_bytes());
            data.extend_from_slice(if cc { b"Cc\0" } else { b"To\0" });
            if !value.is_empty() && self.agreed.steps & step::HDR_LEADSPC != 0 {
                data.push(b' ');
            }
            data.extend_from_slice(header_value(&value).as_bytes());
            data.push(0);
            self.send(reply::CHGHEADER, &data)?;
        }
        Ok(())
    }

    fn prefix_subject(&mut self, prefix: &str, subjects: &[Vec<u8>]) -> Result<(), String> {
        let Some(first) = subjects.first() else {
            return self.add_header(
                "Subject",
                &ping32dlp::text::encode_header_text(prefix, false),
            );
        };
        if self.agreed.actions & protocol::action::CHGHDRS == 0 {
            return Ok(());
        }
        let old = String::from_utf8_lossy(first);
        let old = old.trim_start();
        let encoded_next = old.starts_with("=?");
        let mut value = ping32dlp::text::encode_header_text(prefix, encoded_next);
        if !old.is_empty() {
            value.push(' ');
            value.push_str(old);
        }
        let mut data = Vec::new();
        data.extend_from_slice(&1u32.to_be_bytes());
        data.extend_from_slice(b"Subject\0");
        if self.agreed.steps & step::HDR_LEADSPC != 0 {
            data.push(b' ');
        }
        data.extend_from_slice(value.as_bytes());
        data.push(0);
        self.send(reply::CHGHEADER, &data)
    }
}

/// The pipeline on one message; a panic inside becomes an error (the fail mode answers it).
fn inspect(
    pipeline: &ping32dlp::pipeline::Pipeline,
    raw: &[u8],
    ctx: &Context,
) -> Result<Decision, String> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        pipeline.process_message(raw, ctx, &[], false)
    })) {
        Ok(Ok(d)) => Ok(d),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("internal error (panic) while inspecting".to_string()),
    }
}

/// The address of an envelope path as the MTA relayed it (`<"x@corp.example>"@evil.example>`,
/// `<@relay:user@host>`, `<>`), parsed by smtp-proto as the SMTP proxy parses its commands:
/// the quoted local part stays with its domain. `Err` for what is not a path (or is longer
/// than [`MAX_ADDRESS`], or holds control characters).
fn envelope_path(verb: &[u8], path: &[u8]) -> Result<String, ()> {
    if path.len() > MAX_ADDRESS || path.iter().any(|&b| b < 0x20 || b == 0x7f) {
        return Err(());
    }
    let path = path.trim_ascii();
    let mut line = verb.to_vec();
    if path.starts_with(b"<") {
        line.extend_from_slice(path);
    } else {
        line.push(b'<');
        line.extend_from_slice(path);
        line.push(b'>');
    }
    line.extend_from_slice(b"\r\n");
    match smtp_proto::Request::parse(&mut line.iter()) {
        Ok(smtp_proto::Request::Mail { from }) => Ok(from.address.into_owned()),
        Ok(smtp_proto::Request::Rcpt { to }) => Ok(to.address.into_owned()),
        _ => Err(()),
    }
}

/// A header value without line breaks or NULs.
fn header_value(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_and_header_values() {
        assert_eq!(
            envelope_path(b"MAIL FROM:", b" <a@b.example> "),
            Ok("a@b.example".into())
        );
        assert_eq!(
            envelope_path(b"RCPT TO:", b"a@b.example"),
            Ok("a@b.example".into())
        );
        let quoted = envelope_path(b"RCPT TO:", br#"<"x@corp.example>"@evil.example>"#).unwrap();
        assert_eq!(ping32dlp::policy::domain_of(&quoted), "evil.example");
        assert_eq!(envelope_path(b"MAIL FROM:", b"<>"), Ok(String::new()));
        assert!(envelope_path(b"RCPT TO:", b"<a@b\r\n.example>").is_err());
        assert!(envelope_path(b"RCPT TO:", &vec![b'a'; 5000]).is_err());
        assert_eq!(header_value("a\r\nb"), "a  b");
    }
}
