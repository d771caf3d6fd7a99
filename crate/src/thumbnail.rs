//! Thumbnails: an added image's small pictures for an app to show, made from the decode the
//! engine does anyway (upright: EXIF orientation applied).
//!
//! Two JPEGs per image: a square thumbnail (the class cards of the page) and a preview (the
//! review of mistakes, with a heatmap over it). The preview is one of two pictures
//! ([`Preview`]):
//! - `Input`: what the network saw — the image framed the model's way (centre crop, stretched
//!   or letterboxed: [`crate::preprocess::Crop`]) at the backbone's input side, the pixels it
//!   embedded before normalisation. Nothing is resized for it: the embedding made it already.
//!   The thumbnail is that square, resized. Predicting such a preview again with `framed` (no
//!   second framing: [`crate::predict::predict_image`]) gives the network the same input, so its
//!   heatmap is drawn over exactly what the model saw. An image whose framed region is smaller
//!   than the input is not blown up (unless letterboxed): its preview is that region at its own
//!   resolution (a 28 px scan stays 28 px), which `framed` prediction resizes to the input side
//!   as the model did (exactly for a square region; one more resize's rounding otherwise).
//!   What the page asks for: it costs the worker 0.8–1.2 ms per 1 MP photo against 1.6–2.3 ms
//!   for `Image` (measured in the browser: the engine's `embedViews` of one photo with and
//!   without thumbnails, interleaved).
//! - `Image(side)`: the whole image, aspect kept, no larger than asked; the thumbnail is its
//!   centre square.
//!
//! Without them an app would decode every image a second time in the browser only to draw
//! these — on the page that cost as much CPU as a third of the embedding.
//!
//! Resizing is `fast_image_resize`'s box convolution (each output pixel the mean of the input
//! pixels it covers): from 1 MP photos to 320 px it is both the fastest filter that does not
//! alias (0.76 ms in wasm against 1.04 for super-sampling, nearest-neighbour to twice the size
//! then bilinear, which this used before) and the closest to a Lanczos-3 resize (+2.5 dB PSNR on
//! average over four 1152×864 photo mosaics; plain bilinear interpolation, 0.6 ms, is 4 dB
//! worse: it aliases). The thumbnail is cut from the preview when that is at least twice its
//! side (so the full image is resized once). Encoding is `jpeg-encoder`'s
//! baseline JPEG (4:2:0): 2.9× faster than the `image` crate's encoder (0.65 vs 1.85 ms for a
//! 320×240 preview, natively) and a fifth smaller at the same quality setting; still the larger
//! cost in wasm (≈ 1 ms for a 320×240 preview, ≈ 0.65 for a 224 × 224 input).

use fast_image_resize::{FilterType, ResizeAlg, ResizeOptions, Resizer};
use image::RgbImage;

use crate::error::{Error, Result};
use crate::image::Rgb;
use crate::preprocess::{self, View};

/// JPEG quality of the thumbnail: small squares, where artefacts barely show.
const THUMB_QUALITY: u8 = 80;
/// JPEG quality of the preview, looked at more closely (with a heatmap over it).
const PREVIEW_QUALITY: u8 = 85;
/// The sides a caller may ask for, in pixels.
const SIDES: std::ops::RangeInclusive<u32> = 16..=1024;

/// What the network saw of an image: its evaluation view and the `S × S` input pixels rendered
/// from it ([`crate::store::view_inputs_seen`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Seen {
    /// The evaluation view (the framed region of the image).
    pub view: View,
    /// The input square, before normalisation.
    pub pixels: RgbImage,
}

/// What the preview shows (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preview {
    /// The whole image, aspect kept, longest side at most this many pixels (smaller images keep
    /// their size).
    Image(u32),
    /// The network's input square: the image as the model saw it.
    Input,
}

/// Which pictures to make.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThumbnailSizes {
    /// Side of the square thumbnail, in pixels: of the image's centre (`Image`) or of the input
    /// square (`Input`).
    pub thumb: u32,
    /// What the preview shows.
    pub preview: Preview,
}

impl Default for ThumbnailSizes {
    /// The package's default: a 112 px square (2× the 56 px the page shows it at) and a 320 px
    /// preview of the whole image.
    fn default() -> Self {
        Self { thumb: 112, preview: Preview::Image(320) }
    }
}

impl ThumbnailSizes {
    /// Refuse sides outside 16–1024 pixels.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming the side and the range.
    pub fn validate(&self) -> Result<()> {
        let preview = match self.preview {
            Preview::Image(side) => Some(side),
            Preview::Input => None,
        };
        for (what, side) in [("thumbnail side", Some(self.thumb)), ("preview side", preview)] {
            if let Some(side) = side.filter(|s| !SIDES.contains(s)) {
                return Err(Error::InvalidArgument(format!("{what} is {side} pixels; use {} to {}", SIDES.start(), SIDES.end())));
            }
        }
        Ok(())
    }

    /// The thumbnail and preview of `img`, which the network saw as `seen` (only `Input` reads
    /// it), as JPEG files.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for sides out of range, an image without pixels, or an `Input`
    /// preview without `seen`; [`Error::Backend`] if resizing or encoding fails (not expected
    /// for valid sizes).
    pub fn make(&self, img: &Rgb, seen: Option<&Seen>) -> Result<Thumbnails> {
        self.validate()?;
        match self.preview {
            Preview::Input => {
                let seen = seen.ok_or_else(|| Error::InvalidArgument("an input preview needs what the network saw of the image".into()))?;
                let side = seen.pixels.width().min(seen.pixels.height());
                if side == 0 {
                    return Err(Error::InvalidArgument("cannot make thumbnails of an empty input".into()));
                }
                // The framed region's own resolution when that is smaller than the input: what
                // `framed` prediction resizes up the model's way, in a smaller file. Not for a
                // letterbox: resizing its bars' edges twice moved the input too far (cosine
                // 0.989 on a two-colour test image, against > 0.999 stretched).
                let region = seen.view.crop.width.max(seen.view.crop.height).ceil();
                let shrink = !seen.view.letterbox && region < f64::from(side);
                let smaller = if shrink { Some(preprocess::render(img, &seen.view, region as usize)?) } else { None };
                let preview = smaller.as_ref().unwrap_or(&seen.pixels);
                let square = square_of(preview, self.thumb)?;
                Ok(Thumbnails { thumb: encode(&square, THUMB_QUALITY)?, preview: encode(preview, PREVIEW_QUALITY)? })
            }
            Preview::Image(longest) => {
                let (w, h) = img.dimensions();
                if w == 0 || h == 0 {
                    return Err(Error::InvalidArgument(format!("cannot make thumbnails of a {w}×{h} image")));
                }
                let (pw, ph) = fit(w, h, longest);
                let small = if (pw, ph) == (w, h) {
                    None
                } else {
                    let mut small = RgbImage::new(pw, ph);
                    resize(img, &mut small, &options())?;
                    Some(small)
                };
                let preview = small.as_ref().unwrap_or(img);
                // The preview is a sharp enough source for a thumbnail of at most half its short side.
                let source = if pw.min(ph) >= self.thumb.saturating_mul(2) { preview } else { img };
                let square = square_of(source, self.thumb)?;
                Ok(Thumbnails { thumb: encode(&square, THUMB_QUALITY)?, preview: encode(preview, PREVIEW_QUALITY)? })
            }
        }
    }
}

/// The centre square of `source`, resized to `side × side`.
fn square_of(source: &RgbImage, side: u32) -> Result<RgbImage> {
    let (sw, sh) = source.dimensions();
    let short = sw.min(sh);
    let mut square = RgbImage::new(side, side);
    let centre = options().crop(f64::from((sw - short) / 2), f64::from((sh - short) / 2), f64::from(short), f64::from(short));
    resize(source, &mut square, &centre)?;
    Ok(square)
}

/// An image's pictures, as JPEG file bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Thumbnails {
    /// The square thumbnail of the centre.
    pub thumb: Vec<u8>,
    /// The whole image, longest side at most the preview side.
    pub preview: Vec<u8>,
}

/// `w × h` scaled down (never up) so its longest side is at most `longest`, each side ≥ 1.
fn fit(w: u32, h: u32, longest: u32) -> (u32, u32) {
    let long = w.max(h);
    if long <= longest {
        return (w, h);
    }
    // u64: w · longest cannot overflow; the result is ≤ longest, so it fits back in u32.
    let scale = |s: u32| (((u64::from(s) * u64::from(longest)) + u64::from(long) / 2) / u64::from(long)).max(1) as u32;
    (scale(w), scale(h))
}

fn options() -> ResizeOptions {
    ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Box))
}

fn resize(src: &Rgb, dst: &mut RgbImage, options: &ResizeOptions) -> Result<()> {
    Resizer::new().resize(src, dst, options).map_err(|e| Error::Backend(format!("cannot resize the thumbnail: {e}")))
}

fn encode(img: &RgbImage, quality: u8) -> Result<Vec<u8>> {
    let (w, h) = img.dimensions();
    // Sides are at most 1024 here (SIDES, and a preview never exceeds its side).
    let side = |s: u32| u16::try_from(s).map_err(|_| Error::InvalidArgument(format!("cannot encode a {w}×{h} thumbnail: sides are limited to 65535")));
    let mut out = Vec::new();
    jpeg_encoder::Encoder::new(&mut out, quality)
        .encode(img.as_raw(), side(w)?, side(h)?, jpeg_encoder::ColorType::Rgb)
        .map_err(|e| Error::Backend(format!("cannot encode the thumbnail as JPEG: {e}")))?;
    Ok(out)
}
