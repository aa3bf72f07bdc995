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

import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const tf = require('@tensorflow/tfjs');

const PACKAGE = '@vladmandic/human@3.3.6';
const GRAPH_PATH = 'models/facemesh.json';
const GRAPH_SHA256 = 'b60ca26f404724f43bd2b1575761d8265180e1f053cc0731caa68462927309e7';
const BIN_PATH = 'models/facemesh.bin';
const BIN_SHA256 = '3826da640b0a3021161605369ee6af293f75d518040355b960ec71a3390c1c0b';
const SIZE = 192;
const PER_IMAGE = SIZE * SIZE * 3;

const [inputsDir, outPath] = process.argv.slice(2);
if (!inputsDir || !outPath) {
  console.error('usage: node facemesh_reference.mjs <inputs dir> <output fixture .json>');
  process.exit(2);
}

const sha256 = (buf) => createHash('sha256').update(buf).digest('hex');

function fetchModel() {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'facemesh-ref-'));
  try {
    const out = execFileSync('npm', ['pack', PACKAGE, '--silent', '--pack-destination', tmp], { encoding: 'utf8' });
    const tgz = out.trim().split('\n').pop().trim();
    execFileSync('tar', ['-xzf', path.join(tmp, tgz), '-C', tmp, `package/${GRAPH_PATH}`, `package/${BIN_PATH}`]);
    const graph = fs.readFileSync(path.join(tmp, 'package', GRAPH_PATH));
    const bin = fs.readFileSync(path.join(tmp, 'package', BIN_PATH));
    for (const [name, buf, want] of [[GRAPH_PATH, graph, GRAPH_SHA256], [BIN_PATH, bin, BIN_SHA256]]) {
      if (sha256(buf) !== want) throw new Error(`${name}: SHA-256 ${sha256(buf)} is not the pinned ${want}`);
    }
    return { graph: JSON.parse(graph.toString('utf8')), bin };
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

const desc = JSON.parse(fs.readFileSync(path.join(inputsDir, 'inputs.json'), 'utf8'));
const pixels = fs.readFileSync(path.join(inputsDir, 'inputs.bin'));
if (pixels.length !== desc.inputs.length * PER_IMAGE) {
  throw new Error(`inputs.bin has ${pixels.length} bytes, expected ${desc.inputs.length} x ${PER_IMAGE}`);
}

await tf.setBackend('cpu');
await tf.ready();
const { graph, bin } = fetchModel();
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
