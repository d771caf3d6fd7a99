// A large synthetic project for benchmarks and page tests, grown from a small real one without
// embedding anything. Self-contained (no imports, no closures) so that tests/bench/store.mjs can
// also run it inside a page from its source text.

/**
 * The bytes of a project file of `n` examples (two classes, alternating pairs), grown from the
 * bytes of a small project file `small` holding at least four examples with one view each: the
 * first four embeddings, copied with a little deterministic noise. The small project's other
 * metadata (features, settings, `extra`) is kept.
 */
export function growProject(small, n) {
  // The project file: magic, version, kind, reserved, meta_len, meta, blob_len, blob, crc32.
  const dv = new DataView(small.buffer, small.byteOffset, small.byteLength);
  const metaLen = dv.getUint32(12, true);
  const meta = JSON.parse(new TextDecoder().decode(small.subarray(16, 16 + metaLen)));
  const blobAt = 16 + metaLen + 8;
  const dim = meta.features.dim ?? 1280;
  const seeds = new Float32Array(small.buffer.slice(small.byteOffset + blobAt, small.byteOffset + blobAt + 4 * dim * 4));
  const examples = [];
  const blob = new Float32Array(n * dim);
  for (let i = 0; i < n; i++) {
    const k = i % 4;
    examples.push({ id: i, class: k < 2 ? 0 : 1, name: `image-${String(i).padStart(5, '0')}.png`, views: 1 });
    for (let j = 0; j < dim; j++) blob[i * dim + j] = seeds[k * dim + j] * (1 + 0.05 * Math.sin(i * 7.1 + j));
  }
  // No model: its weights would follow the embeddings in the blob.
  const big = { ...meta, examples, model: null };
  const metaBytes = new TextEncoder().encode(JSON.stringify(big));
  const bytes = new Uint8Array(16 + metaBytes.length + 8 + blob.byteLength + 4);
  bytes.set(small.subarray(0, 12));
  const w = new DataView(bytes.buffer);
  w.setUint32(12, metaBytes.length, true);
  bytes.set(metaBytes, 16);
  w.setBigUint64(16 + metaBytes.length, BigInt(blob.length), true);
  bytes.set(new Uint8Array(blob.buffer), 16 + metaBytes.length + 8);
  const table = Array.from({ length: 256 }, (_, c) => {
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  let c = 0xffffffff;
  for (let i = 0; i < bytes.length - 4; i++) c = table[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  w.setUint32(bytes.length - 4, (c ^ 0xffffffff) >>> 0, true);
  return bytes;
}
