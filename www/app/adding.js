// Adding images: drops, the folder and file pickers, pastes, class-card uploads and webcam frames
// all end in `addGroups`, which hands each class's images to the engine in one call, shows
// progress and the images as they are added, stores the thumbnails and previews the engine made
// of each image, and lists what could not be used.

import * as engine from './engine.js';
import * as thumbs from './thumbs.js';
import { scheduleSave } from './keep.js';
import { byId, el, plural, renderError, dropTarget } from './dom.js';
import { setError } from './state.js';
import { groupsFromDrop, groupsFromFolderInput, filesFromPaste } from './files.js';

/** How often the page shows what arrived while adding (progress, new cards' thumbnails), in
 * ms: each showing costs a render, and at 30–40 images/s per-image renders cost the workers
 * several percent of the CPU. */
const SHOW_EVERY = 400;

/** How often a long addition is saved while it runs, in ms (it is saved again when it ends).
 * Each save rewrites the embeddings of the classes that grew and redraws the save status: saving
 * after every showing made 3–4 saves during a 2-second addition of 100 photos (0.14–0.45 MB
 * each, ~60 ms of work in the engine's worker and IndexedDB), CPU taken from the embedding.
 * Closing the tab mid-way loses at most this much of the addition. */
const SAVE_EVERY = 3000;

let abort = null;

/** The class loose images go to now (the target field; a fresh name if it is empty). */
export function targetClass(state) {
  const t = state.get().target.trim();
  if (t) return t;
  const name = nextClassName(state.get());
  state.set({ target: name });
  return name;
}

/** "Class N" for the smallest N not in use. */
export function nextClassName(s) {
  const names = new Set([...s.classes.map((c) => c.name), ...(s.pending ?? []).map((p) => p.name)]);
  for (let i = 1; ; i++) if (!names.has(`Class ${i}`)) return `Class ${i}`;
}

/**
 * Add `groups` ([{ label | null, files }], null = the target class) to the project. Runs one
 * addition at a time; the engine's answer for each file (added with an id, or rejected with a
 * reason) is matched to the file by its position, never by name. `fromFolder`: the groups come
 * from a dropped or chosen folder, whose sub-folders make the untouched starter cards pointless.
 */
export async function addGroups(state, groups, { fromFolder = false } = {}) {
  groups = groups.filter((g) => g.files.length);
  if (!groups.length) return;
  const busy = state.get().busy;
  if (busy) {
    setError(state, 'data', busy === 'training' ? 'Wait for training to finish (or press Stop) before adding images.' : 'Still busy with the previous images…');
    return;
  }
  setError(state, 'data', '');
  const tuner = engine.current();
  const controller = new AbortController();
  abort = controller;
  const total = groups.reduce((n, g) => n + g.files.length, 0);
  const started = performance.now();
  const backend = tuner.backend === 'webgpu' ? 'WebGPU' : 'CPU';
  let shownAt = -Infinity;
  const progress = (done, label = `Reading ${plural(total, 'image')}…`) => {
    shownAt = performance.now();
    const secs = (shownAt - started) / 1000;
    const rate = done / Math.max(secs, 1e-3);
    state.set({ adding: { label, done, total, text: `${done} of ${total} · ${done ? rate.toFixed(1) : '…'} images/s · ${backend}`, cancellable: true } });
  };
  state.set({ busy: 'adding', rejected: [] });
  progress(0);
  const rejected = [];
  let done = 0;
  let added = 0;
  // Added images not shown yet (examples with their JPEGs): shown together, at most every
  // SHOW_EVERY ms, so a folder of thousands is one engine call that keeps every worker busy.
  let fresh = [];
  const stores = [];
  let savedAt = started;
  const show = () => {
    if (!fresh.length) return;
    const batch = fresh;
    fresh = [];
    // Thumbnails first: a card asks for them as soon as the examples are in the state.
    const stored = thumbs.saveMany(batch.map(({ example, jpegs }) => [example.id, jpegs]));
    stores.push(stored);
    // Saved once their thumbnails are stored, at most every SAVE_EVERY ms: closing the tab
    // while adding keeps what was added up to the last save.
    stored.then(() => {
      if (performance.now() - savedAt < SAVE_EVERY) return;
      savedAt = performance.now();
      scheduleSave(state);
    }, () => {});
    const s = state.get();
    const names = new Set(batch.map(({ example }) => example.label));
    state.set({
      classes: tuner.classes,
      // The first image of a project fixes an `auto` framing: show what the engine chose.
      features: tuner.features,
      examples: [...s.examples, ...batch.map(({ example }) => example)],
      pending: s.pending.filter((p) => !names.has(p.name)),
    });
  };
  try {
    const views = Number(state.get().settings?.views) || 0;
    if (tuner.augment.views !== views) await tuner.setAugment({ ...tuner.augment, views });
    if (fromFolder && groups.some((g) => g.label !== null)) state.set({ pending: state.get().pending.filter((p) => p.touched) });
    for (const g of groups) {
      const label = g.label ?? targetClass(state);
      const base = done;
      const views = 1 + tuner.augment.views;
      try {
        // One call per class: the engine's workers stay busy from the first image to the last.
        // It makes each image's thumbnail and preview from its own decode: the browser never
        // decodes an added image a second time.
        const r = await tuner.addImages(label, g.files, {
          signal: controller.signal,
          thumbnails: { thumb: thumbs.THUMB, preview: thumbs.PREVIEW },
          onProgress: (e) => e.status === 'progress' && performance.now() - shownAt >= SHOW_EVERY && progress(base + e.done),
          onAdded: (b) => {
            b.ids.forEach((id, k) => {
              const i = b.indices[k];
              fresh.push({ example: { id, label, name: g.files[i].name || `image ${i + 1}`, views }, jpegs: b.thumbnails[k] });
            });
            if (performance.now() - shownAt >= SHOW_EVERY) {
              show();
              progress(base + b.indices[b.indices.length - 1] + 1);
            }
          },
        });
        rejected.push(...r.rejected);
        added += r.added;
      } finally {
        // Cancelled or failed: what was added so far is shown and kept all the same.
        show();
      }
      done += g.files.length;
      progress(done);
    }
    await Promise.all(stores);
    progress(done, `Added ${plural(added, 'image')}${rejected.length ? `, ${rejected.length} could not be used` : ''}.`);
  } catch (e) {
    progress(done, e.name === 'AbortError' ? 'Cancelled. Images read so far were kept.' : `Stopped: ${e.message}`);
    await engine.refresh(state).catch(() => {});
  } finally {
    abort = null;
    state.set({ busy: null, adding: { ...state.get().adding, cancellable: false }, rejected });
    scheduleSave(state);
  }
}

/** The data panel's drop zone, pickers, paste, progress and rejected list. */
export function mount(root, state) {
  const zone = byId('dropzone', root);
  dropTarget(zone, (dt) => groupsFromDrop(dt).then((groups) => addGroups(state, groups, { fromFolder: true })));
  // Dropping a file anywhere else must not navigate away from the project.
  window.addEventListener('dragover', (e) => e.preventDefault());
  window.addEventListener('drop', (e) => e.preventDefault());

  byId('file-input', root).addEventListener('change', (e) => {
    addGroups(state, [{ label: null, files: [...e.target.files] }]);
    e.target.value = '';
  });
  byId('folder-input', root).addEventListener('change', (e) => {
    addGroups(state, groupsFromFolderInput(e.target.files), { fromFolder: true });
    e.target.value = '';
  });
  document.addEventListener('paste', (e) => {
    const files = filesFromPaste(e);
    // Pastes while the Predict panel has focus are classified instead (prediction.js).
    if (!files.length || document.getElementById('predict').contains(document.activeElement)) return;
    e.preventDefault();
    addGroups(state, [{ label: null, files }]);
  });
  byId('progress-cancel', root).addEventListener('click', () => abort?.abort());
  byId('rejected-clear', root).addEventListener('click', () => state.set({ rejected: [] }));

  const target = byId('target-class', root);
  target.addEventListener('change', () => state.set({ target: target.value }));
  target.addEventListener('input', () => state.set({ target: target.value }));

  // Progress arrives once per image: touch only what changed.
  const render = (s, changed) => {
    const all = !changed;
    if (all || changed.has('target') || changed.has('classes')) {
      if (target.value !== s.target && document.activeElement !== target) target.value = s.target;
      target.placeholder = nextClassName(s);
    }
    if (all || changed.has('classes')) byId('class-names', root).replaceChildren(...s.classes.map((c) => el('option', { value: c.name })));
    if (all || changed.has('adding')) renderProgress(s.adding);
    if (all || changed.has('rejected')) {
      byId('rejected-list', root).replaceChildren(...s.rejected.map((r) => el('li', {}, el('strong', {}, r.name), ` — ${r.reason}`)));
      byId('rejected', root).hidden = !s.rejected.length;
    }
    if (all || changed.has('errors')) renderError(byId('data-error', root), s.errors.data);
  };
  const renderProgress = (a) => {
    byId('progress', root).hidden = !a;
    if (a) {
      byId('progress-label', root).textContent = a.label;
      const bar = byId('progress-bar', root);
      bar.max = Math.max(1, a.total);
      bar.value = a.done;
      byId('progress-text', root).textContent = a.text;
      byId('progress-cancel', root).hidden = !a.cancellable;
    }
  };
  state.subscribe(['target', 'classes', 'adding', 'rejected', 'errors'], render);
  render(state.get());
}
