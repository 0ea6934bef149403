//! The one place with `unsafe`: AVX2 classification of trigger bytes (see `detect/trigger.rs`).
//!
//! Each 32-byte block is classified with two nibble lookups (`vpshufb`): a byte is a trigger when
//! the bit for its high nibble is set in the low nibble's entry. Classes (bit: high nibble, low
//! nibbles): 0: `3`, `0-9` (digits); 1: `2`, `D F` (`-` `/`); 2: `4`, `0 1` (`@` `A`);
//! 3: `5`, `F` (`_`); 4: `7`, `8` (`x`); 5: `E`, `F` (0xEF). The equivalence with the scalar table
//! is checked by a property test over random bytes.
#![allow(unsafe_code)]

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

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

/// The trigger mask of `h[base..base + 64]`. Call only when [`has_avx2`] is true and
/// `base + 64 <= h.len()`.
#[cfg(target_arch = "x86_64")]
pub(crate) fn classify64_avx2(h: &[u8], base: usize) -> u64 {
    assert!(base + 64 <= h.len());
    debug_assert!(has_avx2());
    // SAFETY: the caller checked that the CPU supports AVX2 (the only requirement of the target
    // feature), and the assert above keeps both 32-byte loads inside `h`.
    unsafe { classify64(h.as_ptr().add(base)) }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn classify64(p: *const u8) -> u64 {
    let lo_t = _mm256_broadcastsi128_si256(_mm_loadu_si128(LO.as_ptr().cast()));
    let hi_t = _mm256_broadcastsi128_si256(_mm_loadu_si128(HI.as_ptr().cast()));
    let nib = _mm256_set1_epi8(0x0F);
    let zero = _mm256_setzero_si256();
    let half = |v: __m256i| -> u32 {
        let lo = _mm256_shuffle_epi8(lo_t, _mm256_and_si256(v, nib));
        let hi = _mm256_shuffle_epi8(hi_t, _mm256_and_si256(_mm256_srli_epi16(v, 4), nib));
        !(_mm256_movemask_epi8(_mm256_cmpeq_epi8(_mm256_and_si256(lo, hi), zero)) as u32)
    };
    // SAFETY: the caller guarantees 64 readable bytes at `p`; loadu has no alignment needs.
    let (a, b) = unsafe {
        (
            _mm256_loadu_si256(p.cast()),
            _mm256_loadu_si256(p.add(32).cast()),
        )
    };
    u64::from(half(a)) | (u64::from(half(b)) << 32)
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
