// The framing control of the Add images panel: how each image becomes the network's square input
// (the engine's `crop`). Every image of a project must be framed the same way, so the choice is
// open while the project is empty and fixed once images are in it; `auto` is decided by the
// engine from the first image (whole image for grey-scale scans, centre crop for photos).

import * as engine from './engine.js';
import { byId } from './dom.js';
import { setError } from './state.js';

/** Words for the engine's crops (the select's options carry the same values). */
const WORDS = {
  auto: 'chosen automatically',
  center: 'the centre crop',
  full: 'the whole image, squeezed to a square',
  pad: 'the whole image, padded to a square',
};

export function mount(root, state) {
  const select = byId('framing', root);
  const note = byId('framing-note', root);

  select.addEventListener('change', async () => {
    // Read before any state change: rendering puts the select back to the engine's value.
    const crop = select.value;
    const s = state.get();
    if (s.busy || s.examples.length) {
      render(s);
      return;
    }
    setError(state, 'data', '');
    state.set({ busy: 'switching' });
    try {
      await engine.reframe(state, crop);
    } catch (e) {
      setError(state, 'data', `Could not change the framing: ${e.message}`);
    } finally {
      state.set({ busy: null });
    }
  });

  const render = (s) => {
    const crop = s.features.crop;
    if (crop && select.value !== crop) select.value = crop;
    const fixed = s.examples.length > 0;
    select.disabled = !!s.busy || fixed;
    if (!crop) note.textContent = '';
    else if (fixed) note.textContent = `Fixed for this project: its images are framed as ${WORDS[crop] ?? crop}. Start a new project (Keep) to change it.`;
    else if (crop === 'auto') note.textContent = 'Grey-scale scans (X-rays, MRI) are used whole, photos centre-cropped; decided by the first image added.';
    else note.textContent = `Every image will be framed as ${WORDS[crop] ?? crop}.`;
  };
  state.subscribe(['features', 'examples', 'busy'], render);
  render(state.get());
}
