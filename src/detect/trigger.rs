//! Finding the next byte that can start a built-in match.
//!
//! The built-in detectors (digits, emails, secrets) all start at one of a few bytes: an ASCII
//! digit, `0xEF` (the lead byte of full-width digits and letters), `@`, `A`, `_`, `x`, `/`, `-`.
//! Everything else (kana, kanji, most ASCII letters) is skipped. On x86-64 with AVX2 the skipping
//! classifies 32 bytes per step (`simd.rs`); elsewhere a table lookup per byte does it.

/// Which bytes are triggers.
pub(crate) const fn is_trigger(b: u8) -> bool {
    matches!(b, b'0'..=b'9' | 0xEF | b'@' | b'A' | b'_' | b'x' | b'/' | b'-')
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

/// The first trigger byte at or after `from`, scalar version.
#[inline]
pub(crate) fn next_scalar(h: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    // Unrolled by four: most bytes are not triggers.
    while i + 4 <= h.len() {
        if TABLE[h[i] as usize] {
            return Some(i);
        }
        if TABLE[h[i + 1] as usize] {
            return Some(i + 1);
        }
        if TABLE[h[i + 2] as usize] {
            return Some(i + 2);
        }
        if TABLE[h[i + 3] as usize] {
            return Some(i + 3);
        }
        i += 4;
    }
    while i < h.len() {
        if TABLE[h[i] as usize] {
            return Some(i);
        }
        i += 1;
    }
    None
}

/// The first trigger byte at or after `from`.
#[inline]
pub(crate) fn next(h: &[u8], from: usize) -> Option<usize> {
    #[cfg(all(target_arch = "x86_64", feature = "simd"))]
    {
        if crate::simd::has_avx2() {
            return crate::simd::next_trigger_avx2(h, from);
        }
    }
    next_scalar(h, from)
}
