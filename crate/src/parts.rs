//! A project kept as parts, for storage that is written piecemeal (the page's IndexedDB): each
//! save writes only what changed since the last one, and the whole project file is built only
//! when it is exported.
//!
//! The parts, each in the framing of the model and project files (magic, version, kind, JSON,
//! f32 blob, CRC32 — so every one is checksummed and read under the same limits):
//! ```text
//! "head"      kind 3  features, class names, settings, the next example id, the live chunks
//! "labels"    kind 4  every example's id and class index, in the store's order
//! "model"     kind 1  the trained model, as a model file (absent without a model)
//! "extra"     kind 5  the app's data (JSON)
//! "chunk-N"   kind 6  a batch of examples: ids, names, view counts, and their embeddings
//! ```
//! Chunks are written once and never changed: adding images writes one new chunk (plus the
//! labels); a rename writes the head (and the model, whose labels follow); a threshold writes
//! the model; app settings write `extra`. An example removed or merged away stays in its chunk
//! as a dead entry — the labels no longer list it — until its chunk is more than a quarter dead,
//! when the chunk's live examples are written into a new one and it is deleted (a small last
//! chunk is likewise merged with the next save's new examples, so adding images one at a time
//! does not leave thousands of tiny chunks).
//!
//! A save is described as [`Changes`] — records to put and to delete, or everything after a
//! clear — that the caller applies in one transaction. The [`Tracker`] remembers what the
//! storage holds: the generation the caller passes back (`since`) says whether the last save was
//! committed; an unknown one (or none) makes the next save a whole one. Loading
//! ([`Tracker::load`]) checks every part as [`Project::from_bytes`] checks a file, through the
//! same [`Store::from_parts`] and [`Model::from_bytes`], and the writer refuses what it would.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::features::FeatureSpec;
use crate::project::{check_settings, decode_kinds, encode, meta_json, Model, Project, MAX_META};
use crate::store::{AugmentConfig, Example, Store};
use crate::train::TrainConfig;

/// Kind of the head part (which, like a project file, says how the embeddings were made).
pub(crate) const KIND_HEAD: u8 = 3;
const KIND_LABELS: u8 = 4;
const KIND_EXTRA: u8 = 5;
const KIND_CHUNK: u8 = 6;

/// Key of the head part.
pub const HEAD: &str = "head";
const LABELS: &str = "labels";
const MODEL: &str = "model";
const EXTRA: &str = "extra";
const CHUNK_PREFIX: &str = "chunk-";

/// Most embedding values one chunk holds (4 MiB): big enough that 10,000 images are a few dozen
/// records, small enough that rewriting one (compaction) stays quick.
const CHUNK_VALUES: usize = 1 << 20;
/// A last chunk with fewer examples than this is merged with the next save's new examples.
const SMALL_CHUNK: usize = 128;

/// The parts of a stored project, by key.
pub type Parts = BTreeMap<String, Vec<u8>>;

/// What one save writes.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Changes {
    /// Pass this back as `since` once the changes are stored.
    pub generation: u64,
    /// The storage must be emptied first: this is a whole project, not an update.
    pub clear: bool,
    /// Records to write, by key.
    pub put: Vec<(String, Vec<u8>)>,
    /// Records to delete.
    pub remove: Vec<String>,
}

impl Changes {
    /// Bytes written by this save.
    pub fn bytes(&self) -> usize {
        self.put.iter().map(|(_, b)| b.len()).sum()
    }
}

/// What a project holds, borrowed (the engine keeps these fields apart).
#[derive(Debug, Clone, Copy)]
pub struct ProjectRef<'a> {
    /// Classes and embeddings.
    pub store: &'a Store,
    /// Augmentation used to embed the examples.
    pub augment: &'a AugmentConfig,
    /// Last training settings.
    pub training: Option<&'a TrainConfig>,
    /// Last trained model.
    pub model: Option<&'a Model>,
    /// App data.
    pub extra: &'a serde_json::Value,
}

impl Project {
    /// This project, borrowed as [`Tracker::changes`] reads it.
    pub fn as_parts(&self) -> ProjectRef<'_> {
        ProjectRef { store: &self.store, augment: &self.augment, training: self.training.as_ref(), model: self.model.as_ref(), extra: &self.extra }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct HeadMeta {
    features: FeatureSpec,
    classes: Vec<String>,
    augment: AugmentConfig,
    training: Option<TrainConfig>,
    /// Ids below this were handed out (some to examples since removed): never reused.
    next_id: u64,
    next_chunk: u64,
    /// The chunks holding the examples, in the order they were written.
    chunks: Vec<u64>,
    model: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct LabelsMeta {
    ids: Vec<u64>,
    classes: Vec<usize>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ChunkMeta {
    examples: Vec<ChunkExample>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ChunkExample {
    id: u64,
    name: String,
    views: usize,
}

/// One stored chunk: its number and the ids it holds (live or dead).
#[derive(Debug, Clone, PartialEq)]
struct Chunk {
    key: u64,
    ids: Vec<u64>,
}

/// What the storage holds after a save: the bytes of the small parts (to tell whether they
/// changed) and the chunks.
#[derive(Debug, Clone, PartialEq)]
struct Snapshot {
    generation: u64,
    head: Vec<u8>,
    labels: Vec<u8>,
    model: Option<Vec<u8>>,
    extra: Vec<u8>,
    chunks: Vec<Chunk>,
    next_chunk: u64,
}

/// Remembers what the storage holds, so that each save writes only what changed.
#[derive(Debug, Clone, Default)]
pub struct Tracker {
    /// What the storage holds for certain (the last save confirmed by `since`).
    saved: Option<Snapshot>,
    /// The last save handed out, not yet confirmed.
    pending: Option<Snapshot>,
    last_generation: u64,
}

fn chunk_key(n: u64) -> String {
    format!("{CHUNK_PREFIX}{n}")
}

fn part_error(key: &str, e: Error) -> Error {
    match e {
        Error::ModelFile(m) => Error::ModelFile(format!("saved part {key:?}: {m}")),
        other => other,
    }
}

/// The JSON of a part of `kind` (its blob must be empty), checked and parsed.
fn read_json<T: serde::de::DeserializeOwned>(parts: &Parts, key: &str, kind: u8) -> Result<T> {
    let bytes = parts.get(key).ok_or_else(|| Error::ModelFile(format!("the saved project has no {key:?} part")))?;
    let (_, _, meta, blob) = decode_kinds(bytes, &[kind]).map_err(|e| part_error(key, e))?;
    if !blob.is_empty() {
        return Err(Error::ModelFile(format!("saved part {key:?} has {} unexpected values", blob.len())));
    }
    serde_json::from_slice(meta).map_err(|e| Error::ModelFile(format!("saved part {key:?} is malformed: {e}")))
}

impl Tracker {
    /// Restore a project from its parts (as [`Changes`] wrote them; other keys are ignored),
    /// checking everything a project file's reader checks. The tracker returned knows the
    /// storage holds exactly these parts, as generation [`Tracker::generation`].
    ///
    /// # Errors
    /// [`Error::ModelFile`] naming the part that is missing, damaged or inconsistent.
    pub fn load(parts: &Parts) -> Result<(Project, Tracker)> {
        let head: HeadMeta = read_json(parts, HEAD, KIND_HEAD)?;
        check_settings(head.training.as_ref(), Some(&head.augment))?;
        let labels: LabelsMeta = read_json(parts, LABELS, KIND_LABELS)?;
        if labels.ids.len() != labels.classes.len() {
            return Err(Error::ModelFile(format!("saved labels list {} ids and {} classes", labels.ids.len(), labels.classes.len())));
        }
        let extra: serde_json::Value = read_json(parts, EXTRA, KIND_EXTRA)?;
        let dim = head.features.dim();
        let mut found: HashMap<u64, (String, Vec<Vec<f32>>)> = HashMap::with_capacity(labels.ids.len());
        let live: HashSet<u64> = labels.ids.iter().copied().collect();
        let mut chunks = Vec::with_capacity(head.chunks.len());
        let mut seen = HashSet::new();
        for &n in &head.chunks {
            let key = chunk_key(n);
            if n >= head.next_chunk || !seen.insert(n) {
                return Err(Error::ModelFile(format!("the saved head lists chunk {n} wrongly (twice, or not yet numbered)")));
            }
            let bytes = parts.get(&key).ok_or_else(|| Error::ModelFile(format!("the saved project is missing its part {key:?}")))?;
            let (_, _, meta, blob) = decode_kinds(bytes, &[KIND_CHUNK]).map_err(|e| part_error(&key, e))?;
            let meta: ChunkMeta = serde_json::from_slice(meta).map_err(|e| Error::ModelFile(format!("saved part {key:?} is malformed: {e}")))?;
            let mut at = 0usize;
            let mut ids = Vec::with_capacity(meta.examples.len());
            for e in meta.examples {
                if e.views == 0 || e.views > 33 {
                    return Err(Error::ModelFile(format!("example {} claims {} views; 1 to 33 are possible", e.id, e.views)));
                }
                let end = e.views.checked_mul(dim).and_then(|n| at.checked_add(n)).filter(|&end| end <= blob.len());
                let end = end.ok_or_else(|| Error::ModelFile(format!("saved part {key:?} has fewer values than its examples need")))?;
                if live.contains(&e.id) {
                    let views = blob[at..end].chunks_exact(dim.max(1)).map(<[f32]>::to_vec).collect();
                    if found.insert(e.id, (e.name, views)).is_some() {
                        return Err(Error::ModelFile(format!("example {} is stored twice", e.id)));
                    }
                }
                ids.push(e.id);
                at = end;
            }
            if at != blob.len() {
                return Err(Error::ModelFile(format!("saved part {key:?} has {} unexpected trailing values", blob.len() - at)));
            }
            chunks.push(Chunk { key: n, ids });
        }
        let mut examples = Vec::with_capacity(labels.ids.len());
        for (&id, &class) in labels.ids.iter().zip(&labels.classes) {
            let (name, views) = found.remove(&id).ok_or_else(|| Error::ModelFile(format!("the embeddings of example {id} are missing from the saved project")))?;
            examples.push(Example { id, class, name, views });
        }
        let mut store = Store::from_parts(head.features, head.classes.clone(), examples)?;
        store.reserve_ids(head.next_id)?;
        let model = match (head.model, parts.get(MODEL)) {
            (false, _) => None,
            (true, None) => return Err(Error::ModelFile("the saved project has no \"model\" part".into())),
            (true, Some(bytes)) => Some(Model::from_bytes(bytes).map_err(|e| part_error(MODEL, e))?),
        };
        if model.as_ref().is_some_and(|m| m.classifier.spec != head.features) {
            return Err(Error::ModelFile("the project's model was trained on other features than its embeddings".into()));
        }
        let project = Project { store, augment: head.augment, training: head.training, model, extra };
        // What is stored, as the writer would describe it: an unchanged project saves nothing.
        let snapshot = Snapshot {
            generation: 1,
            head: parts[HEAD].clone(),
            labels: parts[LABELS].clone(),
            model: if head.model { parts.get(MODEL).cloned() } else { None },
            extra: parts[EXTRA].clone(),
            chunks,
            next_chunk: head.next_chunk,
        };
        let tracker = Tracker { saved: Some(snapshot), pending: None, last_generation: 1 };
        Ok((project, tracker))
    }

    /// The generation the storage held when this tracker was made by [`Tracker::load`] (0 for
    /// a tracker of a project not stored as parts).
    pub fn generation(&self) -> u64 {
        self.saved.as_ref().map_or(0, |s| s.generation)
    }

    /// What to write so that the storage holds `project`. `since` is the generation of the last
    /// save the caller stored (`None`: the storage holds nothing of this project yet). On an
    /// error nothing changes: the next call with the same `since` is as if this one never was.
    ///
    /// # Errors
    /// [`Error::ModelFile`] when a part would be refused by [`Tracker::load`] or the project
    /// could not be exported as one file (metadata over the limit).
    pub fn changes(&mut self, project: ProjectRef<'_>, since: Option<u64>) -> Result<Changes> {
        let confirms_pending = since.is_some() && self.pending.as_ref().map(|p| p.generation) == since;
        let base = if confirms_pending {
            self.pending.as_ref()
        } else {
            self.saved.as_ref().filter(|s| since == Some(s.generation))
        };
        let store = project.store;
        let live: HashMap<u64, &Example> = store.examples().iter().map(|e| (e.id, e)).collect();
        let old_chunks = base.map_or(&[][..], |b| &b.chunks[..]);
        let stored: HashSet<u64> = old_chunks.iter().flat_map(|c| c.ids.iter().copied()).collect();
        let mut rewrite: Vec<u64> = store.examples().iter().map(|e| e.id).filter(|id| !stored.contains(id)).collect();
        let has_new = !rewrite.is_empty();
        let mut chunks = Vec::new();
        let mut remove = Vec::new();
        for (i, chunk) in old_chunks.iter().enumerate() {
            let alive: Vec<u64> = chunk.ids.iter().copied().filter(|id| live.contains_key(id)).collect();
            let dead = chunk.ids.len() - alive.len();
            let merge_small = has_new && i + 1 == old_chunks.len() && chunk.ids.len() < SMALL_CHUNK;
            if !alive.is_empty() && 4 * dead <= chunk.ids.len() && !merge_small {
                chunks.push(chunk.clone());
            } else {
                remove.push(chunk_key(chunk.key));
                rewrite.extend(alive);
            }
        }
        // Written in the store's order, so that a chunk holds neighbours.
        let order: HashMap<u64, usize> = store.examples().iter().enumerate().map(|(i, e)| (e.id, i)).collect();
        rewrite.sort_by_key(|id| order.get(id).copied().unwrap_or(usize::MAX));
        let mut next_chunk = base.map_or(0, |b| b.next_chunk);
        let mut put = Vec::new();
        let mut batch: Vec<&Example> = Vec::new();
        let mut values = 0usize;
        for id in &rewrite {
            let Some(&e) = live.get(id) else { continue };
            let n = e.views.len() * store.dim();
            if !batch.is_empty() && values + n > CHUNK_VALUES {
                put.push(new_chunk(&mut batch, &mut next_chunk, &mut chunks)?);
                values = 0;
            }
            batch.push(e);
            values += n;
        }
        if !batch.is_empty() {
            put.push(new_chunk(&mut batch, &mut next_chunk, &mut chunks)?);
        }

        let head = HeadMeta {
            features: *store.spec(),
            classes: store.class_names().to_vec(),
            augment: project.augment.clone(),
            training: project.training.cloned(),
            next_id: store.next_id(),
            next_chunk,
            chunks: chunks.iter().map(|c| c.key).collect(),
            model: project.model.is_some(),
        };
        let labels = LabelsMeta { ids: store.examples().iter().map(|e| e.id).collect(), classes: store.examples().iter().map(|e| e.class).collect() };
        let snapshot = Snapshot {
            generation: self.last_generation + 1,
            head: encode(KIND_HEAD, &meta_json(&head)?, &[])?,
            labels: encode(KIND_LABELS, &meta_json(&labels)?, &[])?,
            model: project.model.map(Model::to_bytes).transpose()?,
            extra: encode(KIND_EXTRA, &meta_json(project.extra)?, &[])?,
            chunks,
            next_chunk,
        };
        check_exportable(&snapshot, store)?;
        let mut small = vec![(HEAD, Some(&snapshot.head), base.map(|b| Some(&b.head))), (LABELS, Some(&snapshot.labels), base.map(|b| Some(&b.labels)))];
        small.push((MODEL, snapshot.model.as_ref(), base.map(|b| b.model.as_ref())));
        small.push((EXTRA, Some(&snapshot.extra), base.map(|b| Some(&b.extra))));
        for (key, now, before) in small {
            match (now, before) {
                (Some(now), Some(Some(old))) if now == old => {}
                (Some(now), _) => put.push((key.to_string(), now.clone())),
                (None, Some(Some(_))) => remove.push(key.to_string()),
                (None, _) => {}
            }
        }
        let clear = base.is_none();
        self.last_generation = snapshot.generation;
        if confirms_pending {
            // `since` says that save was stored: it is what the storage holds now.
            self.saved = self.pending.take();
        }
        self.pending = Some(snapshot);
        Ok(Changes { generation: self.last_generation, clear, put, remove })
    }
}

/// Write `batch` as the next chunk: its record, and its entry in `chunks`.
fn new_chunk(batch: &mut Vec<&Example>, next_chunk: &mut u64, chunks: &mut Vec<Chunk>) -> Result<(String, Vec<u8>)> {
    let record = (chunk_key(*next_chunk), chunk_bytes(batch)?);
    let mut ids: Vec<u64> = batch.iter().map(|e| e.id).collect();
    ids.sort_unstable();
    chunks.push(Chunk { key: *next_chunk, ids });
    *next_chunk += 1;
    batch.clear();
    Ok(record)
}

/// A chunk part holding `examples`.
fn chunk_bytes(examples: &[&Example]) -> Result<Vec<u8>> {
    let meta = ChunkMeta { examples: examples.iter().map(|e| ChunkExample { id: e.id, name: e.name.clone(), views: e.views.len() }).collect() };
    let blob: Vec<f32> = examples.iter().flat_map(|e| e.views.iter().flatten().copied()).collect();
    encode(KIND_CHUNK, &meta_json(&meta)?, &blob)
}

/// The project must stay exportable as one file, whose metadata lists every example with its
/// name beside the app data: refuse a save the export would refuse (an upper bound, counted
/// from the parts' sizes, so nothing is serialised twice).
fn check_exportable(s: &Snapshot, store: &Store) -> Result<()> {
    let names: usize = store.examples().iter().map(|e| e.name.len() * 6 + 64).sum();
    let bound = s.head.len() + s.extra.len() + s.model.as_ref().map_or(0, Vec::len) + names;
    if bound > MAX_META {
        return Err(Error::ModelFile(format!(
            "the project's metadata (names, app data) could reach {} MB, and project files keep at most {} MB of it — store less app data",
            bound.div_ceil(1 << 20),
            MAX_META >> 20
        )));
    }
    Ok(())
}
