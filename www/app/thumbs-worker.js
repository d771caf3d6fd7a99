// Thumbnails and previews made off the page's main thread (see thumbs.js): decoding, scaling and
// JPEG encoding of a 1-megapixel photo took 50–90 ms of main-thread time per image.
//
// Message in: { id, source } — a Blob (an image file) or an ImageBitmap (transferred).
// Message out: { id, made } — `{ thumb, preview }` JPEG Blobs, or null when it cannot be drawn.

import { draw } from './thumbs-draw.js';

self.onmessage = async ({ data: { id, source } }) => {
  let made = null;
  try {
    made = await draw(source, (w, h) => new OffscreenCanvas(w, h), (canvas, quality) => canvas.convertToBlob({ type: 'image/jpeg', quality }));
  } catch {
    // An image the browser cannot draw: the engine may still read it (it decodes more formats).
  }
  self.postMessage({ id, made });
};
