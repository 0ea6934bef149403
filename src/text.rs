//! Text in any Japanese or Unicode encoding to UTF-8.
//!
//! Order of decisions: a byte-order mark (UTF-8, UTF-16LE/BE) wins; then UTF-16 without a BOM
//! when NUL bytes sit in every other place (ASCII-heavy text saved by Windows tools, which is
//! valid UTF-8 byte for byte and would otherwise hide every digit); then valid UTF-8 is taken as
//! is (without copying); then ISO-2022-JP escapes; then chardetng guesses with a Japanese hint
//! (Shift_JIS / CP932, EUC-JP, ...). Labels that encoding_rs does not know but Japanese mail uses
//! (`CP932`, `ISO-2022-JP-2`, `cp50220`, ...) are aliased by [`encoding_for_label`].

use std::borrow::Cow;

use encoding_rs::Encoding;

/// Decoded text and how it was decoded.
#[derive(Debug)]
pub struct Decoded<'a> {
    /// The text. Borrowed when the input was UTF-8 without a BOM.
    pub text: Cow<'a, str>,
    /// Name of the encoding used (`UTF-8`, `Shift_JIS`, `EUC-JP`, `ISO-2022-JP`, `UTF-16LE`, ...).
    pub encoding: &'static str,
    /// Bytes of the input skipped before the text (a BOM).
    pub bom_len: usize,
    /// True when malformed sequences were replaced by U+FFFD.
    pub had_errors: bool,
}

/// An encoding for a charset label, including the Japanese labels encoding_rs lacks.
pub fn encoding_for_label(label: &str) -> Option<&'static Encoding> {
    let l = label.trim().trim_matches('"').to_ascii_lowercase();
    let alias = match l.as_str() {
        "cp932" | "ms932" | "windows-31j" | "x-ms-cp932" | "ibm-943" | "ibm943" | "sjis"
        | "shift-jis" | "x-sjis" | "shift_jis-2004" | "shift_jisx0213" | "sjis-open"
        | "sjis-win" | "cp943" => Some(encoding_rs::SHIFT_JIS),
        "iso-2022-jp-2" | "iso-2022-jp-3" | "iso-2022-jp-ms" | "iso-2022-jp-1" | "cp50220"
        | "cp50221" | "cp50222" | "jis" | "iso2022jp" | "csiso2022jp" => {
            Some(encoding_rs::ISO_2022_JP)
        }
        "eucjp-ms" | "euc-jis-2004" | "cp51932" | "eucjp" | "euc_jp" | "x-euc-jp" | "eucjp-win"
        | "ujis" => Some(encoding_rs::EUC_JP),
        "utf8" => Some(encoding_rs::UTF_8),
        _ => None,
    };
    alias.or_else(|| Encoding::for_label(l.as_bytes()))
}

/// Decodes `bytes` with a known encoding (BOM still honoured).
pub fn decode_with<'a>(bytes: &'a [u8], enc: &'static Encoding) -> Decoded<'a> {
    let (text, used, had_errors) = enc.decode(bytes);
    let bom_len = Encoding::for_bom(bytes).map_or(0, |(_, n)| n);
    Decoded {
        text,
        encoding: used.name(),
        bom_len,
        had_errors,
    }
}

/// Decodes text of unknown encoding (see the module docs).
pub fn decode_text(bytes: &[u8]) -> Decoded<'_> {
    if let Some(d) = marked_or_utf16(bytes) {
        return d;
    }
    // A whole file or part: simdutf8 checks Japanese text several times faster than `std`
    // (whose fast path is for ASCII), 2-4 % of a 10,000-row list.
    if let Ok(s) = simdutf8::basic::from_utf8(bytes) {
        return valid_utf8(s);
    }
    let enc = guess(bytes);
    let (text, had_errors) = enc.decode_without_bom_handling(bytes);
    Decoded {
        text,
        encoding: enc.name(),
        bom_len: 0,
        had_errors,
    }
}

/// [`decode_text`] of bytes already known to be valid UTF-8 (a MIME part the parser decoded
/// and checked): the same rules without checking the UTF-8 again. The text is borrowed, the
/// whole of `s`, unless a BOM, UTF-16 or ISO-2022-JP escapes say otherwise.
pub fn decode_str(s: &str) -> Decoded<'_> {
    marked_or_utf16(s.as_bytes()).unwrap_or_else(|| valid_utf8(s))
}

/// Text that says its encoding: a byte-order mark, or UTF-16 without one.
fn marked_or_utf16(bytes: &[u8]) -> Option<Decoded<'_>> {
    let (enc, bom_len) =
        Encoding::for_bom(bytes).or_else(|| utf16_without_bom(bytes).map(|enc| (enc, 0)))?;
    let (text, had_errors) = enc.decode_without_bom_handling(&bytes[bom_len..]);
    Some(Decoded {
        text,
        encoding: enc.name(),
        bom_len,
        had_errors,
    })
}

/// Valid UTF-8 is UTF-8, unless it is 7-bit ISO-2022-JP: its escapes say what it is.
fn valid_utf8(s: &str) -> Decoded<'_> {
    let bytes = s.as_bytes();
    if memchr::memchr(0x1B, bytes).is_some() && looks_iso2022jp(bytes) {
        let (text, had_errors) = encoding_rs::ISO_2022_JP.decode_without_bom_handling(bytes);
        return Decoded {
            text,
            encoding: "ISO-2022-JP",
            bom_len: 0,
            had_errors,
        };
    }
    Decoded {
        text: Cow::Borrowed(s),
        encoding: "UTF-8",
        bom_len: 0,
        had_errors: false,
    }
}

/// UTF-16 without a byte-order mark, recognised by its NUL bytes: in the first 4 KiB, at least
/// a quarter of the bytes at odd offsets (little-endian) or at even offsets (big-endian) are
/// NUL and almost none (under 1 in 32) on the other side. Text in any single-byte or
/// multi-byte encoding has no NULs at all, and binary data has them on both sides. Pure CJK
/// UTF-16 without ASCII has no NULs either; it is left to the other rules.
pub fn utf16_without_bom(bytes: &[u8]) -> Option<&'static Encoding> {
    let head = &bytes[..bytes.len().min(4096) & !1];
    if head.len() < 8 {
        return None;
    }
    let pairs = head.len() / 2;
    let (mut even, mut odd) = (0usize, 0usize);
    for p in head.chunks_exact(2) {
        even += (p[0] == 0) as usize;
        odd += (p[1] == 0) as usize;
    }
    if odd * 4 >= pairs && even * 32 < pairs {
        Some(encoding_rs::UTF_16LE)
    } else if even * 4 >= pairs && odd * 32 < pairs {
        Some(encoding_rs::UTF_16BE)
    } else {
        None
    }
}

/// Bytes of a text that `guess` looks at: 32 KiB, or 8 KiB when those already hold 512
/// non-ASCII bytes (a Japanese text: 250 characters and more, plenty to tell Shift_JIS from
/// EUC-JP and the rest; chardetng was a twelfth of the time of a 10,000-row Shift_JIS list
/// at 32 KiB). A mostly-ASCII text with a few Japanese words keeps the long sample.
const GUESS_SAMPLE: usize = 32 * 1024;
const GUESS_SAMPLE_DENSE: usize = 8 * 1024;
const GUESS_DENSE_BYTES: usize = 512;

/// Guesses a legacy encoding, preferring Japanese ones.
pub fn guess(bytes: &[u8]) -> &'static Encoding {
    let mut det = chardetng::EncodingDetector::new(chardetng::Iso2022JpDetection::Allow);
    // Feed a bounded sample (chardetng costs about as much as decoding ten times over), from
    // a little before the first non-ASCII byte. The ASCII bytes before it tell nothing apart,
    // so a file whose Japanese starts late is judged on its Japanese.
    let first = match Encoding::ascii_valid_up_to(bytes) {
        n if n == bytes.len() => 0,
        n => n,
    };
    let start = first.saturating_sub(1024);
    let short = &bytes[start..bytes.len().min(start + GUESS_SAMPLE_DENSE)];
    let dense = short.iter().filter(|&&b| b >= 0x80).count() >= GUESS_DENSE_BYTES;
    let end = if dense {
        start + short.len()
    } else {
        bytes.len().min(start + GUESS_SAMPLE)
    };
    det.feed(&bytes[start..end], end == bytes.len());
    det.guess(Some(b"jp"), chardetng::Utf8Detection::Allow)
}

fn looks_iso2022jp(bytes: &[u8]) -> bool {
    memchr::memmem::find(bytes, b"\x1b$B").is_some()
        || memchr::memmem::find(bytes, b"\x1b$@").is_some()
        || memchr::memmem::find(bytes, b"\x1b(J").is_some()
        || memchr::memmem::find(bytes, b"\x1b(I").is_some()
}

/// A header value: ASCII text as is (control characters dropped), other text as one UTF-8 `B`
/// encoded-word (RFC 2047). `trailing_space`: put the space that separates it from a following
/// encoded-word inside the word (RFC 2047 ignores white space between encoded-words).
pub fn encode_header_text(s: &str, trailing_space: bool) -> String {
    let s: String = s.chars().filter(|c| !c.is_control()).collect();
    if s.is_ascii() {
        return s;
    }
    let text = if trailing_space { format!("{s} ") } else { s };
    format!(
        "=?UTF-8?B?{}?=",
        crate::text::base64_encode(text.as_bytes())
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A customer list with a little Japanese on every row (the short sample is enough) and a
    /// long English text with one Japanese line late (the long one is used) decode right in
    /// every Japanese encoding.
    #[test]
    fn short_and_long_guess_samples() {
        let list: String = (0..2000)
            .map(|i| format!("顧客{i:05},123456789018,090-1234-5678,なし\r\n"))
            .collect();
        let mut sparse = "The quarterly report follows. ".repeat(600);
        sparse.push_str("担当：山田、よろしくお願いします。\n");
        sparse.push_str(&"Regards. ".repeat(2000));
        for s in [&list, &sparse] {
            for enc in [encoding_rs::SHIFT_JIS, encoding_rs::EUC_JP] {
                let (bytes, _, _) = enc.encode(s);
                let d = decode_text(&bytes);
                assert_eq!(d.encoding, enc.name());
                assert!(d.text == s.as_str());
            }
        }
    }

    #[test]
    fn decodes_japanese_encodings() {
        let s = "個人番号：１２３４ 社外秘の資料です。よろしくお願いいたします。";
        for enc in [
            encoding_rs::SHIFT_JIS,
            encoding_rs::EUC_JP,
            encoding_rs::ISO_2022_JP,
            encoding_rs::UTF_8,
        ] {
            let (bytes, _, _) = enc.encode(s);
            let d = decode_text(&bytes);
            assert_eq!(d.text, s, "{}", enc.name());
        }
        let mut utf16 = vec![0xFF, 0xFE];
        for u in s.encode_utf16() {
            utf16.extend_from_slice(&u.to_le_bytes());
        }
        let d = decode_text(&utf16);
        assert_eq!(d.text, s);
        assert_eq!(d.bom_len, 2);
    }

    #[test]
    fn late_japanese_after_a_long_ascii_prefix_is_still_recognised() {
        // 300 KiB of ASCII (past the sample size), then Shift_JIS and EUC-JP text.
        let body = "個人番号：１２３４ 社外秘の資料です。よろしくお願いいたします。\n".repeat(50);
        for enc in [encoding_rs::SHIFT_JIS, encoding_rs::EUC_JP] {
            let mut bytes = b"id,value,note\n".repeat(300 * 1024 / 14);
            bytes.extend_from_slice(&enc.encode(&body).0);
            let d = decode_text(&bytes);
            assert_eq!(d.encoding, enc.name());
            assert!(d.text.ends_with(&body));
        }
    }

    #[test]
    fn aliases() {
        assert_eq!(encoding_for_label("CP932"), Some(encoding_rs::SHIFT_JIS));
        assert_eq!(
            encoding_for_label("ISO-2022-JP-2"),
            Some(encoding_rs::ISO_2022_JP)
        );
        assert_eq!(
            encoding_for_label("cp50220"),
            Some(encoding_rs::ISO_2022_JP)
        );
        assert_eq!(encoding_for_label("utf-8"), Some(encoding_rs::UTF_8));
        assert!(encoding_for_label("x-unknown-thing").is_none());
    }
}

/// Base64 (RFC 4648, standard alphabet, padded) in one line.
pub fn base64_encode(b: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut o = String::with_capacity(b.len().div_ceil(3) * 4);
    for c in b.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        o.push(T[(n >> 18) as usize & 63] as char);
        o.push(T[(n >> 12) as usize & 63] as char);
        o.push(if c.len() > 1 {
            T[(n >> 6) as usize & 63] as char
        } else {
            '='
        });
        o.push(if c.len() > 2 {
            T[n as usize & 63] as char
        } else {
            '='
        });
    }
    o
}

/// Base64 in CRLF-terminated lines of 76 characters, for a MIME body.
pub fn base64_encode_mime(b: &[u8]) -> String {
    let one = base64_encode(b);
    let mut o = String::with_capacity(one.len() + one.len() / 38 + 2);
    for line in one.as_bytes().chunks(76) {
        o.push_str(std::str::from_utf8(line).unwrap_or_default());
        o.push_str("\r\n");
    }
    o
}

/// Strict base64: the standard or URL-safe alphabet, padding optional, line breaks ignored;
/// `None` when anything else appears (so it also answers "is this base64?").
pub fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let s = s.trim_end_matches(['=', '\r', '\n']);
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0);
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            b'\r' | b'\n' => continue,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod base64_tests {
    use super::*;

    #[test]
    fn base64_round_trips() {
        for s in [
            &b""[..],
            b"a",
            b"ab",
            b"abc",
            b"\0ichiro\0secret",
            "個人番号".as_bytes(),
        ] {
            assert_eq!(base64_decode(&base64_encode(s)).unwrap(), s);
        }
        assert_eq!(base64_encode(b"hello"), "aGVsbG8=");
        assert_eq!(base64_decode("aGVs\r\nbG8").unwrap(), b"hello");
        assert_eq!(
            base64_decode("-_8").unwrap(),
            base64_decode("+/8=").unwrap()
        );
        assert!(base64_decode("a b").is_none());
        let long = vec![7u8; 100];
        assert!(base64_encode_mime(&long).lines().all(|l| l.len() <= 76));
        assert_eq!(base64_decode(&base64_encode_mime(&long)).unwrap(), long);
    }
}

/// Decodes `%XX` escapes (and `+` as a space when `plus_is_space`, as in form fields); a `%`
/// not followed by two hex digits stays as it is.
pub fn percent_decode(s: &str, plus_is_space: bool) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 3 <= b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(v) => {
                        out.push(v);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            b'+' if plus_is_space => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    out
}

/// Percent-encodes everything but RFC 3986's unreserved characters (for a query value).
pub fn percent_encode(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            o.push(b as char);
        } else {
            o.push_str(&format!("%{b:02X}"));
        }
    }
    o
}

/// `application/x-www-form-urlencoded` pairs (also a URL's query), decoded as UTF-8 (lossy).
pub fn form_pairs(s: &str) -> Vec<(String, String)> {
    s.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (
                String::from_utf8_lossy(&percent_decode(k, true)).into_owned(),
                String::from_utf8_lossy(&percent_decode(v, true)).into_owned(),
            )
        })
        .collect()
}

/// Escapes text for HTML content and attribute values. Control characters other than tab and
/// line feed become U+FFFD; bidirectional formatting characters (which make `xcod.exe` read as
/// `exe.docx`) are shown as `<U+202E>` instead of taking effect.
pub fn html_escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c if is_bidi_control(c) => o.push_str(&format!("&lt;U+{:04X}&gt;", c as u32)),
            c if c.is_control() && c != '\n' && c != '\t' => o.push('\u{FFFD}'),
            c => o.push(c),
        }
    }
    o
}

/// Unicode's bidirectional formatting characters: embeddings, overrides and isolates
/// (U+202A..U+202E, U+2066..U+2069) and the implicit marks (U+200E, U+200F, U+061C). In a file
/// name they can make `invoice\u{202E}xcod.exe` display as `invoiceexe.docx`.
pub fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}')
}

/// True when `s` has a bidirectional override, embedding or isolate (see [`is_bidi_control`]).
/// The implicit marks alone do not count: right-to-left names use them legitimately.
pub fn has_bidi_override(s: &str) -> bool {
    s.chars()
        .any(|c| matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'))
}

/// Text for one line of a log, a syslog field or a terminal: control characters (line breaks
/// included, so nobody can forge a second log line) are written as `\n`, `\r`, `\t` or
/// `\u{1b}`, bidirectional formatting characters as `\u{202e}`, and a backslash as `\\`.
pub fn escape_line(s: &str) -> Cow<'_, str> {
    if !s
        .chars()
        .any(|c| c.is_control() || c == '\\' || is_bidi_control(c))
    {
        return Cow::Borrowed(s);
    }
    let mut o = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' => o.push_str("\\n"),
            '\r' => o.push_str("\\r"),
            '\t' => o.push_str("\\t"),
            '\\' => o.push_str("\\\\"),
            c if c.is_control() || is_bidi_control(c) => {
                o.push_str(&format!("\\u{{{:x}}}", c as u32))
            }
            c => o.push(c),
        }
    }
    Cow::Owned(o)
}

/// Compares two byte strings in time that depends only on their lengths.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod url_tests {
    use super::*;

    #[test]
    fn percent_round_trip_and_forms() {
        let s = "boss+1@example.co.jp 承認&x=y";
        assert_eq!(percent_decode(&percent_encode(s), false), s.as_bytes());
        assert_eq!(
            form_pairs("a=1&comment=%E6%89%BF%E8%AA%8D+ok&bad=%zz%4"),
            vec![
                ("a".into(), "1".into()),
                ("comment".into(), "承認 ok".into()),
                ("bad".into(), "%zz%4".into())
            ]
        );
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert_eq!(
            html_escape("<a href='x'>&\"</a>\u{0}"),
            "&lt;a href=&#39;x&#39;&gt;&amp;&quot;&lt;/a&gt;\u{FFFD}"
        );
    }

    #[test]
    fn bidi_overrides_are_shown_not_applied() {
        assert_eq!(
            html_escape("invoice\u{202E}xcod.exe"),
            "invoice&lt;U+202E&gt;xcod.exe"
        );
        assert!(has_bidi_override("a\u{2067}b"));
        assert!(!has_bidi_override("\u{200F}שלום.txt"));
    }

    #[test]
    fn log_lines_cannot_be_forged() {
        assert_eq!(
            escape_line("alice\n2026-01-01 ping32dlp: admin signed in"),
            "alice\\n2026-01-01 ping32dlp: admin signed in"
        );
        assert_eq!(
            escape_line("a\\b\u{1b}[31m\u{202e}"),
            "a\\\\b\\u{1b}[31m\\u{202e}"
        );
        assert!(matches!(escape_line("plain 日本語"), Cow::Borrowed(_)));
    }

    #[test]
    fn utf16_without_bom_is_recognised() {
        let le: Vec<u8> = "card 4111 1111 1111 1111 番号"
            .encode_utf16()
            .flat_map(|u| u.to_le_bytes())
            .collect();
        let d = decode_text(&le);
        assert_eq!(d.encoding, "UTF-16LE");
        assert_eq!(d.text, "card 4111 1111 1111 1111 番号");
        let be: Vec<u8> = "hello world 123"
            .encode_utf16()
            .flat_map(|u| u.to_be_bytes())
            .collect();
        assert_eq!(decode_text(&be).encoding, "UTF-16BE");
        assert_eq!(utf16_without_bom(b"plain ascii text here"), None);
        assert_eq!(utf16_without_bom(&[0u8; 64]), None);
    }
}
