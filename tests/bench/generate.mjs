// What the adding benchmarks (pool.mjs, page-adding.mjs, scale.mjs) share: photo-like test
// JPEGs made in the browser (seeded; nothing is stored in the repository), the package alone
// timed on a list of files, the CPU time of the browser's processes, medians.

import fs from 'node:fs';

/**
 * Make `n` seeded photo-like JPEGs of 1152×864 (~1 MP: gradients, discs and noise, quality 0.9)
 * in `page` (any page of ours), handing each to `onImage(i, bytes: Buffer)`.
 */
export async function generateJpegs(page, n, onImage) {
  for (let i = 0; i < n; i++) {
    const base64 = await page.evaluate(async (index) => {
      let seed = 12345 + 7919 * index;
      const rand = () => (seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32;
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
      const bytes = new Uint8Array(await (await canvas.convertToBlob({ type: 'image/jpeg', quality: 0.9 })).arrayBuffer());
      let text = '';
      for (let k = 0; k < bytes.length; k += 0x8000) text += String.fromCharCode(...bytes.subarray(k, k + 0x8000));
      return btoa(text);
    }, i);
    onImage(i, Buffer.from(base64, 'base64'));
  }
}

/**
 * The package alone, ready to be timed: a harness page of `url` (served from the repository
 * root) holding `files` (paths) in a file input, and a fresh `Tuner.create({ backend: 'cpu' })`
 * (default workers). `timeAddImages(page)` then times one `addImages` of every file.
 */
export async function packagePage(browser, url, files) {
  const page = await browser.newPage();
  await page.goto(`${url}/tests/browser/harness.html`);
  await page.waitForFunction(() => window.harnessReady === true, null, { timeout: 60_000 });
  await page.evaluate(() => document.body.append(Object.assign(document.createElement('input'), { type: 'file', multiple: true, id: 'files' })));
  await page.setInputFiles('#files', files);
  await page.evaluate(async () => {
    window.tuner = await window.headtune.Tuner.create({ backend: 'cpu' });
  });
  return page;
}

/**
 * Seconds one `addImages` of every file of a `packagePage` takes (with `thumbnails`, addImages'
 * option of that name: e.g. what the page asks for); every file must be added.
 */
export function timeAddImages(page, { thumbnails = false } = {}) {
  return page.evaluate(async (thumbnails) => {
    const list = [...document.getElementById('files').files];
    const t0 = performance.now();
    const r = await window.tuner.addImages('all', list, thumbnails ? { thumbnails } : {});
    if (r.added !== list.length) throw new Error(`added ${r.added} of ${list.length}`);
    return (performance.now() - t0) / 1000;
  }, thumbnails);
}

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
    for (let p = pid, hops = 0; p > 1 && hops < 64; p = procs.get(p)?.ppid ?? 0, hops++) if (p === root) return true;
    return false;
  };
  let total = 0;
  for (const [pid, p] of procs) if (pid !== root && inTree(pid)) total += p.cpu;
  return total;
}

export const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

/**
 * CPU seconds used so far by the threads of every process descended from this one, summed by
 * thread name (`CrRendererMain`, `DedicatedWorker`, `ThreadPoolForeg`…): where the time goes.
 */
export function threadCpuSeconds(root = process.pid) {
  const parent = new Map();
  const pids = fs.readdirSync('/proc').filter((d) => /^\d+$/.test(d)).map(Number);
  for (const pid of pids) {
    try {
      const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
      parent.set(pid, Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
    } catch {
      // the process ended meanwhile
    }
  }
  const inTree = (pid) => {
    for (let p = parent.get(pid) ?? 0, hops = 0; p > 1 && hops < 64; p = parent.get(p) ?? 0, hops++) if (p === root) return true;
    return false;
  };
  const out = {};
  for (const pid of pids.filter(inTree)) {
    let tids = [];
    try {
      tids = fs.readdirSync(`/proc/${pid}/task`);
    } catch {
      continue;
    }
    for (const tid of tids) {
      try {
        const stat = fs.readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
        const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')')).replace(/[\d/]+$/, '');
        const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
        out[name] = (out[name] ?? 0) + (Number(f[11]) + Number(f[12])) / 100;
      } catch {
        // the thread ended meanwhile
      }
    }
  }
  return out;
}

/** Per-image milliseconds by thread name between two `threadCpuSeconds()` readings (≥ 1 ms). */
export function threadBreakdown(before, after, images) {
  return Object.entries(after)
    .map(([k, v]) => [k, (1000 * (v - (before[k] ?? 0))) / images])
    .filter(([, ms]) => ms >= 1)
    .sort((a, b) => b[1] - a[1])
    .map(([k, ms]) => `${k} ${ms.toFixed(0)}`)
    .join(', ');
}
