// Reference outputs for faceverify's face mesh network: the TensorFlow.js graph model that
// npm @vladmandic/human 3.3.6 ships (models/facemesh.json + models/facemesh.bin, MediaPipe's
// face landmark model), run by TensorFlow.js 4.22.0 in node on its pure-JS "cpu" backend
// (float32), on exactly the 192x192 crops the Rust test builds, so that any difference comes
// from the network alone.
//
// Inputs come from the Rust side (detection and cropping written once, in
// src/vision/mesh.rs, used by tests/facemesh.rs):
//
//   FACEMESH_DUMP_DIR=/tmp/facemesh_inputs \
//     cargo test --test facemesh -- --ignored --exact dump_reference_inputs
//
// which writes inputs.json (names, SHA-256 of each 192x192 RGB8 crop) and inputs.bin (the
// crops, concatenated, row-major RGB). Then, in a temporary copy of this folder:
//
//   npm install            # installs the exact versions pinned in package.json
//   node facemesh_reference.mjs /tmp/facemesh_inputs ../../tests/fixtures/facemesh_reference.json
//
// The model files are fetched with `npm pack` (the package is large and needs none of its
// dependencies here), unpacked with `tar`, and checked against the SHA-256 that
// `cargo xtask models` pins. The network sees each pixel as p / 255 (human's cutAndResize).

import fs from 'node:fs';
import { createRequire } from 'node:module';
import { fetchPinned, readInputs, scriptArgs, sha256 } from './common.mjs';

const require = createRequire(import.meta.url);
const tf = require('@tensorflow/tfjs');

const PACKAGE = '@vladmandic/human@3.3.6';
const GRAPH_PATH = 'models/facemesh.json';
const GRAPH_SHA256 = 'b60ca26f404724f43bd2b1575761d8265180e1f053cc0731caa68462927309e7';
const BIN_PATH = 'models/facemesh.bin';
const BIN_SHA256 = '3826da640b0a3021161605369ee6af293f75d518040355b960ec71a3390c1c0b';
const SIZE = 192;
const PER_IMAGE = SIZE * SIZE * 3;

const [inputsDir, outPath] = scriptArgs('facemesh_reference.mjs');
const { desc, pixels } = readInputs(inputsDir, PER_IMAGE);

await tf.setBackend('cpu');
await tf.ready();
const [graphFile, bin] = fetchPinned(PACKAGE, [[GRAPH_PATH, GRAPH_SHA256], [BIN_PATH, BIN_SHA256]]);
const graph = JSON.parse(graphFile.toString('utf8'));
const weightData = bin.buffer.slice(bin.byteOffset, bin.byteOffset + bin.byteLength);
const model = await tf.loadGraphModel(tf.io.fromMemory({
  modelTopology: graph.modelTopology,
  weightSpecs: graph.weightsManifest.flatMap((g) => g.weights),
  weightData,
  format: graph.format,
  generatedBy: graph.generatedBy,
  convertedBy: graph.convertedBy,
  signature: graph.signature,
}));

const outputs = [];
for (const [i, input] of desc.inputs.entries()) {
  const crop = pixels.subarray(i * PER_IMAGE, (i + 1) * PER_IMAGE);
  if (sha256(crop) !== input.sha256) throw new Error(`${input.name}: SHA-256 does not match inputs.json`);
  const values = Float32Array.from(crop, (p) => p / 255);
  const x = tf.tensor4d(values, [1, SIZE, SIZE, 3]);
  const results = model.execute(x);
  const mesh = results.find((t) => t.shape[t.shape.length - 1] === 1404);
  const flag = results.find((t) => t.shape[t.shape.length - 1] === 1);
  outputs.push({
    name: input.name,
    sha256: input.sha256,
    face_score: (await flag.data())[0],
    mesh: Array.from(await mesh.data(), (v) => Math.round(v * 1e4) / 1e4),
  });
  tf.dispose([x, ...results]);
  console.log(`${input.name}: face score ${outputs[outputs.length - 1].face_score.toFixed(4)}`);
}

fs.writeFileSync(outPath, JSON.stringify({
  about: 'Face mesh reference outputs: @vladmandic/human 3.3.6 models/facemesh.json run by TensorFlow.js 4.22.0 (cpu backend, float32) in node on the crops tests/facemesh.rs builds (xtask/reference/facemesh_reference.mjs). mesh: 468 x (x, y, z) in crop pixels, rounded to 1e-4.',
  tfjs: tf.version.tfjs,
  model: { package: PACKAGE, [GRAPH_PATH]: GRAPH_SHA256, [BIN_PATH]: BIN_SHA256 },
  outputs,
}) + '\n');
console.log(`wrote ${outPath}: ${outputs.length} inputs`);
