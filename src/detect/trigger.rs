//! Finding the next byte that can start a built-in match.
//!
//! The built-in detectors (digits, emails, secrets) all start at one of a few bytes: an ASCII
//! digit, `0xEF` (the lead byte of full-width digits and letters), `@`, `A`, `_`, `x`, `/`, `-`.
//! Everything else (kana, kanji, most ASCII letters) is skipped. The text is classified in 64-byte
//! blocks into a bit mask (AVX2 on x86-64, `simd.rs`; a table lookup per byte elsewhere), and the
//! scan walks the set bits; handlers that consume a whole token jump ahead. The same pass keeps
//! a mask of the block's ASCII digits: the length of a digit run is then one count of bits, and
//! the short numbers that make up most runs (quantities, years, prices) are passed over without
//! calling the digit tokenizer (`digits::skip_short`).

/// Which bytes are triggers.
pub(crate) const fn is_trigger(b: u8) -> bool {
    matches!(
        b,
        b'0'..=b'9' | 0xEF | b'@' | b'A' | b'_' | b'x' | b'/' | b'-'
    )
}

static TABLE: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = is_trigger(i as u8);
        i += 1;
    }
    t
};

/// The mask of trigger bytes in `h[base..base + 64]` and the mask of its ASCII digits (bytes
/// past the end count as neither).
pub(crate) fn classify_scalar(h: &[u8], base: usize) -> (u64, u64) {
    let end = h.len().min(base + 64);
    let (mut m, mut d) = (0u64, 0u64);
    for (i, &b) in h[base.min(end)..end].iter().enumerate() {
        m |= u64::from(TABLE[b as usize]) << i;
        d |= u64::from(b.is_ascii_digit()) << i;
    }
    (m, d)
}

/// Iterates the trigger positions of one text, a block of 64 bytes at a time.
pub(crate) struct Triggers {
    block: usize,
    mask: u64,
    /// The ASCII digits of the current block.
    digits: u64,
    /// The CPU has AVX2 (always false without the `simd` feature).
    #[cfg_attr(not(all(target_arch = "x86_64", feature = "simd")), allow(dead_code))]
    avx2: bool,
}

impl Triggers {
    pub fn new() -> Triggers {
        #[cfg(all(target_arch = "x86_64", feature = "simd"))]
        let avx2 = crate::simd::has_avx2();
        #[cfg(not(all(target_arch = "x86_64", feature = "simd")))]
        let avx2 = false;
        Triggers {
            block: usize::MAX,
            mask: 0,
            digits: 0,
            avx2,
        }
    }

    #[inline]
    fn classify(&self, h: &[u8], base: usize) -> (u64, u64) {
        #[cfg(all(target_arch = "x86_64", feature = "simd"))]
        {
            if self.avx2 && base + 64 <= h.len() {
                return crate::simd::classify64_avx2(h, base);
            }
        }
        classify_scalar(h, base)
    }

    /// The first trigger at or after `from`.
    #[inline]
    pub fn next(&mut self, h: &[u8], from: usize) -> Option<usize> {
        if from >= h.len() {
            return None;
        }
        let mut base = from & !63;
        if base != self.block {
            self.block = base;
            (self.mask, self.digits) = self.classify(h, base);
        }
        let mut m = self.mask & (!0u64 << (from - base));
        loop {
            if m != 0 {
                return Some(base + m.trailing_zeros() as usize);
            }
            base += 64;
            if base >= h.len() {
                return None;
            }
            self.block = base;
            (self.mask, self.digits) = self.classify(h, base);
            m = self.mask;
        }
    }

    /// How many ASCII digits run from `p`, the trigger [`next`](Self::next) last returned;
    /// `None` when the run reaches the end of its 64-byte block (it may go on).
    #[inline]
    pub fn digit_run(&self, p: usize) -> Option<usize> {
        let off = p - self.block;
        let run = (!(self.digits >> off)).trailing_zeros() as usize;
        (off + run < 64).then_some(run)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iterates_every_trigger() {
        let text: Vec<u8> = (0..1000u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        let mut t = Triggers::new();
        let mut got = Vec::new();
        let mut i = 0;
        while let Some(p) = t.next(&text, i) {
            got.push(p);
            i = p + 1;
        }
        let want: Vec<usize> = (0..text.len()).filter(|&i| is_trigger(text[i])).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn digit_runs_end_where_the_digits_end() {
        // Runs of 0 to 9 digits between other bytes, some across a block edge; texts of every
        // length near the edges so both the SIMD and the scalar classification are used.
        let pieces: &[&[u8]] = &[
            b"1",
            b"23",
            b"4567",
            b"890123",
            b"-",
            b" ",
            b"a",
            "\u{ff11}".as_bytes(),
        ];
        let full: Vec<u8> = (0..3000u32)
            .flat_map(|i| {
                pieces[(i.wrapping_mul(2654435761) >> 7) as usize % pieces.len()]
                    .iter()
                    .copied()
            })
            .collect();
        let mut runs = 0;
        for len in [1, 63, 64, 65, 127, 128, 129, 1000, full.len()] {
            let text = &full[..len.min(full.len())];
            let mut t = Triggers::new();
            let mut i = 0;
            while let Some(p) = t.next(text, i) {
                let want = text[p..].iter().take_while(|b| b.is_ascii_digit()).count();
                match t.digit_run(p) {
                    Some(run) => {
                        assert_eq!(run, want, "at {p} of {len}");
                        assert!(p % 64 + run < 64);
                        runs += usize::from(run > 0);
                    }
                    None => assert!(p % 64 + want >= 64, "at {p} of {len}"),
                }
                i = p + 1;
            }
        }
        assert!(runs > 1000);
    }
}
