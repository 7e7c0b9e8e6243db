#!/usr/bin/env bash
# Data parallel across hosts, on one machine: two Linux network namespaces ("hosts", joined by
# a veth pair on 198.18.0.0/15, removed on exit) each run one rank with one thread, against one
# process using both threads, on configs/bench/lm_small_cpu.yaml with the same global batch.
# Also prints each rank's optimizer state for W = 1, 2, 3 with dist.shard=optimizer, and the
# time from a SIGKILLed rank to the other's exit (dist.timeout_s=$TIMEOUT_S).
#
# Needs root (namespaces): run it as root. Through sudo from another account, HOME is root's,
# so scripts/setup would make root a venv of its own; PYTHON names an existing venv's python
# instead. Env: STEPS (12) timed steps, WARMUP (3) untimed steps, TIMEOUT_S (10),
# STOCH (build/stoch), PYTHON (the venv's). About 4 minutes on 2 cores.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

steps="${STEPS:-12}"
warmup="${WARMUP:-3}"
timeout_s="${TIMEOUT_S:-10}"
stoch="$(realpath "${STOCH:-build/stoch}")"
config=configs/bench/lm_small_cpu.yaml
batch=8

if [ -n "${PYTHON:-}" ]; then
  py="$PYTHON"
else
  py="$(scripts/setup | tail -n 1)/bin/python"
fi
[ -x "$stoch" ] || { echo "multi_host: no stoch binary at $stoch (build first)" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "multi_host: network namespaces need root" >&2; exit 2; }

tmp="$(mktemp -d)"
tag="stochb-$$"
cleanup() {
  ip netns del "$tag-a" 2>/dev/null || true
  ip netns del "$tag-b" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
ip netns add "$tag-a"
ip netns add "$tag-b"
ip -n "$tag-a" link add veth0 type veth peer name veth0 netns "$tag-b"
addr=(198.18.0.1 198.18.0.2)
for i in 0 1; do
  ns="$tag-$([ $i = 0 ] && echo a || echo b)"
  ip -n "$ns" addr add "${addr[$i]}/24" dev veth0
  ip -n "$ns" link set veth0 up
  ip -n "$ns" link set lo up
done

# shellcheck source=bench/lib.sh
source "$root/bench/lib.sh"

common=(--set log.every=1 --set log.tensorboard=false)

# on_host I COMMAND...: COMMAND as rank I of two, on host I (its own hostname). It execs (ip
# netns exec, unshare, env and sh all exec too), so call it in a subshell: $! is then the rank.
# The command stays a list of words, so paths with spaces pass whole.
on_host() {
  local i="$1"
  shift
  local ns="$tag-$([ "$i" = 0 ] && echo a || echo b)"
  exec ip netns exec "$ns" unshare --uts env WORLD_SIZE=2 RANK="$i" LOCAL_RANK=0 \
    LOCAL_WORLD_SIZE=1 GROUP_RANK="$i" MASTER_ADDR="${addr[0]}" MASTER_PORT="$((29500 + phase))" \
    OMP_NUM_THREADS=1 sh -c 'hostname "$0" && exec "$@"' "stoch-host-$i" "$@"
}

# logged LOG COMMAND...: COMMAND (in a subshell, so on_host may exec) with its output in LOG; on
# failure the log's tail and the command are printed, and the script exits 1 (set -e alone
# would exit without a word).
logged() {
  local log="$1"
  shift
  ("$@") >"$log" 2>&1 || {
    tail -n 20 "$log" >&2
    echo "multi_host: failed: $*" >&2
    exit 1
  }
}

echo "multi_host: 1 process, 2 threads, $((warmup + steps)) steps" >&2
logged "$tmp/one.log" "$stoch" train "$config" --run-dir "$tmp/one" \
  --set "train.steps=$((warmup + steps))" --set run.threads=2 --set "train.batch_size=$batch" \
  "${common[@]}"
one="$(median_train_tps "$tmp/one/metrics.jsonl" "$warmup")"

echo "multi_host: 2 ranks on this host (--nproc 2)" >&2
logged "$tmp/local.log" "$stoch" train "$config" --run-dir "$tmp/local" \
  --set "train.steps=$((warmup + steps))" --nproc 2 --set run.threads=2 \
  --set "train.batch_size=$((batch / 2))" "${common[@]}"
local_="$(median_train_tps "$tmp/local/metrics.jsonl" "$warmup")"

echo "multi_host: 2 hosts x 1 rank, 1 thread each" >&2
args=("$stoch" train "$config" --run-dir "$tmp/hosts" --set "train.steps=$((warmup + steps))"
  --set run.threads=1 --set "train.batch_size=$((batch / 2))" "${common[@]}")
phase=1
(on_host 0 "${args[@]}") >"$tmp/h0.log" 2>&1 &
h0=$!
logged "$tmp/h1.log" on_host 1 "${args[@]}"
wait "$h0" || {
  tail -n 20 "$tmp/h0.log" >&2
  echo "multi_host: rank 0 of the two hosts failed" >&2
  exit 1
}
hosts="$(median_train_tps "$tmp/hosts/metrics.jsonl" "$warmup")"

# Optimizer state per rank: one step at each world size.
declare -A state
for w in 1 2 3; do
  echo "multi_host: optimizer state, $w rank(s)" >&2
  extra=()
  [ "$w" -gt 1 ] && extra=(--nproc "$w" --set dist.shard=optimizer)
  logged "$tmp/mem$w.log" "$stoch" train "$config" --run-dir "$tmp/mem$w" --set train.steps=1 \
    --set run.threads=2 --set train.batch_size=2 "${extra[@]}" "${common[@]}"
  state[$w]="$(grep -o 'optimizer state: [0-9.e+-]* MB' "$tmp/mem$w.log" | head -n 1 |
    grep -o '[0-9.e+-]* MB')" || state[$w]="(no optimizer-state line)"
done

# A killed rank: the time until the other rank exits.
echo "multi_host: SIGKILL of rank 1, dist.timeout_s=$timeout_s" >&2
args=("$stoch" train configs/bench/lm_tiny_cpu.yaml --run-dir "$tmp/kill"
  --set train.steps=1000000 --set run.threads=1 --set train.eval_every=0 --set train.ckpt_every=0
  --set "dist.timeout_s=$timeout_s" "${common[@]}")
phase=2
(on_host 0 "${args[@]}") >"$tmp/k0.log" 2>&1 &
k0=$!
(on_host 1 "${args[@]}") >"$tmp/k1.log" 2>&1 &
k1=$!
n=0
for _ in $(seq 300); do
  n="$(grep -c '"train"' "$tmp/kill/metrics.jsonl" 2>/dev/null)" || n=0
  [ "$n" -ge 20 ] && break
  sleep 0.2
done
[ "$n" -ge 20 ] || {
  tail -n 20 "$tmp/k0.log" "$tmp/k1.log" >&2
  echo "multi_host: the two ranks logged no 20 steps within a minute" >&2
  exit 1
}
t0="$(date +%s.%N)"
kill -KILL "$k1"
code=0
wait "$k0" || code=$?
t1="$(date +%s.%N)"
wait "$k1" 2>/dev/null || true
lost="$(grep -o 'lost rank 1.*' "$tmp/k0.log" | head -n 1)" || lost="(no line naming rank 1)"

echo
echo "$(uname -m), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores;" \
  "lm_small_cpu, global batch $batch x 256 tokens, median tokens/s over $steps steps"
echo
echo "| setup | tokens/s |"
echo "|---|---|"
echo "| 1 process, 2 threads | $one |"
echo "| 2 ranks on one host (--nproc 2), 1 thread each | $local_ |"
echo "| 2 hosts (network namespaces) x 1 rank, 1 thread each | $hosts |"
echo
echo "ratio (2 hosts / 1 process): $("$py" -c "print(f'{$hosts / $one:.2f}')");" \
  "(one host's 2 ranks / 1 process): $("$py" -c "print(f'{$local_ / $one:.2f}')")"
echo
echo "| ranks | optimizer state per rank |"
echo "|---|---|"
for w in 1 2 3; do echo "| $w | ${state[$w]} |"; done
echo
echo "SIGKILL of rank 1 -> rank 0 exit $code after $("$py" -c "print(f'{$t1 - $t0:.2f}')") s" \
  "(dist.timeout_s=$timeout_s): $lost"
