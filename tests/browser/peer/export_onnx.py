#!/usr/bin/env python3
"""Export headtune's backbone (models/efficientnet_lite0.safetensors) to ONNX, for the speed
comparisons with ONNX Runtime Web (tests/browser/bench.mjs --peers / --ort) and native ONNX
Runtime (tests/bench/native_peers.py); both run it when the file is missing. Not part of the
product.

The graph is exactly what crate/src/backbone.rs computes: BN-folded convolutions with TF "SAME"
padding written out as explicit asymmetric `pads` (224×224 input), ReLU6 as Clip(0, 6),
residual adds, global average pool → the 1280-d embedding. Weights are dequantised to f32.

Usage: python3 tests/browser/peer/export_onnx.py [--out target/peer/efficientnet_lite0.onnx]
Needs: numpy, safetensors, onnx (pip install onnx).
"""
import argparse
import math
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from safetensors.numpy import load_file

STAGES = [(1, 3, 1, 1, 32, 16), (2, 3, 2, 6, 16, 24), (2, 5, 2, 6, 24, 40), (3, 3, 2, 6, 40, 80),
          (3, 5, 1, 6, 80, 112), (4, 5, 2, 6, 112, 192), (1, 3, 1, 6, 192, 320)]


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.abspath(os.path.join(here, "../../.."))
    p = argparse.ArgumentParser()
    p.add_argument("--weights", default=os.path.join(root, "models/efficientnet_lite0.safetensors"))
    p.add_argument("--out", default=os.path.join(root, "target/peer/efficientnet_lite0.onnx"))
    a = p.parse_args()
    t = load_file(a.weights)

    def weight(name):
        w = t[f"{name}.weight"]
        if w.dtype == np.int8:
            s = t[f"{name}.scale"].astype(np.float32)
            return w.astype(np.float32) * s.reshape((-1,) + (1,) * (w.ndim - 1))
        return w.astype(np.float32)

    nodes, inits = [], []
    inits.append(numpy_helper.from_array(np.array(0, np.float32), "zero"))
    inits.append(numpy_helper.from_array(np.array(6, np.float32), "six"))
    size = [224]
    counter = [0]

    def conv(x, name, k, stride, groups, relu6):
        h = size[0]
        out = math.ceil(h / stride)
        total = max((out - 1) * stride + k - h, 0)
        before, after = total // 2, total - total // 2
        inits.append(numpy_helper.from_array(weight(name), f"{name}.w"))
        inits.append(numpy_helper.from_array(t[f"{name}.bias"].astype(np.float32), f"{name}.b"))
        y = f"{name}.out"
        nodes.append(helper.make_node("Conv", [x, f"{name}.w", f"{name}.b"], [y], kernel_shape=[k, k],
                                      strides=[stride, stride], pads=[before, before, after, after], group=groups))
        size[0] = out
        if relu6:
            nodes.append(helper.make_node("Clip", [y, "zero", "six"], [f"{name}.act"]))
            return f"{name}.act"
        return y

    x = conv("input", "stem", 3, 2, 1, True)
    i = 0
    for reps, k, s, e, cin, cout in STAGES:
        for r in range(reps):
            stride, c_in = (s, cin) if r == 0 else (1, cout)
            inp = x
            if e != 1:
                x = conv(x, f"blocks.{i}.expand", 1, 1, 1, True)
            x = conv(x, f"blocks.{i}.depthwise", k, stride, c_in * e, True)
            x = conv(x, f"blocks.{i}.project", 1, 1, 1, False)
            if stride == 1 and c_in == cout:
                nodes.append(helper.make_node("Add", [x, inp], [f"blocks.{i}.sum"]))
                x = f"blocks.{i}.sum"
            i += 1
    x = conv(x, "head", 1, 1, 1, True)
    nodes.append(helper.make_node("GlobalAveragePool", [x], ["pooled4"]))
    nodes.append(helper.make_node("Flatten", ["pooled4"], ["embedding"], axis=1))
    graph = helper.make_graph(
        nodes, "efficientnet_lite0_headtune",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, 224, 224])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["N", 1280])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="headtune")
    model.ir_version = 8  # what ONNX Runtime (Web) of 2025–26 reads; opset 13 needs IR ≥ 7
    onnx.checker.check_model(model)
    os.makedirs(os.path.dirname(a.out), exist_ok=True)
    onnx.save(model, a.out)
    print(f"wrote {a.out} ({os.path.getsize(a.out)} bytes)")


if __name__ == "__main__":
    main()
