// Every core: a Tuner with a pool of workers adds images exactly as one worker does.
//
// Run with: bash tests/browser/run.sh (or node --test tests/browser/pool.test.mjs)

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, launch, openHarness } from './helpers.mjs';

let server;
let browser;
let page;

describe('the worker pool', () => {
  before(async () => {
    server = await startServer();
    browser = await launch();
    page = await openHarness(browser, server.url);
  });

  after(async () => {
    await browser?.close();
    server?.close();
  });

  it('workers: 2 gives what workers: 1 gives — ids, order, embeddings, rejections — and both workers embed', { timeout: 300_000 }, async () => {
    const out = await page.evaluate(async () => {
      const { fx, headtune, testing } = window;
      const good = await fx.fixture('coffee.png');
      const bytes = new Uint8Array(await good.arrayBuffer());
      const truncated = new File([bytes.slice(0, 2000)], 'truncated.png', { type: 'image/png' });
      const text = new File(['just some notes'], 'notes.txt', { type: 'text/plain' });
      // A broken image first: the engine adds alone until an image fixes the `auto` crop. Then
      // files and ImageData mixed, unusable inputs among them, more than the pool holds ahead.
      const first = [truncated, ...(await fx.crops('chelsea.png', 5)), text, good, 42, ...(await fx.crops('coffee.png', 4))];
      const second = [...(await fx.crops('coffee.png', 7, { as: 'imagedata' })), new File([], 'empty.jpg'), ...(await fx.crops('chelsea.png', 6, { as: 'file' }))];
      const plain = (r) => ({ ...r, rejected: r.rejected.map((x) => ({ ...x })) });
      const run = async (workers) => {
        const tuner = await headtune.Tuner.create({ backend: 'cpu', workers, augment: { views: 2 } });
        const a = plain(await tuner.addImages('cat', first));
        // Every extra worker is up before the second call, so each one surely gets images.
        await testing.pool(tuner);
        const progress = [];
        const b = plain(await tuner.addImages('cup', second, { onProgress: (e) => e.status === 'progress' && progress.push(e.done) }));
        const project = Array.from(await tuner.saveProject());
        const pool = await testing.pool(tuner);
        const result = { a, b, progress, project, classes: tuner.classes, features: tuner.features, pool, engineMemory: await testing.memory(tuner) };
        tuner.dispose();
        return result;
      };
      return { one: await run(1), two: await run(2) };
    });
    const { one, two } = out;
    assert.deepEqual(two.a, one.a, 'first call: ids, indices, rejections');
    assert.deepEqual(two.b, one.b, 'second call: ids, indices, rejections');
    assert.deepEqual(two.classes, one.classes);
    assert.deepEqual(two.features, one.features);
    assert.equal(one.features.crop, 'center', 'the first decodable image (colour) fixed the crop');
    assert.equal(one.a.added, 10);
    assert.deepEqual(one.a.rejected.map((r) => [r.index, r.name]), [[0, 'truncated.png'], [6, 'notes.txt'], [8, 'image 9']]);
    assert.equal(one.b.added, 13);
    assert.deepEqual(one.b.rejected.map((r) => [r.index, r.name]), [[7, 'empty.jpg']]);
    // The project file holds every example's id, class, name and every view's embedding.
    assert.equal(two.project.length, one.project.length);
    assert.ok(two.project.every((v, i) => v === one.project[i]), 'the saved projects are byte for byte equal');
    // Progress counts up to the last image, in order, with the pool too.
    assert.deepEqual(two.progress, [...two.progress].sort((x, y) => x - y));
    assert.equal(two.progress.at(-1), 14);
    assert.deepEqual(one.pool.embedded, [0]);
    assert.equal(two.pool.size, 2);
    assert.ok(two.pool.embedded[0] > 0 && two.pool.embedded[1] > 0, `images embedded per worker: ${two.pool.embedded}`);
    assert.equal(two.pool.memory.length, 1);
    console.log(`  images embedded per worker ${two.pool.embedded.join(' + ')}; wasm memory: engine ${(two.engineMemory / 2 ** 20).toFixed(0)} MiB, extra worker ${(two.pool.memory[0] / 2 ** 20).toFixed(0)} MiB`);
  });

  it('rejects a bad workers option with the valid range', async () => {
    const msg = await page.evaluate(async () => {
      try {
        await window.headtune.Tuner.create({ backend: 'cpu', workers: 0 });
        return 'no error';
      } catch (e) {
        return `${e.constructor.name} ${e.code}: ${e.message}`;
      }
    });
    assert.match(msg, /^TypeError InvalidArgument: Tuner.create: workers is 0; use a whole number from 1/);
  });
});
