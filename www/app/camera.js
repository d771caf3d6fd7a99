// The webcam: one stream for the whole page, shown in whichever panel asked for it last (a class
// card recording examples, or the Predict panel's live view). Frames leave as JPEG Files, so they
// take the same path as uploaded images.

import { el } from './dom.js';

const video = el('video', { playsInline: true, muted: true, className: 'camera-video', 'aria-label': 'Webcam preview' });
let stream = null;
/** Who holds the camera: an opaque key (e.g. "class:cats" or "predict"), or null. */
let owner = null;
/** Called when another panel takes the camera or it stops. */
let onLost = null;

/** Who holds the camera now. */
export const holder = () => owner;

/**
 * Start the camera (if needed) for `key`, show its preview in `slot`, and call `lost()` when
 * another panel takes it or it stops. Resolves to the <video>; rejects with a readable Error.
 */
export async function take(key, slot, lost) {
  if (owner !== key) {
    const previous = onLost;
    onLost = null;
    previous?.();
  }
  owner = key;
  onLost = lost;
  slot.append(video);
  if (!stream) {
    if (!navigator.mediaDevices?.getUserMedia) throw new Error('this browser gives the page no camera access');
    try {
      stream = await navigator.mediaDevices.getUserMedia({ video: { width: { ideal: 640 }, height: { ideal: 480 } }, audio: false });
    } catch (e) {
      release(key);
      throw new Error(e.name === 'NotAllowedError' ? 'camera permission was refused' : e.message);
    }
    video.srcObject = stream;
  }
  await video.play().catch(() => {});
  if (video.readyState < 2) await new Promise((resolve) => video.addEventListener('loadeddata', resolve, { once: true }));
  return video;
}

/** Give the camera back (stops it) if `key` holds it. */
export function release(key) {
  if (owner !== key) return;
  owner = null;
  onLost = null;
  stream?.getTracks().forEach((t) => t.stop());
  stream = null;
  video.srcObject = null;
  video.remove();
}

/** The current frame as a JPEG File (null if there is no frame). */
export function frame() {
  if (!stream || !video.videoWidth) return Promise.resolve(null);
  const canvas = document.createElement('canvas');
  canvas.width = video.videoWidth;
  canvas.height = video.videoHeight;
  canvas.getContext('2d').drawImage(video, 0, 0);
  const name = `camera-${new Date().toISOString().replace(/[:.]/g, '-')}.jpg`;
  return new Promise((resolve) => canvas.toBlob((b) => resolve(b && new File([b], name, { type: 'image/jpeg' })), 'image/jpeg', 0.9));
}

/**
 * Make `button` record while held (mouse, touch, Space or Enter): about five frames a second
 * go to `onFrames(files)` when it is released. `onCount(n)` reports progress.
 */
export function holdToRecord(button, { onFrames, onCount }) {
  let timer = null;
  let frames = [];
  let grabbing = Promise.resolve();
  const start = () => {
    if (timer || !stream) return;
    frames = [];
    const grab = () => {
      grabbing = frame().then((f) => {
        if (f) frames.push(f);
        onCount(frames.length);
      });
    };
    grab();
    timer = setInterval(grab, 200);
    button.classList.add('recording');
  };
  const stop = async () => {
    if (!timer) return;
    clearInterval(timer);
    timer = null;
    button.classList.remove('recording');
    // A frame being encoded still counts.
    await grabbing;
    const files = frames;
    frames = [];
    if (files.length) onFrames(files);
  };
  button.addEventListener('pointerdown', (e) => {
    button.setPointerCapture?.(e.pointerId);
    start();
  });
  for (const ev of ['pointerup', 'pointercancel', 'lostpointercapture', 'blur']) button.addEventListener(ev, stop);
  button.addEventListener('keydown', (e) => {
    if ((e.key === ' ' || e.key === 'Enter') && !e.repeat) {
      e.preventDefault();
      start();
    }
  });
  button.addEventListener('keyup', (e) => {
    if (e.key === ' ' || e.key === 'Enter') stop();
  });
}
