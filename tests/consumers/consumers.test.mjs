// The packed headtune tarball in real consumer apps, as a web developer would use it: installed
// with npm into a fresh app, built with Vite 8 (build and dev server), Vite 7 (dev server, with
// the one-line `optimizeDeps.exclude`), webpack 5 and esbuild (copying lib/ and pkg/ and passing
// `baseUrl`), loaded through a plain import map, and imported from another origin (CORS, two
// 127.0.0.1 ports). Each app trains on six small crops of two fixtures on the CPU backend and
// predicts both in headless Chromium; every request the page and its workers make must stay on
// the origins that app is served from. Also type-checks tests/consumers/types (tsc --strict).
//
// Run with: bash tests/consumers/run.sh

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { ROOT, CHROMIUM_ARGS } from '../chromium.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));

/** What the app does: train on six crops, predict two images; the same source for every consumer. */
const APP_MAIN = `import { Tuner } from 'headtune';

const options = window.HEADTUNE_OPTIONS ?? {};
const fixture = async (name) => {
  const res = await fetch(new URL('fixtures/' + name, document.baseURI));
  if (!res.ok) throw new Error('fixture ' + name + ': HTTP ' + res.status);
  return res.blob();
};
async function crops(name, n) {
  const bitmap = await createImageBitmap(await fixture(name));
  const side = Math.floor(Math.min(bitmap.width, bitmap.height) * 0.75);
  const out = [];
  for (let i = 0; i < n; i++) {
    const t = i / (n - 1);
    const canvas = new OffscreenCanvas(128, 128);
    const ctx = canvas.getContext('2d');
    ctx.drawImage(bitmap, Math.round((bitmap.width - side) * t), Math.round((bitmap.height - side) * (1 - t)), side, side, 0, 0, 128, 128);
    out.push(ctx.getImageData(0, 0, 128, 128));
  }
  return out;
}
window.appResult = (async () => {
  const tuner = await Tuner.create({ backend: 'cpu', ...options });
  const readyMs = performance.now();
  await tuner.addImages('cat', await crops('chelsea.png', 3));
  await tuner.addImages('coffee', await crops('coffee.png', 3));
  await tuner.train({ epochs: 20, seed: 1, learningRate: 0.01 });
  const cat = (await tuner.predict(await fixture('chelsea.png')))[0].label;
  const firstPredictionMs = performance.now();
  const cup = (await tuner.predict(await fixture('coffee.png')))[0].label;
  tuner.dispose();
  return { cat, cup, readyMs, firstPredictionMs };
})().catch((e) => ({ error: String(e.code) + ': ' + e.message }));
`;

/** A page loading `script` (a module unless `classic`), with `options` for Tuner.create. */
function html({ script, options = {}, head = '', classic = false }) {
  return `<!doctype html><meta charset="utf-8"><title>consumer</title><link rel="icon" href="data:,">
<script>window.HEADTUNE_OPTIONS = ${JSON.stringify(options)};</script>
${head}<script ${classic ? 'defer' : 'type="module"'} src="${script}"></script>
`;
}

const MIME = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript',
  '.mjs': 'text/javascript',
  '.wasm': 'application/wasm',
  '.json': 'application/json',
  '.png': 'image/png',
  '.safetensors': 'application/octet-stream',
};

/** A static server over `root` on a free 127.0.0.1 port; `cors` adds Access-Control-Allow-Origin: *. */
function serve(root, { cors = false } = {}) {
  const server = http.createServer((req, res) => {
    const pathname = decodeURIComponent(new URL(req.url, 'http://x').pathname);
    const file = path.join(root, pathname.endsWith('/') ? `${pathname}index.html` : pathname);
    const headers = { 'Cache-Control': 'no-cache', ...(cors ? { 'Access-Control-Allow-Origin': '*' } : {}) };
    if (!file.startsWith(root) || !fs.existsSync(file) || !fs.statSync(file).isFile()) {
      res.writeHead(404, headers).end('not found');
      return;
    }
    res.writeHead(200, { ...headers, 'Content-Type': MIME[path.extname(file)] ?? 'application/octet-stream', 'Content-Length': fs.statSync(file).size });
    if (req.method === 'HEAD') res.end();
    else fs.createReadStream(file).pipe(res);
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => resolve({ url: `http://127.0.0.1:${server.address().port}`, close: () => server.close() }));
  });
}

/** Serve `dir` (a build's output) and run the app at `page` there. */
async function runServed(name, dir, page = '') {
  const site = await serve(dir);
  try {
    return await runApp(name, `${site.url}/${page}`, [site.url]);
  } finally {
    site.close();
  }
}

let tmp;
let app;
let tarball;
let browser;
const results = [];

/**
 * Open `url` in a fresh context, run the app, and check every request stayed on `origins`.
 * With `expectError`, the app must fail with an error matching it instead.
 */
async function runApp(name, url, origins, { expectError } = {}) {
  const context = await browser.newContext();
  const requests = [];
  context.on('request', (r) => requests.push(r.url()));
  const page = await context.newPage();
  page.on('pageerror', (e) => console.error(`[${name} page error] ${e.message}`));
  page.on('console', (m) => m.type() === 'error' && console.error(`[${name} console] ${m.text()}`));
  try {
    const failed = new Promise((_, reject) => page.on('pageerror', (e) => reject(new Error(`${name}: ${e.message}`))));
    failed.catch(() => {}); // a page error after the race is not this call's to report
    await page.goto(url);
    await Promise.race([page.waitForFunction(() => window.appResult !== undefined, null, { timeout: 30_000 }), failed]);
    const out = await page.evaluate(() => window.appResult);
    if (expectError) {
      assert.match(out.error ?? 'no error', expectError, name);
      return requests;
    }
    results.push({ name, ...out });
    assert.equal(out.error, undefined, `${name}: ${out.error}`);
    assert.deepEqual([out.cat, out.cup], ['cat', 'coffee'], name);
    const allowed = (u) => origins.some((o) => u.startsWith(`${o}/`)) || u.startsWith(`blob:${origins[0]}/`) || u.startsWith('data:');
    const strays = requests.filter((u) => !allowed(u));
    assert.deepEqual(strays, [], `${name}: requests outside ${origins.join(', ')}`);
    const wasm = requests.filter((u) => /\.wasm(\?|$)/.test(u));
    assert.equal(wasm.length, 1, `${name}: the wasm is fetched once (${wasm.join(', ')})`);
    console.log(`  ${name}: ready ${out.readyMs.toFixed(0)} ms, first prediction ${out.firstPredictionMs.toFixed(0)} ms after navigation; ${requests.length} requests on ${origins.join(' + ')}`);
    return requests;
  } finally {
    await context.close();
  }
}

describe('the packed package in consumer apps', () => {
  before(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'headtune-consumers-'));
    const out = execFileSync('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', tmp], { cwd: path.join(ROOT, 'www'), encoding: 'utf8' });
    tarball = path.join(tmp, JSON.parse(out)[0].filename);
    app = path.join(tmp, 'app');
    fs.mkdirSync(path.join(app, 'src'), { recursive: true });
    fs.writeFileSync(path.join(app, 'package.json'), JSON.stringify({ name: 'consumer-app', private: true, type: 'module' }));
    execFileSync('npm', ['install', '--offline', '--no-audit', '--no-fund', '--ignore-scripts', tarball], { cwd: app, stdio: 'pipe' });
    fs.writeFileSync(path.join(app, 'src/main.js'), APP_MAIN);
    for (const dir of ['fixtures', 'public/fixtures']) {
      fs.mkdirSync(path.join(app, dir), { recursive: true });
      for (const f of ['chelsea.png', 'coffee.png']) fs.copyFileSync(path.join(ROOT, 'tests/fixtures', f), path.join(app, dir, f));
    }
    browser = await chromium.launch({ executablePath: process.env.CHROMIUM || '/usr/bin/chromium', headless: true, args: CHROMIUM_ARGS });
  });

  after(async () => {
    await browser?.close();
    if (results.length) {
      console.log('\n  consumer                 works  ready (ms)  first prediction (ms)');
      for (const r of results) {
        console.log(`  ${r.name.padEnd(24)} ${r.error ? 'no   ' : 'yes  '}  ${String(r.readyMs?.toFixed(0) ?? '-').padStart(10)}  ${String(r.firstPredictionMs?.toFixed(0) ?? '-').padStart(21)}`);
      }
    }
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  it('types: tsc --strict accepts every option and refuses the misuses', () => {
    execFileSync(path.join(HERE, 'node_modules/.bin/tsc'), ['-p', path.join(HERE, 'types')], { stdio: 'pipe' });
  });

  it('Vite 8 build, zero config', { timeout: 120_000 }, async () => {
    const vite = await import('vite');
    const outDir = path.join(tmp, 'vite-build');
    fs.writeFileSync(path.join(app, 'index.html'), html({ script: '/src/main.js' }));
    await vite.build({ root: app, configFile: false, logLevel: 'error', build: { outDir, emptyOutDir: true } });
    await runServed('Vite 8 build', outDir);
  });

  /** A Vite dev server over the app; resolves to { url, close }. */
  async function viteDev(module, config) {
    const vite = await import(module);
    const server = await vite.createServer({
      root: app,
      configFile: false,
      logLevel: 'error',
      cacheDir: path.join(tmp, `${module}-cache-${Object.keys(config).length}`),
      server: { host: '127.0.0.1', port: 0 },
      ...config,
    });
    await server.listen();
    return { url: server.resolvedUrls.local[0].replace(/\/$/, ''), close: () => server.close() };
  }

  for (const [name, module, config] of [
    ['Vite 8 dev, zero config', 'vite', {}],
    // Vite 7's dependency optimizer copies the package into node_modules/.vite/deps, away from
    // its worker and wasm; excluding it serves the package as published.
    ['Vite 7 dev, optimizeDeps.exclude', 'vite7', { optimizeDeps: { exclude: ['headtune'] } }],
  ]) {
    it(name, { timeout: 120_000 }, async () => {
      fs.writeFileSync(path.join(app, 'index.html'), html({ script: '/src/main.js' }));
      if (module === 'vite7') {
        // Without the line, the error names the missing worker and what to do.
        const bare = await viteDev(module, {});
        try {
          await runApp('Vite 7 dev without the line', `${bare.url}/`, [bare.url], { expectError: /^WorkerLoad: .*could not load the worker script .*\/deps\/worker\.js: HTTP 404\. Pass workerUrl or baseUrl/ });
        } finally {
          await bare.close();
        }
      }
      const server = await viteDev(module, config);
      try {
        await runApp(name.split(',')[0], `${server.url}/`, [server.url]);
      } finally {
        await server.close();
      }
    });
  }

  it('webpack 5, zero config', { timeout: 180_000 }, async () => {
    const { default: webpack } = await import('webpack');
    const outDir = path.join(tmp, 'webpack');
    const stats = await new Promise((resolve, reject) =>
      webpack(
        { mode: 'production', context: app, entry: './src/main.js', output: { path: outDir, filename: 'main.js', clean: true }, performance: { hints: false }, devtool: false },
        (err, s) => (err ? reject(err) : resolve(s)),
      ),
    );
    assert.ok(!stats.hasErrors(), stats.toString('errors-only'));
    fs.writeFileSync(path.join(outDir, 'index.html'), html({ script: './main.js', classic: true }));
    fs.cpSync(path.join(app, 'fixtures'), path.join(outDir, 'fixtures'), { recursive: true });
    await runServed('webpack 5', outDir);
  });

  it('esbuild, with the package copied next to the bundle and baseUrl', { timeout: 120_000 }, async () => {
    const esbuild = await import('esbuild');
    const outDir = path.join(tmp, 'esbuild');
    await esbuild.build({ entryPoints: [path.join(app, 'src/main.js')], bundle: true, format: 'esm', outdir: outDir, logLevel: 'error', absWorkingDir: app });
    // The documented step: esbuild does not bundle workers, so the package's lib/ and pkg/ are
    // served as published under one folder, and `baseUrl` says where.
    for (const dir of ['lib', 'pkg']) fs.cpSync(path.join(app, 'node_modules/headtune', dir), path.join(outDir, 'headtune', dir), { recursive: true });
    fs.writeFileSync(path.join(outDir, 'index.html'), html({ script: './main.js', options: { baseUrl: 'headtune/' } }));
    fs.cpSync(path.join(app, 'fixtures'), path.join(outDir, 'fixtures'), { recursive: true });
    await runServed('esbuild + baseUrl', outDir);
  });

  it('a plain import map, no build step', { timeout: 120_000 }, async () => {
    const map = '<script type="importmap">{ "imports": { "headtune": "./node_modules/headtune/lib/index.js" } }</script>\n';
    fs.writeFileSync(path.join(app, 'importmap.html'), html({ script: './src/main.js', head: map }));
    await runServed('import map', app, 'importmap.html');
  });

  it('from another origin (CDN-style, CORS): worker, wasm and weights come from there; without CORS the error says so', { timeout: 120_000 }, async () => {
    const cdn = await serve(app, { cors: true });
    const pageDir = path.join(tmp, 'cross-origin');
    fs.mkdirSync(pageDir, { recursive: true });
    fs.cpSync(path.join(app, 'fixtures'), path.join(pageDir, 'fixtures'), { recursive: true });
    fs.copyFileSync(path.join(app, 'src/main.js'), path.join(pageDir, 'main.js'));
    const map = `<script type="importmap">{ "imports": { "headtune": "${cdn.url}/node_modules/headtune/lib/index.js" } }</script>\n`;
    fs.writeFileSync(path.join(pageDir, 'index.html'), html({ script: './main.js', head: map }));
    // The same page with its worker on a third origin that does not allow CORS.
    const closed = await serve(app);
    const workerUrl = `${closed.url}/node_modules/headtune/lib/worker.js`;
    fs.writeFileSync(path.join(pageDir, 'nocors.html'), html({ script: './main.js', head: map, options: { workerUrl } }));
    const site = await serve(pageDir);
    try {
      const requests = await runApp('cross-origin (CDN)', `${site.url}/`, [site.url, cdn.url]);
      for (const file of ['lib/worker.js', 'pkg/headtune.js', 'pkg/headtune_relaxed_bg.wasm', 'pkg/efficientnet_lite0.safetensors']) {
        assert.ok(requests.includes(`${cdn.url}/node_modules/headtune/${file}`), `${file} from the other origin`);
      }
      const escaped = workerUrl.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
      await runApp('cross-origin without CORS', `${site.url}/nocors.html`, [site.url, cdn.url, closed.url], {
        expectError: new RegExp(`^WorkerLoad: headtune worker failed: could not load the worker script ${escaped}: .*another origin without CORS`),
      });
    } finally {
      site.close();
      cdn.close();
      closed.close();
    }
  });
});
