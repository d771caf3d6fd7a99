// headtune — train a classifier head on your own images in the browser.
//
// The public API. Every heavy call runs in a dedicated Web Worker that owns the wasm instance
// (./worker.js); this file validates arguments, turns images into transferable data, and wraps
// each worker round trip in a Promise. See index.d.ts for the documented types.

import { toMessage, nameOf, IMAGE_KINDS } from './images.js';

/** Backends accepted by `Tuner.create` and `Classifier.load`. */
export const BACKENDS = Object.freeze(['auto', 'webgpu', 'cpu']);
/** Feature extractors (`backbone` of `Tuner.create`): EfficientNet-Lite0 (default), 1, 2. */
export const BACKBONES = Object.freeze(['lite0', 'lite1', 'lite2']);
/** How images are framed (`crop` of `Tuner.create`). */
export const CROPS = Object.freeze(['auto', 'center', 'full', 'pad']);
/** How feature maps are pooled (`pooling` of `Tuner.create`). */
export const POOLINGS = Object.freeze(['avg', 'avgmax', 'multi']);

/**
 * Where each backbone's weights are by default: next to the package's wasm. The npm package
 * ships only Lite0's; host the others and pass `modelUrl` (see README).
 */
const DEFAULT_MODEL_URLS = Object.freeze(
  Object.fromEntries(BACKBONES.map((b) => [b, new URL(`../pkg/efficientnet_${b}.safetensors`, import.meta.url).href])),
);
/** Images converted and sent to the worker per round trip (bounds main-thread memory). */
const CHUNK = 8;

function fail(message) {
  throw new TypeError(message);
}

function checkOptions(where, opts, allowed) {
  if (opts === undefined || opts === null) return {};
  if (typeof opts !== 'object') fail(`${where}: options must be an object; valid keys are ${allowed.join(', ')}`);
  for (const key of Object.keys(opts)) {
    if (!allowed.includes(key)) fail(`${where}: unknown option "${key}"; valid options are ${allowed.join(', ')}`);
  }
  return opts;
}

function checkBackend(where, backend) {
  if (backend === undefined) return 'auto';
  if (!BACKENDS.includes(backend)) {
    fail(`${where}: backend is ${JSON.stringify(backend)}; use ${BACKENDS.map((b) => `'${b}'`).join(', ')}`);
  }
  return backend;
}

function checkFunction(where, name, f) {
  if (f !== undefined && typeof f !== 'function') fail(`${where}: ${name} must be a function`);
}

function checkSignal(where, signal) {
  if (signal !== undefined && !(signal instanceof AbortSignal)) fail(`${where}: signal must be an AbortSignal`);
}

function checkString(where, name, s) {
  if (typeof s !== 'string' || s.trim() === '') fail(`${where}: ${name} must be a non-empty string`);
}

function toBytes(where, bytes) {
  if (bytes instanceof Uint8Array) return bytes;
  if (bytes instanceof ArrayBuffer) return new Uint8Array(bytes);
  if (ArrayBuffer.isView(bytes)) return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  fail(`${where}: expected the file's bytes as a Uint8Array or ArrayBuffer`);
}

function abortError(signal) {
  return signal?.reason ?? new DOMException('The operation was aborted.', 'AbortError');
}

/** A JS Error rebuilt from the worker's report, keeping Rust's message and variant `code`. */
function rebuild(report) {
  // Cancellation looks like every other aborted web API: a DOMException named AbortError.
  if (report.code === 'Cancelled') return new DOMException(report.message, 'AbortError');
  const err = new Error(report.message);
  if (report.code) err.code = report.code;
  // The decoder's own words behind a plain message (damaged images), for developers.
  if (report.detail) err.detail = report.detail;
  return err;
}

/** One worker and its pending calls. */
class Channel {
  #worker;
  #pending = new Map();
  #next = 1;
  #dead = null;
  #onCrash;

  /** `onCrash(error)` is called once if the engine crashes (see `#receive`). */
  constructor(onCrash) {
    this.#onCrash = onCrash;
    this.#worker = new Worker(new URL('./worker.js', import.meta.url), { type: 'module', name: 'headtune' });
    this.#worker.onmessage = (e) => this.#receive(e.data);
    this.#worker.onerror = (e) => this.#die(new Error(`headtune worker failed: ${e.message || 'could not load worker.js'}`));
    this.#worker.onmessageerror = () => this.#die(new Error('headtune worker sent an unreadable message'));
  }

  #receive(msg) {
    // A crashed engine (a Rust panic traps the wasm instance) cannot be used again: every pending
    // call rejects with the `EngineCrashed` error, the worker and its memory are freed, and the
    // owner is told so it can open its data again in a fresh instance.
    if (msg.type === 'error' && msg.error?.code === 'EngineCrashed') {
      if (msg.state) this.state = msg.state;
      const err = rebuild(msg.error);
      this.#worker.terminate();
      this.#die(err);
      try {
        this.#onCrash?.(err);
      } catch (e) {
        // The owner's handler failing must not hide the crash from pending callers.
        console.error('headtune: onCrash handler failed', e);
      }
      return;
    }
    const call = this.#pending.get(msg.id);
    if (!call) return;
    if (msg.type === 'progress') {
      call.onProgress?.(msg.event);
      return;
    }
    if (msg.type === 'epoch') {
      call.onEpoch?.(msg.stats);
      return;
    }
    this.#pending.delete(msg.id);
    call.cleanup();
    if (msg.state) this.state = msg.state;
    if (msg.type === 'result') call.resolve(msg.value);
    else call.reject(rebuild(msg.error));
  }

  #die(err) {
    // The first cause stays: calls after a crash keep saying it was a crash, not "disposed".
    this.#dead ??= err;
    for (const call of this.#pending.values()) {
      call.cleanup();
      call.reject(err);
    }
    this.#pending.clear();
  }

  /** Send `op` with `args`; resolves with the worker's result. */
  call(op, args = {}, { transfer = [], onProgress, onEpoch, signal } = {}) {
    if (this.#dead) return Promise.reject(this.#dead);
    if (signal?.aborted) return Promise.reject(abortError(signal));
    const id = this.#next++;
    return new Promise((resolve, reject) => {
      const onAbort = () => this.#worker.postMessage({ op: 'abort', target: id });
      signal?.addEventListener('abort', onAbort, { once: true });
      const cleanup = () => signal?.removeEventListener('abort', onAbort);
      this.#pending.set(id, {
        resolve,
        reject: (e) => reject(e.name === 'AbortError' && signal?.aborted ? abortError(signal) : e),
        cleanup,
        onProgress,
        onEpoch,
      });
      this.#worker.postMessage({ id, op, args }, transfer);
    });
  }

  terminate() {
    this.#worker.terminate();
    this.#die(new Error('this headtune instance was disposed'));
  }
}

function checkChoice(where, name, value, allowed) {
  if (value !== undefined && !allowed.includes(value)) {
    fail(`${where}: ${name} is ${JSON.stringify(value)}; use ${allowed.map((v) => `'${v}'`).join(', ')}`);
  }
}

/** The feature options of `Tuner.create`, checked; absent ones are left to the engine's defaults. */
function featureOptions(where, opts) {
  checkChoice(where, 'backbone', opts.backbone, BACKBONES);
  checkChoice(where, 'crop', opts.crop, CROPS);
  checkChoice(where, 'pooling', opts.pooling, POOLINGS);
  if (opts.inputSize !== undefined && !(Number.isInteger(opts.inputSize) && opts.inputSize >= 96 && opts.inputSize <= 512)) {
    fail(`${where}: inputSize is ${JSON.stringify(opts.inputSize)}; use a whole number of pixels from 96 to 512`);
  }
  const features = { backbone: opts.backbone, crop: opts.crop, pooling: opts.pooling, inputSize: opts.inputSize };
  return Object.fromEntries(Object.entries(features).filter(([, v]) => v !== undefined));
}

/** Start a worker and its engine; `what` selects a fresh tuner, a project or a model. */
async function start(where, opts, allowed, what) {
  opts = checkOptions(where, opts, allowed);
  const backend = checkBackend(where, opts.backend);
  checkFunction(where, 'onProgress', opts.onProgress);
  checkFunction(where, 'onCrash', opts.onCrash);
  if (opts.modelUrl !== undefined && typeof opts.modelUrl !== 'string' && !(opts.modelUrl instanceof URL)) {
    fail(`${where}: modelUrl must be a string or URL`);
  }
  const features = featureOptions(where, opts);
  // The worker picks the backbone's default URL once it knows the backbone (for a project or
  // model: from the file).
  const modelUrl = opts.modelUrl === undefined ? undefined : new URL(opts.modelUrl, globalThis.location?.href).href;
  const channel = new Channel(opts.onCrash);
  try {
    const transfer = what.bytes ? [what.bytes.buffer] : [];
    const args = { backend, modelUrl, defaultModelUrls: DEFAULT_MODEL_URLS, features, augment: opts.augment, ...what };
    await channel.call('init', args, { transfer, onProgress: opts.onProgress });
  } catch (e) {
    channel.terminate();
    throw e;
  }
  return channel;
}

/** Run an image through `op` (predict / embed) in the worker. */
async function imageCall(channel, where, image, op, args) {
  let message;
  try {
    message = await toMessage(image, 0);
  } catch (e) {
    throw e instanceof TypeError ? new TypeError(`${where}: ${e.message}`) : e;
  }
  return channel.call(op, { ...args, image: message.item }, { transfer: message.transfer });
}

function predictArgs(where, opts) {
  opts = checkOptions(where, opts, ['topK', 'heatmap']);
  const topK = opts.topK ?? 3;
  if (!Number.isInteger(topK) || topK < 1) fail(`${where}: topK is ${JSON.stringify(opts.topK)}; use a whole number ≥ 1`);
  if (opts.heatmap !== undefined && typeof opts.heatmap !== 'boolean') fail(`${where}: heatmap must be true or false`);
  return { topK, heatmap: opts.heatmap ?? false };
}

/**
 * `[{label, probability}]` with `.heatmap` attached when one was computed and `.decision` (the
 * model's call at its threshold) for two-class models.
 */
function predictions(out) {
  const list = out.top.map((p) => ({ label: p.label, probability: p.probability }));
  if (out.heatmap) list.heatmap = out.heatmap;
  if (out.decision) list.decision = out.decision;
  return list;
}

const TUNER_OPTIONS = ['backend', 'modelUrl', 'onProgress', 'onCrash', 'augment'];
/** A new tuner also chooses how embeddings are made; a project or model brings its own. */
const CREATE_OPTIONS = [...TUNER_OPTIONS, 'backbone', 'crop', 'pooling', 'inputSize'];

/**
 * A trainable classifier: add labelled images, train a head, predict, export.
 * Create it with `await Tuner.create(...)` (constructors cannot be async).
 */
export class Tuner {
  #channel;

  /** @private use Tuner.create / Tuner.loadProject */
  constructor(channel) {
    if (!(channel instanceof Channel)) fail('use `await Tuner.create(options)` to make a Tuner');
    this.#channel = channel;
  }

  /**
   * Start a worker, download the backbone weights (cached by the browser), pick a backend.
   * `backbone`, `crop`, `pooling` and `inputSize` fix how embeddings are made for this tuner
   * (see `tuner.features`); they are saved with the project and the model.
   */
  static async create(options) {
    return new Tuner(await start('Tuner.create', options, CREATE_OPTIONS, { kind: 'new' }));
  }

  /**
   * Restore a tuner from the bytes of `saveProject()`, with the project's features (the right
   * backbone's weights are fetched). A corrupt file rejects with a clear Error.
   */
  static async loadProject(bytes, options) {
    const copy = toBytes('Tuner.loadProject', bytes).slice();
    return new Tuner(await start('Tuner.loadProject', options, TUNER_OPTIONS, { kind: 'project', bytes: copy }));
  }

  /** `'webgpu'` or `'cpu'`: where the backbone runs. */
  get backend() {
    return this.#channel.state.backend;
  }

  /** Why this backend was chosen (or why the tuner moved to the CPU mid-work). */
  get backendReason() {
    return this.#channel.state.backendReason;
  }

  /** `[{ name, count }]` for every class. */
  get classes() {
    return this.#channel.state.classes.map((c) => ({ ...c }));
  }

  /** How embeddings are made: `{ backbone, inputSize, crop, pooling, dim }`. */
  get features() {
    return { ...this.#channel.state.features };
  }

  /** Augmentation settings used for images added from now on. */
  get augment() {
    return { ...this.#channel.state.augment };
  }

  /** App data saved with the project (from `saveProject({ extra })`), or null. */
  get extra() {
    return this.#channel.state.extra;
  }

  /** `[{ id, label, name, views }]` of every example (ids are what removeExample takes). */
  async examples() {
    return this.#channel.call('examples');
  }

  /**
   * Embed images and add them to class `label`. Unreadable images are skipped and listed in
   * `rejected` with the reason; the rest are added.
   */
  async addImages(label, images, options) {
    const where = 'tuner.addImages';
    checkString(where, 'label', label);
    const { onProgress, signal } = checkOptions(where, options, ['onProgress', 'signal']);
    checkFunction(where, 'onProgress', onProgress);
    checkSignal(where, signal);
    if (images === null || typeof images !== 'object' || typeof images[Symbol.iterator] !== 'function') {
      if (images && typeof images === 'object') images = [images];
      else fail(`${where}: images must be a list (Array, FileList) of ${IMAGE_KINDS}`);
    }
    const list = Array.from(images);
    const total = list.length;
    const result = { added: 0, ids: [], indices: [], rejected: [] };
    onProgress?.({ status: 'initiate', total });
    for (let start = 0; start < total; start += CHUNK) {
      if (signal?.aborted) throw abortError(signal);
      const items = [];
      const transfer = [];
      for (let i = start; i < Math.min(total, start + CHUNK); i++) {
        try {
          const m = await toMessage(list[i], i);
          items.push({ ...m.item, index: i });
          transfer.push(...m.transfer);
        } catch (e) {
          result.rejected.push({ name: nameOf(list[i], i), reason: e.message, index: i });
        }
      }
      const done = start;
      const out = await this.#channel.call('addImages', { label, items }, {
        transfer,
        signal,
        onProgress: (ev) => onProgress?.({ status: 'progress', done: done + ev.done, total, name: ev.name }),
      });
      result.added += out.ids.length;
      result.ids.push(...out.ids);
      result.indices.push(...out.indices);
      result.rejected.push(...out.rejected);
    }
    onProgress?.({ status: 'done', total, added: result.added, rejected: result.rejected.length });
    return result;
  }

  /**
   * Change how augmented views are drawn for images added from now on (images already added
   * keep theirs). Invalid settings reject with the valid ranges.
   */
  async setAugment(augment) {
    if (augment === null || typeof augment !== 'object') fail('tuner.setAugment: augment must be an object such as { views: 4 }');
    return this.#channel.call('setAugment', { augment });
  }

  /**
   * Sensitivity and specificity of the trained model's held-out predictions at `threshold`
   * (two classes), with 95 % intervals; null without two-class metrics.
   */
  async operatingPoint(threshold) {
    if (typeof threshold !== 'number' || !(threshold >= 0 && threshold <= 1)) fail(`tuner.operatingPoint: threshold is ${JSON.stringify(threshold)}; use a number from 0 to 1`);
    return this.#channel.call('operatingPoint', { threshold });
  }

  /** Rename a class; renaming onto an existing class merges the two. */
  async renameClass(from, to) {
    checkString('tuner.renameClass', 'from', from);
    checkString('tuner.renameClass', 'to', to);
    return this.#channel.call('renameClass', { from, to });
  }

  /** Delete a class and its examples; resolves to how many examples were removed. */
  async removeClass(name) {
    checkString('tuner.removeClass', 'name', name);
    return this.#channel.call('removeClass', { name });
  }

  /** Delete one example by the id addImages returned. */
  async removeExample(id) {
    if (!Number.isInteger(id) || id < 0) fail(`tuner.removeExample: id is ${JSON.stringify(id)}; use an id from addImages`);
    return this.#channel.call('removeExample', { id });
  }

  /** Move one example (by the id addImages returned) to class `label`, created if needed. */
  async relabelExample(id, label) {
    if (!Number.isInteger(id) || id < 0) fail(`tuner.relabelExample: id is ${JSON.stringify(id)}; use an id from addImages`);
    checkString('tuner.relabelExample', 'label', label);
    return this.#channel.call('relabelExample', { id, label });
  }

  /**
   * Train the head on the stored embeddings. Options are the training settings (epochs,
   * learningRate, batchSize, head, hiddenUnits, weightDecay, labelSmoothing, validationSplit,
   * seed, …; unknown ones are refused with the list of valid names), `augment` (use the
   * augmented views: true/false), `signal` and `onEpoch`. Resolves to the report
   * `{ history, metrics, warnings, … }`.
   */
  async train(options) {
    const where = 'tuner.train';
    if (options !== undefined && (options === null || typeof options !== 'object')) fail(`${where}: options must be an object`);
    const { signal, onEpoch, ...config } = options ?? {};
    checkFunction(where, 'onEpoch', onEpoch);
    checkSignal(where, signal);
    // `undefined` means "default" in JS; the engine would read it as a missing value.
    const settings = Object.fromEntries(Object.entries(config).filter(([, v]) => v !== undefined));
    return this.#channel.call('train', { config: settings }, { signal, onEpoch });
  }

  /** Classify an image: `[{ label, probability }]`, most probable first (+ `.heatmap`). */
  async predict(image, options) {
    const args = predictArgs('tuner.predict', options);
    return predictions(await imageCall(this.#channel, 'tuner.predict', image, 'predict', args));
  }

  /** The image's embedding (evaluation view; `features.dim` values). */
  async embed(image) {
    return imageCall(this.#channel, 'tuner.embed', image, 'embed', {});
  }

  /**
   * Decide two-class predictions at `threshold` (on the second class's probability) from now
   * on, instead of the one chosen at training; saved with the model. Resolves to the model's
   * decision `{ threshold, rule, sensitivity, specificity, … }` (the operating point read off
   * the validation ROC).
   */
  async setThreshold(threshold) {
    if (typeof threshold !== 'number' || !(threshold >= 0 && threshold <= 1)) {
      fail(`tuner.setThreshold: threshold is ${JSON.stringify(threshold)}; use a probability from 0 to 1`);
    }
    return this.#channel.call('setThreshold', { threshold });
  }

  /** The trained model's decision threshold and its validation operating point (two classes), or null. */
  get decision() {
    return this.#channel.state.decision ?? null;
  }

  /** The trained model as a model file (the format the `headtune` CLI reads and writes). */
  async exportModel() {
    return this.#channel.call('exportModel');
  }

  /** Everything — classes, embeddings, settings, model, and your `extra` data — as one file. */
  async saveProject(options) {
    const { extra } = checkOptions('tuner.saveProject', options, ['extra']);
    return this.#channel.call('saveProject', { extra });
  }

  /**
   * Time the backbone on this backend: `rounds` forward passes of `batch` copies of `image`
   * (a Blob or bytes of an image file), after one warm-up pass. Decoding and preprocessing are
   * done once and not timed.
   */
  async benchmark(image, options) {
    const { batch = 1, rounds = 3 } = checkOptions('tuner.benchmark', options, ['batch', 'rounds']);
    const bytes = image instanceof Blob ? new Uint8Array(await image.arrayBuffer()) : toBytes('tuner.benchmark', image).slice();
    return this.#channel.call('benchmark', { bytes, batch, rounds }, { transfer: [bytes.buffer] });
  }

  /** Bytes of wasm memory in the worker (diagnostics: it must not grow with repeated calls). */
  async memory() {
    return this.#channel.call('memory');
  }

  /** Test hook: the next backbone call on WebGPU fails as a lost GPU device would. */
  async simulateBackendFailure() {
    return this.#channel.call('simulateBackendFailure');
  }

  /**
   * Test hook: make the engine panic as a bug would. The call rejects with code
   * `EngineCrashed`, the instance is closed, and `onCrash` is called.
   */
  async simulatePanic() {
    return this.#channel.call('simulatePanic');
  }

  /** Stop the worker and free its memory. The tuner cannot be used afterwards. */
  dispose() {
    this.#channel.terminate();
  }
}

/** An inference-only classifier loaded from a model file. */
export class Classifier {
  #channel;

  /** @private use Classifier.load */
  constructor(channel) {
    if (!(channel instanceof Channel)) fail('use `await Classifier.load(bytes, options)`');
    this.#channel = channel;
  }

  /** Load a model file (from `tuner.exportModel()` or `headtune train`). */
  static async load(bytes, options) {
    const copy = toBytes('Classifier.load', bytes).slice();
    return new Classifier(await start('Classifier.load', options, ['backend', 'modelUrl', 'onProgress', 'onCrash'], { kind: 'model', bytes: copy }));
  }

  /** `'webgpu'` or `'cpu'`. */
  get backend() {
    return this.#channel.state.backend;
  }

  /** Why this backend was chosen. */
  get backendReason() {
    return this.#channel.state.backendReason;
  }

  /** How the model's embeddings are made: `{ backbone, inputSize, crop, pooling, dim }`. */
  get features() {
    return { ...this.#channel.state.features };
  }

  /** The model's decision threshold and its validation operating point (two classes), or null. */
  get decision() {
    return this.#channel.state.decision ?? null;
  }

  /** Class names in the model's output order. */
  get labels() {
    return [...this.#channel.state.modelClasses];
  }

  /** Classify an image: `[{ label, probability }]`, most probable first (+ `.heatmap`). */
  async predict(image, options) {
    const args = predictArgs('classifier.predict', options);
    return predictions(await imageCall(this.#channel, 'classifier.predict', image, 'predict', args));
  }

  /** Bytes of wasm memory in the worker. */
  async memory() {
    return this.#channel.call('memory');
  }

  /** Stop the worker and free its memory. */
  dispose() {
    this.#channel.terminate();
  }
}
