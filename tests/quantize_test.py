"""`quarrel quantize` against llama.cpp's llama-quantize.

1. For every non-IQ file in ../shared/models/synth/ (made by llama-quantize from
   tiny-llama-F32.gguf, default options, no importance matrix), quantizing the same F32
   file with quarrel must give every tensor the same block type and the same raw bytes.
   The files are read with the `gguf` package, an independent GGUF reader.
2. The mixes without a reference file (Q3_K_S, Q3_K_L, Q4_K_S, Q5_K_S, Q6_K, F16, BF16)
   must give the tensor types llama.cpp's rules prescribe for this model (2 layers,
   8 heads, 4 KV heads, untied output), read back by the gguf package, with metadata
   general.file_type / general.quantization_version as llama-quantize writes them.
   F16/BF16 data is checked against numpy's own conversion of the F32 weights.
3. The type rules beyond that model (row-length fallbacks, tied embeddings, Gemma 3 and
   Qwen2 tensor sets, 16- and 80-layer "use more bits" patterns, the 70B attn_v rule,
   8-expert MoE): quarrel's types for five synthetic shapes must equal the types
   llama-quantize (3f545bec) chose for the same shapes, recorded in
   tests/quantize_llama_cpp_types.json ("error" where llama-quantize refused, e.g. a
   row of 48 under Q4_0). The shapes are rebuilt here with zero weights: types depend
   only on names, shapes and metadata.
4. Error handling: unknown type (lists the valid ones), unreadable input, unwritable
   output; exit code 1 and no output file left behind.

Skips (exit 77) when ../shared or the CLI is absent.
"""
import json
import os
import subprocess
import sys
import tempfile

SKIP = 77


def skip(why):
    print(f"SKIPPED: {why}")
    sys.exit(SKIP)


try:
    import numpy as np
    import gguf
except ImportError as e:  # pragma: no cover
    skip(f"python dependency missing: {e}")

BIN = os.environ.get("QUARREL_BIN", "")
SHARED = os.environ.get("QUARREL_SHARED", os.path.join(os.path.dirname(__file__), "..", "..", "shared"))
SYNTH = os.path.join(SHARED, "models", "synth")
F32 = os.path.join(SYNTH, "tiny-llama-F32.gguf")

REFERENCE_MIXES = ["Q8_0", "Q6_K", "Q5_K_M", "Q4_K_M", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q3_K_M", "Q2_K"]
# llama_ftype numbers (include/llama.h) that llama-quantize writes to general.file_type.
FTYPE = {"F16": 1, "Q4_0": 2, "Q4_1": 3, "Q8_0": 7, "Q5_0": 8, "Q5_1": 9, "Q2_K": 10,
         "Q3_K_S": 11, "Q3_K_M": 12, "Q3_K_L": 13, "Q4_K_S": 14, "Q4_K_M": 15, "Q5_K_S": 16,
         "Q5_K_M": 17, "Q6_K": 18, "BF16": 32}

failures = []


def check(cond, msg):
    if not cond:
        failures.append(msg)
        print(f"FAIL: {msg}")


def run_quantize(inp, out, mix, *extra):
    return subprocess.run([BIN, "quantize", inp, out, mix, *extra], capture_output=True, text=True)


def field_u32(reader, key):
    f = reader.fields.get(key)
    return None if f is None else int(f.parts[f.data[0]][0])


def tensors_by_name(reader):
    return {t.name: t for t in reader.tensors}


def raw_bytes(t):
    return np.asarray(t.data).view(np.uint8).reshape(-1)


def compare_with_reference(tmp):
    for mix in REFERENCE_MIXES:
        ref_path = os.path.join(SYNTH, f"tiny-llama-{mix}.gguf")
        if not os.path.exists(ref_path):
            check(False, f"{mix}: reference file {ref_path} missing")
            continue
        out = os.path.join(tmp, f"{mix}.gguf")
        r = run_quantize(F32, out, mix, "-t", "2")
        check(r.returncode == 0, f"{mix}: quarrel quantize exit {r.returncode}: {r.stderr.strip()}")
        if r.returncode != 0:
            continue
        ref, ours = gguf.GGUFReader(ref_path), gguf.GGUFReader(out)
        rt, ot = tensors_by_name(ref), tensors_by_name(ours)
        check(sorted(rt) == sorted(ot), f"{mix}: tensor names differ")
        n_same = 0
        for name, t in rt.items():
            if name not in ot:
                continue
            o = ot[name]
            same_type = o.tensor_type == t.tensor_type
            check(same_type, f"{mix}: {name}: type {o.tensor_type.name}, llama.cpp {t.tensor_type.name}")
            check([int(x) for x in o.shape] == [int(x) for x in t.shape], f"{mix}: {name}: shape differs")
            a, b = raw_bytes(o), raw_bytes(t)
            same = a.size == b.size and bool((a == b).all())
            if not same and a.size == b.size:
                check(False, f"{mix}: {name}: {int((a != b).sum())} of {a.size} bytes differ")
            elif not same:
                check(False, f"{mix}: {name}: {a.size} bytes, llama.cpp {b.size}")
            n_same += same and same_type
        # llama-quantize's tensor order (loader order: non-layer tensors, then by layer).
        check([t.name for t in ours.tensors] == [t.name for t in ref.tensors], f"{mix}: tensor order differs")
        for key in ("general.file_type", "general.quantization_version"):
            check(field_u32(ours, key) == field_u32(ref, key),
                  f"{mix}: {key} = {field_u32(ours, key)}, llama.cpp {field_u32(ref, key)}")
        with open(out, "rb") as a, open(ref_path, "rb") as b:
            whole = a.read() == b.read()
        print(f"{mix}: {n_same}/{len(rt)} tensors identical to llama-quantize's; whole file "
              f"{'identical' if whole else 'differs (metadata)'}")


def expected_types(mix):
    """llama.cpp's choices for tiny-llama (n_layer 2, n_gqa 2, untied output, rows of 256
    and 768): written out by hand from src/llama-quant.cpp, not from quarrel's code."""
    base = {"Q3_K_S": "Q3_K", "Q3_K_L": "Q3_K", "Q4_K_S": "Q4_K", "Q5_K_S": "Q5_K",
            "Q6_K": "Q6_K", "F16": "F16", "BF16": "BF16"}[mix]
    types = {}
    for name in ["token_embd.weight", "output.weight"] + [
            f"blk.{i}.{n}.weight" for i in range(2)
            for n in ("attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down")]:
        types[name] = base
    for name in ["output_norm.weight"] + [f"blk.{i}.{n}.weight" for i in range(2) for n in ("attn_norm", "ffn_norm")]:
        types[name] = "F32"  # 1-D tensors are never quantized
    if base in ("F16", "BF16"):
        return types
    types["output.weight"] = "Q6_K"  # the output matrix gets Q6_K in every K mix
    if mix == "Q3_K_L":  # attn_v, attn_output and ffn_down get Q5_K
        for i in range(2):
            for n in ("attn_v", "attn_output", "ffn_down"):
                types[f"blk.{i}.{n}.weight"] = "Q5_K"
    if mix == "Q4_K_S":  # the first 4 attn_v and the first n_layer/8 = 0 ffn_down get Q5_K
        for i in range(2):
            types[f"blk.{i}.attn_v.weight"] = "Q5_K"
    return types


def check_other_mixes(tmp):
    src = tensors_by_name(gguf.GGUFReader(F32))
    for mix in ["Q3_K_S", "Q3_K_L", "Q4_K_S", "Q5_K_S", "Q6_K", "F16", "BF16"]:
        out = os.path.join(tmp, f"other-{mix}.gguf")
        r = run_quantize(F32, out, mix)
        check(r.returncode == 0, f"{mix}: exit {r.returncode}: {r.stderr.strip()}")
        if r.returncode != 0:
            continue
        rd = gguf.GGUFReader(out)
        got = {t.name: t.tensor_type.name for t in rd.tensors}
        want = expected_types(mix)
        check(got == want, f"{mix}: types {sorted(set(got.items()) ^ set(want.items()))} differ")
        check(field_u32(rd, "general.file_type") == FTYPE[mix], f"{mix}: general.file_type")
        check(field_u32(rd, "general.quantization_version") == 2, f"{mix}: general.quantization_version")
        ot = tensors_by_name(rd)
        if mix == "F16":
            for name, t in ot.items():
                want_data = np.asarray(src[name].data, dtype=np.float32)
                if t.tensor_type.name == "F16":
                    want_data = want_data.astype(np.float16)
                check(np.array_equal(np.asarray(t.data), want_data), f"F16: {name}: data differs from numpy")
        if mix == "BF16":
            for name, t in ot.items():
                if t.tensor_type.name != "BF16":
                    continue
                bits = np.asarray(src[name].data, dtype=np.float32).reshape(-1).view(np.uint32)
                rne = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)  # no NaNs here
                check(np.array_equal(raw_bytes(t).view(np.uint16), rne), f"BF16: {name}: data differs")
        # Every block type must dequantize (gguf's reference) close to the F32 weights.
        for name, t in ot.items():
            if t.tensor_type.name in ("F32", "F16", "BF16"):
                continue
            deq = gguf.quants.dequantize(np.asarray(t.data), t.tensor_type).reshape(-1)
            x = np.asarray(src[name].data, dtype=np.float32).reshape(-1)
            rel = float(np.sqrt(np.mean((deq - x) ** 2)) / np.sqrt(np.mean(x ** 2)))
            check(rel < 0.25, f"{mix}: {name}: relative RMS error {rel:.3f}")
        print(f"{mix}: types and metadata as llama.cpp's rules prescribe")


# The shapes the recorded llama-quantize types were produced from (see the docstring).
POLICY_MODELS = {
    # name: (arch, n_embd, n_layer, n_head, n_head_kv, n_ff, head_dim, tied, qkv bias, gemma norms, n_expert)
    "gem": ("gemma3", 160, 3, 2, 1, 48, 80, True, False, True, 0),
    "qw": ("qwen2", 256, 5, 8, 2, 512, None, True, True, False, 0),
    "l16": ("llama", 256, 16, 4, 4, 256, None, False, False, False, 0),
    "l80": ("llama", 256, 80, 8, 2, 256, None, False, False, False, 0),
    "moe": ("llama", 256, 2, 8, 2, 256, None, False, False, False, 8),
}


def write_policy_model(path, spec):
    arch, n_embd, n_layer, n_head, n_kv, n_ff, head_dim, tied, bias, gemma, n_expert = spec
    w = gguf.GGUFWriter(path, arch)
    w.add_context_length(512)
    w.add_embedding_length(n_embd)
    w.add_block_count(n_layer)
    w.add_feed_forward_length(n_ff)
    w.add_head_count(n_head)
    w.add_head_count_kv(n_kv)
    w.add_layer_norm_rms_eps(1e-5)
    hd = head_dim or n_embd // n_head
    if head_dim:
        w.add_key_length(hd)
        w.add_value_length(hd)
    if n_expert:
        w.add_expert_count(n_expert)
        w.add_expert_used_count(2)

    def tensor(name, ne, dtype=np.float16):  # ne in ggml order; 2-D+ weights F16, 1-D F32
        w.add_tensor(name, np.zeros(ne[::-1], dtype=np.float32 if len(ne) == 1 else dtype))

    n_vocab = 512
    tensor("token_embd.weight", (n_embd, n_vocab))
    for i in range(n_layer):
        p = f"blk.{i}."
        tensor(p + "attn_norm.weight", (n_embd,))
        tensor(p + "attn_q.weight", (n_embd, n_head * hd))
        tensor(p + "attn_k.weight", (n_embd, n_kv * hd))
        tensor(p + "attn_v.weight", (n_embd, n_kv * hd))
        if bias:
            tensor(p + "attn_q.bias", (n_head * hd,))
            tensor(p + "attn_k.bias", (n_kv * hd,))
            tensor(p + "attn_v.bias", (n_kv * hd,))
        tensor(p + "attn_output.weight", (n_head * hd, n_embd))
        if gemma:
            for n in ("attn_q_norm", "attn_k_norm"):
                tensor(p + n + ".weight", (hd,))
            for n in ("post_attention_norm", "post_ffw_norm"):
                tensor(p + n + ".weight", (n_embd,))
        tensor(p + "ffn_norm.weight", (n_embd,))
        if n_expert:
            # never quantized, so it keeps the recording's type
            tensor(p + "ffn_gate_inp.weight", (n_embd, n_expert), np.float32)
            tensor(p + "ffn_gate_exps.weight", (n_embd, n_ff, n_expert))
            tensor(p + "ffn_up_exps.weight", (n_embd, n_ff, n_expert))
            tensor(p + "ffn_down_exps.weight", (n_ff, n_embd, n_expert))
        else:
            tensor(p + "ffn_gate.weight", (n_embd, n_ff))
            tensor(p + "ffn_up.weight", (n_embd, n_ff))
            tensor(p + "ffn_down.weight", (n_ff, n_embd))
    tensor("output_norm.weight", (n_embd,))
    if not tied:
        tensor("output.weight", (n_embd, n_vocab))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def summarize_types(path):
    """Types by tensor; per-layer tensors as 'blk.*.<rest>' -> one type, or the list by layer."""
    out, per = {}, {}
    for t in gguf.GGUFReader(path).tensors:
        parts = t.name.split(".", 2)
        if parts[0] == "blk" and parts[1].isdigit():
            per.setdefault("blk.*." + parts[2], {})[int(parts[1])] = t.tensor_type.name
        else:
            out[t.name] = t.tensor_type.name
    for k, d in per.items():
        seq = [d[i] for i in sorted(d)]
        out[k] = seq[0] if len(set(seq)) == 1 else " ".join(seq)
    return out


def check_policy_against_llama_cpp(tmp):
    with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "quantize_llama_cpp_types.json")) as f:
        expected = json.load(f)
    for model, mixes in sorted(expected.items()):
        src = os.path.join(tmp, f"policy-{model}.gguf")
        write_policy_model(src, POLICY_MODELS[model])
        n_ok = 0
        for mix, want in sorted(mixes.items()):
            out = os.path.join(tmp, f"policy-{model}-{mix}.gguf")
            r = run_quantize(src, out, mix, "-t", "2")
            if want == "error":
                ok = r.returncode == 1 and not os.path.exists(out)
                check(ok, f"{model} {mix}: llama-quantize refuses this; quarrel exit {r.returncode}")
            else:
                ok = r.returncode == 0
                check(ok, f"{model} {mix}: exit {r.returncode}: {r.stderr.strip()}")
                if ok:
                    got = summarize_types(out)
                    diff = {k: (got.get(k), want.get(k)) for k in set(got) | set(want) if got.get(k) != want.get(k)}
                    ok = not diff
                    check(ok, f"{model} {mix}: (quarrel, llama.cpp) types differ: {diff}")
                    os.remove(out)
            n_ok += ok
        os.remove(src)
        print(f"policy {model}: {n_ok}/{len(mixes)} mixes give llama-quantize's types")


def check_requantize(tmp):
    """An already quantized input is dequantized first: Q8_0 -> Q8_0 of the mix."""
    q8 = os.path.join(SYNTH, "tiny-llama-Q8_0.gguf")
    out = os.path.join(tmp, "requant-Q4_0.gguf")
    r = run_quantize(q8, out, "Q4_0")
    check(r.returncode == 0, f"requantize: exit {r.returncode}: {r.stderr.strip()}")
    if r.returncode == 0:
        types = {t.name: t.tensor_type.name for t in gguf.GGUFReader(out).tensors}
        check(types["blk.0.attn_q.weight"] == "Q4_0" and types["output.weight"] == "Q6_K",
              f"requantize: unexpected types {types}")


def check_errors(tmp):
    out = os.path.join(tmp, "err.gguf")
    r = run_quantize(F32, out, "Q7_K")
    check(r.returncode == 1 and "Q4_K_M" in r.stderr and "Q7_K" in r.stderr,
          f"unknown type: exit {r.returncode}, stderr {r.stderr!r}")
    r = run_quantize(os.path.join(tmp, "missing.gguf"), out, "Q4_0")
    check(r.returncode == 1 and "missing.gguf" in r.stderr, f"missing input: {r.returncode} {r.stderr!r}")
    bad = os.path.join(tmp, "bad.gguf")
    with open(bad, "wb") as f:
        f.write(b"GGUF\x03\x00\x00\x00" + b"\xff" * 64)
    r = run_quantize(bad, out, "Q4_0")
    check(r.returncode == 1 and "bad.gguf" in r.stderr, f"corrupt input: {r.returncode} {r.stderr!r}")
    split = os.path.join(tmp, "split-00001-of-00002.gguf")
    w = gguf.GGUFWriter(split, "llama")
    w.add_uint16("split.no", 0)
    w.add_uint16("split.count", 2)
    w.add_tensor("token_embd.weight", np.zeros((4, 32), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    r = run_quantize(split, out, "Q4_0")
    check(r.returncode == 1 and "split" in r.stderr, f"split input: {r.returncode} {r.stderr!r}")
    r = run_quantize(F32, os.path.join(tmp, "no-such-dir", "x.gguf"), "Q4_0")
    check(r.returncode == 1 and "no-such-dir" in r.stderr, f"unwritable output: {r.returncode} {r.stderr!r}")
    check(not os.path.exists(out), "a failed run left an output file behind")
    r = subprocess.run([BIN, "quantize", "--help"], capture_output=True, text=True)
    check(r.returncode == 0 and "Q4_K_M" in r.stdout, "--help")
    print("errors: checked")


def main():
    if not os.path.isdir(SHARED) or not os.path.exists(F32):
        skip(f"{F32} not found (needs ../shared)")
    if not BIN or not os.access(BIN, os.X_OK):
        skip("QUARREL_BIN is not set to the quarrel CLI")
    with tempfile.TemporaryDirectory() as tmp:
        compare_with_reference(tmp)
        check_other_mixes(tmp)
        check_policy_against_llama_cpp(tmp)
        check_requantize(tmp)
        check_errors(tmp)
    if failures:
        print(f"{len(failures)} failures")
        return 1
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
