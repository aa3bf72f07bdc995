// The app's Web Worker: loads the same wasm module as the page and hands control to Rust
// (`web::worker::worker_main`), which owns the Burn device and answers the page's requests.
import { chooseBuild } from './builds.js';

// Camera frames arrive as ImageBitmaps (the page transfers them without copying pixels); the
// Rust side takes RGBA bytes. This listener is registered before the Rust one, so it turns
// `frame.bitmap` into `frame.rgba` before Rust reads the message.
const canvas = new OffscreenCanvas(1, 1);
const context = canvas.getContext('2d', { willReadFrequently: true });
self.addEventListener('message', (event) => {
  const frame = event.data && event.data.frame;
  if (!frame || !frame.bitmap) return;
  const { bitmap } = frame;
  if (canvas.width !== bitmap.width || canvas.height !== bitmap.height) {
    canvas.width = bitmap.width;
    canvas.height = bitmap.height;
  }
  context.drawImage(bitmap, 0, 0);
  bitmap.close();
  frame.width = canvas.width;
  frame.height = canvas.height;
  frame.rgba = new Uint8Array(context.getImageData(0, 0, canvas.width, canvas.height).data.buffer);
  delete frame.bitmap;
});

// Model files are fetched here, once each, streamed so the page can show progress; the Rust
// side asks for them by file name through `fetchModel`. They come from the folder the page
// names, else models/ beside this file. A failed download is forgotten, so that the next
// request tries again (the network may be back).
const params = new URL(import.meta.url).searchParams;
const models = params.get('models') ?? 'models/';
const downloads = new Map();
function fetchModel(file, name) {
  const url = models.endsWith('/') ? models + file : `${models}/${file}`;
  let download = downloads.get(url);
  if (!download) {
    download = streamModel(url, name);
    download.catch(() => downloads.delete(url));
    downloads.set(url, download);
  }
  return download;
}

async function streamModel(url, name) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`HTTP ${response.status}`);
  const total = Number(response.headers.get('content-length')) || 0;
  const progress = (loaded) => self.postMessage({ type: 'ModelProgress', name, loaded, total });
  progress(0);
  const chunks = [];
  let loaded = 0;
  let reported = 0;
  const reader = response.body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    loaded += value.length;
    // About every 256 KiB: a smooth bar without flooding the page.
    if (loaded - reported >= 256 * 1024) progress((reported = loaded));
  }
  if (total && loaded !== total) throw new Error(`got ${loaded} of ${total} bytes`);
  progress(loaded);
  const bytes = new Uint8Array(loaded);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.length;
  }
  return bytes;
}

// What the Rust side asks of the platform: the model files, and deleting the app's caches.
const platform = {
  fetchModel,
  // Cache Storage caches named "faceverify..." are the app's ("Delete all my data" deletes
  // them); the origin may host other apps, so only these go. Insecure contexts have none.
  async deleteCaches() {
    if (!self.caches) return;
    for (const name of await caches.keys()) {
      if (name.startsWith('faceverify')) await caches.delete(name);
    }
  },
};

// The page passes its backend preference: the build depends on it (builds.js).
async function loadBuild(build) {
  const base = build === 'threads' ? './threads/' : './';
  const glue = await import(`${base}faceverify.js`);
  await glue.default({ module_or_path: new URL(`${base}faceverify_bg.wasm`, import.meta.url) });
  if (build === 'threads') await glue.initThreadPool(navigator.hardwareConcurrency || 2);
  return glue;
}

try {
  const preference = params.get('backend') || 'auto';
  let build = await chooseBuild(preference);
  let glue;
  try {
    glue = await loadBuild(build);
  } catch (error) {
    if (build !== 'threads') throw error;
    // A host that copied only part of dist/, or a browser that refuses the pool: one thread.
    console.warn('faceverify: the multithreaded build did not start, using one thread:', error);
    build = 'single';
    glue = await loadBuild(build);
  }
  self.postMessage({ type: 'Build', build });
  glue.workerMain(platform);
} catch (error) {
  self.postMessage({
    type: 'Failed',
    request: 'load',
    message: `The app could not start its worker (${error}). Reload the page; a current Chrome, Edge or Firefox is needed.`,
  });
}
