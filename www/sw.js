// The service worker: keeps the app shell, the wasm and the model files in Cache Storage so the
// app starts and verifies with the network off after one complete load.
//
// - Models (large, named by content version in models/README.md): cache first. The face mesh
//   is not fetched at install: it is kept the first time a capture or a liveness check
//   downloads it.
// - Everything else: network first (the HTTP cache makes that a cheap revalidation), falling
//   back to the cache offline, so a new build is picked up at the next online load.
// Cache names start with "faceverify" so "Delete all my data" finds them (worker.js).
const CACHE = 'faceverify-app-v6';
const SHELL = [
  './',
  'index.html',
  'app.js',
  'page/camera.js',
  'page/charts.js',
  'page/data.js',
  'page/engine.js',
  'page/enrol.js',
  'page/liveness.js',
  'page/profile.js',
  'page/state.js',
  'page/training.js',
  'page/ui.js',
  'page/verification.js',
  'verifier.js',
  'worker.js',
  'builds.js',
  'faceverify.js',
  'faceverify_bg.wasm',
  'style.css',
  'manifest.webmanifest',
  'icon.svg',
  'models/blazeface.f16.bin',
  'models/face_resnet.q8.bin',
  'models/impostors.json',
];

self.addEventListener('install', (event) => {
  event.waitUntil(caches.open(CACHE).then((cache) => cache.addAll(SHELL)).then(() => self.skipWaiting()));
});

self.addEventListener('activate', (event) => {
  event.waitUntil((async () => {
    for (const name of await caches.keys()) {
      if (name.startsWith('faceverify-app-') && name !== CACHE) await caches.delete(name);
    }
    await self.clients.claim();
  })());
});

self.addEventListener('fetch', (event) => {
  const request = event.request;
  const url = new URL(request.url);
  if (request.method !== 'GET' || url.origin !== self.location.origin) return;
  if (url.pathname.includes('/models/')) {
    event.respondWith(caches.match(request).then((hit) => hit || fetchAndKeep(request)));
  } else {
    event.respondWith(fetchAndKeep(request).catch(() => caches.match(request, { ignoreSearch: true })
      .then((hit) => hit || Response.error())));
  }
});

async function fetchAndKeep(request) {
  const response = await fetch(request);
  if (response.ok && response.type === 'basic') {
    const copy = response.clone();
    caches.open(CACHE).then((cache) => cache.put(request, copy));
  }
  return response;
}
