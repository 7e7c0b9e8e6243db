#!/usr/bin/env bash
# Data-parallel scaling on the CPU: one process using every core against N Gloo ranks
# (`stoch train --nproc N`) with one core each, on configs/bench/lm_tiny_cpu.yaml with the same
# global batch (16 sequences: one micro-batch of 16 against N ranks of 16/N), so both do the
# same arithmetic per step. Prints tokens/s of each and their ratio (ranks / one process), and
# for scale one process on one core (perfect scaling: ranks = N x that).
#
# Env: NPROC (default: nproc), STEPS (60) timed steps, WARMUP (5) untimed steps,
#      STOCH (build/stoch) the binary to time.
# About a minute on 2 cores. Other load on the machine skews both numbers: the load average is
# printed next to them.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

nproc_="${NPROC:-$(nproc)}"
steps="${STEPS:-60}"
warmup="${WARMUP:-5}"
stoch="${STOCH:-build/stoch}"
batch=16
config=configs/bench/lm_tiny_cpu.yaml

venv="$(scripts/setup | tail -n 1)"
py="$venv/bin/python"
[ -x "$stoch" ] || { echo "ddp_cpu: no stoch binary at $stoch (build first)" >&2; exit 1; }
((batch % nproc_ == 0)) || { echo "ddp_cpu: NPROC must divide the batch of $batch" >&2; exit 2; }

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# shellcheck source=bench/lib.sh
source "$root/bench/lib.sh"

# time_run LABEL THREADS [stoch train args]...: median tokens/s of one run.
time_run() {
  local label="$1" threads="$2"
  shift 2
  echo "ddp_cpu: $label, $((warmup + steps)) steps" >&2
  if ! OMP_NUM_THREADS="$threads" MKL_NUM_THREADS="$threads" "$stoch" train "$config" \
      --run-dir "$tmp/$label" --set "train.steps=$((warmup + steps))" --set log.every=5 \
      --set log.tensorboard=false "$@" >"$tmp/$label.log" 2>&1; then
    tail -n 30 "$tmp/$label.log" >&2
    echo "ddp_cpu: stoch failed on $label" >&2
    exit 1
  fi
  median_train_tps "$tmp/$label/metrics.jsonl" "$warmup"
}

load_start="$(cut -d ' ' -f 1-3 /proc/loadavg)"
one="$(time_run one-process "$nproc_" --set "run.threads=$nproc_" --set "train.batch_size=$batch")"
single="$(time_run one-core 1 --set run.threads=1 --set "train.batch_size=$batch")"
ranks="$(time_run ranks 1 --nproc "$nproc_" --set "run.threads=$nproc_" \
  --set "train.batch_size=$((batch / nproc_))")"
grep -o 'all-reduced in [0-9]* buckets' "$tmp/ranks.log" | head -n 1 | sed 's/^/ddp_cpu: /' >&2 || true

echo
echo "$(machine_of "$tmp/one-process.log"); lm_tiny_cpu, global batch $batch x 128 tokens;" \
  "median tokens/s over $steps steps;" \
  "load average at start $load_start, at end $(cut -d ' ' -f 1-3 /proc/loadavg)"
echo
echo "| setup | tokens/s |"
echo "|---|---|"
echo "| 1 process, $nproc_ threads | $one |"
echo "| 1 process, 1 thread | $single |"
echo "| $nproc_ Gloo ranks, 1 thread each | $ranks |"
echo
echo "ratio (ranks / one process, $nproc_ threads): $("$py" -c "print(f'{$ranks / $one:.2f}')")"
echo "scaling (ranks / one core): $("$py" -c "print(f'{$ranks / $single:.2f}')") of $nproc_"
