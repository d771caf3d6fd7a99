// The headtune page: add images → train → predict, then check the model and keep the project.
//
// Everything heavy runs in the engine's Web Worker (../lib). The page is one state object
// (state.js) and one module per panel, each `mount(root, state)`-ed onto its section and
// re-rendering from the state; engine.js owns the Tuner. This file starts them and restores the
// project saved in this browser.

import { createState, initialState, setError } from './state.js';
import * as engine from './engine.js';
import * as db from './store.js';
import * as thumbs from './thumbs.js';
import * as classes from './classes.js';
import * as adding from './adding.js';
import * as framing from './framing.js';
import * as training from './training.js';
import * as prediction from './prediction.js';
import * as evaluation from './evaluation.js';
import * as keep from './keep.js';

const section = (id) => document.getElementById(id);

function mountEngineSelect(state) {
  const select = section('backend');
  const status = section('engine-status');
  select.value = state.get().backend;
  select.addEventListener('change', async () => {
    const backend = select.value;
    engine.rememberBackend(backend);
    state.set({ backend, busy: 'switching' });
    engine.setText(state, 'Switching…');
    try {
      await engine.reopen(state, undefined);
    } catch (e) {
      setError(state, 'keep', `Could not switch: ${e.message}`);
      engine.use(state, engine.current());
    } finally {
      state.set({ busy: null });
    }
  });
  const render = (s) => {
    status.textContent = s.engine.text;
    status.title = s.engine.reason;
    select.disabled = !!s.busy;
    document.body.dataset.backend = s.engine.backend ?? '';
    document.body.dataset.busy = s.busy ?? '';
  };
  state.subscribe(['engine', 'busy'], render);
  render(state.get());
}

/**
 * Open the project saved in this browser, if any (its parts; or the single project file of an
 * earlier version, converted to parts by the save that follows); otherwise start an empty one.
 */
async function restore(state, defaults) {
  let saved = { parts: null, project: null, writer: null };
  try {
    saved = await db.readSaved();
  } catch (e) {
    setError(state, 'keep', `This browser does not let the page store data (${e.message}); your work will not survive a reload. Use Export project to keep it.`);
  }
  const stored = saved.parts ?? saved.project;
  if (stored) {
    try {
      const tuner = saved.parts ? await engine.openParts(state, saved.parts) : await engine.open(state, saved.project);
      engine.use(state, tuner);
      if (saved.parts) keep.openedFromParts(tuner, saved.writer);
      const extra = tuner.extra;
      state.set(keep.projectState(extra, defaults));
      await engine.refresh(state);
      const migrated = await keep.migrate(extra, state.get());
      state.set(migrated);
      if (!saved.parts || Object.keys(migrated).length) keep.scheduleSave(state);
      // Thumbnails of examples the last session added but did not get to save.
      await thumbs.prune(state.get().examples.map((e) => e.id));
      return;
    } catch (e) {
      // Keep the unreadable copy (it can still be downloaded) rather than overwrite it: the
      // old single file as it was, or the parts as one tar of their records.
      const key = `${saved.parts ? 'parts' : 'project'}-unreadable-${Date.now()}`;
      await (saved.parts ? db.setAside(key, keep.tarOf(saved.parts)) : db.put(key, saved.project)).catch(() => {});
      state.set({ unreadable: key });
      setError(state, 'keep', `The saved project could not be restored (${e.message}); starting an empty one. What was saved is kept in this browser as it was: download it below.`);
    }
  }
  engine.use(state, await engine.createEmpty(state, Number(defaults.views) || 0));
  await thumbs.clear().catch(() => {});
  state.set({ ...keep.projectState(null, defaults), pending: keep.starterClasses(), target: 'Class 1' });
  await engine.refresh(state);
}

/**
 * The engine crashed (a bug; the package has closed that tuner): open the project again from its
 * last save in this browser, keeping the cards that had no images yet, and say what happened.
 * Changes made after the last save (it follows every change within a second) are lost.
 */
async function recover(state, defaults, error) {
  const before = state.get();
  state.set({ busy: 'restarting' });
  engine.setText(state, 'The engine stopped after an internal error; restarting…');
  try {
    await restore(state, defaults);
    const names = new Set(state.get().classes.map((c) => c.name));
    if (before.pending.length) state.set({ pending: before.pending.filter((p) => !names.has(p.name)), target: before.target });
    setError(state, 'keep', `The engine stopped after an internal error (${error.message}) and was restarted with your project as last saved in this browser.`);
  } catch (e) {
    engine.setText(state, 'Failed to restart');
    setError(state, 'train', `The engine could not be restarted: ${e.message} Reload the page.`);
  } finally {
    state.set({ busy: null });
  }
}

async function boot() {
  const state = createState({ ...initialState(), backend: engine.chosenBackend() });
  mountEngineSelect(state);
  classes.mount(section('data'), state);
  adding.mount(section('data'), state);
  framing.mount(section('data'), state);
  training.mount(section('train'), state);
  prediction.mount(section('predict'), state);
  evaluation.mount(section('evaluate'), state);
  const defaults = state.get().settings;
  keep.mount(section('keep'), state, defaults);
  engine.onCrash((e) => recover(state, defaults, e));
  engine.setText(state, 'Loading the image model…');
  try {
    await restore(state, defaults);
    state.set({ save: { state: 'saved', text: '' } });
    document.body.dataset.ready = 'true';
    performance.measure('headtune:ready', { start: 0 });
  } catch (e) {
    engine.setText(state, 'Failed to start');
    setError(state, 'train', `The engine could not start: ${e.message}`);
  } finally {
    state.set({ busy: null });
  }
}

if ('serviceWorker' in navigator) {
  // Offline after the first visit: the worker caches the page, the engine and the weights.
  navigator.serviceWorker.register(new URL('../sw.js', import.meta.url), { type: 'module' }).catch(() => {});
}

boot();
