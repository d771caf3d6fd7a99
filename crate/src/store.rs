//! The embedding store: per example its class and the embeddings of its evaluation view and of
//! N augmented views, all of one width (the [`FeatureSpec`]'s). No pixels are kept — an example
//! costs ≈ 5 KB per view at 1280 values, so 10 000 images with 4 views fit in 250 MB and
//! training never runs the backbone again.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::backbone::Backbone;
use crate::error::{Error, Result};
use crate::features::FeatureSpec;
use crate::image::Rgb;
use crate::preprocess::{self, CropBox, Jitter, View};
use crate::thumbnail::Seen;

/// How augmented views are drawn (all ranges symmetric around "unchanged").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct AugmentConfig {
    /// Augmented views per image, in addition to the evaluation view (0 = none).
    pub views: usize,
    /// Smallest crop, as a fraction of the evaluation crop's area (random resized crop).
    pub min_area: f64,
    /// Mirror left-right with probability ½. Turn off where handedness matters (e.g. text,
    /// some anatomy labels).
    pub flip: bool,
    /// Brightness shift range, ± fraction of full scale.
    pub brightness: f32,
    /// Contrast change range, ± fraction.
    pub contrast: f32,
    /// Seed of the view sampler; the same seed and image give the same views.
    pub seed: u64,
}

impl Default for AugmentConfig {
    fn default() -> Self {
        Self { views: 0, min_area: 0.6, flip: true, brightness: 0.1, contrast: 0.1, seed: 0 }
    }
}

impl AugmentConfig {
    /// Check the ranges, with a message naming the valid ones.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`].
    pub fn validate(&self) -> Result<()> {
        if self.views > 32 {
            return Err(Error::InvalidArgument(format!("augment views is {}; use 0 to 32", self.views)));
        }
        if !(0.1..=1.0).contains(&self.min_area) {
            return Err(Error::InvalidArgument(format!("augment minArea is {}; use 0.1 to 1", self.min_area)));
        }
        for (name, v) in [("brightness", self.brightness), ("contrast", self.contrast)] {
            if !(0.0..=0.5).contains(&v) {
                return Err(Error::InvalidArgument(format!("augment {name} is {v}; use 0 to 0.5")));
            }
        }
        Ok(())
    }

    /// The views of an image under `spec`: the evaluation view first, then
    /// `views` random ones drawn from `seed` (so they do not depend on the order images were
    /// added in).
    pub fn views_for(&self, spec: &FeatureSpec, img: &Rgb, seed: u64) -> Vec<View> {
        let eval = spec.eval_view(img);
        let mut out = vec![eval];
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed ^ seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let c = eval.crop;
        for _ in 0..self.views {
            // A box of the evaluation box's shape inside it, area in [min_area, 1], framed the
            // same way (stretched or letterboxed). `validate` keeps min_area in [0.1, 1]; the
            // fallback keeps a config that skipped it from panicking on an empty range.
            let min_area = if (0.1..=1.0).contains(&self.min_area) { self.min_area } else { 1.0 };
            let scale = rng.random_range(min_area..=1.0f64).sqrt();
            let (width, height) = ((c.width * scale).max(1.0), (c.height * scale).max(1.0));
            let x = c.x + rng.random_range(0.0..=(c.width - width).max(0.0));
            let y = c.y + rng.random_range(0.0..=(c.height - height).max(0.0));
            let flip = self.flip && rng.random_bool(0.5);
            let jitter = Jitter {
                brightness: symmetric(&mut rng, self.brightness),
                contrast: symmetric(&mut rng, self.contrast),
            };
            out.push(View { crop: CropBox { x, y, width, height }, letterbox: eval.letterbox, flip, jitter: Some(jitter) });
        }
        out
    }
}

fn symmetric(rng: &mut ChaCha8Rng, range: f32) -> f32 {
    // NaN and out-of-range values (refused by `validate`) give no jitter rather than a panic.
    if range > 0.0 && range <= 0.5 {
        rng.random_range(-range..=range)
    } else {
        0.0
    }
}

/// A stable 64-bit fingerprint of some bytes (FNV-1a), used to seed an image's views.
pub fn fingerprint(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3))
}

/// The network inputs of every view of one decoded image under `spec`: `[eval, aug1, …, augN]`.
/// Separate from [`embed_views`] so callers can preprocess on many threads and batch the network.
///
/// # Errors
/// As [`preprocess::render`].
pub fn view_inputs(img: &Rgb, spec: &FeatureSpec, augment: &AugmentConfig, seed: u64) -> Result<Vec<Vec<f32>>> {
    view_inputs_seen(img, spec, augment, seed).map(|(inputs, _)| inputs)
}

/// [`view_inputs`], with what the network saw: the evaluation view and its `S × S` pixels
/// (before normalisation), for thumbnails of what the model saw. Keeping them costs nothing:
/// the evaluation input is normalised from those pixels either way.
///
/// # Errors
/// As [`preprocess::render`].
pub fn view_inputs_seen(img: &Rgb, spec: &FeatureSpec, augment: &AugmentConfig, seed: u64) -> Result<(Vec<Vec<f32>>, Seen)> {
    let size = spec.input_size();
    let mut views = augment.views_for(spec, img, seed).into_iter();
    let view = views.next().ok_or_else(|| Error::Backend("no evaluation view".into()))?;
    let pixels = preprocess::render(img, &view, size)?;
    let mut inputs = vec![preprocess::normalise(&pixels)];
    for v in views {
        inputs.push(preprocess::preprocess(img, &v, size)?);
    }
    Ok((inputs, Seen { view, pixels }))
}

/// [`embed_views`], with what the network saw (see [`view_inputs_seen`]).
///
/// # Errors
/// As [`FeatureSpec::embed_inputs`].
pub async fn embed_views_seen(backbone: &Backbone, spec: &FeatureSpec, img: &Rgb, augment: &AugmentConfig, seed: u64) -> Result<(Vec<Vec<f32>>, Seen)> {
    let (inputs, seen) = view_inputs_seen(img, spec, augment, seed)?;
    let refs: Vec<&[f32]> = inputs.iter().map(Vec::as_slice).collect();
    Ok((spec.embed_inputs(backbone, &refs).await?, seen))
}

/// Embed every view of one decoded image under `spec`: `[eval, aug1, …, augN]`.
///
/// # Errors
/// As [`FeatureSpec::embed_inputs`].
pub async fn embed_views(backbone: &Backbone, spec: &FeatureSpec, img: &Rgb, augment: &AugmentConfig, seed: u64) -> Result<Vec<Vec<f32>>> {
    embed_views_seen(backbone, spec, img, augment, seed).await.map(|(views, _)| views)
}

/// One training example.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Example {
    /// Stable id (never reused within a store).
    pub id: u64,
    /// Index into [`Store::classes`].
    pub class: usize,
    /// Where it came from (file name), for reports.
    pub name: String,
    /// `views[0]` is the evaluation view; the rest are augmented. Each is [`Store::dim`] long.
    pub views: Vec<Vec<f32>>,
}

/// Summary of one class.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassInfo {
    /// Class name.
    pub name: String,
    /// Number of examples.
    pub count: usize,
}

/// Classes and their examples' embeddings, all made under one [`FeatureSpec`].
#[derive(Debug, Clone, PartialEq)]
pub struct Store {
    spec: FeatureSpec,
    classes: Vec<String>,
    examples: Vec<Example>,
    next_id: u64,
}

impl Store {
    /// Make the embeddings of an empty store under `spec` (the engine fixes an `auto` crop at
    /// the first image).
    ///
    /// # Errors
    /// [`Error::Data`] if the store already holds examples (they were made another way).
    pub fn respec(&mut self, spec: FeatureSpec) -> Result<()> {
        if !self.examples.is_empty() {
            return Err(Error::Data("the store already holds embeddings made another way".into()));
        }
        self.spec = spec;
        Ok(())
    }

    /// An empty store for embeddings made under `spec`.
    pub fn new(spec: FeatureSpec) -> Self {
        Self { spec, classes: Vec::new(), examples: Vec::new(), next_id: 0 }
    }

    /// How the embeddings were made.
    pub fn spec(&self) -> &FeatureSpec {
        &self.spec
    }

    /// Values per embedding.
    pub fn dim(&self) -> usize {
        self.spec.dim()
    }

    /// Class names, in the order their indices refer to.
    pub fn class_names(&self) -> &[String] {
        &self.classes
    }

    /// Classes with their example counts.
    pub fn classes(&self) -> Vec<ClassInfo> {
        let counts = self.counts();
        self.classes.iter().zip(counts).map(|(name, count)| ClassInfo { name: name.clone(), count }).collect()
    }

    /// Examples per class index.
    pub fn counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.classes.len()];
        for e in &self.examples {
            counts[e.class] += 1;
        }
        counts
    }

    /// All examples.
    pub fn examples(&self) -> &[Example] {
        &self.examples
    }

    /// Number of examples.
    pub fn len(&self) -> usize {
        self.examples.len()
    }

    /// Whether there are no examples.
    pub fn is_empty(&self) -> bool {
        self.examples.is_empty()
    }

    /// The id the next added example gets (ids are never reused within a store).
    pub fn next_id(&self) -> u64 {
        self.next_id
    }

    /// Never hand out ids below `next_id` (a store restored from parts remembers the ids of
    /// examples removed before it was saved, so a new example cannot take a removed one's id).
    ///
    /// # Errors
    /// [`Error::ModelFile`] when `next_id` is past [`MAX_ID`] + 1.
    pub fn reserve_ids(&mut self, next_id: u64) -> Result<()> {
        if next_id > MAX_ID + 1 {
            return Err(Error::ModelFile(format!("the next example id {next_id} is above {MAX_ID}")));
        }
        self.next_id = self.next_id.max(next_id);
        Ok(())
    }

    /// Index of a class, if it exists.
    pub fn class_index(&self, name: &str) -> Option<usize> {
        self.classes.iter().position(|c| c == name)
    }

    /// Index of a class, creating it if needed.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for an empty or over-long name.
    pub fn ensure_class(&mut self, name: &str) -> Result<usize> {
        let name = check_class_name(name)?;
        Ok(match self.class_index(&name) {
            Some(i) => i,
            None if self.classes.len() >= MAX_CLASSES => {
                return Err(Error::InvalidArgument(format!("there are already {MAX_CLASSES} classes, the most a model can have")));
            }
            None => {
                self.classes.push(name);
                self.classes.len() - 1
            }
        })
    }

    /// Add an example with its view embeddings; returns its id.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a bad class name or embeddings of the wrong width.
    pub fn add(&mut self, class: &str, name: &str, views: Vec<Vec<f32>>) -> Result<u64> {
        check_views(&views, self.dim()).map_err(|m| Error::InvalidArgument(format!("{m} ({})", self.spec.describe())))?;
        if name.chars().count() > MAX_NAME_CHARS {
            return Err(Error::InvalidArgument(format!("example name is longer than {MAX_NAME_CHARS} characters")));
        }
        let class = self.ensure_class(class)?;
        let id = self.next_id;
        self.next_id += 1;
        self.examples.push(Example { id, class, name: name.to_string(), views });
        Ok(id)
    }

    /// Remove one example.
    ///
    /// # Errors
    /// [`Error::Data`] when no example has this id.
    pub fn remove(&mut self, id: u64) -> Result<Example> {
        let i = self.position(id)?;
        Ok(self.examples.remove(i))
    }

    /// Move an example to another class (created if needed).
    ///
    /// # Errors
    /// [`Error::Data`] for an unknown id, [`Error::InvalidArgument`] for a bad class name.
    pub fn relabel(&mut self, id: u64, class: &str) -> Result<()> {
        let i = self.position(id)?;
        let c = self.ensure_class(class)?;
        self.examples[i].class = c;
        Ok(())
    }

    /// Rename a class. Renaming onto another existing class merges the two. Returns the name
    /// as stored (trimmed).
    ///
    /// # Errors
    /// [`Error::Data`] when `from` does not exist, [`Error::InvalidArgument`] for a bad name.
    pub fn rename_class(&mut self, from: &str, to: &str) -> Result<String> {
        let i = self.class_index(from).ok_or_else(|| unknown_class(from, &self.classes))?;
        let to = check_class_name(to)?;
        match self.class_index(&to) {
            Some(j) if j != i => {
                for e in &mut self.examples {
                    if e.class == i {
                        e.class = j;
                    }
                }
                self.drop_class_index(i);
            }
            _ => self.classes[i] = to.clone(),
        }
        Ok(to)
    }

    /// Delete a class and all its examples; returns how many examples went with it.
    ///
    /// # Errors
    /// [`Error::Data`] when the class does not exist.
    pub fn remove_class(&mut self, name: &str) -> Result<usize> {
        let i = self.class_index(name).ok_or_else(|| unknown_class(name, &self.classes))?;
        let before = self.examples.len();
        self.examples.retain(|e| e.class != i);
        let removed = before - self.examples.len();
        self.drop_class_index(i);
        Ok(removed)
    }

    fn drop_class_index(&mut self, i: usize) {
        self.classes.remove(i);
        for e in &mut self.examples {
            if e.class > i {
                e.class -= 1;
            }
        }
    }

    fn position(&self, id: u64) -> Result<usize> {
        self.examples.iter().position(|e| e.id == id).ok_or_else(|| Error::Data(format!("no example with id {id}")))
    }

    /// Rebuild a store from parts (used when loading a project file), checking everything
    /// [`Store::add`] and [`Store::ensure_class`] would have refused, so that a crafted file
    /// cannot put into a store what the API never lets in.
    ///
    /// # Errors
    /// [`Error::ModelFile`]: bad or duplicate class names, an example of a missing class, a
    /// duplicate or too large id, malformed (not the spec's width), non-finite or implausibly
    /// large embeddings, an over-long name.
    pub fn from_parts(spec: FeatureSpec, classes: Vec<String>, examples: Vec<Example>) -> Result<Self> {
        check_class_names(&classes)?;
        let dim = spec.dim();
        let mut ids = std::collections::HashSet::with_capacity(examples.len());
        for e in &examples {
            if e.class >= classes.len() {
                return Err(Error::ModelFile(format!("example {} refers to class {} of {}", e.id, e.class, classes.len())));
            }
            if e.id > MAX_ID {
                return Err(Error::ModelFile(format!("example id {} is above {MAX_ID}", e.id)));
            }
            if !ids.insert(e.id) {
                return Err(Error::ModelFile(format!("example id {} appears twice", e.id)));
            }
            check_views(&e.views, dim).map_err(|m| Error::ModelFile(format!("example {}: {m}", e.id)))?;
            if e.name.chars().count() > MAX_NAME_CHARS {
                return Err(Error::ModelFile(format!("example {} has a name longer than {MAX_NAME_CHARS} characters", e.id)));
            }
        }
        // Ids are ≤ MAX_ID, so this cannot overflow.
        let next_id = examples.iter().map(|e| e.id + 1).max().unwrap_or(0);
        Ok(Self { spec, classes, examples, next_id })
    }
}

/// Most classes a store (and a model) may have.
pub const MAX_CLASSES: usize = 1000;
/// Longest class name, in characters.
pub const MAX_CLASS_CHARS: usize = 100;
/// Longest example name (a file name or path), in characters.
pub const MAX_NAME_CHARS: usize = 4096;
/// Largest example id: ids stay exact as JS numbers (2⁵³), and `id + 1` never overflows.
pub const MAX_ID: u64 = (1 << 53) - 1;
/// Largest magnitude of an embedding value. Embeddings are pooled activations of the network,
/// a few units at most; far larger values come from a damaged or crafted file and would
/// overflow the f32 sums of training and prediction (see `HeadWeights::validate`).
pub const MAX_EMBEDDING_ABS: f32 = 1e6;

/// One or more views of `dim` finite values of plausible size, at most 33 (the evaluation view
/// and up to 32 augmented ones).
fn check_views(views: &[Vec<f32>], dim: usize) -> std::result::Result<(), String> {
    if views.is_empty() || views.len() > 33 || views.iter().any(|v| v.len() != dim) {
        return Err(format!("an example needs 1 to 33 embeddings of {dim} values"));
    }
    if let Some(v) = views.iter().flatten().find(|v| !(v.abs() <= MAX_EMBEDDING_ABS)) {
        return Err(format!("embedding contains {v}; values are finite and within ±{MAX_EMBEDDING_ABS:e}"));
    }
    Ok(())
}

/// A class name as stored: trimmed, not empty, at most [`MAX_CLASS_CHARS`] characters, no control
/// characters (they would reach terminals and reports raw: ESC sequences, carriage returns).
///
/// # Errors
/// [`Error::InvalidArgument`] saying which rule the name breaks.
pub fn check_class_name(name: &str) -> Result<String> {
    let name = name.trim();
    if name.is_empty() {
        return Err(Error::InvalidArgument("class name is empty".into()));
    }
    if name.chars().count() > MAX_CLASS_CHARS {
        return Err(Error::InvalidArgument(format!("class name is longer than {MAX_CLASS_CHARS} characters")));
    }
    if let Some(c) = name.chars().find(|c| c.is_control()) {
        return Err(Error::InvalidArgument(format!("class name {:?} contains the control character {c:?}", shorten(name, 40))));
    }
    Ok(name.to_string())
}

/// Class names as read from a file: each valid as stored (already trimmed), no duplicates, at
/// most [`MAX_CLASSES`].
///
/// # Errors
/// [`Error::ModelFile`] naming the first offending class.
pub fn check_class_names(classes: &[String]) -> Result<()> {
    if classes.len() > MAX_CLASSES {
        return Err(Error::ModelFile(format!("{} classes; the most is {MAX_CLASSES}", classes.len())));
    }
    for (i, name) in classes.iter().enumerate() {
        match check_class_name(name) {
            Ok(clean) if clean == *name => {}
            Ok(_) => return Err(Error::ModelFile(format!("class {i} name {:?} has spaces around it", shorten(name, 40)))),
            Err(Error::InvalidArgument(m)) => return Err(Error::ModelFile(format!("class {i}: {m}"))),
            Err(e) => return Err(e),
        }
        if classes[..i].contains(name) {
            return Err(Error::ModelFile(format!("class {:?} appears twice", shorten(name, 40))));
        }
    }
    Ok(())
}

/// At most `max` characters of `s`, with "…" when cut: for echoing untrusted text in messages.
pub fn shorten(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(max).collect::<String>())
    }
}

fn unknown_class(name: &str, classes: &[String]) -> Error {
    Error::Data(format!("no class named {name:?}; classes are {classes:?}"))
}
