//! Messages: mail-parser (0.11, zero-copy) for the MIME tree, headers and offsets; our own
//! decoding where 0.11 falls short:
//!
//! * text bodies are decoded from their raw bytes (transfer encoding, then the charset through
//!   [`crate::text::encoding_for_label`], which knows `CP932`, `ISO-2022-JP-2`, `cp50220`, ...;
//!   an unlabeled body is sniffed with a Japanese hint);
//! * attachments are taken from their raw bytes too, so size and SHA-256 are those of the file;
//! * a header value that came back with U+FFFD (raw 8-bit CP932 names, a Shift_JIS character
//!   split over two encoded-words) is decoded again from the raw header bytes;
//! * nested `message/rfc822` parts are parsed again from their own bytes (offsets in 0.11 refer
//!   to the root buffer), and MIME depth and part counts are bounded here.

use mail_parser::{Address, MessageParser, MessagePart, MimeHeaders, PartType};

use super::{inspect, inspect_utf8, join, Attachment, Ctx, FileKind, MessageInfo, Reason, Segment};

const B64: [u8; 256] = {
    let mut t = [0xFFu8; 256];
    let mut i = 0;
    while i < 26 {
        t[b'A' as usize + i] = i as u8;
        t[b'a' as usize + i] = 26 + i as u8;
        i += 1;
    }
    let mut d = 0;
    while d < 10 {
        t[b'0' as usize + d] = 52 + d as u8;
        d += 1;
    }
    t[b'+' as usize] = 62;
    t[b'-' as usize] = 62;
    t[b'/' as usize] = 63;
    t[b'_' as usize] = 63;
    t
};

/// Decodes base64, skipping anything that is not in the alphabet (line breaks, a truncated end),
/// stopping at `=`.
pub(crate) fn base64(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() / 4 * 3 + 3);
    let mut acc = 0u32;
    let mut n = 0;
    let mut i = 0;
    // Fast path: four alphabet characters at a time (MIME lines are 76 of them).
    while i < data.len() {
        if i + 4 <= data.len() && n == 0 {
            let (a, b, c, d) = (
                B64[data[i] as usize],
                B64[data[i + 1] as usize],
                B64[data[i + 2] as usize],
                B64[data[i + 3] as usize],
            );
            if (a | b | c | d) & 0x80 == 0 {
                let v = (u32::from(a) << 18)
                    | (u32::from(b) << 12)
                    | (u32::from(c) << 6)
                    | u32::from(d);
                out.extend_from_slice(&[(v >> 16) as u8, (v >> 8) as u8, v as u8]);
                i += 4;
                continue;
            }
        }
        let c = data[i];
        i += 1;
        if c == b'=' {
            break;
        }
        let v = B64[c as usize];
        if v & 0x80 != 0 {
            continue;
        }
        acc = (acc << 6) | u32::from(v);
        n += 1;
        if n == 4 {
            out.extend_from_slice(&[(acc >> 16) as u8, (acc >> 8) as u8, acc as u8]);
            acc = 0;
            n = 0;
        }
    }
    // A partial group: 2 characters make 1 byte, 3 make 2.
    match n {
        2 => out.push((acc >> 4) as u8),
        3 => out.extend_from_slice(&[(acc >> 10) as u8, (acc >> 2) as u8]),
        _ => {}
    }
    out
}

/// Decodes quoted-printable (soft line breaks, `=XX`; a broken escape is kept as is).
pub(crate) fn quoted_printable(data: &[u8], header: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    let mut i = 0;
    let hex = |b: u8| match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'A'..=b'F' => Some(b - b'A' + 10),
        b'a'..=b'f' => Some(b - b'a' + 10),
        _ => None,
    };
    while i < data.len() {
        match data[i] {
            b'=' => {
                if data.get(i + 1) == Some(&b'\r') && data.get(i + 2) == Some(&b'\n') {
                    i += 3;
                } else if data.get(i + 1) == Some(&b'\n') {
                    i += 2;
                } else if let (Some(h), Some(l)) = (
                    data.get(i + 1).and_then(|&b| hex(b)),
                    data.get(i + 2).and_then(|&b| hex(b)),
                ) {
                    out.push(h << 4 | l);
                    i += 3;
                } else {
                    out.push(b'=');
                    i += 1;
                }
            }
            b'_' if header => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

/// Text in a labelled charset (our alias table first), or sniffed when the label is missing or
/// unknown.
pub(crate) fn decode_charset(bytes: &[u8], label: Option<&str>) -> String {
    match label.and_then(crate::text::encoding_for_label) {
        Some(enc) if enc == encoding_rs::UTF_8 && simdutf8::basic::from_utf8(bytes).is_err() => {
            crate::text::decode_text(bytes).text.into_owned()
        }
        Some(enc) => enc.decode_without_bom_handling(bytes).0.into_owned(),
        None => crate::text::decode_text(bytes).text.into_owned(),
    }
}

/// [`decode_charset`] of a string that is a part's bytes and valid UTF-8 (`decoded_utf8`: the
/// label is absent or UTF-8): the same text, without checking or copying it again.
fn decode_checked(s: String, label: Option<&str>) -> String {
    if label.is_some() {
        return s; // valid UTF-8 in a UTF-8 label is itself, a BOM kept as U+FEFF
    }
    let text = crate::text::decode_str(&s).text;
    // All of the string is the text (no BOM, UTF-16 or escapes): moved, as `inspect_utf8` does.
    if matches!(&text, std::borrow::Cow::Borrowed(t) if t.len() == s.len()) {
        s
    } else {
        text.into_owned()
    }
}

/// RFC 2047 encoded-words, with adjacent words of one charset joined at the byte level (a
/// Shift_JIS character split over two words decodes whole), and raw 8-bit text sniffed.
pub fn decode_header_value(raw: &[u8]) -> String {
    let mut out = String::new();
    let mut pending: Vec<u8> = Vec::new();
    let mut pending_cs = String::new();
    let mut i = 0;
    let mut last_was_word = false;
    let flush = |out: &mut String, pending: &mut Vec<u8>, cs: &str| {
        if !pending.is_empty() {
            out.push_str(&decode_charset(pending, Some(cs)));
            pending.clear();
        }
    };
    while i < raw.len() {
        if raw[i..].starts_with(b"=?") {
            if let Some((cs, bytes, end)) = encoded_word(&raw[i..]) {
                if !(last_was_word && cs.eq_ignore_ascii_case(&pending_cs)) {
                    flush(&mut out, &mut pending, &pending_cs);
                }
                pending_cs = cs;
                pending.extend_from_slice(&bytes);
                i += end;
                last_was_word = true;
                continue;
            }
        }
        // Whitespace between two encoded-words is dropped.
        if last_was_word && raw[i].is_ascii_whitespace() {
            let j = raw[i..]
                .iter()
                .position(|b| !b.is_ascii_whitespace())
                .map_or(raw.len(), |k| i + k);
            if raw[j..].starts_with(b"=?") && encoded_word(&raw[j..]).is_some() {
                i = j;
                continue;
            }
        }
        flush(&mut out, &mut pending, &pending_cs);
        last_was_word = false;
        let next = memchr::memmem::find(&raw[i + 1..], b"=?").map_or(raw.len(), |k| i + 1 + k);
        out.push_str(&crate::text::decode_text(&raw[i..next]).text);
        i = next;
    }
    flush(&mut out, &mut pending, &pending_cs);
    out
}

/// One `=?charset?B|Q?text?=`: (charset, bytes, length consumed).
fn encoded_word(s: &[u8]) -> Option<(String, Vec<u8>, usize)> {
    let body = s.get(2..)?;
    let q1 = body.iter().position(|&b| b == b'?')?;
    let cs = std::str::from_utf8(&body[..q1]).ok()?;
    let cs = cs.split('*').next()?.to_string(); // RFC 2231 language suffix
    let enc = *body.get(q1 + 1)?;
    if body.get(q1 + 2) != Some(&b'?') {
        return None;
    }
    let text_start = q1 + 3;
    let end = memchr::memmem::find(&body[text_start..], b"?=")? + text_start;
    let text = &body[text_start..end];
    if text.iter().any(|&b| b == b' ' || b == b'\n') {
        return None;
    }
    let bytes = match enc.to_ascii_uppercase() {
        b'B' => base64(text),
        b'Q' => quoted_printable(text, true),
        _ => return None,
    };
    Some((cs, bytes, 2 + end + 2))
}

/// The raw bytes of a header field of `part` (name included), unfolded.
fn raw_header(raw: &[u8], part: &MessagePart<'_>, name: &str) -> Option<Vec<u8>> {
    let head = raw.get(part.offset_header as usize..(part.offset_body as usize).min(raw.len()))?;
    let mut found: Option<Vec<u8>> = None;
    for line in head.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if let Some(f) = found.as_mut() {
            if line.first().is_some_and(|&b| b == b' ' || b == b'\t') {
                f.push(b' ');
                f.extend_from_slice(line.trim_ascii_start());
                continue;
            }
            break;
        }
        if line.len() > name.len()
            && line[..name.len()].eq_ignore_ascii_case(name.as_bytes())
            && line[name.len()] == b':'
        {
            found = Some(line[name.len() + 1..].to_vec());
        }
    }
    found
}

/// A parameter (`filename=`, `name=`) of a raw header value, unquoted.
fn raw_param(value: &[u8], param: &str) -> Option<Vec<u8>> {
    let lower = value.to_ascii_lowercase();
    let mut from = 0;
    while let Some(k) = memchr::memmem::find(&lower[from..], param.as_bytes()) {
        let at = from + k;
        let before_ok = at == 0 || matches!(lower[at - 1], b';' | b' ' | b'\t');
        let mut j = at + param.len();
        while j < value.len() && value[j] == b' ' {
            j += 1;
        }
        if before_ok && value.get(j) == Some(&b'=') {
            j += 1;
            while j < value.len() && value[j] == b' ' {
                j += 1;
            }
            if value.get(j) == Some(&b'"') {
                let rest = &value[j + 1..];
                let end = rest.iter().position(|&b| b == b'"').unwrap_or(rest.len());
                return Some(rest[..end].to_vec());
            }
            let rest = &value[j..];
            let end = rest
                .iter()
                .position(|&b| b == b';' || b.is_ascii_whitespace())
                .unwrap_or(rest.len());
            return Some(rest[..end].to_vec());
        }
        from = at + 1;
    }
    None
}

/// True when mail-parser's text of `part` is the part's file bytes, unchanged: a base64 part
/// (decoded into a buffer of its own) whose charset is absent or UTF-8, which mail-parser turns
/// into a string by checking the bytes as UTF-8, no conversion. Invalid UTF-8 becomes U+FFFD
/// there, so a text containing U+FFFD is not taken (the caller checks). A part with an encoding
/// problem holds mail-parser's recovery, not the decoded bytes.
fn decoded_utf8(part: &MessagePart<'_>) -> bool {
    !part.is_encoding_problem
        && part
            .content_transfer_encoding()
            .is_some_and(|c| c.trim().eq_ignore_ascii_case("base64"))
        && part
            .content_type()
            .and_then(|c| c.attribute("charset"))
            .is_none_or(|cs| {
                encoding_rs::Encoding::for_label(cs.as_bytes()) == Some(encoding_rs::UTF_8)
            })
}

/// The decoded bytes of a part's body, from the raw message.
fn part_bytes(raw: &[u8], part: &MessagePart<'_>) -> Vec<u8> {
    let body = raw
        .get(part.offset_body as usize..(part.offset_end as usize).min(raw.len()))
        .unwrap_or(&[]);
    let cte = part
        .content_transfer_encoding()
        .unwrap_or("")
        .to_ascii_lowercase();
    match cte.trim() {
        "base64" => base64(body),
        "quoted-printable" => quoted_printable(body, false),
        _ => {
            // The body ends before the line break that precedes the boundary.
            let b = body
                .strip_suffix(b"\r\n")
                .or_else(|| body.strip_suffix(b"\n"))
                .unwrap_or(body);
            b.to_vec()
        }
    }
}

fn addresses(a: Option<&Address<'_>>) -> Vec<String> {
    let Some(a) = a else { return Vec::new() };
    a.iter()
        .filter_map(|x| {
            let addr = x.address()?;
            Some(match x.name() {
                Some(n) if !n.is_empty() => format!("{n} <{addr}>"),
                _ => addr.to_string(),
            })
        })
        .collect()
}

/// Some mailers encode a whole address header, address included, as one encoded-word
/// (`From: =?utf-8?b?5bGx55SwIDx0YXJvQGV4YW1wbGUuY28uanA+?=`): RFC 2047 does not allow it and
/// the parser finds no address. Then the decoded header is parsed again as an address list.
fn addresses_or_raw(
    parsed: Vec<String>,
    raw: &[u8],
    root: &MessagePart<'_>,
    name: &str,
) -> Vec<String> {
    if !parsed.is_empty() {
        return parsed;
    }
    let Some(value) = raw_header(raw, root, name) else {
        return parsed;
    };
    if !value.windows(2).any(|w| w == b"=?") {
        return parsed;
    }
    let decoded = decode_header_value(&value);
    let decoded: String = decoded
        .chars()
        .filter(|c| !c.is_control())
        .take(4096)
        .collect();
    let mini = format!("{name}: {decoded}\r\n\r\n");
    let Some(m) = mail_parser::MessageParser::default().parse_headers(mini.as_bytes()) else {
        return parsed;
    };
    let a = match name {
        "From" => m.from(),
        "To" => m.to(),
        "Cc" => m.cc(),
        "Bcc" => m.bcc(),
        _ => m.reply_to(),
    };
    addresses(a)
}

/// Password lines in a body: `パスワード：Xy7#kP2q`, `PW: ...`, `Password is ...`, or the keyword
/// on one line and the password alone on the next.
pub fn password_candidates(text: &str) -> Vec<String> {
    const KEYS: &[&str] = &[
        "解凍パスワード",
        "パスワード",
        "パス ワード",
        "暗証番号",
        "解凍キー",
        "password",
        "passcode",
        "pass word",
        "pwd",
        "pw",
        "パスコード",
    ];
    // One search for every key (ASCII letters in any case), leftmost first and, at the same
    // place, the key listed first; a text without any key is passed over in one call.
    static SEARCH: std::sync::OnceLock<aho_corasick::AhoCorasick> = std::sync::OnceLock::new();
    let search = SEARCH.get_or_init(|| {
        aho_corasick::AhoCorasick::builder()
            .ascii_case_insensitive(true)
            .match_kind(aho_corasick::MatchKind::LeftmostFirst)
            .build(KEYS)
            .expect("the password keys compile")
    });
    let mut out: Vec<String> = Vec::new();
    if !search.is_match(text) {
        return out;
    }
    let lines: Vec<&str> = text.lines().collect();
    for (n, line) in lines.iter().enumerate() {
        let Some(m) = search.find(line) else {
            continue;
        };
        let (at, key) = (m.start(), KEYS[m.pattern().as_usize()]);
        // `pw` and `pwd` only as words.
        if key.starts_with("pw") && line[..at].chars().last().is_some_and(char::is_alphanumeric) {
            continue;
        }
        let rest = &line[m.end()..];
        let rest = rest.trim_start_matches(|c: char| {
            c.is_whitespace() || matches!(c, ':' | '：' | '=' | '＝' | '】' | ']' | ')' | '）')
        });
        let rest = rest
            .strip_prefix("は")
            .or_else(|| rest.strip_prefix("is"))
            .unwrap_or(rest);
        let rest = rest.trim_start_matches(|c: char| {
            c.is_whitespace() || matches!(c, ':' | '：' | '「' | '『' | '"')
        });
        let mut token: String = rest
            .chars()
            .take_while(|c| !c.is_whitespace() && !matches!(c, '」' | '』' | '"' | '。' | '、'))
            .collect();
        if token.is_empty() || token.chars().all(|c| !c.is_ascii()) {
            // The password on the next line, alone.
            if let Some(next) = lines.get(n + 1) {
                let t = next.trim();
                if !t.is_empty()
                    && !t.contains(char::is_whitespace)
                    && t.chars().count() <= 64
                    && t.is_ascii()
                {
                    token = t.to_string();
                }
            }
        }
        let token = token.trim_end_matches(['.', ',', ')', '）']).to_string();
        if (4..=64).contains(&token.chars().count()) && token.is_ascii() && !out.contains(&token) {
            out.push(token);
        }
    }
    out
}

struct Walk<'c, 'o> {
    ctx: &'c mut Ctx<'o>,
    raw: &'c [u8],
    /// Per part, mail-parser's text when it is the part's decoded bytes (taken by the leaf).
    texts: Vec<Option<String>>,
    prefix: String,
    depth: u32,
    parts: usize,
    bodies: usize,
    attachments: usize,
}

/// Extracts one message (`raw`) whose location prefix is `prefix` ("" at the top).
pub(crate) fn message(ctx: &mut Ctx<'_>, raw: &[u8], prefix: &str, depth: u32, top: bool) {
    if depth > ctx.limits().container_depth {
        ctx.unscannable(
            if prefix.is_empty() { "message" } else { prefix },
            Reason::LimitExceeded,
            "container_depth",
        );
        return;
    }
    let Some(mut msg) = MessageParser::default().parse(raw) else {
        ctx.unscannable(
            if prefix.is_empty() { "message" } else { prefix },
            Reason::Corrupt,
            "not a message",
        );
        let text = crate::text::decode_text(raw).text.into_owned();
        ctx.push_text(Segment {
            location: join(prefix, "body"),
            text,
            ..Segment::default()
        });
        return;
    };
    // The walk decodes text parts from the raw message with its own charset rules: mail-parser's
    // converted copies are dropped before it starts, so that a large text attachment is not held
    // twice while it is inspected. Kept are those that are the part's decoded bytes exactly
    // (see `decoded_utf8`): the walk takes them instead of decoding the part again.
    let mut texts = Vec::with_capacity(msg.parts.len());
    for p in &mut msg.parts {
        let mut kept = None;
        if matches!(p.body, PartType::Text(_) | PartType::Html(_)) {
            let exact = decoded_utf8(p);
            if let PartType::Text(t) | PartType::Html(t) =
                std::mem::replace(&mut p.body, PartType::Text("".into()))
            {
                if exact && !t.contains('\u{FFFD}') {
                    kept = Some(t.into_owned());
                }
            }
        }
        texts.push(kept);
    }
    let root = &msg.parts[0];
    let mut subject = msg.subject().map(str::to_string);
    if subject.as_deref().is_some_and(|s| s.contains('\u{FFFD}')) {
        if let Some(r) = raw_header(raw, root, "Subject") {
            subject = Some(decode_header_value(&r).trim().to_string());
        }
    }
    let info = MessageInfo {
        subject: subject.clone(),
        from: addresses_or_raw(addresses(msg.from()), raw, root, "From"),
        to: addresses_or_raw(addresses(msg.to()), raw, root, "To"),
        cc: addresses_or_raw(addresses(msg.cc()), raw, root, "Cc"),
        bcc: addresses_or_raw(addresses(msg.bcc()), raw, root, "Bcc"),
        reply_to: addresses_or_raw(addresses(msg.reply_to()), raw, root, "Reply-To"),
        date: msg.date().map(|d| d.to_rfc3339()),
        message_id: msg.message_id().map(str::to_string),
    };
    if top {
        ctx.out.message = Some(info);
    }
    if let Some(s) = subject {
        ctx.push_text(Segment {
            location: join(prefix, "subject"),
            text: s,
            ..Segment::default()
        });
    }
    let mut w = Walk {
        ctx,
        raw,
        texts,
        prefix: prefix.to_string(),
        depth,
        parts: 0,
        bodies: 0,
        attachments: 0,
    };
    w.part(&msg.parts, 0, 0, None);
}

impl Walk<'_, '_> {
    fn loc(&self, name: &str) -> String {
        join(&self.prefix, name)
    }

    fn part(&mut self, parts: &[MessagePart<'_>], id: usize, mime_depth: u32, group: Option<u32>) {
        let Some(part) = parts.get(id) else { return };
        self.parts += 1;
        let here = self.loc("body");
        if self.parts > self.ctx.limits().mime_parts {
            if self.parts == self.ctx.limits().mime_parts + 1 {
                self.ctx
                    .unscannable(&here, Reason::LimitExceeded, "mime_parts");
            }
            return;
        }
        if mime_depth > self.ctx.limits().mime_depth {
            self.ctx
                .unscannable(&here, Reason::LimitExceeded, "mime_depth");
            return;
        }
        if !self.ctx.in_time(&here) || !self.ctx.take_object(&here) {
            return;
        }
        if part.is_encoding_problem {
            self.ctx.unscannable(
                &here,
                Reason::Corrupt,
                "malformed MIME (missing end boundary or bad encoding)",
            );
        }
        match &part.body {
            PartType::Multipart(children) => {
                let alt = part.is_content_type("multipart", "alternative");
                let g = if alt {
                    Some(self.ctx.new_group())
                } else {
                    group
                };
                for &c in children {
                    self.part(parts, c as usize, mime_depth + 1, g);
                }
            }
            PartType::Message(nested) => {
                let name = self.name_of(part).unwrap_or_else(|| {
                    let s = nested.subject().unwrap_or("message").trim();
                    let s: String = s
                        .chars()
                        .filter(|c| !matches!(c, '/' | '\\'))
                        .take(60)
                        .collect();
                    format!("{}.eml", if s.is_empty() { "message" } else { &s })
                });
                let loc = self.loc(&name);
                let bytes = nested.raw_message();
                if self.depth == 0 && self.ctx.opts.keep_attachments {
                    self.ctx.out.kept.push((loc.clone(), bytes.to_vec()));
                }
                self.ctx.out.attachments.push(Attachment {
                    location: loc.clone(),
                    name: name.clone(),
                    declared_type: Some("message/rfc822".into()),
                    kind: FileKind::Eml,
                    size: bytes.len() as u64,
                    sha256: super::sha256_hex(bytes),
                    depth: self.depth,
                    ..Attachment::default()
                });
                message(self.ctx, bytes, &loc, self.depth + 1, false);
            }
            _ => self.leaf(part, id, group),
        }
    }

    fn name_of(&self, part: &MessagePart<'_>) -> Option<String> {
        let name = part.attachment_name()?.to_string();
        if !name.contains('\u{FFFD}') {
            return Some(name);
        }
        // Raw 8-bit names or a character split over two encoded-words: decode the raw header.
        for (h, p) in [
            ("Content-Disposition", "filename"),
            ("Content-Type", "name"),
        ] {
            if let Some(v) = raw_header(self.raw, part, h).and_then(|v| raw_param(&v, p)) {
                let n = decode_header_value(&v);
                if !n.is_empty() && !n.contains('\u{FFFD}') {
                    return Some(n);
                }
            }
        }
        Some(name)
    }

    fn leaf(&mut self, part: &MessagePart<'_>, id: usize, group: Option<u32>) {
        let decoded = self.texts.get_mut(id).and_then(Option::take);
        let ct = part.content_type();
        let ctype = ct
            .map(|c| c.ctype().to_ascii_lowercase())
            .unwrap_or_else(|| "text".into());
        let sub = ct
            .and_then(|c| c.subtype())
            .map(str::to_ascii_lowercase)
            .unwrap_or_else(|| "plain".into());
        let declared = format!("{ctype}/{sub}");
        let disposition_attachment = part
            .content_disposition()
            .is_some_and(|d| d.ctype().eq_ignore_ascii_case("attachment"));
        let name = self.name_of(part);
        let is_body = name.is_none()
            && !disposition_attachment
            && ctype == "text"
            && (sub == "plain" || sub == "html");
        if is_body {
            let charset = ct.and_then(|c| c.attribute("charset"));
            let mut text = match decoded {
                Some(s) => decode_checked(s, charset),
                None => decode_charset(&part_bytes(self.raw, part), charset),
            };
            let grid;
            if sub == "html" {
                (text, grid) = super::html::html_to_text_grid(&text);
            } else {
                // A table, or cells pasted out of a sheet or CSV lines between the prose.
                grid = super::csvgrid::plain_text_grid(&text, super::GRID_CELLS);
            }
            for c in password_candidates(&text) {
                if !self.ctx.out.password_candidates.contains(&c) {
                    self.ctx.out.password_candidates.push(c);
                }
            }
            self.bodies += 1;
            self.ctx.push_text(Segment {
                location: self.loc("body"),
                text,
                alternative_group: group,
                grid,
                ..Segment::default()
            });
            return;
        }
        self.attachments += 1;
        let name = name.unwrap_or_else(|| {
            format!("attachment-{}{}", self.attachments, default_ext(&declared))
        });
        let loc = self.loc(&name);
        if let Some(text) = decoded {
            if self.depth == 0 && self.ctx.opts.keep_attachments {
                self.ctx
                    .out
                    .kept
                    .push((loc.clone(), text.as_bytes().to_vec()));
            }
            inspect_utf8(self.ctx, &loc, &name, Some(&declared), text, self.depth);
            return;
        }
        // Binary parts were decoded by mail-parser already; text parts were converted to UTF-8
        // by it, so their file bytes come from the raw message.
        let owned;
        let bytes: &[u8] = match &part.body {
            PartType::Binary(b) | PartType::InlineBinary(b) => b,
            _ => {
                owned = part_bytes(self.raw, part);
                &owned
            }
        };
        if self.depth == 0 && self.ctx.opts.keep_attachments {
            self.ctx.out.kept.push((loc.clone(), bytes.to_vec()));
        }
        inspect(self.ctx, &loc, &name, Some(&declared), bytes, self.depth);
    }
}

fn default_ext(mime: &str) -> &'static str {
    match mime {
        "text/plain" => ".txt",
        "text/html" => ".html",
        "text/csv" => ".csv",
        "application/pdf" => ".pdf",
        "application/zip" => ".zip",
        "application/ms-tnef" | "application/vnd.ms-tnef" => ".dat",
        "image/png" => ".png",
        "image/jpeg" => ".jpg",
        "image/gif" => ".gif",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoded_words_join_split_characters() {
        // 見積書 in Shift_JIS is 8C A9 90 CF 8F 91; split after the first byte of 積.
        let w1 = format!("=?Shift_JIS?B?{}?=", b64(&[0x8C, 0xA9, 0x90]));
        let w2 = format!("=?Shift_JIS?B?{}?=", b64(&[0xCF, 0x8F, 0x91]));
        assert_eq!(
            decode_header_value(format!("{w1} {w2}.xlsx").as_bytes()),
            "見積書.xlsx"
        );
        assert_eq!(
            decode_header_value(b"=?iso-2022-jp?B?GyRCPFIzMEhrGyhC?="),
            "社外秘"
        );
        let sjis = encoding_rs::SHIFT_JIS.encode("生名前.csv").0;
        assert_eq!(decode_header_value(&sjis), "生名前.csv");
    }

    fn b64(b: &[u8]) -> String {
        const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut s = String::new();
        for c in b.chunks(3) {
            let n = (u32::from(c[0]) << 16)
                | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
                | u32::from(*c.get(2).unwrap_or(&0));
            for k in 0..4 {
                if k <= c.len() {
                    s.push(A[((n >> (18 - 6 * k)) & 63) as usize] as char);
                } else {
                    s.push('=');
                }
            }
        }
        s
    }

    /// A text file attached in base64 is inspected as the same file given on its own: same
    /// bytes (size, SHA-256), kind and text, whether the walk takes mail-parser's checked UTF-8
    /// string (no charset or UTF-8) or decodes the part itself (other charsets, invalid UTF-8).
    #[test]
    fn base64_text_parts_are_the_files_bytes() {
        let sjis = encoding_rs::SHIFT_JIS
            .encode("氏名,個人番号\n佐藤,123456789018\n")
            .0;
        let iso = encoding_rs::ISO_2022_JP
            .encode("マイナンバー 123456789018\n")
            .0;
        let utf16: Vec<u8> = "個人番号,mobile\r\n123456789018,09012345678\r\n"
            .encode_utf16()
            .flat_map(u16::to_le_bytes)
            .collect();
        let files: Vec<(&str, &str, Vec<u8>)> = vec![
            (
                "a.csv",
                "text/csv",
                "氏名,個人番号\n佐藤,123456789018\n".into(),
            ),
            (
                "b.csv",
                "text/csv; charset=UTF-8",
                "\u{FEFF}個人番号\n123456789018\n".into(),
            ),
            ("c.csv", "text/csv; charset=shift_jis", sjis.to_vec()),
            ("d.csv", "text/csv", sjis.to_vec()),
            ("e.txt", "text/plain", iso.to_vec()),
            ("f.txt", "text/plain", utf16),
            (
                "g.txt",
                "text/plain; charset=utf8",
                "壊れ\u{FFFD}た 4111111111111111".into(),
            ),
            (
                "h.html",
                "text/html",
                "<table><tr><th>個人番号</th></tr><tr><td>123456789018</td></tr></table>".into(),
            ),
            (
                "i.txt",
                "text/plain; charset=us-ascii",
                b"caf\xe9 4111111111111111".to_vec(),
            ),
        ];
        let mut raw = String::from(
            "From: a@example.jp\r\nTo: b@example.com\r\nSubject: t\r\nMIME-Version: 1.0\r\n\
             Content-Type: multipart/mixed; boundary=\"XX\"\r\n\r\n--XX\r\n\
             Content-Type: text/plain\r\n\r\nsee attached\r\n",
        );
        for (name, ctype, bytes) in &files {
            raw.push_str(&format!(
                "--XX\r\nContent-Type: {ctype}\r\nContent-Transfer-Encoding: base64\r\n\
                 Content-Disposition: attachment; filename=\"{name}\"\r\n\r\n"
            ));
            for line in b64(bytes).as_bytes().chunks(76) {
                raw.push_str(std::str::from_utf8(line).unwrap());
                raw.push_str("\r\n");
            }
        }
        raw.push_str("--XX--\r\n");
        let opts = super::super::ExtractOptions::default();
        let mail = super::super::extract_message(raw.as_bytes(), &opts);
        for (name, _, bytes) in &files {
            let alone = super::super::extract_file(name, bytes, &opts);
            let a = mail.attachments.iter().find(|a| a.name == *name).unwrap();
            let b = &alone.attachments[0];
            assert_eq!(
                (a.size, &a.sha256, a.kind),
                (b.size, &b.sha256, b.kind),
                "{name}"
            );
            let seg = |x: &super::super::Extraction| {
                x.segments
                    .iter()
                    .filter(|s| s.location == *name)
                    .map(|s| format!("{:?} {} {:?}", s.text, s.byte_base, s.grid))
                    .collect::<Vec<_>>()
            };
            assert_eq!(seg(&mail), seg(&alone), "{name}");
            assert!(!seg(&alone).is_empty(), "{name}");
        }
    }

    /// A base64 body is the same text whether the walk takes mail-parser's checked string or
    /// decodes the part itself.
    #[test]
    fn base64_bodies_decode_as_their_bytes() {
        let sjis = encoding_rs::SHIFT_JIS.encode("個人番号 123456789018").0;
        let iso = encoding_rs::ISO_2022_JP.encode("個人番号 123456789018").0;
        let bodies: Vec<(Option<&str>, Vec<u8>)> = vec![
            (None, "個人番号 123456789018".into()),
            (Some("utf-8"), "個人番号 123456789018".into()),
            (Some("UTF8"), "\u{FEFF}個人番号 123456789018".into()),
            (None, "\u{FEFF}個人番号 123456789018".into()),
            (None, iso.to_vec()),
            (None, sjis.to_vec()),
            (Some("shift_jis"), sjis.to_vec()),
            (Some("utf-8"), "a\0b\0c\0d\0e\0f\0g\0h\0".into()),
            (None, "a\0b\0c\0d\0e\0f\0g\0h\0".into()),
        ];
        for (label, bytes) in bodies {
            let ct = label.map_or(String::new(), |l| format!("; charset={l}"));
            let mut raw = format!(
                "From: a@example.jp\r\nTo: b@example.com\r\nMIME-Version: 1.0\r\n\
                 Content-Type: text/plain{ct}\r\nContent-Transfer-Encoding: base64\r\n\r\n"
            );
            for line in b64(&bytes).as_bytes().chunks(76) {
                raw.push_str(std::str::from_utf8(line).unwrap());
                raw.push_str("\r\n");
            }
            let x = super::super::extract_message(raw.as_bytes(), &Default::default());
            let body = x.segments.iter().find(|s| s.location == "body").unwrap();
            assert_eq!(
                body.text,
                decode_charset(&bytes, label),
                "{label:?} {bytes:x?}"
            );
        }
    }

    #[test]
    fn transfer_encodings() {
        assert_eq!(base64(b"5YCL5Lq6\r\n55Wq5Y+3"), "個人番号".as_bytes());
        assert_eq!(quoted_printable(b"a=3Db=\r\nc", false), b"a=bc");
    }

    #[test]
    fn passwords() {
        let p = password_candidates("お世話になっております。\nパスワード：Xy7#kP2q\n以上");
        assert_eq!(p, ["Xy7#kP2q"]);
        let p = password_candidates("解凍パスワードは以下のとおりです。\nAb12Cd34\n");
        assert_eq!(p, ["Ab12Cd34"]);
        let p = password_candidates("PW: s3cret!!\nThe password is hunter22.");
        assert_eq!(p, ["s3cret!!", "hunter22"]);
        assert!(password_candidates("パスワードを忘れた場合はこちら").is_empty());
    }
}
