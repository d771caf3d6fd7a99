// What the page shows of each example: a small square thumbnail for the class cards and a
// larger preview for reviewing mistakes (with a heatmap). Both are JPEG Blobs in IndexedDB,
// keyed by example id, written when the image is added and read only when shown. The engine
// makes both from the decode it does to embed the image (`addImages` with `thumbnails`): the
// browser never decodes an added image again.

import { transaction, THUMBS, PREVIEWS } from './store.js';

/** Side of the stored thumbnail: 2× the 56 px it is shown at, for high-density screens. */
export const THUMB = 112;
/** Longest side of the stored preview. */
export const PREVIEW = 320;

/** Object URLs of thumbnails already read, by id (revoked when the example goes). */
const urls = new Map();
/** Saves in progress, by id: a card may ask for a thumbnail before it is stored. */
const saving = new Map();

/** Note that the images of `ids` are being stored by `promise` (so `url` waits for it). */
export function track(ids, promise) {
  for (const id of ids) saving.set(id, promise);
  const done = () => ids.forEach((id) => saving.get(id) === promise && saving.delete(id));
  promise.then(done, done);
}

/**
 * Store the images of several examples, `[[id, { thumb, preview }], …]` with the JPEG bytes
 * `addImages` returned, as Blobs: one transaction.
 */
export function saveMany(entries) {
  if (!entries.length) return Promise.resolve();
  const jpeg = (bytes) => new Blob([bytes], { type: 'image/jpeg' });
  return transaction([THUMBS, PREVIEWS], 'readwrite', (s) => {
    for (const [id, { thumb, preview }] of entries) {
      s[THUMBS].put(jpeg(thumb), id);
      s[PREVIEWS].put(jpeg(preview), id);
    }
  });
}

/** An object URL of the thumbnail of example `id`, or null if there is none. */
export async function url(id) {
  if (urls.has(id)) return urls.get(id);
  await saving.get(id)?.catch(() => {});
  const blob = await transaction([THUMBS], 'readonly', (s) => s[THUMBS].get(id));
  if (!blob) return null;
  // Another caller may have read it meanwhile.
  if (!urls.has(id)) urls.set(id, URL.createObjectURL(blob));
  return urls.get(id);
}

/** The preview Blob of example `id`, or null. */
export const preview = (id) => transaction([PREVIEWS], 'readonly', (s) => s[PREVIEWS].get(id)).then((b) => b ?? null);

/** Forget the images of these examples. */
export function remove(ids) {
  for (const id of ids) {
    const u = urls.get(id);
    if (u) URL.revokeObjectURL(u);
    urls.delete(id);
  }
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
  for (const u of urls.values()) URL.revokeObjectURL(u);
  urls.clear();
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
  const [keys, blobs] = await transaction([THUMBS], 'readonly', (s) => {
    const k = s[THUMBS].getAllKeys();
    const v = s[THUMBS].getAll();
    return () => [k.result, v.result];
  });
  const out = {};
  for (let i = 0; i < keys.length; i++) out[keys[i]] = await blobToDataUrl(blobs[i]);
  return out;
}

/** A base64 data URL as a Blob (not through fetch: the page's CSP allows no data: fetches). */
function dataUrlToBlob(dataUrl) {
  const [head, body] = dataUrl.split(',', 2);
  const type = head.slice('data:'.length).split(';')[0];
  const bytes = Uint8Array.from(atob(body ?? ''), (c) => c.charCodeAt(0));
  return new Blob([bytes], { type });
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
    if (!Number.isInteger(id) || typeof dataUrl !== 'string' || !dataUrl.startsWith('data:image/')) continue;
    entries.push([id, dataUrlToBlob(dataUrl)]);
  }
  if (!entries.length) return;
  await transaction([THUMBS], 'readwrite', (s) => {
    for (const [id, blob] of entries) s[THUMBS].put(blob, id);
  });
}
