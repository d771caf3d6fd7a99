//! Decoding: every broken file gets a specific error; every valid variant the right pixels.

use std::io::Cursor;

use headtune::image::decode;
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
    assert!(matches!(err, Error::Corrupt(_)), "{err:?}");
    assert!(err.to_string().contains("Jpeg"), "{err}");
}

#[test]
fn truncated_png() {
    let png = encode(two_halves(), ImageFormat::Png);
    let err = decode(&png[..png.len() - 20]).unwrap_err();
    assert!(matches!(err, Error::Corrupt(_)), "{err:?}");
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
