#!/usr/bin/env python3
"""Native embedding speed, headtune against ONNX Runtime on the same network (benchmark, not a
test; not part of tests/run.sh).

headtune: the release CLI's `headtune bench --json --embed-only` (its CPU kernels; it measures
1 thread and all threads itself). ONNX Runtime: its Python package (CPU execution provider) on
tests/browser/peer/export_onnx.py's export of the same compact weights (BN folded, TF SAME
padding as explicit pads, ReLU6 as Clip, global average pool). Both time the network alone on a
ready 1×3×224×224 / 16×3×224×224 f32 input: no decoding, no preprocessing; ORT's per-call input
binding and output copy are inside its timing.

Rounds are interleaved — per round and batch: headtune (1 thread, all threads), then ORT
(1 thread, all threads) — after a warm-up, each setting runs whole batches for at least
--min-time seconds per round, and each figure is the median over rounds; the per-round ratios
show how much the machine's load moved them. CPU time per image (all threads, process CPU
clock) is reported next to wall time. Host load (/proc/loadavg) is printed before and after.

Correctness: both embed tests/fixtures/chelsea.input.npy (the reference input tensor);
`headtune embed --tensor` against ORT's output, max |Δ| and cosine of the 1280 pooled values.

Usage: python3 tests/bench/native_peers.py [--cli target/release/headtune] [--rounds 5]
           [--min-time 1] [--batches 1,16] [--threads N] [--json]
Needs: `cargo build --release --bin headtune`; `pip install onnxruntime onnx` (onnx only to export
the model when target/peer/efficientnet_lite0.onnx is missing).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "../.."))
ONNX_MODEL = os.path.join(ROOT, "target/peer/efficientnet_lite0.onnx")
INPUT = os.path.join(ROOT, "tests/fixtures/chelsea.input.npy")


def loadavg():
    with open("/proc/loadavg") as f:
        return f.read().strip()


def ensure_model():
    if not os.path.exists(ONNX_MODEL):
        subprocess.run([sys.executable, os.path.join(ROOT, "tests/browser/peer/export_onnx.py"), "--out", ONNX_MODEL],
                       check=True)


def ort_session(threads):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(ONNX_MODEL, opts, providers=["CPUExecutionProvider"])


def time_ort(session, x, min_time):
    """(images/s, CPU ms per image) of whole runs on `x` for at least `min_time` seconds."""
    name = session.get_inputs()[0].name
    images, t, c = 0, time.perf_counter(), time.process_time()
    while images == 0 or time.perf_counter() - t < min_time:
        session.run(None, {name: x})
        images += x.shape[0]
    wall, cpu = time.perf_counter() - t, time.process_time() - c
    return images / wall, cpu * 1e3 / images


def headtune_round(cli, batch, threads, min_time):
    """{threads: (images/s, CPU ms per image)} from one `headtune bench` run (1 and all threads)."""
    out = subprocess.run([cli, "--threads", str(threads), "bench", "--json", "--embed-only", "--rounds", "1",
                          "--min-time", str(min_time), "--batches", str(batch)],
                         check=True, capture_output=True, text=True).stdout
    report = json.loads(out)
    return report, {e["threads"]: (e["images_per_s"], e["cpu_ms_per_image"]) for e in report["embed"]}


def agreement(cli):
    """max |Δ| and cosine of headtune's and ORT's embeddings of the reference input."""
    out = subprocess.run([cli, "embed", "--json", "--tensor", INPUT], check=True, capture_output=True, text=True).stdout
    h = np.array(json.loads(out.splitlines()[0])["embedding"], dtype=np.float64)
    x = np.load(INPUT).astype(np.float32)
    session = ort_session(1)
    o = session.run(None, {session.get_inputs()[0].name: x})[0][0].astype(np.float64)
    return {"max_abs": float(np.abs(h - o).max()), "cosine": float(h @ o / np.linalg.norm(h) / np.linalg.norm(o)),
            "values": int(h.size)}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cli", default=os.path.join(ROOT, "target/release/headtune"))
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--min-time", type=float, default=1.0)
    p.add_argument("--batches", default="1,16")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="'all threads' (default: every core)")
    p.add_argument("--json", action="store_true")
    a = p.parse_args()
    if not os.access(a.cli, os.X_OK):
        sys.exit(f"no headtune CLI at {a.cli}: build it with `cargo build --release --bin headtune` or pass --cli")
    try:
        import onnxruntime as ort
    except ImportError:
        sys.exit("needs ONNX Runtime: pip install onnxruntime onnx")
    ensure_model()
    batches = [int(b) for b in a.batches.split(",")]
    thread_counts = sorted({1, a.threads})
    x = np.load(INPUT).astype(np.float32)
    inputs = {b: np.ascontiguousarray(np.repeat(x, b, axis=0)) for b in batches}
    sessions = {n: ort_session(n) for n in thread_counts}

    load_before = loadavg()
    check = agreement(a.cli)
    # Warm-up: ORT's first runs allocate its arena and pack weights; headtune warms up inside
    # every `bench` run itself (two untimed passes per setting).
    for n in thread_counts:
        for b in batches:
            time_ort(sessions[n], inputs[b], 0.3)
    rounds = {(e, n, b): [] for e in ("headtune", "ort") for n in thread_counts for b in batches}
    backend = None
    for r in range(a.rounds):
        for b in batches:
            report, h = headtune_round(a.cli, b, a.threads, a.min_time)
            backend = report["backends"][0]
            for n in thread_counts:
                rounds[("headtune", n, b)].append(h[n])
            for n in thread_counts:
                rounds[("ort", n, b)].append(time_ort(sessions[n], inputs[b], a.min_time))
        if not a.json:
            print(f"round {r + 1}/{a.rounds} done", file=sys.stderr)
    load_after = loadavg()

    rows = []
    for n in thread_counts:
        for b in batches:
            h, o = rounds[("headtune", n, b)], rounds[("ort", n, b)]
            per_round = [hi[0] / oi[0] for hi, oi in zip(h, o)]
            rows.append({
                "threads": n, "batch": b,
                "headtune_images_per_s": statistics.median(v[0] for v in h),
                "headtune_cpu_ms_per_image": statistics.median(v[1] for v in h),
                "ort_images_per_s": statistics.median(v[0] for v in o),
                "ort_cpu_ms_per_image": statistics.median(v[1] for v in o),
                "ratio": statistics.median(v[0] for v in h) / statistics.median(v[0] for v in o),
                "ratio_per_round": per_round,
                "headtune_rounds": [v[0] for v in h], "ort_rounds": [v[0] for v in o],
            })
    result = {"headtune": backend, "onnxruntime": ort.__version__, "rounds": a.rounds, "min_time_s": a.min_time,
              "load_before": load_before, "load_after": load_after, "agreement": check, "rows": rows}
    if a.json:
        print(json.dumps(result))
        return
    print(f"headtune {backend} ({a.cli}) vs ONNX Runtime {ort.__version__} (CPU EP, {ONNX_MODEL})")
    print(f"{a.rounds} interleaved rounds of ≥ {a.min_time} s per setting, medians; host load before: {load_before}; after: {load_after}")
    print("threads  batch   headtune img/s (CPU ms/img)   ORT img/s (CPU ms/img)   headtune ÷ ORT (per round: min–max)")
    for r in rows:
        print(f"{r['threads']:>7}  {r['batch']:>5}   {r['headtune_images_per_s']:>14.1f} ({r['headtune_cpu_ms_per_image']:6.1f})"
              f"   {r['ort_images_per_s']:>9.1f} ({r['ort_cpu_ms_per_image']:6.1f})"
              f"   {r['ratio']:.2f} ({min(r['ratio_per_round']):.2f}–{max(r['ratio_per_round']):.2f})")
    by = {(r["threads"], r["batch"]): r for r in rows}
    if len(thread_counts) > 1:
        for b in batches:
            one, all_ = by[(1, b)], by[(a.threads, b)]
            print(f"batch {b}: {a.threads} threads ÷ 1 thread: headtune "
                  f"{all_['headtune_images_per_s'] / one['headtune_images_per_s']:.2f}×, "
                  f"ORT {all_['ort_images_per_s'] / one['ort_images_per_s']:.2f}×")
    print(f"agreement on tests/fixtures/chelsea.input.npy ({check['values']} values): "
          f"max |Δ| {check['max_abs']:.2e}, cosine {check['cosine']:.7f}")


if __name__ == "__main__":
    main()
