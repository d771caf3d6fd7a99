//! Property tests of the model/project file decoder: every valid model and project survives
//! `decode(encode(x)) == x`, and no byte string — random, or a valid file with edits and a
//! recomputed checksum — makes the decoder panic. What it accepts is safe to use: probabilities
//! are a probability vector for any embedding, augmented views can be drawn.

use headtune::head::{DenseWeights, HeadKind, HeadWeights};
use headtune::metrics;
use headtune::predict::Classifier;
use headtune::project::{Model, Project};
use headtune::store::{AugmentConfig, Store};
use headtune::train::TrainConfig;
use proptest::prelude::*;

const DIM: usize = 1280;

fn class_names() -> impl Strategy<Value = Vec<String>> {
    prop::collection::btree_set("[a-zA-Z0-9][a-zA-Z0-9 _.()-]{0,18}[a-zA-Z0-9é]", 2..6).prop_map(|s| s.into_iter().collect())
}

fn dense(d_in: usize, d_out: usize, seed: u64, scale: f32) -> DenseWeights {
    // A cheap deterministic fill: proptest varies seed and scale, not 10⁴ separate floats.
    let value = |i: usize| (((i as u64).wrapping_mul(2654435761).wrapping_add(seed) % 20001) as f32 / 10000.0 - 1.0) * scale;
    DenseWeights { d_in, d_out, weight: (0..d_in * d_out).map(value).collect(), bias: (0..d_out).map(|i| value(i + 7) * 0.1).collect() }
}

fn classifier() -> impl Strategy<Value = Classifier> {
    (class_names(), prop::option::of(1usize..9), any::<u64>(), 0.001f32..2.0).prop_map(|(classes, hidden, seed, scale)| {
        let k = classes.len();
        let head = match hidden {
            Some(h) => HeadWeights { kind: HeadKind::Mlp, hidden: Some(dense(DIM, h, seed, scale)), output: dense(h, k, seed ^ 1, scale) },
            None => HeadWeights { kind: HeadKind::Linear, hidden: None, output: dense(DIM, k, seed, scale) },
        };
        Classifier::new(headtune::features::FeatureSpec::v1(), classes, head).expect("a valid classifier")
    })
}

fn training() -> impl Strategy<Value = Option<TrainConfig>> {
    prop::option::of((1usize..500, 1e-5f64..1.0, 1usize..256, any::<u64>(), 0.0f64..0.5).prop_map(|(epochs, lr, batch, seed, split)| {
        TrainConfig { epochs, learning_rate: lr, batch_size: batch, seed, validation_split: split, ..TrainConfig::default() }
    }))
}

fn augment() -> impl Strategy<Value = AugmentConfig> {
    (0usize..33, 0.1f64..=1.0, any::<bool>(), 0.0f32..=0.5, 0.0f32..=0.5, any::<u64>()).prop_map(|(views, min_area, flip, brightness, contrast, seed)| {
        AugmentConfig { views, min_area, flip, brightness, contrast, seed }
    })
}

fn model() -> impl Strategy<Value = Model> {
    (classifier(), training(), prop::option::of(augment()), any::<bool>(), any::<u64>()).prop_map(|(classifier, training, augment, with_metrics, seed)| {
        let k = classifier.classes.len();
        let metrics = with_metrics.then(|| {
            let labels: Vec<usize> = (0..12).map(|i| (i + seed as usize) % k).collect();
            let probs: Vec<Vec<f32>> = (0..12).map(|i| classifier.probabilities(&vec![(i as f32 + (seed % 7) as f32) * 0.1; DIM])).collect();
            metrics::evaluate(&classifier.classes, &labels, &probs, 0.5)
        });
        Model { classifier, training, augment, metrics }
    })
}

fn project() -> impl Strategy<Value = Project> {
    (class_names(), prop::collection::vec((0usize..8, 1usize..4, 0.0f32..6.0), 0..6), augment(), training(), prop::option::of(model()), any::<u32>())
        .prop_map(|(classes, examples, augment, training, model, extra)| {
            let mut store = Store::new(headtune::features::FeatureSpec::v1());
            for (i, (class, views, level)) in examples.into_iter().enumerate() {
                let views = (0..views).map(|v| (0..DIM).map(|j| ((i + v + j) % 13) as f32 * level / 13.0).collect()).collect();
                store.add(&classes[class % classes.len()], &format!("image {i}.png"), views).expect("add");
            }
            Project { store, augment, training, model, extra: serde_json::json!({ "n": extra, "thumbnails": {} }) }
        })
}

/// Whatever the decoder accepts is safe to use.
fn exercise_model(m: &Model) {
    for probe in [vec![0.0f32; DIM], vec![6.0; DIM], vec![-1e6; DIM], vec![1e6; DIM], (0..DIM).map(|i| (i % 7) as f32).collect()] {
        let p = m.classifier.probabilities(&probe);
        assert!(p.iter().all(|v| v.is_finite() && (0.0..=1.0).contains(v)), "{p:?}");
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-3, "{p:?}");
        let g = m.classifier.head.logit_gradient(&probe, 0);
        assert!(g.iter().all(|v| v.is_finite()));
    }
}

fn exercise_project(p: &Project) {
    let _ = p.store.counts();
    for (w, h) in [(1, 1), (640, 480), (3, 5000)] {
        let views = p.augment.views_for(p.store.spec(), &image::RgbImage::new(w, h), 42);
        assert_eq!(views.len(), 1 + p.augment.views);
    }
    if let Some(m) = &p.model {
        exercise_model(m);
    }
}

fn recrc(mut bytes: Vec<u8>) -> Vec<u8> {
    if bytes.len() >= 4 {
        let n = bytes.len() - 4;
        let crc = crc32fast::hash(&bytes[..n]);
        bytes[n..].copy_from_slice(&crc.to_le_bytes());
    }
    bytes
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn model_round_trip(m in model()) {
        let bytes = m.to_bytes().expect("writes");
        let back = Model::from_bytes(&bytes).expect("reads what it wrote");
        prop_assert_eq!(&back, &m);
        exercise_model(&back);
    }

    #[test]
    fn project_round_trip(p in project()) {
        let bytes = p.to_bytes().expect("writes");
        let back = Project::from_bytes(&bytes).expect("reads what it wrote");
        prop_assert_eq!(&back, &p);
        exercise_project(&back);
    }

    /// Edits anywhere in a valid file, checksum recomputed so they reach the parser and the
    /// validators: an error or a usable result, never a panic.
    #[test]
    fn edited_files_never_panic(m in model(), p in project(), edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8), as_project in any::<bool>()) {
        let mut bytes = if as_project { p.to_bytes().expect("writes") } else { m.to_bytes().expect("writes") };
        for (at, value) in &edits {
            let i = at.index(bytes.len());
            bytes[i] = *value;
        }
        let bytes = recrc(bytes);
        if let Ok(m) = Model::from_bytes(&bytes) {
            exercise_model(&m);
        }
        if let Ok(p) = Project::from_bytes(&bytes) {
            exercise_project(&p);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Arbitrary bytes, with and without the magic and a valid checksum.
    #[test]
    fn arbitrary_bytes_never_panic(tail in prop::collection::vec(any::<u8>(), 0..200), magic in any::<bool>(), fix in any::<bool>()) {
        let mut bytes = if magic { b"HEADTUNE".to_vec() } else { Vec::new() };
        bytes.extend(tail);
        if fix {
            bytes = recrc(bytes);
        }
        let _ = Model::from_bytes(&bytes);
        let _ = Project::from_bytes(&bytes);
    }
}
