// The hostile-input corpus through the browser engine (the wasm package, www/pkg) under Node.
//
// Every file runs in a worker thread that the main thread terminates if it takes longer than
// --timeout seconds (a hang); a wasm trap (`RuntimeError: unreachable`, i.e. a Rust panic) counts
// as a crash and the worker is replaced, since a trapped instance cannot be trusted. For every file:
//   images         engine.embed(bytes): an embedding, or an Error with a `code`
//   model files    Engine.loadModel(...), then predict on a small image
//   project files  Engine.loadProject(...), then what the page does next: classes, examples,
//                  addImage (uses the project's augment settings), train 2 epochs, predict,
//                  saveProject → loadProject again
// Outcomes must match the native CLI's (native.json from run.py: accepted vs refused, same code),
// and the wasm memory (which only grows) must stay under --memory-limit-mb.
//
// Usage: node tests/hostile/wasm.mjs --corpus DIR [--pkg www/pkg] [--timeout 120]

import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '../..');

function args() {
  const a = { corpus: null, pkg: path.join(ROOT, 'www/pkg'), timeout: 120, memoryLimitMb: 1536 };
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--corpus') a.corpus = argv[++i];
    else if (argv[i] === '--pkg') a.pkg = argv[++i];
    else if (argv[i] === '--timeout') a.timeout = Number(argv[++i]);
    else if (argv[i] === '--memory-limit-mb') a.memoryLimitMb = Number(argv[++i]);
  }
  if (!a.corpus) throw new Error('usage: node tests/hostile/wasm.mjs --corpus DIR [--pkg www/pkg]');
  return a;
}

// ------------------------------------------------------------------------------- worker side

async function workerMain() {
  const { pkg, corpus, weightsPath, probePath } = workerData;
  const mod = await import(pathToFileURL(path.join(pkg, 'headtune.js')).href);
  const exports = mod.initSync({ module: fs.readFileSync(path.join(pkg, 'headtune_bg.wasm')) });
  const weights = fs.readFileSync(weightsPath);
  const probe = new Uint8Array(fs.readFileSync(probePath));
  const { Engine } = mod;
  let imageEngine = null;
  const memory = () => exports.memory.buffer.byteLength;

  // An Error from the engine has a code; anything else (RuntimeError: unreachable, TypeError)
  // is a crash of the engine.
  const classify = (e) => (e && typeof e.code === 'string' ? { code: e.code, message: e.message } : { crash: String(e?.stack ?? e) });

  async function step(steps, name, f) {
    try {
      const v = await f();
      steps.push(name);
      return { ok: true, v };
    } catch (e) {
      const c = classify(e);
      steps.push(`${name}:${c.code ?? 'CRASH'}`);
      if (c.crash) throw Object.assign(new Error(c.crash), { crashed: true });
      return { ok: false, c };
    }
  }

  async function exercise(engine, steps) {
    // What the page does with a loaded project or model, so that nothing in the file can make a
    // later call panic either.
    const classes = engine.classes();
    steps.push(`classes:${classes.length}`);
    engine.exampleColumns();
    if (engine.hasModel) await step(steps, 'predict', () => engine.predict(probe, 0, 0, undefined, 3, true));
    if (classes.length > 0) {
      await step(steps, 'addImage', () => engine.addImage(classes[0].name, 'probe.png', probe, 0, 0, undefined));
      await step(steps, 'train', () => engine.train({ epochs: 2, validationSplit: 0 }, () => {}, () => false, () => Promise.resolve()));
    }
    const saved = await step(steps, 'saveProject', () => engine.saveProject(undefined));
    if (saved.ok) {
      const again = await step(steps, 'reload', () => Engine.loadProject(weights, 'cpu', saved.v));
      if (again.ok) again.v.free();
    }
  }

  parentPort.on('message', async ({ entry }) => {
    const bytes = new Uint8Array(fs.readFileSync(path.join(corpus, entry.path)));
    const before = memory();
    const result = { path: entry.path, steps: [] };
    try {
      if (entry.path.startsWith('images/')) {
        imageEngine ??= await Engine.create(weights, 'cpu');
        const r = await step(result.steps, 'embed', () => imageEngine.embed(bytes, 0, 0, undefined));
        if (r.ok) {
          result.outcome = 'accepted';
          if (r.v.length !== 1280 || !r.v.every(Number.isFinite)) result.problem = `embedding of ${r.v.length} values, finite: ${r.v.every(Number.isFinite)}`;
        } else Object.assign(result, { outcome: 'rejected', code: r.c.code, message: r.c.message });
      } else {
        const isProject = bytes.length > 10 && bytes[10] === 2;
        const load = isProject ? () => Engine.loadProject(weights, 'cpu', bytes) : () => Engine.loadModel(weights, 'cpu', bytes);
        const r = await step(result.steps, isProject ? 'loadProject' : 'loadModel', load);
        if (r.ok) {
          result.outcome = 'accepted';
          try {
            await exercise(r.v, result.steps);
          } finally {
            r.v.free();
          }
        } else Object.assign(result, { outcome: 'rejected', code: r.c.code, message: r.c.message });
      }
    } catch (e) {
      result.outcome = 'crash';
      result.problem = String(e.message).slice(0, 400);
    }
    result.memoryGrowth = memory() - before;
    result.memory = memory();
    parentPort.postMessage(result);
    if (result.outcome === 'crash') process.exit(0); // the instance is not to be trusted now
  });
  parentPort.postMessage({ ready: true });
}

// ------------------------------------------------------------------------------- main side

async function main() {
  const a = args();
  const manifest = JSON.parse(fs.readFileSync(path.join(a.corpus, 'manifest.json'), 'utf8'));
  const nativePath = path.join(a.corpus, 'native.json');
  const native = fs.existsSync(nativePath)
    ? new Map(JSON.parse(fs.readFileSync(nativePath, 'utf8')).results.map((r) => [r.path, r]))
    : new Map();
  const probePath = path.join(ROOT, 'tests/fixtures/coffee.png');
  const weightsPath = path.join(a.pkg, 'efficientnet_lite0.safetensors');
  const entries = manifest.entries;
  const results = [];
  let worker = null;
  let pending = null;

  const start = () =>
    new Promise((resolve, reject) => {
      worker = new Worker(fileURLToPath(import.meta.url), { workerData: { pkg: a.pkg, corpus: a.corpus, weightsPath, probePath } });
      worker.once('error', reject);
      worker.on('message', (m) => {
        if (m.ready) resolve();
        else if (pending) pending(m);
      });
    });

  const started = Date.now();
  for (const entry of entries) {
    if (!worker) await start();
    const result = await new Promise((resolve) => {
      const timer = setTimeout(() => {
        pending = null;
        worker.terminate();
        worker = null;
        resolve({ path: entry.path, outcome: 'hang', steps: [], problem: `no answer within ${a.timeout} s` });
      }, a.timeout * 1000);
      pending = (m) => {
        clearTimeout(timer);
        pending = null;
        resolve(m);
      };
      worker.postMessage({ entry });
    });
    if (result.outcome === 'crash' && worker) {
      await worker.terminate();
      worker = null;
    }
    results.push(judge(entry, result, native.get(entry.path), a));
  }
  if (worker) await worker.terminate();

  fs.writeFileSync(path.join(a.corpus, 'wasm.json'), JSON.stringify({ results }, null, 1));
  console.log(table(results, `Browser engine (wasm in Node, ${((Date.now() - started) / 1000).toFixed(0)} s):`));
  const failures = results.filter((r) => r.problems.length);
  for (const r of failures.slice(0, 40)) console.log(`FAIL ${r.path} [${r.steps.join(' ')}]: ${r.problems.join('; ')}`);
  if (failures.length) {
    console.log(`${failures.length} of ${results.length} files failed their checks`);
    process.exit(1);
  }
  console.log(`all ${results.length} files as required`);
}

const SPECIFIC = new Set(['EmptyFile', 'UnsupportedFormat', 'TooLarge', 'NoPixels', 'Corrupt', 'MemoryLimit', 'ModelFile', 'InvalidArgument', 'Data']);

function judge(entry, r, nat, a) {
  const problems = [];
  if (r.outcome === 'crash') problems.push(`engine crashed: ${r.problem}`);
  if (r.outcome === 'hang') problems.push(r.problem);
  if (r.problem && r.outcome === 'accepted') problems.push(r.problem);
  if (r.memory > a.memoryLimitMb * 2 ** 20) problems.push(`wasm memory ${(r.memory / 2 ** 20).toFixed(0)} MB above ${a.memoryLimitMb} MB`);
  if (r.outcome === 'rejected' && !SPECIFIC.has(r.code)) problems.push(`unspecific error ${r.code}: ${r.message}`);
  const crashedLater = r.steps.some((s) => s.endsWith(':CRASH'));
  if (crashedLater && r.outcome !== 'crash') problems.push(`a later call crashed: ${r.steps.join(' ')}`);
  if (entry.expect === 'ok' && r.outcome !== 'accepted') problems.push(`expected to be accepted, got ${r.outcome} ${r.code ?? ''}: ${r.message ?? ''}`);
  if (entry.expect === 'error') {
    if (r.outcome !== 'rejected') problems.push(`expected an error, got ${r.outcome}`);
    else if (entry.code && r.code !== entry.code) problems.push(`expected ${entry.code}, got ${r.code}: ${r.message}`);
  }
  // The same file must get the same answer natively and in the browser.
  if (nat && ['accepted', 'rejected'].includes(r.outcome) && (nat.outcome !== r.outcome || (r.outcome === 'rejected' && nat.code !== r.code))) {
    problems.push(`native said ${nat.outcome} ${nat.code ?? ''}, wasm ${r.outcome} ${r.code ?? ''}`);
  }
  return { ...r, group: entry.group, problems };
}

function table(results, title) {
  const groups = new Map();
  for (const r of results) {
    const g = groups.get(r.group) ?? { n: 0, accepted: 0, rejected: 0, crash: 0, hang: 0, failed: 0, growth: 0, codes: {} };
    g.n++;
    g[r.outcome]++;
    if (r.outcome === 'rejected') g.codes[r.code] = (g.codes[r.code] ?? 0) + 1;
    g.failed += r.problems.length > 0;
    g.growth = Math.max(g.growth, r.memoryGrowth ?? 0);
    groups.set(r.group, g);
  }
  const lines = [title, '', '| group | files | accepted | refused (by error) | crashes | hangs | max wasm memory growth | failed checks |', '|---|---|---|---|---|---|---|---|'];
  const total = { n: 0, accepted: 0, rejected: 0, crash: 0, hang: 0, failed: 0, growth: 0 };
  for (const [name, g] of groups) {
    const codes = Object.entries(g.codes).sort((x, y) => y[1] - x[1]).map(([c, n]) => `${c} ${n}`).join(', ');
    lines.push(`| ${name} | ${g.n} | ${g.accepted} | ${g.rejected}${codes ? ` (${codes})` : ''} | ${g.crash} | ${g.hang} | ${(g.growth / 2 ** 20).toFixed(0)} MB | ${g.failed} |`);
    for (const k of Object.keys(total)) total[k] = k === 'growth' ? Math.max(total[k], g[k]) : total[k] + g[k];
  }
  const peak = Math.max(...results.map((r) => r.memory ?? 0));
  lines.push(`| **all** | ${total.n} | ${total.accepted} | ${total.rejected} | ${total.crash} | ${total.hang} | ${(total.growth / 2 ** 20).toFixed(0)} MB (peak ${(peak / 2 ** 20).toFixed(0)} MB) | ${total.failed} |`);
  return lines.join('\n');
}

if (isMainThread) {
  main().catch((e) => {
    console.error(e);
    process.exit(2);
  });
} else {
  workerMain();
}
