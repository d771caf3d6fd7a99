// The headtune page: add images → train → evaluate → predict → keep.
//
// All work runs in the engine's Web Worker (../lib); this file is the UI around it. User text
// (class names, file names, engine messages) is only ever set with textContent, never as HTML.
// The project lives in IndexedDB as one project file whose `extra` slot carries what only the
// page needs (thumbnails, settings, the last training report).

import { Tuner } from '../lib/index.js';
import * as db from './store.js';
import { groupsFromDrop, groupsFromFolderInput, filesFromPaste, thumbnail } from './files.js';
import { lineChart, rocChart, heatColor, COLORS } from './charts.js';

const $ = (id) => document.getElementById(id);

/** Create an element with properties and children (strings become text nodes). */
function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === 'class') node.className = v;
    else if (k.startsWith('aria-') || k.startsWith('data-')) node.setAttribute(k, v);
    else node[k] = v;
  }
  for (const c of children.flat()) if (c !== null && c !== undefined) node.append(c);
  return node;
}

const pct = (v, digits = 0) => `${(100 * v).toFixed(digits)} %`;
const plural = (n, one, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;

const SETTINGS = ['epochs', 'learningRate', 'batchSize', 'head', 'hiddenUnits', 'weightDecay', 'views', 'validationSplit', 'seed'];
const DEFAULTS = Object.fromEntries(SETTINGS.map((k) => [k, $(k).value]));
const BACKEND_KEY = 'headtune.backend';
const MAX_THUMBS = 60;

const app = {
  tuner: null,
  backend: 'auto',
  /** example id → thumbnail data URL */
  thumbs: {},
  examples: [],
  classes: [],
  report: null,
  /** classes + counts the model was trained on, to flag a stale model */
  trainedOn: null,
  threshold: null,
  history: [],
  busy: null,
  abort: null,
  lastPrediction: null,
};

// ---------------------------------------------------------------------------------------------
// Engine

function engineOptions(extra = {}) {
  return {
    backend: app.backend,
    onProgress: (e) => {
      if (e.status === 'progress') setEngineStatus(`Loading the image model… ${Math.round(e.progress)} %`);
      if (e.status === 'ready') setEngineStatus('Ready');
    },
    ...extra,
  };
}

function setEngineStatus(text) {
  $('engine-status').textContent = text;
}

function showBackend() {
  const t = app.tuner;
  if (!t) return;
  const name = t.backend === 'webgpu' ? 'WebGPU' : 'CPU';
  $('engine-status').textContent = `Running on ${name}`;
  $('engine-status').title = t.backendReason || '';
  document.body.dataset.backend = t.backend;
}

/** Replace the current tuner (after import, a backend change, new augmentation settings). */
async function swapTuner(next) {
  const old = app.tuner;
  app.tuner = next;
  old?.dispose();
  showBackend();
}

/** Re-open the current project on a new engine with other options (backend, augmentation). */
async function reopen(options) {
  const bytes = await app.tuner.saveProject({ extra: extraData() });
  await swapTuner(await Tuner.loadProject(bytes, engineOptions(options)));
}

// ---------------------------------------------------------------------------------------------
// Persistence

function settings() {
  return Object.fromEntries(SETTINGS.map((k) => [k, $(k).value]));
}

function applySettings(s) {
  for (const k of SETTINGS) if (s && s[k] !== undefined) $(k).value = s[k];
  syncHeadFields();
}

function extraData() {
  return {
    app: 'headtune-page',
    version: 1,
    thumbs: app.thumbs,
    report: app.report,
    trainedOn: app.trainedOn,
    threshold: app.threshold,
    settings: settings(),
  };
}

function restoreExtra(extra) {
  const x = extra && typeof extra === 'object' && extra.app === 'headtune-page' ? extra : {};
  app.thumbs = x.thumbs && typeof x.thumbs === 'object' ? x.thumbs : {};
  app.report = x.report ?? null;
  app.trainedOn = x.trainedOn ?? null;
  app.threshold = typeof x.threshold === 'number' ? x.threshold : null;
  app.history = app.report?.history ?? [];
  applySettings(x.settings ?? DEFAULTS);
}

let saveTimer = null;
let saveSeq = 0;

/** Save the project to IndexedDB soon (changes in quick succession are saved once). */
function scheduleSave() {
  const status = $('save-status');
  status.dataset.state = 'pending';
  status.textContent = '(saving…)';
  clearTimeout(saveTimer);
  saveTimer = setTimeout(saveNow, 300);
}

async function saveNow() {
  const seq = ++saveSeq;
  const status = $('save-status');
  try {
    const bytes = await app.tuner.saveProject({ extra: extraData() });
    await db.put('project', bytes);
    if (seq !== saveSeq || status.dataset.state !== 'pending') return;
    status.dataset.state = 'saved';
    status.textContent = `(saved ${new Date().toLocaleTimeString()})`;
  } catch (e) {
    if (seq !== saveSeq) return;
    status.dataset.state = 'error';
    status.textContent = `(not saved: ${e.message})`;
  }
}

// ---------------------------------------------------------------------------------------------
// Classes

function signature() {
  return app.classes.map((c) => `${c.name}:${c.count}`).join('|');
}

async function refresh() {
  app.classes = app.tuner.classes;
  app.examples = await app.tuner.examples();
  renderClasses();
  renderEvaluation();
  renderTrainState();
}

function renderClasses() {
  const list = $('classes');
  list.replaceChildren();
  const datalist = $('class-names');
  datalist.replaceChildren(...app.classes.map((c) => el('option', { value: c.name })));
  $('no-classes').hidden = app.classes.length > 0;
  app.classes.forEach((c, i) => {
    const examples = app.examples.filter((e) => e.label === c.name);
    const nameId = `class-name-${i}`;
    const name = el('input', { id: nameId, type: 'text', value: c.name, maxLength: 100, autocomplete: 'off', spellcheck: false });
    name.addEventListener('change', () => rename(c.name, name));
    name.addEventListener('keydown', (e) => {
      if (e.key === 'Enter') name.blur();
      if (e.key === 'Escape') {
        name.value = c.name;
        name.blur();
      }
    });
    const del = el('button', { type: 'button', class: 'small danger', 'aria-label': `Delete class ${c.name}` }, 'Delete class');
    let armed = null;
    del.addEventListener('click', () => {
      if (!armed) {
        del.textContent = `Delete ${plural(c.count, 'image')}?`;
        armed = setTimeout(() => {
          armed = null;
          del.textContent = 'Delete class';
        }, 4000);
        return;
      }
      clearTimeout(armed);
      removeClass(c.name);
    });
    const use = el('button', { type: 'button', class: 'small', 'aria-label': `Add new images to class ${c.name}` }, 'Add here');
    use.addEventListener('click', () => {
      $('target-class').value = c.name;
      $('file-input').focus();
    });
    const thumbs = el('ul', { class: 'thumbs', 'aria-label': `Images of ${c.name}` });
    for (const ex of examples.slice(-MAX_THUMBS).reverse()) {
      const src = app.thumbs[ex.id];
      const img = src ? el('img', { src, alt: ex.name, width: 56, height: 56, loading: 'lazy', title: ex.name }) : el('span', { class: 'nothumb', title: ex.name }, ex.name.slice(0, 12));
      const rm = el('button', { type: 'button', class: 'remove', 'aria-label': `Remove ${ex.name} from ${c.name}` }, '×');
      rm.addEventListener('click', () => removeExample(ex.id));
      thumbs.append(el('li', {}, img, rm));
    }
    if (examples.length > MAX_THUMBS) thumbs.append(el('li', { class: 'more' }, `+${examples.length - MAX_THUMBS} more`));
    const card = el(
      'li',
      { class: 'class-card', 'data-class': c.name },
      el(
        'div',
        { class: 'class-head' },
        el('label', { class: 'visually-hidden', htmlFor: nameId }, `Name of class ${i + 1}`),
        name,
        el('span', { class: 'count' }, plural(c.count, 'image')),
        use,
        del,
      ),
      thumbs,
    );
    list.append(card);
  });
  const target = $('target-class');
  if (!target.value.trim()) target.value = nextClassName();
}

function nextClassName() {
  const names = new Set(app.classes.map((c) => c.name));
  for (let i = 1; ; i++) if (!names.has(`Class ${i}`)) return `Class ${i}`;
}

async function guarded(what, fn) {
  try {
    await fn();
  } catch (e) {
    showError('keep-error', `${what}: ${e.message}`);
  }
}

async function rename(from, input) {
  const to = input.value.trim();
  if (!to || to === from) {
    input.value = from;
    return;
  }
  await guarded('Could not rename the class', async () => {
    await app.tuner.renameClass(from, to);
    if ($('target-class').value === from) $('target-class').value = to;
    await refresh();
    scheduleSave();
  });
}

async function removeClass(name) {
  await guarded('Could not delete the class', async () => {
    const ids = app.examples.filter((e) => e.label === name).map((e) => e.id);
    await app.tuner.removeClass(name);
    for (const id of ids) delete app.thumbs[id];
    await refresh();
    scheduleSave();
  });
}

async function removeExample(id) {
  await guarded('Could not remove the image', async () => {
    await app.tuner.removeExample(id);
    delete app.thumbs[id];
    await refresh();
    scheduleSave();
  });
}

// ---------------------------------------------------------------------------------------------
// Adding images

function targetClass() {
  const v = $('target-class').value.trim();
  if (v) return v;
  const name = nextClassName();
  $('target-class').value = name;
  return name;
}

function setBusy(what) {
  app.busy = what;
  document.body.dataset.busy = what ?? '';
  const idle = !what;
  $('train-button').disabled = !idle;
  $('stop-button').disabled = what !== 'training';
  for (const id of ['import-project', 'clear-project', 'backend', 'export-project', 'export-model']) $(id).disabled = !idle;
  $('import-input').disabled = !idle;
}

function showError(id, text) {
  const p = $(id);
  p.textContent = text;
  p.hidden = !text;
}

/** `groups`: [{ label | null, files }] — null label = the class chosen in the target field. */
async function addGroups(groups) {
  groups = groups.filter((g) => g.files.length);
  if (!groups.length) return;
  if (app.busy) {
    showError('keep-error', app.busy === 'training' ? 'Wait for training to finish (or press Stop) before adding images.' : 'Still adding the previous images…');
    return;
  }
  showError('keep-error', '');
  setBusy('adding');
  const controller = new AbortController();
  app.abort = controller;
  const total = groups.reduce((n, g) => n + g.files.length, 0);
  const started = performance.now();
  let done = 0;
  const rejected = [];
  const bar = $('progress-bar');
  const text = $('progress-text');
  $('progress').hidden = false;
  $('progress-cancel').hidden = false;
  $('progress-label').textContent = `Reading ${plural(total, 'image')}…`;
  bar.max = total;
  bar.value = 0;
  const update = (n) => {
    const secs = (performance.now() - started) / 1000;
    const rate = n / Math.max(secs, 1e-3);
    bar.value = n;
    text.textContent = `${n} of ${total} · ${n ? rate.toFixed(1) : '…'} images/s · ${app.tuner.backend === 'webgpu' ? 'WebGPU' : 'CPU'}`;
  };
  update(0);
  try {
    const views = Number($('views').value) || 0;
    if (app.tuner.augment.views !== views) {
      $('progress-label').textContent = 'Applying the new augmentation setting…';
      await reopen({ augment: { ...app.tuner.augment, views } });
      $('progress-label').textContent = `Reading ${plural(total, 'image')}…`;
    }
    for (const g of groups) {
      const label = g.label ?? targetClass();
      const base = done;
      const r = await app.tuner.addImages(label, g.files, {
        signal: controller.signal,
        onProgress: (e) => e.status === 'progress' && update(base + e.done),
      });
      // ids come in input order for the images that were added; skip the rejected ones.
      const skip = new Map();
      for (const x of r.rejected) skip.set(x.name, (skip.get(x.name) ?? 0) + 1);
      let k = 0;
      for (const f of g.files) {
        const left = skip.get(f.name);
        if (left) {
          skip.set(f.name, left - 1);
          continue;
        }
        const id = r.ids[k++];
        if (id === undefined) break;
        const t = await thumbnail(f);
        if (t) app.thumbs[id] = t;
      }
      rejected.push(...r.rejected);
      done += g.files.length;
      update(done);
      await refresh();
      scheduleSave();
    }
    $('progress-label').textContent = `Added ${plural(done - rejected.length, 'image')}${rejected.length ? `, ${rejected.length} could not be used` : ''}.`;
  } catch (e) {
    $('progress-label').textContent = e.name === 'AbortError' ? 'Cancelled. Images read so far were kept.' : `Stopped: ${e.message}`;
    await refresh().catch(() => {});
    scheduleSave();
  } finally {
    app.abort = null;
    setBusy(null);
    $('progress-cancel').hidden = true;
    showRejected(rejected);
  }
}

function showRejected(list) {
  if (!list.length) return;
  const ul = $('rejected-list');
  for (const r of list) ul.append(el('li', {}, el('strong', {}, r.name), ` — ${r.reason}`));
  $('rejected').hidden = false;
}

// ---------------------------------------------------------------------------------------------
// Camera

const camera = { stream: null, timer: null, frames: [] };

async function startCamera() {
  if (camera.stream) return true;
  $('camera').open = true;
  try {
    camera.stream = await navigator.mediaDevices.getUserMedia({ video: { width: { ideal: 640 }, height: { ideal: 480 } }, audio: false });
  } catch (e) {
    $('camera-status').textContent = `No camera: ${e.message}`;
    return false;
  }
  const video = $('camera-video');
  video.srcObject = camera.stream;
  await video.play().catch(() => {});
  if (video.readyState < 2) await new Promise((r) => video.addEventListener('loadeddata', r, { once: true }));
  $('camera-record').disabled = false;
  $('camera-stop').disabled = false;
  $('camera-start').disabled = true;
  $('camera-status').textContent = 'Camera on. Hold “Hold to record” to capture frames into the class above.';
  return true;
}

function stopCamera() {
  camera.stream?.getTracks().forEach((t) => t.stop());
  camera.stream = null;
  $('camera-video').srcObject = null;
  $('camera-record').disabled = true;
  $('camera-stop').disabled = true;
  $('camera-start').disabled = false;
  $('camera-status').textContent = 'Camera off.';
}

/** The current camera frame as a JPEG File. */
function grabFrame() {
  const video = $('camera-video');
  const canvas = document.createElement('canvas');
  canvas.width = video.videoWidth;
  canvas.height = video.videoHeight;
  canvas.getContext('2d').drawImage(video, 0, 0);
  const name = `camera-${new Date().toISOString().replace(/[:.]/g, '-')}.jpg`;
  return new Promise((resolve) => canvas.toBlob((b) => resolve(b && new File([b], name, { type: 'image/jpeg' })), 'image/jpeg', 0.9));
}

function startRecording() {
  if (!camera.stream || camera.timer) return;
  camera.frames = [];
  const grab = async () => {
    const f = await grabFrame();
    if (f) camera.frames.push(f);
    $('camera-status').textContent = `Recording… ${plural(camera.frames.length, 'frame')}`;
  };
  grab();
  camera.timer = setInterval(grab, 200);
  $('camera-record').classList.add('recording');
}

function stopRecording() {
  if (!camera.timer) return;
  clearInterval(camera.timer);
  camera.timer = null;
  $('camera-record').classList.remove('recording');
  // Let a frame being encoded finish.
  setTimeout(() => {
    const files = camera.frames;
    camera.frames = [];
    $('camera-status').textContent = `Captured ${plural(files.length, 'frame')}.`;
    addGroups([{ label: null, files }]);
  }, 100);
}

// ---------------------------------------------------------------------------------------------
// Training

function syncHeadFields() {
  $('hiddenUnits').disabled = $('head').value !== 'mlp';
}

function trainOptions() {
  const num = (id) => {
    const v = Number($(id).value);
    if ($(id).value.trim() === '' || !Number.isFinite(v)) throw new Error(`${$(id).labels[0].textContent} must be a number`);
    return v;
  };
  return {
    epochs: num('epochs'),
    learningRate: num('learningRate'),
    batchSize: num('batchSize'),
    head: $('head').value,
    hiddenUnits: num('hiddenUnits'),
    weightDecay: num('weightDecay'),
    validationSplit: num('validationSplit'),
    seed: num('seed'),
    threshold: app.threshold ?? 0.5,
  };
}

async function train() {
  showError('train-error', '');
  if (app.busy) return;
  if (app.classes.length < 2 || app.classes.some((c) => c.count < 2)) {
    showError('train-error', 'Add at least two classes with at least two images each (ten or more is better).');
    return;
  }
  let options;
  try {
    options = trainOptions();
  } catch (e) {
    showError('train-error', e.message);
    return;
  }
  setBusy('training');
  const controller = new AbortController();
  app.abort = controller;
  const previous = app.history;
  app.history = [];
  drawCurves();
  const status = $('train-status');
  status.textContent = 'Training…';
  try {
    const report = await app.tuner.train({
      ...options,
      signal: controller.signal,
      onEpoch: (s) => {
        app.history.push(s);
        status.textContent = `Epoch ${s.epoch}${s.fold ? ` (fold ${s.fold})` : ''}: loss ${s.loss.toFixed(3)}${s.valAccuracy != null ? `, validation accuracy ${pct(s.valAccuracy)}` : ''}`;
        drawCurves();
      },
    });
    app.report = {
      history: report.history,
      metrics: report.metrics,
      warnings: report.warnings,
      validation: report.validation,
      bestEpoch: report.bestEpoch,
      stoppedEarly: report.stoppedEarly,
      trainExamples: report.trainExamples,
      when: new Date().toISOString(),
    };
    app.history = report.history;
    app.trainedOn = signature();
    app.threshold = report.metrics?.binary?.threshold ?? app.threshold;
    const m = report.metrics;
    status.textContent = `Done${report.stoppedEarly ? ` (stopped early at epoch ${report.history.at(-1)?.epoch})` : ''}.${m ? ` Validation accuracy ${pct(m.accuracy)}.` : ''}`;
    scheduleSave();
  } catch (e) {
    if (e.name === 'AbortError') {
      status.textContent = app.report ? 'Stopped. The previous model is kept.' : 'Stopped before a model was made.';
      app.history = previous;
    } else {
      status.textContent = '';
      showError('train-error', `Training failed: ${e.message}`);
      app.history = previous;
    }
  } finally {
    app.abort = null;
    setBusy(null);
    drawCurves();
    renderEvaluation();
    renderTrainState();
  }
}

function renderTrainState() {
  const stale = app.report && app.trainedOn !== signature();
  document.body.dataset.model = app.report ? (stale ? 'stale' : 'trained') : 'none';
  if (stale && !app.busy) $('train-status').textContent = 'Your images changed since the model was trained — train again to include them.';
}

function drawCurves() {
  let h = app.history;
  // k-fold: show the latest run (the curves of different folds would overlap).
  const last = h.at(-1);
  if (last) h = h.filter((s) => s.fold === last.fold);
  const series = (key, color, dashed) => ({ color, dashed, points: h.filter((s) => s[key] != null).map((s) => [s.epoch, s[key]]) });
  lineChart($('loss-chart'), [series('loss', COLORS.train), series('valLoss', COLORS.val, true)], { empty: 'Train to see the loss' });
  lineChart($('acc-chart'), [series('accuracy', COLORS.train), series('valAccuracy', COLORS.val, true)], {
    yMax: 1,
    format: (v) => `${Math.round(v * 100)}%`,
    empty: 'Train to see the accuracy',
  });
}

// ---------------------------------------------------------------------------------------------
// Evaluation

const WARNING_TITLES = {
  too_few_images: 'Too few images',
  imbalance: 'Unbalanced classes',
  no_transfer: 'Not clearly better than guessing',
  no_validation: 'Accuracy not measured',
};

function renderEvaluation() {
  const r = app.report;
  $('eval-empty').hidden = !!r;
  $('eval').hidden = !r;
  if (!r) return;
  const m = r.metrics;
  const summary = $('eval-summary');
  if (m) {
    const how = r.validation === 'kfold' ? 'Cross-validated accuracy' : 'Validation accuracy';
    summary.replaceChildren(
      `${how}: `,
      el('strong', { id: 'val-accuracy', 'data-value': String(m.accuracy) }, pct(m.accuracy, 1)),
      ` on ${plural(m.n, 'image')} the model did not learn from. Always guessing the largest class would score ${pct(m.majorityBaseline)}.`,
    );
  } else {
    summary.textContent = 'No images were held back (validation split 0), so the accuracy could not be measured honestly.';
  }
  const warnings = $('warnings');
  warnings.replaceChildren(
    ...r.warnings.map((w) => el('li', { 'data-code': w.code }, el('strong', {}, `${WARNING_TITLES[w.code] ?? 'Note'}: `), w.message)),
  );
  if (app.report && app.trainedOn !== signature()) {
    warnings.append(el('li', { 'data-code': 'stale' }, el('strong', {}, 'Out of date: '), 'images were added or removed after this model was trained. Train again to include them.'));
  }
  const perClass = $('per-class');
  const conf = $('confusion');
  perClass.replaceChildren();
  conf.replaceChildren();
  $('roc-box').hidden = true;
  if (!m) return;
  perClass.append(
    el('thead', {}, el('tr', {}, el('th', { scope: 'col' }, 'Class'), el('th', { scope: 'col' }, 'Held out'), el('th', { scope: 'col' }, 'Accuracy'), el('th', { scope: 'col' }, 'Precision'))),
    el(
      'tbody',
      {},
      m.perClass.map((c) =>
        el('tr', {}, el('th', { scope: 'row' }, c.name), el('td', {}, String(c.support)), el('td', {}, pct(c.recall)), el('td', {}, pct(c.precision))),
      ),
    ),
  );
  const names = m.perClass.map((c) => c.name);
  const head = el('tr', {}, el('td', {}), ...names.map((n) => el('th', { scope: 'col' }, n)));
  const rows = m.confusion.map((row, i) => {
    const total = row.reduce((a, b) => a + b, 0) || 1;
    return el(
      'tr',
      {},
      el('th', { scope: 'row' }, names[i]),
      ...row.map((v, j) => {
        const td = el('td', { class: i === j ? 'diag' : 'off' }, String(v));
        const share = v / total;
        td.style.backgroundColor = `rgba(${i === j ? '37, 99, 235' : '234, 88, 12'}, ${(0.08 + 0.6 * share).toFixed(3)})`;
        return td;
      }),
    );
  });
  conf.append(el('thead', {}, head), el('tbody', {}, rows));
  if (m.binary) renderRoc(m.binary);
}

/** The ROC point in effect at threshold t: predicted positive when p ≥ t. */
function operatingPoint(roc, t) {
  let best = roc[0];
  for (const p of roc) if (p.threshold >= t) best = p;
  return best;
}

function renderRoc(b) {
  $('roc-box').hidden = false;
  $('auc').textContent = `AUC ${b.auc.toFixed(3)} (1 = perfect, 0.5 = guessing). Positive class: `;
  $('auc').append(el('strong', {}, b.positive));
  $('threshold-label').textContent = `Decision threshold: call an image “${b.positive}” when its probability is at least`;
  const slider = $('threshold');
  slider.value = String(app.threshold ?? b.threshold);
  updateThreshold(b);
}

function updateThreshold(b) {
  const t = Number($('threshold').value);
  const p = operatingPoint(b.roc, t);
  $('threshold-out').textContent = `${t.toFixed(2)} → sensitivity ${pct(p.tpr)}, specificity ${pct(1 - p.fpr)}`;
  rocChart($('roc-chart'), b.roc, p);
}

// ---------------------------------------------------------------------------------------------
// Prediction

async function predictFile(file) {
  showError('predict-error', '');
  if (!app.report) {
    showError('predict-error', 'Train a model first (step 2), then add an image here.');
    return;
  }
  try {
    const topK = Number($('topk').value);
    const preds = await app.tuner.predict(file, { topK, heatmap: true });
    let bitmap = null;
    try {
      bitmap = await createImageBitmap(file);
    } catch {
      // The engine decodes more formats than the browser; show the results without the picture.
    }
    app.lastPrediction?.bitmap?.close?.();
    app.lastPrediction = { preds, bitmap, name: file.name || 'pasted image' };
    renderPrediction();
  } catch (e) {
    showError('predict-error', `Could not classify this image: ${e.message}`);
  }
}

function renderPrediction() {
  const p = app.lastPrediction;
  $('prediction').hidden = !p;
  if (!p) return;
  $('predict-name').textContent = p.name;
  const list = $('predict-list');
  list.replaceChildren(
    ...p.preds.map((x) => {
      const bar = el('span', { class: 'bar' });
      bar.style.width = `${(100 * x.probability).toFixed(1)}%`;
      return el('li', { 'data-label': x.label }, el('span', { class: 'label' }, x.label), el('span', { class: 'track' }, bar), el('span', { class: 'prob' }, pct(x.probability, 1)));
    }),
  );
  const b = app.report?.metrics?.binary;
  const decision = $('predict-decision');
  decision.textContent = '';
  if (b && app.classes.length === 2) {
    const top = p.preds[0];
    const pPos = top.label === b.positive ? top.probability : 1 - top.probability;
    const t = app.threshold ?? b.threshold;
    const other = app.report.metrics.perClass.map((c) => c.name).find((n) => n !== b.positive) ?? 'other';
    decision.textContent = `Decision at your threshold (${t.toFixed(2)}): ${pPos >= t ? b.positive : other}`;
  }
  drawPrediction();
}

function drawPrediction() {
  const p = app.lastPrediction;
  const canvas = $('predict-canvas');
  const ctx = canvas.getContext('2d');
  const hm = p?.preds.heatmap;
  const show = $('heatmap-toggle').checked && !!hm;
  const w = p?.bitmap?.width ?? hm?.imageWidth ?? 1;
  const h = p?.bitmap?.height ?? hm?.imageHeight ?? 1;
  const scale = 320 / Math.max(w, h);
  canvas.width = Math.max(1, Math.round(w * scale));
  canvas.height = Math.max(1, Math.round(h * scale));
  ctx.fillStyle = '#f3f4f6';
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  if (p?.bitmap) {
    ctx.imageSmoothingQuality = 'high';
    ctx.drawImage(p.bitmap, 0, 0, canvas.width, canvas.height);
  }
  canvas.dataset.heatmap = show ? 'shown' : 'hidden';
  canvas.setAttribute('aria-label', show ? `The image, overlaid with where the model saw “${hm.label}” (red = strongest)` : 'The image being classified');
  if (!show) return;
  const grid = document.createElement('canvas');
  grid.width = hm.width;
  grid.height = hm.height;
  const img = grid.getContext('2d').createImageData(hm.width, hm.height);
  for (let i = 0; i < hm.data.length; i++) {
    const v = hm.data[i];
    const [r, g, bl] = heatColor(v);
    img.data.set([r, g, bl, Math.round(255 * (0.15 + 0.5 * v))], 4 * i);
  }
  grid.getContext('2d').putImageData(img, 0, 0);
  ctx.imageSmoothingEnabled = true;
  const s = canvas.width / w;
  ctx.drawImage(grid, hm.crop.x * s, hm.crop.y * s, hm.crop.width * s, hm.crop.height * s);
}

// ---------------------------------------------------------------------------------------------
// Keep: export / import / clear

function download(bytes, name) {
  const url = URL.createObjectURL(new Blob([bytes], { type: 'application/octet-stream' }));
  const a = el('a', { href: url, download: name });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

const today = () => new Date().toISOString().slice(0, 10);

async function exportProject() {
  await guarded('Could not export the project', async () => {
    download(await app.tuner.saveProject({ extra: extraData() }), `headtune-project-${today()}.headtune`);
  });
}

async function exportModel() {
  showError('keep-error', '');
  if (!app.report) {
    showError('keep-error', 'Train a model first: there is nothing to export yet.');
    return;
  }
  await guarded('Could not export the model', async () => {
    download(await app.tuner.exportModel(), 'model.htmodel');
  });
}

async function importProject(file) {
  showError('keep-error', '');
  if (!file || app.busy) return;
  setBusy('importing');
  setEngineStatus('Opening the project…');
  try {
    const bytes = new Uint8Array(await file.arrayBuffer());
    const next = await Tuner.loadProject(bytes, engineOptions());
    await swapTuner(next);
    restoreExtra(next.extra);
    app.lastPrediction = null;
    renderPrediction();
    clearRejected();
    await refresh();
    drawCurves();
    scheduleSave();
  } catch (e) {
    showBackend();
    showError('keep-error', `“${file.name}” could not be opened: ${e.message} Your current project was not changed.`);
  } finally {
    setBusy(null);
    $('import-input').value = '';
  }
}

async function clearProject() {
  setBusy('clearing');
  try {
    await db.del('project');
    await swapTuner(await Tuner.create(engineOptions({ augment: { views: Number(DEFAULTS.views) } })));
    restoreExtra(null);
    app.lastPrediction = null;
    renderPrediction();
    clearRejected();
    $('train-status').textContent = '';
    $('target-class').value = '';
    await refresh();
    drawCurves();
    $('save-status').textContent = '';
    $('save-status').dataset.state = 'saved';
  } catch (e) {
    showError('keep-error', `Could not start a new project: ${e.message}`);
  } finally {
    setBusy(null);
  }
}

function clearRejected() {
  $('rejected-list').replaceChildren();
  $('rejected').hidden = true;
}

// ---------------------------------------------------------------------------------------------
// Wiring

function dropTarget(zone, onFiles) {
  zone.addEventListener('dragover', (e) => {
    e.preventDefault();
    e.dataTransfer.dropEffect = 'copy';
    zone.classList.add('over');
  });
  zone.addEventListener('dragleave', () => zone.classList.remove('over'));
  zone.addEventListener('drop', (e) => {
    e.preventDefault();
    zone.classList.remove('over');
    onFiles(groupsFromDrop(e.dataTransfer));
  });
}

function wire() {
  dropTarget($('dropzone'), async (groups) => addGroups(await groups));
  dropTarget($('predict-drop'), async (groups) => {
    const file = (await groups).flatMap((g) => g.files)[0];
    if (file) predictFile(file);
  });
  // Dropping a file anywhere else must not navigate away from the project.
  window.addEventListener('dragover', (e) => e.preventDefault());
  window.addEventListener('drop', (e) => e.preventDefault());

  $('file-input').addEventListener('change', (e) => {
    addGroups([{ label: null, files: [...e.target.files] }]);
    e.target.value = '';
  });
  $('folder-input').addEventListener('change', (e) => {
    addGroups(groupsFromFolderInput(e.target.files));
    e.target.value = '';
  });
  $('predict-input').addEventListener('change', (e) => {
    if (e.target.files[0]) predictFile(e.target.files[0]);
    e.target.value = '';
  });
  document.addEventListener('paste', (e) => {
    const files = filesFromPaste(e);
    if (!files.length) return;
    e.preventDefault();
    if ($('predict').contains(document.activeElement)) predictFile(files[0]);
    else addGroups([{ label: null, files }]);
  });
  $('progress-cancel').addEventListener('click', () => app.abort?.abort());
  $('rejected-clear').addEventListener('click', clearRejected);

  $('camera-start').addEventListener('click', startCamera);
  $('camera-stop').addEventListener('click', stopCamera);
  const rec = $('camera-record');
  rec.addEventListener('pointerdown', (e) => {
    rec.setPointerCapture?.(e.pointerId);
    startRecording();
  });
  for (const ev of ['pointerup', 'pointercancel', 'lostpointercapture']) rec.addEventListener(ev, stopRecording);
  rec.addEventListener('keydown', (e) => {
    if ((e.key === ' ' || e.key === 'Enter') && !e.repeat) {
      e.preventDefault();
      startRecording();
    }
  });
  rec.addEventListener('keyup', (e) => {
    if (e.key === ' ' || e.key === 'Enter') stopRecording();
  });
  rec.addEventListener('blur', stopRecording);
  $('predict-camera').addEventListener('click', async () => {
    if (!(await startCamera())) {
      showError('predict-error', $('camera-status').textContent);
      return;
    }
    const f = await grabFrame();
    if (f) predictFile(f);
  });

  $('train-button').addEventListener('click', train);
  $('stop-button').addEventListener('click', () => app.abort?.abort());
  $('head').addEventListener('change', syncHeadFields);
  $('settings').addEventListener('change', () => scheduleSave());
  $('threshold').addEventListener('input', () => {
    const b = app.report?.metrics?.binary;
    if (!b) return;
    app.threshold = Number($('threshold').value);
    updateThreshold(b);
    if (app.lastPrediction) renderPrediction();
  });
  $('threshold').addEventListener('change', scheduleSave);

  $('topk').addEventListener('change', () => {
    const p = app.lastPrediction;
    if (p) showError('predict-error', 'Classify the image again to see a different number of results.');
  });
  $('heatmap-toggle').addEventListener('change', drawPrediction);

  $('export-project').addEventListener('click', exportProject);
  $('export-model').addEventListener('click', exportModel);
  $('import-project').addEventListener('click', () => $('import-input').click());
  $('import-input').addEventListener('change', (e) => importProject(e.target.files[0]));
  $('clear-project').addEventListener('click', () => {
    $('clear-confirm').hidden = false;
    $('clear-yes').focus();
  });
  $('clear-no').addEventListener('click', () => {
    $('clear-confirm').hidden = true;
    $('clear-project').focus();
  });
  $('clear-yes').addEventListener('click', async () => {
    $('clear-confirm').hidden = true;
    await clearProject();
    $('clear-project').focus();
  });

  $('backend').addEventListener('change', async (e) => {
    app.backend = e.target.value;
    try {
      localStorage.setItem(BACKEND_KEY, app.backend);
    } catch {
      // Private mode: the choice just isn't remembered.
    }
    setBusy('switching');
    setEngineStatus('Switching…');
    try {
      await reopen({});
    } catch (err) {
      showError('keep-error', `Could not switch: ${err.message}`);
      showBackend();
    } finally {
      setBusy(null);
    }
  });

  let resizeTimer;
  window.addEventListener('resize', () => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(() => {
      drawCurves();
      const b = app.report?.metrics?.binary;
      if (b) updateThreshold(b);
    }, 100);
  });
}

async function boot() {
  const param = new URLSearchParams(location.search).get('backend');
  let stored = null;
  try {
    stored = localStorage.getItem(BACKEND_KEY);
  } catch {
    // No storage: use the default.
  }
  app.backend = ['auto', 'webgpu', 'cpu'].includes(param) ? param : ['auto', 'webgpu', 'cpu'].includes(stored) ? stored : 'auto';
  $('backend').value = app.backend;
  wire();
  setBusy('starting');
  drawCurves();
  setEngineStatus('Loading the image model…');
  try {
    let saved = null;
    try {
      saved = await db.get('project');
    } catch (e) {
      showError('keep-error', `This browser does not let the page store data (${e.message}); your work will not survive a reload. Use Export project to keep it.`);
    }
    if (saved) {
      try {
        const t = await Tuner.loadProject(saved, engineOptions());
        await swapTuner(t);
        restoreExtra(t.extra);
      } catch (e) {
        // Keep the unreadable copy rather than overwrite it with an empty project.
        await db.put(`project-unreadable-${Date.now()}`, saved).catch(() => {});
        showError('keep-error', `The saved project could not be restored (${e.message}); starting an empty one. The old copy is kept in this browser's storage.`);
      }
    }
    if (!app.tuner) {
      await swapTuner(await Tuner.create(engineOptions({ augment: { views: Number($('views').value) || 0 } })));
    }
    await refresh();
    drawCurves();
    $('save-status').dataset.state = 'saved';
    document.body.dataset.ready = 'true';
  } catch (e) {
    setEngineStatus('Failed to start');
    showError('train-error', `The engine could not start: ${e.message}`);
  } finally {
    setBusy(null);
  }
}

if ('serviceWorker' in navigator) {
  // Offline after the first visit: the worker caches the page, the engine and the weights.
  navigator.serviceWorker.register(new URL('../sw.js', import.meta.url)).catch(() => {});
}

boot();
