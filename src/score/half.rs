//! IEEE 754 binary16 <-> binary32 and bfloat16 <-> binary32 conversions
//! (no dependencies).
//!
//! The two half functions are bit-exact with the x86 F16C instructions
//! (`vcvtps2ph` with round-to-nearest-even, `vcvtph2ps`), including
//! subnormals, infinities and NaN quieting; the test suite checks this
//! exhaustively for `f16 -> f32` and on random bit patterns for `f32 -> f16`.
//! The bfloat16 rounding matches `vcvtneps2bf16` for normal numbers (that
//! instruction flushes subnormals to zero; this rounds them).

/// Converts an `f32` to IEEE half-precision bits, rounding to nearest with
/// ties to even. Overflow gives +-inf, tiny values flush through the half
/// subnormal range to +-0, NaN stays NaN (quiet, payload truncated).
pub fn f32_to_f16_bits(x: f32) -> u16 {
    let b = x.to_bits();
    let sign = ((b >> 16) & 0x8000) as u16;
    let exp = ((b >> 23) & 0xff) as i32;
    let man = b & 0x007f_ffff;
    if exp == 0xff {
        if man == 0 {
            return sign | 0x7c00;
        }
        return sign | 0x7e00 | (man >> 13) as u16;
    }
    // Re-biased exponent for half (bias 15 instead of 127).
    let e = exp - 112;
    if e >= 0x1f {
        return sign | 0x7c00;
    }
    if e <= 0 {
        // Result is a half subnormal (or zero): value = m_h * 2^-24.
        if e < -10 {
            return sign;
        }
        let m = man | 0x0080_0000;
        let shift = (14 - e) as u32; // 14..=24
        let mut h = m >> shift;
        let rem = m & ((1u32 << shift) - 1);
        let half = 1u32 << (shift - 1);
        if rem > half || (rem == half && (h & 1) == 1) {
            h += 1; // may carry into the smallest normal, which is correct
        }
        return sign | h as u16;
    }
    let mut h = ((e as u32) << 10) | (man >> 13);
    let rem = man & 0x1fff;
    if rem > 0x1000 || (rem == 0x1000 && (h & 1) == 1) {
        h += 1; // a carry into the exponent correctly rounds up to inf
    }
    sign | h as u16
}

/// Converts IEEE half-precision bits to `f32` (exact; NaNs are quieted).
pub fn f16_bits_to_f32(h: u16) -> f32 {
    let sign = (u32::from(h) & 0x8000) << 16;
    let exp = u32::from((h >> 10) & 0x1f);
    let man = u32::from(h & 0x03ff);
    let bits = if exp == 0 {
        if man == 0 {
            sign
        } else {
            // Subnormal half: man * 2^-24, exactly representable in f32.
            let v = man as f32 * (1.0 / 16_777_216.0);
            return if sign != 0 { -v } else { v };
        }
    } else if exp == 0x1f {
        if man == 0 {
            sign | 0x7f80_0000
        } else {
            sign | 0x7fc0_0000 | (man << 13)
        }
    } else {
        sign | ((exp + 112) << 23) | (man << 13)
    };
    f32::from_bits(bits)
}

/// Converts an `f32` to bfloat16 bits (the upper half of the `f32`),
/// rounding to nearest with ties to even, as `vcvtneps2bf16` does for
/// normal numbers. Overflow gives +-inf, NaN stays NaN (quiet).
pub fn f32_to_bf16_bits(x: f32) -> u16 {
    let b = x.to_bits();
    if x.is_nan() {
        return ((b >> 16) as u16) | 0x0040;
    }
    let round = 0x7fff + ((b >> 16) & 1);
    (b.wrapping_add(round) >> 16) as u16
}

/// Converts bfloat16 bits to `f32` (exact: the bits are the upper half).
#[inline]
pub fn bf16_bits_to_f32(h: u16) -> f32 {
    f32::from_bits(u32::from(h) << 16)
}
