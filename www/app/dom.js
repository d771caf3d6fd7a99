// Small DOM and wording helpers shared by the panels. User text (class names, file names, engine
// messages) only ever goes in through text nodes and properties, never as HTML.

/** The element with this id inside `root` (or the document). */
export const byId = (id, root = document) => root.querySelector(`#${id}`);

/** Create an element with properties and children (strings become text nodes). */
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === 'class') node.className = v;
    else if (k.startsWith('aria-') || k.startsWith('data-')) node.setAttribute(k, v);
    else node[k] = v;
  }
  for (const c of children.flat()) if (c !== null && c !== undefined && c !== false) node.append(c);
  return node;
}

/** 0.873 → "87 %" (or "87.3 %" with one digit). */
export const pct = (v, digits = 0) => `${(100 * v).toFixed(digits)} %`;

/** A 95 % interval as "80–100 %" (or null when absent). */
export function interval(i, digits = 0) {
  if (!i) return null;
  return `${(100 * i.low).toFixed(digits)}–${(100 * i.high).toFixed(digits)} %`;
}

/** "1 image", "3 images". */
export const plural = (n, one, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;

/** Show one panel's error line from state. */
export function renderError(p, text) {
  p.textContent = text ?? '';
  p.hidden = !text;
}

/**
 * Let `zone` accept dropped files: `onDrop(dataTransfer)` is called synchronously inside the drop
 * handler (file-system entries vanish after it returns).
 */
export function dropTarget(zone, onDrop) {
  zone.addEventListener('dragover', (e) => {
    e.preventDefault();
    e.stopPropagation();
    e.dataTransfer.dropEffect = 'copy';
    zone.classList.add('over');
  });
  zone.addEventListener('dragleave', () => zone.classList.remove('over'));
  zone.addEventListener('drop', (e) => {
    e.preventDefault();
    e.stopPropagation();
    zone.classList.remove('over');
    onDrop(e.dataTransfer);
  });
}

/** Save `bytes` as a download called `name`. */
export function download(bytes, name) {
  const url = URL.createObjectURL(new Blob([bytes], { type: 'application/octet-stream' }));
  const a = el('a', { href: url, download: name });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}
