//! Prediction with a trained head: top-K `{label, probability}` and a class-activation map.
//!
//! The heatmap of class c is Σₖ αₖ·Fₖ(x, y) over the last m×m×1280 feature map (m = 7 at
//! 224 px), with α = ∂logit_c/∂(head conv average) (for the linear head on average pooling,
//! simply its weight column): exact for a head on globally pooled features, and free — the map
//! is a by-product of the forward pass. The grid covers the whole network input, i.e. whatever
//! part of the image the model saw (the centre crop, the whole image, or the letterboxed image).

use serde::{Deserialize, Serialize};

use crate::backbone::Backbone;
use crate::error::{Error, Result};
use crate::features::FeatureSpec;
use crate::head::HeadWeights;
use crate::image::Rgb;
use crate::imagenet::{softmax, top_k_indices};
use crate::preprocess::{self, Crop, CropBox, View};

/// Side of the heatmap grid returned to callers (the m×m map upsampled bilinearly).
pub const HEATMAP_SIZE: usize = 56;

/// One ranked class.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prediction {
    /// Class name.
    pub label: String,
    /// Softmax probability.
    pub probability: f32,
}

/// A class-activation map over the region of the image the network saw.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Heatmap {
    /// Grid width.
    pub width: usize,
    /// Grid height.
    pub height: usize,
    /// Row-major values in [0, 1] (1 = strongest evidence for `label`).
    pub data: Vec<f32>,
    /// The class explained.
    pub label: String,
    /// The area of the source image the grid covers, in source pixels: the centre crop, the
    /// whole image, or for letterboxed input the image plus its bars (then partly outside it).
    pub crop: CropBox,
    /// Source image width.
    pub image_width: u32,
    /// Source image height.
    pub image_height: u32,
}

/// How a two-class model turns the positive class's probability into a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ThresholdRule {
    /// Maximise Youden's J = sensitivity + specificity − 1 on the validation predictions.
    Youden,
    /// The highest threshold whose validation sensitivity reaches a target (screening).
    Sensitivity,
    /// Set by the user.
    Fixed,
    /// 0.5 because there were no validation predictions to choose on.
    Default,
}

/// The decision threshold of a two-class model and the operating point it was chosen at.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Decision {
    /// An image is called the positive (second) class when its probability is at least this.
    pub threshold: f64,
    /// How the threshold was chosen.
    pub rule: ThresholdRule,
    /// The target of [`ThresholdRule::Sensitivity`].
    pub target_sensitivity: Option<f64>,
    /// Sensitivity at the threshold on the validation predictions (those it was chosen on, so
    /// optimistic for a chosen threshold); `None` without validation data.
    pub sensitivity: Option<f64>,
    /// Specificity at the threshold on the same predictions.
    pub specificity: Option<f64>,
    /// Number of validation predictions.
    pub n: usize,
}

/// The decision of a two-class model on one image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DecisionOutput {
    /// The class decided on.
    pub label: String,
    /// Whether it is the positive (second) class.
    pub positive: bool,
    /// The positive class's probability.
    pub probability: f32,
    /// The threshold it was compared with.
    pub threshold: f64,
}

/// A trained head with its class names and the features it was trained on: everything needed
/// to classify an image.
#[derive(Debug, Clone, PartialEq)]
pub struct Classifier {
    /// How embeddings must be made for this head.
    pub spec: FeatureSpec,
    /// Class names in logit order.
    pub classes: Vec<String>,
    /// Head weights.
    pub head: HeadWeights,
    /// The decision threshold (two-class models).
    pub decision: Option<Decision>,
}

impl Classifier {
    /// Pair a head with its features and class names.
    ///
    /// # Errors
    /// [`Error::ModelFile`] when the head is malformed (shapes, non-finite or overflowing
    /// weights), does not take the spec's embedding width, a class name is invalid or
    /// repeated, or the counts disagree.
    pub fn new(spec: FeatureSpec, classes: Vec<String>, head: HeadWeights) -> Result<Self> {
        crate::store::check_class_names(&classes)?;
        head.validate(spec.dim())?;
        if classes.len() != head.classes() {
            return Err(Error::ModelFile(format!("{} class names for a head with {} outputs", classes.len(), head.classes())));
        }
        Ok(Self { spec, classes, head, decision: None })
    }

    /// The same classifier deciding with `decision` (ignored unless there are two classes).
    ///
    /// # Errors
    /// [`Error::ModelFile`] for a threshold outside [0, 1].
    pub fn with_decision(mut self, decision: Option<Decision>) -> Result<Self> {
        if let Some(d) = &decision {
            if !(0.0..=1.0).contains(&d.threshold) {
                return Err(Error::ModelFile(format!("decision threshold {} is not a probability", d.threshold)));
            }
        }
        self.decision = decision.filter(|_| self.classes.len() == 2);
        Ok(self)
    }

    /// The decision on class probabilities, for a two-class model with a threshold.
    pub fn decide(&self, probabilities: &[f32]) -> Option<DecisionOutput> {
        let d = self.decision.as_ref()?;
        let p = *probabilities.get(1)?;
        let positive = f64::from(p) >= d.threshold;
        Some(DecisionOutput { label: self.classes[usize::from(positive)].clone(), positive, probability: p, threshold: d.threshold })
    }

    /// Class probabilities of one embedding.
    pub fn probabilities(&self, embedding: &[f32]) -> Vec<f32> {
        softmax(&self.head.logits(embedding))
    }

    /// The `k` most probable classes, most probable first.
    pub fn top_k(&self, embedding: &[f32], k: usize) -> Vec<Prediction> {
        let probs = self.probabilities(embedding);
        top_k_indices(&probs, k.max(1))
            .into_iter()
            .map(|i| Prediction { label: self.classes[i].clone(), probability: probs[i] })
            .collect()
    }

    /// Class-activation map (m×m, not normalised) of `class` from the final feature map
    /// (`1280×m×m`, channel-major), the pooled outputs and the embedding made from them.
    pub fn cam(&self, map: &[f32], pooled: &crate::backbone::Embedding, embedding: &[f32], class: usize) -> Vec<f32> {
        let alpha = self.spec.head_gradient(pooled, &self.head.logit_gradient(embedding, class));
        let cells = map.len() / alpha.len().max(1);
        let mut cam = vec![0f32; cells];
        for (k, a) in alpha.iter().enumerate() {
            if *a != 0.0 {
                for (c, f) in cam.iter_mut().zip(&map[k * cells..(k + 1) * cells]) {
                    *c += a * f;
                }
            }
        }
        cam
    }
}

/// What [`predict_image`] returns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PredictOutput {
    /// Ranked classes.
    pub top: Vec<Prediction>,
    /// The model's decision at its threshold (two-class models).
    pub decision: Option<DecisionOutput>,
    /// Heatmap of the top class, when asked for.
    pub heatmap: Option<Heatmap>,
    /// The image's embedding (handy for callers that store it).
    #[serde(skip)]
    pub embedding: Vec<f32>,
}

/// Classify one decoded image, optionally with the heatmap of its top class. The image is
/// prepared the way the classifier's features say, unless it is `framed` already — an input
/// preview ([`crate::thumbnail::Preview::Input`]): the network's input square, or its framed
/// region at its own size. It is then only resized to the input side (the identity at that
/// side): framing it again would crop a centre crop a second time.
///
/// # Errors
/// [`Error::Data`] when `backbone` is not the classifier's, else as [`Backbone::embed`].
pub async fn predict_image(backbone: &Backbone, classifier: &Classifier, img: &Rgb, top_k: usize, heatmap: bool, framed: bool) -> Result<PredictOutput> {
    let spec = &classifier.spec;
    let (w, h) = img.dimensions();
    let view = if framed { View::eval(w, h, Crop::Full, spec.input_size()) } else { spec.eval_view(img) };
    let input = preprocess::preprocess(img, &view, spec.input_size())?;
    let (embedding, map) = if heatmap {
        let (pooled, embedding, map) = spec.embed_with_map(backbone, &input).await?;
        (embedding, Some((pooled, map)))
    } else {
        let mut out = spec.embed_inputs(backbone, &[&input]).await?;
        (out.pop().ok_or_else(|| Error::Backend("the backbone returned no embedding".into()))?, None)
    };
    let top = classifier.top_k(&embedding, top_k);
    let decision = classifier.decide(&classifier.probabilities(&embedding));
    let heatmap = map.map(|(pooled, m)| {
        // Explain the decision where there is one, else the most probable class.
        let class = decision.as_ref().map_or_else(|| top_k_indices(&classifier.probabilities(&embedding), 1)[0], |d| usize::from(d.positive));
        let cam = classifier.cam(&m, &pooled, &embedding, class);
        let side = spec.map_size();
        Heatmap {
            width: HEATMAP_SIZE,
            height: HEATMAP_SIZE,
            data: upsample(&normalise(&cam), side, HEATMAP_SIZE),
            label: classifier.classes[class].clone(),
            crop: view.input_region(spec.input_size()),
            image_width: w,
            image_height: h,
        }
    });
    Ok(PredictOutput { top, decision, heatmap, embedding })
}

/// ReLU then scale to [0, 1] (all zeros stays zeros: no evidence anywhere).
pub fn normalise(cam: &[f32]) -> Vec<f32> {
    let max = cam.iter().copied().fold(0f32, f32::max);
    cam.iter().map(|&v| if max > 0.0 { v.max(0.0) / max } else { 0.0 }).collect()
}

/// Bilinear upsampling of a square grid, cell centres aligned (like `align_corners=false`).
pub fn upsample(grid: &[f32], from: usize, to: usize) -> Vec<f32> {
    let scale = from as f32 / to as f32;
    let coord = |i: usize| {
        let s = ((i as f32 + 0.5) * scale - 0.5).clamp(0.0, (from - 1) as f32);
        let i0 = s.floor() as usize;
        (i0, (i0 + 1).min(from - 1), s - i0 as f32)
    };
    let mut out = Vec::with_capacity(to * to);
    for y in 0..to {
        let (y0, y1, fy) = coord(y);
        for x in 0..to {
            let (x0, x1, fx) = coord(x);
            let top = grid[y0 * from + x0] * (1.0 - fx) + grid[y0 * from + x1] * fx;
            let bottom = grid[y1 * from + x0] * (1.0 - fx) + grid[y1 * from + x1] * fx;
            out.push(top * (1.0 - fy) + bottom * fy);
        }
    }
    out
}
