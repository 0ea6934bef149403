//! Numeric detectors: one tokenizer for digit runs, shared by every detector that reads digits.
//!
//! At the first digit of a run (ASCII or full-width), the tokenizer reads a *sequence*: digit
//! groups joined by single separators (space, ideographic space, the hyphen family including
//! `－ ‐ ― − ー`, dot, parentheses). Full-width digits are folded as they are read, so every
//! detector sees ASCII digits and the byte span of the original text. Each detector then looks at
//! the *windows* of consecutive groups that fit its format (`4-4-4-4`, `3-2-4`, `0X-XXXX-XXXX`, ...)
//! and validates them. Because every detector looks at every window, one detector never hides
//! another's match; overlaps are resolved later by evidence (see `scan.rs`).
//!
//! Boundaries are decided on characters, not on `\b`: a value glued to kana or kanji
//! (`番号は123456789018です`) is found, a value glued to ASCII letters (`ABC123456789018`), inside a
//! decimal or dotted number, or inside a hyphenated identifier (`ORD-2020-556838`) is not.

use super::scan::{Cand, Collector};
use super::validate;
use super::BuiltinKind as K;
use crate::rules::Confidence::{self, High, Low, Medium};

const MAX_GROUPS: usize = 13;
/// Windows start in the first `RESTART` groups; a longer sequence is re-tokenized from there.
const RESTART: usize = 8;
/// Longest group whose digits are kept (longer groups match nothing).
const MAX_GROUP_DIGITS: usize = 20;
const MAX_WINDOW_GROUPS: usize = 6;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Sep {
    Space,
    Hyphen,
    Dot,
    Open,
    Close,
}

#[derive(Clone, Copy, Default)]
struct Group {
    start: usize,
    end: usize,
    /// Offset of the group's digits in `Seq::digits`.
    d0: u8,
    len: u8,
    /// Separator after this group (valid when a group follows).
    sep: Option<Sep>,
}

/// A tokenized digit sequence. Lives in the scanner's scratch: it is large enough that building a
/// fresh one per digit run would cost more than reading the run.
pub(crate) struct Seq {
    groups: [Group; MAX_GROUPS],
    n: usize,
    digits: [u8; MAX_GROUPS * MAX_GROUP_DIGITS],
    nd: usize,
}

/// The ASCII digit at `i` (folded from full-width) and its length in bytes.
#[inline(always)]
pub(crate) fn digit_at(h: &[u8], i: usize) -> Option<(u8, usize)> {
    let b = *h.get(i)?;
    if b.is_ascii_digit() {
        return Some((b, 1));
    }
    if b == 0xEF && h.get(i + 1) == Some(&0xBC) {
        if let Some(&c) = h.get(i + 2) {
            if (0x90..=0x99).contains(&c) {
                return Some((c - 0x90 + b'0', 3));
            }
        }
    }
    None
}

/// A separator at `i` and its length.
#[inline]
fn sep_at(h: &[u8], i: usize) -> Option<(Sep, usize)> {
    let b = *h.get(i)?;
    let t = |k: usize| h.get(i + k).copied().unwrap_or(0);
    match b {
        b' ' => Some((Sep::Space, 1)),
        b'-' => Some((Sep::Hyphen, 1)),
        b'.' => Some((Sep::Dot, 1)),
        b'(' => Some((Sep::Open, 1)),
        b')' => Some((Sep::Close, 1)),
        0xC2 if t(1) == 0xA0 => Some((Sep::Space, 2)),
        0xE3 if t(1) == 0x80 && t(2) == 0x80 => Some((Sep::Space, 3)),
        0xE3 if t(1) == 0x83 && t(2) == 0xBC => Some((Sep::Hyphen, 3)), // ー between digits
        0xE2 if t(1) == 0x80 && (0x90..=0x95).contains(&t(2)) => Some((Sep::Hyphen, 3)),
        0xE2 if t(1) == 0x88 && t(2) == 0x92 => Some((Sep::Hyphen, 3)),
        0xEF if t(1) == 0xBC => match t(2) {
            0x8D => Some((Sep::Hyphen, 3)),
            0x8E => Some((Sep::Dot, 3)),
            0x88 => Some((Sep::Open, 3)),
            0x89 => Some((Sep::Close, 3)),
            _ => None,
        },
        0xEF if t(1) == 0xBD && t(2) == 0xB0 => Some((Sep::Hyphen, 3)), // halfwidth ｰ
        _ => None,
    }
}

/// Decodes the UTF-8 sequence `b` (2 to 4 bytes, lead byte first); `None` when malformed.
#[inline]
fn decode(b: &[u8]) -> Option<char> {
    let cont = |x: u8| (x & 0xC0 == 0x80).then_some(u32::from(x & 0x3F));
    let v = match *b {
        [l @ 0xC2..=0xDF, c1] => (u32::from(l & 0x1F) << 6) | cont(c1)?,
        [l @ 0xE0..=0xEF, c1, c2] => (u32::from(l & 0x0F) << 12) | (cont(c1)? << 6) | cont(c2)?,
        [l @ 0xF0..=0xF4, c1, c2, c3] => {
            (u32::from(l & 0x07) << 18) | (cont(c1)? << 12) | (cont(c2)? << 6) | cont(c3)?
        }
        _ => return None,
    };
    char::from_u32(v)
}

/// The character ending at `end` (decoded backwards), folded; `None` at the start of the text or
/// after a malformed sequence.
#[inline]
pub(crate) fn char_before(h: &[u8], end: usize) -> Option<(char, usize)> {
    let end = end.min(h.len());
    let b = *h.get(end.checked_sub(1)?)?;
    if b < 0x80 {
        return Some((b as char, end - 1));
    }
    let mut s = end - 1;
    while s > 0 && end - s < 4 && (h[s] & 0xC0) == 0x80 {
        s -= 1;
    }
    let c = decode(&h[s..end])?;
    Some((super::normalize::fold_char(c), s))
}

/// The character starting at `i`, folded, and its end.
#[inline]
pub(crate) fn char_after(h: &[u8], i: usize) -> Option<(char, usize)> {
    let b = *h.get(i)?;
    if b < 0x80 {
        return Some((b as char, i + 1));
    }
    let len = match b {
        0xC2..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF4 => 4,
        _ => return Some(('\u{FFFD}', i + 1)),
    };
    match h.get(i..i + len).and_then(decode) {
        Some(c) => Some((super::normalize::fold_char(c), i + len)),
        None => Some(('\u{FFFD}', i + 1)),
    }
}

fn is_word(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

impl Seq {
    pub(crate) fn new() -> Seq {
        Seq {
            groups: [Group::default(); MAX_GROUPS],
            n: 0,
            digits: [0; MAX_GROUPS * MAX_GROUP_DIGITS],
            nd: 0,
        }
    }

    fn group_digits(&self, g: usize) -> &[u8] {
        let gr = &self.groups[g];
        &self.digits[gr.d0 as usize..gr.d0 as usize + gr.len as usize]
    }
}

/// Reads the digit sequence starting at `i` (a digit). Returns the sequence and where it ends.
fn tokenize(h: &[u8], mut i: usize, seq: &mut Seq) {
    seq.n = 0;
    seq.nd = 0;
    loop {
        let start = i;
        let d0 = seq.nd;
        let mut count = 0usize;
        while let Some((d, l)) = digit_at(h, i) {
            if count < MAX_GROUP_DIGITS {
                seq.digits[seq.nd + count] = d;
            }
            count += 1;
            i += l;
        }
        let kept = count.min(MAX_GROUP_DIGITS);
        seq.groups[seq.n] = Group {
            start,
            end: i,
            d0: d0 as u8,
            // A group longer than we keep gets an impossible length so no window accepts it.
            len: if count > MAX_GROUP_DIGITS {
                u8::MAX
            } else {
                kept as u8
            },
            sep: None,
        };
        seq.nd += kept;
        seq.n += 1;
        if seq.n == MAX_GROUPS {
            return;
        }
        // A separator counts only when a digit follows it (`)` may be followed by one space).
        let Some((sep, l)) = sep_at(h, i) else { return };
        let mut j = i + l;
        if sep == Sep::Close {
            if let Some((Sep::Space, l2)) = sep_at(h, j) {
                j += l2;
            }
        }
        if digit_at(h, j).is_none() {
            return;
        }
        seq.groups[seq.n - 1].sep = Some(sep);
        i = j;
    }
}

/// What sits at one edge of a window.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Edge {
    /// Start or end of text, whitespace, CJK, punctuation that ends a value.
    Clear,
    /// Glued to an identifier, a decimal or a dotted number: no standalone value here.
    Blocked,
    /// Another group of the same sequence, joined by this separator.
    Sep(Sep),
}

/// Classifies the character before the sequence. `group_len` is its first group's digits and
/// `joined` tells whether a hyphen or a space joins that group to a next one.
/// `labels` are the phone labels that may be glued in front ([`Collector::phone_labels`]).
fn edge_before(
    h: &[u8],
    start: usize,
    group_len: usize,
    joined: bool,
    labels: &[Box<[u8]>],
) -> (Edge, Option<char>) {
    match char_before(h, start) {
        None => (Edge::Clear, None),
        Some((c, s)) => {
            let prev = char_before(h, s).map(|(p, _)| p);
            // `ORD-2020-…` is an identifier; `1,234` a grouped amount (three digits after the
            // comma, at most three before it, not going on as `090-1234-5678` does), but
            // `1001,890786666177` and `1234-5678-9018,090-1234-5678` are two CSV fields each.
            // A dot after letters ends an abbreviation (`TEL.03-…`, `No.`), not a number.
            // `=` after ASCII is a query string or an assignment (`?id=…`, `x=…`); after a
            // Japanese label it is a form's or an export's `個人番号=…`.
            let blocked = is_word(c)
                && !(c.is_ascii_alphabetic() && phone_label_before(h, start, labels))
                || matches!(c, '/' | '@' | '\\' | '#' | '%' | '$' | '&')
                || c == '=' && prev.is_none_or(|p| p.is_ascii())
                || c == '.' && !prev.is_some_and(|p| p.is_ascii_alphabetic())
                || c == '-' && prev.is_some_and(|p| p.is_ascii_alphanumeric())
                || c == ','
                    && group_len == 3
                    && !joined
                    && prev.is_some_and(|p| p.is_ascii_digit())
                    && digits_before(h, s) <= 3;
            (if blocked { Edge::Blocked } else { Edge::Clear }, Some(c))
        }
    }
}

/// The ASCII letters right before `start` are a whole phone label (`TEL03-5321-1111`,
/// `FAX03-…`, `Mobile090-…` in a signature): letters glued to digits make an identifier
/// (`ABC123…`), but not these. The labels are the phone detectors' ASCII context words
/// (lowercase), so a label a rules file adds counts too.
fn phone_label_before(h: &[u8], start: usize, labels: &[Box<[u8]>]) -> bool {
    let longest = labels.iter().map(|l| l.len()).max().unwrap_or(0);
    let mut s = start;
    while s > 0 && start - s < longest && h[s - 1].is_ascii_alphabetic() {
        s -= 1;
    }
    if s > 0 && is_word(char::from(h[s - 1])) {
        return false;
    }
    let run = &h[s..start];
    labels.iter().any(|w| run.eq_ignore_ascii_case(w))
}

/// Digits (ASCII or full-width) right before `end`, counted up to 4.
fn digits_before(h: &[u8], mut end: usize) -> usize {
    let mut n = 0;
    while n < 4 {
        match char_before(h, end) {
            Some((c, s)) if c.is_ascii_digit() => {
                n += 1;
                end = s;
            }
            _ => break,
        }
    }
    n
}

/// Classifies the character after the sequence; `last_len` is its last group's digits.
fn edge_after(h: &[u8], end: usize, last_len: usize) -> (Edge, Option<char>) {
    match char_after(h, end) {
        None => (Edge::Clear, None),
        Some((c, e)) => {
            let next = char_after(h, e).map(|(n, _)| n);
            let next_alnum = next.is_some_and(|n| n.is_ascii_alphanumeric());
            // `123.pdf` is a file name and `1.5` a decimal, but `0425.Build` ends a sentence.
            let next_lower_or_digit =
                next.is_some_and(|n| n.is_ascii_lowercase() || n.is_ascii_digit());
            // `…,000` continues a grouped amount; `…,1002` starts the next CSV field, and so do
            // `9018,090-1234-5678` (four digits before the comma; three after it that go on as
            // a hyphenated or spaced number) and `000,090-…`.
            let thousands = c == ',' && last_len <= 3 && {
                let (mut k, mut n) = (e, 0);
                while let Some((_, len)) = digit_at(h, k) {
                    k += len;
                    n += 1;
                    if n > 3 {
                        break;
                    }
                }
                n == 3
                    && !sep_at(h, k).is_some_and(|(sep, l)| {
                        matches!(sep, Sep::Hyphen | Sep::Space) && digit_at(h, k + l).is_some()
                    })
            };
            // `2026/12/07` and `123/456` go on with digits; a slash before a word separates two
            // items (`TEL:03-…/FAX:03-…`, `個人番号:…/氏名:…`).
            let blocked = is_word(c)
                || matches!(c, '@' | '\\' | '%')
                || (c == '/' && next.is_none_or(|n| n.is_ascii_digit()))
                || (c == '-' && next_alnum)
                || thousands
                || (c == '.' && next_lower_or_digit);
            (if blocked { Edge::Blocked } else { Edge::Clear }, Some(c))
        }
    }
}

/// Where [`scan_at`] would resume after the digit run at `p` when it can be told without
/// tokenizing: fewer than 7 digits, nothing after them that may join another group
/// (conservatively: a digit, or a byte that may begin a separator followed by a digit or a
/// full-width digit, says "maybe"), and no letter or `+` in front. `scan_at`'s own fast exit
/// skips these; this is the same decision made from the trigger scan's digit mask (`run`: the
/// ASCII digits from `p`; 0 when `p` starts full-width digits, which are counted here), for
/// the quantities, years and prices that make up most digit runs. `None`: call `scan_at`.
#[inline]
pub(crate) fn skip_short(h: &[u8], p: usize, run: usize) -> Option<usize> {
    let mut e = p + run;
    if run == 0 {
        // Full-width digits: `EF BC 90..99` each.
        let mut n = 0;
        while let Some([0xEF, 0xBC, 0x90..=0x99]) = h.get(e..e + 3) {
            n += 1;
            e += 3;
            if n == 7 {
                return None;
            }
        }
        if n == 0 {
            return None;
        }
    } else if run >= 7 {
        return None;
    }
    let joins = match h.get(e) {
        None => false,
        // A digit after an ASCII separator (or a full-width digit's lead byte) may continue
        // the sequence; `)` may be followed by a space first.
        Some(b' ' | b'-' | b'.' | b'(') => h
            .get(e + 1)
            .is_some_and(|&c| c.is_ascii_digit() || c == 0xEF),
        Some(b'0'..=b'9' | b')' | 0xC2 | 0xE2 | 0xEF) => true,
        Some(0xE3) => matches!(h.get(e + 1..e + 3), Some([0x80, 0x80] | [0x83, 0xBC])),
        Some(_) => false,
    };
    if joins {
        return None;
    }
    (!letter_or_plus_before(h, p)).then_some(e)
}

/// Is the character before `p` a letter or `+` (folded: full-width ones too)? Only these make
/// a short number interesting (IBANs, passport numbers, `+81`).
#[inline]
fn letter_or_plus_before(h: &[u8], p: usize) -> bool {
    match p.checked_sub(1).map(|i| h[i]) {
        None => false,
        Some(b) if b < 0x80 => b.is_ascii_alphabetic() || b == b'+',
        // Only the full-width forms (U+FF01..U+FF5E: `EF BC xx`, `EF BD xx`) fold to ASCII.
        Some(_) => {
            p >= 3
                && h[p - 3] == 0xEF
                && matches!(h[p - 2], 0xBC | 0xBD)
                && char_before(h, p).is_some_and(|(c, _)| c.is_ascii_alphabetic() || c == '+')
        }
    }
}

/// Scans the digit sequence that starts at `i`; returns where scanning resumes.
pub(crate) fn scan_at(col: &mut Collector<'_>, seq: &mut Seq, h: &[u8], i: usize) -> usize {
    tokenize(h, i, seq);
    let seq = &*seq;
    let first = seq.groups[0];
    let last = seq.groups[seq.n - 1];
    // Fast exit: one short group with nothing special in front: a quantity, a year, a price.
    // (Only letters and `+` in front make a short group interesting: IBANs, `+81`.)
    if seq.n == 1 && (first.len as usize) < 7 && !letter_or_plus_before(h, first.start) {
        return last.end;
    }
    let joined = seq.n > 1 && matches!(first.sep, Some(Sep::Hyphen | Sep::Space));
    let (before, before_c) = edge_before(
        h,
        first.start,
        first.len as usize,
        joined,
        col.phone_labels(),
    );
    let mut resume = last.end;
    if let Some(c) = before_c {
        if c.is_ascii_alphabetic() {
            if let Some(end) = letter_prefixed(col, h, seq, c) {
                return end.max(resume);
            }
        }
    }
    let truncated = seq.n == MAX_GROUPS;
    let starts = if truncated { RESTART } else { seq.n };
    let (after, _) = edge_after(h, last.end, last.len as usize);
    for a in 0..starts {
        let left = if a == 0 {
            before
        } else {
            Edge::Sep(seq.groups[a - 1].sep.unwrap_or(Sep::Space))
        };
        let mut total = 0usize;
        for b in a..seq.n.min(a + MAX_WINDOW_GROUPS) {
            total += seq.groups[b].len as usize;
            if total > 19 {
                break;
            }
            let right = if b + 1 == seq.n {
                if truncated {
                    Edge::Sep(Sep::Space)
                } else {
                    after
                }
            } else {
                Edge::Sep(seq.groups[b].sep.unwrap_or(Sep::Space))
            };
            window(col, h, seq, a, b, total, left, right, before_c);
        }
    }
    if truncated {
        resume = seq.groups[RESTART].start;
    }
    resume
}

/// Grouping of a window: lengths and the separators inside it.
struct Win<'a> {
    seq: &'a Seq,
    a: usize,
    b: usize,
    total: usize,
}

impl Win<'_> {
    fn n(&self) -> usize {
        self.b - self.a + 1
    }
    fn len(&self, k: usize) -> usize {
        self.seq.groups[self.a + k].len as usize
    }
    fn lens_are(&self, want: &[usize]) -> bool {
        self.n() == want.len() && want.iter().enumerate().all(|(k, &w)| self.len(k) == w)
    }
    fn seps(&self) -> impl Iterator<Item = Sep> + '_ {
        (self.a..self.b).map(|g| self.seq.groups[g].sep.unwrap_or(Sep::Space))
    }
    /// All separators are the same kind and that kind is one of `kinds`.
    fn uniform(&self, kinds: &[Sep]) -> bool {
        let mut it = self.seps();
        match it.next() {
            None => true,
            Some(first) => kinds.contains(&first) && it.all(|s| s == first),
        }
    }
    fn digits(&self, buf: &mut [u8; 24]) -> usize {
        let mut n = 0;
        for g in self.a..=self.b {
            for &d in self.seq.group_digits(g) {
                if n < buf.len() {
                    buf[n] = d;
                    n += 1;
                }
            }
        }
        n
    }
    fn start(&self) -> usize {
        self.seq.groups[self.a].start
    }
    fn end(&self) -> usize {
        self.seq.groups[self.b].end
    }
}

#[allow(clippy::too_many_arguments)]
fn window(
    col: &mut Collector<'_>,
    h: &[u8],
    seq: &Seq,
    a: usize,
    b: usize,
    total: usize,
    left: Edge,
    right: Edge,
    before_c: Option<char>,
) {
    // A window that ends at a dot joining more digits is part of a decimal or dotted number.
    if left == Edge::Sep(Sep::Dot) || right == Edge::Sep(Sep::Dot) {
        return;
    }
    let clear = left != Edge::Blocked && right != Edge::Blocked;
    // The invoice registration number: `T` + 13 digits, the T glued to the digits.
    let t_prefixed = total == 13
        && a == 0
        && left == Edge::Blocked
        && right != Edge::Blocked
        && matches!(before_c, Some('T' | 't'));
    // Every other reading (phones too) needs both edges clear: part of an identifier such as
    // `ORD-2019-127040` or glued to letters, the window is nothing.
    if !clear && !t_prefixed {
        return;
    }
    let w = Win { seq, a, b, total };
    let mut buf = [0u8; 24];
    let nd = w.digits(&mut buf);
    let d = &buf[..nd];
    // A parenthesis at a window edge belongs to a phone number's area code only.
    let paren_edge = matches!(left, Edge::Sep(Sep::Open | Sep::Close))
        || matches!(right, Edge::Sep(Sep::Open | Sep::Close));
    let has_paren_inside = w.seps().any(|s| matches!(s, Sep::Open | Sep::Close));

    if clear && !paren_edge && !has_paren_inside {
        if (13..=19).contains(&total) {
            credit_card(col, &w, d);
        }
        match total {
            7 => bank(col, &w, d),
            9 => ssn(col, &w, d),
            10 => {
                pension(col, &w, d);
            }
            12 => {
                my_number(col, &w, d);
                drivers_license(col, &w, d);
            }
            13 => corporate(col, h, &w, d, false),
            _ => {}
        }
        if matches!(total, 10 | 11 | 13 | 14) {
            bank(col, &w, d);
        }
    }
    if t_prefixed {
        let t_at = char_before(h, w.start()).map(|(_, s)| s).unwrap_or(0);
        if edge_before(h, t_at, usize::MAX, false, col.phone_labels()).0 == Edge::Clear {
            corporate(col, h, &w, d, true);
        }
    }
    if clear {
        phones(col, h, &w, d, left, before_c);
    }
}

#[allow(clippy::too_many_arguments)]
fn push(
    col: &mut Collector<'_>,
    kind: K,
    start: usize,
    end: usize,
    canon: &[u8],
    plain: Option<Confidence>,
    ctx: Confidence,
    check: Option<&'static str>,
) {
    push_flagged(col, kind, start, end, canon, plain, ctx, check, 0);
}

#[allow(clippy::too_many_arguments)]
fn push_flagged(
    col: &mut Collector<'_>,
    kind: K,
    start: usize,
    end: usize,
    canon: &[u8],
    plain: Option<Confidence>,
    ctx: Confidence,
    check: Option<&'static str>,
    flags: u8,
) {
    if let Some(det) = col.det(kind) {
        let mut c = Cand::new(det, start, end, plain, ctx, check);
        c.flags = flags;
        col.push(c, canon);
    }
}

fn credit_card(col: &mut Collector<'_>, w: &Win<'_>, d: &[u8]) {
    let n = w.n();
    let grouped = n == 1
        || w.uniform(&[Sep::Space, Sep::Hyphen])
            && ((1..n).all(|k| k == n - 1 || w.len(k) == 4) && w.len(0) == 4 && (n == 4 || n == 5)
                || w.lens_are(&[4, 6, 5])
                || w.lens_are(&[4, 6, 4]));
    if !grouped || !validate::luhn(d) {
        return;
    }
    let (plain, ctx) = match validate::card_brand(d) {
        _ if validate::card_is_test_number(d) => (Some(Low), Medium),
        // 13-digit numbers are mostly JAN/EAN product codes; 13-digit Visa cards are long gone.
        Some(_) if d.len() == 13 || validate::jan_code(d) => (None, Medium),
        Some(_) => (Some(Medium), High),
        None if d.len() == 16 => (None, Medium),
        None => return,
    };
    if validate::is_degenerate(d) {
        return;
    }
    let flags = if validate::card_is_test_number(d) {
        Cand::TEST_VALUE
    } else {
        0
    };
    push_flagged(
        col,
        K::CreditCard,
        w.start(),
        w.end(),
        d,
        plain,
        ctx,
        Some("luhn"),
        flags,
    );
}

fn my_number(col: &mut Collector<'_>, w: &Win<'_>, d: &[u8]) {
    if !(w.n() == 1 || w.lens_are(&[4, 4, 4]) && w.uniform(&[Sep::Space, Sep::Hyphen, Sep::Dot])) {
        return;
    }
    if !validate::my_number(d) {
        return;
    }
    // Placeholders and date-plus-sequence numbers pass the check digit by chance: they need a label.
    let plain = if validate::is_degenerate(d) || validate::starts_with_date(d) {
        None
    } else {
        Some(Low)
    };
    push(
        col,
        K::JpMyNumber,
        w.start(),
        w.end(),
        d,
        plain,
        High,
        Some("my_number_check_digit"),
    );
}

fn corporate(col: &mut Collector<'_>, h: &[u8], w: &Win<'_>, d: &[u8], t_prefix: bool) {
    if !(w.n() == 1 || w.lens_are(&[1, 4, 4, 4]) && w.uniform(&[Sep::Space, Sep::Hyphen])) {
        return;
    }
    if !validate::corporate_number(d) {
        return;
    }
    let (start, plain) = if t_prefix {
        (
            char_before(h, w.start()).map_or(w.start(), |(_, s)| s),
            Some(High),
        )
    } else if validate::is_degenerate(&d[1..]) || validate::jan_code(d) {
        (w.start(), None)
    } else {
        (w.start(), Some(Low))
    };
    let mut canon = [0u8; 14];
    let canon: &[u8] = if t_prefix {
        canon[0] = b'T';
        canon[1..].copy_from_slice(d);
        &canon[..]
    } else {
        d
    };
    push(
        col,
        K::JpCorporateNumber,
        start,
        w.end(),
        canon,
        plain,
        High,
        Some("corporate_number_check_digit"),
    );
}

fn bank(col: &mut Collector<'_>, w: &Win<'_>, d: &[u8]) {
    let (ok, conf) = match w.total {
        7 if w.n() == 1 => (true, Medium),
        10 if w.lens_are(&[3, 7]) => (true, High),
        13 if w.lens_are(&[5, 8]) => (true, High), // Japan Post Bank 記号-番号
        14 if w.lens_are(&[4, 3, 7]) => (true, High),
        14 if w.n() == 1 => (true, Medium), // Japan Post Bank, 14 digits
        _ => (false, Low),
    };
    if ok && w.uniform(&[Sep::Space, Sep::Hyphen]) && !validate::is_degenerate(d) {
        push(
            col,
            K::JpBankAccount,
            w.start(),
            w.end(),
            d,
            None,
            conf,
            None,
        );
    }
}

fn drivers_license(col: &mut Collector<'_>, w: &Win<'_>, d: &[u8]) {
    // Licence numbers are printed as twelve digits in a row (第 301512345678 号); 4-4-4 groups are
    // how My Numbers are written.
    if w.n() != 1 {
        return;
    }
    let code = (d[0] - b'0') * 10 + (d[1] - b'0');
    if validate::jp_license_commission(code) && !validate::is_degenerate(d) {
        push(
            col,
            K::JpDriversLicense,
            w.start(),
            w.end(),
            d,
            None,
            High,
            Some("commission_code"),
        );
    }
}

fn pension(col: &mut Collector<'_>, w: &Win<'_>, d: &[u8]) {
    if (w.n() == 1 || w.lens_are(&[4, 6]) && w.uniform(&[Sep::Space, Sep::Hyphen]))
        && !validate::is_degenerate(d)
    {
        push(
            col,
            K::JpBasicPensionNumber,
            w.start(),
            w.end(),
            d,
            None,
            High,
            None,
        );
    }
}

fn ssn(col: &mut Collector<'_>, w: &Win<'_>, d: &[u8]) {
    if !validate::us_ssn(d) {
        return;
    }
    let (plain, ctx) = if validate::us_ssn_is_sample(d) {
        (None, Low)
    } else if w.lens_are(&[3, 2, 4]) && w.uniform(&[Sep::Hyphen, Sep::Space]) {
        (Some(Low), High)
    } else if w.n() == 1 {
        (None, Medium)
    } else {
        return;
    };
    push(
        col,
        K::UsSsn,
        w.start(),
        w.end(),
        d,
        plain,
        ctx,
        Some("ssn_area_group_serial"),
    );
}

/// Japanese domestic numbers, +81 numbers, NANP and other international numbers.
fn phones(
    col: &mut Collector<'_>,
    h: &[u8],
    w: &Win<'_>,
    d: &[u8],
    left: Edge,
    before_c: Option<char>,
) {
    let n = w.n();
    let total = w.total;
    let plus = w.a == 0 && before_c == Some('+');
    let open_before = w.a == 0 && before_c == Some('(') || left == Edge::Sep(Sep::Open);
    let seps_ok = w
        .seps()
        .all(|s| matches!(s, Sep::Hyphen | Sep::Space | Sep::Open | Sep::Close));
    if !seps_ok {
        return;
    }
    // Value span: include a leading '+', or a '(' that closes after the first group (`(03)
    // 5321-1111`); a '(' around the whole number (`山田(090-1234-5678)`) is not part of it.
    let paren_area = open_before && w.a == 0 && matches!(w.seps().next(), Some(Sep::Close));
    let lead = |start: usize| -> usize {
        if plus || paren_area {
            char_before(h, start).map(|(_, s)| s).unwrap_or(start)
        } else {
            start
        }
    };
    if plus {
        let cc = w.seq.group_digits(w.a);
        if cc == b"81" && n >= 2 {
            // +81 3-1234-5678, +81 90 1234 5678, +81(0)3-1234-5678
            let mut national: Vec<u8> = d[2..].to_vec();
            if national.first() == Some(&b'0') && w.len(1) == 1 {
                national.remove(0);
            }
            let mut full = vec![b'0'];
            full.extend_from_slice(&national);
            if national.first().is_some_and(|&c| c != b'0')
                && matches!(full.len(), 10 | 11)
                && jp_shape_ok(&full)
            {
                let mut canon = b"+81".to_vec();
                canon.extend_from_slice(&national);
                push(
                    col,
                    K::JpPhone,
                    lead(w.start()),
                    w.end(),
                    &canon,
                    Some(Medium),
                    High,
                    None,
                );
            }
            return;
        }
        if cc == b"1" && total == 11 && n >= 3 && (b'2'..=b'9').contains(&d[1]) && w.len(n - 1) == 4
        {
            let mut canon = b"+".to_vec();
            canon.extend_from_slice(d);
            push(
                col,
                K::Phone,
                lead(w.start()),
                w.end(),
                &canon,
                Some(Medium),
                High,
                None,
            );
            return;
        }
        let cc_len = cc.len();
        if (1..=3).contains(&cc_len)
            && cc[0] != b'0'
            && n >= 2
            && (8..=15).contains(&total)
            && w.len(n - 1) >= 2
        {
            let mut canon = b"+".to_vec();
            canon.extend_from_slice(d);
            push(
                col,
                K::Phone,
                lead(w.start()),
                w.end(),
                &canon,
                Some(Medium),
                High,
                None,
            );
        }
        return;
    }
    if d[0] == b'0' {
        if !matches!(total, 10 | 11) {
            return;
        }
        if n == 1 {
            // Unseparated: mobiles are recognisable (and with a label as sure as a hyphenated
            // number: `携帯 09012345678`), anything else needs a label.
            let mobile = total == 11 && matches!(&d[..3], b"070" | b"080" | b"090");
            push(
                col,
                K::JpPhone,
                w.start(),
                w.end(),
                d,
                if mobile { Some(Low) } else { None },
                if mobile { High } else { Medium },
                None,
            );
            return;
        }
        let grouped = n >= 2 && (open_before && w.a == 0 || jp_grouping_ok(w, d));
        if grouped && jp_shape_ok(d) {
            push(
                col,
                K::JpPhone,
                lead(w.start()),
                w.end(),
                d,
                Some(Medium),
                High,
                None,
            );
        }
        return;
    }
    // NANP: 234-567-8901, 234.567.8901 (dots rejected upstream), (234) 567-8901.
    if total == 10 && (b'2'..=b'9').contains(&d[0]) && w.len(n - 1) == 4 {
        let shaped = w.lens_are(&[3, 3, 4])
            && (w.uniform(&[Sep::Hyphen])
                || open_before && matches!(w.seps().next(), Some(Sep::Close)));
        if shaped {
            push(
                col,
                K::Phone,
                lead(w.start()),
                w.end(),
                d,
                Some(Low),
                High,
                None,
            );
        }
    }
}

/// Domestic Japanese groupings (digits including the leading 0).
fn jp_grouping_ok(w: &Win<'_>, d: &[u8]) -> bool {
    let n = w.n();
    if n != 3 && n != 2 {
        return false;
    }
    // On the stack: this runs for every hyphenated phone number of a customer list.
    let lens = [w.len(0), w.len(1), if n == 3 { w.len(2) } else { 0 }];
    let lens = &lens[..n];
    match d.len() {
        10 => {
            if n == 3 {
                let free = matches!(&d[..4], b"0120" | b"0570" | b"0990");
                (2..=5).contains(&lens[0]) && lens[2] == 4 || free && lens == [4, 3, 3]
            } else {
                lens[0] == 2 && lens[1] == 8
            }
        }
        11 => {
            n == 3
                && (lens == [3, 4, 4]
                    && matches!(&d[..3], b"070" | b"080" | b"090" | b"050" | b"020" | b"060")
                    || lens == [4, 3, 4] && &d[..4] == b"0800")
        }
        _ => false,
    }
}

/// Plausible national number: 10 digits (fixed line, toll free) or 11 with a mobile/IP prefix.
fn jp_shape_ok(d: &[u8]) -> bool {
    match d.len() {
        10 => d[0] == b'0' && d[1] != b'0',
        11 => {
            matches!(&d[..3], b"070" | b"080" | b"090" | b"050" | b"020" | b"060")
                || &d[..4] == b"0800"
        }
        _ => false,
    }
}

/// Values whose digits are glued to letters in front: passports (TK1234567), residence cards
/// (AB12345678CD) and IBANs (GB82 WEST ...). Returns the end of a match, to resume after it.
fn letter_prefixed(col: &mut Collector<'_>, h: &[u8], seq: &Seq, c1: char) -> Option<usize> {
    let g = seq.groups[0];
    let (_, s1) = char_before(h, g.start)?;
    let (c0, s0) = char_before(h, s1)?;
    if !c0.is_ascii_alphabetic() {
        return None;
    }
    // The two letters must start a token.
    if edge_before(h, s0, usize::MAX, false, col.phone_labels()).0 == Edge::Blocked {
        return None;
    }
    let up = |c: char| c.to_ascii_uppercase() as u8;
    if c0.is_ascii_uppercase() && c1.is_ascii_uppercase() {
        if let Some(end) = iban(col, h, s0, up(c0), up(c1)) {
            return Some(end);
        }
    }
    let digits = seq.group_digits(0);
    let after = char_after(h, g.end);
    match g.len {
        7 => {
            let clear = after.is_none_or(|(c, _)| !is_word(c));
            if clear {
                let mut canon = vec![up(c0), up(c1)];
                canon.extend_from_slice(digits);
                push(col, K::JpPassport, s0, g.end, &canon, None, High, None);
                return Some(g.end);
            }
        }
        8 => {
            // Residence card: two more letters right after the digits, then a boundary.
            let (l2, e2) = after?;
            let (l3, e3) = char_after(h, e2)?;
            if l2.is_ascii_alphabetic()
                && l3.is_ascii_alphabetic()
                && char_after(h, e3).is_none_or(|(c, _)| !is_word(c))
            {
                let mut canon = vec![up(c0), up(c1)];
                canon.extend_from_slice(digits);
                canon.extend_from_slice(&[up(l2), up(l3)]);
                push(
                    col,
                    K::JpResidenceCard,
                    s0,
                    e3,
                    &canon,
                    Some(Low),
                    High,
                    None,
                );
                return Some(e3);
            }
        }
        _ => {}
    }
    None
}

/// IBAN at `start` (the country code), compact or in groups of four separated by single spaces.
fn iban(col: &mut Collector<'_>, h: &[u8], start: usize, c0: u8, c1: u8) -> Option<usize> {
    let want = validate::iban_length(&[c0, c1])?;
    let mut buf = [0u8; 34];
    let mut n = 0;
    let mut i = start;
    let mut end = start;
    let mut since_space = 0;
    while n < want {
        let (c, e) = char_after(h, i)?;
        if c.is_ascii_alphanumeric() {
            buf[n] = c.to_ascii_uppercase() as u8;
            n += 1;
            since_space += 1;
            i = e;
            end = e;
        } else if c == ' ' && since_space == 4 && n % 4 == 0 {
            since_space = 0;
            i = e;
        } else {
            return None;
        }
    }
    if char_after(h, end).is_some_and(|(c, _)| is_word(c)) {
        return None;
    }
    if !validate::iban(&buf[..n]) {
        return None;
    }
    push(
        col,
        K::Iban,
        start,
        end,
        &buf[..n],
        Some(High),
        High,
        Some("iban_mod97"),
    );
    Some(end)
}
