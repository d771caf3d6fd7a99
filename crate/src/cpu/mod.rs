//! The backbone's dedicated CPU inference path, natively and in wasm: the same network as the
//! burn model in [`crate::backbone`] (built from the same [`NetWeights`] and [`Arch`]), run by
//! kernels made for it.
//!
//! - Layout NHWC, one image at a time; channel counts are padded to a multiple of 8 (the
//!   padding stays exactly 0), so every vector load is whole on 4- and 8-lane machines.
//! - 1×1 convolutions are matrix products on weights packed once at load time, with bias,
//!   ReLU6, the residual add and (on request) per-channel pooling fused into the product's
//!   epilogue ([`gemm`]). The stem is the same product over an im2col of one output row.
//! - Depthwise convolutions handle TF "SAME" padding inside the kernel ([`depthwise`]).
//! - The head conv + ReLU6 + global average pool is one product that never writes its map
//!   unless the map is asked for.
//! - A [`Workspace`] holds every intermediate buffer; after the first image of a size nothing
//!   is allocated per layer.
//!
//! SAME padding is computed per layer from the actual sizes, so any [`Arch`] and any input side
//! works. Each image's result depends only on the image (not on the batch or thread it ran
//! in): the order of every sum is fixed by the network alone.

mod depthwise;
mod gemm;
mod simd;

use crate::backbone::{Arch, BlockSpec, ConvWeights, Embedding, NetWeights, StagePool, Taps};

use depthwise::{Depthwise, Shape};
use gemm::{Gemm, Packed};

/// The instruction set the kernels run with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isa {
    /// Plain Rust (what LLVM vectorises by itself): any machine.
    Portable,
    /// x86-64 AVX2 + FMA (8 lanes).
    #[cfg(target_arch = "x86_64")]
    Avx2,
    /// x86-64 AVX-512F (16 lanes).
    #[cfg(target_arch = "x86_64")]
    Avx512,
    /// WebAssembly SIMD128 (4 lanes; the wasm build is compiled with `+simd128`).
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    Simd128,
}

impl Isa {
    /// The fastest instruction set this machine has.
    pub fn detect() -> Self {
        Self::available().last().copied().unwrap_or(Self::Portable)
    }

    /// Every instruction set this machine can run, slowest first (tests compare them).
    pub fn available() -> Vec<Self> {
        #[allow(unused_mut)]
        let mut out = vec![Self::Portable];
        #[cfg(target_arch = "x86_64")]
        {
            if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
                out.push(Self::Avx2);
            }
            if is_x86_feature_detected!("avx512f") {
                out.push(Self::Avx512);
            }
        }
        #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
        out.push(Self::Simd128);
        out
    }

    /// Short name for reports (`avx512`, `avx2`, `simd128`, `portable`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Portable => "portable",
            #[cfg(target_arch = "x86_64")]
            Self::Avx2 => "avx2",
            #[cfg(target_arch = "x86_64")]
            Self::Avx512 => "avx512",
            #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
            Self::Simd128 => "simd128",
        }
    }
}

/// Channel stride of a tensor with `c` channels: the next multiple of 8.
fn channel_stride(c: usize) -> usize {
    c.div_ceil(8) * 8
}

/// TF "SAME" along one axis: (output length, padding before). The padding after is whatever is
/// left; the kernels never read it.
fn same(n: usize, k: usize, stride: usize) -> (usize, usize) {
    let out = n.div_ceil(stride);
    let total = ((out.max(1) - 1) * stride + k).saturating_sub(n);
    (out, total / 2)
}

/// A dense k×k convolution (the stem), run as a product over im2col rows.
#[derive(Debug, Clone)]
struct Dense {
    packed: Packed,
    cin: usize,
    k: usize,
    stride: usize,
    cs_out: usize,
}

/// One inverted-residual block, packed.
#[derive(Debug, Clone)]
struct Block {
    spec: BlockSpec,
    expand: Option<Packed>,
    depthwise: Depthwise,
    project: Packed,
    /// Whether this block ends its stage (its output is a stage tap).
    ends_stage: bool,
}

/// The network packed for one instruction set. Immutable: one `CpuNet` serves any number of
/// threads, each with its own [`Workspace`].
#[derive(Debug, Clone)]
pub struct CpuNet {
    isa: Isa,
    arch: Arch,
    stem: Dense,
    blocks: Vec<Block>,
    head: Packed,
    /// `[classes, head]`, row-major.
    fc_weight: Vec<f32>,
    fc_bias: Vec<f32>,
}

/// Every intermediate buffer of a forward pass, reused from image to image. Grows to the
/// largest input it has seen; one per thread.
#[derive(Debug, Default)]
pub struct Workspace {
    /// Block input (and the residual).
    x: Vec<f32>,
    /// Block output.
    y: Vec<f32>,
    /// Expand conv output.
    e: Vec<f32>,
    /// Depthwise output.
    d: Vec<f32>,
    /// One im2col row of the stem.
    col: Vec<f32>,
    /// Head conv output, when the map is asked for.
    map: Vec<f32>,
    /// Pooling sums and maxima.
    sum: Vec<f32>,
    max: Vec<f32>,
}

/// `v` with room for `n` values, as a pointer to them (grows, never shrinks).
fn room(v: &mut Vec<f32>, n: usize) -> *mut f32 {
    if v.len() < n {
        v.resize(n, 0.0);
    }
    v.as_mut_ptr()
}

/// Pooling buffers reset for `n` columns: sums 0, maxima −∞.
fn pool_room(sum: &mut Vec<f32>, max: &mut Vec<f32>, n: usize) -> (*mut f32, *mut f32) {
    sum.clear();
    sum.resize(n, 0.0);
    max.clear();
    max.resize(n, f32::NEG_INFINITY);
    (sum.as_mut_ptr(), max.as_mut_ptr())
}

impl CpuNet {
    /// Pack `w` for the fastest instruction set of this machine.
    pub fn new(w: &NetWeights) -> Self {
        Self::with_isa(w, Isa::detect())
    }

    /// Pack `w` for `isa`.
    ///
    /// # Panics
    /// If `isa` is not in [`Isa::available`] (running it would be undefined behaviour).
    pub fn with_isa(w: &NetWeights, isa: Isa) -> Self {
        assert!(Isa::available().contains(&isa), "instruction set {} is not available on this machine", isa.name());
        let nr = gemm::panel_width(isa);
        let pointwise = |c: &ConvWeights| Packed::new(c.cin, c.cout, nr, &c.bias, |row, col| c.weight[col * c.cin + row]);
        let stem_k = w.stem.cin * w.stem.kernel * w.stem.kernel;
        let stem = Dense {
            packed: Packed::new(stem_k, w.stem.cout, nr, &w.stem.bias, |row, col| w.stem.weight[col * stem_k + row]),
            cin: w.stem.cin,
            k: w.stem.kernel,
            stride: w.stem.stride,
            cs_out: channel_stride(w.stem.cout),
        };
        let specs = w.arch.blocks();
        let blocks = specs
            .iter()
            .zip(&w.blocks)
            .enumerate()
            .map(|(i, (spec, b))| {
                let dw = &b.depthwise;
                Block {
                    spec: *spec,
                    expand: b.expand.as_ref().map(pointwise),
                    depthwise: Depthwise::new(&dw.weight, &dw.bias, dw.cout, dw.kernel, dw.stride, channel_stride(spec.mid)),
                    project: pointwise(&b.project),
                    ends_stage: specs.get(i + 1).is_none_or(|next| next.stage != spec.stage),
                }
            })
            .collect();
        Self {
            isa,
            arch: w.arch.clone(),
            stem,
            blocks,
            head: pointwise(&w.head),
            fc_weight: w.fc_weight.clone(),
            fc_bias: w.fc_bias.clone(),
        }
    }

    /// The instruction set the weights are packed for.
    pub fn isa(&self) -> Isa {
        self.isa
    }

    /// The architecture.
    pub fn arch(&self) -> &Arch {
        &self.arch
    }

    /// One image through the network: `input` is `3 × side × side`, channels first, values
    /// `(v − 127) / 128`. Extra outputs are computed only when `taps` asks for them.
    ///
    /// # Panics
    /// If `input.len() != 3 · side²` (callers validate user input first) or `side` is 0.
    pub fn forward(&self, ws: &mut Workspace, input: &[f32], side: usize, taps: Taps) -> Embedding {
        assert!(side > 0 && input.len() == self.stem.cin * side * side, "input is not {}×{side}×{side}", self.stem.cin);
        let isa = self.isa;

        // Stem: one im2col row at a time, straight from the channels-first input.
        let st = &self.stem;
        let (ho, pad_top) = same(side, st.k, st.stride);
        let (wo, pad_left) = same(side, st.k, st.stride);
        let x = room(&mut ws.x, ho * wo * st.cs_out);
        room(&mut ws.col, wo * st.packed.k);
        for oy in 0..ho {
            gemm::im2col_row(input, st.cin, side, side, st.k, st.stride, (pad_top, pad_left), oy, wo, &mut ws.col);
            let g = Gemm {
                a: ws.col.as_ptr(),
                lda: st.packed.k,
                m: wo,
                // SAFETY (below): x has ho·wo·cs_out values; row oy starts at oy·wo·cs_out.
                c: unsafe { x.add(oy * wo * st.cs_out) },
                ldc: st.cs_out,
                width: st.cs_out,
                residual: std::ptr::null(),
                relu6: true,
                store: true,
                sum: std::ptr::null_mut(),
                max: std::ptr::null_mut(),
            };
            // SAFETY: col holds wo rows of k values (filled above); c as noted; isa checked at
            // construction; width = cs_out ≤ padded_n (nr and cs_out are multiples of 8).
            unsafe { gemm::gemm(isa, &g, &st.packed) };
        }

        let (mut h, mut w, mut cs) = (ho, wo, st.cs_out);
        let mut stages = Vec::new();
        for b in &self.blocks {
            let mid_cs = channel_stride(b.spec.mid);
            let out_cs = channel_stride(b.spec.cout);
            // Expand (1×1, ReLU6) into e, or straight on x.
            let src = match &b.expand {
                Some(e) => {
                    let dst = room(&mut ws.e, h * w * mid_cs);
                    let g = Gemm {
                        a: ws.x.as_ptr(),
                        lda: cs,
                        m: h * w,
                        c: dst,
                        ldc: mid_cs,
                        width: mid_cs,
                        residual: std::ptr::null(),
                        relu6: true,
                        store: true,
                        sum: std::ptr::null_mut(),
                        max: std::ptr::null_mut(),
                    };
                    // SAFETY: x holds h·w rows of stride cs ≥ cin; e has room for h·w·mid_cs.
                    unsafe { gemm::gemm(isa, &g, e) };
                    dst.cast_const()
                }
                None => ws.x.as_ptr(),
            };
            // Depthwise (k×k, stride, SAME, ReLU6) into d.
            let dw = &b.depthwise;
            let (ho, pad_top) = same(h, dw.k, dw.stride);
            let (wo, pad_left) = same(w, dw.k, dw.stride);
            let d = room(&mut ws.d, ho * wo * mid_cs);
            let shape = Shape { h, w, ho, wo, pad_top, pad_left };
            // SAFETY: src holds h·w·mid_cs values (e, or x when mid == cin); d has room for
            // ho·wo·mid_cs; they are different buffers.
            unsafe { depthwise::depthwise(isa, dw, &shape, src, d, true) };
            // Project (1×1, linear) into y, + x when residual, pooled when it is a tap.
            let y = room(&mut ws.y, ho * wo * out_cs);
            let tap = taps.stages && b.ends_stage;
            let (sum, max) = if tap {
                pool_room(&mut ws.sum, &mut ws.max, b.project.padded_n())
            } else {
                (std::ptr::null_mut(), std::ptr::null_mut())
            };
            let g = Gemm {
                a: d,
                lda: mid_cs,
                m: ho * wo,
                c: y,
                ldc: out_cs,
                width: out_cs,
                residual: if b.spec.residual { ws.x.as_ptr() } else { std::ptr::null() },
                relu6: false,
                store: true,
                sum,
                max,
            };
            // SAFETY: d as above; y has room for ho·wo·out_cs; a residual block keeps the size
            // and width (stride 1, cin == cout), so x has the same layout as y.
            unsafe { gemm::gemm(isa, &g, &b.project) };
            if tap {
                stages.push(pool_result(&ws.sum, &ws.max, b.spec.cout, ho * wo));
            }
            std::mem::swap(&mut ws.x, &mut ws.y);
            (h, w, cs) = (ho, wo, out_cs);
        }

        // Head (1×1, ReLU6) + global pooling; the map is stored only on request.
        let head = &self.head;
        let head_cs = channel_stride(head.n);
        let map = if taps.map { room(&mut ws.map, h * w * head_cs) } else { std::ptr::null_mut() };
        let (sum, max) = pool_room(&mut ws.sum, &mut ws.max, head.padded_n());
        let g = Gemm {
            a: ws.x.as_ptr(),
            lda: cs,
            m: h * w,
            c: map,
            ldc: head_cs,
            width: head_cs,
            residual: std::ptr::null(),
            relu6: true,
            store: taps.map,
            sum,
            max: if taps.head_max { max } else { std::ptr::null_mut() },
        };
        // SAFETY: x holds h·w rows of stride cs; map (only written when store) has room for
        // h·w·head_cs; the pooling buffers hold padded_n values.
        unsafe { gemm::gemm(isa, &g, head) };
        let pool = pool_result(&ws.sum, &ws.max, head.n, h * w);
        Embedding {
            pooled: pool.avg,
            map: taps.map.then(|| channels_first(&ws.map, h * w, head.n, head_cs)),
            map_side: h,
            stages,
            head_max: taps.head_max.then_some(pool.max),
        }
    }

    /// ImageNet logits from a pooled embedding.
    pub fn logits(&self, pooled: &[f32]) -> Vec<f32> {
        let d = self.arch.head;
        self.fc_weight
            .chunks_exact(d)
            .zip(&self.fc_bias)
            .map(|(row, b)| b + dot(row, pooled))
            .collect()
    }
}

/// Test hook, not API: one depthwise layer (`c` channels, `k × k`, `stride`, SAME padding, ReLU6;
/// `weight` `[c, 1, k, k]`, `bias` `[c]`) over an `h × w × c` NHWC `input`, computed by the
/// strip kernel and pixel by pixel: `(strips, pixelwise)`, which must be equal bit for bit.
///
/// # Panics
/// If a slice's length does not match, or `isa` is not available here.
#[doc(hidden)]
#[allow(clippy::too_many_arguments)]
pub fn depthwise_both_ways(isa: Isa, c: usize, k: usize, stride: usize, h: usize, w: usize, weight: &[f32], bias: &[f32], input: &[f32]) -> (Vec<f32>, Vec<f32>) {
    assert!(Isa::available().contains(&isa), "instruction set {} is not available", isa.name());
    assert!(weight.len() == c * k * k && bias.len() == c && input.len() == h * w * c, "slice lengths");
    let cs = channel_stride(c);
    let dw = Depthwise::new(weight, bias, c, k, stride, cs);
    let mut x = vec![0f32; h * w * cs];
    for (p, px) in input.chunks_exact(c).enumerate() {
        x[p * cs..p * cs + c].copy_from_slice(px);
    }
    let (ho, pad_top) = same(h, k, stride);
    let (wo, pad_left) = same(w, k, stride);
    let shape = Shape { h, w, ho, wo, pad_top, pad_left };
    let run = |strips| {
        let mut y = vec![f32::NAN; ho * wo * cs];
        // SAFETY: x holds h·w·cs values, y has room for ho·wo·cs, isa checked above.
        unsafe { depthwise::depthwise(isa, &dw, &shape, x.as_ptr(), y.as_mut_ptr(), strips) };
        y
    };
    (run(true), run(false))
}

/// Averages and maxima of the first `n` pooled columns over `count` pixels.
fn pool_result(sum: &[f32], max: &[f32], n: usize, count: usize) -> StagePool {
    let scale = 1.0 / count as f32;
    StagePool { avg: sum[..n].iter().map(|s| s * scale).collect(), max: max[..n].to_vec() }
}

/// NHWC (`pixels × stride`) → channels first (`n × pixels`).
fn channels_first(map: &[f32], pixels: usize, n: usize, stride: usize) -> Vec<f32> {
    let mut out = vec![0f32; n * pixels];
    for p in 0..pixels {
        for c in 0..n {
            out[c * pixels + p] = map[p * stride + c];
        }
    }
    out
}

/// Dot product with 8 independent partial sums, so LLVM can vectorise it without reassociating.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca.remainder().iter().zip(cb.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

#[cfg(test)]
mod tests {
    use super::same;

    #[test]
    fn same_padding_is_tfs_asymmetric_split() {
        // BACKBONE.md: at 224, 3×3/s2 → (0,1); 5×5/s2 → (1,2); 3×3/s1 → (1,1); 5×5/s1 → (2,2).
        assert_eq!(same(224, 3, 2), (112, 0));
        assert_eq!(same(112, 5, 2), (56, 1));
        assert_eq!(same(56, 3, 1), (56, 1));
        assert_eq!(same(14, 5, 1), (14, 2));
        // Odd sizes: 225 with 3×3/s2 needs 2 in total, 1 before.
        assert_eq!(same(225, 3, 2), (113, 1));
        assert_eq!(same(1, 5, 2), (1, 2));
    }
}
