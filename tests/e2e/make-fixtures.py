"""Write fixture PNGs for the page tests from Debian's Fashion-MNIST test set.

Two clearly different real classes (trousers, bags), upscaled 4× (nearest) to 112×112 grey PNGs:
  OUT/train/trouser/*.png, OUT/train/bag/*.png   (N per class: what the tests drop on the page)
  OUT/holdout/{trouser,bag}-K.png                 (images the model never sees)
  OUT/corrupt/*.png                               (a truncated PNG among good ones)
  OUT/mislabelled/{trouser,bag}/*.png             (12 per class, plus one trouser filed as a bag)
  OUT/solid/{black,white}.png                     (64×64 plain images, told apart by brightness)
No PIL: PNGs are written with zlib + struct.

Usage: python3 tests/e2e/make-fixtures.py OUT [N]
"""

import gzip
import os
import struct
import sys
import zlib

SRC = "/usr/share/datasets/fashion-mnist"
CLASSES = {1: "trouser", 8: "bag"}
SCALE = 4
HOLDOUT = 3


def png(width, height, rows):
    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)

    raw = b"".join(b"\x00" + bytes(r) for r in rows)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(raw, 9))
        + chunk(b"IEND", b"")
    )


def upscaled(pixels):
    rows = []
    for y in range(28):
        row = []
        for x in range(28):
            row += [pixels[y * 28 + x]] * SCALE
        rows += [row] * SCALE
    return rows


def main():
    out = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 20
    with gzip.open(f"{SRC}/t10k-images-idx3-ubyte.gz") as f:
        images = f.read()[16:]
    with gzip.open(f"{SRC}/t10k-labels-idx1-ubyte.gz") as f:
        labels = f.read()[8:]
    taken = {c: 0 for c in CLASSES}
    for i, label in enumerate(labels):
        if label not in CLASSES or taken[label] >= n + HOLDOUT:
            continue
        k = taken[label]
        taken[label] += 1
        name = CLASSES[label]
        data = png(28 * SCALE, 28 * SCALE, upscaled(images[i * 784 : (i + 1) * 784]))
        if k < n:
            path = f"{out}/train/{name}/{name}-{k:02d}.png"
        else:
            path = f"{out}/holdout/{name}-{k - n}.png"
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
        if name == "bag" and k < 3:
            os.makedirs(f"{out}/corrupt", exist_ok=True)
            with open(f"{out}/corrupt/{name}-{k}.png", "wb") as f:
                f.write(data)
    os.makedirs(f"{out}/corrupt", exist_ok=True)
    with open(f"{out}/train/bag/bag-00.png", "rb") as f:
        good = f.read()
    # Header intact, image data cut off: a decoder must fail on it, not on its name.
    with open(f"{out}/corrupt/broken.png", "wb") as f:
        f.write(good[: len(good) // 3])
    # A small data set with one labelling mistake, for the "doubtful labels" review.
    for name in CLASSES.values():
        os.makedirs(f"{out}/mislabelled/{name}", exist_ok=True)
        for k in range(12):
            with open(f"{out}/train/{name}/{name}-{k:02d}.png", "rb") as f:
                data = f.read()
            with open(f"{out}/mislabelled/{name}/{name}-{k:02d}.png", "wb") as f:
                f.write(data)
    with open(f"{out}/train/trouser/trouser-12.png", "rb") as f:
        data = f.read()
    with open(f"{out}/mislabelled/bag/zz-actually-a-trouser.png", "wb") as f:
        f.write(data)
    os.makedirs(f"{out}/solid", exist_ok=True)
    for name, value in (("black", 0), ("white", 255)):
        with open(f"{out}/solid/{name}.png", "wb") as f:
            f.write(png(64, 64, [[value] * 64] * 64))
    print(f"fixtures: {n} per class + {HOLDOUT} held back, in {out}")


if __name__ == "__main__":
    main()
