#!/usr/bin/env bash
# The device run of the server comparison (docs/server.md, "Benchmark"): build quarrel with
# CUDA for sm_90, then bench/serve-compare.sh with DEVICE=cuda: quarrel serve --device cuda
# against a CUDA llama-server (--parallel 32 -ngl 99) on the same model, 1, 8 and 32
# concurrent streams, and print the side-by-side table. It never builds llama.cpp.
#
#   LLAMACPP_BIN=/path/to/llama.cpp/build/bin [QUARREL_MODEL=model.gguf] [OUT=...] \
#   [SYNTH_TYPE=Q4_K_M] [MODELS_DIR=/tmp/qr-models] [SKIP_BUILD=1] \
#   [MAX_TOKENS=128] [REQUESTS=2] [CTX=16384] bash bench/device/run-serve.sh
#
# The model: QUARREL_MODEL when set; else the default Gemma 3 model
# (.cache/models/gemma-3-270m-q4_k_m.gguf) when present; else a `quarrel synth` Gemma 3 1B
# of type SYNTH_TYPE (random weights, the real shapes and 512-token sliding window), made
# with the vocabulary in QUARREL_SHARED (default .devdeps/shared, else ../shared).
# Leaves in $OUT: device.txt, the build logs, serve/ (each server's log and JSON) and
# serve.md (the table).
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
OUT=${OUT:-/tmp/quarrel-serve-out}
BUILD=${BUILD:-$ROOT/build-device}
MODELS_DIR=${MODELS_DIR:-/tmp/qr-models}
SYNTH_TYPE=${SYNTH_TYPE:-Q4_K_M}
mkdir -p "$OUT" "$MODELS_DIR"
cd "$ROOT" || exit 1

llama_server=${LLAMACPP_BIN:-}/llama-server
if [ -z "${LLAMACPP_BIN:-}" ] || [ ! -x "$llama_server" ]; then
  echo "LLAMACPP_BIN must name a CUDA build of llama.cpp whose folder holds llama-server (got '${LLAMACPP_BIN:-}')" >&2
  exit 2
fi
. "$ROOT/bench/device/devdeps.sh" # also QUARREL_SHARED and $OUT/device.txt

if [ -z "${SKIP_BUILD:-}" ]; then
  cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 \
    -DQUARREL_SHARED_DIR="$QUARREL_SHARED" >"$OUT/configure.log" 2>&1 || { tail -30 "$OUT/configure.log"; exit 1; }
  cmake --build "$BUILD" -j"${JOBS:-$(nproc)}" --target quarrel_cli >"$OUT/build.log" 2>&1 \
    || { grep -E "error|Error" -A3 "$OUT/build.log" | head -60; exit 1; }
  echo "built"
fi
QR=$BUILD/bin/quarrel

if [ -n "${QUARREL_MODEL:-}" ]; then
  model=$QUARREL_MODEL
  [ -e "$model" ] || { echo "QUARREL_MODEL=$model does not exist" >&2; exit 2; }
elif [ -e "$ROOT/.cache/models/gemma-3-270m-q4_k_m.gguf" ]; then
  model=$ROOT/.cache/models/gemma-3-270m-q4_k_m.gguf
else
  model=$MODELS_DIR/synth-gemma3-1b-$SYNTH_TYPE.gguf
  if [ ! -e "$model" ]; then
    t0=$SECONDS
    "$QR" synth --arch gemma3 --shape 1b --type "$SYNTH_TYPE" -j "$(nproc)" -o "$model" >"$OUT/synth.log" 2>&1 \
      || { tail -5 "$OUT/synth.log"; echo "synth failed" >&2; exit 1; }
    echo "synth gemma3 1b $SYNTH_TYPE: $((SECONDS - t0)) s"
  fi
fi
echo "model: $model"

DEVICE=cuda QUARREL_BIN=$QR bash "$ROOT/bench/serve-compare.sh" "$model" "$llama_server" "$OUT/serve" 2>&1 |
  tee "$OUT/serve.md"
rc=${PIPESTATUS[0]}
if [ "$rc" != 0 ]; then
  echo "serve-compare.sh failed (exit $rc); server logs:" >&2
  tail -n 20 "$OUT"/serve/*.log >&2
fi
exit "$rc"
