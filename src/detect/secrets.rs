//! Email addresses and secrets, each anchored on a byte that the trigger scan stops at.
//!
//! | trigger | detectors |
//! |---|---|
//! | `@` | email_address |
//! | `A` | aws_access_key_id (`AKIA`, `ASIA`, `ABIA`, `ACCA`, `A3T*`), google_api_key (`AIza`) |
//! | `_` | github_token (`gh?_`, `github_pat_`), stripe_secret_key (`sk_`/`rk_` + `live_`/`test_`) |
//! | `x` | slack_token (`xox?-`) |
//! | `/` | slack_token webhooks (`hooks.slack.com/services/...`) |
//! | `-` | private_key (`-----BEGIN ... PRIVATE KEY-----`) |
//!
//! `aws_secret_access_key` is looked for near an access key ID and near its labels (the literal
//! matcher triggers it, see `scan.rs`). Every handler answers in a few byte comparisons when the
//! bytes around the trigger do not fit.

use super::scan::{Cand, Collector};
use super::validate;
use super::BuiltinKind as K;
use crate::rules::Confidence::{High, Low, Medium};

#[inline]
fn is_alnum(b: u8) -> bool {
    b.is_ascii_alphanumeric()
}

fn at(h: &[u8], i: usize) -> u8 {
    h.get(i).copied().unwrap_or(0)
}

/// Length of the run of bytes from `i` satisfying `f`, up to `max`.
fn run(h: &[u8], i: usize, max: usize, f: impl Fn(u8) -> bool) -> usize {
    let mut n = 0;
    while n < max && i + n < h.len() && f(h[i + n]) {
        n += 1;
    }
    n
}

#[allow(clippy::too_many_arguments)]
fn push(
    col: &mut Collector<'_>,
    kind: K,
    start: usize,
    end: usize,
    h: &[u8],
    plain: Option<crate::rules::Confidence>,
    ctx: crate::rules::Confidence,
    check: Option<&'static str>,
) {
    if let Some(det) = col.det(kind) {
        let canon = &h[start..end];
        col.push(Cand::new(det, start, end, plain, ctx, check), canon);
    }
}

/// `@`: an email address around position `i`. Returns where scanning resumes.
pub(crate) fn email(col: &mut Collector<'_>, h: &[u8], i: usize) -> usize {
    let local = |b: u8| is_alnum(b) || matches!(b, b'.' | b'_' | b'%' | b'+' | b'-');
    let mut s = i;
    while s > 0 && i - s < 64 && local(h[s - 1]) {
        s -= 1;
    }
    // Trim leading dots and hyphens from the local part.
    while s < i && matches!(h[s], b'.' | b'-') {
        s += 1;
    }
    if s == i || h[i - 1] == b'.' {
        return i + 1;
    }
    // Domain: labels of letters, digits and hyphens joined by dots. The address ends after the
    // last label that is alphabetic (a TLD) and not glued to more letters: in
    // `a@example.com.Next` the sentence ends after `com`.
    let mut e = i + 1;
    let mut labels = 0;
    let mut best: Option<usize> = None;
    loop {
        let n = run(h, e, 63, |b| is_alnum(b) || b == b'-');
        if n == 0 {
            break;
        }
        let label = &h[e..e + n];
        e += n;
        labels += 1;
        let tld_ok = (2..=24).contains(&label.len()) && label.iter().all(u8::is_ascii_alphabetic);
        let after = at(h, e);
        if labels >= 2 && tld_ok && !(is_alnum(after) || after == b'_' || after == b'@') {
            best = Some(e);
        }
        // `example.com.Thanks`: a capitalised word after a lower-case domain starts a sentence.
        let next = &h[(e + 1).min(h.len())..];
        let capitalised = next.first().is_some_and(u8::is_ascii_uppercase)
            && next.get(1).is_some_and(u8::is_ascii_lowercase);
        let lower_so_far = !h[i + 1..e].iter().any(u8::is_ascii_uppercase);
        if at(h, e) == b'.'
            && is_alnum(at(h, e + 1))
            && e - i < 253
            && !(best.is_some() && capitalised && lower_so_far)
        {
            e += 1;
        } else {
            break;
        }
    }
    let Some(e) = best else { return i + 1 };
    if let Some(det) = col.det(K::EmailAddress) {
        let canon = h[s..e].to_ascii_lowercase();
        col.push(Cand::new(det, s, e, Some(High), High, None), &canon);
    }
    e
}

/// `A`: AWS access key IDs and Google API keys.
pub(crate) fn upper_a(col: &mut Collector<'_>, h: &[u8], i: usize) -> usize {
    if i > 0 && is_alnum(h[i - 1]) {
        return i + 1;
    }
    let p = h.get(i..i + 4).unwrap_or(&[]);
    let aws = matches!(p, b"AKIA" | b"ASIA" | b"ABIA" | b"ACCA")
        || p.len() == 4
            && &p[..3] == b"A3T"
            && (p[3].is_ascii_uppercase() || p[3].is_ascii_digit());
    if aws {
        let base32 = |b: u8| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b);
        let n = run(h, i + 4, 17, base32);
        if n == 16 && !is_alnum(at(h, i + 20)) {
            let end = i + 20;
            let example = h[i..end].ends_with(b"EXAMPLE");
            let (plain, ctx) = if example {
                (Some(Low), Low)
            } else {
                (Some(High), High)
            };
            if let Some(det) = col.det(K::AwsAccessKeyId) {
                let mut c = Cand::new(det, i, end, plain, ctx, None);
                if example {
                    c.flags |= Cand::TEST_VALUE;
                }
                col.push(c, &h[i..end]);
            }
            // A secret access key usually follows its key ID within a few lines.
            aws_secret_near(col, h, end, 300, Medium);
            return end;
        }
    }
    if p == b"AIza" {
        let key = |b: u8| is_alnum(b) || b == b'_' || b == b'-';
        let n = run(h, i + 4, 36, key);
        if n == 35 {
            let end = i + 39;
            push(col, K::GoogleApiKey, i, end, h, Some(High), High, None);
            return end;
        }
    }
    i + 1
}

/// `_`: GitHub tokens (`ghp_`, `gho_`, `ghu_`, `ghs_`, `ghr_`, `github_pat_`) and Stripe keys.
pub(crate) fn underscore(col: &mut Collector<'_>, h: &[u8], i: usize) -> usize {
    // gh?_ + 36 alphanumerics
    if i >= 3 && &h[i - 3..i - 1] == b"gh" && matches!(h[i - 1], b'p' | b'o' | b'u' | b's' | b'r') {
        let s = i - 3;
        if s == 0 || !is_alnum(h[s - 1]) {
            let n = run(h, i + 1, 256, is_alnum);
            if (36..=251).contains(&n) && at(h, i + 1 + n) != b'_' {
                let end = i + 1 + n;
                push(col, K::GithubToken, s, end, h, Some(High), High, None);
                return end;
            }
        }
    }
    // github_pat_ + 82 of [A-Za-z0-9_]
    if i >= 6 && &h[i - 6..i] == b"github" && h.get(i..i + 5) == Some(b"_pat_") {
        let s = i - 6;
        if s == 0 || !is_alnum(h[s - 1]) {
            let n = run(h, i + 5, 255, |b| is_alnum(b) || b == b'_');
            if n >= 60 {
                let end = i + 5 + n;
                push(col, K::GithubToken, s, end, h, Some(High), High, None);
                return end;
            }
        }
    }
    // sk_live_ / rk_live_ / sk_test_ / rk_test_ / sk_prod_
    if i >= 2 && matches!(&h[i - 2..i], b"sk" | b"rk") && (i == 2 || !is_alnum(h[i - 3])) {
        let s = i - 2;
        let mode = h.get(i + 1..i + 6).unwrap_or(&[]);
        let live = mode == b"live_" || mode == b"prod_";
        if live || mode == b"test_" {
            let n = run(h, i + 6, 256, is_alnum);
            if (16..=247).contains(&n) {
                let end = i + 6 + n;
                let (plain, ctx) = if live {
                    (Some(High), High)
                } else {
                    (Some(Low), Medium)
                };
                push(col, K::StripeSecretKey, s, end, h, plain, ctx, None);
                return end;
            }
        }
    }
    i + 1
}

/// `x`: Slack tokens `xoxb-`, `xoxp-`, `xoxa-`, `xoxr-`, `xoxs-`, `xoxe-`.
pub(crate) fn lower_x(col: &mut Collector<'_>, h: &[u8], i: usize) -> usize {
    if h.get(i..i + 3) != Some(b"xox")
        || !matches!(at(h, i + 3), b'a' | b'b' | b'p' | b'r' | b's' | b'e')
        || at(h, i + 4) != b'-'
    {
        return i + 1;
    }
    if i > 0 && (is_alnum(h[i - 1]) || h[i - 1] == b'.') && !(i >= 5 && &h[i - 5..i] == b"xoxe.") {
        return i + 1;
    }
    // Segments of [A-Za-z0-9] joined by '-': at least one numeric segment of 9+ digits and a
    // total of 30+ characters after the prefix.
    let body_start = i + 5;
    let n = run(h, body_start, 255, |b| is_alnum(b) || b == b'-');
    let body = &h[body_start..body_start + n];
    let body = body.strip_suffix(b"-").unwrap_or(body);
    let long_numeric = body
        .split(|&b| b == b'-')
        .any(|seg| seg.len() >= 9 && seg.iter().all(u8::is_ascii_digit));
    if body.len() >= 30 && long_numeric {
        let end = body_start + body.len();
        push(col, K::SlackToken, i, end, h, Some(High), High, None);
        return end;
    }
    i + 1
}

/// `/`: Slack incoming webhook URLs.
pub(crate) fn slash(col: &mut Collector<'_>, h: &[u8], i: usize) -> usize {
    const HOST: &[u8] = b"hooks.slack.com";
    if i < HOST.len() || &h[i - HOST.len()..i] != HOST {
        return i + 1;
    }
    let rest = &h[i + 1..];
    let kind_len = [&b"services/"[..], b"workflows/", b"triggers/"]
        .iter()
        .find(|k| rest.starts_with(k))
        .map(|k| k.len());
    let Some(kl) = kind_len else { return i + 1 };
    let path_start = i + 1 + kl;
    let n = run(h, path_start, 200, |b| {
        is_alnum(b) || matches!(b, b'/' | b'_' | b'-' | b'+')
    });
    if n < 20 {
        return i + 1;
    }
    let mut s = i - HOST.len();
    for scheme in [&b"https://"[..], b"http://"] {
        if s >= scheme.len() && &h[s - scheme.len()..s] == scheme {
            s -= scheme.len();
            break;
        }
    }
    let end = path_start + n;
    push(col, K::SlackToken, s, end, h, Some(High), High, None);
    end
}

/// `-`: PEM and OpenSSH private key blocks. The span covers header to footer when both are there.
pub(crate) fn dash(col: &mut Collector<'_>, h: &[u8], i: usize) -> usize {
    const BEGIN: &[u8] = b"-----BEGIN ";
    if !h[i..].starts_with(BEGIN) {
        return i + 1;
    }
    let label_start = i + BEGIN.len();
    let n = run(h, label_start, 64, |b| {
        b.is_ascii_uppercase() || b.is_ascii_digit() || b == b' ' || b == b'-'
    });
    let line = &h[label_start..label_start + n];
    let Some(label_end) = find(line, b"-----") else {
        return i + 1;
    };
    let label = &line[..label_end];
    let is_private = label.ends_with(b"PRIVATE KEY") || label.ends_with(b"PRIVATE KEY BLOCK");
    if !is_private {
        return i + 1;
    }
    let header_end = label_start + label_end + 5;
    // Footer within 64 KiB: -----END <label>-----, and never past the next -----BEGIN (a block
    // does not hold another one; stopping there keeps a text of many headers linear).
    let window = &h[header_end..h.len().min(header_end + 65536)];
    let mut footer = b"-----END ".to_vec();
    footer.extend_from_slice(label);
    footer.extend_from_slice(b"-----");
    let found = memchr::memmem::find_iter(window, b"-----")
        .take_while(|&at| !window[at..].starts_with(BEGIN))
        .find(|&at| window[at..].starts_with(&footer));
    let body = &window[..found.unwrap_or(window.len().min(4096))];
    let body_chars = body
        .iter()
        .filter(|&&b| is_alnum(b) || b == b'+' || b == b'/' || b == b'=')
        .count();
    let (end, plain) = match found {
        Some(f) if body_chars >= 64 => (header_end + f + footer.len(), High),
        Some(f) => (header_end + f + footer.len(), Low),
        None if body_chars >= 64 => (header_end, Medium),
        None => (header_end, Low),
    };
    if let Some(det) = col.det(K::PrivateKey) {
        // The canonical value: the key body without whitespace (first 4 KiB), for uniqueness.
        let canon: Vec<u8> = h[i..end]
            .iter()
            .copied()
            .filter(|b| !b.is_ascii_whitespace())
            .take(4096)
            .collect();
        col.push(
            Cand::new(det, i, end, Some(plain), plain, Some("pem_structure")),
            &canon,
        );
    }
    end
}

fn find(h: &[u8], needle: &[u8]) -> Option<usize> {
    memchr::memmem::find(h, needle)
}

/// Looks for a 40-character AWS secret access key within `reach` bytes after `from`.
pub(crate) fn aws_secret_near(
    col: &mut Collector<'_>,
    h: &[u8],
    from: usize,
    reach: usize,
    conf: crate::rules::Confidence,
) {
    let Some(det) = col.det(K::AwsSecretAccessKey) else {
        return;
    };
    let end = h.len().min(from + reach);
    let b64 = |b: u8| is_alnum(b) || b == b'/' || b == b'+';
    let mut i = from;
    while i < end {
        // A key starts after anything but base64 (`=` included: `AWS_SECRET_ACCESS_KEY=…` in
        // a `.env` file or a shell script is how keys are written down most often).
        if b64(h[i]) && (i == 0 || !b64(h[i - 1])) {
            let n = run(h, i, 41, b64);
            if n == 40 && at(h, i + 40) != b'=' {
                let v = &h[i..i + 40];
                let mixed = v.iter().any(u8::is_ascii_lowercase)
                    && v.iter().any(u8::is_ascii_uppercase)
                    && v.iter().any(u8::is_ascii_digit);
                if mixed && validate::entropy(v) >= 4.0 {
                    col.push(
                        Cand::new(det, i, i + 40, Some(conf), High, Some("entropy")),
                        v,
                    );
                    return;
                }
            }
            i += n.max(1);
        } else {
            i += 1;
        }
    }
}
