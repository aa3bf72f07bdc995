// Imports the built pkg/ the way another app would and runs its exports on the CPU backend.
// Run by `cargo xtask test` after `cargo xtask pkg`: node check.mjs <path to pkg>
import { execFileSync } from 'node:child_process';
import { copyFile, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const pkg = path.resolve(process.argv[2] ?? 'pkg');

// Every script of the package parses as a module, the worker's too (nothing here imports it;
// in a browser a syntax error there only shows as a worker that never starts).
const scratch = await mkdtemp(path.join(os.tmpdir(), 'faceverify-pkg-check-'));
try {
  for (const file of (await readdir(pkg)).filter((name) => name.endsWith('.js'))) {
    const copy = path.join(scratch, file.replace(/\.js$/, '.mjs'));
    await copyFile(path.join(pkg, file), copy);
    execFileSync(process.execPath, ['--check', copy], { stdio: 'inherit' });
  }
} finally {
  await rm(scratch, { recursive: true, force: true });
}
const manifest = JSON.parse(await readFile(path.join(pkg, 'package.json'), 'utf8'));
const module = await import(pathToFileURL(path.join(pkg, manifest.main)).href);
await module.init({ module_or_path: await readFile(path.join(pkg, 'faceverify_bg.wasm')) });
if (typeof module.FaceVerifier !== 'function' || typeof module.frameOf !== 'function') {
  throw new Error('the package does not export FaceVerifier and frameOf');
}

const version = module.version();
if (version !== manifest.version) throw new Error(`version() = ${version}, package.json = ${manifest.version}`);
const report = await module.selectBackend('cpu');
if (report.kind !== 'Cpu' || report.reason !== 'cpu_requested' || !report.description.startsWith('CPU')) {
  throw new Error(`unexpected backend report ${JSON.stringify(report)}`);
}
let rejected = false;
try { await module.selectBackend('cuda'); } catch (e) { rejected = String(e).includes('unknown backend'); }
if (!rejected) throw new Error('selectBackend accepted an unknown backend');
console.log(`pkg check: faceverify ${version} imported from ${pkg}; ${report.description}`);
