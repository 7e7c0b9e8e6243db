#!/usr/bin/env python3
"""Plots metrics of one or more runs against the training step, from RUN_DIR/metrics.jsonl.

  plot_metrics.py RUN_DIR... [--labels LABEL...] --metrics NAME... [--dashed NAME...]
                  [--split diag] --out FILE.png [--title T] [--ylabel Y] [--logy]

Solid lines for --metrics, dashed lines for --dashed (references such as the exact entropy or
the Bayes surplus); one colour per metric and one line style per run. Writes FILE.png and
FILE.svg. Runs with the project's Python: $(scripts/setup)/bin/python.
"""
import argparse
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def read_series(run_dir, split, names):
    series = {n: ([], []) for n in names}
    path = os.path.join(run_dir, "metrics.jsonl")
    if not os.path.isfile(path):
        sys.exit(f"{path}: not found (is {run_dir} a run directory?)")
    with open(path) as f:
        for line_no, line in enumerate(f, 1):
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                sys.exit(f"{path}:{line_no}: not a JSON line")
            if row.get("split") != split:
                continue
            for n in names:
                if n in row:
                    series[n][0].append(row["step"])
                    series[n][1].append(row[n])
    return series


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", help="run directories")
    ap.add_argument("--labels", nargs="*", default=[], help="one per run (default: folder names)")
    ap.add_argument("--metrics", nargs="+", required=True)
    ap.add_argument("--dashed", nargs="*", default=[])
    ap.add_argument("--split", default="diag")
    ap.add_argument("--out", required=True)
    ap.add_argument("--title", default="")
    ap.add_argument("--ylabel", default="")
    ap.add_argument("--logy", action="store_true")
    ap.add_argument("--min-step", type=int, default=0, help="leave out earlier steps")
    a = ap.parse_args()

    fig, ax = plt.subplots(figsize=(7, 4.2))
    styles = ["-", "-.", ":", (0, (5, 1))]
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    names = a.metrics + a.dashed
    if a.labels and len(a.labels) != len(a.runs):
        sys.exit(f"--labels: expected {len(a.runs)} labels, one per run, got {len(a.labels)}")
    for r, run_dir in enumerate(a.runs):
        label = a.labels[r] if a.labels else os.path.basename(os.path.normpath(run_dir))
        series = read_series(run_dir, a.split, names)
        for m, name in enumerate(names):
            steps, values = series[name]
            kept = [(s, v) for s, v in zip(steps, values) if s >= a.min_step]
            steps, values = [s for s, _ in kept], [v for _, v in kept]
            if not steps:
                sys.exit(f"{run_dir}: no {a.split} values of {name}")
            dashed = name in a.dashed
            style = "--" if dashed else styles[r % len(styles)]
            tag = name if len(a.runs) == 1 else f"{label}: {name}"
            ax.plot(steps, values, linestyle=style, color=colours[m % len(colours)],
                    marker=None if dashed else "o", markersize=3, label=tag)
    ax.set_xlabel("step")
    if a.ylabel:
        ax.set_ylabel(a.ylabel)
    if a.logy:
        ax.set_yscale("log")
    if a.title:
        ax.set_title(a.title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    stem = os.path.splitext(a.out)[0]
    fig.savefig(stem + ".png", dpi=120)
    fig.savefig(stem + ".svg")
    print(f"wrote {stem}.png and {stem}.svg")


if __name__ == "__main__":
    main()
