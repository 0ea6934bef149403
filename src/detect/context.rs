//! Context words: one Aho-Corasick automaton over every detector's positive and negative words,
//! searched lazily around candidates.
//!
//! Context matters only near a candidate that already passed its format and checksum, so the text
//! is not searched up front. Candidates are scored in position order, and [`ContextIndex`] searches
//! each window once: it remembers how far it has searched and only extends the searched region,
//! skipping text that no window reaches. Each byte is searched at most once per scan.

use aho_corasick::{AhoCorasick, Input, MatchKind};

use super::DetId;

/// What a context word says about a detector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct WordRole {
    pub det: DetId,
    pub negative: bool,
}

/// The compiled context words.
pub(crate) struct ContextWords {
    ac: Option<AhoCorasick>,
    /// Per pattern: the words' text and who uses it.
    pub words: Vec<String>,
    /// Per pattern: the evidence texts of a word found in a table's header cell and in a row's
    /// label cell (`column header 個人番号`, `row label 個人番号`), made once here so that the
    /// findings of a 10,000-row list do not each build them again.
    pub column_header: Vec<String>,
    pub row_label: Vec<String>,
    pub roles: Vec<Vec<WordRole>>,
    /// Per pattern: word boundaries needed at the start / end (ASCII letter or digit there).
    edges: Vec<(bool, bool)>,
    /// Longest word in bytes (how far before a resumed search point a word may start).
    max_len: usize,
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric()
}

impl ContextWords {
    /// Builds from `(word, role)` pairs; words are matched ASCII-case-insensitively.
    pub fn new(pairs: Vec<(String, WordRole)>) -> Result<ContextWords, String> {
        let mut words: Vec<String> = Vec::new();
        let mut roles: Vec<Vec<WordRole>> = Vec::new();
        let mut index = std::collections::HashMap::new();
        for (w, r) in pairs {
            let w = w.trim().to_string();
            if w.is_empty() {
                continue;
            }
            let key = w.to_ascii_lowercase();
            let i = *index.entry(key).or_insert_with(|| {
                words.push(w.clone());
                roles.push(Vec::new());
                words.len() - 1
            });
            if !roles[i].contains(&r) {
                roles[i].push(r);
            }
        }
        let ac = if words.is_empty() {
            None
        } else {
            Some(
                AhoCorasick::builder()
                    .match_kind(MatchKind::Standard)
                    .ascii_case_insensitive(true)
                    .kind(Some(aho_corasick::AhoCorasickKind::DFA))
                    .build(&words)
                    .map_err(|e| e.to_string())?,
            )
        };
        let edges = words
            .iter()
            .map(|w| {
                let b = w.as_bytes();
                (is_word_byte(b[0]), is_word_byte(b[b.len() - 1]))
            })
            .collect();
        let max_len = words.iter().map(String::len).max().unwrap_or(0);
        let column_header = words.iter().map(|w| format!("column header {w}")).collect();
        let row_label = words.iter().map(|w| format!("row label {w}")).collect();
        Ok(ContextWords {
            ac,
            words,
            column_header,
            row_label,
            roles,
            edges,
            max_len,
        })
    }

    /// The `(word, role)` pairs that [`ContextWords::new`] builds this from again.
    pub fn pairs(&self) -> Vec<(String, WordRole)> {
        self.words
            .iter()
            .zip(&self.roles)
            .flat_map(|(w, roles)| roles.iter().map(|&r| (w.clone(), r)))
            .collect()
    }

    /// The positive context words of the detectors `dets` that are whole ASCII words of 2 to
    /// 12 letters, lowercased: the phone labels that may be glued to a number
    /// (`TEL03-5321-1111`, `FAX03-…`), taken from the rules so that a label a rules file adds
    /// is one too.
    pub fn ascii_labels(&self, dets: &[DetId]) -> Vec<Box<[u8]>> {
        let mut out: Vec<Box<[u8]>> = Vec::new();
        for (w, roles) in self.words.iter().zip(&self.roles) {
            let label = (2..=12).contains(&w.len())
                && w.bytes().all(|b| b.is_ascii_alphabetic())
                && roles.iter().any(|r| !r.negative && dets.contains(&r.det));
            if !label {
                continue;
            }
            let w: Box<[u8]> = w.to_ascii_lowercase().into_bytes().into();
            if !out.contains(&w) {
                out.push(w);
            }
        }
        out
    }

    pub fn heap_bytes(&self) -> usize {
        self.ac.as_ref().map_or(0, AhoCorasick::memory_usage)
            + self
                .words
                .iter()
                .map(|w| 3 * (w.len() + 24) + 24)
                .sum::<usize>()
    }
}

/// A context word found in the text.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WordHit {
    pub word: u32,
    pub start: usize,
    pub end: usize,
}

/// The lazily searched context of one text (see the module docs).
///
/// Coverage is tracked by *start* position: once `[a, b)` is covered, every word starting in it is
/// in `hits` (each search runs `max_len - 1` bytes past its range to finish words that start
/// inside it). Windows may come in any order; each byte is searched about once.
#[derive(Default)]
pub(crate) struct ContextIndex {
    /// Hits sorted by start.
    hits: Vec<WordHit>,
    /// Covered ranges, sorted, disjoint and not touching.
    covered: Vec<(usize, usize)>,
    /// The hits of one search before they go into `hits` (kept to reuse its memory).
    found: Vec<WordHit>,
}

impl ContextIndex {
    pub fn reset(&mut self) {
        self.hits.clear();
        self.covered.clear();
    }

    /// Makes sure every word starting inside `[from, to)` is in the index.
    pub fn ensure(&mut self, words: &ContextWords, hay: &[u8], from: usize, to: usize) {
        let Some(ac) = &words.ac else { return };
        let to = to.min(hay.len());
        if from >= to {
            return;
        }
        // Walk the covered ranges that overlap [from, to) and search the gaps between them.
        let mut i = self.covered.partition_point(|&(_, e)| e < from);
        let mut cur = from;
        let mut gaps: [(usize, usize); 4] = [(0, 0); 4];
        let mut ngaps = 0;
        let mut spill = Vec::new();
        while cur < to {
            match self.covered.get(i) {
                Some(&(s, e)) if s <= cur => {
                    cur = cur.max(e);
                    i += 1;
                }
                Some(&(s, _)) if s < to => {
                    push_gap(&mut gaps, &mut ngaps, &mut spill, (cur, s));
                    cur = s;
                }
                _ => {
                    push_gap(&mut gaps, &mut ngaps, &mut spill, (cur, to));
                    cur = to;
                }
            }
        }
        for &(g0, g1) in gaps[..ngaps].iter().chain(spill.iter()) {
            let from_char = floor_char_boundary(hay, g0);
            let stop = (g1 + words.max_len.saturating_sub(1)).min(hay.len());
            let at = self.hits.partition_point(|h| h.start < g0);
            let mut new = std::mem::take(&mut self.found);
            new.clear();
            for m in ac.find_overlapping_iter(Input::new(hay).range(from_char..stop)) {
                if m.start() < g0 || m.start() >= g1 {
                    continue;
                }
                let w = m.pattern().as_u32();
                let (l, r) = words.edges[w as usize];
                if (l && m.start() > 0 && is_word_byte(hay[m.start() - 1]))
                    || (r && m.end() < hay.len() && is_word_byte(hay[m.end()]))
                {
                    continue;
                }
                new.push(WordHit {
                    word: w,
                    start: m.start(),
                    end: m.end(),
                });
            }
            new.sort_unstable_by_key(|h| (h.start, h.end));
            self.hits.splice(at..at, new.drain(..));
            self.found = new;
            self.cover(g0, g1);
        }
    }

    fn cover(&mut self, a: usize, b: usize) {
        let i = self.covered.partition_point(|&(_, e)| e < a);
        let mut j = i;
        let (mut s, mut e) = (a, b);
        while j < self.covered.len() && self.covered[j].0 <= e {
            s = s.min(self.covered[j].0);
            e = e.max(self.covered[j].1);
            j += 1;
        }
        self.covered.splice(i..j, [(s, e)]);
    }

    /// The hits starting inside `[from, to)`.
    pub fn between(&self, from: usize, to: usize) -> &[WordHit] {
        let a = self.hits.partition_point(|h| h.start < from);
        let b = self.hits.partition_point(|h| h.start < to);
        &self.hits[a..b.max(a)]
    }
}

fn push_gap(
    gaps: &mut [(usize, usize); 4],
    n: &mut usize,
    spill: &mut Vec<(usize, usize)>,
    g: (usize, usize),
) {
    if g.0 >= g.1 {
        return;
    }
    if *n < gaps.len() {
        gaps[*n] = g;
        *n += 1;
    } else {
        spill.push(g);
    }
}

/// The largest char boundary at or below `i` (text that is not UTF-8 is treated byte-wise).
pub(crate) fn floor_char_boundary(hay: &[u8], mut i: usize) -> usize {
    i = i.min(hay.len());
    let mut steps = 0;
    while i > 0 && i < hay.len() && (hay[i] & 0xC0) == 0x80 && steps < 3 {
        i -= 1;
        steps += 1;
    }
    i
}

/// Characters (bytes that are not UTF-8 continuation bytes) in an 8-byte word.
#[inline]
fn lead_bytes(w: [u8; 8]) -> usize {
    let w = u64::from_le_bytes(w);
    // A continuation byte is 10xxxxxx: bit 7 set and bit 6 clear.
    let cont = w & !(w << 1) & 0x8080_8080_8080_8080;
    8 - cont.count_ones() as usize
}

/// Start of the window reaching `chars` characters back from `at` (or 0): eight bytes at a time
/// while the count stays short of `chars`, then byte by byte (the same stop as
/// [`back_chars_bytewise`]).
pub(crate) fn back_chars(hay: &[u8], at: usize, chars: usize) -> usize {
    let mut i = at.min(hay.len());
    let mut n = 0;
    while let Some(w) = i.checked_sub(8).and_then(|j| hay[j..i].first_chunk::<8>()) {
        let k = lead_bytes(*w);
        if n + k >= chars {
            break;
        }
        n += k;
        i -= 8;
    }
    while i > 0 && n < chars {
        i -= 1;
        if (hay[i] & 0xC0) != 0x80 {
            n += 1;
        }
    }
    i
}

/// [`back_chars`] a byte at a time: the reference its tests compare with.
#[cfg(test)]
fn back_chars_bytewise(hay: &[u8], at: usize, chars: usize) -> usize {
    let mut i = at.min(hay.len());
    let mut n = 0;
    while i > 0 && n < chars {
        i -= 1;
        if (hay[i] & 0xC0) != 0x80 {
            n += 1;
        }
    }
    i
}

/// End of the window reaching `chars` characters forward from `at` (or the end): the
/// `chars`-th character start after `at`. Eight bytes at a time while the count stays short of
/// `chars`, then byte by byte (the same stop as [`forward_chars_bytewise`]).
pub(crate) fn forward_chars(hay: &[u8], at: usize, chars: usize) -> usize {
    let at = at.min(hay.len());
    if chars == 0 || at == hay.len() {
        return at;
    }
    let mut q = at + 1;
    let mut n = 0;
    while let Some(w) = hay.get(q..).and_then(<[u8]>::first_chunk::<8>) {
        let k = lead_bytes(*w);
        if n + k >= chars {
            break;
        }
        n += k;
        q += 8;
    }
    while q < hay.len() {
        if (hay[q] & 0xC0) != 0x80 {
            n += 1;
            if n == chars {
                return q;
            }
        }
        q += 1;
    }
    hay.len()
}

/// [`forward_chars`] a byte at a time: the reference its tests compare with.
#[cfg(test)]
fn forward_chars_bytewise(hay: &[u8], at: usize, chars: usize) -> usize {
    let mut i = at.min(hay.len());
    let mut n = 0;
    while i < hay.len() && n < chars {
        i += 1;
        while i < hay.len() && (hay[i] & 0xC0) == 0x80 {
            i += 1;
        }
        n += 1;
    }
    i
}

/// Characters between two offsets (`a <= b`).
pub(crate) fn chars_between(hay: &[u8], a: usize, b: usize) -> usize {
    let (a, b) = (a.min(hay.len()), b.min(hay.len()));
    if a >= b {
        return 0;
    }
    let (words, rest) = hay[a..b].as_chunks::<8>();
    words.iter().map(|w| lead_bytes(*w)).sum::<usize>()
        + rest.iter().filter(|&&c| (c & 0xC0) != 0x80).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(ws: &[&str]) -> ContextWords {
        ContextWords::new(
            ws.iter()
                .map(|w| {
                    (
                        w.to_string(),
                        WordRole {
                            det: 0,
                            negative: false,
                        },
                    )
                })
                .collect(),
        )
        .unwrap()
    }

    #[test]
    fn lazy_windows_find_each_word_once() {
        let w = words(&["個人番号", "SSN"]);
        let hay = "個人番号 123 ... SSN 456 個人番号 789 ASSN".as_bytes();
        let mut idx = ContextIndex::default();
        idx.ensure(&w, hay, 0, 10);
        idx.ensure(&w, hay, 5, 30);
        idx.ensure(&w, hay, 8, hay.len());
        idx.ensure(&w, hay, 8, hay.len());
        let found: Vec<&str> = idx
            .between(0, hay.len())
            .iter()
            .map(|h| std::str::from_utf8(&hay[h.start..h.end]).unwrap())
            .collect();
        assert_eq!(found, ["個人番号", "SSN", "個人番号"]);
    }

    #[test]
    fn windows_in_any_order() {
        let w = words(&["口座", "TEL", "個人番号"]);
        let text = "口座 1 TEL 2 個人番号 3 口座 4 TEL";
        let hay = text.as_bytes();
        let mut idx = ContextIndex::default();
        idx.ensure(&w, hay, 20, 30);
        idx.ensure(&w, hay, 0, 8);
        idx.ensure(&w, hay, 5, 25);
        idx.ensure(&w, hay, 0, hay.len());
        let found: Vec<(usize, &str)> = idx
            .between(0, hay.len())
            .iter()
            .map(|h| (h.start, &text[h.start..h.end]))
            .collect();
        let want: Vec<(usize, &str)> = ["口座", "TEL", "個人番号"]
            .iter()
            .flat_map(|w| text.match_indices(w))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        assert_eq!(found, want);
    }

    #[test]
    fn char_windows_match_the_bytewise_walk() {
        // Random UTF-8-ish bytes (continuation bytes, leads, ASCII) and real Japanese text.
        let mut x: u32 = 12345;
        let mut bytes: Vec<u8> = (0..600)
            .map(|_| {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                [0x80, 0xA9, 0xE3, b'a', 0xBF, 0xC3, b' '][(x >> 16) as usize % 7]
            })
            .collect();
        bytes.extend_from_slice("個人番号は 1234 5678 9018 です。abc".as_bytes());
        for at in (0..=bytes.len() + 2).step_by(3) {
            for chars in [0, 1, 2, 3, 7, 8, 9, 15, 16, 17, 40, 300, 1000] {
                assert_eq!(
                    back_chars(&bytes, at, chars),
                    back_chars_bytewise(&bytes, at, chars),
                    "back {at} {chars}"
                );
                assert_eq!(
                    forward_chars(&bytes, at, chars),
                    forward_chars_bytewise(&bytes, at, chars),
                    "forward {at} {chars}"
                );
            }
            let b = (at + 37).min(bytes.len());
            let want = bytes[at.min(b)..b]
                .iter()
                .filter(|&&c| (c & 0xC0) != 0x80)
                .count();
            assert_eq!(chars_between(&bytes, at, b), want);
        }
    }

    #[test]
    fn char_windows() {
        let hay = "あいうabc".as_bytes();
        assert_eq!(back_chars(hay, 9, 2), 3);
        assert_eq!(forward_chars(hay, 0, 2), 6);
        assert_eq!(chars_between(hay, 0, 12), 6);
        assert_eq!(floor_char_boundary(hay, 4), 3);
    }
}
