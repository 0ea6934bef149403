//! The one place with `unsafe`: AVX2 classification of trigger bytes (see `detect/trigger.rs`),
//! the search for a few short keywords by their first three bytes (`detect/literals.rs`), and a
//! cache prefetch hint (the context windows of the candidates scored next, `detect/scan.rs`).
//!
//! Each 32-byte block is classified with two nibble lookups (`vpshufb`): a byte is a trigger when
//! the bit for its high nibble is set in the low nibble's entry. Classes (bit: high nibble, low
//! nibbles): 0: `3`, `0-9` (digits); 1: `2`, `D F` (`-` `/`); 2: `4`, `0 1` (`@` `A`);
//! 3: `5`, `F` (`_`); 4: `7`, `8` (`x`); 5: `E`, `F` (0xEF). The equivalence with the scalar table
//! is checked by a property test over random bytes.
#![allow(unsafe_code)]

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

/// Asks the CPU to bring the cache line that holds `h[at]` into its caches: a hint with no
/// effect on any result (nothing happens when `at` is outside `h`).
#[inline(always)]
pub(crate) fn prefetch(h: &[u8], at: usize) {
    #[cfg(target_arch = "x86_64")]
    if let Some(b) = h.get(at) {
        // SAFETY: SSE is part of the x86-64 baseline; a prefetch of a valid address neither
        // faults nor changes memory.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(std::ptr::from_ref(b).cast()) }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (h, at);
}

/// True when the CPU has AVX2 (detected once by std, then cached).
#[inline]
pub(crate) fn has_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx2")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

const fn lo_table() -> [u8; 16] {
    let mut t = [0u8; 16];
    let mut i = 0;
    while i < 10 {
        t[i] |= 1;
        i += 1;
    }
    t[0xD] |= 2;
    t[0xF] |= 2;
    t[0x0] |= 4;
    t[0x1] |= 4;
    t[0xF] |= 8;
    t[0x8] |= 16;
    t[0xF] |= 32;
    t
}

const fn hi_table() -> [u8; 16] {
    let mut t = [0u8; 16];
    t[0x3] = 1;
    t[0x2] = 2;
    t[0x4] = 4;
    t[0x5] = 8;
    t[0x7] = 16;
    t[0xE] = 32;
    t
}

const LO: [u8; 16] = lo_table();
const HI: [u8; 16] = hi_table();

/// The trigger mask of `h[base..base + 64]` and the mask of its ASCII digits (class 0). Call
/// only when [`has_avx2`] is true and `base + 64 <= h.len()`.
#[cfg(target_arch = "x86_64")]
pub(crate) fn classify64_avx2(h: &[u8], base: usize) -> (u64, u64) {
    assert!(base + 64 <= h.len());
    debug_assert!(has_avx2());
    // SAFETY: the caller checked that the CPU supports AVX2 (the only requirement of the target
    // feature), and the assert above keeps both 32-byte loads inside `h`.
    unsafe { classify64(h.as_ptr().add(base)) }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn classify64(p: *const u8) -> (u64, u64) {
    let lo_t = _mm256_broadcastsi128_si256(_mm_loadu_si128(LO.as_ptr().cast()));
    let hi_t = _mm256_broadcastsi128_si256(_mm_loadu_si128(HI.as_ptr().cast()));
    let nib = _mm256_set1_epi8(0x0F);
    let zero = _mm256_setzero_si256();
    let half = |v: __m256i| -> (u32, u32) {
        let lo = _mm256_shuffle_epi8(lo_t, _mm256_and_si256(v, nib));
        let hi = _mm256_shuffle_epi8(hi_t, _mm256_and_si256(_mm256_srli_epi16(v, 4), nib));
        let class = _mm256_and_si256(lo, hi);
        // Class bit 0 (digits) moved to each byte's top bit: a 16-bit shift by 7 carries the
        // low byte's bits 1-7 into the high byte's bits 0-6, never into its top bit.
        (
            !(_mm256_movemask_epi8(_mm256_cmpeq_epi8(class, zero)) as u32),
            _mm256_movemask_epi8(_mm256_slli_epi16(class, 7)) as u32,
        )
    };
    // SAFETY: the caller guarantees 64 readable bytes at `p`; loadu has no alignment needs.
    let (a, b) = unsafe {
        (
            _mm256_loadu_si256(p.cast()),
            _mm256_loadu_si256(p.add(32).cast()),
        )
    };
    let ((ta, da), (tb, db)) = (half(a), half(b));
    (
        u64::from(ta) | (u64::from(tb) << 32),
        u64::from(da) | (u64::from(db) << 32),
    )
}

/// Calls `f(p)`, in order, for every `p` with `h[p..p + 3]` equal to one of `pre`. The scalar
/// twin of [`find_prefix3_avx2`], which it must match position for position.
pub(crate) fn find_prefix3_scalar(
    h: &[u8],
    from: usize,
    pre: &[[u8; 3]],
    f: &mut impl FnMut(usize),
) {
    for (i, w) in h.windows(3).enumerate().skip(from) {
        if pre.iter().any(|q| q == w) {
            f(i);
        }
    }
}

/// [`find_prefix3_scalar`] with AVX2, 32 positions at a time: three unaligned loads (at `p`,
/// `p + 1`, `p + 2`), compared byte-wise with each prefix's three bytes; the blocks too close to
/// the end for three loads go through the scalar twin. Give at most four prefixes, without
/// repeats (a repeat is compared twice); call only when [`has_avx2`] is true.
#[cfg(target_arch = "x86_64")]
pub(crate) fn find_prefix3_avx2(h: &[u8], pre: &[[u8; 3]], f: &mut impl FnMut(usize)) {
    debug_assert!(has_avx2());
    debug_assert!(pre.len() <= 4, "at most four prefixes (ShortSearch::new)");
    // SAFETY: the caller checked that the CPU supports AVX2 (the only requirement of the target
    // feature); the function reads only inside `h` (its loop bound keeps every load in range).
    let done = unsafe {
        match pre {
            [] => h.len(),
            [a] => prefix3_blocks(h, &[*a], f),
            [a, b] => prefix3_blocks(h, &[*a, *b], f),
            [a, b, c] => prefix3_blocks(h, &[*a, *b, *c], f),
            [a, b, c, d, ..] => prefix3_blocks(h, &[*a, *b, *c, *d], f),
        }
    };
    find_prefix3_scalar(h, done, pre, f);
}

/// The whole 32-byte blocks of [`find_prefix3_avx2`] for the `N` prefixes `pre` (one instance
/// per count, so each prefix is compared once); returns where the scalar tail begins.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn prefix3_blocks<const N: usize>(
    h: &[u8],
    pre: &[[u8; 3]; N],
    f: &mut impl FnMut(usize),
) -> usize {
    let wanted = pre.map(|q| q.map(|b| _mm256_set1_epi8(b as i8)));
    let eq3 = |x: __m256i, y: __m256i, z: __m256i, [a, b, c]: [__m256i; 3]| {
        _mm256_and_si256(
            _mm256_cmpeq_epi8(x, a),
            _mm256_and_si256(_mm256_cmpeq_epi8(y, b), _mm256_cmpeq_epi8(z, c)),
        )
    };
    let mut i = 0;
    // A block at `i` reads `h[i..i + 34]`.
    while i + 34 <= h.len() {
        // SAFETY: `i + 34 <= h.len()`, so the three 32-byte loads at `i`, `i + 1` and `i + 2`
        // stay inside `h`; loadu has no alignment needs.
        let (x, y, z) = unsafe {
            let p = h.as_ptr().add(i);
            (
                _mm256_loadu_si256(p.cast()),
                _mm256_loadu_si256(p.add(1).cast()),
                _mm256_loadu_si256(p.add(2).cast()),
            )
        };
        let m = wanted[1..].iter().fold(eq3(x, y, z, wanted[0]), |m, &w| {
            _mm256_or_si256(m, eq3(x, y, z, w))
        });
        let mut bits = _mm256_movemask_epi8(m) as u32;
        while bits != 0 {
            f(i + bits.trailing_zeros() as usize);
            bits &= bits - 1;
        }
        i += 32;
    }
    i
}

#[cfg(test)]
mod tests {
    #[test]
    fn tables_match_the_scalar_set() {
        for b in 0..=255u8 {
            let (lo, hi) = (super::LO[(b & 15) as usize], super::HI[(b >> 4) as usize]);
            assert_eq!(
                lo & hi != 0,
                crate::detect::is_trigger_byte(b),
                "byte {b:#x}"
            );
        }
    }

    #[test]
    fn prefix_search_avx2_matches_scalar() {
        if !super::has_avx2() {
            return;
        }
        // Random kana-like bytes with the prefixes planted at every alignment, near both ends.
        let pre = [
            *b"\xe6\xa9\x9f",
            *b"\xe6\xa5\xb5",
            *b"\xe5\x8e\xb3",
            *b"abc",
        ];
        let mut text: Vec<u8> = (0..3000u32)
            .map(|i| {
                [0xe3, 0x81, 0x82, 0xe6, 0xa9, 0xa5, 0x9f, b'a', b'b']
                    [(i.wrapping_mul(2654435761) >> 7) as usize % 9]
            })
            .collect();
        for (n, at) in (0..200).chain(2790..2997).enumerate() {
            if n % 5 == 0 {
                text[at..at + 3].copy_from_slice(&pre[n % 4]);
            }
        }
        for len in [0, 1, 2, 3, 33, 34, 35, 66, 1000, 2999, 3000] {
            for (k, pre) in [
                &pre[..],
                &pre[..1],
                &[pre[1], pre[2]],
                &[pre[2], pre[0], pre[3]],
            ]
            .into_iter()
            .enumerate()
            {
                let (mut a, mut b) = (Vec::new(), Vec::new());
                super::find_prefix3_avx2(&text[..len], pre, &mut |p| a.push(p));
                super::find_prefix3_scalar(&text[..len], 0, pre, &mut |p| b.push(p));
                assert_eq!(a, b, "length {len}");
                if len == 3000 && k == 0 {
                    assert!(b.len() > 40);
                }
            }
        }
    }

    #[test]
    fn avx2_matches_scalar() {
        if !super::has_avx2() {
            return;
        }
        let text: Vec<u8> = (0..4096u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 11) as u8)
            .collect();
        for base in (0..text.len() - 64).step_by(7) {
            assert_eq!(
                super::classify64_avx2(&text, base),
                crate::detect::classify_trigger_scalar(&text, base)
            );
        }
    }
}
