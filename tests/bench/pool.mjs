// Benchmark (not a test): every core for addImages. Generates N photo-like JPEGs of about 1
// megapixel in the browser (seeded; nothing is stored), then adds them with
// `Tuner.create({ backend: 'cpu', workers: 1 })` and `workers: 2` (or `--workers a,b,…`) in
// interleaved rounds (1, 2, 1, 2 …) on tuners that were warmed up first (pool started, one add
// done), and prints per configuration the median adding rate, its spread, and the CPU time the
// browser's processes used per image (the machine may be shared: the CPU column does not depend
// on what else runs), plus the wasm memory of each worker.
//
// Usage: node tests/bench/pool.mjs [--images 40] [--rounds 5] [--workers 1,2] [--views 0]
// Needs www/pkg (bash www/build.sh) and tests/browser's playwright-core (npm ci in tests/browser).

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { CHROMIUM_ARGS, ROOT, serveStatic } from '../chromium.mjs';
import { treeCpuSeconds, generateJpegs, median } from './generate.mjs';

const { chromium } = await import(path.join(ROOT, 'tests/browser/node_modules/playwright-core/index.mjs'));

const { values } = parseArgs({
  options: {
    images: { type: 'string', default: '40' },
    rounds: { type: 'string', default: '5' },
    workers: { type: 'string', default: '1,2' },
    views: { type: 'string', default: '0' },
  },
});
const N = Number(values.images);
const ROUNDS = Number(values.rounds);
const CONFIGS = values.workers.split(',').map(Number);
const VIEWS = Number(values.views);

const log = path.join(os.tmpdir(), `headtune-pool-bench-${process.pid}.log`);
const { url, proc } = await serveStatic({ root: ROOT, log });
const browser = await chromium.launch({ executablePath: process.env.CHROMIUM || '/usr/bin/chromium', headless: true, args: CHROMIUM_ARGS });
try {
  const page = await browser.newPage();
  page.on('pageerror', (e) => console.error(`[page error] ${e.message}`));
  await page.goto(`${url}/tests/browser/harness.html`);
  await page.waitForFunction(() => window.harnessReady === true, null, { timeout: 30000 });
  const cores = await page.evaluate(() => navigator.hardwareConcurrency);
  console.log(`${N} generated JPEGs of ~1 MP, ${ROUNDS} interleaved rounds of workers ${CONFIGS.join(' / ')}, augmented views ${VIEWS}; navigator.hardwareConcurrency = ${cores}, os.cpus() = ${os.cpus().length}, load ${os.loadavg().map((l) => l.toFixed(1)).join(' ')}`);
  const images = [];
  await generateJpegs(page, N, (i, bytes) => images.push(bytes.toString('base64')));
  await page.evaluate(async ({ n, configs, views, images }) => {
    const files = images.map((b64, i) => new File([Uint8Array.from(atob(b64), (c) => c.charCodeAt(0))], `gen-${i}.jpg`, { type: 'image/jpeg' }));
    window.bench = { images: files, tuners: {} };
    for (const workers of configs) {
      const tuner = await window.headtune.Tuner.create({ backend: 'cpu', workers, augment: { views } });
      // Warm-up: the crop decided, the pool started, everything allocated once.
      await tuner.addImages('warm-up', window.bench.images.slice(0, Math.min(4 * workers, n)));
      await window.testing.pool(tuner);
      window.bench.tuners[workers] = tuner;
    }
  }, { n: N, configs: CONFIGS, views: VIEWS, images });
  const bytes = await page.evaluate(() => window.bench.images.reduce((s, f) => s + f.size, 0));
  console.log(`images: ${(bytes / N / 1024).toFixed(0)} KiB each on average`);

  const runs = Object.fromEntries(CONFIGS.map((w) => [w, []]));
  for (let r = 0; r < ROUNDS; r++) {
    for (const workers of CONFIGS) {
      const cpu0 = treeCpuSeconds();
      const seconds = await page.evaluate(async (w) => {
        const t0 = performance.now();
        const out = await window.bench.tuners[w].addImages(`round`, window.bench.images);
        if (out.added !== window.bench.images.length) throw new Error(`added ${out.added}`);
        return (performance.now() - t0) / 1000;
      }, workers);
      const cpu = treeCpuSeconds() - cpu0;
      runs[workers].push({ rate: N / seconds, cpuPerImage: (1000 * cpu) / N });
      console.log(`  round ${r + 1}, workers ${workers}: ${(N / seconds).toFixed(1)} images/s, ${((1000 * cpu) / N).toFixed(0)} ms CPU per image, load ${os.loadavg()[0].toFixed(1)}`);
    }
  }
  const memory = await page.evaluate(async (configs) => {
    const out = {};
    for (const w of configs) {
      const t = window.bench.tuners[w];
      out[w] = { engine: await window.testing.memory(t), pool: (await window.testing.pool(t)).memory };
    }
    return out;
  }, CONFIGS);
  console.log('\nworkers | images/s (median, min–max) | × workers 1 | CPU ms / image (median) | wasm memory per worker');
  const base = median(runs[CONFIGS[0]].map((x) => x.rate));
  for (const w of CONFIGS) {
    const rates = runs[w].map((x) => x.rate);
    const m = median(rates);
    const mem = [memory[w].engine, ...memory[w].pool].map((b) => `${(b / 2 ** 20).toFixed(0)} MiB`).join(' + ');
    console.log(`${w} | ${m.toFixed(1)} (${Math.min(...rates).toFixed(1)}–${Math.max(...rates).toFixed(1)}) | ${(m / base).toFixed(2)} | ${median(runs[w].map((x) => x.cpuPerImage)).toFixed(0)} | ${mem}`);
  }
} finally {
  await browser.close();
  proc.kill();
  fs.rmSync(log, { force: true });
}
