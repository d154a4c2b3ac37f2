#!/usr/bin/env bash
# Where the time of a CUDA forward pass goes, per kernel: builds quarrel for sm_90, makes
# the Llama-3.1-8B-shape model of each type with `quarrel synth`, and runs
# cuda_forward_bench (-p P -n N -r 1) under Nsight Compute with only the kernel-duration
# metric and no clock control (the device entry's METHOD.md), then sums durations by
# kernel name. Also times the GEMV per format (cuda_gemv_bench).
#
#   OUT=... [TYPES="Q4_K_M F16"] [P=512] [N=0] bash bench/device/profile-kernels.sh
# Leaves in $OUT: gemv.txt, profile-<type>.csv (raw), profile-<type>.txt (by kernel).
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
OUT=${OUT:-/tmp/quarrel-profile}
BUILD=${BUILD:-$ROOT/build-device}
TYPES=${TYPES:-Q4_K_M F16}
MODELS_DIR=${MODELS_DIR:-/tmp/qr-models}
P=${P:-512}
N=${N:-1}
mkdir -p "$OUT" "$MODELS_DIR"
cd "$ROOT" || exit 1
. "$ROOT/bench/device/devdeps.sh"
cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 >"$OUT/configure.log" 2>&1 || { tail -30 "$OUT/configure.log"; exit 1; }
cmake --build "$BUILD" -j"$(nproc)" --target quarrel_cli cuda_gemv_bench cuda_forward_bench >"$OUT/build.log" 2>&1 ||
  { grep -E "error" -A3 "$OUT/build.log" | head -40; exit 1; }
[ -n "${SKIP_GEMV:-}" ] || "$BUILD"/bin/cuda_gemv_bench | tee "$OUT/gemv.txt"
NCU=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
for t in $TYPES; do
  m=$MODELS_DIR/synth-llama-8b-$t.gguf
  if [ ! -e "$m" ]; then
    t0=$SECONDS
    "$BUILD"/bin/quarrel synth --arch llama --shape 8b --type "$t" -j "$(nproc)" -o "$m" >/dev/null || { echo "synth $t failed"; continue; }
    echo "synth $t: $((SECONDS - t0)) s"
  fi
  "$BUILD"/bin/cuda_forward_bench "$m" -p "$P" -n "$N" -r 2 | tee -a "$OUT/forward.txt"
  [ -n "$NCU" ] || { echo "no ncu"; continue; }
  QUARREL_CUDA_NO_GRAPH=1 "$NCU" --clock-control none --metrics gpu__time_duration.sum --csv \
    "$BUILD"/bin/cuda_forward_bench "$m" -p "$P" -n "$N" -r 1 >"$OUT/profile-$t.csv" 2>"$OUT/profile-$t.err"
  python3 - "$OUT/profile-$t.csv" <<'PY' | tee "$OUT/profile-$t.txt"
import csv, sys, collections
rows = [r for r in csv.reader(open(sys.argv[1])) if len(r) > 10]
hdr = rows[0]; k = hdr.index("Kernel Name"); v = hdr.index("Metric Value"); u = hdr.index("Metric Unit")
tot = collections.Counter(); cnt = collections.Counter()
for r in rows[1:]:
    try: val = float(r[v].replace(",", ""))
    except ValueError: continue
    # ncu spells units "nsecond" in some versions and "ns" in others (13.0: "ns")
    scale = {"nsecond": 1e-3, "ns": 1e-3, "usecond": 1, "us": 1, "msecond": 1e3, "ms": 1e3}.get(r[u])
    if scale is None: sys.exit(f"unknown time unit {r[u]!r}")
    name = r[k].split("(")[0][:90]
    tot[name] += val * scale; cnt[name] += 1
s = sum(tot.values())
print(f"total kernel time {s/1e3:.2f} ms over {sum(cnt.values())} launches")
for n, t in tot.most_common(25): print(f"{t/1e3:9.3f} ms {100*t/s:5.1f}% {cnt[n]:6d}x  {n}")
PY
done
