// Service worker: the page works offline after the first visit. A module worker (registered
// with type 'module'), so it shares lib/simd.js's choice of the engine's wasm.
//
// Network first (so a rebuilt page is picked up at once), falling back to the cached copy when
// the network is gone. Only same-origin GETs are handled — the page makes no other requests.

import { WASM_FILE } from './lib/simd.js';

const CACHE = 'headtune-v5';
const FILES = [
  './',
  'index.html',
  'app/main.js',
  'app/state.js',
  'app/dom.js',
  'app/engine.js',
  'app/framing.js',
  'app/store.js',
  'app/thumbs.js',
  'app/files.js',
  'app/camera.js',
  'app/classes.js',
  'app/adding.js',
  'app/training.js',
  'app/evaluation.js',
  'app/prediction.js',
  'app/keep.js',
  'app/charts.js',
  'app/style.css',
  'app/icon.svg',
  'app/lock.svg',
  'lib/index.js',
  'lib/channel.js',
  'lib/images.js',
  'lib/pool.js',
  'lib/worker.js',
  'pkg/headtune.js',
  'lib/simd.js',
  'pkg/efficientnet_lite0.safetensors',
];

self.addEventListener('install', (event) => {
  event.waitUntil(
    (async () => {
      // The engine's wasm this browser runs (lib/simd.js decides, as the engine does), not both.
      const cache = await caches.open(CACHE);
      await cache.addAll([...FILES, `pkg/${WASM_FILE}`]);
      await self.skipWaiting();
    })(),
  );
});

self.addEventListener('activate', (event) => {
  event.waitUntil(
    caches
      .keys()
      .then((keys) => Promise.all(keys.filter((k) => k !== CACHE).map((k) => caches.delete(k))))
      .then(() => self.clients.claim()),
  );
});

/**
 * Whether the cache already holds this version of the response (same validator and length):
 * every engine worker fetches the weights, and copying 5–40 MB into the cache again on each
 * fetch cost the page's adding a few percent of the CPU.
 */
async function unchanged(cache, req, res) {
  const old = await cache.match(req);
  if (!old) return false;
  const same = (h) => res.headers.get(h) !== null && res.headers.get(h) === old.headers.get(h);
  return (same('etag') || same('last-modified')) && same('content-length');
}

self.addEventListener('fetch', (event) => {
  const req = event.request;
  if (req.method !== 'GET' || new URL(req.url).origin !== self.location.origin) return;
  event.respondWith(
    (async () => {
      const cache = await caches.open(CACHE);
      try {
        const res = await fetch(req);
        if (res.ok && res.status === 200 && !(await unchanged(cache, req, res))) cache.put(req, res.clone()).catch(() => {});
        return res;
      } catch (err) {
        const hit = (await cache.match(req)) ?? (req.mode === 'navigate' ? await cache.match(req, { ignoreSearch: true }) : undefined);
        if (hit) return hit;
        throw err;
      }
    })(),
  );
});
