#!/usr/bin/env python3
"""Reference for headtune's head: scikit-learn logistic regression, stratified k-fold, on the
same embeddings headtune computes (`headtune embed --json DIR > emb.jsonl`).

Usage: python3 tests/bench/logreg_reference.py emb.jsonl [--folds 5]
The class of each image is the name of its parent folder. Prints accuracy, per-class recall and,
for two classes, ROC AUC — pooled over the out-of-fold predictions, like `headtune train --kfold`.
"""
import argparse
import json
import os

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, recall_score, roc_auc_score
from sklearn.model_selection import StratifiedKFold


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("embeddings")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    xs, ys = [], []
    for line in open(args.embeddings):
        rec = json.loads(line)
        if "embedding" not in rec:
            continue
        xs.append(rec["embedding"])
        ys.append(os.path.basename(os.path.dirname(rec["file"])))
    x = np.array(xs, dtype=np.float64)
    classes = sorted(set(ys))
    y = np.array([classes.index(c) for c in ys])
    probs = np.zeros((len(y), len(classes)))
    folds = StratifiedKFold(n_splits=args.folds, shuffle=True, random_state=args.seed)
    for train, test in folds.split(x, y):
        clf = LogisticRegression(max_iter=5000, class_weight="balanced")
        clf.fit(x[train], y[train])
        probs[test] = clf.predict_proba(x[test])
    pred = probs.argmax(1)
    out = {"n": len(y), "accuracy": accuracy_score(y, pred),
           "recall": dict(zip(classes, recall_score(y, pred, average=None).round(4).tolist()))}
    if len(classes) == 2:
        out["auc"] = roc_auc_score(y, probs[:, 1])
    print(json.dumps(out))


if __name__ == "__main__":
    main()
