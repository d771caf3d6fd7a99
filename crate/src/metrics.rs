//! Honest evaluation: accuracy, per-class precision/recall/F1, confusion matrix, and for two
//! classes the ROC curve, AUC and sensitivity/specificity at a threshold — plus the warnings a
//! user must see before trusting a model (too few images, imbalance, no evidence of transfer).

use serde::{Deserialize, Serialize};

/// Precision, recall and F1 of one class.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClassMetrics {
    /// Class name.
    pub name: String,
    /// Examples of this class in the evaluated set.
    pub support: usize,
    /// TP / (TP + FP); 0 when nothing was predicted as this class.
    pub precision: f64,
    /// TP / (TP + FN): the per-class accuracy (sensitivity).
    pub recall: f64,
    /// Harmonic mean of precision and recall.
    pub f1: f64,
}

/// One point of the ROC curve.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RocPoint {
    /// Probability of the positive class at or above which an example is called positive.
    pub threshold: f64,
    /// False-positive rate (1 − specificity).
    pub fpr: f64,
    /// True-positive rate (sensitivity).
    pub tpr: f64,
}

/// Two-class results; the positive class is the second one (index 1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Binary {
    /// Name of the positive class.
    pub positive: String,
    /// ROC curve from (0,0) to (1,1).
    pub roc: Vec<RocPoint>,
    /// Area under the ROC curve (ties count ½).
    pub auc: f64,
    /// Threshold used for sensitivity/specificity.
    pub threshold: f64,
    /// TP / (TP + FN) at `threshold`.
    pub sensitivity: f64,
    /// TN / (TN + FP) at `threshold`.
    pub specificity: f64,
    /// Threshold maximising Youden's J = sensitivity + specificity − 1.
    pub youden_threshold: f64,
    /// Sensitivity at the Youden threshold.
    pub youden_sensitivity: f64,
    /// Specificity at the Youden threshold.
    pub youden_specificity: f64,
}

/// Everything measured on one evaluated set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Metrics {
    /// Examples evaluated.
    pub n: usize,
    /// Fraction predicted correctly: arg-max, or for two classes "positive when its probability
    /// is at least the threshold".
    pub accuracy: f64,
    /// Accuracy of always answering the most frequent class.
    pub majority_baseline: f64,
    /// One entry per class.
    pub per_class: Vec<ClassMetrics>,
    /// `confusion[true][predicted]` counts.
    pub confusion: Vec<Vec<usize>>,
    /// Two-class extras (absent with more classes).
    pub binary: Option<Binary>,
}

/// Compute metrics from true labels and predicted probabilities (`probs[i][class]`).
/// With two classes every prediction — accuracy, confusion, per-class figures — is made at
/// `threshold` on the positive (second) class's probability; with more, by arg-max.
pub fn evaluate(classes: &[String], labels: &[usize], probs: &[Vec<f32>], threshold: f64) -> Metrics {
    let k = classes.len();
    let n = labels.len();
    let mut confusion = vec![vec![0usize; k]; k];
    for (&y, p) in labels.iter().zip(probs) {
        let predicted = if k == 2 { usize::from(p.get(1).is_some_and(|&q| f64::from(q) >= threshold)) } else { argmax(p) };
        confusion[y][predicted] += 1;
    }
    let correct: usize = (0..k).map(|c| confusion[c][c]).sum();
    let support: Vec<usize> = confusion.iter().map(|row| row.iter().sum()).collect();
    let per_class = (0..k)
        .map(|c| {
            let tp = confusion[c][c] as f64;
            let predicted: usize = (0..k).map(|r| confusion[r][c]).sum();
            let precision = ratio(tp, predicted as f64);
            let recall = ratio(tp, support[c] as f64);
            let f1 = if precision + recall > 0.0 { 2.0 * precision * recall / (precision + recall) } else { 0.0 };
            ClassMetrics { name: classes[c].clone(), support: support[c], precision, recall, f1 }
        })
        .collect();
    let binary = (k == 2 && n > 0).then(|| {
        let scores: Vec<f64> = probs.iter().map(|p| f64::from(p[1])).collect();
        let positive: Vec<bool> = labels.iter().map(|&y| y == 1).collect();
        binary_metrics(&classes[1], &scores, &positive, threshold)
    });
    Metrics {
        n,
        accuracy: ratio(correct as f64, n as f64),
        majority_baseline: ratio(support.iter().copied().max().unwrap_or(0) as f64, n as f64),
        per_class,
        confusion,
        binary,
    }
}

/// ROC, AUC, and operating points for scores of the positive class.
pub fn binary_metrics(positive_name: &str, scores: &[f64], positive: &[bool], threshold: f64) -> Binary {
    let roc = roc_curve(scores, positive);
    let auc = roc.windows(2).map(|w| (w[1].fpr - w[0].fpr) * (w[1].tpr + w[0].tpr) / 2.0).sum();
    let (sensitivity, specificity) = operating_point(scores, positive, threshold);
    // Youden's J over the curve's thresholds (skip the artificial "nothing is positive" start).
    let best = roc
        .iter()
        .skip(1)
        .max_by(|a, b| (a.tpr - a.fpr).total_cmp(&(b.tpr - b.fpr)).then(b.threshold.total_cmp(&a.threshold)))
        .copied()
        .unwrap_or(RocPoint { threshold: 0.5, fpr: 0.0, tpr: 0.0 });
    Binary {
        positive: positive_name.to_string(),
        roc,
        auc,
        threshold,
        sensitivity,
        specificity,
        youden_threshold: best.threshold,
        youden_sensitivity: best.tpr,
        youden_specificity: 1.0 - best.fpr,
    }
}

/// ROC points at every distinct score (descending), from (0,0) to (1,1). Tied scores move in
/// one diagonal step, which is what makes the trapezoid AUC count ties as ½.
pub fn roc_curve(scores: &[f64], positive: &[bool]) -> Vec<RocPoint> {
    let p = positive.iter().filter(|&&b| b).count() as f64;
    let q = positive.len() as f64 - p;
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    // Above every probability, yet finite: JSON has no infinity (serde_json would write `null`
    // and model files carrying these metrics could not be read back).
    let mut points = vec![RocPoint { threshold: f64::MAX, fpr: 0.0, tpr: 0.0 }];
    let (mut tp, mut fp) = (0.0, 0.0);
    let mut i = 0;
    while i < order.len() {
        let s = scores[order[i]];
        while i < order.len() && scores[order[i]] == s {
            if positive[order[i]] {
                tp += 1.0;
            } else {
                fp += 1.0;
            }
            i += 1;
        }
        points.push(RocPoint { threshold: s, fpr: ratio(fp, q), tpr: ratio(tp, p) });
    }
    points
}

/// Sensitivity and specificity when `score >= threshold` means positive.
pub fn operating_point(scores: &[f64], positive: &[bool], threshold: f64) -> (f64, f64) {
    let (mut tp, mut fneg, mut tn, mut fp) = (0.0, 0.0, 0.0, 0.0);
    for (&s, &pos) in scores.iter().zip(positive) {
        match (pos, s >= threshold) {
            (true, true) => tp += 1.0,
            (true, false) => fneg += 1.0,
            (false, false) => tn += 1.0,
            (false, true) => fp += 1.0,
        }
    }
    (ratio(tp, tp + fneg), ratio(tn, tn + fp))
}

/// One-sided exact binomial test: P(X ≥ k) for X ~ Binomial(n, p).
pub fn binomial_upper_tail(k: usize, n: usize, p: f64) -> f64 {
    if k == 0 {
        return 1.0;
    }
    if p <= 0.0 {
        return 0.0;
    }
    if p >= 1.0 {
        return 1.0;
    }
    // Sum the pmf in log space from k to n.
    let ln_choose = |n: usize, r: usize| ln_factorial(n) - ln_factorial(r) - ln_factorial(n - r);
    (k..=n)
        .map(|i| (ln_choose(n, i) + i as f64 * p.ln() + (n - i) as f64 * (1.0 - p).ln()).exp())
        .sum::<f64>()
        .min(1.0)
}

fn ln_factorial(n: usize) -> f64 {
    (2..=n).map(|i| (i as f64).ln()).sum()
}

/// A structured warning for the report and the UI.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Warning {
    /// Machine-readable kind: `too_few_images`, `imbalance`, `no_transfer`, `no_validation`.
    pub code: String,
    /// Plain-words explanation with the numbers and what to do.
    pub message: String,
}

/// Fewer images than this in a class triggers `too_few_images`.
pub const MIN_PER_CLASS: usize = 5;
/// A largest/smallest class ratio above this triggers `imbalance`.
pub const MAX_IMBALANCE: f64 = 5.0;
/// Significance level of the no-transfer test.
pub const NO_TRANSFER_ALPHA: f64 = 0.05;

/// Warnings about the data alone (before training).
pub fn data_warnings(classes: &[String], counts: &[usize]) -> Vec<Warning> {
    let mut out = Vec::new();
    for (name, &n) in classes.iter().zip(counts) {
        if n < MIN_PER_CLASS {
            out.push(Warning {
                code: "too_few_images".into(),
                message: format!("Class \"{name}\" has only {n} image(s); add at least {MIN_PER_CLASS} (ideally 20+) for a meaningful result."),
            });
        }
    }
    let max = counts.iter().copied().max().unwrap_or(0);
    let min = counts.iter().copied().min().unwrap_or(0);
    if min > 0 && max as f64 / min as f64 > MAX_IMBALANCE {
        out.push(Warning {
            code: "imbalance".into(),
            message: format!(
                "Classes are strongly imbalanced ({max} vs {min} images, {:.1}:1). Accuracy is misleading here: look at per-class recall; the loss is class-balanced to compensate.",
                max as f64 / min as f64
            ),
        });
    }
    out
}

/// The no-transfer check: is validation accuracy above the majority-class baseline with ~95 %
/// confidence? If not, the features did not demonstrably help on this data.
pub fn transfer_warning(metrics: &Metrics) -> Option<Warning> {
    if metrics.n == 0 {
        return None;
    }
    let correct = (metrics.accuracy * metrics.n as f64).round() as usize;
    let p_value = binomial_upper_tail(correct, metrics.n, metrics.majority_baseline);
    (p_value > NO_TRANSFER_ALPHA).then(|| Warning {
        code: "no_transfer".into(),
        message: format!(
            "No evidence that transfer learning helps: validation accuracy {:.1} % ({correct}/{}) is not significantly above the {:.1} % of always answering the most common class (binomial test p = {p_value:.2}). The pretrained features may not capture what separates these classes, or there are too few images to tell.",
            metrics.accuracy * 100.0,
            metrics.n,
            metrics.majority_baseline * 100.0
        ),
    })
}

/// Index of the largest value (first on ties).
pub fn argmax(v: &[f32]) -> usize {
    let mut best = 0;
    for (i, x) in v.iter().enumerate() {
        if *x > v[best] {
            best = i;
        }
    }
    best
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 {
        a / b
    } else {
        0.0
    }
}
