//! Messages that arrive in pieces: spooled to memory, then to an unlinked temporary file, and
//! inspected from a read-only map of it, so that the caller never holds a large message whole.
//!
//! An agent that relays a 200 MB mail as it streams past writes each piece to a
//! [`MessageSpool`] and inspects the [`SpooledMessage`] at the end. The first
//! [`MessageSpool::MEMORY`] bytes stay in memory; past that the spool moves to a temporary file
//! that no other process can open (created unlinked, `O_TMPFILE` where the kernel has it, in
//! `$TMPDIR`), and the inspection reads it through a memory map: its pages are the page cache's,
//! not the heap. The spool stores at most `max_bytes`; a longer message is counted, not stored,
//! and is reported unscannable ("limit exceeded: raw_message"), like a whole buffer over
//! [`crate::Limits::raw_message`].
//!
//! ```
//! use std::io::Write;
//! use ping32dlp::spool::MessageSpool;
//! let mut spool = MessageSpool::new(0); // 0: the default raw-message limit
//! spool.write_all(b"From: a@example.co.jp\r\nTo: b@example.com\r\nSubject: x\r\n\r\n").unwrap();
//! spool.write_all("カード 4111 1111 1111 1111\r\n".as_bytes()).unwrap();
//! let message = spool.finish().unwrap();
//! let mut scanner = ping32dlp::Scanner::new(std::sync::Arc::new(ping32dlp::Engine::builtin()));
//! let report = scanner.inspect_spooled(&message, &ping32dlp::ExtractOptions::default());
//! assert_eq!(report.findings[0].detector, "credit_card");
//! ```

use std::fs::File;
use std::io::{self, Write};

use crate::extract::{ExtractOptions, Limits, Reason, Unscannable};
use crate::report::Report;
use crate::Scanner;

/// Collects a message written in pieces (see the module docs).
#[derive(Debug)]
pub struct MessageSpool {
    mem: Vec<u8>,
    file: Option<io::BufWriter<File>>,
    stored: u64,
    total: u64,
    max: u64,
}

enum Data {
    Mem(Vec<u8>),
    Map(memmap2::Mmap),
    Empty,
}

/// A finished spool: the stored bytes (in memory or mapped from the temporary file, which goes
/// away with this value) and whether the message was longer than the spool would store.
pub struct SpooledMessage {
    data: Data,
    total: u64,
    stored: u64,
}

impl std::fmt::Debug for SpooledMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpooledMessage")
            .field("total", &self.total)
            .field("stored", &self.stored)
            .field("mapped", &matches!(self.data, Data::Map(_)))
            .finish()
    }
}

impl MessageSpool {
    /// Bytes kept in memory before the spool moves to a temporary file: 1 MiB.
    pub const MEMORY: usize = 1 << 20;

    /// A spool that stores at most `max_bytes` (0: [`Limits::raw_message`]'s default plus
    /// one byte, enough for the scanner to see the limit passed).
    pub fn new(max_bytes: u64) -> MessageSpool {
        let max = if max_bytes == 0 {
            Limits::default().raw_message as u64 + 1
        } else {
            max_bytes
        };
        MessageSpool {
            mem: Vec::new(),
            file: None,
            stored: 0,
            total: 0,
            max,
        }
    }

    /// Bytes written so far (stored or not).
    pub fn len(&self) -> u64 {
        self.total
    }

    /// True before the first byte.
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// Ends the writing: the message as one byte slice.
    pub fn finish(mut self) -> io::Result<SpooledMessage> {
        let data = match self.file.take() {
            None if self.mem.is_empty() => Data::Empty,
            None => Data::Mem(std::mem::take(&mut self.mem)),
            Some(w) => {
                let file = w.into_inner().map_err(io::IntoInnerError::into_error)?;
                // One of two `unsafe` places outside ffi/ (DESIGN, module map and decisions).
                #[allow(unsafe_code)]
                // SAFETY: the file is unlinked and only this spool has it open, so nothing
                // else can change it while it is mapped; the map is read-only.
                let map = unsafe { memmap2::Mmap::map(&file)? };
                Data::Map(map)
            }
        };
        Ok(SpooledMessage {
            data,
            total: self.total,
            stored: self.stored,
        })
    }
}

impl Write for MessageSpool {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.total = self.total.saturating_add(buf.len() as u64);
        let room = self.max.saturating_sub(self.stored);
        let take = &buf[..buf.len().min(usize::try_from(room).unwrap_or(usize::MAX))];
        if take.is_empty() {
            return Ok(buf.len()); // over the limit: counted, not stored
        }
        if self.file.is_none() && self.mem.len() + take.len() > Self::MEMORY {
            let mut w = io::BufWriter::with_capacity(1 << 16, tempfile::tempfile()?);
            w.write_all(&self.mem)?;
            self.mem = Vec::new();
            self.file = Some(w);
        }
        match &mut self.file {
            Some(w) => w.write_all(take)?,
            None => self.mem.extend_from_slice(take),
        }
        self.stored += take.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.file {
            Some(w) => w.flush(),
            None => Ok(()),
        }
    }
}

impl SpooledMessage {
    /// The stored bytes (all of the message unless [`Self::is_truncated`]).
    pub fn bytes(&self) -> &[u8] {
        match &self.data {
            Data::Mem(v) => v,
            Data::Map(m) => m,
            Data::Empty => &[],
        }
    }

    /// Bytes the message had (stored or not).
    pub fn len(&self) -> u64 {
        self.total
    }

    /// True for a message of no bytes.
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// True when the message was longer than the spool stores.
    pub fn is_truncated(&self) -> bool {
        self.total > self.stored
    }

    /// True when the bytes are in a temporary file (the message passed [`MessageSpool::MEMORY`]).
    pub fn is_on_disk(&self) -> bool {
        matches!(self.data, Data::Map(_))
    }
}

impl Scanner {
    /// Inspects a spooled message like [`Scanner::inspect_message`]; a message longer than its
    /// spool stored is reported unscannable (limit exceeded), never judged on a part of it.
    pub fn inspect_spooled(&mut self, msg: &SpooledMessage, opts: &ExtractOptions) -> Report {
        if !msg.is_truncated() {
            let mut r = self.inspect_message(msg.bytes(), opts);
            r.size = msg.len();
            return r;
        }
        let mut r = self.detect_extraction(Default::default());
        r.unscannable.push(Unscannable {
            location: "message".into(),
            reason: Reason::LimitExceeded,
            detail: "raw_message".into(),
        });
        r.size = msg.len();
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn mail(filler: usize) -> Vec<u8> {
        let mut m =
            b"From: a@example.co.jp\r\nTo: b@partner.example\r\nSubject: list\r\n\r\n".to_vec();
        for _ in 0..filler {
            m.extend_from_slice(b"nothing to see here, just a long line of filler text.\r\n");
        }
        m.extend_from_slice("個人番号 1234 5678 9018\r\n".as_bytes());
        m
    }

    fn spooled(m: &[u8], piece: usize, max: u64) -> SpooledMessage {
        let mut s = MessageSpool::new(max);
        for c in m.chunks(piece) {
            s.write_all(c).unwrap();
        }
        s.finish().unwrap()
    }

    #[test]
    fn in_memory_and_on_disk_give_the_report_of_the_whole_buffer() {
        let mut scanner = Scanner::new(Arc::new(crate::Engine::builtin()));
        let opts = ExtractOptions::default();
        for (filler, on_disk) in [(10, false), (40_000, true)] {
            let m = mail(filler);
            let whole = scanner.inspect_message(&m, &opts);
            for piece in [1 << 12, 7_777] {
                let s = spooled(&m, piece, 0);
                assert_eq!(s.is_on_disk(), on_disk, "{filler}");
                assert_eq!(s.bytes(), &m[..]);
                let r = scanner.inspect_spooled(&s, &opts);
                assert_eq!(r.findings.len(), 1);
                assert_eq!(format!("{:?}", r.findings), format!("{:?}", whole.findings));
                assert_eq!(r.size, m.len() as u64);
            }
        }
    }

    #[test]
    fn a_message_past_the_spool_limit_is_unscannable_not_partly_judged() {
        let m = mail(100);
        let s = spooled(&m, 1000, 2048);
        assert!(s.is_truncated() && s.bytes().len() == 2048 && s.len() == m.len() as u64);
        let mut scanner = Scanner::new(Arc::new(crate::Engine::builtin()));
        let r = scanner.inspect_spooled(&s, &ExtractOptions::default());
        assert!(r.findings.is_empty());
        assert_eq!(r.unscannable.len(), 1);
        assert_eq!(r.unscannable[0].reason, Reason::LimitExceeded);
        // The default limit: one byte more than the scanner takes, so the scanner says so.
        let s = MessageSpool::new(0);
        assert_eq!(s.max, Limits::default().raw_message as u64 + 1);
        assert!(spooled(b"", 10, 0).bytes().is_empty());
    }
}
