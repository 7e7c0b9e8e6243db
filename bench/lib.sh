# Shared by the bench scripts (source it after setting $py to the project's Python).

# median_train_tps METRICS_JSONL SKIP [METRIC]: median METRIC (default tokens_per_s) over the
# train lines of a stoch metrics.jsonl after step SKIP (the warm-up), so the logging interval
# does not matter.
median_train_tps() {
  "$py" - "$1" "$2" "${0##*/}" "${3:-tokens_per_s}" <<'PY'
import json, statistics, sys
path, skip, who, metric = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
with open(path) as f:
    rows = [json.loads(line) for line in f if line.strip()]
tps = [r[metric] for r in rows
       if r.get("split") == "train" and metric in r and r["step"] > skip]
if not tps:
    sys.exit(f"{who}: no train lines after step {skip} in {path}")
print(f"{statistics.median(tps):.1f}")
PY
}

# machine_of STOCH_LOG: the CPU and the kernels' clone from a stoch run's device line ("AMD EPYC
# (kernels: avx512; CPU supports avx512), LibTorch kernels avx512"), for every table's header.
machine_of() {
  sed -n 's/.* info device .* on \(.*\); [0-9]* [a-z]* per step.*/\1/p' "$1" | head -n 1
}
