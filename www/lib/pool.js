// Every core for addImages: a Tuner's extra workers, each with its own wasm instance (the compiled
// module is shared) and a backbone but no project. The engine's worker keeps the project (store,
// classes, model) and every decision about how an image is embedded — its view plan: the feature
// spec with the crop decided, and the augmentation. The pool hands images to all workers, the
// engine's included; each decodes, preprocesses and embeds under that plan, and the engine
// appends the results in input order, so ids, order, embeddings and rejections are what one
// worker gives. Used on the CPU backend only (bit-identical embeddings in every worker); no
// SharedArrayBuffer, so no COOP/COEP headers are needed.

import { toMessage, nameOf } from './images.js';
import { Channel, modules, abortError } from './channel.js';

/** Images converted or embedded ahead of the next one to append, per worker (bounds memory). */
const AHEAD = 4;
/** Images appended per round trip to the engine's worker (at most; fewer at the end). */
const APPEND_BATCH = 4;

/** The extra workers of one Tuner, started on the first addImages that can use them. */
export class Pool {
  /** How many workers embed, the engine's included. */
  size;
  #assets;
  /**
   * One entry per extra worker: `{ ready, channel }` once started (`ready`: a Promise of the
   * Channel, or of null when it could not start; `channel` when it has), else null.
   */
  #helpers;
  /** Images each worker embedded (the engine's first), for the test hooks. */
  embedded;

  /** `size`: workers in all (1 = the engine's alone); `assets`: `{ workerUrl, wasmUrl }`. */
  constructor(size, assets) {
    this.size = size;
    this.#assets = assets;
    this.#helpers = Array.from({ length: size - 1 }, () => null);
    this.embedded = Array.from({ length: size }, () => 0);
  }

  /** The extra workers started so far, once they are ready (those that failed left out). */
  async started() {
    return (await Promise.all(this.#helpers.map((h) => h?.ready))).filter(Boolean);
  }

  /**
   * Start whichever extra workers are not running, with the engine's weights. Each joins the
   * work when it is ready, so the engine's worker is not kept waiting; one that fails to start
   * is left out (and tried again on the next call).
   */
  #start(weightsUrl) {
    return this.#helpers.map((h, i) => {
      if (h) return h.ready;
      const entry = { channel: null };
      entry.ready = startEmbedder({ ...this.#assets, weightsUrl }).then(
        (channel) => (entry.channel = channel),
        () => {
          if (this.#helpers[i] === entry) this.#helpers[i] = null;
          return null;
        },
      );
      this.#helpers[i] = entry;
      return entry.ready;
    });
  }

  /** Stop a worker that failed mid-work; the next call starts a fresh one. */
  #drop(channel) {
    channel.terminate();
    const i = this.#helpers.findIndex((h) => h?.channel === channel);
    if (i >= 0) this.#helpers[i] = null;
  }

  /**
   * Embed `list[from…]` on every worker and append them to class `label` through `engine` (its
   * view plan must be fixed: see `viewPlan` in worker.js). Hands what is added to
   * `merge(ids, indices, thumbnails)` and the rejections to `result`, like the engine's own
   * addImages, and calls `report(done, name)` per image, in order. With `thumbnails`
   * (`{ thumb, preview }` sides) the worker that embeds an image also makes its JPEGs, which
   * stay here (the engine's worker never sees them) and go to `merge`.
   */
  async add({ engine, weightsUrl, plan, label, list, from, result, merge, report, signal, thumbnails }) {
    const total = list.length;
    let next = from;
    let appended = from;
    const ready = new Map();
    const retry = [];
    let failure = null;
    let tail = Promise.resolve();
    // Loops waiting for the window to move on, woken by every append and every failure.
    let waiters = [];
    const wake = () => {
      for (const w of waiters) w();
      waiters = [];
    };
    const stopped = () => failure !== null || signal?.aborted;
    const window = AHEAD * this.size;

    // Images are appended strictly in input order, a few per round trip (each reply costs the
    // engine's worker a state read): a finished image waits for those before it.
    const flush = (force) => {
      let run = 0;
      while (ready.has(appended + run)) run++;
      if (run === 0 || (run < APPEND_BATCH && !force)) return wake();
      const batch = [];
      for (let k = 0; k < run; k++, appended++) {
        batch.push({ index: appended, out: ready.get(appended) });
        ready.delete(appended);
      }
      const items = batch.filter((b) => !b.out.rejected).map(({ index, out }) => ({ index, plan, views: out.views, image: out.image }));
      const transfer = items.flatMap((it) => [it.views.buffer, (it.image.bytes ?? it.image.rgba).buffer]);
      // Posted now (the worker keeps the order); merged into `result` in order.
      const answer = items.length ? engine.call('appendViews', { label, items }, { transfer, signal }) : null;
      tail = tail
        .then(() => answer)
        .then((r) => {
          for (const b of batch) if (b.out.rejected) result.rejected.push(b.out.rejected);
          if (r) {
            result.rejected.push(...r.rejected);
            const made = new Map(batch.map((b) => [b.index, b.out]));
            merge(r.ids, r.indices, thumbnails ? r.indices.map((i) => ({ thumb: made.get(i).thumb, preview: made.get(i).preview })) : undefined);
          }
          for (const b of batch) report(b.index + 1, b.out.rejected?.name ?? b.out.image.name);
        });
      tail.catch((e) => {
        failure ??= e;
        wake();
      });
      wake();
    };

    const take = async () => {
      for (;;) {
        if (stopped()) return null;
        if (retry.length) return retry.shift();
        if (next >= total) return null;
        if (next - appended < window) return next++;
        await new Promise((resolve) => waiters.push(resolve));
      }
    };

    const work = async (channel, slot) => {
      const helper = slot > 0;
      for (let j = await take(); j !== null; j = await take()) {
        let message;
        try {
          message = await toMessage(list[j], j);
        } catch (e) {
          ready.set(j, { rejected: { name: nameOf(list[j], j), reason: e.message, index: j } });
          flush();
          continue;
        }
        try {
          ready.set(j, await channel.call('embedViews', { plan, image: { ...message.item, index: j }, thumbnails }, { transfer: message.transfer }));
        } catch (e) {
          if (!helper) {
            failure ??= e;
            wake();
            return;
          }
          // A pool worker that fails (crashed, lost) leaves; its image goes to another worker.
          retry.push(j);
          this.#drop(channel);
          wake();
          return;
        }
        this.embedded[slot] += 1;
        flush();
      }
    };

    // Two images in flight per worker: the next one waits in the worker's queue while the
    // current one is embedded, so no worker idles through a round trip.
    const both = (channel, slot) => Promise.all([work(channel, slot), work(channel, slot)]);
    const helpers = this.#start(weightsUrl).map(async (ready, i) => {
      const channel = await ready;
      if (channel !== null) await both(channel, i + 1);
    });
    await Promise.all([both(engine, 0), ...helpers]);
    // Images given back by a worker that left after the others had finished.
    if (retry.length) await work(engine, 0);
    flush(true);
    await tail.catch(() => {});
    if (failure) throw failure;
    if (signal?.aborted) throw abortError(signal);
  }

  /** Stop every extra worker. */
  dispose() {
    for (const h of this.#helpers) h?.ready.then((c) => c?.terminate());
    this.#helpers = this.#helpers.map(() => null);
  }
}

/** A pool worker: the package's worker script with an Embedder loaded from `weightsUrl`. */
async function startEmbedder({ workerUrl, wasmUrl, weightsUrl }) {
  const channel = new Channel({ workerUrl });
  try {
    await channel.call('init', { kind: 'embedder', modelUrl: weightsUrl, wasmUrl, module: modules.get(wasmUrl ?? ''), features: {}, defaultModelUrls: {} });
  } catch (e) {
    channel.terminate();
    throw e;
  }
  return channel;
}
