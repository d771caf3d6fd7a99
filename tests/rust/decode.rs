//! Decoding: every broken file gets a specific error; every valid variant the right pixels.

use std::io::Cursor;

use headtune::image::decode;
use headtune::preprocess::{render, Crop, View};
use headtune::thumbnail::{Preview, Seen};
use headtune::Error;
use image::{DynamicImage, ImageBuffer, ImageFormat, Luma, LumaA, Rgb, Rgba};

fn encode(img: DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, format).expect("encode");
    out.into_inner()
}

/// 32×16: left half red, right half blue.
fn two_halves() -> DynamicImage {
    DynamicImage::ImageRgb8(ImageBuffer::from_fn(32, 16, |x, _| if x < 16 { Rgb([255, 0, 0]) } else { Rgb([0, 0, 255]) }))
}

#[test]
fn zero_byte_file() {
    assert!(matches!(decode(&[]), Err(Error::EmptyFile)));
    assert_eq!(decode(&[]).unwrap_err().to_string(), "the file is empty (0 bytes)");
}

#[test]
fn text_file_named_png() {
    let err = decode(b"hello, this is not an image\n").unwrap_err();
    assert!(matches!(err, Error::UnsupportedFormat(_)), "{err:?}");
    assert!(err.to_string().contains("text file"), "{err}");
}

#[test]
fn truncated_jpeg() {
    let jpeg = encode(two_halves(), ImageFormat::Jpeg);
    let err = decode(&jpeg[..jpeg.len() / 2]).unwrap_err();
    assert!(matches!(err, Error::Corrupt { .. }), "{err:?}");
    assert!(err.to_string().contains("JPEG file is truncated"), "{err}");
}

#[test]
fn truncated_png() {
    let png = encode(two_halves(), ImageFormat::Png);
    let err = decode(&png[..png.len() - 20]).unwrap_err();
    assert!(matches!(err, Error::Corrupt { .. }), "{err:?}");
}

/// A PNG whose header declares 100000×100000 pixels (40 GB decoded) must be refused before
/// any allocation.
#[test]
fn png_bomb_header() {
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = b"IHDR".to_vec();
    ihdr.extend(100_000u32.to_be_bytes());
    ihdr.extend(100_000u32.to_be_bytes());
    ihdr.extend([8, 2, 0, 0, 0]); // 8-bit RGB
    png.extend(13u32.to_be_bytes());
    png.extend(&ihdr);
    png.extend(crc32fast::hash(&ihdr).to_be_bytes());
    // A tiny IDAT (an empty zlib stream) and IEND: small on disk, 30 GB once decoded.
    for (kind, data) in [(&b"IDAT"[..], &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01][..]), (b"IEND", &[])] {
        let mut chunk = kind.to_vec();
        chunk.extend(data);
        png.extend((data.len() as u32).to_be_bytes());
        png.extend(&chunk);
        png.extend(crc32fast::hash(&chunk).to_be_bytes());
    }
    let err = decode(&png).unwrap_err();
    match err {
        Error::TooLarge { width, height, .. } => assert_eq!((width, height), (100_000, 100_000)),
        other => panic!("expected TooLarge, got {other:?}"),
    }
    assert!(decode(&png).unwrap_err().to_string().contains("100000×100000"));
}

#[test]
fn sixteen_bit_png_is_reduced() {
    let img = ImageBuffer::from_fn(4, 4, |x, _| Rgb([x as u16 * 0x4000 + 0x00ff, 0xffff, 0]));
    let rgb = decode(&encode(DynamicImage::ImageRgb16(img), ImageFormat::Png)).expect("decodes");
    assert_eq!(rgb.dimensions(), (4, 4));
    assert_eq!(rgb.get_pixel(0, 0).0, [1, 255, 0]); // 0x00ff / 257 rounds to 1
    assert_eq!(rgb.get_pixel(2, 0).0, [128, 255, 0]); // 0x80ff / 257 ≈ 128.5 → 128 or 129
}

#[test]
fn grayscale_png_is_replicated() {
    let img = ImageBuffer::from_fn(3, 2, |x, _| Luma([x as u8 * 100]));
    let rgb = decode(&encode(DynamicImage::ImageLuma8(img), ImageFormat::Png)).expect("decodes");
    assert_eq!(rgb.get_pixel(2, 1).0, [200, 200, 200]);
    let img = ImageBuffer::from_fn(2, 2, |_, _| LumaA([50u8, 0]));
    let rgb = decode(&encode(DynamicImage::ImageLumaA8(img), ImageFormat::Png)).expect("decodes");
    assert_eq!(rgb.get_pixel(0, 0).0, [255, 255, 255], "transparent gray is white");
}

#[test]
fn rgba_png_is_composited_on_white() {
    let img = ImageBuffer::from_fn(3, 1, |x, _| match x {
        0 => Rgba([255, 0, 0, 255]), // opaque red stays red
        1 => Rgba([0, 0, 0, 0]),     // transparent → white
        _ => Rgba([0, 0, 0, 128]),   // half-transparent black → mid gray
    });
    let rgb = decode(&encode(DynamicImage::ImageRgba8(img), ImageFormat::Png)).expect("decodes");
    assert_eq!(rgb.get_pixel(0, 0).0, [255, 0, 0]);
    assert_eq!(rgb.get_pixel(1, 0).0, [255, 255, 255]);
    assert_eq!(rgb.get_pixel(2, 0).0, [127, 127, 127]);
}

/// Insert an EXIF APP1 segment with the given orientation right after the JPEG's SOI marker.
fn with_exif_orientation(jpeg: &[u8], orientation: u16) -> Vec<u8> {
    let mut tiff = b"MM\0\x2a\0\0\0\x08".to_vec(); // big-endian TIFF header, IFD at 8
    tiff.extend(1u16.to_be_bytes()); // one entry
    tiff.extend(0x0112u16.to_be_bytes()); // Orientation
    tiff.extend(3u16.to_be_bytes()); // SHORT
    tiff.extend(1u32.to_be_bytes()); // count
    tiff.extend(orientation.to_be_bytes());
    tiff.extend([0, 0]); // padding of the 4-byte value field
    tiff.extend(0u32.to_be_bytes()); // no next IFD
    let mut app1 = b"Exif\0\0".to_vec();
    app1.extend(tiff);
    let mut out = jpeg[..2].to_vec(); // SOI
    out.extend([0xFF, 0xE1]);
    out.extend(((app1.len() + 2) as u16).to_be_bytes());
    out.extend(app1);
    out.extend(&jpeg[2..]);
    out
}

#[test]
fn exif_rotated_jpeg_is_upright() {
    let jpeg = encode(two_halves(), ImageFormat::Jpeg);
    let plain = decode(&jpeg).expect("plain decodes");
    assert_eq!(plain.dimensions(), (32, 16));
    // Orientation 6: the stored image must be rotated 90° clockwise to display; the left (red)
    // half ends up on top.
    let rotated = decode(&with_exif_orientation(&jpeg, 6)).expect("rotated decodes");
    assert_eq!(rotated.dimensions(), (16, 32));
    let top = rotated.get_pixel(8, 4).0;
    let bottom = rotated.get_pixel(8, 28).0;
    assert!(top[0] > 200 && top[2] < 60, "top should be red, got {top:?}");
    assert!(bottom[2] > 200 && bottom[0] < 60, "bottom should be blue, got {bottom:?}");
}

#[test]
fn other_formats_decode() {
    for format in [ImageFormat::Bmp, ImageFormat::Gif, ImageFormat::WebP, ImageFormat::Tiff] {
        let rgb = decode(&encode(two_halves(), format)).unwrap_or_else(|e| panic!("{format:?}: {e}"));
        assert_eq!(rgb.dimensions(), (32, 16), "{format:?}");
    }
}

fn photo_jpeg(w: u32, h: u32) -> Vec<u8> {
    let img = ImageBuffer::from_fn(w, h, |x, y| Rgb([(x * 255 / w) as u8, (y * 255 / h) as u8, ((x ^ y) & 0xff) as u8]));
    encode(DynamicImage::ImageRgb8(img), ImageFormat::Jpeg)
}

/// A JPEG cut to 10 % of its bytes, or with garbage in its compressed data, is refused — the
/// image crate's lenient decoder would complete it with grey and train on it silently.
#[test]
fn damaged_jpegs_are_refused_not_completed_with_grey() {
    let jpeg = photo_jpeg(320, 240);
    let cut = &jpeg[..jpeg.len() / 10];
    assert!(image::load_from_memory(cut).is_ok(), "the lenient decoder accepts the cut file");
    let err = decode(cut).unwrap_err();
    assert!(matches!(err, Error::Corrupt { .. }), "{err:?}");
    assert!(err.to_string().starts_with("the JPEG file is truncated"), "{err}");
    assert!(err.detail().is_some(), "the decoder's own words stay available");

    let sos = jpeg.windows(2).position(|w| w == [0xFF, 0xDA]).expect("SOS");
    let mut garbled = jpeg.clone();
    for i in (sos + 60..jpeg.len() - 60).step_by(11) {
        garbled[i] = 0xFF;
    }
    let err = decode(&garbled).unwrap_err();
    assert!(err.to_string().starts_with("the JPEG data is corrupt"), "{err}");
    assert!(!err.to_string().contains("Format error"), "plain words: {err}");
}

#[test]
fn files_that_are_not_images_say_what_they_are() {
    let cases: [(&[u8], &str); 8] = [
        (&[0u8; 4096], "only zero bytes"),
        (b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        ", "macOS metadata file"),
        (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic\x00\x00\x00\x28meta", "HEIC/HEIF photo (the iPhone's default format)"),
        (b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00avifmif1miaf", "AVIF"),
        (b"<!DOCTYPE html><html><body>login</body></html>", "web page"),
        (b"%PDF-1.4\n", "PDF document"),
        (b"PK\x03\x04\x14\x00", "ZIP archive"),
        (b"DICM\x02\x00", "DICOM"),
    ];
    for (bytes, what) in cases {
        let err = decode(bytes).unwrap_err();
        assert!(matches!(err, Error::UnsupportedFormat(_)), "{what}: {err:?}");
        assert!(err.to_string().contains(what), "{what}: {err}");
    }
    assert!(decode(b"\x00\x00\x00\x18ftypheic").unwrap_err().to_string().contains("export it as JPEG"));
}

/// PNG chunk with its CRC.
fn chunk(kind: &[u8], data: &[u8]) -> Vec<u8> {
    let mut body = kind.to_vec();
    body.extend(data);
    let mut out = (data.len() as u32).to_be_bytes().to_vec();
    out.extend(&body);
    out.extend(crc32fast::hash(&body).to_be_bytes());
    out
}

fn zlib_zeros(n: usize, prefix: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
    z.write_all(prefix).expect("zlib");
    let block = vec![0u8; 1 << 20];
    let mut left = n;
    while left > 0 {
        let k = left.min(block.len());
        z.write_all(&block[..k]).expect("zlib");
        left -= k;
    }
    z.finish().expect("zlib")
}

fn png_file(w: u32, h: u32, depth: u8, color: u8, extra: &[Vec<u8>], idat: &[u8]) -> Vec<u8> {
    let mut ihdr = w.to_be_bytes().to_vec();
    ihdr.extend(h.to_be_bytes());
    ihdr.extend([depth, color, 0, 0, 0]);
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.extend(chunk(b"IHDR", &ihdr));
    for c in extra {
        png.extend(c);
    }
    png.extend(chunk(b"IDAT", idat));
    png.extend(chunk(b"IEND", &[]));
    png
}

/// The memory cases of issue 10: each is refused from its header (with how much it would need),
/// before the pixels or the colour profile are inflated.
#[test]
fn decoding_memory_is_bounded_before_allocation() {
    // 8000² RGBA16 with EXIF orientation 6: 512 MB of samples (a 500 KB file) plus copies.
    let side = 8000u32;
    let tiff = b"MM\0\x2a\0\0\0\x08\0\x01\x01\x12\0\x03\0\0\0\x01\0\x06\0\0\0\0\0\0".to_vec();
    let exif = chunk(b"eXIf", &tiff);
    let row = (1 + side * 8) as usize;
    // Only the header is needed for the refusal: a short IDAT keeps the test fast.
    let png = png_file(side, side, 16, 6, &[exif], &zlib_zeros(row * 4, &[]));
    let err = decode(&png).unwrap_err();
    assert!(matches!(err, Error::MemoryLimit(_)), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("8000×8000 PNG image needs about") && msg.contains("limit is 512 MB") && msg.contains("8-bit"), "{msg}");

    // A 1×1 PNG whose colour profile inflates to 476 MB: the png crate stops inflating at the
    // 16 MB metadata cap and drops the profile (we never use it), so the pixel decodes. The
    // corpus runner (tests/hostile) measures that the process stays small.
    let mut iccp = b"bomb\0\0".to_vec();
    iccp.extend(zlib_zeros(476 << 20, &[]));
    let png = png_file(1, 1, 8, 2, &[chunk(b"iCCP", &iccp)], &zlib_zeros(4, &[]));
    assert_eq!(decode(&png).expect("the pixel decodes").dimensions(), (1, 1));

    // A 43-byte GIF declaring an 8000×8000 canvas and frame.
    let mut gif = b"GIF89a".to_vec();
    gif.extend(8000u16.to_le_bytes());
    gif.extend(8000u16.to_le_bytes());
    gif.extend([0x80, 0, 0, 0, 0, 0, 255, 255, 255, 0x2c, 0, 0, 0, 0]);
    gif.extend(8000u16.to_le_bytes());
    gif.extend(8000u16.to_le_bytes());
    gif.extend([0, 2, 1, 0x2c, 0, 0x3b]);
    assert!(gif.len() < 50);
    let err = decode(&gif).unwrap_err();
    assert!(matches!(err, Error::MemoryLimit(_)), "{err:?}");
}

/// `inspect` reads the header only: sizes and the memory estimate of a file whose pixel data
/// is missing, and a rotation costs one more RGB buffer.
#[test]
fn inspect_reads_only_the_header() {
    let jpeg = photo_jpeg(400, 300);
    let header = headtune::image::inspect(Cursor::new(&jpeg[..jpeg.len() / 4])).expect("header of a truncated file");
    assert_eq!((header.format, header.width, header.height), (ImageFormat::Jpeg, 400, 300));
    let rgb = 400 * 300 * 3;
    assert!(header.memory >= rgb && header.memory < 2 * rgb, "{}", header.memory);
    let rotated = headtune::image::inspect(Cursor::new(with_exif_orientation(&jpeg, 6))).expect("header");
    assert!(rotated.memory >= header.memory + rgb, "{} vs {}", rotated.memory, header.memory);
    assert!(decode(&jpeg[..jpeg.len() / 4]).is_err(), "while the decode refuses the damaged data");
}

/// A PNG declaring 100000 × 1 RGBA16 pixels is refused for its size, from its header, the same
/// in every build (the wasm engine once reported it as "more than 16 MB of metadata").
#[test]
fn very_wide_png_is_too_large_from_its_header() {
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = b"IHDR".to_vec();
    ihdr.extend_from_slice(&100_000u32.to_be_bytes());
    ihdr.extend_from_slice(&1u32.to_be_bytes());
    ihdr.extend_from_slice(&[16, 6, 0, 0, 0]); // 16-bit RGBA
    png.extend_from_slice(&13u32.to_be_bytes());
    png.extend_from_slice(&ihdr);
    png.extend_from_slice(&crc32fast::hash(&ihdr).to_be_bytes());
    match decode(&png) {
        Err(Error::TooLarge { width, height, .. }) => assert_eq!((width, height), (100_000, 1)),
        other => panic!("expected TooLarge, got {other:?}"),
    }
}

/// The pixel at `(x, y)` of a JPEG file, checking it is a JPEG of `w × h`.
fn jpeg_of(bytes: &[u8], w: u32, h: u32) -> image::RgbImage {
    assert_eq!(image::guess_format(bytes).expect("a known format"), ImageFormat::Jpeg);
    let img = image::load_from_memory_with_format(bytes, ImageFormat::Jpeg).expect("decodable JPEG").to_rgb8();
    assert_eq!(img.dimensions(), (w, h));
    img
}

fn colour_at(img: &image::RgbImage, x: u32, y: u32) -> &'static str {
    match img.get_pixel(x, y).0 {
        [r, g, b] if r > 200 && g < 60 && b < 60 => "red",
        [r, g, b] if g > 200 && r < 60 && b < 60 => "green",
        [r, g, b] if b > 200 && r < 60 && g < 60 => "blue",
        _ => "mixed",
    }
}

/// Thumbnails are made from the upright image (EXIF applied): the thumbnail is its centre
/// square, the preview the whole image with its aspect ratio, longest side 320.
#[test]
fn thumbnails_are_the_upright_centre_square_and_whole_image() {
    // Stored 640×400 with orientation 6, so upright 400×640 with the stored columns as rows:
    // green bands above and below the centre square (rows 120–520), which is red over blue.
    let band = |x: u32| match x {
        0..120 | 520.. => Rgb([0, 255, 0]),
        120..320 => Rgb([255, 0, 0]),
        _ => Rgb([0, 0, 255]),
    };
    let stored = DynamicImage::ImageRgb8(ImageBuffer::from_fn(640, 400, |x, _| band(x)));
    let upright = decode(&with_exif_orientation(&encode(stored, ImageFormat::Jpeg), 6)).expect("decodes");
    let sizes = headtune::thumbnail::ThumbnailSizes { thumb: 112, preview: Preview::Image(320) };
    let made = sizes.make(&upright, None).expect("thumbnails");

    let thumb = jpeg_of(&made.thumb, 112, 112);
    for y in (4..108).step_by(8) {
        for x in (4..108).step_by(8) {
            // Away from the middle row, where red meets blue; no green: nothing outside the square.
            let want = if y < 52 { "red" } else if y > 60 { "blue" } else { continue };
            assert_eq!(colour_at(&thumb, x, y), want, "thumbnail at ({x}, {y})");
        }
    }
    // 400×640 fitted into 320: 200×320, the same aspect ratio.
    let preview = jpeg_of(&made.preview, 200, 320);
    for (y, want) in [(20, "green"), (100, "red"), (220, "blue"), (300, "green")] {
        assert_eq!(colour_at(&preview, 100, y), want, "preview at row {y}");
    }
}

/// The preview and thumbnail average fine detail away rather than alias it: 1-pixel black and
/// white stripes of a 1152×864 image (3.6× larger than the preview) become an even grey. A
/// resize that samples instead of averaging turns them into bands of black, white or moiré
/// (plain bilinear interpolation: 181 in places; the super-sampling used before: 79).
#[test]
fn thumbnails_average_fine_detail_instead_of_aliasing() {
    let stripes = DynamicImage::ImageRgb8(ImageBuffer::from_fn(1152, 864, |x, y| if (x + y / 3) % 2 == 0 { Rgb([0, 0, 0]) } else { Rgb([255, 255, 255]) }));
    let img = decode(&encode(stripes, ImageFormat::Png)).expect("decodes");
    let made = headtune::thumbnail::ThumbnailSizes::default().make(&img, None).expect("thumbnails");
    for (what, pic) in [("preview", jpeg_of(&made.preview, 320, 240)), ("thumbnail", jpeg_of(&made.thumb, 112, 112))] {
        // Away from the border, where the JPEG's blocks and the filter's edge handling differ.
        let (w, h) = pic.dimensions();
        for y in 4..h - 4 {
            for x in 4..w - 4 {
                let [r, g, b] = pic.get_pixel(x, y).0;
                assert!([r, g, b].iter().all(|&c| (80..=175).contains(&c)), "{what} at ({x}, {y}) is {r},{g},{b}: not the stripes' mean grey");
            }
        }
    }
}

/// A small image keeps its size as the preview; the thumbnail is always the side asked for.
/// Sides out of range are refused with the range.
#[test]
fn thumbnails_of_small_images_and_bad_sizes() {
    let small = decode(&photo_jpeg(100, 60)).expect("decodes");
    let made = headtune::thumbnail::ThumbnailSizes::default().make(&small, None).expect("thumbnails");
    jpeg_of(&made.thumb, 112, 112);
    jpeg_of(&made.preview, 100, 60);
    for (thumb, preview) in [(0, 320), (112, 5000)] {
        let err = headtune::thumbnail::ThumbnailSizes { thumb, preview: Preview::Image(preview) }.make(&small, None).expect_err("refused");
        assert!(matches!(err, Error::InvalidArgument(ref m) if m.contains("16 to 1024")), "{err}");
    }
}

/// An input preview is the network's input square itself, and the thumbnail that square
/// resized: here a 1152×864 picture framed `center` (a 756 px centre crop) at 224 px. Without
/// what the network saw it is refused, naming what is missing.
#[test]
fn input_previews_are_what_the_network_saw() {
    let disc = |x: u32, y: u32| if (x.abs_diff(576).pow(2) + y.abs_diff(432).pow(2)) < 300 * 300 { 200 } else { 40 };
    let smooth = ImageBuffer::from_fn(1152, 864, |x, y| Rgb([(x * 255 / 1152) as u8, (y * 255 / 864) as u8, disc(x, y)]));
    let img = decode(&encode(DynamicImage::ImageRgb8(smooth), ImageFormat::Png)).expect("decodes");
    let view = View::eval(1152, 864, Crop::Center, 224);
    let seen = Seen { view, pixels: render(&img, &view, 224).expect("renders") };
    let sizes = headtune::thumbnail::ThumbnailSizes { thumb: 112, preview: Preview::Input };
    let made = sizes.make(&img, Some(&seen)).expect("thumbnails");
    let seen = &seen.pixels;
    let mean_diff = |a: &image::RgbImage, b: &image::RgbImage| a.as_raw().iter().zip(b.as_raw()).map(|(&x, &y)| f64::from(x.abs_diff(y))).sum::<f64>() / a.as_raw().len() as f64;
    // JPEG at quality 85 of the same pixels: a level or two off on average, no more.
    let preview = jpeg_of(&made.preview, 224, 224);
    assert!(mean_diff(&preview, seen) < 2.0, "preview differs from the input by {:.2}", mean_diff(&preview, seen));
    let thumb = jpeg_of(&made.thumb, 112, 112);
    let halved = image::imageops::resize(seen, 112, 112, image::imageops::FilterType::Triangle);
    // (JPEG at 80, and another resize filter at the disc's edge.)
    let off = mean_diff(&thumb, &halved);
    assert!(off < 3.5, "thumbnail differs from the halved input by {off:.2}");
    // Not the whole image: its preview keeps the 4:3 aspect, its thumbnail (the centre square
    // of the whole image, not the 87.5 % crop) is further from the input.
    let whole = headtune::thumbnail::ThumbnailSizes::default().make(&img, None).expect("thumbnails");
    jpeg_of(&whole.preview, 320, 240);
    let other = mean_diff(&jpeg_of(&whole.thumb, 112, 112), &halved);
    assert!(other > off + 1.0, "the whole image's thumbnail is {other:.2} from the input, this one {off:.2}");
    let err = sizes.make(&img, None).expect_err("needs the input");
    assert!(matches!(err, Error::InvalidArgument(ref m) if m.contains("what the network saw")), "{err}");
    // A small image is not blown up to the input side: a 100×60 photo's centre crop (52 px at
    // 224) is its preview at its own size; the thumbnail is the side asked for.
    let small = decode(&photo_jpeg(100, 60)).expect("decodes");
    let view = View::eval(100, 60, Crop::Center, 224);
    let made = sizes.make(&small, Some(&Seen { view, pixels: render(&small, &view, 224).expect("renders") })).expect("thumbnails");
    jpeg_of(&made.preview, 52, 52);
    jpeg_of(&made.thumb, 112, 112);
}
