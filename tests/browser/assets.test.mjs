// Where the package finds its files and what it says when it cannot: baseUrl / workerUrl /
// wasmUrl / modelUrl, errors that name the failing URL with a `code`, Classifier.load from a
// URL, preload (one compiled module for every later instance) and `signal` on the loading and
// predicting calls. Each test opens a fresh harness page, so no compiled module is left over.
//
// Run with: bash tests/browser/run.sh

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { startServer, launch, openHarness, ROOT } from './helpers.mjs';

let server;
let browser;
/** A folder served at /tests/output/assets-<pid>/ holding lib/worker.js but no pkg/. */
let brokenDir;
let brokenUrl;

describe('locating the package files', () => {
  before(async () => {
    server = await startServer();
    browser = await launch();
    const name = `assets-${process.pid}`;
    brokenDir = path.join(ROOT, 'tests/output', name);
    fs.mkdirSync(path.join(brokenDir, 'lib'), { recursive: true });
    fs.copyFileSync(path.join(ROOT, 'www/lib/worker.js'), path.join(brokenDir, 'lib/worker.js'));
    brokenUrl = `/tests/output/${name}/`;
  });

  after(async () => {
    await browser?.close();
    server?.close();
    if (brokenDir) fs.rmSync(brokenDir, { recursive: true, force: true });
  });

  it('a missing worker, a missing ../pkg, wasm or weights: errors with a code that name the URL', { timeout: 120_000 }, async () => {
    const page = await openHarness(browser, server.url);
    const out = await page.evaluate(async (broken) => {
      const { Tuner } = window.headtune;
      const outcome = (p) => p.then(() => ({ ok: true }), (e) => ({ name: e.name, code: e.code, message: e.message }));
      return {
        worker: await outcome(Tuner.create({ backend: 'cpu', baseUrl: '/nowhere/' })),
        glue: await outcome(Tuner.create({ backend: 'cpu', baseUrl: broken })),
        wasm: await outcome(Tuner.create({ backend: 'cpu', wasmUrl: '/nowhere/engine.wasm' })),
        notWasm: await outcome(Tuner.create({ backend: 'cpu', wasmUrl: '/www/lib/index.js' })),
        weights: await outcome(Tuner.create({ backend: 'cpu', modelUrl: '/nowhere/weights.safetensors' })),
        url: await outcome(Tuner.create({ backend: 'cpu', wasmUrl: 42 })),
      };
    }, brokenUrl);
    const base = server.url;
    assert.equal(out.worker.code, 'WorkerLoad');
    assert.ok(out.worker.message.includes(`could not load the worker script ${base}/nowhere/lib/worker.js: HTTP 404`), out.worker.message);
    assert.equal(out.glue.code, 'WorkerLoad');
    assert.ok(out.glue.message.includes(`the worker script ${base}${brokenUrl}lib/worker.js loaded, but its import ${base}${brokenUrl}pkg/headtune.js failed: HTTP 404`), out.glue.message);
    assert.equal(out.wasm.code, 'Network');
    assert.ok(out.wasm.message.includes(`${base}/nowhere/engine.wasm: HTTP 404`), out.wasm.message);
    assert.equal(out.notWasm.code, 'WasmCompile');
    assert.equal(out.weights.code, 'Network');
    assert.ok(out.weights.message.includes(`backbone weights from ${base}/nowhere/weights.safetensors: HTTP 404`), out.weights.message);
    assert.equal(out.url.name, 'TypeError');
    assert.equal(out.url.code, 'InvalidArgument');
    await page.close();
  });

  it('baseUrl / workerUrl / wasmUrl / modelUrl are where the files come from', { timeout: 120_000 }, async () => {
    const page = await openHarness(browser, server.url);
    const out = await page.evaluate(async () => {
      const { Tuner } = window.headtune;
      // A second URL for the same files: the query string makes them other resources.
      const tuner = await Tuner.create({
        backend: 'cpu',
        workerUrl: '/www/lib/worker.js?via=workerUrl',
        wasmUrl: new URL('/www/pkg/headtune_bg.wasm?via=wasmUrl', location.href),
        modelUrl: '/www/pkg/efficientnet_lite0.safetensors?via=modelUrl',
      });
      tuner.dispose();
      const viaBase = await Tuner.create({ backend: 'cpu', baseUrl: '/www' });
      viaBase.dispose();
      return true;
    });
    assert.ok(out);
    const got = (suffix) => page.requests.filter((r) => r === `GET ${server.url}${suffix}`).length;
    assert.equal(got('/www/lib/worker.js?via=workerUrl'), 1);
    assert.equal(got('/www/pkg/headtune_bg.wasm?via=wasmUrl'), 1);
    assert.equal(got('/www/pkg/efficientnet_lite0.safetensors?via=modelUrl'), 1);
    assert.equal(got('/www/lib/worker.js'), 1, 'baseUrl: its lib/worker.js');
    // Chromium has relaxed SIMD: the package's faster build (lib/simd.js), and only that one.
    assert.equal(got('/www/pkg/headtune_relaxed_bg.wasm'), 1, 'baseUrl: its pkg/headtune_relaxed_bg.wasm');
    assert.equal(got('/www/pkg/headtune_bg.wasm'), 0, 'baseUrl: not the plain build as well');
    await page.close();
  });

  it('preload compiles once for later instances; Classifier.load takes a URL; signal aborts create and predict', { timeout: 180_000 }, async () => {
    const page = await openHarness(browser, server.url);
    const out = await page.evaluate(async () => {
      const { Tuner, Classifier, preload } = window.headtune;
      const { fx } = window;
      const outcome = (p) => p.then(() => ({ ok: true }), (e) => ({ name: e.name, code: e.code, message: e.message }));
      const preloadEvents = [];
      await preload({ onProgress: (e) => preloadEvents.push(e.status) });
      const createEvents = [];
      const tuner = await Tuner.create({ backend: 'cpu', onProgress: (e) => createEvents.push(e.file ?? e.status) });
      await tuner.addImages('cat', await fx.crops('chelsea.png', 3));
      await tuner.addImages('coffee', await fx.crops('coffee.png', 3));
      await tuner.train({ epochs: 20, seed: 1, learningRate: 0.01 });
      const model = await tuner.exportModel();
      // The model behind a URL (a blob: one: fetched like any other).
      const url = URL.createObjectURL(new Blob([model]));
      const t0 = performance.now();
      const clf = await Classifier.load(url, { backend: 'cpu' });
      const loadMs = performance.now() - t0;
      const label = (await clf.predict(await fx.fixture('coffee.png')))[0].label;
      const missing = await outcome(Classifier.load('/nowhere/model.htm'));

      // signal: a create aborted during its download, a predict aborted before and during.
      const ac = new AbortController();
      const aborted = await outcome(Tuner.create({ backend: 'cpu', signal: ac.signal, onProgress: (e) => e.status === 'progress' && ac.abort() }));
      const before = await outcome(clf.predict(await fx.fixture('coffee.png'), { signal: AbortSignal.abort() }));
      const during = new AbortController();
      const pending = outcome(clf.predict(await fx.fixture('coffee.png'), { signal: during.signal }));
      during.abort();
      const duringOut = await pending;
      // The classifier goes on working after an aborted call.
      const after = (await clf.predict(await fx.fixture('chelsea.png')))[0].label;
      tuner.dispose();
      clf.dispose();
      return { preloadEvents, createEvents, loadMs, label, missing, aborted, before, during: duringOut, after };
    });
    assert.deepEqual([...new Set(out.preloadEvents)], ['initiate', 'progress_total', 'progress', 'done', 'compile', 'compiled']);
    assert.ok(!out.createEvents.includes('headtune_relaxed_bg.wasm'), 'create after preload does not fetch the wasm');
    assert.equal(page.requests.filter((r) => r.endsWith('/www/pkg/headtune_relaxed_bg.wasm')).length, 1, 'the wasm is downloaded once');
    assert.equal(out.label, 'coffee');
    console.log(`  Classifier.load(url) with the shared module: ${out.loadMs.toFixed(0)} ms`);
    assert.equal(out.missing.code, 'Network');
    assert.match(out.missing.message, /nowhere\/model\.htm: HTTP 404/);
    assert.equal(out.aborted.name, 'AbortError');
    assert.equal(out.before.name, 'AbortError');
    assert.equal(out.during.name, 'AbortError');
    assert.equal(out.after, 'cat');
    await page.close();
  });
});
