//! Decoding: bytes of an image file → 8-bit RGB pixels, upright.
//!
//! Everything a user drops in arrives here first, so this stage is defensive:
//! - the header is read first ([`inspect`]): the declared size is checked and the memory the
//!   decode will need is estimated before any pixel buffer is allocated (a 100 000 × 100 000 PNG
//!   is 40 GB once decoded; a 43-byte GIF can declare 64 megapixels), and refused above
//!   [`MAX_DECODE_BYTES`] — callers decoding in parallel reserve [`Header::memory`] from a shared
//!   budget first;
//! - codecs get limits where they honour them (PNG: colour profile and text chunks are capped at
//!   [`MAX_METADATA_BYTES`], which stops a 1×1 PNG whose profile inflates to 500 MB);
//! - JPEGs are decoded in strict mode: a truncated or corrupted JPEG is refused instead of being
//!   completed with grey (the image crate's decoder is lenient, like browsers; a classifier
//!   trained on a scan whose lower third is grey learns the wrong thing, silently);
//! - conversions and the EXIF rotation avoid extra full-size copies where they can;
//! - every failure becomes a specific [`Error`] in plain words, with the decoder's own message
//!   kept in [`Error::detail`].

use std::io::{BufRead, Cursor, Read, Seek, SeekFrom};

use image::metadata::Orientation;
use image::{DynamicImage, GenericImageView, ImageDecoder, ImageError, ImageFormat, ImageReader, Limits, RgbImage};
use zune_core::colorspace::ColorSpace;
use zune_core::options::DecoderOptions;
use zune_jpeg::errors::DecodeErrors;
use zune_jpeg::zune_core;

use crate::error::{Error, Result};

/// Largest accepted image side, in pixels.
pub const MAX_SIDE: u32 = 16_384;
/// Largest accepted pixel count (64 megapixels: a large phone photo is 50).
pub const MAX_PIXELS: u64 = 64_000_000;
/// Largest image file read at all (the CLI checks it before reading; the page before handing
/// bytes to the engine). An uncompressed 64-megapixel TIFF is 192 MB.
pub const MAX_FILE_BYTES: u64 = 256 << 20;
/// Largest estimated peak memory of decoding one image. A 48-megapixel phone photo needs
/// ~300 MB with its EXIF rotation; 16-bit, animated-canvas or progressive giants above this are
/// refused with [`Error::MemoryLimit`].
pub const MAX_DECODE_BYTES: u64 = 512 << 20;
/// Cap on what a codec may allocate for metadata (PNG colour profiles and text chunks).
pub const MAX_METADATA_BYTES: u64 = 16 << 20;

/// An 8-bit RGB image, upright (EXIF orientation applied), alpha composited on white.
pub type Rgb = RgbImage;

/// What an image file's header says, read before any pixel buffer is allocated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// The container format.
    pub format: ImageFormat,
    /// Stored width (before the EXIF rotation).
    pub width: u32,
    /// Stored height (before the EXIF rotation).
    pub height: u32,
    /// Estimated peak bytes the decode allocates (pixels, codec buffers, conversion and
    /// rotation copies), not counting the file's own bytes.
    pub memory: u64,
}

/// Read an image file's header from `reader` (a file, a cursor) and estimate what decoding it
/// costs, without decoding pixels. Reads only the first part of the file for every format.
///
/// # Errors
/// As [`decode`] for everything the header shows: [`Error::EmptyFile`],
/// [`Error::UnsupportedFormat`], [`Error::TooLarge`], [`Error::NoPixels`],
/// [`Error::MemoryLimit`], [`Error::Corrupt`]; and [`Error::Io`] (with an empty path) when the
/// reader fails.
pub fn inspect<R: BufRead + Seek>(reader: R) -> Result<Header> {
    open(reader).map(|o| o.header)
}

/// Decode an image file from its bytes.
///
/// RGB, 8 bits per channel: grayscale is replicated, 16-bit and float samples are reduced,
/// transparent pixels are composited on white, and the EXIF orientation is applied so the
/// pixels are the way a viewer shows them. These are the conventions the backbone was trained
/// with (see `BACKBONE.md`).
///
/// # Errors
/// [`Error::EmptyFile`], [`Error::UnsupportedFormat`] (saying what the file is when it can tell:
/// HEIC, DICOM, PDF, text, macOS metadata …), [`Error::TooLarge`], [`Error::NoPixels`],
/// [`Error::MemoryLimit`] or [`Error::Corrupt`] (truncated or damaged data, including JPEGs a
/// lenient viewer would still show).
pub fn decode(bytes: &[u8]) -> Result<Rgb> {
    let opened = open(Cursor::new(bytes))?;
    let Opened { header, orientation, codec } = opened;
    let rgb = match codec {
        Codec::Jpeg(mut d) => {
            jpeg_structure(bytes).map_err(|detail| damaged(ImageFormat::Jpeg, truncated(bytes, ImageFormat::Jpeg), detail))?;
            let mut out = alloc(u64::from(header.width) * u64::from(header.height) * 3, &header)?;
            d.decode_into(&mut out).map_err(|e| jpeg_error(e, truncated(bytes, ImageFormat::Jpeg)))?;
            RgbImage::from_raw(header.width, header.height, out)
                .ok_or_else(|| corrupt("the JPEG decoder returned fewer pixels than the header declares", String::new()))?
        }
        Codec::Other(d) => {
            let img = DynamicImage::from_decoder(d).map_err(|e| image_error(e, header.format, truncated(bytes, header.format)))?;
            to_rgb(img)
        }
    };
    Ok(orient(rgb, orientation))
}

/// Reject sizes that are empty or beyond [`MAX_SIDE`] / [`MAX_PIXELS`].
///
/// # Errors
/// [`Error::NoPixels`] or [`Error::TooLarge`].
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

/// Reduce any decoded image to 8-bit RGB, compositing alpha on white. Converts pixel by pixel
/// into the output, so a 16-bit RGBA image never has a second full-size 8-bit RGBA copy.
pub fn to_rgb(img: DynamicImage) -> Rgb {
    match img {
        DynamicImage::ImageRgb8(rgb) => rgb,
        // `into_rgb8` replicates gray and rounds 16-bit/float samples to 8 bits.
        img if !img.color().has_alpha() => img.into_rgb8(),
        DynamicImage::ImageRgba8(rgba) => composite(rgba.width(), rgba.height(), |x, y| rgba.get_pixel(x, y).0),
        // Gray+alpha, 16-bit and float: `get_pixel` converts one pixel to 8-bit RGBA the way
        // `into_rgba8` would, without the full-size intermediate.
        other => composite(other.width(), other.height(), |x, y| other.get_pixel(x, y).0),
    }
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

/// `(c·a + 255·(255−a)) / 255`, rounded to nearest: a straight-alpha pixel over white.
fn composite(width: u32, height: u32, pixel: impl Fn(u32, u32) -> [u8; 4]) -> Rgb {
    RgbImage::from_fn(width, height, |x, y| {
        let src = pixel(x, y);
        let a = u32::from(src[3]);
        let over = |c: u8| ((u32::from(c) * a + 255 * (255 - a) + 127) / 255) as u8;
        image::Rgb([over(src[0]), over(src[1]), over(src[2])])
    })
}

/// Apply the EXIF orientation to the final 8-bit image: flips and 180° turns happen in place;
/// only quarter turns need a second buffer, and it is the small 8-bit one.
fn orient(img: Rgb, orientation: Orientation) -> Rgb {
    if orientation == Orientation::NoTransforms {
        return img;
    }
    let mut dynamic = DynamicImage::ImageRgb8(img);
    dynamic.apply_orientation(orientation);
    dynamic.into_rgb8()
}

/// Whether the orientation swaps width and height (needs a second buffer).
fn quarter_turn(o: Orientation) -> bool {
    matches!(o, Orientation::Rotate90 | Orientation::Rotate270 | Orientation::Rotate90FlipH | Orientation::Rotate270FlipH)
}

/// A zeroed buffer, or [`Error::MemoryLimit`] when the allocator says no (the browser's wasm
/// memory can run out well below the estimate limits).
fn alloc(len: u64, header: &Header) -> Result<Vec<u8>> {
    let mut v = Vec::new();
    usize::try_from(len)
        .ok()
        .and_then(|n| v.try_reserve_exact(n).ok().map(|()| n))
        .map(|n| {
            v.resize(n, 0);
            v
        })
        .ok_or_else(|| {
            Error::MemoryLimit(format!(
                "there is not enough memory to decode this {}×{} image ({} MB): close other tabs or programs, or downscale it",
                header.width,
                header.height,
                len.div_ceil(1 << 20)
            ))
        })
}

/// A decoder positioned after the header.
enum Codec<'a, R> {
    /// JPEG, decoded with zune-jpeg directly so that strict mode can be turned on.
    Jpeg(Box<zune_jpeg::JpegDecoder<R>>),
    /// Every other format, through the image crate.
    Other(Box<dyn ImageDecoder + 'a>),
}

struct Opened<'a, R> {
    header: Header,
    orientation: Orientation,
    codec: Codec<'a, R>,
}

/// How many leading bytes are looked at to recognise a file.
const SNIFF_LEN: usize = 512;

/// Recognise the format, read the header, check sizes and the memory estimate.
fn open<'a, R: BufRead + Seek + 'a>(mut reader: R) -> Result<Opened<'a, R>> {
    let mut head = [0u8; SNIFF_LEN];
    let n = read_prefix(&mut reader, &mut head).map_err(|source| Error::Io { path: String::new(), source })?;
    let head = &head[..n];
    if head.is_empty() {
        return Err(Error::EmptyFile);
    }
    let format = match image::guess_format(head) {
        Ok(f) if SUPPORTED.contains(&f) => f,
        Ok(other) => return Err(Error::UnsupportedFormat(sniff(head, Some(other)))),
        Err(_) => return Err(Error::UnsupportedFormat(sniff(head, None))),
    };
    let (width, height, decoded, codec_extra, orientation, codec) = if format == ImageFormat::Jpeg {
        let options = DecoderOptions::default()
            .set_strict_mode(true)
            .set_max_width(usize::MAX)
            .set_max_height(usize::MAX)
            .jpeg_set_out_colorspace(ColorSpace::RGB);
        let mut d = zune_jpeg::JpegDecoder::new_with_options(reader, options);
        d.decode_headers().map_err(|e| jpeg_error(e, false))?;
        let info = d.info().ok_or_else(|| corrupt("the JPEG header could not be read", String::new()))?;
        let (w, h) = (u32::from(info.width), u32::from(info.height));
        check_size(w, h)?;
        let px = u64::from(w) * u64::from(h);
        // Progressive JPEGs keep every DCT coefficient (i16) of every component until the last
        // scan; baseline ones decode a row of blocks at a time.
        let progressive = info.sof.is_progressive();
        let padded = (u64::from(w) + 16) * (u64::from(h) + 16);
        let extra = if progressive { padded * u64::from(info.components) * 2 } else { u64::from(w + 16) * 16 * 8 };
        let orientation = d.exif().and_then(|e| Orientation::from_exif_chunk(e)).unwrap_or(Orientation::NoTransforms);
        (w, h, px * 3, extra, orientation, Codec::Jpeg(Box::new(d)))
    } else {
        // A PNG's size is in its first chunk: judge it before the png crate sizes its line
        // buffers from it (a 100000-px-wide image would otherwise trip the metadata allowance
        // below and be reported as too much metadata).
        if format == ImageFormat::Png && head.len() >= 24 && &head[12..16] == b"IHDR" {
            let be = |i: usize| u32::from_be_bytes([head[i], head[i + 1], head[i + 2], head[i + 3]]);
            check_size(be(16), be(20))?;
        }
        let mut r = ImageReader::with_format(reader, format);
        let mut limits = Limits::no_limits();
        // PNG: the limit is what the png crate may allocate besides the pixels (profiles, text,
        // line buffers). Others: their internal buffers; our own estimate below is the real gate.
        limits.max_alloc = Some(if format == ImageFormat::Png { MAX_METADATA_BYTES } else { MAX_DECODE_BYTES });
        r.limits(limits);
        let mut d = r.into_decoder().map_err(|e| image_error(e, format, false))?;
        let (w, h) = d.dimensions();
        check_size(w, h)?;
        let px = u64::from(w) * u64::from(h);
        let decoded = d.total_bytes();
        let extra = match format {
            ImageFormat::Png => MAX_METADATA_BYTES,
            // The frame is decoded into its own RGBA buffer, then placed on the canvas.
            ImageFormat::Gif => decoded,
            // Lossless WebP keeps one u32 per pixel; lossy its YUV planes.
            ImageFormat::WebP => px * 4,
            // Compressed strips/tiles are inflated into an intermediate buffer.
            ImageFormat::Tiff => decoded.min(64 << 20),
            _ => 0,
        };
        let orientation = d.orientation().unwrap_or(Orientation::NoTransforms);
        let rgb8 = d.color_type() == image::ColorType::Rgb8;
        let conversion = if rgb8 { 0 } else { px * 3 };
        (w, h, decoded, extra + conversion, orientation, Codec::Other(Box::new(d)))
    };
    let rgb = u64::from(width) * u64::from(height) * 3;
    let rotation = if quarter_turn(orientation) { rgb } else { 0 };
    let memory = decoded + codec_extra + rotation;
    let header = Header { format, width, height, memory };
    if memory > MAX_DECODE_BYTES {
        return Err(Error::MemoryLimit(format!(
            "decoding this {width}×{height} {} image needs about {} MB of memory; the limit is {} MB per image — save it smaller{}",
            format_name(format),
            memory.div_ceil(1 << 20),
            MAX_DECODE_BYTES >> 20,
            if decoded > rgb { " or as 8-bit RGB" } else { "" }
        )));
    }
    Ok(Opened { header, orientation, codec })
}

/// The formats this build decodes.
const SUPPORTED: [ImageFormat; 6] =
    [ImageFormat::Png, ImageFormat::Jpeg, ImageFormat::Gif, ImageFormat::Bmp, ImageFormat::WebP, ImageFormat::Tiff];

/// Fill `buf` from the start of `r` (short only at end of file), then rewind.
fn read_prefix<R: Read + Seek>(r: &mut R, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    r.seek(SeekFrom::Start(0))?;
    Ok(n)
}

fn format_name(format: ImageFormat) -> &'static str {
    match format {
        ImageFormat::Jpeg => "JPEG",
        ImageFormat::Png => "PNG",
        ImageFormat::Gif => "GIF",
        ImageFormat::Bmp => "BMP",
        ImageFormat::WebP => "WebP",
        ImageFormat::Tiff => "TIFF",
        other => other.extensions_str().first().copied().unwrap_or("image"),
    }
}

fn corrupt(message: &str, detail: String) -> Error {
    Error::Corrupt { message: message.to_string(), detail }
}

/// Plain words for a damaged file: cut off (the usual case: an interrupted download or copy)
/// or corrupt inside.
fn damaged(format: ImageFormat, truncated: bool, detail: String) -> Error {
    let name = format_name(format);
    let message = if truncated {
        format!("the {name} file is truncated: it ends before the image does (an interrupted download or copy) — get the file again")
    } else {
        format!("the {name} data is corrupt: the file is damaged — get it again, or open it in an image editor and save it anew")
    };
    Error::Corrupt { message, detail }
}

/// Whether the bytes stop before the format's end marker, i.e. the file was cut off.
fn truncated(bytes: &[u8], format: ImageFormat) -> bool {
    // Trailing padding (zeros, newlines) after the end marker is common and harmless.
    let end = bytes.iter().rposition(|&b| b != 0 && b != b'\n' && b != b'\r' && b != b' ').map_or(0, |i| i + 1);
    let body = &bytes[..end];
    match format {
        ImageFormat::Jpeg => !body.ends_with(&[0xFF, 0xD9]),
        ImageFormat::Png => !body.ends_with(&[0x49, 0x45, 0x4E, 0x44, 0xAE, 0x42, 0x60, 0x82]),
        ImageFormat::Gif => !body.ends_with(b";"),
        _ => false,
    }
}

/// Check a JPEG's marker structure from SOI to EOI: every segment where its length says, every
/// scan's compressed data free of stray markers (inside it, 0xFF is only followed by 0x00 or a
/// restart marker), and an EOI at the end.
///
/// zune-jpeg's strict mode catches invalid Huffman codes and most premature ends, but it takes
/// some markers found inside compressed data as the start of the next segment and does not check
/// the last row of blocks for running out of data; garbage written over a JPEG's data, or a file
/// cut just before its end, would then still decode. A valid file costs one linear pass.
///
/// # Errors
/// What is wrong, as the detail of an [`Error::Corrupt`] (worded as truncated when the file does
/// not end with an EOI marker).
fn jpeg_structure(bytes: &[u8]) -> std::result::Result<(), String> {
    let broken = |at: usize, what: &str| format!("marker structure broken at byte {at}: {what}");
    let cut = |at: usize| format!("the data ends at byte {at}, before the end-of-image marker");
    let mut pos = 2; // after SOI
    loop {
        if pos >= bytes.len() {
            return Err(cut(bytes.len()));
        }
        if bytes[pos] != 0xFF {
            return Err(broken(pos, "expected a marker"));
        }
        // Any number of 0xFF fill bytes may precede a marker.
        while bytes.get(pos + 1) == Some(&0xFF) {
            pos += 1;
        }
        let Some(&marker) = bytes.get(pos + 1) else {
            return Err(cut(bytes.len()));
        };
        match marker {
            0xD9 => return Ok(()), // EOI: whatever follows (MPF images, padding) is not ours
            0xD8 | 0x00 => return Err(broken(pos, "misplaced marker")),
            0x01 | 0xD0..=0xD7 => pos += 2, // no length field
            _ => {
                let len = match bytes.get(pos + 2..pos + 4) {
                    Some(l) => usize::from(u16::from_be_bytes([l[0], l[1]])),
                    None => return Err(cut(bytes.len())),
                };
                if len < 2 {
                    return Err(broken(pos, "segment length below 2"));
                }
                pos += 2 + len;
                if pos > bytes.len() {
                    return Err(cut(bytes.len()));
                }
                if marker == 0xDA {
                    // Compressed data up to the next real marker.
                    loop {
                        match bytes.get(pos..pos + 2) {
                            None => return Err(cut(bytes.len())),
                            Some([0xFF, 0x00 | 0xD0..=0xD7]) => pos += 2,
                            Some([0xFF, 0xFF]) => pos += 1,
                            Some([0xFF, _]) => break,
                            Some(_) => pos += 1,
                        }
                    }
                    let next = bytes[pos + 1];
                    // What may follow a scan: the end, the next scan with its tables, or DNL.
                    if !matches!(next, 0xD9 | 0xDA | 0xC4 | 0xDB | 0xDD | 0xDC | 0xFE | 0xE0..=0xEF | 0xCC) {
                        return Err(broken(pos, "unexpected marker after compressed data"));
                    }
                }
            }
        }
    }
}

/// Map zune-jpeg's errors onto ours, keeping its words as the detail.
fn jpeg_error(e: DecodeErrors, truncated: bool) -> Error {
    let detail = format!("{e:?}");
    match e {
        DecodeErrors::Unsupported(scheme) => Error::UnsupportedFormat(format!(
            "this JPEG uses an encoding headtune cannot decode ({scheme:?}, e.g. arithmetic coding or 12-bit samples) — open it in an image editor and save it as a standard JPEG or PNG"
        )),
        DecodeErrors::ZeroError => Error::NoPixels { width: 0, height: 0 },
        DecodeErrors::ExhaustedData | DecodeErrors::IoErrors(_) => damaged(ImageFormat::Jpeg, true, detail),
        _ => damaged(ImageFormat::Jpeg, truncated, detail),
    }
}

/// Map the image crate's errors onto ours, keeping its words as the detail.
fn image_error(e: ImageError, format: ImageFormat, truncated: bool) -> Error {
    let detail = e.to_string();
    match e {
        ImageError::Limits(_) if format == ImageFormat::Png => Error::MemoryLimit(format!(
            "the PNG file carries more than {} MB of metadata (colour profile or text) — open it in an image editor and save it again without metadata",
            MAX_METADATA_BYTES >> 20
        )),
        ImageError::Limits(_) => Error::MemoryLimit(format!(
            "decoding this {} file needs more than the {} MB of memory one image may use — save it smaller",
            format_name(format),
            MAX_DECODE_BYTES >> 20
        )),
        ImageError::Unsupported(u) => Error::UnsupportedFormat(format!(
            "this {} file uses a feature headtune cannot decode ({u}) — open it in an image editor and save it as PNG or JPEG",
            format_name(format)
        )),
        ImageError::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => damaged(format, true, detail),
        _ => damaged(format, truncated, detail),
    }
}

/// Name what the bytes look like when no decoder of ours recognises them, and what to do.
fn sniff(head: &[u8], format: Option<ImageFormat>) -> String {
    const USE: &str = "use PNG, JPEG, GIF, BMP, WebP or TIFF";
    if head.starts_with(b"DICM") || head.get(128..132) == Some(b"DICM") {
        return "this is a DICOM file — export it as PNG first (any DICOM viewer can)".into();
    }
    // AppleDouble / AppleSingle: the `._name` companions macOS writes next to files it copies
    // to non-Apple disks; they hold metadata, not pixels.
    if head.starts_with(&[0x00, 0x05, 0x16, 0x07]) || head.starts_with(&[0x00, 0x05, 0x16, 0x00]) {
        return "this is a macOS metadata file (a \"._\" companion that macOS writes when copying), not an image — delete it or leave it out".into();
    }
    if head.get(4..8) == Some(b"ftyp") {
        let brand = head.get(8..12).unwrap_or_default();
        let brands: Vec<&[u8]> = head.get(8..head.len().min(64)).unwrap_or_default().chunks(4).collect();
        let has = |names: &[&[u8]]| brands.iter().any(|b| names.contains(b));
        if has(&[b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"hevm", b"hevs", b"mif1", b"msf1"]) && !has(&[b"avif", b"avis"]) {
            return "this is a HEIC/HEIF photo (the iPhone's default format), which headtune cannot read — export it as JPEG (iPhone: Settings → Camera → Formats → Most Compatible; Mac: open in Preview → File → Export → JPEG)".into();
        }
        if has(&[b"avif", b"avis"]) {
            return format!("this is an AVIF image, which headtune cannot read — export it as JPEG or PNG ({USE})");
        }
        if !brand.is_empty() {
            return "this looks like a video (MP4/MOV), not an image — export a frame as PNG or JPEG".into();
        }
    }
    if head.starts_with(b"%PDF") {
        return format!("this is a PDF document, not an image — export its pages as PNG ({USE})");
    }
    if head.starts_with(b"PK\x03\x04") {
        return "this is a ZIP archive — unpack it and add the images inside".into();
    }
    if head.starts_with(&[0xFF, 0x0A]) || head.starts_with(b"\0\0\0\x0cJXL \r\n\x87\n") {
        return format!("this is a JPEG XL image, which headtune cannot read — export it as JPEG or PNG ({USE})");
    }
    if head.starts_with(b"8BPS") {
        return format!("this is a Photoshop document — export it as PNG or JPEG ({USE})");
    }
    if let Some(f) = format {
        return format!("this is a {} image, which headtune cannot read — convert it ({USE})", format_name(f));
    }
    if head.iter().all(|&b| b == 0) {
        return "the file holds only zero bytes where an image should start — it was not fully downloaded or copied; get it again".into();
    }
    if looks_like_text(head) {
        let lower = String::from_utf8_lossy(head).to_ascii_lowercase();
        if lower.contains("<svg") {
            return format!("this is an SVG drawing — export it as PNG ({USE})");
        }
        if lower.contains("<html") || lower.contains("<!doctype html") {
            return "this is a web page (HTML), not an image — often a download that failed or needed a login; download the image itself".into();
        }
        return format!("this is a text file, not an image ({USE})");
    }
    format!("not an image format headtune knows ({USE})")
}

/// UTF-8 (allowing a character cut at the end of the sample) with no control characters other
/// than whitespace.
fn looks_like_text(head: &[u8]) -> bool {
    let valid = match std::str::from_utf8(head) {
        Ok(s) => s,
        Err(e) if e.error_len().is_none() => std::str::from_utf8(&head[..e.valid_up_to()]).unwrap_or_default(),
        Err(_) => return false,
    };
    !valid.is_empty() && valid.chars().all(|c| !c.is_control() || matches!(c, '\t' | '\n' | '\r' | '\x0c'))
}
