// headtune/testing — hooks for tests and benchmarks, kept out of the public API: they reach an
// instance's worker directly. Import from 'headtune/testing'.

import { channels } from './channel.js';

function channelOf(where, instance) {
  const channel = channels.get(instance);
  if (!channel) throw new TypeError(`${where}: expected a Tuner or Classifier`);
  return channel;
}

/**
 * Time the backbone on `tuner`'s backend: `rounds` forward passes of `batch` copies of `image`
 * (a Blob or bytes of an image file), after one warm-up pass. Decoding and preprocessing are
 * done once and not timed. Resolves to `{ backend, batch, rounds, seconds, imagesPerSecond }`.
 */
export async function benchmark(tuner, image, { batch = 1, rounds = 3 } = {}) {
  const channel = channelOf('benchmark', tuner);
  const bytes = image instanceof Blob ? new Uint8Array(await image.arrayBuffer()) : new Uint8Array(image).slice();
  return channel.call('benchmark', { bytes, batch, rounds }, { transfer: [bytes.buffer] });
}

/** Bytes of wasm memory in the instance's worker (it must not grow with repeated calls). */
export async function memory(instance) {
  return channelOf('memory', instance).call('memory');
}

/** The next backbone call on WebGPU fails as a lost GPU device would (work moves to the CPU). */
export async function simulateBackendFailure(tuner) {
  return channelOf('simulateBackendFailure', tuner).call('simulateBackendFailure');
}

/**
 * Make the engine panic as a bug would: the call rejects with code `EngineCrashed`, the
 * instance is closed, and its `onCrash` is called.
 */
export async function simulatePanic(instance) {
  return channelOf('simulatePanic', instance).call('simulatePanic');
}

/**
 * A tuner's worker pool: `{ size, embedded, memory }` — the workers in all, how many images
 * each embedded so far (the engine's worker first), and the bytes of wasm memory of each extra
 * worker started so far (waiting for those still starting).
 */
export async function pool(tuner) {
  const { pool } = channelOf('pool', tuner);
  const memory = await Promise.all((await pool.started()).map((c) => c.call('memory')));
  return { size: pool.size, embedded: [...pool.embedded], memory };
}
