// The dedicated worker of one Tuner or Classifier: owns the wasm instance and its Engine.
//
// Messages in:  { id, op, args } — handled one at a time, in order — and { op: 'abort', target }.
// Messages out: { id, type: 'progress' | 'epoch', … } while a call runs, then
//               { id, type: 'result', value, state } or { id, type: 'error', error, state }.
// `state` (backend, reason, classes, …) lets the main thread answer getters without a round trip.

import init, { Engine, fileFeatures } from '../pkg/headtune.js';

/** How long to wait for `navigator.gpu.requestAdapter()`: it can hang with some flags/drivers. */
const ADAPTER_TIMEOUT_MS = 5000;
/** How long WebGPU device initialisation may take before we give up on it. */
const DEVICE_TIMEOUT_MS = 20000;

let wasm = null;
let engine = null;
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

async function handle({ id, op, args }) {
  try {
    if (crashed) throw crashed;
    const value = await OPS[op](args, id);
    self.postMessage({ id, type: 'result', value, state: state() }, transferables(value));
  } catch (err) {
    if (err instanceof WebAssembly.RuntimeError && !crashed) {
      crashed = { message: `The headtune engine crashed (${err.message}) and was stopped; please report this. Open the project again (e.g. from its last save) to go on.`, code: 'EngineCrashed' };
    }
    const error = crashed ?? { message: String(err?.message ?? err), code: err?.code, detail: err?.detail };
    self.postMessage({ id, type: 'error', error, state: crashed ? lastState : state() });
  } finally {
    aborted.delete(id);
  }
}

function transferables(value) {
  return value instanceof Uint8Array || value instanceof Float32Array ? [value.buffer] : [];
}

/** The last state sent: what a crashed engine's replies carry (the instance is not asked again). */
let lastState = { backend: null, backendReason, classes: [], modelClasses: [], augment: {}, extra: null, features: {} };

function state() {
  lastState = currentState();
  return lastState;
}

function currentState() {
  if (!engine) return { backend: null, backendReason, classes: [], modelClasses: [], augment: {}, extra: null, features: {} };
  return {
    backend: engine.backend,
    features: engine.features,
    decision: engine.decision,
    backendReason: engine.fallbackReason ?? backendReason,
    classes: engine.classes(),
    modelClasses: engine.modelClasses,
    augment: engine.augment,
    extra: engine.extra,
  };
}

/** Let queued messages (an abort) run: resolves on a later macrotask. */
const yieldToEvents = () => new Promise((resolve) => setTimeout(resolve, 0));

function timeout(promise, ms, what) {
  let timer;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} did not answer within ${ms / 1000} s`)), ms);
    }),
  ]);
}

function checkAborted(id) {
  if (aborted.has(id)) {
    const err = new Error('cancelled');
    err.code = 'Cancelled';
    throw err;
  }
}

/** Download the weights, reporting progress; the browser's HTTP cache makes later loads free. */
async function fetchWeights(url, progress) {
  const file = url.split('/').pop();
  progress({ status: 'initiate', file });
  let res;
  try {
    res = await fetch(url, { cache: 'force-cache' });
  } catch (e) {
    throw new Error(`cannot download the backbone weights from ${url}: ${e.message}`);
  }
  if (!res.ok) throw new Error(`cannot download the backbone weights from ${url}: HTTP ${res.status}`);
  const total = Number(res.headers.get('content-length')) || 0;
  if (!res.body || !total) {
    const bytes = new Uint8Array(await res.arrayBuffer());
    progress({ status: 'done', file, loaded: bytes.length, total: bytes.length });
    return bytes;
  }
  const bytes = new Uint8Array(total);
  let loaded = 0;
  const reader = res.body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    if (loaded + value.length > total) throw new Error(`backbone weights at ${url} are larger than announced`);
    bytes.set(value, loaded);
    loaded += value.length;
    progress({ status: 'progress', file, loaded, total, progress: (100 * loaded) / total });
  }
  progress({ status: 'done', file, loaded, total });
  return loaded === total ? bytes : bytes.subarray(0, loaded);
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
    default:
      return Engine.create(weights, backend, features);
  }
}

const loadWasm = () => init({ module_or_path: new URL('../pkg/headtune_bg.wasm', import.meta.url) });

const OPS = {
  async init({ backend, modelUrl, defaultModelUrls, features, augment, kind, bytes }, id) {
    const progress = (event) => self.postMessage({ id, type: 'progress', event });
    let weights;
    if (kind === 'new') {
      // The weights download overlaps the wasm compilation.
      const url = modelUrl ?? defaultModelUrls[features.backbone ?? 'lite0'];
      [wasm, weights] = await Promise.all([loadWasm(), fetchWeights(url, progress)]);
    } else {
      // A project or model names its backbone: read it from the file before fetching weights.
      wasm = await loadWasm();
      const { backbone } = fileFeatures(bytes);
      weights = await fetchWeights(modelUrl ?? defaultModelUrls[backbone], progress);
    }
    let choice = backend;
    if (backend !== 'cpu') {
      const probe = await probeWebGpu();
      if (backend === 'webgpu') {
        if (!probe.ok) throw new Error(`WebGPU was requested but ${probe.reason}; use backend 'auto' or 'cpu'`);
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
    return null;
  },

  async addImages({ label, items }, id) {
    const ids = [];
    const indices = [];
    const rejected = [];
    for (let i = 0; i < items.length; i++) {
      await yieldToEvents();
      checkAborted(id);
      const it = items[i];
      try {
        ids.push(await engine.addImage(label, it.name, it.bytes, it.width ?? 0, it.height ?? 0, it.rgba));
        indices.push(it.index);
      } catch (err) {
        // Errors with a code are about this image (undecodable, too large…); anything else is
        // the engine failing and must not be passed off as a bad image.
        if (!err?.code || err.code === 'Backend') throw err;
        rejected.push({ name: it.name, reason: err.message, index: it.index, code: err.code, ...(err.detail ? { detail: err.detail } : {}) });
      }
      self.postMessage({ id, type: 'progress', event: { done: i + 1, name: it.name } });
    }
    return { ids, indices, rejected };
  },

  examples: () => engine.examples(),
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

  predict: ({ image, topK, heatmap }) =>
    engine.predict(image.bytes, image.width ?? 0, image.height ?? 0, image.rgba, topK, heatmap),

  embed: ({ image }) => engine.embed(image.bytes, image.width ?? 0, image.height ?? 0, image.rgba),

  exportModel: () => engine.exportModel(),
  setThreshold: ({ threshold }) => engine.setThreshold(threshold),
  saveProject: ({ extra }) => engine.saveProject(extra),

  async benchmark({ bytes, batch, rounds }) {
    await engine.embedBatch(bytes, batch, 1); // warm-up: shader compilation, allocations
    const seconds = await engine.embedBatch(bytes, batch, rounds);
    return { backend: engine.backend, batch, rounds, seconds, imagesPerSecond: (batch * rounds) / seconds };
  },

  memory: () => wasm.memory.buffer.byteLength,
  simulateBackendFailure: () => engine.simulateBackendFailure(),
  simulatePanic: () => engine.simulatePanic(),
};
