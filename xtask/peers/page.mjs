// The peer figures, timed in the page: face-api (its bundled tfjs) on the tfjs wasm backend.
// Every line goes to the console, where run.mjs reads it; `window.peers` settles when done.

import * as faceapi from '/face-api/face-api.esm.js';
import { figureLine, measure } from '/summary.mjs';

const query = new URLSearchParams(location.search);
const WARMUP = Number(query.get('warmup') ?? 1);
const RUNS = Number(query.get('runs') ?? 5);
const REFERENCES = 50;
// face-api's usual distance for "same person", and the share of references that must match.
const DETECTION_THRESHOLD = 0.6;
const VERIFICATION_THRESHOLD = 0.5;

const emit = (line) => console.log(line);

// The wasm backend with its binaries from the tfjs-backend-wasm package, and what it chose:
// the threaded SIMD build needs cross-origin isolation (SharedArrayBuffer).
async function startBackend() {
  const { tf } = faceapi;
  tf.setWasmPaths('/wasm/');
  if (!(await tf.setBackend('wasm'))) throw new Error('the tfjs wasm backend did not start');
  await tf.ready();
  const simd = await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT');
  const multithread = await tf.env().getAsync('WASM_HAS_MULTITHREAD_SUPPORT');
  const binaries = performance.getEntriesByType('resource')
    .map((entry) => entry.name.split('/').pop())
    .filter((name) => name.endsWith('.wasm'));
  emit(`bench: peers: backend=${tf.getBackend()} binary=${binaries.join(',') || 'none'} ` +
    `threads=${tf.getThreadsCount()} simd=${simd} multithread=${multithread} ` +
    `crossOriginIsolated=${globalThis.crossOriginIsolated} ` +
    `hardwareConcurrency=${navigator.hardwareConcurrency}`);
  emit(`bench: peers: page versions face-api=${faceapi.version} tfjs-core=${tf.version_core}`);
}

async function loadModels() {
  await Promise.all([
    faceapi.nets.tinyFaceDetector.loadFromUri('/model'),
    faceapi.nets.faceLandmark68Net.loadFromUri('/model'),
    faceapi.nets.faceRecognitionNet.loadFromUri('/model'),
  ]);
}

// The photo as a 640×480 camera frame, as the Rust bench builds it (`camera_frame`): scaled to
// fit with the image crate's rounding, centred on grey 128.
async function cameraFrame(url) {
  const image = new Image();
  image.src = url;
  await image.decode();
  const ratio = Math.min(640 / image.naturalWidth, 480 / image.naturalHeight);
  const width = Math.max(1, Math.round(image.naturalWidth * ratio));
  const height = Math.max(1, Math.round(image.naturalHeight * ratio));
  const canvas = document.createElement('canvas');
  canvas.width = 640;
  canvas.height = 480;
  const context = canvas.getContext('2d');
  context.fillStyle = 'rgb(128, 128, 128)';
  context.fillRect(0, 0, 640, 480);
  // Triangle filtering in the Rust bench averages over the scale; 'high' is the closest here.
  context.imageSmoothingQuality = 'high';
  context.drawImage(image, Math.floor((640 - width) / 2), Math.floor((480 - height) / 2),
    width, height);
  return canvas;
}

// Stored descriptors: deterministic values in face-api's descriptor range; their values do not
// change the cost.
function references() {
  let state = 12345;
  const next = () => {
    state = (Math.imul(state, 1103515245) + 12345) >>> 0;
    return (state / 2 ** 32 - 0.5) * 0.3;
  };
  return Array.from({ length: REFERENCES }, () => Float32Array.from({ length: 128 }, next));
}

// The tutorial's rule on face-api's distance: the share of references nearer than the detection
// threshold must reach the verification threshold.
function decide(probe, stored) {
  const matched = stored
    .filter((reference) => faceapi.euclideanDistance(probe, reference) < DETECTION_THRESHOLD)
    .length;
  return { matched, verified: matched / stored.length >= VERIFICATION_THRESHOLD };
}

async function embedFigure(frame, options) {
  const found = await faceapi.detectSingleFace(frame, options).withFaceLandmarks();
  if (!found) throw new Error('face-api finds no face in the frame');
  const [crop] = await faceapi.extractFaces(frame, [found.alignedRect]);
  emit(`bench: peers: aligned face crop ${crop.width}x${crop.height} (face-api resizes it ` +
    'to 150x150 inside the descriptor)');
  const samples = await measure(WARMUP, RUNS, async () => {
    const descriptor = await faceapi.computeFaceDescriptor(crop);
    if (!(descriptor instanceof Float32Array) || descriptor.length !== 128) {
      throw new Error('computeFaceDescriptor gave no 128-d Float32Array');
    }
  });
  emit(figureLine('peer.faceapi.embed_128d', samples));
}

async function pipelineFigure(frame, options) {
  const stored = references();
  let last;
  const samples = await measure(WARMUP, RUNS, async () => {
    const result = await faceapi.detectSingleFace(frame, options)
      .withFaceLandmarks()
      .withFaceDescriptor();
    if (!result) throw new Error('face-api finds no face in the frame');
    last = decide(result.descriptor, stored);
  });
  emit(figureLine('peer.faceapi.frame_to_decision_50refs', samples));
  emit(`bench: peers: decision matched=${last.matched}/${REFERENCES} ` +
    `verified=${last.verified} (synthetic references)`);
}

async function main() {
  await startBackend();
  await loadModels();
  const frame = await cameraFrame('/frame.jpg');
  const options = new faceapi.TinyFaceDetectorOptions();
  await embedFigure(frame, options);
  await pipelineFigure(frame, options);
}

window.peers = main();
