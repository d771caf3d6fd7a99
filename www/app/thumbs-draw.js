// Drawing an example's thumbnail and preview, shared by the thumbnail worker (OffscreenCanvas)
// and the main thread (where a browser has no OffscreenCanvas 2D: Firefox before 105).

/** Side of the stored thumbnail: 2× the 56 px it is shown at, for high-density screens. */
const THUMB = 112;
/** Longest side of the stored preview. */
const PREVIEW = 320;

/**
 * `{ thumb, preview }` JPEG Blobs of `source` (a Blob or an ImageBitmap, closed here), or null
 * when it has no pixels. `canvas(w, h)` makes a canvas, `encode(canvas, quality)` a JPEG Blob.
 * Throws when the browser cannot decode the image.
 */
export async function draw(source, canvas, encode) {
  const bitmap = source instanceof Blob ? await createImageBitmap(source) : source;
  try {
    const { width: w, height: h } = bitmap;
    if (!w || !h) return null;
    const side = Math.min(w, h);
    const square = canvas(THUMB, THUMB);
    const sq = square.getContext('2d');
    sq.imageSmoothingQuality = 'high';
    sq.drawImage(bitmap, (w - side) / 2, (h - side) / 2, side, side, 0, 0, THUMB, THUMB);
    const scale = Math.min(1, PREVIEW / Math.max(w, h));
    const full = canvas(Math.max(1, Math.round(w * scale)), Math.max(1, Math.round(h * scale)));
    const fc = full.getContext('2d');
    fc.imageSmoothingQuality = 'high';
    fc.drawImage(bitmap, 0, 0, full.width, full.height);
    const [thumb, preview] = await Promise.all([encode(square, 0.8), encode(full, 0.85)]);
    return thumb && preview ? { thumb, preview } : null;
  } finally {
    bitmap.close?.();
  }
}
