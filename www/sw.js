// Service worker: the page works offline after the first visit.
//
// Network first (so a rebuilt page is picked up at once), falling back to the cached copy when
// the network is gone. Only same-origin GETs are handled — the page makes no other requests.

const CACHE = 'headtune-v4';
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
  'pkg/headtune_bg.wasm',
  'pkg/efficientnet_lite0.safetensors',
];

self.addEventListener('install', (event) => {
  event.waitUntil(
    caches
      .open(CACHE)
      .then((cache) => cache.addAll(FILES))
      .then(() => self.skipWaiting()),
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

self.addEventListener('fetch', (event) => {
  const req = event.request;
  if (req.method !== 'GET' || new URL(req.url).origin !== self.location.origin) return;
  event.respondWith(
    (async () => {
      const cache = await caches.open(CACHE);
      try {
        const res = await fetch(req);
        if (res.ok && res.status === 200) cache.put(req, res.clone()).catch(() => {});
        return res;
      } catch (err) {
        const hit = (await cache.match(req)) ?? (req.mode === 'navigate' ? await cache.match(req, { ignoreSearch: true }) : undefined);
        if (hit) return hit;
        throw err;
      }
    })(),
  );
});
