// Turning whatever a page holds into something the worker can hand to Rust.
//
// Encoded files (File, Blob) travel as their bytes: Rust decodes them, which applies EXIF
// orientation and the decompression-bomb limits. Everything already decoded by the browser
// (ImageData, ImageBitmap, <img>, <canvas>, <video>, OffscreenCanvas, VideoFrame) is drawn to a
// canvas here and travels as straight RGBA pixels.

/** The accepted kinds, for error messages. */
export const IMAGE_KINDS =
  'File, Blob, ImageData, ImageBitmap, HTMLImageElement, HTMLCanvasElement, HTMLVideoElement, OffscreenCanvas or VideoFrame';

const has = (name) => typeof globalThis[name] === 'function';
const is = (value, name) => has(name) && value instanceof globalThis[name];

/** A display name for an input, used in `rejected` entries. */
export function nameOf(image, index) {
  if (is(image, 'File') && image.name) return image.name;
  if (is(image, 'HTMLImageElement')) {
    const src = image.currentSrc || image.src || '';
    const last = src.split(/[?#]/)[0].split('/').pop();
    if (last) return decodeURIComponent(last).slice(0, 200);
  }
  if (image && typeof image === 'object' && typeof image.name === 'string' && image.name) return image.name;
  return `image ${index + 1}`;
}

/**
 * Convert one input to a message for the worker: `{ name, bytes }` or `{ name, width, height,
 * rgba }`, plus the buffers to transfer. Throws an Error with a user-facing message when the
 * input cannot be read (the caller records it as rejected).
 */
export async function toMessage(image, index) {
  const name = nameOf(image, index);
  if (is(image, 'Blob')) {
    const bytes = new Uint8Array(await image.arrayBuffer());
    return { item: { name, bytes }, transfer: [bytes.buffer] };
  }
  if (is(image, 'ImageData')) {
    // Copy: the caller keeps its ImageData, and the copy can be transferred.
    const rgba = new Uint8Array(image.data);
    return { item: { name, width: image.width, height: image.height, rgba }, transfer: [rgba.buffer] };
  }
  const drawable = await drawableOf(image);
  const { width, height } = drawable;
  if (!width || !height) throw new Error(`image has no pixels (${width}×${height})`);
  const data = pixels(drawable.source, width, height);
  const rgba = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  return { item: { name, width, height, rgba }, transfer: [rgba.buffer] };
}

async function drawableOf(image) {
  if (is(image, 'HTMLImageElement')) {
    if (!image.complete || image.naturalWidth === 0) {
      try {
        await image.decode();
      } catch {
        throw new Error('the <img> did not load (broken or missing src)');
      }
    }
    return { source: image, width: image.naturalWidth, height: image.naturalHeight };
  }
  if (is(image, 'HTMLVideoElement')) {
    if (image.readyState < 2) throw new Error('the <video> has no frame yet (wait for "loadeddata")');
    return { source: image, width: image.videoWidth, height: image.videoHeight };
  }
  if (is(image, 'VideoFrame')) {
    return { source: image, width: image.displayWidth, height: image.displayHeight };
  }
  if (is(image, 'ImageBitmap') || is(image, 'HTMLCanvasElement') || is(image, 'OffscreenCanvas')) {
    return { source: image, width: image.width, height: image.height };
  }
  const kind = image === null ? 'null' : typeof image === 'object' ? image.constructor?.name ?? 'object' : typeof image;
  throw new TypeError(`unsupported input (${kind}); use a ${IMAGE_KINDS}`);
}

function pixels(source, width, height) {
  const canvas = has('OffscreenCanvas')
    ? new OffscreenCanvas(width, height)
    : Object.assign(document.createElement('canvas'), { width, height });
  const ctx = canvas.getContext('2d', { willReadFrequently: true });
  if (!ctx) throw new Error('this browser cannot create a 2D canvas to read the pixels');
  ctx.drawImage(source, 0, 0, width, height);
  try {
    return ctx.getImageData(0, 0, width, height).data;
  } catch (e) {
    // A cross-origin image without CORS taints the canvas.
    throw new Error(`cannot read the pixels (${e.name}): a cross-origin image needs CORS (crossorigin="anonymous")`);
  }
}
