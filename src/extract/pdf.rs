//! PDF text: lopdf as the object layer (load, decrypt, bounded stream decompression), our own
//! text walker on top of it. The walker
//!
//! * decodes each font with its `ToUnicode` CMap (our parser: `bfchar` / `bfrange`, code lengths
//!   from `codespacerange`), the predefined Japanese CMaps lopdf lacks (`UniJIS-UCS2-H`,
//!   `UniJIS-UTF16-H`, `90ms-RKSJ-H`, `EUC-H`, `H`, and the GB/CNS/KS `UCS2` kin) or, for simple
//!   fonts, lopdf's one-byte encodings;
//! * follows `Do` into Form XObjects (depth 8), where lopdf's `extract_text` stops;
//! * starts a new line only when the text moves vertically, so `マイナンバー` and `: 1234` shown
//!   in two fonts on one line stay one line.

use std::collections::HashMap;

use lopdf::content::Content;
use lopdf::{Dictionary, Document, Object};

use super::{Ctx, Reason, Segment};

const MAX_FORM_DEPTH: usize = 8;

/// How a font's string bytes become text.
enum FontText {
    /// A ToUnicode CMap: code length in bytes and code → text.
    Map {
        len: usize,
        map: HashMap<u32, String>,
    },
    Utf16Be,
    Utf8,
    Legacy(&'static encoding_rs::Encoding, &'static [u8]),
    /// lopdf's encoding for simple fonts (the font dictionary is looked up again when used).
    Simple,
    /// No way to map the codes to Unicode (Identity-H without ToUnicode).
    Unknown,
}

fn name_of(o: &Object) -> Option<&[u8]> {
    o.as_name().ok()
}

fn deref<'a>(doc: &'a Document, o: &'a Object) -> &'a Object {
    doc.dereference(o).map(|(_, o)| o).unwrap_or(o)
}

fn dict<'a>(doc: &'a Document, o: &'a Object) -> Option<&'a Dictionary> {
    deref(doc, o).as_dict().ok()
}

/// Parses a ToUnicode CMap (`begincodespacerange`, `beginbfchar`, `beginbfrange`).
fn parse_cmap(data: &[u8]) -> (usize, HashMap<u32, String>) {
    let text = String::from_utf8_lossy(data);
    let mut map = HashMap::new();
    let mut code_len = 0usize;
    let hex = |s: &str| -> Option<(u32, usize)> {
        let h = s.trim().trim_start_matches('<').trim_end_matches('>');
        if h.is_empty() || h.len() > 8 {
            return None;
        }
        Some((u32::from_str_radix(h, 16).ok()?, h.len().div_ceil(2)))
    };
    let utf16 = |s: &str| -> Option<String> {
        let h: String = s
            .trim()
            .trim_start_matches('<')
            .trim_end_matches('>')
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        let units: Vec<u16> = (0..h.len() / 4)
            .filter_map(|i| u16::from_str_radix(h.get(i * 4..i * 4 + 4)?, 16).ok())
            .collect();
        Some(String::from_utf16_lossy(&units))
    };
    // Tokens: <hex>, [, ], words.
    let mut toks: Vec<&str> = Vec::new();
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'<' => {
                let e = text[i..].find('>').map_or(b.len(), |k| i + k + 1);
                toks.push(&text[i..e]);
                i = e;
            }
            b'[' | b']' => {
                toks.push(&text[i..i + 1]);
                i += 1;
            }
            c if c.is_ascii_whitespace() => i += 1,
            _ => {
                let s = i;
                while i < b.len()
                    && !b[i].is_ascii_whitespace()
                    && !matches!(b[i], b'<' | b'[' | b']')
                {
                    i += 1;
                }
                toks.push(&text[s..i]);
            }
        }
    }
    let mut k = 0;
    while k < toks.len() && map.len() < 1 << 20 {
        match toks[k] {
            "begincodespacerange" => {
                k += 1;
                while k + 1 < toks.len() && toks[k] != "endcodespacerange" {
                    if let Some((_, l)) = hex(toks[k]) {
                        code_len = code_len.max(l);
                    }
                    k += 2;
                }
            }
            "beginbfchar" => {
                k += 1;
                while k + 1 < toks.len() && toks[k] != "endbfchar" {
                    if let (Some((src, l)), Some(dst)) = (hex(toks[k]), utf16(toks[k + 1])) {
                        code_len = code_len.max(l);
                        map.insert(src, dst);
                    }
                    k += 2;
                }
            }
            "beginbfrange" => {
                k += 1;
                while k + 2 < toks.len() && toks[k] != "endbfrange" {
                    let (Some((lo, l)), Some((hi, _))) = (hex(toks[k]), hex(toks[k + 1])) else {
                        k += 1;
                        continue;
                    };
                    code_len = code_len.max(l);
                    if toks[k + 2] == "[" {
                        let mut j = k + 3;
                        let mut code = lo;
                        while j < toks.len() && toks[j] != "]" {
                            if let Some(d) = utf16(toks[j]) {
                                map.insert(code, d);
                            }
                            code = code.wrapping_add(1);
                            j += 1;
                        }
                        k = j + 1;
                    } else {
                        if let Some(start) = utf16(toks[k + 2]) {
                            let mut units: Vec<u16> = start.encode_utf16().collect();
                            for code in lo..=hi.min(lo.saturating_add(65535)) {
                                map.insert(code, String::from_utf16_lossy(&units));
                                if let Some(last) = units.last_mut() {
                                    *last = last.wrapping_add(1);
                                }
                            }
                        }
                        k += 3;
                    }
                }
            }
            _ => k += 1,
        }
    }
    (code_len.max(1), map)
}

fn font_text(doc: &Document, font_obj: &Object, limit: usize) -> FontText {
    let Some(font) = dict(doc, font_obj) else {
        return FontText::Unknown;
    };
    if let Ok(tu) = font.get(b"ToUnicode") {
        if let Ok(s) = deref(doc, tu).as_stream() {
            if let Ok(data) = s
                .decompressed_content_with_limit(limit)
                .or_else(|_| Ok::<_, lopdf::Error>(s.content.clone()))
            {
                let (len, map) = parse_cmap(&data);
                if !map.is_empty() {
                    return FontText::Map { len, map };
                }
            }
        }
    }
    let encoding = font.get(b"Encoding").ok().map(|o| deref(doc, o));
    let subtype = font.get(b"Subtype").ok().and_then(name_of).unwrap_or(b"");
    if let Some(name) = encoding.and_then(name_of) {
        let n = String::from_utf8_lossy(name);
        if n.starts_with("Uni") && (n.contains("UCS2") || n.contains("UTF16")) {
            return FontText::Utf16Be;
        }
        if n.starts_with("Uni") && n.contains("UTF8") {
            return FontText::Utf8;
        }
        if n.contains("RKSJ") {
            return FontText::Legacy(encoding_rs::SHIFT_JIS, b"");
        }
        if n == "EUC-H" || n == "EUC-V" {
            return FontText::Legacy(encoding_rs::EUC_JP, b"");
        }
        if n == "H" || n == "V" {
            return FontText::Legacy(encoding_rs::ISO_2022_JP, b"\x1b$B");
        }
        if n.starts_with("Identity") {
            return FontText::Unknown;
        }
    }
    if subtype == b"Type0" {
        return FontText::Unknown;
    }
    FontText::Simple
}

fn decode(
    doc: &Document,
    f: &FontText,
    bytes: &[u8],
    out: &mut String,
    fonts_dicts: &HashMap<Vec<u8>, Object>,
    current: &[u8],
) {
    match f {
        FontText::Map { len, map } => {
            for chunk in bytes.chunks(*len) {
                let code = chunk.iter().fold(0u32, |a, &b| (a << 8) | u32::from(b));
                match map.get(&code) {
                    Some(s) => out.push_str(s),
                    None if *len == 1 && code < 0x80 => out.push(char::from(code as u8)),
                    None => {}
                }
            }
        }
        FontText::Utf16Be => {
            let u: Vec<u16> = bytes
                .chunks_exact(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]))
                .collect();
            out.push_str(&String::from_utf16_lossy(&u));
        }
        FontText::Utf8 => out.push_str(&String::from_utf8_lossy(bytes)),
        FontText::Legacy(enc, prefix) => {
            let mut b = prefix.to_vec();
            b.extend_from_slice(bytes);
            out.push_str(&enc.decode_without_bom_handling(&b).0);
        }
        FontText::Simple => {
            let font = fonts_dicts.get(current).and_then(|o| dict(doc, o));
            match font.and_then(|f| f.get_font_encoding(doc).ok()) {
                Some(enc) => {
                    if let Ok(s) = Document::decode_text(&enc, bytes) {
                        out.push_str(&s)
                    }
                }
                None => out.extend(bytes.iter().map(|&b| char::from(b))),
            }
        }
        FontText::Unknown => {}
    }
}

struct Walker<'d> {
    doc: &'d Document,
    limit: usize,
    text: String,
    missing_map: bool,
    forms_seen: usize,
}

impl Walker<'_> {
    /// Walks a content stream with its resources.
    fn content(
        &mut self,
        data: &[u8],
        resources: Option<&Dictionary>,
        inherited: Option<&Dictionary>,
        depth: usize,
    ) {
        let Ok(content) = Content::decode(data) else {
            return;
        };
        let doc = self.doc;
        let res = resources.or(inherited);
        let font_dict = res
            .and_then(|r| r.get(b"Font").ok())
            .and_then(|o| dict(doc, o));
        let mut font_objs: HashMap<Vec<u8>, Object> = HashMap::new();
        if let Some(fd) = font_dict {
            for (k, v) in fd.iter() {
                font_objs.insert(k.clone(), v.clone());
            }
        }
        let mut fonts: HashMap<Vec<u8>, FontText> = HashMap::new();
        let mut current: Vec<u8> = Vec::new();
        let mut y: Option<f32> = None;
        for op in &content.operations {
            if self.text.len() > self.limit {
                return;
            }
            let num = |i: usize| op.operands.get(i).and_then(|o| o.as_float().ok());
            match op.operator.as_str() {
                "Tf" => {
                    if let Some(n) = op.operands.first().and_then(name_of) {
                        current = n.to_vec();
                        if !fonts.contains_key(&current) {
                            let ft = font_objs
                                .get(&current)
                                .map_or(FontText::Unknown, |o| font_text(doc, o, self.limit));
                            fonts.insert(current.clone(), ft);
                        }
                    }
                }
                "Td" | "TD" if num(1).is_some_and(|ty| ty.abs() > 0.01) => self.newline(),
                "Tm" => {
                    let ny = num(5);
                    if let (Some(a), Some(b)) = (y, ny) {
                        if (a - b).abs() > 0.5 {
                            self.newline();
                        }
                    }
                    y = ny;
                }
                "T*" => self.newline(),
                "Tj" | "'" | "\"" | "TJ" => {
                    if matches!(op.operator.as_str(), "'" | "\"") {
                        self.newline();
                    }
                    let Some(f) = fonts.get(&current) else {
                        continue;
                    };
                    if matches!(f, FontText::Unknown) {
                        self.missing_map = true;
                    }
                    for o in &op.operands {
                        match o {
                            Object::String(b, _) => {
                                decode(doc, f, b, &mut self.text, &font_objs, &current)
                            }
                            Object::Array(items) => {
                                for it in items {
                                    match it {
                                        Object::String(b, _) => {
                                            decode(doc, f, b, &mut self.text, &font_objs, &current)
                                        }
                                        Object::Integer(n) if *n < -250 => self.text.push(' '),
                                        Object::Real(n) if *n < -250.0 => self.text.push(' '),
                                        _ => {}
                                    }
                                }
                            }
                            _ => {}
                        }
                    }
                }
                "Do" if depth < MAX_FORM_DEPTH => {
                    let Some(name) = op.operands.first().and_then(name_of) else {
                        continue;
                    };
                    let xobjs = res
                        .and_then(|r| r.get(b"XObject").ok())
                        .and_then(|o| dict(doc, o));
                    let Some(xo) = xobjs.and_then(|x| x.get(name).ok()) else {
                        continue;
                    };
                    let Ok(stream) = deref(doc, xo).as_stream() else {
                        continue;
                    };
                    if stream.dict.get(b"Subtype").ok().and_then(name_of) != Some(b"Form") {
                        continue;
                    }
                    self.forms_seen += 1;
                    if self.forms_seen > 10_000 {
                        continue;
                    }
                    let data = stream
                        .decompressed_content_with_limit(self.limit)
                        .unwrap_or_else(|_| stream.content.clone());
                    let own = stream
                        .dict
                        .get(b"Resources")
                        .ok()
                        .and_then(|o| dict(doc, o));
                    self.newline();
                    self.content(&data, own, res, depth + 1);
                    self.newline();
                }
                _ => {}
            }
        }
    }

    fn newline(&mut self) {
        if !self.text.is_empty() && !self.text.ends_with('\n') {
            self.text.push('\n');
        }
    }
}

/// A PDF: one segment per page. Returns the document properties.
pub(crate) fn pdf(ctx: &mut Ctx<'_>, location: &str, data: &[u8]) -> Vec<(String, String)> {
    let l = ctx.limits().clone();
    // lopdf loads every object eagerly: refuse files with more objects than the limit first.
    let objects = memchr::memmem::find_iter(data, b" obj").count();
    if objects > l.pdf_objects {
        ctx.unscannable(location, Reason::LimitExceeded, "pdf_objects");
        return Vec::new();
    }
    let passwords = ctx.passwords();
    let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let load = |pw: Option<String>| {
            Document::load_mem_with_options(
                data,
                lopdf::LoadOptions {
                    password: pw,
                    max_decompressed_size: Some(l.entry_bytes as usize),
                    ..Default::default()
                },
            )
        };
        let mut doc = load(None).map_err(|e| e.to_string())?;
        let mut locked = doc.is_encrypted() && doc.get_pages().is_empty();
        if locked {
            for pw in &passwords {
                if let Ok(d) = load(Some(pw.clone())) {
                    if !(d.is_encrypted() && d.get_pages().is_empty()) {
                        doc = d;
                        locked = false;
                        break;
                    }
                }
            }
        }
        if locked {
            return Ok::<_, String>(None);
        }
        let mut props = Vec::new();
        if let Some(info) = doc.trailer.get(b"Info").ok().and_then(|o| dict(&doc, o)) {
            for (key, name) in [(&b"Title"[..], "title"), (b"Author", "author")] {
                if let Some(v) = info
                    .get(key)
                    .ok()
                    .and_then(|o| lopdf::decode_text_string(deref(&doc, o)).ok())
                {
                    if !v.trim().is_empty() {
                        props.push((name.to_string(), v.trim().to_string()));
                    }
                }
            }
        }
        let pages = doc.get_pages();
        let mut out: Vec<(u32, String, bool)> = Vec::new();
        let mut too_many = false;
        for (&no, &id) in &pages {
            if out.len() >= l.pdf_pages {
                too_many = true;
                break;
            }
            let data = doc
                .get_page_content_with_limit(id, l.entry_bytes as usize)
                .unwrap_or_default();
            let (res_dict, res_ids) = doc.get_page_resources(id).unwrap_or((None, Vec::new()));
            let merged = res_dict.cloned().or_else(|| {
                res_ids
                    .first()
                    .and_then(|rid| doc.get_dictionary(*rid).ok())
                    .cloned()
            });
            let mut w = Walker {
                doc: &doc,
                limit: l.text_per_object,
                text: String::new(),
                missing_map: false,
                forms_seen: 0,
            };
            w.content(&data, merged.as_ref(), None, 0);
            out.push((no, w.text, w.missing_map));
        }
        Ok(Some((props, out, too_many)))
    }));
    match run {
        Err(_) => {
            ctx.unscannable(
                location,
                Reason::Corrupt,
                "pdf: the parser failed on this file",
            );
            Vec::new()
        }
        Ok(Err(e)) => {
            ctx.unscannable(location, Reason::Corrupt, format!("pdf: {e}"));
            Vec::new()
        }
        Ok(Ok(None)) => {
            ctx.unscannable(location, Reason::Encrypted, "pdf");
            Vec::new()
        }
        Ok(Ok(Some((props, pages, too_many)))) => {
            if too_many {
                ctx.unscannable(location, Reason::LimitExceeded, "pdf_pages");
            }
            let mut unmapped = false;
            for (no, text, missing) in pages {
                unmapped |= missing && text.trim().is_empty();
                if !ctx.in_time(location) {
                    break;
                }
                ctx.push_text(Segment {
                    location: location.to_string(),
                    text,
                    page: Some(no),
                    ..Segment::default()
                });
            }
            if unmapped {
                ctx.unscannable(
                    location,
                    Reason::UnsupportedFormat,
                    "pdf: text in a font without a Unicode map",
                );
            }
            props
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cmap_parsing() {
        let cmap = b"begincmap 1 begincodespacerange <0000> <FFFF> endcodespacerange 2 beginbfchar <0003> <0020> <0010> <500B> endbfchar 2 beginbfrange <0020> <0022> <0041> <0030> <0031> [<3042> <3044>] endbfrange endcmap";
        let (len, map) = parse_cmap(cmap);
        assert_eq!(len, 2);
        assert_eq!(map.get(&0x10).map(String::as_str), Some("個"));
        assert_eq!(map.get(&0x21).map(String::as_str), Some("B"));
        assert_eq!(map.get(&0x31).map(String::as_str), Some("い"));
    }
}
