#!/usr/bin/env python3
"""One Markdown table from several `stoch compare` outputs: a row per task (condition) and
label (for example the step the comparison was taken at), a column per group, each cell the
group's IQM on that task with its 95% interval.

usage: scripts/compare_table.py LABEL=DIR [LABEL=DIR ...] [--digits N] [--short-groups]

DIR is a `stoch compare --out` folder (its compare.csv is read)."""
import argparse
import csv
import os
import sys
from collections import OrderedDict


def fmt(x, digits):
    return f"{float(x):.{digits}g}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("tables", nargs="+", help="LABEL=DIR")
    ap.add_argument("--digits", type=int, default=3)
    ap.add_argument("--short-groups", action="store_true",
                    help="label groups by the value after the last '=' only")
    args = ap.parse_args()
    rows = OrderedDict()  # (task, label) -> {group: cell}
    groups = []
    for item in args.tables:
        label, sep, folder = item.partition("=")
        if not sep:
            sys.exit(f"compare_table: {item}: expected LABEL=DIR")
        path = os.path.join(folder, "compare.csv")
        try:
            with open(path, newline="") as f:
                for r in csv.DictReader(f):
                    group = r["group"].rsplit("=", 1)[-1] if args.short_groups else r["group"]
                    if group not in groups:
                        groups.append(group)
                    cell = (f"{fmt(r['iqm'], args.digits)} [{fmt(r['iqm_ci_lo'], args.digits)}, "
                            f"{fmt(r['iqm_ci_hi'], args.digits)}]")
                    rows.setdefault((r["task"], label), {})[group] = cell
        except (OSError, KeyError) as e:
            sys.exit(f"compare_table: {path}: {e}")
    print("| task | at | " + " | ".join(groups) + " |")
    print("| --- | --- |" + " --- |" * len(groups))
    for task in OrderedDict.fromkeys(t for t, _ in rows):
        for (t, label), cells in rows.items():
            if t == task:
                print(f"| {task} | {label} | " + " | ".join(cells.get(g, "") for g in groups) + " |")


if __name__ == "__main__":
    main()
