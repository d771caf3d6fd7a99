// The class cards: one per class, with its name (editable), image count, thumbnails (paged),
// its own Upload and Webcam buttons (hold to record), and an "Add a class" button. Classes the
// engine does not know yet (no images) live in `state.pending`.

import * as engine from './engine.js';
import * as thumbs from './thumbs.js';
import * as camera from './camera.js';
import { addGroups, nextClassName } from './adding.js';
import { scheduleSave } from './keep.js';
import { renameInReport } from './training.js';
import { byId, el, plural, dropTarget } from './dom.js';
import { setError } from './state.js';
import { groupsFromDrop } from './files.js';

/** Thumbnails shown per card before "Show more", and added per click. */
const PAGE = 24;

let serial = 0;

/** Rename class `from` to `to` (engine classes and their trained labels, or a pending card). */
async function rename(state, from, to) {
  const s = state.get();
  to = to.trim();
  if (!to || to === from) return;
  if (s.pending.some((p) => p.name === from)) {
    if (s.classes.some((c) => c.name === to) || s.pending.some((p) => p.name === to)) {
      setError(state, 'data', `There is already a class named “${to}”.`);
      return;
    }
    state.set({ pending: s.pending.map((p) => (p.name === from ? { name: to, touched: true } : p)), target: s.target === from ? to : s.target });
    return;
  }
  try {
    await engine.current().renameClass(from, to);
    const now = state.get();
    state.set({
      classes: engine.current().classes,
      examples: now.examples.map((e) => (e.label === from ? { ...e, label: to } : e)),
      report: renameInReport(now.report, from, to),
      target: now.target === from ? to : now.target,
      prediction: null,
    });
    scheduleSave(state);
  } catch (e) {
    setError(state, 'data', `Could not rename the class: ${e.message}`);
  }
}

async function removeClass(state, name) {
  const s = state.get();
  if (s.pending.some((p) => p.name === name)) {
    state.set({ pending: s.pending.filter((p) => p.name !== name) });
    return;
  }
  try {
    const ids = s.examples.filter((e) => e.label === name).map((e) => e.id);
    await engine.current().removeClass(name);
    await thumbs.remove(ids);
    const gone = new Set(ids);
    state.set({ classes: engine.current().classes, examples: state.get().examples.filter((e) => !gone.has(e.id)) });
    scheduleSave(state);
  } catch (e) {
    setError(state, 'data', `Could not delete the class: ${e.message}`);
  }
}

/** Remove one image from the project. */
export async function removeExample(state, id) {
  try {
    await engine.current().removeExample(id);
    await thumbs.remove([id]);
    state.set({ classes: engine.current().classes, examples: state.get().examples.filter((e) => e.id !== id) });
    scheduleSave(state);
  } catch (e) {
    setError(state, 'data', `Could not remove the image: ${e.message}`);
  }
}

/** A card's webcam area: the preview, "Hold to record" and "Close webcam". */
function cameraArea(state, card) {
  const slot = el('div', { class: 'video-slot' });
  const status = el('p', { class: 'muted small', role: 'status' }, 'Press and hold to record about five frames a second.');
  const record = el('button', { type: 'button', class: 'record' }, 'Hold to record');
  const close = el('button', { type: 'button', class: 'small' }, 'Close webcam');
  camera.holdToRecord(record, {
    onCount: (n) => (status.textContent = `Recording… ${plural(n, 'frame')}`),
    onFrames: (files) => {
      status.textContent = `Captured ${plural(files.length, 'frame')}.`;
      addGroups(state, [{ label: card.dataset.class, files }]);
    },
  });
  close.addEventListener('click', () => {
    camera.release(`class:${card.dataset.class}`);
    state.set({ camera: null });
  });
  return el('div', { class: 'camera-area' }, slot, el('div', { class: 'row wrap' }, record, close), status);
}

function newCard(state) {
  const i = ++serial;
  const card = el('li', { class: 'class-card' });
  const nameId = `class-name-${i}`;
  const name = el('input', { id: nameId, type: 'text', maxLength: 100, autocomplete: 'off', spellcheck: false });
  name.addEventListener('change', () => {
    const from = card.dataset.class;
    const to = name.value;
    if (!to.trim()) name.value = from;
    else rename(state, from, to);
  });
  name.addEventListener('keydown', (e) => {
    if (e.key === 'Enter') name.blur();
    if (e.key === 'Escape') {
      name.value = card.dataset.class;
      name.blur();
    }
  });
  const count = el('span', { class: 'count' });
  const del = el('button', { type: 'button', class: 'small danger' }, 'Delete class');
  let armed = null;
  del.addEventListener('click', () => {
    const n = Number(card.dataset.count);
    if (!armed && n > 0) {
      del.textContent = `Delete ${plural(n, 'image')}?`;
      armed = setTimeout(() => {
        armed = null;
        del.textContent = 'Delete class';
      }, 4000);
      return;
    }
    clearTimeout(armed);
    armed = null;
    removeClass(state, card.dataset.class);
  });
  const uploadId = `class-upload-${i}`;
  const upload = el('input', { id: uploadId, type: 'file', accept: 'image/*', multiple: true, class: 'visually-hidden' });
  upload.addEventListener('change', () => {
    addGroups(state, [{ label: card.dataset.class, files: [...upload.files] }]);
    upload.value = '';
  });
  const uploadLabel = el('label', { class: 'button small', htmlFor: uploadId }, 'Upload');
  const webcam = el('button', { type: 'button', class: 'small', 'aria-pressed': 'false' }, 'Webcam');
  webcam.addEventListener('click', async () => {
    const key = `class:${card.dataset.class}`;
    if (camera.holder() === key) {
      camera.release(key);
      state.set({ camera: null });
      return;
    }
    state.set({ camera: card.dataset.class });
    const area = card.querySelector('.camera-area');
    try {
      await camera.take(key, area.querySelector('.video-slot'), () => {
        if (state.get().camera === card.dataset.class) state.set({ camera: null });
      });
    } catch (e) {
      state.set({ camera: null });
      setError(state, 'data', `No webcam: ${e.message}.`);
    }
  });
  const strip = el('ul', { class: 'thumbs' });
  const more = el('button', { type: 'button', class: 'small more-thumbs', hidden: true });
  more.addEventListener('click', () => {
    card.dataset.shown = String(Number(card.dataset.shown) + PAGE * 4);
    renderThumbs(state, card, state.get());
  });
  card.dataset.shown = String(PAGE);
  card.append(
    el(
      'div',
      { class: 'class-head' },
      el('label', { class: 'visually-hidden', htmlFor: nameId }, 'Class name'),
      name,
      count,
      del,
    ),
    el('div', { class: 'row wrap class-actions' }, upload, uploadLabel, webcam),
    cameraArea(state, card),
    strip,
    more,
  );
  dropTarget(card, (dt) => groupsFromDrop(dt).then((groups) => addGroups(state, groups.map((g) => ({ label: card.dataset.class, files: g.files })))));
  return card;
}

/** Update a card for class `name` with `n` images. */
function fill(state, card, name, n, s) {
  const renamed = card.dataset.class !== name;
  card.dataset.class = name;
  card.dataset.count = String(n);
  card.classList.toggle('pending', n === 0);
  const [name_, count, del] = [card.querySelector('input[type="text"]'), card.querySelector('.count'), card.querySelector('.danger')];
  if (document.activeElement !== name_) name_.value = name;
  count.textContent = plural(n, 'image');
  del.setAttribute('aria-label', `Delete class ${name}`);
  card.querySelector('.class-actions input').setAttribute('aria-label', `Upload images to class ${name}`);
  const webcam = card.querySelector('.class-actions button');
  webcam.setAttribute('aria-label', `Webcam for class ${name}`);
  webcam.setAttribute('aria-pressed', String(s.camera === name));
  card.querySelector('.camera-area').hidden = s.camera !== name;
  card.querySelector('.thumbs').setAttribute('aria-label', `Images of ${name}`);
  if (renamed) {
    // Rebuilt: each item's remove button is labelled with the class name.
    card.dataset.ids = '';
    card.querySelector('.thumbs').replaceChildren();
  }
  renderThumbs(state, card, s);
}

function renderThumbs(state, card, s) {
  const name = card.dataset.class;
  const examples = s.examples.filter((e) => e.label === name).reverse();
  const shown = examples.slice(0, Number(card.dataset.shown));
  const key = shown.map((e) => e.id).join(',');
  const more = card.querySelector('.more-thumbs');
  more.hidden = examples.length <= shown.length;
  more.textContent = `Show more (${examples.length - shown.length} not shown)`;
  if (card.dataset.ids === key) return;
  card.dataset.ids = key;
  const strip = card.querySelector('.thumbs');
  const old = new Map([...strip.children].map((li) => [Number(li.dataset.id), li]));
  // Only new thumbnails go in and only dropped ones go out: re-inserting the strip's kept
  // items (newer images arrive in front) cost a style, layout and image pass over all of them
  // at every showing while adding.
  let at = strip.firstElementChild;
  for (const ex of shown) {
    if (at && Number(at.dataset.id) === ex.id) {
      at = at.nextElementSibling;
      continue;
    }
    strip.insertBefore(old.get(ex.id) ?? thumbItem(state, ex, name), at);
  }
  // What is left from `at` on is no longer shown (the items before it are `shown`, in order).
  while (at) {
    const next = at.nextElementSibling;
    at.remove();
    at = next;
  }
}

/** A card's list item for example `ex` of class `name`: its thumbnail and a remove button. */
function thumbItem(state, ex, name) {
  const img = el('img', { alt: ex.name, width: 56, height: 56, title: ex.name, decoding: 'async' });
  thumbs.url(ex.id).then((src) => {
    if (src) img.src = src;
    else img.replaceWith(el('span', { class: 'nothumb', title: ex.name }, ex.name.slice(0, 12)));
  });
  const rm = el('button', { type: 'button', class: 'remove', 'aria-label': `Remove ${ex.name} from ${name}` }, '×');
  rm.addEventListener('click', () => removeExample(state, ex.id));
  return el('li', { 'data-id': String(ex.id) }, img, rm);
}

/** The class cards and the "Add a class" button. */
export function mount(root, state) {
  const list = byId('classes', root);
  const cards = new Map();
  byId('add-class', root).addEventListener('click', () => {
    const s = state.get();
    const name = nextClassName(s);
    state.set({ pending: [...s.pending, { name, touched: true }] });
    cards.get(name)?.querySelector('input[type="text"]').focus();
  });
  const render = (s) => {
    const all = [...s.classes.map((c) => [c.name, c.count]), ...s.pending.filter((p) => !s.classes.some((c) => c.name === p.name)).map((p) => [p.name, 0])];
    const names = new Set(all.map(([n]) => n));
    // A renamed class keeps its card (and so its focus and webcam): match by position first.
    const free = [...cards.entries()].filter(([n]) => !names.has(n));
    const ordered = all.map(([name, n]) => {
      let card = cards.get(name);
      if (!card && free.length) {
        const [oldName, c] = free.shift();
        cards.delete(oldName);
        card = c;
      }
      card ??= newCard(state);
      cards.set(name, card);
      fill(state, card, name, n, s);
      return card;
    });
    for (const [n, c] of free) {
      cards.delete(n);
      c.remove();
    }
    // Re-inserting a card would pause its webcam preview: only touch the list when it changed.
    if (ordered.length !== list.children.length || ordered.some((c, i) => list.children[i] !== c)) list.replaceChildren(...ordered);
    byId('no-classes', root).hidden = s.classes.length > 0;
  };
  state.subscribe(['classes', 'examples', 'pending', 'camera'], render);
  render(state.get());
}
