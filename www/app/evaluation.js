// "Check the model": held-out accuracy with its 95 % interval, warnings, the per-class table, a
// clickable confusion matrix, the ROC curve with a decision threshold (its sensitivity and
// specificity come from the engine), and the review list — the held-out images behind a cell,
// every mistake, or the labels the model doubts — where images can be removed or moved to
// another class in place.

import * as engine from './engine.js';
import * as thumbs from './thumbs.js';
import { removeExample } from './classes.js';
import { isStale } from './training.js';
import { scheduleSave } from './keep.js';
import { drawPrediction } from './prediction.js';
import { byId, el, pct, interval, plural } from './dom.js';
import { setError } from './state.js';
import { rocChart } from './charts.js';

const WARNING_TITLES = {
  too_few_images: 'Too few images',
  imbalance: 'Unbalanced classes',
  no_transfer: 'Not clearly better than guessing',
  no_validation: 'Accuracy not measured',
};

/** Index of the largest probability. */
const top = (p) => p.reduce((best, v, i) => (v > p[best] ? i : best), 0);

/** The held-out predictions the review list shows for `review`. */
export function reviewed(report, review) {
  const held = report?.heldOut ?? [];
  if (!review) return [];
  if (review.kind === 'cell') return held.filter((h) => h.label === review.truth && top(h.probabilities) === review.predicted);
  if (review.kind === 'wrong') return held.filter((h) => h.label !== top(h.probabilities));
  return held.filter((h) => h.doubted);
}

let pointSeq = 0;

/** Ask the engine for the operating point at threshold `t` (latest request wins). */
async function updatePoint(state, t) {
  const seq = ++pointSeq;
  try {
    const point = await engine.current().operatingPoint(t);
    if (seq === pointSeq) state.set({ operatingPoint: point });
  } catch (e) {
    setError(state, 'keep', `Could not compute the operating point: ${e.message}`);
  }
}

function summary(r, m) {
  if (!m) return ['No images were held back (validation split 0, or a class with one image), so the accuracy could not be measured honestly.'];
  const how = r.validation === 'kfold' ? 'Cross-validated accuracy' : 'Validation accuracy';
  const ci = interval(m.accuracyInterval);
  return [
    `${how}: `,
    el('strong', { id: 'val-accuracy', 'data-value': String(m.accuracy) }, pct(m.accuracy, 1)),
    ci ? [' ', el('span', { id: 'val-interval', class: 'ci', 'data-low': String(m.accuracyInterval.low), 'data-high': String(m.accuracyInterval.high) }, `(95 % CI ${ci})`)] : null,
    ` on ${plural(m.n, 'image')} the model did not learn from. Always guessing the largest class would score ${pct(m.majorityBaseline)}.`,
    ci ? el('span', { class: 'muted small block' }, 'The true accuracy on new images like these plausibly lies anywhere in the interval; few images make it wide.') : null,
  ];
}

function perClassTable(m) {
  return [
    el('thead', {}, el('tr', {}, el('th', { scope: 'col' }, 'Class'), el('th', { scope: 'col' }, 'Held out'), el('th', { scope: 'col' }, 'Accuracy'), el('th', { scope: 'col' }, 'Precision'))),
    el('tbody', {}, m.perClass.map((c) => el('tr', {}, el('th', { scope: 'row' }, c.name), el('td', {}, String(c.support)), el('td', {}, pct(c.recall)), el('td', {}, pct(c.precision))))),
  ];
}

function confusionTable(state, m, review) {
  const names = m.perClass.map((c) => c.name);
  const head = el('tr', {}, el('td', {}), ...names.map((n) => el('th', { scope: 'col' }, n)));
  const rows = m.confusion.map((row, i) => {
    const total = row.reduce((a, b) => a + b, 0) || 1;
    return el(
      'tr',
      {},
      el('th', { scope: 'row' }, names[i]),
      ...row.map((v, j) => {
        const selected = review?.kind === 'cell' && review.truth === i && review.predicted === j;
        const button = el('button', { type: 'button', class: 'cell', 'aria-pressed': String(selected), 'aria-label': `${plural(v, 'image')} of ${names[i]} predicted as ${names[j]}`, disabled: v === 0 }, String(v));
        button.addEventListener('click', () => state.set({ review: { kind: 'cell', truth: i, predicted: j } }));
        const td = el('td', { class: i === j ? 'diag' : 'off' }, button);
        td.style.backgroundColor = `rgba(${i === j ? '37, 99, 235' : '234, 88, 12'}, ${(0.08 + 0.6 * (v / total)).toFixed(3)})`;
        return td;
      }),
    );
  });
  return [el('thead', {}, head), el('tbody', {}, rows)];
}

function renderRoc(root, s) {
  const b = s.report?.metrics?.binary;
  byId('roc-box', root).hidden = !b;
  if (!b) return;
  const auc = byId('auc', root);
  const ci = b.aucInterval ? ` (95 % CI ${b.aucInterval.low.toFixed(2)}–${b.aucInterval.high.toFixed(2)})` : '';
  auc.replaceChildren(`AUC ${b.auc.toFixed(3)}${ci}; 1 = perfect, 0.5 = guessing. Positive class: `, el('strong', {}, b.positive));
  byId('threshold-label', root).textContent = `Decision threshold: call an image “${b.positive}” when its probability is at least`;
  const t = s.threshold ?? b.threshold;
  const slider = byId('threshold', root);
  if (document.activeElement !== slider) slider.value = String(t);
  const p = s.operatingPoint;
  const out = byId('threshold-out', root);
  if (p) {
    // Each figure with its interval stays on one line.
    const figure = (v, i) => el('span', { class: 'nowrap' }, `${pct(v)} (${interval(i)})`);
    out.replaceChildren(`${p.threshold.toFixed(2)} → sensitivity `, figure(p.sensitivity, p.sensitivityInterval), ', specificity ', figure(p.specificity, p.specificityInterval));
    out.dataset.threshold = String(p.threshold);
  }
  rocChart(byId('roc-chart', root), b.roc, p && { fpr: 1 - p.specificity, tpr: p.sensitivity });
}

function reviewItem(state, h, s) {
  const names = s.report.metrics.perClass.map((c) => c.name);
  const example = s.examples.find((e) => e.id === h.id);
  const truth = names[h.label];
  const order = h.probabilities.map((p, i) => [p, i]).sort((a, b) => b[0] - a[0]);
  const img = el('img', { alt: example?.name ?? 'removed image', width: 96, height: 96 });
  thumbs.url(h.id).then((src) => src && (img.src = src));
  const canvas = el('canvas', { class: 'review-heat', width: 160, height: 160, hidden: true, role: 'img' });
  const heat = el('button', { type: 'button', class: 'small' }, 'Show heatmap');
  heat.addEventListener('click', async () => {
    heat.disabled = true;
    try {
      const stored = await thumbs.preview(h.id);
      if (!stored) throw new Error('no preview is stored for this image (imported projects keep thumbnails only)');
      const preds = await engine.current().predict(stored.blob, { topK: 1, heatmap: true, framed: stored.framed });
      const bitmap = await createImageBitmap(stored.blob);
      canvas.hidden = false;
      img.hidden = true;
      drawPrediction(canvas, { preds, bitmap }, true, 160);
      bitmap.close();
    } catch (e) {
      setError(state, 'keep', `Could not draw the heatmap: ${e.message}`);
      heat.disabled = false;
    }
  });
  const actions = [];
  if (example) {
    const remove = el('button', { type: 'button', class: 'small danger', 'aria-label': `Remove ${example.name}` }, 'Remove');
    remove.addEventListener('click', () => removeExample(state, h.id));
    const select = el('select', { 'aria-label': `Move ${example.name} to class` }, el('option', { value: '' }, 'Move to…'), ...s.classes.filter((c) => c.name !== example.label).map((c) => el('option', { value: c.name }, c.name)));
    select.addEventListener('change', () => select.value && relabel(state, h.id, select.value));
    actions.push(remove, select);
  }
  const status = !example ? 'removed' : example.label !== truth ? `moved to “${example.label}”` : null;
  return el(
    'li',
    { class: `review-item${h.doubted ? ' doubted' : ''}`, 'data-id': String(h.id) },
    el('div', { class: 'review-media' }, img, canvas),
    el(
      'div',
      { class: 'review-body' },
      el('p', { class: 'review-name' }, example?.name ?? `image ${h.id}`),
      el('p', {}, 'Labelled ', el('strong', {}, truth), status ? ` (${status}; train again)` : '', h.doubted ? el('span', { class: 'flag' }, ' · label doubted') : ''),
      el('ol', { class: 'review-probs', 'aria-label': 'Held-out probabilities' }, order.slice(0, 3).map(([p, i]) => el('li', {}, `${names[i]} ${pct(p, 1)}`))),
      el('div', { class: 'row wrap' }, heat, ...actions),
    ),
  );
}

async function relabel(state, id, to) {
  try {
    await engine.current().relabelExample(id, to);
    const s = state.get();
    state.set({ classes: engine.current().classes, examples: s.examples.map((e) => (e.id === id ? { ...e, label: to } : e)) });
    scheduleSave(state);
  } catch (e) {
    setError(state, 'keep', `Could not move the image: ${e.message}`);
  }
}

function renderReview(root, state, s) {
  const r = s.report;
  const list = byId('review-list', root);
  const title = byId('review-title', root);
  const names = r?.metrics?.perClass.map((c) => c.name) ?? [];
  const items = reviewed(r, s.review);
  const doubted = (r?.heldOut ?? []).filter((h) => h.doubted).length;
  byId('review-doubted', root).textContent = `Doubtful labels (${doubted})`;
  byId('review-wrong', root).setAttribute('aria-pressed', String(s.review?.kind === 'wrong'));
  byId('review-doubted', root).setAttribute('aria-pressed', String(s.review?.kind === 'doubted'));
  const checked = r?.validation === 'kfold' ? 'every image' : `the ${plural(r?.heldOut?.length ?? 0, 'held-out image')} only — turn on Cross-validate (Advanced settings) to check every label`;
  if (!s.review) title.textContent = `Click a number in the confusion matrix, or a button above. Labels checked: ${checked}.`;
  else if (s.review.kind === 'cell') title.textContent = `${plural(items.length, 'image')} of “${names[s.review.truth]}” predicted as “${names[s.review.predicted]}”.`;
  else if (s.review.kind === 'wrong') title.textContent = `${plural(items.length, 'misclassified image')}.`;
  else title.textContent = `${plural(items.length, 'image')} whose label the model confidently disputes (≥ 80 %). Labels checked: ${checked}.`;
  list.replaceChildren(...items.map((h) => reviewItem(state, h, s)));
}

/** The evaluation panel. */
export function mount(root, state) {
  const slider = byId('threshold', root);
  slider.addEventListener('input', () => {
    const t = Number(slider.value);
    state.set({ threshold: t });
    updatePoint(state, t);
  });
  slider.addEventListener('change', async () => {
    // The model decides at the chosen threshold from now on: predictions made through the
    // package and the exported model file carry it.
    try {
      const decision = await engine.current().setThreshold(Number(slider.value));
      slider.dataset.modelThreshold = String(decision?.threshold ?? '');
      state.set({ modelThreshold: decision?.threshold ?? null });
    } catch (e) {
      setError(state, 'train', `The threshold could not be set: ${e.message}`);
    }
    scheduleSave(state);
  });
  byId('review-wrong', root).addEventListener('click', () => state.set({ review: { kind: 'wrong' } }));
  byId('review-doubted', root).addEventListener('click', () => state.set({ review: { kind: 'doubted' } }));

  const render = (s, changed) => {
    const r = s.report;
    byId('eval-empty', root).hidden = !!r;
    byId('eval', root).hidden = !r;
    if (!r) return;
    const m = r.metrics;
    if (!changed || changed.has('report')) {
      byId('eval-summary', root).replaceChildren(...summary(r, m).flat().filter(Boolean));
      // A new model (trained, restored, renamed): its operating point comes from the engine.
      if (m?.binary) updatePoint(state, s.threshold ?? m.binary.threshold);
    }
    const warnings = r.warnings.map((w) => el('li', { 'data-code': w.code }, el('strong', {}, `${WARNING_TITLES[w.code] ?? 'Note'}: `), w.message));
    if (isStale(s)) warnings.push(el('li', { 'data-code': 'stale' }, el('strong', {}, 'Out of date: '), 'images were added, removed or moved after this model was trained. Train again to include them.'));
    byId('warnings', root).replaceChildren(...warnings);
    byId('per-class', root).replaceChildren(...(m ? perClassTable(m) : []));
    byId('confusion', root).replaceChildren(...(m ? confusionTable(state, m, s.review) : []));
    byId('review', root).hidden = !m;
    renderRoc(root, s);
    if (!changed || ['report', 'review', 'examples', 'classes'].some((k) => changed.has(k))) renderReview(root, state, s);
  };
  state.subscribe(['report', 'trainedOn', 'classes', 'examples', 'threshold', 'operatingPoint', 'review'], render);
  render(state.get());
  let resizeTimer;
  window.addEventListener('resize', () => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(() => renderRoc(root, state.get()), 100);
  });
}
