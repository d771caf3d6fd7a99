// The page's IndexedDB. Stores:
//   parts     the project, stored piecemeal (the engine's `saveParts` records: "head", "labels",
//             "model", "extra" — the page's report and settings —, "chunk-N" of embeddings);
//             each save writes only what changed, in one transaction
//   kv        "parts-writer": which page session made the last save (two tabs must not mix
//             their saves); "project": the single project file of earlier versions, converted
//             to parts on the first load; "…-unreadable-…": saved copies that could not be opened
//   thumbs    example id → small JPEG (bytes; Blobs from earlier versions) shown in the class cards
//   previews  example id → larger JPEG for reviewing mistakes with a heatmap: `{ input: bytes }`,
//             the model's input square (what it saw); bytes or a Blob from earlier versions, the
//             whole image within 320 px
// Thumbnails and previews are written as images are added, so the project file stays small.

const DB = 'headtune';
const VERSION = 3;
export const KV = 'kv';
export const PARTS = 'parts';
export const THUMBS = 'thumbs';
export const PREVIEWS = 'previews';

let opening = null;

function open() {
  opening ??= new Promise((resolve, reject) => {
    const req = indexedDB.open(DB, VERSION);
    req.onupgradeneeded = () => {
      const db = req.result;
      for (const name of [KV, PARTS, THUMBS, PREVIEWS]) if (!db.objectStoreNames.contains(name)) db.createObjectStore(name);
    };
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error ?? new Error('IndexedDB is not available'));
    req.onblocked = () => reject(new Error('IndexedDB is blocked by another tab of this page'));
  });
  return opening;
}

/**
 * Run `fn(stores)` in one transaction over `names` (`stores[name]` is the object store);
 * resolves with what `fn` returned (requests' results are read after the commit) once the
 * transaction has committed.
 */
export function transaction(names, mode, fn) {
  return open().then(
    (db) =>
      new Promise((resolve, reject) => {
        const tx = db.transaction(names, mode);
        const stores = Object.fromEntries(names.map((n) => [n, tx.objectStore(n)]));
        const out = fn(stores);
        tx.oncomplete = () => resolve(typeof out === 'function' ? out() : out?.result);
        tx.onerror = () => reject(tx.error);
        tx.onabort = () => reject(tx.error ?? new Error('IndexedDB transaction aborted'));
      }),
  );
}

export const get = (key) => transaction([KV], 'readonly', (s) => s[KV].get(key));
export const put = (key, value) => transaction([KV], 'readwrite', (s) => s[KV].put(value, key));
export const del = (key) => transaction([KV], 'readwrite', (s) => s[KV].delete(key));

/** The record of `kv` that names the session of the last save into `parts`. */
const WRITER = 'parts-writer';

/**
 * What this browser holds of the project, read in one transaction: `{ parts, writer, project }`
 * — the parts by key (null when there is no head), the mark of their last writer, and the
 * single project file of earlier versions (null if none).
 */
export function readSaved() {
  return transaction([PARTS, KV], 'readonly', (s) => {
    const keys = s[PARTS].getAllKeys();
    const values = s[PARTS].getAll();
    const writer = s[KV].get(WRITER);
    const project = s[KV].get('project');
    return () => {
      const parts = Object.fromEntries(keys.result.map((k, i) => [k, values.result[i]]));
      return { parts: 'head' in parts ? parts : null, writer: writer.result ?? null, project: project.result ?? null };
    };
  });
}

/**
 * Store one `saveParts` result in one transaction, marked as written by `mark`. An update
 * (not `clear`) is applied only if the last save was `expected` (this session's): otherwise
 * another tab has saved since, the update would not fit what is stored, and this resolves to
 * false with nothing written. A whole save (`clear`) also drops the earlier single-file copy.
 */
export function writeParts(changes, expected, mark) {
  return transaction([PARTS, KV], 'readwrite', (s) => {
    let written = false;
    const check = s[KV].get(WRITER);
    check.onsuccess = () => {
      if (!changes.clear && (check.result ?? null) !== expected) return;
      if (changes.clear) {
        s[PARTS].clear();
        s[KV].delete('project');
      }
      for (const key of changes.remove) s[PARTS].delete(key);
      for (const [key, bytes] of changes.put) s[PARTS].put(bytes, key);
      s[KV].put(mark, WRITER);
      written = true;
    };
    return () => written;
  });
}

/** Forget the saved project (parts and any older copy), in one transaction. */
export const clearSaved = () =>
  transaction([PARTS, KV], 'readwrite', (s) => {
    s[PARTS].clear();
    s[KV].delete('project');
    s[KV].delete(WRITER);
  });

/**
 * Move parts that could not be opened aside, as one record of `kv` under `key` (`bytes`, e.g.
 * a tar of them), emptying `parts` in the same transaction.
 */
export const setAside = (key, bytes) =>
  transaction([PARTS, KV], 'readwrite', (s) => {
    s[KV].put(bytes, key);
    s[PARTS].clear();
    s[KV].delete(WRITER);
  });
