// Keeping the work: the project is saved to this browser shortly after every change — only what
// changed, as the engine's parts (store.js), with the page's report and settings in its `extra`
// part; thumbnails live in their own stores — and can be exported as one project file,
// imported, or replaced by an empty one.

import * as engine from './engine.js';
import * as db from './store.js';
import * as thumbs from './thumbs.js';
import { SETTINGS } from './training.js';
import { byId, download, renderError } from './dom.js';
import { setError } from './state.js';

const PAGE_APP = 'headtune-page';
/** The `extra` layout this page writes (version 1 kept thumbnails inside it). */
const EXTRA_VERSION = 2;

/** What the page stores in the project file's `extra` slot. */
function extraData(s) {
  return { app: PAGE_APP, version: EXTRA_VERSION, report: s.report, trainedOn: s.trainedOn, threshold: s.threshold, settings: s.settings };
}

/**
 * The state of a project opened from `extra` (null for a new project): report, settings,
 * threshold; everything about the previous project's session (review, prediction…) reset.
 * Settings missing from `extra` fall back to `defaults`.
 */
export function projectState(extra, defaults) {
  const x = extra && typeof extra === 'object' && extra.app === PAGE_APP ? extra : {};
  const settings = { ...defaults };
  for (const k of SETTINGS) if (x.settings?.[k] !== undefined) settings[k] = x.settings[k];
  return {
    report: x.report ? { heldOut: [], ...x.report } : null,
    history: x.report?.history ?? [],
    trainedOn: x.trainedOn ?? null,
    threshold: typeof x.threshold === 'number' ? x.threshold : null,
    settings,
    pending: [],
    review: null,
    prediction: null,
    operatingPoint: null,
    rejected: [],
    adding: null,
    trainStatus: '',
  };
}

/**
 * Bring a project saved by the first version of the page up to date: its thumbnails move out of
 * `extra` into their own store, and its model-freshness signature (class names and counts)
 * becomes the fingerprint of today's examples when it still matched them.
 */
export async function migrate(extra, s) {
  if (extra?.app !== PAGE_APP || extra.version !== 1) return {};
  await thumbs.importAll(extra.thumbs);
  const signature = s.classes.map((c) => `${c.name}:${c.count}`).join('|');
  return { trainedOn: extra.trainedOn === signature ? engine.fingerprint(s) : null };
}

let saveTimer = null;
let saveSeq = 0;
/** Changes asked to be saved so far; a save covers those made before it began. */
let changes = 0;
/** Saves run one after another: each is computed against what the previous one stored. */
let saving = Promise.resolve();

/**
 * What this browser stores for each tuner: the generation of its last stored save (the `since`
 * of its next `saveParts`). A tuner not listed has nothing stored yet: its first save is whole.
 */
const storedAt = new WeakMap();
/** This page session, and the mark of the last save it stored (or found when it loaded). */
const session = `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`;
let lastMark = null;

/**
 * The project was just opened from the parts stored in this browser (`writer`: the mark stored
 * with them): its next save writes only what changes from here.
 */
export function openedFromParts(tuner, writer) {
  if (tuner.savedGeneration !== null) storedAt.set(tuner, tuner.savedGeneration);
  lastMark = writer;
}

/** Save the project to this browser soon (changes in quick succession are saved once). */
export function scheduleSave(state) {
  changes++;
  state.set({ save: { state: 'pending', text: 'Saving…' } });
  clearTimeout(saveTimer);
  saveTimer = setTimeout(() => {
    saving = saving.then(() => saveNow(state));
  }, 300);
}

/**
 * Write what changed since the last save of the current tuner, in one IndexedDB transaction:
 * closing the tab during it leaves the previous save whole. If another tab of the page saved
 * in between, this tab's project is written whole instead (the last to save wins, as a whole).
 */
async function saveNow(state) {
  const seq = ++saveSeq;
  const covers = changes;
  try {
    const tuner = engine.current();
    const extra = extraData(state.get());
    const started = performance.now();
    const mark = `${session}:${seq}`;
    let out = await tuner.saveParts({ extra, since: storedAt.get(tuner) ?? null });
    let serialised = performance.now();
    if (!(await db.writeParts(out, lastMark, mark))) {
      out = await tuner.saveParts({ extra, since: null });
      serialised = performance.now();
      await db.writeParts(out, null, mark);
    }
    storedAt.set(tuner, out.generation);
    lastMark = mark;
    // For tests/bench: how long each save took (computing the changes, storing them), how
    // many bytes it wrote, and which records.
    const bytes = out.put.reduce((n, [, b]) => n + b.length, 0);
    const parts = out.put.map(([k]) => k);
    performance.measure('headtune:save', { start: started, detail: { bytes, serialiseMs: serialised - started, parts, removed: out.remove, whole: out.clear } });
    // "Saved" only when nothing changed since this save began: a change made while it ran
    // (a rename during a slow save) is in the next save, not in these bytes.
    if (seq !== saveSeq || covers !== changes || state.get().save.state !== 'pending') return;
    state.set({ save: { state: 'saved', text: `Saved in this browser at ${new Date().toLocaleTimeString()}.` } });
  } catch (e) {
    if (seq !== saveSeq) return;
    state.set({ save: { state: 'error', text: `Not saved: ${e.message} Use Export project to keep your work.` } });
  }
}

/**
 * The records of a stored project that could not be opened, as one tar file (each record a
 * file named by its key): kept and offered for download as they were.
 */
export function tarOf(records) {
  const enc = new TextEncoder();
  const blocks = [];
  const field = (h, at, len, text) => h.set(enc.encode(text).subarray(0, len), at);
  for (const [key, value] of Object.entries(records)) {
    const bytes = value instanceof Uint8Array ? value : enc.encode(JSON.stringify(value) ?? 'null');
    const h = new Uint8Array(512);
    field(h, 0, 100, key);
    field(h, 100, 8, '0000644\0');
    field(h, 108, 8, '0000000\0');
    field(h, 116, 8, '0000000\0');
    field(h, 124, 12, `${bytes.length.toString(8).padStart(11, '0')}\0`);
    field(h, 136, 12, `${Math.floor(Date.now() / 1000).toString(8).padStart(11, '0')}\0`);
    field(h, 148, 8, '        ');
    h[156] = 0x30;
    field(h, 257, 8, 'ustar\x0000');
    const sum = h.reduce((a, b) => a + b, 0);
    field(h, 148, 8, `${sum.toString(8).padStart(6, '0')}\0 `);
    blocks.push(h, bytes, new Uint8Array((512 - (bytes.length % 512)) % 512));
  }
  blocks.push(new Uint8Array(1024));
  const out = new Uint8Array(blocks.reduce((n, b) => n + b.length, 0));
  let at = 0;
  for (const b of blocks) {
    out.set(b, at);
    at += b.length;
  }
  return out;
}

const today = () => new Date().toISOString().slice(0, 10);

async function guarded(state, what, fn) {
  setError(state, 'keep', '');
  try {
    await fn();
  } catch (e) {
    setError(state, 'keep', `${what}: ${e.message}`);
  }
}

async function importProject(state, file, defaults) {
  setError(state, 'keep', '');
  if (!file || state.get().busy) return;
  state.set({ busy: 'importing' });
  engine.setText(state, 'Opening the project…');
  try {
    const bytes = new Uint8Array(await file.arrayBuffer());
    const next = await engine.open(state, bytes);
    engine.use(state, next);
    const extra = next.extra;
    await thumbs.importAll(extra?.thumbs);
    state.set(projectState(extra, defaults));
    await engine.refresh(state);
    scheduleSave(state);
  } catch (e) {
    if (engine.current()) engine.use(state, engine.current());
    setError(state, 'keep', `“${file.name}” could not be opened: ${e.message} Your current project was not changed.`);
  } finally {
    state.set({ busy: null });
  }
}

async function clearProject(state, defaults) {
  state.set({ busy: 'clearing' });
  try {
    await db.clearSaved();
    await thumbs.clear();
    engine.use(state, await engine.createEmpty(state, Number(defaults.views) || 0));
    state.set({ ...projectState(null, defaults), pending: starterClasses(), target: 'Class 1' });
    await engine.refresh(state);
    state.set({ save: { state: 'saved', text: 'New empty project.' } });
  } catch (e) {
    setError(state, 'keep', `Could not start a new project: ${e.message}`);
  } finally {
    state.set({ busy: null });
  }
}

/** The two empty cards a new project starts with. */
export const starterClasses = () => [
  { name: 'Class 1', touched: false },
  { name: 'Class 2', touched: false },
];

/** The Keep panel. `defaults` are the settings form's defaults. */
export function mount(root, state, defaults) {
  byId('export-project', root).addEventListener('click', () =>
    guarded(state, 'Could not export the project', async () => {
      // The thumbnails travel inside the exported file (they are not in the saved copy).
      const extra = { ...extraData(state.get()), thumbs: await thumbs.exportAll() };
      // The whole project file is built only here (saves write parts).
      download(await engine.current().saveProject({ extra }), `headtune-project-${today()}.headtune`);
    }),
  );
  byId('export-model', root).addEventListener('click', () => {
    if (!state.get().report) {
      setError(state, 'keep', 'Train a model first: there is nothing to export yet.');
      return;
    }
    guarded(state, 'Could not export the model', async () => download(await engine.current().exportModel(), 'model.htmodel'));
  });
  const importInput = byId('import-input', root);
  byId('import-project', root).addEventListener('click', () => importInput.click());
  importInput.addEventListener('change', async () => {
    await importProject(state, importInput.files[0], defaults);
    importInput.value = '';
  });
  byId('export-unreadable', root)?.addEventListener('click', () =>
    guarded(state, 'Could not read the saved copy', async () => {
      const key = state.get().unreadable;
      const name = key.startsWith('parts-') ? `headtune-saved-parts-unreadable-${today()}.tar` : `headtune-project-unreadable-${today()}.headtune`;
      download(await db.get(key), name);
    }),
  );
  const confirm = byId('clear-confirm', root);
  byId('clear-project', root).addEventListener('click', () => {
    confirm.hidden = false;
    byId('clear-yes', root).focus();
  });
  byId('clear-no', root).addEventListener('click', () => {
    confirm.hidden = true;
    byId('clear-project', root).focus();
  });
  byId('clear-yes', root).addEventListener('click', async () => {
    confirm.hidden = true;
    await clearProject(state, defaults);
    byId('clear-project', root).focus();
  });

  const render = (s) => {
    const status = byId('save-status', root);
    status.dataset.state = s.save.state;
    status.textContent = s.save.text || 'Your project is saved in this browser automatically.';
    const idle = !s.busy;
    for (const id of ['import-project', 'clear-project', 'export-project', 'export-model']) byId(id, root).disabled = !idle;
    importInput.disabled = !idle;
    const unreadable = byId('unreadable', root);
    if (unreadable) unreadable.hidden = !s.unreadable;
    renderError(byId('keep-error', root), s.errors.keep);
  };
  state.subscribe(['save', 'busy', 'errors', 'unreadable'], render);
  render(state.get());
}
