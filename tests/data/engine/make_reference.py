#!/usr/bin/env python3
"""Writes llamacpp-reference.json: llama.cpp's greedy continuations and top-5 logits for
the models quarrel's engine is checked against (tests/engine_reference_test.py).

Run from the repository root with a llama.cpp CPU build (commit 3f545bec):
  LLAMA=/work/llama.cpp-src python3 tests/data/engine/make_reference.py BUILD_DIR
BUILD_DIR is a quarrel build (for `quarrel synth`). The reference build of record ran on an
x86 CPU with AVX-512 and AVX512-FP16 (llama.cpp's kernels and their summation order
depend on the instruction set; docs/architecture.md explains why that matters)."""
import hashlib, json, os, subprocess, sys, tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
SHARED = os.path.join(ROOT, '..', 'shared')
LLAMA = os.environ.get('LLAMA', '/work/llama.cpp-src')
HERE = os.path.dirname(os.path.abspath(__file__))

SYNTH_PROMPT = [1, 450, 1200, 3000, 77, 5, 900, 12000, 31000, 2]
SYNTH_MODELS = {  # name -> quarrel synth arguments (seed 1234 default): deterministic files
    'synth-llama-F32': ['--arch', 'llama', '--type', 'F32'],
    'synth-llama-ropefreqs-F32': ['--arch', 'llama', '--type', 'F32', '--rope-freqs'],
    'synth-qwen2-F32': ['--arch', 'qwen2', '--type', 'F32'],
    'synth-qwen2-F16': ['--arch', 'qwen2', '--type', 'F16'],
    'synth-mistral-F32': ['--arch', 'mistral', '--type', 'F32'],
    'synth-gemma3-F32': ['--arch', 'gemma3', '--type', 'F32'],
    'synth-gemma3-swa-F32': ['--arch', 'gemma3', '--type', 'F32', '--window', '8', '--swa-pattern', '3'],
}
SHARED_SYNTH_TYPES = ['F32', 'Q8_0', 'Q6_K', 'Q5_K_M', 'Q4_K_M', 'Q4_0', 'Q4_1', 'Q5_0', 'Q5_1',
                      'Q3_K_M', 'Q2_K', 'IQ4_NL', 'IQ4_XS']
LONG_TEXT = ' '.join('Note %d: the %s fox visited the %s market on day %d and bought %d %s.' % (
    i, ['quick', 'lazy', 'clever', 'small'][i % 4], ['old', 'new', 'busy'][i % 3], i * 3 % 31 + 1,
    i % 7 + 2, ['apples', 'pears', 'plums', 'figs', 'eggs'][i % 5]) for i in range(1, 41))
GEMMA_PROMPTS = ['The capital of France is', 'Once upon a time, in a small village by the sea,',
                 LONG_TEXT + ' Summary of the notes:']


def sha256(path):
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            h.update(chunk)
    return h.hexdigest()


def build_ref_tool(tmp):
    exe = os.path.join(tmp, 'llamacpp_ref')
    bin_dir = os.path.join(LLAMA, 'build', 'bin')
    subprocess.run(['gcc', '-O2', '-o', exe, os.path.join(HERE, 'llamacpp_ref.c'),
                    '-I' + os.path.join(LLAMA, 'include'), '-I' + os.path.join(LLAMA, 'ggml', 'include'),
                    '-L' + bin_dir, '-lllama', '-lggml', '-lggml-base', '-lm', '-Wl,-rpath,' + bin_dir], check=True)
    return exe


def run_ref(exe, model, ids, n, threads=1):
    out = subprocess.run([exe, model, str(n), str(threads)] + [str(i) for i in ids],
                         capture_output=True, text=True, check=True).stdout
    steps = []
    for line in out.splitlines():
        if not line.startswith('STEP'):
            continue
        p = line.split()
        logits = [float.fromhex(x) for x in p[4:]]
        top = sorted(range(len(logits)), key=lambda j: (-logits[j], j))[:5]
        steps.append({'token': int(p[2]), 'top5': [[j, logits[j].hex()] for j in top]})
    return steps


def tokenize(model, text):
    out = subprocess.run([os.path.join(LLAMA, 'build', 'bin', 'llama-tokenize'), '-m', model, '-p', text,
                          '--ids', '--log-disable'], capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def case(exe, name, model, ids, n, extra=None):
    c = {'name': name, 'model_sha256': sha256(model), 'prompt_ids': ids, 'n_predict': n,
         'steps': run_ref(exe, model, ids, n)}
    c.update(extra or {})
    print(name, 'done', file=sys.stderr)
    return c


def main():
    qbin = os.path.join(sys.argv[1], 'bin', 'quarrel')
    cases = []
    with tempfile.TemporaryDirectory() as tmp:
        exe = build_ref_tool(tmp)
        gold = json.load(open(os.path.join(SHARED, 'golden', 'stories260K-greedy.json')))
        stories = os.path.join(SHARED, 'models', 'stories260K.gguf')
        for i, g in enumerate(gold['cases']):
            cases.append(case(exe, 'stories260K-%d' % i, stories, g['prompt_ids'], g['n_predict'],
                              {'model': 'shared:models/stories260K.gguf'}))
        cases.append(case(exe, 'llama-2-tiny-random', os.path.join(SHARED, 'models', 'llama-2-tiny-random.gguf'),
                          [1, 450, 1200, 3000], 24, {'model': 'shared:models/llama-2-tiny-random.gguf'}))
        for t in SHARED_SYNTH_TYPES:
            rel = 'models/synth/tiny-llama-%s.gguf' % t
            cases.append(case(exe, 'tiny-llama-' + t, os.path.join(SHARED, rel), [1, 403, 407, 261, 378], 24,
                              {'model': 'shared:' + rel}))
        for name, args in SYNTH_MODELS.items():
            path = os.path.join(tmp, name + '.gguf')
            subprocess.run([qbin, 'synth', '--shape', 'tiny', '-o', path] + args, check=True, capture_output=True)
            cases.append(case(exe, name, path, SYNTH_PROMPT, 24, {'model': 'synth', 'synth_args': args}))
        gemma = subprocess.run(['bash', os.path.join(ROOT, 'scripts', 'default-model.sh')], capture_output=True,
                               text=True).stdout.strip()
        if gemma and os.path.exists(gemma):
            for i, p in enumerate(GEMMA_PROMPTS):
                ids = tokenize(gemma, p)
                cases.append(case(exe, 'gemma-3-270m-%d' % i, gemma, ids, 32,
                                  {'model': 'default-model', 'prompt': p}))
    json.dump({'engine': 'llama.cpp 3f545bec CPU (x86 AVX-512 + AVX512-FP16), flash attention auto, '
                         'n_ctx 2048, n_batch 2048, n_ubatch 512, 1 thread, F16 KV cache',
               'logits': 'top5 = the 5 highest logits at each greedy step as [token, float.hex()]',
               'cases': cases}, open(os.path.join(HERE, 'llamacpp-reference.json'), 'w'), indent=1)


if __name__ == '__main__':
    main()
