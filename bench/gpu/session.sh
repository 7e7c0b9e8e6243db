#!/usr/bin/env bash
# Everything a lent GPU machine is for, in one prepared run (about 6-8 minutes on an H100/H200):
# build + test suite + quickstart on CUDA (quickstart_cuda.sh), then the GPT-2 124M benchmark
# against the nanoGPT reference eager and compiled (gpt2_124m.sh). Results land in $OUT.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
out="${OUT:-/tmp/stoch-gpu}"
mkdir -p "$out"
OUT="$out" "$root/bench/gpu/quickstart_cuda.sh" 2>&1 | tee "$out/quickstart_cuda.txt"
OUT="$out/gpt2" SKIP_BUILD=1 "$root/bench/gpu/gpt2_124m.sh" 2>&1 | tee "$out/gpt2_124m.txt"
