//! The backbone's own ImageNet classifier: labels and top-K, used to check the backbone on
//! photos (`headtune imagenet`) — a broken layer shows up as wrong predictions immediately.

use serde::Serialize;

/// The 1000 ImageNet class names in index order.
pub fn labels() -> &'static [String] {
    use std::sync::OnceLock;
    static LABELS: OnceLock<Vec<String>> = OnceLock::new();
    LABELS.get_or_init(|| {
        // The file is part of the crate: a parse failure is a build defect, caught by tests.
        serde_json::from_str(include_str!("../../models/imagenet_labels.json")).unwrap_or_default()
    })
}

/// One ranked class.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Ranked {
    /// Class index.
    pub index: usize,
    /// Class name.
    pub label: String,
    /// Softmax probability.
    pub probability: f32,
}

/// Numerically stable softmax, total: the result is always a probability vector. NaN logits
/// count as −∞ (no evidence); infinite logits share the mass (the limit of large ones); all −∞
/// gives the uniform distribution.
pub fn softmax(logits: &[f32]) -> Vec<f32> {
    let clean: Vec<f32> = logits.iter().map(|&l| if l.is_nan() { f32::NEG_INFINITY } else { l }).collect();
    let max = clean.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exps: Vec<f32> = match max {
        f32::INFINITY => clean.iter().map(|&l| if l == f32::INFINITY { 1.0 } else { 0.0 }).collect(),
        f32::NEG_INFINITY => vec![1.0; clean.len()],
        _ => clean.iter().map(|&l| (l - max).exp()).collect(),
    };
    let sum: f32 = exps.iter().sum();
    exps.into_iter().map(|e| e / sum).collect()
}

/// Indices of the `k` largest values, largest first (ties: lower index first).
pub fn top_k_indices(values: &[f32], k: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..values.len()).collect();
    idx.sort_by(|&a, &b| values[b].total_cmp(&values[a]).then(a.cmp(&b)));
    idx.truncate(k);
    idx
}

/// Top-`k` ImageNet classes for one logit vector.
pub fn top_k(logits: &[f32], k: usize) -> Vec<Ranked> {
    let probs = softmax(logits);
    let names = labels();
    top_k_indices(&probs, k)
        .into_iter()
        .map(|i| Ranked {
            index: i,
            label: names.get(i).cloned().unwrap_or_else(|| format!("class {i}")),
            probability: probs[i],
        })
        .collect()
}
