//! The backbones against the reference tensors computed from the original checkpoints
//! (Lite0: `tests/fixtures/*.npy`; Lite1/Lite2: `tests/fixtures/lite{1,2}/`, made by
//! `models/convert.py --reference`), and how weights files describe their architecture.

mod common;

use burn::tensor::Device;
use common::*;
use headtune::backbone::{Arch, Backbone, BackboneKind, NetWeights, BUNDLED_WEIGHTS};
use headtune::imagenet;
use headtune::preprocess::{self, Crop};

const IMAGES: [&str; 2] = ["chelsea", "coffee"];

fn reference_top5(name: &str) -> Vec<usize> {
    reference()["images"][name]["top5"]
        .as_array()
        .expect("top5")
        .iter()
        .map(|t| t["index"].as_u64().expect("index") as usize)
        .collect()
}

fn run(backbone: &Backbone, input: &[f32]) -> (Vec<f32>, Vec<f32>) {
    let mut out = pollster::block_on(backbone.imagenet(&[input])).expect("forward");
    out.remove(0)
}

#[test]
fn f32_weights_match_reference_within_1e3_and_top5() {
    let backbone = Backbone::load(&f32_weights(), Device::flex()).expect("f32 weights load");
    for name in IMAGES {
        let (pooled, logits) = run(&backbone, &npy(&format!("{name}.input.npy")));
        let reference = npy(&format!("{name}.pooled.npy"));
        assert_eq!(pooled.len(), 1280);
        let diff = max_abs_diff(&pooled, &reference);
        println!("{name}: f32 pooled max |Δ| = {diff:.2e}");
        assert!(diff < 1e-3, "{name}: pooled max |Δ| {diff} ≥ 1e-3");
        assert_eq!(imagenet::top_k_indices(&logits, 5), reference_top5(name), "{name}: top-5");
    }
}

#[test]
fn compact_weights_keep_cosine_0999_and_top1() {
    assert!(BUNDLED_WEIGHTS.len() <= 6_000_000, "compact weights are {} bytes", BUNDLED_WEIGHTS.len());
    let backbone = Backbone::bundled_cpu().expect("bundled weights load");
    for name in IMAGES {
        let (pooled, logits) = run(&backbone, &npy(&format!("{name}.input.npy")));
        let cos = cosine(&pooled, &npy(&format!("{name}.pooled.npy")));
        println!("{name}: compact cosine = {cos:.6}");
        assert!(cos >= 0.999, "{name}: cosine {cos} < 0.999");
        assert_eq!(imagenet::top_k_indices(&logits, 1)[0], reference_top5(name)[0], "{name}: top-1");
    }
}

#[test]
fn resizer_matches_reference_input() {
    for name in IMAGES {
        let bytes = std::fs::read(fixture(&format!("{name}.png"))).expect("png");
        let img = headtune::image::decode(&bytes).expect("decodes");
        let x = preprocess::preprocess_eval(&img, Crop::Center, 224).expect("preprocesses");
        let reference = npy(&format!("{name}.input.npy"));
        let max = max_abs_diff(&x, &reference);
        let mean = x.iter().zip(&reference).map(|(a, b)| (a - b).abs()).sum::<f32>() / x.len() as f32;
        println!("{name}: resizer vs Pillow: max |Δ| {max:.4}, mean |Δ| {mean:.5} (1 level = {:.4})", 1.0 / 128.0);
        // Same filter as Pillow's BICUBIC (Catmull-Rom, antialiased). Pillow rounds its
        // horizontal pass to 8 bits with its own fixed-point coefficients, so single pixels at
        // sharp edges differ by a few levels (measured max 6, coffee's saucer rim); on average
        // a fifth of a level. The embedding moves by < 1e-4 in cosine (next test).
        assert!(mean < 0.5 / 128.0, "{name}: mean |Δ| {mean}");
        assert!(max <= 8.0 / 128.0, "{name}: max |Δ| {max}");
    }
}

#[test]
fn end_to_end_from_png_predicts_cat_and_espresso() {
    let backbone = Backbone::bundled_cpu().expect("bundled weights load");
    let expect: [(&str, &[&str]); 2] =
        [("chelsea", &["tiger cat", "Egyptian cat", "tabby"]), ("coffee", &["espresso"])];
    for (name, allowed) in expect {
        let bytes = std::fs::read(fixture(&format!("{name}.png"))).expect("png");
        let x = preprocess::preprocess_eval(&headtune::image::decode(&bytes).expect("decode"), Crop::Center, 224).expect("prep");
        let (pooled, logits) = run(&backbone, &x);
        let top = imagenet::top_k(&logits, 1);
        let cos = cosine(&pooled, &npy(&format!("{name}.pooled.npy")));
        println!("{name}: top-1 {} ({:.3}), cosine to reference {cos:.5}", top[0].label, top[0].probability);
        assert!(cos >= 0.999, "{name}: end-to-end cosine {cos}");
        assert!(allowed.contains(&top[0].label.as_str()), "{name}: top-1 was {}", top[0].label);
    }
}

#[test]
fn batched_forward_equals_single() {
    let backbone = Backbone::bundled_cpu().expect("bundled weights load");
    let a = npy("chelsea.input.npy");
    let b = npy("coffee.input.npy");
    let both = pollster::block_on(backbone.embed(&[&a, &b])).expect("batch");
    let single = pollster::block_on(backbone.embed(&[&b])).expect("single");
    assert!(max_abs_diff(&both[1], &single[0]) < 1e-4);
}

#[test]
fn weights_errors_are_specific() {
    let err = Backbone::load(b"not safetensors", Device::flex()).expect_err("garbage rejected");
    assert!(err.to_string().contains("safetensors"), "{err}");
    // A valid safetensors file that is not ours.
    let tensors: Vec<(&str, safetensors::tensor::TensorView)> = vec![];
    let other = safetensors::serialize(tensors, None).expect("serialize");
    let err = Backbone::load(&other, Device::flex()).expect_err("foreign file rejected");
    assert!(err.to_string().contains("format"), "{err}");
    // Our file with a tensor cut off: truncated.
    let err = Backbone::load(&BUNDLED_WEIGHTS[..BUNDLED_WEIGHTS.len() - 100], Device::flex()).expect_err("truncated");
    assert!(err.to_string().contains("invalid"), "{err}");
}

#[test]
fn labels_are_the_1000_imagenet_classes() {
    let labels = imagenet::labels();
    assert_eq!(labels.len(), 1000);
    assert_eq!(labels[282], "tiger cat");
    assert_eq!(labels[967], "espresso");
}

/// Lite1/Lite2: the reference input (uint8 pixels), pooled embedding and top-5 of `model`.
fn lite_reference(model: &str, image: &str) -> (Vec<f32>, Vec<f32>, Vec<usize>) {
    let input = pixels_to_input(&npy_u8(&format!("{model}/{image}.pixels.npy")));
    let pooled = npy(&format!("{model}/{image}.pooled.npy"));
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fixture(&format!("{model}/reference.json"))).expect("reference.json")).expect("json");
    let top5 = json["images"][image]["top5"].as_array().expect("top5").iter().map(|t| t["index"].as_u64().expect("index") as usize).collect();
    (input, pooled, top5)
}

#[test]
fn lite1_and_lite2_f32_weights_match_reference_within_1e3_and_top5() {
    for kind in [BackboneKind::Lite1, BackboneKind::Lite2] {
        let backbone = Backbone::load(&f32_weights_of(kind.name()), Device::flex()).expect("f32 weights load");
        assert_eq!(backbone.arch(), &kind.arch());
        for image in IMAGES {
            let (input, reference, top5) = lite_reference(kind.name(), image);
            assert_eq!(input.len(), 3 * kind.arch().input_size.pow(2), "{kind}: the reference is at the model's own size");
            let (pooled, logits) = run(&backbone, &input);
            let diff = max_abs_diff(&pooled, &reference);
            println!("{kind} {image}: f32 pooled max |Δ| = {diff:.2e}");
            assert!(diff < 1e-3, "{kind} {image}: pooled max |Δ| {diff} ≥ 1e-3");
            assert_eq!(imagenet::top_k_indices(&logits, 5), top5, "{kind} {image}: top-5");
        }
    }
}

#[test]
fn lite1_and_lite2_compact_weights_keep_cosine_0999_top1_and_7_mb() {
    for kind in [BackboneKind::Lite1, BackboneKind::Lite2] {
        let bytes = kind.bundled_weights();
        assert!(bytes.len() <= 7_000_000, "{kind}: compact weights are {} bytes", bytes.len());
        let backbone = Backbone::load(bytes, Device::flex()).expect("compact weights load");
        for image in IMAGES {
            let (input, reference, top5) = lite_reference(kind.name(), image);
            let (pooled, logits) = run(&backbone, &input);
            let cos = cosine(&pooled, &reference);
            println!("{kind} {image}: compact cosine = {cos:.6}");
            assert!(cos >= 0.999, "{kind} {image}: cosine {cos} < 0.999");
            assert_eq!(imagenet::top_k_indices(&logits, 1)[0], top5[0], "{kind} {image}: top-1");
        }
    }
}

#[test]
fn resizer_matches_reference_input_at_240_and_260() {
    // The centre crop at the model's own size: side floor(S / (S + 32) · min(h, w)).
    for kind in [BackboneKind::Lite1, BackboneKind::Lite2] {
        let size = kind.arch().input_size;
        for image in IMAGES {
            let bytes = std::fs::read(fixture(&format!("{image}.png"))).expect("png");
            let x = preprocess::preprocess_eval(&headtune::image::decode(&bytes).expect("decode"), Crop::Center, size).expect("prep");
            let (reference, _, _) = lite_reference(kind.name(), image);
            let mean = x.iter().zip(&reference).map(|(a, b)| (a - b).abs()).sum::<f32>() / x.len() as f32;
            println!("{kind} {image}: resizer vs Pillow at {size}: mean |Δ| {mean:.5}");
            assert!(mean < 0.5 / 128.0, "{kind} {image}: mean |Δ| {mean}");
        }
    }
}

#[test]
fn architecture_comes_from_the_weights_metadata() {
    for kind in BackboneKind::ALL {
        let weights = NetWeights::from_safetensors(kind.bundled_weights()).expect("loads");
        assert_eq!(weights.arch, kind.arch(), "{kind}: metadata describes the known network");
        assert_eq!(weights.blocks.len(), kind.arch().blocks().len());
    }
    assert_eq!((Arch::lite1().blocks().len(), Arch::lite2().blocks().len()), (21, 21));
    // Feature-map side: every stride-2 layer halves, rounding up (TF SAME).
    assert_eq!([224, 240, 260, 320].map(|s| Arch::lite0().map_size(s)), [7, 8, 9, 10]);
}

/// The bundled Lite0 file rewritten with other metadata (same tensors).
fn lite0_with_metadata(meta: &[(&str, &str)]) -> Vec<u8> {
    let st = safetensors::SafeTensors::deserialize(BUNDLED_WEIGHTS).expect("bundled file parses");
    let tensors: Vec<(String, safetensors::tensor::TensorView)> = st.tensors();
    let meta = meta.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    safetensors::serialize(tensors, Some(meta)).expect("serialize")
}

#[test]
fn lite0_files_without_architecture_metadata_stay_valid() {
    // What the converter wrote before the architecture went into the metadata.
    let v1 = lite0_with_metadata(&[("format", "headtune-efficientnet-lite0/1")]);
    let old = Backbone::load(&v1, Device::flex()).expect("a version-1 Lite0 file loads");
    assert_eq!(old.arch(), &Arch::lite0());
    let new = Backbone::bundled_cpu().expect("bundled");
    let x = npy("chelsea.input.npy");
    assert_eq!(run(&old, &x).0, run(&new, &x).0, "same tensors, same embedding");
}

#[test]
fn architecture_metadata_is_checked() {
    let lite2 = serde_json::to_string(&Arch::lite2()).expect("json");
    let mut wrong = Arch::lite0();
    wrong.stages[3].repeats = 4;
    let cases = [
        (lite0_with_metadata(&[("format", "headtune-efficientnet-lite/2")]), "arch"),
        (lite0_with_metadata(&[("format", "headtune-efficientnet-lite/2"), ("arch", "{not json")]), "malformed"),
        // A known id with another network: refused before any tensor is read.
        (lite0_with_metadata(&[("format", "headtune-efficientnet-lite/2"), ("arch", &serde_json::to_string(&wrong).expect("json"))]), "another network"),
        // Lite2's description on Lite0's tensors: a tensor has the wrong shape.
        (lite0_with_metadata(&[("format", "headtune-efficientnet-lite/2"), ("arch", &lite2)]), "shape"),
    ];
    for (bytes, expect) in cases {
        let err = Backbone::load(&bytes, Device::flex()).expect_err("refused");
        assert!(err.to_string().contains(expect), "{err}");
    }
}

#[test]
fn batched_forward_at_any_input_size_and_taps() {
    use headtune::backbone::Taps;
    let backbone = Backbone::bundled_cpu().expect("bundled");
    for size in [224usize, 225, 288] {
        let x: Vec<f32> = (0..3 * size * size).map(|i| ((i * 7919 % 255) as f32 - 127.0) / 128.0).collect();
        let pooled = pollster::block_on(backbone.features(&[&x, &x], Taps { head_max: true, stages: true, map: false })).expect("forward");
        let p = &pooled[1];
        let max = p.head_max.as_deref().expect("head max asked for");
        assert_eq!((p.pooled.len(), max.len(), p.stages.len()), (1280, 1280, 7));
        let widths: Vec<usize> = p.stages.iter().map(|s| {
            assert_eq!(s.avg.len(), s.max.len());
            assert!(s.avg.iter().zip(&s.max).all(|(a, m)| a <= m), "average ≤ max");
            s.avg.len()
        }).collect();
        assert_eq!(widths, [16, 24, 40, 80, 112, 192, 320]);
        assert!(p.pooled.iter().zip(max).all(|(a, m)| a <= m));
        let plain = pollster::block_on(backbone.embed(&[&x])).expect("embed");
        assert!(max_abs_diff(&plain[0], &p.pooled) < 1e-4, "taps do not change the embedding");
        let (_, map) = pollster::block_on(backbone.embed_with_map(&x)).expect("map");
        let m = Arch::lite0().map_size(size);
        assert_eq!(map.len(), 1280 * m * m, "{size}: {m}×{m} map");
    }
    let err = pollster::block_on(backbone.embed(&[&[0.0; 100]])).expect_err("not a square input");
    assert!(err.to_string().contains("3×S×S"), "{err}");
}
