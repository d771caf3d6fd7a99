// The TensorFlow.js peer of www/bench.html (not part of the product): EfficientNet-Lite0 built
// with TF.js ops from headtune's own compact weights (models/efficientnet_lite0.safetensors), so
// the speed comparison runs the same network with the same numbers on TF.js's wasm backend
// (XNNPACK).
//
// The graph is what crate/src/backbone.rs computes (facts: shared docs BACKBONE.md), in NHWC:
// BatchNorm is already folded into every convolution's bias; each conv is `tf.fused.conv2d` /
// `tf.fused.depthwiseConv2d` with bias and ReLU6 fused (what TF.js's converter produces for a
// Keras model, and what XNNPACK runs as one operator); `pad: 'same'` is TensorFlow's asymmetric
// SAME (before = total / 2, after = the rest), which these weights need; residual adds where
// stride is 1 and channels match; the embedding is the global average of the head's output.

/** IEEE half → float. */
function halfToFloat(h) {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 31) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

/**
 * The tensors of a safetensors file as `{ name: { shape, data: Float32Array } }` (int8 and f16
 * widened to f32; int8 tensors still unscaled), plus its metadata.
 */
function readSafetensors(buffer) {
  const view = new DataView(buffer);
  const headerLength = Number(view.getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(new Uint8Array(buffer, 8, headerLength)));
  const base = 8 + headerLength;
  const tensors = {};
  for (const [name, info] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    const [begin, end] = info.data_offsets;
    const bytes = buffer.slice(base + begin, base + end);
    let data;
    if (info.dtype === 'F32') data = new Float32Array(bytes);
    else if (info.dtype === 'F16') data = Float32Array.from(new Uint16Array(bytes), halfToFloat);
    else if (info.dtype === 'I8') data = Float32Array.from(new Int8Array(bytes));
    else throw new Error(`${name}: unexpected dtype ${info.dtype}`);
    tensors[name] = { shape: info.shape, data };
  }
  return { tensors, metadata: header.__metadata__ ?? {} };
}

/** A PyTorch-layout conv weight (OIHW, int8 rows scaled per output channel) as a TF filter. */
function filterOf(tensors, name, depthwise) {
  const w = tensors[`${name}.weight`];
  if (!w) throw new Error(`weights lack ${name}.weight`);
  const [o, i, kh, kw] = w.shape;
  const scale = tensors[`${name}.scale`]?.data;
  // Depthwise (C, 1, k, k) → [k, k, C, 1]; dense (O, I, k, k) → [k, k, I, O].
  const out = new Float32Array(o * i * kh * kw);
  for (let oc = 0; oc < o; oc++) {
    const s = scale ? scale[oc] : 1;
    for (let ic = 0; ic < i; ic++) {
      for (let y = 0; y < kh; y++) {
        for (let x = 0; x < kw; x++) {
          const v = w.data[((oc * i + ic) * kh + y) * kw + x] * s;
          const tap = y * kw + x;
          out[depthwise ? tap * o + oc : (tap * i + ic) * o + oc] = v;
        }
      }
    }
  }
  return { data: out, shape: depthwise ? [kh, kw, o, 1] : [kh, kw, i, o] };
}

/**
 * Build the network. `tf` is the TF.js namespace with its backend already set; `buffer` the
 * ArrayBuffer of the safetensors file. Returns `{ forward(x), dispose() }`: `forward` takes an
 * `[N, S, S, 3]` float32 tensor of `(v − 127) / 128` values and returns the `[N, 1280]`
 * embedding (call it inside `tf.tidy`).
 */
export function buildLite0(tf, buffer) {
  const { tensors, metadata } = readSafetensors(buffer);
  const arch = JSON.parse(metadata.arch ?? 'null');
  if (!arch || !Array.isArray(arch.stages)) throw new Error('weights lack the `arch` metadata (format headtune-efficientnet-lite/2)');
  const owned = [];
  const layer = (name, stride, depthwise, relu6) => {
    const f = filterOf(tensors, name, depthwise);
    const filter = tf.tensor4d(f.data, f.shape);
    const bias = tf.tensor1d(tensors[`${name}.bias`].data);
    owned.push(filter, bias);
    const activation = relu6 ? 'relu6' : 'linear';
    const op = depthwise ? tf.fused.depthwiseConv2d : tf.fused.conv2d;
    return (x) => op({ x, filter, bias, strides: [stride, stride], pad: 'same', activation });
  };
  const stem = layer('stem', 2, false, true);
  const blocks = [];
  let index = 0;
  for (const { repeats, stride, expand, cin, cout } of arch.stages) {
    for (let r = 0; r < repeats; r++) {
      const s = r === 0 ? stride : 1;
      const inChannels = r === 0 ? cin : cout;
      const name = `blocks.${index++}`;
      blocks.push({
        expand: expand === 1 ? null : layer(`${name}.expand`, 1, false, true),
        depthwise: layer(`${name}.depthwise`, s, true, true),
        project: layer(`${name}.project`, 1, false, false),
        residual: s === 1 && inChannels === cout,
      });
    }
  }
  const head = layer('head', 1, false, true);
  return {
    forward(input) {
      let x = stem(input);
      for (const b of blocks) {
        const skip = x;
        if (b.expand) x = b.expand(x);
        x = b.project(b.depthwise(x));
        if (b.residual) x = tf.add(x, skip);
      }
      return tf.mean(head(x), [1, 2]);
    },
    dispose() {
      for (const t of owned) t.dispose();
    },
  };
}
