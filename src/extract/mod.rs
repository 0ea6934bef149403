//! Extraction: from a raw message or a file to text segments, attachment metadata and
//! "unscannable" items.
//!
//! ```text
//! message bytes ─► mime (mail-parser tree, our charset and header-name fallbacks)
//!                   ├─ subject, bodies (text/plain, text/html → text)      ─► Segments
//!                   └─ attachments ─► filetype (magic bytes) ─► extractor by type
//!                        zip / 7z / gzip / bzip2 / xz / tar ─► members, recursively
//!                        docx xlsx pptx / odt ods odp ─► XML text (streamed)
//!                        xls (BIFF8) / doc / ppt ─► cell, piece-table and text-atom text
//!                        pdf ─► own text walker over lopdf objects (Form XObjects, CJK CMaps)
//!                        eml / msg / winmail.dat / rtf / html / csv / txt
//!                        rar, encrypted, images, corrupt, limits ─► Unscannable
//! ```
//!
//! Every limit is a field of [`Limits`] with the defaults of `DESIGN.md`; hitting one is an
//! [`Unscannable`] item with reason `limit_exceeded` and what was read before it is still
//! inspected. Nothing here panics on hostile input; the few third-party parsers that have been
//! seen to misbehave run behind size checks and, as a last resort, `catch_unwind`.

mod archive;
mod csvgrid;
pub(crate) use csvgrid::{csv_grid_both, plain_text_grid};
mod filetype;
mod html;
mod mime;
mod msg;
mod ooxml;
mod pdf;
mod ppt;
mod rtf;
mod tnef;
mod xls;
pub(crate) mod xml;

use std::time::{Duration, Instant};

use compact_str::CompactString;

pub use filetype::{sniff, FileKind};
pub use html::html_to_text;
pub use mime::password_candidates;

/// Limits on one inspection. Defaults follow `DESIGN.md` (Tika, ClamAV and Exchange anchors).
#[derive(Debug, Clone)]
pub struct Limits {
    /// Nested containers (message in zip in message ...): 10.
    pub container_depth: u32,
    /// MIME multipart nesting: 32.
    pub mime_depth: u32,
    /// MIME parts per message: 10,000.
    pub mime_parts: usize,
    /// Entries read from one archive: 10,000.
    pub archive_entries: usize,
    /// Objects (parts, entries, files) per message: 20,000.
    pub message_entries: usize,
    /// Decompressed bytes of one entry: 64 MiB.
    pub entry_bytes: u64,
    /// Decompressed bytes per message: 256 MiB.
    pub message_decompressed: u64,
    /// Compression ratio (decompressed : compressed) once past `ratio_grace` bytes: 100.
    pub compression_ratio: u64,
    /// Bytes an entry may inflate to before the ratio is enforced: 1 MiB.
    pub ratio_grace: u64,
    /// Text extracted from one object: 8 MiB.
    pub text_per_object: usize,
    /// Text extracted per message: 32 MiB.
    pub text_per_message: usize,
    /// PDF objects: 200,000.
    pub pdf_objects: usize,
    /// PDF pages: 2,000.
    pub pdf_pages: usize,
    /// Spreadsheet cells per workbook: 10,000,000.
    pub cells: usize,
    /// Raw message size: 64 MiB.
    pub raw_message: usize,
    /// Time per message: 15 s.
    pub time_budget: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            container_depth: 10,
            mime_depth: 32,
            mime_parts: 10_000,
            archive_entries: 10_000,
            message_entries: 20_000,
            entry_bytes: 64 << 20,
            message_decompressed: 256 << 20,
            compression_ratio: 100,
            ratio_grace: 1 << 20,
            text_per_object: 8 << 20,
            text_per_message: 32 << 20,
            pdf_objects: 200_000,
            pdf_pages: 2_000,
            cells: 10_000_000,
            raw_message: 64 << 20,
            time_budget: Duration::from_secs(15),
        }
    }
}

/// Options of one inspection.
#[derive(Debug, Clone, Default)]
pub struct ExtractOptions {
    /// Limits.
    pub limits: Limits,
    /// Passwords to try on encrypted archives and PDFs (PPAP: the password from a later mail).
    pub passwords: Vec<String>,
    /// Keep the decoded bytes of the message's own attachments ([`Extraction::kept`]), for the
    /// evidence store.
    pub keep_attachments: bool,
    /// The charset of a text, CSV, XML or HTML file given on its own (`scan --encoding`,
    /// `ping32dlp_scanner_set_encoding`): used instead of detection, so that a UTF-8 file that
    /// contains `ESC $ B` is not read as ISO-2022-JP. A byte-order mark still wins; mail parts,
    /// documents and archive members keep their own declarations and detection.
    pub text_encoding: Option<&'static encoding_rs::Encoding>,
}

/// Why something could not be (fully) inspected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// Encrypted or password-protected (`detail` says how: `zip_crypto`, `zip_aes`, `pdf`,
    /// `office`, `xls`, `odf`, `rar`, `7z_aes` (members), `7z_headers` (the whole archive)).
    Encrypted,
    /// A format we do not read (`rar`, an OLE object in a `.msg`, a 7z method, ...).
    UnsupportedFormat,
    /// Damaged or truncated data.
    Corrupt,
    /// A limit was hit (`detail` names it); what came before was inspected.
    LimitExceeded,
    /// Deliberately not inspected for content: images (metadata only), executables.
    NotInspected,
}

impl Reason {
    /// `encrypted`, `unsupported_format`, `corrupt`, `limit_exceeded`, `not_inspected`.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Encrypted => "encrypted",
            Reason::UnsupportedFormat => "unsupported_format",
            Reason::Corrupt => "corrupt",
            Reason::LimitExceeded => "limit_exceeded",
            Reason::NotInspected => "not_inspected",
        }
    }
}

/// Something that could not be inspected, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unscannable {
    /// Where: `body`, `見積書.zip/data.xlsx`, ...
    pub location: String,
    /// Why.
    pub reason: Reason,
    /// Details: the limit, the encryption, the parser's message.
    pub detail: String,
}

/// An attachment, archive member or inspected file.
#[derive(Debug, Clone, Default)]
pub struct Attachment {
    /// Where it is (its own path, e.g. `見積書.zip/inner/data.xlsx`).
    pub location: String,
    /// File name as sent (decoded).
    pub name: String,
    /// Declared MIME type (the message's Content-Type), if any.
    pub declared_type: Option<String>,
    /// True type from the content.
    pub kind: FileKind,
    /// Size in bytes (decoded).
    pub size: u64,
    /// SHA-256 of the bytes, lower-case hex.
    pub sha256: String,
    /// The name's extension says another type than the content.
    pub extension_mismatch: bool,
    /// Document properties that identify the file: `title`, `author`, `last_modified_by`.
    pub properties: Vec<(String, String)>,
    /// Nesting depth (0 = attached to the message or the file itself).
    pub depth: u32,
}

/// A piece of text to inspect.
#[derive(Debug, Clone, Default)]
pub struct Segment {
    /// Where the text comes from.
    pub location: String,
    /// The text (UTF-8).
    pub text: String,
    /// PDF page (1-based), if any.
    pub page: Option<u32>,
    /// Spreadsheet sheet name, if any.
    pub sheet: Option<String>,
    /// Spreadsheet cells by where they start in `text`, sorted (`cell_at` names them `B2`).
    pub cells: Vec<CellStart>,
    /// Alternatives of one `multipart/alternative` share a group: a value found in an earlier
    /// alternative is not reported again.
    pub alternative_group: Option<u32>,
    /// Added to offsets in `text` to give offsets in the object (a UTF-8 text file's BOM).
    pub byte_base: usize,
    /// The text lays out a table (a CSV file, a worksheet): its cells, for context from column
    /// headers and row labels (`Scanner::scan_grid`). Empty for running text.
    pub grid: Vec<crate::detect::GridCell>,
}

impl Segment {
    /// The name (`B2`) of the cell holding byte offset `at`, if the segment is a sheet.
    pub fn cell_at(&self, at: usize) -> Option<CompactString> {
        self.cell_at_from(at, &mut 0)
    }

    /// [`Segment::cell_at`] for offsets asked in increasing order (a scan's findings): `from`
    /// is where the last answer was found, and the search gallops forward from it instead of
    /// halving all the cells again (a 10,000-row sheet has 80,000; a binary search over them
    /// per finding missed the cache at its every step). Any order gives the same answers; from
    /// 0 the gallop costs what a binary search does.
    pub fn cell_at_from(&self, at: usize, from: &mut usize) -> Option<CompactString> {
        let cells = &self.cells;
        let start = (*from).min(cells.len());
        let i = if start > 0 && cells[start - 1].at > at {
            // Before the last answer: not in increasing order after all.
            cells.partition_point(|c| c.at <= at)
        } else {
            // The first cell past `at` lies within `start..start + step`.
            let mut step = 1;
            while start + step <= cells.len() && cells[start + step - 1].at <= at {
                step *= 2;
            }
            let lo = start + step / 2;
            let hi = (start + step).min(cells.len());
            lo + cells[lo..hi].partition_point(|c| c.at <= at)
        };
        *from = i;
        (i > 0).then(|| cells[i - 1].name())
    }
}

/// Where a worksheet cell starts in its segment's text. Kept as numbers: a 10,000-row sheet
/// places 80,000 cells, and only the few holding a finding are ever named.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CellStart {
    /// Byte offset in the segment's text.
    pub at: usize,
    /// Column, from 0 (`A`).
    pub col: u32,
    /// Row number, from 1.
    pub row: u32,
}

impl CellStart {
    /// The cell's name: `B12` for column 1, row 12.
    pub fn name(&self) -> CompactString {
        ooxml::cell_name(self.col, self.row)
    }
}

/// Headers of a message.
#[derive(Debug, Clone, Default)]
pub struct MessageInfo {
    /// Decoded subject.
    pub subject: Option<String>,
    /// From addresses (`Name <addr>` or `addr`).
    pub from: Vec<String>,
    /// To.
    pub to: Vec<String>,
    /// Cc.
    pub cc: Vec<String>,
    /// Bcc.
    pub bcc: Vec<String>,
    /// Reply-To.
    pub reply_to: Vec<String>,
    /// Date as RFC 3339.
    pub date: Option<String>,
    /// Message-ID.
    pub message_id: Option<String>,
}

/// Everything extracted from one message or file.
#[derive(Debug, Clone, Default)]
pub struct Extraction {
    /// The top-level message's headers (None for a plain file).
    pub message: Option<MessageInfo>,
    /// Texts to inspect, in document order.
    pub segments: Vec<Segment>,
    /// Attachments and archive members.
    pub attachments: Vec<Attachment>,
    /// What could not be inspected.
    pub unscannable: Vec<Unscannable>,
    /// Password candidates found in bodies (`パスワード: …`), for pairing with an encrypted
    /// archive sent in another mail. Sensitive: reports show only their count.
    pub password_candidates: Vec<String>,
    /// The message's own attachments' decoded bytes: (location, bytes), when
    /// [`ExtractOptions::keep_attachments`] is set.
    pub kept: Vec<(String, Vec<u8>)>,
}

/// State of one inspection: budgets, deadline, output.
pub(crate) struct Ctx<'o> {
    pub opts: &'o ExtractOptions,
    deadline: Instant,
    timed_out: bool,
    pub text_left: usize,
    pub decompressed_left: u64,
    pub objects_left: usize,
    pub out: Extraction,
    next_group: u32,
}

impl<'o> Ctx<'o> {
    pub fn new(opts: &'o ExtractOptions) -> Ctx<'o> {
        let l = &opts.limits;
        Ctx {
            opts,
            deadline: Instant::now() + l.time_budget,
            timed_out: false,
            text_left: l.text_per_message,
            decompressed_left: l.message_decompressed,
            objects_left: l.message_entries,
            out: Extraction::default(),
            next_group: 0,
        }
    }

    pub fn limits(&self) -> &Limits {
        &self.opts.limits
    }

    /// False once the time budget is spent (reported once, at `location`).
    pub fn in_time(&mut self, location: &str) -> bool {
        if self.timed_out {
            return false;
        }
        if Instant::now() > self.deadline {
            self.timed_out = true;
            self.unscannable(location, Reason::LimitExceeded, "time_budget");
            return false;
        }
        true
    }

    pub fn unscannable(&mut self, location: &str, reason: Reason, detail: impl Into<String>) {
        let u = Unscannable {
            location: location.to_string(),
            reason,
            detail: detail.into(),
        };
        if !self.out.unscannable.contains(&u) {
            self.out.unscannable.push(u);
        }
    }

    /// Counts one more object (part, entry, file) against the per-message limit.
    pub fn take_object(&mut self, location: &str) -> bool {
        if self.objects_left == 0 {
            self.unscannable(location, Reason::LimitExceeded, "message_entries");
            return false;
        }
        self.objects_left -= 1;
        true
    }

    pub fn new_group(&mut self) -> u32 {
        self.next_group += 1;
        self.next_group
    }

    /// Adds a text segment, cut to the per-object and per-message text budgets.
    pub fn push_text(&mut self, mut seg: Segment) {
        if seg.text.trim().is_empty() {
            return;
        }
        let per_object = self.limits().text_per_object;
        let allowed = per_object.min(self.text_left);
        if seg.text.len() > allowed {
            let which = if allowed < per_object {
                "text_per_message"
            } else {
                "text_per_object"
            };
            let cut = floor_boundary(&seg.text, allowed);
            seg.text.truncate(cut);
            seg.cells.retain(|c| c.at < cut);
            self.unscannable(&seg.location, Reason::LimitExceeded, which);
        }
        self.text_left -= seg.text.len();
        if !seg.text.is_empty() {
            self.out.segments.push(seg);
        }
    }
}

fn floor_boundary(s: &str, mut i: usize) -> usize {
    i = i.min(s.len());
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// `parent/name` (or `name` at the top).
pub(crate) fn join(parent: &str, name: &str) -> String {
    if parent.is_empty() {
        name.to_string()
    } else {
        format!("{parent}/{name}")
    }
}

/// Extracts a raw RFC 5322 message (LF or CRLF line ends).
pub fn extract_message(raw: &[u8], opts: &ExtractOptions) -> Extraction {
    let mut ctx = Ctx::new(opts);
    if raw.len() > opts.limits.raw_message {
        ctx.unscannable("message", Reason::LimitExceeded, "raw_message");
        return ctx.out;
    }
    mime::message(&mut ctx, raw, "", 0, true);
    finish(ctx)
}

/// Extracts one file (a document, an archive, an `.eml`, a text file) named `name`.
pub fn extract_file(name: &str, data: &[u8], opts: &ExtractOptions) -> Extraction {
    let kind = sniff(data, name);
    // A text file given on its own is inspected whole: the text limits are for text extracted
    // from containers, where a small input can expand into a large text.
    let whole;
    let opts = if matches!(kind, FileKind::Text | FileKind::Csv | FileKind::Xml)
        && data.len() * 2 > opts.limits.text_per_object
    {
        let mut o = opts.clone();
        o.limits.text_per_object = o.limits.text_per_object.max(data.len() * 4);
        o.limits.text_per_message = o.limits.text_per_message.max(data.len() * 4);
        whole = o;
        &whole
    } else {
        opts
    };
    let mut ctx = Ctx::new(opts);
    if kind == FileKind::Eml && data.len() <= opts.limits.raw_message {
        mime::message(&mut ctx, data, "", 0, true);
    } else {
        inspect(&mut ctx, name, name, None, data, 0);
    }
    finish(ctx)
}

fn finish(ctx: Ctx<'_>) -> Extraction {
    ctx.out
}

impl Ctx<'_> {
    /// Passwords to try on an encrypted archive or PDF: the caller's, then the candidates found
    /// in this message's bodies so far (a password sent in the same mail as its archive).
    pub fn passwords(&self) -> Vec<String> {
        let mut v = self.opts.passwords.clone();
        for c in &self.out.password_candidates {
            if !v.contains(c) {
                v.push(c.clone());
            }
        }
        v.truncate(10);
        v
    }
}

/// Decodes a text object: the caller's charset for the input file itself, else detection.
fn decode_object<'a>(
    ctx: &Ctx<'_>,
    object: &'a Object<'_>,
    depth: u32,
) -> crate::text::Decoded<'a> {
    match (ctx.opts.text_encoding, object) {
        (Some(enc), _) if depth == 0 => crate::text::decode_with(object.bytes(), enc),
        (_, Object::Bytes(b)) => crate::text::decode_text(b),
        (_, Object::Utf8(s)) => crate::text::decode_str(s),
    }
}

/// Inspects one file object found at `location` (an attachment, a member, the input file).
pub(crate) fn inspect(
    ctx: &mut Ctx<'_>,
    location: &str,
    name: &str,
    declared: Option<&str>,
    data: &[u8],
    depth: u32,
) {
    inspect_object(ctx, location, name, declared, Object::Bytes(data), depth);
}

/// A file object's bytes: borrowed, or a string already checked as UTF-8 by whoever decoded
/// it (a MIME text part), which a text object then takes as its text without a copy.
enum Object<'a> {
    Bytes(&'a [u8]),
    Utf8(String),
}

impl Object<'_> {
    fn bytes(&self) -> &[u8] {
        match self {
            Object::Bytes(b) => b,
            Object::Utf8(s) => s.as_bytes(),
        }
    }
}

/// [`inspect`] of a file whose bytes are the valid UTF-8 `text` (a base64 MIME text part that
/// mail-parser decoded and checked): the same result, without checking or copying it again.
pub(crate) fn inspect_utf8(
    ctx: &mut Ctx<'_>,
    location: &str,
    name: &str,
    declared: Option<&str>,
    text: String,
    depth: u32,
) {
    inspect_object(ctx, location, name, declared, Object::Utf8(text), depth);
}

fn inspect_object(
    ctx: &mut Ctx<'_>,
    location: &str,
    name: &str,
    declared: Option<&str>,
    object: Object<'_>,
    depth: u32,
) {
    let data = object.bytes();
    if !ctx.in_time(location) {
        return;
    }
    if depth > ctx.limits().container_depth {
        ctx.unscannable(location, Reason::LimitExceeded, "container_depth");
        return;
    }
    let mut kind = sniff(data, name);
    if kind == FileKind::Unknown && depth == 0 && ctx.opts.text_encoding.is_some() {
        kind = FileKind::Text; // the caller says it is text in that charset
    }
    let mut att = Attachment {
        location: location.to_string(),
        name: name.to_string(),
        declared_type: declared.map(str::to_string),
        kind,
        size: data.len() as u64,
        sha256: sha256_hex(data),
        extension_mismatch: filetype::extension_mismatch(name, kind),
        properties: Vec::new(),
        depth,
    };
    let at = ctx.out.attachments.len();
    ctx.out.attachments.push(att.clone());
    use FileKind as F;
    match kind {
        F::Zip | F::Jar => archive::zip(ctx, location, data, depth),
        F::Docx | F::Xlsx | F::Pptx => {
            att.properties = ooxml::ooxml(ctx, location, data, kind);
        }
        F::Odt | F::Ods | F::Odp => {
            att.properties = ooxml::odf(ctx, location, data, kind);
        }
        F::Pdf => {
            att.properties = pdf::pdf(ctx, location, data);
        }
        F::Xls => xls::xls(ctx, location, data),
        F::Doc => xls::doc(ctx, location, data),
        F::EncryptedOffice => ctx.unscannable(location, Reason::Encrypted, "office"),
        F::Ppt => ppt::ppt(ctx, location, data),
        F::Msg => {
            let top = depth == 0 && ctx.out.message.is_none();
            msg::msg(ctx, location, data, depth, top)
        }
        // A compound file of no known kind, or one too damaged to tell.
        F::Cfb => match cfb::CompoundFile::open(std::io::Cursor::new(data)) {
            Ok(_) => ctx.unscannable(location, Reason::UnsupportedFormat, kind.short()),
            Err(e) => ctx.unscannable(location, Reason::Corrupt, format!("compound file: {e}")),
        },
        F::Eml => {
            if data.len() > ctx.limits().raw_message {
                ctx.unscannable(location, Reason::LimitExceeded, "raw_message");
            } else {
                mime::message(ctx, data, location, depth + 1, false);
            }
        }
        F::Tnef => tnef::tnef(ctx, location, data, depth),
        F::Gzip => archive::gzip(ctx, location, name, data, depth),
        F::Tar => archive::tar(ctx, location, data, depth),
        F::SevenZip => archive::sevenz(ctx, location, data, depth),
        F::Rar => archive::rar(ctx, location, data),
        F::Bzip2 => archive::bzip2(ctx, location, name, data, depth),
        F::Xz => archive::xz(ctx, location, name, data, depth),
        F::Png | F::Jpeg | F::Gif | F::Bmp | F::Tiff | F::Webp | F::Heic => {
            ctx.unscannable(location, Reason::NotInspected, "image")
        }
        F::Exe | F::Elf | F::MachO => ctx.unscannable(location, Reason::NotInspected, "executable"),
        F::Rtf => {
            let text = rtf::rtf_to_text(data);
            ctx.push_text(Segment {
                location: location.to_string(),
                text,
                ..Segment::default()
            });
        }
        F::Html => {
            let decoded = decode_object(ctx, &object, depth);
            let (text, grid) = html::html_to_text_grid(&decoded.text);
            ctx.push_text(Segment {
                location: location.to_string(),
                text,
                grid,
                ..Segment::default()
            });
        }
        F::Text | F::Csv | F::Xml => {
            let decoded = decode_object(ctx, &object, depth);
            // Offsets in UTF-8 text are offsets in the file (past a BOM).
            let byte_base = if decoded.encoding == "UTF-8" {
                decoded.bom_len
            } else {
                0
            };
            // All of a checked UTF-8 string is the text: it is moved, not copied.
            let whole =
                matches!(&decoded.text, std::borrow::Cow::Borrowed(t) if t.len() == data.len());
            let text = match object {
                Object::Utf8(s) if whole => s,
                _ => decoded.text.into_owned(),
            };
            // CSV and TSV files are tables: their cells, for context from column headers. So
            // is a plain text laid out as one (Excel's "Unicode text" export is a `.txt`), and
            // tables pasted into a text between its paragraphs.
            let tsv_name = || {
                let n = name.to_ascii_lowercase();
                n.ends_with(".tsv") || n.ends_with(".tab")
            };
            let grid = match kind {
                F::Csv => csvgrid::csv_grid(&text, GRID_CELLS),
                F::Text if tsv_name() => csvgrid::csv_grid(&text, GRID_CELLS),
                F::Text => csvgrid::plain_text_grid(&text, GRID_CELLS),
                _ => Vec::new(),
            };
            ctx.push_text(Segment {
                location: location.to_string(),
                text,
                byte_base,
                grid,
                ..Segment::default()
            });
        }
        F::Empty => {}
        F::Unknown => ctx.unscannable(location, Reason::UnsupportedFormat, "unknown binary"),
    }
    if !att.properties.is_empty() {
        ctx.out.attachments[at].properties = att.properties;
    }
}

#[doc(hidden)]
/// The text of a `PowerPoint Document` stream (for the fuzz target).
pub fn ppt_stream_text(stream: &[u8], limit: usize) -> String {
    ppt::stream_text(stream, limit).text
}

/// Cells of one table text kept for header context (24 bytes each, 12 MB at most): past this,
/// the rest of a very wide or long table (more than 50,000 rows of 10 columns) is scored with
/// the character window only.
const GRID_CELLS: usize = 500_000;

/// Lower-case hex SHA-256.
pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    let d = sha2::Sha256::digest(data);
    let mut s = String::with_capacity(64);
    for b in d.iter() {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

#[cfg(test)]
mod cell_tests {
    use super::*;

    /// `cell_at_from` names the last cell starting at or before the offset, as a linear search
    /// does, for offsets in increasing order (the cursor gallops), repeated, and out of order
    /// (it falls back to a binary search); `cell_at` (a fresh cursor) too.
    #[test]
    fn cell_at_from_is_cell_at() {
        for n in [0usize, 1, 2, 3, 7, 64, 1000] {
            let seg = Segment {
                cells: (0..n)
                    .map(|k| CellStart {
                        at: 5 + 3 * k + k % 4,
                        col: (k % 7) as u32,
                        row: (k / 7 + 1) as u32,
                    })
                    .collect(),
                ..Segment::default()
            };
            let linear = |at: usize| {
                let c = seg.cells.iter().rev().find(|c| c.at <= at);
                c.map(CellStart::name)
            };
            let last = 5 + 4 * n + 8;
            let mut from = 0;
            for at in 0..last {
                assert_eq!(seg.cell_at_from(at, &mut from), linear(at), "n {n} at {at}");
                assert_eq!(seg.cell_at_from(at, &mut from), linear(at), "again {at}");
                assert_eq!(seg.cell_at(at), linear(at), "fresh {at}");
            }
            let mut from = 0;
            for k in 0..last {
                // Jumps forward and back.
                let at = (k * 7919) % last;
                assert_eq!(seg.cell_at_from(at, &mut from), linear(at), "n {n} at {at}");
            }
        }
    }
}
