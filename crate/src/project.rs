//! Model and project files: versioned, checksummed, portable between the CLI and the browser.
//!
//! Layout (all integers little-endian):
//! ```text
//! magic     8 bytes  "HEADTUNE"
//! version   u16      2 (1: before the feature spec was recorded; still read)
//! kind      u8       1 = model (head + labels), 2 = project (everything, incl. embeddings)
//! reserved  u8       0
//! meta_len  u32      length of the JSON metadata
//! meta      UTF-8 JSON (see ModelMeta / ProjectMeta)
//! blob_len  u64      number of f32 values that follow
//! blob      f32 × blob_len  (weights, then embeddings for projects; offsets in the metadata)
//! crc32     u32      over every byte before it
//! ```
//! JSON keeps the file inspectable and extensible; the f32 blob keeps it small and exact.
//!
//! Version 2 records the [`FeatureSpec`] (`features`) in model and project metadata. Version 1
//! files carry only a backbone id and mean [`FeatureSpec::v1`] (Lite0, 224, centre crop, average
//! pooling); they are read, and written back as version 2.

use serde::{Deserialize, Serialize};

use crate::backbone::{truncate, BackboneKind};
use crate::error::{Error, Result};
use crate::features::FeatureSpec;
use crate::head::{DenseWeights, HeadKind, HeadWeights};
use crate::metrics::Metrics;
use crate::predict::{Classifier, Decision, ThresholdRule};
use crate::store::{check_class_names, AugmentConfig, Example, Store};
use crate::train::{TrainConfig, TrainReport};

const MAGIC: &[u8; 8] = b"HEADTUNE";
/// Current file version; older readers refuse newer files with a clear message.
pub const VERSION: u16 = 2;
/// Oldest version still read.
const OLDEST: u16 = 1;
const KIND_MODEL: u8 = 1;
const KIND_PROJECT: u8 = 2;
/// Metadata above this size is refused: by the reader before parsing, and by the writer, so a
/// file that saves always loads again (a model's is a few KB; a project's grows with the app's
/// `extra` data, e.g. the page's thumbnails).
pub const MAX_META: usize = 64 << 20;

/// Shape of one dense layer in the blob.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DenseShape {
    d_in: usize,
    d_out: usize,
}

/// Metadata of a model file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelMeta {
    /// How embeddings are made for this head (version 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub features: Option<FeatureSpec>,
    /// Backbone id (version 1 only: it implies [`FeatureSpec::v1`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backbone: Option<String>,
    /// Class names in output order.
    pub classes: Vec<String>,
    /// Head architecture.
    pub head_kind: HeadKind,
    hidden: Option<DenseShape>,
    output: DenseShape,
    /// Settings the head was trained with.
    pub training: Option<TrainConfig>,
    /// Augmentation used for the training embeddings.
    pub augment: Option<AugmentConfig>,
    /// Held-out metrics at training time.
    pub metrics: Option<Metrics>,
    /// The decision threshold of a two-class model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<Decision>,
    /// Program that wrote the file.
    pub created_by: String,
}

/// A trained model: the classifier plus what it was trained with.
#[derive(Debug, Clone, PartialEq)]
pub struct Model {
    /// Classes and head weights.
    pub classifier: Classifier,
    /// Training settings, if known.
    pub training: Option<TrainConfig>,
    /// Augmentation settings, if known.
    pub augment: Option<AugmentConfig>,
    /// Metrics at training time, if measured.
    pub metrics: Option<Metrics>,
}

impl Model {
    /// Build from a training result (the report's decision threshold becomes the classifier's).
    pub fn from_training(classifier: Classifier, training: TrainConfig, augment: AugmentConfig, report: &TrainReport) -> Self {
        let classes = classifier.classes.len();
        let mut classifier = classifier;
        classifier.decision = report.decision.clone().filter(|_| classes == 2);
        Self { classifier, training: Some(training), augment: Some(augment), metrics: report.metrics.clone() }
    }

    /// Follow a class rename: the head's outputs keep their order, only their names change, so
    /// no retraining is needed. Returns whether the model changed: nothing happens when it has
    /// no class `from`, or when `to` already names another of its outputs (a merge changes what
    /// the model should predict; that needs training again).
    pub fn rename_class(&mut self, from: &str, to: &str) -> bool {
        let classes = &mut self.classifier.classes;
        let Some(i) = classes.iter().position(|c| c == from) else { return false };
        if from == to || classes.iter().any(|c| c == to) {
            return false;
        }
        classes[i] = to.to_string();
        if let Some(m) = self.metrics.as_mut() {
            m.rename_class(from, to);
        }
        true
    }

    /// The same model deciding at a threshold the user set. The operating point is read off the
    /// validation ROC stored with the model, where there is one.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a threshold outside [0, 1] or a model without two classes.
    pub fn with_threshold(mut self, threshold: f64) -> Result<Self> {
        if !(0.0..=1.0).contains(&threshold) || self.classifier.classes.len() != 2 {
            return Err(Error::InvalidArgument(format!(
                "threshold is {threshold}; a threshold applies to two-class models and is a probability from 0 to 1"
            )));
        }
        let binary = self.metrics.as_ref().and_then(|m| m.binary.as_ref());
        // Called positive when p ≥ t: the ROC point of the lowest curve threshold still ≥ t.
        let point = binary.and_then(|b| b.roc.iter().take_while(|p| p.threshold >= threshold).last().copied());
        let n = self.metrics.as_ref().map_or(0, |m| m.n);
        self.classifier.decision = Some(Decision {
            threshold,
            rule: ThresholdRule::Fixed,
            target_sensitivity: None,
            sensitivity: point.map(|p| p.tpr),
            specificity: point.map(|p| 1.0 - p.fpr),
            n,
        });
        Ok(self)
    }

    fn meta(&self) -> ModelMeta {
        let head = &self.classifier.head;
        ModelMeta {
            features: Some(self.classifier.spec),
            backbone: None,
            classes: self.classifier.classes.clone(),
            head_kind: head.kind,
            hidden: head.hidden.as_ref().map(|h| DenseShape { d_in: h.d_in, d_out: h.d_out }),
            output: DenseShape { d_in: head.output.d_in, d_out: head.output.d_out },
            training: self.training.clone(),
            augment: self.augment.clone(),
            metrics: self.metrics.clone(),
            decision: self.classifier.decision.clone(),
            created_by: format!("headtune {}", env!("CARGO_PKG_VERSION")),
        }
    }

    fn blob(&self, out: &mut Vec<f32>) {
        let head = &self.classifier.head;
        for d in head.hidden.iter().chain(std::iter::once(&head.output)) {
            out.extend_from_slice(&d.weight);
            out.extend_from_slice(&d.bias);
        }
    }

    /// Serialise to the model file format.
    ///
    /// # Errors
    /// [`Error::ModelFile`] when the metadata is larger than the reader accepts.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let mut blob = Vec::new();
        self.blob(&mut blob);
        encode(KIND_MODEL, &meta_json(&self.meta())?, &blob)
    }

    /// Parse a model file.
    ///
    /// # Errors
    /// [`Error::ModelFile`] for a foreign, truncated, corrupted, newer-version or
    /// other-backbone file, each with its own message. A project file is refused with a hint.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let (version, kind, meta, blob) = decode(bytes)?;
        if kind == KIND_PROJECT {
            return Err(Error::ModelFile("this is a project file; load it with loadProject / --project".into()));
        }
        let meta: ModelMeta = serde_json::from_slice(meta).map_err(|e| Error::ModelFile(format!("metadata is malformed: {e}")))?;
        let mut cursor = Blob { values: &blob, at: 0 };
        let model = Self::from_meta(meta, version, None, &mut cursor)?;
        cursor.finish()?;
        Ok(model)
    }

    /// The features a model was made with. `spec_v1` is the spec of the enclosing project for a
    /// version-1 model inside it.
    fn from_meta(meta: ModelMeta, version: u16, spec_v1: Option<FeatureSpec>, blob: &mut Blob<'_>) -> Result<Self> {
        let spec = match (version, meta.features, &meta.backbone) {
            (OLDEST, _, Some(id)) => spec_v1.map_or_else(|| v1_spec(id, "the head was trained on"), Ok)?,
            (OLDEST, _, None) => return Err(Error::ModelFile("a version-1 model without a backbone id".into())),
            (_, Some(spec), _) => spec,
            (_, None, _) => return Err(Error::ModelFile("the metadata does not say how the features were made (\"features\")".into())),
        };
        check_class_names(&meta.classes)?;
        check_settings(meta.training.as_ref(), meta.augment.as_ref())?;
        if let Some(m) = &meta.metrics {
            check_metrics(m, meta.classes.len())?;
        }
        let hidden = match &meta.hidden {
            Some(s) => Some(blob.dense(s)?),
            None => None,
        };
        let output = blob.dense(&meta.output)?;
        let head = HeadWeights { kind: meta.head_kind, hidden, output };
        Ok(Self {
            classifier: Classifier::new(spec, meta.classes, head)?.with_decision(meta.decision)?,
            training: meta.training,
            augment: meta.augment,
            metrics: meta.metrics,
        })
    }
}

/// Metadata of a project file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ProjectMeta {
    /// How the embeddings were made (version 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    features: Option<FeatureSpec>,
    /// Version 1 only: the backbone id, implying [`FeatureSpec::v1`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    backbone: Option<String>,
    classes: Vec<String>,
    examples: Vec<ExampleMeta>,
    augment: AugmentConfig,
    training: Option<TrainConfig>,
    model: Option<ModelMeta>,
    extra: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct ExampleMeta {
    id: u64,
    class: usize,
    name: String,
    views: usize,
}

/// Everything a user built: examples' embeddings, settings, the trained model, and free-form
/// `extra` data of the app (the page keeps thumbnails there).
#[derive(Debug, Clone, PartialEq)]
pub struct Project {
    /// Classes and embeddings, with the features they were made with.
    pub store: Store,
    /// Augmentation used to embed the examples.
    pub augment: AugmentConfig,
    /// Last training settings.
    pub training: Option<TrainConfig>,
    /// Last trained model.
    pub model: Option<Model>,
    /// App data, stored verbatim.
    pub extra: serde_json::Value,
}

impl Project {
    /// Serialise to the project file format.
    ///
    /// # Errors
    /// [`Error::ModelFile`] when the metadata (with `extra`) is larger than the reader accepts.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let mut blob = Vec::new();
        for e in self.store.examples() {
            for v in &e.views {
                blob.extend_from_slice(v);
            }
        }
        if let Some(m) = &self.model {
            m.blob(&mut blob);
        }
        let meta = ProjectMeta {
            features: Some(*self.store.spec()),
            backbone: None,
            classes: self.store.class_names().to_vec(),
            examples: self
                .store
                .examples()
                .iter()
                .map(|e| ExampleMeta { id: e.id, class: e.class, name: e.name.clone(), views: e.views.len() })
                .collect(),
            augment: self.augment.clone(),
            training: self.training.clone(),
            model: self.model.as_ref().map(Model::meta),
            extra: self.extra.clone(),
        };
        encode(KIND_PROJECT, &meta_json(&meta)?, &blob)
    }

    /// Parse a project file.
    ///
    /// # Errors
    /// [`Error::ModelFile`] as for [`Model::from_bytes`]; a model file is refused with a hint.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let (version, kind, meta, blob) = decode(bytes)?;
        if kind == KIND_MODEL {
            return Err(Error::ModelFile("this is a model file, not a project; load it with Classifier.load / headtune predict".into()));
        }
        let meta: ProjectMeta = serde_json::from_slice(meta).map_err(|e| Error::ModelFile(format!("metadata is malformed: {e}")))?;
        let spec = match (version, meta.features, &meta.backbone) {
            (OLDEST, _, Some(id)) => v1_spec(id, "the project was made with")?,
            (OLDEST, _, None) => return Err(Error::ModelFile("a version-1 project without a backbone id".into())),
            (_, Some(spec), _) => spec,
            (_, None, _) => return Err(Error::ModelFile("the metadata does not say how the features were made (\"features\")".into())),
        };
        let dim = spec.dim();
        check_settings(meta.training.as_ref(), Some(&meta.augment))?;
        let mut cursor = Blob { values: &blob, at: 0 };
        let mut examples = Vec::with_capacity(meta.examples.len().min(blob.len() / dim.max(1)));
        for e in meta.examples {
            if e.views == 0 || e.views > 33 {
                return Err(Error::ModelFile(format!("example {} claims {} views; 1 to 33 are possible", e.id, e.views)));
            }
            let views = (0..e.views).map(|_| cursor.take(dim).map(<[f32]>::to_vec)).collect::<Result<Vec<_>>>()?;
            examples.push(Example { id: e.id, class: e.class, name: e.name, views });
        }
        let store = Store::from_parts(spec, meta.classes, examples)?;
        let model = match meta.model {
            Some(m) => Some(Model::from_meta(m, version, Some(spec), &mut cursor)?),
            None => None,
        };
        if let Some(m) = &model {
            if m.classifier.spec != spec {
                return Err(Error::ModelFile("the project's model was trained on other features than its embeddings".into()));
            }
        }
        cursor.finish()?;
        Ok(Self { store, augment: meta.augment, training: meta.training, model, extra: meta.extra })
    }
}

/// Reads consecutive arrays out of the blob, refusing to run past its end.
struct Blob<'a> {
    values: &'a [f32],
    at: usize,
}

impl Blob<'_> {
    fn take(&mut self, n: usize) -> Result<&[f32]> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.values.len()).ok_or_else(|| {
            Error::ModelFile(format!("weights are shorter than the metadata says ({} values)", self.values.len()))
        })?;
        let out = &self.values[self.at..end];
        self.at = end;
        Ok(out)
    }

    fn dense(&mut self, s: &DenseShape) -> Result<DenseWeights> {
        let limit = crate::head::MAX_LAYER_WIDTH;
        // Checked: on wasm32 `65536 × 65536` wraps to 0.
        let n = s.d_in.checked_mul(s.d_out).filter(|_| s.d_in > 0 && s.d_out > 0 && s.d_in <= limit && s.d_out <= limit);
        let Some(n) = n else {
            return Err(Error::ModelFile(format!("implausible layer shape {}×{}; layers are 1 to {limit} wide", s.d_in, s.d_out)));
        };
        let weight = self.take(n)?.to_vec();
        let bias = self.take(s.d_out)?.to_vec();
        Ok(DenseWeights { d_in: s.d_in, d_out: s.d_out, weight, bias })
    }

    fn finish(&self) -> Result<()> {
        if self.at != self.values.len() {
            return Err(Error::ModelFile(format!("{} unexpected trailing values", self.values.len() - self.at)));
        }
        Ok(())
    }
}

/// The metadata as JSON, refused when the reader would refuse it.
pub(crate) fn meta_json<T: Serialize>(meta: &T) -> Result<Vec<u8>> {
    let json = serde_json::to_vec(meta).map_err(|e| Error::ModelFile(format!("cannot write the metadata: {e}")))?;
    if json.len() > MAX_META {
        return Err(Error::ModelFile(format!(
            "the file's metadata would be {} MB; files keep at most {} MB of it — store less app data (e.g. smaller or fewer thumbnails)",
            json.len().div_ceil(1 << 20),
            MAX_META >> 20
        )));
    }
    Ok(json)
}

/// Settings read from a file pass the same checks as settings given through the API: an
/// `augment.minArea` of 5 once panicked the engine on the next image, `views: 1e9` exhausted it.
pub(crate) fn check_settings(training: Option<&TrainConfig>, augment: Option<&AugmentConfig>) -> Result<()> {
    let file = |e: Error| match e {
        Error::InvalidArgument(m) => Error::ModelFile(format!("the file's settings are invalid: {m}")),
        other => other,
    };
    if let Some(t) = training {
        t.validate().map_err(file)?;
    }
    if let Some(a) = augment {
        a.validate().map_err(file)?;
    }
    Ok(())
}

/// Metrics stored with a model describe its classes: shapes must match (the page indexes them).
fn check_metrics(m: &Metrics, classes: usize) -> Result<()> {
    let square = m.confusion.len() == classes && m.confusion.iter().all(|row| row.len() == classes);
    let counted: Option<usize> = m.confusion.iter().flatten().try_fold(0usize, |acc, &v| acc.checked_add(v));
    let binary_ok = m.binary.as_ref().is_none_or(|b| classes == 2 && b.roc.len() <= m.n.saturating_add(1));
    let unit = |v: f64| (0.0..=1.0).contains(&v);
    if !square || counted != Some(m.n) || m.per_class.len() != classes || !binary_ok || !unit(m.accuracy) || !unit(m.majority_baseline) {
        return Err(Error::ModelFile("the stored metrics do not match the model's classes".into()));
    }
    Ok(())
}

pub(crate) fn encode(kind: u8, meta: &[u8], blob: &[f32]) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(8 + 8 + meta.len() + 8 + blob.len() * 4 + 4);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.push(kind);
    out.push(0);
    out.extend_from_slice(&(meta.len() as u32).to_le_bytes());
    out.extend_from_slice(meta);
    out.extend_from_slice(&(blob.len() as u64).to_le_bytes());
    // Sized once and filled in place: pushing 4 bytes at a time (capacity checked on each push)
    // took half a second for the 12.8 M values of a 10,000-image project in the browser.
    let at = out.len();
    out.resize(at + blob.len() * 4, 0);
    for (dst, v) in out[at..].chunks_exact_mut(4).zip(blob) {
        dst.copy_from_slice(&v.to_le_bytes());
    }
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    Ok(out)
}

/// The features a model or project file (or a stored project's head part) was made with, and
/// whether it is a project, read from the metadata alone (checksum included) — so a caller can load the right backbone first.
///
/// # Errors
/// [`Error::ModelFile`] as for [`Model::from_bytes`].
pub fn file_features(bytes: &[u8]) -> Result<(bool, FeatureSpec)> {
    /// The fields both metadata kinds share.
    #[derive(Deserialize)]
    struct Head {
        #[serde(default)]
        features: Option<FeatureSpec>,
        #[serde(default)]
        backbone: Option<String>,
    }
    // The head part of a project stored as parts (`parts.rs`) names its features the same way.
    let (version, kind, meta, _) = decode_kinds(bytes, &[KIND_MODEL, KIND_PROJECT, crate::parts::KIND_HEAD])?;
    let head: Head = serde_json::from_slice(meta).map_err(|e| Error::ModelFile(format!("metadata is malformed: {e}")))?;
    let spec = match (version, head.features, head.backbone) {
        (OLDEST, _, Some(id)) => v1_spec(&id, "made with")?,
        (_, Some(spec), _) if version > OLDEST => spec,
        _ => return Err(Error::ModelFile("the metadata does not say how the features were made (\"features\")".into())),
    };
    Ok((kind != KIND_MODEL, spec))
}

/// What a version-1 file's backbone id means: [`FeatureSpec::v1`], if the id is Lite0's.
fn v1_spec(id: &str, what: &str) -> Result<FeatureSpec> {
    if id != BackboneKind::Lite0.id() {
        return Err(Error::ModelFile(format!("{what} backbone {:?}, which this headtune does not know", truncate(id, 60))));
    }
    Ok(FeatureSpec::v1())
}

/// Check framing and checksum of a model or project file; return (version, kind, meta bytes,
/// blob values).
fn decode(bytes: &[u8]) -> Result<(u16, u8, &[u8], Vec<f32>)> {
    decode_kinds(bytes, &[KIND_MODEL, KIND_PROJECT])
}

/// [`decode`] for a container of one of `kinds` (model and project files, or project parts).
pub(crate) fn decode_kinds<'a>(bytes: &'a [u8], kinds: &[u8]) -> Result<(u16, u8, &'a [u8], Vec<f32>)> {
    let bad = |m: &str| Error::ModelFile(m.to_string());
    if bytes.len() < 8 || &bytes[..8] != MAGIC {
        return Err(bad("not a headtune file (wrong magic bytes)"));
    }
    if bytes.len() < 8 + 8 + 8 + 4 {
        return Err(bad("file is truncated"));
    }
    let version = u16::from_le_bytes([bytes[8], bytes[9]]);
    if version > VERSION {
        return Err(Error::ModelFile(format!("file version {version} is newer than this headtune (reads ≤ {VERSION}); update headtune")));
    }

    let (body, tail) = bytes.split_at(bytes.len() - 4);
    let stored = u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]);
    let meta_len = u32::from_le_bytes([bytes[12], bytes[13], bytes[14], bytes[15]]) as usize;
    let meta_end = 16usize.checked_add(meta_len).filter(|&e| meta_len <= MAX_META && e + 8 <= body.len());
    let Some(meta_end) = meta_end else {
        return Err(bad("file is truncated"));
    };
    let blob_len = u64::from_le_bytes(body[meta_end..meta_end + 8].try_into().map_err(|_| bad("file is truncated"))?);
    let blob_bytes = &body[meta_end + 8..];
    if (blob_bytes.len() as u64) != blob_len.saturating_mul(4) {
        return Err(bad("file is truncated or has trailing bytes"));
    }
    if crc32fast::hash(body) != stored {
        return Err(bad("checksum mismatch: the file is corrupted"));
    }
    if version == 0 {
        return Err(bad("file version 0 does not exist: the file is damaged or not from headtune"));
    }
    if bytes[11] != 0 {
        return Err(bad("the reserved header byte is not 0: the file is damaged or from an unknown writer"));
    }
    let kind = bytes[10];
    if !kinds.contains(&kind) {
        return Err(Error::ModelFile(format!("unknown file kind {kind}")));
    }
    let blob = blob_bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
    Ok((version, kind, &body[16..meta_end], blob))
}
