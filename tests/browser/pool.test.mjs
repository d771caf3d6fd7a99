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
        const told = [];
        const b = plain(await tuner.addImages('cup', second, { onProgress: (e) => e.status === 'progress' && progress.push(e.done), onAdded: (x) => told.push(x) }));
        const project = Array.from(await tuner.saveProject());
        const pool = await testing.pool(tuner);
        const result = { a, b, progress, told, project, classes: tuner.classes, features: tuner.features, pool, engineMemory: await testing.memory(tuner) };
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
    // onAdded: the result's ids and indices, in order, in several calls (so an app can store as
    // they come), with one worker and with the pool.
    for (const r of [one, two]) {
      assert.deepEqual(r.told.flatMap((x) => x.ids), r.b.ids, 'onAdded told every id once, in order');
      assert.deepEqual(r.told.flatMap((x) => x.indices), r.b.indices);
      assert.ok(r.told.length > 1, `onAdded was called ${r.told.length} times`);
      assert.ok(r.told.every((x) => !('thumbnails' in x)), 'no thumbnails unless asked');
    }
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

  it('addImages with thumbnails returns each added image as JPEGs of the sizes asked, with 1 and 2 workers', { timeout: 300_000 }, async () => {
    const out = await page.evaluate(async () => {
      const { headtune, testing } = window;
      // Red centre square between green side bands, so a thumbnail of anything else shows green.
      const picture = (w, h) => {
        const c = new OffscreenCanvas(w, h);
        const g = c.getContext('2d');
        g.fillStyle = '#00ff00';
        g.fillRect(0, 0, w, h);
        const side = Math.min(w, h);
        g.fillStyle = '#ff0000';
        g.fillRect((w - side) / 2, (h - side) / 2, side, side);
        return c;
      };
      const file = async (w, h, name) => new File([await picture(w, h).convertToBlob({ type: 'image/png' })], name, { type: 'image/png' });
      const imageData = (w, h) => picture(w, h).getContext('2d').getImageData(0, 0, w, h);
      const inputs = async () => [await file(400, 250, 'wide.png'), new File(['not an image'], 'notes.txt'), imageData(200, 500), await file(100, 60, 'small.png'), ...(await Promise.all([1, 2, 3, 4, 5].map((k) => file(300 + 20 * k, 200, `more${k}.png`))))];
      const look = async (bytes) => {
        const bitmap = await createImageBitmap(new Blob([bytes], { type: 'image/jpeg' }));
        const c = new OffscreenCanvas(bitmap.width, bitmap.height);
        const g = c.getContext('2d', { willReadFrequently: true });
        g.drawImage(bitmap, 0, 0);
        const px = (x, y) => Array.from(g.getImageData(x, y, 1, 1).data.slice(0, 3));
        return { jpeg: bytes[0] === 0xff && bytes[1] === 0xd8, width: bitmap.width, height: bitmap.height, corners: [px(3, 3), px(bitmap.width - 4, bitmap.height - 4)] };
      };
      const run = async (workers) => {
        const tuner = await headtune.Tuner.create({ backend: 'cpu', workers });
        // The first call fixes the crop in the engine alone; the second also goes through the pool.
        const a = await tuner.addImages('a', await inputs(), { thumbnails: { thumb: 64, preview: 320 } });
        await testing.pool(tuner);
        const told = [];
        const b = await tuner.addImages('b', await inputs(), { thumbnails: true, onAdded: (x) => told.push(...x.thumbnails.map((t) => [...t.thumb, ...t.preview])) });
        const plain = await tuner.addImages('c', [await file(50, 50, 'x.png')]);
        const input = await tuner.addImages('d', await inputs(), { thumbnails: { thumb: 56, preview: 'input' } });
        const pool = await testing.pool(tuner);
        tuner.dispose();
        const described = async (r) => ({ ids: r.ids, indices: r.indices, made: await Promise.all(r.thumbnails.map(async (t) => ({ thumb: await look(t.thumb), preview: await look(t.preview), bytes: [...t.thumb, ...t.preview] }))) });
        return { a: await described(a), b: await described(b), d: await described(input), told, plainKeys: Object.keys(plain).sort(), embedded: pool.embedded };
      };
      return { one: await run(1), two: await run(2) };
    });
    const previews = [[320, 200], [128, 320], [100, 60], [320, 200], [320, 188], [320, 178], [320, 168], [320, 160]];
    for (const [workers, r] of [[1, out.one], [2, out.two]]) {
      for (const [call, side] of [['a', 64], ['b', 112]]) {
        const { indices, made } = r[call];
        assert.deepEqual(indices, [0, 2, 3, 4, 5, 6, 7, 8], `${workers} workers, call ${call}: the unreadable file is left out`);
        assert.equal(made.length, indices.length, 'one pair of pictures per added image');
        made.forEach(({ thumb, preview }, k) => {
          const what = `${workers} workers, call ${call}, image ${indices[k]}`;
          assert.ok(thumb.jpeg && preview.jpeg, `${what}: JPEG files`);
          assert.deepEqual([thumb.width, thumb.height], [side, side], `${what}: thumbnail size`);
          assert.deepEqual([preview.width, preview.height], previews[k], `${what}: preview keeps the aspect ratio within 320`);
          for (const [r, g] of thumb.corners) assert.ok(r > 200 && g < 60, `${what}: the thumbnail is the centre square (corner ${r}, ${g})`);
          for (const [r, g] of preview.corners) assert.ok(g > 200 && r < 60, `${what}: the preview is the whole image (corner ${r}, ${g})`);
        });
      }
      assert.deepEqual(r.plainKeys, ['added', 'ids', 'indices', 'rejected'], 'no thumbnails unless asked');
      // Input previews: what the model saw — these colour pictures are framed `center`, the
      // 87.5 % centre crop (224/256 of the short side), all red; smaller than the 224 px input,
      // so each at its own size — and the thumbnail that square resized.
      const sides = [218, 175, 52, 175, 175, 175, 175, 175];
      r.d.made.forEach(({ thumb, preview }, k) => {
        const what = `${workers} workers, input preview of image ${r.d.indices[k]}`;
        assert.deepEqual([preview.width, preview.height, thumb.width, thumb.height], [sides[k], sides[k], 56, 56], what);
        for (const [red, green] of [...preview.corners, ...thumb.corners]) assert.ok(red > 200 && green < 60, `${what}: the centre crop (corner ${red}, ${green})`);
      });
    }
    assert.ok(out.two.embedded[1] > 0, `the extra worker made some: ${out.two.embedded}`);
    assert.deepEqual(out.two.a, out.one.a, 'the same files with 1 and 2 workers');
    assert.deepEqual(out.two.b, out.one.b, 'the same files with 1 and 2 workers');
    assert.deepEqual(out.two.d, out.one.d, 'the same input previews with 1 and 2 workers');
    for (const r of [out.one, out.two]) assert.deepEqual(r.told, r.b.made.map((m) => m.bytes), 'onAdded handed over the same JPEGs as the result, in order');
  });

  it('rejects a bad thumbnails option with the valid range', async () => {
    const msgs = await page.evaluate(async () => {
      const tuner = await window.headtune.Tuner.create({ backend: 'cpu', workers: 1 });
      const out = [];
      for (const thumbnails of [{ thumb: 8 }, { preview: 1.5 }, { size: 100 }]) {
        try {
          await tuner.addImages('a', [], { thumbnails });
          out.push('no error');
        } catch (e) {
          out.push(`${e.constructor.name} ${e.code}: ${e.message}`);
        }
      }
      try {
        await tuner.addImages('a', [], { onAdded: 'store them' });
        out.push('no error');
      } catch (e) {
        out.push(`${e.constructor.name} ${e.code}: ${e.message}`);
      }
      tuner.dispose();
      return out;
    });
    assert.match(msgs[0], /^TypeError InvalidArgument: tuner.addImages: thumbnails.thumb is 8; use a whole number of pixels from 16 to 1024/);
    assert.match(msgs[1], /thumbnails.preview is 1.5; use a whole number of pixels from 16 to 1024 or 'input'/);
    assert.match(msgs[2], /unknown option "size"; valid options are thumb, preview/);
    assert.match(msgs[3], /^TypeError InvalidArgument: tuner.addImages: onAdded must be a function/);
  });
});
