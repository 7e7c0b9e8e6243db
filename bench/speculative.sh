#!/usr/bin/env bash
# Plain against speculative sampling (`stoch sample --speculative`) from a run trained with the
# surplus hook: tokens/s, model calls per token, acceptance rate, speed-up.
# usage: bench/speculative.sh [RUN_DIR]   (default: trains configs/lm/quickstart_diagnostics.yaml
#        into runs/bench-speculative first); TOKENS=N sets the tokens per sample (default 1000).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
stoch="$root/scripts/stoch"
run="${1:-$root/runs/bench-speculative}"
tokens="${TOKENS:-1000}"
if [ ! -d "$run/checkpoints" ]; then
  "$stoch" train "$root/configs/lm/quickstart_diagnostics.yaml" --run-dir "$run" >/dev/null
fi
# One sampling line: "sampled N tokens in S s (R tokens/s), C model calls[; drafted D, accepted A ...]".
measure() {
  "$stoch" sample "$run" --prompt "0" --max-tokens "$tokens" --seed 1 "$@" 2>&1 | grep "sampled" |
    sed -E 's/.*\(([0-9.e+]+) tokens\/s\), ([0-9]+) model calls(; drafted ([0-9]+), accepted ([0-9]+))?.*/\1 \2 \4 \5/'
}
printf "| temperature | mode | tokens/s | model calls | tokens per call | acceptance | speed-up |\n"
printf "| --- | --- | --- | --- | --- | --- | --- |\n"
for temp in 1.0 0; do
  read -r base_rate base_calls _ _ <<<"$(measure --temperature "$temp")"
  printf "| %s | plain | %.0f | %s | 1.00 | - | 1.00x |\n" "$temp" "$base_rate" "$base_calls"
  for draft in 1 2 3 4 6; do
    read -r rate calls drafted accepted <<<"$(measure --temperature "$temp" --speculative --draft "$draft")"
    awk -v t="$temp" -v d="$draft" -v r="$rate" -v c="$calls" -v dr="$drafted" -v a="$accepted" \
      -v b="$base_rate" -v n="$tokens" 'BEGIN { printf "| %s | speculative, draft %d | %.0f | %d | %.2f | %.1f%% | %.2fx |\n", t, d, r, c, n / c, 100 * a / dr, r / b }'
  done
done
