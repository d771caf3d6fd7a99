// Creating, restoring and swapping the page's one Tuner (../lib, whose engine runs in a Web
// Worker), and mirroring what it holds — classes, examples, backend — into the page state.

import { Tuner } from '../lib/index.js';

const BACKENDS = ['auto', 'webgpu', 'cpu'];
const BACKEND_KEY = 'headtune.backend';

let tuner = null;
let crashHandler = null;

/** The current Tuner (null until the engine has started). */
export const current = () => tuner;

/** The backend to start with: `?backend=` in the address, else the last choice, else auto. */
export function chosenBackend() {
  const param = new URLSearchParams(location.search).get('backend');
  if (BACKENDS.includes(param)) return param;
  try {
    const stored = localStorage.getItem(BACKEND_KEY);
    if (BACKENDS.includes(stored)) return stored;
  } catch {
    // No storage (private mode): use the default.
  }
  return 'auto';
}

/** Remember the user's backend choice for the next visit. */
export function rememberBackend(backend) {
  try {
    localStorage.setItem(BACKEND_KEY, backend);
  } catch {
    // Private mode: the choice just isn't remembered.
  }
}

/**
 * What to do when the engine crashes (a bug: a Rust panic stops its wasm instance, and the
 * package closes that Tuner). main.js opens the project again from its last save.
 */
export function onCrash(fn) {
  crashHandler = fn;
}

function options(state, extra = {}) {
  return {
    backend: state.get().backend,
    // Only the page's current tuner matters; a crash of one being replaced is ignored.
    onCrash: (e) => {
      if (crashHandler) crashHandler(e);
    },
    onProgress: (e) => {
      if (e.status === 'progress_total') setText(state, `Loading the image model… ${Math.round(e.progress)} %`);
      if (e.status === 'ready') setText(state, 'Ready');
    },
    ...extra,
  };
}

/** Show a line in the engine status (while starting or switching). */
export function setText(state, text) {
  state.set({ engine: { ...state.get().engine, text } });
}

/**
 * A new, empty tuner with augmentation `views`, framing images as the user chose for new
 * projects (`state.framing`, an engine `crop`; not yet in use: see `use`).
 */
export const createEmpty = (state, views) => Tuner.create(options(state, { augment: { views }, crop: state.get().framing }));

/**
 * Frame the images of the (still empty) project as `crop`: a new empty tuner with the same
 * augmentation replaces the current one. The engine fixes the framing with the first image.
 */
export async function reframe(state, crop) {
  state.set({ framing: crop });
  const next = await Tuner.create(options(state, { augment: tuner.augment, crop }));
  use(state, next);
  await refresh(state);
}

/** A tuner restored from project bytes (not yet in use). A bad file rejects; nothing changes. */
export const open = (state, bytes) => Tuner.loadProject(bytes, options(state));

/** A tuner restored from the parts stored in this browser (not yet in use); bad parts reject. */
export const openParts = (state, parts) => Tuner.loadParts(parts, options(state));

/** Make `next` the page's tuner, disposing of the old one, and show its backend. */
export function use(state, next) {
  const old = tuner;
  tuner = next;
  if (old && old !== next) old.dispose();
  describe(state);
}

function describe(state) {
  const name = tuner.backend === 'webgpu' ? 'WebGPU' : 'CPU';
  state.set({ engine: { text: `Running on ${name}`, backend: tuner.backend, reason: tuner.backendReason || '' } });
}

/** Re-open the current project on another backend (the user switched). */
export async function reopen(state, extra) {
  const bytes = await tuner.saveProject({ extra });
  use(state, await Tuner.loadProject(bytes, options(state)));
}

/** Read classes and examples back from the engine into the state. */
export async function refresh(state) {
  const examples = await tuner.examples();
  state.set({ classes: tuner.classes, examples, features: tuner.features });
}

/**
 * Fingerprint of which examples are in which class (ids and class indices, not names): a model
 * trained on this fingerprint is up to date. Renaming a class keeps it; adding, removing,
 * moving images or merging classes changes it.
 */
let memo = { classes: null, examples: null, value: '' };

export function fingerprint({ classes, examples }) {
  // Several panels ask after every change; the arrays are replaced, never mutated.
  if (memo.classes === classes && memo.examples === examples) return memo.value;
  const index = new Map(classes.map((c, i) => [c.name, i]));
  // FNV-1a over "id:class;" for every example, in id order.
  let h = 0x811c9dc5;
  const sorted = [...examples].sort((a, b) => a.id - b.id);
  for (const e of sorted) {
    for (const ch of `${e.id}:${index.get(e.label)};`) h = Math.imul(h ^ ch.charCodeAt(0), 0x01000193) >>> 0;
  }
  memo = { classes, examples, value: `${sorted.length}-${h.toString(16)}` };
  return memo.value;
}
