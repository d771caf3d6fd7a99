// The Predict panel: classify a dropped, chosen or pasted image — or the webcam, continuously —
// and show the probabilities, the decision at the chosen threshold (two classes) and where the
// model looked: the heatmap over the whole image, greyed outside the region the model saw, with
// a colour legend.

import * as engine from './engine.js';
import * as camera from './camera.js';
import { byId, el, pct, renderError, dropTarget } from './dom.js';
import { setError } from './state.js';
import { heatColor } from './charts.js';
import { groupsFromDrop, filesFromPaste } from './files.js';

/** Live webcam prediction runs at most this often (ms): enough to follow, light on the CPU. */
const LIVE_EVERY = 600;
const LIVE_KEY = 'predict';

/** The last image classified from a file (re-classified when "Show the top" changes). */
let lastFile = null;

/** How many classes the current model has (what "Show the top" may offer). */
const modelClasses = (s) => s.report?.metrics?.perClass.length ?? s.classes.length;

/**
 * Draw `p` ({ preds, bitmap }) into `canvas`, at most `maxSide` px on its longer side; with
 * `showHeat`, overlay the heatmap on the region the model saw and grey out the rest.
 */
export function drawPrediction(canvas, p, showHeat, maxSide = 320) {
  const hm = p?.preds.heatmap;
  const show = showHeat && !!hm;
  const w = p?.bitmap?.width ?? hm?.imageWidth ?? 1;
  const h = p?.bitmap?.height ?? hm?.imageHeight ?? 1;
  const scale = maxSide / Math.max(w, h);
  canvas.width = Math.max(1, Math.round(w * scale));
  canvas.height = Math.max(1, Math.round(h * scale));
  const ctx = canvas.getContext('2d');
  ctx.fillStyle = '#f3f4f6';
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  if (p?.bitmap) {
    ctx.imageSmoothingQuality = 'high';
    ctx.drawImage(p.bitmap, 0, 0, canvas.width, canvas.height);
  }
  canvas.dataset.heatmap = show ? 'shown' : 'hidden';
  canvas.setAttribute('aria-label', show ? `The image, overlaid with where the model saw “${hm.label}” (red = strongest; grey = outside what the model saw)` : 'The image being classified');
  if (!show) {
    delete canvas.dataset.region;
    return;
  }
  // The grid covers the crop the model saw, in the engine's pixels of the same image.
  const s = canvas.width / (hm.imageWidth || w);
  const c = hm.crop;
  const region = { x: c.x * s, y: c.y * s, w: (c.width ?? c.side) * s, h: (c.height ?? c.side) * s };
  canvas.dataset.region = [region.x, region.y, region.w, region.h].map((v) => v.toFixed(1)).join(',');
  // Outside the region: grey, so "no colour" never reads as "no evidence".
  ctx.save();
  ctx.beginPath();
  ctx.rect(0, 0, canvas.width, canvas.height);
  ctx.rect(region.x, region.y, region.w, region.h);
  ctx.fillStyle = 'rgba(55, 65, 81, 0.6)';
  ctx.fill('evenodd');
  ctx.restore();
  const grid = document.createElement('canvas');
  grid.width = hm.width;
  grid.height = hm.height;
  const img = grid.getContext('2d').createImageData(hm.width, hm.height);
  for (let i = 0; i < hm.data.length; i++) {
    const v = hm.data[i];
    const [r, g, b] = heatColor(v);
    img.data.set([r, g, b, Math.round(255 * (0.2 + 0.45 * v))], 4 * i);
  }
  grid.getContext('2d').putImageData(img, 0, 0);
  ctx.imageSmoothingEnabled = true;
  ctx.drawImage(grid, region.x, region.y, region.w, region.h);
  ctx.strokeStyle = 'rgba(255, 255, 255, 0.9)';
  ctx.lineWidth = 1;
  ctx.strokeRect(region.x + 0.5, region.y + 0.5, region.w - 1, region.h - 1);
}

async function classify(state, image, name, live = false) {
  const s = state.get();
  if (!s.report) {
    setError(state, 'predict', 'Train a model first (step 2), then add an image here.');
    return false;
  }
  setError(state, 'predict', '');
  const topK = Number(byId('topk').value) || 1;
  const preds = await engine.current().predict(image, { topK, heatmap: true });
  let bitmap = null;
  try {
    bitmap = await createImageBitmap(image);
  } catch {
    // The engine decodes more formats than the browser; show the results without the picture.
  }
  state.get().prediction?.bitmap?.close?.();
  state.set({ prediction: { preds, bitmap, name, live } });
  return true;
}

async function predictFile(state, file) {
  lastFile = file;
  try {
    await classify(state, file, file.name || 'pasted image');
  } catch (e) {
    setError(state, 'predict', `Could not classify this image: ${e.message}`);
  }
}

/** Continuous webcam prediction until `state.live` goes false. */
async function runLive(state, root) {
  const status = byId('live-status', root);
  let video;
  try {
    video = await camera.take(LIVE_KEY, byId('live-slot', root), () => state.set({ live: false }));
  } catch (e) {
    state.set({ live: false });
    setError(state, 'predict', `No webcam: ${e.message}.`);
    return;
  }
  status.textContent = 'Classifying the webcam about twice a second.';
  while (state.get().live) {
    const started = performance.now();
    try {
      if (!state.get().busy) {
        if (!(await classify(state, video, 'webcam (live)', true))) break;
      }
    } catch (e) {
      setError(state, 'predict', `Live prediction stopped: ${e.message}`);
      break;
    }
    await new Promise((resolve) => setTimeout(resolve, Math.max(50, LIVE_EVERY - (performance.now() - started))));
  }
  status.textContent = '';
  camera.release(LIVE_KEY);
  state.set({ live: false });
}

/** The Predict panel. */
export function mount(root, state) {
  const input = byId('predict-input', root);
  input.addEventListener('change', () => {
    if (input.files[0]) predictFile(state, input.files[0]);
    input.value = '';
  });
  dropTarget(byId('predict-drop', root), (dt) =>
    groupsFromDrop(dt).then((groups) => {
      const file = groups.flatMap((g) => g.files)[0];
      if (file) predictFile(state, file);
    }),
  );
  document.addEventListener('paste', (e) => {
    if (!root.contains(document.activeElement)) return;
    const [file] = filesFromPaste(e);
    if (!file) return;
    e.preventDefault();
    predictFile(state, file);
  });
  const live = byId('predict-live', root);
  live.addEventListener('click', () => {
    const on = !state.get().live;
    state.set({ live: on });
    if (on) runLive(state, root);
  });
  const topk = byId('topk', root);
  topk.addEventListener('change', () => {
    topk.dataset.chosen = topk.value;
    if (lastFile && !state.get().prediction?.live) predictFile(state, lastFile);
  });
  const toggle = byId('heatmap-toggle', root);
  toggle.addEventListener('change', () => render(state.get()));

  const render = (s) => {
    // "Show the top" offers no more than the model has classes.
    const k = modelClasses(s);
    const options = [1, 2, 3, 5, 10].filter((n) => n <= Math.max(1, k));
    if (topk.options.length !== options.length) {
      // The user's choice if it still fits, else the largest of up to three.
      const chosen = Number(topk.dataset.chosen);
      topk.replaceChildren(...options.map((n) => el('option', { value: String(n) }, String(n))));
      topk.value = String(options.includes(chosen) ? chosen : options.filter((n) => n <= 3).at(-1));
    }
    live.setAttribute('aria-pressed', String(s.live));
    live.textContent = s.live ? 'Stop live webcam' : 'Live webcam';
    byId('live', root).hidden = !s.live;
    renderError(byId('predict-error', root), s.errors.predict);
    const p = s.prediction;
    byId('prediction', root).hidden = !p;
    if (!p) return;
    byId('predict-name', root).textContent = p.name;
    byId('predict-list', root).replaceChildren(
      ...p.preds.map((x) => {
        const bar = el('span', { class: 'bar' });
        bar.style.width = `${(100 * x.probability).toFixed(1)}%`;
        return el('li', { 'data-label': x.label }, el('span', { class: 'label' }, x.label), el('span', { class: 'track' }, bar), el('span', { class: 'prob' }, pct(x.probability, 1)));
      }),
    );
    // Two classes: the engine's call at the model's threshold (the validated one, or the one set
    // with the slider), as an exported model and `headtune predict` make it.
    const d = p.preds.decision;
    byId('predict-decision', root).textContent = d && k === 2 ? `Decision at the model's threshold (${d.threshold.toFixed(2)}): ${d.label}` : '';
    const canvas = byId('predict-canvas', root);
    drawPrediction(canvas, p, toggle.checked);
    const shown = canvas.dataset.heatmap === 'shown';
    byId('heat-legend', root).hidden = !shown;
    byId('heat-note', root).textContent = shown ? `Evidence for “${p.preds.heatmap.label}”. Grey: outside the square the model saw.` : '';
  };
  state.subscribe(['prediction', 'report', 'classes', 'live', 'errors'], render);
  // A new threshold on the model: classify the image on show again, so its decision is the
  // engine's at that threshold.
  state.subscribe(['modelThreshold'], (s) => {
    if (lastFile && s.prediction && !s.prediction.live && !s.live) predictFile(state, lastFile);
  });
  render(state.get());
}
