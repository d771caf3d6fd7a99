#!/usr/bin/env python3
"""Transfer benchmark: how well headtune's features and head do on images that are not photos,
per configuration (crop, pooling, backbone, input size, threshold rule), next to a scikit-learn
logistic regression on the same embeddings. Run through tests/bench/transfer.sh.

Protocol (the held-out check of issue 9, repeated): for each dataset and draw d = 0..D-1, a seeded
stratified random split puts `--test-fraction` of every class aside. For each configuration:
  * headtune: `headtune train` on the training part with the configuration's flags and seed d
    (defaults otherwise: validation inside the training part, refit on all of it, threshold chosen
    by the rule), then `headtune eval` of that model on the test part — the model's own threshold;
  * reference: logistic regression (C chosen by 5-fold CV on the training part, balanced class
    weights) on the same embeddings (`headtune embed`), threshold 0.5.
Per configuration and dataset it prints the mean over draws of ACC, AUC and (two classes)
sensitivity/specificity — with a 95 % t-interval of that mean over draws — the reference's ACC/AUC,
the paired difference of ACC/AUC to the baseline configuration (the first), and the embedding
time per image (wall and CPU, one `headtune embed` process over the dataset, batch 16).

The draws matter: TRANSFER-NOTES found the training sample moves results more than any setting,
so every configuration sees the same D splits and differences are read as paired.
"""
import argparse
import hashlib
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

import warnings

import numpy as np
from sklearn.linear_model import LogisticRegressionCV
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold

IMAGE_EXT = {".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp", ".tif", ".tiff", ".jfif"}

# name -> (flags for `headtune train` / `embed`, flags for `train` only)
CONFIGS = {
    "auto":              (["--crop", "auto"], []),
    "center":            (["--crop", "center"], []),
    "full":              (["--crop", "full"], []),
    "pad":               (["--crop", "pad"], []),
    "center multi":      (["--crop", "center", "--pooling", "multi"], []),
    "full multi":        (["--crop", "full", "--pooling", "multi"], []),
    "full avgmax":       (["--crop", "full", "--pooling", "avgmax"], []),
    "full lite0@288":    (["--crop", "full", "--input-size", "288"], []),
    "full lite1":        (["--crop", "full", "--backbone", "lite1"], []),
    "full lite2":        (["--crop", "full", "--backbone", "lite2"], []),
    "center lite2":      (["--crop", "center", "--backbone", "lite2"], []),
    "full thr=0.5":      (["--crop", "full"], ["--threshold", "0.5"]),
    "full sens≥0.95":    (["--crop", "full"], ["--target-sensitivity", "0.95"]),
    "full no-refit":     (["--crop", "full"], ["--no-refit"]),
}
QUICK = ["auto", "center", "full", "pad", "full multi", "full lite2", "full thr=0.5"]


def list_dataset(root):
    classes = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))
    files, labels = [], []
    for c, name in enumerate(classes):
        for dirpath, _, names in os.walk(os.path.join(root, name)):
            for f in sorted(names):
                if os.path.splitext(f)[1].lower() in IMAGE_EXT:
                    files.append(os.path.join(dirpath, f))
                    labels.append(c)
    return classes, files, np.array(labels)


def run(cmd):
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode not in (0, 1):
        sys.exit(f"{' '.join(cmd)} failed ({out.returncode}):\n{out.stderr[-2000:]}")
    return out.stdout


def spec_json(flags):
    """The FeatureSpec JSON headtune writes for these flags (as serde_json prints it)."""
    opts = dict(zip(flags[::2], flags[1::2]))
    backbone = opts.get("--backbone", "lite0")
    size = int(opts.get("--input-size", {"lite0": 224, "lite1": 240, "lite2": 260}[backbone]))
    return json.dumps({"backbone": f"efficientnet-{backbone}/imagenet/tf-same/v1", "inputSize": size,
                       "crop": opts.get("--crop", "auto"), "pooling": opts.get("--pooling", "avg")},
                      separators=(",", ":")).encode()


def embed_kfold(binary, flags, root, files, cache, repo):
    """`headtune train ROOT --kfold 5` (one embedding pass, filling the cache): its 5-fold
    metrics, the embeddings read back from the cache (key: sha256(sha256(spec ‖ sha256(weights))
    ‖ file bytes), as crate/src/cli/train.rs computes it), and (wall, cpu) seconds per image."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        out = run([binary, "train", root, "--kfold", "5", "--seed", "0", "--json", "--cache", cache,
                   "--out", os.path.join(tmp, "m.headtune"), *flags])
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    report = json.loads(out.strip().splitlines()[-1])["report"]
    opts = dict(zip(flags[::2], flags[1::2]))
    weights = open(os.path.join(repo, "models", f"efficientnet_{opts.get('--backbone', 'lite0')}.safetensors"), "rb").read()
    # `auto` is decided per dataset (center or full): the cache holds the concrete crop's entries.
    crop = opts.get("--crop", "auto")
    candidates = ["center", "full"] if crop == "auto" else [crop]
    rows = []
    for f in files:
        data = open(f, "rb").read()
        for c in candidates:
            spec = spec_json([*flags, "--crop", c])
            prefix = hashlib.sha256(spec + hashlib.sha256(weights).digest()).digest()
            key = hashlib.sha256(prefix + data).hexdigest()
            if os.path.exists(os.path.join(cache, key[:2], f"{key}.f32")):
                break
        # Cache entry: magic (8 bytes), view count, width, CRC-32 (u32 each), then the values.
        rows.append(np.fromfile(os.path.join(cache, key[:2], f"{key}.f32"), dtype="<f4", offset=20))
    return report, np.array(rows, dtype=np.float64), wall / len(files), cpu / len(files)


def split(labels, fraction, seed):
    rng = np.random.default_rng(seed)
    test = np.zeros(len(labels), bool)
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        rng.shuffle(idx)
        k = min(max(1, round(len(idx) * fraction)), len(idx) - 1)
        test[idx[:k]] = True
    return np.flatnonzero(~test), np.flatnonzero(test)


def link_folder(dst, classes, files, labels, idx):
    for c in classes:
        os.makedirs(os.path.join(dst, c), exist_ok=True)
    for i in idx:
        name = f"{i:05d}_{os.path.basename(files[i])}"
        os.symlink(os.path.abspath(files[i]), os.path.join(dst, classes[labels[i]], name))


def metrics(y, prob, threshold=None):
    """ACC (at `threshold` on class 1 for two classes, else argmax), AUC (macro one-vs-rest for
    more), sensitivity, specificity (two classes), macro recall."""
    k = prob.shape[1]
    if k == 2 and threshold is not None:
        pred = (prob[:, 1] >= threshold).astype(int)
    else:
        pred = prob.argmax(1)
    out = {"acc": float((pred == y).mean()),
           "recall": float(np.mean([(pred[y == c] == c).mean() for c in range(k)]))}
    if k == 2:
        out["auc"] = float(roc_auc_score(y, prob[:, 1]))
        out["sens"] = float((pred[y == 1] == 1).mean())
        out["spec"] = float((pred[y == 0] == 0).mean())
    else:
        out["auc"] = float(roc_auc_score(y, prob, multi_class="ovr", labels=list(range(k))))
    return out


warnings.filterwarnings("ignore", category=FutureWarning)


def logreg(x_train, y_train, x_test, seed):
    folds = min(5, int(np.bincount(y_train).min()))
    cv = StratifiedKFold(n_splits=max(2, folds), shuffle=True, random_state=seed)
    clf = LogisticRegressionCV(Cs=[0.01, 0.1, 1.0, 10.0], cv=cv, class_weight="balanced", max_iter=3000, scoring="neg_log_loss")
    clf.fit(x_train, y_train)
    return clf.predict_proba(x_test)


def headtune_run(binary, flags, train_flags, train_dir, test_dir, seed, cache, tmp):
    model = os.path.join(tmp, "model.headtune")
    out = run([binary, "train", train_dir, "--out", model, "--json", "--seed", str(seed), "--cache", cache, *flags, *train_flags])
    report = json.loads(out.strip().splitlines()[-1])
    ev = json.loads(run([binary, "eval", model, test_dir, "--json", "--cache", cache]).strip().splitlines()[-1])
    res = {"acc": ev["accuracy"], "recall": float(np.mean([c["recall"] for c in ev["per_class"].values()]))}
    if "auc" in ev:
        res.update(auc=ev["auc"], sens=ev["sensitivity"], spec=ev["specificity"], threshold=ev["threshold"])
    else:
        res["auc"] = ev.get("auc_macro", float("nan"))
    res["train_examples"] = report["report"]["trainExamples"]
    return res


def t_interval(values):
    v = np.asarray(values, float)
    if len(v) < 2:
        return float(v.mean()), float("nan")
    from scipy.stats import t
    half = t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v))
    return float(v.mean()), float(half)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--headtune", required=True)
    ap.add_argument("--datasets", required=True, help="folder with brain_tumor_mri/, blood_cells_wbc/ …")
    ap.add_argument("--names", default="brain_tumor_mri,blood_cells_wbc")
    ap.add_argument("--draws", type=int, default=5)
    ap.add_argument("--test-fraction", type=float, default=0.33)
    ap.add_argument("--configs", default="quick", help="quick, all, or a comma-separated list of names")
    ap.add_argument("--json", help="write every per-draw result here")
    args = ap.parse_args()
    names = list(CONFIGS) if args.configs == "all" else QUICK if args.configs == "quick" else args.configs.split(",")
    results = {}
    tmp_root = tempfile.mkdtemp(prefix="headtune-transfer-")
    try:
        for ds in args.names.split(","):
            root = os.path.join(args.datasets, ds)
            if not os.path.isdir(root):
                print(f"({ds}: not found, skipped)")
                continue
            classes, files, labels = list_dataset(root)
            cache = os.path.join(tmp_root, "cache")
            splits = [split(labels, args.test_fraction, d) for d in range(args.draws)]
            for d, (tr, te) in enumerate(splits):
                for part, idx in (("train", tr), ("test", te)):
                    link_folder(os.path.join(tmp_root, ds, str(d), part), classes, files, labels, idx)
            embeddings = {}
            repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
            for name in names:
                flags, train_flags = CONFIGS[name]
                key = tuple(flags)
                if key not in embeddings:
                    embeddings[key] = embed_kfold(args.headtune, flags, root, files, cache, repo)
                kfold, x, wall, cpu = embeddings[key]
                rows = []
                for d, (tr, te) in enumerate(splits):
                    base = os.path.join(tmp_root, ds, str(d))
                    h = headtune_run(args.headtune, flags, train_flags, os.path.join(base, "train"), os.path.join(base, "test"), d, cache, tmp_root)
                    lr = metrics(labels[te], logreg(x[tr], labels[tr], x[te], d), 0.5)
                    rows.append({"headtune": h, "logreg": lr})
                km = kfold["metrics"]
                results[(ds, name)] = {"rows": rows, "wall": wall, "cpu": cpu, "n": len(files), "k": len(classes),
                                       "kfold": {"acc": km["accuracy"], "auc": (km.get("binary") or {}).get("auc")}}
                print_row(ds, name, results, names[0])
                if args.json:
                    # After every configuration: a long run stopped early still leaves its results.
                    with open(args.json, "w") as f:
                        json.dump({f"{k[0]} | {k[1]}": v for k, v in results.items()}, f, indent=1)
            print()
            print_table({k: v for k, v in results.items() if k[0] == ds}, names)
    finally:
        shutil.rmtree(tmp_root, ignore_errors=True)


def fmt(values, scale=100, digits=1):
    m, h = t_interval(values)
    return f"{m * scale:.{digits}f} ± {h * scale:.{digits}f}"


def print_row(ds, name, results, baseline):
    r = results[(ds, name)]
    h = [row["headtune"] for row in r["rows"]]
    lr = [row["logreg"] for row in r["rows"]]
    print(f"{ds:16s} {name:16s} ACC {fmt([x['acc'] for x in h])}  AUC {fmt([x['auc'] for x in h], 1, 3)}  "
          f"LR ACC {fmt([x['acc'] for x in lr])}  5-fold {r['kfold']}", flush=True)


def print_table(results, names):
    """One markdown table: rows = dataset × configuration."""
    print("| dataset | configuration | ACC % | AUC | sens % | spec % | LR ACC % | LR AUC | ΔACC vs first | ΔAUC vs first | 5-fold ACC % / AUC | ms/image (wall / CPU) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for (ds, name), r in results.items():
        h = [row["headtune"] for row in r["rows"]]
        lr = [row["logreg"] for row in r["rows"]]
        base = results.get((ds, names[0]))
        two = r["k"] == 2
        auc = fmt([x['auc'] for x in h], 1, 3) if two else "—"  # `eval --json` has no multi-class AUC
        sens = fmt([x["sens"] for x in h]) if two else "—"
        spec = fmt([x["spec"] for x in h]) if two else "—"
        if base and name != names[0]:
            b = [row["headtune"] for row in base["rows"]]
            dacc = fmt([x["acc"] - y["acc"] for x, y in zip(h, b)])
            dauc = fmt([x["auc"] - y["auc"] for x, y in zip(h, b)], 1, 3) if two else "—"
        else:
            dacc = dauc = "—"
        print(f"| {ds} (n={r['n']}) | {name} | {fmt([x['acc'] for x in h])} | {auc} | {sens} | {spec} | "
              f"{fmt([x['acc'] for x in lr])} | {fmt([x['auc'] for x in lr], 1, 3)} | {dacc} | {dauc} | "
              f"{r['kfold']['acc'] * 100:.1f} / {r['kfold']['auc'] if r['kfold']['auc'] is None else format(r['kfold']['auc'], '.3f')} | "
              f"{r['wall'] * 1e3:.0f} / {r['cpu'] * 1e3:.0f} |")


if __name__ == "__main__":
    main()
