#!/usr/bin/env bash
# Labelling speed of `stoch data chess` (issue 19's target: at least 200 labelled positions/s on
# 2 cores with searches of depth 8 or more): POSITIONS positions at depth DEPTH, once with one
# engine and once with ENGINES, each into a fresh folder. Prints positions/s, the CPU, its
# vector ISA and the load average (other load skews the figures).
#
# Env: POSITIONS (default 10000), DEPTH (8), ENGINES (nproc), STOCH (build/stoch).
# About two minutes on 2 cores.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

positions="${POSITIONS:-10000}"
depth="${DEPTH:-8}"
engines="${ENGINES:-$(nproc)}"
stoch="${STOCH:-build/stoch}"
[ -x "$stoch" ] || { echo "chess_labels: no stoch binary at $stoch (build first)" >&2; exit 1; }

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

cpu="$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
isa="$(grep -m1 '^flags' /proc/cpuinfo | grep -o 'avx512f' | head -1 || true)"
[ -n "$isa" ] || isa="$(grep -m1 '^flags' /proc/cpuinfo | grep -o 'avx2' | head -1 || echo none)"
echo "chess_labels: $cpu ($isa), $(nproc) cores, $("$stoch" data chess --help >/dev/null && \
  /usr/games/stockfish quit </dev/null | head -1)"

for n in 1 "$engines"; do
  start=$(date +%s.%N)
  "$stoch" data chess --out "$tmp/e$n" --positions "$positions" --depth "$depth" \
    --engines "$n" >"$tmp/e$n.log" 2>&1 || { cat "$tmp/e$n.log" >&2; exit 1; }
  end=$(date +%s.%N)
  rate=$(awk -v p="$positions" -v a="$start" -v b="$end" 'BEGIN { printf "%.0f", p / (b - a) }')
  echo "chess_labels: depth $depth, $n engine(s): $rate positions/s (load $(cut -d' ' -f1 /proc/loadavg))"
done
