//! Honest evaluation: accuracy, per-class precision/recall/F1, confusion matrix, and for two
//! classes the ROC curve, AUC and sensitivity/specificity at a threshold — each headline figure
//! with its 95 % confidence interval, because "100 %" on 16 images proves little — plus the
//! warnings a user must see before trusting a model (too few images, imbalance, no evidence of
//! transfer) and the held-out examples whose label the model confidently disputes.

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
    /// 95 % interval of the AUC (DeLong; see [`auc_interval`]). Absent in files written before
    /// intervals existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auc_interval: Option<Interval>,
    /// 95 % Wilson interval of `sensitivity`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sensitivity_interval: Option<Interval>,
    /// 95 % Wilson interval of `specificity`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub specificity_interval: Option<Interval>,
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
    /// 95 % Wilson interval of `accuracy`. Absent in files written before intervals existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accuracy_interval: Option<Interval>,
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
        accuracy_interval: Some(wilson(correct, n)),
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
    let positives = positive.iter().filter(|&&p| p).count();
    let negatives = positive.len() - positives;
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
        auc_interval: Some(auc_interval(scores, positive)),
        sensitivity_interval: Some(wilson(count_of(sensitivity, positives), positives)),
        specificity_interval: Some(wilson(count_of(specificity, negatives), negatives)),
        youden_threshold: best.threshold,
        youden_sensitivity: best.tpr,
        youden_specificity: 1.0 - best.fpr,
    }
}

/// A score the curve can sort, group and write to JSON: NaN ranks below every number (a NaN
/// prediction is no evidence for the positive class) and infinities become the largest finite
/// values (JSON has no infinity).
fn finite_score(s: f64) -> f64 {
    if s.is_nan() {
        f64::MIN
    } else {
        s.clamp(f64::MIN, f64::MAX)
    }
}

/// ROC points at every distinct score (descending), from (0,0) to (1,1). Tied scores move in
/// one diagonal step, which is what makes the trapezoid AUC count ties as ½. Total: NaN and
/// infinite scores are ranked (see `finite_score`), never looped over forever.
pub fn roc_curve(scores: &[f64], positive: &[bool]) -> Vec<RocPoint> {
    let scores: Vec<f64> = scores.iter().map(|&s| finite_score(s)).collect();
    let p = positive.iter().filter(|&&b| b).count() as f64;
    let q = positive.len() as f64 - p;
    let mut order: Vec<usize> = (0..scores.len().min(positive.len())).collect();
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

/// The two-sided 95 % normal quantile.
pub const Z95: f64 = 1.959_963_984_540_054;

/// A 95 % confidence interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    /// Lower bound.
    pub low: f64,
    /// Upper bound.
    pub high: f64,
}

impl Interval {
    /// `[low, high]` with both bounds rounded to 6 decimals: far finer than any interval means,
    /// and short enough that the JSON of a model file reads back the very same numbers.
    fn rounded(low: f64, high: f64) -> Self {
        let r = |v: f64| (v * 1e6).round() / 1e6;
        Self { low: r(low), high: r(high) }
    }

    /// The uninformative interval [0, 1].
    const UNKNOWN: Self = Self { low: 0.0, high: 1.0 };
}

/// Wilson score interval of a proportion `successes / n` (95 %). Unlike the textbook
/// p ± 1.96·√(p(1−p)/n) it stays inside [0, 1] and does not collapse to a point at 0 % or 100 %:
/// 16 out of 16 gives 80.6 %–100 %. `n = 0` gives the uninformative [0, 1].
pub fn wilson(successes: usize, n: usize) -> Interval {
    if n == 0 {
        return Interval::UNKNOWN;
    }
    let n = n as f64;
    let p = (successes as f64 / n).clamp(0.0, 1.0);
    let z2 = Z95 * Z95;
    let denom = 1.0 + z2 / n;
    let centre = (p + z2 / (2.0 * n)) / denom;
    let half = Z95 * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt() / denom;
    // At 0 and n the exact bound is 0 or 1; the formula gets there only up to rounding.
    let low = if successes == 0 { 0.0 } else { (centre - half).max(0.0) };
    let high = if successes as f64 >= n { 1.0 } else { (centre + half).min(1.0) };
    Interval::rounded(low, high)
}

/// 95 % interval of the AUC of `scores` (higher = more positive).
///
/// DeLong's variance (DeLong, DeLong & Clarke-Pearson 1988), computed with midranks in
/// O(N log N) (Sun & Xu 2014), then AUC ± 1.96·SE clipped to [0, 1]. Where DeLong's variance is
/// zero or undefined — perfect separation, or a class with one example — it would claim
/// certainty, so Newcombe's score interval (2006, method 5; Hanley–McNeil variance evaluated at
/// each candidate AUC) is used instead: it gives a perfect AUC on 8 + 8 images a lower bound
/// well below 1. No examples of one class: [0, 1].
pub fn auc_interval(scores: &[f64], positive: &[bool]) -> Interval {
    let pos: Vec<f64> = scores.iter().zip(positive).filter(|(_, &p)| p).map(|(&s, _)| s).collect();
    let neg: Vec<f64> = scores.iter().zip(positive).filter(|(_, &p)| !p).map(|(&s, _)| s).collect();
    let (m, n) = (pos.len(), neg.len());
    if m == 0 || n == 0 {
        return Interval::UNKNOWN;
    }
    let all: Vec<f64> = pos.iter().chain(&neg).copied().collect();
    let (tz, tx, ty) = (midranks(&all), midranks(&pos), midranks(&neg));
    let (mf, nf) = (m as f64, n as f64);
    // V10: for each positive, the share of negatives it outranks; V01: for each negative, the
    // share of positives that outrank it. Both average to the AUC.
    let v10: Vec<f64> = (0..m).map(|i| (tz[i] - tx[i]) / nf).collect();
    let v01: Vec<f64> = (0..n).map(|j| 1.0 - (tz[m + j] - ty[j]) / mf).collect();
    let auc = v10.iter().sum::<f64>() / mf;
    let var = if m > 1 && n > 1 { sample_variance(&v10, auc) / mf + sample_variance(&v01, auc) / nf } else { 0.0 };
    if var > 0.0 && var.is_finite() {
        let half = Z95 * var.sqrt();
        return Interval::rounded((auc - half).max(0.0), (auc + half).min(1.0));
    }
    newcombe_auc_interval(auc, mf, nf)
}

/// 1-based ranks with ties given their mean rank.
fn midranks(values: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
    let mut ranks = vec![0.0; values.len()];
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && values[order[j + 1]] == values[order[i]] {
            j += 1;
        }
        let mid = (i + j) as f64 / 2.0 + 1.0;
        for &k in &order[i..=j] {
            ranks[k] = mid;
        }
        i = j + 1;
    }
    ranks
}

fn sample_variance(v: &[f64], mean: f64) -> f64 {
    v.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / (v.len() as f64 - 1.0)
}

/// Newcombe's score-type interval for an AUC of `auc` from `m` positives and `n` negatives:
/// the θ where (θ − auc)² = z²·Var(θ), with Hanley–McNeil's variance at θ and both group sizes
/// set to their mean N: Var(θ) = θ(1−θ)/(mn) · [(2N−1) − (3N−3)/((2−θ)(1+θ))].
fn newcombe_auc_interval(auc: f64, m: f64, n: f64) -> Interval {
    let big_n = (m + n) / 2.0;
    let var = |t: f64| t * (1.0 - t) / (m * n) * ((2.0 * big_n - 1.0) - (3.0 * big_n - 3.0) / ((2.0 - t) * (1.0 + t)));
    // f < 0 inside the interval (at θ = auc) and ≥ 0 at its ends; bisect each side.
    let f = |t: f64| (t - auc) * (t - auc) - Z95 * Z95 * var(t).max(0.0);
    let bisect = |mut inside: f64, mut outside: f64| {
        for _ in 0..60 {
            let mid = (inside + outside) / 2.0;
            if f(mid) < 0.0 {
                inside = mid;
            } else {
                outside = mid;
            }
        }
        (inside + outside) / 2.0
    };
    let low = if f(0.0) <= 0.0 { 0.0 } else { bisect(auc, 0.0) };
    let high = if f(1.0) <= 0.0 { 1.0 } else { bisect(auc, 1.0) };
    Interval::rounded(low.min(auc), high.max(auc))
}

/// How many of `total` a rate stands for (the rates here are exact ratios of counts).
fn count_of(rate: f64, total: usize) -> usize {
    (rate * total as f64).round().clamp(0.0, total as f64) as usize
}

/// Sensitivity and specificity, with 95 % Wilson intervals, at one decision threshold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OperatingPoint {
    /// Probability of the positive class at or above which an example is called positive.
    pub threshold: f64,
    /// TP / (TP + FN).
    pub sensitivity: f64,
    /// TN / (TN + FP).
    pub specificity: f64,
    /// 95 % Wilson interval of `sensitivity`.
    pub sensitivity_interval: Interval,
    /// 95 % Wilson interval of `specificity`.
    pub specificity_interval: Interval,
}

impl Metrics {
    /// Sensitivity and specificity at `threshold`, read off the stored ROC curve (whose points
    /// are the exact rates at every distinct score), with intervals from the class supports.
    /// `None` when these are not two-class metrics.
    pub fn operating_point_at(&self, threshold: f64) -> Option<OperatingPoint> {
        let b = self.binary.as_ref()?;
        let negatives = self.per_class.first()?.support;
        let positives = self.per_class.get(1)?.support;
        // Called positive when score ≥ threshold: the last (lowest-threshold) point still at or
        // above it; the curve's first point (threshold above every score) calls nothing positive.
        let point = b.roc.iter().take_while(|p| p.threshold >= threshold).last().or(b.roc.first())?;
        let (sensitivity, specificity) = (point.tpr, 1.0 - point.fpr);
        Some(OperatingPoint {
            threshold,
            sensitivity,
            specificity,
            sensitivity_interval: wilson(count_of(sensitivity, positives), positives),
            specificity_interval: wilson(count_of(specificity, negatives), negatives),
        })
    }

    /// Follow a class rename (`from` → `to`) in every name these metrics carry.
    pub fn rename_class(&mut self, from: &str, to: &str) {
        for c in self.per_class.iter_mut().filter(|c| c.name == from) {
            c.name = to.to_string();
        }
        if let Some(b) = self.binary.as_mut().filter(|b| b.positive == from) {
            b.positive = to.to_string();
        }
    }
}

/// A held-out example's label is doubted when the model gives another class at least this
/// probability.
pub const DOUBT_CONFIDENCE: f32 = 0.8;

/// Does a held-out prediction confidently disagree with the example's label? Such examples are
/// the first to check for labelling mistakes (the idea of confident learning, with one fixed
/// confidence instead of per-class thresholds, so the rule is easy to explain).
pub fn label_doubted(label: usize, probabilities: &[f32]) -> bool {
    let top = argmax(probabilities);
    top != label && probabilities.get(top).is_some_and(|&p| p >= DOUBT_CONFIDENCE)
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

/// Index of the largest value (first on ties; NaN only when every value is NaN).
pub fn argmax(v: &[f32]) -> usize {
    let mut best = 0;
    for (i, x) in v.iter().enumerate() {
        if !x.is_nan() && (v[best].is_nan() || *x > v[best]) {
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
