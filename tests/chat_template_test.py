"""Chat templates: our C renderer against the real Jinja templates.

Every template under tests/data/chat_templates/ (the publishers' own Jinja source, see the
README there) is rendered with the jinja2 package the way Hugging Face transformers does
(sandboxed, trim_blocks, lstrip_blocks, loopcontrols, raise_exception and strftime_now
globals) over a set of conversations, with and without add_generation_prompt. Our output,
produced through ctypes on libquarrel.so, must be byte-identical after removing the one
leading BOS (our convention: the tokenizer adds it). Where the template raises, we must fail
too. The few intentional differences are listed in DIFFERENCES and asserted as such.

A second reference: llama.cpp's expected outputs for the same templates
(tests/data/chat_templates/llamacpp_expected.json, from its test-chat-template.cpp).
"""
import ctypes
import datetime
import json
import os
import sys

try:
    import jinja2
    import jinja2.ext
    import jinja2.sandbox
except ImportError:
    print("SKIPPED: the jinja2 package is not installed (PYTHONPATH=.cache/pydeps)")
    sys.exit(77)

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "data", "chat_templates")
FIXED_DATE = "05 Mar 2025"

# template file -> (family we must detect, bos_token, eos_token)
TEMPLATES = {
    "chatml-openhermes-2.5.jinja": ("chatml", "", "<|im_end|>"),
    "qwen2-7b-instruct.jinja": ("chatml", "", "<|im_end|>"),
    "qwen2.5-7b-instruct.jinja": ("chatml", "", "<|im_end|>"),
    "smollm2-instruct.jinja": ("chatml", "<|im_start|>", "<|im_end|>"),
    "llama2-7b-chat.jinja": ("llama2", "<s>", "</s>"),
    "llama3-8b-instruct.jinja": ("llama3", "<|begin_of_text|>", "<|eot_id|>"),
    "llama3-8b-instruct-early.jinja": ("llama3", "<|begin_of_text|>", "<|eot_id|>"),
    "llama3.1-8b-instruct.jinja": ("llama3.1", "<|begin_of_text|>", "<|eot_id|>"),
    "llama3.2-3b-instruct.jinja": ("llama3.1", "<|begin_of_text|>", "<|eot_id|>"),
    "llama3.3-70b-instruct.jinja": ("llama3.1", "<|begin_of_text|>", "<|eot_id|>"),
    "mistral-v1.jinja": ("mistral-v1", "<s>", "</s>"),
    "mistral-v3-large-2407.jinja": ("mistral-v3", "<s>", "</s>"),
    "mistral-v3-tekken-nemo-2407.jinja": ("mistral-v3-tekken", "<s>", "</s>"),
    "mistral-v7-large-2411.jinja": ("mistral-v7", "<s>", "</s>"),
    "mistral-v7-tekken-small-3.2.jinja": ("mistral-v7-tekken", "<s>", "</s>"),
    "gemma-7b-it.jinja": ("gemma", "<bos>", "<eos>"),
    "gemma2-2b-it.jinja": ("gemma", "<bos>", "<eos>"),
    "gemma3-it.jinja": ("gemma", "<bos>", "<eos>"),
    "phi3-mini.jinja": ("phi3-legacy", "<s>", "<|endoftext|>"),
    "phi3-medium.jinja": ("phi3-legacy", "<s>", "<|endoftext|>"),
    "phi3-small.jinja": ("phi3", "<|endoftext|>", "<|endoftext|>"),
    "phi3.5-mini-instruct.jinja": ("phi3", "<s>", "<|endoftext|>"),
    "zephyr-7b-beta.jinja": ("zephyr", "<s>", "</s>"),
}

S, U, A = "system", "user", "assistant"
CONVERSATIONS = {
    "sys+user+asst+user": [(S, "You are a helpful assistant."), (U, "Hello!"),
                           (A, "Hi there, how can I help?"), (U, "What is 2+2?")],
    "user+asst+user": [(U, "Hello!"), (A, "Hi there."), (U, "What is 2+2?")],
    "single user": [(U, "Tell me a joke.")],
    "sys+user": [(S, "Be terse."), (U, "Why is the sky blue?")],
    "ends with assistant": [(S, "sys"), (U, "q1"), (A, "a1")],
    "whitespace": [(S, "  padded system \n"), (U, "\n  spaced user\t "),
                   (A, "   I am an assistant   "), (U, " last ")],
    "unicode": [(S, "Ты — помощник. 你好"), (U, "\u3000caf\u00e9 \U0001F600\u00a0"),
                (A, "\u2003r\u00e9ponse\u2028"), (U, "\u00e7a va? \u200b")],
    "empty contents": [(S, ""), (U, ""), (A, ""), (U, "")],
    "many turns": [(S, "You count.")] + [x for i in range(12) for x in
                                          ((U, f"n={i}"), (A, f"{i + 1}"))] + [(U, "next")],
    "not alternating": [(U, "one"), (U, "two")],
    "starts with assistant": [(A, "hello"), (U, "hi")],
    "system in the middle": [(U, "q1"), (A, "a1"), (S, "new rules"), (U, "q2")],
    "no system, many": [(U, "a"), (A, "b"), (U, "c"), (A, "d"), (U, "e")],
}


def jinja_env():
    env = jinja2.sandbox.ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols])

    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
                          sort_keys=sort_keys)

    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    return env


_CACHE = {}


def _compiled(env, src):
    if (id(env), src) not in _CACHE:
        _CACHE[(id(env), src)] = env.from_string(src)
    return _CACHE[(id(env), src)]


def render_jinja(env, src, conv, gen, bos, eos, date):
    def strftime_now(fmt):
        if date is not None:
            return datetime.datetime.strptime(date, "%d %b %Y").strftime(fmt)
        return datetime.datetime.now().strftime(fmt)

    tmpl = _compiled(env, src)
    msgs = [{"role": r, "content": c} for r, c in conv]
    return tmpl.render(messages=msgs, add_generation_prompt=gen, bos_token=bos, eos_token=eos,
                       strftime_now=strftime_now)


class Quarrel:
    def __init__(self, path):
        self.lib = ctypes.CDLL(path)
        f = self.lib.qr_chat_apply_simple
        f.restype = ctypes.c_int
        f.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_char_p),
                      ctypes.POINTER(ctypes.c_char_p), ctypes.c_size_t, ctypes.c_int,
                      ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p,
                      ctypes.POINTER(ctypes.c_void_p), ctypes.c_char_p, ctypes.c_size_t]
        d = self.lib.qr_chat_detect_simple
        d.restype = ctypes.c_int
        d.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p,
                      ctypes.c_size_t]
        self.lib.qr_chat_free.argtypes = [ctypes.c_void_p]

    def detect(self, src):
        name, err = ctypes.create_string_buffer(64), ctypes.create_string_buffer(512)
        rc = self.lib.qr_chat_detect_simple(src.encode(), name, 64, err, 512)
        return (name.value.decode(), None) if rc == 0 else (None, err.value.decode())

    def apply(self, conv, gen, bos, eos, src=None, name=None, date=None):
        n = len(conv)
        roles = (ctypes.c_char_p * max(n, 1))(*[r.encode() for r, _ in conv])
        contents = (ctypes.c_char_p * max(n, 1))(*[c.encode() for _, c in conv])
        out, err = ctypes.c_void_p(), ctypes.create_string_buffer(512)
        enc = lambda s: None if s is None else s.encode()
        rc = self.lib.qr_chat_apply_simple(enc(name), enc(src), roles, contents, n, int(gen),
                                           enc(bos), enc(eos), enc(date), ctypes.byref(out),
                                           err, 512)
        if rc != 0:
            return None, err.value.decode()
        text = ctypes.string_at(out.value).decode()
        self.lib.qr_chat_free(out)
        return text, None


def strip_bos(text, bos, src):
    """Removes the leading BOS a template writes with `bos_token` (the tokenizer adds it)."""
    if "bos_token" in src and bos and text.startswith(bos):
        return text[len(bos):]
    return text


# Intentional differences from the Jinja rendering (docs/chat-templates.md). Each returns
# what our output must equal, or None when the case is not one of them.
def gemma_system_merge(env, fname, conv, gen, bos, eos, jinja_error):
    """Gemma 1/2 raise on a system message; we render it the Gemma 3 way."""
    if fname not in ("gemma-7b-it.jinja", "gemma2-2b-it.jinja") or not conv or conv[0][0] != S:
        return None
    assert jinja_error is not None, "expected the Gemma 1/2 template to reject a system message"
    src = open(os.path.join(DATA, "gemma3-it.jinja"), encoding="utf-8").read()
    try:
        return strip_bos(render_jinja(env, src, conv, gen, bos, eos, None), bos, src)
    except jinja2.exceptions.TemplateError:
        return "ERROR"


def mistral_small_default_system(env, fname, conv, gen, bos, eos, jinja_error):
    """Mistral Small 3.2 writes a long built-in system prompt when the conversation has
    none; we do not, and we do not check alternation for v7 (the plain v7 template does not)."""
    if fname != "mistral-v7-tekken-small-3.2.jinja":
        return None
    if jinja_error is not None:
        return "ANY"
    if conv and conv[0][0] == S:
        return None
    return "NO_DEFAULT_SYSTEM"


DIFFERENCES = [gemma_system_merge, mistral_small_default_system]


def check_case(q, env, fname, src, family, conv, gen, bos, eos, date):
    try:
        ref, ref_err = strip_bos(render_jinja(env, src, conv, gen, bos, eos, date), bos, src), None
    except jinja2.exceptions.TemplateError as e:
        ref, ref_err = None, str(e)
    ours, our_err = q.apply(conv, gen, bos, eos, src=src, date=date)
    for diff in DIFFERENCES:
        want = diff(env, fname, conv, gen, bos, eos, ref_err)
        if want is None:
            continue
        if want == "ANY":
            return "diff"
        if want == "NO_DEFAULT_SYSTEM":
            head = ref[:ref.index("[/SYSTEM_PROMPT]") + len("[/SYSTEM_PROMPT]")]
            ok = ours is not None and head.startswith("[SYSTEM_PROMPT]") and ref == head + ours
            return "diff" if ok else f"expected the Jinja output minus its default system prompt, got {ours!r} ({our_err})"
        if want == "ERROR":
            return "diff" if ours is None else f"expected an error, got {ours!r}"
        return "diff" if ours == want else f"documented difference: want {want!r}, got {ours!r} ({our_err})"
    if ref_err is not None:
        return "raise" if ours is None else f"Jinja raised ({ref_err}) but we rendered {ours!r}"
    if ours is None:
        return f"we failed ({our_err}) but Jinja rendered {ref!r}"
    if ours != ref:
        return f"mismatch:\n   jinja: {ref!r}\n   ours : {ours!r}"
    return "ok"


def main():
    lib = os.environ.get("QUARREL_LIB")
    if not lib or not os.path.exists(lib):
        print(f"SKIPPED: QUARREL_LIB ({lib!r}) is not a built libquarrel.so")
        return 77
    q, env = Quarrel(lib), jinja_env()
    failures, counts = [], {}

    def fail(msg):
        failures.append(msg)
        print("FAIL", msg)

    for fname, (family, bos, eos) in TEMPLATES.items():
        src = open(os.path.join(DATA, fname), encoding="utf-8").read()
        got, err = q.detect(src)
        if got != family:
            fail(f"{fname}: detected {got!r} ({err}), expected {family!r}")
            continue
        # Llama 3.2 asks strftime_now for the date: pin it, and also check "today".
        dates = [FIXED_DATE, None] if "strftime_now" in src and family == "llama3.1" else [None]
        for conv_name, conv in CONVERSATIONS.items():
            for gen in (True, False):
                for date in dates:
                    r = check_case(q, env, fname, src, family, conv, gen, bos, eos, date)
                    if r in ("ok", "raise", "diff"):
                        counts[r] = counts.get(r, 0) + 1
                    else:
                        fail(f"{fname} [{conv_name}, gen={gen}, date={date}]: {r}")
        print(f"{fname:38s} -> {family}")
    print(f"jinja comparisons: {counts.get('ok', 0)} byte-identical, {counts.get('raise', 0)} "
          f"rejected by both, {counts.get('diff', 0)} documented differences")
    failures += check_llamacpp(q)
    failures += check_names(q)
    failures += check_gguf(q)
    if failures:
        print(f"{len(failures)} failures")
        return 1
    print("ok")
    return 0


def check_llamacpp(q):
    """llama.cpp's own Jinja expectations for the same templates (its native formatter's
    `expected_output` differs where it polyfills system messages; we follow the template)."""
    data = json.load(open(os.path.join(DATA, "llamacpp_expected.json"), encoding="utf-8"))
    conv = [tuple(m) for m in data["conversation"]]
    failures, n = [], 0
    # llama.cpp's Jinja layer folds a system message into the first user turn for templates
    # without a system role (Gemma 1, Phi-3-mini/medium); those templates themselves reject
    # or drop it, so those expectations are not the template's behaviour.
    polyfilled = {"gemma-7b-it.jinja", "phi3-mini.jinja", "phi3-medium.jinja"}
    for case in data["cases"]:
        if case["template"] in polyfilled:
            continue
        src = open(os.path.join(DATA, case["template"]), encoding="utf-8").read()
        want = case["expected_output_jinja"] or case["expected_output"]
        ours, err = q.apply(conv, True, case["bos_token"], case["eos_token"], src=src)
        n += 1
        if ours != strip_bos(want, case["bos_token"], src):
            failures.append(f"llama.cpp case {case['name']}: want {want!r}, got {ours!r} ({err})")
            print("FAIL", failures[-1])
    print(f"llama.cpp expectations: {n - len(failures)}/{n} match")
    return failures


def check_names(q):
    failures = []
    conv = [(U, "hi")]
    for name in ("chatml", "gemma", "llama3", "qwen2.5", "smollm2", "phi3.5", "zephyr"):
        ours, err = q.apply(conv, True, "<s>", "</s>", name=name)
        if ours is None:
            failures.append(f"name {name}: {err}")
    for src, name in (("qwen2-7b-instruct.jinja", "qwen2"), ("qwen2.5-7b-instruct.jinja", "qwen2.5"),
                      ("smollm2-instruct.jinja", "smollm2"), ("phi3.5-mini-instruct.jinja", "phi3.5"),
                      ("llama3.1-8b-instruct.jinja", "llama3.1"), ("phi3-small.jinja", "phi3")):
        text = open(os.path.join(DATA, src), encoding="utf-8").read()
        for conv in CONVERSATIONS.values():
            a = q.apply(conv, True, "<s>", "</s>", name=name)
            b = q.apply(conv, True, "<s>", "</s>", src=text)
            if a != b:
                failures.append(f"preset {name} differs from the detected style of {src}: {a} vs {b}")
    ours, err = q.apply(conv, True, None, None, name="no-such-style")
    if ours is not None or "supported:" not in err or "gemma" not in err:
        failures.append(f"unknown name: expected an error listing the names, got {ours!r} {err!r}")
    for f in failures:
        print("FAIL", f)
    print(f"names: {'ok' if not failures else 'FAILED'} (unknown-name error: {err})")
    return failures


def check_gguf(q):
    """Templates as found in real GGUF metadata: the default model (Gemma 3 270M) and the
    Phi-3 vocab file under ../shared."""
    try:
        import gguf
    except ImportError:
        print("gguf package missing: GGUF metadata check skipped")
        return []
    failures = []
    cache = os.environ.get("QUARREL_CACHE", os.path.join(HERE, "..", ".cache"))
    shared = os.environ.get("QUARREL_SHARED", os.path.join(HERE, "..", "..", "shared"))
    paths = [(os.path.join(cache, "models", "gemma-3-270m-q4_k_m.gguf"), "gemma"),
             (os.path.join(shared, "tokenizer-vectors", "ggml-vocab-phi-3.gguf"), "phi3-legacy")]
    for path, family in paths:
        if not os.path.exists(path):
            print(f"GGUF {path}: absent, skipped")
            continue
        # GGUFReader parses the whole 262k-entry vocabulary (tens of seconds): look for the
        # key in the metadata bytes first, which sit before the tensor data.
        with open(path, "rb") as fh:
            head = fh.read(64 << 20)
        field = None
        if b"tokenizer.chat_template" in head:
            field = gguf.GGUFReader(path).fields.get("tokenizer.chat_template")
        if field is None:
            print(f"GGUF {os.path.basename(path)}: has no tokenizer.chat_template (the CLI must "
                  f"fall back to --chat-template {family})")
            continue
        got, err = q.detect(field.contents())
        print(f"GGUF {os.path.basename(path)}: detected {got}")
        if got != family:
            failures.append(f"GGUF {path}: detected {got!r} ({err}), expected {family!r}")
    return failures


if __name__ == "__main__":
    sys.exit(main())
