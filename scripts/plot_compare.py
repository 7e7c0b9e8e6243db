#!/usr/bin/env python3
"""Learning curves from `stoch compare`'s curves.csv: the IQM over seeds of each group with its
95% stratified bootstrap confidence band. Writes curves.png and curves.svg into --out."""
import argparse
import csv
import os
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")  # no display on servers and in tests
import matplotlib.pyplot as plt


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("curves_csv")
    parser.add_argument("--metric", default="value")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    curves = defaultdict(lambda: defaultdict(list))
    with open(args.curves_csv, newline="") as f:
        for row in csv.DictReader(f):
            curve = curves[row["group"]]
            curve["step"].append(int(row["step"]))
            for key in ("iqm", "ci_lo", "ci_hi"):
                curve[key].append(float(row[key]))
            curve["n"] = int(row["n"])

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for group, c in curves.items():
        (line,) = ax.plot(c["step"], c["iqm"], label=f"{group} (n={c['n']})")
        ax.fill_between(c["step"], c["ci_lo"], c["ci_hi"], color=line.get_color(), alpha=0.2)
    ax.set_xlabel("step")
    ax.set_ylabel(f"{args.metric} (IQM over seeds, 95% CI)")
    ax.grid(alpha=0.3)
    if curves:
        ax.legend(fontsize="small")
    fig.tight_layout()
    os.makedirs(args.out, exist_ok=True)
    for ext in ("png", "svg"):
        fig.savefig(os.path.join(args.out, f"curves.{ext}"), dpi=150)


if __name__ == "__main__":
    main()
