// Benchmark (not a test): the page's adding pipeline against the bare package. Generates N
// photo-like JPEGs of about 1 megapixel (seeded, in the browser; written to a temporary folder,
// two sub-folders = two classes, deleted afterwards), then in interleaved rounds:
//   package: a fresh `Tuner.create({ backend: 'cpu' })` (default workers), `addImages` of the files;
//   page:    a fresh page (?backend=cpu, empty storage), the folder chosen in its folder input,
//            timed until it is no longer busy — thumbnails, previews and the save included;
// and prints per side the median rate, the ratio page / package, the CPU time of the browser's
// processes per image (the machine may be shared), and the page's main-thread long tasks
// (PerformanceObserver 'longtask', > 50 ms) while adding.
//
// Usage: node tests/bench/page-adding.mjs [--images 100] [--rounds 3]
// Needs www/pkg (bash www/build.sh) and tests/e2e's playwright-core (npm ci in tests/e2e).

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { CHROMIUM_ARGS, ROOT, serveStatic, recordLongTasks, longTasksBetween } from '../chromium.mjs';
import { treeCpuSeconds, threadCpuSeconds, threadBreakdown, generateJpegs, median, packagePage, timeAddImages } from './generate.mjs';

const { chromium } = await import(path.join(ROOT, 'tests/e2e/node_modules/playwright-core/index.mjs'));

const { values } = parseArgs({ options: { images: { type: 'string', default: '100' }, rounds: { type: 'string', default: '3' } } });
const N = Number(values.images);
// THUMBS=1: the package also makes each image's thumbnail and preview, as the page asks for
// them (www/app/thumbs.js: a 112 px thumbnail and the model's input square).
const THUMBS = process.env.THUMBS ? { thumb: 112, preview: 'input' } : false;
const ROUNDS = Number(values.rounds);

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'headtune-page-adding-'));
const { url, proc } = await serveStatic({ root: ROOT, log: path.join(dir, 'requests.log') });
const browser = await chromium.launch({ executablePath: process.env.CHROMIUM || '/usr/bin/chromium', headless: true, args: CHROMIUM_ARGS });
try {
  const harness = await browser.newPage();
  await harness.goto(`${url}/tests/browser/harness.html`);
  await harness.waitForFunction(() => window.harnessReady === true, null, { timeout: 30000 });
  const folder = path.join(dir, 'images');
  await generateJpegs(harness, N, (i, bytes) => {
    const cls = path.join(folder, i % 2 ? 'odd' : 'even');
    fs.mkdirSync(cls, { recursive: true });
    fs.writeFileSync(path.join(cls, `gen-${String(i).padStart(4, '0')}.jpg`), bytes);
  });
  const files = fs.readdirSync(folder).flatMap((c) => fs.readdirSync(path.join(folder, c)).map((f) => path.join(folder, c, f)));
  const kib = files.reduce((s, f) => s + fs.statSync(f).size, 0) / files.length / 1024;
  console.log(`${N} generated JPEGs of 1152×864, ${kib.toFixed(0)} KiB each on average; ${os.cpus().length} cores, load ${os.loadavg().map((l) => l.toFixed(1)).join(' ')}`);

  /** The package alone: a fresh tuner, then addImages of every file (read as Files in the page). */
  async function packageRun() {
    const page = await packagePage(browser, url, files);
    const cpu0 = treeCpuSeconds();
    const threads0 = threadCpuSeconds();
    const seconds = await timeAddImages(page, { thumbnails: THUMBS });
    const cpu = treeCpuSeconds() - cpu0;
    const threads = threadBreakdown(threads0, threadCpuSeconds(), N);
    await page.close();
    return { rate: N / seconds, cpuMs: (1000 * cpu) / N, threads };
  }

  /** The page: fresh storage, the folder chosen, timed until the page is no longer busy. */
  async function pageRun() {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, ...(process.env.NOSW ? { serviceWorkers: 'block' } : {}) });
    const page = await context.newPage();
    page.on('pageerror', (e) => console.error(`[page error] ${e.message}`));
    await recordLongTasks(page, { frames: Boolean(process.env.FRAMES) });
    await page.goto(`${url}/www/?backend=cpu`);
    await page.waitForSelector('body[data-ready="true"]', { timeout: 120_000 });
    const cpu0 = treeCpuSeconds();
    const threads0 = threadCpuSeconds();
    // The clock runs from the moment the page has the files (the folder input's change event:
    // the package's side starts with its File list made too) to the moment it is no longer busy,
    // both taken in the page (an observer, not polling, sees the end).
    await page.evaluate((n) => {
      window.__added = new Promise((resolve) => {
        document.getElementById('folder-input').addEventListener('change', () => (window.__chosenAt = performance.now()), { capture: true });
        const check = () => Number(document.getElementById('progress-bar').value) >= n && !document.body.dataset.busy && resolve(performance.now());
        new MutationObserver(check).observe(document.body, { attributes: true, subtree: true, attributeFilter: ['data-busy', 'value'] });
      });
    }, N);
    const before = await page.evaluate(() => performance.now());
    await page.setInputFiles('#folder-input', folder);
    const t1 = await page.evaluate(() => window.__added);
    const t0 = await page.evaluate(() => window.__chosenAt);
    const listMs = t0 - before;
    const cpu = treeCpuSeconds() - cpu0;
    const threads = threadBreakdown(threads0, threadCpuSeconds(), N);
    const tasks = await longTasksBetween(page, t0, t1);
    if (process.env.FRAMES) console.log(await page.evaluate(([a, b]) => window.__frames.filter((t) => t.start >= a && t.start <= b && t.ms > 50).map((f) => `${(f.start - a).toFixed(0)} ms: ${f.ms.toFixed(0)} ms ${f.scripts.join('; ')}`).join('\n'), [t0, t1]));
    await context.close();
    return { rate: N / ((t1 - t0) / 1000), cpuMs: (1000 * cpu) / N, tasks, threads, listMs };
  }

  const runs = { package: [], page: [] };
  for (let r = 0; r < ROUNDS; r++) {
    const a = await packageRun();
    runs.package.push(a);
    console.log(`  round ${r + 1}, package: ${a.rate.toFixed(1)} images/s, ${a.cpuMs.toFixed(0)} ms CPU per image (${a.threads}), load ${os.loadavg()[0].toFixed(1)}`);
    const b = await pageRun();
    runs.page.push(b);
    const longest = Math.max(0, ...b.tasks.map((t) => t.ms));
    console.log(`  round ${r + 1}, page:    ${b.rate.toFixed(1)} images/s, ${b.cpuMs.toFixed(0)} ms CPU per image (${b.threads}), file list ${b.listMs.toFixed(0)} ms, long tasks ${b.tasks.length} (longest ${longest.toFixed(0)} ms: ${b.tasks.map((t) => t.ms.toFixed(0)).join(' ')}), load ${os.loadavg()[0].toFixed(1)}`);
  }
  const pkg = median(runs.package.map((x) => x.rate));
  const pg = median(runs.page.map((x) => x.rate));
  console.log(`\npackage ${pkg.toFixed(1)} images/s, page ${pg.toFixed(1)} images/s: page / package = ${(pg / pkg).toFixed(3)} (medians of ${ROUNDS}; per round ${runs.page.map((x, i) => (x.rate / runs.package[i].rate).toFixed(2)).join(' ')})`);
  console.log(`CPU per image (medians): package ${median(runs.package.map((x) => x.cpuMs)).toFixed(0)} ms, page ${median(runs.page.map((x) => x.cpuMs)).toFixed(0)} ms`);
  console.log(`page main-thread tasks > 50 ms while adding: ${runs.page.map((x) => x.tasks.length).join(', ')} per round; longest ${Math.max(0, ...runs.page.flatMap((x) => x.tasks.map((t) => t.ms))).toFixed(0)} ms`);
} finally {
  await browser.close();
  proc.kill();
  fs.rmSync(dir, { recursive: true, force: true });
}
