//! Pillow's resampling (`Image.resize` with a convolution filter), ported
//! exactly: the same kernels and supports, coefficients normalised in double
//! precision and rounded to 22-bit integers, the horizontal pass first, its
//! result rounded and clamped to 8 bits, then the vertical pass.
//!
//! Every Python image processor the importer matches (transformers,
//! torchvision on PIL images, open_clip, Immich) resizes with Pillow; with
//! this port weft's pixels are Pillow's, bit for bit in the tests (a
//! SIMD resizer with 15-bit coefficients and the passes the other way
//! round was up to 5/255 off at sharp edges).

use crate::bundle::Interpolation;

/// Pillow's `PRECISION_BITS` for 8-bit images.
const PRECISION_BITS: u32 = 32 - 8 - 2;

fn bilinear(x: f64) -> f64 {
    let x = x.abs();
    if x < 1.0 {
        1.0 - x
    } else {
        0.0
    }
}

fn bicubic(x: f64) -> f64 {
    const A: f64 = -0.5;
    let x = x.abs();
    if x < 1.0 {
        ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
    } else if x < 2.0 {
        (((x - 5.0) * x + 8.0) * x - 4.0) * A
    } else {
        0.0
    }
}

fn sinc(x: f64) -> f64 {
    if x == 0.0 {
        1.0
    } else {
        let x = x * std::f64::consts::PI;
        x.sin() / x
    }
}

fn lanczos(x: f64) -> f64 {
    if (-3.0..3.0).contains(&x) {
        sinc(x) * sinc(x / 3.0)
    } else {
        0.0
    }
}

/// A filter function and its support radius.
type Kernel = (fn(f64) -> f64, f64);

/// The filter and its support (Pillow's `filters` table).
fn kernel(interpolation: Interpolation) -> Option<Kernel> {
    match interpolation {
        Interpolation::Bilinear => Some((bilinear, 1.0)),
        Interpolation::Bicubic => Some((bicubic, 2.0)),
        Interpolation::Lanczos3 => Some((lanczos, 3.0)),
        Interpolation::Nearest => None,
    }
}

/// Integer coefficients of one axis: per output pixel, the first input
/// pixel, the tap count, and `ksize` coefficients.
struct Coeffs {
    bounds: Vec<(usize, usize)>,
    k: Vec<i32>,
    ksize: usize,
}

/// Pillow's `precompute_coeffs` + `normalize_coeffs_8bpc` (box `[0, in_size)`).
fn coeffs(in_size: usize, out_size: usize, filter: fn(f64) -> f64, support: f64) -> Coeffs {
    let scale = in_size as f64 / out_size as f64;
    let filterscale = scale.max(1.0);
    let support = support * filterscale;
    let ksize = support.ceil() as usize * 2 + 1;
    let mut bounds = Vec::with_capacity(out_size);
    let mut k = vec![0i32; out_size * ksize];
    let mut row = vec![0f64; ksize];
    for xx in 0..out_size {
        let center = (xx as f64 + 0.5) * scale;
        let ss = 1.0 / filterscale;
        // Pillow truncates toward zero here (a C cast of a double).
        let xmin = ((center - support + 0.5) as i64).max(0) as usize;
        let xmax =
            (((center + support + 0.5) as i64).min(in_size as i64) as usize).saturating_sub(xmin);
        let mut ww = 0.0;
        for (x, w) in row.iter_mut().enumerate().take(xmax) {
            *w = filter((x as f64 + xmin as f64 - center + 0.5) * ss);
            ww += *w;
        }
        for (x, w) in row.iter().enumerate().take(xmax) {
            let v = if ww != 0.0 { w / ww } else { *w };
            // ROUND_UP: half away from zero, then truncate.
            let f = v * f64::from(1u32 << PRECISION_BITS);
            k[xx * ksize + x] = if f >= 0.0 {
                (f + 0.5) as i32
            } else {
                (f - 0.5) as i32
            };
        }
        bounds.push((xmin, xmax));
    }
    Coeffs { bounds, k, ksize }
}

impl Coeffs {
    /// The coefficients of output pixels `start..start + n`, with every
    /// first input pixel moved down by `shift` (the input was cut to start there).
    fn window(&self, start: usize, n: usize, shift: usize) -> Coeffs {
        Coeffs {
            bounds: self.bounds[start..start + n]
                .iter()
                .map(|&(min, len)| (min - shift, len))
                .collect(),
            k: self.k[start * self.ksize..(start + n) * self.ksize].to_vec(),
            ksize: self.ksize,
        }
    }

    /// The input pixels that output pixels `start..start + n` read.
    fn reads(&self, start: usize, n: usize) -> (usize, usize) {
        let b = &self.bounds[start..start + n];
        let first = b.iter().map(|&(min, _)| min).min().unwrap_or(0);
        let end = b.iter().map(|&(min, len)| min + len).max().unwrap_or(first);
        (first, end)
    }
}

fn clip8(v: i32) -> u8 {
    (v >> PRECISION_BITS).clamp(0, 255) as u8
}

fn horizontal(src: &[u8], w: usize, h: usize, out_w: usize, c: &Coeffs) -> Vec<u8> {
    let mut out = vec![0u8; out_w * h * 3];
    let half = 1i32 << (PRECISION_BITS - 1);
    for y in 0..h {
        let line = &src[y * w * 3..(y + 1) * w * 3];
        let dst = &mut out[y * out_w * 3..(y + 1) * out_w * 3];
        for (xx, &(xmin, xmax)) in c.bounds.iter().enumerate() {
            let k = &c.k[xx * c.ksize..xx * c.ksize + xmax];
            let (mut s0, mut s1, mut s2) = (half, half, half);
            let px = &line[xmin * 3..(xmin + xmax) * 3];
            for (p, &kx) in px.chunks_exact(3).zip(k) {
                s0 += i32::from(p[0]) * kx;
                s1 += i32::from(p[1]) * kx;
                s2 += i32::from(p[2]) * kx;
            }
            dst[xx * 3] = clip8(s0);
            dst[xx * 3 + 1] = clip8(s1);
            dst[xx * 3 + 2] = clip8(s2);
        }
    }
    out
}

fn vertical(src: &[u8], w: usize, out_h: usize, c: &Coeffs) -> Vec<u8> {
    let mut out = vec![0u8; w * out_h * 3];
    let half = 1i32 << (PRECISION_BITS - 1);
    let stride = w * 3;
    let mut acc = vec![0i32; stride];
    for (yy, &(ymin, ymax)) in c.bounds.iter().enumerate() {
        let k = &c.k[yy * c.ksize..yy * c.ksize + ymax];
        acc.iter_mut().for_each(|a| *a = half);
        for (y, &ky) in k.iter().enumerate() {
            let line = &src[(ymin + y) * stride..(ymin + y + 1) * stride];
            for (a, &p) in acc.iter_mut().zip(line) {
                *a += i32::from(p) * ky;
            }
        }
        for (o, a) in out[yy * stride..(yy + 1) * stride].iter_mut().zip(&acc) {
            *o = clip8(*a);
        }
    }
    out
}

/// Resizes packed RGB8 `src` (`w x h`) to `out_w x out_h` as Pillow does;
/// `None` for a filter this port does not have (nearest).
pub(crate) fn resize_rgb8(
    src: &[u8],
    w: usize,
    h: usize,
    out_w: usize,
    out_h: usize,
    interpolation: Interpolation,
) -> Option<Vec<u8>> {
    let (filter, support) = kernel(interpolation)?;
    let mut data: Vec<u8>;
    let mut cur: &[u8] = src;
    if out_w != w {
        data = horizontal(cur, w, h, out_w, &coeffs(w, out_w, filter, support));
        cur = &data;
        if out_h != h {
            let v = vertical(cur, out_w, out_h, &coeffs(h, out_h, filter, support));
            return Some(v);
        }
        return Some(std::mem::take(&mut data));
    }
    if out_h != h {
        return Some(vertical(cur, w, out_h, &coeffs(h, out_h, filter, support)));
    }
    Some(src.to_vec())
}

/// The `crop` (`left, top, width, height`) of `resize_rgb8(src, w, h, out_w,
/// out_h)`, computing only the pixels inside it: the horizontal pass over
/// the input rows the crop's output rows read, for the crop's columns, then
/// the vertical pass for the crop's rows. Bit for bit the crop of the full
/// resize (every output pixel is a function of its own coefficients), as
/// Pillow's `resize(box=...)`; a centre crop of a shortest-side resize skips
/// up to 40% of the work.
pub(crate) fn resize_crop_rgb8(
    src: &[u8],
    (w, h): (usize, usize),
    (out_w, out_h): (usize, usize),
    (left, top, cw, ch): (usize, usize, usize, usize),
    interpolation: Interpolation,
) -> Option<Vec<u8>> {
    assert!(left + cw <= out_w && top + ch <= out_h && src.len() >= w * h * 3);
    let (filter, support) = kernel(interpolation)?;
    // Input rows to run through the horizontal pass, and the vertical coefficients.
    let (rows, vc) = if out_h != h {
        let c = coeffs(h, out_h, filter, support);
        let (first, end) = c.reads(top, ch);
        ((first, end), Some(c.window(top, ch, first)))
    } else {
        ((top, top + ch), None)
    };
    let band = &src[rows.0 * w * 3..rows.1 * w * 3];
    let band_h = rows.1 - rows.0;
    let mid = if out_w != w {
        let c = coeffs(w, out_w, filter, support).window(left, cw, 0);
        horizontal(band, w, band_h, cw, &c)
    } else {
        band.chunks_exact(w * 3)
            .flat_map(|r| &r[left * 3..(left + cw) * 3])
            .copied()
            .collect()
    };
    Some(match vc {
        Some(c) => vertical(&mid, cw, ch, &c),
        None => mid,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coefficients_sum_to_one() {
        for (i, o) in [(640, 224), (100, 224), (224, 224), (4000, 7)] {
            for interp in [
                Interpolation::Bilinear,
                Interpolation::Bicubic,
                Interpolation::Lanczos3,
            ] {
                let (f, s) = kernel(interp).unwrap();
                let c = coeffs(i, o, f, s);
                for (xx, (_, n)) in c.bounds.iter().enumerate() {
                    let sum: i64 = c.k[xx * c.ksize..xx * c.ksize + n]
                        .iter()
                        .map(|k| i64::from(*k))
                        .sum();
                    let one = 1i64 << PRECISION_BITS;
                    assert!(
                        (sum - one).abs() <= *n as i64,
                        "{i}->{o} {interp:?} pixel {xx}: {sum}"
                    );
                }
            }
        }
    }

    #[test]
    fn a_crop_of_the_resize_is_the_resize_cropped() {
        let mut rng = 0x2545_f491_u32;
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 17;
            rng ^= rng << 5;
            rng
        };
        for (w, h, ow, oh) in [
            (640, 427, 336, 224),
            (427, 640, 224, 336),
            (300, 300, 224, 224),
            (100, 50, 300, 150),
            (64, 64, 64, 40),
            (64, 64, 40, 64),
        ] {
            let src: Vec<u8> = (0..w * h * 3).map(|_| next() as u8).collect();
            for interp in [
                Interpolation::Bilinear,
                Interpolation::Bicubic,
                Interpolation::Lanczos3,
            ] {
                let full = resize_rgb8(&src, w, h, ow, oh, interp).unwrap();
                let (cw, ch) = (ow.min(oh), ow.min(oh));
                for (left, top) in [(0, 0), ((ow - cw) / 2, (oh - ch) / 2), (ow - cw, oh - ch)] {
                    let got = resize_crop_rgb8(&src, (w, h), (ow, oh), (left, top, cw, ch), interp)
                        .unwrap();
                    let want: Vec<u8> = full
                        .chunks_exact(ow * 3)
                        .skip(top)
                        .take(ch)
                        .flat_map(|r| &r[left * 3..(left + cw) * 3])
                        .copied()
                        .collect();
                    assert!(
                        got == want,
                        "{w}x{h} -> {ow}x{oh} crop at {left},{top} {interp:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn a_flat_image_stays_flat() {
        let src = vec![200u8; 37 * 23 * 3];
        for interp in [
            Interpolation::Bilinear,
            Interpolation::Bicubic,
            Interpolation::Lanczos3,
        ] {
            let out = resize_rgb8(&src, 37, 23, 11, 50, interp).unwrap();
            assert!(out.iter().all(|v| *v == 200), "{interp:?}");
        }
    }
}
