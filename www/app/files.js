// Turning drops, pickers and pastes into "which images go to which class".
//
// A dropped folder of sub-folders gives one class per sub-folder; a dropped folder of images
// gives one class named after the folder; loose files go to the class the user chose.

/** Files the page hands to the engine; anything else is listed as rejected without reading it. */
const IMAGE_EXT = /\.(jpe?g|png|webp|gif|bmp|tiff?|ico|pnm|pbm|pgm|ppm|tga|avif|qoi)$/i;
const SKIP = /^(\.|__MACOSX$|Thumbs\.db$|desktop\.ini$)/i;
/** "img2" before "img10"; one collator, since localeCompare with options costs ~0.3 ms a call. */
const byName = new Intl.Collator(undefined, { numeric: true }).compare;

/** Is this file worth sending to the decoder? (The decoder still has the final word.) */
export function looksLikeImage(file) {
  return file.type.startsWith('image/') || IMAGE_EXT.test(file.name);
}

function readEntries(reader) {
  return new Promise((resolve, reject) => reader.readEntries(resolve, reject));
}

async function allEntries(dir) {
  const reader = dir.createReader();
  const out = [];
  // readEntries returns at most ~100 entries per call; loop until it returns none.
  for (;;) {
    const batch = await readEntries(reader);
    if (!batch.length) return out;
    out.push(...batch);
  }
}

function fileOf(entry) {
  return new Promise((resolve, reject) => entry.file(resolve, reject));
}

/** Every file under a directory entry, depth-first, sorted by name for a stable order. */
async function filesUnder(dir) {
  const entries = (await allEntries(dir)).filter((e) => !SKIP.test(e.name));
  entries.sort((a, b) => byName(a.name, b.name));
  const files = [];
  for (const e of entries) {
    if (e.isFile) files.push(await fileOf(e));
    else if (e.isDirectory) files.push(...(await filesUnder(e)));
  }
  return files;
}

/**
 * Group what a DataTransfer holds: `[{ label | null, files }]` (null = the chosen class).
 * Must be called synchronously inside the drop handler (entries vanish after it returns).
 */
export function groupsFromDrop(dataTransfer) {
  const entries = [];
  const loose = [];
  for (const item of dataTransfer.items ?? []) {
    if (item.kind !== 'file') continue;
    const entry = item.webkitGetAsEntry?.();
    if (entry) entries.push(entry);
    else {
      const f = item.getAsFile();
      if (f) loose.push(f);
    }
  }
  if (!entries.length && !loose.length) loose.push(...(dataTransfer.files ?? []));
  return (async () => {
    const groups = new Map();
    const add = (label, files) => {
      if (!files.length) return;
      const key = label ?? '\u0000';
      if (!groups.has(key)) groups.set(key, { label, files: [] });
      groups.get(key).files.push(...files);
    };
    add(null, loose);
    for (const entry of entries) {
      if (entry.isFile) {
        add(null, [await fileOf(entry)]);
        continue;
      }
      const children = (await allEntries(entry)).filter((e) => !SKIP.test(e.name));
      const subdirs = children.filter((e) => e.isDirectory);
      const files = children.filter((e) => e.isFile);
      if (subdirs.length) {
        // A dataset folder: one class per sub-folder; stray files at the top go to the chosen class.
        subdirs.sort((a, b) => byName(a.name, b.name));
        for (const d of subdirs) add(d.name, await filesUnder(d));
        add(null, await Promise.all(files.map(fileOf)));
      } else {
        add(entry.name, await filesUnder(entry));
      }
    }
    return [...groups.values()];
  })();
}

/**
 * Group the files of an `<input webkitdirectory>` by their relative path, with the same rules
 * as a drop: root/sub/x.png → class "sub"; root/x.png → class "root".
 */
export function groupsFromFolderInput(fileList) {
  const files = [...fileList].filter((f) => !f.webkitRelativePath.split('/').some((p) => SKIP.test(p)));
  const nested = files.some((f) => f.webkitRelativePath.split('/').length > 2);
  const groups = new Map();
  for (const f of files) {
    const parts = f.webkitRelativePath.split('/');
    let label = parts.length > 2 ? parts[1] : parts[0];
    if (nested && parts.length === 2) label = null;
    const key = label ?? '\u0000';
    if (!groups.has(key)) groups.set(key, { label, files: [] });
    groups.get(key).files.push(f);
  }
  for (const g of groups.values()) {
    g.files.sort((a, b) => byName(a.webkitRelativePath, b.webkitRelativePath));
  }
  return [...groups.values()].sort((a, b) => String(a.label).localeCompare(String(b.label)));
}

/** Image files on the clipboard of a paste event. */
export function filesFromPaste(event) {
  const out = [];
  for (const item of event.clipboardData?.items ?? []) {
    if (item.kind === 'file') {
      const f = item.getAsFile();
      if (f && looksLikeImage(f)) out.push(f.name && f.name !== 'image.png' ? f : new File([f], `pasted-${Date.now()}.png`, { type: f.type }));
    }
  }
  return out;
}
