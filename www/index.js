// faceverify, the library: face verification that trains and runs in the browser. Its client
// class runs everything in a Web Worker; the wasm module's own exports are here too, for tools
// that want the backend choice without a worker.
export { FaceVerifier, frameOf } from './verifier.js';
export { default as init, version, selectBackend } from './faceverify.js';
