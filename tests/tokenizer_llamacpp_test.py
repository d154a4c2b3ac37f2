#!/usr/bin/env python3
"""Differential test against llama.cpp's own llama-tokenize on generated text: every
vocab in ../shared/tokenizer-vectors, texts mixing words, spaces, newlines, digits,
several scripts, emoji and special-token strings, tokenized with special-token parsing
and with the vocabulary's BOS/EOS (llama-tokenize's defaults) by `quarrel tokenize
--special --bos --ids`. Needs a llama.cpp build: $LLAMA_TOKENIZE, else
/work/llama.cpp-src/build/bin/llama-tokenize; skipped (visibly) without one.
"""
import os
import random
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
VOCABS = ["llama-spm", "phi-3", "gpt-2", "falcon", "mpt", "refact", "starcoder", "deepseek-llm",
          "deepseek-coder", "bert-bge"]
PIECES = ["Hello", " world", "the", "'s", "'ll", "don't", " ", "  ", "   ", "\n", "\n\n", "\t", " ?",
          " .", "3", "333", "1234567", "Ünïcödé", "привет", "你好", "🦙", "🦙🦙", "<s>", "</s>",
          "<unk>", "<|endoftext|>", "<|end|>", "<|user|>", "[CLS]", "[SEP]", "[MASK]", " ' ",
          "y'all", "I'M", "ﬁ", "ǅ", "१२३", "ا", "ñ", "e\u0301", "\u00a0", "\u3000", "\r\n", "$", "~"]


def gen_text(rng):
    parts = []
    for _ in range(rng.randint(1, 25)):
        if rng.random() < 0.7:
            parts.append(rng.choice(PIECES))
        else:
            parts.append(chr(rng.choice([rng.randint(0x20, 0x7E), rng.randint(0xA0, 0x2FF),
                                         rng.randint(0x400, 0x4FF), rng.randint(0x3040, 0x30FF),
                                         rng.randint(0x4E00, 0x4FFF), rng.randint(0x1F300, 0x1F64F)])))
    return "".join(parts).encode("utf-8")


def llama_ids(llama, vocab, text):
    r = subprocess.run([llama, "-m", vocab, "--stdin", "--ids", "--log-disable", "--no-escape"],
                       input=text, capture_output=True)
    if r.returncode != 0:
        return None
    line = r.stdout.decode().strip().splitlines()[-1]
    return [int(x) for x in line.strip("[]").split(",") if x.strip()]


def quarrel_ids(qbin, vocab, text):
    r = subprocess.run([qbin, "tokenize", "-m", vocab, "-f", "/dev/stdin", "--ids", "--special", "--bos"],
                       input=text, capture_output=True)
    if r.returncode != 0:
        return None
    return [int(x) for x in r.stdout.split()]


def main():
    shared = os.environ.get("QUARREL_SHARED", os.path.join(HERE, "..", "..", "shared"))
    qbin = os.environ.get("QUARREL_BIN")
    llama = os.environ.get("LLAMA_TOKENIZE", "/work/llama.cpp-src/build/bin/llama-tokenize")
    n_texts = int(os.environ.get("QUARREL_DIFF_TEXTS", "12"))
    if not qbin or not os.path.exists(llama) or not os.path.isdir(os.path.join(shared, "tokenizer-vectors")):
        print("SKIPPED: needs QUARREL_BIN, ../shared/tokenizer-vectors and llama-tokenize "
              f"(looked for {llama})")
        return 77
    cache = os.environ.get("QUARREL_CACHE", os.path.join(HERE, "..", ".cache"))
    vocabs = [(n, os.path.join(shared, "tokenizer-vectors", f"ggml-vocab-{n}.gguf")) for n in VOCABS]
    qwen = os.path.join(cache, "tokenizer", "deepseek-r1-qwen-vocab.gguf")  # see tokenizer_novocab_test.py
    if os.path.exists(qwen):
        vocabs.append(("deepseek-r1-qwen", qwen))
    rng = random.Random(1234)
    failed = total = 0
    for name, vocab in vocabs:
        ok = 0
        for _ in range(n_texts):
            text = gen_text(rng)
            want = llama_ids(llama, vocab, text)
            got = quarrel_ids(qbin, vocab, text)
            total += 1
            if want is not None and want == got:
                ok += 1
            else:
                failed += 1
                print(f"  {name}: {text!r}\n    llama.cpp: {want}\n    quarrel:   {got}")
        print(f"vocab {name:16} {ok}/{n_texts} texts match llama-tokenize")
    print(f"{total - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
