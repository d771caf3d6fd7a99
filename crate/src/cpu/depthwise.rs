//! Depthwise `k × k` convolution + bias + ReLU6 in NHWC, TF "SAME" padding handled inside the
//! kernel: for each output pixel only the taps that fall inside the image are visited, so no
//! padded copy of the input is ever made.
//!
//! Channels are the vector dimension (contiguous in NHWC); each output pixel accumulates its
//! taps for a block of channel vectors in registers, then applies bias and ReLU6 on the way out.

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

/// Run on `isa`: `y` (`ho × wo × cs`) from `x` (`h × w × cs`).
///
/// # Safety
/// `x` holds `h·w·cs` values, `y` has room for `ho·wo·cs`, they do not overlap, and `isa` is
/// available on this machine.
pub(crate) unsafe fn depthwise(isa: Isa, d: &Depthwise, s: &Shape, x: *const f32, y: *mut f32) {
    match isa {
        Isa::Portable => run::<Portable>(d, s, x, y),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => avx2(d, s, x, y),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => avx512(d, s, x, y),
        #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
        Isa::Simd128 => run::<super::simd::Simd128>(d, s, x, y),
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn avx2(d: &Depthwise, s: &Shape, x: *const f32, y: *mut f32) {
    run::<super::simd::Avx2>(d, s, x, y)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn avx512(d: &Depthwise, s: &Shape, x: *const f32, y: *mut f32) {
    run::<super::simd::Avx512>(d, s, x, y)
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

#[inline(always)]
unsafe fn run<S: Simd>(d: &Depthwise, s: &Shape, x: *const f32, y: *mut f32) {
    let lanes = S::LANES;
    let cs = d.cs;
    for oy in 0..s.ho {
        let (iy, ky0, ky1) = taps(oy, d.stride, s.pad_top, d.k, s.h);
        for ox in 0..s.wo {
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
        }
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
