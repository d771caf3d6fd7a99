//! The vector vocabulary the kernels are written in, one implementation per instruction set.
//!
//! Kernels are generic over [`Simd`] and `#[inline(always)]`; each instruction set has an entry
//! point with `#[target_feature]` (x86_64, chosen at run time) or relies on the build's static
//! features (wasm32 `+simd128`), so the whole kernel — these methods included — is compiled for
//! that instruction set. This is the pattern `pulp` and `macerator` use; the speed of the
//! result is checked by `headtune bench`, not assumed.

/// One instruction set's `f32` vector and the operations the kernels need.
///
/// Every method is `unsafe`: pointers must be valid for the lanes read or written, and the
/// implementation may only run where its instruction set is available.
pub(crate) trait Simd: Copy {
    /// The vector register type.
    type V: Copy;
    /// `f32` lanes per vector.
    const LANES: usize;

    /// All lanes 0.
    unsafe fn zero() -> Self::V;
    /// All lanes `x`.
    unsafe fn splat(x: f32) -> Self::V;
    /// `LANES` values from `p` (unaligned).
    unsafe fn load(p: *const f32) -> Self::V;
    /// `LANES` values to `p` (unaligned).
    unsafe fn store(p: *mut f32, v: Self::V);
    /// The first `n < LANES` values from `p`, the other lanes 0; nothing past `p + n` is read.
    unsafe fn load_part(p: *const f32, n: usize) -> Self::V;
    /// The first `n < LANES` lanes to `p`; nothing past `p + n` is written.
    unsafe fn store_part(p: *mut f32, v: Self::V, n: usize);
    /// `a · b + c` (fused where the instruction set has it).
    unsafe fn mul_add(a: Self::V, b: Self::V, c: Self::V) -> Self::V;
    /// `a + b`.
    unsafe fn add(a: Self::V, b: Self::V) -> Self::V;
    /// Lane-wise maximum.
    unsafe fn max(a: Self::V, b: Self::V) -> Self::V;
    /// Lane-wise minimum.
    unsafe fn min(a: Self::V, b: Self::V) -> Self::V;

    /// `n ≤ LANES` values: a full load when `n == LANES`.
    #[inline(always)]
    unsafe fn load_n(p: *const f32, n: usize) -> Self::V {
        if n >= Self::LANES {
            Self::load(p)
        } else {
            Self::load_part(p, n)
        }
    }

    /// `n ≤ LANES` values: a full store when `n == LANES`.
    #[inline(always)]
    unsafe fn store_n(p: *mut f32, v: Self::V, n: usize) {
        if n >= Self::LANES {
            Self::store(p, v)
        } else {
            Self::store_part(p, v, n)
        }
    }

    /// `min(max(v, 0), 6)`.
    #[inline(always)]
    unsafe fn relu6(v: Self::V) -> Self::V {
        Self::min(Self::max(v, Self::zero()), Self::splat(6.0))
    }
}

/// Plain Rust on `[f32; 8]`: the fallback where no vector instruction set is known (LLVM
/// vectorises these loops for whatever the target has). Also what the tests compare the
/// hand-vectorised paths against.
#[derive(Clone, Copy)]
pub(crate) struct Portable;

impl Simd for Portable {
    type V = [f32; 8];
    const LANES: usize = 8;

    #[inline(always)]
    unsafe fn zero() -> Self::V {
        [0.0; 8]
    }
    #[inline(always)]
    unsafe fn splat(x: f32) -> Self::V {
        [x; 8]
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self::V {
        p.cast::<[f32; 8]>().read_unaligned()
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: Self::V) {
        p.cast::<[f32; 8]>().write_unaligned(v)
    }
    #[inline(always)]
    unsafe fn load_part(p: *const f32, n: usize) -> Self::V {
        let mut v = [0.0; 8];
        for (i, x) in v.iter_mut().enumerate().take(n) {
            *x = *p.add(i);
        }
        v
    }
    #[inline(always)]
    unsafe fn store_part(p: *mut f32, v: Self::V, n: usize) {
        for (i, x) in v.iter().enumerate().take(n) {
            *p.add(i) = *x;
        }
    }
    #[inline(always)]
    unsafe fn mul_add(a: Self::V, b: Self::V, c: Self::V) -> Self::V {
        std::array::from_fn(|i| a[i] * b[i] + c[i])
    }
    #[inline(always)]
    unsafe fn add(a: Self::V, b: Self::V) -> Self::V {
        std::array::from_fn(|i| a[i] + b[i])
    }
    #[inline(always)]
    unsafe fn max(a: Self::V, b: Self::V) -> Self::V {
        std::array::from_fn(|i| a[i].max(b[i]))
    }
    #[inline(always)]
    unsafe fn min(a: Self::V, b: Self::V) -> Self::V {
        std::array::from_fn(|i| a[i].min(b[i]))
    }
}

#[cfg(target_arch = "x86_64")]
pub(crate) use x86::{Avx2, Avx512};

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::Simd;

    /// AVX2 + FMA: 8 lanes, 16 registers.
    #[derive(Clone, Copy)]
    pub(crate) struct Avx2;

    /// A lane mask selecting the first `n` of 8 lanes, for `maskload`/`maskstore`.
    #[inline(always)]
    unsafe fn mask8(n: usize) -> __m256i {
        let idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        _mm256_cmpgt_epi32(_mm256_set1_epi32(n as i32), idx)
    }

    impl Simd for Avx2 {
        type V = __m256;
        const LANES: usize = 8;

        #[inline(always)]
        unsafe fn zero() -> Self::V {
            _mm256_setzero_ps()
        }
        #[inline(always)]
        unsafe fn splat(x: f32) -> Self::V {
            _mm256_set1_ps(x)
        }
        #[inline(always)]
        unsafe fn load(p: *const f32) -> Self::V {
            _mm256_loadu_ps(p)
        }
        #[inline(always)]
        unsafe fn store(p: *mut f32, v: Self::V) {
            _mm256_storeu_ps(p, v)
        }
        #[inline(always)]
        unsafe fn load_part(p: *const f32, n: usize) -> Self::V {
            _mm256_maskload_ps(p, mask8(n))
        }
        #[inline(always)]
        unsafe fn store_part(p: *mut f32, v: Self::V, n: usize) {
            _mm256_maskstore_ps(p, mask8(n), v)
        }
        #[inline(always)]
        unsafe fn mul_add(a: Self::V, b: Self::V, c: Self::V) -> Self::V {
            _mm256_fmadd_ps(a, b, c)
        }
        #[inline(always)]
        unsafe fn add(a: Self::V, b: Self::V) -> Self::V {
            _mm256_add_ps(a, b)
        }
        #[inline(always)]
        unsafe fn max(a: Self::V, b: Self::V) -> Self::V {
            _mm256_max_ps(a, b)
        }
        #[inline(always)]
        unsafe fn min(a: Self::V, b: Self::V) -> Self::V {
            _mm256_min_ps(a, b)
        }
    }

    /// AVX-512F: 16 lanes, 32 registers, masked loads and stores.
    #[derive(Clone, Copy)]
    pub(crate) struct Avx512;

    impl Simd for Avx512 {
        type V = __m512;
        const LANES: usize = 16;

        #[inline(always)]
        unsafe fn zero() -> Self::V {
            _mm512_setzero_ps()
        }
        #[inline(always)]
        unsafe fn splat(x: f32) -> Self::V {
            _mm512_set1_ps(x)
        }
        #[inline(always)]
        unsafe fn load(p: *const f32) -> Self::V {
            _mm512_loadu_ps(p)
        }
        #[inline(always)]
        unsafe fn store(p: *mut f32, v: Self::V) {
            _mm512_storeu_ps(p, v)
        }
        #[inline(always)]
        unsafe fn load_part(p: *const f32, n: usize) -> Self::V {
            _mm512_maskz_loadu_ps(((1u32 << n) - 1) as u16, p)
        }
        #[inline(always)]
        unsafe fn store_part(p: *mut f32, v: Self::V, n: usize) {
            _mm512_mask_storeu_ps(p, ((1u32 << n) - 1) as u16, v)
        }
        #[inline(always)]
        unsafe fn mul_add(a: Self::V, b: Self::V, c: Self::V) -> Self::V {
            _mm512_fmadd_ps(a, b, c)
        }
        #[inline(always)]
        unsafe fn add(a: Self::V, b: Self::V) -> Self::V {
            _mm512_add_ps(a, b)
        }
        #[inline(always)]
        unsafe fn max(a: Self::V, b: Self::V) -> Self::V {
            _mm512_max_ps(a, b)
        }
        #[inline(always)]
        unsafe fn min(a: Self::V, b: Self::V) -> Self::V {
            _mm512_min_ps(a, b)
        }
    }
}

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
pub(crate) use wasm::Simd128;

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod wasm {
    use std::arch::wasm32::*;

    use super::Simd;

    /// WebAssembly SIMD128: 4 lanes, no fused multiply-add (relaxed SIMD is not assumed).
    #[derive(Clone, Copy)]
    pub(crate) struct Simd128;

    impl Simd for Simd128 {
        type V = v128;
        const LANES: usize = 4;

        #[inline(always)]
        unsafe fn zero() -> Self::V {
            f32x4_splat(0.0)
        }
        #[inline(always)]
        unsafe fn splat(x: f32) -> Self::V {
            f32x4_splat(x)
        }
        #[inline(always)]
        unsafe fn load(p: *const f32) -> Self::V {
            v128_load(p.cast())
        }
        #[inline(always)]
        unsafe fn store(p: *mut f32, v: Self::V) {
            v128_store(p.cast(), v)
        }
        #[inline(always)]
        unsafe fn load_part(p: *const f32, n: usize) -> Self::V {
            let mut a = [0f32; 4];
            for (i, x) in a.iter_mut().enumerate().take(n) {
                *x = *p.add(i);
            }
            v128_load(a.as_ptr().cast())
        }
        #[inline(always)]
        unsafe fn store_part(p: *mut f32, v: Self::V, n: usize) {
            let mut a = [0f32; 4];
            v128_store(a.as_mut_ptr().cast(), v);
            for (i, x) in a.iter().enumerate().take(n) {
                *p.add(i) = *x;
            }
        }
        #[inline(always)]
        unsafe fn mul_add(a: Self::V, b: Self::V, c: Self::V) -> Self::V {
            // A build with `+relaxed-simd` lets the engine fuse (FMA where the CPU has it).
            #[cfg(target_feature = "relaxed-simd")]
            {
                f32x4_relaxed_madd(a, b, c)
            }
            #[cfg(not(target_feature = "relaxed-simd"))]
            {
                f32x4_add(f32x4_mul(a, b), c)
            }
        }
        #[inline(always)]
        unsafe fn add(a: Self::V, b: Self::V) -> Self::V {
            f32x4_add(a, b)
        }
        #[inline(always)]
        unsafe fn max(a: Self::V, b: Self::V) -> Self::V {
            // pmax (b < a ? a : b) compiles to one instruction; inputs are never NaN here.
            f32x4_pmax(a, b)
        }
        #[inline(always)]
        unsafe fn min(a: Self::V, b: Self::V) -> Self::V {
            f32x4_pmin(a, b)
        }
    }
}
