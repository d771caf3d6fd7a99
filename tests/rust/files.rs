//! Model and project files: round trips, and rejection of corrupt, truncated and foreign files.

use headtune::features::FeatureSpec;
use headtune::head::{DenseWeights, HeadKind, HeadWeights};
use headtune::predict::Classifier;
use headtune::project::{Model, Project};
use headtune::store::{AugmentConfig, Store};
use headtune::Error;

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
    let bytes = model().to_bytes();
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
    let back = Model::from_bytes(&m.to_bytes()).expect("parses");
    assert_eq!(back, m);
    let b = back.metrics.and_then(|m| m.binary).expect("binary metrics");
    assert!(b.youden_threshold <= 1.0, "Youden threshold {} is a real score", b.youden_threshold);
    assert_eq!(b.auc, 1.0, "the one negative (0.2) scores below every positive");
}

#[test]
fn every_flipped_byte_is_rejected() {
    let bytes = model().to_bytes();
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
    let bytes = model().to_bytes();
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
    let bytes = project.to_bytes();
    let back = Project::from_bytes(&bytes).expect("parses");
    assert_eq!(back, project);
    assert_eq!(back.store.counts(), vec![3, 1]);
    // New ids continue after the highest one.
    let mut s = back.store.clone();
    let id = s.add("a", "new.png", vec![vec![0.0; 1280]]).expect("add");
    assert_eq!(id, 5);
    // Kinds are not interchangeable.
    assert!(Model::from_bytes(&bytes).unwrap_err().to_string().contains("project file"));
    assert!(Project::from_bytes(&model().to_bytes()).unwrap_err().to_string().contains("model file"));
}
