//! Masking of values for reports, logs and audit rows.
//!
//! What each style may reveal (the property tests in `tests/properties.rs` check these bounds):
//!
//! | style | reveals at most |
//! |---|---|
//! | `none` | the value as found |
//! | `last4` | the last 4 letters/digits |
//! | `first1` | the first letter/digit (and for an email address, the domain) |
//! | `first4_last4` | the first 4 and the last 4 digits |
//! | `secret` | the public type prefix: up to 11 characters ending in `_` or `-` (`ghp_`, `sk_live_`, `xoxb-`, `github_pat_`), `AIza`, or a PEM header line |
//! | `full` | nothing |
//!
//! Separators and punctuation keep their place, so `4111-1111-1111-1111` masks to
//! `4111-****-****-1111`.

use crate::rules::MaskStyle;

fn maskable(c: char) -> bool {
    c.is_alphanumeric()
}

/// Masks `value` with `style`.
pub fn mask(value: &str, style: MaskStyle) -> String {
    let mut out = String::with_capacity(value.len());
    mask_into(value, style, &mut out);
    out
}

/// [`mask`], appended to `out` (a scan masks every finding through one reused buffer).
pub(crate) fn mask_into(value: &str, style: MaskStyle, out: &mut String) {
    match style {
        MaskStyle::None => out.push_str(value),
        MaskStyle::Full => out.extend(value.chars().map(|c| if maskable(c) { '*' } else { c })),
        MaskStyle::Last4 => keep_ends(value, 0, 4, out),
        MaskStyle::First4Last4 => keep_ends(value, 4, 4, out),
        MaskStyle::First1 => match value.split_once('@') {
            Some((local, domain)) if !local.is_empty() => {
                keep_ends(local, 1, 0, out);
                out.push('@');
                out.push_str(domain);
            }
            _ => keep_ends(value, 1, 0, out),
        },
        MaskStyle::Secret => out.push_str(&secret(value)),
    }
}

/// How many of `total` maskable characters stay shown at the head and the tail: `head` and
/// `tail` taken down, the tail first, until they are at most half of `total`.
fn shown_ends(total: usize, mut head: usize, mut tail: usize) -> (usize, usize) {
    while head + tail > total / 2 && head + tail > 0 {
        if tail >= head && tail > 0 {
            tail -= 1;
        } else {
            head -= 1;
        }
    }
    (head, tail)
}

/// Keeps the first `head` and the last `tail` maskable characters; never reveals more than half
/// of them (so a short value is mostly hidden).
fn keep_ends(value: &str, head: usize, tail: usize, out: &mut String) {
    if value.is_ascii() {
        keep_ends_ascii(value, head, tail, out);
        return;
    }
    let total = value.chars().filter(|&c| maskable(c)).count();
    let (head, tail) = shown_ends(total, head, tail);
    let mut k = 0;
    out.reserve(value.len());
    for c in value.chars() {
        if !maskable(c) {
            out.push(c);
            continue;
        }
        let shown = k < head || k >= total - tail;
        k += 1;
        out.push(if shown { c } else { '*' });
    }
}

/// [`keep_ends`] of an ASCII value (most are digits and separators, and a list masks tens of
/// thousands): the hidden letters and digits lie between two byte offsets, so the value is
/// copied as slices around runs of `*`, without a character at a time or a UTF-8 check.
fn keep_ends_ascii(value: &str, head: usize, tail: usize, out: &mut String) {
    const STARS: &str = "********************************";
    let b = value.as_bytes();
    let total = b.iter().filter(|c| c.is_ascii_alphanumeric()).count();
    let (head, tail) = shown_ends(total, head, tail);
    // The byte offset of the `n`th letter or digit (`b.len()` past the last).
    let nth = |n: usize| {
        b.iter()
            .enumerate()
            .filter(|(_, c)| c.is_ascii_alphanumeric())
            .nth(n)
            .map_or(b.len(), |(i, _)| i)
    };
    let (from, to) = if total - tail > head {
        (nth(head), nth(total - tail - 1) + 1)
    } else {
        (b.len(), b.len())
    };
    out.reserve(value.len());
    out.push_str(&value[..from]);
    let mut i = from;
    while i < to {
        let run = b[i..to]
            .iter()
            .position(|c| !c.is_ascii_alphanumeric())
            .map_or(to, |p| i + p);
        let mut n = run - i;
        while n > 0 {
            let m = n.min(STARS.len());
            out.push_str(&STARS[..m]);
            n -= m;
        }
        let kept = b[run..to]
            .iter()
            .position(u8::is_ascii_alphanumeric)
            .map_or(to, |p| run + p);
        out.push_str(&value[run..kept]);
        i = kept;
    }
    out.push_str(&value[to..]);
}

fn secret(value: &str) -> String {
    if value.starts_with("-----BEGIN") {
        let header_end = value
            .find("-----\n")
            .or_else(|| value.find("-----\r"))
            .map(|i| i + 5);
        let header_end = header_end
            .or_else(|| value[10..].find("-----").map(|i| i + 15))
            .unwrap_or(value.len().min(10));
        let hidden = value.len() - header_end;
        return if hidden > 0 {
            format!("{} [{} bytes hidden]", &value[..header_end], hidden)
        } else {
            value[..header_end].to_string()
        };
    }
    let prefix_len = if value.starts_with("AIza") {
        4
    } else {
        value
            .char_indices()
            .take(11)
            .filter(|&(_, c)| c == '_' || c == '-')
            .map(|(i, c)| i + c.len_utf8())
            .last()
            .unwrap_or(0)
    };
    let (p, rest) = value.split_at(prefix_len);
    let masked: String = rest
        .chars()
        .map(|c| if maskable(c) { '*' } else { c })
        .collect();
    format!("{p}{masked}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn styles() {
        assert_eq!(
            mask("4111 1111 1111 1111", MaskStyle::First4Last4),
            "4111 **** **** 1111"
        );
        assert_eq!(
            mask("１２３４－５６７８－９０１８", MaskStyle::Last4),
            "＊＊＊＊－＊＊＊＊－９０１８".replace('＊', "*")
        );
        assert_eq!(
            mask("taro.yamada@example.co.jp", MaskStyle::First1),
            "t***.******@example.co.jp"
        );
        assert_eq!(
            mask("ghp_abcdefABCDEF0123456789abcdefABCDEF", MaskStyle::Secret),
            "ghp_**********************************"
        );
        assert_eq!(
            mask("sk_live_abcdef0123456789", MaskStyle::Secret),
            "sk_live_****************"
        );
        assert_eq!(mask("AKIA1234", MaskStyle::Full), "********");
        assert_eq!(mask("12", MaskStyle::Last4), "*2");
        assert!(mask(
            "-----BEGIN RSA PRIVATE KEY-----\nMIIabc\n-----END RSA PRIVATE KEY-----",
            MaskStyle::Secret
        )
        .starts_with("-----BEGIN RSA PRIVATE KEY----- ["));
    }

    /// The slice path for ASCII values gives what the character path gives: fixed values (a
    /// run of hidden digits longer than its 32 stars included) and random ones made of
    /// letters, digits and separators, for every head and tail up to 5.
    #[test]
    fn ascii_path_matches_char_path() {
        let chars = |value: &str, head: usize, tail: usize| -> String {
            let total = value.chars().filter(|&c| maskable(c)).count();
            let (head, tail) = shown_ends(total, head, tail);
            let mut k = 0;
            value
                .chars()
                .map(|c| {
                    if !maskable(c) {
                        return c;
                    }
                    let shown = k < head || k >= total - tail;
                    k += 1;
                    if shown {
                        c
                    } else {
                        '*'
                    }
                })
                .collect()
        };
        let long = "0123-4567-".repeat(20);
        for v in [
            "",
            "1",
            "12-34",
            "4111 1111 1111 1111",
            "a.b@c",
            "---",
            long.as_str(),
        ] {
            for (h, t) in [(0, 4), (4, 4), (1, 0)] {
                let mut out = String::new();
                keep_ends(v, h, t, &mut out);
                assert_eq!(out, chars(v, h, t), "{v} {h} {t}");
            }
        }
        let pieces = ["1", "23", "a", "Z", "-", " ", "@", ".", "0123456789", "--"];
        let mut rng = crate::benchdata::Rng::new();
        let mut out = String::new();
        for _ in 0..20_000 {
            let len = (rng.next_u64() % 12) as usize;
            let v: String = (0..len)
                .map(|_| pieces[(rng.next_u64() % pieces.len() as u64) as usize])
                .collect();
            let (h, t) = ((rng.next_u64() % 6) as usize, (rng.next_u64() % 6) as usize);
            out.clear();
            out.push('x');
            keep_ends(&v, h, t, &mut out);
            assert_eq!(out[1..], chars(&v, h, t), "{v:?} {h} {t}");
        }
    }
}
