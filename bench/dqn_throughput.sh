#!/usr/bin/env bash
# DQN training throughput (environment steps per second, with an update every `train_every`
# steps) on configs/rl/minatar_breakout.yaml (MinAtar reference DQN: an update of batch 32 every
# step) or CONFIG. Each setup runs REPEATS times for UPDATES updates after 1000 steps of random
# acting, with epsilon held at EPSILON (default 0.1, the reference schedule's floor, where 90%
# of steps also run the Q-network to act); the script prints the median over the repeats of
# each run's median steps_per_s:
#   2 threads with the helper lane (the default), 2 threads without it, 1 thread, and with
#   model.fused=false (the module path) on 2 threads.
# Env: CONFIG, UPDATES (6000), REPEATS (3), EPSILON (0.1), STOCH (build/stoch), ONLY_LANE=1
# (the first setup only), SETS (space-separated key=value overrides for every setup, e.g.
# SETS=value.loss=hl_gauss), STOCH_CPU_ISA=portable|avx2|avx512 (caps stoch's kernels at a lower
# clone). About 2 minutes on 2 cores. The first line names the CPU and the clone that ran.
# This VM has slow spells (a run at half speed now and then): the median of repeats hides them.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

config="${CONFIG:-configs/rl/minatar_breakout.yaml}"
updates="${UPDATES:-6000}"
repeats="${REPEATS:-3}"
stoch="${STOCH:-build/stoch}"
epsilon="${EPSILON:-0.1}"
extra=()
for kv in ${SETS:-}; do extra+=(--set "$kv"); done

venv="$(scripts/setup | tail -n 1)"
py="$venv/bin/python"
[ -x "$stoch" ] || { echo "dqn_throughput: no stoch binary at $stoch (build first)" >&2; exit 1; }
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
# shellcheck source=bench/lib.sh
source "$root/bench/lib.sh"

# setup LABEL [--set ...]...: median over the repeats of the run's median steps_per_s.
setup() {
  local label="$1" rates=()
  shift
  for r in $(seq "$repeats"); do
    "$stoch" train "$config" --run-dir "$tmp/$label-$r" --set "train.steps=$updates" \
      --set dqn.learning_starts=1000 --set train.eval_every=0 --set train.ckpt_every=0 \
      --set log.every=500 --set "dqn.epsilon_start=$epsilon" --set "dqn.epsilon_end=$epsilon" \
      "${extra[@]}" "$@" >"$tmp/$label-$r.log" 2>&1 ||
      { echo "dqn_throughput: $label failed; log in $tmp/$label-$r.log" >&2; exit 1; }
    rates+=("$(median_train_tps "$tmp/$label-$r/metrics.jsonl" 1000 steps_per_s)")
  done
  printf '%s\n' "${rates[@]}" | sort -n | awk -v l="$label" \
    '{a[NR]=$1} END {printf "| %s | %.0f | %s |\n", l, a[int((NR+1)/2)], a[1] "-" a[NR]}'
}

load="$(cut -d' ' -f1 /proc/loadavg)"
cpu=""
rows=()
rows+=("$(setup "2 threads, helper lane" --set run.threads=2)")
[ -n "${ONLY_LANE:-}" ] || rows+=("$(setup "2 threads, no lane" --set run.threads=2 --set dqn.helper_lane=false)")
[ -n "${ONLY_LANE:-}" ] || rows+=("$(setup "1 thread" --set run.threads=1)")
[ -n "${ONLY_LANE:-}" ] || rows+=("$(setup "2 threads, module path" --set run.threads=2 --set model.fused=false)")
# The CPU line comes from the runs' logs (the subshells above cannot set it here).
cpu="$(sed -n 's/.* threads\? on \(.*\); .* per step.*/\1/p' "$tmp"/*-1.log | head -n 1)"
echo "dqn_throughput: $config${SETS:+ ($SETS)} on $cpu, $updates updates x $repeats repeats," \
  "epsilon $epsilon, load at start $load"
echo "| setup | steps/s (median) | range |"
echo "| --- | ---: | --- |"
printf '%s\n' "${rows[@]}"
