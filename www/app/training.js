// The Train panel: Train / Stop, the status line, the loss and accuracy curves, and the nine
// settings under "Advanced" (defaults shown). Whether there is enough data is the engine's call:
// its refusal is shown as it words it.

import * as engine from './engine.js';
import { scheduleSave } from './keep.js';
import { byId, pct, renderError } from './dom.js';
import { setError } from './state.js';
import { lineChart, COLORS } from './charts.js';

/** The fields of the settings form; `views` is applied when images are added, not at training. */
export const SETTINGS = ['epochs', 'learningRate', 'batchSize', 'head', 'hiddenUnits', 'weightDecay', 'views', 'validationSplit', 'seed', 'crossValidate'];
const NUMBERS = ['epochs', 'learningRate', 'batchSize', 'hiddenUnits', 'weightDecay', 'validationSplit', 'seed'];

let abort = null;

/** The form's values (strings; `crossValidate` a boolean). */
function readForm(form) {
  return Object.fromEntries(SETTINGS.map((k) => [k, form.elements[k].type === 'checkbox' ? form.elements[k].checked : form.elements[k].value]));
}

function writeForm(form, settings) {
  for (const k of SETTINGS) {
    const input = form.elements[k];
    if (settings?.[k] === undefined) continue;
    if (input.type === 'checkbox') input.checked = !!settings[k];
    else if (input.value !== String(settings[k])) input.value = settings[k];
  }
  form.elements.hiddenUnits.disabled = form.elements.head.value !== 'mlp';
}

/** Training options from the settings; throws an Error naming a field that is not a number. */
function trainOptions(settings, form) {
  const out = { head: settings.head, crossValidate: !!settings.crossValidate };
  for (const k of NUMBERS) {
    const v = Number(settings[k]);
    if (String(settings[k]).trim() === '' || !Number.isFinite(v)) throw new Error(`${form.elements[k].labels[0].textContent} must be a number.`);
    out[k] = v;
  }
  return out;
}

/** What the page keeps of a training report (everything the panels show). */
function keepReport(report) {
  return {
    history: report.history,
    metrics: report.metrics,
    warnings: report.warnings,
    validation: report.validation,
    bestEpoch: report.bestEpoch,
    stoppedEarly: report.stoppedEarly,
    trainExamples: report.trainExamples,
    heldOut: report.heldOut ?? [],
    when: new Date().toISOString(),
  };
}

/**
 * The report after class `from` was renamed `to`: the engine renamed the model's label, so the
 * page's copy of its metrics follows. A merge (onto a class the model knows) changes nothing
 * here; the model is then out of date and says so.
 */
export function renameInReport(report, from, to) {
  const m = report?.metrics;
  if (!m || m.perClass.some((c) => c.name === to)) return report;
  const name = (n) => (n === from ? to : n);
  const metrics = {
    ...m,
    perClass: m.perClass.map((c) => ({ ...c, name: name(c.name) })),
    binary: m.binary && { ...m.binary, positive: name(m.binary.positive) },
  };
  return { ...report, metrics };
}

/** Has the data changed since the model was trained? (Renames do not count.) */
export const isStale = (s) => !!s.report && s.trainedOn !== engine.fingerprint(s);

async function train(state, form) {
  const s = state.get();
  setError(state, 'train', '');
  if (s.busy) return;
  let options;
  try {
    options = trainOptions(s.settings, form);
  } catch (e) {
    setError(state, 'train', e.message);
    return;
  }
  const controller = new AbortController();
  abort = controller;
  const previous = s.history;
  const history = [];
  state.set({ busy: 'training', history, trainStatus: 'Training…' });
  try {
    const report = await engine.current().train({
      ...options,
      signal: controller.signal,
      onEpoch: (e) => {
        history.push(e);
        state.set({
          history: [...history],
          trainStatus: `Epoch ${e.epoch}${e.fold ? ` (fold ${e.fold})` : ''}: loss ${e.loss.toFixed(3)}${e.valAccuracy != null ? `, validation accuracy ${pct(e.valAccuracy)}` : ''}`,
        });
      },
    });
    const now = state.get();
    const m = report.metrics;
    state.set({
      report: keepReport(report),
      history: report.history,
      trainedOn: engine.fingerprint(now),
      // The engine chose the threshold on held-out predictions (Youden, or the target
      // sensitivity); the slider starts there.
      threshold: report.decision?.threshold ?? m?.binary?.threshold ?? now.threshold,
      review: null,
      trainStatus: `Done${report.stoppedEarly ? ` (stopped early at epoch ${report.history.at(-1)?.epoch})` : ''}.${m ? ` Validation accuracy ${pct(m.accuracy)}.` : ''}`,
    });
    scheduleSave(state);
  } catch (e) {
    if (e.name === 'AbortError') {
      state.set({ history: previous, trainStatus: state.get().report ? 'Stopped. The previous model is kept.' : 'Stopped before a model was made.' });
    } else {
      state.set({ history: previous, trainStatus: '' });
      setError(state, 'train', `Training failed: ${e.message}`);
    }
  } finally {
    abort = null;
    state.set({ busy: null });
  }
}

function drawCurves(root, history) {
  let h = history;
  // k-fold: show the latest run (the curves of different folds would overlap).
  const last = h.at(-1);
  if (last) h = h.filter((s) => s.fold === last.fold);
  const series = (key, color, dashed) => ({ color, dashed, points: h.filter((s) => s[key] != null).map((s) => [s.epoch, s[key]]) });
  lineChart(byId('loss-chart', root), [series('loss', COLORS.train), series('valLoss', COLORS.val, true)]);
  lineChart(byId('acc-chart', root), [series('accuracy', COLORS.train), series('valAccuracy', COLORS.val, true)], { yMax: 1, format: (v) => `${Math.round(v * 100)}%` });
}

/** The Train panel. */
export function mount(root, state) {
  const form = byId('settings', root);
  const defaults = readForm(form);
  if (!state.get().settings) state.set({ settings: defaults });
  form.addEventListener('input', () => state.set({ settings: readForm(form) }));
  form.addEventListener('change', () => {
    state.set({ settings: readForm(form) });
    scheduleSave(state);
  });
  byId('reset-settings', root).addEventListener('click', () => {
    state.set({ settings: defaults });
    scheduleSave(state);
  });
  byId('train-button', root).addEventListener('click', () => train(state, form));
  byId('stop-button', root).addEventListener('click', () => abort?.abort());

  const render = (s, changed) => {
    if (!changed || changed.has('settings')) writeForm(form, s.settings);
    if (!changed || changed.has('history')) {
      byId('charts', root).hidden = !s.history.length;
      byId('curves-empty', root).hidden = !!s.history.length;
      if (s.history.length) drawCurves(root, s.history);
    }
    byId('train-button', root).disabled = !!s.busy;
    byId('stop-button', root).disabled = s.busy !== 'training';
    const stale = isStale(s);
    document.body.dataset.model = s.report ? (stale ? 'stale' : 'trained') : 'none';
    const status = byId('train-status', root);
    status.textContent = stale && !s.busy ? 'Your images changed since the model was trained — train again to include them.' : s.trainStatus;
    renderError(byId('train-error', root), s.errors.train);
  };
  state.subscribe(['settings', 'history', 'busy', 'report', 'trainedOn', 'classes', 'examples', 'trainStatus', 'errors'], render);
  render(state.get());
  let resizeTimer;
  window.addEventListener('resize', () => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(() => state.get().history.length && drawCurves(root, state.get().history), 100);
  });
}
