// One Web Worker and its pending calls: starting the worker from wherever the package is served
// (same origin, a bundler's chunk, another origin), wrapping each round trip in a Promise, and
// the shared compiled wasm module. Internal to the package: index.js (the public API) and
// testing.js (the test hooks) both reach an instance's channel through `channels`.

/** Each Tuner / Classifier → its Channel (for the test hooks of testing.js). */
export const channels = new WeakMap();

/**
 * Compiled wasm modules by wasm URL ('' = the package's own), shared by every worker started
 * later: a compiled `WebAssembly.Module` is sent to a new worker instead of compiling again.
 */
export const modules = new Map();

/** An Error with a `code` (see `HeadtuneError` in index.d.ts). */
export function codeError(code, message, Kind = Error) {
  const err = new Kind(message);
  err.code = code;
  return err;
}

export function abortError(signal) {
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

/**
 * The worker, started from `url` when the caller located it (`workerUrl` / `baseUrl`), else the
 * package's own lib/worker.js. The `new Worker(new URL('./worker.js', import.meta.url))` form is
 * what Vite and webpack recognise to bundle the worker. A worker script on another origin (the
 * package on a CDN) cannot be started directly: a same-origin blob: module worker imports it
 * instead, which needs the other origin to allow CORS.
 */
function spawn(url) {
  const options = { type: 'module', name: 'headtune' };
  try {
    // The options stay a literal here: Vite refuses to bundle a worker whose options it cannot read.
    if (url === undefined) return { worker: new Worker(new URL('./worker.js', import.meta.url), { type: 'module', name: 'headtune' }), url: packageWorkerUrl() };
    return { worker: new Worker(url, options), url };
  } catch (e) {
    if (e?.name !== 'SecurityError') throw e;
  }
  const target = url ?? packageWorkerUrl();
  const blob = new Blob([`import ${JSON.stringify(target)};\n`], { type: 'text/javascript' });
  const blobUrl = URL.createObjectURL(blob);
  const worker = new Worker(blobUrl, options);
  // The blob is fetched when the worker starts; it is not needed after that.
  worker.addEventListener('message', () => URL.revokeObjectURL(blobUrl), { once: true });
  return { worker, url: target, blobUrl };
}

/** Where the package's own worker script is when the package is not bundled. */
function packageWorkerUrl() {
  // Kept apart from the `new Worker(new URL(…))` form so bundlers do not copy the raw file.
  const here = import.meta.url;
  return new URL('./worker.js', here).href;
}

/** What went wrong when a worker never started: which file could not be loaded, and why. */
async function diagnose(url) {
  const probe = async (u) => {
    try {
      const res = await fetch(u, { cache: 'no-store' });
      return res.ok ? null : `HTTP ${res.status}`;
    } catch (e) {
      return `${e.message} (network error, or another origin without CORS)`;
    }
  };
  const worker = await probe(url);
  if (worker) return `could not load the worker script ${url}: ${worker}. Pass workerUrl or baseUrl to say where lib/worker.js is served (see the README's "Using with bundlers")`;
  const glue = new URL('../pkg/headtune.js', url).href;
  const imported = await probe(glue);
  if (imported) return `the worker script ${url} loaded, but its import ${glue} failed: ${imported}. Serve the package's pkg/ folder next to lib/ (or pass baseUrl)`;
  return `the worker script ${url} failed to start (a syntax error, a blocked import, or a CSP that forbids workers; the browser console says which)`;
}

/** One worker and its pending calls. */
export class Channel {
  #worker;
  #url;
  #pending = new Map();
  #next = 1;
  #dead = null;
  #started = false;
  #onCrash;

  /**
   * `workerUrl`: where the worker script is (undefined: the package's own). `onCrash(error)`
   * is called once if the engine crashes (see `#receive`).
   */
  constructor({ workerUrl, onCrash } = {}) {
    this.#onCrash = onCrash;
    const { worker, url } = spawn(workerUrl);
    this.#worker = worker;
    this.#url = url;
    this.#worker.onmessage = (e) => {
      this.#started = true;
      this.#receive(e.data);
    };
    this.#worker.onerror = (e) => {
      e.preventDefault?.();
      if (this.#started) {
        this.#die(codeError('WorkerLoad', `headtune worker failed: ${e.message || 'unknown error'}`));
        return;
      }
      // Before its first message the worker is still loading: find out which file failed.
      diagnose(this.#url).then((why) => this.#die(codeError('WorkerLoad', `headtune worker failed: ${why}`)));
    };
    this.#worker.onmessageerror = () => this.#die(codeError('WorkerLoad', 'headtune worker sent an unreadable message'));
  }

  #receive(msg) {
    // A reply carries only the fields that may have changed (see worker.js); progress and epoch
    // messages carry none.
    if (msg.state) this.state = { ...this.state, ...msg.state };
    // A crashed engine (a Rust panic traps the wasm instance) cannot be used again: every pending
    // call rejects with the `EngineCrashed` error, the worker and its memory are freed, and the
    // owner is told so it can open its data again in a fresh instance.
    if (msg.type === 'error' && msg.error?.code === 'EngineCrashed') {
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

  /**
   * Send `op` with `args`; resolves with the worker's result. On `signal`'s abort the worker is
   * told (addImages and train stop between images / batches and then reject); with
   * `rejectOnAbort` the call rejects at once and its late answer is dropped (for work the
   * engine cannot interrupt, such as one prediction).
   */
  call(op, args = {}, { transfer = [], onProgress, onEpoch, signal, rejectOnAbort = false } = {}) {
    if (this.#dead) return Promise.reject(this.#dead);
    if (signal?.aborted) return Promise.reject(abortError(signal));
    const id = this.#next++;
    return new Promise((resolve, reject) => {
      const onAbort = () => {
        this.#worker.postMessage({ op: 'abort', target: id });
        if (!rejectOnAbort) return;
        this.#pending.delete(id);
        cleanup();
        reject(abortError(signal));
      };
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
    this.#die(codeError('Disposed', 'this headtune instance was disposed'));
  }
}
