#!/usr/bin/env bash
# CPU training throughput of stoch's GPT against nanoGPT's training step in Python
# (bench/nanogpt_ref.py), both on the same LibTorch, for the tiny and small configs.
#
# Env: THREADS (default: nproc), STEPS_TINY (100), STEPS_SMALL (80) timed steps,
#      WARMUP (5) untimed steps, STOCH (build/stoch) the binary to time.
# About 3.5 minutes on 2 cores with the defaults. Prints a Markdown table on stdout;
# progress goes to stderr. ratio = stoch / nanoGPT (above 1: stoch is faster).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

threads="${THREADS:-$(nproc)}"
steps_tiny="${STEPS_TINY:-100}"
steps_small="${STEPS_SMALL:-80}"
warmup="${WARMUP:-5}"
stoch="${STOCH:-build/stoch}"

venv="$(scripts/setup | tail -n 1)"
py="$venv/bin/python"
[ -x "$stoch" ] || { echo "lm_throughput: no stoch binary at $stoch (build first)" >&2; exit 1; }

# OpenMP and MKL size their pools from these when the library loads, before either
# program can call set_num_threads, so both sides get them from here.
export OMP_NUM_THREADS="$threads" MKL_NUM_THREADS="$threads"

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# shellcheck source=bench/lib.sh
source "$root/bench/lib.sh"

# time_stoch NAME LABEL STEPS [--set KEY=VALUE]...: median tokens/s of one stoch run.
time_stoch() {
  local name="$1" label="$2" steps="$3"
  shift 3
  echo "lm_throughput: $label: stoch, $((warmup + steps)) steps" >&2
  if ! "$stoch" train "configs/bench/lm_${name}_cpu.yaml" --run-dir "$tmp/$label" \
      --set "train.steps=$((warmup + steps))" --set log.tensorboard=false "$@" >"$tmp/$label.log" 2>&1; then
    tail -n 30 "$tmp/$label.log" >&2
    echo "lm_throughput: stoch failed on $label" >&2
    exit 1
  fi
  median_train_tps "$tmp/$label/metrics.jsonl" "$warmup"
}

# run_config NAME STEPS BATCH NANOGPT-ARGS...
# stoch runs twice: as configured (one micro-batch of BATCH, kernels on every thread) and with
# the same BATCH sequences per step split into one micro-batch per thread, each computed by a
# single-threaded worker (train.cpu_workers).
run_config() {
  local name="$1" steps="$2" batch="$3"
  shift 3
  echo "lm_throughput: $name: nanoGPT reference, $steps steps, $threads threads" >&2
  local out ref
  out="$("$py" bench/nanogpt_ref.py "$@" --steps "$steps" --warmup "$warmup" --threads "$threads")"
  echo "$out" | sed 's/^/  /' >&2
  ref="$(echo "$out" | tail -n 1 | sed -n 's/^nanogpt tokens_per_s=\([0-9.]*\) .*/\1/p')"
  [ -n "$ref" ] || { echo "lm_throughput: cannot parse nanogpt_ref output" >&2; exit 1; }

  local ours
  ours="$(time_stoch "$name" "$name" "$steps")"
  echo "  stoch tokens_per_s=$ours" >&2
  rows+=("| $name | $ref | $ours | $("$py" -c "print(f'{$ours / $ref:.2f}')") |")
  if [ "$threads" -gt 1 ] && [ $((batch % threads)) -eq 0 ]; then
    ours="$(time_stoch "$name" "$name-workers" "$steps" --set "train.batch_size=$((batch / threads))" \
      --set "train.grad_accum=$threads" --set "train.cpu_workers=$threads")"
    echo "  stoch ($threads workers) tokens_per_s=$ours" >&2
    rows+=("| $name, $threads workers x $((batch / threads)) sequences | $ref | $ours | $("$py" -c "print(f'{$ours / $ref:.2f}')") |")
  fi
}

# Other processes on a 2-core box hurt multi-threaded runs far more than their share
# (OpenMP barriers wait for a descheduled thread), so record the load next to the table.
load_start="$(cut -d ' ' -f 1-3 /proc/loadavg)"
rows=()
run_config tiny "$steps_tiny" 16 --n-layer 4 --n-head 4 --n-embd 128 --block-size 128 \
  --batch-size 16 --vocab-size 256
run_config small "$steps_small" 8 --n-layer 6 --n-head 6 --n-embd 384 --block-size 256 \
  --batch-size 8 --vocab-size 256

echo
echo "CPU, $threads threads, median over timed steps;" \
  "load average at start $load_start, at end $(cut -d ' ' -f 1-3 /proc/loadavg)"
echo
echo "| config | nanoGPT tokens/s | stoch tokens/s | ratio |"
echo "|---|---|---|---|"
printf '%s\n' "${rows[@]}"
