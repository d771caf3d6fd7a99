// Benchmark (not a test): the package's per-call costs on a large project, without embedding
// anything. A small project made in the browser is grown to N examples (its embeddings copied
// with a little noise, as a project file built here), opened with Tuner.loadProject, and then
// timed: loadProject, examples(), a reply of a small call (renameClass), saveProject, with and
// without a training-report-sized `extra`.
//
// With --page: the page instead. The project is put where the page saves it (IndexedDB), the
// page reloaded (timed to ready), a class renamed (the save it causes is timed: serialising and
// storing), and the longest main-thread task after ready printed.
//
// Usage: node tests/bench/store.mjs [--examples 10000] [--page]
// Needs www/pkg (bash www/build.sh) and tests/browser's node_modules (npm ci in tests/browser).

import { parseArgs } from 'node:util';
import { startServer, launch, openHarness } from '../browser/helpers.mjs';
import { growProject } from '../grow-project.mjs';

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
  await page.addInitScript(() => {
    window.__longTasks = [];
    new PerformanceObserver((list) => window.__longTasks.push(...list.getEntries().map((e) => ({ start: e.startTime, ms: e.duration })))).observe({ type: 'longtask', buffered: true });
  });
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
  console.log(`stored a ${N}-example project; reloading …`);
  const t0 = Date.now();
  await page.reload();
  await page.waitForSelector('body[data-ready="true"]', { timeout: 300_000 });
  const ready = Date.now() - t0;
  const counts = await page.$$eval('#classes .count', (els) => els.map((e) => e.textContent));
  const input = page.locator('#classes input[type="text"]').first();
  await input.fill('renamed');
  await input.press('Enter');
  await page.waitForFunction(() => performance.getEntriesByName('headtune:save').length > 0, null, { timeout: 120_000 });
  const saves = await page.evaluate(() => performance.getEntriesByName('headtune:save').map((e) => ({ ms: e.duration, ...e.detail })));
  const longest = await page.evaluate(() => Math.max(0, ...window.__longTasks.filter((t) => t.start > performance.getEntriesByName('headtune:ready')[0].startTime + performance.getEntriesByName('headtune:ready')[0].duration).map((t) => t.ms)));
  const thumbs = await page.$$eval('#classes .thumbs li', (els) => els.length);
  console.log(`headtune page with a ${N}-example project (synthetic embeddings, CPU backend)`);
  console.log(`reload → ready: ${(ready / 1000).toFixed(1)} s; class counts: ${counts.join(', ')}; thumbnail slots shown: ${thumbs}`);
  for (const s of saves) console.log(`save after a rename: ${s.ms.toFixed(0)} ms (${(s.bytes / 2 ** 20).toFixed(1)} MiB; serialising ${s.serialiseMs.toFixed(0)} ms, storing ${(s.ms - s.serialiseMs).toFixed(0)} ms)`);
  console.log(`longest main-thread task after ready: ${longest.toFixed(0)} ms`);
}
