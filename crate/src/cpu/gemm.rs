//! Dense layers as a matrix product with a fused epilogue: `C = act(A·W + bias) (+ residual)`,
//! optionally also pooled per column (sum and max) on the fly.
//!
//! `A` is `m × k` with row stride `lda` (NHWC pixels × input channels, or an im2col row), `W` is
//! packed once at load time into panels of `NR` output channels (`k × NR` contiguous, zero-padded),
//! so the micro-kernel streams one panel with unit stride while `MR` rows of `A` are broadcast
//! from their rows. The `MR × NR` accumulators stay in registers for the whole `k` loop; bias,
//! ReLU6, the residual add, the store and the pooling are applied to them before they leave.

use super::simd::{Portable, Simd};
use super::Isa;

/// A `k × n` weight matrix packed into panels of `nr` columns (see the module comment).
#[derive(Debug, Clone)]
pub(crate) struct Packed {
    /// Rows: the reduction length (input channels × kernel taps).
    pub k: usize,
    /// Output channels that are real (the rest of the last panel is zero).
    pub n: usize,
    /// Panel width: the micro-kernel's `NR`.
    pub nr: usize,
    /// `ceil(n / nr)`.
    pub panels: usize,
    /// `panels × k × nr`.
    data: Vec<f32>,
    /// `panels × nr`, zero-padded.
    bias: Vec<f32>,
}

impl Packed {
    /// Pack `w(row, col)` (row < k, col < n) and the bias for panels of `nr` columns.
    pub fn new(k: usize, n: usize, nr: usize, bias: &[f32], w: impl Fn(usize, usize) -> f32) -> Self {
        let panels = n.div_ceil(nr);
        let mut data = vec![0f32; panels * k * nr];
        let mut padded_bias = vec![0f32; panels * nr];
        for p in 0..panels {
            for j in 0..nr {
                let col = p * nr + j;
                if col >= n {
                    continue;
                }
                padded_bias[p * nr + j] = bias[col];
                for row in 0..k {
                    data[(p * k + row) * nr + j] = w(row, col);
                }
            }
        }
        Self { k, n, nr, panels, data, bias: padded_bias }
    }

    /// Columns the pooling buffers must hold (whole panels).
    pub fn padded_n(&self) -> usize {
        self.panels * self.nr
    }
}

/// One product: where `A`, `C` and the optional epilogue operands are.
///
/// Raw pointers because the callers hand in parts of one workspace; [`gemm`] documents what
/// must hold for them.
#[derive(Clone, Copy)]
pub(crate) struct Gemm {
    /// `m × k` (the packed matrix's `k`), row stride `lda`.
    pub a: *const f32,
    /// Row stride of `A`, ≥ `k`.
    pub lda: usize,
    /// Rows.
    pub m: usize,
    /// Output, row stride `ldc`; written only when `store`.
    pub c: *mut f32,
    /// Row stride of `C` (and of `residual`).
    pub ldc: usize,
    /// Output columns to write per row: ≤ the packed matrix's padded width and ≤ `ldc`;
    /// columns past `n` receive zeros (zero weights and bias), which keeps padded channels 0.
    pub width: usize,
    /// Added after the bias (and before the activation), same layout as `C`; null for none.
    pub residual: *const f32,
    /// Apply `min(max(x, 0), 6)`.
    pub relu6: bool,
    /// Write `C`.
    pub store: bool,
    /// Column sums of the result are added here (`padded_n` values); null for none.
    pub sum: *mut f32,
    /// Column maxima of the result are folded in here (`padded_n` values); null for none.
    pub max: *mut f32,
}

/// Run one product on `isa`.
///
/// # Safety
/// `a` is readable for `m` rows of stride `lda` with `k ≤ lda`; when `store`, `c` is writable
/// for `m` rows of stride `ldc` with `width ≤ ldc`; `residual` (if not null) is readable like
/// `c`; `sum`/`max` (if not null) hold `w.padded_n()` values; `width ≤ w.padded_n()`; nothing
/// written overlaps anything read; `isa` is available on this machine.
pub(crate) unsafe fn gemm(isa: Isa, g: &Gemm, w: &Packed) {
    debug_assert!(g.width <= w.padded_n() && g.width <= g.ldc && w.k <= g.lda);
    match isa {
        Isa::Portable => run::<Portable, 4, 1>(g, w),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => avx2(g, w),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => avx512(g, w),
        #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
        Isa::Simd128 => run::<super::simd::Simd128, 4, 2>(g, w),
    }
}

/// `MR` / `NR` of each instruction set's micro-kernel: what [`Packed::new`] must use.
pub(crate) fn panel_width(isa: Isa) -> usize {
    match isa {
        Isa::Portable => 8,
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => 16,
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => 32,
        #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
        Isa::Simd128 => 8,
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn avx2(g: &Gemm, w: &Packed) {
    // 6 × 16: 12 accumulators + 2 weight vectors + 1 broadcast of the 16 ymm registers.
    run::<super::simd::Avx2, 6, 2>(g, w)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn avx512(g: &Gemm, w: &Packed) {
    // 12 × 32: 24 accumulators + 2 weight vectors + broadcasts of the 32 zmm registers.
    run::<super::simd::Avx512, 12, 2>(g, w)
}

/// Row tiles of at most `MR` rows, as even as possible (49 rows with `MR` 12 → 10,10,10,10,9
/// rather than 12,12,12,12,1); tiles are grouped so a group's rows of `A` stay in cache while
/// every panel of `W` passes over them.
#[inline(always)]
unsafe fn run<S: Simd, const MR: usize, const NV: usize>(g: &Gemm, w: &Packed) {
    debug_assert_eq!(w.nr, NV * S::LANES);
    if g.m == 0 {
        return;
    }
    let tiles = g.m.div_ceil(MR);
    let (base, extra) = (g.m / tiles, g.m % tiles);
    // ~96 rows per group: with k ≤ 1152 that is ≤ 442 KB of A, well inside L2.
    let group = (96 / MR).max(1);
    let mut t0 = 0;
    while t0 < tiles {
        let t1 = (t0 + group).min(tiles);
        for panel in 0..w.panels {
            if panel * w.nr >= g.width {
                break;
            }
            for t in t0..t1 {
                let row0 = t * base + t.min(extra);
                let rows = base + usize::from(t < extra);
                rows_dispatch::<S, MR, NV>(rows, g, w, row0, panel);
            }
        }
        t0 = t1;
    }
}

/// Calls the micro-kernel compiled for exactly `rows` rows (`1 ≤ rows ≤ MR ≤ 16`).
#[inline(always)]
unsafe fn rows_dispatch<S: Simd, const MR: usize, const NV: usize>(rows: usize, g: &Gemm, w: &Packed, row0: usize, panel: usize) {
    macro_rules! arms {
        ($($r:literal)*) => {
            match rows {
                $($r if $r <= MR => tile::<S, $r, NV>(g, w, row0, panel),)*
                _ => debug_assert!(false, "tile of {rows} rows"),
            }
        };
    }
    arms!(1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16)
}

/// The micro-kernel: `R` rows × one panel.
#[inline(always)]
unsafe fn tile<S: Simd, const R: usize, const NV: usize>(g: &Gemm, w: &Packed, row0: usize, panel: usize) {
    let lanes = S::LANES;
    let nr = NV * lanes;
    let k = w.k;
    let b = w.data.as_ptr().add(panel * k * nr);
    let bias = w.bias.as_ptr().add(panel * nr);
    let a: [*const f32; R] = std::array::from_fn(|r| g.a.add((row0 + r) * g.lda));

    let mut acc = [[S::zero(); NV]; R];
    for v in 0..NV {
        let bv = S::load(bias.add(v * lanes));
        for row in acc.iter_mut() {
            row[v] = bv;
        }
    }
    for kk in 0..k {
        let bp = b.add(kk * nr);
        let mut bv = [S::zero(); NV];
        for (v, x) in bv.iter_mut().enumerate() {
            *x = S::load(bp.add(v * lanes));
        }
        for r in 0..R {
            let av = S::splat(*a[r].add(kk));
            for v in 0..NV {
                acc[r][v] = S::mul_add(av, bv[v], acc[r][v]);
            }
        }
    }

    // Epilogue.
    let col0 = panel * nr;
    let width = g.width - col0; // > 0: `run` stops at the first panel past `width`
    let pool = !g.sum.is_null() || !g.max.is_null();
    let mut sum = [S::zero(); NV];
    let mut max = [S::splat(f32::NEG_INFINITY); NV];
    for r in 0..R {
        let row = (row0 + r) * g.ldc + col0;
        for v in 0..NV {
            let c0 = v * lanes;
            if c0 >= width {
                continue;
            }
            let n = width - c0;
            let mut x = acc[r][v];
            if !g.residual.is_null() {
                x = S::add(x, S::load_n(g.residual.add(row + c0), n));
            }
            if g.relu6 {
                x = S::relu6(x);
            }
            if g.store {
                S::store_n(g.c.add(row + c0), x, n);
            }
            if pool {
                sum[v] = S::add(sum[v], x);
                max[v] = S::max(max[v], x);
            }
        }
    }
    if !g.sum.is_null() {
        for (v, s) in sum.iter().enumerate() {
            let p = g.sum.add(col0 + v * lanes);
            S::store(p, S::add(S::load(p), *s));
        }
    }
    if !g.max.is_null() {
        for (v, m) in max.iter().enumerate() {
            let p = g.max.add(col0 + v * lanes);
            S::store(p, S::max(S::load(p), *m));
        }
    }
}

/// The `k·k·cin` input values under each output pixel of one output row of a dense `k × k`
/// convolution (TF "SAME" padding as zeros), in the order `(channel, ky, kx)` — OIHW's order, so
/// the weights pack without reordering. `input` is one image, channels first (`cin × h × w`).
///
/// Only the stem uses this (3 input channels, so the row is tiny: 112 × 27 values at 224²).
#[allow(clippy::too_many_arguments)]
pub(crate) fn im2col_row(input: &[f32], cin: usize, h: usize, w: usize, k: usize, stride: usize, pad: (usize, usize), oy: usize, wo: usize, out: &mut [f32]) {
    let kk = cin * k * k;
    for ox in 0..wo {
        let dst = &mut out[ox * kk..(ox + 1) * kk];
        for c in 0..cin {
            let plane = &input[c * h * w..(c + 1) * h * w];
            for ky in 0..k {
                let iy = (oy * stride + ky).wrapping_sub(pad.0);
                for kx in 0..k {
                    let ix = (ox * stride + kx).wrapping_sub(pad.1);
                    // Negative positions wrapped to huge values: both bounds in one compare.
                    dst[(c * k + ky) * k + kx] = if iy < h && ix < w { plane[iy * w + ix] } else { 0.0 };
                }
            }
        }
    }
}
