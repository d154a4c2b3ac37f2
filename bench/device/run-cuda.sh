#!/usr/bin/env bash
# The one script a device call runs: configure and build quarrel with CUDA for sm_90,
# run the `cuda` tests and the GEMV benchmark, and leave the logs in $OUT.
#   run: bash bench/device/run-cuda.sh            (the device tool sets OUT)
# The device image lacks libpcre2-dev and libutf8proc-dev; when pkg-config cannot find
# them, the script unpacks .deb files carried in .devdeps/ (gitignored; fetch them with
# `cd .devdeps && apt-get download libpcre2-dev libpcre2-8-0 libutf8proc-dev libutf8proc2
#  libcjson-dev libcjson1`)
# into a private prefix, never into /.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
OUT=${OUT:-/tmp/quarrel-cuda-out}
BUILD=${BUILD:-$ROOT/build-device}
mkdir -p "$OUT"
cd "$ROOT" || exit 1

. "$ROOT/bench/device/devdeps.sh"

{ nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.max.mem --format=csv; nvcc --version | tail -2; } | tee "$OUT/device.txt"
# The device copy of the tree may lack git history: record the commit where it exists.
c=$(git -C "$ROOT" rev-parse --verify -q HEAD 2>/dev/null) || c="unknown (no git history here)"
echo "commit: $c" | tee -a "$OUT/device.txt"

set -e
cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 \
  -DCMAKE_CUDA_FLAGS="-Xptxas=-v" >"$OUT/configure.log" 2>&1 || { tail -30 "$OUT/configure.log"; exit 1; }
cmake --build "$BUILD" -j"$(nproc)" --target test_cuda_kernels cuda_gemv_bench >"$OUT/build.log" 2>&1 \
  || { grep -E "error|Error" -A3 "$OUT/build.log" | head -60; exit 1; }
grep -E "Compiling entry|registers|spill" "$OUT/build.log" > "$OUT/ptxas.txt" || true
set +e

( cd "$BUILD" && ctest -L cuda --output-on-failure -V ) 2>&1 | tee "$OUT/ctest.log"
test_rc=${PIPESTATUS[0]}
"$BUILD"/bin/cuda_gemv_bench "$@" 2>&1 | tee "$OUT/bench.md"
bench_rc=${PIPESTATUS[0]}
echo "ctest rc=$test_rc bench rc=$bench_rc"
[ "$test_rc" = 0 ] && [ "$bench_rc" = 0 ]
