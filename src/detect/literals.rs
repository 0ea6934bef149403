//! Literal matching for keyword lists, dictionaries (100,000+ terms) and built-in literal triggers.
//!
//! # Algorithm
//!
//! An Aho-Corasick automaton walked over every byte runs at a few hundred MB/s once it holds
//! thousands of patterns (its prefilters only help with a handful of patterns). Most text holds no
//! term at all, so the matcher first *filters* positions with a hashed bitset and only verifies the
//! survivors with an anchored Aho-Corasick search:
//!
//! * Terms are put in tiers by length. A tier has a key length `K` (4 or 8 bytes) and a stride `S`;
//!   every term of the tier is at least `K + S - 1` bytes long. For each term, the `S` keys starting
//!   at offsets `0..S` of the term go into the tier's bitset (hashed) and into an exact key table
//!   that remembers the offsets.
//! * The scan reads one key every `S` bytes of the text. An occurrence of a term starting at `s`
//!   has exactly one offset `k < S` with `s + k` on the stride lattice, and the key read there is the
//!   term's own key at offset `k`, so no occurrence is missed.
//! * A key whose bit is set is looked up in the exact table; for each recorded offset `k`, an
//!   anchored search at `p - k` confirms the term and finds the longest one that starts there.
//!
//! Keys are ASCII-case-folded when any term is case-insensitive, so the filter is a superset of
//! both kinds; case-sensitive terms are compared byte for byte afterwards by the caller.
//! Terms shorter than 4 bytes (rare: `ID`, one kanji) fall back to a plain automaton search.

use aho_corasick::automaton::OverlappingState;
use aho_corasick::{AhoCorasick, AhoCorasickKind, Anchored, Input, MatchKind, StartKind};

/// A hit: term index and byte span.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LitHit {
    pub term: u32,
    pub start: usize,
    pub end: usize,
}

/// The filter bit of a key: the high bits of a multiplicative hash.
#[inline(always)]
fn bit_of(key: u64, bits_log2: u32) -> usize {
    (key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - bits_log2)) as usize
}

#[inline(always)]
fn hash(key: u64, shift: u32) -> usize {
    (key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> shift) as usize
}

/// Exact key -> bitmask of term offsets, open addressing.
struct KeyTable {
    keys: Vec<u64>,
    masks: Vec<u8>,
    shift: u32,
}

impl KeyTable {
    fn new(entries: usize) -> KeyTable {
        let cap = (entries * 2).next_power_of_two().max(16);
        KeyTable {
            keys: vec![0; cap],
            masks: vec![0; cap],
            shift: 64 - cap.trailing_zeros(),
        }
    }

    fn insert(&mut self, key: u64, offset: usize) {
        let m = self.keys.len() - 1;
        let mut i = hash(key, self.shift);
        loop {
            if self.masks[i] == 0 {
                self.keys[i] = key;
                self.masks[i] = 1 << offset;
                return;
            }
            if self.keys[i] == key {
                self.masks[i] |= 1 << offset;
                return;
            }
            i = (i + 1) & m;
        }
    }

    #[inline]
    fn get(&self, key: u64) -> u8 {
        let m = self.keys.len() - 1;
        let mut i = hash(key, self.shift);
        loop {
            let mask = self.masks[i];
            if mask == 0 {
                return 0;
            }
            if self.keys[i] == key {
                return mask;
            }
            i = (i + 1) & m;
        }
    }

    fn heap_bytes(&self) -> usize {
        self.keys.len() * 9
    }
}

struct Tier {
    key_len: usize,
    stride: usize,
    /// Bit filter (one bit per hashed key), `1 << bits_log2` bits.
    bloom: Vec<u64>,
    bits_log2: u32,
    table: KeyTable,
    ac: AhoCorasick,
    /// Automaton pattern id -> term index.
    terms: Vec<u32>,
}

/// The compiled literal set.
pub(crate) struct LiteralMatcher {
    tiers: Vec<Tier>,
    /// A few short terms without ASCII letters: Teddy (SIMD) search, pattern id -> term index.
    teddy: Option<(aho_corasick::packed::Searcher, Vec<u32>)>,
    /// Terms shorter than 4 bytes: a plain (unanchored) search.
    tiny: Option<(AhoCorasick, Vec<u32>)>,
    fold: bool,
    /// Per term: does it start / end with an ASCII letter or digit (then a word boundary is needed).
    edges: Vec<(bool, bool)>,
}

/// The key of `k` bytes at `p`, folded like the scan loop folds it.
fn key_at(hay: &[u8], p: usize, k: usize, fold: bool) -> u64 {
    let mut b = [0u8; 8];
    b[..k].copy_from_slice(&hay[p..p + k]);
    let key = u64::from_le_bytes(b);
    if fold {
        key | 0x2020_2020_2020_2020 & (u64::MAX >> (64 - 8 * k))
    } else {
        key
    }
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

impl LiteralMatcher {
    /// Builds the matcher over `terms` (non-empty byte strings; duplicates allowed, the caller maps
    /// term indices to their owners). `fold` enables ASCII case-insensitive matching.
    pub fn new(terms: &[&[u8]], fold: bool) -> Result<LiteralMatcher, String> {
        // Tier plan: (key length, stride, minimum term length).
        const LONG: (usize, usize, usize) = (8, 5, 12);
        const MID: (usize, usize, usize) = (4, 6, 9);
        const SHORT: (usize, usize, usize) = (4, 3, 6);
        const VSHORT: (usize, usize, usize) = (4, 1, 4);
        const SMALL: usize = 256;
        let mut buckets: [Vec<u32>; 4] = Default::default();
        let mut tiny = Vec::new();
        for (i, t) in terms.iter().enumerate() {
            let i = i as u32;
            match t.len() {
                n if n >= LONG.2 => buckets[0].push(i),
                n if n >= MID.2 => buckets[1].push(i),
                n if n >= SHORT.2 => buckets[2].push(i),
                n if n >= VSHORT.2 => buckets[3].push(i),
                0 => return Err("empty term".into()),
                _ => tiny.push(i),
            }
        }
        // A handful of short terms without ASCII letters (社外秘, 機密, 極秘) go to Teddy, a SIMD
        // search on their first bytes, instead of a hashed pass at stride 3.
        let mut teddy = None;
        let no_letters = |&i: &u32| !terms[i as usize].iter().any(u8::is_ascii_alphabetic);
        if !buckets[2].is_empty() && buckets[2].len() <= 32 && buckets[2].iter().all(no_letters) {
            let ids = std::mem::take(&mut buckets[2]);
            let mut b = aho_corasick::packed::Config::new()
                .match_kind(aho_corasick::packed::MatchKind::LeftmostLongest)
                .builder();
            b.extend(ids.iter().map(|&i| terms[i as usize]));
            match b.build() {
                Some(searcher) => teddy = Some((searcher, ids)),
                None => buckets[2] = ids,
            }
        }
        // Merge small tiers into a slower tier that runs anyway (one pass beats two): a small
        // tier of longer terms into the next shorter non-empty tier.
        for long in 0..3 {
            // The stride-6 tier (9-11 bytes) joins a stride-3 or stride-1 tier whatever its size:
            // those read at least as many keys already, while a pass of its own costs a sixth of a
            // probe per byte.
            let limit = if long == 1 { usize::MAX } else { SMALL };
            if buckets[long].is_empty() || buckets[long].len() > limit {
                continue;
            }
            if let Some(short) = (long + 1..4).find(|&t| !buckets[t].is_empty()) {
                let moved = std::mem::take(&mut buckets[long]);
                buckets[short].extend(moved);
            }
        }
        let mut tiers = Vec::new();
        for (plan, ids) in [LONG, MID, SHORT, VSHORT].iter().zip(buckets) {
            if ids.is_empty() {
                continue;
            }
            let (k, s, _) = *plan;
            let entries = ids.len() * s;
            // 64 bits per key while the filter stays within 512 KiB (L2), 16 beyond that.
            let per = if entries * 64 <= 1 << 22 { 64 } else { 16 };
            let nbits = (entries * per).next_power_of_two().clamp(1 << 12, 1 << 26);
            let bits_log2 = nbits.trailing_zeros();
            let mut bloom_bits = vec![0u64; nbits / 64];
            let mut table = KeyTable::new(entries);
            for &id in &ids {
                let t = terms[id as usize];
                for off in 0..s {
                    let key = key_at(t, off, k, fold);
                    let b = bit_of(key, bits_log2);
                    bloom_bits[b >> 6] |= 1 << (b & 63);
                    table.insert(key, off);
                }
            }
            let pats: Vec<&[u8]> = ids.iter().map(|&i| terms[i as usize]).collect();
            let ac = AhoCorasick::builder()
                .match_kind(MatchKind::Standard)
                .start_kind(StartKind::Anchored)
                .ascii_case_insensitive(fold)
                .kind(Some(AhoCorasickKind::ContiguousNFA))
                .prefilter(false)
                .build(&pats)
                .map_err(|e| e.to_string())?;
            tiers.push(Tier {
                key_len: k,
                stride: s,
                bloom: bloom_bits,
                bits_log2,
                table,
                ac,
                terms: ids,
            });
        }
        let tiny = if tiny.is_empty() {
            None
        } else {
            let pats: Vec<&[u8]> = tiny.iter().map(|&i| terms[i as usize]).collect();
            let ac = AhoCorasick::builder()
                .match_kind(MatchKind::Standard)
                .ascii_case_insensitive(fold)
                .build(&pats)
                .map_err(|e| e.to_string())?;
            Some((ac, tiny))
        };
        let edges = terms
            .iter()
            .map(|t| {
                (
                    t.first().is_some_and(|&b| is_word_byte(b)),
                    t.last().is_some_and(|&b| is_word_byte(b)),
                )
            })
            .collect();
        Ok(LiteralMatcher {
            tiers,
            teddy,
            tiny,
            fold,
            edges,
        })
    }

    /// Approximate heap use in bytes.
    pub fn heap_bytes(&self) -> usize {
        self.tiers
            .iter()
            .map(|t| {
                t.bloom.len() * 8 + t.table.heap_bytes() + t.ac.memory_usage() + t.terms.len() * 4
            })
            .sum::<usize>()
            + self
                .tiny
                .as_ref()
                .map_or(0, |(ac, v)| ac.memory_usage() + v.len() * 4)
    }

    /// True when `hay[start..end]` is not glued to ASCII letters or digits at a word-like edge.
    #[inline]
    fn bounded(&self, hay: &[u8], term: u32, start: usize, end: usize) -> bool {
        let (l, r) = self.edges[term as usize];
        (!l || start == 0 || !is_word_byte(hay[start - 1]))
            && (!r || end >= hay.len() || !is_word_byte(hay[end]))
    }

    /// Appends every term occurrence in `hay` to `out` (per start position, the longest term that
    /// is word-bounded). Order: by tier, then by position; the caller sorts.
    pub fn find_all(&self, hay: &[u8], out: &mut Vec<LitHit>) {
        for tier in &self.tiers {
            self.scan_tier(tier, hay, out);
        }
        if let Some((searcher, ids)) = &self.teddy {
            for m in searcher.find_iter(hay) {
                let term = ids[m.pattern().as_usize()];
                if self.bounded(hay, term, m.start(), m.end()) {
                    out.push(LitHit {
                        term,
                        start: m.start(),
                        end: m.end(),
                    });
                }
            }
        }
        if let Some((ac, ids)) = &self.tiny {
            for m in ac.find_overlapping_iter(hay) {
                let term = ids[m.pattern().as_usize()];
                if self.bounded(hay, term, m.start(), m.end()) {
                    out.push(LitHit {
                        term,
                        start: m.start(),
                        end: m.end(),
                    });
                }
            }
        }
    }

    fn scan_tier(&self, tier: &Tier, hay: &[u8], out: &mut Vec<LitHit>) {
        match (tier.key_len, tier.stride, self.fold) {
            (8, _, true) => self.scan_keys::<8, 5, true>(tier, hay, out),
            (8, _, false) => self.scan_keys::<8, 5, false>(tier, hay, out),
            (4, 6, true) => self.scan_keys::<4, 6, true>(tier, hay, out),
            (4, 6, false) => self.scan_keys::<4, 6, false>(tier, hay, out),
            (4, 3, true) => self.scan_keys::<4, 3, true>(tier, hay, out),
            (4, 3, false) => self.scan_keys::<4, 3, false>(tier, hay, out),
            (_, _, true) => self.scan_keys::<4, 1, true>(tier, hay, out),
            (_, _, false) => self.scan_keys::<4, 1, false>(tier, hay, out),
        }
    }

    /// The filter loop: one key per stride, four keys per iteration so that their loads, hashes
    /// and filter tests overlap; verification is out of line. Key length and stride are constants
    /// so that the loads of one iteration need a single bounds check.
    #[inline(always)]
    fn scan_keys<const K: usize, const S: usize, const FOLD: bool>(
        &self,
        tier: &Tier,
        hay: &[u8],
        out: &mut Vec<LitHit>,
    ) {
        const { assert!(K == 4 || K == 8) };
        if hay.len() < K {
            return;
        }
        let bits = &tier.bloom[..];
        let log2 = tier.bits_log2;
        let test = |key: u64| -> bool {
            let b = bit_of(key, log2);
            bits.get(b >> 6).is_some_and(|&w| (w >> (b & 63)) & 1 != 0)
        };
        let key = |w: &[u8], at: usize| -> u64 {
            let k = if K == 8 {
                u64::from_le_bytes([
                    w[at],
                    w[at + 1],
                    w[at + 2],
                    w[at + 3],
                    w[at + 4],
                    w[at + 5],
                    w[at + 6],
                    w[at + 7],
                ])
            } else {
                u64::from(u32::from_le_bytes([w[at], w[at + 1], w[at + 2], w[at + 3]]))
            };
            if FOLD {
                // Setting bit 5 of every byte maps 'A'..'Z' onto 'a'..'z' (and merges a few other
                // byte pairs: the filter is a little less selective, verification is exact).
                k | 0x2020_2020_2020_2020 & (u64::MAX >> (64 - 8 * K))
            } else {
                k
            }
        };
        let mut p = 0;
        while let Some(w) = hay.get(p..p + 3 * S + K) {
            let (k0, k1, k2, k3) = (key(w, 0), key(w, S), key(w, 2 * S), key(w, 3 * S));
            let (h0, h1, h2, h3) = (test(k0), test(k1), test(k2), test(k3));
            if h0 | h1 | h2 | h3 {
                for (i, (k, h)) in [(k0, h0), (k1, h1), (k2, h2), (k3, h3)]
                    .into_iter()
                    .enumerate()
                {
                    if h {
                        self.verify(tier, hay, p + i * S, k, out);
                    }
                }
            }
            p += 4 * S;
        }
        while let Some(w) = hay.get(p..p + K) {
            let k = key(w, 0);
            if test(k) {
                self.verify(tier, hay, p, k, out);
            }
            p += S;
        }
    }

    #[inline(never)]
    fn verify(&self, tier: &Tier, hay: &[u8], p: usize, key: u64, out: &mut Vec<LitHit>) {
        let mut mask = tier.table.get(key);
        while mask != 0 {
            let k = mask.trailing_zeros() as usize;
            mask &= mask - 1;
            let Some(start) = p.checked_sub(k) else {
                continue;
            };
            let input = Input::new(hay).range(start..).anchored(Anchored::Yes);
            let mut best: Option<LitHit> = None;
            let mut state = OverlappingState::start();
            // Anchored overlapping search: every term that starts at `start`, shortest first.
            while tier
                .ac
                .try_find_overlapping(input.clone(), &mut state)
                .is_ok()
            {
                let Some(m) = state.get_match() else { break };
                let term = tier.terms[m.pattern().as_usize()];
                if self.bounded(hay, term, m.start(), m.end())
                    && best.is_none_or(|b| m.end() > b.end)
                {
                    best = Some(LitHit {
                        term,
                        start: m.start(),
                        end: m.end(),
                    });
                }
            }
            if let Some(b) = best {
                out.push(b);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hits(terms: &[&str], fold: bool, hay: &str) -> Vec<(String, usize)> {
        let t: Vec<&[u8]> = terms.iter().map(|s| s.as_bytes()).collect();
        let m = LiteralMatcher::new(&t, fold).unwrap();
        let mut out = Vec::new();
        m.find_all(hay.as_bytes(), &mut out);
        out.sort_by_key(|h| (h.start, h.end));
        out.iter()
            .map(|h| (hay[h.start..h.end].to_string(), h.start))
            .collect()
    }

    #[test]
    fn finds_terms_at_every_alignment() {
        let terms = ["社外秘", "機密", "Project Amber Albatross", "ID", "abcd"];
        for pad in 0..7 {
            let hay = format!(
                "{}【社外秘】と機密 Project Amber Albatross ID abcd.",
                "x".repeat(pad)
            );
            let got = hits(&terms, true, &hay);
            let words: Vec<&str> = got.iter().map(|(w, _)| w.as_str()).collect();
            assert_eq!(
                words,
                ["社外秘", "機密", "Project Amber Albatross", "ID", "abcd"],
                "pad {pad}"
            );
        }
    }

    #[test]
    fn case_folding_and_boundaries() {
        let got = hits(
            &["Confidential"],
            true,
            "CONFIDENTIAL / confidentiality / Confidential.",
        );
        assert_eq!(
            got,
            [
                ("CONFIDENTIAL".to_string(), 0),
                ("Confidential".to_string(), 33)
            ]
        );
        let got = hits(&["Confidential"], false, "CONFIDENTIAL Confidential");
        assert_eq!(got.len(), 1);
    }

    #[test]
    fn longest_bounded_term_wins() {
        let got = hits(
            &["ABC Corp", "ABC Corporation"],
            true,
            "xx ABC Corporation and ABC Corps and ABC Corp.",
        );
        let words: Vec<&str> = got.iter().map(|(w, _)| w.as_str()).collect();
        assert_eq!(words, ["ABC Corporation", "ABC Corp"]);
    }

    #[test]
    fn many_terms_long_tier() {
        let terms: Vec<String> = (0..5000)
            .map(|i| format!("Customer Number {i:05} Holdings"))
            .collect();
        let refs: Vec<&str> = terms.iter().map(String::as_str).collect();
        let hay = "見積 Customer Number 04321 Holdings と Customer Number 99999 Holdings";
        let got = hits(&refs, true, hay);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].0, "Customer Number 04321 Holdings");
    }
}
