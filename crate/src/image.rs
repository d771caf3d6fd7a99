//! Decoding: bytes of an image file → 8-bit RGB pixels, upright.
//!
//! Everything a user drops in arrives here first, so this stage is defensive: the declared size
//! is checked before any pixel buffer is allocated (a 100 000 × 100 000 PNG is 40 GB once
//! decoded), and every failure becomes a specific [`Error`] instead of a panic.

use std::io::Cursor;

use image::{DynamicImage, ImageDecoder, ImageReader, Limits, RgbImage};

use crate::error::{Error, Result};

/// Largest accepted image side, in pixels.
pub const MAX_SIDE: u32 = 16_384;
/// Largest accepted pixel count (64 megapixels: a large phone photo is 50).
pub const MAX_PIXELS: u64 = 64_000_000;

/// An 8-bit RGB image, upright (EXIF orientation applied), alpha composited on white.
pub type Rgb = RgbImage;

/// Decode an image file from its bytes.
///
/// RGB, 8 bits per channel: grayscale is replicated, 16-bit and float samples are reduced,
/// transparent pixels are composited on white, and the EXIF orientation is applied so the
/// pixels are the way a viewer shows them. These are the conventions the backbone was trained
/// with (see `BACKBONE.md`).
///
/// # Errors
/// [`Error::EmptyFile`], [`Error::UnsupportedFormat`], [`Error::TooLarge`], [`Error::NoPixels`]
/// or [`Error::Corrupt`], each with the details a user needs.
pub fn decode(bytes: &[u8]) -> Result<Rgb> {
    if bytes.is_empty() {
        return Err(Error::EmptyFile);
    }
    let reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| Error::Corrupt(e.to_string()))?;
    let Some(format) = reader.format() else {
        return Err(Error::UnsupportedFormat(sniff(bytes)));
    };
    let mut decoder = reader.into_decoder().map_err(|e| classify(e, format))?;
    let (width, height) = decoder.dimensions();
    check_size(width, height)?;
    let mut limits = Limits::default();
    // Decoders allocate more than the final buffer (e.g. 16-bit RGBA); allow 4× headroom.
    limits.max_alloc = Some(MAX_PIXELS * 16);
    decoder.set_limits(limits).map_err(|e| classify(e, format))?;
    let orientation = decoder.orientation().ok();
    let mut img = DynamicImage::from_decoder(decoder).map_err(|e| classify(e, format))?;
    if let Some(o) = orientation {
        img.apply_orientation(o);
    }
    Ok(to_rgb(img))
}

/// Reject sizes that are empty or beyond [`MAX_SIDE`] / [`MAX_PIXELS`].
pub fn check_size(width: u32, height: u32) -> Result<()> {
    if width == 0 || height == 0 {
        return Err(Error::NoPixels { width, height });
    }
    if width > MAX_SIDE || height > MAX_SIDE || u64::from(width) * u64::from(height) > MAX_PIXELS {
        return Err(Error::TooLarge {
            width,
            height,
            max_side: MAX_SIDE,
            max_megapixels: (MAX_PIXELS / 1_000_000) as u32,
        });
    }
    Ok(())
}

/// Reduce any decoded image to 8-bit RGB, compositing alpha on white.
pub fn to_rgb(img: DynamicImage) -> Rgb {
    if !img.color().has_alpha() {
        // `to_rgb8` replicates gray and rounds 16-bit/float samples to 8 bits.
        return img.into_rgb8();
    }
    let rgba = img.into_rgba8();
    let (w, h) = rgba.dimensions();
    let mut out = RgbImage::new(w, h);
    for (dst, src) in out.pixels_mut().zip(rgba.pixels()) {
        let a = u32::from(src[3]);
        for c in 0..3 {
            // Round-to-nearest of (c·a + 255·(255−a)) / 255.
            let v = u32::from(src[c]) * a + 255 * (255 - a);
            dst[c] = ((v + 127) / 255) as u8;
        }
    }
    out
}

/// Build an RGB image from straight (non-premultiplied) RGBA bytes, e.g. a canvas `ImageData`.
///
/// # Errors
/// [`Error::InvalidArgument`] when the buffer length is not `width × height × 4`.
pub fn from_rgba(width: u32, height: u32, rgba: Vec<u8>) -> Result<Rgb> {
    check_size(width, height)?;
    let expected = width as usize * height as usize * 4;
    if rgba.len() != expected {
        return Err(Error::InvalidArgument(format!(
            "RGBA buffer has {} bytes; {width}×{height} needs {expected}",
            rgba.len()
        )));
    }
    let img = image::RgbaImage::from_raw(width, height, rgba)
        .ok_or_else(|| Error::InvalidArgument("RGBA buffer does not match its size".into()))?;
    Ok(to_rgb(DynamicImage::ImageRgba8(img)))
}

/// Map the image crate's errors onto ours, keeping its detail.
fn classify(e: image::ImageError, format: image::ImageFormat) -> Error {
    use image::ImageError as E;
    match e {
        E::Limits(l) => Error::Corrupt(format!("{format:?} needs more memory than allowed ({l})")),
        E::Unsupported(u) => Error::UnsupportedFormat(format!(" ({u})")),
        E::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            Error::Corrupt(format!("{format:?} file ends early (truncated)"))
        }
        other => Error::Corrupt(format!("{format:?}: {other}")),
    }
}

/// Name what the bytes look like when no decoder recognises them.
fn sniff(bytes: &[u8]) -> String {
    let head = &bytes[..bytes.len().min(512)];
    if head.starts_with(b"DICM") || bytes.get(128..132) == Some(b"DICM") {
        return " (looks like DICOM: export it as PNG first)".into();
    }
    if head.starts_with(b"%PDF") {
        return " (this is a PDF document)".into();
    }
    if std::str::from_utf8(head).is_ok() {
        return " (this is a text file)".into();
    }
    String::new()
}
