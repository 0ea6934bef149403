//! Finding the next byte that can start a built-in match.
//!
//! The built-in detectors (digits, emails, secrets) all start at one of a few bytes: an ASCII
//! digit, `0xEF` (the lead byte of full-width digits and letters), `@`, `A`, `_`, `x`, `/`, `-`.
//! Everything else (kana, kanji, most ASCII letters) is skipped. The text is classified in 64-byte
//! blocks into a bit mask (AVX2 on x86-64, `simd.rs`; a table lookup per byte elsewhere), and the
//! scan walks the set bits; handlers that consume a whole token jump ahead.

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

/// The mask of trigger bytes in `h[base..base + 64]` (bytes past the end count as non-triggers).
pub(crate) fn classify_scalar(h: &[u8], base: usize) -> u64 {
    let end = h.len().min(base + 64);
    let mut m = 0u64;
    for (i, &b) in h[base.min(end)..end].iter().enumerate() {
        m |= u64::from(TABLE[b as usize]) << i;
    }
    m
}

/// Iterates the trigger positions of one text, a block of 64 bytes at a time.
pub(crate) struct Triggers {
    block: usize,
    mask: u64,
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
            avx2,
        }
    }

    #[inline]
    fn classify(&self, h: &[u8], base: usize) -> u64 {
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
            self.mask = self.classify(h, base);
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
            self.mask = self.classify(h, base);
            m = self.mask;
        }
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
}
