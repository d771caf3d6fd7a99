//! The CPU kernels (`headtune::cpu`) against the reference tensors and against the burn model
//! they replace on the CPU: every instruction set this machine has, several input sizes (odd
//! ones exercise TF "SAME" padding), odd channel counts, every tap, any thread count or batch.

mod common;

use burn::tensor::Device;
use common::*;
use headtune::backbone::{
    Arch, Backbone, BlockWeights, ConvWeights, Embedding, NetWeights, Stage, Taps, BUNDLED_WEIGHTS,
};
use headtune::cpu::{CpuNet, Isa, Workspace};
use headtune::imagenet;

const IMAGES: [&str; 2] = ["chelsea", "coffee"];
const ALL_TAPS: Taps = Taps { map: true, stages: true, head_max: true };

fn reference_top5(name: &str) -> Vec<usize> {
    reference()["images"][name]["top5"]
        .as_array()
        .expect("top5")
        .iter()
        .map(|t| t["index"].as_u64().expect("index") as usize)
        .collect()
}

fn imagenet_one(b: &Backbone, input: &[f32]) -> (Vec<f32>, Vec<f32>) {
    pollster::block_on(b.imagenet(&[input])).expect("forward").remove(0)
}

fn features(b: &Backbone, inputs: &[&[f32]], taps: Taps) -> Vec<Embedding> {
    pollster::block_on(b.features(inputs, taps)).expect("forward")
}

/// Nearest-neighbour resample of a `3 × 224 × 224` input to `3 × side × side`: a real photo's
/// statistics at any size.
fn resized(input: &[f32], side: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(3 * side * side);
    for c in 0..3 {
        for y in 0..side {
            for x in 0..side {
                out.push(input[c * 224 * 224 + (y * 224 / side) * 224 + x * 224 / side]);
            }
        }
    }
    out
}

/// Everything two embeddings hold agrees within `tol` (max |Δ| relative to the largest value).
fn assert_close(what: &str, a: &Embedding, b: &Embedding, tol: f32) {
    let check = |part: &str, x: &[f32], y: &[f32]| {
        assert_eq!(x.len(), y.len(), "{what}: {part} lengths");
        let scale = y.iter().fold(1f32, |m, v| m.max(v.abs()));
        let d = max_abs_diff(x, y);
        assert!(d <= tol * scale, "{what}: {part} max |Δ| {d:.3e} > {tol:.0e} × {scale:.2}");
    };
    check("pooled", &a.pooled, &b.pooled);
    assert_eq!(a.map_side, b.map_side, "{what}: map side");
    assert_eq!(a.map.is_some(), b.map.is_some(), "{what}: map presence");
    if let (Some(x), Some(y)) = (&a.map, &b.map) {
        check("map", x, y);
    }
    assert_eq!(a.stages.len(), b.stages.len(), "{what}: stage count");
    for (i, (x, y)) in a.stages.iter().zip(&b.stages).enumerate() {
        check(&format!("stage {i} avg"), &x.avg, &y.avg);
        check(&format!("stage {i} max"), &x.max, &y.max);
    }
    assert_eq!(a.head_max.is_some(), b.head_max.is_some(), "{what}: head max presence");
    if let (Some(x), Some(y)) = (&a.head_max, &b.head_max) {
        check("head max", x, y);
    }
}

#[test]
fn every_instruction_set_matches_reference_with_f32_weights() {
    let weights = f32_weights();
    for isa in Isa::available() {
        let b = Backbone::load_cpu_with(&weights, isa).expect("loads");
        for name in IMAGES {
            let (pooled, logits) = imagenet_one(&b, &npy(&format!("{name}.input.npy")));
            let diff = max_abs_diff(&pooled, &npy(&format!("{name}.pooled.npy")));
            println!("{} {name}: pooled max |Δ| = {diff:.2e}", isa.name());
            assert!(diff < 1e-3, "{} {name}: pooled max |Δ| {diff} ≥ 1e-3", isa.name());
            assert_eq!(imagenet::top_k_indices(&logits, 5), reference_top5(name), "{} {name}: top-5", isa.name());
        }
    }
}

#[test]
fn every_instruction_set_keeps_compact_cosine_0999() {
    for isa in Isa::available() {
        let b = Backbone::load_cpu_with(BUNDLED_WEIGHTS, isa).expect("loads");
        for name in IMAGES {
            let (pooled, logits) = imagenet_one(&b, &npy(&format!("{name}.input.npy")));
            let cos = cosine(&pooled, &npy(&format!("{name}.pooled.npy")));
            println!("{} {name}: compact cosine = {cos:.6}", isa.name());
            assert!(cos >= 0.999, "{} {name}: cosine {cos}", isa.name());
            assert_eq!(imagenet::top_k_indices(&logits, 1)[0], reference_top5(name)[0], "{} {name}: top-1", isa.name());
        }
    }
}

#[test]
fn the_burn_model_still_matches_reference() {
    // The definition the kernels are held to must itself stay right.
    let b = Backbone::load_burn(&f32_weights(), Device::flex()).expect("loads");
    assert!(b.kernels().is_none() && b.model().is_some());
    for name in IMAGES {
        let (pooled, logits) = imagenet_one(&b, &npy(&format!("{name}.input.npy")));
        let diff = max_abs_diff(&pooled, &npy(&format!("{name}.pooled.npy")));
        assert!(diff < 1e-3, "burn {name}: pooled max |Δ| {diff}");
        assert_eq!(imagenet::top_k_indices(&logits, 5), reference_top5(name), "burn {name}: top-5");
    }
}

#[test]
fn kernels_equal_burn_at_several_input_sizes_with_every_tap() {
    let burn = Backbone::load_burn(BUNDLED_WEIGHTS, Device::flex()).expect("burn loads");
    let cpus: Vec<Backbone> =
        Isa::available().into_iter().map(|isa| Backbone::load_cpu_with(BUNDLED_WEIGHTS, isa).expect("loads")).collect();
    let photo = npy("chelsea.input.npy");
    for side in [224usize, 225, 240, 260, 320] {
        let x = resized(&photo, side);
        let want = features(&burn, &[&x], ALL_TAPS).remove(0);
        assert_eq!(want.map_side, side.div_ceil(32), "map side at {side}");
        assert_eq!(want.stages.len(), 7);
        for b in &cpus {
            let got = features(b, &[&x], ALL_TAPS).remove(0);
            let isa = b.kernels().expect("cpu").name();
            println!("{side}: {isa} pooled max |Δ| vs burn = {:.2e}", max_abs_diff(&got.pooled, &want.pooled));
            assert_close(&format!("{isa} at {side}"), &got, &want, 2e-5);
        }
    }
}

#[test]
fn taps_do_not_change_the_embedding_and_agree_with_each_other() {
    let b = Backbone::bundled_cpu().expect("loads");
    let x = npy("coffee.input.npy");
    let plain = features(&b, &[&x], Taps::default()).remove(0);
    let all = features(&b, &[&x], ALL_TAPS).remove(0);
    assert_eq!(plain.pooled, all.pooled, "asking for taps changed the embedding");
    assert!(plain.map.is_none() && plain.stages.is_empty() && plain.head_max.is_none());
    let map = all.map.expect("map");
    assert_eq!(map.len(), 1280 * 49);
    let head_max = all.head_max.expect("head max");
    for c in 0..1280 {
        let cell = &map[c * 49..(c + 1) * 49];
        let mean = cell.iter().sum::<f32>() / 49.0;
        let max = cell.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        assert!((mean - all.pooled[c]).abs() < 1e-4, "channel {c}: map mean {mean} vs pooled {}", all.pooled[c]);
        assert_eq!(max, head_max[c], "channel {c}: head max");
    }
    let widths: Vec<usize> = all.stages.iter().map(|s| s.avg.len()).collect();
    assert_eq!(widths, [16, 24, 40, 80, 112, 192, 320]);
    for s in &all.stages {
        assert!(s.avg.iter().zip(&s.max).all(|(a, m)| a <= m), "a stage's mean exceeds its max");
    }
    // embed_with_map is the same map.
    let (pooled, map2) = pollster::block_on(b.embed_with_map(&x)).expect("map");
    assert_eq!(pooled, all.pooled);
    assert_eq!(map2, map);
}

#[test]
fn results_do_not_depend_on_batch_or_threads() {
    let b = Backbone::bundled_cpu().expect("loads");
    let photos: Vec<Vec<f32>> = IMAGES.iter().map(|n| npy(&format!("{n}.input.npy"))).collect();
    // Four different inputs: the photos and their mirror images.
    let mut inputs = photos.clone();
    for p in &photos {
        let mut m = p.clone();
        for row in m.chunks_mut(224) {
            row.reverse();
        }
        inputs.push(m);
    }
    let refs: Vec<&[f32]> = inputs.iter().map(Vec::as_slice).collect();
    let one_by_one: Vec<Vec<f32>> = refs.iter().map(|x| pollster::block_on(b.embed(&[x])).expect("one").remove(0)).collect();
    for threads in [1, 2, 3] {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("pool");
        let batched = pool.install(|| pollster::block_on(b.embed(&refs))).expect("batch");
        assert_eq!(batched, one_by_one, "batch of 4 on {threads} threads differs from one at a time");
        // The same backbone shared by threads embedding at once.
        let shared: Vec<Vec<f32>> = pool.install(|| {
            use rayon::prelude::*;
            refs.par_iter().map(|x| pollster::block_on(b.embed(&[x])).expect("one").remove(0)).collect()
        });
        assert_eq!(shared, one_by_one, "concurrent single embeddings on {threads} threads differ");
    }
    // A workspace reused across sizes gives what a fresh one gives.
    let w = NetWeights::from_safetensors(BUNDLED_WEIGHTS).expect("weights");
    let net = CpuNet::new(&w);
    let mut ws = Workspace::default();
    let big = resized(&photos[0], 320);
    net.forward(&mut ws, &big, 320, ALL_TAPS);
    let reused = net.forward(&mut ws, &photos[1], 224, Taps::default());
    assert_eq!(reused.pooled, one_by_one[1]);
}

#[test]
fn backbone_is_shareable_between_threads() {
    fn shareable<T: Send + Sync>() {}
    shareable::<Backbone>();
}

#[test]
fn malformed_inputs_are_rejected_with_the_expected_shape() {
    let b = Backbone::bundled_cpu().expect("loads");
    let err = pollster::block_on(b.embed(&[&[0.0; 100]])).expect_err("wrong length");
    assert!(err.to_string().contains("3×S×S"), "{err}");
    let small = vec![0.0; 3 * 16 * 16];
    assert!(pollster::block_on(b.embed(&[&small])).is_err(), "side 16 is below the minimum");
    let a = vec![0.0; 3 * 224 * 224];
    let c = vec![0.0; 3 * 240 * 240];
    let err = pollster::block_on(b.embed(&[&a, &c])).expect_err("mixed sizes");
    assert!(err.to_string().contains("same size"), "{err}");
}

/// Deterministic weights in [−0.5, 0.5) for a synthetic network.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> f32 {
        self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        ((self.0 >> 40) as f32 / (1u64 << 24) as f32) - 0.5
    }

    fn conv(&mut self, cin: usize, cout: usize, kernel: usize, stride: usize, groups: usize) -> ConvWeights {
        let n = cout * (cin / groups) * kernel * kernel;
        let scale = 1.0 / ((cin / groups * kernel * kernel) as f32).sqrt();
        ConvWeights {
            weight: (0..n).map(|_| self.next() * 2.0 * scale).collect(),
            bias: (0..cout).map(|_| self.next() * 0.2).collect(),
            cin,
            cout,
            kernel,
            stride,
            groups,
        }
    }
}

#[test]
fn any_architecture_with_odd_widths_matches_burn() {
    // Widths that are not multiples of 8 (or 4), kernels 3/5/7, expand ratios 1/3/4, a
    // residual stage: what other Lite variants or future widths may bring.
    let stage = |repeats, kernel, stride, expand, cin, cout| Stage { repeats, kernel, stride, expand, cin, cout };
    let arch = Arch {
        id: "test/odd-widths".into(),
        input_size: 64,
        stem: 13,
        stages: vec![stage(1, 3, 1, 1, 13, 9), stage(2, 5, 2, 3, 9, 19), stage(2, 7, 2, 4, 19, 21), stage(1, 3, 1, 3, 21, 36)],
        head: 45,
        classes: 11,
    };
    let mut rng = Lcg(7);
    let stem = rng.conv(3, arch.stem, 3, 2, 1);
    let blocks = arch
        .blocks()
        .iter()
        .map(|b| BlockWeights {
            expand: b.has_expand.then(|| rng.conv(b.cin, b.mid, 1, 1, 1)),
            depthwise: rng.conv(b.mid, b.mid, b.kernel, b.stride, b.mid),
            project: rng.conv(b.mid, b.cout, 1, 1, 1),
        })
        .collect();
    let head = rng.conv(arch.head_in(), arch.head, 1, 1, 1);
    let fc_weight = (0..arch.classes * arch.head).map(|_| rng.next()).collect();
    let fc_bias = (0..arch.classes).map(|_| rng.next()).collect();
    let w = NetWeights { arch, stem, blocks, head, fc_weight, fc_bias };

    assert!(Backbone::from_weights(&w, Device::flex()).kernels().is_some(), "the CPU device gets the kernels");
    let reference = headtune::backbone::EfficientNetLite::from_weights(&w, &Device::flex());
    for side in [32usize, 33, 47, 64] {
        let x: Vec<f32> = (0..3 * side * side).map(|_| rng.next() * 2.0).collect();
        let t = burn::tensor::Tensor::<4>::from_data(burn::tensor::TensorData::new(x.clone(), [1, 3, side, side]), &Device::flex());
        let (feats, stages) = reference.features_with_stages(t, true);
        let want = pollster::block_on(headtune::backbone::read(feats.pooled)).expect("read");
        let want_stages: Vec<Vec<f32>> = stages
            .into_iter()
            .map(|s| {
                let [n, c, _, _] = s.dims();
                pollster::block_on(headtune::backbone::read(s.mean_dim(2).mean_dim(3).reshape([n, c]))).expect("read")
            })
            .collect();
        for isa in Isa::available() {
            let net = CpuNet::with_isa(&w, isa);
            let got = net.forward(&mut Workspace::default(), &x, side, ALL_TAPS);
            let d = max_abs_diff(&got.pooled, &want);
            assert!(d < 1e-4, "{} at {side}: pooled max |Δ| {d:.2e}", isa.name());
            assert_eq!(got.stages.len(), want_stages.len());
            for (i, (g, s)) in got.stages.iter().zip(&want_stages).enumerate() {
                let d = max_abs_diff(&g.avg, s);
                assert!(d < 1e-4, "{} at {side}: stage {i} max |Δ| {d:.2e}", isa.name());
            }
            assert_eq!(got.map_side, side.div_ceil(8), "three stride-2 layers");
        }
    }
}

#[test]
fn depthwise_strips_equal_pixel_by_pixel_bit_for_bit() {
    // The strip kernel (interior pixels, STRIP at a time) and the per-pixel path (borders) must
    // add the same products in the same order, so an embedding does not depend on which path a
    // pixel took: every kernel size and stride, widths around the strip length (no interior,
    // one strip, strips plus leftovers), channel counts with vector tails on every lane width.
    let mut rng = Lcg(11);
    let mut checked = 0;
    for isa in Isa::available() {
        for (k, stride) in [(3, 1), (3, 2), (5, 1), (5, 2), (7, 2)] {
            for (h, w) in [(1, 1), (4, 3), (5, 7), (9, 12), (14, 14), (7, 29)] {
                for c in [3, 8, 20, 40] {
                    let weight: Vec<f32> = (0..c * k * k).map(|_| rng.next()).collect();
                    let bias: Vec<f32> = (0..c).map(|_| rng.next()).collect();
                    let input: Vec<f32> = (0..h * w * c).map(|_| rng.next() * 3.0).collect();
                    let (strips, pixelwise) = headtune::cpu::depthwise_both_ways(isa, c, k, stride, h, w, &weight, &bias, &input);
                    assert_eq!(strips.len(), pixelwise.len());
                    for (i, (a, b)) in strips.iter().zip(&pixelwise).enumerate() {
                        assert!(a.is_finite(), "{} k{k} s{stride} {h}×{w}×{c}: value {i} not written", isa.name());
                        assert_eq!(a.to_bits(), b.to_bits(), "{} k{k} s{stride} {h}×{w}×{c}: value {i}: {a} vs {b}", isa.name());
                    }
                    checked += 1;
                }
            }
        }
    }
    assert!(checked >= 120, "{checked} layers compared");
}
