"""GGUF reader and writer against the gguf Python package (an independent implementation).

1. Reading: `quarrel inspect --json --array-items all` on every .gguf under
   $QUARREL_SHARED/models and $QUARREL_SHARED/tokenizer-vectors, on the default model if
   installed, and on a file the gguf package writes here with every value type and
   nested arrays, must agree with gguf.GGUFReader: version, alignment, data offset,
   every metadata key, type and value, every tensor's name, type, shape, size, offsets.
2. Writing: files written by our writer (driven through ctypes on libquarrel.so) are
   read back by gguf.GGUFReader with identical metadata and tensor data; copying a
   shared model through our reader and writer reproduces it (same metadata, tensors,
   data bytes).
"""
import ctypes
import json
import math
import os
import subprocess
import sys
import tempfile

import numpy as np

try:
    import gguf
except ImportError:
    print("SKIPPED: the gguf Python package is not importable (PYTHONPATH=.cache/pydeps)")
    sys.exit(77)

BIN = os.environ.get("QUARREL_BIN", "build/bin/quarrel")
LIB = os.environ.get("QUARREL_LIB", "")
SHARED = os.environ.get("QUARREL_SHARED", "../shared")
CACHE = os.environ.get("QUARREL_CACHE", ".cache")
VT = gguf.GGUFValueType

failures = []


def check(cond, msg):
    if not cond:
        failures.append(msg)
        print("FAIL:", msg, file=sys.stderr)


# ---- 1. reading ----------------------------------------------------------------------

def inspect_json(path):
    r = subprocess.run([BIN, "inspect", "--json", "--array-items", "all", path],
                       capture_output=True, timeout=300)
    if r.returncode != 0:
        raise RuntimeError(f"quarrel inspect {path} failed ({r.returncode}): {r.stderr.decode()}")
    return json.loads(r.stdout)


def py_scalar(parts, vtype):
    """A leaf value as our JSON prints it."""
    if vtype == VT.STRING:
        return bytes(parts).decode("utf-8", errors="replace")
    v = parts.tolist()[0]
    if vtype in (VT.FLOAT32, VT.FLOAT64):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
    if vtype == VT.BOOL:
        return bool(v)
    return v


def flatten(v):
    if isinstance(v, list):
        out = []
        for x in v:
            out.extend(flatten(x))
        return out
    return [v]


def same(a, b):
    if isinstance(a, float) or isinstance(b, float):
        return float(a) == float(b)
    return a == b


def compare_field(name, field, ours):
    where = f"{name} key {field.name}"
    check(ours["key"] == field.name, f"{where}: key {ours['key']!r}")
    main = field.types[0]
    check(ours["type"] == main.name.lower(), f"{where}: type {ours['type']} vs {main.name}")
    if main != VT.ARRAY:
        want = py_scalar(field.parts[-1], main)
        check(same(ours["value"], want), f"{where}: value {ours['value']!r} vs {want!r}")
        return
    count = int(field.parts[4][0])  # parts: key len, key, type, elem type, count, ...
    check(ours["count"] == count, f"{where}: count {ours['count']} vs {count}")
    check(ours["elem_type"] == VT(int(field.parts[3][0])).name.lower(), f"{where}: elem_type {ours['elem_type']}")
    check(not ours["truncated"], f"{where}: truncated although --array-items all")
    leaf_type = field.types[-1]
    want = [py_scalar(field.parts[i], leaf_type) for i in field.data]
    got = flatten(ours["value"])
    if len(got) != len(want):
        check(False, f"{where}: {len(got)} leaf values vs {len(want)}")
        return
    bad = [i for i, (a, b) in enumerate(zip(got, want)) if not same(a, b)]
    check(not bad, f"{where}: {len(bad)} values differ, first at {bad[:1]}: "
          f"{got[bad[0]] if bad else ''!r} vs {want[bad[0]] if bad else ''!r}")


def compare_file(path):
    name = os.path.basename(path)
    ours = inspect_json(path)
    ref = gguf.GGUFReader(path)
    check(ours["version"] == int(ref.fields["GGUF.version"].parts[0][0]), f"{name}: version")
    check(ours["alignment"] == ref.alignment, f"{name}: alignment {ours['alignment']} vs {ref.alignment}")
    if ref.tensors:
        check(ours["data_offset"] == ref.data_offset, f"{name}: data_offset {ours['data_offset']} vs {ref.data_offset}")
    fields = [f for k, f in ref.fields.items() if not k.startswith("GGUF.")]
    check(len(ours["metadata"]) == len(fields), f"{name}: {len(ours['metadata'])} kv vs {len(fields)}")
    for f, o in zip(fields, ours["metadata"]):
        check(o["offset"] == f.offset, f"{name} key {f.name}: offset {o['offset']} vs {f.offset}")
        compare_field(name, f, o)
    check(len(ours["tensors"]) == len(ref.tensors), f"{name}: tensor count")
    n_params = 0
    for t, o in zip(ref.tensors, ours["tensors"]):
        where = f"{name} tensor {t.name}"
        check(o["name"] == t.name, f"{where}: name {o['name']!r}")
        check(o["type"] == t.tensor_type.name, f"{where}: type {o['type']} vs {t.tensor_type.name}")
        check(o["type_id"] == int(t.tensor_type), f"{where}: type id")
        check(o["shape"] == [int(x) for x in t.shape], f"{where}: shape {o['shape']} vs {list(t.shape)}")
        check(o["n_elements"] == t.n_elements, f"{where}: n_elements")
        check(o["bytes"] == t.n_bytes, f"{where}: bytes {o['bytes']} vs {t.n_bytes}")
        check(o["file_offset"] == t.data_offset, f"{where}: file offset {o['file_offset']} vs {t.data_offset}")
        check(o["offset"] == int(t.field.parts[-1][0]), f"{where}: relative offset")
        n_params += t.n_elements
    check(ours["n_params"] == n_params, f"{name}: n_params {ours['n_params']} vs {n_params}")
    return len(fields), len(ref.tensors)


def write_reference_file(path):
    """Every value type, nested arrays and a few tensor types, written by the gguf package."""
    w = gguf.GGUFWriter(path, "llama")
    w.add_custom_alignment(64)
    w.add_uint8("t.u8", 255)
    w.add_int8("t.i8", -128)
    w.add_uint16("t.u16", 65535)
    w.add_int16("t.i16", -32768)
    w.add_uint32("t.u32", 2**32 - 1)
    w.add_int32("t.i32", -2**31)
    w.add_uint64("t.u64", 2**64 - 1)
    w.add_int64("t.i64", -2**63)
    w.add_float32("t.f32", 3.14159)
    w.add_float64("t.f64", -2.718281828459045e-300)
    w.add_float32("t.nan", float("nan"))
    w.add_float64("t.inf", float("-inf"))
    w.add_bool("t.true", True)
    w.add_bool("t.false", False)
    w.add_string("t.str", "tab\tquote\"backslash\\ newline\n unicode é 日本 😀 ctl\x01")
    w.add_array("t.arr_i32", [1, -2, 3])
    w.add_array("t.arr_f32", [0.5, -1.25, 1e-20])
    w.add_array("t.arr_str", ["a", "", "<0x0A>", "▁the"])
    w.add_array("t.arr_bool", [True, False, True])
    w.add_key_value("t.arr_u8", [1, 2, 255], VT.ARRAY, sub_type=VT.UINT8)
    w.add_key_value("t.arr_i64", [-(2**62), 2**62], VT.ARRAY, sub_type=VT.INT64)
    w.add_key_value("t.arr_f64", [1e300, -0.0], VT.ARRAY, sub_type=VT.FLOAT64)
    w.add_array("nested.ints", [[1, 2], [3], [4, 5, 6]])
    w.add_array("nested.strs", [["x", "yz"], ["w"]])
    w.add_array("nested.deep", [[[7]], [[8, 9], [10]]])
    rng = np.random.default_rng(1)
    w.add_tensor("f32.weight", rng.standard_normal((3, 5)).astype(np.float32))
    w.add_tensor("f16.weight", rng.standard_normal((2, 2, 7)).astype(np.float16))
    w.add_tensor("q8.weight", rng.integers(0, 256, (4, 2 * 34), dtype=np.uint8),
                 raw_dtype=gguf.GGMLQuantizationType.Q8_0)
    w.add_tensor("q4k.weight", rng.integers(0, 256, (2, 144), dtype=np.uint8),
                 raw_dtype=gguf.GGMLQuantizationType.Q4_K)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def reading_tests(tmp):
    paths = []
    for sub in ("models", "tokenizer-vectors"):
        for root, _, files in os.walk(os.path.join(SHARED, sub)):
            paths += [os.path.join(root, f) for f in sorted(files) if f.endswith(".gguf")]
    if not paths:
        print(f"SKIPPED (part): no shared GGUF files under {SHARED}")
    default = os.path.join(CACHE, "models", "gemma-3-270m-q4_k_m.gguf")
    if os.path.exists(default):
        paths.append(default)
    else:
        print(f"SKIPPED (part): default model {default} is absent (bash scripts/default-model.sh)")
    ref_path = os.path.join(tmp, "reference.gguf")
    write_reference_file(ref_path)
    paths.append(ref_path)
    for p in paths:
        n_kv, n_t = compare_file(p)
        print(f"read {os.path.basename(p)}: {n_kv} kv, {n_t} tensors agree with gguf.GGUFReader")
    return ref_path


# ---- 2. writing through ctypes ---------------------------------------------------------

class Err(ctypes.Structure):
    _fields_ = [("msg", ctypes.c_char * 512)]


class Str(ctypes.Structure):
    _fields_ = [("ptr", ctypes.c_void_p), ("len", ctypes.c_uint64)]


class Tensor(ctypes.Structure):
    _fields_ = [("name", Str), ("type", ctypes.c_int), ("n_dims", ctypes.c_uint32),
                ("ne", ctypes.c_int64 * 4), ("n_elements", ctypes.c_int64), ("offset", ctypes.c_uint64),
                ("n_bytes", ctypes.c_uint64), ("data", ctypes.c_void_p), ("info_offset", ctypes.c_uint64)]


class Lib:
    def __init__(self, path):
        # Lazy binding: only the GGUF functions need to resolve.
        self.so = ctypes.CDLL(path, mode=os.RTLD_LAZY)
        vp = ctypes.c_void_p
        self.so.qr_gguf_kv_at.restype = vp
        self.so.qr_gguf_kv_at.argtypes = [vp, ctypes.c_int64]
        self.so.qr_gguf_tensor_at.restype = ctypes.POINTER(Tensor)
        self.so.qr_gguf_tensor_at.argtypes = [vp, ctypes.c_int64]
        self.so.qr_gguf_n_kv.restype = ctypes.c_int64
        self.so.qr_gguf_n_kv.argtypes = [vp]
        self.so.qr_gguf_n_tensors.restype = ctypes.c_int64
        self.so.qr_gguf_n_tensors.argtypes = [vp]
        self.so.qr_gguf_close.argtypes = [vp]
        self.so.qr_gguf_writer_abort.argtypes = [vp]
        self.err = Err()

    def call(self, fn, *args):
        r = getattr(self.so, fn)(*args, ctypes.byref(self.err))
        if r != 0:
            raise RuntimeError(f"{fn}: {self.err.msg.decode()}")

    def open(self, path):
        g = ctypes.c_void_p()
        self.call("qr_gguf_open", path.encode(), ctypes.byref(g))
        return g

    def writer(self, path):
        w = ctypes.c_void_p()
        self.call("qr_gguf_writer_create", path.encode(), ctypes.byref(w))
        return w


SCALARS = [  # (our writer function, ctypes type, gguf type, value)
    ("u8", ctypes.c_uint8, VT.UINT8, 200), ("i8", ctypes.c_int8, VT.INT8, -100),
    ("u16", ctypes.c_uint16, VT.UINT16, 60000), ("i16", ctypes.c_int16, VT.INT16, -30000),
    ("u32", ctypes.c_uint32, VT.UINT32, 4_000_000_000), ("i32", ctypes.c_int32, VT.INT32, -2_000_000_000),
    ("u64", ctypes.c_uint64, VT.UINT64, 2**64 - 2), ("i64", ctypes.c_int64, VT.INT64, -(2**63) + 1),
    ("f32", ctypes.c_float, VT.FLOAT32, float(np.float32(0.1))), ("f64", ctypes.c_double, VT.FLOAT64, 1e-310),
    ("bool", ctypes.c_bool, VT.BOOL, True),
]
ARRAYS = [  # (gguf type, numpy dtype, values)
    (VT.UINT8, np.uint8, [0, 255]), (VT.INT16, np.int16, [-5, 5, 7]), (VT.UINT32, np.uint32, [1, 2**32 - 1]),
    (VT.INT64, np.int64, [-(2**63), 0]), (VT.FLOAT32, np.float32, [1.5, -2.25]),
    (VT.FLOAT64, np.float64, [math.pi]), (VT.BOOL, np.uint8, [1, 0, 0, 1]),
]


def write_ours(lib, path, ref_path, alignment):
    w = lib.writer(path)
    lib.call("qr_gguf_writer_add_str", w, b"general.architecture", b"llama")
    if alignment is not None:
        lib.call("qr_gguf_writer_set_alignment", w, ctypes.c_uint32(alignment))
    for name, ct, _, val in SCALARS:
        lib.call(f"qr_gguf_writer_add_{name}", w, f"w.{name}".encode(), ct(val))
    text = "é 日本 😀 \"q\"\n".encode()
    lib.call("qr_gguf_writer_add_str", w, b"w.str", text)
    for vt, dt, vals in ARRAYS:
        a = np.array(vals, dtype=dt)
        lib.call("qr_gguf_writer_add_arr", w, f"w.arr_{vt.name.lower()}".encode(), ctypes.c_int(int(vt)),
                 a.ctypes.data_as(ctypes.c_void_p), ctypes.c_uint64(len(vals)))
    strs = ["a", "", "▁the", "<0xFF>"]
    arr = (ctypes.c_char_p * len(strs))(*[s.encode() for s in strs])
    lib.call("qr_gguf_writer_add_str_arr", w, b"w.arr_str", arr, ctypes.c_uint64(len(strs)))
    # Nested arrays, copied from the file the gguf package wrote.
    g = lib.open(ref_path)
    n_copied = 0
    for i in range(lib.so.qr_gguf_n_kv(g)):
        kv = lib.so.qr_gguf_kv_at(g, i)
        key = ctypes.cast(kv, ctypes.POINTER(Str)).contents
        if ctypes.string_at(key.ptr, key.len).startswith(b"nested."):
            lib.call("qr_gguf_writer_copy_kv", w, ctypes.c_void_p(kv))
            n_copied += 1
    lib.so.qr_gguf_close(g)
    rng = np.random.default_rng(7)
    tensors = [("a.weight", 0, [5, 3], rng.standard_normal(15).astype(np.float32).tobytes()),
               ("b.weight", 1, [4, 1, 2], rng.standard_normal(8).astype(np.float16).tobytes()),
               ("c.weight", 8, [64, 3], rng.integers(0, 256, 6 * 34, dtype=np.uint8).tobytes()),
               ("d.weight", 12, [256], rng.integers(0, 256, 144, dtype=np.uint8).tobytes())]
    for name, ty, ne, _ in tensors:
        nea = (ctypes.c_int64 * len(ne))(*ne)
        lib.call("qr_gguf_writer_add_tensor", w, name.encode(), ctypes.c_int(ty), ctypes.c_uint32(len(ne)), nea)
    blob = b"".join(t[3] for t in tensors)
    for i in range(0, len(blob), 37):  # streamed in chunks that straddle tensors
        chunk = blob[i:i + 37]
        lib.call("qr_gguf_writer_write_data", w, chunk, ctypes.c_size_t(len(chunk)))
    lib.call("qr_gguf_writer_finish", w)
    return text, strs, tensors, n_copied


def check_written(path, ref_path, text, strs, tensors, alignment):
    name = os.path.basename(path)
    r = gguf.GGUFReader(path)
    f = r.fields
    check(int(f["GGUF.version"].parts[0][0]) == 3, f"{name}: version")
    check(r.alignment == (alignment or 32), f"{name}: alignment {r.alignment}")
    for key, _, vt, val in SCALARS:
        fld = f.get(f"w.{key}")
        check(fld is not None and fld.types == [vt] and same(fld.contents(), val),
              f"{name}: w.{key} = {fld.contents() if fld else None!r}, want {val!r}")
    check(f["w.str"].contents() == text.decode(), f"{name}: w.str")
    for vt, dt, vals in ARRAYS:
        fld = f[f"w.arr_{vt.name.lower()}"]
        want = [bool(v) for v in vals] if vt == VT.BOOL else [dt(v).item() for v in vals]
        check(fld.types == [VT.ARRAY, vt] and fld.contents() == want, f"{name}: array {vt.name}: {fld.contents()}")
    check(f["w.arr_str"].contents() == strs, f"{name}: string array")
    ref = gguf.GGUFReader(ref_path)
    for k in ("nested.ints", "nested.strs", "nested.deep"):
        a, b = f[k], ref.fields[k]
        check(a.types == b.types, f"{name}: {k} types")
        check([bytes(a.parts[i]) for i in a.data] == [bytes(b.parts[i]) for i in b.data], f"{name}: {k} values")
        check(sum(p.nbytes for p in a.parts) == sum(p.nbytes for p in b.parts), f"{name}: {k} size")
    check(len(r.tensors) == len(tensors), f"{name}: tensor count")
    for t, (tname, ty, ne, data) in zip(r.tensors, tensors):
        check(t.name == tname and int(t.tensor_type) == ty and list(t.shape) == ne,
              f"{name}: tensor {t.name} {t.tensor_type.name} {list(t.shape)}")
        check(t.data.tobytes() == data, f"{name}: tensor {tname} data differs")
        check(t.data_offset % r.alignment == 0, f"{name}: tensor {tname} misaligned")
    check(os.path.getsize(path) % r.alignment == 0, f"{name}: file not padded to the alignment")
    print(f"wrote {name} (alignment {r.alignment}): gguf.GGUFReader reads it back identically")


def copy_model(lib, src, dst):
    """Rewrites src through our reader and writer: metadata copied, tensors streamed."""
    g = lib.open(src)
    w = lib.writer(dst)
    for i in range(lib.so.qr_gguf_n_kv(g)):
        lib.call("qr_gguf_writer_copy_kv", w, ctypes.c_void_p(lib.so.qr_gguf_kv_at(g, i)))
    n = lib.so.qr_gguf_n_tensors(g)
    ts = [lib.so.qr_gguf_tensor_at(g, i).contents for i in range(n)]
    for t in ts:
        lib.call("qr_gguf_writer_add_tensor", w, ctypes.string_at(t.name.ptr, t.name.len), ctypes.c_int(t.type),
                 ctypes.c_uint32(t.n_dims), t.ne)
    for t in ts:
        lib.call("qr_gguf_writer_write_data", w, ctypes.c_void_p(t.data), ctypes.c_size_t(t.n_bytes))
    lib.call("qr_gguf_writer_finish", w)
    lib.so.qr_gguf_close(g)


def compare_copies(src, dst):
    name = os.path.basename(src)
    a, b = gguf.GGUFReader(src), gguf.GGUFReader(dst)
    ka = [k for k in a.fields if not k.startswith("GGUF.")]
    kb = [k for k in b.fields if not k.startswith("GGUF.")]
    check(ka == kb, f"copy of {name}: keys differ")
    for k in ka:
        fa, fb = a.fields[k], b.fields[k]
        check(fa.types == fb.types and all(x.tobytes() == y.tobytes() for x, y in zip(fa.parts, fb.parts)),
              f"copy of {name}: {k} differs")
    check(len(a.tensors) == len(b.tensors), f"copy of {name}: tensor count")
    for x, y in zip(a.tensors, b.tensors):
        check(x.name == y.name and x.tensor_type == y.tensor_type and list(x.shape) == list(y.shape)
              and x.data.tobytes() == y.data.tobytes(), f"copy of {name}: tensor {x.name} differs")
    with open(src, "rb") as fa, open(dst, "rb") as fb:
        identical = fa.read() == fb.read()
    print(f"copied {name} through quarrel: gguf.GGUFReader sees the same metadata and tensors"
          f"{'; the files are byte-identical' if identical else ''}")


def writing_tests(tmp, ref_path):
    if not LIB or not os.path.exists(LIB):
        print(f"SKIPPED (part): QUARREL_LIB ({LIB!r}) is not a built libquarrel.so")
        return
    lib = Lib(LIB)
    for alignment in (None, 64):
        path = os.path.join(tmp, f"ours_{alignment}.gguf")
        text, strs, tensors, n_copied = write_ours(lib, path, ref_path, alignment)
        check(n_copied == 3, f"copied {n_copied} nested arrays, expected 3")
        check_written(path, ref_path, text, strs, tensors, alignment)
    for rel in ("models/stories260K.gguf", "models/synth/tiny-llama-Q4_K_M.gguf",
                "tokenizer-vectors/ggml-vocab-gpt-2.gguf"):
        src = os.path.join(SHARED, rel)
        if os.path.exists(src):
            dst = os.path.join(tmp, "copy.gguf")
            copy_model(lib, src, dst)
            compare_copies(src, dst)
    dst = os.path.join(tmp, "copy.gguf")
    copy_model(lib, ref_path, dst)
    compare_copies(ref_path, dst)


def main():
    with tempfile.TemporaryDirectory() as tmp:
        ref_path = reading_tests(tmp)
        writing_tests(tmp, ref_path)
    if failures:
        print(f"gguf_test: {len(failures)} failure(s)", file=sys.stderr)
        return 1
    print("gguf_test: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
