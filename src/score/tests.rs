//! Tests for the score module: every kernel this CPU supports against the
//! scalar reference, conversions, quantization and pooling.

use super::pool::{pool_groups, pool_tokens};
use super::*;

/// splitmix64: tiny deterministic PRNG.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in [-1, 1).
    fn unit(&mut self) -> f32 {
        ((self.next_u64() >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
}

fn normalize(v: &mut [f32], dim: usize) {
    for r in v.chunks_exact_mut(dim) {
        let n = r.iter().map(|x| x * x).sum::<f32>().sqrt();
        if n > 0.0 {
            r.iter_mut().for_each(|x| *x /= n);
        }
    }
}

fn random_tokens(rng: &mut Rng, n: usize, dim: usize) -> Vec<f32> {
    let mut v: Vec<f32> = (0..n * dim).map(|_| rng.unit()).collect();
    normalize(&mut v, dim);
    v
}

/// Doc whose rows are partly noisy copies of (or opposite to) query rows, so
/// that maxima are sometimes near +1 and columns sometimes all negative.
fn related_doc(rng: &mut Rng, query: &[f32], nq: usize, nd: usize, dim: usize) -> Vec<f32> {
    let mut d = random_tokens(rng, nd, dim);
    for j in 0..nd {
        let kind = rng.next_u64() % 4;
        if kind < 2 {
            let i = (rng.next_u64() as usize) % nq;
            let sign = if kind == 0 { 1.0 } else { -1.0 };
            for k in 0..dim {
                d[j * dim + k] = sign * query[i * dim + k] + 0.1 * rng.unit();
            }
        }
    }
    normalize(&mut d, dim);
    d
}

const NQS: [usize; 4] = [1, 3, 32, 49];
const NDS: [usize; 4] = [1, 7, 64, 100];
const DIMS: [usize; 6] = [16, 32, 33, 100, 128, 384];

fn check_close(
    what: &str,
    kernel: Kernel,
    got: &Interaction,
    want: &Interaction,
    tol: f32,
    seed: u64,
) {
    let pairs = [
        ("filip_q2d", got.filip_q2d(), want.filip_q2d()),
        ("filip_d2q", got.filip_d2q(), want.filip_d2q()),
        (
            "filip_symmetric",
            got.filip_symmetric(),
            want.filip_symmetric(),
        ),
        (
            "maxsim/nq",
            got.maxsim() / got.nq as f32,
            want.maxsim() / want.nq as f32,
        ),
    ];
    for (name, g, w) in pairs {
        assert!(
            (g - w).abs() <= tol,
            "{what} kernel={kernel:?} nq={} nd={} {name}: got {g} want {w} (|diff| {} > tol {tol}) seed={seed:#x}",
            want.nq,
            want.nd,
            (g - w).abs()
        );
    }
    assert_eq!((got.nq, got.nd), (want.nq, want.nd));
}

#[test]
fn kernels_detected_and_listed() {
    let avail = Kernel::available();
    assert!(avail.contains(&Kernel::Portable));
    assert!(avail.contains(&Kernel::detect()));
    eprintln!(
        "available kernels: {avail:?}, detected {:?}",
        Kernel::detect()
    );
}

#[test]
fn f32_all_kernels_match_reference() {
    let seed = 0x5eed_f320_u64;
    let mut rng = Rng(seed);
    let mut scratch = MaxSimScratch::new();
    for &dim in &DIMS {
        for &nq in &NQS {
            let q = random_tokens(&mut rng, nq, dim);
            for &nd in &NDS {
                let d = related_doc(&mut rng, &q, nq, nd, dim);
                let want = interact_reference(&q, nq, TokensRef::F32(&d), dim);
                for k in Kernel::available() {
                    let got = interact_with(k, &q, nq, TokensRef::F32(&d), dim, &mut scratch);
                    check_close("f32", k, &got, &want, 1e-5, seed);
                }
            }
        }
    }
}

/// One prepared query scores a run of docs of every dtype exactly as
/// separate `interact_with` calls do, on every kernel, with or without a
/// next doc to prefetch, and a second prepare with another query of
/// another shape does not reuse the first.
#[test]
fn a_prepared_query_scores_like_interact() {
    let seed = 0x5eed_9e9a_u64;
    let mut rng = Rng(seed);
    let mut scratch = MaxSimScratch::new();
    let mut plain = MaxSimScratch::new();
    for (nq, dim) in [(32usize, 128usize), (5, 33), (49, 100)] {
        let q = random_tokens(&mut rng, nq, dim);
        let docs: Vec<Vec<f32>> = [1usize, 9, 64, 0]
            .iter()
            .map(|&nd| related_doc(&mut rng, &q, nq, nd, dim))
            .collect();
        let halves: Vec<Vec<u16>> = docs
            .iter()
            .map(|d| d.iter().map(|&v| f32_to_f16_bits(v)).collect())
            .collect();
        let bfloats: Vec<Vec<u16>> = docs
            .iter()
            .map(|d| d.iter().map(|&v| f32_to_bf16_bits(v)).collect())
            .collect();
        let quantized: Vec<(Vec<i8>, Vec<f32>)> =
            docs.iter().map(|d| quantize_i8(d, dim)).collect();
        for k in Kernel::available() {
            let mut prepared = scratch.prepare_with(k, &q, nq, dim);
            for (((d, h), b), (data, scales)) in
                docs.iter().zip(&halves).zip(&bfloats).zip(&quantized)
            {
                for doc in [
                    TokensRef::F32(d),
                    TokensRef::F16(h),
                    TokensRef::Bf16(b),
                    TokensRef::I8 { data, scales },
                ] {
                    let got = prepared.interact(doc);
                    let want = interact_with(k, &q, nq, doc, dim, &mut plain);
                    // a prefetch hint of another doc (any dtype, or the
                    // same one) changes nothing
                    for next in [
                        TokensRef::F32(d),
                        TokensRef::F16(h),
                        TokensRef::Bf16(b),
                        doc,
                    ] {
                        let hinted = prepared.interact_then(doc, next);
                        assert_eq!(hinted.q_max_sum.to_bits(), got.q_max_sum.to_bits());
                        assert_eq!(hinted.d_max_sum.to_bits(), got.d_max_sum.to_bits());
                    }
                    assert_eq!(
                        (
                            got.q_max_sum.to_bits(),
                            got.d_max_sum.to_bits(),
                            got.nq,
                            got.nd
                        ),
                        (
                            want.q_max_sum.to_bits(),
                            want.d_max_sum.to_bits(),
                            want.nq,
                            want.nd
                        ),
                        "{k:?} nq={nq} dim={dim}"
                    );
                }
            }
        }
    }
}

/// Every kernel against the scalar reference for 16-bit docs (`to_bits`
/// of each value, viewed with `view`), and the reference within `bound`
/// of the exact f32 one, over `dims` x NQS x NDS.
fn halves_match_reference_and_f32_bound(
    name: &str,
    seed: u64,
    dims: &[usize],
    to_bits: fn(f32) -> u16,
    view: fn(&[u16]) -> TokensRef<'_>,
    bound: f32,
) {
    let mut rng = Rng(seed);
    let mut scratch = MaxSimScratch::new();
    for &dim in dims {
        for &nq in &NQS {
            let q = random_tokens(&mut rng, nq, dim);
            for &nd in &NDS {
                let d = related_doc(&mut rng, &q, nq, nd, dim);
                let h: Vec<u16> = d.iter().map(|&v| to_bits(v)).collect();
                let want = interact_reference(&q, nq, view(&h), dim);
                let exact = interact_reference(&q, nq, TokensRef::F32(&d), dim);
                let what = format!("{name} vs f32 exact");
                check_close(&what, Kernel::Portable, &want, &exact, bound, seed);
                for k in Kernel::available() {
                    let got = interact_with(k, &q, nq, view(&h), dim, &mut scratch);
                    check_close(name, k, &got, &want, 1e-5, seed);
                }
            }
        }
    }
}

#[test]
fn f16_all_kernels_match_reference_and_f32_bound() {
    // Half rounding: |d - h(d)| <= 2^-11 |d| (normal range; the subnormal
    // absolute error 2^-25 is covered by the 1e-5), so per pair
    // |Δsim| <= 2^-11 Σ|q_k d_k| <= 2^-11 |q||d| = 2^-11, and means of
    // maxima inherit the per-pair bound.
    let bound = 2f32.powi(-11) + 1e-5;
    halves_match_reference_and_f32_bound(
        "f16",
        0x5eed_f160,
        &DIMS,
        f32_to_f16_bits,
        |h| TokensRef::F16(h),
        bound,
    );
}

#[test]
fn bf16_all_kernels_match_reference_and_f32_bound() {
    // bfloat16 rounding of both sides: |x - b(x)| <= 2^-8 |x|, so per pair
    // |Δsim| <= (2 * 2^-8 + 2^-16) |q||d| for unit rows
    let bound = 2.0 * 2f32.powi(-8) + 2f32.powi(-16) + 1e-5;
    // dims 1-3: no full pair, one pair, a pair and the odd tail
    let dims: Vec<usize> = DIMS.iter().copied().chain([1, 2, 3]).collect();
    halves_match_reference_and_f32_bound(
        "bf16",
        0x5eed_bf16,
        &dims,
        f32_to_bf16_bits,
        |h| TokensRef::Bf16(h),
        bound,
    );
}

/// The AVX-512 f32 kernel over widened bf16 docs, which CPUs with AVX-512
/// but without BF16 run (this CPU may have BF16, so it is called directly).
#[cfg(target_arch = "x86_64")]
#[test]
fn bf16_on_avx512_without_bf16_matches_reference() {
    if !Kernel::Avx512.is_supported() {
        eprintln!("no AVX-512: skipped (the AVX2 arm runs the same code, 8 lanes)");
        return;
    }
    let mut rng = Rng(0x5eed_bf17);
    let mut s = MaxSimScratch::new();
    for (nq, nd, dim) in [
        (1usize, 1usize, 16usize),
        (32, 64, 128),
        (49, 7, 33),
        (3, 100, 100),
    ] {
        let q = random_tokens(&mut rng, nq, dim);
        let d = related_doc(&mut rng, &q, nq, nd, dim);
        let b: Vec<u16> = d.iter().map(|&v| f32_to_bf16_bits(v)).collect();
        let want = interact_reference(&q, nq, TokensRef::Bf16(&b), dim);
        let _ = s.prepare_with(Kernel::Avx512, &q, nq, dim);
        sized(&mut s.qmax, nq.div_ceil(16) * 16);
        sized(&mut s.dmax, nd);
        super::x86::bf16_widened(true, nq, nd, &b, dim, &mut s);
        check_close(
            "bf16 widened",
            Kernel::Avx512,
            &s.result(nq, nd),
            &want,
            1e-5,
            0,
        );
    }
}

#[test]
fn bf16_conversion_rounds_to_nearest_even() {
    for x in [
        0.0f32,
        -0.0,
        1.0,
        -2.5,
        2f32.powi(100),
        -(2f32.powi(-100)),
        f32::INFINITY,
        f32::MIN_POSITIVE,
    ] {
        assert_eq!(f32_to_bf16_bits(x), (x.to_bits() >> 16) as u16, "{x}");
        assert_eq!(bf16_bits_to_f32(f32_to_bf16_bits(x)).to_bits(), x.to_bits());
    }
    // ties go to the even neighbour, above a tie rounds up
    assert_eq!(f32_to_bf16_bits(f32::from_bits(0x3f80_8000)), 0x3f80);
    assert_eq!(f32_to_bf16_bits(f32::from_bits(0x3f81_8000)), 0x3f82);
    assert_eq!(f32_to_bf16_bits(f32::from_bits(0x3f80_8001)), 0x3f81);
    // the largest finite f32 rounds to infinity; NaN stays a (quiet) NaN
    assert_eq!(f32_to_bf16_bits(f32::MAX), 0x7f80);
    assert!(bf16_bits_to_f32(f32_to_bf16_bits(f32::NAN)).is_nan());
    assert!(bf16_bits_to_f32(f32_to_bf16_bits(f32::from_bits(0x7f80_0001))).is_nan());
    let mut rng = Rng(0xbf);
    for _ in 0..10_000 {
        let x = rng.unit() * 3.0;
        let r = bf16_bits_to_f32(f32_to_bf16_bits(x));
        assert!((r - x).abs() <= x.abs() * 2f32.powi(-8), "{x} -> {r}");
    }
}

/// Rigorous per-pair bound on |sim_i8 - sim_f32| from the quantization
/// errors |x - q*s| <= s/2 (per element, both sides):
/// `s_d/2 |q|_1 + s_q/2 |d|_1 + dim s_q s_d / 4`, times 1.01 for the f32
/// rounding of the scales. For unit vectors this is at most
/// `sqrt(dim)/127 + dim/(4*127^2)` (0.091 for dim 128), typically far lower.
fn i8_pair_bound(q: &[f32], d: &[f32], dim: usize) -> f32 {
    let (_, qs) = quantize_i8(q, dim);
    let (_, ds) = quantize_i8(d, dim);
    let mut worst = 0.0f32;
    for (qr, &sq) in q.chunks_exact(dim).zip(&qs) {
        let q1: f32 = qr.iter().map(|v| v.abs()).sum();
        for (dr, &sd) in d.chunks_exact(dim).zip(&ds) {
            let d1: f32 = dr.iter().map(|v| v.abs()).sum();
            let b = 0.5 * sd * q1 + 0.5 * sq * d1 + 0.25 * dim as f32 * sq * sd;
            worst = worst.max(b);
        }
    }
    worst * 1.01
}

#[test]
fn i8_all_kernels_match_reference_and_f32_bound() {
    let seed = 0x5eed_0180_u64;
    let mut rng = Rng(seed);
    let mut scratch = MaxSimScratch::new();
    let mut worst_seen = 0.0f32;
    for &dim in &DIMS {
        for &nq in &NQS {
            let q = random_tokens(&mut rng, nq, dim);
            for &nd in &NDS {
                let d = related_doc(&mut rng, &q, nq, nd, dim);
                let (data, scales) = quantize_i8(&d, dim);
                let doc = TokensRef::I8 {
                    data: &data,
                    scales: &scales,
                };
                let want = interact_reference(&q, nq, doc, dim);
                let exact = interact_reference(&q, nq, TokensRef::F32(&d), dim);
                let bound = i8_pair_bound(&q, &d, dim) + 1e-5;
                check_close(
                    "i8 vs f32 exact",
                    Kernel::Portable,
                    &want,
                    &exact,
                    bound,
                    seed,
                );
                worst_seen = worst_seen.max((want.filip_q2d() - exact.filip_q2d()).abs());
                for k in Kernel::available() {
                    let got = interact_with(k, &q, nq, doc, dim, &mut scratch);
                    // Same quantized values; only the f32 scale products differ.
                    check_close("i8", k, &got, &want, 1e-5, seed);
                }
            }
        }
    }
    eprintln!("worst observed |filip_q2d(i8) - filip_q2d(f32)| = {worst_seen}");
}

#[test]
fn scratch_cache_invalidates_on_new_query() {
    let seed = 0x5eed_cace_u64;
    let mut rng = Rng(seed);
    let dim = 33;
    let d = random_tokens(&mut rng, 20, dim);
    let (data, scales) = quantize_i8(&d, dim);
    let h: Vec<u16> = d.iter().map(|&v| f32_to_f16_bits(v)).collect();
    let mut scratch = MaxSimScratch::new();
    for k in Kernel::available() {
        for nq in [5usize, 17, 5, 40] {
            let mut q = random_tokens(&mut rng, nq, dim);
            for round in 0..2 {
                if round == 1 {
                    q[0] = -q[0]; // same shape, different content
                }
                for doc in [
                    TokensRef::F32(&d),
                    TokensRef::F16(&h),
                    TokensRef::I8 {
                        data: &data,
                        scales: &scales,
                    },
                ] {
                    let got = interact_with(k, &q, nq, doc, dim, &mut scratch);
                    let fresh = interact_with(k, &q, nq, doc, dim, &mut MaxSimScratch::new());
                    assert_eq!(
                        got, fresh,
                        "kernel={k:?} nq={nq} round={round} seed={seed:#x}"
                    );
                    let want = interact_reference(&q, nq, doc, dim);
                    check_close("cache", k, &got, &want, 1e-5, seed);
                }
            }
        }
    }
}

#[test]
fn interact_uses_detected_kernel_and_handles_empty() {
    let mut rng = Rng(7);
    let dim = 16;
    let q = random_tokens(&mut rng, 4, dim);
    let d = random_tokens(&mut rng, 9, dim);
    let mut s = MaxSimScratch::new();
    let a = interact(&q, 4, TokensRef::F32(&d), dim, &mut s);
    let b = interact_with(Kernel::detect(), &q, 4, TokensRef::F32(&d), dim, &mut s);
    assert_eq!(a, b);
    let e = interact(&q, 4, TokensRef::F32(&[]), dim, &mut s);
    assert_eq!((e.q_max_sum, e.d_max_sum, e.nq, e.nd), (0.0, 0.0, 4, 0));
    assert_eq!(e.filip_d2q(), 0.0);
    let e = interact(&[], 0, TokensRef::F32(&d), dim, &mut s);
    assert_eq!((e.nq, e.nd, e.filip_q2d()), (0, 9, 0.0));
    assert_eq!(TokensRef::F32(&d).len_tokens(dim), 9);
    assert_eq!(TokensRef::F16(&[0u16; 32]).len_tokens(dim), 2);
}

#[test]
#[should_panic(expected = "one scale per token")]
fn i8_scale_count_checked() {
    let q = vec![0.0f32; 4];
    let data = vec![0i8; 8];
    interact(
        &q,
        1,
        TokensRef::I8 {
            data: &data,
            scales: &[1.0],
        },
        4,
        &mut MaxSimScratch::new(),
    );
}

#[test]
fn explain_matches_reference() {
    let seed = 0x5eed_e7a1_u64;
    let mut rng = Rng(seed);
    let (nq, nd, dim) = (6, 11, 33);
    let q = random_tokens(&mut rng, nq, dim);
    let d = related_doc(&mut rng, &q, nq, nd, dim);
    let ex = explain(&q, nq, TokensRef::F32(&d), dim);
    assert_eq!(ex.len(), nq);
    let r = interact_reference(&q, nq, TokensRef::F32(&d), dim);
    let sum: f32 = ex.iter().map(|e| e.1).sum();
    assert!((sum - r.q_max_sum).abs() < 1e-5, "seed={seed:#x}");
    for (i, &(j, s)) in ex.iter().enumerate() {
        assert!(j < nd);
        let dot: f32 = q[i * dim..(i + 1) * dim]
            .iter()
            .zip(&d[j * dim..(j + 1) * dim])
            .map(|(a, b)| a * b)
            .sum();
        assert!((dot - s).abs() < 1e-5, "row {i} seed={seed:#x}");
    }
}

#[test]
fn half_roundtrip_and_specials() {
    for h in 0..=u16::MAX {
        let f = f16_bits_to_f32(h);
        if f.is_nan() {
            assert!(f32_to_f16_bits(f) & 0x7c00 == 0x7c00 && f32_to_f16_bits(f) & 0x3ff != 0);
        } else {
            assert_eq!(f32_to_f16_bits(f), h, "h={h:#06x} f={f:e}");
        }
    }
    assert_eq!(f32_to_f16_bits(1.0), 0x3c00);
    assert_eq!(f32_to_f16_bits(-2.0), 0xc000);
    assert_eq!(f32_to_f16_bits(65504.0), 0x7bff);
    assert_eq!(f32_to_f16_bits(65520.0), 0x7c00); // rounds up to inf
    assert_eq!(f32_to_f16_bits(65519.99), 0x7bff);
    assert_eq!(f32_to_f16_bits(f32::INFINITY), 0x7c00);
    assert_eq!(f32_to_f16_bits(f32::NEG_INFINITY), 0xfc00);
    assert_eq!(f32_to_f16_bits(2f32.powi(-24)), 0x0001);
    assert_eq!(f32_to_f16_bits(2f32.powi(-25)), 0x0000); // tie to even
    assert_eq!(f32_to_f16_bits(1.5 * 2f32.powi(-25)), 0x0001);
    assert_eq!(f32_to_f16_bits(-0.0), 0x8000);
    assert_eq!(f32_to_f16_bits(1.0 + 2f32.powi(-11)), 0x3c00); // tie to even
    assert_eq!(f32_to_f16_bits(1.0 + 3.0 * 2f32.powi(-11)), 0x3c02);
    assert_eq!(f16_bits_to_f32(0x0001), 2f32.powi(-24));
    assert_eq!(f16_bits_to_f32(0x3555), 0.333_251_95);
}

#[cfg(target_arch = "x86_64")]
#[test]
fn half_matches_f16c_hardware() {
    if !Kernel::Avx2.is_supported() {
        eprintln!("no F16C: skipped");
        return;
    }
    for h in 0..=u16::MAX {
        let hw = crate::sys::simd::hw_f16_to_f32(h);
        assert_eq!(f16_bits_to_f32(h).to_bits(), hw.to_bits(), "h={h:#06x}");
    }
    let seed = 0x5eed_f16c_u64;
    let mut rng = Rng(seed);
    for i in 0..2_000_000u32 {
        // Mix of fully random bit patterns and values near the half range.
        let bits = if i % 2 == 0 {
            rng.next_u64() as u32
        } else {
            let e = 100 + (rng.next_u64() % 50) as u32;
            ((rng.next_u64() as u32) & 0x8000_0000)
                | (e << 23)
                | ((rng.next_u64() as u32) & 0x7f_ffff)
        };
        let x = f32::from_bits(bits);
        assert_eq!(
            f32_to_f16_bits(x),
            crate::sys::simd::hw_f32_to_f16(x),
            "x bits={bits:#010x} seed={seed:#x}"
        );
    }
}

#[test]
fn bulk_f32_to_f16_matches_the_scalar_conversion() {
    let mut rng = Rng(0xb01c);
    for n in [0usize, 1, 7, 8, 9, 64, 1001] {
        let src: Vec<f32> = (0..n)
            .map(|i| match i % 5 {
                0 => f32::from_bits(rng.next_u64() as u32),
                1 => f32::NAN,
                2 => 65520.0,
                3 => 1e-7,
                _ => (rng.next_u64() % 1000) as f32 / 999.0 - 0.5,
            })
            .collect();
        let mut bulk = vec![0u16; n];
        crate::score::f32s_to_f16_bits(&src, &mut bulk);
        let scalar: Vec<u16> = src.iter().map(|&x| f32_to_f16_bits(x)).collect();
        assert_eq!(bulk, scalar, "n {n}");
    }
}

#[test]
fn quantize_i8_basics() {
    let (q, s) = quantize_i8(&[0.5, -1.0, 0.25, 0.0, 0.0, 0.0, 0.0, 0.0], 4);
    assert_eq!(&q[..4], &[64, -127, 32, 0]); // 63.5 rounds away from zero
    assert!((s[0] - 1.0 / 127.0).abs() < 1e-9);
    assert_eq!(&q[4..], &[0, 0, 0, 0]);
    assert_eq!(s[1], 0.0);
}

// ------------------------------------------------------------------ pooling

/// Naive O(n³) greedy average-linkage clustering, for cross-checking.
fn naive_groups(tokens: &[f32], n: usize, dim: usize, k: usize) -> Vec<Vec<usize>> {
    let mut clusters: Vec<Vec<usize>> = (0..n).map(|i| vec![i]).collect();
    let x: Vec<f64> = tokens.iter().map(|&v| f64::from(v)).collect();
    let cos = |i: usize, j: usize| -> f64 {
        let (a, b) = (&x[i * dim..(i + 1) * dim], &x[j * dim..(j + 1) * dim]);
        let d: f64 = a.iter().zip(b).map(|(p, q)| p * q).sum();
        let na: f64 = a.iter().map(|p| p * p).sum::<f64>().sqrt();
        let nb: f64 = b.iter().map(|p| p * p).sum::<f64>().sqrt();
        d / (na * nb)
    };
    while clusters.len() > k {
        let mut best = (f64::NEG_INFINITY, 0, 0);
        for a in 0..clusters.len() {
            for b in a + 1..clusters.len() {
                let mut s = 0.0;
                for &i in &clusters[a] {
                    for &j in &clusters[b] {
                        s += cos(i, j);
                    }
                }
                s /= (clusters[a].len() * clusters[b].len()) as f64;
                if s > best.0 {
                    best = (s, a, b);
                }
            }
        }
        let moved = clusters.remove(best.2);
        clusters[best.1].extend(moved);
    }
    for c in &mut clusters {
        c.sort_unstable();
    }
    clusters.sort();
    clusters
}

#[test]
fn pool_matches_naive_greedy_average_linkage() {
    let seed = 0x5eed_9001_u64;
    let mut rng = Rng(seed);
    for (n, dim) in [(12, 8), (40, 16), (64, 32)] {
        // Correlated tokens so that clusters are meaningful.
        let base = random_tokens(&mut rng, 5, dim);
        let mut t = vec![0.0f32; n * dim];
        for i in 0..n {
            let c = (rng.next_u64() % 5) as usize;
            for k in 0..dim {
                t[i * dim + k] = base[c * dim + k] + 0.6 * rng.unit();
            }
        }
        normalize(&mut t, dim);
        for factor in [1.5f32, 2.0, 3.0, 8.0] {
            let mut got = pool_groups(&t, n, dim, factor);
            let k = (n as f64 / f64::from(factor)).ceil() as usize;
            assert_eq!(got.len(), k, "n={n} factor={factor} seed={seed:#x}");
            got.sort();
            let want = naive_groups(&t, n, dim, k);
            assert_eq!(got, want, "n={n} factor={factor} seed={seed:#x}");
        }
    }
}

#[test]
fn pool_factor2_64_tokens_unit_rows_partition() {
    let seed = 0x5eed_9002_u64;
    let mut rng = Rng(seed);
    let (n, dim) = (64, 128);
    let t = random_tokens(&mut rng, n, dim);
    let (out, m) = pool_tokens(&t, n, dim, 2.0);
    assert_eq!(m, 32);
    assert_eq!(out.len(), 32 * dim);
    for r in out.chunks_exact(dim) {
        let norm: f32 = r.iter().map(|v| v * v).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5, "norm {norm} seed={seed:#x}");
    }
    let groups = pool_groups(&t, n, dim, 2.0);
    let mut all: Vec<usize> = groups.iter().flatten().copied().collect();
    all.sort_unstable();
    assert_eq!(all, (0..n).collect::<Vec<_>>());
    assert_eq!(groups, pool_groups(&t, n, dim, 2.0), "deterministic");
    // Rows are the normalised means of the groups, in group order.
    for (g, r) in groups.iter().zip(out.chunks_exact(dim)) {
        let mut mean = vec![0.0f32; dim];
        for &i in g {
            for k in 0..dim {
                mean[k] += t[i * dim + k];
            }
        }
        normalize(&mut mean, dim);
        for (a, b) in mean.iter().zip(r) {
            assert!((a - b).abs() < 1e-5);
        }
    }
}

#[test]
fn pool_identical_tokens_merge_first() {
    let seed = 0x5eed_9003_u64;
    let mut rng = Rng(seed);
    let (n, dim) = (10, 32);
    let mut t = random_tokens(&mut rng, n, dim);
    let row3 = t[3 * dim..4 * dim].to_vec();
    t[7 * dim..8 * dim].copy_from_slice(&row3);
    // n / factor = 9.0909.. -> ceil = 10? use factor so that k = n - 1 = 9.
    let groups = pool_groups(&t, n, dim, 10.0 / 9.0 + 1e-3);
    assert_eq!(groups.len(), 9);
    let pairs: Vec<&Vec<usize>> = groups.iter().filter(|g| g.len() > 1).collect();
    assert_eq!(pairs, vec![&vec![3, 7]], "seed={seed:#x}");
}

#[test]
fn pool_factor_one_or_less_is_identity() {
    let mut rng = Rng(3);
    let t = random_tokens(&mut rng, 13, 16);
    for f in [1.0f32, 0.5, 0.0, -2.0, f32::NAN] {
        let (out, m) = pool_tokens(&t, 13, 16, f);
        assert_eq!(m, 13);
        assert_eq!(out, t);
        assert_eq!(pool_groups(&t, 13, 16, f).len(), 13);
    }
    let (out, m) = pool_tokens(&[], 0, 16, 2.0);
    assert_eq!((out.len(), m), (0, 0));
    let (_, m) = pool_tokens(&t[..16], 1, 16, 4.0);
    assert_eq!(m, 1);
}

#[test]
fn pool_200_tokens_is_fast_enough() {
    let mut rng = Rng(0x5eed_9004);
    let (n, dim) = (200, 128);
    let t = random_tokens(&mut rng, n, dim);
    let start = std::time::Instant::now();
    let (out, m) = pool_tokens(&t, n, dim, 2.0);
    eprintln!("pool 200x128 factor 2: {:?}", start.elapsed());
    assert_eq!((m, out.len()), (100, 100 * dim));
}

#[test]
fn i8_dot_matches_the_portable_one_exactly() {
    for n in [0, 1, 15, 16, 17, 31, 32, 33, 48, 100, 384, 385, 1024] {
        let a: Vec<i8> = (0..n)
            .map(|i| ((i * 7919) % 255) as i32 - 127)
            .map(|v| v as i8)
            .collect();
        let b: Vec<i8> = (0..n)
            .map(|i| {
                if i % 3 == 0 {
                    -127
                } else {
                    ((i * 104_729) % 255) as i32 - 127
                }
            })
            .map(|v| v as i8)
            .collect();
        let exact: i32 = a
            .iter()
            .zip(&b)
            .map(|(x, y)| i32::from(*x) * i32::from(*y))
            .sum();
        assert_eq!(crate::score::dot_i8(&a, &b), exact, "n {n}");
        assert_eq!(crate::score::portable::dot_i8(&a, &b), exact, "n {n}");
        // all at the extremes: the largest sums the kernel accumulates
        let lo = vec![-127i8; n];
        assert_eq!(
            crate::score::dot_i8(&lo, &lo),
            127 * 127 * n as i32,
            "n {n}"
        );
    }
}

#[test]
fn simd_dot_matches_the_portable_one() {
    for n in [0, 1, 7, 8, 31, 32, 33, 100, 384, 385] {
        let a: Vec<f32> = (0..n)
            .map(|i| ((i * 7919) % 13) as f32 / 13.0 - 0.5)
            .collect();
        let b: Vec<f32> = (0..n)
            .map(|i| ((i * 104_729) % 17) as f32 / 17.0 - 0.5)
            .collect();
        let exact: f64 = a
            .iter()
            .zip(&b)
            .map(|(x, y)| f64::from(*x) * f64::from(*y))
            .sum();
        let fast = crate::score::dot_f32(&a, &b);
        let portable = crate::score::portable::dot_f32(&a, &b);
        assert!(
            (f64::from(fast) - exact).abs() < 1e-4,
            "n {n}: {fast} vs {exact}"
        );
        assert!(
            (f64::from(portable) - exact).abs() < 1e-4,
            "n {n}: {portable} vs {exact}"
        );
    }
}
