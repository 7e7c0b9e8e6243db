#!/usr/bin/env python3
"""Plots from `stoch compare`'s tables in FOLDER: learning curves (curves.csv: the aggregate IQM
of each group against steps, with its 95% stratified bootstrap band), performance profiles
(profiles.csv: the fraction of runs better than each score, with bands) and aggregates
(aggregates.csv: IQM, median, mean and optimality gap with their intervals). Writes
curves/profiles/aggregates .png and .svg into FOLDER; a table that is absent is skipped."""
import argparse
import csv
import os
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")  # no display on servers and in tests
import matplotlib.pyplot as plt


def read(path):
    if not os.path.exists(path):
        return None
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def by_group(rows, x, ys):
    out = defaultdict(lambda: defaultdict(list))
    for row in rows:
        g = out[row["group"]]
        g[x].append(float(row[x]))
        for key in ys:
            g[key].append(float(row[key]))
        if "n" in row:
            g["n"] = int(row["n"])
    return out


def save(fig, folder, name):
    fig.tight_layout()
    for ext in ("png", "svg"):
        fig.savefig(os.path.join(folder, f"{name}.{ext}"), dpi=150)
    plt.close(fig)


def plot_curves(rows, folder, metric):
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for group, c in by_group(rows, "step", ("iqm", "ci_lo", "ci_hi")).items():
        (line,) = ax.plot(c["step"], c["iqm"], label=f"{group} (n={c['n']})")
        ax.fill_between(c["step"], c["ci_lo"], c["ci_hi"], color=line.get_color(), alpha=0.2)
    ax.set_xlabel("step")
    ax.set_ylabel(f"{metric} (IQM over runs, 95% CI)")
    ax.grid(alpha=0.3)
    if rows:
        ax.legend(fontsize="small")
    save(fig, folder, "curves")


def plot_profiles(rows, folder, metric, lower_is_better):
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for group, c in by_group(rows, "tau", ("fraction", "ci_lo", "ci_hi")).items():
        (line,) = ax.plot(c["tau"], c["fraction"], label=group)
        ax.fill_between(c["tau"], c["ci_lo"], c["ci_hi"], color=line.get_color(), alpha=0.2)
    ax.set_xlabel(f"{metric} threshold tau")
    ax.set_ylabel(f"fraction of runs with score {'<' if lower_is_better else '>'} tau")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    if rows:
        ax.legend(fontsize="small")
    save(fig, folder, "profiles")


def plot_aggregates(rows, folder, metric):
    stats = list(dict.fromkeys(row["statistic"] for row in rows))
    groups = list(dict.fromkeys(row["group"] for row in rows))
    fig, axes = plt.subplots(1, len(stats), figsize=(3.2 * len(stats), 0.5 * len(groups) + 1.5),
                             squeeze=False)
    for ax, stat in zip(axes[0], stats):
        for i, group in enumerate(groups):
            for row in rows:
                if row["group"] == group and row["statistic"] == stat:
                    lo, hi, v = float(row["ci_lo"]), float(row["ci_hi"]), float(row["value"])
                    ax.barh(i, hi - lo, left=lo, height=0.6, alpha=0.6, color=f"C{i}")
                    ax.plot([v, v], [i - 0.3, i + 0.3], color="k", linewidth=1.5)
        ax.set_title(stat.replace("_", " "))
        ax.set_yticks(range(len(groups)))
        ax.set_yticklabels(groups if ax is axes[0][0] else [""] * len(groups), fontsize="small")
        ax.grid(alpha=0.3, axis="x")
        ax.invert_yaxis()  # the first group on top, as in the tables
    fig.suptitle(f"{metric}: point estimate and 95% CI", fontsize="medium")
    save(fig, folder, "aggregates")


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("folder")
    parser.add_argument("--metric", default="value")
    parser.add_argument("--lower-is-better", action="store_true")
    args = parser.parse_args()
    curves = read(os.path.join(args.folder, "curves.csv"))
    if curves is not None:
        plot_curves(curves, args.folder, args.metric)
    profiles = read(os.path.join(args.folder, "profiles.csv"))
    if profiles is not None:
        plot_profiles(profiles, args.folder, args.metric, args.lower_is_better)
    aggregates = read(os.path.join(args.folder, "aggregates.csv"))
    if aggregates:
        plot_aggregates(aggregates, args.folder, args.metric)


if __name__ == "__main__":
    main()
