// The page's IndexedDB. Stores:
//   kv        "project": the engine's project file (classes, embeddings, model, settings, the
//             page's report in its `extra` slot)
//   thumbs    example id → small JPEG Blob shown in the class cards
//   previews  example id → larger JPEG Blob (≤ 320 px) for reviewing mistakes with a heatmap
// Thumbnails and previews are written as images are added, so the project file stays small.

const DB = 'headtune';
const VERSION = 2;
export const KV = 'kv';
export const THUMBS = 'thumbs';
export const PREVIEWS = 'previews';

let opening = null;

function open() {
  opening ??= new Promise((resolve, reject) => {
    const req = indexedDB.open(DB, VERSION);
    req.onupgradeneeded = () => {
      const db = req.result;
      for (const name of [KV, THUMBS, PREVIEWS]) if (!db.objectStoreNames.contains(name)) db.createObjectStore(name);
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
