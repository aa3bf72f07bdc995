// Which of the app's two WebAssembly builds a worker loads. Both are the same Rust library:
// - "threads" (dist/threads/): Burn's CPU backend on a pool of Web Workers, one per core. It
//   needs shared memory, which a browser grants only to a cross-origin isolated page (the
//   server sends COOP and COEP), and it has no WebGPU.
// - "single" (dist/): one thread, WebGPU with the CPU as its fallback; runs everywhere.
// The choice is made before any wasm runs, so it lives here rather than in Rust.

// The smallest module with a shared memory: only a browser with wasm threads validates it.
const SHARED_MEMORY_MODULE = new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0, 5, 4, 1, 3, 1, 1]);

export function threadsAvailable(scope = globalThis) {
  return Boolean(scope.crossOriginIsolated)
    && typeof SharedArrayBuffer === 'function'
    && WebAssembly.validate(SHARED_MEMORY_MODULE);
}

/// The build for a backend preference ('auto', 'webgpu' or 'cpu'): the threaded one wherever
/// the CPU would compute anyway and threads are available.
export async function chooseBuild(preference, scope = globalThis) {
  if (!threadsAvailable(scope) || preference === 'webgpu') return 'single';
  if (preference === 'cpu') return 'threads';
  const adapter = await scope.navigator.gpu?.requestAdapter().catch(() => null);
  return adapter ? 'single' : 'threads';
}
