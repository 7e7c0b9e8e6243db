#!/usr/bin/env bash
# Plain against speculative sampling (`stoch sample --speculative`) from a run trained with the
# surplus hook: tokens/s, model calls per token, acceptance rate, speed-up.
# usage: bench/speculative.sh [RUN_DIR]   (default: trains configs/lm/quickstart_diagnostics.yaml
#        into runs/bench-speculative first). Speculative decoding only drafts while the text and
#        its drafts fit the model's context (past it, each token takes one call, which keeps the
#        output exact), so each sample is TOKENS tokens (default: the context less the prompt)
#        and SAMPLES samples (default 50, seeds 1..SAMPLES) are summed.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
stoch="$root/scripts/stoch"
run="${1:-$root/runs/bench-speculative}"
samples="${SAMPLES:-50}"
if [ ! -d "$run/checkpoints" ]; then
  "$stoch" train "$root/configs/lm/quickstart_diagnostics.yaml" --run-dir "$run" >/dev/null
fi
context="$(grep -A12 '^model:' "$run/config.yaml" | grep -m1 '^  context:' | awk '{print $2}')"
tokens="${TOKENS:-$((context - 1))}"
# Sums over the samples of "sampled N tokens in S s (R tokens/s), C model calls[; drafted D,
# accepted A ...]": tokens/s, calls, drafted, accepted. A sample that fails ends the benchmark
# (a sum over the others would pass for the whole).
measure() {
  local out lines=""
  for seed in $(seq 1 "$samples"); do
    if ! out="$("$stoch" sample "$run" --prompt "0" --max-tokens "$tokens" --seed "$seed" "$@" 2>&1)"; then
      echo "$out" | tail -n 5 >&2
      echo "bench/speculative.sh: stoch sample $* --seed $seed failed" >&2
      return 1
    fi
    lines+="$(grep "sampled" <<<"$out")"$'\n'
  done
  printf '%s' "$lines" | sed -E 's/.*sampled ([0-9]+) tokens in ([0-9.e+-]+) s.*\), ([0-9]+) model calls(; drafted ([0-9]+), accepted ([0-9]+))?.*/\1 \2 \3 \5 \6/' |
    awk -v want="$samples" '{ n += $1; s += $2; c += $3; d += $4; a += $5; k++ }
      END { if (k != want) exit 1; printf "%f %d %d %d %d\n", n / s, c, d, a, n }'
}
# The machine and the kernels' clone, from one sample's log.
echo "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) CPUs;" \
  "$("$stoch" sample "$run" --prompt "0" --max-tokens 1 2>&1 | sed -n 's/.* info attention: //p' | head -n 1)"
echo
printf "| temperature | mode | tokens/s | model calls | tokens per call | acceptance | speed-up |\n"
printf "| --- | --- | --- | --- | --- | --- | --- |\n"
for temp in 1.0 0; do
  result="$(measure --temperature "$temp")"
  read -r base_rate base_calls _ _ _ <<<"$result"
  printf "| %s | plain | %.0f | %s | 1.00 | - | 1.00x |\n" "$temp" "$base_rate" "$base_calls"
  for draft in 1 2 3 4 6; do
    result="$(measure --temperature "$temp" --speculative --draft "$draft")"
    read -r rate calls drafted accepted n <<<"$result"
    awk -v t="$temp" -v d="$draft" -v r="$rate" -v c="$calls" -v dr="$drafted" -v a="$accepted" \
      -v b="$base_rate" -v n="$n" 'BEGIN { printf "| %s | speculative, draft %d | %.0f | %d | %.2f | %.1f%% | %.2fx |\n", t, d, r, c, n / c, 100 * a / dr, r / b }'
  done
done
