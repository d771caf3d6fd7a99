//! Prediction with a trained head: top-K `{label, probability}` and a class-activation map.
//!
//! The heatmap of class c is Σₖ αₖ·Fₖ(x, y) over the last 7×7×1280 feature map, with
//! α = ∂logit_c/∂pooled (for the linear head, simply its weight column): exact for a head on
//! globally pooled features, and free — the map is a by-product of the forward pass.

use serde::{Deserialize, Serialize};

use crate::backbone::{Backbone, EMBED_DIM, MAP_SIZE};
use crate::error::{Error, Result};
use crate::head::HeadWeights;
use crate::image::Rgb;
use crate::imagenet::{softmax, top_k_indices};
use crate::preprocess::{self, CropBox, View};

/// Side of the heatmap grid returned to callers (7×7 upsampled bilinearly).
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
    /// The square of the source image the grid covers (the evaluation crop), in source pixels.
    pub crop: CropBox,
    /// Source image width.
    pub image_width: u32,
    /// Source image height.
    pub image_height: u32,
}

/// A trained head with its class names: everything needed to classify embeddings.
#[derive(Debug, Clone, PartialEq)]
pub struct Classifier {
    /// Class names in logit order.
    pub classes: Vec<String>,
    /// Head weights.
    pub head: HeadWeights,
}

impl Classifier {
    /// Pair a head with its class names.
    ///
    /// # Errors
    /// [`Error::ModelFile`] when the head is malformed (shapes, non-finite or overflowing
    /// weights), a class name is invalid or repeated, or the counts disagree.
    pub fn new(classes: Vec<String>, head: HeadWeights) -> Result<Self> {
        crate::store::check_class_names(&classes)?;
        head.validate()?;
        if classes.len() != head.classes() {
            return Err(Error::ModelFile(format!("{} class names for a head with {} outputs", classes.len(), head.classes())));
        }
        Ok(Self { classes, head })
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

    /// Class-activation map (7×7, not normalised) of `class` from the final feature map
    /// (`1280×7×7`, channel-major) and the pooled embedding.
    pub fn cam(&self, map: &[f32], pooled: &[f32], class: usize) -> Vec<f32> {
        let alpha = self.head.logit_gradient(pooled, class);
        let cells = MAP_SIZE * MAP_SIZE;
        let mut cam = vec![0f32; cells];
        for (k, a) in alpha.iter().enumerate().take(EMBED_DIM) {
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
    /// Heatmap of the top class, when asked for.
    pub heatmap: Option<Heatmap>,
    /// The image's embedding (handy for callers that store it).
    #[serde(skip)]
    pub embedding: Vec<f32>,
}

/// Classify one decoded image, optionally with the heatmap of its top class.
///
/// # Errors
/// As [`Backbone::embed`].
pub async fn predict_image(backbone: &Backbone, classifier: &Classifier, img: &Rgb, top_k: usize, heatmap: bool) -> Result<PredictOutput> {
    let (w, h) = img.dimensions();
    let view = View::eval(w, h);
    let input = preprocess::preprocess(img, &view)?;
    let (pooled, map) = if heatmap {
        let (p, m) = backbone.embed_with_map(&input).await?;
        (p, Some(m))
    } else {
        (backbone.embed(&[&input]).await?.remove(0), None)
    };
    let top = classifier.top_k(&pooled, top_k);
    let heatmap = map.map(|m| {
        let class = top_k_indices(&classifier.probabilities(&pooled), 1)[0];
        let cam = classifier.cam(&m, &pooled, class);
        Heatmap {
            width: HEATMAP_SIZE,
            height: HEATMAP_SIZE,
            data: upsample(&normalise(&cam), MAP_SIZE, HEATMAP_SIZE),
            label: classifier.classes[class].clone(),
            crop: view.crop,
            image_width: w,
            image_height: h,
        }
    });
    Ok(PredictOutput { top, heatmap, embedding: pooled })
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
