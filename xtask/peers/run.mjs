// Times the peer figures: serves the page (server.mjs), starts headless Chromium with a fresh
// profile and exactly the flags below, drives it over the DevTools protocol (playwright-core,
// which downloads no browser) and prints the page's `figure=` and `bench:` lines.
//
// node run.mjs --photo PATH [--warmup N] [--runs N] [--chromium PATH] [--timeout-s N]

import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { serve } from './server.mjs';

const HERE = dirname(fileURLToPath(import.meta.url));
const MODULES = join(HERE, 'node_modules');
const FLAGS = [
  '--headless', '--no-sandbox', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--disable-gpu',
];

function parseArgs(argv) {
  const args = { warmup: '1', runs: '5', chromium: '/usr/bin/chromium', 'timeout-s': '300' };
  for (let i = 0; i < argv.length; i += 2) {
    const key = argv[i].replace(/^--/, '');
    if (!(key in args) && key !== 'photo') throw new Error(`unknown argument ${argv[i]}`);
    if (argv[i + 1] === undefined) throw new Error(`${argv[i]} needs a value`);
    args[key] = argv[i + 1];
  }
  if (!args.photo) throw new Error('--photo PATH is required');
  return args;
}

async function versionOf(name) {
  const manifest = JSON.parse(await readFile(join(MODULES, name, 'package.json'), 'utf8'));
  return `${name}=${manifest.version}`;
}

// Starts Chromium; resolves once it prints its DevTools endpoint.
function launch(executable, profile) {
  const child = spawn(
    executable,
    [...FLAGS, `--user-data-dir=${profile}`, '--remote-debugging-port=0', 'about:blank'],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  return new Promise((done, fail) => {
    let log = '';
    const timer = setTimeout(() => fail(new Error(`no DevTools endpoint in 30 s:\n${log}`)), 30e3);
    child.once('error', fail);
    child.once('exit', (code) => fail(new Error(`${executable} exited (${code}):\n${log}`)));
    // Read stderr to the end, or Chromium blocks once the pipe is full.
    child.stderr.on('data', (chunk) => {
      if (log.length < 1e5) log += chunk;
      const found = log.match(/DevTools listening on (ws:\/\/\S+)/);
      if (found) {
        clearTimeout(timer);
        done({ child, endpoint: found[1] });
      }
    });
  });
}

// Stops Chromium and waits for it, so that its profile can be removed.
function stop(child) {
  if (child === undefined || child.exitCode !== null) return Promise.resolve();
  child.removeAllListeners('exit');
  const exited = new Promise((done) => {
    child.once('exit', done);
  });
  child.kill('SIGTERM');
  return withTimeout(exited, 10, 'stopping Chromium').catch(() => child.kill('SIGKILL'));
}

function withTimeout(promise, seconds, what) {
  let timer;
  const late = new Promise((_, fail) => {
    timer = setTimeout(() => fail(new Error(`${what} took over ${seconds} s`)), seconds * 1e3);
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

// Opens the page and waits for `window.peers`, echoing its lines as they come.
async function timePage(endpoint, origin, args) {
  const browser = await chromium.connectOverCDP(endpoint);
  try {
    console.log(`bench: peers: chromium ${browser.version()} flags ${FLAGS.join(' ')}`);
    const page = await browser.contexts()[0].newPage();
    page.on('console', (message) => {
      const text = message.text();
      if (text.startsWith('figure=') || text.startsWith('bench: ')) console.log(text);
    });
    page.on('pageerror', (error) => console.error(`peers page: ${error.message}`));
    await page.goto(`${origin}/index.html?warmup=${args.warmup}&runs=${args.runs}`);
    await page.waitForFunction(() => window.peers !== undefined);
    const finished = page.evaluate(() => window.peers.then(() => true));
    await withTimeout(finished, Number(args['timeout-s']), 'the peer figures');
  } finally {
    await browser.close();
  }
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const versions = await Promise.all(
    ['@vladmandic/face-api', '@tensorflow/tfjs-backend-wasm', 'playwright-core'].map(versionOf),
  );
  console.log(`bench: peers: versions ${versions.join(' ')}`);
  const routes = {
    '/': HERE,
    '/face-api/': join(MODULES, '@vladmandic/face-api/dist'),
    '/model/': join(MODULES, '@vladmandic/face-api/model'),
    '/wasm/': join(MODULES, '@tensorflow/tfjs-backend-wasm/dist'),
    '/frame.jpg': args.photo,
  };
  const { server, origin } = await serve(routes);
  const profile = await mkdtemp(join(tmpdir(), 'faceverify-peers-'));
  let child;
  try {
    const launched = await launch(args.chromium, profile);
    child = launched.child;
    await timePage(launched.endpoint, origin, args);
  } finally {
    await stop(child);
    server.close();
    await rm(profile, { recursive: true, force: true, maxRetries: 5, retryDelay: 200 });
  }
}

main().catch((error) => {
  console.error(`peers: ${error.stack ?? error}`);
  process.exit(1);
});
