"""fp32 matrix-product ceiling of this machine through LibTorch (MKL on the CPU), the number
to set run.peak_tflops to for a CPU run's mfu. Prints GFLOP/s for square products of a few
sizes, median of repeats, then the four products of one MinAtar DQN update (batch 32, a
1024 -> 128 layer) and a 128-cube, timed one at a time (median of 500).

Usage: $(scripts/setup | tail -n 1)/bin/python bench/gemm_peak.py [THREADS]   (default: every core)
"""
import os
import statistics
import sys
import time

import torch

threads = int(sys.argv[1]) if len(sys.argv) > 1 else os.cpu_count()
torch.set_num_threads(threads)
print(f"gemm_peak: {threads} threads, torch {torch.__version__}, "
      f"CPU capability {torch.backends.cpu.get_cpu_capability()}")


def median_seconds(fn, warmup, repeats):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


for n in (1024, 2048, 4096):
    a, b = torch.randn(n, n), torch.randn(n, n)
    print(f"{n:5d} x {n}: {2 * n**3 / median_seconds(lambda: a @ b, 2, 5) / 1e9:.0f} GFLOP/s")

for m, k, n in ((32, 1024, 128), (1024, 32, 128), (32, 128, 1024), (128, 128, 128)):
    a, b, c = torch.randn(m, k), torch.randn(k, n), torch.empty(m, n)
    s = median_seconds(lambda: torch.mm(a, b, out=c), 50, 500)
    print(f"{m} x {k} x {n}: {s * 1e6:.1f} us, {2 * m * k * n / s / 1e9:.1f} GFLOP/s")
