#!/usr/bin/env bash
# What other busy processes cost a run that uses every core: the quickstart LM's tokens/s (median
# of steps 51-300) on an idle machine and beside BUSY single-thread busy loops (default: one per
# CPU), for run.threads = every CPU and 1, with libgomp's default waiting
# (spin, then sleep) and with OMP_WAIT_POLICY=passive. REPEATS rounds (default 3) alternate the
# setups; the script prints every round's figure. The first line names the CPU. About 2 minutes
# on 2 cores. Run it on an otherwise idle machine.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
stoch="${STOCH:-build/stoch}"
repeats="${REPEATS:-3}"
cpus="$(nproc)"
busy="${BUSY:-$cpus}"
venv="$(scripts/setup | tail -n 1)"
py="$venv/bin/python"
[ -x "$stoch" ] || { echo "busy_machine: no stoch binary at $stoch (build first)" >&2; exit 1; }
tmp="$(mktemp -d)"
loops=()
cleanup() {
  for p in "${loops[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT
# shellcheck source=bench/lib.sh
source "$root/bench/lib.sh"

echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | xargs), $cpus CPUs; $busy busy loops"
# one LABEL THREADS [ENV...]: one run's median tokens/s.
one() {
  local label="$1" threads="$2"
  shift 2
  rm -rf "$tmp/run"
  env "$@" "$stoch" train configs/quickstart.yaml --run-dir "$tmp/run" --set train.steps=300 \
    --set train.eval_every=0 --set train.ckpt_every=0 --set log.every=1 \
    --set "run.threads=$threads" >"$tmp/log" 2>&1 || { cat "$tmp/log" >&2; exit 1; }
  [ -f "$tmp/machine" ] || { machine_of "$tmp/log" >"$tmp/machine" && echo "on $(cat "$tmp/machine")"; }
  printf '%s\t%s\n' "$label" "$(median_train_tps "$tmp/run/metrics.jsonl" 50)"
}
round() {
  local load="$1"
  one "$load, $cpus threads, default wait" "$cpus"
  one "$load, $cpus threads, OMP_WAIT_POLICY=passive" "$cpus" OMP_WAIT_POLICY=passive
  one "$load, 1 thread" 1
}
for r in $(seq "$repeats"); do
  round idle
  for _ in $(seq "$busy"); do
    sh -c 'while :; do :; done' &
    loops+=("$!")
  done
  round "$busy busy"
  for p in "${loops[@]}"; do kill "$p"; done
  wait "${loops[@]}" 2>/dev/null || true
  loops=()
done
