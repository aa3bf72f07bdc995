// Reference embeddings for faceverify's FaceResNet: face-api's own FaceRecognitionNet forward pass
// (@vladmandic/face-api 1.7.15 on TensorFlow.js 4.22.0, pure-JS "cpu" backend, float32), run on
// exactly the pixels the Rust test builds, so that any difference comes from the network alone.
//
// Inputs come from the Rust side (one deterministic preprocessing, written once, in
// tests/face_resnet.rs):
//
//   FACE_RESNET_DUMP_DIR=/tmp/face_resnet_inputs \
//     cargo test --test face_resnet -- --ignored --exact dump_reference_inputs
//
// which writes inputs.json (names, crop boxes, SHA-256 of each 150x150 RGB8 image) and inputs.bin
// (the images, concatenated, row-major RGB). Then, in a temporary copy of this folder:
//
//   npm install            # installs the exact versions pinned in package.json
//   node face_resnet_reference.mjs /tmp/face_resnet_inputs ../../tests/fixtures/face_resnet_reference.json
//
// The weights are the package's own model/face_recognition_model.bin + manifest (the same files,
// by SHA-256, that `cargo xtask models` converts). The script also runs the tfjs "wasm" backend
// (the .wasm ships inside @tensorflow/tfjs-backend-wasm) as a cross-check and records the largest
// L2 distance between the two backends.

import { createRequire } from 'node:module';
import fs from 'node:fs';
import path from 'node:path';
import { readInputs, scriptArgs, sha256 } from './common.mjs';

const require = createRequire(import.meta.url);
const faceapi = require('@vladmandic/face-api/dist/face-api.node-wasm.js');
const { tf } = faceapi;

const [inputsDir, outPath] = scriptArgs('face_resnet_reference.mjs');

const SIZE = 150;
const PER_IMAGE = SIZE * SIZE * 3;
const { desc, pixels } = readInputs(inputsDir, PER_IMAGE);

const pkgDir = path.dirname(require.resolve('@vladmandic/face-api/package.json'));
const modelDir = path.join(pkgDir, 'model');
const modelFiles = {};
for (const f of ['face_recognition_model-weights_manifest.json', 'face_recognition_model.bin']) {
  modelFiles[`model/${f}`] = sha256(fs.readFileSync(path.join(modelDir, f)));
}

async function embedAll(backend) {
  if (backend === 'wasm') {
    const wasmDir = path.join(path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm/package.json')), 'dist');
    faceapi.tf.setWasmPaths(wasmDir + path.sep);
  }
  if (!(await tf.setBackend(backend))) throw new Error(`tfjs backend ${backend} failed to initialise`);
  await tf.ready();
  const out = [];
  for (let i = 0; i < desc.inputs.length; i += 1) {
    const img = pixels.subarray(i * PER_IMAGE, (i + 1) * PER_IMAGE);
    const got = sha256(img);
    if (got !== desc.inputs[i].rgb_sha256) throw new Error(`${desc.inputs[i].name}: pixel SHA-256 mismatch`);
    const t = tf.tensor3d(Float32Array.from(img), [SIZE, SIZE, 3], 'float32');
    const d = await faceapi.nets.faceRecognitionNet.computeFaceDescriptor(t);
    t.dispose();
    out.push(Array.from(d));
  }
  return out;
}

const l2 = (a, b) => Math.sqrt(a.reduce((s, v, k) => s + (v - b[k]) ** 2, 0));

// Pick the backend before the weights become tensors (face-api's bundle registers wasm first).
await tf.setBackend('cpu');
await tf.ready();
await faceapi.nets.faceRecognitionNet.loadFromDisk(modelDir);
const cpu = await embedAll('cpu');
let wasmMaxL2 = null;
try {
  const wasm = await embedAll('wasm');
  wasmMaxL2 = Math.max(...cpu.map((e, i) => l2(e, wasm[i])));
} catch (e) {
  console.error(`wasm cross-check skipped: ${e.message}`);
}

const fixture = {
  description: 'Reference 128-d face descriptors from face-api\'s own FaceRecognitionNet forward pass, for tests/face_resnet.rs.',
  reference: {
    package: '@vladmandic/face-api@1.7.15',
    tfjs: tf.version.tfjs,
    backend: 'cpu',
    model_files_sha256: modelFiles,
    wasm_backend_max_l2_vs_cpu: wasmMaxL2,
  },
  commands: [
    'FACE_RESNET_DUMP_DIR=/tmp/face_resnet_inputs cargo test --test face_resnet -- --ignored --exact dump_reference_inputs',
    'cd <temp copy of xtask/reference> && npm install && node face_resnet_reference.mjs /tmp/face_resnet_inputs <repo>/tests/fixtures/face_resnet_reference.json',
  ],
  preprocess: desc.preprocess,
  inputs: desc.inputs.map((inp, i) => ({
    ...inp,
    embedding: cpu[i].map((v) => Number(v.toPrecision(9))),
  })),
};
// One line per input keeps the fixture readable and its diffs small.
const { inputs, ...head } = fixture;
const headText = JSON.stringify(head, null, 2);
const body = inputs.map((inp) => `    ${JSON.stringify(inp)}`).join(',\n');
fs.writeFileSync(outPath, `${headText.slice(0, -2)},\n  "inputs": [\n${body}\n  ]\n}\n`);
console.log(`wrote ${outPath}: ${cpu.length} embeddings; wasm vs cpu max L2 = ${wasmMaxL2}`);
