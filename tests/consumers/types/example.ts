// Every option of the headtune API, typed as an app would use it, and the misuses the types
// must refuse (each `@ts-expect-error` fails the check if the line compiles).
import { Tuner, Classifier, preload, BACKENDS, BACKBONES, CROPS, POOLINGS } from 'headtune';
import type { HeadtuneError, ErrorCode, LoadProgress, TrainReport, Predictions, WarningCode, Heatmap, Features } from 'headtune';
import { benchmark, memory, pool, simulateBackendFailure, simulatePanic } from 'headtune/testing';
import weightsUrl from 'headtune/weights';

declare const files: File[];
declare const image: HTMLImageElement;

const ac = new AbortController();
const log = (e: LoadProgress) => {
  if (e.status === 'progress' || e.status === 'done') console.log(e.file, e.loaded, e.total);
  if (e.status === 'progress_total') console.log(e.progress);
  if (e.status === 'ready') console.log(e.backend, e.backendReason);
};

async function main() {
  await preload({ baseUrl: '/headtune/', workerUrl: '/w.js', wasmUrl: new URL('/e.wasm', location.href), onProgress: log, signal: ac.signal });
  const tuner = await Tuner.create({
    backend: 'auto',
    baseUrl: 'https://cdn.example/headtune@0.1.0/',
    workerUrl: '/headtune/lib/worker.js',
    wasmUrl: '/headtune/pkg/headtune_bg.wasm',
    modelUrl: weightsUrl,
    onProgress: log,
    onCrash: (e) => console.error(e.code satisfies 'EngineCrashed', e.message),
    signal: ac.signal,
    augment: { views: 4, minArea: 0.6, flip: true, brightness: 0.1, contrast: 0.1, seed: 1 },
    backbone: 'lite0',
    crop: 'auto',
    pooling: 'avg',
    inputSize: 224,
    workers: 2,
  });
  const added = await tuner.addImages('cat', files, { onProgress: (e) => e.status, signal: ac.signal });
  const firstCode: ErrorCode | undefined = added.rejected[0]?.code;
  console.log(firstCode);
  const pictured = await tuner.addImages('cat', files, { thumbnails: { thumb: 112, preview: 320 } });
  const thumb: Uint8Array | undefined = pictured.thumbnails?.[0]?.thumb;
  console.log(thumb, (await tuner.addImages('cat', files, { thumbnails: true })).thumbnails?.length);
  // @ts-expect-error sides are numbers
  await tuner.addImages('cat', files, { thumbnails: { thumb: '112' } });
  await tuner.setAugment({ views: 2 });
  const report: TrainReport = await tuner.train({
    epochs: 50,
    learningRate: 1e-3,
    batchSize: 32,
    head: 'mlp',
    hiddenUnits: 128,
    dropout: 0.2,
    weightDecay: 1e-4,
    labelSmoothing: 0.1,
    validationSplit: 0.2,
    folds: 5,
    crossValidate: true,
    classBalanced: null,
    patience: 10,
    threshold: 0.5,
    targetSensitivity: 0.95,
    refit: true,
    seed: 7,
    augment: false,
    signal: ac.signal,
    onEpoch: (s) => console.log(s.epoch, s.fold, s.loss, s.valAccuracy),
  });
  const warning: WarningCode | undefined = report.warnings[0]?.code;
  console.log(warning);
  const preds: Predictions = await tuner.predict(image, { topK: 2, heatmap: true, signal: ac.signal });
  const heat: Heatmap | undefined = preds.heatmap;
  console.log(preds[0]?.label, heat?.data.length, preds.decision?.positive);
  const embedding: Float32Array = await tuner.embed(image, { signal: ac.signal });
  console.log(embedding.length, tuner.features.dim satisfies number);
  await tuner.operatingPoint(0.5, { signal: ac.signal });
  await tuner.renameClass('cat', 'kitten', { signal: ac.signal });
  await tuner.relabelExample(added.ids[0]!, 'dog', { signal: ac.signal });
  await tuner.removeExample(added.ids[1]!, { signal: ac.signal });
  await tuner.removeClass('dog', { signal: ac.signal });
  await tuner.setThreshold(0.4, { signal: ac.signal });
  await tuner.setAugment({ views: 2 }, { signal: ac.signal });
  console.log((await tuner.examples({ signal: ac.signal })).length, (await tuner.exampleColumns({ signal: ac.signal })).ids.length);
  const model: Uint8Array = await tuner.exportModel({ signal: ac.signal });
  const project: Uint8Array = await tuner.saveProject({ extra: { note: 'any data' }, signal: ac.signal });
  const again = await Tuner.loadProject(project, { backend: 'cpu', signal: ac.signal, baseUrl: '/headtune/' });
  console.log((await benchmark(again, files[0]!, { batch: 2, rounds: 1 })).imagesPerSecond, await memory(again));
  const { size, embedded, memory: poolMemory } = await pool(again);
  console.log(size + embedded[0]! + poolMemory.length);
  await simulateBackendFailure(again);
  const clf = await Classifier.load(model, { backend: 'webgpu', onProgress: log, signal: ac.signal });
  const fromUrl = await Classifier.load('/models/cats.htm', { wasmUrl: '/e.wasm' });
  const fromUrl2 = await Classifier.load(new URL('https://example.com/m.htm'));
  const features: Features = clf.features;
  console.log(features.backbone, clf.labels, clf.decision?.threshold, fromUrl.backend, fromUrl2.backendReason);
  await simulatePanic(clf).catch((e: unknown) => {
    const err = e as HeadtuneError;
    if (err.code === 'EngineCrashed' || err.code === 'Network' || err.code === 'WorkerLoad') console.log(err.message, err.detail);
  });
  console.log(BACKENDS, BACKBONES, CROPS, POOLINGS);

  // Misuse the types refuse.
  // @ts-expect-error a misspelt training setting
  await tuner.train({ epoch: 5 });
  // @ts-expect-error a setting of the wrong type
  await tuner.train({ epochs: '5' });
  // @ts-expect-error an unknown create option
  await Tuner.create({ bakend: 'cpu' });
  // @ts-expect-error not a backend
  await Tuner.create({ backend: 'gpu' });
  // @ts-expect-error not a crop
  await Tuner.create({ crop: 'middle' });
  // @ts-expect-error a project brings its own features
  await Tuner.loadProject(project, { backbone: 'lite1' });
  // @ts-expect-error a Classifier does not augment
  await Classifier.load(model, { augment: { views: 2 } });
  // @ts-expect-error a Classifier does not add images, so it has no pool
  await Classifier.load(model, { workers: 2 });
  // @ts-expect-error workers is a number
  await Tuner.create({ workers: 'all' });
  // @ts-expect-error a model file is bytes or a URL
  await Classifier.load(42);
  // @ts-expect-error the test hooks are in headtune/testing
  await tuner.benchmark(files[0]!);
  // @ts-expect-error the test hooks are in headtune/testing
  await clf.memory();
  // @ts-expect-error not an error code
  const bad: ErrorCode = 'NotACode';
  // @ts-expect-error not a warning code
  const badWarning: WarningCode = 'too_many_images';
  // @ts-expect-error an unknown predict option
  await clf.predict(image, { top: 3 });
  console.log(bad, badWarning);
}

main();
