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
    let total = if value.is_ascii() {
        value.bytes().filter(u8::is_ascii_alphanumeric).count()
    } else {
        value.chars().filter(|&c| maskable(c)).count()
    };
    let (head, tail) = shown_ends(total, head, tail);
    let mut k = 0;
    out.reserve(value.len());
    if value.is_ascii() {
        // Bytes, not chars: most values are ASCII digits, and a list masks tens of thousands.
        let mut buf = [0u8; 64];
        for chunk in value.as_bytes().chunks(buf.len()) {
            for (o, &b) in buf.iter_mut().zip(chunk) {
                *o = if b.is_ascii_alphanumeric() {
                    let shown = k < head || k >= total - tail;
                    k += 1;
                    if shown {
                        b
                    } else {
                        b'*'
                    }
                } else {
                    b
                };
            }
            // ASCII in, ASCII out.
            out.push_str(std::str::from_utf8(&buf[..chunk.len()]).unwrap_or_default());
        }
        return;
    }
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

    /// The byte path for ASCII values gives what the character path gives (values longer than
    /// its 64-byte buffer included).
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
    }
}
