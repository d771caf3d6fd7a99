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

/** CPU seconds (user + system) used so far by every process descended from this one. */
export function treeCpuSeconds(root = process.pid) {
  const tick = 100; // USER_HZ on Linux
  const procs = new Map();
  for (const pid of fs.readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      procs.set(Number(pid), { ppid: Number(fields[1]), cpu: (Number(fields[11]) + Number(fields[12])) / tick });
    } catch {
      // the process ended meanwhile
    }
  }
  const inTree = (pid) => {
    for (let p = pid; p > 1; p = procs.get(p)?.ppid ?? 0) if (p === root) return true;
    return false;
  };
  let total = 0;
  for (const [pid, p] of procs) if (pid !== root && inTree(pid)) total += p.cpu;
  return total;
}

/** CPU seconds by thread name over the browser's processes (where the time goes). */
function threadCpu(root = process.pid) {
  const out = {};
  for (const pid of fs.readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    let ppid;
    try {
      const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
      ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    } catch {
      continue;
    }
    if (ppid !== root && !isDescendant(Number(pid), root)) continue;
    let tasks = [];
    try {
      tasks = fs.readdirSync(`/proc/${pid}/task`);
    } catch {
      continue;
    }
    for (const tid of tasks) {
      try {
        const stat = fs.readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
        const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')')).replace(/\d+$/, '');
        const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
        out[name] = (out[name] ?? 0) + (Number(f[11]) + Number(f[12])) / 100;
      } catch {
        // the thread ended meanwhile
      }
    }
  }
  return out;
}

function isDescendant(pid, root) {
  for (let p = pid, i = 0; p > 1 && i < 64; i++) {
    if (p === root) return true;
    try {
      const stat = fs.readFileSync(`/proc/${p}/stat`, 'utf8');
      p = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    } catch {
      return false;
    }
  }
  return false;
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

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
  await page.evaluate(async ({ n, configs, views }) => {
    window.bench = { images: await generateImages(n), tuners: {} };
    for (const workers of configs) {
      const tuner = await window.headtune.Tuner.create({ backend: 'cpu', workers, augment: { views } });
      // Warm-up: the crop decided, the pool started, everything allocated once.
      await tuner.addImages('warm-up', window.bench.images.slice(0, Math.min(4 * workers, n)));
      await window.testing.pool(tuner);
      window.bench.tuners[workers] = tuner;
    }

    /** `n` seeded photo-like JPEGs of 1152×864 (~1 MP): gradients, shapes and noise. */
    async function generateImages(count) {
      let seed = 12345;
      const rand = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);
      const out = [];
      for (let i = 0; i < count; i++) {
        const canvas = new OffscreenCanvas(1152, 864);
        const ctx = canvas.getContext('2d');
        const g = ctx.createLinearGradient(0, 0, 1152, 864);
        g.addColorStop(0, `hsl(${rand() * 360},60%,${30 + rand() * 40}%)`);
        g.addColorStop(1, `hsl(${rand() * 360},60%,${30 + rand() * 40}%)`);
        ctx.fillStyle = g;
        ctx.fillRect(0, 0, 1152, 864);
        for (let k = 0; k < 40; k++) {
          ctx.fillStyle = `hsla(${rand() * 360},70%,${20 + rand() * 60}%,0.7)`;
          ctx.beginPath();
          ctx.arc(rand() * 1152, rand() * 864, 10 + rand() * 200, 0, 2 * Math.PI);
          ctx.fill();
        }
        const px = ctx.getImageData(0, 0, 1152, 864);
        for (let p = 0; p < px.data.length; p += 4) {
          const d = (rand() - 0.5) * 24;
          px.data[p] += d;
          px.data[p + 1] += d;
          px.data[p + 2] += d;
        }
        ctx.putImageData(px, 0, 0);
        out.push(new File([await canvas.convertToBlob({ type: 'image/jpeg', quality: 0.9 })], `gen-${i}.jpg`, { type: 'image/jpeg' }));
      }
      return out;
    }
  }, { n: N, configs: CONFIGS, views: VIEWS });
  const bytes = await page.evaluate(() => window.bench.images.reduce((s, f) => s + f.size, 0));
  console.log(`images: ${(bytes / N / 1024).toFixed(0)} KiB each on average`);

  const runs = Object.fromEntries(CONFIGS.map((w) => [w, []]));
  for (let r = 0; r < ROUNDS; r++) {
    for (const workers of CONFIGS) {
      const cpu0 = treeCpuSeconds();
      const threads0 = process.env.THREADS ? threadCpu() : {};
      const seconds = await page.evaluate(async (w) => {
        const t0 = performance.now();
        const out = await window.bench.tuners[w].addImages(`round`, window.bench.images);
        if (out.added !== window.bench.images.length) throw new Error(`added ${out.added}`);
        return (performance.now() - t0) / 1000;
      }, workers);
      const cpu = treeCpuSeconds() - cpu0;
      if (process.env.THREADS) {
        const t1 = threadCpu();
        console.log('    ' + Object.entries(t1).map(([k, v]) => [k, v - (threads0[k] ?? 0)]).filter(([, v]) => v > 0.05).map(([k, v]) => `${k} ${(1000 * v / N).toFixed(0)}`).join(', '));
      }
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
