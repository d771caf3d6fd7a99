// The headtune package in headless Debian Chromium, through a real page that imports it.
// WebGPU here is SwiftShader (correct, ~100× slower than the CPU backend), so the WebGPU tests
// push at most 4 images through the backbone.
//
// Run with: bash tests/browser/run.sh

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startServer, launch, openHarness, cli, jsonLines, maxAbsDiff, ROOT, CLI } from './helpers.mjs';

const TOL_EMBED = 1e-3;
const TOL_PROB = 1e-4;

let server;
let browser;
let page;
let tmp;
let cliEmbedding;
let keepCpuEmbedding;

/** Whether the native CLI is there to compare with; skips the rest of the test (visibly) if not. */
function needCli(t) {
  if (cliEmbedding) return true;
  t.skip(`native CLI ${CLI} not built (tests/browser/run.sh builds it)`);
  return false;
}

/** Evaluate `fn(arg)` in the page. */
const run = (fn, arg) => page.evaluate(fn, arg);

describe('headtune in the browser', () => {
  before(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'headtune-browser-'));
    server = await startServer();
    browser = await launch();
    page = await openHarness(browser, server.url);
    // run.sh builds the CLI when it is missing; running this file by hand without it skips
    // only the comparisons with the native side.
    if (fs.existsSync(CLI)) {
      const [line] = jsonLines(cli(['embed', '--json', 'tests/fixtures/chelsea.png']));
      cliEmbedding = line.embedding;
      assert.equal(cliEmbedding.length, 1280);
    }
  });

  after(async () => {
    await browser?.close();
    server?.close();
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  it('rejects invalid arguments at once, listing the valid values', async () => {
    const out = await run(async () => {
      const { Tuner, Classifier } = window.headtune;
      const msg = async (f) => {
        try {
          await f();
          return 'no error';
        } catch (e) {
          return `${e.constructor.name}: ${e.message}`;
        }
      };
      return {
        backend: await msg(() => Tuner.create({ backend: 'gpu' })),
        option: await msg(() => Tuner.create({ bakend: 'cpu' })),
        model: await msg(() => Classifier.load(42)),
      };
    });
    assert.match(out.backend, /TypeError: .*backend is "gpu"; use 'auto', 'webgpu', 'cpu'/);
    assert.match(out.option, /unknown option "bakend"; valid options are backend, modelUrl, onProgress/);
    assert.match(out.model, /TypeError: .*the model file's URL, or its bytes as a Uint8Array or ArrayBuffer/);
  });

  it('CPU backend: chelsea.png embedding within 1e-3 of the native CLI', { timeout: 120_000 }, async (t) => {
    const out = await run(async () => {
      const events = [];
      const t0 = performance.now();
      const tuner = await window.headtune.Tuner.create({ backend: 'cpu', onProgress: (e) => events.push(e) });
      const ready = performance.now() - t0;
      window.keep.cpu = tuner;
      const emb = await tuner.embed(await window.fx.fixture('chelsea.png'));
      // A second instance gets the compiled module: no wasm download or compile.
      const again = [];
      const t1 = performance.now();
      const second = await window.headtune.Tuner.create({ backend: 'cpu', onProgress: (e) => again.push(e) });
      const secondReady = performance.now() - t1;
      second.dispose();
      return { backend: tuner.backend, reason: tuner.backendReason, events, again, ready, secondReady, emb: Array.from(emb) };
    });
    assert.equal(out.backend, 'cpu');
    assert.ok(out.reason.length > 0);
    // Every download reports initiate, progress…, done (loaded = total = its size), the wasm
    // its compile, the whole its overall progress; `ready` comes last.
    const sizes = {
      'headtune_relaxed_bg.wasm': fs.statSync(path.join(ROOT, 'www/pkg/headtune_relaxed_bg.wasm')).size,
      'efficientnet_lite0.safetensors': fs.statSync(path.join(ROOT, 'www/pkg/efficientnet_lite0.safetensors')).size,
    };
    for (const [file, size] of Object.entries(sizes)) {
      const mine = out.events.filter((e) => e.file === file).map((e) => e.status);
      assert.equal(mine[0], 'initiate', file);
      assert.ok(mine.includes('progress'), file);
      const done = out.events.find((e) => e.file === file && e.status === 'done');
      assert.deepEqual([done.loaded, done.total], [size, size], file);
    }
    const wasmSteps = out.events.filter((e) => e.file === 'headtune_relaxed_bg.wasm').map((e) => e.status);
    assert.deepEqual([...new Set(wasmSteps)], ['initiate', 'progress', 'done', 'compile', 'compiled']);
    const totals = out.events.filter((e) => e.status === 'progress_total');
    const last = totals.at(-1);
    assert.deepEqual([last.loaded, last.total], [sizes['headtune_relaxed_bg.wasm'] + sizes['efficientnet_lite0.safetensors'], sizes['headtune_relaxed_bg.wasm'] + sizes['efficientnet_lite0.safetensors']]);
    assert.ok(totals.every((e, i) => i === 0 || e.loaded >= totals[i - 1].loaded), 'overall progress never goes back');
    assert.equal(out.events.at(-1).status, 'ready');
    assert.ok(!out.again.some((e) => e.file === 'headtune_relaxed_bg.wasm'), 'the second instance reuses the compiled wasm');
    assert.equal(page.requests.filter((r) => r.endsWith('/www/pkg/headtune_relaxed_bg.wasm')).length, 1, 'the wasm is downloaded once');
    console.log(`  first Tuner ready in ${out.ready.toFixed(0)} ms, second (shared module) in ${out.secondReady.toFixed(0)} ms`);
    keepCpuEmbedding = out.emb;
    if (!needCli(t)) return;
    const d = maxAbsDiff(out.emb, cliEmbedding);
    console.log(`  cpu vs native: max |Δ| = ${d.toExponential(2)} (cold start ${out.ready.toFixed(0)} ms)`);
    assert.ok(d < TOL_EMBED, `max |Δ| ${d}`);
  });

  it('the plain SIMD128 build (browsers without relaxed SIMD) embeds as the relaxed one does', { timeout: 120_000 }, async () => {
    assert.ok(keepCpuEmbedding, 'the CPU embedding test ran first');
    const out = await run(async () => {
      const tuner = await window.headtune.Tuner.create({ backend: 'cpu', wasmUrl: '/www/pkg/headtune_bg.wasm' });
      const emb = await tuner.embed(await window.fx.fixture('chelsea.png'));
      tuner.dispose();
      return Array.from(emb);
    });
    assert.ok(page.requests.some((r) => r.endsWith('/www/pkg/headtune_bg.wasm')), 'the plain build was loaded');
    const d = maxAbsDiff(out, keepCpuEmbedding);
    console.log(`  plain vs relaxed SIMD: max |Δ| = ${d.toExponential(2)}`);
    assert.ok(d < 1e-5, `max |Δ| ${d}`);
  });

  it('refuses bad training settings with the valid names and ranges', { timeout: 60_000 }, async () => {
    const out = await run(async () => {
      const tuner = window.keep.cpu;
      const msg = async (opts) => {
        try {
          await tuner.train(opts);
          return 'no error';
        } catch (e) {
          return `${e.code}: ${e.message}`;
        }
      };
      return {
        unknown: await msg({ epochz: 3 }),
        range: await msg({ learningRate: 5 }),
        head: await msg({ head: 'cnn' }),
        empty: await msg({ epochs: 3 }),
      };
    });
    assert.match(out.unknown, /InvalidArgument: .*unknown field `epochz`, expected one of `epochs`, `learningRate`/);
    assert.match(out.range, /learningRate is 5; use a value in \(0, 1\]/);
    assert.match(out.head, /unknown variant `cnn`, expected `linear` or `mlp`/);
    assert.match(out.empty, /^Data: training needs at least two classes/);
  });

  it('WebGPU backend: chelsea.png embedding within 1e-3 of CPU and of the native CLI', { timeout: 300_000 }, async (t) => {
    const out = await run(async () => {
      const tuner = await window.headtune.Tuner.create({ backend: 'webgpu' });
      window.keep.gpu = tuner;
      const emb = await tuner.embed(await window.fx.fixture('chelsea.png'));
      return { backend: tuner.backend, reason: tuner.backendReason, emb: Array.from(emb) };
    });
    assert.equal(out.backend, 'webgpu');
    const dCpu = maxAbsDiff(out.emb, keepCpuEmbedding);
    console.log(`  webgpu (${out.reason}) vs cpu: max |Δ| = ${dCpu.toExponential(2)}`);
    assert.ok(dCpu < TOL_EMBED, `webgpu vs cpu max |Δ| ${dCpu}`);
    if (!needCli(t)) return;
    const dNative = maxAbsDiff(out.emb, cliEmbedding);
    console.log(`  webgpu vs native: max |Δ| = ${dNative.toExponential(2)}`);
    assert.ok(dNative < TOL_EMBED, `webgpu vs native max |Δ| ${dNative}`);
  });

  it("backend 'auto' picks a backend and says why", { timeout: 120_000 }, async () => {
    const out = await run(async () => {
      const tuner = await window.headtune.Tuner.create({ backend: 'auto' });
      const r = { backend: tuner.backend, reason: tuner.backendReason };
      tuner.dispose();
      return r;
    });
    console.log(`  auto → ${out.backend}: ${out.reason}`);
    assert.ok(['webgpu', 'cpu'].includes(out.backend));
    assert.ok(out.reason.length > 10);
  });

  it('CPU: trains on two classes and predicts both right; abort stops training', { timeout: 240_000 }, async () => {
    const out = await run(async () => {
      const { fx } = window;
      const tuner = window.keep.cpu;
      const progress = [];
      const cats = await tuner.addImages('cat', await fx.crops('chelsea.png', 4), { onProgress: (e) => progress.push(e.status) });
      // With input previews: what the model saw of each cup, predicted again `framed`.
      const cups = await tuner.addImages('coffee', await fx.crops('coffee.png', 4), { thumbnails: { thumb: 56, preview: 'input' } });
      const epochs = [];
      const report = await tuner.train({ epochs: 40, seed: 7, learningRate: 0.01, onEpoch: (s) => epochs.push(s.epoch) });
      const cat = await tuner.predict(await fx.fixture('chelsea.png'), { topK: 2, heatmap: true });
      const cup = await tuner.predict(await fx.fixture('coffee.png'));
      const preview = new Blob([cups.thumbnails[0].preview], { type: 'image/jpeg' });
      const seen = await createImageBitmap(preview);
      const thumb = await createImageBitmap(new Blob([cups.thumbnails[0].thumb], { type: 'image/jpeg' }));
      const framed = await tuner.predict(preview, { heatmap: true, framed: true });
      const reframed = await tuner.predict(preview, { heatmap: true });
      const pictures = { preview: [seen.width, seen.height], thumb: [thumb.width, thumb.height], framed: { label: framed[0].label, crop: framed.heatmap.crop }, reframed: reframed.heatmap.crop };

      // Abort: a long training is stopped from its first epoch callback.
      const ac = new AbortController();
      let aborted;
      try {
        await tuner.train({ epochs: 10000, patience: 0, signal: ac.signal, onEpoch: () => ac.abort() });
        aborted = 'finished';
      } catch (e) {
        aborted = e.name;
      }
      return {
        cats,
        cups,
        progress: [...new Set(progress)],
        classes: tuner.classes,
        epochs: epochs.length,
        report: { history: report.history.length, validation: report.validation, metrics: report.metrics, warnings: report.warnings },
        cat: cat.map((p) => ({ ...p })),
        heat: cat.heatmap && { w: cat.heatmap.width, h: cat.heatmap.height, n: cat.heatmap.data.length, max: Math.max(...cat.heatmap.data) },
        cup: cup.map((p) => ({ ...p })),
        pictures,
        aborted,
      };
    });
    assert.equal(out.cats.added, 4);
    assert.equal(out.cups.added, 4);
    assert.deepEqual(out.progress, ['initiate', 'progress', 'done']);
    assert.deepEqual(out.classes, [{ name: 'cat', count: 4 }, { name: 'coffee', count: 4 }]);
    assert.ok(out.epochs > 0 && out.report.history > 0);
    assert.ok(out.report.metrics, 'held-out metrics');
    assert.equal(out.cat[0].label, 'cat');
    assert.equal(out.cup[0].label, 'coffee');
    assert.ok(out.cat[0].probability > 0.5 && out.cup[0].probability > 0.5);
    assert.deepEqual(out.heat && [out.heat.w, out.heat.h, out.heat.n], [56, 56, 56 * 56]);
    // 0..1, normalised on the 7×7 grid; bilinear upsampling need not hit the peak cell's centre.
    assert.ok(out.heat.max > 0.5 && out.heat.max <= 1, `heatmap max ${out.heat.max}`);
    // The input preview is the square the model saw (the centre crop, at its own size when
    // smaller than the 224 px input); framed, it is predicted as it is (the heatmap covers all of
    // it), not centre-cropped a second time.
    const [w, h] = out.pictures.preview;
    assert.ok(w === h && w <= 224 && w >= 100, `a square of at most 224 px: ${w}×${h}`);
    assert.deepEqual(out.pictures.thumb, [56, 56]);
    assert.deepEqual(out.pictures.framed, { label: 'coffee', crop: { x: 0, y: 0, width: w, height: w } });
    assert.ok(out.pictures.reframed.x > 0 && out.pictures.reframed.width < w, `without framed: cropped again ${JSON.stringify(out.pictures.reframed)}`);
    assert.equal(out.aborted, 'AbortError');
    console.log(`  cat ${out.cat[0].probability.toFixed(3)}, coffee ${out.cup[0].probability.toFixed(3)}, validation ${out.report.validation}, held-out accuracy ${out.report.metrics.accuracy}`);
  });

  it('WebGPU: trains on 2 images and predicts both right; a lost device finishes on the CPU', { timeout: 400_000 }, async () => {
    const out = await run(async () => {
      const { fx } = window;
      const tuner = window.keep.gpu;
      const [cat] = await fx.crops('chelsea.png', 1);
      const [cup] = await fx.crops('coffee.png', 1, { as: 'file' });
      const added = [await tuner.addImages('cat', [cat]), await tuner.addImages('coffee', [cup])];
      await tuner.train({ epochs: 40, seed: 3, learningRate: 0.01 });
      // chelsea.png was embedded on this backend already (previous test): 3 more backbone runs.
      const p1 = await tuner.predict(await fx.fixture('chelsea.png'));
      const before = tuner.backend;
      await window.testing.simulateBackendFailure(tuner);
      const p2 = await tuner.predict(await fx.fixture('coffee.png'));
      return { added: added.map((a) => a.added), p1, p2, before, after: tuner.backend, reason: tuner.backendReason, classes: tuner.classes };
    });
    assert.deepEqual(out.added, [1, 1]);
    assert.equal(out.p1[0].label, 'cat');
    assert.equal(out.before, 'webgpu');
    assert.equal(out.p2[0].label, 'coffee', 'prediction redone on the CPU');
    assert.equal(out.after, 'cpu');
    assert.match(out.reason, /WebGPU failed during work \(.*simulated device loss.*\); continued on the CPU backend/);
    assert.deepEqual(out.classes, [{ name: 'cat', count: 1 }, { name: 'coffee', count: 1 }], 'embeddings kept');
  });

  it('a corrupt image among good ones is rejected with a reason; the rest are added', { timeout: 120_000 }, async () => {
    const out = await run(async () => {
      const { fx } = window;
      const tuner = await window.headtune.Tuner.create({ backend: 'cpu' });
      const good = await fx.fixture('coffee.png');
      const bytes = new Uint8Array(await good.arrayBuffer());
      const truncated = new File([bytes.slice(0, 2000)], 'truncated.png', { type: 'image/png' });
      const text = new File(['just some notes'], 'notes.txt', { type: 'text/plain' });
      const empty = new File([], 'empty.jpg');
      const [crop] = await fx.crops('chelsea.png', 1);
      const r = await tuner.addImages('mixed', [good, truncated, text, crop, empty, 42]);
      const classes = tuner.classes;
      tuner.dispose();
      return { r, classes };
    });
    assert.equal(out.r.added, 2);
    assert.equal(out.r.ids.length, 2);
    // Which input each id and each rejection came from, by position.
    assert.deepEqual(out.r.indices, [0, 3]);
    assert.deepEqual(Object.fromEntries(out.r.rejected.map((x) => [x.name, x.index])), { 'truncated.png': 1, 'notes.txt': 2, 'empty.jpg': 4, 'image 6': 5 });
    const reasons = Object.fromEntries(out.r.rejected.map((x) => [x.name, x.reason]));
    assert.deepEqual(Object.keys(reasons).sort(), ['empty.jpg', 'image 6', 'notes.txt', 'truncated.png']);
    assert.match(reasons['truncated.png'], /^the PNG file is truncated/);
    // Plain words in the reason; the engine's code and the decoder's own words alongside.
    const truncated = out.r.rejected.find((x) => x.name === 'truncated.png');
    assert.equal(truncated.code, 'Corrupt');
    assert.ok(truncated.detail && !truncated.reason.includes(truncated.detail), JSON.stringify(truncated));
    assert.match(reasons['notes.txt'], /^unsupported file: this is a text file, not an image/);
    assert.match(reasons['empty.jpg'], /empty/);
    assert.match(reasons['image 6'], /unsupported input/);
    assert.deepEqual(out.classes, [{ name: 'mixed', count: 2 }]);
  });

  it('an engine panic rejects with EngineCrashed, closes the instance, and its saved project trains in a new one', { timeout: 240_000 }, async () => {
    const out = await run(async () => {
      const { fx } = window;
      const { Tuner } = window.headtune;
      const crashes = [];
      const tuner = await Tuner.create({ backend: 'cpu', onCrash: (e) => crashes.push({ message: e.message, code: e.code }) });
      await tuner.addImages('cat', await fx.crops('chelsea.png', 3));
      await tuner.addImages('coffee', await fx.crops('coffee.png', 3));
      const saved = await tuner.saveProject();
      const outcome = async (p) => p.then(() => ({ ok: true }), (e) => ({ name: e.name, message: e.message, code: e.code }));
      const panic = await outcome(window.testing.simulatePanic(tuner));
      const later = await outcome(tuner.predict(await fx.fixture('chelsea.png')));
      const listing = await outcome(tuner.examples());
      tuner.dispose();
      const again = await Tuner.loadProject(saved, { backend: 'cpu' });
      await again.train({ epochs: 30, seed: 5, learningRate: 0.01 });
      const cat = (await again.predict(await fx.fixture('chelsea.png')))[0];
      const cup = (await again.predict(await fx.fixture('coffee.png')))[0];
      const classes = again.classes;
      again.dispose();
      return { crashes, panic, later, listing, classes, cat: cat.label, cup: cup.label };
    });
    assert.equal(out.panic.code, 'EngineCrashed');
    assert.equal(out.panic.name, 'Error');
    assert.match(out.panic.message, /engine crashed .*unreachable.*stopped/i);
    assert.equal(out.crashes.length, 1, 'onCrash called once');
    assert.equal(out.crashes[0].code, 'EngineCrashed');
    assert.equal(out.later.code, 'EngineCrashed', 'a crashed instance refuses later calls with the same error');
    assert.equal(out.listing.code, 'EngineCrashed');
    assert.deepEqual(out.classes, [{ name: 'cat', count: 3 }, { name: 'coffee', count: 3 }]);
    assert.equal(out.cat, 'cat');
    assert.equal(out.cup, 'coffee');
  });

  it('addImages stops on abort, keeping what was added (and told onAdded); a disposed tuner refuses work', { timeout: 120_000 }, async () => {
    const out = await run(async () => {
      const tuner = await window.headtune.Tuner.create({ backend: 'cpu' });
      const ac = new AbortController();
      let error;
      const told = [];
      try {
        await tuner.addImages('cat', await window.fx.crops('chelsea.png', 6), {
          signal: ac.signal,
          onProgress: (e) => e.status === 'progress' && ac.abort(),
          onAdded: (b) => told.push(...b.ids),
        });
      } catch (e) {
        error = e.name;
      }
      const count = tuner.classes[0]?.count;
      const kept = (await tuner.examples()).map((e) => e.id);
      tuner.dispose();
      let disposed;
      try {
        await tuner.predict(await window.fx.fixture('chelsea.png'));
      } catch (e) {
        disposed = e.message;
      }
      return { error, count, disposed, told, kept };
    });
    assert.equal(out.error, 'AbortError');
    assert.ok(out.count >= 1 && out.count < 6, `kept ${out.count} of 6`);
    // An app that stores images as onAdded tells it of them knows exactly what the engine kept.
    assert.deepEqual(out.told, out.kept);
    assert.match(out.disposed, /disposed/);
  });

  it('a corrupt model or project file rejects cleanly', { timeout: 120_000 }, async () => {
    const out = await run(async () => {
      const { Tuner, Classifier } = window.headtune;
      const model = await window.keep.cpu.exportModel();
      const attempt = async (f) => {
        try {
          const x = await f();
          x.dispose?.();
          return 'loaded';
        } catch (e) {
          return { name: e.name, message: e.message, code: e.code };
        }
      };
      const flipped = model.slice();
      flipped[flipped.length - 20] ^= 0xff;
      return {
        garbage: await attempt(() => Classifier.load(new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]), { backend: 'cpu' })),
        flipped: await attempt(() => Classifier.load(flipped, { backend: 'cpu' })),
        truncated: await attempt(() => Classifier.load(model.slice(0, model.length / 2), { backend: 'cpu' })),
        modelAsProject: await attempt(() => Tuner.loadProject(model, { backend: 'cpu' })),
        stillWorks: (await window.keep.cpu.predict(await window.fx.fixture('coffee.png')))[0].label,
      };
    });
    assert.equal(out.garbage.code, 'ModelFile');
    assert.match(out.garbage.message, /not a headtune file/);
    assert.match(out.flipped.message, /checksum mismatch/);
    assert.match(out.truncated.message, /truncated/);
    assert.match(out.modelAsProject.message, /this is a model file, not a project/);
    assert.equal(out.stillWorks, 'coffee');
  });

  it('crafted projects that used to crash or exhaust the engine reject loadProject with a clear Error', { timeout: 180_000 }, async () => {
    const out = await run(async () => {
      const { Tuner } = window.headtune;
      const bytes = await window.keep.cpu.saveProject({ extra: { note: 'crafted' } });
      // Re-encode with edited metadata and a valid checksum, as an attacker would.
      const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      const metaLen = view.getUint32(12, true);
      const meta = JSON.parse(new TextDecoder().decode(bytes.subarray(16, 16 + metaLen)));
      const crc32 = (data) => {
        let c = ~0;
        for (const b of data) {
          c ^= b;
          for (let k = 0; k < 8; k++) c = (c >>> 1) ^ (0xedb88320 & -(c & 1));
        }
        return ~c >>> 0;
      };
      const craft = (edit) => {
        const m = structuredClone(meta);
        edit(m);
        const json = new TextEncoder().encode(JSON.stringify(m));
        const rest = bytes.subarray(16 + metaLen, bytes.length - 4);
        const out = new Uint8Array(16 + json.length + rest.length + 4);
        out.set(bytes.subarray(0, 12));
        new DataView(out.buffer).setUint32(12, json.length, true);
        out.set(json, 16);
        out.set(rest, 16 + json.length);
        new DataView(out.buffer).setUint32(out.length - 4, crc32(out.subarray(0, out.length - 4)), true);
        return out;
      };
      const attempt = async (b) => {
        try {
          const t = await Tuner.loadProject(b, { backend: 'cpu' });
          t.dispose();
          return 'loaded';
        } catch (e) {
          return { isError: e instanceof Error, message: e.message, code: e.code };
        }
      };
      const mlp = (m) => {
        m.model.headKind = 'mlp';
        m.model.hidden = { dIn: 65536, dOut: 65536 };
        m.model.output = { dIn: 65536, dOut: m.model.output.dOut };
      };
      return {
        minArea: await attempt(craft((m) => { m.augment.minArea = 5; })),
        brightness: await attempt(craft((m) => { m.augment.brightness = 1e308; })),
        views: await attempt(craft((m) => { m.augment.views = 1e9; })),
        mlp: await attempt(craft(mlp)),
        escape: await attempt(craft((m) => { m.classes[0] = '\u001b[31mred'; })),
        same: await attempt(craft(() => {})),
        stillWorks: (await window.keep.cpu.predict(await window.fx.fixture('coffee.png')))[0].label,
      };
    });
    for (const key of ['minArea', 'brightness', 'views', 'mlp', 'escape']) {
      assert.equal(out[key].isError, true, `${key}: ${JSON.stringify(out[key])}`);
      assert.equal(out[key].code, 'ModelFile', key);
    }
    assert.match(out.minArea.message, /augment minArea is 5; use 0.1 to 1/);
    assert.match(out.views.message, /augment views is 1000000000/);
    assert.match(out.mlp.message, /implausible layer shape 65536×65536/);
    assert.match(out.escape.message, /control character/);
    assert.equal(out.same, 'loaded', 'the re-encoding itself is sound');
    assert.equal(out.stillWorks, 'coffee');
  });

  it('a project saves and loads back with its classes, model and extra data', { timeout: 120_000 }, async () => {
    const out = await run(async () => {
      const { Tuner } = window.headtune;
      const bytes = await window.keep.cpu.saveProject({ extra: { note: 'hello', n: 3 } });
      const again = await Tuner.loadProject(bytes, { backend: 'cpu' });
      const r = {
        size: bytes.length,
        classes: again.classes,
        extra: again.extra,
        a: (await window.keep.cpu.predict(await window.fx.fixture('chelsea.png')))[0],
        b: (await again.predict(await window.fx.fixture('chelsea.png')))[0],
        examples: (await again.examples()).length,
      };
      again.dispose();
      return r;
    });
    assert.deepEqual(out.classes, [{ name: 'cat', count: 4 }, { name: 'coffee', count: 4 }]);
    assert.deepEqual(out.extra, { note: 'hello', n: 3 });
    assert.equal(out.examples, 8);
    assert.equal(out.a.label, out.b.label);
    assert.ok(Math.abs(out.a.probability - out.b.probability) < 1e-6);
  });

  it('saveParts writes only what changed; loadParts restores the project and refuses a damaged part', { timeout: 120_000 }, async () => {
    const out = await run(async () => {
      const { Tuner } = window.headtune;
      const tuner = window.keep.cpu;
      const stored = new Map();
      const apply = (c) => {
        if (c.clear) stored.clear();
        c.remove.forEach((k) => stored.delete(k));
        c.put.forEach(([k, b]) => stored.set(k, b));
        return c.put.map(([k]) => (k.startsWith('chunk-') ? 'chunk' : k)).sort();
      };
      const first = await tuner.saveParts({ extra: { note: 'parts' }, since: null });
      const r = { clear: first.clear, firstKeys: apply(first), newTuner: tuner.savedGeneration };
      const again = await Tuner.loadParts(Object.fromEntries(stored), { backend: 'cpu' });
      r.classes = again.classes;
      r.extra = again.extra;
      r.same = Math.abs((await tuner.predict(await window.fx.fixture('chelsea.png')))[0].probability - (await again.predict(await window.fx.fixture('chelsea.png')))[0].probability) < 1e-6;
      // The loaded tuner knows what is stored: nothing to write, then a rename writes the head and model.
      r.unchanged = apply(await again.saveParts({ extra: { note: 'parts' }, since: again.savedGeneration }));
      await again.renameClass('cat', 'kitten');
      const rename = await again.saveParts({ since: again.savedGeneration });
      r.renameKeys = apply(rename);
      r.renameBytes = rename.put.reduce((n, [, b]) => n + b.length, 0);
      r.wholeBytes = first.put.reduce((n, [, b]) => n + b.length, 0);
      again.dispose();
      const third = await Tuner.loadParts(Object.fromEntries(stored), { backend: 'cpu' });
      r.renamed = third.classes;
      third.dispose();
      const chunk = new Uint8Array(stored.get('chunk-0'));
      chunk[100] ^= 1;
      r.damaged = await Tuner.loadParts({ ...Object.fromEntries(stored), 'chunk-0': chunk }, { backend: 'cpu' }).then(
        (t) => (t.dispose(), 'loaded'),
        (e) => ({ code: e.code, message: e.message }),
      );
      r.badSince = await tuner.saveParts({ since: -1 }).then(() => 'saved', (e) => e.code);
      return r;
    });
    assert.equal(out.clear, true);
    assert.equal(out.newTuner, null);
    assert.deepEqual(out.firstKeys, ['chunk', 'extra', 'head', 'labels', 'model']);
    assert.deepEqual(out.classes, [{ name: 'cat', count: 4 }, { name: 'coffee', count: 4 }]);
    assert.deepEqual(out.extra, { note: 'parts' });
    assert.ok(out.same, 'the loaded model predicts the same');
    assert.deepEqual(out.unchanged, [], 'an unchanged project writes nothing');
    assert.deepEqual(out.renameKeys, ['head', 'model']);
    assert.ok(out.renameBytes + 8 * 1280 * 4 < out.wholeBytes, `a rename wrote ${out.renameBytes} of ${out.wholeBytes} bytes: no embeddings`);
    assert.deepEqual(out.renamed, [{ name: 'kitten', count: 4 }, { name: 'coffee', count: 4 }]);
    assert.equal(out.damaged.code, 'ModelFile');
    assert.match(out.damaged.message, /saved part "chunk-0": checksum mismatch/);
    assert.equal(out.badSince, 'InvalidArgument');
  });

  it('large projects stay cheap: examples as typed-array columns; extra crosses only in the replies that set it, and a large one round-trips', { timeout: 120_000 }, async () => {
    const out = await run(async () => {
      const { Tuner } = window.headtune;
      // Every message the worker sends, seen through a wrapped Worker (restored below).
      const replies = [];
      const Original = window.Worker;
      window.Worker = class extends Original {
        constructor(...args) {
          super(...args);
          this.addEventListener('message', (e) => e.data?.type === 'result' && replies.push(e.data));
        }
      };
      let tuner;
      try {
        tuner = await Tuner.create({ backend: 'cpu' });
      } finally {
        window.Worker = Original;
      }
      await tuner.addImages('cat', await window.fx.crops('chelsea.png', 2));
      await tuner.addImages('coffee', await window.fx.crops('coffee.png', 1));
      const columns = await tuner.exampleColumns();
      const listed = await tuner.examples();
      await tuner.relabelExample(listed[0].id, 'coffee');
      await tuner.removeExample(listed[1].id);
      const after = await tuner.exampleColumns();
      // A training report's size: 3,000 held-out rows.
      const big = { report: { heldOut: Array.from({ length: 3000 }, (_, i) => ({ id: i, truth: i % 2, predicted: (i * 7) % 2, probabilities: [0.25, 0.75], name: `x-${i}.png` })) }, note: 'ü ✓' };
      const bytes = await tuner.saveProject({ extra: big });
      const savedReply = replies.at(-1);
      await tuner.renameClass('coffee', 'mug');
      const renameReply = replies.at(-1);
      const again = await Tuner.loadProject(bytes, { backend: 'cpu' });
      let refused;
      try {
        await tuner.saveProject({ extra: { n: 1n } });
      } catch (e) {
        refused = { code: e.code, message: e.message };
      }
      const r = {
        columns: { ids: Array.from(columns.ids), classes: Array.from(columns.classes), views: Array.from(columns.views), names: columns.names, classNames: columns.classNames },
        kinds: [columns.ids, columns.classes, columns.views].map((a) => a.constructor.name),
        listed,
        after: { ids: Array.from(after.ids), classes: Array.from(after.classes), classNames: after.classNames },
        savedHasExtra: 'extra' in savedReply.state,
        renameHasExtra: 'extra' in renameReply.state,
        renameClasses: renameReply.state.classes,
        big,
        extraKept: tuner.extra,
        extraLoaded: again.extra,
        refused,
      };
      r.extraAfterRefusal = tuner.extra;
      tuner.dispose();
      again.dispose();
      return r;
    });
    assert.deepEqual(out.kinds, ['Float64Array', 'Uint32Array', 'Uint32Array']);
    assert.deepEqual(out.columns.classNames, ['cat', 'coffee']);
    assert.deepEqual(out.columns.classes, [0, 0, 1]);
    assert.deepEqual(out.columns.views, [1, 1, 1]);
    assert.deepEqual(
      out.listed,
      out.columns.ids.map((id, i) => ({ id, label: out.columns.classNames[out.columns.classes[i]], name: out.columns.names[i], views: 1 })),
    );
    assert.equal(new Set(out.columns.ids).size, 3);
    // Relabelled and removed examples show in the next columns.
    assert.deepEqual(out.after.ids, [out.columns.ids[0], out.columns.ids[2]]);
    assert.deepEqual(out.after.classes.map((c) => out.after.classNames[c]), ['coffee', 'coffee']);
    assert.equal(out.savedHasExtra, true, 'saveProject sets extra: its reply carries it');
    assert.equal(out.renameHasExtra, false, 'a reply that cannot change extra does not carry it');
    assert.ok(out.renameClasses.some((c) => c.name === 'mug' && c.count === 2), 'the rest of the state still arrives');
    assert.equal(out.big.report.heldOut.length, 3000);
    assert.deepEqual(out.extraKept, out.big, 'tuner.extra keeps the last extra after replies without it');
    assert.deepEqual(out.extraLoaded, out.big, 'a 3,000-row extra round-trips through the project file');
    assert.equal(out.refused?.code, 'InvalidArgument');
    assert.match(out.refused.message, /extra must be JSON data/);
    assert.deepEqual(out.extraAfterRefusal, out.big, 'a refused extra leaves the last one in place');
  });

  it('a model trained by the CLI predicts the same probabilities in the browser (≤ 1e-4)', { timeout: 300_000 }, async (t) => {
    if (!needCli(t)) return;
    // Dataset: crops made in the page, written as PNG files into class folders.
    const files = await run(async () => {
      const { fx } = window;
      const out = {};
      for (const [cls, name] of [['cat', 'chelsea.png'], ['coffee', 'coffee.png']]) {
        const crops = await fx.crops(name, 3, { as: 'file' });
        out[cls] = await Promise.all(crops.map(async (f) => ({ name: f.name, bytes: await fx.bytesOf(f) })));
      }
      return out;
    });
    const dataset = path.join(tmp, 'dataset');
    for (const [cls, list] of Object.entries(files)) {
      fs.mkdirSync(path.join(dataset, cls), { recursive: true });
      for (const f of list) fs.writeFileSync(path.join(dataset, cls, f.name), Buffer.from(f.bytes));
    }
    const modelPath = path.join(tmp, 'cli.headtune');
    cli(['train', dataset, '--out', modelPath, '--epochs', '30', '--seed', '1', '--no-cache']);
    const [native] = jsonLines(cli(['predict', modelPath, 'tests/fixtures/chelsea.png', '--json', '--top', '2']));
    const browserTop = await run(async (bytes) => {
      const clf = await window.headtune.Classifier.load(new Uint8Array(bytes), { backend: 'cpu' });
      const p = await clf.predict(await window.fx.fixture('chelsea.png'), { topK: 2 });
      const labels = clf.labels;
      clf.dispose();
      return { top: p.map((x) => ({ ...x })), labels };
    }, Array.from(fs.readFileSync(modelPath)));
    assert.deepEqual(browserTop.labels, ['cat', 'coffee']);
    assert.equal(browserTop.top[0].label, 'cat');
    for (const n of native.top) {
      const b = browserTop.top.find((x) => x.label === n.label);
      const d = Math.abs(b.probability - n.probability);
      console.log(`  ${n.label}: native ${n.probability.toFixed(6)} browser ${b.probability.toFixed(6)} |Δ| ${d.toExponential(2)}`);
      assert.ok(d <= TOL_PROB, `${n.label}: |Δ| ${d}`);
    }
  });

  it('a model exported from the browser evaluates with `headtune eval`', { timeout: 300_000 }, async (t) => {
    if (!needCli(t)) return;
    const bytes = await run(async () => Array.from(await window.keep.cpu.exportModel()));
    const modelPath = path.join(tmp, 'browser.headtune');
    fs.writeFileSync(modelPath, Buffer.from(bytes));
    const dataset = path.join(tmp, 'eval');
    fs.mkdirSync(path.join(dataset, 'cat'), { recursive: true });
    fs.mkdirSync(path.join(dataset, 'coffee'), { recursive: true });
    fs.copyFileSync(path.join(ROOT, 'tests/fixtures/chelsea.png'), path.join(dataset, 'cat/chelsea.png'));
    fs.copyFileSync(path.join(ROOT, 'tests/fixtures/coffee.png'), path.join(dataset, 'coffee/coffee.png'));
    const [report] = jsonLines(cli(['eval', modelPath, dataset, '--json', '--no-cache']));
    console.log(`  headtune eval: n=${report.n} accuracy=${report.accuracy}`);
    assert.equal(report.n, 2);
    assert.equal(report.accuracy, 1);
  });

  it('200 predictions do not grow wasm memory after the first few', { timeout: 300_000 }, async () => {
    const out = await run(async () => {
      const tuner = window.keep.cpu;
      const [image] = await window.fx.crops('coffee.png', 1, { as: 'imagedata' });
      const mem = [];
      for (let i = 0; i < 200; i++) {
        await tuner.predict(image, { heatmap: i % 2 === 0 });
        if (i === 9 || i === 199) mem.push(await window.testing.memory(tuner));
      }
      return mem;
    });
    console.log(`  wasm memory after 10 predictions ${out[0]} bytes, after 200 ${out[1]} bytes`);
    assert.equal(out[1], out[0]);
  });

  it('makes no request except same-origin GETs of static files', () => {
    assert.ok(page.requests.length > 5);
    const foreign = page.requests.filter((r) => !r.startsWith(`GET ${server.url}/`));
    assert.deepEqual(foreign, []);
    console.log(`  ${page.requests.length} requests, all GET ${server.url}/…`);
  });

  it('augmentation changes in place; the operating point comes with intervals; relabel and rename reach the model', { timeout: 120_000 }, async () => {
    const out = await run(async () => {
      const { fx } = window;
      const tuner = window.keep.cpu;
      const before = tuner.augment;
      await tuner.setAugment({ ...before, views: 1 });
      const r = await tuner.addImages('extra', await fx.crops('chelsea.png', 1));
      const views = (await tuner.examples()).find((e) => e.id === r.ids[0]).views;
      await tuner.setAugment(before);
      let bad;
      try {
        await tuner.setAugment({ views: 99 });
      } catch (e) {
        bad = e.message;
      }
      const point = await tuner.operatingPoint(0.5);
      await tuner.relabelExample(r.ids[0], 'cat');
      const moved = tuner.classes;
      await tuner.removeExample(r.ids[0]);
      await tuner.removeClass('extra');
      await tuner.renameClass('coffee', 'cup');
      const renamed = (await tuner.predict(await fx.fixture('coffee.png')))[0].label;
      const clf = await window.headtune.Classifier.load(await tuner.exportModel(), { backend: 'cpu' });
      const labels = clf.labels;
      clf.dispose();
      await tuner.renameClass('cup', 'coffee');
      return { views, augment: tuner.augment, before, bad, point, moved, renamed, labels };
    });
    assert.equal(out.views, 2, 'the evaluation view and one augmented view');
    assert.deepEqual(out.augment, out.before);
    assert.match(out.bad, /views is 99; use 0 to 32/);
    const p = out.point;
    assert.equal(p.threshold, 0.5);
    for (const [v, i] of [[p.sensitivity, p.sensitivityInterval], [p.specificity, p.specificityInterval]]) {
      assert.ok(i.low <= v && v <= i.high && i.low >= 0 && i.high <= 1, JSON.stringify(p));
    }
    assert.deepEqual(out.moved, [{ name: 'cat', count: 5 }, { name: 'coffee', count: 4 }, { name: 'extra', count: 0 }]);
    assert.equal(out.renamed, 'cup', 'the trained model follows a rename');
    assert.deepEqual(out.labels, ['cat', 'cup']);
  });

  it('every call takes a signal: answers reject when it aborts, edits refuse to start under an aborted one', { timeout: 120_000 }, async () => {
    const out = await run(async () => {
      const { fx } = window;
      const tuner = await window.headtune.Tuner.create({ backend: 'cpu' });
      await tuner.addImages('cat', await fx.crops('chelsea.png', 2));
      await tuner.addImages('coffee', await fx.crops('coffee.png', 2));
      const outcome = (p) => p.then((v) => ({ ok: true, v }), (e) => ({ name: e.name, message: e.message }));
      const aborted = AbortSignal.abort();
      const edits = {
        rename: await outcome(tuner.renameClass('cat', 'kitty', { signal: aborted })),
        remove: await outcome(tuner.removeClass('coffee', { signal: aborted })),
        augment: await outcome(tuner.setAugment({ views: 3 }, { signal: aborted })),
      };
      const unchanged = { classes: tuner.classes, views: tuner.augment.views };
      // Answers: rejected at once when the signal aborts while the worker works on them.
      const ac = new AbortController();
      const listing = tuner.exampleColumns({ signal: ac.signal });
      ac.abort();
      const reads = {
        columns: await outcome(listing),
        save: await outcome(tuner.saveProject({ signal: aborted })),
        model: await outcome(tuner.exportModel({ signal: aborted })),
      };
      // A live signal changes nothing; the tuner goes on working after the aborted calls.
      const live = new AbortController().signal;
      await tuner.renameClass('cat', 'kitty', { signal: live });
      const after = { classes: tuner.classes, rows: (await tuner.examples({ signal: live })).length };
      let bad;
      try {
        await tuner.renameClass('kitty', 'cat', { signal: 'soon' });
      } catch (e) {
        bad = e.message;
      }
      tuner.dispose();
      return { edits, unchanged, reads, after, bad };
    });
    for (const [k, r] of Object.entries(out.edits)) assert.equal(r.name, 'AbortError', `${k}: ${JSON.stringify(r)}`);
    assert.deepEqual(out.unchanged, { classes: [{ name: 'cat', count: 2 }, { name: 'coffee', count: 2 }], views: 0 }, 'aborted edits changed nothing');
    for (const [k, r] of Object.entries(out.reads)) assert.equal(r.name, 'AbortError', `${k}: ${JSON.stringify(r)}`);
    assert.deepEqual(out.after, { classes: [{ name: 'kitty', count: 2 }, { name: 'coffee', count: 2 }], rows: 4 });
    assert.match(out.bad, /tuner\.renameClass: signal must be an AbortSignal/);
  });

  it('classes can be renamed, merged and removed', { timeout: 60_000 }, async () => {
    const out = await run(async () => {
      const tuner = window.keep.cpu;
      const steps = [];
      await tuner.renameClass('cat', 'kitty');
      steps.push(tuner.classes);
      const [first] = await tuner.examples();
      await tuner.removeExample(first.id);
      steps.push(tuner.classes);
      await tuner.renameClass('kitty', 'coffee');
      steps.push(tuner.classes);
      steps.push(await tuner.removeClass('coffee'));
      steps.push(tuner.classes);
      let err;
      try {
        await tuner.removeClass('nope');
      } catch (e) {
        err = e.message;
      }
      return { steps, err };
    });
    assert.deepEqual(out.steps, [
      [{ name: 'kitty', count: 4 }, { name: 'coffee', count: 4 }],
      [{ name: 'kitty', count: 3 }, { name: 'coffee', count: 4 }],
      [{ name: 'coffee', count: 7 }],
      7,
      [],
    ]);
    assert.match(out.err, /no class named "nope"/);
  });
});
