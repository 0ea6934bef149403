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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WordRole {
    pub det: DetId,
    pub negative: bool,
}

/// The compiled context words.
pub(crate) struct ContextWords {
    ac: Option<AhoCorasick>,
    /// Per pattern: the words' text and who uses it.
    pub words: Vec<String>,
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
        Ok(ContextWords { ac, words, roles, edges, max_len })
    }

    pub fn heap_bytes(&self) -> usize {
        self.ac.as_ref().map_or(0, AhoCorasick::memory_usage) + self.words.iter().map(|w| w.len() + 24).sum::<usize>()
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
#[derive(Default)]
pub(crate) struct ContextIndex {
    /// Hits sorted by start.
    pub hits: Vec<WordHit>,
    /// Everything before this offset has been searched (or skipped as out of every window).
    frontier: usize,
}

impl ContextIndex {
    pub fn reset(&mut self) {
        self.hits.clear();
        self.frontier = 0;
    }

    /// Makes sure every word lying inside `[from, to)` is in `hits`. Calls must come with
    /// non-decreasing `from`.
    pub fn ensure(&mut self, words: &ContextWords, hay: &[u8], from: usize, to: usize) {
        let Some(ac) = &words.ac else { return };
        let to = to.min(hay.len());
        let old = self.frontier;
        if to <= old {
            return;
        }
        // Resume a little before the frontier so that words straddling it are found; hits that
        // end before the frontier were found by the previous search and are skipped.
        let resumed = from < old;
        let start = if resumed { old.saturating_sub(words.max_len.saturating_sub(1)) } else { from };
        let start = floor_char_boundary(hay, start);
        let n0 = self.hits.len();
        for m in ac.find_overlapping_iter(Input::new(hay).range(start..to)) {
            if resumed && m.end() <= old {
                continue;
            }
            let w = m.pattern().as_u32();
            let (l, r) = words.edges[w as usize];
            if (l && m.start() > 0 && is_word_byte(hay[m.start() - 1]))
                || (r && m.end() < hay.len() && is_word_byte(hay[m.end()]))
            {
                continue;
            }
            self.hits.push(WordHit { word: w, start: m.start(), end: m.end() });
        }
        // Overlapping search reports by end position; keep the vector sorted by start.
        self.hits[n0..].sort_unstable_by_key(|h| (h.start, h.end));
        if n0 > 0 && n0 < self.hits.len() && self.hits[n0].start < self.hits[n0 - 1].start {
            self.hits.sort_by_key(|h| (h.start, h.end));
        }
        self.frontier = to;
    }

    /// The hits starting inside `[from, to)`.
    pub fn between(&self, from: usize, to: usize) -> &[WordHit] {
        let a = self.hits.partition_point(|h| h.start < from);
        let b = self.hits.partition_point(|h| h.start < to);
        &self.hits[a..b.max(a)]
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

/// Start of the window reaching `chars` characters back from `at` (or 0).
pub(crate) fn back_chars(hay: &[u8], at: usize, chars: usize) -> usize {
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

/// End of the window reaching `chars` characters forward from `at` (or the end).
pub(crate) fn forward_chars(hay: &[u8], at: usize, chars: usize) -> usize {
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
    hay[a..b].iter().filter(|&&c| (c & 0xC0) != 0x80).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(ws: &[&str]) -> ContextWords {
        ContextWords::new(
            ws.iter()
                .map(|w| (w.to_string(), WordRole { det: 0, negative: false }))
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
        let found: Vec<&str> = idx.hits.iter().map(|h| std::str::from_utf8(&hay[h.start..h.end]).unwrap()).collect();
        assert_eq!(found, ["個人番号", "SSN", "個人番号"]);
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
