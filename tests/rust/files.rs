//! Model and project files: round trips, and rejection of corrupt, truncated and foreign files.

use headtune::features::FeatureSpec;
use headtune::head::{DenseWeights, HeadKind, HeadWeights};
use headtune::predict::Classifier;
use headtune::project::{Model, Project};
use headtune::store::{AugmentConfig, Store};
use headtune::Error;

mod common;
use common::with_meta;

fn classifier() -> Classifier {
    let d_out = 3;
    let output = DenseWeights {
        d_in: 1280,
        d_out,
        weight: (0..1280 * d_out).map(|i| (i as f32 * 0.37).sin() * 0.01).collect(),
        bias: vec![0.1, -0.2, 0.3],
    };
    Classifier::new(FeatureSpec::v1(), vec!["normal".into(), "pneumonia".into(), "<img src=x onerror=alert(1)>".into()], HeadWeights { kind: HeadKind::Linear, hidden: None, output })
        .expect("valid classifier")
}

fn model() -> Model {
    Model { classifier: classifier(), training: None, augment: None, metrics: None }
}

fn model_error(bytes: &[u8]) -> String {
    match Model::from_bytes(bytes) {
        Err(Error::ModelFile(m)) => m,
        other => panic!("expected a ModelFile error, got {other:?}"),
    }
}

#[test]
fn model_round_trip_is_exact_and_small() {
    let bytes = model().to_bytes().expect("writes");
    assert!(bytes.len() < 40_000, "{} bytes", bytes.len());
    let back = Model::from_bytes(&bytes).expect("parses");
    assert_eq!(back, model());
    let e: Vec<f32> = (0..1280).map(|i| (i as f32).cos()).collect();
    assert_eq!(back.classifier.probabilities(&e), model().classifier.probabilities(&e));
}

#[test]
fn model_with_two_class_metrics_round_trips() {
    // JSON has no infinity: every ROC threshold must survive the metadata round trip.
    let probs = vec![vec![0.8, 0.2], vec![0.3, 0.7], vec![0.6, 0.4], vec![0.1, 0.9]];
    let metrics = headtune::metrics::evaluate(&["a".into(), "b".into()], &[0, 1, 1, 1], &probs, 0.5);
    let mut m = model();
    m.classifier = Classifier::new(FeatureSpec::v1(), vec!["a".into(), "b".into()], HeadWeights {
        kind: HeadKind::Linear,
        hidden: None,
        output: DenseWeights { d_in: 1280, d_out: 2, weight: vec![0.01; 2560], bias: vec![0.0, 0.1] },
    })
    .expect("classifier");
    m.metrics = Some(metrics);
    let back = Model::from_bytes(&m.to_bytes().expect("writes")).expect("parses");
    assert_eq!(back, m);
    let b = back.metrics.and_then(|m| m.binary).expect("binary metrics");
    assert!(b.youden_threshold <= 1.0, "Youden threshold {} is a real score", b.youden_threshold);
    assert_eq!(b.auc, 1.0, "the one negative (0.2) scores below every positive");
}

#[test]
fn every_flipped_byte_is_rejected() {
    let bytes = model().to_bytes().expect("writes");
    // Flip one bit at a spread of positions: header, metadata, weights, checksum.
    for pos in (0..bytes.len()).step_by(97).chain([0, 9, 10, bytes.len() - 1]) {
        let mut bad = bytes.clone();
        bad[pos] ^= 0x10;
        assert!(Model::from_bytes(&bad).is_err(), "flip at {pos} accepted");
    }
    let mut bad = bytes.clone();
    let mid = bytes.len() / 2;
    bad[mid] ^= 1;
    assert!(model_error(&bad).contains("checksum"), "weights flip names the checksum");
}

#[test]
fn truncated_foreign_and_newer_files_have_clear_errors() {
    let bytes = model().to_bytes().expect("writes");
    assert!(model_error(&bytes[..bytes.len() - 9]).contains("truncated"));
    assert!(model_error(&bytes[..20]).contains("truncated"));
    assert!(model_error(b"PK\x03\x04 a zip file").contains("not a headtune file"));
    assert!(model_error(&[]).contains("not a headtune file"));
    let mut newer = bytes.clone();
    newer[8] = 9;
    assert!(model_error(&newer).contains("newer"));
}

#[test]
fn project_round_trip_keeps_embeddings_model_and_extra() {
    let mut store = Store::new(FeatureSpec::v1());
    for i in 0..5 {
        let views: Vec<Vec<f32>> = (0..3).map(|v| (0..1280).map(|j| (i * 7 + v * 3 + j) as f32 * 1e-3).collect()).collect();
        store.add(if i % 2 == 0 { "a" } else { "b" }, &format!("img{i}.png"), views).expect("add");
    }
    store.remove(1).expect("remove");
    let project = Project {
        store,
        augment: AugmentConfig { views: 2, ..AugmentConfig::default() },
        training: None,
        model: Some(model()),
        extra: serde_json::json!({ "thumbnails": { "0": "data:image/png;base64,AAAA" } }),
    };
    let bytes = project.to_bytes().expect("writes");
    let back = Project::from_bytes(&bytes).expect("parses");
    assert_eq!(back, project);
    assert_eq!(back.store.counts(), vec![3, 1]);
    // New ids continue after the highest one.
    let mut s = back.store.clone();
    let id = s.add("a", "new.png", vec![vec![0.0; 1280]]).expect("add");
    assert_eq!(id, 5);
    // Kinds are not interchangeable.
    assert!(Model::from_bytes(&bytes).unwrap_err().to_string().contains("project file"));
    assert!(Project::from_bytes(&model().to_bytes().expect("writes")).unwrap_err().to_string().contains("model file"));
}

fn small_project() -> Project {
    let mut store = Store::new(FeatureSpec::v1());
    for i in 0..4 {
        store.add(["a", "b"][i % 2], &format!("{i}.png"), vec![vec![0.25 * i as f32; 1280]; 2]).expect("add");
    }
    Project { store, augment: AugmentConfig { views: 1, ..AugmentConfig::default() }, training: None, model: Some(model()), extra: serde_json::Value::Null }
}

/// Checksum-valid files with content the writer never produces are refused on load, each with
/// its reason (issue 10, items 5–7): nothing reaches training, prediction or the terminal.
#[test]
fn crafted_metadata_is_refused_on_load() {
    let m = model().to_bytes().expect("writes");
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (with_meta(&m, |v| v["classes"] = serde_json::json!(["", "b", "c"])), "class 0: class name is empty"),
        (with_meta(&m, |v| v["classes"] = serde_json::json!(["a", "a", "c"])), "appears twice"),
        (with_meta(&m, |v| v["classes"] = serde_json::json!(["\u{1b}[31mred", "b", "c"])), "control character"),
        (with_meta(&m, |v| v["classes"] = serde_json::json!([" a", "b", "c"])), "spaces around it"),
        (with_meta(&m, |v| v["classes"] = serde_json::json!(["x".repeat(101), "b", "c"])), "longer than 100"),
        (with_meta(&m, |v| v["features"]["inputSize"] = serde_json::json!(5000)), "input size is 5000"),
        (with_meta(&m, |v| v["features"]["crop"] = serde_json::json!("zoom")), "unknown variant `zoom`"),
        (with_meta(&m, |v| v["augment"] = serde_json::json!({ "minArea": 5 })), "augment minArea is 5"),
        (with_meta(&m, |v| v["training"] = serde_json::json!({ "epochs": 0 })), "epochs is 0"),
    ];
    for (bytes, expect) in cases {
        assert!(model_error(&bytes).contains(expect), "{expect}: {}", model_error(&bytes));
    }
    // A 10 MB backbone string is named, not echoed whole.
    let err = model_error(&with_meta(&m, |v| v["features"]["backbone"] = serde_json::json!("x".repeat(10 << 20))));
    assert!(err.len() < 300 && err.contains("xxx…"), "{} characters", err.len());
    // Version 0 and a non-zero reserved byte.
    let mut v0 = m.clone();
    v0[8] = 0;
    assert!(model_error(&recrc(v0)).contains("version 0"));
    let mut reserved = m.clone();
    reserved[11] = 1;
    assert!(model_error(&recrc(reserved)).contains("reserved header byte"));
    // A 65536×65536 hidden layer: refused from its shape (it wrapped to 0 on wasm32).
    let mlp = with_meta(&m, |v| {
        v["headKind"] = serde_json::json!("mlp");
        v["hidden"] = serde_json::json!({ "dIn": 65536, "dOut": 65536 });
    });
    assert!(model_error(&mlp).contains("implausible layer shape 65536×65536"));
}

fn recrc(mut bytes: Vec<u8>) -> Vec<u8> {
    let n = bytes.len() - 4;
    let crc = crc32fast::hash(&bytes[..n]);
    bytes[n..].copy_from_slice(&crc.to_le_bytes());
    bytes
}

/// Weights of 3e38 are finite, but their logits are not: refused, so `eval` cannot loop on NaN
/// and `predict` cannot print `"probability": null`.
#[test]
fn overflowing_weights_are_refused() {
    let mut c = classifier();
    c.head.output.weight.iter_mut().for_each(|w| *w = 3e38);
    let err = Classifier::new(c.spec, c.classes.clone(), c.head.clone()).unwrap_err().to_string();
    assert!(err.contains("the weights are too large: logits could reach"), "{err}");
    // Written by hand into a file (the writer cannot produce it), the reader refuses it too.
    let mut bytes = model().to_bytes().expect("writes");
    let meta_len = u32::from_le_bytes(bytes[12..16].try_into().unwrap()) as usize;
    let blob = 16 + meta_len + 8;
    for i in 0..100 {
        bytes[blob + 4 * i..blob + 4 * i + 4].copy_from_slice(&1e36f32.to_le_bytes());
    }
    assert!(model_error(&recrc(bytes)).contains("too large"));
}

#[test]
fn crafted_projects_are_refused_on_load() {
    let p = small_project().to_bytes().expect("writes");
    let project_error = |b: &[u8]| match Project::from_bytes(b) {
        Err(Error::ModelFile(m)) => m,
        other => panic!("expected a ModelFile error, got {other:?}"),
    };
    for (bytes, expect) in [
        (with_meta(&p, |v| v["augment"]["minArea"] = serde_json::json!(5)), "augment minArea is 5"),
        (with_meta(&p, |v| v["augment"]["brightness"] = serde_json::json!(1e308)), "number out of range"),
        (with_meta(&p, |v| v["augment"]["views"] = serde_json::json!(1_000_000_000)), "augment views is 1000000000"),
        (with_meta(&p, |v| v["examples"][0]["id"] = serde_json::json!(u64::MAX)), "is above"),
        (with_meta(&p, |v| v["examples"][1]["id"] = serde_json::json!(0)), "appears twice"),
        (with_meta(&p, |v| v["examples"][0]["class"] = serde_json::json!(9)), "refers to class 9"),
        (with_meta(&p, |v| v["classes"] = serde_json::json!(["a", "a"])), "appears twice"),
    ] {
        assert!(project_error(&bytes).contains(expect), "{expect}: {}", project_error(&bytes));
    }
    // NaN in the embeddings (Store::add refuses them; from_parts once did not).
    let meta_len = u32::from_le_bytes(p[12..16].try_into().unwrap()) as usize;
    let mut nan = p.clone();
    let at = 16 + meta_len + 8 + 4 * 10;
    nan[at..at + 4].copy_from_slice(&f32::NAN.to_le_bytes());
    assert!(project_error(&recrc(nan)).contains("embedding contains NaN"));
}

/// The writer refuses what the reader would refuse: a project whose app data passes the 64 MB
/// metadata limit does not save (with why), instead of saving and failing at the next load.
#[test]
fn writer_refuses_what_the_reader_refuses() {
    let mut p = small_project();
    p.extra = serde_json::json!({ "thumbnails": "A".repeat(headtune::project::MAX_META + 1) });
    let err = p.to_bytes().unwrap_err().to_string();
    assert!(err.contains("metadata would be 65 MB; files keep at most 64 MB"), "{err}");
    p.extra = serde_json::json!({ "thumbnails": "A".repeat(headtune::project::MAX_META - 100_000) });
    let bytes = p.to_bytes().expect("just under the limit saves");
    assert_eq!(Project::from_bytes(&bytes).expect("and loads").extra, p.extra);
}

#[test]
fn a_renamed_class_renames_the_model_file_and_keeps_its_predictions() {
    let e: Vec<f32> = (0..1280).map(|i| (i as f32 * 0.11).sin()).collect();
    let mut m = model();
    let before = m.classifier.top_k(&e, 3);
    assert!(m.rename_class("pneumonia", "lung infection"));
    let back = Model::from_bytes(&m.to_bytes().expect("writes")).expect("parses");
    assert_eq!(back.classifier.classes, ["normal", "lung infection", "<img src=x onerror=alert(1)>"]);
    let after = back.classifier.top_k(&e, 3);
    for (b, a) in before.iter().zip(&after) {
        assert_eq!(a.probability, b.probability);
        assert_eq!(a.label, if b.label == "pneumonia" { "lung infection" } else { b.label.as_str() });
    }
    assert!(!m.rename_class("normal", "lung infection"), "renaming onto another output is a merge: retrain");
    assert!(!m.rename_class("absent", "x"));
    assert_eq!(m.classifier.classes, back.classifier.classes, "refused renames change nothing");
}
