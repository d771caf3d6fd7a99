//! A project stored as parts (crate/src/parts.rs): each save writes only what changed, a save
//! that was not stored is written again, and loading refuses damaged or inconsistent parts.

use headtune::features::FeatureSpec;
use headtune::head::{DenseWeights, HeadKind, HeadWeights};
use headtune::parts::{Changes, Parts, Tracker};
use headtune::predict::Classifier;
use headtune::project::{Model, Project, MAX_META};
use headtune::store::{AugmentConfig, Store};

mod common;
use common::with_meta;

fn model(classes: &[&str]) -> Model {
    let d_out = classes.len();
    let output = DenseWeights { d_in: 1280, d_out, weight: (0..1280 * d_out).map(|i| (i as f32 * 0.37).sin() * 0.01).collect(), bias: vec![0.0; d_out] };
    let classifier = Classifier::new(FeatureSpec::v1(), classes.iter().map(|c| c.to_string()).collect(), HeadWeights { kind: HeadKind::Linear, hidden: None, output })
        .expect("valid classifier");
    Model { classifier, training: None, augment: None, metrics: None }
}

fn embedding(i: usize) -> Vec<f32> {
    (0..1280).map(|j| ((i * 31 + j) as f32 * 0.01).sin()).collect()
}

/// `n` examples alternating between classes a and b, one view each, a two-class model.
fn project(n: usize) -> Project {
    let mut store = Store::new(FeatureSpec::v1());
    for i in 0..n {
        store.add(["a", "b"][i % 2], &format!("img-{i}.png"), vec![embedding(i)]).expect("add");
    }
    Project { store, augment: AugmentConfig::default(), training: None, model: Some(model(&["a", "b"])), extra: serde_json::json!({ "note": "first" }) }
}

/// Apply a save to the stored parts, as the page's one IndexedDB transaction does.
fn apply(parts: &mut Parts, c: &Changes) {
    if c.clear {
        parts.clear();
    }
    for key in &c.remove {
        parts.remove(key);
    }
    for (key, bytes) in &c.put {
        parts.insert(key.clone(), bytes.clone());
    }
}

/// The keys a save writes, every chunk as "chunk".
fn keys(c: &Changes) -> Vec<&str> {
    let mut k: Vec<&str> = c.put.iter().map(|(k, _)| if k.starts_with("chunk-") { "chunk" } else { k.as_str() }).collect();
    k.sort_unstable();
    k
}

/// Save `p` (confirming the previous save), store it, and check the stored parts load back as `p`.
fn save(tracker: &mut Tracker, since: &mut Option<u64>, parts: &mut Parts, p: &Project) -> Changes {
    let c = tracker.changes(p.as_parts(), *since).expect("saves");
    apply(parts, &c);
    *since = Some(c.generation);
    let (back, _) = Tracker::load(parts).expect("the stored parts load");
    assert_eq!(&back, p, "the stored parts are the project");
    c
}

#[test]
fn a_whole_save_loads_back_as_the_same_project() {
    let mut p = project(300);
    p.store.remove(7).expect("remove");
    let mut parts = Parts::new();
    let c = Tracker::default().changes(p.as_parts(), None).expect("saves");
    assert!(c.clear, "nothing is stored yet: a whole save");
    assert_eq!(keys(&c), ["chunk", "extra", "head", "labels", "model"]);
    apply(&mut parts, &c);
    let (back, tracker) = Tracker::load(&parts).expect("loads");
    assert_eq!(back, p);
    assert_eq!(back.store.examples().iter().map(|e| e.id).collect::<Vec<_>>(), p.store.examples().iter().map(|e| e.id).collect::<Vec<_>>(), "same order");
    // A loaded tracker knows what is stored: saving the unchanged project writes nothing.
    let mut tracker = tracker;
    let again = tracker.changes(back.as_parts(), Some(tracker.generation())).expect("saves");
    assert!(!again.clear && again.put.is_empty() && again.remove.is_empty(), "{:?}", keys(&again));
    // The whole project file of the export is the same project.
    assert_eq!(Project::from_bytes(&back.to_bytes().expect("exports")).expect("reads"), p);
}

#[test]
fn each_change_writes_only_what_it_changed() {
    let mut p = project(1000);
    let (mut tracker, mut since, mut parts) = (Tracker::default(), None, Parts::new());
    let whole = save(&mut tracker, &mut since, &mut parts, &p);
    let total = whole.bytes();
    assert!(total > 1000 * 1280 * 4);

    // Adding images writes their chunk, the labels and the head (its chunk list): nothing old.
    for i in 1000..1010 {
        p.store.add("b", &format!("new-{i}.png"), vec![embedding(i)]).expect("add");
    }
    let c = save(&mut tracker, &mut since, &mut parts, &p);
    assert_eq!(keys(&c), ["chunk", "head", "labels"]);
    assert!(c.remove.is_empty());
    assert!(c.bytes() < 10 * 1280 * 4 + 40_000, "{} bytes for 10 images", c.bytes());

    // A rename writes the head and the model (its labels follow), a few KB, not the project.
    p.store.rename_class("a", "cat").expect("rename");
    assert!(p.model.as_mut().expect("model").rename_class("a", "cat"));
    let c = save(&mut tracker, &mut since, &mut parts, &p);
    assert_eq!(keys(&c), ["head", "model"]);
    assert!(c.bytes() * 100 < total, "a rename wrote {} of {total} bytes", c.bytes());

    // A threshold writes the model only; the app's settings write `extra` only.
    p.model = Some(p.model.take().expect("model").with_threshold(0.3).expect("threshold"));
    assert_eq!(keys(&save(&mut tracker, &mut since, &mut parts, &p)), ["model"]);
    p.extra = serde_json::json!({ "note": "second", "settings": { "epochs": 80 } });
    assert_eq!(keys(&save(&mut tracker, &mut since, &mut parts, &p)), ["extra"]);
    // Training settings are the head's.
    p.training = Some(headtune::train::TrainConfig::default());
    assert_eq!(keys(&save(&mut tracker, &mut since, &mut parts, &p)), ["head"]);

    // Removing or relabelling an image writes the labels only: its embedding stays, dead.
    p.store.remove(3).expect("remove");
    p.store.relabel(4, "b").expect("relabel");
    let c = save(&mut tracker, &mut since, &mut parts, &p);
    assert_eq!(keys(&c), ["labels"]);
    assert!(c.remove.is_empty());

    // No change, nothing written.
    let c = save(&mut tracker, &mut since, &mut parts, &p);
    assert!(c.put.is_empty() && c.remove.is_empty());

    // No model any more: its part goes.
    p.model = None;
    let c = save(&mut tracker, &mut since, &mut parts, &p);
    assert_eq!((keys(&c), c.remove.clone()), (vec!["head"], vec!["model".to_string()]));
}

#[test]
fn dead_embeddings_are_compacted_once_a_quarter_of_a_chunk() {
    let mut p = project(600);
    let (mut tracker, mut since, mut parts) = (Tracker::default(), None, Parts::new());
    save(&mut tracker, &mut since, &mut parts, &p);
    // A quarter of the chunk dead: still kept as it is.
    for id in 0..150 {
        p.store.remove(id).expect("remove");
    }
    let c = save(&mut tracker, &mut since, &mut parts, &p);
    assert_eq!(keys(&c), ["labels"]);
    // One more: the chunk's 449 live examples move into a new chunk, the old one is deleted.
    p.store.remove(150).expect("remove");
    let c = save(&mut tracker, &mut since, &mut parts, &p);
    assert_eq!(keys(&c), ["chunk", "head", "labels"]);
    assert_eq!(c.remove, ["chunk-0"]);
    // A whole class removed: half of every chunk dies; what is stored stays ≤ 4/3 of what is live.
    let mut p = project(3000);
    let (mut tracker, mut since, mut parts) = (Tracker::default(), None, Parts::new());
    save(&mut tracker, &mut since, &mut parts, &p);
    p.store.remove_class("a").expect("remove class");
    save(&mut tracker, &mut since, &mut parts, &p);
    let stored: usize = parts.iter().filter(|(k, _)| k.starts_with("chunk-")).map(|(_, b)| b.len()).sum();
    assert!(stored * 3 <= 1500 * 1280 * 4 * 4, "{stored} bytes stored for 1500 live examples");
}

#[test]
fn images_added_one_at_a_time_do_not_leave_thousands_of_chunks() {
    let mut p = project(1);
    let (mut tracker, mut since, mut parts) = (Tracker::default(), None, Parts::new());
    save(&mut tracker, &mut since, &mut parts, &p);
    let mut largest = 0;
    for i in 1..400 {
        p.store.add("a", &format!("{i}.png"), vec![embedding(i)]).expect("add");
        let c = tracker.changes(p.as_parts(), since).expect("saves");
        apply(&mut parts, &c);
        since = Some(c.generation);
        largest = largest.max(c.bytes());
    }
    assert_eq!(Tracker::load(&parts).expect("loads").0, p);
    let chunks = parts.keys().filter(|k| k.starts_with("chunk-")).count();
    assert!(chunks <= 4, "{chunks} chunks for 400 images");
    // Merging the small last chunk rewrites at most 128 examples per save.
    assert!(largest < 130 * 1280 * 4 + 50_000, "largest save {largest} bytes");
}

#[test]
fn a_save_that_was_not_stored_is_written_again() {
    let mut p = project(200);
    let (mut tracker, mut parts) = (Tracker::default(), Parts::new());
    let first = tracker.changes(p.as_parts(), None).expect("saves");
    apply(&mut parts, &first);
    let stored = Some(first.generation);
    p.store.add("a", "lost.png", vec![embedding(9000)]).expect("add");
    // This save is handed out but never stored (the tab closed, the transaction failed) …
    let lost = tracker.changes(p.as_parts(), stored).expect("saves");
    assert!(!lost.put.is_empty());
    p.store.rename_class("b", "dog").expect("rename");
    // … so the caller passes the generation it did store: the next save carries both changes.
    let c = tracker.changes(p.as_parts(), stored).expect("saves");
    apply(&mut parts, &c);
    assert_eq!(Tracker::load(&parts).expect("loads").0, p);
    // A generation this tracker never gave out: a whole save, after clearing.
    let c = tracker.changes(p.as_parts(), Some(987_654)).expect("saves");
    assert!(c.clear);
    let mut fresh = Parts::new();
    apply(&mut fresh, &c);
    assert_eq!(Tracker::load(&fresh).expect("loads").0, p);
}

#[test]
fn ids_of_removed_examples_are_never_given_again_after_a_reload() {
    let mut p = project(10);
    p.store.remove(9).expect("remove the newest");
    let mut parts = Parts::new();
    apply(&mut parts, &Tracker::default().changes(p.as_parts(), None).expect("saves"));
    let (mut back, _) = Tracker::load(&parts).expect("loads");
    assert_eq!(back.store.add("a", "new.png", vec![embedding(1)]).expect("add"), 10);
}

fn stored(p: &Project) -> Parts {
    let mut parts = Parts::new();
    apply(&mut parts, &Tracker::default().changes(p.as_parts(), None).expect("saves"));
    parts
}

fn load_error(parts: &Parts) -> String {
    match Tracker::load(parts) {
        Err(headtune::Error::ModelFile(m)) => m,
        other => panic!("expected a ModelFile error, got {:?}", other.map(|_| ())),
    }
}

#[test]
fn damaged_or_inconsistent_parts_are_refused_with_their_reason() {
    let p = project(20);
    let good = stored(&p);
    let with = |key: &str, f: &dyn Fn(&mut Parts)| {
        let mut parts = good.clone();
        f(&mut parts);
        let m = load_error(&parts);
        assert!(!m.is_empty(), "{key}");
        m
    };
    assert!(with("head", &|p| drop(p.remove("head"))).contains("no \"head\" part"));
    assert!(with("chunk", &|p| drop(p.remove("chunk-0"))).contains("missing its part \"chunk-0\""));
    assert!(with("model", &|p| drop(p.remove("model"))).contains("no \"model\" part"));
    let m = with("flip", &|p| {
        let c = p.get_mut("chunk-0").expect("chunk");
        let mid = c.len() / 2;
        c[mid] ^= 4;
    });
    assert!(m.contains("\"chunk-0\"") && m.contains("checksum"), "{m}");
    // A head from another kind of part, a label without its embedding, a chunk listed twice.
    assert!(with("kind", &|p| {
        let labels = p["labels"].clone();
        p.insert("head".into(), labels);
    })
    .contains("unknown file kind"));
    let m = with("labels", &|p| {
        let l = with_meta(&p["labels"], |j| j["ids"][0] = serde_json::json!(77));
        p.insert("labels".into(), l);
    });
    assert!(m.contains("embeddings of example 77 are missing"), "{m}");
    assert!(with("twice", &|p| {
        let h = with_meta(&p["head"], |j| j["chunks"] = serde_json::json!([0, 0]));
        p.insert("head".into(), h);
    })
    .contains("chunk 0"));
    // What a project file's reader refuses, the parts' reader refuses: bad settings, NaN.
    let m = with("settings", &|p| {
        let h = with_meta(&p["head"], |j| j["augment"]["views"] = serde_json::json!(1_000_000_000));
        p.insert("head".into(), h);
    });
    assert!(m.contains("settings are invalid"), "{m}");
    let m = with("nan", &|p| {
        let c = p.get_mut("chunk-0").expect("chunk");
        let at = c.len() - 4 - 8;
        c[at..at + 4].copy_from_slice(&f32::NAN.to_le_bytes());
        let body = c.len() - 4;
        let crc = crc32fast::hash(&c[..body]);
        c[body..].copy_from_slice(&crc.to_le_bytes());
    });
    assert!(m.contains("NaN"), "{m}");
}

/// The writer refuses what the reader (of the parts, and of the exported file) would refuse, and
/// a refused save leaves the tracker as it was.
#[test]
fn the_writer_refuses_what_the_reader_would() {
    let mut p = project(20);
    let (mut tracker, mut since, mut parts) = (Tracker::default(), None, Parts::new());
    save(&mut tracker, &mut since, &mut parts, &p);
    let before = p.extra.clone();
    p.extra = serde_json::json!({ "big": "A".repeat(MAX_META + 1) });
    let err = tracker.changes(p.as_parts(), since).unwrap_err().to_string();
    assert!(err.contains("64 MB"), "{err}");
    // Just under the part's limit, but the exported file would also list every example's name.
    p.extra = serde_json::json!({ "big": "A".repeat(MAX_META - 200) });
    let err = tracker.changes(p.as_parts(), since).unwrap_err().to_string();
    assert!(err.contains("64 MB"), "{err}");
    p.extra = before;
    p.store.rename_class("a", "x").expect("rename");
    let c = save(&mut tracker, &mut since, &mut parts, &p);
    assert_eq!(keys(&c), ["head"], "the refused saves changed nothing");
}
