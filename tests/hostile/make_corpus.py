#!/usr/bin/env python3
"""Generate the hostile-input corpus: bad, odd and mutated images, model files and project files.

Seeded, so every run writes the same bytes; nothing here is committed. Writes OUT/manifest.json:
one entry per file with what must happen when headtune reads it:

  expect  "ok"     the file must be accepted (and, for images, decode to width × height)
          "error"  it must be refused with a specific error: `code` (the Error variant), and
                   `message` (a regex the message must match) when given
          "any"    a random mutation: accepted or refused with a specific error, never a crash,
                   a hang or unbounded memory
  group   the row of the counts table it belongs to

Usage: python3 tests/hostile/make_corpus.py OUT_DIR
"""

import io
import json
import math
import os
import random
import struct
import sys
import zlib

from PIL import Image

SEED = 20261127
BACKBONE_ID = "efficientnet-lite0/imagenet/tf-same/v1"
EMBED_DIM = 1280
IMAGE_MUTANTS = 360
FILE_MUTANTS = 360


class Corpus:
    def __init__(self, out):
        self.out = out
        self.entries = []
        os.makedirs(os.path.join(out, "images"), exist_ok=True)
        os.makedirs(os.path.join(out, "files"), exist_ok=True)

    def add(self, folder, name, data, group, expect, **extra):
        path = os.path.join(folder, name)
        with open(os.path.join(self.out, path), "wb") as f:
            f.write(data)
        self.entries.append({"path": path, "group": group, "expect": expect, "bytes": len(data), **extra})

    def image(self, name, data, group, expect, **extra):
        self.add("images", name, data, group, expect, **extra)

    def file(self, name, data, group, expect, **extra):
        self.add("files", name, data, group, expect, **extra)

    def write_manifest(self):
        with open(os.path.join(self.out, "manifest.json"), "w") as f:
            json.dump({"seed": SEED, "entries": self.entries}, f, indent=1)


# ---------------------------------------------------------------- images


def picture(rng, w, h, mode="RGB"):
    """A smooth picture with some texture: gradients + noise, so codecs have real work."""
    img = Image.new("RGB", (w, h))
    px = img.load()
    a, b, c = rng.random() * 6, rng.random() * 6, rng.random() * 6
    for y in range(h):
        for x in range(w):
            n = rng.randrange(24)
            px[x, y] = (
                int(127 + 100 * math.sin(a + x / 7)) + n // 2,
                int(127 + 100 * math.cos(b + y / 5)) + n // 3,
                int(127 + 100 * math.sin(c + (x + y) / 9)) + n // 4,
            )
    if mode == "RGB":
        return img
    if mode == "RGBA":
        alpha = Image.linear_gradient("L").resize((w, h))
        img.putalpha(alpha)
        return img
    return img.convert(mode)


def encode(img, fmt, **kw):
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def exif_orientation(o, prefix=False):
    """An EXIF block with just the orientation tag: TIFF data, after "Exif\\0\\0" for JPEG's APP1
    (`prefix`), bare for PNG's eXIf chunk."""
    exif = Image.Exif()
    exif[0x0112] = o
    data = exif.tobytes()
    data = data[6:] if data.startswith(b"Exif\0\0") else data
    return b"Exif\0\0" + data if prefix else data


def png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png(width, height, depth, color, idat, extra=()):
    ihdr = struct.pack(">IIBBBBB", width, height, depth, color, 0, 0, 0)
    out = b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr)
    for kind, data in extra:
        out += png_chunk(kind, data)
    return out + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")


def zeros_deflated(total, row=1 << 16, prefix=b""):
    """zlib stream of `total` zero bytes (after `prefix`), compressed without holding them."""
    z = zlib.compressobj(9)
    out = [z.compress(prefix)]
    chunk = b"\0" * row
    left = total
    while left > 0:
        n = min(left, row)
        out.append(z.compress(chunk[:n]))
        left -= n
    out.append(z.flush())
    return b"".join(out)


def png_rows_deflated(width, height, bytes_per_pixel):
    """IDAT of an all-zero image: each row is a filter byte (0) then zero samples."""
    z = zlib.compressobj(9)
    row = b"\0" * (1 + width * bytes_per_pixel)
    parts = [z.compress(row) for _ in range(height)]
    parts.append(z.flush())
    return b"".join(parts)


def fix_png_crcs(data):
    """Recompute every chunk CRC, so a mutation reaches the decoder instead of the CRC check."""
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        return data
    out = bytearray(data)
    pos = 8
    while pos + 12 <= len(out):
        n = struct.unpack(">I", out[pos : pos + 4])[0]
        end = pos + 8 + n
        if end + 4 > len(out):
            break
        out[end : end + 4] = struct.pack(">I", zlib.crc32(bytes(out[pos + 4 : end])) & 0xFFFFFFFF)
        pos = end + 4
    return bytes(out)


def gif_header_bomb(w, h):
    """A tiny GIF whose canvas and single frame declare w × h (LZW data: clear, end)."""
    return (
        b"GIF89a"
        + struct.pack("<HHBBB", w, h, 0x80, 0, 0)  # global colour table of 2
        + b"\0\0\0\xff\xff\xff"
        + b"\x2c"
        + struct.pack("<HHHHB", 0, 0, w, h, 0)
        + b"\x02\x01\x2c\x00"  # min code size 2; one sub-block holding the clear and end codes
        + b"\x3b"
    )


def bmp_rle8(w, h):
    """An RLE8 BMP of w × h whose data is one end-of-bitmap marker: a few hundred bytes."""
    palette = b"".join(struct.pack("<BBBB", i, i, i, 0) for i in range(256))
    data = b"\x00\x01"
    offset = 14 + 40 + len(palette)
    info = struct.pack("<IiiHHIIiiII", 40, w, h, 1, 8, 1, len(data), 2835, 2835, 256, 0)
    head = b"BM" + struct.pack("<IHHI", offset + len(data), 0, 0, offset)
    return head + info + palette + data


def jpeg_set_size(data, w, h):
    """Patch the SOF segment's height and width."""
    out = bytearray(data)
    i = 2
    while i + 4 < len(out):
        if out[i] != 0xFF:
            break
        marker = out[i + 1]
        n = struct.unpack(">H", out[i + 2 : i + 4])[0]
        if marker in (0xC0, 0xC1, 0xC2):
            out[i + 5 : i + 9] = struct.pack(">HH", h, w)
            return bytes(out)
        i += 2 + n
    return bytes(out)


def webp_lossless_header(w, h):
    """A VP8L bitstream header declaring w × h, then a few junk bytes."""
    bits = (w - 1) | ((h - 1) << 14)
    payload = b"\x2f" + struct.pack("<I", bits) + b"\0" * 15  # RIFF chunks have even sizes
    chunk = b"VP8L" + struct.pack("<I", len(payload)) + payload
    return b"RIFF" + struct.pack("<I", 4 + len(chunk)) + b"WEBP" + chunk


def tiff_header_bomb(w, h):
    """A little-endian TIFF with one strip, declaring w × h, 8-bit RGB, uncompressed."""
    entries = [
        (256, 4, 1, w), (257, 4, 1, h), (258, 3, 1, 8), (259, 3, 1, 1), (262, 3, 1, 2),
        (273, 4, 1, 8 + 2 + 12 * 11 + 4), (277, 3, 1, 3), (278, 4, 1, h), (279, 4, 1, 16),
        (284, 3, 1, 1), (339, 3, 1, 1),
    ]
    ifd = struct.pack("<H", len(entries))
    for tag, typ, count, value in entries:
        ifd += struct.pack("<HHII", tag, typ, count, value)
    ifd += struct.pack("<I", 0)
    return b"II*\0" + struct.pack("<I", 8) + ifd + b"\0" * 16


def valid_images(rng):
    """(name, bytes, width, height) of well-formed files across formats and variants."""
    out = []
    p = picture(rng, 64, 48)
    out.append(("base.jpg", encode(p, "JPEG", quality=90), 64, 48))
    out.append(("base444.jpg", encode(p, "JPEG", quality=85, subsampling=0), 64, 48))
    out.append(("progressive.jpg", encode(p, "JPEG", quality=80, progressive=True), 64, 48))
    out.append(("gray.jpg", encode(p.convert("L"), "JPEG"), 64, 48))
    out.append(("cmyk.jpg", encode(p.convert("CMYK"), "JPEG"), 64, 48))
    for o in (3, 6, 8):
        w, h = (48, 64) if o in (6, 8) else (64, 48)
        out.append((f"exif{o}.jpg", encode(p, "JPEG", exif=exif_orientation(o, prefix=True)), w, h))
    out.append(("rgb.png", encode(p, "PNG"), 64, 48))
    out.append(("rgba.png", encode(picture(rng, 40, 30, "RGBA"), "PNG"), 40, 30))
    out.append(("gray.png", encode(p.convert("L"), "PNG"), 64, 48))
    out.append(("palette.png", encode(p.convert("P", palette=Image.Palette.ADAPTIVE), "PNG", transparency=0), 64, 48))
    out.append(("gray16.png", encode(p.convert("I;16"), "PNG"), 64, 48))
    out.append(("exif6.png", encode(p, "PNG", exif=exif_orientation(6)), 48, 64))
    out.append(("still.gif", encode(p.convert("P"), "GIF"), 64, 48))
    frames = [picture(rng, 32, 24).convert("P") for _ in range(3)]
    out.append(("animated.gif", encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=50, loop=0), 32, 24))
    out.append(("lossy.webp", encode(p, "WEBP", quality=70), 64, 48))
    out.append(("lossless.webp", encode(p, "WEBP", lossless=True), 64, 48))
    out.append(("alpha.webp", encode(picture(rng, 40, 30, "RGBA"), "WEBP", quality=80), 40, 30))
    for comp in ("raw", "tiff_lzw", "tiff_adobe_deflate", "packbits"):
        out.append((f"{comp}.tif", encode(p, "TIFF", compression=comp), 64, 48))
    out.append(("gray16.tif", encode(p.convert("I;16"), "TIFF"), 64, 48))
    out.append(("rgb.bmp", encode(p, "BMP"), 64, 48))
    out.append(("palette.bmp", encode(p.convert("P"), "BMP"), 64, 48))
    return out


MUTATIONS = ("flip", "flip_many", "set_byte", "truncate", "insert", "delete", "duplicate", "zero_run", "header_field")


def mutate(rng, data, op):
    d = bytearray(data)
    n = len(d)
    if op == "flip":
        i = rng.randrange(n)
        d[i] ^= 1 << rng.randrange(8)
    elif op == "flip_many":
        for _ in range(rng.randrange(2, 12)):
            d[rng.randrange(n)] ^= 1 << rng.randrange(8)
    elif op == "set_byte":
        d[rng.randrange(n)] = rng.choice([0x00, 0xFF, 0x7F, 0x80, rng.randrange(256)])
    elif op == "truncate":
        d = d[: rng.randrange(1, n)]
    elif op == "insert":
        i = rng.randrange(n)
        d[i:i] = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 64)))
    elif op == "delete":
        i = rng.randrange(n)
        del d[i : i + rng.randrange(1, 64)]
    elif op == "duplicate":
        i = rng.randrange(n)
        j = min(n, i + rng.randrange(1, 256))
        d[j:j] = d[i:j]
    elif op == "zero_run":
        i = rng.randrange(n)
        d[i : i + rng.randrange(1, 128)] = b"\0" * len(d[i : i + rng.randrange(1, 128)])
    elif op == "header_field":
        # The first 64 bytes hold the sizes and counts every decoder trusts.
        i = rng.randrange(min(n, 64))
        d[i : i + 2] = rng.choice([b"\xff\xff", b"\x00\x00", b"\x7f\xff", b"\x80\x00"])
    return bytes(d)


def images(corpus, rng):
    base = valid_images(rng)
    for name, data, w, h in base:
        corpus.image(name, data, "valid image", "ok", width=w, height=h)
    by_name = {name: data for name, data, _, _ in base}

    jpeg = by_name["base.jpg"]
    p = picture(rng, 64, 48)
    # 1. Truncated and damaged JPEGs: refused, never completed with grey.
    for frac in (0.1, 0.5, 0.9):
        corpus.image(f"truncated{int(frac * 100)}.jpg", jpeg[: int(len(jpeg) * frac)], "truncated/corrupt", "error",
                     code="Corrupt", message="JPEG file is truncated")
    corpus.image("no_eoi.jpg", jpeg[:-2], "truncated/corrupt", "error", code="Corrupt", message="truncated")
    prog = by_name["progressive.jpg"]
    corpus.image("truncated_progressive.jpg", prog[: len(prog) * 2 // 3], "truncated/corrupt", "error", code="Corrupt")
    big = encode(picture(rng, 400, 300), "JPEG", quality=95)
    corpus.image("truncated_big.jpg", big[: len(big) // 3], "truncated/corrupt", "error", code="Corrupt")
    sos = jpeg.index(b"\xff\xda")
    garbled = bytearray(jpeg)
    for k in range(sos + 40, len(jpeg) - 40, 7):
        garbled[k] = 0xFF  # 0xFF not followed by 0x00 in entropy data: an invalid marker
    corpus.image("garbled_entropy.jpg", bytes(garbled), "truncated/corrupt", "error", code="Corrupt", message="corrupt")
    rgb_png = by_name["rgb.png"]
    corpus.image("truncated.png", rgb_png[: len(rgb_png) // 2], "truncated/corrupt", "error", code="Corrupt", message="truncated")
    gif = by_name["still.gif"]
    corpus.image("truncated.gif", gif[: len(gif) // 2], "truncated/corrupt", "error", code="Corrupt")
    webp = by_name["lossy.webp"]
    corpus.image("truncated.webp", webp[: len(webp) // 2], "truncated/corrupt", "error", code="Corrupt")
    tif = by_name["tiff_lzw.tif"]
    corpus.image("truncated.tif", tif[: len(tif) // 2], "truncated/corrupt", "error", code="Corrupt")
    bmp = encode(p, "BMP")
    corpus.image("truncated.bmp", bmp[: len(bmp) // 2], "truncated/corrupt", "error", code="Corrupt")

    # 3. Memory within the pixel limits.
    side = 8000
    idat = png_rows_deflated(side, side, 8)
    corpus.image("rgba16_8000_exif6.png", png(side, side, 16, 6, idat, [(b"eXIf", exif_orientation(6))]),
                 "memory bomb", "error", code="MemoryLimit", message="needs about")
    iccp = b"bomb\0\0" + zeros_deflated(476 << 20)
    # The png crate stops inflating the profile at our 16 MB metadata cap and drops it: the pixel
    # decodes, in bounded memory (the runner measures it).
    corpus.image("iccp_bomb.png", png(1, 1, 8, 2, zlib.compress(b"\0\0\0\0"), [(b"iCCP", iccp)]),
                 "memory bomb", "ok", width=1, height=1)
    corpus.image("gif_8000.gif", gif_header_bomb(8000, 8000), "memory bomb", "error", code="MemoryLimit")
    corpus.image("gif_4000.gif", gif_header_bomb(4000, 4000), "memory bomb", "any")
    corpus.image("bmp_rle8_16000x4000.bmp", bmp_rle8(16000, 4000), "memory bomb", "any")
    corpus.image("bmp_rle8_8000x8000.bmp", bmp_rle8(8000, 8000), "memory bomb", "any")

    # Header bombs: refused from the header (TooLarge), before any allocation.
    corpus.image("png_100000.png", png(100_000, 100_000, 8, 2, zlib.compress(b"")), "header bomb", "error", code="TooLarge")
    corpus.image("jpeg_65535.jpg", jpeg_set_size(jpeg, 65535, 65535), "header bomb", "error", code="TooLarge")
    corpus.image("gif_65535.gif", gif_header_bomb(65535, 65535), "header bomb", "error", code="TooLarge")
    corpus.image("bmp_100000.bmp", bmp_rle8(100_000, 100_000), "header bomb", "error")
    corpus.image("webp_16000.webp", webp_lossless_header(16000, 16000), "header bomb", "error", code="TooLarge")
    corpus.image("tiff_100000.tif", tiff_header_bomb(100_000, 100_000), "header bomb", "error", code="TooLarge")
    corpus.image("jpeg_0x48.jpg", jpeg_set_size(jpeg, 0, 48), "header bomb", "error")
    corpus.image("png_0x10.png", png(0, 10, 8, 2, zlib.compress(b"")), "header bomb", "error")

    # 4. Files that are not images, named as images: each says what it is and what to do.
    corpus.image("zeros.jpg", b"\0" * 4096, "not an image", "error", code="UnsupportedFormat", message="only zero bytes")
    corpus.image("._photo.png", b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        " + bytes(rng.randrange(256) for _ in range(200)),
                 "not an image", "error", code="UnsupportedFormat", message="macOS metadata")
    heic = struct.pack(">I", 24) + b"ftypheic" + b"\0\0\0\0" + b"mif1heic" + struct.pack(">I", 40) + b"meta" + bytes(36)
    corpus.image("IMG_0001.HEIC.jpg", heic, "not an image", "error", code="UnsupportedFormat", message="HEIC.*export it as JPEG")
    heif = struct.pack(">I", 20) + b"ftypmif1" + b"\0\0\0\0" + b"mif1" + bytes(64)
    corpus.image("photo.heif.png", heif, "not an image", "error", code="UnsupportedFormat", message="HEIC/HEIF")
    avif = struct.pack(">I", 28) + b"ftypavif" + b"\0\0\0\0" + b"avifmif1miaf" + bytes(64)
    corpus.image("photo.avif.png", avif, "not an image", "error", code="UnsupportedFormat", message="AVIF")
    corpus.image("scan.dcm.png", b"\0" * 128 + b"DICM" + bytes(200), "not an image", "error", code="UnsupportedFormat", message="DICOM")
    corpus.image("paper.pdf.png", b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n", "not an image", "error", code="UnsupportedFormat", message="PDF")
    corpus.image("notes.txt.png", b"these are my notes\nnot a picture\n", "not an image", "error", code="UnsupportedFormat", message="text file")
    corpus.image("login.html.jpg", b"<!DOCTYPE html><html><body>Please log in</body></html>", "not an image", "error",
                 code="UnsupportedFormat", message="web page")
    corpus.image("logo.svg.png", b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"></svg>', "not an image", "error",
                 code="UnsupportedFormat", message="SVG")
    corpus.image("album.zip.jpg", b"PK\x03\x04" + bytes(100), "not an image", "error", code="UnsupportedFormat", message="ZIP")
    corpus.image("empty.png", b"", "not an image", "error", code="EmptyFile")
    corpus.image("random.jpg", bytes(rng.randrange(256) for _ in range(3000)), "not an image", "error", code="UnsupportedFormat")

    # Random mutations of the valid files.
    for k in range(IMAGE_MUTANTS):
        name, data, _, _ = base[k % len(base)]
        op = MUTATIONS[rng.randrange(len(MUTATIONS))]
        m = mutate(rng, data, op)
        if name.endswith(".png") and rng.random() < 0.7:
            m = fix_png_crcs(m)
        ext = name.rsplit(".", 1)[1]
        group = {"jpg": "mutated JPEG", "png": "mutated PNG", "gif": "mutated GIF", "webp": "mutated WebP",
                 "tif": "mutated TIFF", "bmp": "mutated BMP"}[ext]
        corpus.image(f"mutant{k:03d}_{op}.{ext}", m, group, "any", base=name, op=op)


# ---------------------------------------------------------------- model and project files

MAGIC = b"HEADTUNE"


def container(kind, meta, blob, version=1, reserved=0):
    """The documented file layout (crate/src/project.rs), checksum included."""
    meta_bytes = meta if isinstance(meta, bytes) else json.dumps(meta, allow_nan=False).encode()
    body = MAGIC + struct.pack("<HBBI", version, kind, reserved, len(meta_bytes)) + meta_bytes
    body += struct.pack("<Q", len(blob)) + b"".join(struct.pack("<f", v) for v in blob)
    return body + struct.pack("<I", zlib.crc32(body) & 0xFFFFFFFF)


def recrc(data):
    body = data[:-4]
    return body + struct.pack("<I", zlib.crc32(body) & 0xFFFFFFFF)


def preprocessing():
    return {"inputSize": 224, "crop": "centre square, side floor(224/256*min(h,w))",
            "resize": "bicubic (Catmull-Rom, antialiased)", "normalisation": "(v-127)/128, RGB, channels first"}


def model_meta(classes, hidden=None):
    return {
        "backbone": BACKBONE_ID,
        "classes": classes,
        "headKind": "mlp" if hidden else "linear",
        "hidden": {"dIn": EMBED_DIM, "dOut": hidden} if hidden else None,
        "output": {"dIn": hidden or EMBED_DIM, "dOut": len(classes)},
        "preprocessing": preprocessing(),
        "training": None,
        "augment": None,
        "metrics": None,
        "createdBy": "tests/hostile/make_corpus.py",
    }


def head_blob(rng, classes, hidden=None):
    blob = []
    d_in = EMBED_DIM
    for d_out in ([hidden] if hidden else []) + [len(classes)]:
        blob += [rng.gauss(0, 0.02) for _ in range(d_in * d_out)] + [rng.gauss(0, 0.1) for _ in range(d_out)]
        d_in = d_out
    return blob


def model(rng, classes=("normal", "pneumonia"), hidden=None, meta_edit=None, blob_edit=None, **kw):
    meta = model_meta(list(classes), hidden)
    blob = head_blob(rng, classes, hidden)
    if meta_edit:
        meta_edit(meta)
    if blob_edit:
        blob_edit(blob)
    return container(1, meta, blob, **kw)


def project(rng, n=6, views=2, classes=("a", "b"), with_model=True, meta_edit=None, blob_edit=None, **kw):
    examples = [{"id": i, "class": i % len(classes), "name": f"img{i}.png", "views": views} for i in range(n)]
    blob = [abs(rng.gauss(0.3, 0.3)) for _ in range(n * views * EMBED_DIM)]
    meta = {"backbone": BACKBONE_ID, "classes": list(classes), "examples": examples,
            "augment": {"views": views - 1, "minArea": 0.6, "flip": True, "brightness": 0.1, "contrast": 0.1, "seed": 0},
            "training": None, "model": None, "extra": {"thumbnails": {}}}
    if with_model:
        meta["model"] = model_meta(list(classes))
        blob += head_blob(rng, classes)
    if meta_edit:
        meta_edit(meta)
    if blob_edit:
        blob_edit(blob)
    return container(2, meta, blob, **kw)


def set_path(obj, path, value):
    for k in path[:-1]:
        obj = obj[k]
    obj[path[-1]] = value


def files(corpus, rng):
    f = corpus.file
    # Valid files, as the CLI and the page write them.
    f("linear.headtune", model(rng), "valid model/project", "ok", kind="model")
    f("mlp.headtune", model(rng, ("x", "y", "z"), hidden=16), "valid model/project", "ok", kind="model")
    f("project.headtune", project(rng), "valid model/project", "ok", kind="project")
    f("project_nomodel.headtune", project(rng, with_model=False), "valid model/project", "ok", kind="project")

    # 5. Weights whose logits overflow (checksum valid): refused on load.
    f("weights_3e38.headtune", model(rng, blob_edit=lambda b: b.__setitem__(slice(0, len(b)), [3e38] * len(b))),
      "crafted model", "error", code="ModelFile", message="overflow|too large")
    f("weights_1e30.headtune", model(rng, blob_edit=lambda b: b.__setitem__(slice(0, 2560), [1e30] * 2560)),
      "crafted model", "error", code="ModelFile")
    f("weights_nan.headtune", model(rng, blob_edit=lambda b: b.__setitem__(7, float("nan"))), "crafted model", "error", code="ModelFile")
    f("weights_inf.headtune", model(rng, blob_edit=lambda b: b.__setitem__(7, float("inf"))), "crafted model", "error", code="ModelFile")
    # 7. Metadata the writer would never produce.
    for name, classes, msg in [
        ("class_empty", ["", "b"], "empty"),
        ("class_duplicate", ["a", "a"], "twice|duplicate"),
        ("class_whitespace", ["   ", "b"], "empty"),
        ("class_escape", ["\x1b[31mred\x1b[0m", "b"], "control"),
        ("class_bell_cr", ["a\x07", "b\r"], "control"),
        ("class_long", ["a" * 101, "b"], "longer than"),
        ("class_10mb", ["n" * (10 << 20), "b"], "longer than"),
        ("class_one", ["only"], ""),
    ]:
        f(f"{name}.headtune", model(rng, classes), "crafted model", "error", code="ModelFile", message=msg)
    f("backbone_10mb.headtune", model(rng, meta_edit=lambda m: m.__setitem__("backbone", "x" * (10 << 20))),
      "crafted model", "error", code="ModelFile", message="backbone", max_message=400)
    # Version 2 records how embeddings are made (`features`); an impossible input size is refused.
    f("features_input_5000.headtune", model(rng, version=2, meta_edit=lambda m: m.__setitem__(
      "features", {"backbone": BACKBONE_ID, "inputSize": 5000, "crop": "center", "pooling": "avg"})),
      "crafted model", "error", code="ModelFile", message="input size is 5000")
    f("version0.headtune", model(rng, version=0), "crafted model", "error", code="ModelFile", message="version")
    f("reserved1.headtune", model(rng, reserved=1), "crafted model", "error", code="ModelFile", message="reserved")
    f("mlp_65536.headtune", model(rng, meta_edit=lambda m: (m.__setitem__("headKind", "mlp"),
      m.__setitem__("hidden", {"dIn": 65536, "dOut": 65536}))), "crafted model", "error", code="ModelFile")
    f("mlp_wrap32.headtune", model(rng, meta_edit=lambda m: (m.__setitem__("headKind", "mlp"),
      m.__setitem__("hidden", {"dIn": 65536, "dOut": 65536}), m.__setitem__("output", {"dIn": 65536, "dOut": 2}))),
      "crafted model", "error", code="ModelFile")

    # 6. Crafted projects that used to exhaust or crash the browser engine.
    def nan_views(b):
        b[5] = float("nan")
    f("project_nan_embedding.headtune", project(rng, blob_edit=nan_views), "crafted project", "error", code="ModelFile", message="NaN")
    for name, path, value, msg in [
        ("min_area_5", ["augment", "minArea"], 5, "augment"),
        # Beyond f32: refused by the metadata reader itself.
        ("brightness_1e308", ["augment", "brightness"], 1e308, "out of range"),
        ("views_1e9", ["augment", "views"], 10**9, "augment"),
        ("contrast_negative", ["augment", "contrast"], -1, "augment"),
    ]:
        f(f"project_{name}.headtune", project(rng, meta_edit=lambda m, p=path, v=value: set_path(m, p, v)),
          "crafted project", "error", code="ModelFile", message=msg)
    f("project_views_65.headtune", project(rng, n=1, views=65, with_model=False), "crafted project", "error", code="ModelFile")
    f("project_class_out_of_range.headtune", project(rng, meta_edit=lambda m: set_path(m, ["examples", 0, "class"], 7)),
      "crafted project", "error", code="ModelFile")
    f("project_id_max.headtune", project(rng, meta_edit=lambda m: set_path(m, ["examples", 0, "id"], 2**64 - 1)),
      "crafted project", "error", code="ModelFile", message="id")
    f("project_duplicate_ids.headtune", project(rng, meta_edit=lambda m: set_path(m, ["examples", 1, "id"], 0)),
      "crafted project", "error", code="ModelFile", message="id")
    f("project_duplicate_classes.headtune", project(rng, classes=("a", "a"), with_model=False), "crafted project", "error", code="ModelFile")
    f("project_model_classes_differ.headtune", project(rng, meta_edit=lambda m: set_path(m, ["model", "classes"], ["p", "q"])),
      "crafted project", "any")
    f("project_training_epochs_0.headtune", project(rng, meta_edit=lambda m: m.__setitem__("training", {"epochs": 0})),
      "crafted project", "error", code="ModelFile")
    f("project_kind_model.headtune", container(1, project_meta_only(rng), []), "crafted project", "error", code="ModelFile")

    # Random mutations with valid lengths and checksums: they reach the parser and validator.
    bases = [
        ("linear", lambda: model(rng)),
        ("mlp", lambda: model(rng, ("x", "y", "z"), hidden=8)),
        ("project", lambda: project(rng, n=4)),
    ]
    for k in range(FILE_MUTANTS):
        label, make = bases[k % len(bases)]
        data = make()
        style = rng.choice(["bytes", "bytes", "json", "json", "json", "blob", "header"])
        m = mutate_file(rng, data, style)
        f(f"mutant{k:03d}_{label}_{style}.headtune", m, f"mutated {'project' if label == 'project' else 'model'}", "any",
          style=style)


def project_meta_only(rng):
    return {"backbone": BACKBONE_ID, "classes": ["a", "b"], "examples": [], "augment": {}, "training": None,
            "model": None, "extra": None}


EXTREMES = [None, -1, 0, 1, 2, 3, 63, 64, 65, 1280, 65536, 2**32, 2**53, 2**64 - 1, 2**64, -2**63, 1e308, -1e308, 1e-320,
            0.5, "", " ", "x" * 300, "\x1b[2J", [], [None], {}, {"a": 1}, True, False, "linear", "mlp", "NaN"]


def json_paths(obj, prefix=()):
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from json_paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj[:4]):
            yield from json_paths(v, prefix + (i,))


def split(data):
    meta_len = struct.unpack("<I", data[12:16])[0]
    meta = data[16 : 16 + meta_len]
    rest = data[16 + meta_len : -4]
    return data[:16], meta, rest


def mutate_file(rng, data, style):
    head, meta, rest = split(data)
    if style == "bytes":
        m = bytearray(meta)
        for _ in range(rng.randrange(1, 6)):
            m[rng.randrange(len(m))] = rng.randrange(256)
        meta = bytes(m)
    elif style == "json":
        obj = json.loads(meta)
        paths = [p for p in json_paths(obj) if p]
        for _ in range(rng.randrange(1, 3)):
            path = rng.choice(paths)
            try:
                if rng.random() < 0.2 and isinstance(obj, dict):
                    target = obj
                    for k in path[:-1]:
                        target = target[k]
                    if isinstance(target, dict):
                        del target[path[-1]]
                        continue
                set_path(obj, list(path), rng.choice(EXTREMES))
            except (KeyError, IndexError, TypeError):
                pass
        meta = json.dumps(obj).encode()
    elif style == "blob":
        blob_len = struct.unpack("<Q", rest[:8])[0]
        values = bytearray(rest[8:])
        for _ in range(rng.randrange(1, 8)):
            if blob_len == 0:
                break
            i = rng.randrange(blob_len)
            v = rng.choice([float("nan"), float("inf"), -float("inf"), 3e38, -3e38, 1e30, 1e-45, 0.0])
            values[4 * i : 4 * i + 4] = struct.pack("<f", v)
        if rng.random() < 0.2:
            cut = rng.randrange(0, len(values) + 1, 4)
            values = values[:cut]
            blob_len = rng.choice([blob_len, cut // 4])
        rest = struct.pack("<Q", blob_len) + bytes(values)
    elif style == "header":
        h = bytearray(head)
        field = rng.choice(["version", "kind", "reserved", "meta_len"])
        if field == "version":
            h[8:10] = struct.pack("<H", rng.choice([0, 2, 3, 255, 65535]))
        elif field == "kind":
            h[10] = rng.choice([0, 1, 2, 3, 255])
        elif field == "reserved":
            h[11] = rng.choice([1, 128, 255])
        else:
            h[12:16] = struct.pack("<I", rng.choice([0, 1, len(meta) - 1, len(meta) + 1, 2**31, 2**32 - 1]))
        return recrc(bytes(h) + meta + rest + b"\0\0\0\0")
    head = head[:12] + struct.pack("<I", len(meta))
    return recrc(head + meta + rest + b"\0\0\0\0")


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    corpus = Corpus(sys.argv[1])
    rng = random.Random(SEED)
    images(corpus, rng)
    files(corpus, rng)
    corpus.write_manifest()
    groups = {}
    for e in corpus.entries:
        groups[e["group"]] = groups.get(e["group"], 0) + 1
    print(f"{len(corpus.entries)} files in {sys.argv[1]}: " + ", ".join(f"{g} {n}" for g, n in groups.items()))


if __name__ == "__main__":
    main()
