#!/usr/bin/env bash
# The device run of the CUDA forward pass (docs/cuda.md, docs/performance.md): build
# quarrel with CUDA for sm_90, run the `cuda` tests, then for each format generate the
# Llama-3.1-8B-shape model on the device with `quarrel synth` and measure pp512 / tg128
# and the decode roofline (cuda_forward_bench), and, given a llama.cpp CUDA build, the
# same models with llama-bench in the same run. It never builds llama.cpp.
#
#   OUT=... [LLAMACPP_BIN=/path/to/llama.cpp/build/bin] [QUARREL_SHARED=...] \
#   [TYPES="Q4_K_M Q4_0 Q8_0 F16"] [SKIP_TESTS=1] [MODELS_DIR=/tmp/qr-models] \
#     bash bench/device/run-forward.sh
#
# QUARREL_SHARED (default .devdeps/shared, else ../shared) holds models/stories260K.gguf,
# models/synth/ and tokenizer-vectors/ggml-vocab-llama-spm.gguf (synth's vocabulary).
# Leaves in $OUT: device.txt, ctest.log, bench.md (the table), llama-bench.md.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
OUT=${OUT:-/tmp/quarrel-cuda-out}
BUILD=${BUILD:-$ROOT/build-device}
TYPES=${TYPES:-Q4_K_M Q4_0 Q8_0 F16}
MODELS_DIR=${MODELS_DIR:-/tmp/qr-models}
mkdir -p "$OUT" "$MODELS_DIR"
cd "$ROOT" || exit 1
. "$ROOT/bench/device/devdeps.sh" # also QUARREL_SHARED and $OUT/device.txt

cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 \
  -DQUARREL_SHARED_DIR="$QUARREL_SHARED" >"$OUT/configure.log" 2>&1 || { tail -30 "$OUT/configure.log"; exit 1; }
cmake --build "$BUILD" -j"${JOBS:-$(nproc)}" \
  >"$OUT/build.log" 2>&1 || { grep -E "error|Error" -A3 "$OUT/build.log" | head -60; exit 1; }
echo "built"

test_rc=0
if [ -z "${SKIP_TESTS:-}" ]; then
  ( cd "$BUILD" && ctest -L cuda --output-on-failure -V ) >"$OUT/ctest.log" 2>&1
  test_rc=$?
  grep -E "worst rel|batch invariance|CHECK failed|SKIPPED|absent|tests passed|Passed|Failed|ok$|failures" "$OUT/ctest.log" | head -60
fi

QR=$BUILD/bin/quarrel
"$BUILD"/bin/cuda_forward_bench --header | tee "$OUT/bench.md"
: >"$OUT/llama-bench.md"
for t in $TYPES; do
  m=$MODELS_DIR/synth-llama-8b-$t.gguf
  if [ ! -e "$m" ]; then
    t0=$SECONDS
    "$QR" synth --arch llama --shape 8b --type "$t" -j "$(nproc)" -o "$m" >/dev/null || { echo "synth $t failed"; continue; }
    echo "synth $t: $((SECONDS - t0)) s"
  fi
  "$BUILD"/bin/cuda_forward_bench "$m" -p 512 -n 128 -r 3 2>&1 | tee -a "$OUT/bench.md"
  if [ -n "${LLAMACPP_BIN:-}" ] && [ -x "$LLAMACPP_BIN/llama-bench" ]; then
    "$LLAMACPP_BIN"/llama-bench -m "$m" -p 512 -n 128 -r 3 -ngl 99 -o md 2>/dev/null | tee -a "$OUT/llama-bench.md"
  fi
done
echo "ctest rc=$test_rc"
