//! The CLI against hostile files, folders, streams and arguments: every case gets a clear message
//! and the right exit code; nothing blocks, nothing is half-written, nothing panics.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use headtune::head::{DenseWeights, HeadKind, HeadWeights};
use headtune::predict::Classifier;
use headtune::project::Model;

/// A fresh folder for one test.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("headtune-hostile-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

fn headtune() -> Command {
    Command::new(env!("CARGO_BIN_EXE_headtune"))
}

/// Wait for a child, killing it after `secs`: a hang must fail the test, not stall the suite.
fn finish(mut child: Child, secs: u64) -> (Output, Duration) {
    let started = Instant::now();
    loop {
        match child.try_wait().expect("wait") {
            Some(_) => break,
            None if started.elapsed() > Duration::from_secs(secs) => {
                let _ = child.kill();
                let out = child.wait_with_output().expect("output");
                panic!("headtune did not finish within {secs} s; stderr: {}", String::from_utf8_lossy(&out.stderr));
            }
            None => std::thread::sleep(Duration::from_millis(20)),
        }
    }
    let elapsed = started.elapsed();
    (child.wait_with_output().expect("output"), elapsed)
}

fn run(args: &[&str], secs: u64) -> (i32, String, String) {
    let child = headtune().args(args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn");
    let (out, _) = finish(child, secs);
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// A small PNG, textured so that the backbone sees something.
fn png(path: &Path, seed: u32) {
    let img = image::RgbImage::from_fn(48, 40, |x, y| {
        let v = x.wrapping_mul(7 + seed) ^ y.wrapping_mul(13 + seed * 3);
        image::Rgb([(v % 251) as u8, (v * 3 % 241) as u8, ((x + y + seed * 40) % 256) as u8])
    });
    img.save(path).expect("png");
}

/// A two-class model file with classes `a` and `b` (no training needed).
fn model_bytes() -> Vec<u8> {
    let output = DenseWeights {
        d_in: 1280,
        d_out: 2,
        weight: (0..2560).map(|i| ((i as f32) * 0.37).sin() * 0.05).collect(),
        bias: vec![0.0, 0.1],
    };
    let classifier = Classifier::new(headtune::features::FeatureSpec::v1(), vec!["a".into(), "b".into()], HeadWeights { kind: HeadKind::Linear, hidden: None, output })
        .expect("classifier");
    Model { classifier, training: None, augment: None, metrics: None }.to_bytes().expect("writes")
}

fn dataset(root: &Path, classes: &[(&str, usize)]) {
    let mut seed = 0;
    for (class, n) in classes {
        let dir = root.join(class);
        std::fs::create_dir_all(&dir).expect("class dir");
        for i in 0..*n {
            seed += 1;
            png(&dir.join(format!("{class}{i}.png")), seed);
        }
    }
}

#[test]
fn fifo_named_jpg_is_refused_without_blocking() {
    let dir = scratch("fifo");
    let fifo = dir.join("photo.jpg");
    let status = Command::new("mkfifo").arg(&fifo).status().expect("mkfifo");
    assert!(status.success());
    let (code, out, _) = run(&["check", "--json", fifo.to_str().unwrap()], 30);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("it is a named pipe (FIFO), not a regular file"), "{out}");
}

#[test]
fn link_to_dev_zero_is_refused() {
    let dir = scratch("devzero");
    let link = dir.join("zero.png");
    std::os::unix::fs::symlink("/dev/zero", &link).expect("symlink");
    let (code, out, _) = run(&["check", "--json", link.to_str().unwrap()], 30);
    assert_eq!(code, 1);
    assert!(out.contains("it is a device, not a regular file"), "{out}");
}

/// A 3 GB sparse file named `.jpg` is refused from its size, without reading it.
#[test]
fn huge_sparse_file_is_refused_before_reading() {
    let dir = scratch("sparse");
    let path = dir.join("huge.jpg");
    let f = std::fs::File::create(&path).expect("create");
    f.set_len(3 << 30).expect("sparse 3 GB");
    let child = headtune().args(["check", "--json"]).arg(&path).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn");
    let (out, elapsed) = finish(child, 30);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout.contains("it is 3.0 GB; files above 256 MB are not read"), "{stdout}");
    // Reading 3 GB took 14 s before; refusing from the size takes no time at all.
    assert!(elapsed < Duration::from_secs(10), "{elapsed:?}");
}

/// `ln -s .. data/red/loop` once put the blue images into class red; now the loop is skipped
/// and named, and a broken link is named too.
#[test]
fn symlink_loops_and_broken_links_are_skipped_and_listed() {
    let dir = scratch("loop");
    dataset(&dir, &[("red", 2), ("blue", 2)]);
    std::os::unix::fs::symlink("..", dir.join("red/loop")).expect("loop link");
    std::os::unix::fs::symlink("nowhere.png", dir.join("red/broken.png")).expect("broken link");
    let (code, out, err) = run(&["check", "--json", dir.join("red").to_str().unwrap()], 60);
    assert_eq!(code, 0, "{out}{err}");
    let files: Vec<serde_json::Value> = out.lines().map(|l| serde_json::from_str(l).expect("json")).collect();
    assert_eq!(files.len(), 2, "only red's own images: {out}");
    assert!(files.iter().all(|f| f["file"].as_str().unwrap().contains("/red/red")), "{out}");
    assert!(err.contains("loop: the link leads back to"), "{err}");
    assert!(err.contains("broken.png: the link points to nothing (broken link)"), "{err}");
}

/// `| head -n1` closes the pipe: the CLI stops quietly with exit 0, no panic.
#[test]
fn closed_stdout_pipe_ends_quietly() {
    let dir = scratch("epipe");
    for i in 0..40 {
        png(&dir.join(format!("img{i:02}.png")), i);
    }
    for args in [vec!["check", "--json"], vec!["embed", "--json"]] {
        let mut child = headtune().args(&args).arg(&dir).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn");
        let mut first = String::new();
        BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut first).expect("one line");
        // The reader is dropped here: the pipe is closed, as `head -n1` does.
        assert!(first.starts_with('{'), "{first}");
        let (out, _) = finish(child, 120);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}

/// `> /dev/full`: a clear error and exit 2, not a panic.
#[test]
fn full_stdout_is_a_clear_error() {
    let dir = scratch("devfull");
    png(&dir.join("a.png"), 1);
    let full = std::fs::File::options().write(true).open("/dev/full").expect("/dev/full");
    let child = headtune().args(["check", "--json"]).arg(dir.join("a.png")).stdout(full).stderr(Stdio::piped()).spawn().expect("spawn");
    let (out, _) = finish(child, 30);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("cannot write standard output: No space left on device"), "{err}");
}

#[test]
fn bad_numbers_get_clear_messages() {
    let dir = scratch("args");
    dataset(&dir, &[("a", 1), ("b", 1)]);
    let model = dir.join("m.headtune");
    std::fs::write(&model, model_bytes()).expect("model");
    for t in ["nan", "5", "-0.5", "inf"] {
        let (code, _, err) = run(&["eval", model.to_str().unwrap(), dir.to_str().unwrap(), "--threshold", t], 30);
        assert_eq!(code, 2, "--threshold {t}");
        assert!(err.contains(&format!("{t} is not a probability; use a number from 0 to 1")), "{t}: {err}");
    }
    // A negative number is a value with a range message, not "unexpected argument '-1'".
    let (code, _, err) = run(&["train", dir.to_str().unwrap(), "--out", model.to_str().unwrap(), "--lr", "-1"], 30);
    assert_eq!(code, 2);
    assert!(err.contains("learningRate is -1"), "{err}");
    let (code, _, err) = run(&["train", dir.to_str().unwrap(), "--out", model.to_str().unwrap(), "--epochs", "-1"], 30);
    assert_eq!(code, 2);
    assert!(!err.contains("unexpected argument"), "{err}");
    assert!(err.contains("'-1'"), "{err}");
}

/// Write a 1×3×224×224 `.npy` with the given header dictionary and values.
fn npy(path: &Path, dict: &str, values: &[f32]) {
    let mut header = dict.to_string();
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend((header.len() as u16).to_le_bytes());
    bytes.extend(header.as_bytes());
    for v in values {
        bytes.extend(v.to_le_bytes());
    }
    std::fs::write(path, bytes).expect("npy");
}

#[test]
fn embed_tensor_checks_order_and_values() {
    let dir = scratch("npy");
    let n = 3 * 224 * 224;
    let fortran = dir.join("fortran.npy");
    npy(&fortran, "{'descr': '<f4', 'fortran_order': True, 'shape': (1, 3, 224, 224), }", &vec![0.1; n]);
    let mut values = vec![0.1; n];
    values[77] = f32::NAN;
    let nan = dir.join("nan.npy");
    npy(&nan, "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 3, 224, 224), }", &values);
    let (code, out, _) = run(&["embed", "--json", "--tensor", fortran.to_str().unwrap(), "--tensor", nan.to_str().unwrap()], 60);
    assert_eq!(code, 1);
    let lines: Vec<serde_json::Value> = out.lines().map(|l| serde_json::from_str(l).expect("json")).collect();
    assert!(lines[0]["error"].as_str().unwrap().contains("Fortran order"), "{out}");
    assert!(lines[1]["error"].as_str().unwrap().contains("value 77 is NaN"), "{out}");
}

#[test]
fn class_folders_that_trim_to_one_name_are_refused() {
    let dir = scratch("trim");
    dataset(&dir, &[("red", 1), ("red ", 1), ("blue", 1)]);
    let (code, _, err) = run(&["train", dir.to_str().unwrap(), "--out", dir.join("m.headtune").to_str().unwrap(), "--no-cache"], 60);
    assert_eq!(code, 2);
    assert!(err.contains("folders \"red\" and \"red \" both name class \"red\""), "{err}");
    assert!(!err.contains("processed"), "refused before embedding: {err}");
}

/// An empty class folder is reported; a folder of broken files says honestly that nothing was
/// embedded.
#[test]
fn empty_class_and_all_failed_files_are_reported_honestly() {
    let dir = scratch("empty");
    dataset(&dir, &[("a", 2), ("b", 2)]);
    std::fs::create_dir_all(dir.join("c")).expect("empty class");
    for i in 0..3 {
        std::fs::write(dir.join(format!("b/broken{i}.jpg")), b"\xff\xd8\xff\xe0 not really").expect("broken");
    }
    let out_model = dir.join("m.headtune");
    let (code, out, err) = run(&["train", dir.to_str().unwrap(), "--out", out_model.to_str().unwrap(), "--no-cache", "--json", "--epochs", "3"], 300);
    assert_eq!(code, 1, "{err}");
    assert!(out.contains("class folder \\\"c\\\" has no images"), "{out}");
    assert!(err.contains("processed 7/7 images: 4 embedded (0 from cache), 3 failed"), "{err}");
    assert!(out_model.exists());

    let broken = scratch("allbroken");
    for class in ["x", "y"] {
        std::fs::create_dir_all(broken.join(class)).expect("dir");
        for i in 0..3 {
            std::fs::write(broken.join(format!("{class}/{i}.png")), b"").expect("empty file");
        }
    }
    let (code, _, err) = run(&["train", broken.to_str().unwrap(), "--out", broken.join("m.headtune").to_str().unwrap(), "--no-cache"], 120);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("processed 6/6 images: 0 embedded (0 from cache), 6 failed"), "{err}");
}

/// `--out` is checked before minutes of embedding: a missing folder, a device, an input image.
#[test]
fn out_is_checked_before_embedding() {
    let dir = scratch("out");
    dataset(&dir, &[("a", 2), ("b", 2)]);
    let data = dir.to_str().unwrap();
    for (out, expect) in [
        ("/nonexistent-folder/m.headtune", "cannot write /nonexistent-folder/m.headtune: the folder /nonexistent-folder does not exist"),
        ("/dev/null", "cannot write /dev/null: it is a device, not a regular file"),
        (data, "it is a folder"),
    ] {
        let (code, _, err) = run(&["train", data, "--out", out, "--no-cache"], 60);
        assert_eq!(code, 2, "{out}");
        assert!(err.contains(expect), "{out}: {err}");
        assert!(!err.contains("processed"), "refused before embedding: {err}");
    }
    let input = dir.join("a/a0.png");
    let before = std::fs::read(&input).expect("input");
    let (code, _, err) = run(&["train", data, "--out", input.to_str().unwrap(), "--no-cache"], 60);
    assert_eq!(code, 2);
    assert!(err.contains("is the input image"), "{err}");
    assert_eq!(std::fs::read(&input).expect("input"), before, "the input image is untouched");
}

#[test]
fn heatmaps_of_inputs_with_the_same_stem_do_not_overwrite_each_other() {
    let dir = scratch("stems");
    std::fs::create_dir_all(dir.join("one")).expect("dir");
    std::fs::create_dir_all(dir.join("two")).expect("dir");
    png(&dir.join("one/x.png"), 1);
    png(&dir.join("two/x.png"), 2);
    let model = dir.join("m.headtune");
    std::fs::write(&model, model_bytes()).expect("model");
    let heat = dir.join("heat");
    let (code, out, err) = run(&["predict", model.to_str().unwrap(), dir.join("one/x.png").to_str().unwrap(),
        dir.join("two/x.png").to_str().unwrap(), "--heatmap", heat.to_str().unwrap(), "--json"], 120);
    assert_eq!(code, 0, "{err}");
    let files: Vec<String> = out.lines().map(|l| serde_json::from_str::<serde_json::Value>(l).expect("json")["heatmap"].as_str().unwrap().to_string()).collect();
    assert_eq!(files.len(), 2);
    assert_ne!(files[0], files[1]);
    assert!(files[0].ends_with("x.heatmap.png") && files[1].ends_with("x-2.heatmap.png"), "{files:?}");
    for f in &files {
        assert_eq!(image::open(f).expect("heatmap is a whole PNG").width(), 224);
    }
}

/// Cache entries carry a checksum: one overwritten with f32::MAX (same size) is recomputed, not
/// trained on.
#[test]
fn tampered_cache_entries_are_recomputed() {
    let dir = scratch("cache");
    let data = dir.join("data");
    dataset(&data, &[("a", 2), ("b", 2)]);
    let cache = dir.join("cache");
    let args = |out: &str| {
        vec!["train".to_string(), data.display().to_string(), "--out".into(), dir.join(out).display().to_string(),
             "--cache".into(), cache.display().to_string(), "--epochs".into(), "2".into()]
    };
    let run_args = |a: Vec<String>| {
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        run(&a, 300)
    };
    let (code, _, err) = run_args(args("m1.headtune"));
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("4 embedded (0 from cache)"), "{err}");
    let (_, _, err) = run_args(args("m2.headtune"));
    assert!(err.contains("4 embedded (4 from cache)"), "{err}");
    let entries: Vec<PathBuf> = walk_files(&cache);
    assert_eq!(entries.len(), 4);
    let mut bytes = std::fs::read(&entries[0]).expect("entry");
    let len = bytes.len();
    for chunk in bytes[len - 1280 * 4..].chunks_exact_mut(4) {
        chunk.copy_from_slice(&f32::MAX.to_le_bytes());
    }
    std::fs::write(&entries[0], &bytes).expect("tamper");
    let (_, _, err) = run_args(args("m3.headtune"));
    assert!(err.contains("4 embedded (3 from cache)"), "the tampered entry is a miss: {err}");
    let (_, _, err) = run_args(args("m4.headtune"));
    assert!(err.contains("4 embedded (4 from cache)"), "and it was rewritten whole: {err}");
}

fn walk_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).expect("dir").flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk_files(&p));
        } else {
            out.push(p);
        }
    }
    out.sort();
    out
}

/// `check` says what each file is: image size, model classes, or the reason it is unusable.
#[test]
fn check_describes_files() {
    let dir = scratch("check");
    png(&dir.join("a.png"), 3);
    std::fs::write(dir.join("m.headtune"), model_bytes()).expect("model");
    std::fs::write(dir.join("._a.png"), b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X").expect("appledouble");
    let (code, out, err) = run(&["check", "--json", dir.join("a.png").to_str().unwrap(), dir.join("m.headtune").to_str().unwrap(),
        dir.join("._a.png").to_str().unwrap()], 30);
    assert_eq!(code, 1, "{err}");
    let lines: Vec<serde_json::Value> = out.lines().map(|l| serde_json::from_str(l).expect("json")).collect();
    assert_eq!((lines[0]["kind"].as_str(), lines[0]["width"].as_u64(), lines[0]["height"].as_u64()), (Some("image"), Some(48), Some(40)));
    assert_eq!(lines[1]["kind"], "model");
    assert_eq!(lines[1]["classes"], serde_json::json!(["a", "b"]));
    assert_eq!(lines[2]["code"], "UnsupportedFormat");
    assert!(lines[2]["error"].as_str().unwrap().contains("macOS metadata file"), "{}", lines[2]);
    // In a folder walk the `._` companions are skipped with a note instead.
    let (code, out, err) = run(&["check", dir.to_str().unwrap()], 30);
    assert_eq!(code, 0, "{out}{err}");
    assert!(err.contains("._a.png: a macOS metadata file"), "{err}");
}

/// A bit flip in a JPEG's compressed data reaches the user as plain words, with the decoder's
/// own message kept in `detail`.
#[test]
fn damaged_jpeg_reports_plain_words_with_detail() {
    let dir = scratch("damaged");
    let mut jpeg = std::io::Cursor::new(Vec::new());
    image::RgbImage::from_fn(64, 48, |x, y| image::Rgb([(x * 4) as u8, (y * 5) as u8, 90]))
        .write_to(&mut jpeg, image::ImageFormat::Jpeg)
        .expect("jpeg");
    let bytes = jpeg.into_inner();
    let path = dir.join("cut.jpg");
    std::fs::File::create(&path).and_then(|mut f| f.write_all(&bytes[..bytes.len() / 3])).expect("write");
    let (code, out, _) = run(&["check", "--json", path.to_str().unwrap()], 30);
    assert_eq!(code, 1);
    let v: serde_json::Value = serde_json::from_str(out.trim()).expect("json");
    assert_eq!(v["code"], "Corrupt");
    assert!(v["error"].as_str().unwrap().starts_with("the JPEG file is truncated"), "{v}");
    assert!(!v["detail"].as_str().unwrap_or_default().is_empty(), "the decoder's message stays available: {v}");
}
