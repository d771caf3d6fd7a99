//! Depthwise `k × k` convolution + bias + ReLU6 in NHWC, TF "SAME" padding handled inside the
//! kernel: for each output pixel only the taps that fall inside the image are visited, so no
//! padded copy of the input is ever made.
//!
//! Channels are the vector dimension (contiguous in NHWC). Away from the borders, [`STRIP`]
//! neighbouring output pixels of a row are computed together, one channel vector at a time: a
//! row of `k` weight vectors stays in registers and each input vector is loaded once for every
//! output it falls under (≈ 0.7 loads per multiply-add instead of 2, which made this kernel ~4×
//! slower per multiply-add than the matrix products). Border pixels, whose windows are clipped,
//! accumulate their valid taps one pixel at a time. Both paths add the same products in the
//! same order (bias, then taps row by row, left to right), so the result does not depend on
//! which path a pixel took, bit for bit.

use super::simd::{Portable, Simd};
use super::Isa;

/// Depthwise weights in tap-major order (`k·k × cs`, channels contiguous), zero-padded to the
/// channel stride `cs`.
#[derive(Debug, Clone)]
pub(crate) struct Depthwise {
    /// Kernel side.
    pub k: usize,
    /// Stride in both directions.
    pub stride: usize,
    /// Channel stride (real channels rounded up; see `super::channel_stride`).
    pub cs: usize,
    /// `k·k × cs`.
    weights: Vec<f32>,
    /// `cs`.
    bias: Vec<f32>,
}

impl Depthwise {
    /// From PyTorch-layout weights `[c, 1, k, k]` and the bias `[c]`.
    pub fn new(weight: &[f32], bias: &[f32], c: usize, k: usize, stride: usize, cs: usize) -> Self {
        let mut weights = vec![0f32; k * k * cs];
        let mut padded_bias = vec![0f32; cs];
        for ch in 0..c {
            padded_bias[ch] = bias[ch];
            for tap in 0..k * k {
                weights[tap * cs + ch] = weight[ch * k * k + tap];
            }
        }
        Self { k, stride, cs, weights, bias: padded_bias }
    }
}

/// Sizes of one depthwise application.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Shape {
    /// Input height and width.
    pub h: usize,
    /// Input width.
    pub w: usize,
    /// Output height.
    pub ho: usize,
    /// Output width.
    pub wo: usize,
    /// Padding before the first row / column (TF "SAME": the smaller half).
    pub pad_top: usize,
    /// Padding before the first column.
    pub pad_left: usize,
}

/// Run on `isa`: `y` (`ho × wo × cs`) from `x` (`h × w × cs`). `strips: false` computes every
/// pixel on its own (tests compare the two paths).
///
/// # Safety
/// `x` holds `h·w·cs` values, `y` has room for `ho·wo·cs`, they do not overlap, and `isa` is
/// available on this machine.
pub(crate) unsafe fn depthwise(isa: Isa, d: &Depthwise, s: &Shape, x: *const f32, y: *mut f32, strips: bool) {
    match isa {
        Isa::Portable => run::<Portable>(d, s, x, y, strips),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => avx2(d, s, x, y, strips),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => avx512(d, s, x, y, strips),
        #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
        Isa::Simd128 => run::<super::simd::Simd128>(d, s, x, y, strips),
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn avx2(d: &Depthwise, s: &Shape, x: *const f32, y: *mut f32, strips: bool) {
    run::<super::simd::Avx2>(d, s, x, y, strips)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn avx512(d: &Depthwise, s: &Shape, x: *const f32, y: *mut f32, strips: bool) {
    run::<super::simd::Avx512>(d, s, x, y, strips)
}

/// The taps of one output pixel that fall inside the input: `[k0, k1)` along one axis.
#[inline(always)]
fn taps(o: usize, stride: usize, pad: usize, k: usize, n: usize) -> (usize, usize, usize) {
    // First input index under the kernel (may be "negative", i.e. inside the padding).
    let start = (o * stride) as isize - pad as isize;
    let k0 = (-start).clamp(0, k as isize) as usize;
    let k1 = (n as isize - start).clamp(0, k as isize) as usize;
    (start.max(0) as usize, k0, k1.max(k0))
}

/// Output pixels of a row computed together by the strip kernel.
pub(crate) const STRIP: usize = 4;

#[inline(always)]
unsafe fn run<S: Simd>(d: &Depthwise, s: &Shape, x: *const f32, y: *mut f32, strips: bool) {
    match (d.k, d.stride) {
        _ if !strips => rows::<S, 1, 1>(d, s, x, y, false),
        (3, 1) => rows::<S, 3, 1>(d, s, x, y, true),
        (3, 2) => rows::<S, 3, 2>(d, s, x, y, true),
        (5, 1) => rows::<S, 5, 1>(d, s, x, y, true),
        (5, 2) => rows::<S, 5, 2>(d, s, x, y, true),
        // Other shapes (not in EfficientNet-Lite): every pixel on its own.
        _ => rows::<S, 1, 1>(d, s, x, y, false),
    }
}

/// Every output row; strips of [`STRIP`] pixels whose windows lie inside the input go to the
/// strip kernel (compiled for kernel side `K` and stride `ST`, which must equal `d`'s when
/// `strips`), the rest pixel by pixel.
#[inline(always)]
unsafe fn rows<S: Simd, const K: usize, const ST: usize>(d: &Depthwise, s: &Shape, x: *const f32, y: *mut f32, strips: bool) {
    let lanes = S::LANES;
    let cs = d.cs;
    // Output columns whose whole window is inside the input: ox·stride ≥ pad_left and
    // ox·stride − pad_left + k ≤ w.
    let first = s.pad_left.div_ceil(d.stride);
    let last_end = if s.w + s.pad_left >= d.k { (s.w + s.pad_left - d.k) / d.stride + 1 } else { 0 };
    let inner = first..last_end.min(s.wo);
    for oy in 0..s.ho {
        let (iy, ky0, ky1) = taps(oy, d.stride, s.pad_top, d.k, s.h);
        let mut ox = 0;
        while ox < s.wo {
            if strips && inner.contains(&ox) && ox + STRIP <= inner.end {
                let ix = ox * d.stride - s.pad_left;
                let mut c = 0;
                while c < cs {
                    strip::<S, K, ST>(d, s, x, (iy, ky0, ky1), ix, c, y.add((oy * s.wo + ox) * cs), lanes.min(cs - c));
                    c += lanes;
                }
                ox += STRIP;
                continue;
            }
            let (ix, kx0, kx1) = taps(ox, d.stride, s.pad_left, d.k, s.w);
            let px = Pixel { iy, ix, ky0, ky1, kx0, kx1 };
            let out = y.add((oy * s.wo + ox) * cs);
            let mut c = 0;
            while c + 4 * lanes <= cs {
                block::<S, 4>(d, s, x, &px, c, out, lanes);
                c += 4 * lanes;
            }
            while c + lanes <= cs {
                block::<S, 1>(d, s, x, &px, c, out, lanes);
                c += lanes;
            }
            if c < cs {
                block::<S, 1>(d, s, x, &px, c, out, cs - c);
            }
            ox += 1;
        }
    }
}

/// One channel vector (`n` valid lanes from channel `c`) of [`STRIP`] neighbouring output
/// pixels whose windows are whole along x, starting at input column `ix`; `rows` is the first
/// valid input row and the valid tap rows. Output pixel `p` reads input columns
/// `ix + p·ST + kx`: input column `j` of the strip serves pixel `p` with tap `kx = j − p·ST`.
#[inline(always)]
unsafe fn strip<S: Simd, const K: usize, const ST: usize>(d: &Depthwise, s: &Shape, x: *const f32, rows: (usize, usize, usize), ix: usize, c: usize, out: *mut f32, n: usize) {
    let cs = d.cs;
    let (iy, ky0, ky1) = rows;
    let bias = S::load_n(d.bias.as_ptr().add(c), n);
    let mut acc = [bias; STRIP];
    for ky in ky0..ky1 {
        let row = x.add(((iy + ky - ky0) * s.w + ix) * cs + c);
        let wrow = d.weights.as_ptr().add(ky * K * cs + c);
        let mut wv = [S::zero(); K];
        for (kx, v) in wv.iter_mut().enumerate() {
            *v = S::load_n(wrow.add(kx * cs), n);
        }
        // Columns in increasing order, so each pixel adds its taps left to right.
        for j in 0..(STRIP - 1) * ST + K {
            let xv = S::load_n(row.add(j * cs), n);
            for (p, a) in acc.iter_mut().enumerate() {
                if j >= p * ST && j - p * ST < K {
                    *a = S::mul_add(xv, wv[j - p * ST], *a);
                }
            }
        }
    }
    for (p, a) in acc.iter().enumerate() {
        S::store_n(out.add(p * cs + c), S::relu6(*a), n);
    }
}

/// Where one output pixel's valid taps are: the first valid input row/column and tap ranges.
struct Pixel {
    iy: usize,
    ix: usize,
    ky0: usize,
    ky1: usize,
    kx0: usize,
    kx1: usize,
}

/// `B` channel vectors of one output pixel, starting at channel `c`; `last` lanes of the last
/// vector are valid (`LANES` except at a channel tail).
#[inline(always)]
unsafe fn block<S: Simd, const B: usize>(d: &Depthwise, s: &Shape, x: *const f32, px: &Pixel, c: usize, out: *mut f32, last: usize) {
    let lanes = S::LANES;
    let cs = d.cs;
    let n = |j: usize| if j + 1 == B { last } else { lanes };
    let mut acc = [S::zero(); B];
    for (j, a) in acc.iter_mut().enumerate() {
        *a = S::load_n(d.bias.as_ptr().add(c + j * lanes), n(j));
    }
    for ky in px.ky0..px.ky1 {
        let row = x.add(((px.iy + ky - px.ky0) * s.w + px.ix) * cs + c);
        let wrow = d.weights.as_ptr().add(ky * d.k * cs + c);
        for kx in px.kx0..px.kx1 {
            let xp = row.add((kx - px.kx0) * cs);
            let wp = wrow.add(kx * cs);
            for (j, a) in acc.iter_mut().enumerate() {
                *a = S::mul_add(S::load_n(xp.add(j * lanes), n(j)), S::load_n(wp.add(j * lanes), n(j)), *a);
            }
        }
    }
    for (j, a) in acc.iter().enumerate() {
        S::store_n(out.add(c + j * lanes), S::relu6(*a), n(j));
    }
}
