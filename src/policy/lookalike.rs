//! Look-alike domains: a recipient domain that differs from a protected one (the company's own
//! domains, listed partners) by one edit or only by characters that look the same
//! (`examp1e.co.jp`, `exarnple.co.jp`, Cyrillic `е` in `еxample.co.jp`, full-width forms,
//! `xn--` labels), or that puts a protected domain in front of another
//! (`example.co.jp.mail-secure.net`).
//!
//! Domains are compared on a *skeleton*: IDNA labels decoded (RFC 3492 Punycode, below), NFKC
//! (full-width and other compatibility forms become ASCII), lower case, the common confusable
//! letters of Cyrillic and Greek mapped to the Latin ones they look like, and the ASCII
//! sequences that read alike folded (`rn` → `m`, `vv` → `w`, `0` → `o`, `1` and `i` → `l`).

use unicode_normalization::UnicodeNormalization;

/// Longest domain compared (longer names are not domains anyone reads).
const MAX_DOMAIN: usize = 253;

/// Why a domain looks like a protected one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Likeness {
    /// The same skeleton: it only differs by characters that look alike.
    Homoglyph,
    /// One insertion, deletion, substitution or swap of neighbours away (on the skeletons).
    OneEdit,
    /// The protected domain followed by more labels (`corp.example.evil.net`).
    Prefix,
}

impl Likeness {
    /// Words for the evidence.
    pub fn as_str(self) -> &'static str {
        match self {
            Likeness::Homoglyph => "look-alike characters",
            Likeness::OneEdit => "one character away",
            Likeness::Prefix => "protected name in front",
        }
    }
}

/// Does `domain` look like `protected` without being it (or under it)? Both are domains as
/// written in addresses (ASCII, `xn--` or Unicode).
pub fn looks_like(domain: &str, protected: &str) -> Option<Likeness> {
    if domain.len() > MAX_DOMAIN || protected.len() > MAX_DOMAIN {
        return None;
    }
    let d = unicode_form(domain);
    let p = unicode_form(protected);
    if d.is_empty() || p.is_empty() || d == p || d.ends_with(&format!(".{p}")) {
        return None;
    }
    let (sd, sp) = (skeleton_of(&d), skeleton_of(&p));
    if sd == sp {
        return Some(Likeness::Homoglyph);
    }
    // Short names are one edit away from many real ones (`ab.jp` / `ac.jp`): only names of
    // some length count for edits.
    if p.chars().count() >= 6 && (within_one_edit(&d, &p) || within_one_edit(&sd, &sp)) {
        return Some(Likeness::OneEdit);
    }
    if sd.starts_with(&format!("{sp}.")) {
        return Some(Likeness::Prefix);
    }
    None
}

/// The domain in Unicode, lower case, NFKC, without a trailing dot; `xn--` labels decoded
/// (a label that does not decode stays as written).
pub fn unicode_form(domain: &str) -> String {
    let folded: String = domain.nfkc().collect::<String>().to_lowercase();
    let folded = folded.trim_end_matches('.');
    // Full stops that are not ASCII (。．｡) separate labels too (IDNA); NFKC made ．and ｡ ASCII.
    let folded = folded.replace('。', ".");
    folded
        .split('.')
        .map(|l| match l.strip_prefix("xn--") {
            Some(p) => punycode_decode(p).unwrap_or_else(|| l.to_string()),
            None => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join(".")
}

/// The skeleton of a domain already in [`unicode_form`].
pub fn skeleton_of(d: &str) -> String {
    let mapped: String = d.chars().map(confusable).collect();
    let mut out = String::with_capacity(mapped.len());
    let b: Vec<char> = mapped.chars().collect();
    let mut i = 0;
    while i < b.len() {
        let pair = (b[i], b.get(i + 1).copied());
        match pair {
            ('r', Some('n')) => {
                out.push('m');
                i += 2;
            }
            ('v', Some('v')) => {
                out.push('w');
                i += 2;
            }
            ('c', Some('l')) => {
                out.push('d');
                i += 2;
            }
            _ => {
                out.push(match b[i] {
                    '0' => 'o',
                    '1' | 'i' | '|' => 'l',
                    c => c,
                });
                i += 1;
            }
        }
    }
    out
}

/// A letter that looks like a Latin one, as that letter (Cyrillic and Greek lower case; the
/// rest is left alone).
fn confusable(c: char) -> char {
    match c {
        'а' | 'α' => 'a',
        'в' | 'β' => 'b',
        'с' | 'ϲ' => 'c',
        'ԁ' => 'd',
        'е' | 'ε' => 'e',
        'һ' => 'h',
        'і' | 'ı' | 'ι' | 'ӏ' => 'i',
        'ј' => 'j',
        'κ' | 'к' => 'k',
        'м' => 'm',
        'η' | 'п' => 'n',
        'о' | 'ο' | 'σ' => 'o',
        'р' | 'ρ' => 'p',
        'ԛ' => 'q',
        'ѕ' => 's',
        'т' | 'τ' => 't',
        'υ' | 'ս' => 'u',
        'ν' | 'ѵ' => 'v',
        'ԝ' | 'ω' => 'w',
        'х' | 'χ' => 'x',
        'у' | 'γ' => 'y',
        'ᴢ' => 'z',
        c => c,
    }
}

/// At most one insertion, deletion, substitution or transposition of neighbours apart.
fn within_one_edit(a: &str, b: &str) -> bool {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    if a == b {
        return true;
    }
    let (la, lb) = (a.len(), b.len());
    if la.abs_diff(lb) > 1 {
        return false;
    }
    let pre = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let suf = a[pre..]
        .iter()
        .rev()
        .zip(b[pre..].iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    let (ra, rb) = (la - pre - suf.min(la - pre), lb - pre - suf.min(lb - pre));
    match (ra, rb) {
        (1, 1) | (1, 0) | (0, 1) => true,
        // A swap of two neighbours: `ab` against `ba` in the middle.
        (2, 2) => a[pre] == b[pre + 1] && a[pre + 1] == b[pre],
        _ => false,
    }
}

/// Decodes the part of an IDNA label after `xn--` (RFC 3492, section 6.2), with the overflow
/// checks of section 6.4; `None` for anything that is not valid Punycode. Labels are at most 63
/// bytes, so the work is bounded.
pub fn punycode_decode(input: &str) -> Option<String> {
    const BASE: u32 = 36;
    const TMIN: u32 = 1;
    const TMAX: u32 = 26;
    const SKEW: u32 = 38;
    const DAMP: u32 = 700;
    if input.len() > 63 || !input.is_ascii() {
        return None;
    }
    let (basic, rest) = match input.rfind('-') {
        Some(i) => (&input[..i], &input[i + 1..]),
        None => ("", input),
    };
    let mut out: Vec<char> = basic.chars().collect();
    let adapt = |mut delta: u32, points: u32, first: bool| -> u32 {
        delta = if first { delta / DAMP } else { delta / 2 };
        delta += delta / points;
        let mut k = 0;
        while delta > ((BASE - TMIN) * TMAX) / 2 {
            delta /= BASE - TMIN;
            k += BASE;
        }
        k + (BASE - TMIN + 1) * delta / (delta + SKEW)
    };
    let digit = |c: u8| -> Option<u32> {
        match c {
            b'a'..=b'z' => Some(u32::from(c - b'a')),
            b'A'..=b'Z' => Some(u32::from(c - b'A')),
            b'0'..=b'9' => Some(u32::from(c - b'0') + 26),
            _ => None,
        }
    };
    let (mut n, mut i, mut bias) = (128u32, 0u32, 72u32);
    let bytes = rest.as_bytes();
    let mut pos = 0;
    while pos < bytes.len() {
        let old_i = i;
        let mut w = 1u32;
        let mut k = BASE;
        loop {
            let d = digit(*bytes.get(pos)?)?;
            pos += 1;
            i = i.checked_add(d.checked_mul(w)?)?;
            let t = if k <= bias {
                TMIN
            } else if k >= bias + TMAX {
                TMAX
            } else {
                k - bias
            };
            if d < t {
                break;
            }
            w = w.checked_mul(BASE - t)?;
            k += BASE;
        }
        let len = out.len() as u32 + 1;
        bias = adapt(i - old_i, len, old_i == 0);
        n = n.checked_add(i / len)?;
        i %= len;
        out.insert(i as usize, char::from_u32(n)?);
        i += 1;
    }
    Some(out.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn punycode_decodes_the_rfc_examples_and_refuses_garbage() {
        assert_eq!(punycode_decode("wgv71a119e").as_deref(), Some("日本語"));
        assert_eq!(punycode_decode("bcher-kva").as_deref(), Some("bücher"));
        assert_eq!(
            punycode_decode("28j2a3ar1pp75ovm7c").as_deref(),
            Some("こんにちは世界")
        );
        assert_eq!(punycode_decode("e1afmkfd").as_deref(), Some("пример"));
        for bad in ["99999999999999", "-", "a-!", "zzzzzzzzzzzzzzzzzzzzzzzzz"] {
            let _ = punycode_decode(bad);
        }
        assert_eq!(punycode_decode("a-9"), None);
    }

    #[test]
    fn look_alikes_are_found_and_real_names_are_not() {
        let p = "example.co.jp";
        for (d, why) in [
            ("examp1e.co.jp", Likeness::Homoglyph),
            ("exarnple.co.jp", Likeness::Homoglyph),
            ("еxample.co.jp", Likeness::Homoglyph), // Cyrillic е
            ("xn--xample-2of.co.jp", Likeness::Homoglyph), // the same, as IDNA
            ("exmaple.co.jp", Likeness::OneEdit),
            ("exampl.co.jp", Likeness::OneEdit),
            ("examples.co.jp", Likeness::OneEdit),
            ("example-co.jp", Likeness::OneEdit),
            ("example.co.jp.mail-secure.net", Likeness::Prefix),
        ] {
            assert_eq!(looks_like(d, p), Some(why), "{d}");
        }
        // Full-width forms are the name itself after NFKC (as IDNA maps them), not a look-alike
        // of it; full-width with a changed letter is one.
        assert_eq!(looks_like("ｅｘａｍｐｌｅ.co.jp", p), None);
        assert_eq!(
            looks_like("ｅｘａｍｐ１ｅ.co.jp", p),
            Some(Likeness::Homoglyph)
        );
        for d in [
            "example.co.jp",
            "EXAMPLE.CO.JP.",
            "sub.example.co.jp",
            "partner.example.com",
            "other-company.co.jp",
            "example.com.au",
        ] {
            assert_eq!(looks_like(d, p), None, "{d}");
        }
        // Short names: one edit is not enough.
        assert_eq!(looks_like("ab.jp", "ac.jp"), None);
        assert_eq!(looks_like("a", &"x".repeat(300)), None);
    }

    #[test]
    fn one_edit_is_exactly_one() {
        assert!(within_one_edit("abcdef", "abcdef"));
        assert!(within_one_edit("abcdef", "abcxef"));
        assert!(within_one_edit("abcdef", "abdcef"));
        assert!(within_one_edit("abcdef", "abcdefg"));
        assert!(within_one_edit("abcdef", "bcdef"));
        assert!(!within_one_edit("abcdef", "abxdxf"));
        assert!(!within_one_edit("abcdef", "abcdefgh"));
        assert!(!within_one_edit("aaaa", "aaab_"));
    }
}
