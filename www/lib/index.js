// headtune — train a classifier head on your own images in the browser.
//
// The public API. Every heavy call runs in a dedicated Web Worker that owns the wasm instance
// (./worker.js); this file validates arguments, turns images into transferable data, and wraps
// each worker round trip in a Promise. See index.d.ts for the documented types.

import { toMessage, nameOf, IMAGE_KINDS } from './images.js';
import { Channel, channels, modules, codeError, abortError } from './channel.js';
import { Pool } from './pool.js';
import { WASM_FILE } from './simd.js';

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
 * ships only Lite0's; host the others and pass `modelUrl` (see README). Lite0's URL is a plain
 * literal so that bundlers emit the file and rewrite the URL; the others are looked for beside it.
 */
const LITE0_URL = new URL('../pkg/efficientnet_lite0.safetensors', import.meta.url).href;
const DEFAULT_MODEL_URLS = Object.freeze(
  Object.fromEntries(BACKBONES.map((b) => [b, b === 'lite0' ? LITE0_URL : new URL(`efficientnet_${b}.safetensors`, LITE0_URL).href])),
);
/** Images converted and sent to the worker per round trip (bounds main-thread memory). */
const CHUNK = 8;

/** Invalid arguments are TypeErrors, with code `InvalidArgument` like the engine's. */
function fail(message) {
  throw codeError('InvalidArgument', message, TypeError);
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

function toBytes(where, bytes, what = "the file's bytes as a Uint8Array or ArrayBuffer") {
  if (bytes instanceof Uint8Array) return bytes;
  if (bytes instanceof ArrayBuffer) return new Uint8Array(bytes);
  if (ArrayBuffer.isView(bytes)) return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  fail(`${where}: expected ${what}`);
}

/** A URL option (string or URL) resolved against the page, or undefined when absent. */
function checkUrl(where, name, url) {
  if (url === undefined) return undefined;
  if (typeof url !== 'string' && !(url instanceof URL)) fail(`${where}: ${name} must be a string or URL`);
  return new URL(url, globalThis.location?.href).href;
}

/**
 * Where the worker script and the wasm are: `workerUrl` / `wasmUrl`, else under `baseUrl` (a
 * folder holding the package's lib/ and pkg/), else the package's own (undefined).
 */
function assetUrls(where, opts) {
  const base = checkUrl(where, 'baseUrl', opts.baseUrl);
  const under = (path) => (base === undefined ? undefined : new URL(path, base.endsWith('/') ? base : `${base}/`).href);
  return {
    workerUrl: checkUrl(where, 'workerUrl', opts.workerUrl) ?? under('lib/worker.js'),
    wasmUrl: checkUrl(where, 'wasmUrl', opts.wasmUrl) ?? under(`pkg/${WASM_FILE}`),
    weightsBase: under('pkg/'),
  };
}

/** Download a model or project file given by URL, with code `Network` when that fails. */
async function fetchBytes(where, url, signal) {
  let res;
  try {
    res = await fetch(url, { signal });
  } catch (e) {
    if (signal?.aborted) throw abortError(signal);
    throw codeError('Network', `${where}: cannot download ${url}: ${e.message} (offline, or another origin without CORS)`);
  }
  if (!res.ok) throw codeError('Network', `${where}: cannot download ${url}: HTTP ${res.status}`);
  return new Uint8Array(await res.arrayBuffer());
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

/** Sides the `thumbnails` option of addImages may ask for, in pixels (the engine's range). */
const THUMBNAIL_SIDES = [16, 1024];

/**
 * The `thumbnails` option of addImages, checked: `{ thumb, preview }` — the thumbnail's side in
 * pixels (default 112), the preview's longest side (default 320) or `'input'` (the network's
 * input square: what the model saw); `true`: both defaults; undefined for none. To the worker
 * an `'input'` preview travels as side 0 (the engine's `addImage` and `embedViews` read it so).
 */
function thumbnailSizes(where, thumbnails) {
  if (thumbnails === undefined || thumbnails === false) return undefined;
  if (thumbnails === true) thumbnails = {};
  const { thumb = 112, preview = 320 } = checkOptions(`${where}: thumbnails`, thumbnails, ['thumb', 'preview']);
  const [min, max] = THUMBNAIL_SIDES;
  const sides = preview === 'input' ? [['thumb', thumb]] : [['thumb', thumb], ['preview', preview]];
  for (const [name, side] of sides) {
    if (!(Number.isInteger(side) && side >= min && side <= max)) {
      const or = name === 'preview' ? " or 'input'" : '';
      fail(`${where}: thumbnails.${name} is ${JSON.stringify(side)}; use a whole number of pixels from ${min} to ${max}${or}`);
    }
  }
  return { thumb, preview: preview === 'input' ? 0 : preview };
}

/** Workers in all by default (`workers` of `Tuner.create`): one per core, at most this many. */
const MAX_DEFAULT_WORKERS = 8;

/** The `workers` option, checked; by default one per core the browser reports (at most 8). */
function workerCount(where, workers) {
  if (workers === undefined) return Math.max(1, Math.min(MAX_DEFAULT_WORKERS, globalThis.navigator?.hardwareConcurrency || 1));
  if (!(Number.isInteger(workers) && workers >= 1 && workers <= 64)) {
    fail(`${where}: workers is ${JSON.stringify(workers)}; use a whole number from 1 (the engine's worker alone) to 64`);
  }
  return workers;
}

/** Asset options every loading call takes (see `Assets` in index.d.ts). */
const ASSET_OPTIONS = ['baseUrl', 'workerUrl', 'wasmUrl', 'signal'];

/**
 * Start a worker and its engine; `what` selects a fresh tuner, a project or a model. The wasm
 * compiled by an earlier instance (or `preload`) is sent along instead of being compiled again.
 */
async function start(where, opts, allowed, what) {
  opts = checkOptions(where, opts, allowed);
  const backend = checkBackend(where, opts.backend);
  checkFunction(where, 'onProgress', opts.onProgress);
  checkFunction(where, 'onCrash', opts.onCrash);
  checkSignal(where, opts.signal);
  const { workerUrl, wasmUrl, weightsBase } = assetUrls(where, opts);
  const modelUrl = checkUrl(where, 'modelUrl', opts.modelUrl);
  const features = featureOptions(where, opts);
  const workers = what.kind === 'model' ? 1 : workerCount(where, opts.workers);
  // The worker picks the backbone's default URL once it knows the backbone (for a project or
  // model: from the file).
  const defaultModelUrls = weightsBase === undefined ? DEFAULT_MODEL_URLS : Object.fromEntries(BACKBONES.map((b) => [b, new URL(`efficientnet_${b}.safetensors`, weightsBase).href]));
  if (opts.signal?.aborted) throw abortError(opts.signal);
  const key = wasmUrl ?? '';
  const module = modules.get(key);
  // A crashed engine closes its instance: the pool's workers go with it.
  const onCrash = (e) => {
    channel.pool?.dispose();
    opts.onCrash?.(e);
  };
  const channel = new Channel({ workerUrl, onCrash });
  try {
    const transfer = what.kind === 'parts' ? Object.values(what.bytes).map((b) => b.buffer) : what.bytes ? [what.bytes.buffer] : [];
    const args = { backend, modelUrl, defaultModelUrls, wasmUrl, module, features, augment: opts.augment, ...what };
    // Aborting stops the worker, and with it its downloads.
    const out = await channel.call('init', args, { transfer, onProgress: opts.onProgress, signal: opts.signal, rejectOnAbort: true });
    if (out?.module && !modules.has(key)) modules.set(key, out.module);
    // What a pool worker needs to embed as this engine does (see pool.js).
    channel.weightsUrl = out?.weightsUrl;
  } catch (e) {
    channel.terminate();
    throw e;
  }
  channel.pool = new Pool(workers, { workerUrl, wasmUrl });
  return channel;
}

/**
 * Download and compile the engine's wasm once, ahead of time, for every Tuner and Classifier
 * started afterwards (each would otherwise compile it again). Optional: the first instance
 * shares what it compiled too. Resolves when the module is ready.
 */
export async function preload(options) {
  const where = 'preload';
  const opts = checkOptions(where, options, ['baseUrl', 'workerUrl', 'wasmUrl', 'onProgress', 'signal']);
  checkFunction(where, 'onProgress', opts.onProgress);
  checkSignal(where, opts.signal);
  const { workerUrl, wasmUrl } = assetUrls(where, opts);
  const key = wasmUrl ?? '';
  if (modules.has(key)) return;
  const channel = new Channel({ workerUrl });
  try {
    const module = await channel.call('compile', { wasmUrl }, { onProgress: opts.onProgress, signal: opts.signal, rejectOnAbort: true });
    if (!modules.has(key)) modules.set(key, module);
  } finally {
    channel.terminate();
  }
}

/** Run an image through `op` (predict / embed) in the worker. */
async function imageCall(channel, where, image, op, args, signal) {
  checkSignal(where, signal);
  let message;
  try {
    message = await toMessage(image, 0);
  } catch (e) {
    throw e instanceof TypeError ? codeError('InvalidArgument', `${where}: ${e.message}`, TypeError) : e;
  }
  return channel.call(op, { ...args, image: message.item }, { transfer: message.transfer, signal, rejectOnAbort: true });
}

function predictArgs(where, opts) {
  opts = checkOptions(where, opts, ['topK', 'heatmap', 'framed', 'signal']);
  const topK = opts.topK ?? 3;
  if (!Number.isInteger(topK) || topK < 1) fail(`${where}: topK is ${JSON.stringify(opts.topK)}; use a whole number ≥ 1`);
  for (const name of ['heatmap', 'framed']) if (opts[name] !== undefined && typeof opts[name] !== 'boolean') fail(`${where}: ${name} must be true or false`);
  return { args: { topK, heatmap: opts.heatmap ?? false, framed: opts.framed ?? false }, signal: opts.signal };
}

/**
 * `[{label, probability}]` with `.heatmap` attached when one was computed and `.decision` (the
 * model's call at its threshold) for two-class models. An Array for compatibility; the two
 * extras are its own properties, so `.map`, spread and `structuredClone` drop them (index.d.ts
 * says so): read them from the result itself.
 */
function predictions(out) {
  const list = out.top.map((p) => ({ label: p.label, probability: p.probability }));
  if (out.heatmap) list.heatmap = out.heatmap;
  if (out.decision) list.decision = out.decision;
  return list;
}

const TUNER_OPTIONS = ['backend', 'modelUrl', 'onProgress', 'onCrash', 'augment', 'workers', ...ASSET_OPTIONS];
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
    channels.set(this, channel);
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

  /**
   * Restore a tuner from a project stored as parts: an object of the records `saveParts` wrote,
   * by key (other keys are ignored). Checked as `loadProject` checks a file.
   */
  static async loadParts(parts, options) {
    const where = 'Tuner.loadParts';
    if (parts === null || typeof parts !== 'object') fail(`${where}: parts must be an object of Uint8Arrays by key, as saveParts wrote them`);
    const copy = Object.fromEntries(Object.entries(parts).map(([key, bytes]) => [key, toBytes(where, bytes, `part "${key}" as a Uint8Array or ArrayBuffer`).slice()]));
    return new Tuner(await start(where, options, TUNER_OPTIONS, { kind: 'parts', bytes: copy }));
  }

  /** For a tuner from `loadParts`: the generation of those parts, the first `since` of `saveParts`; else null. */
  get savedGeneration() {
    return this.#channel.state.savedGeneration ?? null;
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
  async examples(options) {
    const { signal } = checkOptions('tuner.examples', options, ['signal']);
    // Built here from the columns: 10,000 rows cost milliseconds this way.
    const { ids, classes, views, names, classNames } = await this.exampleColumns({ signal });
    return Array.from(ids, (id, i) => ({ id, label: classNames[classes[i]], name: names[i], views: views[i] }));
  }

  /**
   * Every example as columns, for large projects: `{ ids: Float64Array, classes: Uint32Array
   * (indices into classNames), views: Uint32Array, names: string[], classNames: string[] }`,
   * in the order examples() lists them.
   */
  async exampleColumns(options) {
    const { ids, classes, views, names, classNames } = await this.#read('exampleColumns', {}, options);
    return { ids, classes, views, names, classNames };
  }

  /**
   * Embed images and add them to class `label`. Unreadable images are skipped and listed in
   * `rejected` with the reason; the rest are added. With `thumbnails`, each added image's JPEG
   * thumbnail and preview come back too (`thumbnails[k]` for `ids[k]`), made by whichever worker
   * decoded it. `onAdded` hears of added images as they are added, in input order: an app can
   * store and show them during a long addition (and keeps them if it is aborted) without
   * cutting it into calls, which would idle the workers at every cut.
   */
  async addImages(label, images, options) {
    const where = 'tuner.addImages';
    checkString(where, 'label', label);
    const { onProgress, onAdded, signal, thumbnails: asked } = checkOptions(where, options, ['onProgress', 'onAdded', 'signal', 'thumbnails']);
    const thumbnails = thumbnailSizes(where, asked);
    checkFunction(where, 'onProgress', onProgress);
    checkFunction(where, 'onAdded', onAdded);
    checkSignal(where, signal);
    if (images === null || typeof images !== 'object' || typeof images[Symbol.iterator] !== 'function') {
      if (images && typeof images === 'object') images = [images];
      else fail(`${where}: images must be a list (Array, FileList) of ${IMAGE_KINDS}`);
    }
    const list = Array.from(images);
    const total = list.length;
    const result = { added: 0, ids: [], indices: [], rejected: [], ...(thumbnails ? { thumbnails: [] } : {}) };
    const report = (done, name) => onProgress?.({ status: 'progress', done, total, name });
    // Every path merges what it added into `result` through this, so `onAdded` hears of each
    // added image exactly once, in order.
    const merge = (ids, indices, made) => {
      result.added += ids.length;
      result.ids.push(...ids);
      result.indices.push(...indices);
      if (thumbnails) result.thumbnails.push(...made);
      if (onAdded && ids.length) onAdded({ ids, indices, ...(thumbnails ? { thumbnails: made } : {}) });
    };
    onProgress?.({ status: 'initiate', total });
    const channel = this.#channel;
    const pool = channel.pool;
    if (pool.size > 1 && channel.state.backend === 'cpu') {
      // Every core: the engine adds alone until its view plan is fixed (the first image of an
      // empty project decides an `auto` crop), then every worker embeds and it appends.
      let from = 0;
      let plan = await channel.call('viewPlan', {}, { signal, rejectOnAbort: true });
      while (plan === null && from < total) {
        await this.#addChunk(label, list, from, from + 1, result, merge, report, signal, thumbnails);
        from += 1;
        plan = await channel.call('viewPlan', {}, { signal, rejectOnAbort: true });
      }
      if (from < total) await pool.add({ engine: channel, weightsUrl: channel.weightsUrl, plan, label, list, from, result, merge, report, signal, thumbnails });
    } else {
      for (let start = 0; start < total; start += CHUNK) await this.#addChunk(label, list, start, Math.min(total, start + CHUNK), result, merge, report, signal, thumbnails);
    }
    // In input order, whichever step refused them.
    result.rejected.sort((a, b) => a.index - b.index);
    onProgress?.({ status: 'done', total, added: result.added, rejected: result.rejected.length });
    return result;
  }

  /** Add `list[start…end)` in the engine's worker alone, one round trip. */
  async #addChunk(label, list, start, end, result, merge, report, signal, thumbnails) {
    if (signal?.aborted) throw abortError(signal);
    const items = [];
    const transfer = [];
    for (let i = start; i < end; i++) {
      try {
        const m = await toMessage(list[i], i);
        items.push({ ...m.item, index: i });
        transfer.push(...m.transfer);
      } catch (e) {
        result.rejected.push({ name: nameOf(list[i], i), reason: e.message, index: i });
      }
    }
    const out = await this.#channel.call('addImages', { label, items, thumbnails }, {
      transfer,
      signal,
      onProgress: (ev) => report(start + ev.done, ev.name),
    });
    result.rejected.push(...out.rejected);
    merge(out.ids, out.indices, out.thumbnails);
  }

  /**
   * Change how augmented views are drawn for images added from now on (images already added
   * keep theirs). Invalid settings reject with the valid ranges.
   */
  async setAugment(augment, options) {
    if (augment === null || typeof augment !== 'object') fail('tuner.setAugment: augment must be an object such as { views: 4 }');
    return this.#edit('setAugment', { augment }, options);
  }

  /**
   * Sensitivity and specificity of the trained model's held-out predictions at `threshold`
   * (two classes), with 95 % intervals; null without two-class metrics.
   */
  async operatingPoint(threshold, options) {
    if (typeof threshold !== 'number' || !(threshold >= 0 && threshold <= 1)) fail(`tuner.operatingPoint: threshold is ${JSON.stringify(threshold)}; use a number from 0 to 1`);
    return this.#read('operatingPoint', { threshold }, options);
  }

  /** Rename a class; renaming onto an existing class merges the two. */
  async renameClass(from, to, options) {
    checkString('tuner.renameClass', 'from', from);
    checkString('tuner.renameClass', 'to', to);
    return this.#edit('renameClass', { from, to }, options);
  }

  /** Delete a class and its examples; resolves to how many examples were removed. */
  async removeClass(name, options) {
    checkString('tuner.removeClass', 'name', name);
    return this.#edit('removeClass', { name }, options);
  }

  /** Delete one example by the id addImages returned. */
  async removeExample(id, options) {
    if (!Number.isInteger(id) || id < 0) fail(`tuner.removeExample: id is ${JSON.stringify(id)}; use an id from addImages`);
    return this.#edit('removeExample', { id }, options);
  }

  /** Move one example (by the id addImages returned) to class `label`, created if needed. */
  async relabelExample(id, label, options) {
    if (!Number.isInteger(id) || id < 0) fail(`tuner.relabelExample: id is ${JSON.stringify(id)}; use an id from addImages`);
    checkString('tuner.relabelExample', 'label', label);
    return this.#edit('relabelExample', { id, label }, options);
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
    const { args, signal } = predictArgs('tuner.predict', options);
    return predictions(await imageCall(this.#channel, 'tuner.predict', image, 'predict', args, signal));
  }

  /** The image's embedding (evaluation view; `features.dim` values). */
  async embed(image, options) {
    const { signal } = checkOptions('tuner.embed', options, ['signal']);
    return imageCall(this.#channel, 'tuner.embed', image, 'embed', {}, signal);
  }

  /**
   * Decide two-class predictions at `threshold` (on the second class's probability) from now
   * on, instead of the one chosen at training; saved with the model. Resolves to the model's
   * decision `{ threshold, rule, sensitivity, specificity, … }` (the operating point read off
   * the validation ROC).
   */
  async setThreshold(threshold, options) {
    if (typeof threshold !== 'number' || !(threshold >= 0 && threshold <= 1)) {
      fail(`tuner.setThreshold: threshold is ${JSON.stringify(threshold)}; use a probability from 0 to 1`);
    }
    return this.#edit('setThreshold', { threshold }, options);
  }

  /** The trained model's decision threshold and its validation operating point (two classes), or null. */
  get decision() {
    return this.#channel.state.decision ?? null;
  }

  /** The trained model as a model file (the format the `headtune` CLI reads and writes). */
  async exportModel(options) {
    return this.#read('exportModel', {}, options);
  }

  /** Everything — classes, embeddings, settings, model, and your `extra` data — as one file. */
  async saveProject(options) {
    const { extra, signal } = checkOptions('tuner.saveProject', options, ['extra', 'signal']);
    return this.#read('saveProject', { extra }, { signal });
  }

  /**
   * What changed since the save of generation `since` (null: nothing stored yet), for storage
   * written piecemeal such as IndexedDB: `{ generation, clear, put: [[key, Uint8Array], …],
   * remove: [key, …] }`. Apply it in one transaction (emptying the store first when `clear`),
   * then pass `generation` as the next `since`; a save that was not stored is written again by
   * the next call with the old `since`. `extra` is saved with the project, as in saveProject.
   */
  async saveParts(options) {
    const { extra, since, signal } = checkOptions('tuner.saveParts', options, ['extra', 'since', 'signal']);
    if (since !== undefined && since !== null && !(Number.isInteger(since) && since >= 0)) fail(`tuner.saveParts: since is ${JSON.stringify(since)}; use the generation an earlier saveParts returned, or null`);
    return this.#read('saveParts', { extra, since }, { signal });
  }

  /**
   * A call that only answers (a listing, a file): aborting `signal` rejects it at once with an
   * AbortError and drops the late answer.
   */
  #read(op, args, options) {
    const { signal } = checkOptions(`tuner.${op}`, options, ['signal']);
    checkSignal(`tuner.${op}`, signal);
    return this.#channel.call(op, args, { signal, rejectOnAbort: true });
  }

  /**
   * A quick edit (milliseconds in the worker): an already aborted `signal` rejects with an
   * AbortError and changes nothing; once sent, the edit completes — half an edit is never left
   * behind and the promise tells what happened.
   */
  #edit(op, args, options) {
    const { signal } = checkOptions(`tuner.${op}`, options, ['signal']);
    checkSignal(`tuner.${op}`, signal);
    return this.#channel.call(op, args, { signal });
  }

  /** Stop the worker (and the pool's) and free their memory. The tuner cannot be used afterwards. */
  dispose() {
    this.#channel.pool.dispose();
    this.#channel.terminate();
  }
}

/** An inference-only classifier loaded from a model file. */
export class Classifier {
  #channel;

  /** @private use Classifier.load */
  constructor(channel) {
    if (!(channel instanceof Channel)) fail('use `await Classifier.load(urlOrBytes, options)`');
    this.#channel = channel;
    channels.set(this, channel);
  }

  /**
   * Load a model file (from `tuner.exportModel()` or `headtune train`): its bytes, or a URL to
   * download it from (relative to the page).
   */
  static async load(model, options) {
    const where = 'Classifier.load';
    let copy;
    if (typeof model === 'string' || model instanceof URL) {
      checkSignal(where, options?.signal);
      copy = await fetchBytes(where, checkUrl(where, 'the model URL', model), options?.signal ?? undefined);
    } else {
      copy = toBytes(where, model, "the model file's URL, or its bytes as a Uint8Array or ArrayBuffer").slice();
    }
    return new Classifier(await start(where, options, ['backend', 'modelUrl', 'onProgress', 'onCrash', ...ASSET_OPTIONS], { kind: 'model', bytes: copy }));
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
    const { args, signal } = predictArgs('classifier.predict', options);
    return predictions(await imageCall(this.#channel, 'classifier.predict', image, 'predict', args, signal));
  }

  /** Stop the worker and free its memory. */
  dispose() {
    this.#channel.terminate();
  }
}
