#!/usr/bin/env python3
"""quarrel's forward pass against llama.cpp's logits (tests/data/engine/llamacpp-reference.json,
written by tests/data/engine/make_reference.py with llama.cpp 3f545bec on an AVX-512 CPU).

Each case runs teacher-forced: the prompt as one batch, then llama.cpp's greedy token at each
step, so every step compares logits on the same history. Reported per case: steps whose argmax
equals llama.cpp's, and max |dlogit| over llama.cpp's top-5 tokens.

Expectations (asserted):
  EXACT     every logit of every step bit-identical to llama.cpp's (all block formats, all
            architectures, Gemma 3 270M including a prompt longer than its sliding window).
  IDENTICAL every greedy token identical (cases listed in NOT_EXACT, with the reason).
  KNOWN     names in $QUARREL_ENGINE_KNOWN_DIFF: reported, not asserted (for bisecting).
Cases whose model is absent (../shared, the default model) or whose `quarrel synth` output no
longer has the recorded SHA-256 are skipped with a message."""
import hashlib
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from engine_pyapi import Model, argmax, load_lib, shared_dir, skip  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
REF = os.path.join(HERE, 'data', 'engine', 'llamacpp-reference.json')
# Every case is expected bit-exact, the 906-token Gemma prompt (longer than its 512-token
# sliding window; llama.cpp's tiled flash-attention kernel) included. Cases named here would
# only have their greedy tokens asserted.
NOT_EXACT = set()
KNOWN = set(filter(None, os.environ.get('QUARREL_ENGINE_KNOWN_DIFF', '').split(',')))
ONLY = os.environ.get('QUARREL_ENGINE_CASES')  # comma-separated subset, for debugging


def sha256(path):
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            h.update(chunk)
    return h.hexdigest()


def model_path(case, tmp):
    src = case['model']
    if src.startswith('shared:'):
        shared = shared_dir()
        if not shared:
            return None, '../shared is not available'
        return os.path.join(shared, src[len('shared:'):]), None
    if src == 'synth':
        qbin = os.environ.get('QUARREL_BIN', '')
        if not os.path.exists(qbin):
            return None, 'QUARREL_BIN is missing'
        path = os.path.join(tmp, case['name'] + '.gguf')
        r = subprocess.run([qbin, 'synth', '--shape', 'tiny', '-o', path] + case['synth_args'], capture_output=True,
                           text=True)
        if r.returncode != 0:
            return None, 'quarrel synth failed: ' + r.stderr.strip()[-200:]
        return path, None
    if src == 'default-model':
        root = os.environ.get('QUARREL_SOURCE', os.path.dirname(HERE))
        r = subprocess.run(['bash', os.path.join(root, 'scripts', 'default-model.sh')], capture_output=True, text=True)
        path = r.stdout.strip()
        if r.returncode != 0 or not path or not os.path.exists(path):
            return None, 'the default model is not available'
        return path, None
    return None, 'unknown model source ' + src


def run_case(lib, case, path):
    m = Model(lib, path)
    if 'prompt' in case and m.tokenize(case['prompt']) != case['prompt_ids']:
        print('  note: quarrel tokenizes the prompt differently from llama-tokenize')
    n_prompt = len(case['prompt_ids'])
    ctx = m.ctx(n_ctx=max(1024, n_prompt + case['n_predict'] + 8), n_threads=min(4, os.cpu_count() or 1))
    ctx.decode(case['prompt_ids'])
    same, dmax, exact = 0, 0.0, True
    for s, step in enumerate(case['steps']):
        logits = ctx.logits()
        same += argmax(logits) == step['token']
        for tok, hexv in step['top5']:
            ref = float.fromhex(hexv)
            dmax = max(dmax, abs(logits[tok] - ref))
            exact &= logits[tok] == ref
        if s + 1 < len(case['steps']):
            ctx.decode([step['token']])
    ctx.free()
    m.free()
    return same, dmax, exact


def main():
    if not os.path.exists(REF):
        skip('no reference data ' + REF)
    lib = load_lib()
    ref = json.load(open(REF))
    failures, ran = 0, 0
    with tempfile.TemporaryDirectory() as tmp:
        for case in ref['cases']:
            name = case['name']
            if ONLY and name not in ONLY.split(','):
                continue
            path, why = model_path(case, tmp)
            if path is None or not os.path.exists(path):
                print('skip %-28s %s' % (name, why or 'model file missing'))
                continue
            if sha256(path) != case['model_sha256']:
                print('skip %-28s the model file differs from the one the reference was made with' % name)
                continue
            same, dmax, exact = run_case(lib, case, path)
            ran += 1
            n = len(case['steps'])
            if name not in NOT_EXACT and name not in KNOWN:
                ok, kind = exact and same == n, 'EXACT'
            elif name in KNOWN:
                ok, kind = True, 'KNOWN'
            else:
                ok, kind = same == n, 'IDENTICAL'
            print('%s %-28s %-9s %2d/%2d greedy steps identical, max |dlogit| (top-5) %.3g%s' % (
                'ok  ' if ok else 'FAIL', name, kind, same, n, dmax, ', bit-exact' if exact else ''))
            failures += not ok
    if ran == 0:
        skip('no reference case could run here')
    return 1 if failures else 0


if __name__ == '__main__':
    sys.exit(main())
