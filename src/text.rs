//! Text in any Japanese or Unicode encoding to UTF-8.
//!
//! Order of decisions: a byte-order mark (UTF-8, UTF-16LE/BE) wins; then valid UTF-8 is taken as
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
    if let Some((enc, bom_len)) = Encoding::for_bom(bytes) {
        let (text, had_errors) = enc.decode_without_bom_handling(&bytes[bom_len..]);
        return Decoded {
            text,
            encoding: enc.name(),
            bom_len,
            had_errors,
        };
    }
    if let Ok(s) = std::str::from_utf8(bytes) {
        // ISO-2022-JP is 7-bit: valid UTF-8, but its escapes say what it is.
        if memchr::memchr(0x1B, bytes).is_some() && looks_iso2022jp(bytes) {
            let (text, had_errors) = encoding_rs::ISO_2022_JP.decode_without_bom_handling(bytes);
            return Decoded {
                text,
                encoding: "ISO-2022-JP",
                bom_len: 0,
                had_errors,
            };
        }
        return Decoded {
            text: Cow::Borrowed(s),
            encoding: "UTF-8",
            bom_len: 0,
            had_errors: false,
        };
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

/// Guesses a legacy encoding, preferring Japanese ones.
pub fn guess(bytes: &[u8]) -> &'static Encoding {
    let mut det = chardetng::EncodingDetector::new(chardetng::Iso2022JpDetection::Allow);
    // Feed a bounded prefix: a few hundred KiB decide as well as the whole file.
    let sample = &bytes[..bytes.len().min(256 * 1024)];
    det.feed(sample, sample.len() == bytes.len());
    det.guess(Some(b"jp"), chardetng::Utf8Detection::Allow)
}

fn looks_iso2022jp(bytes: &[u8]) -> bool {
    memchr::memmem::find(bytes, b"\x1b$B").is_some()
        || memchr::memmem::find(bytes, b"\x1b$@").is_some()
        || memchr::memmem::find(bytes, b"\x1b(J").is_some()
        || memchr::memmem::find(bytes, b"\x1b(I").is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

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
