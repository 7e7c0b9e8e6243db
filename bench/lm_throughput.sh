#!/usr/bin/env bash
# CPU training throughput of stoch's GPT against nanoGPT's training step in Python
# (bench/nanogpt_ref.py), both on the same LibTorch, for the tiny and small configs.
#
# Besides the default configuration, stoch runs with the other setting of its own switches (the
# attention kernel the default did not choose, and one single-threaded worker per core), so the
# table shows whether the default is the best of them on this CPU.
#
# Env: THREADS (default: nproc), STEPS_TINY (100), STEPS_SMALL (80) timed steps,
#      WARMUP (5) untimed steps, STOCH (build/stoch) the binary to time,
#      STOCH_CPU_ISA=portable|avx2|avx512 caps stoch's kernels at a lower clone.
# About 6 minutes on 2 cores with the defaults. Prints the CPU, its kernels' clone and a Markdown
# table on stdout; progress goes to stderr. ratio = stoch / nanoGPT (above 1: stoch is faster).
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
# program can call set_num_threads, so both sides get them from here; each is also told the
# count itself (stoch's run.threads: 0 would take every usable CPU whatever OMP_NUM_THREADS says).
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
      --set "train.steps=$((warmup + steps))" --set log.tensorboard=false \
      --set "run.threads=$threads" "$@" >"$tmp/$label.log" 2>&1; then
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

  # row LABEL TAG [--set ...]...: one stoch run against the reference.
  row() {
    local label="$1" tag="$2" ours
    shift 2
    ours="$(time_stoch "$name" "$name-$tag" "$steps" "$@")"
    [ "$tag" != default ] || label="$name (default: $(attention_line "$name"))"
    echo "  stoch ($label) tokens_per_s=$ours" >&2
    rows+=("| $label | $ref | $ours | $("$py" -c "print(f'{$ours / $ref:.2f}')") |")
  }
  row "$name" default
  # The attention setting the default did not choose.
  case "$(attention_line "$name")" in
    stoch*) row "$name, model.attention=sdpa" sdpa --set model.attention=sdpa ;;
    *) row "$name, model.attention=stoch" stoch --set model.attention=stoch ;;
  esac
  if [ "$threads" -gt 1 ] && [ $((batch % threads)) -eq 0 ]; then
    row "$name, $threads workers x $((batch / threads)) sequences" workers \
      --set "train.batch_size=$((batch / threads))" --set "train.grad_accum=$threads" \
      --set "train.cpu_workers=$threads"
  fi
}

# attention_line NAME: what the default run chose ("stoch kernels (avx2)", "sdpa (...)").
attention_line() {
  sed -n 's/.* info attention: //p' "$tmp/$1-default.log" | head -n 1
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
echo "$(sed -n 's/.* threads\? on \(.*\); .* per step.*/\1/p' "$tmp/tiny-default.log" | head -n 1)," \
  "$threads threads; nanoGPT's LibTorch: $("$py" -c 'import torch; print(torch.__version__, torch.backends.cpu.get_cpu_capability())');" \
  "median over timed steps; load average at start $load_start, at end $(cut -d ' ' -f 1-3 /proc/loadavg)"
echo
echo "| config | nanoGPT tokens/s | stoch tokens/s | ratio |"
echo "|---|---|---|---|"
printf '%s\n' "${rows[@]}"
