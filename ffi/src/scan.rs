//! Contexts, scanners and their reports.

use std::cell::UnsafeCell;
use std::ffi::c_char;
use std::sync::atomic::{AtomicBool, Ordering};

use dlp::extract::{Attachment, Extraction, Segment, Unscannable};
use dlp::policy::Context;
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
            other => return Err(Fail::invalid(format!("unknown context field {other}"))),
        }
        Ok(())
    })
}

/// Says where an attachment came from (`C:\Users\ichiro\Documents\見積書.xlsx`, or an
/// application): `attachment` is its file name or location in the report.
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

/// Sets the message's time (Unix seconds); without it, now.
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
#[no_mangle]
pub extern "C" fn ping32dlp_context_free(context: *mut ping32dlp_context) {
    free_handle(context);
}

/// What one scan found: message headers, attachments, findings, unscannable items.
///
/// Owned by the scanner that made it: valid until that scanner's next scan or its free. Never
/// freed by the caller. May be read from several threads while the scanner is idle.
pub struct ping32dlp_report {
    pub(crate) report: Report,
    attachments: Vec<ping32dlp_attachment>,
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
                }),
            },
        )
    })
}

/// Releases a scanner and its report. NULL is a no-op.
#[no_mangle]
pub extern "C" fn ping32dlp_scanner_free(scanner: *mut ping32dlp_scanner) {
    free_handle(scanner);
}

/// Adds a password to try on encrypted zip members (a PPAP password known to the caller).
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
    run: impl FnOnce(&mut Scanner, &ExtractOptions) -> Report,
) -> ping32dlp_result {
    guard(|| {
        if flags != 0 {
            return Err(Fail::invalid("flags are reserved and must be 0"));
        }
        out_ok(report_out, "report_out")?;
        let ctx = opt_arg(ctx).map(|c| &c.ctx);
        with_scanner(scanner, |st| {
            st.report = None; // the old report is gone from here on
            let report = run(&mut st.scanner, &st.options);
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
            });
            out(report_out, "report_out", r as *const ping32dlp_report)
        })
    })
}

/// Scans a raw RFC 5322 message (`len` bytes, LF or CRLF): headers, bodies, attachments,
/// nested messages and archives. `context` may be NULL (it gives attachment origins). `flags`
/// is reserved: pass 0. `*report_out` is valid until the scanner's next scan or free.
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
    scan_into(scanner, context, flags, report_out, |s, o| {
        s.inspect_message(data, o)
    })
}

/// Scans one file (a document, archive, `.eml` or text file) called `name` (NUL-terminated;
/// its extension is checked against the content).
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
    scan_into(scanner, context, flags, report_out, |s, o| {
        s.inspect_file(&name, data, o)
    })
}

/// Scans text (`len` bytes; UTF-8, Shift_JIS, EUC-JP, ISO-2022-JP or UTF-16 with a BOM are
/// recognised). Findings have location `text` and byte offsets in the decoded UTF-8 text.
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
    scan_into(scanner, context, flags, report_out, |s, _| {
        let text = dlp::text::decode_text(data).text.into_owned();
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
#[no_mangle]
pub extern "C" fn ping32dlp_report_is_message(report_: *const ping32dlp_report) -> bool {
    guard_value(false, || Some(report(report_)?.report.message.is_some()))
}

/// Size of what was scanned, in bytes.
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
#[no_mangle]
pub extern "C" fn ping32dlp_report_attachment_count(report_: *const ping32dlp_report) -> usize {
    guard_value(0, || Some(report(report_)?.attachments.len()))
}

/// Attachment `index` (document order), or NULL.
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
#[no_mangle]
pub extern "C" fn ping32dlp_attachment_name(a: *const ping32dlp_attachment) -> ping32dlp_str {
    guard_value(ping32dlp_str::empty(), || {
        Some(ping32dlp_str::new(&att(a)?.a.name))
    })
}

/// Where it is: `見積書.zip/inner/data.xlsx`.
#[no_mangle]
pub extern "C" fn ping32dlp_attachment_location(a: *const ping32dlp_attachment) -> ping32dlp_str {
    guard_value(ping32dlp_str::empty(), || {
        Some(ping32dlp_str::new(&att(a)?.a.location))
    })
}

/// The declared MIME type (empty when none).
#[no_mangle]
pub extern "C" fn ping32dlp_attachment_declared_type(
    a: *const ping32dlp_attachment,
) -> ping32dlp_str {
    guard_value(ping32dlp_str::empty(), || {
        Some(ping32dlp_str::opt(att(a)?.a.declared_type.as_deref()))
    })
}

/// The true type from the content: `docx`, `xlsx`, `pdf`, `zip`, `encrypted_office`, `exe`, ...
#[no_mangle]
pub extern "C" fn ping32dlp_attachment_true_type(a: *const ping32dlp_attachment) -> ping32dlp_str {
    guard_value(ping32dlp_str::empty(), || {
        Some(ping32dlp_str::new(att(a)?.a.kind.short()))
    })
}

/// SHA-256 of the decoded bytes, 64 lower-case hex digits.
#[no_mangle]
pub extern "C" fn ping32dlp_attachment_sha256(a: *const ping32dlp_attachment) -> ping32dlp_str {
    guard_value(ping32dlp_str::empty(), || {
        Some(ping32dlp_str::new(&att(a)?.a.sha256))
    })
}

/// The origin given in the scan's context for this attachment (empty when none).
#[no_mangle]
pub extern "C" fn ping32dlp_attachment_origin(a: *const ping32dlp_attachment) -> ping32dlp_str {
    guard_value(ping32dlp_str::empty(), || {
        Some(ping32dlp_str::opt(att(a)?.origin.as_deref()))
    })
}

/// A document property that identifies the file: `title`, `author` or `last_modified_by`
/// (NUL-terminated key; empty when absent).
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
#[no_mangle]
pub extern "C" fn ping32dlp_attachment_size(a: *const ping32dlp_attachment) -> u64 {
    guard_value(0, || Some(att(a)?.a.size))
}

/// Nesting depth: 0 for an attachment of the message (or the scanned file), 1 inside it, ...
#[no_mangle]
pub extern "C" fn ping32dlp_attachment_depth(a: *const ping32dlp_attachment) -> u32 {
    guard_value(0, || Some(att(a)?.a.depth))
}

/// True when the name's extension says another type than the content (an .xlsx sent as .jpg).
#[no_mangle]
pub extern "C" fn ping32dlp_attachment_extension_mismatch(a: *const ping32dlp_attachment) -> bool {
    guard_value(false, || Some(att(a)?.a.extension_mismatch))
}

/// Number of findings.
#[no_mangle]
pub extern "C" fn ping32dlp_report_finding_count(report_: *const ping32dlp_report) -> usize {
    guard_value(0, || Some(report(report_)?.report.findings.len()))
}

/// Finding `index` (document order), or NULL.
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
#[no_mangle]
pub extern "C" fn ping32dlp_finding_detector(f: *const ping32dlp_finding) -> ping32dlp_str {
    guard_value(ping32dlp_str::empty(), || {
        Some(ping32dlp_str::new(&finding(f)?.detector))
    })
}

/// How sure the finding is (LOW for a NULL finding).
#[no_mangle]
pub extern "C" fn ping32dlp_finding_confidence(
    f: *const ping32dlp_finding,
) -> ping32dlp_confidence {
    use dlp::Confidence as C;
    use ping32dlp_confidence::*;
    guard_value(PING32DLP_CONFIDENCE_LOW, || {
        Some(match finding(f)?.confidence {
            C::Low => PING32DLP_CONFIDENCE_LOW,
            C::Medium => PING32DLP_CONFIDENCE_MEDIUM,
            C::High => PING32DLP_CONFIDENCE_HIGH,
        })
    })
}

/// Where: `body`, `subject`, `text`, an attachment's location.
#[no_mangle]
pub extern "C" fn ping32dlp_finding_location(f: *const ping32dlp_finding) -> ping32dlp_str {
    guard_value(ping32dlp_str::empty(), || {
        Some(ping32dlp_str::new(&finding(f)?.location))
    })
}

/// The masked value (`**** **** ９０１８`): what to show and log.
#[no_mangle]
pub extern "C" fn ping32dlp_finding_value_masked(f: *const ping32dlp_finding) -> ping32dlp_str {
    guard_value(ping32dlp_str::empty(), || {
        Some(ping32dlp_str::new(&finding(f)?.value_masked))
    })
}

/// The raw value as it appeared. Sensitive: never log or display it.
#[no_mangle]
pub extern "C" fn ping32dlp_finding_value(f: *const ping32dlp_finding) -> ping32dlp_str {
    guard_value(ping32dlp_str::empty(), || {
        Some(ping32dlp_str::new(&finding(f)?.value))
    })
}

/// Start byte offset `[start, end)` in the location's extracted UTF-8 text.
#[no_mangle]
pub extern "C" fn ping32dlp_finding_start(f: *const ping32dlp_finding) -> usize {
    guard_value(0, || Some(finding(f)?.start))
}

/// End byte offset (exclusive).
#[no_mangle]
pub extern "C" fn ping32dlp_finding_end(f: *const ping32dlp_finding) -> usize {
    guard_value(0, || Some(finding(f)?.end))
}

/// PDF page (1-based), 0 when not in a PDF.
#[no_mangle]
pub extern "C" fn ping32dlp_finding_page(f: *const ping32dlp_finding) -> u32 {
    guard_value(0, || Some(finding(f)?.page.unwrap_or(0)))
}

/// Spreadsheet sheet name (empty when not in a sheet).
#[no_mangle]
pub extern "C" fn ping32dlp_finding_sheet(f: *const ping32dlp_finding) -> ping32dlp_str {
    guard_value(ping32dlp_str::empty(), || {
        Some(ping32dlp_str::opt(finding(f)?.sheet.as_deref()))
    })
}

/// Spreadsheet cell (`B2`; empty when not in a sheet).
#[no_mangle]
pub extern "C" fn ping32dlp_finding_cell(f: *const ping32dlp_finding) -> ping32dlp_str {
    guard_value(ping32dlp_str::empty(), || {
        Some(ping32dlp_str::opt(finding(f)?.cell.as_deref()))
    })
}

/// Number of items that could not be inspected.
#[no_mangle]
pub extern "C" fn ping32dlp_report_unscannable_count(report_: *const ping32dlp_report) -> usize {
    guard_value(0, || Some(report(report_)?.report.unscannable.len()))
}

/// Unscannable item `index`, or NULL.
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
#[no_mangle]
pub extern "C" fn ping32dlp_unscannable_location(u: *const ping32dlp_unscannable) -> ping32dlp_str {
    guard_value(ping32dlp_str::empty(), || {
        Some(ping32dlp_str::new(&unscannable(u)?.location))
    })
}

/// Why, as a stable word: `encrypted`, `limit_exceeded`, `unsupported_format`, `corrupt`, ...
#[no_mangle]
pub extern "C" fn ping32dlp_unscannable_reason(u: *const ping32dlp_unscannable) -> ping32dlp_str {
    guard_value(ping32dlp_str::empty(), || {
        Some(ping32dlp_str::new(unscannable(u)?.reason.as_str()))
    })
}

/// Details: the limit, the encryption, the parser's message.
#[no_mangle]
pub extern "C" fn ping32dlp_unscannable_detail(u: *const ping32dlp_unscannable) -> ping32dlp_str {
    guard_value(ping32dlp_str::empty(), || {
        Some(ping32dlp_str::new(&unscannable(u)?.detail))
    })
}

/// The whole report as JSON (the CLI's `scan --json` document). Values are masked unless
/// `flags` has `PING32DLP_JSON_SHOW_VALUES`. `*json_out` is the caller's: release it with
/// `ping32dlp_string_free`.
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
