// The one place the page's state lives. Panels read it, change it only through `set`, and
// re-render in a `subscribe` callback; nothing else keeps a copy of what is shown.
//
// State is a plain object whose fields are replaced, never mutated in place, so a subscriber can
// tell what changed by the keys `set` was given.

/** The state of a fresh page before the engine has answered. */
export function initialState() {
  return {
    /** Backend the user asked for: 'auto' | 'webgpu' | 'cpu'. */
    backend: 'auto',
    /** What the engine says about itself: { text, backend, reason }. */
    engine: { text: 'Starting…', backend: null, reason: '' },
    /** The long task in progress: null | 'starting' | 'adding' | 'training' | 'importing' | 'clearing' | 'switching' | 'restarting'. */
    busy: 'starting',
    /** `[{ name, count }]` from the engine. */
    classes: [],
    /** How the engine makes embeddings: `{ backbone, inputSize, crop, pooling, dim }`; `crop` is
     * the framing (an `auto` one is fixed by the first image added). */
    features: {},
    /** Framing asked for when a new project starts (the engine's `crop`): 'auto' | 'center' | 'full' | 'pad'. */
    framing: 'auto',
    /** `[{ id, label, name, views }]` from the engine. */
    examples: [],
    /** Class cards without images yet (the engine only knows classes that have images):
     * [{ name, touched }]; `touched` = renamed or chosen by the user, kept when a folder arrives. */
    pending: [],
    /** Class that loose, dropped and pasted images go to. */
    target: '',
    /** Progress of adding images: null or { label, done, total, text, cancellable }. */
    adding: null,
    /** Files the engine could not use: [{ name, reason }]. */
    rejected: [],
    /** The training settings form, as strings keyed by field name. */
    settings: null,
    /** Epoch statistics of the run on screen. */
    history: [],
    /** Status line of the Train panel. */
    trainStatus: '',
    /** The last training report (history, metrics, warnings, held-out predictions). */
    report: null,
    /** Fingerprint of the examples (ids and class indices) the model was trained on. */
    trainedOn: null,
    /** Decision threshold the user chose (two classes), or null for the model's own. */
    threshold: null,
    /** The threshold the engine's model decides at, once the user set one with the slider. */
    modelThreshold: null,
    /** Sensitivity/specificity at `threshold`, from the engine. */
    operatingPoint: null,
    /** What the review list shows: null | { kind: 'cell', truth, predicted } | { kind: 'wrong' } | { kind: 'doubted' }. */
    review: null,
    /** The image last classified: { preds, bitmap, name, live }. */
    prediction: null,
    /** Whether live webcam prediction is on. */
    live: false,
    /** Saving to this browser: { state: 'saved' | 'pending' | 'error', text }. */
    save: { state: 'saved', text: '' },
    /** Error lines per panel: { data, train, predict, keep }. */
    errors: {},
    /** Which class card has the webcam open (class name) or null. */
    camera: null,
    /** Key in IndexedDB of a saved project that could not be opened (kept for export), or null. */
    unreadable: null,
  };
}

/**
 * A store around `initial`: `get()` the current state, `set(patch)` replace some fields and tell
 * subscribers, `subscribe(keys, fn)` call `fn(state, changedKeys)` after any `set` that changed
 * one of `keys` (all keys when `keys` is null). Returns an unsubscribe function.
 */
export function createState(initial) {
  let current = initial;
  const subscribers = new Set();
  return {
    get: () => current,
    set(patch) {
      const changed = Object.keys(patch).filter((k) => current[k] !== patch[k]);
      if (!changed.length) return;
      current = { ...current, ...patch };
      const keys = new Set(changed);
      for (const s of [...subscribers]) {
        if (!s.keys || s.keys.some((k) => keys.has(k))) s.fn(current, keys);
      }
    },
    subscribe(keys, fn) {
      const s = { keys, fn };
      subscribers.add(s);
      return () => subscribers.delete(s);
    },
  };
}

/** Set one panel's error line (empty text clears it). */
export function setError(state, panel, text) {
  const errors = state.get().errors;
  if ((errors[panel] ?? '') === text) return;
  state.set({ errors: { ...errors, [panel]: text } });
}
