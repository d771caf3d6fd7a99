// Types of the headtune JS API. Every method that does work returns a Promise; the work runs
// in a dedicated Web Worker that owns the wasm instance.

/** Where the backbone runs. `auto` prefers a hardware WebGPU adapter and falls back to the CPU. */
export type Backend = 'auto' | 'webgpu' | 'cpu';

/** The frozen feature extractor: EfficientNet-Lite0 (224 px, default, fastest), Lite1 (240), Lite2 (260). */
export type BackboneName = 'lite0' | 'lite1' | 'lite2';

/**
 * How an image is framed into the square network input: `center` = the 87.5 % centre crop the
 * weights were trained with (photos), `full` = the whole image stretched to the square,
 * `pad` = the whole image letterboxed with mid-grey, `auto` (default) = `full` for a grey-scale
 * image (X-rays, scans: the edges matter), `center` for a colour one — decided per image from
 * its pixels, the same way at training and prediction.
 */
export type Crop = 'auto' | 'center' | 'full' | 'pad';

/**
 * How feature maps become the embedding: `avg` = average of the last layer (1280 values),
 * `avgmax` = its average and max, `multi` = averages of the last four stages and the last
 * layer (several scales); blocks other than plain `avg` are L2-normalised.
 */
export type Pooling = 'avg' | 'avgmax' | 'multi';

/** Everything that determines an embedding; recorded in projects and model files. */
export interface Features {
  backbone: BackboneName;
  /** Side of the square network input, pixels. */
  inputSize: number;
  crop: Crop;
  pooling: Pooling;
  /** Values per embedding. */
  dim: number;
}

/** Anything `addImages` / `predict` accept. Files and Blobs are decoded in Rust (EXIF-aware). */
export type ImageInput =
  | File
  | Blob
  | ImageData
  | ImageBitmap
  | HTMLImageElement
  | HTMLCanvasElement
  | HTMLVideoElement
  | OffscreenCanvas
  | VideoFrame;

/**
 * Progress of `Tuner.create` / `Tuner.loadProject` / `Classifier.load` / `preload`: for each
 * download (the wasm engine `headtune_bg.wasm`, the weights `efficientnet_lite0.safetensors`)
 * `initiate`, `progress`… and `done`, each followed by `progress_total` over every file so
 * far; `compile` once the wasm is downloaded and still compiling, `compiled`; then `ready`.
 * `total` is 0 while unknown (no Content-Length). A wasm module compiled earlier (`preload`,
 * or an earlier instance) is reused: no wasm events then.
 */
export type LoadProgress =
  | { status: 'initiate'; file: string }
  | { status: 'progress'; file: string; loaded: number; total: number; progress: number }
  | { status: 'done'; file: string; loaded: number; total: number }
  | { status: 'progress_total'; loaded: number; total: number; progress: number }
  | { status: 'compile'; file: string }
  | { status: 'compiled'; file: string }
  | { status: 'ready'; backend: 'webgpu' | 'cpu'; backendReason: string };

/**
 * The `code` of an Error from the engine (its Rust variant name) or from the package itself.
 * Engine: `EmptyFile`, `UnsupportedFormat`, `TooLarge`, `NoPixels`, `Corrupt`, `MemoryLimit`
 * (an image or file the engine cannot use), `Io`, `Write`, `Weights` (the weights file is
 * not EfficientNet-Lite weights), `Tensor`, `InvalidArgument` (also every TypeError the package
 * throws for a bad argument), `Data` (e.g. training without two classes), `ModelFile` (a model
 * or project file is corrupt or foreign), `Backend` (the compute backend failed, WebGPU
 * requested but unavailable). Package: `Network` (a download failed: the URL and the HTTP
 * status are in the message), `WorkerLoad` (the worker script or its `../pkg` import could not
 * be loaded: the message names the URL), `WasmCompile` (the wasm URL is not the engine),
 * `EngineCrashed` (a bug stopped the engine: see `onCrash`), `Disposed` (the instance was
 * disposed). Cancelled work rejects with a `DOMException` named `AbortError` instead.
 */
export type ErrorCode =
  | 'EmptyFile'
  | 'UnsupportedFormat'
  | 'TooLarge'
  | 'NoPixels'
  | 'Corrupt'
  | 'MemoryLimit'
  | 'Io'
  | 'Write'
  | 'Weights'
  | 'Tensor'
  | 'InvalidArgument'
  | 'Data'
  | 'ModelFile'
  | 'Backend'
  | 'Network'
  | 'WorkerLoad'
  | 'WasmCompile'
  | 'EngineCrashed'
  | 'Disposed';

/**
 * What every headtune call rejects with (besides `AbortError`s): an `Error` (a `TypeError` for
 * bad arguments) with a `code`, and for damaged images the decoder's own words in `detail`.
 * Narrow on `code`, e.g. `if ((e as HeadtuneError).code === 'ModelFile') …`.
 */
export type HeadtuneError<C extends ErrorCode = ErrorCode> = Error & { code: C; detail?: string };

/** The `code` of a training warning. */
export type WarningCode = 'too_few_images' | 'imbalance' | 'no_transfer' | 'no_validation';

/**
 * Where the package's files are served, when not where the bundler or the import put them
 * (README: "Using with bundlers"). Each URL may be relative to the page.
 */
export interface AssetOptions {
  /**
   * A folder holding the package's `lib/` and `pkg/` folders as published (e.g. a copy in
   * your `public/headtune/`, or a CDN's `https://cdn.example/headtune@0.1.0/`): the worker is
   * `lib/worker.js`, the wasm `pkg/headtune_bg.wasm`, the weights `pkg/efficientnet_*.safetensors`.
   */
  baseUrl?: string | URL;
  /** The worker script (`lib/worker.js`; it imports `../pkg/headtune.js` next to itself). */
  workerUrl?: string | URL;
  /**
   * The engine's wasm: by default the package's `pkg/headtune_relaxed_bg.wasm` where the browser
   * has relaxed SIMD (fused multiply-adds, ≈ 1.28× faster), else `pkg/headtune_bg.wasm`.
   */
  wasmUrl?: string | URL;
}

/** Progress of `addImages`. */
export type AddProgress =
  | { status: 'initiate'; total: number }
  | { status: 'progress'; done: number; total: number; name: string }
  | { status: 'done'; total: number; added: number; rejected: number };

/** How augmented views of each added image are drawn (set before adding images). */
export interface AugmentOptions {
  /** Augmented views per image besides the evaluation view (0–32, default 0). */
  views?: number;
  /** Smallest random crop as a fraction of the evaluation crop's area (0.1–1, default 0.6). */
  minArea?: number;
  /** Random left-right mirroring (default true). */
  flip?: boolean;
  /** ± brightness change, fraction of full scale (0–0.5, default 0.1). */
  brightness?: number;
  /** ± contrast change (0–0.5, default 0.1). */
  contrast?: number;
  /** Seed of the view sampler. */
  seed?: number;
}

export interface LoadOptions extends AssetOptions {
  /** Default `'auto'`. */
  backend?: Backend;
  /**
   * Where to fetch the backbone's weights (`efficientnet_lite0.safetensors`, `…lite1…`,
   * `…lite2…`). Default: next to the package's wasm. The npm package ships only Lite0's; for
   * Lite1/Lite2 host the file from models/ and give its URL.
   */
  modelUrl?: string | URL;
  onProgress?: (event: LoadProgress) => void;
  /**
   * Called once if the engine crashes (a bug in headtune: a Rust panic stops the wasm instance).
   * The instance is closed: its pending and later calls reject with an Error whose `code` is
   * `'EngineCrashed'`. Open the data again in a new instance (e.g. `Tuner.loadProject` with the
   * last `saveProject()` bytes), as the demo page does.
   */
  onCrash?: (error: HeadtuneError<'EngineCrashed'>) => void;
  /** Augmentation of images added from now on. */
  augment?: AugmentOptions;
  /**
   * Workers that embed in `addImages`, the engine's own included (default: one per core,
   * `navigator.hardwareConcurrency`, at most 8; 1 = the engine's worker alone). The extra ones
   * start on the first `addImages` that can use them and only decode, preprocess and embed, the
   * engine's way; the project stays in the engine's worker and the results are exactly one
   * worker's (same ids, order, embeddings, rejections). Each costs a wasm instance of about
   * 45 MB. Used on the CPU backend (with WebGPU the engine's worker embeds alone); no
   * cross-origin isolation needed.
   */
  workers?: number;
  /** Aborting stops the downloads and the worker; the call rejects with an AbortError. */
  signal?: AbortSignal;
}

/** `Tuner.create` also chooses how embeddings are made (a project or model file brings its own). */
export interface CreateOptions extends LoadOptions {
  /** Default `'lite0'`. */
  backbone?: BackboneName;
  /** Default `'auto'`. */
  crop?: Crop;
  /** Default `'avg'`. */
  pooling?: Pooling;
  /** Input side in pixels, 96–512 (default: the backbone's own, 224 / 240 / 260). */
  inputSize?: number;
}

export interface AddImagesOptions {
  onProgress?: (event: AddProgress) => void;
  /**
   * Called as images are added, a few at a time, in input order, with those just added (ids,
   * their positions in the input list and, with `thumbnails`, their JPEGs). Together the calls
   * hold exactly what the result holds. Lets an app store and show images during one long
   * addition — and keep them when it is aborted — instead of cutting it into many calls, which
   * idles the workers at every cut.
   */
  onAdded?: (batch: AddedImages) => void;
  /** Aborting rejects with an AbortError; images added before the abort stay added. */
  signal?: AbortSignal;
  /**
   * Also return each added image's thumbnail and preview as JPEG bytes (`thumbnails` of the
   * result), made by the engine from the decode it does anyway (EXIF orientation applied), so
   * an app need not decode the image again to show it. `true` = the defaults.
   */
  thumbnails?: boolean | ThumbnailOptions;
}

/** What `onAdded` of `addImages` is told: images just added, as in `AddImagesResult`. */
export interface AddedImages {
  ids: number[];
  indices: number[];
  thumbnails?: { thumb: Uint8Array; preview: Uint8Array }[];
}

/** Sizes of the pictures `addImages` returns with `thumbnails` (whole pixels, 16–1024). */
export interface ThumbnailOptions {
  /**
   * Side of the square thumbnail (default 112): of the image's centre, or with
   * `preview: 'input'` of the input square.
   */
  thumb?: number;
  /**
   * Longest side of the whole-image preview, aspect kept; smaller images keep their size
   * (default 320). Or `'input'`: what the model saw — the image framed the model's way (see
   * `Features.crop`) at the backbone's input side, e.g. 224 × 224 (a smaller framed region
   * keeps its own size; `framed` prediction resizes it as the model did). Cheaper (the
   * embedding made those pixels already; about half the engine's thumbnail work per photo),
   * and predicting it with `framed: true` gives the model the same input again, so a heatmap
   * over it shows what the model looked at.
   */
  preview?: number | 'input';
}

export interface AddImagesResult {
  /** How many images were added. */
  added: number;
  /** Their example ids, in input order (for `removeExample`). */
  ids: number[];
  /** For each id, the position in the input list of the image it was made from. */
  indices: number[];
  /**
   * Images that could not be used: the reason in plain words (e.g. "the JPEG file is truncated:
   * …"), the engine's error `code` (`Corrupt`, `UnsupportedFormat`, `TooLarge`, `MemoryLimit`, …),
   * for damaged files the decoder's own `detail`, and their position in the input list.
   */
  rejected: { name: string; reason: string; index: number; code?: ErrorCode; detail?: string }[];
  /**
   * With the `thumbnails` option: for each id, the image's JPEG files — `thumb` (the centre
   * square, quality 0.8) and `preview` (the whole image, or the input square with
   * `preview: 'input'`; quality 0.85). E.g.
   * `new Blob([thumb], { type: 'image/jpeg' })`.
   */
  thumbnails?: { thumb: Uint8Array; preview: Uint8Array }[];
}

export interface ClassInfo {
  name: string;
  count: number;
}

export interface ExampleInfo {
  id: number;
  label: string;
  name: string;
  /** Embedded views: 1 evaluation view + augmented ones. */
  views: number;
}

/**
 * `signal` of the calls without other options. Calls that only answer (listings, files, the
 * operating point) reject at once when it aborts; quick edits (rename, remove, relabel,
 * threshold, augmentation) refuse to start under an aborted signal and otherwise complete.
 */
export interface CallOptions {
  signal?: AbortSignal;
}

/** Every example as columns (`tuner.exampleColumns()`): row i is example i of `examples()`. */
export interface ExampleColumns {
  ids: Float64Array;
  /** Index of each example's class in `classNames`. */
  classes: Uint32Array;
  /** Embedded views of each example: 1 evaluation view + augmented ones. */
  views: Uint32Array;
  names: string[];
  classNames: string[];
}

export interface EpochStats {
  epoch: number;
  /** k-fold run (1-based) or null for the split / final run. */
  fold: number | null;
  loss: number;
  accuracy: number;
  valLoss: number | null;
  valAccuracy: number | null;
}

export interface TrainOptions {
  epochs?: number;
  learningRate?: number;
  batchSize?: number;
  head?: 'linear' | 'mlp';
  hiddenUnits?: number;
  dropout?: number;
  weightDecay?: number;
  labelSmoothing?: number;
  /** Fraction of each class held out (0 = none); small classes switch to k-fold. */
  validationSplit?: number;
  folds?: number;
  /** Always use k-fold cross-validation (slower, less noisy metrics); default: only when a class has fewer than 10 images. */
  crossValidate?: boolean;
  /** `null`/absent = automatic (when classes are imbalanced). */
  classBalanced?: boolean | null;
  /** Early-stopping patience in epochs (0 = off). */
  patience?: number;
  /**
   * A fixed decision threshold on the second class's probability (two classes). Absent: chosen
   * on the validation (or out-of-fold) predictions — Youden's J, or `targetSensitivity`.
   */
  threshold?: number;
  /** Choose the highest threshold whose validation sensitivity reaches this (screening: 0.95). */
  targetSensitivity?: number;
  /** Train the returned head again on every image after choosing epochs on validation (default true). */
  refit?: boolean;
  seed?: number;
  /** Train on the augmented views stored with each image (default true) or evaluation views only. */
  augment?: boolean;
  /** Aborting stops training between batches and rejects with an AbortError. */
  signal?: AbortSignal;
  onEpoch?: (stats: EpochStats) => void;
}

export interface ClassMetrics {
  name: string;
  support: number;
  precision: number;
  recall: number;
  f1: number;
}

/** A 95 % confidence interval. */
export interface Interval {
  low: number;
  high: number;
}

/** Sensitivity and specificity at one decision threshold (two classes). */
export interface OperatingPoint {
  threshold: number;
  sensitivity: number;
  specificity: number;
  /** 95 % Wilson interval. */
  sensitivityInterval: Interval;
  /** 95 % Wilson interval. */
  specificityInterval: Interval;
}

export interface Metrics {
  n: number;
  accuracy: number;
  /** 95 % Wilson interval of the accuracy (absent in models saved before intervals existed). */
  accuracyInterval?: Interval;
  majorityBaseline: number;
  perClass: ClassMetrics[];
  /** `confusion[true][predicted]`. */
  confusion: number[][];
  /** Two-class extras: ROC curve, AUC, sensitivity/specificity. */
  binary: null | {
    positive: string;
    roc: { threshold: number; fpr: number; tpr: number }[];
    auc: number;
    threshold: number;
    sensitivity: number;
    specificity: number;
    /** 95 % interval of the AUC: DeLong, or Newcombe's score interval where DeLong's variance is 0. */
    aucInterval?: Interval;
    /** 95 % Wilson interval of `sensitivity`. */
    sensitivityInterval?: Interval;
    /** 95 % Wilson interval of `specificity`. */
    specificityInterval?: Interval;
    youdenThreshold: number;
    youdenSensitivity: number;
    youdenSpecificity: number;
  };
}

export interface TrainReport {
  history: EpochStats[];
  /** Held-out metrics (null when nothing could be held out). */
  metrics: Metrics | null;
  warnings: { code: WarningCode; message: string }[];
  validation: 'split' | 'kfold' | 'none';
  bestEpoch: number;
  stoppedEarly: boolean;
  classBalanced: boolean;
  trainExamples: number;
  trainRows: number;
  /** Each held-out image's prediction by a head that did not train on it, in store order. */
  heldOut: HeldOutPrediction[];
  [more: string]: unknown;
}

/** A held-out image as a head that did not see it predicted it. */
export interface HeldOutPrediction {
  /** Example id. */
  id: number;
  /** Index of its labelled class in `metrics.perClass`. */
  label: number;
  probabilities: number[];
  /** The prediction confidently (≥ 0.8) disagrees with the label: check this image's label. */
  doubted: boolean;
}

export interface Heatmap {
  width: number;
  height: number;
  /** Row-major, 0..1 (1 = strongest evidence for `label`). */
  data: Float32Array;
  label: string;
  /**
   * The area of the source image the grid covers, in source pixels: the centre crop, the whole
   * image, or for `pad` the letterboxed square (then partly outside the image).
   */
  crop: { x: number; y: number; width: number; height: number };
  imageWidth: number;
  imageHeight: number;
}

export interface Prediction {
  label: string;
  probability: number;
}

/** A two-class model's call on one image at its threshold. */
export interface DecisionOutput {
  label: string;
  /** Whether `label` is the second (positive) class. */
  positive: boolean;
  /** The positive class's probability. */
  probability: number;
  threshold: number;
}

/** A two-class model's threshold and the operating point it was chosen at. */
export interface Decision {
  /** Call the second class when its probability is at least this. */
  threshold: number;
  /** `youden` (max sensitivity + specificity), `sensitivity` (a target), `fixed` (set), `default` (0.5, no validation). */
  rule: 'youden' | 'sensitivity' | 'fixed' | 'default';
  targetSensitivity: number | null;
  /** On the validation predictions it was chosen on (optimistic for a chosen threshold). */
  sensitivity: number | null;
  specificity: number | null;
  n: number;
}

/**
 * Sorted by probability, most probable first; `heatmap` when asked for; `decision` for
 * two-class models. An Array with two extra properties: `.map`, `.filter`, spread,
 * `structuredClone`, `postMessage` and JSON keep only the predictions, so read `heatmap` and
 * `decision` from the result itself (`const { heatmap, decision } = preds`) before copying it.
 */
export type Predictions = Prediction[] & { heatmap?: Heatmap; decision?: DecisionOutput };

export interface PredictOptions {
  /** Aborting rejects at once with an AbortError (the engine finishes the image and drops it). */
  signal?: AbortSignal;
  /** How many classes to return (default 3). */
  topK?: number;
  /** Also compute the class-activation map of the top class (default false). */
  heatmap?: boolean;
  /**
   * The image already is the model's input square — a preview made with
   * `thumbnails: { preview: 'input' }` — so it is only resized to the input side, not framed
   * again (a centre crop would be cropped twice). Default false.
   */
  framed?: boolean;
}

export declare const BACKENDS: readonly Backend[];
export declare const BACKBONES: readonly BackboneName[];
export declare const CROPS: readonly Crop[];
export declare const POOLINGS: readonly Pooling[];

/**
 * Download and compile the engine's wasm once, for every Tuner and Classifier started later
 * (the first instance shares its compiled module too; this starts the work earlier, e.g. while
 * the user picks images). Reports the download and the compile through `onProgress`.
 */
export declare function preload(options?: AssetOptions & { onProgress?: (event: LoadProgress) => void; signal?: AbortSignal }): Promise<void>;

/** One save of `tuner.saveParts`: the records to write and to delete. */
export interface SavedParts {
  /** Pass as `since` to the next saveParts once these records are stored. */
  generation: number;
  /** Empty the store before writing: this is the whole project. */
  clear: boolean;
  put: Array<[key: string, bytes: Uint8Array]>;
  remove: string[];
}

export declare class Tuner {
  private constructor();
  /** Start a worker, download the weights (cached by the browser), pick a backend. */
  static create(options?: CreateOptions): Promise<Tuner>;
  /** Restore from `saveProject()` bytes (with its features); a corrupt or foreign file rejects with an Error. */
  static loadProject(bytes: Uint8Array | ArrayBuffer, options?: LoadOptions): Promise<Tuner>;
  /** Restore from the records `saveParts` wrote, by key (e.g. read back from IndexedDB); checked as loadProject checks a file. */
  static loadParts(parts: Record<string, Uint8Array | ArrayBuffer>, options?: LoadOptions): Promise<Tuner>;
  /** For a tuner from `loadParts`: the generation of those parts (the first `since` of `saveParts`); else null. */
  readonly savedGeneration: number | null;
  readonly backend: 'webgpu' | 'cpu';
  /** How embeddings are made in this tuner. */
  readonly features: Features;
  readonly backendReason: string;
  readonly classes: ClassInfo[];
  readonly augment: Required<AugmentOptions>;
  readonly extra: unknown;
  examples(options?: CallOptions): Promise<ExampleInfo[]>;
  /** The same as `examples()`, as typed-array columns: compact for large projects. */
  exampleColumns(options?: CallOptions): Promise<ExampleColumns>;
  addImages(label: string, images: Iterable<ImageInput> | ArrayLike<ImageInput>, options?: AddImagesOptions): Promise<AddImagesResult>;
  /** Augmentation of images added from now on. */
  setAugment(augment: AugmentOptions, options?: CallOptions): Promise<void>;
  /** Sensitivity/specificity of the trained model at `threshold`, with 95 % intervals (two classes). */
  operatingPoint(threshold: number, options?: CallOptions): Promise<OperatingPoint | null>;
  /** A plain rename also renames the trained model's label (no retraining needed). */
  renameClass(from: string, to: string, options?: CallOptions): Promise<void>;
  /** Resolves to the number of examples removed. */
  removeClass(name: string, options?: CallOptions): Promise<number>;
  removeExample(id: number, options?: CallOptions): Promise<void>;
  /** Move an example to another class (created if needed), e.g. to fix a wrong label. */
  relabelExample(id: number, label: string, options?: CallOptions): Promise<void>;
  train(options?: TrainOptions): Promise<TrainReport>;
  predict(image: ImageInput, options?: PredictOptions): Promise<Predictions>;
  /** The embedding of the image's evaluation view (`features.dim` values). */
  embed(image: ImageInput, options?: { signal?: AbortSignal }): Promise<Float32Array>;
  /** Decide at this threshold from now on (two-class models); resolves to the new decision. */
  setThreshold(threshold: number, options?: CallOptions): Promise<Decision>;
  /** The trained model's decision (two classes), or null. */
  readonly decision: Decision | null;
  /** The model file: the same format `headtune train/eval/predict` use. */
  exportModel(options?: CallOptions): Promise<Uint8Array>;
  saveProject(options?: { extra?: unknown } & CallOptions): Promise<Uint8Array>;
  /**
   * What changed since the save of generation `since` (null: nothing stored yet), as records for
   * storage written piecemeal (IndexedDB). Apply them in one transaction — empty the store first
   * when `clear` — then pass `generation` as the next `since`.
   */
  saveParts(options?: { extra?: unknown; since?: number | null } & CallOptions): Promise<SavedParts>;
  dispose(): void;
}

export declare class Classifier {
  private constructor();
  /** A model file: its URL (relative to the page), or its bytes. */
  static load(model: string | URL | Uint8Array | ArrayBuffer, options?: Omit<LoadOptions, 'augment' | 'workers'>): Promise<Classifier>;
  readonly backend: 'webgpu' | 'cpu';
  /** How the model's embeddings are made (from the model file). */
  readonly features: Features;
  readonly backendReason: string;
  /** Class names in output order. */
  readonly labels: string[];
  /** The model's decision threshold (two classes), or null. */
  readonly decision: Decision | null;
  predict(image: ImageInput, options?: PredictOptions): Promise<Predictions>;
  dispose(): void;
}
