"""fp32 matrix-product ceiling of this machine through LibTorch (MKL on the CPU), the number
to set run.peak_tflops to for a CPU run's mfu. Prints GFLOP/s for square products of a few
sizes, median of repeats.

Usage: $(scripts/setup | tail -n 1)/bin/python bench/gemm_peak.py [THREADS]   (default: every core)
"""
import os
import statistics
import sys
import time

import torch

threads = int(sys.argv[1]) if len(sys.argv) > 1 else os.cpu_count()
torch.set_num_threads(threads)
print(f"gemm_peak: {threads} threads, torch {torch.__version__}")
for n in (1024, 2048, 4096):
    a, b = torch.randn(n, n), torch.randn(n, n)
    for _ in range(2):
        a @ b
    times = []
    for _ in range(5):
        t = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - t)
    print(f"{n:5d} x {n}: {2 * n**3 / statistics.median(times) / 1e9:.0f} GFLOP/s")
