// Benchmark (not a test): embedding images/s per backend at batch 1 and 16, cold start and
// head-training time, measured by www/bench.html in headless Chromium; the native CLI's
// `headtune bench` alongside when the binary exists.
//
// Usage: node tests/browser/bench.mjs [--backends cpu,webgpu] [--rounds 3] [--ort]
//   --ort  also run the peer, ONNX Runtime Web's single-thread wasm backend, on the same network:
//          needs `npm install --no-save onnxruntime-web` here and
//          `python3 tests/browser/peer/export_onnx.py` (pip install onnx) first.

import fs from 'node:fs';
import { parseArgs } from 'node:util';
import { startServer, launch, cli, CLI, ROOT } from './helpers.mjs';

const { values } = parseArgs({
  options: {
    backends: { type: 'string', default: 'cpu,webgpu' },
    rounds: { type: 'string', default: '3' },
    ort: { type: 'boolean', default: false },
  },
});

const server = await startServer();
const browser = await launch();
try {
  const page = await browser.newPage();
  page.on('pageerror', (e) => console.error(`[page error] ${e.message}`));
  let url = `${server.url}/www/bench.html?backends=${values.backends}&rounds=${values.rounds}&image=/tests/fixtures/chelsea.png`;
  if (values.ort) {
    for (const f of ['target/peer/efficientnet_lite0.onnx', 'tests/browser/node_modules/onnxruntime-web/dist/ort.wasm.min.mjs']) {
      if (!fs.existsSync(`${ROOT}/${f}`)) throw new Error(`--ort needs ${f} (see the comment at the top of bench.mjs)`);
    }
    url += '&ort=/target/peer/efficientnet_lite0.onnx&ortlib=/tests/browser/node_modules/onnxruntime-web/dist/';
  }
  await page.goto(url);
  page.setDefaultTimeout(0);
  const result = await page.evaluate(() => window.benchResult);
  if (result.error) throw new Error(result.error);
  console.log(`\nheadtune in ${await browser.version()} (headless)\n`);
  console.log('backend  cold start   batch   images/s   ms/image');
  for (const b of result.backends) {
    if (b.error) {
      console.log(`${b.backend.padEnd(8)} unavailable: ${b.error}`);
      continue;
    }
    for (const e of b.embed) {
      console.log(
        `${b.backend.padEnd(8)} ${`${b.coldStartMs.toFixed(0)} ms`.padStart(10)}   ${String(e.batch).padStart(5)}   ${e.imagesPerSecond.toFixed(2).padStart(8)}   ${(1000 / e.imagesPerSecond).toFixed(1).padStart(8)}`,
      );
    }
    if (b.reason) console.log(`         (${b.reason}; first embedding after create: ${b.firstEmbedMs.toFixed(0)} ms)`);
  }
  if (result.training) {
    console.log(`\nhead training (CPU, linear, ${result.training.examples} images, ${result.training.epochs} epochs): ${result.training.ms.toFixed(0)} ms`);
  }
  if (fs.existsSync(CLI)) {
    try {
      const native = JSON.parse(cli(['bench', '--json', '--threads', '1']));
      console.log(`\nnative CLI (debug build of our crate, 1 thread): ${JSON.stringify(native)}`);
    } catch (e) {
      console.log(`\nnative CLI bench unavailable: ${e.message.split('\n')[0]}`);
    }
  }
} finally {
  await browser.close();
  server.close();
}
