//! What a webmail upload carries: the HTTP body decoded into fields and files, then turned
//! into one MIME message so that the same extraction and detection as for mail applies (every
//! file an attachment; recipients and subject from the form's fields).
//!
//! Decoding covers what browsers and webmail clients send: content encodings (gzip, deflate,
//! brotli, zstd, chained), `multipart/form-data` (parts with or without `filename`, with a
//! `Content-Transfer-Encoding`, without the closing boundary, with bare tokens in
//! `Content-Disposition`), URL-encoded forms (binary values too), JSON (base64 strings, `data:`
//! URLs, base64 split over several strings, byte arrays, hex strings) and raw bodies (a body
//! that is itself base64 of a document or of text). Wherever text is expected, a value that is
//! base64, hex or a `data:` URL of something readable is decoded as well.
//!
//! What cannot be decoded is not passed silently: it becomes a [`Problem`], which the hook
//! reports as unscannable and (with `on_undecodable = "block"`, the default) refuses.
//!
//! The multipart splitter is ours rather than a form-data crate's: those stop at the first
//! irregularity (a missing closing boundary, a part without a name), while a hook must read what
//! is there and say what it could not read. `fuzz/fuzz_targets/upload.rs` runs it.

use std::io::Read;

use ping32dlp::extract::{sniff, FileKind, Reason};
use ping32dlp::text::{base64_decode as b64, percent_decode};

use crate::icap::HttpHead;

/// Something an upload carried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// A text field: name and value.
    Field(String, String),
    /// A file: name, declared type, bytes.
    File(String, Option<String>, Vec<u8>),
}

/// A part of the upload that could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Where (`upload`, `upload/field attachment`).
    pub location: String,
    /// Why, as extraction says it (`corrupt`, `limit_exceeded`, `unsupported_format`).
    pub reason: Reason,
    /// What exactly.
    pub detail: String,
}

/// A decoded upload.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Upload {
    /// Fields and files.
    pub items: Vec<Item>,
    /// What could not be decoded.
    pub problems: Vec<Problem>,
}

/// Items kept from one upload (fields, files and decoded values together).
pub const MAX_ITEMS: usize = 10_000;
/// Nested encodings unwrapped in a value (base64 of base64 of ...).
pub const MAX_EMBEDDED_DEPTH: u32 = 3;
/// Shortest string tried as base64 or hex.
pub const MIN_ENCODED_LEN: usize = 16;

struct Dec {
    out: Upload,
    /// Decoded bytes still allowed (the body limit, for everything decoding makes).
    budget: u64,
    /// [`MAX_ITEMS`] was reached (and said once).
    capped: bool,
}

impl Dec {
    fn push(&mut self, it: Item) {
        if self.out.items.len() >= MAX_ITEMS {
            if !self.capped {
                self.capped = true;
                self.problem(
                    "upload",
                    Reason::LimitExceeded,
                    format!("more than {MAX_ITEMS} fields and files"),
                );
            }
            return;
        }
        self.out.items.push(it);
    }

    fn problem(&mut self, location: &str, reason: Reason, detail: impl Into<String>) {
        self.out.problems.push(Problem {
            location: location.to_string(),
            reason,
            detail: detail.into(),
        });
    }

    /// Takes `n` bytes from the budget; false when they do not fit.
    fn spend(&mut self, n: usize) -> bool {
        if n as u64 > self.budget {
            self.budget = 0;
            return false;
        }
        self.budget -= n as u64;
        true
    }
}

/// Decodes an upload: the body of an HTTP request with its head. At most `max` decoded bytes
/// are produced in all; what is past that is a `limit_exceeded` problem.
pub fn decode(head: &HttpHead, body: &[u8], max: u64) -> Upload {
    let mut d = Dec {
        out: Upload::default(),
        budget: max,
        capped: false,
    };
    let body = match head.header("Content-Encoding") {
        Some(ce) => match decode_content_encoding(body, ce, max) {
            Ok(b) => b,
            Err((reason, e)) => {
                d.problem("upload", reason, e);
                // What was sent is still inspected as it is.
                d.push(Item::File("upload.bin".into(), None, body.to_vec()));
                return d.out;
            }
        },
        None => body.to_vec(),
    };
    let content_type = head.header("Content-Type").unwrap_or("");
    items(&mut d, content_type, head.path_and_query(), &body);
    d.out
}

/// Undoes `Content-Encoding` (gzip, x-gzip, deflate, br, zstd, identity; several in order). At
/// most `max` bytes come out; `Err` says why not (an unknown encoding is
/// `unsupported_format`, more than `max` bytes `limit_exceeded`, a broken stream `corrupt`).
pub fn decode_content_encoding(
    body: &[u8],
    encoding: &str,
    max: u64,
) -> Result<Vec<u8>, (Reason, String)> {
    let mut data = body.to_vec();
    let encodings: Vec<String> = encoding
        .split(',')
        .map(|e| e.trim().to_ascii_lowercase())
        .filter(|e| !e.is_empty() && e != "identity")
        .collect();
    if encodings.len() > 4 {
        return Err((
            Reason::LimitExceeded,
            format!("{} content encodings", encodings.len()),
        ));
    }
    for enc in encodings.iter().rev() {
        let mut out = Vec::new();
        let src = data.as_slice();
        let r = match enc.as_str() {
            "gzip" | "x-gzip" => flate2::read::MultiGzDecoder::new(src)
                .take(max + 1)
                .read_to_end(&mut out),
            "deflate" => {
                // Servers send zlib-wrapped (RFC 9110) and raw deflate alike.
                let z = flate2::read::ZlibDecoder::new(src)
                    .take(max + 1)
                    .read_to_end(&mut out);
                if z.is_err() {
                    out.clear();
                    flate2::read::DeflateDecoder::new(src)
                        .take(max + 1)
                        .read_to_end(&mut out)
                } else {
                    z
                }
            }
            "br" => brotli_decompressor::Decompressor::new(src, 4096)
                .take(max + 1)
                .read_to_end(&mut out),
            "zstd" => match ruzstd::decoding::StreamingDecoder::new(src) {
                Ok(dec) => dec.take(max + 1).read_to_end(&mut out),
                Err(e) => Err(std::io::Error::other(e.to_string())),
            },
            other => {
                return Err((
                    Reason::UnsupportedFormat,
                    format!("content encoding `{other}` cannot be decoded"),
                ))
            }
        };
        if out.len() as u64 > max {
            return Err((
                Reason::LimitExceeded,
                format!("{enc}: decodes to more than {max} bytes (max_body_bytes)"),
            ));
        }
        if let Err(e) = r {
            return Err((Reason::Corrupt, format!("{enc}: {e}")));
        }
        data = out;
    }
    Ok(data)
}

fn items(d: &mut Dec, content_type: &str, url_path: &str, body: &[u8]) {
    let ct = content_type.to_ascii_lowercase();
    if ct.starts_with("multipart/") {
        match param(content_type, "boundary").filter(|b| !b.is_empty() && b.len() <= 200) {
            Some(b) => return multipart(d, body, &b),
            None => d.problem(
                "upload",
                Reason::Corrupt,
                "multipart body without a usable boundary; inspected as it is",
            ),
        }
    }
    if ct.starts_with("application/x-www-form-urlencoded") {
        return urlencoded(d, body);
    }
    let first = body
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .map(|i| body[i]);
    if ct.contains("json") || (ct.is_empty() && matches!(first, Some(b'{') | Some(b'['))) {
        if json(d, body) {
            return;
        }
        if ct.contains("json") {
            d.problem(
                "upload",
                Reason::Corrupt,
                "the body is declared JSON but does not parse; inspected as it is",
            );
        }
    }
    if body.is_empty() {
        return;
    }
    let name = url_file_name(url_path);
    d.push(Item::File(
        name.clone(),
        (!ct.is_empty()).then(|| content_type.to_string()),
        body.to_vec(),
    ));
    // A text body that is base64 (or hex) of a document or of text.
    if let Ok(s) = std::str::from_utf8(body) {
        embedded(d, &name, s.trim(), None, 0);
    }
}

/// The last path segment of a URL, percent-decoded (`upload.bin` when there is none).
pub fn url_file_name(url_path: &str) -> String {
    url_path
        .split(['?', '#'])
        .next()
        .unwrap_or("")
        .rsplit('/')
        .find(|s| !s.is_empty())
        .map(|s| String::from_utf8_lossy(&percent_decode(s, false)).into_owned())
        .unwrap_or_else(|| "upload.bin".into())
}

/// A parameter of a header value (`boundary`, `name`, `filename`); tokens without `=` are
/// skipped, quoted values may hold `;`.
fn param(header: &str, name: &str) -> Option<String> {
    for (k, v) in params(header) {
        if k.eq_ignore_ascii_case(name) {
            return Some(v);
        }
    }
    None
}

/// The `key=value` parameters after the first `;` (quoted strings kept whole, `\"` unescaped).
fn params(header: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = match header.find(';') {
        Some(i) => &header[i + 1..],
        None => return out,
    };
    while !rest.is_empty() {
        let (part, tail) = split_param(rest);
        rest = tail;
        let Some((k, v)) = part.split_once('=') else {
            continue; // a bare token such as `form-data; foo; name="x"`
        };
        let v = v.trim();
        let v = match v.strip_prefix('"') {
            Some(q) => q.strip_suffix('"').unwrap_or(q).replace("\\\"", "\""),
            None => v.to_string(),
        };
        out.push((k.trim().to_string(), v));
    }
    out
}

/// The next `;`-separated piece, honouring quotes.
fn split_param(s: &str) -> (&str, &str) {
    let mut quoted = false;
    let mut prev = 0u8;
    for (i, b) in s.bytes().enumerate() {
        match b {
            b'"' if prev != b'\\' => quoted = !quoted,
            b';' if !quoted => return (&s[..i], &s[i + 1..]),
            _ => {}
        }
        prev = b;
    }
    (s, "")
}

/// `filename*=UTF-8''%E8%A6%8B...` (RFC 5987) or `filename="..."` (raw UTF-8, as browsers
/// send). `None` when the part names no file.
fn disposition_filename(cd: &str) -> Option<String> {
    let ps = params(cd);
    if let Some((_, v)) = ps.iter().find(|(k, _)| k.eq_ignore_ascii_case("filename*")) {
        let enc = v.splitn(3, '\'').nth(2).unwrap_or(v);
        return Some(String::from_utf8_lossy(&percent_decode(enc, false)).into_owned());
    }
    ps.into_iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("filename"))
        .map(|(_, v)| v)
}

fn find(h: &[u8], n: &[u8]) -> Option<usize> {
    memchr::memmem::find(h, n)
}

/// `multipart/form-data` (or any multipart) parts. A part runs from one delimiter line to the
/// next, or to the end of the body when the closing delimiter is missing.
fn multipart(d: &mut Dec, body: &[u8], boundary: &str) {
    let delim = format!("--{boundary}");
    let dl = delim.as_bytes();
    let mut starts = Vec::new();
    let mut from = 0;
    while let Some(p) = find(&body[from..], dl) {
        let i = from + p;
        if i == 0 || body[i - 1] == b'\n' {
            starts.push(i);
        }
        from = i + dl.len();
    }
    if starts.is_empty() {
        d.problem(
            "upload",
            Reason::Corrupt,
            "multipart body without its boundary; inspected as it is",
        );
        d.push(Item::File("upload.bin".into(), None, body.to_vec()));
        return;
    }
    let mut closed = false;
    for (n, &s) in starts.iter().enumerate() {
        let after = &body[s + dl.len()..];
        if after.starts_with(b"--") {
            closed = true;
            break;
        }
        let end = starts.get(n + 1).copied().unwrap_or(body.len());
        let mut part = &body[s + dl.len()..end];
        // The rest of the delimiter line (transport padding), then the part.
        part = match memchr::memchr(b'\n', part) {
            Some(i) => &part[i + 1..],
            None => &[],
        };
        if n + 1 < starts.len() {
            part = part
                .strip_suffix(b"\r\n")
                .or_else(|| part.strip_suffix(b"\n"))
                .unwrap_or(part);
        }
        one_part(d, part, n);
    }
    if !closed {
        // Browsers always close; a cut body is still inspected, and noted for the record.
        d.problem(
            "upload",
            Reason::Corrupt,
            "multipart body without its closing boundary (the last part may be cut)",
        );
    }
}

fn one_part(d: &mut Dec, part: &[u8], index: usize) {
    let (head, data) = match find(part, b"\r\n\r\n") {
        Some(p) => (&part[..p], &part[p + 4..]),
        None => match find(part, b"\n\n") {
            Some(p) => (&part[..p], &part[p + 2..]),
            None if part.iter().all(u8::is_ascii_whitespace) => return,
            None => (&b""[..], part),
        },
    };
    let head = String::from_utf8_lossy(head);
    let (mut cd, mut ct, mut cte) = (String::new(), None, None);
    for line in head.lines() {
        if let Some((k, v)) = line.split_once(':') {
            match k.trim().to_ascii_lowercase().as_str() {
                "content-disposition" => cd = v.trim().to_string(),
                "content-type" => ct = Some(v.trim().to_string()),
                "content-transfer-encoding" => cte = Some(v.trim().to_ascii_lowercase()),
                _ => {}
            }
        }
    }
    let field = param(&cd, "name").unwrap_or_else(|| format!("part{index}"));
    let loc = format!("upload/{field}");
    let data: Vec<u8> = match cte.as_deref() {
        None | Some("7bit" | "8bit" | "binary") => data.to_vec(),
        Some("base64") => {
            let s = String::from_utf8_lossy(data);
            match b64(&s) {
                Some(b) => b,
                None => {
                    d.problem(&loc, Reason::Corrupt, "base64 part does not decode");
                    data.to_vec()
                }
            }
        }
        Some("quoted-printable") => quoted_printable(data),
        Some(other) => {
            d.problem(
                &loc,
                Reason::UnsupportedFormat,
                format!("transfer encoding `{other}` cannot be decoded"),
            );
            data.to_vec()
        }
    };
    let ctl = ct.as_deref().unwrap_or("").to_ascii_lowercase();
    let textual = ctl.is_empty() || ctl.starts_with("text/") || ctl.contains("json");
    match disposition_filename(&cd) {
        Some(f) => {
            let name = if f.trim().is_empty() {
                format!("{field}.bin")
            } else {
                f
            };
            d.push(Item::File(name, ct, data));
        }
        // No file name: a field when it is text, else a file (a Blob appended without a name,
        // a docx sent as a part of its own).
        None => match String::from_utf8(data) {
            Ok(text) if textual && !text.contains('\0') => {
                embedded(d, &field, &text, None, 0);
                d.push(Item::Field(field, text));
            }
            Ok(text) => d.push(Item::File(format!("{field}.bin"), ct, text.into_bytes())),
            Err(e) => d.push(Item::File(format!("{field}.bin"), ct, e.into_bytes())),
        },
    }
}

fn quoted_printable(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    let mut i = 0;
    let hexv = |b: u8| (b as char).to_digit(16).map(|v| v as u8);
    while i < data.len() {
        match data[i] {
            b'=' if data[i + 1..].starts_with(b"\r\n") => i += 3,
            b'=' if data[i + 1..].starts_with(b"\n") => i += 2,
            b'=' if i + 2 < data.len() => match (hexv(data[i + 1]), hexv(data[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 3;
                }
                _ => {
                    out.push(b'=');
                    i += 1;
                }
            },
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

/// `application/x-www-form-urlencoded` fields; a value that is not UTF-8 once percent-decoded
/// is a file.
fn urlencoded(d: &mut Dec, body: &[u8]) {
    let s = String::from_utf8_lossy(body);
    for p in s.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = p.split_once('=').unwrap_or((p, ""));
        let k = String::from_utf8_lossy(&percent_decode(k, true)).into_owned();
        let v = percent_decode(v, true);
        match String::from_utf8(v) {
            Ok(text) if !text.contains('\0') => {
                embedded(d, &k, &text, None, 0);
                d.push(Item::Field(k, text));
            }
            Ok(text) => d.push(Item::File(format!("{k}.bin"), None, text.into_bytes())),
            Err(e) => d.push(Item::File(format!("{k}.bin"), None, e.into_bytes())),
        }
    }
}

/// JSON: every string is a field, decoded when it is base64, hex or a `data:` URL of
/// something readable; base64 split over several strings in a row is joined and decoded; an
/// array of byte values is bytes. `false` when the body is not JSON.
fn json(d: &mut Dec, body: &[u8]) -> bool {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) else {
        return false;
    };
    walk(d, &v, "", None, 0);
    true
}

fn walk(d: &mut Dec, v: &serde_json::Value, path: &str, sibling_name: Option<&str>, depth: u32) {
    use serde_json::Value;
    if depth > 64 {
        return;
    }
    // Base64 strings next to each other in one array or object may be one file split in
    // pieces: their concatenation is decoded too.
    let mut run: Vec<(String, &str)> = Vec::new();
    match v {
        Value::String(s) => {
            embedded(d, path, s, sibling_name, 0);
            d.push(Item::Field(path.into(), s.clone()));
        }
        Value::Array(a) => {
            if let Some(bytes) = byte_array(a) {
                keep_decoded(d, path, sibling_name, bytes, 0);
                return;
            }
            for (i, x) in a.iter().enumerate() {
                let p = format!("{path}[{i}]");
                walk(d, x, &p, None, depth + 1);
                extend_run(d, &mut run, p, x);
            }
        }
        Value::Object(o) => {
            let name = ["name", "filename", "fileName", "file_name", "title"]
                .iter()
                .find_map(|k| o.get(*k).and_then(|v| v.as_str()));
            for (k, x) in o {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                walk(d, x, &p, name, depth + 1);
                extend_run(d, &mut run, p, x);
            }
        }
        _ => {}
    }
    flush_run(d, &mut run);
}

fn extend_run<'v>(
    d: &mut Dec,
    run: &mut Vec<(String, &'v str)>,
    path: String,
    v: &'v serde_json::Value,
) {
    match v.as_str() {
        Some(s) if is_base64_alphabet(s) => run.push((path, s)),
        _ => flush_run(d, run),
    }
}

/// Joins a run of two or more base64 strings and decodes the whole.
fn flush_run(d: &mut Dec, run: &mut Vec<(String, &str)>) {
    if run.len() >= 2 {
        let joined: String = run.iter().map(|(_, s)| *s).collect();
        let path = format!("{}+joined", run[0].0);
        if let Some(bytes) = b64(&joined).filter(|b| b.len() >= 12) {
            keep_decoded(d, &path, None, bytes, 0);
        }
    }
    run.clear();
}

fn is_base64_alphabet(s: &str) -> bool {
    s.len() >= MIN_ENCODED_LEN
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+/=-_\r\n".contains(&b))
}

/// `[80, 75, 3, 4, ...]`: at least 16 numbers, each 0..=255.
fn byte_array(a: &[serde_json::Value]) -> Option<Vec<u8>> {
    if a.len() < MIN_ENCODED_LEN {
        return None;
    }
    a.iter()
        .map(|x| x.as_u64().filter(|n| *n <= 255).map(|n| n as u8))
        .collect()
}

/// Decodes a value that may be a `data:` URL, base64 or hex of a document or of text, and
/// keeps what it decodes to when that is readable.
fn embedded(d: &mut Dec, path: &str, s: &str, sibling_name: Option<&str>, depth: u32) {
    if depth >= MAX_EMBEDDED_DEPTH || s.len() < MIN_ENCODED_LEN {
        return;
    }
    let s = s.trim();
    if let Some(rest) = s.strip_prefix("data:") {
        let Some((meta, payload)) = rest.split_once(',') else {
            return;
        };
        let bytes = if meta.to_ascii_lowercase().ends_with(";base64") {
            b64(payload)
        } else {
            Some(percent_decode(payload, false))
        };
        match bytes {
            Some(b) => {
                let ext = meta
                    .split(';')
                    .next()
                    .and_then(|m| m.split('/').nth(1))
                    .map(|e| format!(".{}", e.trim()))
                    .unwrap_or_default();
                let name = sibling_name
                    .map(str::to_string)
                    .unwrap_or_else(|| format!("{}{ext}", safe_name(path)));
                if !d.spend(b.len()) {
                    d.problem(
                        path,
                        Reason::LimitExceeded,
                        "decoded data over max_body_bytes",
                    );
                    return;
                }
                d.push(Item::File(name, None, b));
            }
            None => d.problem(path, Reason::Corrupt, "data: URL does not decode"),
        }
        return;
    }
    // Line breaks may wrap an encoded value; spaces never occur in one.
    if s.contains([' ', '\t']) {
        return;
    }
    let compact: String = s.chars().filter(|c| !matches!(c, '\r' | '\n')).collect();
    if compact.len() >= MIN_ENCODED_LEN
        && compact.len().is_multiple_of(2)
        && compact.bytes().all(|b| b.is_ascii_hexdigit())
    {
        let bytes: Vec<u8> = compact
            .as_bytes()
            .chunks(2)
            .map(|p| {
                let h = (p[0] as char).to_digit(16).unwrap_or(0) as u8;
                let l = (p[1] as char).to_digit(16).unwrap_or(0) as u8;
                h << 4 | l
            })
            .collect();
        keep_decoded(d, path, sibling_name, bytes, depth);
        return;
    }
    if is_base64_alphabet(&compact) {
        if let Some(bytes) = b64(&compact).filter(|b| b.len() >= 12) {
            keep_decoded(d, path, sibling_name, bytes, depth);
        }
    }
}

/// Keeps bytes that a heuristic decode produced when they are readable: text (then looked at
/// again, for base64 of base64) or a document or archive the extractor knows. Opaque binary
/// (a hash, a random token) is dropped: the value it came from is inspected as text anyway.
fn keep_decoded(d: &mut Dec, path: &str, sibling_name: Option<&str>, bytes: Vec<u8>, depth: u32) {
    let kind = sniff(&bytes, "");
    if matches!(kind, FileKind::Unknown | FileKind::Empty) {
        return;
    }
    if !d.spend(bytes.len()) {
        d.problem(
            path,
            Reason::LimitExceeded,
            "decoded data over max_body_bytes",
        );
        return;
    }
    if matches!(
        kind,
        FileKind::Text | FileKind::Csv | FileKind::Html | FileKind::Xml
    ) {
        // Text must be text: UTF-8 or UTF-16. Random bytes without control characters also
        // sniff as (legacy-encoded) text, and a decoded hash or token is not worth a look.
        if let Ok(text) = std::str::from_utf8(&bytes) {
            embedded(d, path, text, sibling_name, depth + 1);
            d.push(Item::Field(format!("{path} (decoded)"), text.to_string()));
            return;
        }
        if ping32dlp::text::utf16_without_bom(&bytes).is_none()
            && encoding_rs::Encoding::for_bom(&bytes).is_none()
        {
            d.budget += bytes.len() as u64;
            return;
        }
    }
    let name = sibling_name
        .filter(|n| !n.is_empty())
        .map(str::to_string)
        .unwrap_or_else(|| format!("{}.{}", safe_name(path), kind.short()));
    d.push(Item::File(name, None, bytes));
}

fn safe_name(path: &str) -> String {
    let s: String = path
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(60)
        .collect();
    if s.is_empty() {
        "value".into()
    } else {
        s
    }
}

/// Field names that carry recipients.
pub const RECIPIENT_FIELDS: &[&str] = &["to", "cc", "bcc", "recipients", "recipient"];

/// Whether a field's path names recipients: a segment `to`, `cc`, `bcc`, or one that starts
/// with them or mentions recipients (`toRecipients`, `message.to[0].address`).
fn is_recipient_path(path: &str) -> bool {
    path.to_ascii_lowercase()
        .split(['.', '[', ']'])
        .filter(|s| !s.is_empty())
        .any(|seg| {
            RECIPIENT_FIELDS.contains(&seg)
                || seg.contains("recipient")
                || ["to", "cc", "bcc"].iter().any(|p| {
                    seg.strip_prefix(p).is_some_and(|rest| {
                        rest.starts_with(|c: char| c.is_ascii_uppercase() || c == '_')
                            || rest.starts_with("recipients")
                            || rest == "addresses"
                    })
                })
        })
}

/// The recipients named in the fields (`to`, `cc`, `bcc`, `toRecipients[0]...address`, ...).
pub fn recipients(items: &[Item]) -> Vec<String> {
    let mut out = Vec::new();
    for it in items {
        if let Item::Field(k, v) = it {
            if is_recipient_path(k) {
                for a in v.split([',', ';', ' ']) {
                    let a = a.trim().trim_start_matches('<').trim_end_matches('>');
                    if a.contains('@') && a.len() < 320 && !a.contains(['\r', '\n', '\0']) {
                        out.push(a.to_string());
                    }
                }
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// One MIME message with the fields as a text body (and the subject field as Subject) and the
/// files as base64 attachments.
pub fn as_message(items: &[Item], from: Option<&str>, host: &str) -> Vec<u8> {
    let rcpts = recipients(items);
    let subject = items.iter().find_map(|i| match i {
        Item::Field(k, v) if k.to_ascii_lowercase().rsplit('.').next() == Some("subject") => {
            Some(v.clone())
        }
        _ => None,
    });
    let boundary = "=_ping32dlp_upload_boundary";
    let mut m = String::new();
    if let Some(f) = from.filter(|f| !f.contains(['\r', '\n'])) {
        m.push_str(&format!("From: {f}\r\n"));
    }
    if !rcpts.is_empty() {
        m.push_str(&format!("To: {}\r\n", rcpts.join(", ")));
    }
    let subject = subject.unwrap_or_else(|| format!("upload to {host}"));
    m.push_str(&format!(
        "Subject: {}\r\n",
        ping32dlp::text::encode_header_text(&subject, false)
    ));
    m.push_str(&format!(
        "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"{boundary}\"\r\n\r\n"
    ));
    let mut text = String::new();
    for it in items {
        if let Item::Field(k, v) = it {
            text.push_str(&format!("{k}: {v}\r\n"));
        }
    }
    let mut out = m.into_bytes();
    out.extend_from_slice(format!("--{boundary}\r\nContent-Type: text/plain; charset=UTF-8\r\nContent-Transfer-Encoding: base64\r\n\r\n").as_bytes());
    out.extend_from_slice(ping32dlp::text::base64_encode_mime(text.as_bytes()).as_bytes());
    for it in items {
        if let Item::File(name, ct, data) = it {
            let encoded = ping32dlp::text::encode_header_text(name, false).replace('"', "'");
            out.extend_from_slice(
                format!(
                    "--{boundary}\r\nContent-Type: {}\r\nContent-Disposition: attachment; filename=\"{encoded}\"\r\nContent-Transfer-Encoding: base64\r\n\r\n",
                    ct.as_deref()
                        .filter(|c| !c.contains(['\r', '\n', '"']) && c.len() < 200)
                        .unwrap_or("application/octet-stream")
                )
                .as_bytes(),
            );
            out.extend_from_slice(ping32dlp::text::base64_encode_mime(data).as_bytes());
        }
    }
    out.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(ct: &str, target: &str) -> HttpHead {
        HttpHead {
            method: "POST".into(),
            target: target.into(),
            headers: vec![("Content-Type".into(), ct.into())],
        }
    }

    fn up(ct: &str, target: &str, body: &[u8]) -> Upload {
        decode(&head(ct, target), body, 1 << 20)
    }

    fn has_file(u: &Upload, pred: impl Fn(&str, &[u8]) -> bool) -> bool {
        u.items
            .iter()
            .any(|i| matches!(i, Item::File(n, _, d) if pred(n, d)))
    }

    fn has_field(u: &Upload, pred: impl Fn(&str, &str) -> bool) -> bool {
        u.items
            .iter()
            .any(|i| matches!(i, Item::Field(k, v) if pred(k, v)))
    }

    #[test]
    fn multipart_fields_and_files() {
        let body = b"--XyZ\r\nContent-Disposition: form-data; name=\"to\"\r\n\r\nbob@partner.example.com\r\n--XyZ\r\nContent-Disposition: form-data; name=\"attachment\"; filename=\"\xe8\xa6\x8b\xe7\xa9\x8d.txt\"\r\nContent-Type: text/plain\r\n\r\ncard 4111 1111 1111 1111\r\n--XyZ--\r\n";
        let u = up("multipart/form-data; boundary=XyZ", "/upload", body);
        assert_eq!(
            u.items[0],
            Item::Field("to".into(), "bob@partner.example.com".into())
        );
        assert_eq!(
            u.items[1],
            Item::File(
                "見積.txt".into(),
                Some("text/plain".into()),
                b"card 4111 1111 1111 1111".to_vec()
            )
        );
        assert_eq!(recipients(&u.items), vec!["bob@partner.example.com"]);
        assert!(u.problems.is_empty(), "{:?}", u.problems);
    }

    #[test]
    fn multipart_irregular_parts_are_read() {
        // No filename, base64 transfer encoding, a bare token, no closing boundary.
        let zip = b"PK\x03\x04 not really a zip but binary \xff\xfe".to_vec();
        let b64zip = ping32dlp::text::base64_encode(&zip);
        let body = format!(
            "--b\r\nContent-Disposition: form-data; name=\"blob\"\r\nContent-Type: application/octet-stream\r\n\r\nbinary-ish\r\n\
             --b\r\nContent-Disposition: form-data; name=\"enc\"; filename=\"x.docx\"\r\nContent-Transfer-Encoding: base64\r\n\r\n{b64zip}\r\n\
             --b\r\nContent-Disposition: form-data; weird; name=\"t\"; filename=\"t.txt\"\r\n\r\nlast part without the closing line"
        );
        let u = up("multipart/form-data; boundary=b", "/", body.as_bytes());
        assert!(has_file(&u, |n, d| n == "blob.bin" && d == b"binary-ish"));
        assert!(has_file(&u, |n, d| n == "x.docx" && d == zip.as_slice()));
        assert!(has_file(&u, |n, d| n == "t.txt" && d.starts_with(b"last part")));
        assert_eq!(u.problems.len(), 1, "the missing closing boundary is noted");
    }

    #[test]
    fn forms_with_binary_and_encoded_values() {
        let u = up(
            "application/x-www-form-urlencoded",
            "/",
            b"to=a%40b.example&body=%E5%80%8B+x&file=%50%4B%03%04%00%ff&b64=Y2FyZCA0MTExIDExMTEgMTExMSAxMTEx",
        );
        assert!(has_field(&u, |k, v| k == "body" && v == "個 x"));
        assert!(has_file(&u, |n, d| n == "file.bin" && d.starts_with(b"PK")));
        assert!(has_field(&u, |k, v| k == "b64 (decoded)"
            && v == "card 4111 1111 1111 1111"));
    }

    #[test]
    fn json_encodings() {
        let pdf = b"%PDF-1.4\n1 0 obj\n<<>>\nendobj\n".to_vec();
        let b = ping32dlp::text::base64_encode(&pdf);
        let (h1, h2) = b.split_at(16);
        let hex: String = "card 4111 1111 1111 1111"
            .bytes()
            .map(|x| format!("{x:02x}"))
            .collect();
        let bytes: Vec<String> = b"card 4111 1111 1111 1111"
            .iter()
            .map(|x| x.to_string())
            .collect();
        let j = format!(
            r#"{{"message":{{"toRecipients":[{{"emailAddress":{{"address":"x@p.example"}}}}]}},
               "a":{{"name":"c.txt","contentBytes":"Y2FyZCA0MTExIDExMTEgMTExMSAxMTEx"}},
               "d":"data:application/pdf;base64,{b}",
               "split":["{h1}","{h2}"],
               "hex":"{hex}",
               "bytes":[{}],
               "raw":"AAECAwQFBgcICQoLDA0ODw=="}}"#,
            bytes.join(",")
        );
        let u = up("application/json", "/api", j.as_bytes());
        assert!(has_field(&u, |k, v| k == "a.contentBytes (decoded)"
            && v == "card 4111 1111 1111 1111"));
        assert!(has_file(&u, |n, d| n == "d.pdf" && d == pdf.as_slice()));
        assert!(
            has_file(&u, |n, d| n.starts_with("split") && d == pdf.as_slice()),
            "{:?}",
            u.items
        );
        assert!(has_field(&u, |k, v| k == "hex (decoded)" && v.contains("4111")));
        assert!(has_field(&u, |k, v| k == "bytes (decoded)" && v.contains("4111")));
        // Opaque binary from a heuristic decode is not kept.
        assert!(!has_file(&u, |n, _| n.starts_with("raw")));
        assert_eq!(recipients(&u.items), vec!["x@p.example"]);
    }

    #[test]
    fn raw_bodies_and_base64_text_bodies() {
        let u = up(
            "application/octet-stream",
            "/upload/%E8%B3%87%E6%96%99.pdf?x=1",
            b"%PDF-1.4",
        );
        assert_eq!(
            u.items,
            vec![Item::File(
                "資料.pdf".into(),
                Some("application/octet-stream".into()),
                b"%PDF-1.4".to_vec()
            )]
        );
        let u = up(
            "text/plain",
            "/note",
            b"Y2FyZCA0MTExIDExMTEgMTExMSAxMTEx\r\n",
        );
        assert!(has_field(&u, |_, v| v == "card 4111 1111 1111 1111"));
    }

    #[test]
    fn content_encodings() {
        use std::io::Write as _;
        let mut g = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        g.write_all(b"hello gzip").unwrap();
        assert_eq!(
            decode_content_encoding(&g.finish().unwrap(), "gzip", 100).unwrap(),
            b"hello gzip"
        );
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(b"hello deflate").unwrap();
        assert_eq!(
            decode_content_encoding(&z.finish().unwrap(), "deflate", 100).unwrap(),
            b"hello deflate"
        );
        // Brotli of "hello": a known small stream.
        let br = [0x0b, 0x02, 0x80, 0x68, 0x65, 0x6c, 0x6c, 0x6f, 0x03];
        assert_eq!(decode_content_encoding(&br, "br", 100).unwrap(), b"hello");
        // zstd of "hello zstd" (a single raw block frame).
        let zst = [
            0x28, 0xb5, 0x2f, 0xfd, 0x20, 0x0a, 0x51, 0x00, 0x00, b'h', b'e', b'l', b'l', b'o',
            b' ', b'z', b's', b't', b'd',
        ];
        assert_eq!(
            decode_content_encoding(&zst, "zstd", 100).unwrap(),
            b"hello zstd"
        );
        let mut g = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        g.write_all(&[b'a'; 10_000]).unwrap();
        assert_eq!(
            decode_content_encoding(&g.finish().unwrap(), "gzip", 1000)
                .unwrap_err()
                .0,
            Reason::LimitExceeded
        );
        assert_eq!(
            decode_content_encoding(b"x", "compress", 100)
                .unwrap_err()
                .0,
            Reason::UnsupportedFormat
        );
        assert_eq!(
            decode_content_encoding(b"not gzip", "gzip", 100)
                .unwrap_err()
                .0,
            Reason::Corrupt
        );
    }

    #[test]
    fn the_message_carries_fields_files_and_recipients() {
        let items = vec![
            Item::Field("to".into(), "x@partner.example.com".into()),
            Item::Field("subject".into(), "見積".into()),
            Item::File("a.bin".into(), None, vec![0, 1, 2]),
        ];
        let m = String::from_utf8(as_message(
            &items,
            Some("ichiro@example.co.jp"),
            "mail.example",
        ))
        .unwrap();
        assert!(m.contains("To: x@partner.example.com\r\n"));
        assert!(m.contains("Subject: =?UTF-8?B?"));
        assert!(m.contains("filename=\"a.bin\""));
    }
}
