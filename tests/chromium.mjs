// What the browser suites (tests/browser, tests/e2e) share, with no npm dependency so each suite
// keeps its own playwright-core: the Chromium flags known to work on these machines and the
// static server they drive.

import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import fs from 'node:fs';
import path from 'node:path';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** Flags known to work here (shared/docs/TOOLCHAIN.md); WebGPU is SwiftShader without a GPU. */
export const CHROMIUM_ARGS = [
  '--enable-unsafe-webgpu',
  '--no-sandbox',
  '--disable-gpu-sandbox',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-quic',
];

/**
 * Serve `root` with www/serve.py on a free loopback port, logging every request to `log`
 * (truncated first). Resolves to { url, proc } once the server prints its address.
 */
export function serveStatic({ root, log }) {
  fs.mkdirSync(path.dirname(log), { recursive: true });
  fs.rmSync(log, { force: true });
  return new Promise((resolve, reject) => {
    const proc = spawn('python3', [path.join(ROOT, 'www/serve.py'), '--port', '0', '--root', root, '--log', log], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    proc.on('error', reject);
    proc.on('exit', (code) => reject(new Error(`server exited with ${code}`)));
    proc.stdout.setEncoding('utf8');
    proc.stdout.on('data', (line) => {
      const m = line.match(/http:\/\/127\.0\.0\.1:(\d+)\//);
      if (m) resolve({ url: `http://127.0.0.1:${m[1]}`, proc });
    });
  });
}

/**
 * Record `page`'s long main-thread tasks (> 50 ms) from its first script on, as
 * `window.__longTasks` (`{ start, ms }`, page clock); with `frames`, also its long animation
 * frames with the scripts behind them as `window.__frames` (what a long task was).
 */
export function recordLongTasks(page, { frames = false } = {}) {
  return page.addInitScript((frames) => {
    window.__longTasks = [];
    new PerformanceObserver((list) => window.__longTasks.push(...list.getEntries().map((e) => ({ start: e.startTime, ms: e.duration })))).observe({ type: 'longtask', buffered: true });
    if (!frames) return;
    window.__frames = [];
    new PerformanceObserver((list) => window.__frames.push(...list.getEntries().map((e) => ({ start: e.startTime, ms: e.duration, scripts: e.scripts.map((x) => `${x.invoker} ${x.sourceFunctionName}@${x.sourceURL.split('/').pop()}:${x.sourceCharPosition} ${x.duration.toFixed(0)}ms`) })))).observe({ type: 'long-animation-frame', buffered: true });
  }, frames);
}

/** The long tasks recorded by `recordLongTasks` that began between `from` and `to` (page clock). */
export function longTasksBetween(page, from, to) {
  return page.evaluate(([a, b]) => window.__longTasks.filter((t) => t.start >= a && t.start <= b), [from, to]);
}
