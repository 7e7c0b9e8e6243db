#!/usr/bin/env python3
"""Print chosen metrics of one run as a Markdown table, one row per logged step.

usage: scripts/metrics_table.py RUN_DIR --split diag --metrics diag/kl diag/entropy [--every N]
"""
import argparse
import json
import sys


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir")
    ap.add_argument("--split", default="eval")
    ap.add_argument("--metrics", nargs="+", required=True)
    ap.add_argument("--every", type=int, default=1, help="keep steps divisible by this")
    ap.add_argument("--digits", type=int, default=4)
    args = ap.parse_args()

    rows = {}
    try:
        with open(f"{args.run_dir}/metrics.jsonl") as f:
            for line in f:
                r = json.loads(line)
                if r.get("split") == args.split:
                    rows.setdefault(r["step"], {}).update(r)
    except OSError as e:
        sys.exit(f"metrics_table: {e}")
    print("| step | " + " | ".join(args.metrics) + " |")
    print("|" + " --- |" * (len(args.metrics) + 1))
    for step in sorted(rows):
        if step % args.every:
            continue
        cells = [f"{rows[step][m]:.{args.digits}f}" if rows[step].get(m) is not None else "-"
                 for m in args.metrics]
        print(f"| {step} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
