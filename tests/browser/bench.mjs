// Benchmark (not a test): embedding images/s per backend at batch 1 and 16, cold start and
// head-training time, measured by www/bench.html in headless Chromium; the native CLI's
// `headtune bench` alongside when the binary exists.
//
// Usage: node tests/browser/bench.mjs [--backends cpu,webgpu|none] [--rounds 3]
//                                     [--peers | --ort | --tfjs] [--compare-rounds 7] [--min-time 1]
//   --peers  three engines, one run: headtune's CPU backend (1 thread), ONNX Runtime Web's wasm
//            backend (1 thread) and TensorFlow.js's wasm backend (XNNPACK, SIMD, 1 thread) on the
//            same network and weights, interleaved, with their embeddings compared
//            (www/bench.html, runCompare). --ort / --tfjs: one peer only.
//            The peers are installed on request only, outside the test setup: the npm packages
//            into target/peer/node_modules (`npm install --no-save --prefix target/peer
//            onnxruntime-web@1.30.0 @tensorflow/tfjs-core@4.22.0 @tensorflow/tfjs-backend-wasm@4.22.0`,
//            run by this script when missing) and the ONNX export of our weights
//            (`python3 tests/browser/peer/export_onnx.py`, needs `pip install onnx`; run when missing).
//   Host load (/proc/loadavg) is printed before and after: the machine may be shared, and only the
//   interleaved ratios stay meaningful under load.

import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import { parseArgs } from 'node:util';
import { startServer, launch, cli, CLI, ROOT } from './helpers.mjs';

const { values } = parseArgs({
  options: {
    backends: { type: 'string', default: 'cpu,webgpu' },
    rounds: { type: 'string', default: '3' },
    peers: { type: 'boolean', default: false },
    ort: { type: 'boolean', default: false },
    tfjs: { type: 'boolean', default: false },
    'compare-rounds': { type: 'string', default: '7' },
    'min-time': { type: 'string', default: '1' },
  },
});
const wantOrt = values.peers || values.ort;
const wantTfjs = values.peers || values.tfjs;

const PEER_PACKAGES = ['onnxruntime-web@1.30.0', '@tensorflow/tfjs-core@4.22.0', '@tensorflow/tfjs-backend-wasm@4.22.0'];
const PEER_MODULES = `${ROOT}/target/peer/node_modules`;
const ONNX_MODEL = 'target/peer/efficientnet_lite0.onnx';

/** Install the peers' npm packages and export the ONNX model, where missing (asked for only). */
function ensurePeers() {
  const missing = [
    wantOrt && 'onnxruntime-web/dist/ort.wasm.min.mjs',
    wantTfjs && '@tensorflow/tfjs-core/dist/tf-core.min.js',
    wantTfjs && '@tensorflow/tfjs-backend-wasm/dist/tf-backend-wasm.min.js',
  ].filter((f) => f && !fs.existsSync(`${PEER_MODULES}/${f}`));
  if (missing.length) {
    console.log(`installing the peers into target/peer (${PEER_PACKAGES.join(' ')})`);
    fs.mkdirSync(`${ROOT}/target/peer`, { recursive: true });
    execFileSync('npm', ['install', '--no-save', '--no-package-lock', '--no-audit', '--no-fund', '--prefix', `${ROOT}/target/peer`, ...PEER_PACKAGES], { stdio: 'inherit' });
  }
  if (wantOrt && !fs.existsSync(`${ROOT}/${ONNX_MODEL}`)) {
    execFileSync('python3', [`${ROOT}/tests/browser/peer/export_onnx.py`, '--out', `${ROOT}/${ONNX_MODEL}`], { stdio: 'inherit' });
  }
}

const loadavg = () => fs.readFileSync('/proc/loadavg', 'utf8').trim();
const median = (v) => {
  const s = [...v].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

/** The three-engine table: medians, per-round spread, headtune's ratio to each peer. */
function printCompare(c) {
  console.log(`\n${c.engines.length} engines, one run: ${c.rounds} interleaved rounds of ≥ ${c.minSeconds} s per engine and batch, medians`);
  console.log('engine                                                      batch   images/s   ms/image   rounds min–max   headtune ÷ this (per round: min–max)');
  for (const batch of c.batches) {
    const h = c.perRound[`headtune/${batch}`];
    for (const e of c.engines) {
      const v = c.perRound[`${e.key}/${batch}`];
      let ratio = '';
      if (e.key !== 'headtune') {
        const each = v.map((x, i) => h[i] / x);
        ratio = `${(median(h) / median(v)).toFixed(2)} (${Math.min(...each).toFixed(2)}–${Math.max(...each).toFixed(2)})`;
      }
      console.log(
        `${e.label.padEnd(58)}  ${String(batch).padStart(5)}   ${median(v).toFixed(2).padStart(8)}   ${(1000 / median(v)).toFixed(1).padStart(8)}   ${`${Math.min(...v).toFixed(1)}–${Math.max(...v).toFixed(1)}`.padStart(14)}   ${ratio}`,
      );
    }
  }
  console.log(`cold start (create → ready): ${c.engines.map((e) => `${e.key} ${e.coldStartMs.toFixed(0)} ms`).join(', ')}`);
  console.log('agreement of the embeddings of the same 224×224 pixels (1280 values each):');
  for (const a of c.correctness) {
    console.log(`  ${a.a} vs ${a.b}: max |Δ| ${a.maxAbs.toExponential(2)}, cosine ${a.cosine.toFixed(7)}`);
  }
}

if (wantOrt || wantTfjs) ensurePeers();
const server = await startServer();
const browser = await launch();
try {
  const page = await browser.newPage();
  page.on('pageerror', (e) => console.error(`[page error] ${e.message}`));
  let url = `${server.url}/www/bench.html?backends=${values.backends}&rounds=${values.rounds}&image=/tests/fixtures/chelsea.png`;
  if (wantOrt) url += `&ort=/${ONNX_MODEL}&ortlib=/target/peer/node_modules/onnxruntime-web/dist/`;
  if (wantTfjs) url += '&tfjs=/target/peer/node_modules/@tensorflow/';
  if (wantOrt || wantTfjs) url += `&crounds=${values['compare-rounds']}&mintime=${values['min-time']}`;
  const loadBefore = loadavg();
  await page.goto(url);
  page.setDefaultTimeout(0);
  const result = await page.evaluate(() => window.benchResult);
  if (result.error) throw new Error(result.error);
  const loadAfter = loadavg();
  console.log(`\nheadtune in ${await browser.version()} (headless), ${(await page.evaluate(() => navigator.hardwareConcurrency))} logical CPUs`);
  console.log(`host load (/proc/loadavg) before: ${loadBefore}; after: ${loadAfter}`);
  if (result.backends.length) console.log('\nbackend  cold start   batch   images/s   ms/image');
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
  if (result.compare) printCompare(result.compare);
  if (result.compareError) throw new Error(`three-engine comparison failed: ${result.compareError}`);
  if (wantOrt || wantTfjs) {
    console.log('\nnative: python3 tests/bench/native_peers.py (headtune bench against onnxruntime)');
  } else if (fs.existsSync(CLI)) {
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
