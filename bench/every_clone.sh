#!/usr/bin/env bash
# stoch's kernel benchmarks once for each clone this CPU runs (STOCH_CPU_ISA=portable, avx2,
# avx512), so that a narrower clone's speed shows on any machine, not only on one that lacks the
# wider sets (the categorical loops' AVX2 clone was five times slower than their AVX-512 one,
# unseen until it was timed this way). Each benchmark prints its own header (CPU, clone) and
# tables; compare a clone's column with the same column of the others.
#   bench/every_clone.sh [BENCH...]
#   BENCH: value_loss_bench, conv3x3_bench, adamw_bench, attention_bench (default: all four).
#   THREADS=N (default 1): the thread count of those that take one (value_loss_bench's second
#   table is one thread; its first, two).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
benches=("$@")
[ ${#benches[@]} -gt 0 ] || benches=(value_loss_bench conv3x3_bench adamw_bench attention_bench)
for b in "${benches[@]}"; do
  case "$b" in
    value_loss_bench | conv3x3_bench | adamw_bench | attention_bench) ;;
    *) echo "every_clone.sh: unknown benchmark $b (value_loss_bench, conv3x3_bench, adamw_bench," \
      "attention_bench)" >&2 && exit 2 ;;
  esac
done
scripts/build "${benches[@]}" >&2
# The clones core/cpu_isa.cpp can pick: AVX2 with FMA; AVX-512 F, VL and DQ.
flags=" $(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null | cut -d: -f2) "
isas=(portable)
[[ "$flags" == *" avx2 "* && "$flags" == *" fma "* ]] && isas+=(avx2)
[[ "$flags" == *" avx512f "* && "$flags" == *" avx512vl "* && "$flags" == *" avx512dq "* ]] &&
  isas+=(avx512)
for b in "${benches[@]}"; do
  args=("${THREADS:-1}")
  [ "$b" = value_loss_bench ] && args=(cpu)
  for isa in "${isas[@]}"; do
    printf '\n## %s, STOCH_CPU_ISA=%s\n\n' "$b" "$isa"
    STOCH_CPU_ISA="$isa" "build/$b" "${args[@]}"
  done
done
