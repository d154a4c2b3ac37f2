"""Writes the GGUF fuzzer's seed corpus, fuzz/corpus/gguf/: small valid files written by
the gguf Python package (every value type, nested arrays, several tensor types, v2 and
v3) plus a few malformed variants of them. Run from the repository root:
    PYTHONPATH=.cache/pydeps python3 fuzz/make_gguf_corpus.py
"""
import os
import struct

import numpy as np
import gguf

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "gguf")
Q = gguf.GGMLQuantizationType


def write(name, build, alignment=None):
    path = os.path.join(OUT, name)
    w = gguf.GGUFWriter(path, "llama")
    if alignment:
        w.add_custom_alignment(alignment)
    build(w)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    with open(path, "rb") as f:
        return f.read()


def all_types(w):
    w.add_uint8("t.u8", 7)
    w.add_int8("t.i8", -7)
    w.add_uint16("t.u16", 700)
    w.add_int16("t.i16", -700)
    w.add_uint32("t.u32", 70000)
    w.add_int32("t.i32", -70000)
    w.add_uint64("t.u64", 2**40)
    w.add_int64("t.i64", -(2**40))
    w.add_float32("t.f32", 0.5)
    w.add_float64("t.f64", 0.25)
    w.add_bool("t.bool", True)
    w.add_string("t.str", "hello")
    w.add_array("t.arr_i32", [1, 2, 3])
    w.add_array("t.arr_str", ["a", "bc", ""])
    w.add_array("t.nested", [[1, 2], [3]])
    w.add_array("t.nested_str", [["x"], ["y", "z"]])
    w.add_tensor("a.weight", np.arange(8, dtype=np.float32).reshape(2, 4))
    w.add_tensor("b.weight", np.zeros((1, 34), dtype=np.uint8), raw_dtype=Q.Q8_0)


def tiny_llama(w):
    w.add_uint32("llama.block_count", 1)
    w.add_uint32("llama.embedding_length", 8)
    w.add_uint32("llama.attention.head_count", 2)
    w.add_float32("llama.attention.layer_norm_rms_epsilon", 1e-5)
    w.add_string("tokenizer.ggml.model", "llama")
    w.add_array("tokenizer.ggml.tokens", ["<unk>", "<s>", "</s>"] + [f"<0x{i:02X}>" for i in range(13)])
    w.add_array("tokenizer.ggml.scores", [0.0] * 16)
    w.add_array("tokenizer.ggml.token_type", [2, 3, 3] + [6] * 13)
    w.add_tensor("token_embd.weight", np.ones((16, 8), dtype=np.float16))
    w.add_tensor("output_norm.weight", np.ones(8, dtype=np.float32))


def quants(w):
    w.add_tensor("q4k.weight", np.zeros((1, 144), dtype=np.uint8), raw_dtype=Q.Q4_K)
    w.add_tensor("q4_0.weight", np.zeros((2, 18), dtype=np.uint8), raw_dtype=Q.Q4_0)
    w.add_tensor("bf16.weight", np.zeros((1, 4), dtype=np.uint8), raw_dtype=Q.BF16)


def nested(depth):
    """A GGUF v3 file whose only kv is an array nested `depth` levels deep."""
    def arr(d):
        if d == 1:
            return struct.pack("<IQi", 5, 1, 42)
        return struct.pack("<IQ", 9, 1) + arr(d - 1)
    kv = struct.pack("<Q", 6) + b"t.deep" + struct.pack("<I", 9) + arr(depth)
    return b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + kv


def main():
    os.makedirs(OUT, exist_ok=True)
    for f in os.listdir(OUT):
        os.remove(os.path.join(OUT, f))
    minimal = write("minimal.gguf", lambda w: None)
    full = write("all_types.gguf", all_types)
    write("tiny_llama.gguf", tiny_llama)
    write("quants_align64.gguf", quants, alignment=64)
    seeds = {
        "minimal_v2.gguf": minimal[:4] + struct.pack("<I", 2) + minimal[8:],
        "nested_8.gguf": nested(8),
        "bad_nested_9.gguf": nested(9),
        "bad_magic.gguf": b"GGML" + full[4:],
        "bad_version1.gguf": full[:4] + struct.pack("<I", 1) + full[8:],
        "bad_truncated.gguf": full[:400],
        "bad_n_kv.gguf": full[:16] + struct.pack("<Q", 2**62) + full[24:],
    }
    for name, data in seeds.items():
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(data)
    total = sum(os.path.getsize(os.path.join(OUT, f)) for f in os.listdir(OUT))
    print(f"{len(os.listdir(OUT))} seeds, {total} bytes in {OUT}")


if __name__ == "__main__":
    main()
