#!/usr/bin/env bash
# quarrel serve vs llama.cpp's llama-server on one model, side by side, with
# bench/serve-load.py (N concurrent streams at 1, 8 and 32; ignore_eos, temperature 0).
#
#   bench/serve-compare.sh MODEL.gguf [LLAMA_SERVER] [OUT_DIR]
#
# LLAMA_SERVER defaults to /work/llama.cpp-src/build/bin/llama-server (built by hand with
# -DLLAMA_BUILD_SERVER=ON; never part of this project). Both servers get the same threads
# (THREADS, default 2), --parallel 32 and a KV cache of CTX cells (default 16384, shared by
# all sequences in quarrel, split into 32 slots of CTX/32 in llama-server). MAX_TOKENS
# (default 128) and REQUESTS per stream (default 2) go to the load generator. LLAMA_ARGS adds
# llama-server flags (e.g. "--poll 0": no busy-waiting, which matters on a shared machine),
# QUARREL_ARGS quarrel serve flags.
#
# DEVICE=cpu (default) or cuda: with cuda, quarrel serve runs with --device cuda and
# llama-server (a CUDA build: LLAMA_SERVER=/path/to/llama.cpp/build/bin/llama-server) with
# -ngl 99, all layers on the GPU; THREADS then defaults to 4 (host-side work only).
# bench/device/run-serve.sh runs this on the device machine.
set -euo pipefail
cd "$(dirname "$0")/.."

model=${1:?usage: bench/serve-compare.sh MODEL.gguf [LLAMA_SERVER] [OUT_DIR]}
llama_server=${2:-/work/llama.cpp-src/build/bin/llama-server}
out=${3:-/tmp/serve-compare}
device=${DEVICE:-cpu}
case "$device" in
  cpu) threads=${THREADS:-2}; llama_device_args=() ;;
  cuda) threads=${THREADS:-4}; llama_device_args=(-ngl 99) ;;
  *) echo "DEVICE must be cpu or cuda (got '$device')" >&2; exit 2 ;;
esac
ctx=${CTX:-16384}
max_tokens=${MAX_TOKENS:-128}
requests=${REQUESTS:-2}
quarrel=${QUARREL_BIN:-build/bin/quarrel}
mkdir -p "$out"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

wait_ready() { # port
    for _ in $(seq 1 600); do
        if python3 -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:$1/health', timeout=1)" 2>/dev/null; then
            return 0
        fi
        sleep 0.2
    done
    echo "server on port $1 did not become ready" >&2
    return 1
}

run_one() { # label, command...
    local label=$1
    shift
    local port
    port=$(free_port)
    "$@" --port "$port" >"$out/$label.log" 2>&1 &
    local pid=$!
    wait_ready "$port"
    python3 bench/serve-load.py --url "http://127.0.0.1:$port" --streams 1,8,32 --requests "$requests" \
        --max-tokens "$max_tokens" --label "$label" --json "$out/$label.json"
    kill "$pid"
    wait "$pid" 2>/dev/null || true
}

name=$(basename "$model" .gguf)
# shellcheck disable=SC2086 # QUARREL_ARGS and LLAMA_ARGS are word lists
run_one "quarrel-$name" "$quarrel" serve -m "$model" -t "$threads" --parallel 32 -c "$ctx" --host 127.0.0.1 \
    --device "$device" ${QUARREL_ARGS:-}
grep -o "device [a-z]*)" "$out/quarrel-$name.log" | head -1 | sed 's/^/quarrel serve: /; s/)$//' || true
# shellcheck disable=SC2086
run_one "llama-server-$name" "$llama_server" -m "$model" -t "$threads" -tb "$threads" --parallel 32 -c "$ctx" \
    --host 127.0.0.1 --no-webui ${llama_device_args[@]+"${llama_device_args[@]}"} ${LLAMA_ARGS:-}
python3 - "$out/quarrel-$name.json" "$out/llama-server-$name.json" "$device" "$name" <<'EOF'
import json, sys
q, l = (json.load(open(p)) for p in sys.argv[1:3])
print(f'\n{sys.argv[4]} on {sys.argv[3]}, --parallel 32')
print(f'{"streams":>7} | {"quarrel tok/s":>13} {"p50":>7} {"p99":>7} | {"llama-server tok/s":>18} {"p50":>7} {"p99":>7} | ratio')
for a, b in zip(q['levels'], l['levels']):
    print(f'{a["streams"]:>7} | {a["tok_per_s"]:>13.1f} {a["latency_p50_s"]:>6.2f}s {a["latency_p99_s"]:>6.2f}s | '
          f'{b["tok_per_s"]:>18.1f} {b["latency_p50_s"]:>6.2f}s {b["latency_p99_s"]:>6.2f}s | {a["tok_per_s"] / b["tok_per_s"]:.2f}x')
EOF
