//! The scanner: candidates from every matcher, then context, overlaps, counts and masking.

use std::sync::Arc;

use bumpalo::Bump;

use super::context::{back_chars, chars_between, forward_chars, ContextIndex, ContextWords};
use super::literals::LitHit;
use super::mask::mask_into;
use super::normalize::{fold_char, needs_folding, normalize};
use super::table::{GridCell, Layout};
use super::{digits, secrets, trigger, BuiltinKind, DetId, Engine, TermAction};
use crate::rules::Confidence;

/// A candidate match before context scoring.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Cand {
    pub det: DetId,
    pub start: usize,
    pub end: usize,
    /// Confidence without a context word; `None` when the detector needs one.
    pub plain: Option<Confidence>,
    /// Confidence with a context word.
    pub ctx: Confidence,
    /// The check that passed, as evidence.
    pub check: Option<&'static str>,
    /// A structural signal that raised the confidence (e.g. a bracketed marking).
    pub structure: Option<&'static str>,
    pub flags: u8,
    canon: (u32, u32),
}

impl Cand {
    /// A published test value (test card, documentation key).
    pub const TEST_VALUE: u8 = 1;

    pub fn new(
        det: DetId,
        start: usize,
        end: usize,
        plain: Option<Confidence>,
        ctx: Confidence,
        check: Option<&'static str>,
    ) -> Cand {
        Cand {
            det,
            start,
            end,
            plain,
            ctx,
            check,
            structure: None,
            flags: 0,
            canon: (0, 0),
        }
    }
}

/// Where matchers put their candidates.
pub(crate) struct Collector<'a> {
    engine: &'a Engine,
    cands: &'a mut Vec<Cand>,
    canon: &'a mut Vec<u8>,
}

impl Collector<'_> {
    #[inline]
    pub fn det(&self, kind: BuiltinKind) -> Option<DetId> {
        self.engine.det_for(kind)
    }

    /// The phone detectors' ASCII labels (the engine's `phone_labels`).
    #[inline]
    pub fn phone_labels(&self) -> &[Box<[u8]>] {
        &self.engine.phone_labels
    }

    pub fn push(&mut self, mut c: Cand, canon: &[u8]) {
        let start = self.canon.len() as u32;
        self.canon.extend_from_slice(canon);
        c.canon = (start, self.canon.len() as u32);
        self.cands.push(c);
    }
}

/// Why a finding has its confidence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EvidenceKind {
    /// A context word near the value (`detail` = the word, `distance` in characters).
    Context,
    /// A negative context word near the value lowered the confidence.
    NegativeContext,
    /// A check digit or checksum passed (`detail` = its name).
    Checksum,
    /// A structural signal (`detail` says which, e.g. `bracketed`, `invoice_prefix`).
    Structure,
    /// The value is a published test or sample value.
    TestValue,
}

impl EvidenceKind {
    /// `context`, `negative_context`, `checksum`, `structure`, `test_value`.
    pub fn as_str(self) -> &'static str {
        match self {
            EvidenceKind::Context => "context",
            EvidenceKind::NegativeContext => "negative_context",
            EvidenceKind::Checksum => "checksum",
            EvidenceKind::Structure => "structure",
            EvidenceKind::TestValue => "test_value",
        }
    }
}

/// One piece of evidence behind a finding.
#[derive(Debug, Clone, Copy)]
pub struct Evidence<'s> {
    /// What kind of evidence.
    pub kind: EvidenceKind,
    /// The word, check or signal.
    pub detail: &'s str,
    /// Characters between the word and the value (0 when adjacent or overlapping).
    pub distance: Option<usize>,
}

/// A finding: a detector matched a value in the scanned text.
#[derive(Debug, Clone, Copy)]
pub struct Finding<'s> {
    /// Detector id.
    pub detector: &'s str,
    /// Final confidence.
    pub confidence: Confidence,
    /// Byte offset of the value in the scanned text (inclusive).
    pub start: usize,
    /// Byte offset of the end of the value (exclusive).
    pub end: usize,
    /// The value as found in the text. Sensitive: print only when explicitly asked.
    pub value: &'s str,
    /// The value normalised (separators removed, width folded): what uniqueness counts.
    pub normalized: &'s str,
    /// The value masked with the detector's mask style: safe for reports and logs.
    pub value_masked: &'s str,
    /// Why the finding has its confidence.
    pub evidence: &'s [Evidence<'s>],
}

/// Findings and unique-value counts per detector.
#[derive(Debug, Clone, Copy)]
pub struct DetectorCount<'s> {
    /// Detector id.
    pub detector: &'s str,
    /// Findings reported.
    pub findings: usize,
    /// Distinct normalised values among them.
    pub unique: usize,
}

/// The result of one scan. Borrows the scanner until its next scan.
#[derive(Debug, Clone, Copy)]
pub struct ScanResult<'s> {
    /// Findings in text order.
    pub findings: &'s [Finding<'s>],
    /// Per detector with findings: counts, in engine order.
    pub counts: &'s [DetectorCount<'s>],
}

impl ScanResult<'_> {
    /// True when nothing was found.
    pub fn is_empty(&self) -> bool {
        self.findings.is_empty()
    }
}

/// Runs an [`Engine`] over texts. One scanner per thread; it reuses its scratch memory (an arena
/// and a few vectors) from scan to scan. Results borrow the scanner until the next scan.
pub struct Scanner {
    engine: Arc<Engine>,
    arena: Bump,
    cands: Vec<Cand>,
    canon: Vec<u8>,
    lit: Vec<LitHit>,
    ctx: ContextIndex,
    scored: Vec<Scored>,
    seq: Box<digits::Seq>,
}

#[derive(Clone, Copy)]
struct Scored {
    cand: usize,
    conf: Confidence,
    pos: Option<(u32, usize)>,
    neg: Option<(u32, usize)>,
    /// Where the context word stands: [`Via::Window`], or a table's column header or row label.
    via: Via,
    keep: bool,
}

/// Where a context word was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Via {
    /// Within the detector's window of characters (or the value's own table cell).
    Window,
    /// In the header cell of the value's column.
    ColumnHeader,
    /// In the label cell of the value's row.
    RowLabel,
}

impl Scanner {
    /// A scanner for `engine`.
    pub fn new(engine: Arc<Engine>) -> Scanner {
        Scanner {
            engine,
            arena: Bump::new(),
            cands: Vec::new(),
            canon: Vec::new(),
            lit: Vec::new(),
            ctx: ContextIndex::default(),
            scored: Vec::new(),
            seq: Box::new(digits::Seq::new()),
        }
    }

    /// The engine this scanner runs.
    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// Scans UTF-8 text.
    pub fn scan_str(&mut self, text: &str) -> ScanResult<'_> {
        self.scan(text.as_bytes())
    }

    /// Scans text bytes (UTF-8 expected; invalid sequences never match and never panic).
    /// Offsets in the findings are byte offsets into `text`.
    pub fn scan(&mut self, text: &[u8]) -> ScanResult<'_> {
        self.scan_with(text, None)
    }

    /// Scans a text that lays out a table (a CSV file, a worksheet), given its cells: a value in
    /// a cell takes its context from the cell, its column's header cells and its row's label
    /// cell, however far away they are (`column header 個人番号`), instead of a window of
    /// characters that would reach into other columns. Header rows are found as the `table`
    /// module describes (titles, merged and two-row headers, several tables). Values outside
    /// any cell are scored as in [`Scanner::scan`].
    pub fn scan_grid(&mut self, text: &[u8], grid: Vec<GridCell>) -> ScanResult<'_> {
        let layout = Layout::new(text, grid);
        self.scan_with(text, Some(&layout))
    }

    fn scan_with(&mut self, text: &[u8], layout: Option<&Layout>) -> ScanResult<'_> {
        self.collect(text);
        let engine: &Engine = &self.engine;
        let cands = &mut self.cands;
        score(engine, text, cands, &mut self.ctx, layout, &mut self.scored);
        resolve_overlaps(cands, &mut self.scored);
        emit(engine, text, cands, &self.canon, &self.scored, &self.arena)
    }

    /// Runs one stage of the scan over `text` and returns what it counted (positions, hits,
    /// candidates, scored candidates), for the per-stage criterion benchmarks
    /// (`benches/detect.rs`). [`Stage::Context`] scores the candidates of the last
    /// [`Stage::Candidates`] run, which must have been over the same text (0 otherwise). Not a
    /// stable API.
    #[doc(hidden)]
    pub fn run_stage(&mut self, stage: Stage, text: &[u8]) -> usize {
        let engine: &Engine = &self.engine;
        match stage {
            Stage::Triggers => {
                let mut t = trigger::Triggers::new();
                let (mut n, mut i) = (0, 0);
                while let Some(p) = t.next(text, i) {
                    n += 1;
                    i = p + 1;
                }
                n
            }
            Stage::Literals => {
                self.lit.clear();
                if let Some(lm) = &engine.literals {
                    lm.find_all(text, SCAN_BLOCK, &mut self.lit);
                }
                self.lit.len()
            }
            Stage::Candidates => {
                self.collect(text);
                self.cands.len()
            }
            Stage::Context => {
                if self.cands.iter().any(|c| c.end > text.len()) {
                    return 0;
                }
                self.ctx.reset();
                self.scored.clear();
                score(
                    engine,
                    text,
                    &self.cands,
                    &mut self.ctx,
                    None,
                    &mut self.scored,
                );
                self.scored.len()
            }
        }
    }

    /// The candidates of `text`, sorted and without duplicates, in `self.cands`: the trigger
    /// scan with its handlers (tokenizing and validation), the literal filter, the regexes.
    fn collect(&mut self, text: &[u8]) {
        self.arena.reset();
        self.cands.clear();
        self.canon.clear();
        self.lit.clear();
        self.ctx.reset();
        self.scored.clear();
        let engine: &Engine = &self.engine;
        let mut col = Collector {
            engine,
            cands: &mut self.cands,
            canon: &mut self.canon,
        };
        // The trigger scan and the literal searches go through the text a block at a time, so
        // that a large text is read from memory once for all of them (each is a pass over
        // memory otherwise: on a 100 MB text they were bound by memory bandwidth).
        let builtins = engine.builtin.iter().any(Option::is_some);
        let mut trig = trigger::Triggers::new();
        let mut resume = 0;
        let mut from = 0;
        while from < text.len() {
            let to = (from + SCAN_BLOCK).min(text.len());
            if builtins {
                resume = triggers(&mut col, &mut self.seq, text, &mut trig, resume, to);
            }
            if let Some(lm) = &engine.literals {
                lm.find_block(text, from, to, &mut self.lit);
            }
            from = to;
        }
        if let Some(lm) = &engine.literals {
            lm.find_rest(text, &mut self.lit);
            literal_candidates(&mut col, text, &self.lit);
        }
        if let Some((re, dets)) = &engine.regex {
            regex_candidates(&mut col, text, re, dets);
        }
        let cands = &mut self.cands;
        // Longer spans first at the same start: of two overlapping matches of one detector the
        // longer (which validated over more digits) is kept.
        // Usually already in that order (the trigger scan goes left to right; literal and regex
        // candidates come after it): then the sort is skipped.
        let key = |c: &Cand| (c.start, std::cmp::Reverse(c.end), c.det);
        if !cands.is_sorted_by_key(key) {
            cands.sort_unstable_by_key(key);
        }
        cands.dedup_by_key(|c| (c.start, c.end, c.det));
    }
}

/// A stage of the scan, for [`Scanner::run_stage`] (the per-stage benchmarks). Not a stable API.
#[doc(hidden)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// The trigger scan alone: classifying the text and visiting every trigger byte.
    Triggers,
    /// The literal filter alone: keyword, marking, label and dictionary terms.
    Literals,
    /// Every candidate: the trigger scan with its handlers (digit tokenizing, checksums and
    /// other validation, emails, secrets), literal and regex candidates.
    Candidates,
    /// Context words, table context and confidence for the last `Candidates` run's candidates.
    Context,
}

/// The bytes a block of the scan covers: the trigger scan and the literal searches go through
/// a block before the next (64 KiB: a block stays in the core's L2 cache between them).
const SCAN_BLOCK: usize = 1 << 16;

/// The trigger scan (digits, emails, secrets) of the triggers at `i..until`; returns where the
/// scan goes on (past `until` when a handler took a token that runs on).
fn triggers(
    col: &mut Collector<'_>,
    seq: &mut digits::Seq,
    h: &[u8],
    t: &mut trigger::Triggers,
    mut i: usize,
    until: usize,
) -> usize {
    while let Some(p) = t.next(h, i) {
        if p >= until {
            return p;
        }
        let next = match h[p] {
            b'0'..=b'9' => match t.digit_run(p).and_then(|run| digits::skip_short(h, p, run)) {
                Some(end) => end,
                None => digits::scan_at(col, seq, h, p),
            },
            0xEF => {
                if digits::digit_at(h, p).is_some() {
                    match digits::skip_short(h, p, 0) {
                        Some(end) => end,
                        None => digits::scan_at(col, seq, h, p),
                    }
                } else {
                    p + 1
                }
            }
            b'@' => secrets::email(col, h, p),
            b'A' => secrets::upper_a(col, h, p),
            b'_' => secrets::underscore(col, h, p),
            b'x' => secrets::lower_x(col, h, p),
            b'/' => secrets::slash(col, h, p),
            b'-' => secrets::dash(col, h, p),
            _ => p + 1,
        };
        i = next.max(p + 1);
    }
    h.len()
}

/// Is the literal at `[s, e)` set apart as a label: in brackets, or alone on its line?
fn set_apart(h: &[u8], s: usize, e: usize) -> bool {
    let before = digits::char_before(h, s).map(|(c, _)| c);
    let after = digits::char_after(h, e).map(|(c, _)| c);
    let open = matches!(
        before,
        Some('【' | '[' | '(' | '「' | '『' | '〔' | '［' | '《' | '<' | '〈' | '≪')
    );
    let close = matches!(
        after,
        Some('】' | ']' | ')' | '」' | '』' | '〕' | '］' | '》' | '>' | '〉' | '≫')
    );
    let line_start = before.is_none_or(|c| c == '\n' || c == '\r') || {
        // Only spaces since the line start.
        let ls = h[..s]
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |i| i + 1);
        h[ls..s].iter().all(|&b| b == b' ' || b == b'\t')
    };
    let line_end = after.is_none_or(|c| c == '\n' || c == '\r');
    open && close || line_start && line_end || line_start && matches!(after, Some(':' | '：'))
}

fn literal_candidates(col: &mut Collector<'_>, h: &[u8], hits: &[LitHit]) {
    let engine = col.engine;
    for hit in hits {
        for action in &engine.term_actions[hit.term as usize] {
            match action {
                TermAction::Report {
                    det,
                    confidence,
                    exact,
                } => {
                    if let Some(x) = exact {
                        if &h[hit.start..hit.end] != x.as_ref() {
                            continue;
                        }
                    }
                    let apart = set_apart(h, hit.start, hit.end);
                    let plain = if apart {
                        confidence.raised()
                    } else {
                        *confidence
                    };
                    let mut c =
                        Cand::new(*det, hit.start, hit.end, Some(plain), plain.raised(), None);
                    if apart {
                        c.structure = Some("set_apart");
                    }
                    let canon: String = String::from_utf8_lossy(&h[hit.start..hit.end])
                        .chars()
                        .map(fold_char)
                        .collect();
                    col.push(c, canon.as_bytes());
                }
                TermAction::AwsSecretLabel => {
                    secrets::aws_secret_near(col, h, hit.end, 120, Confidence::High);
                }
            }
        }
    }
}

fn regex_candidates(
    col: &mut Collector<'_>,
    h: &[u8],
    re: &[regex_automata::meta::Regex],
    dets: &[DetId],
) {
    let engine = col.engine;
    // Match on folded text so `[0-9]` also finds full-width digits; map offsets back.
    let text = String::from_utf8_lossy(h);
    let lossless = matches!(text, std::borrow::Cow::Borrowed(_));
    let norm = if lossless && needs_folding(&text) {
        Some(normalize(&text))
    } else {
        None
    };
    let hay: &[u8] = norm.as_ref().map_or(h, |n| n.text.as_bytes());
    for (r, &det) in re.iter().zip(dets) {
        let params = &engine.detectors[det as usize].params;
        for m in r.find_iter(hay) {
            if m.is_empty() {
                continue;
            }
            let (s, e) = match &norm {
                Some(n) => (n.to_original(m.start()), n.to_original(m.end())),
                None => (m.start(), m.end()),
            };
            if !lossless && (s > h.len() || e > h.len()) {
                continue;
            }
            let folded = &hay[m.start()..m.end()];
            let canon: Vec<u8> = match params.validator {
                Some(_) => folded
                    .iter()
                    .filter(|b| b.is_ascii_alphanumeric())
                    .map(u8::to_ascii_uppercase)
                    .collect(),
                None => folded.to_vec(),
            };
            let check = match params.validator {
                Some(v) if !v.check(&canon) => continue,
                Some(v) => Some(v.name()),
                None => None,
            };
            let base = params.base_confidence;
            let plain = if params.context_required {
                None
            } else {
                Some(base)
            };
            col.push(Cand::new(det, s, e, plain, base.raised(), check), &canon);
        }
    }
}

/// The nearest context word of one polarity: (word, distance in characters).
type Nearest = Option<(u32, usize)>;

/// Characters around a candidate searched before the whole window: wider than any negative window.
const NEAR_WINDOW: usize = 32;

/// The nearest positive and negative context words of detector `det` inside `[s, e)`, with
/// their distance in characters to `value` (a value inside or beside the span), or 0 when the
/// span is elsewhere (a header cell).
fn words_in(
    words: &ContextWords,
    ctx: &mut ContextIndex,
    h: &[u8],
    (s, e): (usize, usize),
    det: DetId,
    value: Option<(usize, usize)>,
) -> (Nearest, Nearest) {
    let (mut pos, mut neg): (Nearest, Nearest) = (None, None);
    ctx.ensure(words, h, s, e);
    for hit in ctx.between(s, e) {
        if hit.end > e {
            continue;
        }
        if !words.roles[hit.word as usize].iter().any(|r| r.det == det) {
            continue;
        }
        let dist = match value {
            Some((vs, _)) if hit.end <= vs => chars_between(h, hit.end, vs),
            Some((_, ve)) if hit.start >= ve => chars_between(h, ve, hit.start),
            _ => 0,
        };
        for role in &words.roles[hit.word as usize] {
            if role.det != det {
                continue;
            }
            let slot = if role.negative { &mut neg } else { &mut pos };
            if slot.is_none_or(|(_, d)| dist < d) {
                *slot = Some((hit.word, dist));
            }
        }
    }
    (pos, neg)
}

/// How many candidates ahead of the one being scored its context window is prefetched.
const PREFETCH_CANDIDATES: usize = 8;
/// Bytes either side of a candidate prefetched: the near window (`NEAR_WINDOW` characters of
/// up to 3 bytes) and the largest negative window of the built-ins fit.
const PREFETCH_BYTES: usize = 3 * NEAR_WINDOW;

/// Asks for the cache line of `h[at]` (`simd::prefetch`); nothing without the `simd`
/// feature.
#[inline(always)]
fn prefetch(h: &[u8], at: usize) {
    #[cfg(feature = "simd")]
    crate::simd::prefetch(h, at);
    #[cfg(not(feature = "simd"))]
    let _ = (h, at);
}

/// Context scoring.
fn score(
    engine: &Engine,
    h: &[u8],
    cands: &[Cand],
    ctx: &mut ContextIndex,
    layout: Option<&Layout>,
    out: &mut Vec<Scored>,
) {
    let words = &engine.context;
    // What a header cell says of a detector is the same for every row below it: a list's
    // 10,000 values ask a handful of (header, detector) pairs. Bounded: past the first
    // `HEADER_MEMO` pairs, headers are read again each time.
    const HEADER_MEMO: usize = 64;
    type Memo = ((usize, usize), DetId, (Nearest, Nearest));
    let mut memo: Vec<Memo> = Vec::new();
    for (i, c) in cands.iter().enumerate() {
        // The text around a candidate was last read when the scan went past it, long before on
        // a large text: ask for the near window of a candidate a few places ahead now, so that
        // it is in the cache when its turn comes.
        if let Some(a) = cands.get(i + PREFETCH_CANDIDATES) {
            let mut at = a.start.saturating_sub(PREFETCH_BYTES) & !63;
            while at < a.end + PREFETCH_BYTES {
                prefetch(h, at);
                at += 64;
            }
        }
        let p = &engine.detectors[c.det as usize].params;
        let (mut pos, mut neg): (Nearest, Nearest) = (None, None);
        let mut neg_before = false;
        let mut via = Via::Window;
        let cell = layout
            .and_then(|l| l.cell_at(c.start))
            .filter(|(g, cc)| !cc.is_empty() && c.end <= g.end);
        if let (Some((g, cc)), true) = (cell, engine.max_window > 0) {
            // A table cell: the header of its column decides (a negative header such as
            // `注文番号` excludes the column), then words in the cell itself, then the row label.
            let mut decided = false;
            for span in cc.header.iter().flatten() {
                let (hp, hn) = match memo.iter().find(|m| m.0 == *span && m.1 == c.det) {
                    Some(m) => m.2,
                    None => {
                        let r = words_in(words, ctx, h, *span, c.det, None);
                        if memo.len() < HEADER_MEMO {
                            memo.push((*span, c.det, r));
                        }
                        r
                    }
                };
                if hp.is_some() || hn.is_some() {
                    pos = hp.map(|(w, _)| (w, 0));
                    neg = if hp.is_some() {
                        None
                    } else {
                        hn.map(|(w, _)| (w, 0))
                    };
                    neg_before = true;
                    via = Via::ColumnHeader;
                    decided = true;
                    break;
                }
            }
            if !decided {
                let (cp, cn) = words_in(
                    words,
                    ctx,
                    h,
                    (g.start, g.end),
                    c.det,
                    Some((c.start, c.end)),
                );
                if cp.is_some() || cn.is_some() {
                    (pos, neg) = (
                        cp.filter(|(_, d)| *d <= p.context_window),
                        cn.filter(|(_, d)| *d <= p.negative_window),
                    );
                    neg_before = true;
                    decided = pos.is_some() || neg.is_some();
                }
            }
            if !decided {
                if let Some(span) = cc.label {
                    let (lp, ln) = words_in(words, ctx, h, span, c.det, None);
                    pos = lp.map(|(w, _)| (w, 0));
                    neg = if lp.is_some() {
                        None
                    } else {
                        ln.map(|(w, _)| (w, 0))
                    };
                    neg_before = true;
                    if pos.is_some() || neg.is_some() {
                        via = Via::RowLabel;
                    }
                }
            }
        } else if engine.max_window > 0 {
            // Near window first: a positive word there is the nearest one, and a negative word in
            // front of the value decides on its own (it is always nearer than any positive word
            // found further out). Only otherwise is the whole window searched.
            let full = p.context_window.max(p.negative_window);
            let near = NEAR_WINDOW.max(engine.max_negative_window).min(full);
            for (round, reach) in [near, full].into_iter().enumerate() {
                if round == 1 && (pos.is_some() || neg.is_some() && neg_before || reach <= near) {
                    break;
                }
                let ws = back_chars(h, c.start, reach);
                let we = forward_chars(h, c.end, reach);
                ctx.ensure(words, h, ws, we);
                (pos, neg, neg_before) = (None, None, false);
                for hit in ctx.between(ws, we) {
                    for role in &words.roles[hit.word as usize] {
                        if role.det != c.det {
                            continue;
                        }
                        let dist = if hit.end <= c.start {
                            chars_between(h, hit.end, c.start)
                        } else if hit.start >= c.end {
                            chars_between(h, c.end, hit.start)
                        } else {
                            0
                        };
                        // A negative word is a label of this value only within its sentence.
                        if role.negative && crosses_sentence(h, hit.start, hit.end, c.start, c.end)
                        {
                            continue;
                        }
                        // A word after this value that is at least as near to the next value of
                        // the same kind is that value's label (`JAN 4901234567894` then a line
                        // `カード番号 4111 …`: the word belongs to the card number after it).
                        if !role.negative
                            && hit.start >= c.end
                            && labels_next(h, cands, c, hit.end, dist)
                        {
                            continue;
                        }
                        let (limit, slot) = if role.negative {
                            (p.negative_window, &mut neg)
                        } else {
                            (p.context_window, &mut pos)
                        };
                        if dist <= limit && slot.is_none_or(|(_, d)| dist < d) {
                            *slot = Some((hit.word, dist));
                            if role.negative {
                                neg_before = hit.start < c.start;
                            }
                        }
                    }
                }
            }
        }
        // Labels come before values ("個人番号：…", "SSN: …"), so a negative word wins over a
        // positive one only when it stands before the value and nearer than the positive word;
        // words after a value often belong to the next sentence.
        let negative_wins = match (pos, neg) {
            (Some((_, dp)), Some((_, dn))) => dn < dp && neg_before,
            (None, Some(_)) => true,
            _ => false,
        };
        // A negative word nearer than any label excludes the value (Purview's "not these
        // keywords" evidence): `注文番号 202610160001` is an order number.
        let conf = if negative_wins {
            None
        } else if pos.is_some() {
            Some(c.ctx.max(c.plain.unwrap_or(Confidence::Low)))
        } else if p.context_required {
            None
        } else {
            c.plain
        };
        let conf = conf.filter(|_| engine.report_test_values || c.flags & Cand::TEST_VALUE == 0);
        let conf = conf
            .map(|x| p.fixed_confidence.unwrap_or(x))
            .filter(|&x| x >= p.min_confidence);
        out.push(Scored {
            cand: i,
            conf: conf.unwrap_or(Confidence::Low),
            pos: if negative_wins { None } else { pos },
            neg: if negative_wins { neg } else { None },
            via,
            keep: conf.is_some(),
        });
    }
}

/// True when a candidate of `c`'s detector starts after `word_end` no further from the word than
/// `dist` characters (`cands` are sorted by start).
fn labels_next(h: &[u8], cands: &[Cand], c: &Cand, word_end: usize, dist: usize) -> bool {
    let first = cands.partition_point(|x| x.start < word_end);
    cands[first..]
        .iter()
        .take_while(|x| x.start <= word_end + 4 * (dist + 1))
        .any(|x| x.det == c.det && chars_between(h, word_end, x.start) <= dist)
}

/// True when a sentence or line ends between a word and a value: `。 ！ ？` or a line break, and
/// after the value also an ASCII `.` followed by a space or a capital letter.
fn crosses_sentence(h: &[u8], ws: usize, we: usize, vs: usize, ve: usize) -> bool {
    let (a, b, after) = if we <= vs {
        (we, vs, false)
    } else if ws >= ve {
        (ve, ws, true)
    } else {
        return false;
    };
    let gap = &h[a..b];
    let cjk_stop = |w: &[u8]| {
        matches!(
            w,
            [0xE3, 0x80, 0x82] | [0xEF, 0xBC, 0x81] | [0xEF, 0xBC, 0x9F]
        )
    };
    gap.contains(&b'\n')
        || gap.windows(3).any(cjk_stop)
        || after
            && gap
                .windows(2)
                .any(|w| w[0] == b'.' && (w[1] == b' ' || w[1].is_ascii_uppercase()))
        || after && gap.last() == Some(&b'.') && h.get(b).is_some_and(u8::is_ascii_uppercase)
}

/// One detector never hides another's match, but a value inside a *better* match is not a
/// separate value (the My Number inside a card number). Rules:
/// * same span, different detectors: the highest confidence stays (ties: all stay);
/// * one span inside another: the inner one goes when the outer one is at least as confident,
///   or passed a checksum (a card number is not also a My Number over its first digits);
/// * same detector, overlapping: the first one stays.
fn resolve_overlaps(cands: &[Cand], scored: &mut [Scored]) {
    for i in 0..scored.len() {
        if !scored[i].keep {
            continue;
        }
        let a = cands[scored[i].cand];
        let mut j = i + 1;
        while j < scored.len() && cands[scored[j].cand].start < a.end {
            if scored[j].keep && scored[i].keep {
                let b = cands[scored[j].cand];
                let (ca, cb) = (scored[i].conf, scored[j].conf);
                if a.det == b.det {
                    scored[j].keep = false;
                } else if a.start == b.start && a.end == b.end {
                    // Same value, two readings: the more confident one, then the one whose
                    // context word is nearer (個人番号 right before beats 運転免許 a line above).
                    let da = scored[i].pos.map_or(usize::MAX, |(_, d)| d);
                    let db = scored[j].pos.map_or(usize::MAX, |(_, d)| d);
                    if ca > cb || ca == cb && da < db {
                        scored[j].keep = false;
                    } else if cb > ca || db < da {
                        scored[i].keep = false;
                    }
                } else if a.start <= b.start && b.end <= a.end {
                    // A value inside a longer one that passed its checksum (a card number's
                    // first twelve digits read as a My Number) is part of it, whatever context
                    // raised the shorter reading.
                    if ca >= cb || a.check.is_some() {
                        scored[j].keep = false;
                    }
                } else if b.start <= a.start && a.end <= b.end && (cb >= ca || b.check.is_some()) {
                    scored[i].keep = false;
                }
            }
            j += 1;
        }
    }
}

/// A value's counting key (the scan's and the report's counts of findings and distinct values
/// per detector): the detector's number in the top 16 bits, the top 48 bits of the FNV-1a hash
/// of its normalized value below. Sorting one `u64` per value is ~40 % faster than sorting
/// `(detector, hash)` pairs (2.6 % of a 10,000-row CSV list); two values of one detector count
/// as one when their hashes agree in 48 bits.
pub(crate) fn count_key(det: usize, normalized: &[u8]) -> u64 {
    debug_assert!(det < 1 << 16, "a detector's number fits 16 bits");
    let h = normalized.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    ((det as u64) << 48) | (h >> 16)
}

/// The detector's number in a [`count_key`].
pub(crate) fn key_det(key: u64) -> usize {
    (key >> 48) as usize
}

/// `bytes` as text in the arena: most values are short ASCII (digits, separators), which
/// needs no UTF-8 decoding; anything else is decoded as `String::from_utf8_lossy` does.
fn alloc_text<'s>(arena: &'s Bump, bytes: &[u8]) -> &'s str {
    match std::str::from_utf8(bytes) {
        Ok(s) => arena.alloc_str(s),
        Err(_) => arena.alloc_str(&String::from_utf8_lossy(bytes)),
    }
}

fn emit<'s>(
    engine: &'s Engine,
    h: &[u8],
    cands: &[Cand],
    canon: &[u8],
    scored: &[Scored],
    arena: &'s Bump,
) -> ScanResult<'s> {
    // Unique values per detector, for min_count and the counts.
    const _: () = assert!(
        std::mem::size_of::<DetId>() <= 2,
        "a detector id fits count_key's 16 bits"
    );
    let mut keys: Vec<u64> = scored
        .iter()
        .filter(|s| s.keep)
        .map(|s| {
            let c = &cands[s.cand];
            count_key(
                usize::from(c.det),
                &canon[c.canon.0 as usize..c.canon.1 as usize],
            )
        })
        .collect();
    keys.sort_unstable();
    let n = engine.detectors.len();
    let mut totals = vec![0usize; n];
    for &k in &keys {
        totals[key_det(k)] += 1;
    }
    keys.dedup();
    let mut unique = vec![0usize; n];
    for &k in &keys {
        unique[key_det(k)] += 1;
    }
    let mut counts = bumpalo::collections::Vec::new_in(arena);
    let mut allowed = vec![false; n];
    for (d, info) in engine.detectors.iter().enumerate() {
        if unique[d] > 0 && unique[d] >= info.params.min_count {
            allowed[d] = true;
            counts.push(DetectorCount {
                detector: info.id.as_str(),
                findings: totals[d],
                unique: unique[d],
            });
        }
    }
    let context = &engine.context;
    // Sized once: a list's 30,000 findings grew the vector by doubling, copying it each time.
    let reported = (0..n).filter(|&d| allowed[d]).map(|d| totals[d]).sum();
    let mut findings = bumpalo::collections::Vec::with_capacity_in(reported, arena);
    // Masked values are built here, then copied into the arena; evidence texts are the
    // engine's own.
    let mut scratch = String::new();
    for (k, s) in scored.iter().enumerate() {
        // The values are read from the text again here: ask for one a few places ahead (see
        // `score`).
        if let Some(a) = scored.get(k + PREFETCH_CANDIDATES) {
            prefetch(h, cands[a.cand].start);
        }
        if !s.keep {
            continue;
        }
        let c = &cands[s.cand];
        if !allowed[c.det as usize] {
            continue;
        }
        let info = &engine.detectors[c.det as usize];
        let value = alloc_text(arena, &h[c.start..c.end]);
        let normalized = alloc_text(arena, &canon[c.canon.0 as usize..c.canon.1 as usize]);
        scratch.clear();
        mask_into(value, info.params.mask, &mut scratch);
        let masked = arena.alloc_str(&scratch);
        let mut ev = bumpalo::collections::Vec::new_in(arena);
        // The engine's own texts: the same word gives the same `&str` in every finding.
        let word = |w: u32, d: usize| -> (&str, Option<usize>) {
            let w = w as usize;
            match s.via {
                Via::Window => (context.words[w].as_str(), Some(d)),
                Via::ColumnHeader => (context.column_header[w].as_str(), None),
                Via::RowLabel => (context.row_label[w].as_str(), None),
            }
        };
        if let Some((w, d)) = s.pos {
            let (detail, distance) = word(w, d);
            ev.push(Evidence {
                kind: EvidenceKind::Context,
                detail,
                distance,
            });
        }
        if let Some((w, d)) = s.neg {
            let (detail, distance) = word(w, d);
            ev.push(Evidence {
                kind: EvidenceKind::NegativeContext,
                detail,
                distance,
            });
        }
        if let Some(ch) = c.check {
            ev.push(Evidence {
                kind: EvidenceKind::Checksum,
                detail: ch,
                distance: None,
            });
        }
        if let Some(st) = c.structure {
            ev.push(Evidence {
                kind: EvidenceKind::Structure,
                detail: st,
                distance: None,
            });
        }
        if c.flags & Cand::TEST_VALUE != 0 {
            ev.push(Evidence {
                kind: EvidenceKind::TestValue,
                detail: "published test value",
                distance: None,
            });
        }
        findings.push(Finding {
            detector: info.id.as_str(),
            confidence: s.conf,
            start: c.start,
            end: c.end,
            value,
            normalized,
            value_masked: masked,
            evidence: ev.into_bump_slice(),
        });
    }
    ScanResult {
        findings: findings.into_bump_slice(),
        counts: counts.into_bump_slice(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Letters glued in front of a number are an identifier unless they are a phone label,
    /// and the labels are the phone detectors' ASCII context words: the built-in `TEL` and
    /// `FAX`, and a word a rules file adds (`[builtin.jp_phone] context`).
    #[test]
    fn glued_phone_labels_come_from_the_rules() {
        let phones = |engine: Engine, text: &str| {
            let mut s = Scanner::new(std::sync::Arc::new(engine));
            let r = s.scan_str(text);
            r.findings
                .iter()
                .filter(|f| f.detector == "jp_phone")
                .count()
        };
        let plain = || Engine::builder().build().unwrap();
        let keitai = || {
            Engine::builder()
                .rules_str("[builtin.jp_phone]\ncontext = [\"Keitai\", \"内線\"]\n")
                .build()
                .unwrap()
        };
        assert_eq!(phones(plain(), "TEL03-5321-1111 FAX03-5321-1112"), 2);
        assert_eq!(phones(plain(), "Keitai090-1234-5678"), 0);
        assert_eq!(phones(keitai(), "Keitai090-1234-5678"), 1);
        assert_eq!(phones(keitai(), "KEITAI090-1234-5678"), 1);
        // Only the whole word: more letters in front make an identifier again.
        assert_eq!(phones(keitai(), "xKeitai090-1234-5678"), 0);
        assert_eq!(phones(plain(), "HOTEL090-1234-5678"), 0);
        assert!(plain().phone_labels.iter().any(|l| &l[..] == b"tel"));
        assert!(!keitai().phone_labels.iter().any(|l| l.len() > 12));
    }

    /// `digits::skip_short` only ever skips what `digits::scan_at` would skip: at every digit
    /// (ASCII or full-width) of texts built from numbers, separators (ASCII, full-width, `ー`,
    /// no-break and ideographic spaces), letters and Japanese, whenever it answers, `scan_at`
    /// finds nothing and resumes at the same place.
    #[test]
    fn short_numbers_are_skipped_as_scan_at_skips_them() {
        let engine = Engine::builder().build().unwrap();
        let around = [
            "", " ", "A", "x", "+", "Ｔ", "ａ", "＋", "ｱ", "円", "の", "、", "\n", "(", "（", "#",
            ".",
        ];
        let seps = [
            "-", " ", ".", "(", ")", ") ", "ー", "\u{3000}", "\u{a0}", "－", "（", "）", "—", "‐",
            "、", "/",
        ];
        let lens = [1, 2, 2, 3, 3, 4, 4, 4, 5, 6, 7, 8];
        let (mut skipped, mut scanned, mut wide) = (0, 0, 0);
        let mut seq = digits::Seq::new();
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut rand = move |n: usize| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % n as u64) as usize
        };
        for _ in 0..400 {
            // Numbers of one to four groups (phone, card and account shapes among them) with
            // separators and neighbours that may or may not join them.
            let mut text = String::new();
            for _ in 0..12 {
                text.push_str(around[rand(around.len())]);
                for g in 0..1 + rand(4) {
                    if g > 0 {
                        text.push_str(seps[rand(seps.len())]);
                    }
                    // ASCII digits, full-width ones, or both mixed.
                    let mode = rand(8);
                    for _ in 0..lens[rand(lens.len())] {
                        let d = rand(10) as u8;
                        if mode >= 6 && (mode == 6 || rand(2) == 0) {
                            text.push(char::from_u32(0xFF10 + u32::from(d)).unwrap());
                        } else {
                            text.push(char::from(b'0' + d));
                        }
                    }
                }
                text.push_str(around[rand(around.len())]);
            }
            let h = text.as_bytes();
            for p in 0..h.len() {
                // Runs of ASCII digits, and of full-width digits (given a run of 0).
                if !h[p].is_ascii_digit() && !matches!(h[p..], [0xEF, 0xBC, 0x90..=0x99, ..]) {
                    continue;
                }
                let run = h[p..].iter().take_while(|b| b.is_ascii_digit()).count();
                let Some(end) = digits::skip_short(h, p, run) else {
                    scanned += 1;
                    continue;
                };
                skipped += 1;
                wide += usize::from(run == 0);
                let (mut cands, mut canon) = (Vec::new(), Vec::new());
                let mut col = Collector {
                    engine: &engine,
                    cands: &mut cands,
                    canon: &mut canon,
                };
                let resume = digits::scan_at(&mut col, &mut seq, h, p);
                assert_eq!(resume, end, "{text:?} at {p}");
                assert!(cands.is_empty(), "{text:?} at {p}");
            }
        }
        assert!(
            skipped > 1000 && scanned > 1000 && wide > 200,
            "{skipped} {scanned} {wide}"
        );
    }
}
