// Benchmark (not a test): the package's per-call costs on a large project, without embedding
// anything. A small project made in the browser is grown to N examples (its embeddings copied
// with a little noise, as a project file built here), opened with Tuner.loadProject, and then
// timed: loadProject, examples(), a reply of a small call (renameClass), saveProject, with and
// without a training-report-sized `extra`.
//
// With --page: the page instead. The project is put where earlier versions of the page saved it
// (one IndexedDB record), the page reloaded (timed to ready; it converts the record into parts,
// the whole save timed) and reloaded again (from parts), a class renamed (its save timed:
// computing the changes, storing them), the longest main-thread task after ready printed; then
// training with the defaults is started and stopped (time until the page is idle, main-thread
// tasks and timer lateness meanwhile) and run to the end (its save timed).
//
// Usage: node tests/bench/store.mjs [--examples 10000] [--page]
// Needs www/pkg (bash www/build.sh) and tests/browser's node_modules (npm ci in tests/browser).

import { parseArgs } from 'node:util';
import { startServer, launch, openHarness } from '../browser/helpers.mjs';
import { growProject } from '../grow-project.mjs';
import { recordLongTasks } from '../chromium.mjs';

const { values } = parseArgs({ options: { examples: { type: 'string', default: '10000' }, page: { type: 'boolean', default: false } } });
const N = Number(values.examples);

/**
 * In the page: a project file of `n` examples (two classes), grown from a 4-image project made
 * with `Tuner` (tests/grow-project.mjs, whose source `grow` is). Resolves to its bytes.
 */
async function bigProject(n, Tuner, grow) {
  // Four different synthetic pictures (gradients and stripes), as ImageData.
  const picture = (k) => {
    const side = 96;
    const data = new Uint8ClampedArray(side * side * 4);
    for (let i = 0; i < side * side; i++) {
      const x = i % side;
      const y = Math.floor(i / side);
      data.set([(x * (k + 1) * 3) % 256, (y * 5 + k * 60) % 256, ((x + y) % (8 + 4 * k) < 4 + 2 * k ? 255 : 0), 255], 4 * i);
    }
    return new ImageData(data, side, side);
  };
  const tuner = await Tuner.create({ backend: 'cpu' });
  await tuner.addImages('cat', [picture(0), picture(1)]);
  await tuner.addImages('coffee', [picture(2), picture(3)]);
  const small = await tuner.saveProject();
  tuner.dispose();
  return eval(`(${grow})`)(small, n);
}

const server = await startServer();
const browser = await launch();
try {
  if (values.page) {
    await pageRun();
    process.exit(0);
  }
  const page = await openHarness(browser, server.url);
  const out = await page.evaluate(async ([n, source, grow]) => {
    const { Tuner } = window.headtune;
    const bytes = await eval(`(${source})`)(n, Tuner, grow);
    const time = async (f) => {
      const t = performance.now();
      const v = await f();
      return [performance.now() - t, v];
    };
    const res = { bytes: bytes.length };
    const [load, big2] = await time(() => Tuner.loadProject(bytes, { backend: 'cpu' }));
    res.loadProject = load;
    for (let r = 0; r < 2; r++) {
      const [ms, list] = await time(() => big2.examples());
      res[`examples${r}`] = ms;
      res.listed = list.length;
    }
    res.renameSmall = (await time(() => big2.renameClass('cat', 'kitten')))[0];
    res.saveSmall = (await time(() => big2.saveProject({ extra: { note: 'small' } })))[0];
    // A training report's held-out predictions: one row per held-out example (20 %).
    const heldOut = Array.from({ length: Math.round(n / 5) }, (_, i) => ({ id: i, truth: i % 2, predicted: (i + (i % 7 === 0)) % 2, probabilities: [0.3, 0.7] }));
    res.saveWithReport = (await time(() => big2.saveProject({ extra: { report: { heldOut } } })))[0];
    res.renameAfterReport = (await time(() => big2.renameClass('kitten', 'cat')))[0];
    res.examplesAfterReport = (await time(() => big2.examples()))[0];
    big2.dispose();
    return res;
  }, [N, bigProject.toString(), growProject.toString()]);
  console.log(`headtune package at ${N} synthetic examples (CPU backend): project file ${(out.bytes / 2 ** 20).toFixed(1)} MiB`);
  for (const [k, v] of Object.entries(out)) if (k !== 'bytes') console.log(`${k.padEnd(20)} ${typeof v === 'number' && k !== 'listed' ? `${v.toFixed(0)} ms` : v}`);
} finally {
  await browser.close();
  server.close();
}

async function pageRun() {
  // The page's CSP forbids eval, which carries the project builder in; the page runs unchanged.
  const page = await (await browser.newContext({ bypassCSP: true })).newPage();
  page.on('pageerror', (e) => console.error(`[page error] ${e.message}`));
  await recordLongTasks(page);
  await page.goto(`${server.url}/www/?backend=cpu`);
  await page.waitForSelector('body[data-ready="true"]', { timeout: 120_000 });
  await page.evaluate(async ([n, source, grow]) => {
    const { Tuner } = await import('/www/lib/index.js');
    const bytes = await eval(`(${source})`)(n, Tuner, grow);
    await new Promise((resolve, reject) => {
      const req = indexedDB.open('headtune');
      req.onsuccess = () => {
        const tx = req.result.transaction(['kv'], 'readwrite');
        tx.objectStore('kv').put(bytes, 'project');
        tx.oncomplete = () => {
          req.result.close();
          resolve();
        };
        tx.onerror = () => reject(tx.error);
      };
      req.onerror = () => reject(req.error);
    });
  }, [N, bigProject.toString(), growProject.toString()]);
  console.log(`stored a ${N}-example project as a single record (the format before parts); reloading …`);
  const savesSoFar = () => page.evaluate(() => performance.getEntriesByName('headtune:save').map((e) => ({ ms: e.duration, ...e.detail })));
  const nextSave = async () => {
    const n = (await savesSoFar()).length;
    await page.waitForFunction((k) => performance.getEntriesByName('headtune:save').length > k, n, { timeout: 300_000 });
    return (await savesSoFar())[n];
  };
  const describe = (s) => `${s.ms.toFixed(0)} ms, ${(s.bytes / 2 ** 20).toFixed(2)} MiB [${s.parts.map((k) => (k.startsWith('chunk-') ? 'chunk' : k)).join(', ')}] (computing ${s.serialiseMs.toFixed(0)} ms, storing ${(s.ms - s.serialiseMs).toFixed(0)} ms)`;
  const reload = async () => {
    const t0 = Date.now();
    await page.reload();
    await page.waitForSelector('body[data-ready="true"]', { timeout: 300_000 });
    return Date.now() - t0;
  };
  const converting = await reload();
  await page.waitForFunction(() => performance.getEntriesByName('headtune:save').length > 0, null, { timeout: 300_000 });
  const [whole] = await savesSoFar();
  console.log(`headtune page with a ${N}-example project (synthetic embeddings, CPU backend)`);
  console.log(`reload → ready (single record, converted): ${(converting / 1000).toFixed(1)} s; its whole save into parts: ${describe(whole)}`);
  const ready = await reload();
  const counts = await page.$$eval('#classes .count', (els) => els.map((e) => e.textContent));
  const thumbs = await page.$$eval('#classes .thumbs li', (els) => els.length);
  console.log(`reload → ready (from parts): ${(ready / 1000).toFixed(1)} s; class counts: ${counts.join(', ')}; thumbnail slots shown: ${thumbs}`);
  const input = page.locator('#classes input[type="text"]').first();
  const renamed = nextSave();
  await input.fill('renamed');
  await input.press('Enter');
  console.log(`save after a rename: ${describe(await renamed)}`);
  const longest = await page.evaluate(() => Math.max(0, ...window.__longTasks.filter((t) => t.start > performance.getEntriesByName('headtune:ready').at(-1).startTime + performance.getEntriesByName('headtune:ready').at(-1).duration).map((t) => t.ms)));
  console.log(`longest main-thread task after ready: ${longest.toFixed(0)} ms`);

  // Training with the defaults, stopped once it is under way: how soon the page is idle again,
  // and how responsive it stays while training (main-thread tasks, a timer's lateness).
  await page.evaluate(() => {
    window.__lateness = [];
    let last = performance.now();
    window.__ticker = setInterval(() => {
      const now = performance.now();
      window.__lateness.push(now - last - 50);
      last = now;
    }, 50);
  });
  const trainStart = Date.now();
  await page.getByRole('button', { name: 'Train', exact: true }).click();
  await page.waitForFunction(() => /^Epoch \d+/.test(document.getElementById('train-status').textContent), null, { timeout: 300_000 });
  const firstEpoch = Date.now() - trainStart;
  await new Promise((resolve) => setTimeout(resolve, 2000));
  const stopAt = await page.evaluate(() => {
    document.getElementById('stop-button').click();
    return performance.now();
  });
  await page.waitForFunction(() => !document.body.dataset.busy, null, { timeout: 300_000 });
  const stopped = await page.evaluate((t) => {
    clearInterval(window.__ticker);
    const idle = performance.now() - t;
    const during = window.__longTasks.filter((x) => x.start > t - 3000);
    return { idle, status: document.getElementById('train-status').textContent, longest: Math.max(0, ...during.map((x) => x.ms)), late: Math.max(0, ...window.__lateness) };
  }, stopAt);
  console.log(`training with defaults: first epoch shown after ${(firstEpoch / 1000).toFixed(1)} s; Stop pressed 2 s later → idle after ${stopped.idle.toFixed(0)} ms ("${stopped.status}")`);
  console.log(`while training: longest main-thread task ${stopped.longest.toFixed(0)} ms, a 50 ms timer at most ${stopped.late.toFixed(0)} ms late`);
  const trainAll = Date.now();
  await page.getByRole('button', { name: 'Train', exact: true }).click();
  await page.waitForFunction(() => /^Done/.test(document.getElementById('train-status').textContent) && !document.body.dataset.busy, null, { timeout: 600_000 });
  console.log(`training with defaults to the end: ${((Date.now() - trainAll) / 1000).toFixed(1)} s (${await page.$eval('#train-status', (e) => e.textContent)})`);
  console.log(`save after training: ${describe(await nextSave())}`);
}
