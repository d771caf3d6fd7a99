// Keeping the work: the project is saved to this browser shortly after every change (the
// engine's project file, with the page's report and settings in its `extra` slot; thumbnails
// live in their own stores), and can be exported, imported, or replaced by an empty one.

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

/** Save the project to this browser soon (changes in quick succession are saved once). */
export function scheduleSave(state) {
  changes++;
  state.set({ save: { state: 'pending', text: 'Saving…' } });
  clearTimeout(saveTimer);
  saveTimer = setTimeout(() => saveNow(state), 300);
}

async function saveNow(state) {
  const seq = ++saveSeq;
  const covers = changes;
  try {
    const started = performance.now();
    const bytes = await engine.current().saveProject({ extra: extraData(state.get()) });
    const serialised = performance.now();
    await db.put('project', bytes);
    // For tests/bench/scale.mjs: how long each save took (serialising, storing) and how big it was.
    performance.measure('headtune:save', { start: started, detail: { bytes: bytes.length, serialiseMs: serialised - started } });
    // "Saved" only when nothing changed since this save began: a change made while it ran
    // (a rename during a slow save) is in the next save, not in these bytes.
    if (seq !== saveSeq || covers !== changes || state.get().save.state !== 'pending') return;
    state.set({ save: { state: 'saved', text: `Saved in this browser at ${new Date().toLocaleTimeString()}.` } });
  } catch (e) {
    if (seq !== saveSeq) return;
    state.set({ save: { state: 'error', text: `Not saved: ${e.message} Use Export project to keep your work.` } });
  }
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
    await db.del('project');
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
      download(await engine.current().saveProject({ extra }), `headtune-project-${today()}.headtune`);
      // The engine keeps the last extra it was given: put back the small one.
      await engine.current().saveProject({ extra: extraData(state.get()) });
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
      download(await db.get(key), `headtune-project-unreadable-${today()}.headtune`);
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
