//! The one error type of headtune. Every message says what went wrong with the user's input and,
//! where there is one, what to do about it; the wasm boundary turns these into JS `Error`s.

use thiserror::Error;

/// Everything that can go wrong with data a user hands to headtune.
#[derive(Debug, Error)]
pub enum Error {
    /// The bytes are empty: usually a failed download or a placeholder file.
    #[error("the file is empty (0 bytes)")]
    EmptyFile,

    /// The bytes are not an image format we can decode. The text says what the file looks like
    /// (HEIC photo, DICOM, text, macOS metadata …) and what to do with it.
    #[error("unsupported file: {0}")]
    UnsupportedFormat(String),

    /// The image declares dimensions beyond our limits (decompression-bomb guard).
    #[error("image is {width}×{height} pixels; the limit is {max_side} on a side and {max_megapixels} megapixels — downscale it first")]
    TooLarge {
        /// Declared width.
        width: u32,
        /// Declared height.
        height: u32,
        /// Largest accepted side.
        max_side: u32,
        /// Largest accepted pixel count, in millions.
        max_megapixels: u32,
    },

    /// The image has a zero dimension.
    #[error("image has no pixels ({width}×{height})")]
    NoPixels {
        /// Declared width.
        width: u32,
        /// Declared height.
        height: u32,
    },

    /// The file starts like an image but its data is broken (truncated download, disk error).
    /// Damaged files are refused rather than embedded: a decoder that fills the missing part
    /// with grey would silently train on images that are not what the user sees elsewhere.
    #[error("{message}")]
    Corrupt {
        /// What is wrong, in plain words, with what to do.
        message: String,
        /// The decoder's own message, for bug reports and the curious (see [`Error::detail`]).
        detail: String,
    },

    /// Decoding the image would need more memory than one image may use (decompression-bomb
    /// guard for files whose pixel count is within limits but whose decoding is not).
    #[error("{0}")]
    MemoryLimit(String),

    /// Reading a file from disk failed, or it is not something to read (a FIFO, a device, a
    /// file above the size limit) — CLI only.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The path that failed.
        path: String,
        /// The underlying OS error, or why the file was not read.
        source: std::io::Error,
    },

    /// Writing a file (or standard output) failed — CLI only.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The path that failed (`standard output` for stdout).
        path: String,
        /// The underlying OS error.
        source: std::io::Error,
    },

    /// The backbone weights are missing, malformed or do not match the architecture.
    #[error("backbone weights are invalid: {0}")]
    Weights(String),

    /// A tensor handed in directly (e.g. a `.npy` file) has the wrong shape or type.
    #[error("input tensor is invalid: {0}")]
    Tensor(String),

    /// An argument or setting is outside what is supported.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),

    /// A dataset, class or example cannot be used as asked.
    #[error("{0}")]
    Data(String),

    /// A model or project file is corrupt, truncated, from another program or a newer version.
    #[error("model file is invalid: {0}")]
    ModelFile(String),

    /// Work was cancelled by the caller.
    #[error("cancelled")]
    Cancelled,

    /// The compute backend failed (e.g. GPU device lost) — the work can be retried on the CPU.
    #[error("compute backend failed: {0}")]
    Backend(String),
}

impl Error {
    /// Technical detail behind a plain message (the decoder's own words), when there is one.
    /// Kept out of the message so users read what to do, not a decoder's internals.
    pub fn detail(&self) -> Option<&str> {
        match self {
            Self::Corrupt { detail, .. } if !detail.is_empty() => Some(detail),
            _ => None,
        }
    }
}

/// Short alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
