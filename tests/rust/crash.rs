//! `train --out M` under `kill -9` and a full disk: M is the old model or a whole new one, never a
//! 0-byte or half-written file.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use headtune::head::{DenseWeights, HeadKind, HeadWeights};
use headtune::predict::Classifier;
use headtune::project::Model;

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("headtune-crash-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

fn dataset(root: &Path) {
    for (c, class) in ["cats", "dogs"].iter().enumerate() {
        std::fs::create_dir_all(root.join(class)).expect("class dir");
        for i in 0..3u32 {
            let img = image::RgbImage::from_fn(40, 32, |x, y| {
                let v = (x * (3 + i) + y * (5 + c as u32 * 7)) % 256;
                image::Rgb([v as u8, (255 - v) as u8, (c as u32 * 200) as u8])
            });
            img.save(root.join(class).join(format!("{i}.png"))).expect("png");
        }
    }
}

/// The "old" model: valid, and different from anything training writes (other class names).
fn old_model() -> Vec<u8> {
    let output = DenseWeights { d_in: 1280, d_out: 2, weight: vec![0.01; 2560], bias: vec![0.0, 0.0] };
    let classifier = Classifier::new(headtune::features::FeatureSpec::v1(), vec!["old-a".into(), "old-b".into()], HeadWeights { kind: HeadKind::Linear, hidden: None, output })
        .expect("classifier");
    Model { classifier, training: None, augment: None, metrics: None }.to_bytes().expect("writes")
}

fn train_cmd(data: &Path, out: &Path, cache: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_headtune"));
    cmd.arg("train").arg(data).arg("--out").arg(out).arg("--cache").arg(cache).args(["--epochs", "20", "--patience", "0"]);
    cmd.stdout(Stdio::null()).stderr(Stdio::piped());
    cmd
}

/// What `M` holds after a run: the old bytes, or a complete model of the new classes.
fn judge(out: &Path, old: &[u8]) -> &'static str {
    let bytes = std::fs::read(out).expect("M must still exist");
    if bytes == old {
        return "old";
    }
    let model = Model::from_bytes(&bytes).unwrap_or_else(|e| panic!("M is neither the old model nor a whole new one ({} bytes): {e}", bytes.len()));
    assert_eq!(model.classifier.classes, vec!["cats".to_string(), "dogs".to_string()]);
    "new"
}

fn temp_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .expect("dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect()
}

/// Kill -9 at the moment the new model starts to be written (its temp file appears), the moment
/// M changes, and at a spread of other moments: every time, M is the old model or a whole new
/// one (before, writing in place, 10 of 10 such kills left a 0-byte or half file).
#[test]
fn kill_9_during_train_out_never_leaves_a_broken_model() {
    let dir = scratch("kill");
    let data = dir.join("data");
    dataset(&data);
    let out_dir = dir.join("out");
    std::fs::create_dir_all(&out_dir).expect("out dir");
    let out = out_dir.join("M.headtune");
    let cache = dir.join("cache");
    let old = old_model();

    // A first run fills the embedding cache, so later runs reach the write within a second.
    std::fs::write(&out, &old).expect("old model");
    let status = train_cmd(&data, &out, &cache).status().expect("train");
    assert!(status.success());
    assert_eq!(judge(&out, &old), "new");

    let mut outcomes = Vec::new();
    let mut caught_mid_write = 0;
    for round in 0..12u32 {
        std::fs::write(&out, &old).expect("reset to the old model");
        for t in temp_files(&out_dir) {
            let _ = std::fs::remove_file(out_dir.join(t));
        }
        let mut child = train_cmd(&data, &out, &cache).spawn().expect("spawn");
        if round % 3 == 1 {
            // The case: kill the moment M changes (a write in place is caught half-done).
            let before = std::fs::metadata(&out).expect("M").modified().expect("mtime");
            while child.try_wait().expect("wait").is_none() {
                let now = std::fs::metadata(&out).ok().and_then(|m| m.modified().ok());
                if now != Some(before) {
                    break;
                }
            }
        } else if round % 3 == 0 {
            // Watch for the temp file and kill the instant it shows up: mid-write or just
            // before the rename.
            loop {
                if !temp_files(&out_dir).is_empty() {
                    caught_mid_write += 1;
                    break;
                }
                if child.try_wait().expect("wait").is_some() {
                    break;
                }
            }
        } else {
            // Kill at a spread of moments through the run (start-up, embedding, training).
            let deadline = std::time::Instant::now() + std::time::Duration::from_millis(u64::from(round) * 150);
            while std::time::Instant::now() < deadline && child.try_wait().expect("wait").is_none() {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
        }
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        outcomes.push(judge(&out, &old));
    }
    assert!(caught_mid_write >= 2, "the kills must hit the write window: {caught_mid_write} of 4");
    eprintln!("kill -9 outcomes: {outcomes:?} ({caught_mid_write} kills while the temp file existed)");
}

/// A full disk (`ulimit -f`): a clear "cannot write" error, exit 2, the old model intact, and no
/// temp file left behind.
#[test]
fn full_disk_during_train_out_keeps_the_old_model() {
    let dir = scratch("full");
    let data = dir.join("data");
    dataset(&data);
    let out = dir.join("M.headtune");
    let old = old_model();
    std::fs::write(&out, &old).expect("old model");
    // 4 KiB: the model is ~10 KB, so its write fails part-way.
    let result = Command::new("bash")
        .arg("-c")
        .arg("ulimit -f 4; exec \"$0\" \"$@\"")
        .arg(env!("CARGO_BIN_EXE_headtune"))
        .arg("train")
        .arg(&data)
        .arg("--out")
        .arg(&out)
        .args(["--no-cache", "--epochs", "3"])
        .output()
        .expect("bash");
    let err = String::from_utf8_lossy(&result.stderr);
    assert_eq!(result.status.code(), Some(2), "{err}");
    assert!(err.contains(&format!("cannot write {}: File too large", out.display())), "{err}");
    assert_eq!(std::fs::read(&out).expect("M"), old, "the old model is intact");
    assert!(temp_files(&dir).is_empty(), "no temp file left: {:?}", temp_files(&dir));
}
