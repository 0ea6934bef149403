//! Literal matching for keyword lists, dictionaries (100,000+ terms) and built-in literal triggers.
//!
//! # Algorithm
//!
//! An Aho-Corasick automaton walked over every byte runs at a few hundred MB/s once it holds
//! thousands of patterns (its prefilters only help with a handful of patterns). Most text holds no
//! term at all, so the matcher first *filters* positions with a hashed bitset and only verifies the
//! survivors with an anchored walk of a byte trie of the tier's terms:
//!
//! * Terms are put in tiers by length. A tier has a key length `K` (4 or 8 bytes) and a stride `S`;
//!   every term of the tier is at least `K + S - 1` bytes long. For each term, the `S` keys starting
//!   at offsets `0..S` of the term go into the tier's bitset (hashed) and into an exact key table
//!   that remembers the offsets.
//! * The scan reads one key every `S` bytes of the text. An occurrence of a term starting at `s`
//!   has exactly one offset `k < S` with `s + k` on the stride lattice, and the key read there is the
//!   term's own key at offset `k`, so no occurrence is missed.
//! * A key whose bit is set is looked up in the exact table; for each recorded offset `k`, a walk
//!   of the trie from `p - k` confirms the term and finds the longest one that starts there. The
//!   trie is built from the sorted terms in one pass (an Aho-Corasick automaton spent 80% of a
//!   100,000-term build on failure links that an anchored search never follows), and it is plain
//!   arrays, so a compiled engine can be saved and loaded ([`crate::Engine::to_bytes`]).
//!
//! * A tier of 9-11 byte terms next to the long terms' tier (8-byte keys, stride 5) uses 4-byte
//!   keys on the same lattice and is read in the same pass, from the same loads.
//! * A few short terms without ASCII letters are found by their first three bytes (AVX2,
//!   `simd.rs`), or by Teddy where that search cannot run.
//!
//! [`LiteralMatcher::find_block`] runs the tiers over the lattice points of one block of the text
//! (the scanner calls it a 64 KiB block at a time, with its trigger scan).
//!
//! Keys are ASCII-case-folded when any term is case-insensitive, so the filter is a superset of
//! both kinds; case-sensitive terms are compared byte for byte afterwards by the caller.
//! Terms shorter than 4 bytes (rare: `ID`, one kanji) fall back to a plain automaton search.

use aho_corasick::{AhoCorasick, MatchKind};
use serde::{Deserialize, Serialize};

use super::build::MAX_TERMS;

const NONE: u32 = u32::MAX;

/// The terms of a tier as a byte trie (ASCII-folded when the matcher folds): for an anchored
/// walk that yields every term starting at a position. Nodes are numbered in depth-first order of
/// the sorted terms, so a node's first child is the next node and a chain of single children is
/// read in memory order. Each node's children are listed together (their bytes in one run, in
/// byte order), so finding the child for a byte reads one short run instead of following a
/// sibling list across the subtrees in between (a cache miss per sibling under the high-fan-out
/// nodes of a large dictionary, UTF-8 lead and continuation bytes). The root has a table.
#[derive(Serialize, Deserialize)]
struct Trie {
    /// Node `n`'s children are `kid[kid_lo[n]..kid_lo[n + 1]]`, their bytes the same run of
    /// `kid_byte` (one entry per node and one more).
    kid_lo: Vec<u32>,
    kid_byte: Vec<u8>,
    kid: Vec<u32>,
    /// Terms ending at node `n`: `ends[end_lo[n]..end_lo[n + 1]]` (tier-local pattern indices).
    end_lo: Vec<u32>,
    ends: Vec<u32>,
    root: Vec<u32>,
}

impl Trie {
    /// The trie of `pats` (pattern `i` is `pats[i]`), folded to ASCII lower case when `fold`.
    fn new(pats: &[&[u8]], fold: bool) -> Trie {
        let folded: Vec<Vec<u8>> = pats
            .iter()
            .map(|p| {
                if fold {
                    p.to_ascii_lowercase()
                } else {
                    p.to_vec()
                }
            })
            .collect();
        let mut order: Vec<u32> = (0..pats.len() as u32).collect();
        order.sort_by(|&a, &b| folded[a as usize].cmp(&folded[b as usize]));
        let mut root = vec![NONE; 256];
        // Each node's children (byte, node) and the terms ending at each node, as (node, item)
        // pairs; grouped into runs after.
        let mut kids: Vec<(u32, (u8, u32))> = Vec::new();
        let mut ends: Vec<(u32, u32)> = Vec::with_capacity(pats.len());
        let mut nodes = 0u32;
        // The node path of the previous term.
        let mut path: Vec<u32> = Vec::new();
        let mut prev: &[u8] = &[];
        for &i in &order {
            let term = &folded[i as usize][..];
            let lcp = prev.iter().zip(term).take_while(|(a, b)| a == b).count();
            path.truncate(lcp);
            for &b in &term[lcp..] {
                let n = nodes;
                nodes += 1;
                match path.last() {
                    None => root[b as usize] = n,
                    Some(&parent) => kids.push((parent, (b, n))),
                }
                path.push(n);
            }
            // Terms are non-empty, so the path ends at the term's node.
            if let Some(&n) = path.last() {
                ends.push((n, i));
            }
            prev = term;
        }
        let (kid_lo, kids) = runs(nodes as usize, kids);
        let (end_lo, ends) = runs(nodes as usize, ends);
        Trie {
            kid_lo,
            kid_byte: kids.iter().map(|&(b, _)| b).collect(),
            kid: kids.iter().map(|&(_, n)| n).collect(),
            end_lo,
            ends,
            root,
        }
    }

    /// Calls `f(pattern, end)` for every term that matches `hay` from `start`, shortest first.
    #[inline]
    fn walk(&self, hay: &[u8], start: usize, fold: bool, mut f: impl FnMut(u32, usize)) {
        let mut node = NONE;
        for (i, &b) in hay[start..].iter().enumerate() {
            let b = if fold { b.to_ascii_lowercase() } else { b };
            let next = if node == NONE {
                self.root[b as usize]
            } else {
                let n = node as usize;
                let (lo, hi) = (self.kid_lo[n] as usize, self.kid_lo[n + 1] as usize);
                match self.kid_byte[lo..hi].iter().position(|&c| c == b) {
                    Some(j) => self.kid[lo + j],
                    None => NONE,
                }
            };
            if next == NONE {
                return;
            }
            node = next;
            let n = node as usize;
            let (lo, hi) = (self.end_lo[n] as usize, self.end_lo[n + 1] as usize);
            for &pat in &self.ends[lo..hi] {
                f(pat, start + i + 1);
            }
        }
    }

    fn heap_bytes(&self) -> usize {
        (self.kid_lo.len() + self.kid.len() + self.end_lo.len() + self.ends.len()) * 4
            + self.kid_byte.len()
            + self.root.len() * 4
    }
}

/// `(owner, item)` pairs (owners below `owners`) grouped by owner: the items, each owner's in the
/// order given, and where each owner's run starts (one entry per owner and one more, the end).
fn runs<T: Copy>(owners: usize, pairs: Vec<(u32, T)>) -> (Vec<u32>, Vec<T>) {
    // A counting sort: each owner's count, their running sums, then every item to its place.
    let mut lo = vec![0u32; owners + 1];
    for &(o, _) in &pairs {
        lo[o as usize + 1] += 1;
    }
    for o in 0..owners {
        lo[o + 1] += lo[o];
    }
    let mut next = lo.clone();
    let mut items = pairs
        .first()
        .map_or(Vec::new(), |&(_, t)| vec![t; pairs.len()]);
    for (o, t) in pairs {
        items[next[o as usize] as usize] = t;
        next[o as usize] += 1;
    }
    (lo, items)
}

/// A hit: term index and byte span.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LitHit {
    pub term: u32,
    pub start: usize,
    pub end: usize,
}

/// The filter bit of a key: the high 26 bits of a multiplicative hash (its best mixed bits); a
/// filter smaller than `1 << MAX_FILTER_LOG2` bits uses the low ones of them. A constant shift:
/// a shift by a register costs more micro-ops on x86 without BMI2, and the probe loop is bound by
/// micro-ops. (The AVX2 probe loop computes the same product from 32-bit halves.)
#[inline(always)]
pub(crate) fn bit_of(key: u64) -> usize {
    (key.wrapping_mul(FILTER_MUL) >> (64 - MAX_FILTER_LOG2)) as usize
}

/// The multiplier of [`bit_of`].
pub(crate) const FILTER_MUL: u64 = 0x9E37_79B9_7F4A_7C15;

/// Filters have at most `1 << MAX_FILTER_LOG2` bits.
pub(crate) const MAX_FILTER_LOG2: u32 = 26;

/// Where `key` is in a filter of `words` words (a power of two, not 0): the word, masked by the
/// length (so in bounds without a check), and the bit in it.
#[inline(always)]
fn filter_slot(words: usize, key: u64) -> (usize, usize) {
    let b = bit_of(key);
    ((b >> 6) & (words - 1), b & 63)
}

/// Adds `key` to the filter `bits`.
fn filter_add(bits: &mut [u64], key: u64) {
    let (w, b) = filter_slot(bits.len(), key);
    bits[w] |= 1 << b;
}

/// May `key` be in the filter `bits`? (No false "no".)
#[inline(always)]
fn in_filter(bits: &[u64], key: u64) -> bool {
    let (w, b) = filter_slot(bits.len(), key);
    (bits[w] >> b) & 1 != 0
}

/// The `K`-byte key at `w[at..]`, ASCII-folded when `FOLD`, with one load: an array read whole
/// (built from single bytes, the keys of a stride shorter than the key length shared their
/// bytes, and each key became eight byte loads).
#[inline(always)]
fn load_key<const K: usize, const FOLD: bool>(w: &[u8], at: usize) -> u64 {
    let k = if K == 8 {
        u64::from_le_bytes(*w[at..].first_chunk::<8>().expect("key inside the window"))
    } else {
        u64::from(u32::from_le_bytes(
            *w[at..].first_chunk::<4>().expect("key inside the window"),
        ))
    };
    if FOLD {
        // Setting bit 5 of every byte maps 'A'..'Z' onto 'a'..'z' (and merges a few other byte
        // pairs: the filter is a little less selective, verification is exact).
        k | 0x2020_2020_2020_2020 & (u64::MAX >> (64 - 8 * K))
    } else {
        k
    }
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
        self.insert_mask(key, 1 << offset);
    }

    /// Adds the offsets in `mask` (not 0) to `key`'s entry.
    fn insert_mask(&mut self, key: u64, mask: u8) {
        let m = self.keys.len() - 1;
        let mut i = hash(key, self.shift);
        loop {
            if self.masks[i] == 0 {
                self.keys[i] = key;
                self.masks[i] = mask;
                return;
            }
            if self.keys[i] == key {
                self.masks[i] |= mask;
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
    /// Bit filter (one bit per hashed key), a power of two of words.
    bloom: Vec<u64>,
    table: KeyTable,
    trie: Trie,
    /// Trie pattern index -> term index.
    terms: Vec<u32>,
}

/// The compiled literal set.
pub(crate) struct LiteralMatcher {
    tiers: Vec<Tier>,
    /// A few short terms without ASCII letters (社外秘, 機密, 極秘), found by a SIMD search: their
    /// term indices.
    teddy: Option<(ShortSearch, Vec<u32>)>,
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

/// How the few short terms are found.
enum ShortSearch {
    /// By their first three bytes, one to four different ones without repeats (AVX2,
    /// `simd.rs`): each position found is compared with the terms (their bytes, in the order of
    /// the id list).
    #[cfg(all(target_arch = "x86_64", feature = "simd"))]
    Prefix(Vec<[u8; 3]>, Vec<Box<[u8]>>),
    /// Teddy (aho-corasick's SIMD search; pattern id -> position in the id list).
    Teddy(aho_corasick::packed::Searcher),
}

impl ShortSearch {
    /// The search for the terms `ids` (6 to 8 bytes each, no ASCII letters), or None when
    /// neither search can take them.
    fn new(terms: &[&[u8]], ids: &[u32]) -> Option<ShortSearch> {
        #[cfg(all(target_arch = "x86_64", feature = "simd"))]
        if crate::simd::has_avx2() {
            // Every term's first three bytes (None if one is shorter), without repeats.
            let pre: Option<Vec<[u8; 3]>> = ids.iter().try_fold(Vec::new(), |mut pre, &i| {
                let p = *terms[i as usize].first_chunk::<3>()?;
                if !pre.contains(&p) {
                    pre.push(p);
                }
                Some(pre)
            });
            if let Some(pre) = pre.filter(|p| (1..=4).contains(&p.len())) {
                let bytes = ids.iter().map(|&i| terms[i as usize].into()).collect();
                return Some(ShortSearch::Prefix(pre, bytes));
            }
        }
        teddy_searcher(terms, ids).map(ShortSearch::Teddy)
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
        // A handful of short terms without ASCII letters (機密, 極秘) go to a SIMD search on their
        // first bytes instead of a hashed pass at stride 3.
        let mut teddy = None;
        let no_letters = |&i: &u32| !terms[i as usize].iter().any(u8::is_ascii_alphabetic);
        if !buckets[2].is_empty() && buckets[2].len() <= 32 && buckets[2].iter().all(no_letters) {
            let ids = std::mem::take(&mut buckets[2]);
            match ShortSearch::new(terms, &ids) {
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
        // Terms of 9 to 11 bytes next to a stride-5 tier of long terms: 4-byte keys on the same
        // lattice, read from the same loads in the same pass (see `scan_pair`).
        const MID_PAIRED: (usize, usize, usize) = (4, 5, 9);
        let mid = if buckets[0].is_empty() {
            MID
        } else {
            MID_PAIRED
        };
        let mut tiers = Vec::new();
        for (plan, ids) in [LONG, mid, SHORT, VSHORT].iter().zip(buckets) {
            if ids.is_empty() {
                continue;
            }
            let (k, s, _) = *plan;
            let entries = ids.len() * s;
            // 64 bits per key while the filter stays within 512 KiB (L2), 16 beyond that.
            let per = if entries * 64 <= 1 << 22 { 64 } else { 16 };
            let nbits = (entries * per)
                .next_power_of_two()
                .clamp(1 << 12, 1 << MAX_FILTER_LOG2);
            let mut bloom_bits = vec![0u64; nbits / 64];
            let mut table = KeyTable::new(entries);
            for &id in &ids {
                let t = terms[id as usize];
                for off in 0..s {
                    let key = key_at(t, off, k, fold);
                    filter_add(&mut bloom_bits, key);
                    table.insert(key, off);
                }
            }
            let pats: Vec<&[u8]> = ids.iter().map(|&i| terms[i as usize]).collect();
            let trie = Trie::new(&pats, fold);
            tiers.push(Tier {
                key_len: k,
                stride: s,
                bloom: bloom_bits,
                table,
                trie,
                terms: ids,
            });
        }
        let tiny = if tiny.is_empty() {
            None
        } else {
            Some((tiny_searcher(terms, &tiny, fold)?, tiny))
        };
        let edges = term_edges(terms);
        Ok(LiteralMatcher {
            tiers,
            teddy,
            tiny,
            fold,
            edges,
        })
    }

    /// Are the short terms found by the prefix search?
    #[cfg(test)]
    fn short_by_prefix(&self) -> bool {
        #[cfg(all(target_arch = "x86_64", feature = "simd"))]
        {
            matches!(self.teddy, Some((ShortSearch::Prefix(..), _)))
        }
        #[cfg(not(all(target_arch = "x86_64", feature = "simd")))]
        {
            false
        }
    }

    /// Approximate heap use in bytes.
    pub fn heap_bytes(&self) -> usize {
        self.tiers
            .iter()
            .map(|t| {
                t.bloom.len() * 8 + t.table.heap_bytes() + t.trie.heap_bytes() + t.terms.len() * 4
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

    /// Appends every term occurrence in `hay` to `out` (per start position and search, the longest
    /// term that is word-bounded), a block of `block` bytes at a time; the caller sorts. (The
    /// scanner calls the two parts itself, with its trigger scan in the same blocks.)
    pub fn find_all(&self, hay: &[u8], block: usize, out: &mut Vec<LitHit>) {
        let mut from = 0;
        while from < hay.len() {
            let to = from.saturating_add(block.max(1)).min(hay.len());
            self.find_block(hay, from, to, out);
            from = to;
        }
        self.find_rest(hay, out);
    }

    /// The part of [`Self::find_all`] that can go block by block: the occurrences the hashed
    /// tiers and the prefix search find from the positions `from..to` of `hay` (a term may run
    /// past `to`). Blocks that tile the text find every occurrence once, and a large text is then
    /// read from memory once for all the searches of a block instead of once per search.
    pub fn find_block(&self, hay: &[u8], from: usize, to: usize, out: &mut Vec<LitHit>) {
        let mut tiers = self.tiers.iter().peekable();
        while let Some(tier) = tiers.next() {
            let paired = (tier.key_len, tier.stride) == (8, 5)
                && tiers
                    .peek()
                    .is_some_and(|t| (t.key_len, t.stride) == (4, 5));
            match tiers.next_if(|_| paired) {
                Some(mid) if self.fold => {
                    self.scan_pair::<true>(tier, mid, (hay, from, to), out);
                }
                Some(mid) => self.scan_pair::<false>(tier, mid, (hay, from, to), out),
                None => self.scan_tier(tier, hay, from, to, out),
            }
        }
        #[cfg(all(target_arch = "x86_64", feature = "simd"))]
        if let Some((ShortSearch::Prefix(pre, bytes), ids)) = &self.teddy {
            // Positions from..to need the bytes up to to + 2.
            let part = &hay[from.min(hay.len())..(to + 2).min(hay.len())];
            crate::simd::find_prefix3_avx2(part, pre, &mut |p| {
                let p = from + p;
                // The longest bounded term that starts here (as the hashed tiers report).
                let mut best: Option<LitHit> = None;
                for (&term, t) in ids.iter().zip(bytes) {
                    let end = p + t.len();
                    if hay[p..].starts_with(t)
                        && self.bounded(hay, term, p, end)
                        && best.is_none_or(|b| end > b.end)
                    {
                        best = Some(LitHit {
                            term,
                            start: p,
                            end,
                        });
                    }
                }
                out.extend(best);
            });
        }
    }

    /// The part of [`Self::find_all`] that reads the whole text at once: Teddy (when the prefix
    /// search cannot take the short terms) and the automaton of the tiny terms.
    pub fn find_rest(&self, hay: &[u8], out: &mut Vec<LitHit>) {
        match &self.teddy {
            #[cfg(all(target_arch = "x86_64", feature = "simd"))]
            Some((ShortSearch::Prefix(..), _)) => {}
            Some((ShortSearch::Teddy(searcher), ids)) => {
                self.push_bounded(hay, ids, searcher.find_iter(hay), out);
            }
            None => {}
        }
        if let Some((ac, ids)) = &self.tiny {
            self.push_bounded(hay, ids, ac.find_overlapping_iter(hay), out);
        }
    }

    /// The word-bounded ones of an automaton's matches (pattern ids index `ids`).
    fn push_bounded(
        &self,
        hay: &[u8],
        ids: &[u32],
        matches: impl Iterator<Item = aho_corasick::Match>,
        out: &mut Vec<LitHit>,
    ) {
        for m in matches {
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

    fn scan_tier(&self, tier: &Tier, hay: &[u8], from: usize, to: usize, out: &mut Vec<LitHit>) {
        let r = (hay, from, to);
        match (tier.key_len, tier.stride, self.fold) {
            (8, _, true) => self.scan_keys::<8, 5, true>(tier, r, out),
            (8, _, false) => self.scan_keys::<8, 5, false>(tier, r, out),
            (4, 6, true) => self.scan_keys::<4, 6, true>(tier, r, out),
            (4, 6, false) => self.scan_keys::<4, 6, false>(tier, r, out),
            (4, 5, true) => self.scan_keys::<4, 5, true>(tier, r, out),
            (4, 5, false) => self.scan_keys::<4, 5, false>(tier, r, out),
            (4, 3, true) => self.scan_keys::<4, 3, true>(tier, r, out),
            (4, 3, false) => self.scan_keys::<4, 3, false>(tier, r, out),
            (_, _, true) => self.scan_keys::<4, 1, true>(tier, r, out),
            (_, _, false) => self.scan_keys::<4, 1, false>(tier, r, out),
        }
    }

    /// The filter loop over the stride lattice points (multiples of `S`) in `from..to`: one key
    /// per stride, four keys per iteration so that their loads, hashes and filter tests overlap.
    /// The loop keeps only a mask of the points that passed; their keys are read again out of
    /// line (few points pass, and fewer live values keep the loop in registers). Key length and
    /// stride are constants so that the loads of one iteration need a single bounds check.
    #[inline(always)]
    fn scan_keys<const K: usize, const S: usize, const FOLD: bool>(
        &self,
        tier: &Tier,
        (hay, from, to): (&[u8], usize, usize),
        out: &mut Vec<LitHit>,
    ) {
        const { assert!(K == 4 || K == 8) };
        if hay.len() < K {
            return;
        }
        let bits = &tier.bloom[..];
        let test = |w: &[u8], at: usize| in_filter(bits, load_key::<K, FOLD>(w, at)) as u32;
        let mut p = from.next_multiple_of(S);
        #[cfg(all(target_arch = "x86_64", feature = "simd"))]
        if K == 8 && S == 5 && crate::simd::has_avx2() {
            let no_mid: &[u64] = &[];
            p = crate::simd::filter_probe5_avx2(hay, (p, to), (bits, no_mid), FOLD, &mut |q, h| {
                self.verify_points::<K, S, FOLD>(tier, hay, q, h, out);
            });
        }
        while p + 3 * S < to {
            let Some(w) = hay.get(p..p + 3 * S + K) else {
                break;
            };
            let hits = test(w, 0) | test(w, S) << 1 | test(w, 2 * S) << 2 | test(w, 3 * S) << 3;
            if hits != 0 {
                self.verify_points::<K, S, FOLD>(tier, hay, p, hits, out);
            }
            p += 4 * S;
        }
        while p < to {
            let Some(w) = hay.get(p..p + K) else {
                break;
            };
            if test(w, 0) != 0 {
                self.verify_points::<K, S, FOLD>(tier, hay, p, 1, out);
            }
            p += S;
        }
    }

    /// Verifies the lattice points `p + i * S` for each bit `i` of `hits` (their keys read again).
    #[inline(never)]
    fn verify_points<const K: usize, const S: usize, const FOLD: bool>(
        &self,
        tier: &Tier,
        hay: &[u8],
        p: usize,
        mut hits: u32,
        out: &mut Vec<LitHit>,
    ) {
        while hits != 0 {
            let at = p + hits.trailing_zeros() as usize * S;
            hits &= hits - 1;
            let key = load_key::<K, FOLD>(hay, at);
            self.verify(tier, hay, at, key, out);
        }
    }

    /// A stride-5 tier of 8-byte keys and one of 4-byte keys in one pass: each lattice point's
    /// 8 bytes are loaded once, tested whole against the first tier's filter and their first 4
    /// against the second's. Near the end, where 8 bytes no longer fit, only the 4-byte keys
    /// (no term of the first tier, 12 bytes or more, can start there and reach a lattice point).
    fn scan_pair<const FOLD: bool>(
        &self,
        long: &Tier,
        mid: &Tier,
        (hay, from, to): (&[u8], usize, usize),
        out: &mut Vec<LitHit>,
    ) {
        const S: usize = 5;
        let (long_bits, mid_bits) = (&long.bloom[..], &mid.bloom[..]);
        // Bit i: the long key at point i passed; bit 4 + i: its first 4 bytes as a mid key.
        let test = |w: &[u8], i: usize| {
            let k = load_key::<8, FOLD>(w, i * S);
            (in_filter(long_bits, k) as u32) << i
                | (in_filter(mid_bits, k & 0xFFFF_FFFF) as u32) << (4 + i)
        };
        // The points of a step from `q` whose keys passed, in both tiers.
        let verify = |q: usize, hits: u32, out: &mut Vec<LitHit>| {
            self.verify_points::<8, S, FOLD>(long, hay, q, hits & 0xF, out);
            self.verify_points::<4, S, FOLD>(mid, hay, q, hits >> 4, out);
        };
        let mut p = from.next_multiple_of(S);
        #[cfg(all(target_arch = "x86_64", feature = "simd"))]
        if crate::simd::has_avx2() {
            let bits = (long_bits, mid_bits);
            p = crate::simd::filter_probe5_avx2(hay, (p, to), bits, FOLD, &mut |q, hits| {
                verify(q, hits, out)
            });
        }
        while p + 3 * S < to {
            let Some(w) = hay.get(p..p + 3 * S + 8) else {
                break;
            };
            let hits = test(w, 0) | test(w, 1) | test(w, 2) | test(w, 3);
            if hits != 0 {
                verify(p, hits, out);
            }
            p += 4 * S;
        }
        while p < to {
            if let Some(w) = hay.get(p..p + 8) {
                let hits = test(w, 0);
                if hits != 0 {
                    verify(p, hits, out);
                }
            } else if let Some(w) = hay.get(p..p + 4) {
                if in_filter(mid_bits, load_key::<4, FOLD>(w, 0)) {
                    self.verify_points::<4, S, FOLD>(mid, hay, p, 1, out);
                }
            } else {
                break;
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
            let mut best: Option<LitHit> = None;
            // Every term that starts at `start`, shortest first; the longest bounded one wins.
            tier.trie.walk(hay, start, self.fold, |pat, end| {
                let term = tier.terms[pat as usize];
                if self.bounded(hay, term, start, end) && best.is_none_or(|b| end > b.end) {
                    best = Some(LitHit { term, start, end });
                }
            });
            if let Some(b) = best {
                out.push(b);
            }
        }
    }
}

/// Teddy over the terms `ids` (None when Teddy cannot take them).
fn teddy_searcher(terms: &[&[u8]], ids: &[u32]) -> Option<aho_corasick::packed::Searcher> {
    let mut b = aho_corasick::packed::Config::new()
        .match_kind(aho_corasick::packed::MatchKind::LeftmostLongest)
        .builder();
    b.extend(ids.iter().map(|&i| terms[i as usize]));
    b.build()
}

/// The plain automaton over the short terms `ids`.
fn tiny_searcher(terms: &[&[u8]], ids: &[u32], fold: bool) -> Result<AhoCorasick, String> {
    let pats: Vec<&[u8]> = ids.iter().map(|&i| terms[i as usize]).collect();
    AhoCorasick::builder()
        .match_kind(MatchKind::Standard)
        .ascii_case_insensitive(fold)
        .build(&pats)
        .map_err(|e| e.to_string())
}

/// Per term: does it start / end with a word byte.
fn term_edges(terms: &[&[u8]]) -> Vec<(bool, bool)> {
    terms
        .iter()
        .map(|t| {
            (
                t.first().is_some_and(|&b| is_word_byte(b)),
                t.last().is_some_and(|&b| is_word_byte(b)),
            )
        })
        .collect()
}

/// A tier as saved: the filter and the hash table are rebuilt from the key entries (a fraction
/// of their size, and nothing to trust), the trie is taken as it is.
#[derive(Serialize, Deserialize)]
struct TierImage<T> {
    key_len: usize,
    stride: usize,
    bits_log2: u32,
    /// (key, offset mask) of every key of the tier's terms.
    entries: Vec<(u64, u8)>,
    trie: T,
    terms: Vec<u32>,
}

/// A compiled matcher as saved in an engine image (borrowing the trie, for writing).
#[derive(Serialize)]
pub(crate) struct MatcherOut<'a> {
    tiers: Vec<TierImage<&'a Trie>>,
    teddy: Option<&'a [u32]>,
    tiny: Option<&'a [u32]>,
    fold: bool,
}

/// A compiled matcher as read from an engine image; [`LiteralMatcher::from_image`] checks it.
#[derive(Deserialize)]
pub(crate) struct MatcherIn {
    tiers: Vec<TierImage<Trie>>,
    teddy: Option<Vec<u32>>,
    tiny: Option<Vec<u32>>,
    fold: bool,
}

/// The (key length, stride) pairs the scan loop has code for.
const TIER_SHAPES: [(usize, usize); 5] = [(8, 5), (4, 6), (4, 5), (4, 3), (4, 1)];

impl Trie {
    /// Checks what the walk relies on: every index in bounds, each node's children after it (so
    /// no walk can loop), each node's children and terms a run of their lists.
    fn check(&self, patterns: usize) -> Result<(), String> {
        let in_order = |lo: &[u32], len: usize| {
            lo.first() == Some(&0)
                && lo.windows(2).all(|w| w[0] <= w[1])
                && lo.last().map(|&l| l as usize) == Some(len)
        };
        let n = self.kid_lo.len().saturating_sub(1);
        if self.end_lo.len() != n + 1
            || self.kid_byte.len() != self.kid.len()
            || self.root.len() != 256
        {
            return Err("trie arrays of different lengths".into());
        }
        if !in_order(&self.kid_lo, self.kid.len()) || !in_order(&self.end_lo, self.ends.len()) {
            return Err("trie runs out of order or outside their lists".into());
        }
        if !self.root.iter().all(|&r| r == NONE || (r as usize) < n) {
            return Err("trie root points outside the trie".into());
        }
        for i in 0..n {
            let kids = &self.kid[self.kid_lo[i] as usize..self.kid_lo[i + 1] as usize];
            if !kids.iter().all(|&c| c as usize > i && (c as usize) < n) {
                return Err(format!("trie node {i} points backwards or outside"));
            }
        }
        if self.ends.iter().any(|&e| e as usize >= patterns) {
            return Err("trie names a term the tier lacks".into());
        }
        Ok(())
    }
}

impl LiteralMatcher {
    /// The compiled state to save (see [`crate::Engine::to_bytes`]).
    pub(crate) fn image(&self) -> MatcherOut<'_> {
        let tiers = self
            .tiers
            .iter()
            .map(|t| {
                // Sorted: the same engine always gives the same bytes.
                let mut entries: Vec<(u64, u8)> = (t.table.keys.iter().zip(&t.table.masks))
                    .filter(|(_, &m)| m != 0)
                    .map(|(&k, &m)| (k, m))
                    .collect();
                entries.sort_unstable();
                TierImage {
                    key_len: t.key_len,
                    stride: t.stride,
                    bits_log2: (t.bloom.len() * 64).trailing_zeros(),
                    entries,
                    trie: &t.trie,
                    terms: t.terms.clone(),
                }
            })
            .collect();
        MatcherOut {
            tiers,
            teddy: self.teddy.as_ref().map(|(_, ids)| &ids[..]),
            tiny: self.tiny.as_ref().map(|(_, ids)| &ids[..]),
            fold: self.fold,
        }
    }

    /// A matcher from a saved image over the same `terms`, after checking every bound the scan
    /// relies on (an image is input: a damaged one is refused, never trusted). The hashed tiers are
    /// taken as they are; the few short terms' searchers are rebuilt.
    pub(crate) fn from_image(img: MatcherIn, terms: &[&[u8]]) -> Result<LiteralMatcher, String> {
        let in_terms = |ids: &[u32]| ids.iter().all(|&i| (i as usize) < terms.len());
        let mut tiers = Vec::with_capacity(img.tiers.len());
        for (n, t) in img.tiers.into_iter().enumerate() {
            if !TIER_SHAPES.contains(&(t.key_len, t.stride)) {
                return Err(format!(
                    "tier {n}: no scan loop for its key length and stride"
                ));
            }
            if !(12..=MAX_FILTER_LOG2).contains(&t.bits_log2)
                || t.entries.len() > MAX_TERMS * 6
                || t.entries
                    .iter()
                    .any(|&(_, m)| m == 0 || u32::from(m) >> t.stride != 0)
            {
                return Err(format!("tier {n}: key entries damaged"));
            }
            if !in_terms(&t.terms) {
                return Err(format!("tier {n} names a term the engine lacks"));
            }
            t.trie
                .check(t.terms.len())
                .map_err(|e| format!("tier {n}: {e}"))?;
            let mut bloom = vec![0u64; 1 << (t.bits_log2 - 6)];
            let mut table = KeyTable::new(t.entries.len());
            for &(key, mask) in &t.entries {
                filter_add(&mut bloom, key);
                table.insert_mask(key, mask);
            }
            tiers.push(Tier {
                key_len: t.key_len,
                stride: t.stride,
                bloom,
                table,
                trie: t.trie,
                terms: t.terms,
            });
        }
        let teddy = match img.teddy {
            None => None,
            Some(ids) if in_terms(&ids) && !ids.is_empty() => match ShortSearch::new(terms, &ids) {
                Some(s) => Some((s, ids)),
                None => return Err("the short terms do not fit a Teddy searcher".into()),
            },
            Some(_) => return Err("the short-term list names a term the engine lacks".into()),
        };
        let tiny = match img.tiny {
            None => None,
            Some(ids) if in_terms(&ids) && !ids.is_empty() => {
                Some((tiny_searcher(terms, &ids, img.fold)?, ids))
            }
            Some(_) => return Err("the tiny-term list names a term the engine lacks".into()),
        };
        Ok(LiteralMatcher {
            tiers,
            teddy,
            tiny,
            fold: img.fold,
            edges: term_edges(terms),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hits(terms: &[&str], fold: bool, hay: &str) -> Vec<(String, usize)> {
        let t: Vec<&[u8]> = terms.iter().map(|s| s.as_bytes()).collect();
        let m = LiteralMatcher::new(&t, fold).unwrap();
        let mut out = Vec::new();
        m.find_all(hay.as_bytes(), 16, &mut out);
        out.sort_by_key(|h| (h.start, h.end));
        out.iter()
            .map(|h| (hay[h.start..h.end].to_string(), h.start))
            .collect()
    }

    /// The AVX2 probe loop against the scalar filter test, point by point: random filters of
    /// several sizes, random text (letters in both cases, so folding matters), every start
    /// alignment and end, with and without the 4-byte keys' filter.
    #[cfg(all(target_arch = "x86_64", feature = "simd"))]
    #[test]
    fn probe5_avx2_matches_scalar() {
        if !crate::simd::has_avx2() {
            return;
        }
        let mut x: u64 = 0x2545_F491_4F6C_DD1D;
        let mut rnd = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let text: Vec<u8> = (0..700)
            .map(|_| b"aAbB\xe6\xa9 -"[(rnd() % 8) as usize])
            .collect();
        let mut checked = 0;
        for words in [64usize, 128, 1 << 14] {
            // About one bit in three set: many points pass, many do not.
            let filter = |rnd: &mut dyn FnMut() -> u64| -> Vec<u64> {
                (0..words)
                    .map(|_| rnd() & rnd() & (rnd() | rnd()))
                    .collect()
            };
            let long = filter(&mut rnd);
            let mid = filter(&mut rnd);
            for fold in [false, true] {
                for mid in [&mid[..], &[]] {
                    for first in (0..30).map(|i| i * 5) {
                        for len in [0, 25, 26, 27, 40, 41, 300, 699, 700] {
                            let h = &text[..len];
                            for to in [len, len.saturating_sub(7), 100.min(len)] {
                                let mut got = Vec::new();
                                let end = crate::simd::filter_probe5_avx2(
                                    h,
                                    (first, to),
                                    (&long, mid),
                                    fold,
                                    &mut |p, hits| got.push((p, hits)),
                                );
                                let mut want = Vec::new();
                                let mut p = first;
                                while p + 15 < to && p + 26 <= len {
                                    let mut hits = 0;
                                    for i in 0..4 {
                                        let k = key_at(h, p + 5 * i, 8, fold);
                                        hits |= u32::from(in_filter(&long, k)) << i;
                                        if !mid.is_empty() {
                                            let k = k & 0xFFFF_FFFF;
                                            hits |= u32::from(in_filter(mid, k)) << (4 + i);
                                        }
                                    }
                                    if hits != 0 {
                                        want.push((p, hits));
                                    }
                                    p += 20;
                                }
                                assert_eq!(got, want, "{words} words, fold {fold}, {first}..{to}");
                                assert_eq!(end, p);
                                checked += want.len();
                            }
                        }
                    }
                }
            }
        }
        assert!(checked > 10_000, "{checked}");
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

    /// The trie verification against a brute-force search: random terms over a tiny alphabet
    /// (shared prefixes, terms that are prefixes of others, duplicates, case variants), random
    /// text with terms planted, both folding modes; per start, the longest bounded term.
    #[test]
    fn trie_verification_matches_brute_force() {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut rnd = |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        };
        // Letters, then (rounds 200..) bytes without letters: the short terms go to the prefix
        // search then (UTF-8 pieces of 機 and 極, a digit, a space, a dash).
        let letters = b"abAB x-";
        let no_letters = [0xE6, 0xA9, 0x9F, 0xA5, b'1', b' ', b'-'];
        let mut prefix_rounds = 0;
        let mut paired_rounds = 0;
        for round in 0..400 {
            let fold = round % 2 == 0;
            let alphabet = if round < 200 { letters } else { &no_letters };
            let bases: Vec<Vec<u8>> = (0..3)
                .map(|_| (0..12).map(|_| alphabet[rnd(7) as usize]).collect())
                .collect();
            let terms: Vec<Vec<u8>> = (0..1 + rnd(30))
                .map(|_| {
                    let base = &bases[rnd(if round < 200 { 1 } else { 3 }) as usize];
                    let mut t = base[..(rnd(12) as usize).max(4)].to_vec();
                    // 12 to 16 bytes, 9 to 11 (a stride-5 tier of its own next to the long
                    // terms' one) and, in the rounds without letters, 6 to 8.
                    let len = match rnd(4) {
                        0 if round >= 200 => 6 + rnd(3) as usize,
                        1 => 9 + rnd(3) as usize,
                        _ => 12 + rnd(5) as usize,
                    };
                    t.truncate(len);
                    t.extend((t.len()..len).map(|_| alphabet[rnd(7) as usize]));
                    t
                })
                .collect();
            // Every fourth round, enough long terms for a tier of their own (then the 9 to 11
            // byte terms are read in the same pass, `scan_pair`).
            let mut terms = terms;
            let planted = terms.len() as u64;
            if round % 4 == 3 {
                terms.extend((0..300).map(|_| {
                    (0..12 + rnd(5))
                        .map(|_| alphabet[rnd(7) as usize])
                        .collect::<Vec<u8>>()
                }));
            }
            let refs: Vec<&[u8]> = terms.iter().map(|t| t.as_slice()).collect();
            let m = LiteralMatcher::new(&refs, fold).unwrap();
            if round >= 200 && !m.short_by_prefix() {
                // Teddy (no AVX2) reports leftmost-longest matches that do not overlap.
                continue;
            }
            prefix_rounds += usize::from(round >= 200);
            paired_rounds += usize::from(m.tiers.iter().any(|t| (t.key_len, t.stride) == (4, 5)));
            let mut hay: Vec<u8> = Vec::new();
            for _ in 0..20 {
                if rnd(3) == 0 {
                    hay.extend_from_slice(&terms[rnd(planted) as usize]);
                } else {
                    hay.extend((0..rnd(8)).map(|_| alphabet[rnd(7) as usize]));
                }
            }
            let mut got = Vec::new();
            // Blocks of 1 to 64 bytes: a term crossing a block edge is found once.
            let block = 1 + rnd(64) as usize;
            m.find_all(&hay, block, &mut got);
            let mut got: Vec<(usize, usize)> = got.iter().map(|h| (h.start, h.end)).collect();
            // Each search (a hashed tier, the short terms' search) reports the longest of its
            // own terms at a start; the scanner keeps the longest of those.
            got.sort_unstable_by_key(|&(s, e)| (s, std::cmp::Reverse(e)));
            got.dedup_by_key(|h| h.0);
            let eq = |a: &[u8], b: &[u8]| {
                if fold {
                    a.eq_ignore_ascii_case(b)
                } else {
                    a == b
                }
            };
            let mut want = Vec::new();
            for start in 0..hay.len() {
                let best = terms
                    .iter()
                    .enumerate()
                    .filter(|(_, t)| {
                        hay.len() - start >= t.len() && eq(&hay[start..start + t.len()], t)
                    })
                    .filter(|(i, t)| m.bounded(&hay, *i as u32, start, start + t.len()))
                    .map(|(_, t)| start + t.len())
                    .max();
                if let Some(end) = best {
                    want.push((start, end));
                }
            }
            assert_eq!(
                got,
                want,
                "round {round}, fold {fold}, terms {:?}",
                terms
                    .iter()
                    .map(|t| String::from_utf8_lossy(t))
                    .collect::<Vec<_>>()
            );
        }
        eprintln!(
            "{prefix_rounds} rounds through the prefix search, {paired_rounds} with paired tiers"
        );
        assert!(paired_rounds > 20);
        #[cfg(feature = "simd")]
        assert!(prefix_rounds > 50 || !crate::simd::has_avx2());
    }

    /// A saved trie is input: every way its runs can lie is refused before a walk follows it.
    #[test]
    fn trie_check_refuses_broken_runs() {
        let pats: [&[u8]; 4] = [b"abcd", b"abce", b"abx", b"b"];
        let fresh = || Trie::new(&pats, false);
        assert!(fresh().check(4).is_ok());
        assert_eq!(fresh().kid_lo.len(), fresh().end_lo.len());
        type Break = (&'static str, fn(&mut Trie));
        let breaks: [Break; 10] = [
            ("runs not from 0", |t| t.kid_lo[0] = 1),
            ("runs backwards", |t| t.kid_lo[2] = 0),
            ("runs past the list", |t| *t.kid_lo.last_mut().unwrap() += 1),
            ("child before its node", |t| *t.kid.last_mut().unwrap() = 0),
            ("child outside", |t| t.kid[0] = t.kid_lo.len() as u32),
            ("bytes and children differ", |t| {
                t.kid_byte.pop();
            }),
            ("terms past their list", |t| {
                *t.end_lo.last_mut().unwrap() += 1
            }),
            ("one run list shorter", |t| {
                t.end_lo.pop();
            }),
            ("root outside", |t| t.root[b'a' as usize] = 1000),
            ("a term the tier lacks", |t| t.ends[0] = 4),
        ];
        for (what, f) in breaks {
            let mut t = fresh();
            f(&mut t);
            assert!(t.check(4).is_err(), "{what}");
        }
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
