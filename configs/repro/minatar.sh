#!/usr/bin/env bash
# Study 5 of docs/results/claims.md, from the start or from where it stands, on any machine:
# puts the runs finished so far (committed under docs/results/claims/minatar/runs/) back into
# runs/, runs the two sweeps (mse, hl_gauss and c51 on `auto` bins; hl_gauss on `running` bins),
# and every few minutes copies each newly finished run's config.yaml and metrics.jsonl into
# docs/results/claims/minatar/runs/ to be committed, so that no finished run is lost with its
# machine. When both sweeps are done it writes the aggregate comparison across the games into
# docs/results/claims/minatar/ (from the kept copies, so anyone can rerun that step from the
# repository). Stop it with Ctrl-C or SIGTERM (the runs stop at a checkpoint); run it again to go on.
#   configs/repro/minatar.sh [STOCH]   (STOCH: the binary to run, default build/stoch)
# Runs as many at a time as the machine has CPUs (each run uses one thread); JOBS=N overrides.
# LibTorch's CPU kernels are pinned to AVX2 where the CPU has it; ATEN_CPU_CAPABILITY overrides.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
stoch="${1:-build/stoch}"
[ -x "$stoch" ] || { echo "minatar.sh: no stoch binary at $stoch (scripts/build stoch)" >&2; exit 2; }
kept=docs/results/claims/minatar/runs
# Games in the order their runs are still missing: the sweeps go down the grid in this order.
games=MinAtar/SpaceInvaders,MinAtar/Asterix,MinAtar/Breakout,MinAtar/Freeway,MinAtar/Seaquest
steps=495000
jobs="${JOBS:-$(nproc)}"
# LibTorch's softmax and inner sums round differently in its AVX-512 kernels than in its AVX2
# ones, which moves the categorical heads' runs (not mse's); pinned to AVX2, a run gives the same
# bits on both the Zen 1 and Zen 4 VMs (docs/results/claims.md, study 5). LibTorch does not check
# the CPU for the kernel set it is told to use, so it is pinned only where the CPU has AVX2.
if [ -z "${ATEN_CPU_CAPABILITY:-}" ] && grep -qw avx2 /proc/cpuinfo 2>/dev/null; then
  export ATEN_CPU_CAPABILITY=avx2
fi

keep_finished() {
  local sweep dir name stage
  for sweep in repro-minatar repro-minatar-running; do
    for dir in runs/"$sweep"/*/; do
      name="$(basename "$dir")"
      [ -d "${dir}checkpoints/step-$(printf %08d "$steps")" ] || continue
      [ -f "$kept/$sweep/$name/metrics.jsonl" ] && continue
      # Staged in a folder of this call's own and renamed in, so a copy cut short never looks
      # kept, and the keeper and the last step (or a killed keeper's unfinished cp) never mix
      # files; mv -T does not land on a run another call kept meanwhile.
      mkdir -p "$kept/$sweep" && stage="$(mktemp -d "runs/.keeping.$$.XXXXXX")" || continue
      cp "${dir}config.yaml" "${dir}metrics.jsonl" "$stage"/ &&
        mv -T "$stage" "$kept/$sweep/$name" 2>/dev/null || rm -rf "$stage"
    done
  done
}

mkdir -p runs
# Staging left by a copy that was cut short: each call's names its pid ($$, the keeper's too),
# so the staging of another call still running beside this one stays.
for stage in runs/.keeping runs/.keeping.*; do
  [ -e "$stage" ] || continue
  owner="${stage#runs/.keeping.}" && owner="${owner%%.*}"
  case "$owner" in '' | *[!0-9]*) ;; *) kill -0 "$owner" 2>/dev/null && continue ;; esac
  rm -rf "$stage"
done
[ -d "$kept" ] && cp -rn "$kept"/. runs/
(while sleep 120; do keep_finished; done) &
keeper=$!
trap 'kill "$keeper" 2>/dev/null; keep_finished' EXIT
"$stoch" sweep configs/repro/minatar.yaml --grid env.name="$games" \
  --grid value.loss=mse,hl_gauss,c51 --seeds 5 --jobs "$jobs" --out runs/repro-minatar &&
  "$stoch" sweep configs/repro/minatar.yaml --grid env.name="$games" --grid value.loss=hl_gauss \
    --set value.support=running --seeds 5 --jobs "$jobs" --out runs/repro-minatar-running ||
  exit
keep_finished
"$stoch" compare "$kept"/repro-minatar "$kept"/repro-minatar-running --metric eval/return_mean \
  --mode max --task-key env.name --normalize docs/results/claims/minatar_scores.yaml \
  --out docs/results/claims/minatar
