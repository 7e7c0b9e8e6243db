#!/usr/bin/env bash
# GPT-2 124M training throughput on one GPU, in one run on the GPU machine (well inside 10
# minutes): builds stoch (scripts/build-gpu), trains configs/bench/gpt2_124m.yaml, then times
# bench/nanogpt_ref.py on the same card with nanoGPT bench.py's settings (bf16 autocast, no
# biases, fused AdamW) eager and with torch.compile, and prints one table last:
#   median ms/step and tokens/s after warm-up, MFU, peak GPU memory (max_memory_allocated).
# MFU = tokens/s x FLOPs per token / peak; FLOPs per token = 6N + 12 L d T (docs/benchmarks.md,
# "CUDA"), N the parameters without position embeddings, computed from the config's shape. The peak comes
# from the table below, keyed by the device name; PEAK_TFLOPS overrides it.
# Env: STEPS (70: 10 warm-up + 60 timed, logged every 10), SKIP_BUILD=1, SKIP_NANOGPT=1,
#      STOCH (build-gpu/stoch), SETS (extra --set KEY=VALUE words for stoch), OUT (results).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
python="${PYTHON:-python3}"
steps="${STEPS:-70}"
stoch="${STOCH:-build-gpu/stoch}"
out="${OUT:-/tmp/stoch-gpt2-bench}"
config=configs/bench/gpt2_124m.yaml
mkdir -p "$out"

device_name="$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -n 1 || true)"
echo "gpt2_124m: device '${device_name:-none}'"
[ "${SKIP_BUILD:-0}" = 1 ] || scripts/build-gpu 2>&1 | tail -n 2

# shape L d T V B from the resolved config (so --set overrides are counted too)
read -r L d T V B < <("$stoch" config "$config" ${SETS:+$(printf -- '--set %s ' $SETS)} |
  "$python" -c '
import re, sys
# The resolved config is plain "section:" / "  key: value  # doc" lines: no YAML library needed.
c, sec = {}, None
for line in sys.stdin:
    if re.match(r"^[a-z_]+:", line):
        sec = c.setdefault(line.split(":")[0], {})
    elif sec is not None and (m := re.match(r"^  ([a-z_]+): ([^ #]+)", line)):
        sec[m.group(1)] = int(m.group(2)) if m.group(2).isdigit() else m.group(2)
m = c["model"]
print(m["n_layer"], m["d_model"], m["context"], m["vocab_size"] or c["data"]["vocab_size"],
      c["train"]["batch_size"])')

rm -rf "$out/stoch-run"
# shellcheck disable=SC2046
"$stoch" train "$config" --run-dir "$out/stoch-run" --set "train.steps=$steps" \
  --set log.every=10 $(for s in ${SETS:-}; do printf -- '--set %s ' "$s"; done) \
  2>&1 | tee "$out/stoch.log" | { grep -E "device|error|done" || true; }
# The pipeline's status is stoch's (pipefail; grep finding nothing is not a failure): a stoch
# run that fails ends the script here, as a failed nanoGPT run does.

nano_eager="" nano_compile=""
if [ "${SKIP_NANOGPT:-0}" != 1 ]; then
  common=(--n-layer "$L" --n-head 12 --n-embd "$d" --block-size "$T" --batch-size "$B"
          --vocab-size "$V" --device cuda --bf16 --no-bias --fused-adam --warmup 10 --steps 30)
  nano_eager="$("$python" bench/nanogpt_ref.py "${common[@]}" 2>&1 | tee "$out/nanogpt_eager.log" | tail -n 1)"
  nano_compile="$("$python" bench/nanogpt_ref.py "${common[@]}" --compile 2>&1 |
    tee "$out/nanogpt_compile.log" | tail -n 1)"
fi

"$python" - "$out/stoch-run/metrics.jsonl" "$device_name" "$L" "$d" "$T" "$V" "$B" \
  "${PEAK_TFLOPS:-}" "$nano_eager" "$nano_compile" <<'PY'
import json, re, statistics, sys
path, name, L, d, T, V, B, override, eager, compiled = sys.argv[1:11]
L, d, T, V, B = map(int, (L, d, T, V, B))
# Dense bf16 peaks (TFLOP/s) by device name, as the README's MFU paragraph gives them.
peaks = {"H200": 989.0, "H100": 989.0, "A100": 312.0}
peak = float(override) if override else next((v for k, v in peaks.items() if k in name), None)
N = V * d + L * (12 * d * d + 2 * d) + d  # no biases; tied embedding; LayerNorm gains
flops_per_token = 6 * N + 12 * L * d * T
rows = [json.loads(l) for l in open(path) if l.strip()]
train = [r for r in rows if r.get("split") == "train" and "tokens_per_s" in r]
timed = [r for r in train if r["step"] > 10]
if not timed:
    sys.exit(f"gpt2_124m: no timed train lines in {path}")
tps = statistics.median(r["tokens_per_s"] for r in timed)
mem = max((r.get("gpu_mem_peak_gb", 0.0) for r in train), default=0.0)

def row(label, tokens_per_s, peak_gb):
    ms = 1e3 * B * T / tokens_per_s
    mfu = f"{100 * tokens_per_s * flops_per_token / (peak * 1e12):.1f}%" if peak else "-"
    return f"| {label} | {ms:.1f} | {tokens_per_s / 1e3:.0f}k | {mfu} | {peak_gb:.1f} GB |"

print(f"\ngpt2_124m on {name or 'unknown device'}: {flops_per_token / 1e9:.3f} GFLOP/token, "
      f"peak {peak or '?'} TFLOP/s, batch {B} x {T}")
print("| system | ms/step | tokens/s | MFU | peak memory |")
print("| --- | ---: | ---: | ---: | ---: |")
print(row("stoch", tps, mem))
for label, line in (("nanoGPT ref, eager", eager), ("nanoGPT ref, torch.compile", compiled)):
    m = re.search(r"tokens_per_s=([0-9.]+) .*peak_gb=([0-9.]+)", line or "")
    if m:
        print(row(label, float(m.group(1)), float(m.group(2))))
PY
