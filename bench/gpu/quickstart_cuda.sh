#!/usr/bin/env bash
# One prepared run on the GPU machine: build, run the test suite, then the quickstart on CUDA
# with bf16 autocast, printing the summary and throughput last. Fits well inside 10 minutes.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
out="${OUT:-/tmp/stoch-gpu}"
mkdir -p "$out"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$out/gpu.txt"
time scripts/build-gpu 2>&1 | tail -n 3
# The whole ctest output is kept in $OUT (a failure's output with it); the last lines are shown.
# A failing test does not stop the quickstart and benchmark after it: the script's status does.
ctest_rc=0
(cd build-gpu && ctest --output-on-failure >"$out/ctest.txt" 2>&1) || ctest_rc=$?
tail -n 5 "$out/ctest.txt"
rm -rf /tmp/stoch-quickstart-cuda
build-gpu/stoch train configs/quickstart.yaml --run-dir /tmp/stoch-quickstart-cuda \
  --set run.device=cuda --set run.precision=bf16 2>&1 | tee "$out/quickstart.log" | grep -E "device|eval|summary|done"
cp /tmp/stoch-quickstart-cuda/metrics.jsonl "$out/quickstart-metrics.jsonl"
python3 - "$out/quickstart-metrics.jsonl" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
tps = [r["tokens_per_s"] for r in rows if r.get("split") == "train" and r["step"] > 100]
print(f"median tokens_per_s after step 100: {statistics.median(tps):.0f}")
PY
# A batch whose activations exceed the GPU's memory (about 0.5 TB) while its host-side data fits:
# refused with exit 2 naming the device, before anything is allocated.
set +e
build-gpu/stoch train configs/quickstart.yaml --run-dir /tmp/stoch-gpu-refused \
  --set run.device=cuda --set train.batch_size=1000000 >"$out/gpu_memory_refusal.txt" 2>&1
echo "exit $? (want 2): $(tail -n 1 "$out/gpu_memory_refusal.txt")" | tee -a "$out/gpu_memory_refusal.txt"
set -e
[ "$ctest_rc" -eq 0 ] || { echo "ctest failed (exit $ctest_rc): see $out/ctest.txt" >&2; exit "$ctest_rc"; }
