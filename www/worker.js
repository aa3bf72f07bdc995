// The app's Web Worker: loads the same wasm module as the page and hands control to Rust
// (`web::worker::worker_main`), which owns the Burn device and answers the page's requests.
import init, { workerMain } from './faceverify.js';

try {
  await init({ module_or_path: new URL('./faceverify_bg.wasm', import.meta.url) });
  workerMain();
} catch (error) {
  self.postMessage({
    type: 'Failed',
    request: 'load',
    message: `The app could not start its worker (${error}). Reload the page; a current Chrome, Edge or Firefox is needed.`,
  });
}
