// The dedicated worker of one Tuner or Classifier: owns the wasm instance and its Engine. A
// Tuner's extra pool workers (see pool.js) run this same script with an Embedder instead: a
// backbone without a project, which only decodes, preprocesses and embeds under the engine's
// view plan.
//
// Messages in:  { id, op, args } — handled one at a time, in order — and { op: 'abort', target }.
// Messages out: { id, type: 'progress' | 'epoch', … } while a call runs, then
//               { id, type: 'result', value, state } or { id, type: 'error', error, state }.
// `state` (backend, reason, classes, …) lets the main thread answer getters without a round trip.
// It holds only the fields that may have changed (the main thread merges it): `extra` — an
// app's data, which can be a large training report — is read and sent only after the calls that
// set it (init, saveProject, saveParts), so every other reply costs the same at 10 or 10,000 examples.

import init, { Engine, Embedder, fileFeatures } from '../pkg/headtune.js';
import { RELAXED_SIMD } from './simd.js';

/** How long to wait for `navigator.gpu.requestAdapter()`: it can hang with some flags/drivers. */
const ADAPTER_TIMEOUT_MS = 5000;
/** How long WebGPU device initialisation may take before we give up on it. */
const DEVICE_TIMEOUT_MS = 20000;

let wasm = null;
let engine = null;
/** A pool worker's backbone (`init` with kind 'embedder'); such a worker has no engine. */
let embedder = null;
let backendReason = '';
const aborted = new Set();
let queue = Promise.resolve();

self.onmessage = (e) => {
  const msg = e.data;
  if (msg.op === 'abort') {
    aborted.add(msg.target);
    return;
  }
  queue = queue.then(() => handle(msg));
};

/**
 * Set once the wasm instance has trapped (a Rust panic aborts): its memory may hold half-done
 * work and held borrows, so nothing touches it again. Every later call gets the same error.
 */
let crashed = null;

/** The calls after which `extra` may differ from what the main thread holds. */
const SETS_EXTRA = new Set(['init', 'saveProject', 'saveParts']);

/**
 * The pool's per-image calls, which change no state: their replies carry none (a state is seven
 * calls into the wasm, made for every image otherwise).
 */
const KEEPS_STATE = new Set(['embedViews', 'viewPlan']);

async function handle({ id, op, args }) {
  try {
    if (crashed) throw crashed;
    const value = await OPS[op](args, id);
    const changed = KEEPS_STATE.has(op) ? undefined : state(SETS_EXTRA.has(op));
    self.postMessage({ id, type: 'result', value, state: changed }, transferables(value));
  } catch (err) {
    if (err instanceof WebAssembly.RuntimeError && !crashed) {
      crashed = { message: `The headtune engine crashed (${err.message}) and was stopped; please report this. Open the project again (e.g. from its last save) to go on.`, code: 'EngineCrashed' };
    }
    const error = crashed ?? { message: String(err?.message ?? err), code: err?.code, detail: err?.detail };
    self.postMessage({ id, type: 'error', error, state: crashed ? lastState : state(SETS_EXTRA.has(op)) });
  } finally {
    aborted.delete(id);
  }
}

function transferables(value) {
  if (value?.thumbnails) return value.thumbnails.flatMap((t) => [t.thumb.buffer, t.preview.buffer]);
  if (value instanceof Uint8Array || value instanceof Float32Array) return [value.buffer];
  if (value?.columns) return [value.ids.buffer, value.classes.buffer, value.views.buffer];
  if (value?.put) return value.put.map(([, bytes]) => bytes.buffer);
  if (value?.views instanceof Float32Array) {
    const made = value.thumb ? [value.thumb.buffer, value.preview.buffer] : [];
    return [value.views.buffer, (value.image.bytes ?? value.image.rgba).buffer, ...made];
  }
  return [];
}

/** The state before an engine exists. */
const noEngineState = () => ({ backend: null, backendReason, classes: [], modelClasses: [], augment: {}, extra: null, features: {} });

/** The last state sent: what a crashed engine's replies carry (the instance is not asked again). */
let lastState = noEngineState();

/** The engine's state for a reply; `withExtra`: include `extra` (else the last one sent stands). */
function state(withExtra) {
  const now = currentState(withExtra);
  lastState = { ...lastState, ...now };
  return now;
}

function currentState(withExtra) {
  if (!engine) return noEngineState();
  return {
    backend: engine.backend,
    features: engine.features,
    decision: engine.decision,
    backendReason: engine.fallbackReason ?? backendReason,
    classes: engine.classes(),
    modelClasses: engine.modelClasses,
    augment: engine.augment,
    ...(withExtra ? { extra: engine.extra, savedGeneration: engine.savedGeneration ?? null } : {}),
  };
}

/**
 * The `rejected` entry of an image the engine refused. Errors with a code are about this image
 * (undecodable, too large…); anything else is the engine failing and must not be passed off as
 * a bad image: it is thrown on.
 */
function rejection(err, image) {
  if (!err?.code || err.code === 'Backend') throw err;
  return { name: image.name, reason: err.message, index: image.index, code: err.code, ...(err.detail ? { detail: err.detail } : {}) };
}

/** Let queued messages (an abort) run: resolves on a later macrotask. */
const yieldToEvents = () => new Promise((resolve) => setTimeout(resolve, 0));

function timeout(promise, ms, what) {
  let timer;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(codeError('Backend', `${what} did not answer within ${ms / 1000} s`)), ms);
    }),
  ]);
}

function checkAborted(id) {
  if (aborted.has(id)) throw codeError('Cancelled', 'cancelled');
}

/** An Error with a `code` (the JS-side codes of `HeadtuneError` in index.d.ts). */
function codeError(code, message) {
  const err = new Error(message);
  err.code = code;
  return err;
}

/** `fetch` whose failures say what was being downloaded, from where, with code `Network`. */
async function download(url, what, init) {
  let res;
  try {
    res = await fetch(url, init);
  } catch (e) {
    throw codeError('Network', `cannot download ${what} from ${url}: ${e.message} (offline, or another origin without CORS)`);
  }
  if (!res.ok) throw codeError('Network', `cannot download ${what} from ${url}: HTTP ${res.status}`);
  return res;
}

/**
 * Per-file and overall download progress of one `init`: each file's events
 * `{ status: 'initiate' | 'progress' | 'done', file, loaded, total }`, each followed by
 * `{ status: 'progress_total', loaded, total, progress }` over every file started so far.
 */
function progressTracker(progress) {
  const files = new Map();
  return (event) => {
    progress(event);
    if (event.loaded === undefined && event.status !== 'initiate') return;
    files.set(event.file, { loaded: event.loaded ?? 0, total: event.total ?? 0 });
    let loaded = 0;
    let total = 0;
    for (const f of files.values()) {
      loaded += f.loaded;
      total += Math.max(f.total, f.loaded);
    }
    progress({ status: 'progress_total', loaded, total, progress: total ? (100 * loaded) / total : 0 });
  };
}

/** Counts a response body's bytes as they stream through, reporting progress. */
function counted(res, file, progress) {
  const total = Number(res.headers.get('content-length')) || 0;
  let loaded = 0;
  return res.body.pipeThrough(
    new TransformStream({
      transform(chunk, controller) {
        loaded += chunk.length;
        progress({ status: 'progress', file, loaded, total: Math.max(total, loaded), progress: total ? (100 * Math.min(loaded, total)) / total : 0 });
        controller.enqueue(chunk);
      },
      flush() {
        progress({ status: 'done', file, loaded, total: loaded });
      },
    }),
  );
}

/** Download the weights, reporting progress; the browser's HTTP cache makes later loads free. */
async function fetchWeights(url, progress) {
  const file = url.split('/').pop();
  progress({ status: 'initiate', file });
  const res = await download(url, 'the backbone weights', { cache: 'force-cache' });
  const bytes = new Uint8Array(await new Response(res.body ? counted(res, file, progress) : await res.arrayBuffer()).arrayBuffer());
  if (!res.body) progress({ status: 'done', file, loaded: bytes.length, total: bytes.length });
  return bytes;
}

/**
 * Download and compile the engine's wasm, reporting the download and the compile. The body is
 * compiled while it streams in; the `application/wasm` type is set here, so a server that sends
 * another type still works.
 */
async function compileWasm(url, progress) {
  const file = url.split(/[?#]/)[0].split('/').pop();
  progress({ status: 'initiate', file });
  const res = await download(url, 'the headtune engine (wasm)');
  // Compilation overlaps the download; what is left of it is reported after the last byte.
  const report = (event) => {
    progress(event);
    if (event.status === 'done') progress({ status: 'compile', file });
  };
  const body = res.body ? counted(res, file, report) : await res.arrayBuffer();
  let module;
  try {
    module = await WebAssembly.compileStreaming(new Response(body, { headers: { 'content-type': 'application/wasm' } }));
  } catch (e) {
    throw codeError('WasmCompile', `cannot compile the headtune engine from ${url}: ${e.message} (is it the package's pkg/headtune_bg.wasm?)`);
  }
  if (!res.body) report({ status: 'done', file, loaded: body.byteLength, total: body.byteLength });
  progress({ status: 'compiled', file });
  return module;
}

/**
 * Is there a WebGPU adapter worth using? Resolves to `{ ok, reason }`. A software fallback
 * adapter (e.g. SwiftShader) is correct but ~100× slower than the CPU backend, so `auto` skips it.
 */
async function probeWebGpu() {
  if (!self.navigator?.gpu) return { ok: false, reason: 'this browser does not expose WebGPU (navigator.gpu is missing)' };
  let adapter;
  try {
    adapter = await timeout(navigator.gpu.requestAdapter(), ADAPTER_TIMEOUT_MS, 'navigator.gpu.requestAdapter()');
  } catch (e) {
    return { ok: false, reason: e.message };
  }
  if (!adapter) return { ok: false, reason: 'no WebGPU adapter is available (requestAdapter returned null)' };
  const info = adapter.info ?? {};
  const name = [info.vendor, info.architecture || info.description].filter(Boolean).join(' ') || 'unknown adapter';
  const fallback = info.isFallbackAdapter ?? adapter.isFallbackAdapter ?? false;
  return { ok: true, fallback, name };
}

async function makeEngine(kind, weights, backend, bytes, features) {
  switch (kind) {
    case 'project':
      return Engine.loadProject(weights, backend, bytes);
    case 'model':
      return Engine.loadModel(weights, backend, bytes);
    case 'parts':
      return Engine.loadParts(weights, backend, bytes);
    default:
      return Engine.create(weights, backend, features);
  }
}

/**
 * The package's wasm for this browser, next to the glue: the relaxed-SIMD build where it runs
 * (simd.js). Both URLs written out whole: bundlers recognise this form and emit both files.
 */
const packageWasmUrl = () => (RELAXED_SIMD ? new URL('../pkg/headtune_relaxed_bg.wasm', import.meta.url) : new URL('../pkg/headtune_bg.wasm', import.meta.url)).href;

/**
 * Instantiate the engine from a compiled `module` (shared by the main thread), else download
 * and compile `wasmUrl`. Resolves to the module compiled here (to share), or null.
 */
async function loadWasm({ module, wasmUrl }, progress) {
  const compiled = module ? null : await compileWasm(wasmUrl ?? packageWasmUrl(), progress);
  wasm = await init({ module_or_path: module ?? compiled });
  return compiled;
}

const OPS = {
  /** Compile the wasm only (`preload`): resolves to the module, for later workers. */
  async compile({ wasmUrl }, id) {
    const progress = progressTracker((event) => self.postMessage({ id, type: 'progress', event }));
    return compileWasm(wasmUrl ?? packageWasmUrl(), progress);
  },

  async init({ backend, modelUrl, defaultModelUrls, features, augment, kind, bytes, module, wasmUrl }, id) {
    const progress = progressTracker((event) => self.postMessage({ id, type: 'progress', event }));
    let weights;
    let compiled;
    let weightsUrl;
    if (kind === 'new' || kind === 'embedder') {
      // The weights download overlaps the wasm download and compilation.
      weightsUrl = modelUrl ?? defaultModelUrls[features.backbone ?? 'lite0'];
      [compiled, weights] = await Promise.all([loadWasm({ module, wasmUrl }, progress), fetchWeights(weightsUrl, progress)]);
    } else {
      // A project or model names its backbone: read it from the file before fetching weights.
      compiled = await loadWasm({ module, wasmUrl }, progress);
      const { backbone } = fileFeatures(kind === 'parts' ? bytes.head ?? new Uint8Array() : bytes);
      weightsUrl = modelUrl ?? defaultModelUrls[backbone];
      weights = await fetchWeights(weightsUrl, progress);
    }
    if (kind === 'embedder') {
      // The pool's embedders run on the CPU backend only, where their embeddings are the
      // engine's bit for bit (the pool is used only when the engine is on the CPU too).
      embedder = Embedder.load(weights);
      return { module: compiled };
    }
    let choice = backend;
    if (backend !== 'cpu') {
      const probe = await probeWebGpu();
      if (backend === 'webgpu') {
        if (!probe.ok) throw codeError('Backend', `WebGPU was requested but ${probe.reason}; use backend 'auto' or 'cpu'`);
        backendReason = `WebGPU requested (${probe.name}${probe.fallback ? ', software fallback adapter' : ''})`;
      } else if (!probe.ok) {
        choice = 'cpu';
        backendReason = `CPU backend: ${probe.reason}`;
      } else if (probe.fallback) {
        choice = 'cpu';
        backendReason = `CPU backend: the only WebGPU adapter (${probe.name}) is a software fallback, slower than the CPU backend`;
      } else {
        backendReason = `WebGPU adapter: ${probe.name}`;
      }
    } else {
      backendReason = 'CPU backend requested';
    }
    if (choice === 'webgpu') {
      try {
        engine = await timeout(makeEngine(kind, weights, 'webgpu', bytes, features), DEVICE_TIMEOUT_MS, 'WebGPU device initialisation');
      } catch (e) {
        if (backend === 'webgpu' || ['ModelFile', 'InvalidArgument', 'Data', 'Weights'].includes(e.code)) throw e;
        choice = 'cpu';
        backendReason = `CPU backend: WebGPU could not start (${e.message})`;
      }
    }
    if (choice === 'cpu') engine = await makeEngine(kind, weights, 'cpu', bytes, features);
    if (augment !== undefined) engine.setAugment(augment);
    progress({ status: 'ready', backend: engine.backend, backendReason });
    // The weights a pool worker must load to embed as this engine does.
    return { module: compiled, weightsUrl };
  },

  /**
   * `thumbnails`: `{ thumb, preview }` sides (preview 0: the network's input square), to get
   * each added image's JPEGs (else none).
   */
  async addImages({ label, items, thumbnails }, id) {
    const ids = [];
    const indices = [];
    const rejected = [];
    const made = [];
    for (let i = 0; i < items.length; i++) {
      await yieldToEvents();
      checkAborted(id);
      const it = items[i];
      try {
        const added = await engine.addImage(label, it.name, it.bytes, it.width ?? 0, it.height ?? 0, it.rgba, thumbnails?.thumb ?? 0, thumbnails?.preview ?? 0);
        ids.push(added.id);
        indices.push(it.index);
        if (thumbnails) made.push({ thumb: added.thumb, preview: added.preview });
      } catch (err) {
        rejected.push(rejection(err, it));
      }
      self.postMessage({ id, type: 'progress', event: { done: i + 1, name: it.name } });
    }
    return { ids, indices, rejected, ...(thumbnails ? { thumbnails: made } : {}) };
  },

  /** The engine's view plan (see pool.js), or null while the next image decides the framing. */
  viewPlan: () => engine.viewPlan ?? null,

  /**
   * Decode and embed one image under `plan` (an engine's or an embedder's backbone): resolves
   * to `{ views }`, or `{ rejected }` when the image cannot be used, with the reason `addImage`
   * gives. The image's pixels or bytes come back too, for `appendViews`, and with `thumbnails`
   * (`{ thumb, preview }` sides) its JPEG `thumb` and `preview`, made from the same decode.
   */
  async embedViews({ plan, image, thumbnails }) {
    try {
      const made = await (embedder ?? engine).embedViews(plan, image.bytes, image.width ?? 0, image.height ?? 0, image.rgba, thumbnails?.thumb ?? 0, thumbnails?.preview ?? 0);
      return { views: made.views, image, ...(made.thumb ? { thumb: made.thumb, preview: made.preview } : {}) };
    } catch (err) {
      return { rejected: rejection(err, image) };
    }
  },

  /**
   * Append images embedded by the pool, in order. Views made under a plan that is no longer the
   * engine's (augmentation changed meanwhile) are dropped and the image is added afresh.
   */
  async appendViews({ label, items }, id) {
    const ids = [];
    const indices = [];
    const rejected = [];
    const plan = engine.viewPlan;
    for (const it of items) {
      checkAborted(id);
      try {
        const added = it.plan === plan
          ? engine.addViews(label, it.image.name, it.plan, it.views)
          : (await engine.addImage(label, it.image.name, it.image.bytes, it.image.width ?? 0, it.image.height ?? 0, it.image.rgba, 0, 0)).id;
        ids.push(added);
        indices.push(it.index);
      } catch (err) {
        rejected.push(rejection(err, it.image));
      }
    }
    return { ids, indices, rejected };
  },

  exampleColumns: () => ({ columns: true, ...engine.exampleColumns() }),
  setAugment: ({ augment }) => engine.setAugment(augment),
  operatingPoint: ({ threshold }) => engine.operatingPoint(threshold),
  renameClass: ({ from, to }) => engine.renameClass(from, to),
  removeClass: ({ name }) => engine.removeClass(name),
  removeExample: ({ id }) => engine.removeExample(id),
  relabelExample: ({ id, label }) => engine.relabelExample(id, label),

  async train({ config }, id) {
    const onEpoch = (stats) => self.postMessage({ id, type: 'epoch', stats });
    return engine.train(config, onEpoch, () => aborted.has(id), yieldToEvents);
  },

  predict: ({ image, topK, heatmap, framed }) =>
    engine.predict(image.bytes, image.width ?? 0, image.height ?? 0, image.rgba, topK, heatmap, framed),

  embed: ({ image }) => engine.embed(image.bytes, image.width ?? 0, image.height ?? 0, image.rgba),

  exportModel: () => engine.exportModel(),
  setThreshold: ({ threshold }) => engine.setThreshold(threshold),
  saveProject: ({ extra }) => engine.saveProject(extra),
  saveParts: ({ extra, since }) => engine.saveParts(extra, since ?? undefined),

  async benchmark({ bytes, batch, rounds }) {
    await engine.embedBatch(bytes, batch, 1); // warm-up: shader compilation, allocations
    const seconds = await engine.embedBatch(bytes, batch, rounds);
    return { backend: engine.backend, batch, rounds, seconds, imagesPerSecond: (batch * rounds) / seconds };
  },

  memory: () => wasm.memory.buffer.byteLength,
  simulateBackendFailure: () => engine.simulateBackendFailure(),
  simulatePanic: () => engine.simulatePanic(),
};
