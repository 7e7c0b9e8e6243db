"""Which LibTorch CPU operators round differently under each of LibTorch's kernel sets on this
machine (ATEN_CPU_CAPABILITY=default, avx2, avx512, where the CPU has them). Runs each operator
of a DQN update's loss on fixed inputs once per kernel set, in a child process of its own (the
set is fixed when LibTorch starts), and prints a fingerprint of the output bits per set: equal
fingerprints mean the sets round alike for that operator.

Usage: $(scripts/setup | tail -n 1)/bin/python bench/kernel_rounding.py
"""
import hashlib
import os
import subprocess
import sys

import torch


def fingerprints():
    torch.manual_seed(0)
    torch.set_num_threads(1)
    logits = torch.randn(32, 6, 51) * 3  # batch x actions x bins, as a categorical head's
    probs = torch.softmax(torch.randn(32, 51), -1)
    w, b, h = torch.randn(128, 400), torch.randn(128), torch.randn(32, 400)
    ops = {
        "softmax": lambda: torch.softmax(logits, -1),
        "log_softmax": lambda: torch.log_softmax(logits, -1),
        "sum of products (51)": lambda: (logits[:, 0] * probs).sum(-1),
        "sum (51)": lambda: logits.sum(-1),
        "exp": lambda: torch.exp(logits),
        "erf": lambda: torch.erf(logits),
        "linear 400 -> 128": lambda: torch.nn.functional.linear(h, w, b),
        "mse mean": lambda: ((logits - 0.5) ** 2).mean(),
    }
    for name, op in ops.items():
        bits = op().contiguous().numpy().tobytes()
        print(f"{name}\t{hashlib.sha1(bits).hexdigest()[:10]}")


def kernel_sets():
    flags = set()
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    sets = ["default"]
    if {"avx2", "fma"} <= flags:
        sets.append("avx2")
    if {"avx512f", "avx512bw", "avx512vl", "avx512dq"} <= flags:
        sets.append("avx512")
    return sets


if os.environ.get("KERNEL_ROUNDING_CHILD"):
    fingerprints()
    sys.exit(0)

columns = {}
for s in kernel_sets():
    env = dict(os.environ, ATEN_CPU_CAPABILITY=s, KERNEL_ROUNDING_CHILD="1")
    out = subprocess.run([sys.executable, __file__], env=env, check=True, capture_output=True,
                         text=True).stdout
    columns[s] = dict(line.split("\t") for line in out.splitlines())
sets = list(columns)
print(f"kernel_rounding: torch {torch.__version__}, kernel sets {', '.join(sets)}")
print(f"{'operator':<22}" + "".join(f"{s:>12}" for s in sets) + "  round alike")
for name in columns[sets[0]]:
    prints = [columns[s][name] for s in sets]
    groups = ["=".join(s for s in sets if columns[s][name] == p) for p in dict.fromkeys(prints)]
    alike = "all" if len(groups) == 1 else ", ".join(g for g in groups if "=" in g) or "none"
    print(f"{name:<22}" + "".join(f"{p:>12}" for p in prints) + f"  {alike}")
