// A static file server on 127.0.0.1 for the peer page. It sends the cross-origin isolation
// headers, without which Chromium gives the page no SharedArrayBuffer and tfjs-wasm falls back
// to its single-threaded build.

import { createServer } from 'node:http';
import { readFile } from 'node:fs/promises';
import { extname, join, normalize, sep } from 'node:path';

const TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.json': 'application/json',
  '.wasm': 'application/wasm',
  '.bin': 'application/octet-stream',
  '.jpg': 'image/jpeg',
};

const ISOLATION = {
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Embedder-Policy': 'require-corp',
  'Cross-Origin-Resource-Policy': 'same-origin',
  'Cache-Control': 'no-store',
};

// The file a URL path names: `routes` maps a path prefix ending in '/' to a folder, or an exact
// path to a file. Paths that climb out of their folder name nothing.
export function resolve(routes, urlPath) {
  if (typeof routes[urlPath] === 'string' && !urlPath.endsWith('/')) return routes[urlPath];
  const prefix = Object.keys(routes)
    .filter((p) => p.endsWith('/') && urlPath.startsWith(p))
    .sort((a, b) => b.length - a.length)[0];
  if (prefix === undefined) return null;
  const rest = decodeURIComponent(urlPath.slice(prefix.length)) || 'index.html';
  const folder = normalize(routes[prefix]);
  const file = normalize(join(folder, rest));
  return file.startsWith(folder.endsWith(sep) ? folder : folder + sep) ? file : null;
}

async function answer(routes, request, response) {
  const urlPath = new URL(request.url, 'http://127.0.0.1').pathname;
  const file = resolve(routes, urlPath);
  try {
    if (file === null) throw new Error('no route');
    const body = await readFile(file);
    const type = TYPES[extname(file)] ?? 'application/octet-stream';
    response.writeHead(200, { ...ISOLATION, 'Content-Type': type });
    response.end(body);
  } catch {
    response.writeHead(404, { ...ISOLATION, 'Content-Type': 'text/plain' });
    response.end(`not found: ${urlPath}\n`);
  }
}

// Starts serving `routes` on a free port of 127.0.0.1; resolves to { server, origin }.
export function serve(routes) {
  const server = createServer((request, response) => {
    answer(routes, request, response);
  });
  return new Promise((done, fail) => {
    server.once('error', fail);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      done({ server, origin: `http://127.0.0.1:${port}` });
    });
  });
}
