"""ctypes bindings of the public C API (include/quarrel.h) for the engine's Python tests.
Not a test itself (no _test suffix)."""
import ctypes as C
import math
import os
import sys


def skip(why):
    print('SKIPPED: ' + why)
    sys.exit(77)


def load_lib():
    path = os.environ.get('QUARREL_LIB', '')
    if not path or not os.path.exists(path):
        skip('QUARREL_LIB (the shared library) is not set or missing')
    lib = C.CDLL(path)
    lib.qr_model_load.restype = C.c_void_p
    lib.qr_model_load.argtypes = [C.c_char_p, C.c_char_p, C.c_size_t]
    lib.qr_model_free.argtypes = [C.c_void_p]
    lib.qr_model_n_vocab.argtypes = [C.c_void_p]
    lib.qr_model_arch.argtypes = [C.c_void_p]
    lib.qr_model_arch.restype = C.c_char_p
    lib.qr_model_tokenize.argtypes = [C.c_void_p, C.c_char_p, C.c_size_t, C.c_bool, C.c_bool,
                                      C.POINTER(C.c_int32), C.c_int32, C.c_char_p, C.c_size_t]
    lib.qr_ctx_default_params.restype = CtxParams
    lib.qr_ctx_create.restype = C.c_void_p
    lib.qr_ctx_create.argtypes = [C.c_void_p, C.POINTER(CtxParams), C.c_char_p, C.c_size_t]
    lib.qr_ctx_free.argtypes = [C.c_void_p]
    lib.qr_decode.argtypes = [C.c_void_p, C.POINTER(Batch), C.c_char_p, C.c_size_t]
    lib.qr_get_logits.restype = C.POINTER(C.c_float)
    lib.qr_get_logits.argtypes = [C.c_void_p, C.c_int32]
    lib.qr_ctx_seq_len.argtypes = [C.c_void_p, C.c_int32]
    lib.qr_ctx_seq_truncate.argtypes = [C.c_void_p, C.c_int32, C.c_int32, C.c_char_p, C.c_size_t]
    return lib


class Batch(C.Structure):
    _fields_ = [('n_tokens', C.c_int32), ('tokens', C.POINTER(C.c_int32)), ('pos', C.POINTER(C.c_int32)),
                ('seq_id', C.POINTER(C.c_int32)), ('logits', C.POINTER(C.c_int8))]


class CtxParams(C.Structure):
    _fields_ = [('n_ctx', C.c_int32), ('n_batch', C.c_int32), ('n_seq_max', C.c_int32),
                ('n_threads', C.c_int32), ('kv_f32', C.c_bool), ('batch_invariant', C.c_bool),
                ('device', C.c_int),  # qr_device: 0 auto, 1 cpu, 2 cuda
                ('n_gpu_layers', C.c_int32)]  # must mirror include/quarrel.h field for field


def _arr(ctype, values):
    return (ctype * len(values))(*values) if values is not None else None


class Model:
    def __init__(self, lib, path):
        self.lib = lib
        err = C.create_string_buffer(512)
        self.m = lib.qr_model_load(path.encode(), err, 512)
        if not self.m:
            raise RuntimeError(err.value.decode())
        self.n_vocab = lib.qr_model_n_vocab(self.m)

    def tokenize(self, text, add_special=True):
        b = text.encode()
        out = (C.c_int32 * (len(b) + 8))()
        n = self.lib.qr_model_tokenize(self.m, b, len(b), add_special, False, out, len(out), None, 0)
        return list(out[:n])

    def ctx(self, **kw):
        p = self.lib.qr_ctx_default_params()
        p.device = 1  # the CPU backend: these tests check its bit-exactness (CUDA: test_cuda_forward)
        for k, v in kw.items():
            setattr(p, k, v)
        err = C.create_string_buffer(512)
        c = self.lib.qr_ctx_create(self.m, C.byref(p), err, 512)
        if not c:
            raise RuntimeError(err.value.decode())
        return Ctx(self, c)

    def free(self):
        self.lib.qr_model_free(self.m)


class Ctx:
    def __init__(self, model, c):
        self.model, self.c, self.lib = model, c, model.lib

    def decode(self, toks, pos=None, seq=None, want=None):
        n = len(toks)
        b = Batch(n, _arr(C.c_int32, toks), _arr(C.c_int32, pos), _arr(C.c_int32, seq), _arr(C.c_int8, want))
        err = C.create_string_buffer(512)
        if self.lib.qr_decode(self.c, C.byref(b), err, 512) != 0:
            raise RuntimeError(err.value.decode())

    def logits(self, i=-1):
        p = self.lib.qr_get_logits(self.c, i)
        if not p:
            return None
        return p[:self.model.n_vocab]

    def seq_len(self, seq=0):
        return self.lib.qr_ctx_seq_len(self.c, seq)

    def truncate(self, seq, pos):
        err = C.create_string_buffer(512)
        if self.lib.qr_ctx_seq_truncate(self.c, seq, pos, err, 512) != 0:
            raise RuntimeError(err.value.decode())

    def free(self):
        self.lib.qr_ctx_free(self.c)


def argmax(v):
    best = 0
    for i in range(1, len(v)):
        if v[i] > v[best]:
            best = i
    return best


def log_softmax(v):
    m = max(v)
    lse = m + math.log(sum(math.exp(x - m) for x in v))
    return [x - lse for x in v]


def greedy(ctx, prompt_ids, n, on_step=None):
    """Greedy decoding as llama.cpp does it: the prompt as one batch, then one token per
    decode. Returns the ids; on_step(step, logits) sees every step's logits."""
    ctx.decode(prompt_ids)
    out = []
    for s in range(n):
        logits = ctx.logits()
        if on_step:
            on_step(s, logits)
        t = argmax(logits)
        out.append(t)
        if s + 1 < n:
            ctx.decode([t])
    return out


def shared_dir():
    d = os.environ.get('QUARREL_SHARED', '')
    return d if d and os.path.isdir(d) else None


# Check bookkeeping shared by the engine tests: report() records one check, FAILS and RAN
# hold the outcome for the final summary.
FAILS, RAN = [], [0]


def report(ok, what):
    print(('ok   ' if ok else 'FAIL ') + what)
    RAN[0] += 1
    if not ok:
        FAILS.append(what)


def sha256(path):
    import hashlib
    with open(path, 'rb') as f:
        return hashlib.sha256(f.read()).hexdigest()
