#!/usr/bin/env bash
# Byte-level BPE, stoch against Hugging Face `tokenizers` on the same machine and text (the
# GCIDE dictionary, Debian package dict-gcide): training time for a 16k vocabulary on 20 MB (both
# on all cores; stoch counts words on 2 threads and merges on 1), whether the merges agree, and
# single-threaded encoding throughput on 10 further MB, one line at a time, file reading
# excluded, with a check that the ids agree.
# usage: bench/tokenizer.sh [VOCAB_SIZE]   (default 16000; MB=N sets the training megabytes)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
stoch="$root/scripts/stoch"
venv="$("$root/scripts/setup" | tail -n 1)"
py="$venv/bin/python"
vocab="${1:-16000}"
mb="${MB:-20}"
dict=/usr/share/dictd/gcide.dict.dz
[ -f "$dict" ] || { echo "bench/tokenizer.sh: $dict is missing: apt-get install dict-gcide" >&2; exit 2; }
work="$(mktemp -d /tmp/stoch-bench-tokenizer.XXXXXX)"
trap 'rm -rf "$work"' EXIT

# Valid UTF-8 only (tokenizers refuses anything else; iconv -c drops the rest and says so by its
# exit status). The held-out part starts at a line start and ends with a newline.
utf8_only() { iconv -f utf-8 -t utf-8 -c || true; }
zcat "$dict" | utf8_only >"$work/all.txt"
head -c "$((mb * 1000000))" "$work/all.txt" | utf8_only >"$work/train.txt"
head -c "$((mb * 1000000 + 10000000))" "$work/all.txt" | tail -c 10000000 | utf8_only |
  sed -e '1d' -e '$d' >"$work/held_out.txt"
"$stoch" --version >/dev/null  # builds first, outside the timings
# Timed: the built binary itself, not scripts/stoch's set-up and build check around it (a second
# or so, which tokenizers' figure, timed inside Python after its imports, does not carry).
stoch="$root/build/stoch"

t0=$(date +%s.%N)
"$stoch" tokenizer train --input "$work/train.txt" --vocab-size "$vocab" --out "$work/stoch" \
  --special '<|endoftext|>' 2>/dev/null
stoch_train=$(awk -v t0="$t0" -v t1="$(date +%s.%N)" 'BEGIN { print t1 - t0 }')
hf_train=$("$py" - "$work" "$vocab" <<'PY'
import os, sys, time
from tokenizers import ByteLevelBPETokenizer
work, vocab = sys.argv[1], int(sys.argv[2])
t = ByteLevelBPETokenizer()
t0 = time.perf_counter()
t.train([work + "/train.txt"], vocab_size=vocab, min_frequency=2,
        special_tokens=["<|endoftext|>"], show_progress=False)
print(f"{time.perf_counter() - t0:.2f}")
os.makedirs(work + "/hf", exist_ok=True)
t.save_model(work + "/hf")
PY
)
same_merges=no
cmp -s "$work/stoch/merges.txt" "$work/hf/merges.txt" && cmp -s "$work/stoch/vocab.json" \
  "$work/hf/vocab.json" && same_merges=yes

stoch_mbs=$("$stoch" tokenizer encode --tokenizer "$work/stoch" --input "$work/held_out.txt" \
  --timing 2>&1 >"$work/stoch_ids.txt" | sed -nE 's/.* s: ([0-9.e+]+) MB\/s.*/\1/p')
hf_mbs=$(TOKENIZERS_PARALLELISM=false RAYON_NUM_THREADS=1 "$py" - "$work" <<'PY'
import sys, time
from tokenizers import ByteLevelBPETokenizer
work = sys.argv[1]
t = ByteLevelBPETokenizer(work + "/hf/vocab.json", work + "/hf/merges.txt")
t.add_special_tokens(["<|endoftext|>"])
data = open(work + "/held_out.txt", "rb").read()
lines = data.decode("utf-8").split("\n")[:-1]  # the file ends with a newline
encode = getattr(t._tokenizer, "encode_batch_fast", t.encode_batch)  # no offsets when it can
t0 = time.perf_counter()
encodings = encode(lines)
seconds = time.perf_counter() - t0
print(f"{len(data) / 1e6 / seconds:.2f}")
with open(work + "/hf_ids.txt", "w") as f:
    for e in encodings:
        f.write(" ".join(map(str, e.ids)) + "\n")
PY
)
same_ids=no
cmp -s "$work/stoch_ids.txt" "$work/hf_ids.txt" && same_ids=yes

cpu=$(lscpu | sed -nE 's/^Model name: +//p' | head -n 1)
isa=$(if grep -qw avx512f /proc/cpuinfo; then echo ", AVX-512"; elif grep -qw avx2 /proc/cpuinfo; then echo ", AVX2"; fi)
printf "machine: %s, %s cores%s\n\n" "$cpu" "$(nproc)" "$isa"
printf "| | stoch | tokenizers %s | ratio |\n| --- | --- | --- | --- |\n" \
  "$("$py" -c 'import tokenizers; print(tokenizers.__version__)')"
awk -v v="$vocab" -v mb="$mb" -v s="$stoch_train" -v h="$hf_train" -v same="$same_merges" \
  'BEGIN { printf "| train %d tokens on %d MB (s) | %.2f | %.2f | %.1fx faster; same files: %s |\n", v, mb, s, h, h / s, same }'
awk -v s="$stoch_mbs" -v h="$hf_mbs" -v same="$same_ids" \
  'BEGIN { printf "| encode 10 MB, one thread (MB/s) | %.2f | %.2f | %.1fx faster; same ids: %s |\n", s, h, s / h, same }'
