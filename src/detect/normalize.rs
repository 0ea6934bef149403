//! Width and punctuation folding with an offset map back to the original bytes.
//!
//! Japanese text writes the same value many ways: `４１１１－１１１１`, `4111‐1111`, `4111　1111`.
//! Detection compares *folded* text, but every finding must point at the original bytes. Folding is
//! character by character (no character ever folds to more than one character, and never across a
//! character boundary), so an offset map is a sorted list of the places where a folded character's
//! length differs from the original's.
//!
//! The built-in detectors fold on the fly, character by character, with [`fold_char`] (see
//! `digits.rs`); user regex detectors run over [`normalize`]d text when the segment has anything to
//! fold, and map their matches back with [`Normalized::to_original`].

/// Folds one character: full-width ASCII (U+FF01..U+FF5E) to ASCII, the ideographic space (U+3000)
/// and no-break space to a space, and the hyphen and minus look-alikes to `-`. Everything else is
/// returned unchanged. The katakana prolonged sound mark `ー` is *not* folded here (it is a letter
/// in `データ`); the digit tokenizer accepts it as a separator only between digits.
#[inline]
pub fn fold_char(c: char) -> char {
    match c {
        '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
        '\u{3000}' | '\u{00A0}' | '\u{2007}' | '\u{202F}' => ' ',
        '\u{2010}'..='\u{2015}' | '\u{2212}' | '\u{FE58}' | '\u{FE63}' | '\u{2043}' => '-',
        _ => c,
    }
}

/// True when [`fold_char`] changes `c`.
#[inline]
pub fn folds(c: char) -> bool {
    fold_char(c) != c
}

/// Full-width katakana and punctuation in the order of the half-width forms U+FF61..U+FF9D.
const HALF_ORDER: &str = "。「」、・ヲァィゥェォャュョッーアイウエオカキクケコサシスセソタチツテトナニヌネノハヒフヘホマミムメモヤユヨラリルレロワン";

/// The half-width form of one full-width katakana letter (`ガ` → `ｶﾞ`), if it has one.
fn half_katakana(c: char, out: &mut String) -> bool {
    if let Some(i) = HALF_ORDER.chars().position(|x| x == c) {
        out.push(char::from_u32(0xFF61 + i as u32).unwrap_or(c));
        return true;
    }
    if c == 'ヴ' {
        out.push_str("ｳﾞ");
        return true;
    }
    // Voiced (ガ = カ + 1) and semi-voiced (パ = ハ + 2) letters: the base and a sound mark.
    let code = c as u32;
    for (shift, mark, bases) in [
        (1, 'ﾞ', "カキクケコサシスセソタチツテトハヒフヘホ"),
        (2, 'ﾟ', "ハヒフヘホ"),
    ] {
        if let Some(base) = char::from_u32(code.wrapping_sub(shift)).filter(|b| bases.contains(*b))
        {
            if half_katakana(base, out) {
                out.push(mark);
                return true;
            }
        }
    }
    false
}

/// `s` with its katakana in half-width forms (`ケイタイ` → `ｹｲﾀｲ`), when it has any: the
/// variant under which context words and keywords are also matched, since legacy systems,
/// bank transfers and CSV exports still write half-width katakana.
pub fn half_width_katakana(s: &str) -> Option<String> {
    let mut out = String::with_capacity(s.len());
    let mut changed = false;
    for c in s.chars() {
        if ('\u{30A1}'..='\u{30FC}').contains(&c) && half_katakana(c, &mut out) {
            changed = true;
        } else {
            out.push(c);
        }
    }
    changed.then_some(out)
}

/// Folded text of a whole string (no offset map): what the property tests compare against.
pub fn fold_str(s: &str) -> String {
    s.chars().map(fold_char).collect()
}

/// A folded copy of a text and the map from folded offsets back to original offsets.
#[derive(Debug, Clone, Default)]
pub struct Normalized {
    /// The folded text.
    pub text: String,
    /// `(folded_offset, original_offset)` at every character whose length changed, sorted.
    /// Between two entries the two texts advance byte for byte.
    map: Vec<(usize, usize)>,
}

impl Normalized {
    /// Maps a byte offset of the folded text (a character boundary or the end) to the original.
    pub fn to_original(&self, folded: usize) -> usize {
        // The last map entry at or before `folded`; offsets after it advance in step.
        let i = self.map.partition_point(|&(f, _)| f <= folded);
        if i == 0 {
            folded
        } else {
            let (f, o) = self.map[i - 1];
            o + (folded - f)
        }
    }

    /// True when folding changed nothing, so folded offsets are original offsets.
    pub fn is_identity(&self) -> bool {
        self.map.is_empty()
    }
}

/// Folds `text` with [`fold_char`] and records the offset map.
pub fn normalize(text: &str) -> Normalized {
    let mut out = String::with_capacity(text.len());
    let mut map = Vec::new();
    for (i, c) in text.char_indices() {
        let f = fold_char(c);
        out.push(f);
        if f.len_utf8() != c.len_utf8() {
            // From the next character on, folded offset `out.len()` is original `i + c.len_utf8()`.
            map.push((out.len(), i + c.len_utf8()));
        }
    }
    Normalized { text: out, map }
}

/// True when `bytes` holds anything [`fold_char`] would change (a cheap test before [`normalize`]):
/// every folded character is encoded with a lead byte 0xC2, 0xE2, 0xE3 or 0xEF.
pub fn needs_folding(text: &str) -> bool {
    let b = text.as_bytes();
    let mut i = 0;
    while let Some(off) = memchr::memchr3(0xE2, 0xE3, 0xEF, &b[i..]) {
        let at = i + off;
        if let Some(c) = text.get(at..).and_then(|s| s.chars().next()) {
            if folds(c) {
                return true;
            }
        }
        i = at + 1;
    }
    memchr::memmem::find(b, "\u{00A0}".as_bytes()).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn katakana_has_half_width_forms() {
        assert_eq!(half_width_katakana("ケイタイ").as_deref(), Some("ｹｲﾀｲ"));
        assert_eq!(
            half_width_katakana("マイナンバー").as_deref(),
            Some("ﾏｲﾅﾝﾊﾞｰ")
        );
        assert_eq!(
            half_width_katakana("パスポート番号").as_deref(),
            Some("ﾊﾟｽﾎﾟｰﾄ番号")
        );
        assert_eq!(
            half_width_katakana("ヴァイオリン").as_deref(),
            Some("ｳﾞｧｲｵﾘﾝ")
        );
        assert_eq!(half_width_katakana("個人番号"), None);
        assert_eq!(half_width_katakana("TEL"), None);
    }

    #[test]
    fn folds_width_and_dashes() {
        assert_eq!(fold_str("４１１１－１１１１　ＡＢｃ"), "4111-1111 ABc");
        assert_eq!(fold_str("090‐1234―5678"), "090-1234-5678");
        assert_eq!(fold_str("データ"), "データ");
    }

    #[test]
    fn offsets_map_back() {
        let src = "番号：１２３４－５６７８です";
        let n = normalize(src);
        let at = n.text.find("1234-5678").unwrap();
        let end = at + "1234-5678".len();
        let (o0, o1) = (n.to_original(at), n.to_original(end));
        assert_eq!(&src[o0..o1], "１２３４－５６７８");
        assert!(needs_folding(src));
        assert!(!needs_folding("plain ascii 1234"));
        assert!(normalize("plain").is_identity());
    }
}
