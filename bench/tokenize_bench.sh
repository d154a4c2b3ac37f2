#!/usr/bin/env bash
# Tokenizer speed: `quarrel tokenize` on a 10 MB English text (the GPL-3 text repeated)
# with the llama-spm and gpt-2 vocabularies, against llama.cpp's llama-tokenize on the same
# file and vocabulary when a build of it is at hand. Each figure is the wall time on the
# file minus the wall time on an empty file (so model loading and start-up cancel out);
# both tools print every id and parse special tokens, and add BOS as the vocabulary asks.
#
# usage: bench/tokenize_bench.sh [BUILD_DIR]      (default: build)
# env:   QUARREL_SHARED (default ../shared), LLAMA_TOKENIZE (default
#        /work/llama.cpp-src/build/bin/llama-tokenize), BENCH_MB (default 10),
#        BENCH_RUNS (default 3: the best run counts)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
quarrel=$build/bin/quarrel
shared=${QUARREL_SHARED:-$root/../shared}
llama=${LLAMA_TOKENIZE:-/work/llama.cpp-src/build/bin/llama-tokenize}
mb=${BENCH_MB:-10}
runs=${BENCH_RUNS:-3}
src=/usr/share/common-licenses/GPL-3

[ -x "$quarrel" ] || { echo "no $quarrel: build first" >&2; exit 1; }
[ -f "$src" ] || { echo "no $src (Debian's base-files)" >&2; exit 1; }
[ -d "$shared/tokenizer-vectors" ] || { echo "SKIPPED: no $shared/tokenizer-vectors" >&2; exit 77; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 - "$src" "$tmp/text.txt" "$mb" <<'PY'
import sys
data = open(sys.argv[1], "rb").read()
n = int(sys.argv[3]) * 1024 * 1024
open(sys.argv[2], "wb").write((data * (n // len(data) + 1))[:n])
PY
: > "$tmp/empty.txt"

# best_time CMD...: the least wall time (seconds) of $runs runs, output discarded.
best_time() {
    local best=""
    for _ in $(seq "$runs"); do
        local t0 t1 t
        t0=$(date +%s.%N)
        "$@" > /dev/null 2>&1
        t1=$(date +%s.%N)
        t=$(echo "$t1 - $t0" | bc -l)
        if [ -z "$best" ] || [ "$(echo "$t < $best" | bc -l)" = 1 ]; then best=$t; fi
    done
    echo "$best"
}

printf "%-10s %12s %12s %8s %14s\n" vocab "quarrel (s)" "llama (s)" ratio "quarrel MB/s"
for vocab in llama-spm gpt-2; do
    model=$shared/tokenizer-vectors/ggml-vocab-$vocab.gguf
    q=$(best_time "$quarrel" tokenize -m "$model" -f "$tmp/text.txt" --ids --special --bos)
    q0=$(best_time "$quarrel" tokenize -m "$model" -f "$tmp/empty.txt" --ids --special --bos)
    qd=$(echo "$q - $q0" | bc -l)
    if [ -x "$llama" ]; then
        l=$(best_time "$llama" -m "$model" -f "$tmp/text.txt" --ids --log-disable --no-escape)
        l0=$(best_time "$llama" -m "$model" -f "$tmp/empty.txt" --ids --log-disable --no-escape)
        ld=$(echo "$l - $l0" | bc -l)
        ratio=$(echo "$ld / $qd" | bc -l)
        printf "%-10s %12.3f %12.3f %7.1fx %14.1f\n" "$vocab" "$qd" "$ld" "$ratio" "$(echo "$mb / $qd" | bc -l)"
    else
        printf "%-10s %12.3f %12s %8s %14.1f\n" "$vocab" "$qd" "n/a" "-" "$(echo "$mb / $qd" | bc -l)"
    fi
done
[ -x "$llama" ] || echo "(no llama-tokenize at $llama: set LLAMA_TOKENIZE to compare)"
echo "ratio = llama.cpp time / quarrel time (higher is better for quarrel)"
