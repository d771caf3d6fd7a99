// Shared plumbing of the browser tests and the benchmark: a static server over the repository,
// Debian Chromium through playwright-core, and the native CLI.

import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { ROOT, CHROMIUM_ARGS, serveStatic } from '../chromium.mjs';

export { ROOT, CHROMIUM_ARGS };
export const CLI = path.join(ROOT, 'target/debug/headtune');

/** Serve the repository root on a free port; resolves to { url, logFile, close }. */
export async function startServer() {
  const logFile = path.join(ROOT, 'tests/output', `requests-${process.pid}.log`);
  const { url, proc } = await serveStatic({ root: ROOT, log: logFile });
  const close = () => {
    proc.kill();
    fs.rmSync(logFile, { force: true });
  };
  return { url, logFile, close };
}

/** Launch headless Debian Chromium. */
export async function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: CHROMIUM_ARGS,
  });
}

/** Open the harness page; console errors are echoed so failures explain themselves. */
export async function openHarness(browser, baseUrl) {
  const page = await browser.newPage();
  // Every request the page and its workers make, to check nothing leaves the origin.
  page.requests = [];
  page.context().on('request', (r) => page.requests.push(`${r.method()} ${r.url()}`));
  page.on('pageerror', (e) => console.error(`[page error] ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warning') console.error(`[browser ${m.type()}] ${m.text()}`);
  });
  await page.goto(`${baseUrl}/tests/browser/harness.html`);
  await page.waitForFunction(() => window.harnessReady === true, null, { timeout: 30000 });
  return page;
}

/** Run the native CLI; returns stdout (throws with stderr on failure). */
export function cli(args, { allowFail = false } = {}) {
  const r = spawnSync(CLI, args, { encoding: 'utf8', cwd: ROOT, maxBuffer: 64 << 20 });
  if (r.error) throw r.error;
  if (r.status !== 0 && !allowFail) {
    throw new Error(`headtune ${args.join(' ')} exited with ${r.status}:\n${r.stderr}`);
  }
  return r.stdout;
}

/** The JSON lines a CLI command printed. */
export function jsonLines(out) {
  return out
    .split('\n')
    .filter((l) => l.trim().startsWith('{'))
    .map((l) => JSON.parse(l));
}

/** Largest absolute elementwise difference of two equal-length arrays. */
export function maxAbsDiff(a, b) {
  if (a.length !== b.length) throw new Error(`length ${a.length} ≠ ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}
