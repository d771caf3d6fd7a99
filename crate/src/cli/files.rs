//! Files and streams of the CLI, defensively: what a user points the CLI at may be a FIFO, a
//! link to `/dev/zero`, a 3 GB sparse file named `.jpg`, a folder with a symlink loop, or a
//! closed pipe; what it writes must never be left half-written.
//!
//! - [`open_regular`] / [`read_regular`]: regular files only (checked before opening and again on
//!   the open handle, opened non-blocking so a FIFO swapped in cannot hang us), size limit checked
//!   before reading and enforced while reading.
//! - [`read_image`]: the above plus the image header, with the decode's memory reserved from one
//!   budget shared by all threads ([`DECODE_BUDGET`]).
//! - [`list_images`]: folders walked with loop detection; skipped links and macOS `._` files are
//!   listed, not silently dropped or followed forever.
//! - [`write_atomic`]: temp file in the same folder, fsync, rename, fsync of the folder — a kill or
//!   a full disk leaves the old file or the new one, never a mix.
//! - [`line`]: standard output as values (a closed pipe ends the program quietly; `/dev/full`
//!   is an error).

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex};

use headtune::image::{self, MAX_DECODE_BYTES, MAX_FILE_BYTES};
use headtune::{Error, Result};

/// Bytes that may be in flight for decoding across all threads at once (file bytes plus the
/// decoder's estimate, [`image::Header::memory`]). Two maximal images, or a few dozen photos.
/// One image larger than this still runs, alone.
pub const DECODE_BUDGET: u64 = 2 * (MAX_DECODE_BYTES + MAX_FILE_BYTES);

/// Largest model file read.
pub const MAX_MODEL_BYTES: u64 = 256 << 20;

/// Largest `.npy` tensor read (a 1×3×224×224 f32 tensor is 602 KB).
pub const MAX_TENSOR_BYTES: u64 = 16 << 20;

fn read_error(path: &Path, source: std::io::Error) -> Error {
    Error::Io { path: path.display().to_string(), source }
}

fn refuse(path: &Path, kind: std::io::ErrorKind, why: String) -> Error {
    read_error(path, std::io::Error::new(kind, why))
}

/// What a non-regular file is, in words.
fn describe(meta: &std::fs::Metadata) -> &'static str {
    let t = meta.file_type();
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if t.is_fifo() {
            return "a named pipe (FIFO)";
        }
        if t.is_char_device() || t.is_block_device() {
            return "a device";
        }
        if t.is_socket() {
            return "a socket";
        }
    }
    if t.is_dir() {
        "a folder"
    } else {
        "not a regular file"
    }
}

/// Human size: "3.1 GB", "512 MB", "800 KB".
pub fn size_words(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 30 => format!("{:.1} GB", b as f64 / f64::from(1u32 << 30)),
        b if b >= 1 << 20 => format!("{} MB", b >> 20),
        b => format!("{} KB", b.div_ceil(1024)),
    }
}

/// Open a regular file (symlinks followed) no larger than `limit`; returns it with its size.
///
/// # Errors
/// [`Error::Io`]: missing, unreadable, not a regular file (FIFO, device, folder: refused before
/// opening, so nothing blocks), or larger than `limit` (kind `FileTooLarge`).
pub fn open_regular(path: &Path, limit: u64) -> Result<(File, u64)> {
    let check = |meta: &std::fs::Metadata| -> Result<u64> {
        if !meta.is_file() {
            return Err(refuse(path, std::io::ErrorKind::InvalidInput, format!("it is {}, not a regular file", describe(meta))));
        }
        if meta.len() > limit {
            return Err(refuse(
                path,
                std::io::ErrorKind::FileTooLarge,
                format!("it is {}; files above {} are not read", size_words(meta.len()), size_words(limit)),
            ));
        }
        Ok(meta.len())
    };
    check(&std::fs::metadata(path).map_err(|e| read_error(path, e))?)?;
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        // Opening a FIFO for reading blocks until a writer appears: if one was swapped in after
        // the check above, this returns at once and the check below refuses it.
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NONBLOCK);
    }
    let file = options.open(path).map_err(|e| read_error(path, e))?;
    let len = check(&file.metadata().map_err(|e| read_error(path, e))?)?;
    Ok((file, len))
}

/// Read all of an opened file, never more than `len` bytes (it may grow while we read).
fn read_opened(path: &Path, file: File, len: u64) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    bytes.try_reserve_exact(usize::try_from(len).unwrap_or(usize::MAX)).map_err(|_| {
        refuse(path, std::io::ErrorKind::OutOfMemory, format!("there is not enough memory to read its {}", size_words(len)))
    })?;
    file.take(len).read_to_end(&mut bytes).map_err(|e| read_error(path, e))?;
    Ok(bytes)
}

/// Read a whole regular file of at most `limit` bytes (see [`open_regular`]).
///
/// # Errors
/// As [`open_regular`], plus read errors.
pub fn read_regular(path: &Path, limit: u64) -> Result<Vec<u8>> {
    let (file, len) = open_regular(path, limit)?;
    read_opened(path, file, len)
}

/// The bytes of an image file, read after its header was checked and its decoding memory
/// reserved. Decode it while this lives; dropping it returns the memory to the budget.
pub struct ImageFile {
    /// The whole file.
    pub bytes: Vec<u8>,
    _permit: Permit,
}

/// Open `path`, read its image header (refusing bombs, unknown formats and oversized files before
/// reading the rest), wait for its memory in [`DECODE_BUDGET`], then read it.
///
/// # Errors
/// As [`open_regular`] and [`image::inspect`].
pub fn read_image(path: &Path) -> Result<ImageFile> {
    let (file, len) = open_regular(path, MAX_FILE_BYTES)?;
    let header = image::inspect(BufReader::new(&file)).map_err(|e| match e {
        Error::Io { source, .. } => read_error(path, source),
        other => other,
    })?;
    let permit = budget().acquire(len.saturating_add(header.memory));
    // The header reader moved the shared file position.
    (&file).seek(SeekFrom::Start(0)).map_err(|e| read_error(path, e))?;
    let bytes = read_opened(path, file, len)?;
    Ok(ImageFile { bytes, _permit: permit })
}

/// A counting semaphore over bytes.
pub struct Budget {
    total: u64,
    used: Mutex<u64>,
    freed: Condvar,
}

/// A reservation from a [`Budget`], returned on drop.
pub struct Permit {
    budget: &'static Budget,
    bytes: u64,
}

impl Budget {
    /// A budget of `total` bytes.
    pub const fn new(total: u64) -> Self {
        Self { total, used: Mutex::new(0), freed: Condvar::new() }
    }

    /// Wait until `bytes` (capped at the total, so a giant runs alone rather than never) are
    /// free, and take them.
    pub fn acquire(&'static self, bytes: u64) -> Permit {
        let bytes = bytes.min(self.total);
        // A poisoned lock only means another thread panicked while counting; the count is
        // still a plain integer.
        let mut used = self.used.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        while *used + bytes > self.total {
            used = self.freed.wait(used).unwrap_or_else(std::sync::PoisonError::into_inner);
        }
        *used += bytes;
        Permit { budget: self, bytes }
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut used = self.budget.used.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        *used -= self.bytes;
        self.budget.freed.notify_all();
    }
}

/// The process-wide decode budget.
pub fn budget() -> &'static Budget {
    static BUDGET: Budget = Budget::new(DECODE_BUDGET);
    &BUDGET
}

/// File extensions picked up when a folder is given.
pub const IMAGE_EXTENSIONS: [&str; 9] = ["png", "jpg", "jpeg", "gif", "bmp", "webp", "tif", "tiff", "jfif"];

/// Whether a file name has one of [`IMAGE_EXTENSIONS`].
pub fn is_image_name(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

/// Image files found under some paths, and what was passed over on the way.
#[derive(Debug, Default)]
pub struct Listing {
    /// Files in order: each given path in turn, folders expanded recursively and sorted.
    pub files: Vec<PathBuf>,
    /// Entries not followed or not taken, with the reason (symlink loops, broken links, macOS
    /// `._` metadata files).
    pub skipped: Vec<(PathBuf, String)>,
}

impl Listing {
    /// Print what was skipped to standard error (one line per entry).
    pub fn report_skipped(&self) {
        for (path, why) in &self.skipped {
            note(&format!("skipped {}: {why}", path.display()));
        }
    }
}

/// Expand folders (recursively, sorted, following symlinks but never around a loop) into image
/// files; files given directly are kept as given.
///
/// # Errors
/// [`Error::Io`] when a folder cannot be read.
pub fn list_images(paths: &[PathBuf]) -> Result<Listing> {
    let mut listing = Listing::default();
    for p in paths {
        if !p.is_dir() {
            listing.files.push(p.clone());
            continue;
        }
        let mut found = Vec::new();
        for entry in walkdir::WalkDir::new(p).follow_links(true).sort_by_file_name() {
            match entry {
                Ok(e) if e.file_type().is_dir() => {}
                Ok(e) => {
                    let path = e.into_path();
                    if !is_image_name(&path) {
                        continue;
                    }
                    if path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("._")) {
                        listing.skipped.push((path, "a macOS metadata file (\"._\" companion), not an image".into()));
                    } else {
                        found.push(path);
                    }
                }
                Err(e) => {
                    let path = e.path().map(Path::to_path_buf).unwrap_or_else(|| p.clone());
                    if let Some(ancestor) = e.loop_ancestor() {
                        listing.skipped.push((path, format!("the link leads back to {} (a loop)", ancestor.display())));
                    } else if e.depth() > 0 && std::fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_symlink()) {
                        listing.skipped.push((path, "the link points to nothing (broken link)".into()));
                    } else {
                        let source = e.into_io_error().unwrap_or_else(|| std::io::Error::other("cannot walk the folder"));
                        return Err(read_error(&path, source));
                    }
                }
            }
        }
        found.sort();
        listing.files.extend(found);
    }
    Ok(listing)
}

/// Check, before any long work, that `path` can be written as a file: its folder exists and
/// accepts a new file, and it is not a folder itself.
///
/// # Errors
/// [`Error::Write`] saying why not.
pub fn check_writable(path: &Path) -> Result<()> {
    let fail = |why: String| Error::Write { path: path.display().to_string(), source: std::io::Error::other(why) };
    if path.is_dir() {
        return Err(fail("it is a folder; give a file name".into()));
    }
    // Replacing a device or pipe (`--out /dev/null`) with a regular file would be a surprise.
    if let Ok(meta) = std::fs::metadata(path) {
        if !meta.is_file() {
            return Err(fail(format!("it is {}, not a regular file", describe(&meta))));
        }
    }
    if path.file_name().is_none() {
        return Err(fail("it does not name a file".into()));
    }
    let dir = parent(path);
    if !dir.is_dir() {
        return Err(fail(format!("the folder {} does not exist", dir.display())));
    }
    let probe = temp_path(path);
    File::options()
        .write(true)
        .create_new(true)
        .open(&probe)
        .map_err(|source| Error::Write { path: path.display().to_string(), source })?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// A fresh hidden name next to `path`.
fn temp_path(path: &Path) -> PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    parent(path).join(format!(".{name}.{}.{n}.tmp", std::process::id()))
}

/// Replace `path` with `bytes` atomically: write a temp file in the same folder, flush it to the
/// disk (`durable`), rename it over `path`, then flush the folder entry. Readers — and a crash,
/// a `kill -9` or a full disk at any moment — see the old file or the new one, never a mix; on
/// failure the temp file is removed and the old file is untouched.
///
/// `durable = false` skips both fsyncs: for the embedding cache, whose entries carry a checksum
/// (a torn entry is detected and recomputed), where an fsync per image would cost more than it
/// protects.
///
/// # Errors
/// [`Error::Write`].
pub fn write_atomic(path: &Path, bytes: &[u8], durable: bool) -> Result<()> {
    let fail = |source| Error::Write { path: path.display().to_string(), source };
    let tmp = temp_path(path);
    let written = (|| -> std::io::Result<()> {
        let mut f = File::options().write(true).create_new(true).open(&tmp)?;
        f.write_all(bytes)?;
        if durable {
            f.sync_all()?;
        }
        drop(f);
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(fail(e));
    }
    if durable {
        // The rename is only on the disk once the folder is; not every platform can open a
        // folder for this, and the file itself is already safe.
        if let Ok(d) = File::open(parent(path)) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

/// Print one line on standard output and flush it.
///
/// # Errors
/// [`Error::Write`] on `standard output`; a closed pipe (`| head`) is kind `BrokenPipe`, which
/// [`is_closed_pipe`] recognises so the program can stop quietly.
pub fn line(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{text}")
        .and_then(|()| out.flush())
        .map_err(|source| Error::Write { path: "standard output".into(), source })
}

/// Whether `e` means the reader of standard output has gone away.
pub fn is_closed_pipe(e: &Error) -> bool {
    matches!(e, Error::Write { path, source } if path == "standard output" && source.kind() == std::io::ErrorKind::BrokenPipe)
}

/// A message for the user on standard error. Never fails: if even stderr is gone there is no one
/// left to tell.
pub fn note(text: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{text}");
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    /// Under contention the bytes held at once never exceed the total, and every request —
    /// including one larger than the total — is eventually served.
    #[test]
    fn budget_never_overcommits() {
        static BUDGET: Budget = Budget::new(1000);
        static HELD: AtomicU64 = AtomicU64::new(0);
        static PEAK: AtomicU64 = AtomicU64::new(0);
        let threads: Vec<_> = (0..8u64)
            .map(|t| {
                std::thread::spawn(move || {
                    for i in 0..200u64 {
                        let want = (t * 131 + i * 37) % 700 + if i == 100 { 5000 } else { 1 };
                        let permit = BUDGET.acquire(want);
                        let now = HELD.fetch_add(permit.bytes, Ordering::SeqCst) + permit.bytes;
                        PEAK.fetch_max(now, Ordering::SeqCst);
                        HELD.fetch_sub(permit.bytes, Ordering::SeqCst);
                        drop(permit);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("thread");
        }
        let peak = PEAK.load(Ordering::SeqCst);
        assert!(peak <= 1000, "held {peak} of 1000");
        assert!(peak > 700, "requests did run concurrently ({peak})");
        assert_eq!(*BUDGET.used.lock().expect("lock"), 0, "everything returned");
    }

    #[test]
    fn atomic_write_replaces_whole_and_cleans_up_on_failure() {
        let dir = std::env::temp_dir().join(format!("headtune-atomic-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("m.bin");
        write_atomic(&path, b"old", true).expect("write");
        write_atomic(&path, b"new contents", true).expect("replace");
        assert_eq!(std::fs::read(&path).expect("read"), b"new contents");
        // Writing into a missing folder fails, says "cannot write", and leaves no temp file.
        let err = write_atomic(&dir.join("missing/m.bin"), b"x", true).expect_err("no folder");
        assert!(err.to_string().starts_with("cannot write "), "{err}");
        let leftovers: Vec<_> = std::fs::read_dir(&dir).expect("dir").flatten().map(|e| e.file_name()).collect();
        assert_eq!(leftovers, vec![std::ffi::OsString::from("m.bin")]);
        std::fs::remove_dir_all(&dir).expect("clean");
    }
}
