// Types of headtune/testing: hooks for tests and benchmarks, not part of the app API.
import type { Tuner, Classifier } from './index.js';

export interface BenchmarkResult {
  backend: 'webgpu' | 'cpu';
  batch: number;
  rounds: number;
  seconds: number;
  imagesPerSecond: number;
}

/** Time `rounds` backbone passes of `batch` copies of `image` after one warm-up pass. */
export declare function benchmark(tuner: Tuner, image: Blob | Uint8Array | ArrayBuffer, options?: { batch?: number; rounds?: number }): Promise<BenchmarkResult>;
/** Bytes of wasm memory in the instance's worker. */
export declare function memory(instance: Tuner | Classifier): Promise<number>;
/** The next WebGPU backbone call fails as a lost device would (work moves to the CPU). */
export declare function simulateBackendFailure(tuner: Tuner): Promise<void>;
/** The engine panics as a bug would; rejects with code `'EngineCrashed'` and calls `onCrash`. */
export declare function simulatePanic(instance: Tuner | Classifier): Promise<void>;
/** A tuner's worker pool: workers in all, images each embedded (the engine's first), wasm bytes of each extra worker started. */
export declare function pool(tuner: Tuner): Promise<{ size: number; embedded: number[]; memory: number[] }>;
