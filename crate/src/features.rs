//! What an embedding is: [`FeatureSpec`] — backbone, input size, framing and pooling — and the
//! step that turns the backbone's pooled outputs into the embedding a head trains on.
//!
//! A head is only meaningful on embeddings made exactly the way its training embeddings were,
//! so the spec travels with everything made from it: model and project files record it, the
//! CLI's embedding cache keys on it, prediction applies it, and a head or a store of embeddings
//! is refused with a clear message under another spec. Files of version 1 predate the spec and
//! mean [`FeatureSpec::v1`] (Lite0, 224, centre crop, average pooling).

use serde::{Deserialize, Serialize};

use crate::backbone::{truncate, Arch, Backbone, BackboneKind, Embedding, Taps};
use crate::error::{Error, Result};
use crate::image::Rgb;
use crate::preprocess::{self, Crop, View};

/// Smallest and largest input side accepted.
pub const INPUT_SIZES: std::ops::RangeInclusive<usize> = 96..=512;

/// How the backbone's feature maps are pooled into the embedding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Pooling {
    /// Average of the head conv's output (1280 values): the classic embedding.
    #[default]
    Avg,
    /// Average and max of the head conv's output, each block L2-normalised (2 × 1280).
    Avgmax,
    /// Averages of the last four stages' outputs and of the head conv's, each block
    /// L2-normalised: features of several scales (1984 values for Lite0).
    Multi,
}

/// The stages (0-based) whose pooled outputs [`Pooling::Multi`] adds: the last four.
const MULTI_STAGES: usize = 4;

impl Pooling {
    /// Every mode.
    pub const ALL: [Self; 3] = [Self::Avg, Self::Avgmax, Self::Multi];

    /// The name used on the command line, in the JS API and in files.
    pub fn name(self) -> &'static str {
        match self {
            Self::Avg => "avg",
            Self::Avgmax => "avgmax",
            Self::Multi => "multi",
        }
    }

    fn taps(self) -> Taps {
        match self {
            Self::Avg => Taps::default(),
            Self::Avgmax => Taps { head_max: true, ..Taps::default() },
            Self::Multi => Taps { stages: true, ..Taps::default() },
        }
    }

    /// Widths of the embedding's blocks, head average first.
    fn blocks(self, arch: &Arch) -> Vec<usize> {
        match self {
            Self::Avg => vec![arch.head],
            Self::Avgmax => vec![arch.head, arch.head],
            Self::Multi => std::iter::once(arch.head)
                .chain(arch.stages.iter().rev().take(MULTI_STAGES).rev().map(|s| s.cout))
                .collect(),
        }
    }
}

impl std::str::FromStr for Pooling {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::ALL.into_iter().find(|p| p.name() == s).ok_or_else(|| {
            Error::InvalidArgument(format!("pooling is {:?}; use \"avg\", \"avgmax\" or \"multi\"", truncate(s, 40)))
        })
    }
}

impl std::fmt::Display for Pooling {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Everything that determines an embedding. Valid by construction ([`FeatureSpec::new`], or
/// deserialisation, which checks the same): the backbone is one headtune knows and the input
/// size is in [`INPUT_SIZES`].
///
/// In files (camelCase JSON): `{"backbone": "<backbone id>", "inputSize": 224, "crop": "center",
/// "pooling": "avg"}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "SpecFields", into = "SpecFields")]
pub struct FeatureSpec {
    backbone: BackboneKind,
    input_size: usize,
    crop: Crop,
    pooling: Pooling,
}

/// The serialised form of [`FeatureSpec`].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SpecFields {
    backbone: String,
    input_size: usize,
    crop: Crop,
    pooling: Pooling,
}

impl TryFrom<SpecFields> for FeatureSpec {
    type Error = Error;
    fn try_from(f: SpecFields) -> Result<Self> {
        Self::new(BackboneKind::parse(&f.backbone)?, Some(f.input_size), f.crop, f.pooling)
    }
}

impl From<FeatureSpec> for SpecFields {
    fn from(s: FeatureSpec) -> Self {
        Self { backbone: s.backbone.id().into(), input_size: s.input_size, crop: s.crop, pooling: s.pooling }
    }
}

impl Default for FeatureSpec {
    /// Lite0 at its own 224 px, `auto` crop (full image if grey-scale, else the centre crop),
    /// average pooling.
    fn default() -> Self {
        Self { crop: Crop::Auto, ..Self::v1() }
    }
}

impl FeatureSpec {
    /// A spec; `input_size` defaults to the backbone's own (224 / 240 / 260).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for an input size outside [`INPUT_SIZES`].
    pub fn new(backbone: BackboneKind, input_size: Option<usize>, crop: Crop, pooling: Pooling) -> Result<Self> {
        let input_size = input_size.unwrap_or_else(|| backbone.arch().input_size);
        if !INPUT_SIZES.contains(&input_size) {
            return Err(Error::InvalidArgument(format!(
                "input size is {input_size}; use {} to {} pixels (the backbone's own is {})",
                INPUT_SIZES.start(),
                INPUT_SIZES.end(),
                backbone.arch().input_size
            )));
        }
        Ok(Self { backbone, input_size, crop, pooling })
    }

    /// What files of version 1 (before the spec was recorded) were made with: Lite0, 224 px,
    /// centre crop, average pooling.
    pub fn v1() -> Self {
        Self { backbone: BackboneKind::Lite0, input_size: 224, crop: Crop::Center, pooling: Pooling::Avg }
    }

    /// The backbone.
    pub fn backbone(&self) -> BackboneKind {
        self.backbone
    }

    /// Side of the square network input, in pixels.
    pub fn input_size(&self) -> usize {
        self.input_size
    }

    /// How images are framed.
    pub fn crop(&self) -> Crop {
        self.crop
    }

    /// The same spec framing images by `crop`.
    pub fn with_crop(self, crop: Crop) -> Self {
        Self { crop, ..self }
    }

    /// `auto` decided for a dataset from a sample of its images: `full` when at least half of
    /// them are grey-scale ([`preprocess::is_greyscale`]), else `center`; with the count of grey
    /// images and the sample size. A concrete crop is returned unchanged. Deciding once keeps a
    /// dataset framed one way (a few tinted scans among grey ones would otherwise be cropped
    /// differently), and the concrete choice is what model files record.
    pub fn resolve_auto<'a>(self, sample: impl IntoIterator<Item = &'a Rgb>) -> (Self, usize, usize) {
        if self.crop != Crop::Auto {
            return (self, 0, 0);
        }
        let (mut grey, mut n) = (0usize, 0usize);
        for img in sample {
            n += 1;
            grey += usize::from(preprocess::is_greyscale(img));
        }
        let crop = if n > 0 && 2 * grey >= n { Crop::Full } else { Crop::Center };
        (self.with_crop(crop), grey, n)
    }

    /// How feature maps are pooled.
    pub fn pooling(&self) -> Pooling {
        self.pooling
    }

    /// Values per embedding.
    pub fn dim(&self) -> usize {
        self.pooling.blocks(&self.backbone.arch()).iter().sum()
    }

    /// Side of the final feature map (the heatmap grid before upsampling).
    pub fn map_size(&self) -> usize {
        self.backbone.arch().map_size(self.input_size)
    }

    /// The evaluation view of an image (`auto` crop resolved from its pixels).
    pub fn eval_view(&self, img: &Rgb) -> View {
        let (width, height) = img.dimensions();
        View::eval(width, height, self.crop.resolve(img), self.input_size)
    }

    /// One line for people: `lite0, 224 px, crop center, pooling avg`.
    pub fn describe(&self) -> String {
        format!("{}, {} px, crop {}, pooling {}", self.backbone, self.input_size, self.crop, self.pooling)
    }

    /// Check that embeddings or a head made under `other` can be used under this spec.
    ///
    /// # Errors
    /// [`Error::Data`] saying what differs and what to do.
    pub fn check_same(&self, other: &Self, what: &str) -> Result<()> {
        if self == other {
            return Ok(());
        }
        Err(Error::Data(format!(
            "{what} made with features ({}) cannot be used with features ({}): embeddings differ. \
             Use the same backbone, input size, crop and pooling, or retrain",
            other.describe(),
            self.describe()
        )))
    }

    /// Check that `backbone` is the network this spec needs.
    ///
    /// # Errors
    /// [`Error::Data`] naming both backbones.
    pub fn check_backbone(&self, backbone: &Backbone) -> Result<()> {
        if backbone.arch().id != self.backbone.id() {
            return Err(Error::Data(format!(
                "these features need the {} backbone, but the loaded weights are {}: load {}",
                self.backbone,
                truncate(&backbone.arch().id, 60),
                self.backbone.weights_file()
            )));
        }
        Ok(())
    }

    /// Combine one input's pooled outputs into the embedding. Blocks other than the plain
    /// average are L2-normalised and scaled to norm √width (unit mean square per value, like
    /// standardised features), so that no block dominates by scale and the head's default
    /// learning rate and weight decay suit every pooling.
    pub fn combine(&self, pooled: &Embedding) -> Vec<f32> {
        match self.pooling {
            Pooling::Avg => pooled.pooled.clone(),
            Pooling::Avgmax => [scaled(&pooled.pooled), scaled(pooled.head_max.as_deref().unwrap_or_default())].concat(),
            Pooling::Multi => {
                let mut out = scaled(&pooled.pooled);
                let from = pooled.stages.len().saturating_sub(MULTI_STAGES);
                for stage in &pooled.stages[from..] {
                    out.extend(scaled(&stage.avg));
                }
                out
            }
        }
    }

    /// ∂loss/∂(head conv average) from ∂loss/∂embedding, for class-activation maps: the head
    /// average's block, taken back through its normalisation. The other blocks (max, earlier
    /// stages) have no spatial map at the head's resolution and are left out of the heatmap.
    pub fn head_gradient(&self, pooled: &Embedding, gradient: &[f32]) -> Vec<f32> {
        let n = pooled.pooled.len();
        let g = &gradient[..n.min(gradient.len())];
        match self.pooling {
            Pooling::Avg => g.to_vec(),
            Pooling::Avgmax | Pooling::Multi => {
                // b = s·p/|p|  ⇒  ∂b/∂p = s/|p| · (I − p̂p̂ᵀ)
                let norm = l2(&pooled.pooled);
                if norm == 0.0 {
                    return vec![0.0; n];
                }
                let s = (n as f32).sqrt();
                let dot: f32 = g.iter().zip(&pooled.pooled).map(|(a, p)| a * p / norm).sum();
                g.iter().zip(&pooled.pooled).map(|(a, p)| s / norm * (a - dot * p / norm)).collect()
            }
        }
    }

    /// Embeddings of already preprocessed inputs (see [`Self::eval_view`] and
    /// [`preprocess::preprocess`]), one per input.
    ///
    /// # Errors
    /// [`Error::Data`] when `backbone` is not this spec's, else as [`Backbone::features`].
    pub async fn embed_inputs(&self, backbone: &Backbone, inputs: &[&[f32]]) -> Result<Vec<Vec<f32>>> {
        self.check_backbone(backbone)?;
        if self.pooling == Pooling::Avg {
            return backbone.embed(inputs).await;
        }
        Ok(backbone.features(inputs, self.pooling.taps()).await?.iter().map(|p| self.combine(p)).collect())
    }

    /// The embedding of one image's evaluation view.
    ///
    /// # Errors
    /// As [`preprocess::preprocess`] and [`Self::embed_inputs`].
    pub async fn embed_image(&self, backbone: &Backbone, img: &Rgb) -> Result<Vec<f32>> {
        let input = preprocess::preprocess(img, &self.eval_view(img), self.input_size)?;
        let mut out = self.embed_inputs(backbone, &[&input]).await?;
        out.pop().ok_or_else(|| Error::Backend("the backbone returned no embedding".into()))
    }

    /// Pooled outputs, embedding and final `head × m × m` feature map (channel-major) of one
    /// input (for heatmaps).
    ///
    /// # Errors
    /// As [`Self::embed_inputs`].
    pub async fn embed_with_map(&self, backbone: &Backbone, input: &[f32]) -> Result<(Embedding, Vec<f32>, Vec<f32>)> {
        self.check_backbone(backbone)?;
        let taps = Taps { map: true, ..self.pooling.taps() };
        let mut pooled = backbone.features(&[input], taps).await?.pop().ok_or_else(|| Error::Backend("the backbone returned no output".into()))?;
        let map = pooled.map.take().unwrap_or_default();
        let embedding = self.combine(&pooled);
        Ok((pooled, embedding, map))
    }
}

fn l2(v: &[f32]) -> f32 {
    v.iter().map(|x| x * x).sum::<f32>().sqrt()
}

/// `v` scaled to norm √len (all zeros stay zeros).
fn scaled(v: &[f32]) -> Vec<f32> {
    let norm = l2(v);
    let s = if norm > 0.0 { (v.len() as f32).sqrt() / norm } else { 0.0 };
    v.iter().map(|x| x * s).collect()
}
