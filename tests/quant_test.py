"""src/quant against independent references, through libquarrel.so (ctypes).

1. Dequantization of random blocks of every type, bit-exact (float32 bit patterns,
   NaN-aware) against gguf.quants.dequantize (Q8_1/Q8_K, which the package lacks: against
   a numpy d*q). Scale fields are set to finite random halves so the values are meaningful;
   a second pass uses raw random bytes (inf/NaN scales included).
2. Dequantization of EVERY tensor of every .gguf under $QUARREL_SHARED/models and of the
   default model, against gguf.quants.dequantize on gguf.GGUFReader's data. Skipped
   visibly when absent.
3. Quantization bit-exact against gguf.quants.quantize (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, BF16;
   F16 against numpy astype(float16)) on several distributions; Q8_1/Q8_K by structural
   invariants (Q8_1 d/qs equal Q8_0's, s = fp16(d*sum q); Q8_K against a numpy transcription
   of llama.cpp's rule, bsums = sums of 16) and round-trip error bounds.
4. When llama.cpp's libggml-base.so is present ($QUARREL_GGML_LIB or
   /work/llama.cpp-src/build/bin), also bit-exact against its dequantize_row_* and
   quantize_row_*_ref (this covers Q8_1/Q8_K quantization and Q8_K dequantization).
"""
import ctypes
import glob
import os
import sys

import numpy as np

try:
    import gguf
    from gguf import GGMLQuantizationType as T
    from gguf.quants import dequantize as gguf_dequantize, quantize as gguf_quantize
except ImportError as e:  # the test's reference is missing: cannot run at all
    print(f"SKIPPED: the gguf package is not importable ({e}); set PYTHONPATH")
    sys.exit(77)

# Our block traits (the gguf package lists Q8_1 as 40 bytes; the C struct is 36).
TYPES = {  # name: (id, block elements, block bytes, fp16 scale offsets)
    "F32": (0, 1, 4, ()), "F16": (1, 1, 2, ()), "BF16": (30, 1, 2, ()),
    "Q4_0": (2, 32, 18, (0,)), "Q4_1": (3, 32, 20, (0, 2)),
    "Q5_0": (6, 32, 22, (0,)), "Q5_1": (7, 32, 24, (0, 2)),
    "Q8_0": (8, 32, 34, (0,)), "Q8_1": (9, 32, 36, (0, 2)),
    "Q2_K": (10, 256, 84, (80, 82)), "Q3_K": (11, 256, 110, (108,)),
    "Q4_K": (12, 256, 144, (0, 2)), "Q5_K": (13, 256, 176, (0, 2)),
    "Q6_K": (14, 256, 210, (208,)), "Q8_K": (15, 256, 292, ()),
    "IQ4_NL": (20, 32, 18, (0,)), "IQ4_XS": (23, 256, 136, (0,)),
}
GGUF_QUANT = ["F32", "F16", "BF16", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0"]

rng = np.random.default_rng(20261126)
np.seterr(all="ignore")  # inf/NaN scales and overflowing casts are intended inputs
results = []  # (section, type, what, n, mismatches, note)
failures = 0


def record(section, name, what, n, bad, note=""):
    global failures
    results.append((section, name, what, n, bad, note))
    if bad:
        failures += 1
        print(f"FAIL {section} {name} {what}: {bad} of {n} differ {note}")


# ---------------------------------------------------------------- library access
def load_lib():
    path = os.environ.get("QUARREL_LIB")
    if not path or not os.path.exists(path):
        print(f"FAIL: QUARREL_LIB ({path!r}) does not name libquarrel.so")
        sys.exit(1)
    lib = ctypes.CDLL(path)
    vp, i64 = ctypes.c_void_p, ctypes.c_int64
    lib.qr_dequantize_row.argtypes = [ctypes.c_int, vp, vp, i64, vp]
    lib.qr_quantize_row.argtypes = [ctypes.c_int, vp, vp, i64, vp]
    lib.qr_can_quantize.argtypes = [ctypes.c_int]
    lib.qr_can_quantize.restype = ctypes.c_bool
    return lib


LIB = load_lib()


def call(fn, tid, src, dst, n):
    err = ctypes.create_string_buffer(512)
    rc = fn(tid, src.ctypes.data, dst.ctypes.data, n, err)
    if rc != 0:
        raise RuntimeError(f"type {tid} n {n}: {err.value.decode()}")


def qr_dequant(name, raw, n):
    tid, bs, ts, _ = TYPES[name]
    raw = np.ascontiguousarray(np.frombuffer(raw, dtype=np.uint8))
    assert raw.size == n // bs * ts
    out = np.empty(n, dtype=np.float32)
    call(LIB.qr_dequantize_row, tid, raw, out, n)
    return out


def qr_quant(name, x):
    tid, bs, ts, _ = TYPES[name]
    x = np.ascontiguousarray(x, dtype=np.float32).ravel()
    out = np.empty(x.size // bs * ts, dtype=np.uint8)
    call(LIB.qr_quantize_row, tid, x, out, x.size)
    return out


def count_float_mismatch(a, b):
    """Elements whose float32 bit patterns differ, any NaN matching any NaN."""
    a = np.asarray(a, dtype=np.float32).ravel()
    b = np.asarray(b, dtype=np.float32).ravel()
    if a.size != b.size:
        return max(a.size, b.size)
    same = a.view(np.uint32) == b.view(np.uint32)
    same |= np.isnan(a) & np.isnan(b)
    return int(np.count_nonzero(~same))


# ---------------------------------------------------------------- 1. random blocks
def random_halves(count):
    """Finite fp16 values over the whole range: normals, subnormals, zeros, both signs."""
    bits = rng.integers(0, 1 << 16, size=count, dtype=np.uint32).astype(np.uint16)
    bits &= np.uint16(0x83FF)  # drop the exponent ...
    exps = rng.integers(0, 31, size=count, dtype=np.uint16)  # ... and pick one below 31
    return bits | (exps << np.uint16(10))


def random_blocks(name, n_blocks, finite):
    tid, bs, ts, scale_offs = TYPES[name]
    raw = rng.integers(0, 256, size=(n_blocks, ts), dtype=np.uint8)
    if not finite:
        return raw
    if name in ("F16", "BF16"):
        h = random_halves(n_blocks)
        if name == "BF16":  # a finite bf16: exponent below 255
            h = (rng.integers(0, 1 << 16, n_blocks).astype(np.uint16) & np.uint16(0x807F)) | (
                rng.integers(0, 255, n_blocks).astype(np.uint16) << np.uint16(7))
        raw[:, :] = h.view(np.uint8).reshape(n_blocks, 2)
    elif name == "F32":
        raw[:, :] = rng.standard_normal(n_blocks).astype(np.float32).view(np.uint8).reshape(n_blocks, 4)
    elif name == "Q8_K":
        d = (rng.standard_normal(n_blocks) * 10.0 ** rng.uniform(-8, 3, n_blocks)).astype(np.float32)
        raw[:, 0:4] = d.view(np.uint8).reshape(n_blocks, 4)
    for off in scale_offs:
        raw[:, off:off + 2] = random_halves(n_blocks).view(np.uint8).reshape(n_blocks, 2)
    return raw


def reference_dequant(name, raw):
    """gguf's dequantize, or numpy d*q for the activation formats the package lacks."""
    if name == "Q8_1":
        d = raw[:, 0:2].copy().view(np.float16).astype(np.float32)
        return (raw[:, 4:].view(np.int8).astype(np.float32) * d).ravel()
    if name == "Q8_K":
        d = raw[:, 0:4].copy().view(np.float32)
        return (d * raw[:, 4:260].view(np.int8).astype(np.float32)).ravel()
    return gguf_dequantize(raw.ravel() if TYPES[name][1] == 1 else raw, T[name]).ravel()


def check_random_blocks():
    for name in TYPES:
        bs = TYPES[name][1]
        n_blocks = 4096 if bs == 1 else 512
        for finite in (True, False):
            raw = random_blocks(name, n_blocks, finite)
            ours = qr_dequant(name, raw.tobytes(), n_blocks * bs)
            ref = reference_dequant(name, raw)
            src = "gguf" if name not in ("Q8_1", "Q8_K") else "numpy d*q"
            bad = count_float_mismatch(ours, ref)
            strict = int(np.count_nonzero(ours.view(np.uint32) != ref.view(np.uint32)))
            nans = int(np.count_nonzero(np.isnan(ref)))
            record("1 random", name, "finite scales" if finite else "raw bytes",
                   ours.size, bad, f"vs {src}; {nans} NaN, {strict - bad} NaN-payload diffs")


# ---------------------------------------------------------------- 2. model files
CHUNK_BYTES = 16 << 20


def check_tensor(t):
    name = t.tensor_type.name
    if name not in TYPES:
        return ("unsupported", t.n_elements, 0)
    _, bs, ts, _ = TYPES[name]
    flat = np.ascontiguousarray(t.data).view(np.uint8).reshape(-1, ts)
    bad, per = 0, max(1, CHUNK_BYTES // ts)
    for start in range(0, flat.shape[0], per):
        part = flat[start:start + per]
        ours = qr_dequant(name, part.tobytes(), part.shape[0] * bs)
        ref = gguf_dequantize(part.ravel() if bs == 1 else part, t.tensor_type)
        bad += count_float_mismatch(ours, ref)
    return (name, t.n_elements, bad)


def check_file(path, label):
    reader = gguf.GGUFReader(path)
    per_type = {}
    for t in reader.tensors:
        name, n, bad = check_tensor(t)
        cnt = per_type.setdefault(name, [0, 0, 0])
        cnt[0] += 1
        cnt[1] += n
        cnt[2] += bad
        if bad:
            print(f"FAIL {label}: tensor {t.name} ({name}): {bad} of {n} elements differ")
    for name, (tensors, n, bad) in sorted(per_type.items()):
        record("2 files", name, f"{label} ({tensors} tensors)", n, bad, "vs gguf")


def check_files():
    shared = os.environ.get("QUARREL_SHARED", os.path.join(os.path.dirname(__file__), "../../shared"))
    files = sorted(glob.glob(os.path.join(shared, "models", "**", "*.gguf"), recursive=True))
    if not files:
        print(f"SKIPPED: no .gguf under {shared}/models (../shared absent); file checks not run")
    for f in files:
        check_file(f, os.path.relpath(f, shared))
    cache = os.environ.get("QUARREL_CACHE", os.path.join(os.path.dirname(__file__), "../.cache"))
    model = os.path.join(cache, "models", "gemma-3-270m-q4_k_m.gguf")
    if os.path.exists(model):
        check_file(model, "gemma-3-270m-q4_k_m.gguf")
    else:
        print(f"SKIPPED: default model {model} absent (bash scripts/default-model.sh installs it)")


# ---------------------------------------------------------------- 3. quantization
def distributions(n):
    """Rows that stress the rounding rules: named test inputs, n float32 values each."""
    normal = rng.standard_normal(n)
    return {
        "normal": normal,
        "uniform": rng.uniform(-1, 1, n),
        "zeros": np.zeros(n),
        "constant+": np.full(n, 0.37),
        "constant-": np.full(n, -5.5),
        "huge 1e30": normal * 1e30,
        "fp16-edge 6e4": normal * 6.0e4,
        "tiny 1e-30": normal * 1e-30,
        "fp16-subnormal 1e-6": normal * 1e-6,
        "outliers": np.where(rng.random(n) < 0.01, normal * 1000, normal),
        "heavy tail": rng.standard_cauchy(n),
        "half-integers": rng.integers(-16, 17, n) * 0.5,
        "small ints": rng.integers(-8, 8, n).astype(np.float64),
        "positive": np.abs(normal) + 3.0,
        "sparse": np.where(rng.random(n) < 0.9, 0.0, normal),
    }


def check_quant_vs_gguf():
    n = 32 * 256
    for dist, x in distributions(n).items():
        x = x.astype(np.float32)
        for name in GGUF_QUANT:
            ours = qr_quant(name, x)
            ref = np.asarray(gguf_quantize(x, T[name])).view(np.uint8).ravel()
            bad = int(np.count_nonzero(ours != ref)) if ours.size == ref.size else ours.size
            record("3 quant", name, dist, x.size, bad, "bytes vs gguf")
    # BF16/F16 conversions on arbitrary bit patterns: NaN, inf, subnormals, overflow.
    bits = rng.integers(0, 1 << 32, size=1 << 16, dtype=np.uint64).astype(np.uint32).view(np.float32)
    ours = qr_quant("BF16", bits).view(np.uint16)
    ref = np.asarray(gguf_quantize(bits, T.BF16)).view(np.uint16).ravel()
    record("3 quant", "BF16", "random f32 bits", bits.size, int(np.count_nonzero(ours != ref)), "vs gguf")
    with np.errstate(over="ignore", invalid="ignore"):
        ref16 = bits.astype(np.float16).astype(np.float32)
    ours16 = qr_dequant("F16", qr_quant("F16", bits).tobytes(), bits.size)
    record("3 quant", "F16", "random f32 bits", bits.size, count_float_mismatch(ours16, ref16),
           "vs numpy astype(float16), NaN-aware")


def check_q8_1(x):
    q = qr_quant("Q8_1", x).reshape(-1, 36)
    ref0 = np.asarray(gguf_quantize(x, T.Q8_0)).view(np.uint8).reshape(-1, 34)
    bad = int(np.count_nonzero(q[:, 0:2] != ref0[:, 0:2]) + np.count_nonzero(q[:, 4:] != ref0[:, 2:]))
    # s = fp16(float(sum q) * d) with d = amax/127 in float32 (before the fp16 rounding).
    d32 = np.abs(x.reshape(-1, 32)).max(axis=1) / np.float32(127)
    sums = q[:, 4:].view(np.int8).astype(np.int32).sum(axis=1).astype(np.float32)
    s_ref = (sums * d32).astype(np.float16).view(np.uint16)
    bad += int(np.count_nonzero(q[:, 2:4].copy().view(np.uint16).ravel() != s_ref))
    return bad


def q8_k_numpy(x):
    """llama.cpp quantize_row_q8_K_ref transcribed: iscale = -127/max (signed extreme),
    q = min(127, rint(iscale*x)), d = 1/iscale, bsums per 16."""
    blocks = x.reshape(-1, 256)
    imax = np.abs(blocks).argmax(axis=1)
    mx = blocks[np.arange(blocks.shape[0]), imax].reshape(-1, 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        iscale = np.float32(-127) / mx
        q = np.minimum(127, np.rint(iscale * blocks)).astype(np.int8)
        d = (np.float32(1) / iscale).astype(np.float32)
    zero = (mx == 0).ravel()
    q[zero] = 0
    d[zero] = 0
    bsums = q.reshape(-1, 16, 16).astype(np.int16).sum(axis=2, dtype=np.int16)
    return np.concatenate([d.view(np.uint8), q.view(np.uint8), bsums.view(np.uint8)], axis=1)


def check_activation_formats():
    n = 256 * 64
    for dist, x in distributions(n).items():
        x = x.astype(np.float32)
        record("3 quant", "Q8_1", dist, x.size, check_q8_1(x), "d,qs = gguf Q8_0; s = fp16(d*sum)")
        ours = qr_quant("Q8_K", x).reshape(-1, 292)
        ref = q8_k_numpy(x)
        record("3 quant", "Q8_K", dist, x.size, int(np.count_nonzero(ours != ref)), "vs numpy llama rule")
        # round trip: |x - d*q| <= |d|/2 (+ float rounding) for every element
        back = qr_dequant("Q8_K", ours.tobytes(), x.size).reshape(-1, 256)
        d = np.abs(ours[:, 0:4].copy().view(np.float32))
        err = np.abs(back - x.reshape(-1, 256))
        record("3 quant", "Q8_K", dist + " round trip", x.size,
               int(np.count_nonzero(err > d * 0.5 * (1 + 1e-5) + 1e-37)), "|x-x'| <= d/2")


# ---------------------------------------------------------------- 4. llama.cpp itself
def ggml_lib():
    path = os.environ.get("QUARREL_GGML_LIB", "/work/llama.cpp-src/build/bin/libggml-base.so")
    if not os.path.exists(path):
        print(f"SKIPPED: llama.cpp's libggml-base.so ({path}) absent; llama.cpp cross-check not run")
        return None
    return ctypes.CDLL(path)


def ggml_call(lib, fn, src, dst, n):
    f = getattr(lib, fn)
    f.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64]
    f.restype = None
    f(src.ctypes.data, dst.ctypes.data, n)


def check_llama(lib):
    deq = ["Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K",
           "Q8_K", "IQ4_NL", "IQ4_XS"]
    for name in deq:
        _, bs, ts, _ = TYPES[name]
        raw = random_blocks(name, 256, True)
        ref = np.empty(256 * bs, dtype=np.float32)
        ggml_call(lib, "dequantize_row_" + name.lower().replace("_k", "_K"), raw, ref, ref.size)
        ours = qr_dequant(name, raw.tobytes(), ref.size)
        record("4 llama.cpp", name, "dequant random blocks", ref.size, count_float_mismatch(ours, ref))
    n = 256 * 32
    for name in ["Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q8_1", "Q8_K"]:
        _, bs, ts, _ = TYPES[name]
        bad = 0
        for dist, x in distributions(n).items():
            x = np.ascontiguousarray(x, dtype=np.float32)
            ref = np.zeros(n // bs * ts, dtype=np.uint8)
            ggml_call(lib, "quantize_row_" + name.lower().replace("_k", "_K") + "_ref", x, ref, n)
            ours = qr_quant(name, x)
            if name == "Q8_K":  # llama.cpp leaves bsums unset for all-zero blocks
                ours, ref = ours.reshape(-1, ts)[:, :260], ref.reshape(-1, ts)[:, :260]
            bad += int(np.count_nonzero(ours != ref))
        record("4 llama.cpp", name, "quantize_row_*_ref, all distributions", n * 15, bad, "bytes")


# ---------------------------------------------------------------- main
def check_dispatch_errors():
    x = np.zeros(64, dtype=np.float32)
    out = np.zeros(4096, dtype=np.uint8)
    err = ctypes.create_string_buffer(512)
    bad = 0
    bad += LIB.qr_quantize_row(2, x.ctypes.data, out.ctypes.data, 33, err) == 0
    bad += LIB.qr_dequantize_row(4, out.ctypes.data, x.ctypes.data, 32, err) == 0  # id 4 unused
    bad += LIB.qr_quantize_row(20, x.ctypes.data, out.ctypes.data, 32, err) == 0  # IQ4_NL
    bad += LIB.qr_can_quantize(20) or not LIB.qr_can_quantize(12)
    record("0 dispatch", "-", "error paths", 4, int(bad))


def main():
    check_dispatch_errors()
    check_random_blocks()
    check_quant_vs_gguf()
    check_activation_formats()
    check_files()
    lib = ggml_lib()
    if lib is not None:
        check_llama(lib)
    print(f"\n{'section':<12} {'type':<7} {'what':<48} {'elements':>11} {'mismatch':>8}  reference")
    for section, name, what, n, bad, note in results:
        print(f"{section:<12} {name:<7} {what[:48]:<48} {n:>11} {bad:>8}  {note}")
    print(f"\n{len(results)} checks, {failures} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
