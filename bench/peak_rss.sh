#!/usr/bin/env bash
# Peak resident memory of one stoch command, e.g.
#   bench/peak_rss.sh train configs/bench/gpt2_124m.yaml --set run.device=cpu ...
# Runs `scripts/stoch ARGS...` (building first if needed), then prints "peak_rss_gb X": the
# largest resident set any of its processes reached (getrusage of the children, which counts
# the stoch process itself, not only the launcher script).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
py="$("$root/scripts/setup" | tail -n 1)/bin/python"
"$root/scripts/build"
exec "$py" - "$root/build/stoch" "$@" <<'PY'
import resource, subprocess, sys
rc = subprocess.call(sys.argv[1:])
# ru_maxrss is in KiB on Linux: the largest of the waited-for descendants.
peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(f"peak_rss_gb {peak_kib * 1024 / 1e9:.2f}")
sys.exit(rc)
PY
