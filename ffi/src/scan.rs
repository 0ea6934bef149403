//! Contexts, scanners and their reports.

use std::cell::UnsafeCell;
use std::ffi::c_char;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

use dlp::extract::{Attachment, Extraction, Segment, Unscannable};
use dlp::policy::Context;
use dlp::spool::{MessageSpool, SpooledMessage};
use dlp::{ExtractOptions, Report, ReportFinding, Scanner};

use crate::engine::ping32dlp_engine;
use crate::ping32dlp_result::*;
use crate::{
    arg, buf_arg, free_handle, guard, guard_value, json_out, opt_arg, out, out_handle, out_ok,
    ping32dlp_result, ping32dlp_str, str_arg, Fail,
};

/// Context field: channel (`milter`, `proxy`, `webmail`, `api`; `api` by default).
pub const PING32DLP_CTX_CHANNEL: u32 = 1;
/// Context field: authenticated user.
pub const PING32DLP_CTX_USER: u32 = 2;
/// Context field: host or terminal name.
pub const PING32DLP_CTX_HOST: u32 = 3;
/// Context field: client application (`Outlook 16.0`).
pub const PING32DLP_CTX_CLIENT_APP: u32 = 4;
/// Context field: client address.
pub const PING32DLP_CTX_CLIENT_ADDR: u32 = 5;
/// Context field: TLS version of the submission (`TLSv1.3`).
pub const PING32DLP_CTX_TLS: u32 = 6;
/// Context field: envelope sender (MAIL FROM).
pub const PING32DLP_CTX_ENVELOPE_FROM: u32 = 7;
/// Context field: one envelope recipient (RCPT TO); each call adds one.
pub const PING32DLP_CTX_ENVELOPE_TO: u32 = 8;
/// Context field: one group of the sender (from a directory); each call adds one.
pub const PING32DLP_CTX_GROUP: u32 = 9;
/// Context field: MTA queue id (for holding and releasing).
pub const PING32DLP_CTX_QUEUE_ID: u32 = 10;
/// Context field: the sender's department (from a directory), for `sender_department`.
pub const PING32DLP_CTX_DEPARTMENT: u32 = 11;
/// Context field: the sender's manager's address (from a directory), for
/// `approvers = ["manager"]`.
pub const PING32DLP_CTX_MANAGER: u32 = 12;

/// Message header: decoded Subject.
pub const PING32DLP_HEADER_SUBJECT: u32 = 1;
/// Message header: From addresses.
pub const PING32DLP_HEADER_FROM: u32 = 2;
/// Message header: To addresses.
pub const PING32DLP_HEADER_TO: u32 = 3;
/// Message header: Cc addresses.
pub const PING32DLP_HEADER_CC: u32 = 4;
/// Message header: Bcc addresses.
pub const PING32DLP_HEADER_BCC: u32 = 5;
/// Message header: Reply-To addresses.
pub const PING32DLP_HEADER_REPLY_TO: u32 = 6;
/// Message header: Date as RFC 3339.
pub const PING32DLP_HEADER_DATE: u32 = 7;
/// Message header: Message-ID.
pub const PING32DLP_HEADER_MESSAGE_ID: u32 = 8;

/// `ping32dlp_report_to_json` flag: include raw values (sensitive) beside the masked ones.
pub const PING32DLP_JSON_SHOW_VALUES: u32 = 1;

/// Scanner limit (`ping32dlp_scanner_set_limit`): nested containers (message in zip in message
/// ...); default 10.
pub const PING32DLP_LIMIT_CONTAINER_DEPTH: u32 = 1;
/// Scanner limit: MIME multipart nesting; default 32.
pub const PING32DLP_LIMIT_MIME_DEPTH: u32 = 2;
/// Scanner limit: MIME parts per message; default 10,000.
pub const PING32DLP_LIMIT_MIME_PARTS: u32 = 3;
/// Scanner limit: entries read from one archive; default 10,000.
pub const PING32DLP_LIMIT_ARCHIVE_ENTRIES: u32 = 4;
/// Scanner limit: objects (parts, entries, files) per message; default 20,000.
pub const PING32DLP_LIMIT_MESSAGE_ENTRIES: u32 = 5;
/// Scanner limit: decompressed bytes of one archive entry; default 64 MiB.
pub const PING32DLP_LIMIT_ENTRY_BYTES: u32 = 6;
/// Scanner limit: decompressed bytes per message; default 256 MiB.
pub const PING32DLP_LIMIT_MESSAGE_DECOMPRESSED: u32 = 7;
/// Scanner limit: compression ratio (decompressed : compressed) past 1 MiB; default 100.
pub const PING32DLP_LIMIT_COMPRESSION_RATIO: u32 = 8;
/// Scanner limit: bytes of text extracted from one object; default 8 MiB.
pub const PING32DLP_LIMIT_TEXT_PER_OBJECT: u32 = 9;
/// Scanner limit: bytes of text extracted per message; default 32 MiB.
pub const PING32DLP_LIMIT_TEXT_PER_MESSAGE: u32 = 10;
/// Scanner limit: PDF objects; default 200,000.
pub const PING32DLP_LIMIT_PDF_OBJECTS: u32 = 11;
/// Scanner limit: PDF pages; default 2,000.
pub const PING32DLP_LIMIT_PDF_PAGES: u32 = 12;
/// Scanner limit: spreadsheet cells per workbook; default 10,000,000.
pub const PING32DLP_LIMIT_CELLS: u32 = 13;
/// Scanner limit: raw message bytes; default 64 MiB.
pub const PING32DLP_LIMIT_RAW_MESSAGE: u32 = 14;
/// Scanner limit: time per scan in milliseconds (the scan budget); default 15,000. What is not
/// reached in time is reported unscannable (`limit_exceeded`, `time budget`).
pub const PING32DLP_LIMIT_TIME_MS: u32 = 15;

/// How sure a finding is.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ping32dlp_confidence {
    /// Format and check digit only.
    PING32DLP_CONFIDENCE_LOW = 1,
    /// Format plus one more signal.
    PING32DLP_CONFIDENCE_MEDIUM = 2,
    /// Format, check and a context word, or an unambiguous format.
    PING32DLP_CONFIDENCE_HIGH = 3,
}

/// Who sent what, how and to whom: given with a scan, an evaluation or a record.
///
/// Made by `ping32dlp_context_new`; released by `ping32dlp_context_free`. Read-only during calls
/// that take it, so one context may be shared by threads that do not change it.
pub struct ping32dlp_context {
    pub(crate) ctx: Context,
}

impl ping32dlp_context {
    pub(crate) fn or_default(p: *const ping32dlp_context) -> Context {
        opt_arg(p).map_or_else(
            || Context {
                channel: "api".into(),
                ..Context::default()
            },
            |c| c.ctx.clone(),
        )
    }
}

/// A new context with channel `api` and nothing else set.
/// Ownership: `*context_out` is the caller's (`ping32dlp_context_free`), written only on success. Arguments are copied; nothing of them is kept.
#[no_mangle]
pub extern "C" fn ping32dlp_context_new(
    context_out: *mut *mut ping32dlp_context,
) -> ping32dlp_result {
    guard(|| {
        out_handle(
            context_out,
            "context_out",
            ping32dlp_context {
                ctx: Context {
                    channel: "api".into(),
                    ..Context::default()
                },
            },
        )
    })
}

fn ctx_mut<'a>(p: *mut ping32dlp_context) -> Result<&'a mut Context, Fail> {
    if p.is_null() {
        return Err(Fail::null("context"));
    }
    // SAFETY: not NULL; a live context not used by another thread while it changes (contract).
    Ok(unsafe { &mut (*p).ctx })
}

/// Sets one field (`PING32DLP_CTX_*`) to a NUL-terminated UTF-8 value. `ENVELOPE_TO` and
/// `GROUP` add one value per call; the others replace.
/// Ownership: changes the context; the value is copied.
#[no_mangle]
pub extern "C" fn ping32dlp_context_set(
    context: *mut ping32dlp_context,
    field: u32,
    value: *const c_char,
) -> ping32dlp_result {
    guard(|| {
        let c = ctx_mut(context)?;
        let v = str_arg(value, "value")?;
        match field {
            PING32DLP_CTX_CHANNEL => c.channel = v,
            PING32DLP_CTX_USER => c.user = Some(v),
            PING32DLP_CTX_HOST => c.host = Some(v),
            PING32DLP_CTX_CLIENT_APP => c.client_app = Some(v),
            PING32DLP_CTX_CLIENT_ADDR => c.client_addr = Some(v),
            PING32DLP_CTX_TLS => c.tls = Some(v),
            PING32DLP_CTX_ENVELOPE_FROM => c.envelope_from = Some(v),
            PING32DLP_CTX_ENVELOPE_TO => c.envelope_to.push(v),
            PING32DLP_CTX_GROUP => c.groups.push(v),
            PING32DLP_CTX_QUEUE_ID => c.queue_id = Some(v),
            PING32DLP_CTX_DEPARTMENT => c.department = Some(v),
            PING32DLP_CTX_MANAGER => c.manager = Some(v),
            other => return Err(Fail::invalid(format!("unknown context field {other}"))),
        }
        Ok(())
    })
}

/// Says where an attachment came from (`C:\Users\ichiro\Documents\見積書.xlsx`, or an
/// application): `attachment` is its file name or location in the report.
/// Ownership: changes the context; the strings are copied.
#[no_mangle]
pub extern "C" fn ping32dlp_context_add_origin(
    context: *mut ping32dlp_context,
    attachment: *const c_char,
    origin: *const c_char,
) -> ping32dlp_result {
    guard(|| {
        let c = ctx_mut(context)?;
        let a = str_arg(attachment, "attachment")?;
        let o = str_arg(origin, "origin")?;
        c.origins.push((a, o));
        Ok(())
    })
}

/// Adds a group of one recipient (from a directory), for `recipient_group`.
/// Ownership: changes the context; the strings are copied.
#[no_mangle]
pub extern "C" fn ping32dlp_context_add_recipient_group(
    context: *mut ping32dlp_context,
    recipient: *const c_char,
    group: *const c_char,
) -> ping32dlp_result {
    guard(|| {
        let c = ctx_mut(context)?;
        let r = str_arg(recipient, "recipient")?;
        let g = str_arg(group, "group")?;
        match c.recipient_groups.iter_mut().find(|(a, _)| *a == r) {
            Some((_, gs)) => gs.push(g),
            None => c.recipient_groups.push((r, vec![g])),
        }
        Ok(())
    })
}

/// Sets the message's time (Unix seconds); without it, now.
/// Ownership: changes the context.
#[no_mangle]
pub extern "C" fn ping32dlp_context_set_time(
    context: *mut ping32dlp_context,
    unix_seconds: i64,
) -> ping32dlp_result {
    guard(|| {
        ctx_mut(context)?.time = Some(unix_seconds);
        Ok(())
    })
}

/// Releases a context. NULL is a no-op.
/// Ownership: takes the handle back; it must not be used afterwards.
#[no_mangle]
pub extern "C" fn ping32dlp_context_free(context: *mut ping32dlp_context) {
    free_handle(context);
}

/// What one scan found: message headers, attachments, findings, unscannable items.
///
/// A scan's report is owned by the scanner that made it: valid until that scanner's next scan
/// or its free, never freed by the caller, readable from several threads while the scanner is
/// idle. `ping32dlp_report_clone` makes a report the caller owns (any number may live at once;
/// released by `ping32dlp_report_free`). A report holds copies of everything it shows: it keeps
/// neither the scanned bytes nor the context (attachment origins are copied from it), only a
/// reference to the engine's detector list.
pub struct ping32dlp_report {
    pub(crate) report: Report,
    attachments: Vec<ping32dlp_attachment>,
    /// Made by `ping32dlp_report_clone` (freed by the caller), not by a scan.
    owned: bool,
}

/// An attachment, archive member or the scanned file itself, with its metadata.
/// Borrowed from its report.
pub struct ping32dlp_attachment {
    a: Attachment,
    origin: Option<String>,
}

/// A finding with its location and masked value. Borrowed from its report.
pub struct ping32dlp_finding {
    _private: [u8; 0],
}

/// Something that could not be inspected, and why. Borrowed from its report.
pub struct ping32dlp_unscannable {
    _private: [u8; 0],
}

struct ScannerState {
    scanner: Scanner,
    report: Option<ping32dlp_report>,
    options: ExtractOptions,
    min_confidence: dlp::Confidence,
    encoding: Option<String>,
}

/// A scanner: scratch memory for one thread's scans, and the last report.
///
/// Made by `ping32dlp_scanner_new`; released by `ping32dlp_scanner_free`. One thread at a time:
/// a call while another thread scans with it returns `PING32DLP_ERR_BUSY`.
pub struct ping32dlp_scanner {
    busy: AtomicBool,
    state: UnsafeCell<ScannerState>,
}

/// Clears the busy flag when a scan ends, also by a panic.
struct BusyGuard<'a>(&'a AtomicBool);

impl Drop for BusyGuard<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

/// A scanner for an engine. The scanner keeps its own reference to the engine.
/// Ownership: `*scanner_out` is the caller's (`ping32dlp_scanner_free`), written only on success; the scanner holds its own reference to the engine.
#[no_mangle]
pub extern "C" fn ping32dlp_scanner_new(
    engine: *const ping32dlp_engine,
    scanner_out: *mut *mut ping32dlp_scanner,
) -> ping32dlp_result {
    guard(|| {
        let e = arg(engine, "engine")?;
        out_ok(scanner_out, "scanner_out")?;
        out_handle(
            scanner_out,
            "scanner_out",
            ping32dlp_scanner {
                busy: AtomicBool::new(false),
                state: UnsafeCell::new(ScannerState {
                    scanner: Scanner::new(e.inner.clone()),
                    report: None,
                    options: ExtractOptions::default(),
                    min_confidence: dlp::Confidence::Low,
                    encoding: None,
                }),
            },
        )
    })
}

/// Releases a scanner and its report. NULL is a no-op.
/// Ownership: takes the handle back; it must not be used afterwards.
#[no_mangle]
pub extern "C" fn ping32dlp_scanner_free(scanner: *mut ping32dlp_scanner) {
    free_handle(scanner);
}

/// Adds a password to try on encrypted zips and PDFs in the scanner's next scan only (a PPAP
/// password known to the caller for this mail). Every scan clears the list when it ends, so
/// one user's passwords are never tried on another mail; add them again before each scan.
/// Passwords written in the mail's own body are always tried.
/// Ownership: the password is copied.
#[no_mangle]
pub extern "C" fn ping32dlp_scanner_add_password(
    scanner: *mut ping32dlp_scanner,
    password: *const c_char,
) -> ping32dlp_result {
    guard(|| {
        let pw = str_arg(password, "password")?;
        with_scanner(scanner, |st| {
            st.options.passwords.push(pw);
            Ok(())
        })
    })
}

/// Sets one extraction limit (`PING32DLP_LIMIT_*`) for this scanner's scans; `value` must be
/// at least 1. What a limit stops is reported unscannable (`limit_exceeded`), never skipped
/// silently. `PING32DLP_ERR_INVALID_ARGUMENT` for an unknown limit or 0.
/// Ownership: changes the scanner (one thread at a time).
#[no_mangle]
pub extern "C" fn ping32dlp_scanner_set_limit(
    scanner: *mut ping32dlp_scanner,
    limit: u32,
    value: u64,
) -> ping32dlp_result {
    guard(|| {
        if value == 0 {
            return Err(Fail::invalid("a limit must be at least 1"));
        }
        let n = usize::try_from(value).unwrap_or(usize::MAX);
        let v32 = u32::try_from(value).unwrap_or(u32::MAX);
        with_scanner(scanner, |st| {
            let l = &mut st.options.limits;
            match limit {
                PING32DLP_LIMIT_CONTAINER_DEPTH => l.container_depth = v32,
                PING32DLP_LIMIT_MIME_DEPTH => l.mime_depth = v32,
                PING32DLP_LIMIT_MIME_PARTS => l.mime_parts = n,
                PING32DLP_LIMIT_ARCHIVE_ENTRIES => l.archive_entries = n,
                PING32DLP_LIMIT_MESSAGE_ENTRIES => l.message_entries = n,
                PING32DLP_LIMIT_ENTRY_BYTES => l.entry_bytes = value,
                PING32DLP_LIMIT_MESSAGE_DECOMPRESSED => l.message_decompressed = value,
                PING32DLP_LIMIT_COMPRESSION_RATIO => l.compression_ratio = value,
                PING32DLP_LIMIT_TEXT_PER_OBJECT => l.text_per_object = n,
                PING32DLP_LIMIT_TEXT_PER_MESSAGE => l.text_per_message = n,
                PING32DLP_LIMIT_PDF_OBJECTS => l.pdf_objects = n,
                PING32DLP_LIMIT_PDF_PAGES => l.pdf_pages = n,
                PING32DLP_LIMIT_CELLS => l.cells = n,
                PING32DLP_LIMIT_RAW_MESSAGE => l.raw_message = n,
                PING32DLP_LIMIT_TIME_MS => l.time_budget = std::time::Duration::from_millis(value),
                other => return Err(Fail::invalid(format!("unknown limit {other}"))),
            }
            Ok(())
        })
    })
}

/// Reports only findings at `min` confidence (`PING32DLP_CONFIDENCE_*`) or above in this
/// scanner's scans (per-detector counts follow). Default LOW: everything.
/// Ownership: changes the scanner (one thread at a time).
#[no_mangle]
pub extern "C" fn ping32dlp_scanner_set_min_confidence(
    scanner: *mut ping32dlp_scanner,
    min: u32,
) -> ping32dlp_result {
    guard(|| {
        let c = match min {
            1 => dlp::Confidence::Low,
            2 => dlp::Confidence::Medium,
            3 => dlp::Confidence::High,
            other => return Err(Fail::invalid(format!("unknown confidence {other}"))),
        };
        with_scanner(scanner, |st| {
            st.min_confidence = c;
            Ok(())
        })
    })
}

/// Reads text (`ping32dlp_scanner_scan_text`, and files that are text, CSV or HTML) in this
/// charset instead of detecting it: `"cp932"`, `"shift_jis"`, `"euc-jp"`, `"iso-2022-jp"`,
/// `"utf-8"`, any WHATWG label. NULL goes back to detection. Messages use their own headers.
/// `PING32DLP_ERR_INVALID_ARGUMENT` for an unknown label.
/// Ownership: the label is copied.
#[no_mangle]
pub extern "C" fn ping32dlp_scanner_set_encoding(
    scanner: *mut ping32dlp_scanner,
    label: *const c_char,
) -> ping32dlp_result {
    guard(|| {
        let label = crate::opt_str_arg(label);
        if let Some(l) = &label {
            if dlp::text::encoding_for_label(l).is_none() {
                return Err(Fail::invalid(format!("unknown charset `{l}`")));
            }
        }
        with_scanner(scanner, |st| {
            st.encoding = label;
            Ok(())
        })
    })
}

fn with_scanner(
    scanner: *mut ping32dlp_scanner,
    f: impl FnOnce(&mut ScannerState) -> Result<(), Fail>,
) -> Result<(), Fail> {
    let s = arg(scanner as *const ping32dlp_scanner, "scanner")?;
    if s.busy
        .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
        .is_err()
    {
        return Err(Fail(
            PING32DLP_ERR_BUSY,
            "the scanner is in use by another thread".into(),
        ));
    }
    let _busy = BusyGuard(&s.busy);
    // SAFETY: the busy flag gives this thread exclusive use of the state until the guard drops;
    // no other reference to it exists meanwhile (reports are read only while the scanner is
    // idle, by the contract).
    let state = unsafe { &mut *s.state.get() };
    #[cfg(test)]
    crate::test_hook::fire();
    f(state)
}

fn scan_into(
    scanner: *mut ping32dlp_scanner,
    ctx: *const ping32dlp_context,
    flags: u32,
    report_out: *mut *const ping32dlp_report,
    run: impl FnOnce(&mut Scanner, &ExtractOptions, Option<&str>) -> Report,
) -> ping32dlp_result {
    guard(|| {
        if flags != 0 {
            return Err(Fail::invalid("flags are reserved and must be 0"));
        }
        out_ok(report_out, "report_out")?;
        let ctx = opt_arg(ctx).map(|c| &c.ctx);
        with_scanner(scanner, |st| {
            // The old report is gone from here on. Passwords are for this scan only: taken out
            // before it runs, so that they are gone however it ends.
            st.report = None;
            let opts = ExtractOptions {
                passwords: std::mem::take(&mut st.options.passwords),
                ..st.options.clone()
            };
            let mut report = run(&mut st.scanner, &opts, st.encoding.as_deref());
            drop(opts);
            report.retain_min_confidence(st.min_confidence);
            let attachments = report
                .attachments
                .iter()
                .map(|a| ping32dlp_attachment {
                    origin: ctx.and_then(|c| c.origin_of(a)).map(str::to_string),
                    a: a.clone(),
                })
                .collect();
            let r = st.report.insert(ping32dlp_report {
                report,
                attachments,
                owned: false,
            });
            out(report_out, "report_out", r as *const ping32dlp_report)
        })
    })
}

/// Scans a raw RFC 5322 message (`len` bytes, LF or CRLF): headers, bodies, attachments,
/// nested messages and archives. `context` may be NULL (it gives attachment origins). `flags`
/// is reserved: pass 0. `*report_out` is valid until the scanner's next scan or free.
/// Ownership: `*report_out` is borrowed from the scanner (valid until its next scan or free; `ping32dlp_report_clone` to keep it), written only on success. The report keeps neither `data` nor `context`: it holds copies of what it shows.
#[no_mangle]
pub extern "C" fn ping32dlp_scanner_scan_message(
    scanner: *mut ping32dlp_scanner,
    data: *const u8,
    len: usize,
    context: *const ping32dlp_context,
    flags: u32,
    report_out: *mut *const ping32dlp_report,
) -> ping32dlp_result {
    let data = match buf_arg(data, len, "data") {
        Ok(d) => d,
        Err(Fail(c, m)) => {
            crate::set_last_error(&m);
            return c;
        }
    };
    scan_into(scanner, context, flags, report_out, |s, o, _| {
        s.inspect_message(data, o)
    })
}

/// A message written in pieces, for messages too large to hold as one buffer: the first MiB
/// stays in memory, the rest goes to an unlinked temporary file (in `$TMPDIR`) that the scan
/// reads through a read-only map. At most `max_bytes` are stored; a longer message is counted
/// and reported unscannable (limit exceeded) when scanned, never judged on a part of it.
///
/// Made by `ping32dlp_message_stream_new`; written by `ping32dlp_message_stream_write`; scanned
/// (any number of times) by `ping32dlp_scanner_scan_message_stream`, after which no more can be
/// written; released by `ping32dlp_message_stream_free` (which removes the temporary file). One
/// thread at a time.
pub struct ping32dlp_message_stream {
    state: StreamState,
}

enum StreamState {
    Writing(MessageSpool),
    Done(SpooledMessage),
    Failed(String),
}

/// A new, empty message stream storing at most `max_bytes` (0: the default raw-message limit,
/// 64 MiB, plus one byte, so that a longer message is reported over the limit).
/// Ownership: `*stream_out` is the caller's (`ping32dlp_message_stream_free`), written only on
/// success.
#[no_mangle]
pub extern "C" fn ping32dlp_message_stream_new(
    max_bytes: u64,
    stream_out: *mut *mut ping32dlp_message_stream,
) -> ping32dlp_result {
    guard(|| {
        crate::out_handle(
            stream_out,
            "stream_out",
            ping32dlp_message_stream {
                state: StreamState::Writing(MessageSpool::new(max_bytes)),
            },
        )
    })
}

/// Appends `len` bytes to the message. `PING32DLP_ERR_IO` when the temporary file cannot be
/// written (the stream then fails every later call with the same error);
/// `PING32DLP_ERR_INVALID_ARGUMENT` once the stream was scanned.
/// Ownership: changes the stream; the bytes are copied.
#[no_mangle]
pub extern "C" fn ping32dlp_message_stream_write(
    stream: *mut ping32dlp_message_stream,
    data: *const u8,
    len: usize,
) -> ping32dlp_result {
    guard(|| {
        let data = buf_arg(data, len, "data")?;
        if stream.is_null() {
            return Err(Fail::null("stream"));
        }
        // SAFETY: not NULL; a live stream used by one thread (the ABI contract).
        let st = unsafe { &mut *stream };
        match &mut st.state {
            StreamState::Writing(spool) => {
                if let Err(e) = spool.write_all(data) {
                    let msg = format!("message stream: cannot spool to a temporary file: {e}");
                    st.state = StreamState::Failed(msg.clone());
                    return Err(Fail(PING32DLP_ERR_IO, msg));
                }
                Ok(())
            }
            StreamState::Done(_) => Err(Fail::invalid(
                "the message stream was scanned: no more can be written",
            )),
            StreamState::Failed(msg) => Err(Fail(PING32DLP_ERR_IO, msg.clone())),
        }
    })
}

/// Bytes written to the stream so far (stored or not; 0 for NULL).
/// Ownership: reads the stream; nothing is kept.
#[no_mangle]
pub extern "C" fn ping32dlp_message_stream_len(stream: *const ping32dlp_message_stream) -> u64 {
    guard_value(0, || {
        Some(match &opt_arg(stream)?.state {
            StreamState::Writing(s) => s.len(),
            StreamState::Done(m) => m.len(),
            StreamState::Failed(_) => 0,
        })
    })
}

/// Releases a stream and its temporary file. NULL is a no-op.
/// Ownership: takes the handle back; it must not be used afterwards.
#[no_mangle]
pub extern "C" fn ping32dlp_message_stream_free(stream: *mut ping32dlp_message_stream) {
    free_handle(stream);
}

/// Scans the message written to `stream` as `ping32dlp_scanner_scan_message` scans a buffer
/// (the first scan ends the writing). `PING32DLP_ERR_IO` when the stream failed to spool.
/// Ownership: as `ping32dlp_scanner_scan_message`; the report keeps nothing of the stream,
/// which stays the caller's.
#[no_mangle]
pub extern "C" fn ping32dlp_scanner_scan_message_stream(
    scanner: *mut ping32dlp_scanner,
    stream: *mut ping32dlp_message_stream,
    context: *const ping32dlp_context,
    flags: u32,
    report_out: *mut *const ping32dlp_report,
) -> ping32dlp_result {
    let finished = (|| {
        if stream.is_null() {
            return Err(Fail::null("stream"));
        }
        // SAFETY: not NULL; a live stream used by one thread (the ABI contract).
        let st = unsafe { &mut *stream };
        let state = std::mem::replace(&mut st.state, StreamState::Failed(String::new()));
        st.state = match state {
            StreamState::Writing(spool) => match spool.finish() {
                Ok(m) => StreamState::Done(m),
                Err(e) => StreamState::Failed(format!(
                    "message stream: cannot map its temporary file: {e}"
                )),
            },
            other => other,
        };
        match &st.state {
            StreamState::Done(m) => Ok(m),
            StreamState::Failed(msg) => Err(Fail(PING32DLP_ERR_IO, msg.clone())),
            StreamState::Writing(_) => unreachable!("finished above"),
        }
    })();
    let message = match finished {
        Ok(m) => m,
        Err(Fail(c, m)) => {
            crate::set_last_error(&m);
            return c;
        }
    };
    scan_into(scanner, context, flags, report_out, |s, o, _| {
        s.inspect_spooled(message, o)
    })
}

/// Scans one file (a document, archive, `.eml` or text file) called `name` (NUL-terminated;
/// its extension is checked against the content).
/// Ownership: as `ping32dlp_scanner_scan_message`.
#[no_mangle]
pub extern "C" fn ping32dlp_scanner_scan_file(
    scanner: *mut ping32dlp_scanner,
    name: *const c_char,
    data: *const u8,
    len: usize,
    context: *const ping32dlp_context,
    flags: u32,
    report_out: *mut *const ping32dlp_report,
) -> ping32dlp_result {
    let args = str_arg(name, "name").and_then(|n| Ok((n, buf_arg(data, len, "data")?)));
    let (name, data) = match args {
        Ok(a) => a,
        Err(Fail(c, m)) => {
            crate::set_last_error(&m);
            return c;
        }
    };
    scan_into(scanner, context, flags, report_out, |s, o, enc| {
        let o = ExtractOptions {
            text_encoding: enc.and_then(dlp::text::encoding_for_label),
            ..o.clone()
        };
        s.inspect_file(&name, data, &o)
    })
}

/// Scans text (`len` bytes; UTF-8, Shift_JIS, EUC-JP, ISO-2022-JP or UTF-16 with a BOM are
/// recognised). Findings have location `text` and byte offsets in the decoded UTF-8 text.
/// Ownership: as `ping32dlp_scanner_scan_message`.
#[no_mangle]
pub extern "C" fn ping32dlp_scanner_scan_text(
    scanner: *mut ping32dlp_scanner,
    data: *const u8,
    len: usize,
    context: *const ping32dlp_context,
    flags: u32,
    report_out: *mut *const ping32dlp_report,
) -> ping32dlp_result {
    let data = match buf_arg(data, len, "data") {
        Ok(d) => d,
        Err(Fail(c, m)) => {
            crate::set_last_error(&m);
            return c;
        }
    };
    scan_into(scanner, context, flags, report_out, |s, _, enc| {
        let text = match enc.and_then(dlp::text::encoding_for_label) {
            Some(enc) => dlp::text::decode_with(data, enc).text.into_owned(),
            None => dlp::text::decode_text(data).text.into_owned(),
        };
        let mut r = s.detect_extraction(Extraction {
            segments: vec![Segment {
                location: "text".into(),
                text,
                ..Segment::default()
            }],
            ..Extraction::default()
        });
        r.size = data.len() as u64;
        r
    })
}

fn report<'a>(r: *const ping32dlp_report) -> Option<&'a ping32dlp_report> {
    opt_arg(r)
}

/// True when the report is of a message (it has headers); false for a file or text.
/// Ownership: reads the report; nothing is kept.
#[no_mangle]
pub extern "C" fn ping32dlp_report_is_message(report_: *const ping32dlp_report) -> bool {
    guard_value(false, || Some(report(report_)?.report.message.is_some()))
}

/// Size of what was scanned, in bytes.
/// Ownership: reads the report; nothing is kept.
#[no_mangle]
pub extern "C" fn ping32dlp_report_size(report_: *const ping32dlp_report) -> u64 {
    guard_value(0, || Some(report(report_)?.report.size))
}

fn header_values(r: &Report, which: u32) -> Vec<&str> {
    let Some(m) = r.message.as_ref() else {
        return Vec::new();
    };
    match which {
        PING32DLP_HEADER_SUBJECT => m.subject.as_deref().into_iter().collect(),
        PING32DLP_HEADER_FROM => m.from.iter().map(String::as_str).collect(),
        PING32DLP_HEADER_TO => m.to.iter().map(String::as_str).collect(),
        PING32DLP_HEADER_CC => m.cc.iter().map(String::as_str).collect(),
        PING32DLP_HEADER_BCC => m.bcc.iter().map(String::as_str).collect(),
        PING32DLP_HEADER_REPLY_TO => m.reply_to.iter().map(String::as_str).collect(),
        PING32DLP_HEADER_DATE => m.date.as_deref().into_iter().collect(),
        PING32DLP_HEADER_MESSAGE_ID => m.message_id.as_deref().into_iter().collect(),
        _ => Vec::new(),
    }
}

/// Number of values of a message header (`PING32DLP_HEADER_*`): addresses of To, one Subject.
/// Ownership: reads the report; nothing is kept.
#[no_mangle]
pub extern "C" fn ping32dlp_report_header_count(
    report_: *const ping32dlp_report,
    header: u32,
) -> usize {
    guard_value(0, || {
        Some(header_values(&report(report_)?.report, header).len())
    })
}

/// Value `index` of a message header, decoded (RFC 2047, Japanese charsets). Valid as long as
/// the report.
/// Ownership: borrowed from the report (a scan's: until its scanner's next scan or free; a clone's: until `ping32dlp_report_free`).
#[no_mangle]
pub extern "C" fn ping32dlp_report_header(
    report_: *const ping32dlp_report,
    header: u32,
    index: usize,
) -> ping32dlp_str {
    guard_value(ping32dlp_str::empty(), || {
        let r = report(report_)?;
        Some(ping32dlp_str::new(
            header_values(&r.report, header).get(index)?,
        ))
    })
}

/// Number of attachments and archive members (nested ones included).
/// Ownership: reads the report; nothing is kept.
#[no_mangle]
pub extern "C" fn ping32dlp_report_attachment_count(report_: *const ping32dlp_report) -> usize {
    guard_value(0, || Some(report(report_)?.attachments.len()))
}

/// Attachment `index` (document order), or NULL.
/// Ownership: borrowed from the report (a scan's: until its scanner's next scan or free; a clone's: until `ping32dlp_report_free`); never freed.
#[no_mangle]
pub extern "C" fn ping32dlp_report_attachment(
    report_: *const ping32dlp_report,
    index: usize,
) -> *const ping32dlp_attachment {
    guard_value(std::ptr::null(), || {
        Some(report(report_)?.attachments.get(index)? as *const _)
    })
}

fn att<'a>(a: *const ping32dlp_attachment) -> Option<&'a ping32dlp_attachment> {
    opt_arg(a)
}

/// The attachment's file name as sent (decoded; CP932 names in zips included).
/// Ownership: borrowed from the report it came from.
#[no_mangle]
pub extern "C" fn ping32dlp_attachment_name(a: *const ping32dlp_attachment) -> ping32dlp_str {
    guard_value(ping32dlp_str::empty(), || {
        Some(ping32dlp_str::new(&att(a)?.a.name))
    })
}

/// Where it is: `見積書.zip/inner/data.xlsx`.
/// Ownership: borrowed from the report it came from.
#[no_mangle]
pub extern "C" fn ping32dlp_attachment_location(a: *const ping32dlp_attachment) -> ping32dlp_str {
    guard_value(ping32dlp_str::empty(), || {
        Some(ping32dlp_str::new(&att(a)?.a.location))
    })
}

/// The declared MIME type (empty when none).
/// Ownership: borrowed from the report it came from.
#[no_mangle]
pub extern "C" fn ping32dlp_attachment_declared_type(
    a: *const ping32dlp_attachment,
) -> ping32dlp_str {
    guard_value(ping32dlp_str::empty(), || {
        Some(ping32dlp_str::opt(att(a)?.a.declared_type.as_deref()))
    })
}

/// The true type from the content: `docx`, `xlsx`, `pdf`, `zip`, `encrypted_office`, `exe`, ...
/// Ownership: borrowed from the report it came from.
#[no_mangle]
pub extern "C" fn ping32dlp_attachment_true_type(a: *const ping32dlp_attachment) -> ping32dlp_str {
    guard_value(ping32dlp_str::empty(), || {
        Some(ping32dlp_str::new(att(a)?.a.kind.short()))
    })
}

/// SHA-256 of the decoded bytes, 64 lower-case hex digits.
/// Ownership: borrowed from the report it came from.
#[no_mangle]
pub extern "C" fn ping32dlp_attachment_sha256(a: *const ping32dlp_attachment) -> ping32dlp_str {
    guard_value(ping32dlp_str::empty(), || {
        Some(ping32dlp_str::new(&att(a)?.a.sha256))
    })
}

/// The origin given in the scan's context for this attachment (empty when none).
/// Ownership: borrowed from the report it came from.
#[no_mangle]
pub extern "C" fn ping32dlp_attachment_origin(a: *const ping32dlp_attachment) -> ping32dlp_str {
    guard_value(ping32dlp_str::empty(), || {
        Some(ping32dlp_str::opt(att(a)?.origin.as_deref()))
    })
}

/// A document property that identifies the file: `title`, `author` or `last_modified_by`
/// (NUL-terminated key; empty when absent).
/// Ownership: borrowed from the report it came from.
#[no_mangle]
pub extern "C" fn ping32dlp_attachment_property(
    a: *const ping32dlp_attachment,
    key: *const c_char,
) -> ping32dlp_str {
    guard_value(ping32dlp_str::empty(), || {
        let a = att(a)?;
        let key = str_arg(key, "key").ok()?;
        let v = a.a.properties.iter().find(|(k, _)| *k == key)?;
        Some(ping32dlp_str::new(&v.1))
    })
}

/// Size in bytes (decoded).
/// Ownership: reads the attachment; nothing is kept.
#[no_mangle]
pub extern "C" fn ping32dlp_attachment_size(a: *const ping32dlp_attachment) -> u64 {
    guard_value(0, || Some(att(a)?.a.size))
}

/// Nesting depth: 0 for an attachment of the message (or the scanned file), 1 inside it, ...
/// Ownership: reads the attachment; nothing is kept.
#[no_mangle]
pub extern "C" fn ping32dlp_attachment_depth(a: *const ping32dlp_attachment) -> u32 {
    guard_value(0, || Some(att(a)?.a.depth))
}

/// True when the name's extension says another type than the content (an .xlsx sent as .jpg).
/// Ownership: reads the attachment; nothing is kept.
#[no_mangle]
pub extern "C" fn ping32dlp_attachment_extension_mismatch(a: *const ping32dlp_attachment) -> bool {
    guard_value(true, || Some(att(a)?.a.extension_mismatch))
}

/// Number of findings.
/// Ownership: reads the report; nothing is kept.
#[no_mangle]
pub extern "C" fn ping32dlp_report_finding_count(report_: *const ping32dlp_report) -> usize {
    guard_value(0, || Some(report(report_)?.report.findings.len()))
}

/// Finding `index` (document order), or NULL.
/// Ownership: borrowed from the report (a scan's: until its scanner's next scan or free; a clone's: until `ping32dlp_report_free`); never freed.
#[no_mangle]
pub extern "C" fn ping32dlp_report_finding(
    report_: *const ping32dlp_report,
    index: usize,
) -> *const ping32dlp_finding {
    guard_value(std::ptr::null(), || {
        let f: &ReportFinding = report(report_)?.report.findings.get(index)?;
        Some((f as *const ReportFinding).cast())
    })
}

fn finding<'a>(f: *const ping32dlp_finding) -> Option<&'a ReportFinding> {
    opt_arg(f.cast::<ReportFinding>())
}

/// The detector's id: `jp_my_number`, `credit_card`, a user detector's id.
/// Ownership: borrowed from the report it came from.
#[no_mangle]
pub extern "C" fn ping32dlp_finding_detector(f: *const ping32dlp_finding) -> ping32dlp_str {
    guard_value(ping32dlp_str::empty(), || {
        Some(ping32dlp_str::new(&finding(f)?.detector))
    })
}

/// How sure the finding is; HIGH for a NULL finding (the safe side: treat it as sensitive).
/// Ownership: reads the finding; nothing is kept.
#[no_mangle]
pub extern "C" fn ping32dlp_finding_confidence(
    f: *const ping32dlp_finding,
) -> ping32dlp_confidence {
    use dlp::Confidence as C;
    use ping32dlp_confidence::*;
    guard_value(PING32DLP_CONFIDENCE_HIGH, || {
        Some(match finding(f)?.confidence {
            C::Low => PING32DLP_CONFIDENCE_LOW,
            C::Medium => PING32DLP_CONFIDENCE_MEDIUM,
            C::High => PING32DLP_CONFIDENCE_HIGH,
        })
    })
}

/// Where: `body`, `subject`, `text`, an attachment's location.
/// Ownership: borrowed from the report it came from.
#[no_mangle]
pub extern "C" fn ping32dlp_finding_location(f: *const ping32dlp_finding) -> ping32dlp_str {
    guard_value(ping32dlp_str::empty(), || {
        Some(ping32dlp_str::new(&finding(f)?.location))
    })
}

/// The masked value (`**** **** ９０１８`): what to show and log.
/// Ownership: borrowed from the report it came from.
#[no_mangle]
pub extern "C" fn ping32dlp_finding_value_masked(f: *const ping32dlp_finding) -> ping32dlp_str {
    guard_value(ping32dlp_str::empty(), || {
        Some(ping32dlp_str::new(&finding(f)?.value_masked))
    })
}

/// The raw value as it appeared. Sensitive: never log or display it.
/// Ownership: borrowed from the report it came from.
#[no_mangle]
pub extern "C" fn ping32dlp_finding_value(f: *const ping32dlp_finding) -> ping32dlp_str {
    guard_value(ping32dlp_str::empty(), || {
        Some(ping32dlp_str::new(&finding(f)?.value))
    })
}

/// Start byte offset `[start, end)` in the location's extracted UTF-8 text.
/// Ownership: reads the finding; nothing is kept.
#[no_mangle]
pub extern "C" fn ping32dlp_finding_start(f: *const ping32dlp_finding) -> usize {
    guard_value(0, || Some(finding(f)?.start))
}

/// End byte offset (exclusive).
/// Ownership: reads the finding; nothing is kept.
#[no_mangle]
pub extern "C" fn ping32dlp_finding_end(f: *const ping32dlp_finding) -> usize {
    guard_value(0, || Some(finding(f)?.end))
}

/// PDF page (1-based), 0 when not in a PDF.
/// Ownership: reads the finding; nothing is kept.
#[no_mangle]
pub extern "C" fn ping32dlp_finding_page(f: *const ping32dlp_finding) -> u32 {
    guard_value(0, || Some(finding(f)?.page.unwrap_or(0)))
}

/// Spreadsheet sheet name (empty when not in a sheet).
/// Ownership: borrowed from the report it came from.
#[no_mangle]
pub extern "C" fn ping32dlp_finding_sheet(f: *const ping32dlp_finding) -> ping32dlp_str {
    guard_value(ping32dlp_str::empty(), || {
        Some(ping32dlp_str::opt(finding(f)?.sheet.as_deref()))
    })
}

/// Spreadsheet cell (`B2`; empty when not in a sheet).
/// Ownership: borrowed from the report it came from.
#[no_mangle]
pub extern "C" fn ping32dlp_finding_cell(f: *const ping32dlp_finding) -> ping32dlp_str {
    guard_value(ping32dlp_str::empty(), || {
        Some(ping32dlp_str::opt(finding(f)?.cell.as_deref()))
    })
}

/// Number of items that could not be inspected.
/// Ownership: reads the report; nothing is kept.
#[no_mangle]
pub extern "C" fn ping32dlp_report_unscannable_count(report_: *const ping32dlp_report) -> usize {
    guard_value(0, || Some(report(report_)?.report.unscannable.len()))
}

/// Unscannable item `index`, or NULL.
/// Ownership: borrowed from the report (a scan's: until its scanner's next scan or free; a clone's: until `ping32dlp_report_free`); never freed.
#[no_mangle]
pub extern "C" fn ping32dlp_report_unscannable(
    report_: *const ping32dlp_report,
    index: usize,
) -> *const ping32dlp_unscannable {
    guard_value(std::ptr::null(), || {
        let u: &Unscannable = report(report_)?.report.unscannable.get(index)?;
        Some((u as *const Unscannable).cast())
    })
}

fn unscannable<'a>(u: *const ping32dlp_unscannable) -> Option<&'a Unscannable> {
    opt_arg(u.cast::<Unscannable>())
}

/// Where the unreadable item is.
/// Ownership: borrowed from the report it came from.
#[no_mangle]
pub extern "C" fn ping32dlp_unscannable_location(u: *const ping32dlp_unscannable) -> ping32dlp_str {
    guard_value(ping32dlp_str::empty(), || {
        Some(ping32dlp_str::new(&unscannable(u)?.location))
    })
}

/// Why, as a stable word: `encrypted`, `limit_exceeded`, `unsupported_format`, `corrupt`, ...
/// Ownership: borrowed from the report it came from.
#[no_mangle]
pub extern "C" fn ping32dlp_unscannable_reason(u: *const ping32dlp_unscannable) -> ping32dlp_str {
    guard_value(ping32dlp_str::empty(), || {
        Some(ping32dlp_str::new(unscannable(u)?.reason.as_str()))
    })
}

/// Details: the limit, the encryption, the parser's message.
/// Ownership: borrowed from the report it came from.
#[no_mangle]
pub extern "C" fn ping32dlp_unscannable_detail(u: *const ping32dlp_unscannable) -> ping32dlp_str {
    guard_value(ping32dlp_str::empty(), || {
        Some(ping32dlp_str::new(&unscannable(u)?.detail))
    })
}

/// The whole report as JSON (the CLI's `scan --json` document). Values are masked unless
/// `flags` has `PING32DLP_JSON_SHOW_VALUES`. `*json_out` is the caller's: release it with
/// `ping32dlp_string_free`.
/// Ownership: `*json_out_` is the caller's (`ping32dlp_string_free`), written only on success. Arguments are copied; nothing of them is kept.
#[no_mangle]
pub extern "C" fn ping32dlp_report_to_json(
    report_: *const ping32dlp_report,
    flags: u32,
    json_out_: *mut *mut c_char,
) -> ping32dlp_result {
    guard(|| {
        let r = arg(report_, "report")?;
        if flags & !PING32DLP_JSON_SHOW_VALUES != 0 {
            return Err(Fail::invalid(format!("unknown flags {flags:#x}")));
        }
        json_out(
            &r.report.to_json(flags & PING32DLP_JSON_SHOW_VALUES != 0),
            json_out_,
        )
    })
}

/// A copy of a report that the caller owns: it stays valid after the scanner's next scan and
/// after the scanner is freed, and may be kept, evaluated, recorded and read from any thread.
/// Ownership: `*report_out` is the caller's; release it with `ping32dlp_report_free`.
#[no_mangle]
pub extern "C" fn ping32dlp_report_clone(
    report_: *const ping32dlp_report,
    report_out: *mut *mut ping32dlp_report,
) -> ping32dlp_result {
    guard(|| {
        let r = arg(report_, "report")?;
        out_handle(
            report_out,
            "report_out",
            ping32dlp_report {
                report: r.report.clone(),
                attachments: r
                    .attachments
                    .iter()
                    .map(|a| ping32dlp_attachment {
                        a: a.a.clone(),
                        origin: a.origin.clone(),
                    })
                    .collect(),
                owned: true,
            },
        )
    })
}

/// Releases a report made by `ping32dlp_report_clone`. NULL is a no-op; a scan's own report
/// (owned by its scanner) is left alone and the thread's last error says so.
/// Ownership: takes back a cloned report.
#[no_mangle]
pub extern "C" fn ping32dlp_report_free(report_: *mut ping32dlp_report) {
    if let Some(r) = opt_arg(report_ as *const ping32dlp_report) {
        if !r.owned {
            crate::set_last_error(
                "ping32dlp_report_free: this report belongs to its scanner (only clones are freed)",
            );
            return;
        }
    }
    free_handle(report_);
}

/// Number of detectors with findings in the report (its per-detector counts, in engine order).
/// Ownership: reads the report.
#[no_mangle]
pub extern "C" fn ping32dlp_report_detector_count(report_: *const ping32dlp_report) -> usize {
    guard_value(0, || Some(report(report_)?.report.counts.len()))
}

/// The detector of count `index`: its id.
/// Ownership: borrowed from the report.
#[no_mangle]
pub extern "C" fn ping32dlp_report_detector_id(
    report_: *const ping32dlp_report,
    index: usize,
) -> ping32dlp_str {
    guard_value(ping32dlp_str::empty(), || {
        Some(ping32dlp_str::new(
            &report(report_)?.report.counts.get(index)?.detector,
        ))
    })
}

/// Findings of the detector of count `index` over the whole message or file.
/// Ownership: reads the report.
#[no_mangle]
pub extern "C" fn ping32dlp_report_detector_findings(
    report_: *const ping32dlp_report,
    index: usize,
) -> usize {
    guard_value(0, || {
        Some(report(report_)?.report.counts.get(index)?.findings)
    })
}

/// Distinct values (after normalisation: full-width digits, separators) of the detector of
/// count `index`: what `min_unique` in a policy counts.
/// Ownership: reads the report.
#[no_mangle]
pub extern "C" fn ping32dlp_report_detector_unique(
    report_: *const ping32dlp_report,
    index: usize,
) -> usize {
    guard_value(0, || {
        Some(report(report_)?.report.counts.get(index)?.unique)
    })
}

/// Number of pieces of evidence of a finding (context words, check digits, structure).
/// Ownership: reads the finding.
#[no_mangle]
pub extern "C" fn ping32dlp_finding_evidence_count(f: *const ping32dlp_finding) -> usize {
    guard_value(0, || Some(finding(f)?.evidence.len()))
}

/// The kind of evidence `index`: `context`, `negative_context`, `checksum`, `structure`,
/// `test_value`.
/// Ownership: a static string in a `ping32dlp_str`.
#[no_mangle]
pub extern "C" fn ping32dlp_finding_evidence_kind(
    f: *const ping32dlp_finding,
    index: usize,
) -> ping32dlp_str {
    guard_value(ping32dlp_str::empty(), || {
        Some(ping32dlp_str::new(
            finding(f)?.evidence.get(index)?.kind.as_str(),
        ))
    })
}

/// What evidence `index` is: the context word (`カード番号`), the check (`luhn`), the signal.
/// Ownership: borrowed from the report.
#[no_mangle]
pub extern "C" fn ping32dlp_finding_evidence_detail(
    f: *const ping32dlp_finding,
    index: usize,
) -> ping32dlp_str {
    guard_value(ping32dlp_str::empty(), || {
        Some(ping32dlp_str::new(&finding(f)?.evidence.get(index)?.detail))
    })
}

/// Characters between a context word and the value for evidence `index`; -1 when the evidence
/// has no distance (a checksum) or for a NULL finding or index out of range.
/// Ownership: reads the finding.
#[no_mangle]
pub extern "C" fn ping32dlp_finding_evidence_distance(
    f: *const ping32dlp_finding,
    index: usize,
) -> i64 {
    guard_value(-1, || {
        let d = finding(f)?.evidence.get(index)?.distance?;
        Some(i64::try_from(d).unwrap_or(i64::MAX))
    })
}

/// The name of a confidence (`"low"`, `"medium"`, `"high"`); `"unknown"` for another value.
/// Ownership: a static string; never freed.
#[no_mangle]
pub extern "C" fn ping32dlp_confidence_str(c: u32) -> *const c_char {
    let s: &'static str = match c {
        1 => "low\0",
        2 => "medium\0",
        3 => "high\0",
        _ => "unknown\0",
    };
    s.as_ptr().cast()
}
