#!/usr/bin/env python3
"""Run the hostile-input corpus through the native CLI, one process per file.

Each file goes through `headtune check --json FILE` (images are decoded, model and project files
parsed and validated) in its own process, so that for every file we know:
  - it did not crash (a Rust panic exits 101; a signal is a crash too),
  - it did not hang (killed after --timeout seconds),
  - its peak memory (ru_maxrss from wait4) stayed under --rss-limit-mb, and for decoded images
    under the decoder's own estimate (what the CLI reserves from its shared budget) plus the file
    and the process's baseline,
  - the outcome matches the manifest: accepted (with the right size/kind) or refused with the
    expected error code and a plain message (no decoder internals).

Writes OUT/native.json (per file) and prints the counts table (markdown) for README.
Usage: python3 tests/hostile/run.py --bin target/debug/headtune --corpus DIR [--jobs 2]
"""

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

# Decoder internals must not reach users: the plain message says what to do, `detail` keeps these.
INTERNALS = re.compile(r"Format error|I/O error|IoErrors|DecodeErrors|Decoding error|\bJpeg\b|\bPng\b|unreachable|panicked")
SPECIFIC = {"EmptyFile", "UnsupportedFormat", "TooLarge", "NoPixels", "Corrupt", "MemoryLimit", "ModelFile", "Io"}


def run_one(bin_path, corpus, entry, timeout):
    path = os.path.join(corpus, entry["path"])
    started = time.monotonic()
    proc = subprocess.Popen([bin_path, "check", "--json", path], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    killed = []

    def kill():
        killed.append(True)
        proc.send_signal(signal.SIGKILL)

    timer = threading.Timer(timeout, kill)
    timer.start()
    out_chunks, err_chunks = [], []
    readers = [threading.Thread(target=lambda: out_chunks.append(proc.stdout.read())),
               threading.Thread(target=lambda: err_chunks.append(proc.stderr.read()))]
    for r in readers:
        r.start()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    timer.cancel()
    for r in readers:
        r.join()
    return {
        "path": entry["path"],
        "group": entry["group"],
        "rc": proc.returncode,
        "hung": bool(killed),
        "rss_kb": usage.ru_maxrss,
        "ms": round((time.monotonic() - started) * 1000),
        "stdout": b"".join(out_chunks).decode("utf-8", "replace"),
        "stderr": b"".join(err_chunks).decode("utf-8", "replace")[-2000:],
    }


def judge(entry, r, rss_limit_kb, baseline_kb):
    """Fill r["outcome"], r["code"] and r["problems"] (empty = as required)."""
    problems = []
    r["outcome"], r["code"] = "crash", None
    if r["hung"]:
        r["outcome"] = "hang"
        problems.append("hung (killed after the timeout)")
    elif r["rc"] not in (0, 1):
        problems.append(f"crashed: exit {r['rc']}: {r['stderr'][-300:]}")
    else:
        lines = [l for l in r["stdout"].splitlines() if l.strip()]
        if len(lines) != 1:
            problems.append(f"expected one JSON line, got {len(lines)}: {r['stdout'][:300]}")
        else:
            v = json.loads(lines[0])
            if "error" in v:
                r["outcome"], r["code"], r["message"] = "rejected", v.get("code"), v["error"]
            else:
                r["outcome"], r["kind"] = "accepted", v.get("kind")
                r["width"], r["height"], r["estimate"] = v.get("width"), v.get("height"), v.get("decodeMemory")
    if r["rss_kb"] > rss_limit_kb:
        problems.append(f"peak memory {r['rss_kb'] // 1024} MB above the {rss_limit_kb // 1024} MB limit")
    if r["outcome"] == "accepted" and r.get("estimate") is not None:
        # The decoder's estimate is what the CLI reserves: the real peak must stay within it.
        bound_kb = baseline_kb + entry["bytes"] // 1024 + r["estimate"] * 11 // 10 // 1024 + 16 * 1024
        if r["rss_kb"] > bound_kb:
            problems.append(f"peak memory {r['rss_kb'] // 1024} MB above the estimate's bound {bound_kb // 1024} MB")
    expect = entry["expect"]
    if r["outcome"] == "rejected":
        if r["code"] not in SPECIFIC:
            problems.append(f"unspecific error code {r['code']}: {r.get('message')}")
        if INTERNALS.search(r.get("message", "")):
            problems.append(f"decoder internals in the message: {r['message'][:200]}")
        if len(r.get("message", "")) > entry.get("max_message", 2000):
            problems.append(f"message of {len(r['message'])} characters")
    if expect == "ok":
        if r["outcome"] != "accepted":
            problems.append(f"expected to be accepted, got {r['outcome']} {r.get('code')}: {r.get('message', '')[:200]}")
        elif "width" in entry and (r.get("width"), r.get("height")) != (entry["width"], entry["height"]):
            problems.append(f"decoded {r.get('width')}×{r.get('height')}, expected {entry['width']}×{entry['height']}")
        elif "kind" in entry and r.get("kind") != entry["kind"]:
            problems.append(f"read as {r.get('kind')}, expected {entry['kind']}")
    elif expect == "error":
        if r["outcome"] != "rejected":
            problems.append(f"expected an error, got {r['outcome']}")
        else:
            if "code" in entry and r["code"] != entry["code"]:
                problems.append(f"expected code {entry['code']}, got {r['code']}: {r['message'][:200]}")
            if entry.get("message") and not re.search(entry["message"], r["message"]):
                problems.append(f"message does not match /{entry['message']}/: {r['message'][:300]}")
    elif expect == "any" and r["outcome"] == "accepted" and r.get("width") is not None:
        if max(r["width"], r["height"]) > 16384:
            problems.append(f"accepted an image of {r['width']}×{r['height']}")
    r["problems"] = problems
    return r


def table(results, title, rss_field="rss_kb", rss_name="peak RSS"):
    groups = {}
    for r in results:
        g = groups.setdefault(r["group"], {"n": 0, "accepted": 0, "rejected": 0, "crash": 0, "hang": 0, "failed": 0,
                                           "rss": 0, "codes": {}})
        g["n"] += 1
        g[r["outcome"]] = g.get(r["outcome"], 0) + 1
        if r["outcome"] == "rejected":
            g["codes"][r["code"]] = g["codes"].get(r["code"], 0) + 1
        g["failed"] += bool(r["problems"])
        g["rss"] = max(g["rss"], r.get(rss_field) or 0)
    lines = [f"{title}", "",
             f"| group | files | accepted | refused (by error) | crashes | hangs | max {rss_name} | failed checks |",
             "|---|---|---|---|---|---|---|---|"]
    total = {"n": 0, "accepted": 0, "rejected": 0, "crash": 0, "hang": 0, "failed": 0, "rss": 0}
    for name, g in groups.items():
        codes = ", ".join(f"{c} {n}" for c, n in sorted(g["codes"].items(), key=lambda kv: -kv[1]))
        lines.append(f"| {name} | {g['n']} | {g['accepted']} | {g['rejected']}{f' ({codes})' if codes else ''} | "
                     f"{g['crash']} | {g['hang']} | {g['rss'] // 1024} MB | {g['failed']} |")
        for k in total:
            total[k] = max(total[k], g[k]) if k == "rss" else total[k] + g[k]
    lines.append(f"| **all** | {total['n']} | {total['accepted']} | {total['rejected']} | {total['crash']} | "
                 f"{total['hang']} | {total['rss'] // 1024} MB | {total['failed']} |")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds per file (the machine may be busy)")
    ap.add_argument("--rss-limit-mb", type=int, default=800)
    args = ap.parse_args()
    manifest = json.load(open(os.path.join(args.corpus, "manifest.json")))
    entries = manifest["entries"]

    # The process's own footprint: `check` on an empty file.
    empty = os.path.join(args.corpus, "baseline-empty.png")
    open(empty, "wb").close()
    baseline = run_one(args.bin, args.corpus, {"path": "baseline-empty.png", "group": "-"}, args.timeout)["rss_kb"]

    with ThreadPoolExecutor(args.jobs) as pool:
        raw = list(pool.map(lambda e: run_one(args.bin, args.corpus, e, args.timeout), entries))
    results = [judge(e, r, args.rss_limit_mb * 1024, baseline) for e, r in zip(entries, raw)]
    for r in results:
        del r["stdout"]
    with open(os.path.join(args.corpus, "native.json"), "w") as f:
        json.dump({"baseline_rss_kb": baseline, "results": results}, f, indent=1)
    print(table(results, f"Native CLI (`headtune check`, one process per file; baseline RSS {baseline // 1024} MB):"))
    failures = [r for r in results if r["problems"]]
    for r in failures[:40]:
        print(f"FAIL {r['path']}: {'; '.join(r['problems'])}")
    if failures:
        print(f"{len(failures)} of {len(results)} files failed their checks")
        sys.exit(1)
    print(f"all {len(results)} files as required")


if __name__ == "__main__":
    main()
