#!/usr/bin/env python3
"""`quarrel synth` checked against independent references.

- Tensor names and shapes per architecture: llama.cpp's loaders (src/models/llama.cpp,
  qwen2.cpp, gemma3.cpp load_arch_tensors), restated below, and real GGUF files where we
  have them (the default Gemma 3 270M model, ../shared/models/llama-2-tiny-random.gguf).
- Files are read back with the `gguf` package; quantized weights are dequantized with
  its reference code and compared with the F32 file of the same seed.
- rope_freqs.weight against conversion/llama.py's formula.
- When built, `quarrel quantize` and llama.cpp's llama-quantize must read our files and
  produce the same tensors (and, for llama-quantize, the same Q4_K_M bytes).
"""
import hashlib
import math
import os
import subprocess
import sys
import tempfile

import numpy as np
from gguf import GGUFReader, GGMLQuantizationType as QT
from gguf.quants import dequantize

BIN = os.environ.get("QUARREL_BIN", "build/bin/quarrel")
SHARED = os.environ.get("QUARREL_SHARED", "../shared")
CACHE = os.environ.get("QUARREL_CACHE", ".cache")
VOCAB = os.path.join(SHARED, "tokenizer-vectors", "ggml-vocab-llama-spm.gguf")
LLAMA_CPP_BIN = os.environ.get("LLAMA_CPP_BIN", "/work/llama.cpp-src/build/bin")

failures = []
_readers = {}


def reader(path):
    """GGUFReader parses a 32000-token vocabulary in about a second: open each file once."""
    if path not in _readers:
        _readers[path] = GGUFReader(path)
    return _readers[path]


def check(cond, msg):
    if not cond:
        failures.append(msg)
        print("FAIL:", msg, file=sys.stderr)


def run(args, **kw):
    return subprocess.run([BIN] + args, capture_output=True, text=True, **kw)


def synth(tmp, arch, typ, name=None, extra=()):
    out = os.path.join(tmp, name or f"{arch}-{typ}.gguf")
    p = run(["synth", "--arch", arch, "--type", typ, "-o", out, "--vocab", VOCAB, *extra])
    if p.returncode != 0:
        raise RuntimeError(f"synth {arch} {typ} {extra} failed: {p.stderr}")
    return out


def sha(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def field(r, key):
    f = r.fields.get(key)
    return None if f is None else f.contents()


def tensors(r):
    return {t.name: t for t in r.tensors}


# ---- llama.cpp's tensor lists (ne order), restated from src/models/*.cpp ---------------------

def expected_tensors(arch, hp):
    e, v, ff, L = hp["embd"], hp["vocab"], hp["ff"], hp["layers"]
    hd = hp["head_dim"]
    q, kv = hp["heads"] * hd, hp["kv_heads"] * hd
    t = {"token_embd.weight": (e, v), "output_norm.weight": (e,)}
    if not hp["tied"]:
        t["output.weight"] = (e, v)
    for i in range(L):
        b = f"blk.{i}."
        t.update({b + "attn_norm.weight": (e,), b + "attn_q.weight": (e, q), b + "attn_k.weight": (e, kv),
                  b + "attn_v.weight": (e, kv), b + "attn_output.weight": (q, e), b + "ffn_norm.weight": (e,),
                  b + "ffn_gate.weight": (e, ff), b + "ffn_up.weight": (e, ff), b + "ffn_down.weight": (ff, e)})
        if arch == "qwen2":
            t.update({b + "attn_q.bias": (q,), b + "attn_k.bias": (kv,), b + "attn_v.bias": (kv,)})
        if arch == "gemma3":
            t.update({b + "attn_q_norm.weight": (hd,), b + "attn_k_norm.weight": (hd,),
                      b + "post_attention_norm.weight": (e,), b + "post_ffw_norm.weight": (e,)})
    return t


TINY = {"embd": 256, "layers": 2, "heads": 8, "kv_heads": 4, "ff": 768, "vocab": 32000, "head_dim": 32,
        "tied": False}
TINY_BY_ARCH = {
    "llama": dict(TINY),
    "mistral": dict(TINY),
    "qwen2": dict(TINY),
    "gemma3": dict(TINY, head_dim=64, tied=True),
}

# The <arch>.* keys and values each architecture's converter writes (conversion/*.py),
# for the tiny shapes documented in docs/synth.md.
COMMON = {"context_length": 2048, "embedding_length": 256, "block_count": 2, "feed_forward_length": 768,
          "attention.head_count": 8, "attention.head_count_kv": 4}
EXPECTED_KEYS = {
    "llama": ("llama", dict(COMMON, **{"rope.freq_base": 10000.0, "attention.layer_norm_rms_epsilon": 1e-5,
                                       "vocab_size": 32000, "rope.dimension_count": 32})),
    "mistral": ("llama", dict(COMMON, **{"rope.freq_base": 10000.0, "attention.layer_norm_rms_epsilon": 1e-5,
                                         "vocab_size": 32000, "rope.dimension_count": 32,
                                         "attention.sliding_window": 4096})),
    "qwen2": ("qwen2", dict(COMMON, **{"rope.freq_base": 1e6, "attention.layer_norm_rms_epsilon": 1e-6})),
    "gemma3": ("gemma3", dict(COMMON, **{"rope.freq_base": 1e6, "attention.layer_norm_rms_epsilon": 1e-6,
                                         "attention.key_length": 64, "attention.value_length": 64,
                                         "attention.sliding_window": 128, "rope.freq_base_swa": 10000.0})),
}

PURE_FTYPE = {"F32": 0, "F16": 1, "Q4_0": 2, "Q4_1": 3, "Q8_0": 7, "Q5_0": 8, "Q5_1": 9, "Q2_K": 10,
              "Q3_K": 11, "Q4_K": 14, "Q5_K": 16, "Q6_K": 18, "BF16": 32}


def close(a, b):
    return math.isclose(float(a), float(b), rel_tol=1e-6)


def check_structure(path, arch, typ, hp=None):
    hp = hp or TINY_BY_ARCH[arch]
    r = reader(path)
    tag = f"{arch}/{typ}"
    ts = tensors(r)
    exp = expected_tensors(arch, hp)
    check(set(ts) == set(exp), f"{tag}: tensor names differ: extra {sorted(set(ts) - set(exp))[:5]}, "
                               f"missing {sorted(set(exp) - set(ts))[:5]}")
    for n, shape in exp.items():
        if n in ts:
            check(tuple(int(x) for x in ts[n].shape) == shape, f"{tag}: {n} shape {list(ts[n].shape)} != {shape}")
    gguf_arch, keys = EXPECTED_KEYS[arch]
    check(field(r, "general.architecture") == gguf_arch, f"{tag}: general.architecture")
    arch_keys = {k[len(gguf_arch) + 1:] for k in r.fields if k.startswith(gguf_arch + ".")}
    check(arch_keys == set(keys), f"{tag}: {gguf_arch}.* keys {sorted(arch_keys)} != {sorted(keys)}")
    for k, v in keys.items():
        got = field(r, f"{gguf_arch}.{k}")
        check(got is not None and close(got, v), f"{tag}: {gguf_arch}.{k} = {got}, expected {v}")
    check(field(r, "general.quantization_version") == 2, f"{tag}: general.quantization_version")
    if typ in PURE_FTYPE:
        check(field(r, "general.file_type") == PURE_FTYPE[typ], f"{tag}: general.file_type")
        for n, t in ts.items():
            want = QT[typ] if len(exp[n]) == 2 else QT.F32
            check(t.tensor_type == want, f"{tag}: {n} is {t.tensor_type.name}, expected {want.name}")
    for n, t in ts.items():
        if len(exp.get(n, ())) == 1:
            check(t.tensor_type == QT.F32, f"{tag}: 1-D tensor {n} is {t.tensor_type.name}")
    return r


def check_tokenizer(r, n_vocab, tag):
    v = reader(VOCAB)
    src_tokens = field(v, "tokenizer.ggml.tokens")
    tokens = field(r, "tokenizer.ggml.tokens")
    scores = field(r, "tokenizer.ggml.scores")
    types = field(r, "tokenizer.ggml.token_type")
    n0 = len(src_tokens)
    check(len(tokens) == len(scores) == len(types) == n_vocab, f"{tag}: tokenizer arrays not {n_vocab} long")
    check(tokens[:n0] == src_tokens, f"{tag}: the vocabulary's tokens were not copied")
    check(list(scores[:n0]) == list(field(v, "tokenizer.ggml.scores")), f"{tag}: scores not copied")
    check(list(types[:n0]) == list(field(v, "tokenizer.ggml.token_type")), f"{tag}: token types not copied")
    check(all(t == 5 for t in types[n0:]), f"{tag}: padding tokens are not UNUSED (5)")
    check(all(s == 0.0 for s in scores[n0:]), f"{tag}: padding scores are not 0")
    check(tokens[n0:] == [f"<unused_{i}>" for i in range(n_vocab - n0)], f"{tag}: padding texts")
    check(len(set(tokens)) == len(tokens), f"{tag}: token texts are not unique")
    for k in v.fields:
        if k.startswith("tokenizer.") and k not in ("tokenizer.ggml.tokens", "tokenizer.ggml.scores",
                                                    "tokenizer.ggml.token_type"):
            check(field(r, k) == field(v, k), f"{tag}: {k} not copied")


def values(r, name):
    t = tensors(r)[name]
    return dequantize(t.data, t.tensor_type).reshape(-1).astype(np.float64)


# ---- the checks -------------------------------------------------------------------------------

def test_arches(tmp):
    for arch in ("llama", "mistral", "qwen2", "gemma3"):
        for typ in ("F32", "Q8_0", "Q4_K"):
            path = synth(tmp, arch, typ, extra=["-j", "2"])
            r = check_structure(path, arch, typ)
            if typ == "F32":
                check_tokenizer(r, 32000, f"{arch}/{typ}")
        check_values(tmp, arch)


def check_values(tmp, arch):
    f32 = reader(os.path.join(tmp, f"{arch}-F32.gguf"))
    q8 = reader(os.path.join(tmp, f"{arch}-Q8_0.gguf"))
    w = values(f32, "token_embd.weight")
    check(abs(w.mean()) < 1e-3 and abs(w.std() - 0.02) < 0.02 * 0.02, f"{arch}: token_embd mean {w.mean()} std {w.std()}")
    for n, t in tensors(f32).items():
        if n.endswith("norm.weight"):
            check(np.all(values(f32, n) == 1.0), f"{arch}: {n} is not all 1.0")
        elif n.endswith(".bias"):
            b = values(f32, n)
            check(0.01 < b.std() < 0.03, f"{arch}: {n} std {b.std()}")
        elif len(t.shape) == 2:
            a, b = values(f32, n), values(q8, n)
            # the Q8_0 file holds the same weights, rounded: error within half a step
            check(np.abs(a - b).max() <= np.abs(a).max() / 127 * 0.51 + 1e-7, f"{arch}: Q8_0 {n} differs from F32")
    # distinct tensors get distinct streams
    check(not np.array_equal(values(f32, "blk.0.ffn_up.weight"), values(f32, "blk.0.ffn_gate.weight")),
          f"{arch}: ffn_up == ffn_gate")


def test_more_types(tmp):
    ref = reader(os.path.join(tmp, "llama-F32.gguf"))
    w_ref = values(ref, "blk.0.ffn_down.weight")
    for typ in ("F16", "BF16", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q2_K", "Q3_K", "Q5_K", "Q6_K"):
        path = synth(tmp, "llama", typ, extra=["-j", "2", "--tied"])
        r = check_structure(path, "llama", typ, dict(TINY, tied=True))
        w = values(r, "blk.0.ffn_down.weight")
        rel = np.sqrt(((w - w_ref) ** 2).mean()) / w_ref.std()
        check(rel < 0.6, f"llama/{typ}: relative RMS error {rel:.3f} against the F32 weights")


def test_mix(tmp):
    path = os.path.join(tmp, "llama-Q4_K_M.gguf")
    p = run(["synth", "--arch", "llama", "--type", "Q4_K_M", "-o", path, "--vocab", VOCAB])
    check(p.returncode == 0, f"synth Q4_K_M failed: {p.stderr}")
    if p.returncode != 0:
        return None
    r = reader(path)
    check(field(r, "general.file_type") == 15, "Q4_K_M: general.file_type != 15")
    types = {t.tensor_type for t in r.tensors if len(t.shape) == 2}
    check(types <= {QT.Q4_K, QT.Q5_K, QT.Q6_K, QT.Q5_0, QT.Q8_0}, f"Q4_K_M: unexpected types {types}")
    check(QT.Q4_K in types and QT.Q6_K in types, f"Q4_K_M: expected Q4_K and Q6_K tensors, got {types}")
    return path


def test_fallback(tmp):
    # 320 is not a multiple of 256: llama.cpp's fallback Q4_K -> Q5_0 on those rows
    path = synth(tmp, "llama", "Q4_K", "fb.gguf", ["--dim", "320", "--heads", "8", "--kv-heads", "4"])
    ts = tensors(reader(path))
    check(ts["blk.0.attn_q.weight"].tensor_type == QT.Q5_0, "fallback: attn_q (rows of 320) not Q5_0")
    check(ts["blk.0.ffn_down.weight"].tensor_type == QT.Q4_K, "fallback: ffn_down (rows of 768) not Q4_K")


def test_vocab_padding(tmp):
    path = synth(tmp, "llama", "Q8_0", "pad.gguf", ["--n-vocab", "32100", "--tied"])
    r = reader(path)
    check_tokenizer(r, 32100, "padding")
    check(tuple(int(x) for x in tensors(r)["token_embd.weight"].shape) == (256, 32100), "padding: token_embd shape")
    check(field(r, "llama.vocab_size") == 32100, "padding: llama.vocab_size")
    same = synth(tmp, "llama", "Q8_0", "pad2.gguf", ["--vocab", "32100", "--tied"])
    check(sha(same) == sha(path), "--vocab N and --n-vocab N differ")


def test_determinism(tmp):
    a = synth(tmp, "qwen2", "Q4_0", "d1.gguf", ["--seed", "7"])
    b = synth(tmp, "qwen2", "Q4_0", "d2.gguf", ["--seed", "7", "-j", "2"])
    c = synth(tmp, "qwen2", "Q4_0", "d3.gguf", ["--seed", "8"])
    check(sha(a) == sha(b), "same seed (1 vs 2 threads) gave different bytes")
    check(sha(a) != sha(c), "different seeds gave identical bytes")
    check(os.path.getsize(a) == os.path.getsize(c), "different seeds gave different sizes")


def test_std(tmp):
    path = synth(tmp, "llama", "F32", "std.gguf", ["--std", "0.1", "--tied"])
    w = values(GGUFReader(path), "token_embd.weight")
    check(abs(w.std() - 0.1) < 0.002, f"--std 0.1 gave std {w.std()}")


def test_rope_freqs(tmp):
    path = synth(tmp, "llama", "F32", "rf.gguf", ["--rope-freqs", "--tied"])
    got = values(GGUFReader(path), "rope_freqs.weight")
    # conversion/llama.py generate_extra_tensors, Llama 3.1 defaults
    base, dim = 10000.0, 32
    freqs = 1.0 / (np.float32(base) ** (np.arange(0, dim, 2, dtype=np.float32) / np.float32(dim)))
    factor, low, high, old = 8.0, 1.0, 4.0, 8192
    want = []
    for f in freqs:
        wl = 2 * math.pi / float(f)
        if wl < old / high:
            want.append(1.0)
        elif wl > old / low:
            want.append(factor)
        else:
            s = (old / wl - low) / (high - low)
            want.append(1 / ((1 - s) / factor + s))
    check(np.allclose(got, np.array(want, dtype=np.float32), rtol=1e-5), f"rope_freqs {got} != {want}")


def test_errors(tmp):
    out = os.path.join(tmp, "err.gguf")
    cases = [
        (["--arch", "gpt9", "--type", "Q4_0"], "unknown --arch"),
        (["--arch", "llama", "--shape", "huge", "--type", "Q4_0"], "unknown --shape"),
        (["--arch", "llama", "--type", "Q9_9"], "unknown --type"),
        (["--arch", "llama", "--type", "Q4_0", "--dim", "250"], "not divisible"),
        (["--arch", "llama", "--type", "Q4_0", "--dim", "240", "--heads", "8"], "not a multiple of 32"),
        (["--arch", "llama", "--type", "Q4_0", "--dim", "192", "--heads", "6"], "not a multiple of --kv-heads"),
        (["--arch", "llama", "--type", "Q4_0", "--window", "64"], "no sliding window"),
        (["--arch", "qwen2", "--type", "Q4_0", "--head-dim", "64"], "n_embd"),
        (["--arch", "llama", "--type", "Q4_0", "--n-vocab", "100"], "smaller than"),
    ]
    for args, needle in cases:
        p = run(["synth", *args, "-o", out, "--vocab", VOCAB])
        check(p.returncode == 1, f"{args}: exit code {p.returncode}, expected 1")
        check(needle in p.stderr, f"{args}: stderr lacks '{needle}': {p.stderr.strip()}")
        check(not os.path.exists(out), f"{args}: left an output file behind")
    p = run(["synth", "--arch", "llama", "--type", "Q4_0", "-o", out, "--vocab", os.path.join(tmp, "none.gguf")])
    check(p.returncode == 1 and "--vocab" in p.stderr and not os.path.exists(out), "missing vocab file")
    p = run(["synth", "--arch", "llama", "--type", "Q4_0", "-o", os.path.join(tmp, "no/such/dir/x.gguf"),
             "--vocab", VOCAB])
    check(p.returncode == 1 and p.stderr.strip(), "unwritable output path")
    p = run(["synth", "--help"])
    check(p.returncode == 0 and "--arch" in p.stdout, "--help")
    p = run(["synth", "--arch", "llama"])
    check(p.returncode == 2, "missing --type/-o is a usage error (2)")


def test_against_real_files(tmp):
    """Our tensor suffixes and <arch>.* keys against real converted files."""
    refs = [("gemma3", os.path.join(CACHE, "models", "gemma-3-270m-q4_k_m.gguf"), {"rope.freq_base_swa"}),
            ("llama", os.path.join(SHARED, "models", "llama-2-tiny-random.gguf"), {"rope.freq_base", "vocab_size"})]
    for arch, path, extra_ok in refs:
        if not os.path.exists(path):
            print(f"SKIPPED part: {path} absent, no real-file comparison for {arch}")
            continue
        ours = reader(os.path.join(tmp, f"{arch}-Q8_0.gguf"))  # made by test_arches
        real = reader(path)
        suffixes = lambda r: {t.name.split(".", 2)[2] if t.name.startswith("blk.0.") else t.name
                              for t in r.tensors if not t.name.startswith("blk.") or t.name.startswith("blk.0.")}
        check(suffixes(ours) == suffixes(real), f"{arch}: tensors {sorted(suffixes(ours))} vs real {sorted(suffixes(real))}")
        prefix = arch + "."
        kr = {k: real.fields[k].types[0] for k in real.fields if k.startswith(prefix)}
        ko = {k: ours.fields[k].types[0] for k in ours.fields if k.startswith(prefix)}
        check(set(kr) <= set(ko), f"{arch}: keys of the real file missing: {sorted(set(kr) - set(ko))}")
        check({k[len(prefix):] for k in set(ko) - set(kr)} <= extra_ok, f"{arch}: unexpected keys {sorted(set(ko) - set(kr))}")
        for k in set(kr) & set(ko):
            check(kr[k] == ko[k], f"{arch}: {k} has type {ko[k].name}, real file {kr[k].name}")


def test_quantize_roundtrip(tmp, mix_path):
    src = synth(tmp, "llama", "F32", "rt-src.gguf")
    dst = os.path.join(tmp, "rt-q4km.gguf")
    p = run(["quantize", src, dst, "Q4_K_M"])
    if "not built yet" in p.stderr:
        print("SKIPPED part: `quarrel quantize` is not built yet; no synth -> quantize round trip")
    else:
        check(p.returncode == 0, f"quarrel quantize failed: {p.stderr}")
        if p.returncode == 0:
            compare_files(src, dst, "quarrel quantize")
            if mix_path:
                compare_data(mix_path, dst, "synth Q4_K_M vs quarrel quantize")
            print("checked: synth F32 -> quarrel quantize Q4_K_M")
    lq = os.path.join(LLAMA_CPP_BIN, "llama-quantize")
    if not os.access(lq, os.X_OK):
        print(f"SKIPPED part: {lq} absent; no llama-quantize comparison")
        return
    dst2 = os.path.join(tmp, "rt-lq.gguf")
    p = subprocess.run([lq, src, dst2, "Q4_K_M"], capture_output=True, text=True)
    check(p.returncode == 0, f"llama-quantize failed on a synth file: {p.stderr[-2000:]}")
    if p.returncode == 0:
        compare_files(src, dst2, "llama-quantize")
        if mix_path:
            compare_data(mix_path, dst2, "synth Q4_K_M vs llama-quantize")
        print("checked: synth F32 -> llama-quantize Q4_K_M (same tensors, metadata, Q4_K_M bytes)")


def test_llama_cpp_runs(tmp):
    """llama.cpp loads every architecture's file, reads the hyper-parameters we meant, and
    generates tokens with it."""
    exe = os.path.join(LLAMA_CPP_BIN, "llama-completion")
    if not os.access(exe, os.X_OK):
        print(f"SKIPPED part: {exe} absent; llama.cpp does not run the synth models")
        return
    want = {"llama": {"n_swa": "0", "n_embd_head_k": "32", "n_head_kv": "4", "n_vocab": "32000"},
            "mistral": {"n_embd_head_k": "32", "n_head_kv": "4"},
            "qwen2": {"n_embd_head_k": "32", "n_head_kv": "4"},
            "gemma3": {"n_swa": "128", "n_embd_head_k": "64", "n_head_kv": "4", "freq_base_swa": "10000.0"}}
    for arch, keys in want.items():
        path = os.path.join(tmp, f"{arch}-Q4_K.gguf")
        p = subprocess.run([exe, "-m", path, "-p", "Once upon a time", "-n", "4", "--temp", "0", "-t", "1",
                            "-no-cnv", "-v"], capture_output=True, text=True, timeout=300)
        check(p.returncode == 0, f"llama.cpp failed on {arch}: {p.stderr[-1500:]}")
        info = {}
        for line in (p.stdout + p.stderr).splitlines():
            if "print_info:" in line and "=" in line:
                k, _, v = line.split("print_info:", 1)[1].partition("=")
                info.setdefault(k.strip(), v.strip())
        for k, v in keys.items():
            check(info.get(k) == v, f"llama.cpp reads {arch} {k} = {info.get(k)}, expected {v}")
    print("checked: llama.cpp loads and runs all four architectures")


def compare_files(src, dst, tag):
    a, b = reader(src), reader(dst)
    ta, tb = tensors(a), tensors(b)
    check(set(ta) == set(tb), f"{tag}: tensor names differ")
    for n in ta.keys() & tb.keys():
        check(list(ta[n].shape) == list(tb[n].shape), f"{tag}: {n} shape differs")
    skip = {"general.file_type", "general.quantization_version"}
    ka = {k for k in a.fields if not k.startswith("GGUF.") and k not in skip}
    kb = {k for k in b.fields if not k.startswith("GGUF.") and k not in skip}
    check(ka <= kb, f"{tag}: metadata lost: {sorted(ka - kb)}")
    for k in ka & kb:
        check(field(a, k) == field(b, k), f"{tag}: {k} changed")
    check(field(b, "general.file_type") == 15, f"{tag}: file_type != 15")


def compare_data(ours, theirs, tag):
    a, b = tensors(reader(ours)), tensors(reader(theirs))
    for n in a.keys() & b.keys():
        same = a[n].tensor_type == b[n].tensor_type and bytes(a[n].data) == bytes(b[n].data)
        check(same, f"{tag}: {n} differs ({a[n].tensor_type.name} vs {b[n].tensor_type.name})")


def main():
    if not os.path.exists(VOCAB):
        print(f"SKIPPED: {VOCAB} absent (needs ../shared)")
        return 77
    with tempfile.TemporaryDirectory() as tmp:
        test_arches(tmp)
        test_more_types(tmp)
        mix = test_mix(tmp)
        test_fallback(tmp)
        test_vocab_padding(tmp)
        test_determinism(tmp)
        test_std(tmp)
        test_rope_freqs(tmp)
        test_errors(tmp)
        test_quantize_roundtrip(tmp, mix)
        test_against_real_files(tmp)
        test_llama_cpp_runs(tmp)
    print(f"{len(failures)} failures" if failures else "ok")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
