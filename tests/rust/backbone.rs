//! The backbone against the reference tensors computed from the original checkpoint.

mod common;

use burn::tensor::Device;
use common::*;
use headtune::backbone::{Backbone, BUNDLED_WEIGHTS, EMBED_DIM};
use headtune::imagenet;
use headtune::preprocess;

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
        assert_eq!(pooled.len(), EMBED_DIM);
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
        let x = preprocess::preprocess_eval(&img).expect("preprocesses");
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
        let x = preprocess::preprocess_eval(&headtune::image::decode(&bytes).expect("decode")).expect("prep");
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
