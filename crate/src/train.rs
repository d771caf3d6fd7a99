//! Training the head on the embedding store with burn autodiff: AdamW, class-balanced and
//! label-smoothed cross-entropy, stratified validation (k-fold when data is small), early
//! stopping on the validation loss. The backbone is never run here.
//!
//! Settings are chosen on held-out data, then the returned head learns from every image: the
//! split run (or the k folds) picks the number of epochs and, for two classes, the decision
//! threshold (Youden's J, or a target sensitivity, on the validation / out-of-fold
//! predictions); a final run then trains on all examples for that many epochs ("refit"). The
//! reported metrics are those held-out predictions' — an estimate for the refit head, which saw
//! slightly more data.
//!
//! Determinism: every random choice (split, shuffles, initialisation, dropout) comes from
//! `seed`, and the CPU backend computes in a fixed order, so the same store and settings give
//! identical weights and metrics.

use burn::module::Module;
use burn::optim::{AdamWConfig, GradientsParams};
use burn::tensor::activation::log_softmax;
use burn::tensor::{Device, Int, Tensor, TensorData};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::backbone::read;
use crate::error::{Error, Result};
use crate::head::{Head, HeadConfig, HeadKind, HeadWeights};
use crate::metrics::{self, Metrics, Warning};
use crate::predict::{Decision, ThresholdRule};
use crate::store::Store;

/// Classes with fewer examples than this switch validation to k-fold.
pub const KFOLD_BELOW: usize = 10;

/// Hyperparameters. Field names are the JS API's (camelCase in serde).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct TrainConfig {
    /// Passes over the training set (upper bound with early stopping).
    pub epochs: usize,
    /// AdamW step size.
    pub learning_rate: f64,
    /// Examples per gradient step.
    pub batch_size: usize,
    /// `linear` or `mlp`.
    pub head: HeadKind,
    /// Hidden units of the MLP head.
    pub hidden_units: usize,
    /// Dropout of the MLP head.
    pub dropout: f64,
    /// Decoupled weight decay (AdamW).
    pub weight_decay: f64,
    /// Label smoothing α: targets become y(1 − α) + α / K.
    pub label_smoothing: f32,
    /// Fraction of each class held out for validation (0 = train on everything, no metrics).
    pub validation_split: f64,
    /// Folds used instead of a split when a class has fewer than 10 images.
    pub folds: usize,
    /// Always use k-fold cross-validation (slower, less noisy metrics); otherwise only when a
    /// class has fewer than 10 images.
    pub cross_validate: bool,
    /// Weight the loss by inverse class frequency. `None` = automatically when the largest
    /// class is more than 1.5× the smallest.
    pub class_balanced: Option<bool>,
    /// Stop after this many epochs without a better validation loss (0 = never stop early).
    pub patience: usize,
    /// A fixed decision threshold on the positive (second) class's probability, two-class
    /// problems; `None` = choose it on the validation predictions.
    pub threshold: Option<f64>,
    /// Choose the highest threshold whose validation sensitivity reaches this (e.g. 0.95 for
    /// screening); `None` = maximise Youden's J. Ignored when `threshold` is set.
    pub target_sensitivity: Option<f64>,
    /// Train the returned head on every image after choosing the epochs on validation
    /// (k-fold always does).
    pub refit: bool,
    /// Seed of every random choice.
    pub seed: u64,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            epochs: 50,
            learning_rate: 1e-3,
            batch_size: 32,
            head: HeadKind::Linear,
            hidden_units: 128,
            dropout: 0.2,
            weight_decay: 1e-4,
            label_smoothing: 0.0,
            validation_split: 0.2,
            folds: 5,
            cross_validate: false,
            class_balanced: None,
            patience: 10,
            threshold: None,
            target_sensitivity: None,
            refit: true,
            seed: 0,
        }
    }
}

impl TrainConfig {
    /// Check every field, with messages that list the valid ranges.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`].
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::InvalidArgument(m));
        if !(1..=10_000).contains(&self.epochs) {
            return bad(format!("epochs is {}; use 1 to 10000", self.epochs));
        }
        if !(self.learning_rate > 0.0 && self.learning_rate <= 1.0) {
            return bad(format!("learningRate is {}; use a value in (0, 1], e.g. 0.001", self.learning_rate));
        }
        if !(1..=4096).contains(&self.batch_size) {
            return bad(format!("batchSize is {}; use 1 to 4096", self.batch_size));
        }
        if !(1..=4096).contains(&self.hidden_units) {
            return bad(format!("hiddenUnits is {}; use 1 to 4096", self.hidden_units));
        }
        if !(0.0..0.95).contains(&self.dropout) {
            return bad(format!("dropout is {}; use 0 to 0.9", self.dropout));
        }
        if !(0.0..=1.0).contains(&self.weight_decay) {
            return bad(format!("weightDecay is {}; use 0 to 1", self.weight_decay));
        }
        if !(0.0..0.5).contains(&self.label_smoothing) {
            return bad(format!("labelSmoothing is {}; use 0 to 0.49", self.label_smoothing));
        }
        if !(0.0..=0.5).contains(&self.validation_split) {
            return bad(format!("validationSplit is {}; use 0 (none) to 0.5", self.validation_split));
        }
        if !(2..=20).contains(&self.folds) {
            return bad(format!("folds is {}; use 2 to 20", self.folds));
        }
        if let Some(t) = self.threshold.filter(|t| !(0.0..=1.0).contains(t)) {
            return bad(format!("threshold is {t}; use 0 to 1, or leave it out to choose one on validation"));
        }
        if let Some(t) = self.target_sensitivity.filter(|t| !(t > &0.0 && t <= &1.0)) {
            return bad(format!("targetSensitivity is {t}; use a value in (0, 1], e.g. 0.95"));
        }
        Ok(())
    }
}

/// What happened in one epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EpochStats {
    /// 1-based epoch number.
    pub epoch: usize,
    /// Which k-fold run this belongs to (1-based), or `None` for the split / final run.
    pub fold: Option<usize>,
    /// Whether this is the final run on every image (after the epochs were chosen).
    #[serde(default)]
    pub refit: bool,
    /// Mean training loss.
    pub loss: f64,
    /// Training accuracy (with dropout active, over all views).
    pub accuracy: f64,
    /// Validation loss (evaluation views only).
    pub val_loss: Option<f64>,
    /// Validation accuracy.
    pub val_accuracy: Option<f64>,
}

/// One k-fold run's outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FoldSummary {
    /// Epoch with the lowest validation loss.
    pub best_epoch: usize,
    /// That loss.
    pub val_loss: f64,
    /// Validation examples in this fold.
    pub n: usize,
}

/// The full training report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TrainReport {
    /// Per-epoch statistics of the validation run (split mode) or of the run that produced the
    /// returned head (k-fold: the final run; no validation: the only run).
    pub history: Vec<EpochStats>,
    /// `"split"`, `"kfold"` or `"none"`.
    pub validation: String,
    /// Metrics on held-out data (validation split, or pooled out-of-fold predictions).
    pub metrics: Option<Metrics>,
    /// Epoch with the lowest validation loss (split), or the epochs of the final run (k-fold).
    pub best_epoch: usize,
    /// Whether the returned head was trained on every image after the settings were chosen.
    pub refit: bool,
    /// The decision threshold chosen (two classes).
    pub decision: Option<Decision>,
    /// Whether early stopping ended the run.
    pub stopped_early: bool,
    /// Per-fold summaries in k-fold mode.
    pub folds: Vec<FoldSummary>,
    /// Whether the loss was class-balanced.
    pub class_balanced: bool,
    /// Things the user should know before trusting the model.
    pub warnings: Vec<Warning>,
    /// Training examples (images) and rows (views) used for the returned head.
    pub train_examples: usize,
    /// Rows including augmented views.
    pub train_rows: usize,
    /// Every held-out example's prediction by a head that did not see it (the validation split,
    /// or each fold's examples in k-fold), in store order: what lets a user review the mistakes
    /// behind the confusion matrix and find doubtful labels.
    #[serde(default)]
    pub held_out: Vec<HeldOutPrediction>,
}

/// A held-out example as a head that did not train on it saw it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HeldOutPrediction {
    /// The example's id in the store.
    pub id: u64,
    /// Its labelled class (index into the store's classes).
    pub label: usize,
    /// Class probabilities.
    pub probabilities: Vec<f32>,
    /// The prediction confidently disagrees with the label ([`metrics::label_doubted`]).
    pub doubted: bool,
}

/// Pair held-out example indices with their predicted probabilities, sorted by store order.
fn held_out(store: &Store, examples: &[usize], probs: &[Vec<f32>]) -> Vec<HeldOutPrediction> {
    let mut out: Vec<(usize, HeldOutPrediction)> = examples
        .iter()
        .zip(probs)
        .map(|(&i, p)| {
            let e = &store.examples()[i];
            (i, HeldOutPrediction { id: e.id, label: e.class, probabilities: p.clone(), doubted: metrics::label_doubted(e.class, p) })
        })
        .collect();
    out.sort_by_key(|(i, _)| *i);
    out.into_iter().map(|(_, p)| p).collect()
}

/// A trained head with its report.
#[derive(Debug, Clone)]
pub struct TrainOutcome {
    /// The head's weights (best epoch).
    pub head: HeadWeights,
    /// What happened.
    pub report: TrainReport,
}

/// Rows of a dataset on the host.
struct Rows {
    x: Vec<f32>,
    y: Vec<usize>,
}

impl Rows {
    fn gather(store: &Store, examples: &[usize], all_views: bool) -> Self {
        let mut x = Vec::new();
        let mut y = Vec::new();
        for &i in examples {
            let e = &store.examples()[i];
            let views = if all_views { &e.views[..] } else { &e.views[..1] };
            for v in views {
                x.extend_from_slice(v);
                y.push(e.class);
            }
        }
        Self { x, y }
    }

    fn len(&self) -> usize {
        self.y.len()
    }
}

/// Train a head on `store`, calling `on_epoch` after every epoch and checking `cancelled`
/// between batches. Runs on `device` (the CPU backend is the fast choice for a head).
///
/// # Errors
/// [`Error::InvalidArgument`] for bad settings, [`Error::Data`] when there is nothing to learn
/// (fewer than two classes with images), [`Error::Cancelled`], [`Error::Backend`].
pub async fn train(
    store: &Store,
    config: &TrainConfig,
    device: &Device,
    on_epoch: &mut dyn FnMut(&EpochStats),
    cancelled: &dyn Fn() -> bool,
) -> Result<TrainOutcome> {
    train_pausing(store, config, device, on_epoch, cancelled, &|| Box::pin(std::future::ready(()))).await
}

/// A future awaited between epochs; see [`train_pausing`].
pub type Pause<'a> = &'a dyn Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = ()>>>;

/// [`train`], awaiting `pause()` after every epoch. In a browser worker the CPU backend never
/// yields on its own, so without this await a cancel message could not be seen until training
/// ended; the wasm boundary passes a future that yields to the event loop.
///
/// # Errors
/// As [`train`].
pub async fn train_pausing(
    store: &Store,
    config: &TrainConfig,
    device: &Device,
    on_epoch: &mut dyn FnMut(&EpochStats),
    cancelled: &dyn Fn() -> bool,
    pause: Pause<'_>,
) -> Result<TrainOutcome> {
    config.validate()?;
    let counts = store.counts();
    let k = counts.len();
    let populated = counts.iter().filter(|&&c| c > 0).count();
    if populated < 2 || populated != k {
        let empty: Vec<&str> =
            store.class_names().iter().zip(&counts).filter(|(_, &c)| c == 0).map(|(n, _)| n.as_str()).collect();
        return Err(Error::Data(if populated < 2 {
            format!("training needs at least two classes with images; have {populated}")
        } else {
            format!("classes without images: {empty:?}; add images or remove them")
        }));
    }
    let max = *counts.iter().max().unwrap_or(&1) as f64;
    let min = *counts.iter().min().unwrap_or(&1) as f64;
    let balanced = config.class_balanced.unwrap_or(max / min > 1.5);
    let class_weights: Vec<f32> = if balanced {
        let total: usize = counts.iter().sum();
        counts.iter().map(|&c| total as f32 / (k as f32 * c as f32)).collect()
    } else {
        vec![1.0; k]
    };

    let mut warnings = metrics::data_warnings(store.class_names(), &counts);
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    let smallest = counts.iter().copied().min().unwrap_or(0);
    let mode = if config.validation_split <= 0.0 || smallest < 2 {
        if config.validation_split > 0.0 {
            warnings.push(Warning {
                code: "no_validation".into(),
                message: "A class has only one image, so nothing can be held out: the model is trained on everything and no accuracy can be measured.".into(),
            });
        }
        Validation::None
    } else if smallest < KFOLD_BELOW || config.cross_validate {
        Validation::KFold(config.folds.min(smallest))
    } else {
        Validation::Split
    };

    let ctx = Ctx { store, config, device, class_weights: &class_weights, k, pause };
    let all: Vec<usize> = (0..store.len()).collect();
    // (run that produced the head, its history if another run's is reported, mode, held-out
    // labels and probabilities, fold summaries, refit, each held-out example's prediction)
    let (run, history, validation, scored, folds, refit, predictions) = match mode {
        Validation::None => {
            let run = ctx.run(&all, &[], None, false, config.epochs, &mut rng, on_epoch, cancelled).await?;
            (run, None, "none", None, Vec::new(), false, Vec::new())
        }
        Validation::Split => {
            let (tr, va) = stratified_split(store, config.validation_split, &mut rng);
            let run = ctx.run(&tr, &va, None, false, config.epochs, &mut rng, on_epoch, cancelled).await?;
            let labels: Vec<usize> = va.iter().map(|&i| store.examples()[i].class).collect();
            let probs = run.val_probs.clone();
            let predictions = held_out(store, &va, &probs);
            if config.refit {
                // Same number of epochs, on every image.
                let mut last = ctx.run(&all, &[], None, true, run.best_epoch, &mut rng, on_epoch, cancelled).await?;
                last.best_epoch = run.best_epoch;
                last.stopped_early = run.stopped_early;
                (last, Some(run.history), "split", Some((labels, probs)), Vec::new(), true, predictions)
            } else {
                (run, None, "split", Some((labels, probs)), Vec::new(), false, predictions)
            }
        }
        Validation::KFold(folds) => {
            let assignment = stratified_folds(store, folds, &mut rng);
            let mut labels = Vec::new();
            let mut probs = Vec::new();
            let mut summaries = Vec::new();
            let mut held = Vec::new();
            for f in 0..folds {
                let tr: Vec<usize> = all.iter().copied().filter(|&i| assignment[i] != f).collect();
                let va: Vec<usize> = all.iter().copied().filter(|&i| assignment[i] == f).collect();
                let run = ctx.run(&tr, &va, Some(f + 1), false, config.epochs, &mut rng, on_epoch, cancelled).await?;
                labels.extend(va.iter().map(|&i| store.examples()[i].class));
                held.extend_from_slice(&va);
                probs.extend(run.val_probs);
                summaries.push(FoldSummary { best_epoch: run.best_epoch, val_loss: run.best_val_loss, n: va.len() });
            }
            // The returned head learns from every image, for as many epochs as the folds found best.
            let epochs = (summaries.iter().map(|s| s.best_epoch as f64).sum::<f64>() / folds as f64).round().max(1.0) as usize;
            let run = ctx.run(&all, &[], None, true, epochs, &mut rng, on_epoch, cancelled).await?;
            let predictions = held_out(store, &held, &probs);
            (run, None, "kfold", Some((labels, probs)), summaries, true, predictions)
        }
    };
    let decision = (k == 2).then(|| choose_decision(config, scored.as_ref()));
    let threshold = decision.as_ref().map_or(0.5, |d| d.threshold);
    let metrics = scored.as_ref().map(|(labels, probs)| metrics::evaluate(store.class_names(), labels, probs, threshold));
    if let Some((labels, probs)) = &scored {
        // The no-transfer test judges arg-max predictions: a threshold chosen on these same
        // predictions would flatter them (random labels reach 65 % on 40 images that way).
        warnings.extend(metrics::transfer_warning(&metrics::evaluate(store.class_names(), labels, probs, 0.5)));
    }
    let head = run.head.weights().await?;
    Ok(TrainOutcome {
        head,
        report: TrainReport {
            history: history.unwrap_or(run.history),
            validation: validation.into(),
            metrics,
            best_epoch: run.best_epoch,
            refit,
            decision,
            stopped_early: run.stopped_early,
            folds,
            class_balanced: balanced,
            warnings,
            train_examples: run.train_examples,
            train_rows: run.train_rows,
            held_out: predictions,
        },
    })
}

/// The backend's random generator (initialisation, dropout masks) is one per process, seeded
/// at the start of each run: runs that overlapped in time (threads of one process — the tests)
/// would draw from it in turn and lose their determinism. Natively they take turns; the wasm
/// engine trains one head at a time anyway.
#[cfg(not(target_family = "wasm"))]
static BACKEND_RNG: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The decision threshold of a two-class model: the fixed one, or one chosen on the held-out
/// predictions (Youden's J or the target sensitivity), or 0.5 without any.
fn choose_decision(config: &TrainConfig, held_out: Option<&(Vec<usize>, Vec<Vec<f32>>)>) -> Decision {
    let (rule, target) = match (config.threshold, config.target_sensitivity) {
        (Some(_), _) => (ThresholdRule::Fixed, None),
        (None, Some(t)) => (ThresholdRule::Sensitivity, Some(t)),
        (None, None) => (ThresholdRule::Youden, None),
    };
    let Some((labels, probs)) = held_out.filter(|(l, _)| !l.is_empty()) else {
        let threshold = config.threshold.unwrap_or(0.5);
        let rule = if rule == ThresholdRule::Fixed { rule } else { ThresholdRule::Default };
        return Decision { threshold, rule, target_sensitivity: None, sensitivity: None, specificity: None, n: 0 };
    };
    let scores: Vec<f64> = probs.iter().map(|p| f64::from(p.get(1).copied().unwrap_or(0.0))).collect();
    let positive: Vec<bool> = labels.iter().map(|&y| y == 1).collect();
    let threshold = match (config.threshold, target) {
        (Some(t), _) => t,
        (None, Some(t)) => threshold_for_sensitivity(&scores, &positive, t),
        (None, None) => youden_threshold(&scores, &positive),
    };
    let (sensitivity, specificity) = metrics::operating_point(&scores, &positive, threshold);
    Decision { threshold, rule, target_sensitivity: target, sensitivity: Some(sensitivity), specificity: Some(specificity), n: labels.len() }
}

/// The ROC point's score moved halfway to the next lower distinct score, so that an image scoring
/// a little below the lowest one called positive in validation is still called positive.
fn between(scores: &[f64], chosen: f64) -> f64 {
    let below = scores.iter().copied().filter(|&s| s < chosen).fold(f64::NEG_INFINITY, f64::max);
    if below.is_finite() {
        (chosen + below) / 2.0
    } else {
        chosen
    }
}

/// The threshold maximising Youden's J = sensitivity + specificity − 1 (the higher one on ties).
pub fn youden_threshold(scores: &[f64], positive: &[bool]) -> f64 {
    let roc = metrics::roc_curve(scores, positive);
    let mut best: Option<metrics::RocPoint> = None;
    for p in roc.iter().skip(1) {
        if best.is_none_or(|b| p.tpr - p.fpr > b.tpr - b.fpr) {
            best = Some(*p);
        }
    }
    best.map_or(0.5, |b| between(scores, b.threshold).clamp(0.0, 1.0))
}

/// The highest threshold whose sensitivity on these scores is at least `target`.
pub fn threshold_for_sensitivity(scores: &[f64], positive: &[bool], target: f64) -> f64 {
    let roc = metrics::roc_curve(scores, positive);
    roc.iter()
        .skip(1)
        .find(|p| p.tpr >= target - 1e-12)
        .map_or(0.0, |p| between(scores, p.threshold).clamp(0.0, 1.0))
}

enum Validation {
    None,
    Split,
    KFold(usize),
}

/// Per-class shuffled hold-out: ≥ 1 validation and ≥ 1 training example per class.
pub fn stratified_split(store: &Store, fraction: f64, rng: &mut ChaCha8Rng) -> (Vec<usize>, Vec<usize>) {
    let (mut tr, mut va) = (Vec::new(), Vec::new());
    for c in 0..store.class_names().len() {
        let mut idx: Vec<usize> = (0..store.len()).filter(|&i| store.examples()[i].class == c).collect();
        idx.shuffle(rng);
        let n_val = ((idx.len() as f64 * fraction).round() as usize).clamp(1, idx.len().saturating_sub(1));
        va.extend_from_slice(&idx[..n_val]);
        tr.extend_from_slice(&idx[n_val..]);
    }
    tr.sort_unstable();
    va.sort_unstable();
    (tr, va)
}

/// Fold number of every example, dealt round-robin within each shuffled class.
pub fn stratified_folds(store: &Store, folds: usize, rng: &mut ChaCha8Rng) -> Vec<usize> {
    let mut assignment = vec![0; store.len()];
    for c in 0..store.class_names().len() {
        let mut idx: Vec<usize> = (0..store.len()).filter(|&i| store.examples()[i].class == c).collect();
        idx.shuffle(rng);
        for (j, i) in idx.into_iter().enumerate() {
            assignment[i] = j % folds;
        }
    }
    assignment
}

struct Ctx<'a> {
    store: &'a Store,
    config: &'a TrainConfig,
    device: &'a Device,
    class_weights: &'a [f32],
    k: usize,
    pause: Pause<'a>,
}

struct Run {
    head: Head,
    history: Vec<EpochStats>,
    best_epoch: usize,
    best_val_loss: f64,
    stopped_early: bool,
    val_probs: Vec<Vec<f32>>,
    train_examples: usize,
    train_rows: usize,
}

impl Ctx<'_> {
    #[allow(clippy::too_many_arguments)]
    async fn run(
        &self,
        train_idx: &[usize],
        val_idx: &[usize],
        fold: Option<usize>,
        refit: bool,
        epochs: usize,
        rng: &mut ChaCha8Rng,
        on_epoch: &mut dyn FnMut(&EpochStats),
        cancelled: &dyn Fn() -> bool,
    ) -> Result<Run> {
        let cfg = self.config;
        // Natively, runs take turns with the backend's random generator (see BACKEND_RNG).
        #[cfg(not(target_family = "wasm"))]
        let _turn = BACKEND_RNG.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let ad = self.device.clone().autodiff();
        ad.seed(rand::Rng::random(rng));
        let dim = self.store.dim();
        let mut head = HeadConfig::new(dim, self.k)
            .with_kind(cfg.head)
            .with_hidden(cfg.hidden_units)
            .with_dropout(cfg.dropout)
            .init(&ad);
        let mut optim = AdamWConfig::new().with_weight_decay(cfg.weight_decay as f32).init();

        let train = Rows::gather(self.store, train_idx, true);
        let val = Rows::gather(self.store, val_idx, false);
        let n = train.len();
        let x_all = Tensor::<2>::from_data(TensorData::new(train.x.clone(), [n, dim]), &ad);
        let targets_all = self.targets(&train.y, cfg.label_smoothing, &ad);
        let weights_all = self.sample_weights(&train.y, &ad);
        let val_tensors = (val.len() > 0).then(|| {
            let plain = self.device.clone();
            (
                Tensor::<2>::from_data(TensorData::new(val.x.clone(), [val.len(), dim]), &plain),
                self.targets(&val.y, 0.0, &plain),
                // Early stopping watches the plain (unweighted) validation loss: with balanced
                // weights a class of 3 images would carry 20× the weight of the rest and the
                // "best" epoch would be chosen by one or two validation images.
                Tensor::<1>::ones([val.len()], &plain),
            )
        });

        let mut order: Vec<usize> = (0..n).collect();
        let mut history = Vec::new();
        let mut best: Option<(f64, usize, Head, Vec<Vec<f32>>)> = None;
        let mut stopped_early = false;
        for epoch in 1..=epochs {
            order.shuffle(rng);
            let mut loss_sum = 0.0;
            let mut correct = 0usize;
            let mut batch_losses = Vec::new();
            let mut batch_logits = Vec::new();
            for chunk in order.chunks(cfg.batch_size) {
                if cancelled() {
                    return Err(Error::Cancelled);
                }
                let ids: Vec<i64> = chunk.iter().map(|&i| i as i64).collect();
                let ids = Tensor::<1, Int>::from_data(TensorData::new(ids, [chunk.len()]), &ad);
                let x = x_all.clone().select(0, ids.clone());
                let logits = head.forward(x);
                let loss = weighted_ce(logits.clone(), targets_all.clone().select(0, ids.clone()), weights_all.clone().select(0, ids));
                let grads = GradientsParams::from_grads(loss.backward(), &head);
                head = optim.step(cfg.learning_rate, head, grads);
                batch_losses.push((loss.detach(), chunk.len()));
                batch_logits.push((logits.detach(), chunk.to_vec()));
            }
            // One readback per epoch, not per batch: on WebGPU each readback is a round trip.
            for ((loss, len), (logits, rows)) in batch_losses.into_iter().zip(batch_logits) {
                loss_sum += f64::from(read(loss).await?[0]) * len as f64;
                let values = read(logits).await?;
                for (r, row) in values.chunks(self.k).zip(rows) {
                    correct += usize::from(metrics::argmax(r) == train.y[row]);
                }
            }
            let mut stats = EpochStats {
                epoch,
                fold,
                refit,
                loss: loss_sum / n as f64,
                accuracy: correct as f64 / n as f64,
                val_loss: None,
                val_accuracy: None,
            };
            if let Some((vx, vt, vw)) = &val_tensors {
                let valid = head.valid();
                let logits = valid.forward(vx.clone());
                let vloss = f64::from(read(weighted_ce(logits.clone(), vt.clone(), vw.clone())).await?[0]);
                let probs: Vec<Vec<f32>> = read(burn::tensor::activation::softmax(logits, 1)).await?.chunks(self.k).map(<[f32]>::to_vec).collect();
                let vacc = probs.iter().zip(&val.y).filter(|(p, &y)| metrics::argmax(p) == y).count() as f64 / val.len() as f64;
                stats.val_loss = Some(vloss);
                stats.val_accuracy = Some(vacc);
                if best.as_ref().is_none_or(|b| vloss < b.0) {
                    best = Some((vloss, epoch, head.clone(), probs));
                }
            }
            on_epoch(&stats);
            history.push(stats);
            (self.pause)().await;
            if let Some(b) = &best {
                if cfg.patience > 0 && epoch - b.1 >= cfg.patience {
                    stopped_early = epoch < epochs;
                    break;
                }
            }
        }
        let (best_val_loss, best_epoch, head, val_probs) = match best {
            Some((l, e, h, p)) => (l, e, h, p),
            None => (f64::NAN, history.len(), head, Vec::new()),
        };
        Ok(Run {
            head: head.valid(),
            history,
            best_epoch,
            best_val_loss,
            stopped_early,
            val_probs,
            train_examples: train_idx.len(),
            train_rows: n,
        })
    }

    /// Smoothed one-hot targets. `[N, K]`
    fn targets(&self, y: &[usize], smoothing: f32, device: &Device) -> Tensor<2> {
        let k = self.k;
        let off = smoothing / k as f32;
        let mut t = vec![off; y.len() * k];
        for (i, &c) in y.iter().enumerate() {
            t[i * k + c] += 1.0 - smoothing;
        }
        Tensor::from_data(TensorData::new(t, [y.len(), k]), device)
    }

    /// Per-row class weight. `[N]`
    fn sample_weights(&self, y: &[usize], device: &Device) -> Tensor<1> {
        let w: Vec<f32> = y.iter().map(|&c| self.class_weights[c]).collect();
        Tensor::from_data(TensorData::new(w, [y.len()]), device)
    }
}

/// Σᵢ wᵢ · CE(logitsᵢ, targetsᵢ) / Σᵢ wᵢ with soft targets.
///
/// # Shapes
/// logits `[N, K]`, targets `[N, K]`, weights `[N]` → `[1]`
pub fn weighted_ce(logits: Tensor<2>, targets: Tensor<2>, weights: Tensor<1>) -> Tensor<1> {
    let [n, _] = logits.dims();
    let per_row = log_softmax(logits, 1).mul(targets).sum_dim(1).reshape([n]).neg();
    per_row.mul(weights.clone()).sum().div(weights.sum())
}
