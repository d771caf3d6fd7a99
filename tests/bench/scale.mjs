// Benchmark (not a test): the page at scale. Adds N images (Fashion-MNIST test images, 112×112
// PNGs written to a temporary folder, two classes) through the page's folder input, 1,000 at a
// time, on the CPU backend in headless Chromium, and prints:
//   - the adding rate per 500 images (it must stay flat as the project grows),
//   - the longest main-thread task while adding (long tasks are what make a page feel stuck),
//   - every save to IndexedDB (time and bytes),
//   - memory of the renderer process (the page and its worker) and the stored bytes,
//   - reload → ready, and → first prediction.
//
// Usage: node tests/bench/scale.mjs [--images 1000] [--batch 1000]
// Needs www/pkg (bash www/build.sh) and tests/e2e's playwright-core (npm ci in tests/e2e).

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { parseArgs } from 'node:util';
import { CHROMIUM_ARGS, ROOT, serveStatic, recordLongTasks, longTasksBetween } from '../chromium.mjs';
import { packagePage, timeAddImages } from './generate.mjs';

const { chromium } = await import(path.join(ROOT, 'tests/e2e/node_modules/playwright-core/index.mjs'));

const { values } = parseArgs({ options: { images: { type: 'string', default: '1000' }, batch: { type: 'string', default: '1000' } } });
const N = Number(values.images);
const BATCH = Number(values.batch);
const FASHION = '/usr/share/datasets/fashion-mnist';

/** A grey PNG (no dependencies: zlib + CRC). */
function png(width, height, rows) {
  const crcTable = Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  const crc = (buf) => {
    let c = 0xffffffff;
    for (const b of buf) c = crcTable[(c ^ b) & 0xff] ^ (c >>> 8);
    return (c ^ 0xffffffff) >>> 0;
  };
  const chunk = (type, data) => {
    const body = Buffer.concat([Buffer.from(type), data]);
    const out = Buffer.alloc(12 + data.length);
    out.writeUInt32BE(data.length, 0);
    body.copy(out, 4);
    out.writeUInt32BE(crc(body), 8 + data.length);
    return out;
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr.set([8, 0, 0, 0, 0], 8);
  const raw = Buffer.concat(rows.map((r) => Buffer.concat([Buffer.from([0]), Buffer.from(r)])));
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', ihdr), chunk('IDAT', zlib.deflateSync(raw)), chunk('IEND', Buffer.alloc(0))]);
}

/** Write `n` images in batches of `BATCH` folders (batch-k/{low,high}/…), as a user would add them. */
function writeImages(dir, n) {
  const images = zlib.gunzipSync(fs.readFileSync(`${FASHION}/t10k-images-idx3-ubyte.gz`)).subarray(16);
  const labels = zlib.gunzipSync(fs.readFileSync(`${FASHION}/t10k-labels-idx1-ubyte.gz`)).subarray(8);
  const batches = [];
  for (let i = 0; i < n; i++) {
    const b = Math.floor(i / BATCH);
    const k = i % 10000;
    // Two classes: clothes worn on the top half vs the rest (labels 0, 2, 4, 6 are tops).
    const cls = [0, 2, 4, 6].includes(labels[k]) ? 'tops' : 'other';
    const folder = path.join(dir, `batch-${b}`, cls);
    if (!batches[b]) batches[b] = path.join(dir, `batch-${b}`);
    fs.mkdirSync(folder, { recursive: true });
    const rows = [];
    // 4× nearest upscale; the copy number shifts the image so repeats past 10,000 differ.
    const shift = Math.floor(i / 10000);
    for (let y = 0; y < 112; y++) {
      const row = new Uint8Array(112);
      for (let x = 0; x < 112; x++) row[x] = images[k * 784 + Math.floor(y / 4) * 28 + ((Math.floor(x / 4) + shift) % 28)];
      rows.push(row);
    }
    fs.writeFileSync(path.join(folder, `img-${String(i).padStart(5, '0')}.png`), png(112, 112, rows));
  }
  return batches;
}

/**
 * Resident memory (MiB) of this browser's renderer processes: the page and its worker live
 * there. Only descendants of our browser count (others may be running Chromium on the machine).
 */
function rendererMiB() {
  const parent = new Map();
  const pids = fs.readdirSync('/proc').filter((d) => /^\d+$/.test(d));
  for (const pid of pids) {
    try {
      // Field 4 of /proc/PID/stat, after the parenthesised command name.
      parent.set(Number(pid), Number(fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ')[1]));
    } catch {
      // The process ended.
    }
  }
  // Our browser: the Chromium this node process started (playwright's Browser has no process()).
  const cmdline = (pid) => {
    try {
      return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    } catch {
      return '';
    }
  };
  const root = [...parent].find(([pid, pp]) => pp === process.pid && /chrom/.test(cmdline(pid)))?.[0];
  const ours = (pid) => {
    for (let p = pid, hops = 0; p > 1 && hops < 64; p = parent.get(p) ?? 0, hops++) if (p === root) return true;
    return false;
  };
  let kb = 0;
  for (const pid of pids) {
    try {
      if (!ours(Number(pid))) continue;
      const cmd = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      if (!cmd.includes('--type=renderer')) continue;
      const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
      kb += Number(status.match(/VmRSS:\s+(\d+)/)?.[1] ?? 0);
    } catch {
      // The process ended.
    }
  }
  return kb / 1024;
}

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'headtune-scale-'));
const log = path.join(dir, 'requests.log');
console.log(`writing ${N} images to ${dir} …`);
const batches = writeImages(dir, N);
const { url, proc } = await serveStatic({ root: ROOT, log });
const browser = await chromium.launch({ executablePath: process.env.CHROMIUM || '/usr/bin/chromium', headless: true, args: CHROMIUM_ARGS });

/**
 * The package's own rate on the first batch (a fresh `Tuner.create({ backend: 'cpu' })`, one
 * `addImages` of every file, no thumbnails): what the page's rate is compared with.
 */
async function packageRate(folder) {
  const files = fs.readdirSync(folder).flatMap((c) => fs.readdirSync(path.join(folder, c)).map((f) => path.join(folder, c, f)));
  const page = await packagePage(browser, url, files);
  try {
    return files.length / (await timeAddImages(page));
  } finally {
    await page.close();
  }
}

try {
  const pkgRate = await packageRate(batches[0]);
  console.log(`the package alone on the first ${Math.min(BATCH, N)} images: ${pkgRate.toFixed(1)} img/s`);
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  page.on('pageerror', (e) => console.error(`[page error] ${e.message}`));
  // FRAMES=1: also print each long animation frame over 100 ms with the scripts it ran.
  await recordLongTasks(page, { frames: Boolean(process.env.FRAMES) });
  await page.goto(`${url}/www/?backend=cpu`);
  await page.waitForSelector('body[data-ready="true"]', { timeout: 120_000 });

  const rates = [];
  let added = 0;
  let longest = { ms: 0 };
  for (const folder of batches) {
    const inBatch = Math.min(BATCH, N - added);
    // The clock starts when the page has the files (the folder input's change event): making
    // the File list of 1,000 files is the browser's own task, before the page can do anything.
    await page.evaluate(() => {
      window.__chosen = new Promise((resolve) => document.getElementById('folder-input').addEventListener('change', () => resolve(performance.now()), { capture: true, once: true }));
    });
    const marks = [];
    await page.setInputFiles('#folder-input', folder);
    const t0 = await page.evaluate(() => window.__chosen);
    for (let k = 500; k <= inBatch; k += 500) {
      await page.waitForFunction((v) => Number(document.getElementById('progress-bar').value) >= v, k, { timeout: 0, polling: 250 });
      marks.push(await page.evaluate(() => performance.now()));
    }
    await page.waitForFunction(() => !document.body.dataset.busy, null, { timeout: 0 });
    const t1 = await page.evaluate(() => performance.now());
    let prev = t0;
    for (const m of marks) {
      rates.push({ images: 500, ms: m - prev });
      prev = m;
    }
    const tasks = await longTasksBetween(page, t0, t1);
    if (process.env.FRAMES) console.log(await page.evaluate(([a, b]) => window.__frames.filter((t) => t.start >= a && t.start <= b && t.ms > 100).map((f) => `  ${(f.start - a).toFixed(0)} ms: ${f.ms.toFixed(0)} ms ${f.scripts.join('; ')}`).join('\n'), [t0, t1]));
    for (const t of tasks) if (t.ms > longest.ms) longest = t;
    added += inBatch;
    await page.waitForSelector('#save-status[data-state="saved"]', { timeout: 0 });
    console.log(`added ${added} images; renderer ${rendererMiB().toFixed(0)} MiB; long tasks while adding: ${tasks.length} (longest ${Math.max(0, ...tasks.map((t) => t.ms)).toFixed(0)} ms)`);
  }
  const saves = await page.evaluate(() => performance.getEntriesByName('headtune:save').map((e) => ({ ms: e.duration, bytes: e.detail?.bytes, serialiseMs: e.detail?.serialiseMs })));
  const storage = await page.evaluate(() => navigator.storage.estimate());
  const memory = rendererMiB();

  const t0 = Date.now();
  await page.reload();
  await page.waitForSelector('body[data-ready="true"]', { timeout: 0 });
  const ready = Date.now() - t0;
  // A prediction needs a model: train one (timed) and reload again.
  const trainStart = Date.now();
  await page.getByRole('button', { name: 'Train', exact: true }).click();
  await page.waitForFunction(() => document.body.dataset.model === 'trained' && !document.body.dataset.busy, null, { timeout: 0 });
  const trainMs = Date.now() - trainStart;
  await page.waitForSelector('#save-status[data-state="saved"]', { timeout: 0 });
  const sample = path.join(batches[0], 'tops', fs.readdirSync(path.join(batches[0], 'tops'))[0]);
  const r0 = Date.now();
  await page.reload();
  await page.waitForSelector('body[data-ready="true"]', { timeout: 0 });
  await page.setInputFiles('#predict-input', sample);
  await page.waitForSelector('#predict-list li', { timeout: 0 });
  const firstPrediction = Date.now() - r0;

  console.log(`\nheadtune page at ${N} images (${await browser.version()}, CPU backend, ${os.cpus().length} cores, load ${os.loadavg()[0].toFixed(1)})\n`);
  console.log('images      adding rate');
  let at = 0;
  for (const r of rates) {
    console.log(`${String(at + 1).padStart(6)}–${String(at + r.images).padEnd(6)} ${(r.images / (r.ms / 1000)).toFixed(1).padStart(6)} img/s`);
    at += r.images;
  }
  const first = rates.slice(0, 2).reduce((a, r) => a + r.images, 0) / (rates.slice(0, 2).reduce((a, r) => a + r.ms, 0) / 1000);
  const last = rates.slice(-2).reduce((a, r) => a + r.images, 0) / (rates.slice(-2).reduce((a, r) => a + r.ms, 0) / 1000);
  console.log(`last 1,000 / first 1,000: ${(last / first).toFixed(2)}; first 1,000 / the package alone: ${(first / pkgRate).toFixed(2)}; last 1,000 / the package alone: ${(last / pkgRate).toFixed(2)}`);
  console.log(`longest main-thread task while adding: ${longest.ms.toFixed(0)} ms`);
  console.log(`saves: ${saves.length}, longest ${Math.max(0, ...saves.map((s) => s.ms)).toFixed(0)} ms, last ${saves.at(-1)?.ms.toFixed(0)} ms (${((saves.at(-1)?.bytes ?? 0) / 2 ** 20).toFixed(1)} MiB; serialising ${saves.at(-1)?.serialiseMs?.toFixed(0)} ms, storing the rest)`);
  console.log(`renderer memory (page + worker): ${memory.toFixed(0)} MiB; stored: ${(storage.usage / 2 ** 20).toFixed(1)} MiB`);
  console.log(`reload → ready: ${(ready / 1000).toFixed(1)} s; training with defaults: ${(trainMs / 1000).toFixed(1)} s; reload → first prediction: ${(firstPrediction / 1000).toFixed(1)} s`);
  await context.close();
} finally {
  await browser.close();
  proc.kill();
  fs.rmSync(dir, { recursive: true, force: true });
}
