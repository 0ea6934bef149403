//! The one place with `unsafe`: AVX2 classification of trigger bytes (see `detect/trigger.rs`),
//! the search for a few short keywords by their first three bytes and the dictionary filter's
//! probe loop (`detect/literals.rs`), and a cache prefetch hint (the context windows of the
//! candidates scored next, `detect/scan.rs`).
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

/// The filter probe loop of a stride-5 tier of 8-byte keys, and of the 4-byte keys at the same
/// points (the first four bytes of each) when `mid` is not empty, four lattice points a time:
/// for the points `p, p + 5, p + 10, p + 15` (from `p = first`, a lattice point, while
/// `p + 15 < to`), the hashes of [`crate::detect::literals::bit_of`] in four lanes, the filter
/// words gathered, and `f(p, hits)` called when some key passed (bit `i`: the 8-byte key at
/// `p + 5 i`, bit `4 + i`: its 4-byte key). Keys are ASCII-folded (bit 5 of each byte set) when
/// `fold`. Returns the first point not done (the scalar loop goes on from there). `long` and a
/// non-empty `mid` must have a power-of-two length of words; call only when [`has_avx2`] is true.
#[cfg(target_arch = "x86_64")]
pub(crate) fn filter_probe5_avx2(
    h: &[u8],
    (first, to): (usize, usize),
    (long, mid): (&[u64], &[u64]),
    fold: bool,
    f: &mut impl FnMut(usize, u32),
) -> usize {
    debug_assert!(has_avx2());
    assert!(long.len().is_power_of_two() && (mid.is_empty() || mid.len().is_power_of_two()));
    // SAFETY: the caller checked that the CPU supports AVX2 (the only requirement of the target
    // feature); the loop reads text only below `h.len()` (its bound), and gathers only at word
    // indices masked by `len - 1` of a non-empty power-of-two-long filter.
    unsafe { probe5_blocks(h, (first, to), (long, mid), fold, f) }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn probe5_blocks(
    h: &[u8],
    (first, to): (usize, usize),
    (long, mid): (&[u64], &[u64]),
    fold: bool,
    f: &mut impl FnMut(usize, u32),
) -> usize {
    use crate::detect::literals::{FILTER_MUL, MAX_FILTER_LOG2};
    // Each 128-bit half holds 16 text bytes (from `p` and from `p + 10`); the keys at 0 and 5
    // of each half are its bytes 0..8 and 5..13.
    let pick = _mm256_setr_epi8(
        0, 1, 2, 3, 4, 5, 6, 7, 5, 6, 7, 8, 9, 10, 11, 12, 0, 1, 2, 3, 4, 5, 6, 7, 5, 6, 7, 8, 9,
        10, 11, 12,
    );
    let fold_bits = _mm256_set1_epi8(if fold { 0x20 } else { 0 });
    // The 64-bit product `key * M` from 32-bit halves (AVX2 multiplies only those): with
    // `key = lo + hi 2^32` and `M = m0 + m1 2^32`, `key * M = lo m0 + (lo m1 + hi m0) 2^32`
    // (mod 2^64); a 4-byte key has `hi = 0`, and shares `lo m0` and `lo m1`.
    let (m0, m1) = (
        _mm256_set1_epi64x((FILTER_MUL & 0xFFFF_FFFF) as i64),
        _mm256_set1_epi64x((FILTER_MUL >> 32) as i64),
    );
    let long_mask = _mm256_set1_epi64x(long.len() as i64 - 1);
    let with_mid = !mid.is_empty();
    let mid_mask = _mm256_set1_epi64x(mid.len().max(1) as i64 - 1);
    let low6 = _mm256_set1_epi64x(63);
    // The filter bits of the hashes `h` (26-bit bit numbers) in `bits`: four lanes' 0/1 as a
    // mask of four bits.
    let test = |bits: &[u64], mask: __m256i, h: __m256i| -> u32 {
        let b = _mm256_srli_epi64::<{ 64 - MAX_FILTER_LOG2 as i32 }>(h);
        let word = _mm256_and_si256(_mm256_srli_epi64::<6>(b), mask);
        // SAFETY: every word index is masked by `bits.len() - 1` (a power of two, not empty).
        let w = unsafe { _mm256_i64gather_epi64::<8>(bits.as_ptr().cast(), word) };
        let bit = _mm256_slli_epi64::<63>(_mm256_srlv_epi64(w, _mm256_and_si256(b, low6)));
        _mm256_movemask_pd(_mm256_castsi256_pd(bit)) as u32
    };
    let mut p = first;
    // A step reads `h[p..p + 26]`.
    while p + 15 < to && p + 26 <= h.len() {
        // SAFETY: `p + 26 <= h.len()`: the 16-byte loads at `p` and `p + 10` are inside `h`.
        let text = unsafe {
            let at = h.as_ptr().add(p);
            _mm256_loadu2_m128i(at.add(10).cast(), at.cast())
        };
        let keys = _mm256_or_si256(_mm256_shuffle_epi8(text, pick), fold_bits);
        let (lo_m0, lo_m1) = (_mm256_mul_epu32(keys, m0), _mm256_mul_epu32(keys, m1));
        let hi_m0 = _mm256_mul_epu32(_mm256_srli_epi64::<32>(keys), m0);
        let cross = _mm256_slli_epi64::<32>(_mm256_add_epi64(lo_m1, hi_m0));
        let mut hits = test(long, long_mask, _mm256_add_epi64(lo_m0, cross));
        if with_mid {
            let mid_hash = _mm256_add_epi64(lo_m0, _mm256_slli_epi64::<32>(lo_m1));
            hits |= test(mid, mid_mask, mid_hash) << 4;
        }
        if hits != 0 {
            f(p, hits);
        }
        p += 20;
    }
    p
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
