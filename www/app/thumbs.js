// What the page shows of each example: a small square thumbnail for the class cards and a
// larger preview for reviewing mistakes (with a heatmap). Both are JPEG files in IndexedDB,
// keyed by example id, written when the image is added and read only when shown. The engine
// makes both from the decode it does to embed the image (`addImages` with `thumbnails`): the
// browser never decodes an added image again. The preview is what the model saw (`preview:
// 'input'`: the image framed the model's way, at its input side) and the thumbnail that square:
// the cards show what is learnt from, the review's heatmap is computed on the very input the
// example was embedded from (`predict` with `framed`), and it costs the engine's workers half
// as much as a whole-image preview (no resize of the full photo; a smaller JPEG to encode).
//
// They are stored as bytes (Uint8Array), not Blobs, and shown as data: URLs, not object URLs:
// each Blob cost the page ≈ 0.4 ms to make and ≈ 0.9 ms to turn into an object URL (a
// synchronous round trip to the browser process), and IndexedDB keeps every Blob as a file of
// its own — together a sixth of the page's CPU while adding. Bytes stay inline in the database,
// and a 5 KB thumbnail's base64 takes microseconds. Values stored as Blobs by the previous
// version are still read.

import { transaction, THUMBS, PREVIEWS } from './store.js';

/** Side of the stored thumbnail: 2× the 56 px it is shown at, for high-density screens. */
export const THUMB = 112;
/** The stored preview: the model's input square (see above). */
export const PREVIEW = 'input';

/** URLs of thumbnails already read, by id (object URLs only for Blobs of earlier versions). */
const urls = new Map();
/** How many URLs `urls` keeps: what the cards and the review can show at once, with room. */
const KEEP_URLS = 2000;
/** Saves in progress, by id: a card may ask for a thumbnail before it is stored. */
const saving = new Map();
/** The bytes of the thumbnails saved last, by id: the cards show the newest images, and
 * reading back what was just written would cost a transaction per image. */
const recent = new Map();
const KEEP_RECENT = 256;

const nextTask = () => new Promise((resolve) => setTimeout(resolve, 0));

/** Drop the oldest entries of `map` (Maps iterate in insertion order) past `keep`, through `drop`. */
function evictOldest(map, keep, drop = (key) => map.delete(key)) {
  for (const key of map.keys()) {
    if (map.size <= keep) break;
    drop(key);
  }
}

/**
 * Store the images of several examples, `[[id, { thumb, preview }], …]` with the JPEG bytes
 * (Uint8Array) `addImages` returned: one transaction. Until it commits, `url` of these ids
 * waits for it (a card may ask as soon as the examples are shown).
 */
export function saveMany(entries) {
  if (!entries.length) return Promise.resolve();
  for (const [id, { thumb }] of entries) recent.set(id, thumb);
  evictOldest(recent, KEEP_RECENT);
  // Written from a task of its own, not from the one that shows these images: copying the
  // bytes into the transaction costs the main thread ≈ 0.1 ms per image, and while adding the
  // workers leave it less than half a core (a show's 20 ms of CPU took 45–53 ms in a trace).
  const stored = nextTask().then(() =>
    transaction([THUMBS, PREVIEWS], 'readwrite', (s) => {
      for (const [id, { thumb, preview }] of entries) {
        s[THUMBS].put(thumb, id);
        s[PREVIEWS].put({ input: preview }, id);
      }
    }),
  );
  for (const [id] of entries) saving.set(id, stored);
  const done = () => entries.forEach(([id]) => saving.get(id) === stored && saving.delete(id));
  stored.then(done, done);
  return stored;
}

/** Base64 of `bytes` (the built-in where the browser has it). */
function base64(bytes) {
  if (typeof bytes.toBase64 === 'function') return bytes.toBase64();
  let text = '';
  for (let k = 0; k < bytes.length; k += 0x8000) text += String.fromCharCode(...bytes.subarray(k, k + 0x8000));
  return btoa(text);
}

/** A data: URL of JPEG bytes. */
const jpegDataUrl = (bytes) => `data:image/jpeg;base64,${base64(bytes)}`;

/** A URL showing a stored JPEG: a data: URL of its bytes, an object URL of an older Blob. */
const urlOf = (value) => (value instanceof Blob ? URL.createObjectURL(value) : jpegDataUrl(value));

function forget(id) {
  recent.delete(id);
  const u = urls.get(id);
  if (u?.startsWith('blob:')) URL.revokeObjectURL(u);
  urls.delete(id);
}

/** A URL of the thumbnail of example `id`, or null if there is none. */
export async function url(id) {
  if (urls.has(id)) return urls.get(id);
  let value = recent.get(id);
  if (!value) {
    await saving.get(id)?.catch(() => {});
    value = await transaction([THUMBS], 'readonly', (s) => s[THUMBS].get(id));
  }
  if (!value) return null;
  // Another caller may have read it meanwhile.
  if (!urls.has(id)) {
    urls.set(id, urlOf(value));
    evictOldest(urls, KEEP_URLS, forget);
  }
  return urls.get(id);
}

/**
 * The preview of example `id` as `{ blob, framed }` — a JPEG Blob (to decode and to predict), and
 * whether it is the model's input square (predict it `framed`) rather than the whole image of
 * earlier versions — or null.
 */
export async function preview(id) {
  const v = await transaction([PREVIEWS], 'readonly', (s) => s[PREVIEWS].get(id));
  if (!v) return null;
  if (v.input instanceof Uint8Array) return { blob: new Blob([v.input], { type: 'image/jpeg' }), framed: true };
  return { blob: v instanceof Blob ? v : new Blob([v], { type: 'image/jpeg' }), framed: false };
}

/** Forget the images of these examples. */
export function remove(ids) {
  for (const id of ids) forget(id);
  if (!ids.length) return Promise.resolve();
  return transaction([THUMBS, PREVIEWS], 'readwrite', (s) => {
    for (const id of ids) {
      s[THUMBS].delete(id);
      s[PREVIEWS].delete(id);
    }
  });
}

/** Forget every image (a new or imported project). */
export function clear() {
  for (const id of [...urls.keys()]) forget(id);
  recent.clear();
  return transaction([THUMBS, PREVIEWS], 'readwrite', (s) => {
    s[THUMBS].clear();
    s[PREVIEWS].clear();
  });
}

/** Drop images of examples that no longer exist (left behind when a tab closed mid-save). */
export async function prune(ids) {
  const keep = new Set(ids);
  const stored = await transaction([THUMBS], 'readonly', (s) => s[THUMBS].getAllKeys());
  await remove(stored.filter((id) => !keep.has(id)));
}

function blobToDataUrl(blob) {
  return new Promise((resolve, reject) => {
    const r = new FileReader();
    r.onload = () => resolve(r.result);
    r.onerror = () => reject(r.error);
    r.readAsDataURL(blob);
  });
}

/** Every thumbnail as `{ id: data URL }`, to travel inside an exported project file. */
export async function exportAll() {
  const [keys, values] = await transaction([THUMBS], 'readonly', (s) => {
    const k = s[THUMBS].getAllKeys();
    const v = s[THUMBS].getAll();
    return () => [k.result, v.result];
  });
  const out = {};
  for (let i = 0; i < keys.length; i++) out[keys[i]] = values[i] instanceof Blob ? await blobToDataUrl(values[i]) : jpegDataUrl(values[i]);
  return out;
}

/** The bytes of a base64 image data URL (not through fetch: the page's CSP allows no data: fetches). */
function dataUrlBytes(dataUrl) {
  const body = dataUrl.split(',', 2)[1] ?? '';
  if (typeof Uint8Array.fromBase64 === 'function') return Uint8Array.fromBase64(body);
  return Uint8Array.from(atob(body), (c) => c.charCodeAt(0));
}

/**
 * Replace every stored image with the thumbnails of an imported project (`{ id: data URL }`,
 * as `exportAll` writes; projects saved by the first version of the page have the same shape).
 * Imported projects have no previews: reviews show the thumbnail instead.
 */
export async function importAll(map) {
  await clear();
  const entries = [];
  for (const [key, dataUrl] of Object.entries(map ?? {})) {
    const id = Number(key);
    // Every thumbnail the page writes is a JPEG; browsers recognise an image by its bytes anyway.
    if (!Number.isInteger(id) || typeof dataUrl !== 'string' || !/^data:image\/[\w.+-]+;base64,/.test(dataUrl)) continue;
    try {
      entries.push([id, dataUrlBytes(dataUrl)]);
    } catch {
      // Not base64: that thumbnail is left out, the others are kept.
    }
  }
  if (!entries.length) return;
  await transaction([THUMBS], 'readwrite', (s) => {
    for (const [id, bytes] of entries) s[THUMBS].put(bytes, id);
  });
}
