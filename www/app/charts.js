// Small canvas charts: training curves and the ROC curve. No library; crisp on HiDPI screens.

export const COLORS = { train: '#2563eb', val: '#ea580c', grid: '#e5e7eb', axis: '#6b7280', text: '#374151' };

/** Size the canvas backing store to its CSS size × devicePixelRatio; returns a 2D context in CSS px. */
function prepare(canvas) {
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth || canvas.width;
  const h = canvas.clientHeight || canvas.height;
  if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
    canvas.width = Math.round(w * dpr);
    canvas.height = Math.round(h * dpr);
  }
  const ctx = canvas.getContext('2d');
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, w, h);
  ctx.font = '12px system-ui, sans-serif';
  return { ctx, w, h };
}

function niceMax(v) {
  if (!(v > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

/**
 * Line chart of `series` ([{ color, points: [[x, y]], dashed }]) with x from 1..xMax and y from
 * 0..yMax (yMax null = fit). `format` renders y tick labels.
 */
export function lineChart(canvas, series, { yMax = null, format = (v) => v.toFixed(2), empty = 'No data yet' } = {}) {
  const { ctx, w, h } = prepare(canvas);
  const pad = { l: 44, r: 14, t: 10, b: 40 };
  const pw = w - pad.l - pad.r;
  const ph = h - pad.t - pad.b;
  const all = series.flatMap((s) => s.points);
  const xMax = Math.max(2, ...all.map((p) => p[0]));
  const top = yMax ?? niceMax(Math.max(0, ...all.map((p) => p[1]).filter(Number.isFinite)));
  const X = (x) => pad.l + ((x - 1) / (xMax - 1)) * pw;
  const Y = (y) => pad.t + ph - (Math.min(y, top) / top) * ph;
  ctx.strokeStyle = COLORS.grid;
  ctx.fillStyle = COLORS.axis;
  ctx.lineWidth = 1;
  ctx.textAlign = 'right';
  ctx.textBaseline = 'middle';
  for (let i = 0; i <= 4; i++) {
    const v = (top * i) / 4;
    ctx.beginPath();
    ctx.moveTo(pad.l, Y(v));
    ctx.lineTo(pad.l + pw, Y(v));
    ctx.stroke();
    ctx.fillText(format(v), pad.l - 6, Y(v));
  }
  ctx.textAlign = 'center';
  ctx.textBaseline = 'top';
  const step = [1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 5000].find((s) => s >= (xMax - 1) / 6) ?? 10000;
  ctx.fillText('1', X(1), pad.t + ph + 6);
  for (let x = step; x <= xMax; x += step) if (X(x) - X(1) > 18) ctx.fillText(String(x), X(x), pad.t + ph + 6);
  ctx.fillText('epoch', pad.l + pw / 2, pad.t + ph + 22);
  if (!all.length) {
    ctx.fillStyle = COLORS.text;
    ctx.textBaseline = 'middle';
    ctx.fillText(empty, pad.l + pw / 2, pad.t + ph / 2);
    return;
  }
  for (const s of series) {
    const pts = s.points.filter((p) => Number.isFinite(p[1]));
    if (!pts.length) continue;
    ctx.strokeStyle = s.color;
    ctx.fillStyle = s.color;
    ctx.lineWidth = 2;
    ctx.setLineDash(s.dashed ? [6, 4] : []);
    ctx.beginPath();
    pts.forEach(([x, y], i) => (i ? ctx.lineTo(X(x), Y(y)) : ctx.moveTo(X(x), Y(y))));
    ctx.stroke();
    ctx.setLineDash([]);
    if (pts.length === 1) {
      ctx.beginPath();
      ctx.arc(X(pts[0][0]), Y(pts[0][1]), 3, 0, 2 * Math.PI);
      ctx.fill();
    }
  }
}

/** ROC curve ([{fpr, tpr}]) with the chance diagonal and an optional marked operating point. */
export function rocChart(canvas, roc, mark) {
  const { ctx, w, h } = prepare(canvas);
  const pad = { l: 50, r: 10, t: 10, b: 34 };
  const side = Math.min(w - pad.l - pad.r, h - pad.t - pad.b);
  const X = (v) => pad.l + v * side;
  const Y = (v) => pad.t + side - v * side;
  ctx.strokeStyle = COLORS.grid;
  ctx.fillStyle = COLORS.axis;
  ctx.lineWidth = 1;
  ctx.textAlign = 'right';
  ctx.textBaseline = 'middle';
  for (let i = 0; i <= 4; i++) {
    const v = i / 4;
    ctx.beginPath();
    ctx.moveTo(X(0), Y(v));
    ctx.lineTo(X(1), Y(v));
    ctx.moveTo(X(v), Y(0));
    ctx.lineTo(X(v), Y(1));
    ctx.stroke();
    ctx.fillText(v.toFixed(2), X(0) - 4, Y(v));
  }
  ctx.textAlign = 'center';
  ctx.textBaseline = 'top';
  for (let i = 0; i <= 4; i += 2) ctx.fillText((i / 4).toFixed(1), X(i / 4), Y(0) + 4);
  ctx.fillText('false positive rate (1 − specificity)', X(0.5), Y(0) + 18);
  ctx.save();
  ctx.translate(12, Y(0.5));
  ctx.rotate(-Math.PI / 2);
  ctx.textBaseline = 'middle';
  ctx.fillText('sensitivity', 0, 0);
  ctx.restore();
  ctx.strokeStyle = COLORS.axis;
  ctx.setLineDash([4, 4]);
  ctx.beginPath();
  ctx.moveTo(X(0), Y(0));
  ctx.lineTo(X(1), Y(1));
  ctx.stroke();
  ctx.setLineDash([]);
  ctx.strokeStyle = COLORS.train;
  ctx.lineWidth = 2.5;
  ctx.beginPath();
  roc.forEach((p, i) => (i ? ctx.lineTo(X(p.fpr), Y(p.tpr)) : ctx.moveTo(X(p.fpr), Y(p.tpr))));
  ctx.stroke();
  if (mark) {
    ctx.fillStyle = COLORS.val;
    ctx.beginPath();
    ctx.arc(X(mark.fpr), Y(mark.tpr), 5, 0, 2 * Math.PI);
    ctx.fill();
  }
}

/** Blue → green → yellow → red, for a value in 0..1. */
export function heatColor(v) {
  const stops = [
    [0, [0, 0, 255]],
    [0.35, [0, 200, 255]],
    [0.6, [0, 220, 80]],
    [0.8, [255, 220, 0]],
    [1, [255, 0, 0]],
  ];
  v = Math.max(0, Math.min(1, v));
  for (let i = 1; i < stops.length; i++) {
    const [b, cb] = stops[i];
    const [a, ca] = stops[i - 1];
    if (v <= b) {
      const t = (v - a) / (b - a);
      return ca.map((c, k) => Math.round(c + t * (cb[k] - c)));
    }
  }
  return stops[stops.length - 1][1];
}
