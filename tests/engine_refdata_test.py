#!/usr/bin/env python3
"""quarrel's engine against the golden data of tests/data/golden/ (written independently by
the refdata work with its own llama.cpp driver, see that folder's README):

  synth-arch-logits/  full logits of a 64-token batch (every row) for `quarrel synth` models
                      of llama, qwen2 and gemma3 in F32/F16/Q8_0/Q6_K/Q4_K_M: asserted
                      bit-identical (this batch takes llama.cpp's tiled flash-attention path);
  synth-greedy.json   greedy ids on ../shared/models/synth/tiny-llama-<TYPE>.gguf: identical;
  gemma3-270m-greedy.json  greedy ids of Gemma 3 270M: identical (prompts over 64 tokens only
                      with QUARREL_ENGINE_LONG=1: they take minutes with the reference CPU code).
Parts whose inputs are missing (../shared, the default model, changed synth output) are
skipped with a message; if nothing could run the test is skipped."""
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from engine_pyapi import FAILS, RAN, Model, greedy, load_lib, report, sha256, shared_dir, skip  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
GOLD = os.path.join(HERE, 'data', 'golden')
def arch_logits(lib, shared, tmp):
    import numpy as np
    d = os.path.join(GOLD, 'synth-arch-logits')
    man = json.load(open(os.path.join(d, 'manifest.json')))
    ids = man['prompt_ids']
    qbin = os.environ.get('QUARREL_BIN', '')
    for f in man['files']:
        words = f['synth_command'].replace('$QUARREL_SHARED', shared).split()
        out = os.path.join(tmp, os.path.basename(words[-1]))
        r = subprocess.run([qbin] + words[1:-1] + [out], capture_output=True, text=True)
        if r.returncode != 0 or sha256(out) != f['gguf_sha256']:
            print('skip %s: quarrel synth no longer writes the file the logits were made from' % f['logits'])
            continue
        ref = np.fromfile(os.path.join(d, f['logits']), dtype=np.float32).reshape(len(ids), -1)
        m = Model(lib, out)
        c = m.ctx(n_ctx=256, n_threads=2)
        c.decode(ids, want=[1] * len(ids))
        ours = np.array([c.logits(i) for i in range(len(ids))], dtype=np.float32)
        c.free()
        m.free()
        os.remove(out)
        diff = float(np.abs(ours - ref).max())
        report(diff == 0.0, '%-26s %d rows, max |dlogit| %.3g (bit-identical required)' % (f['logits'], len(ids), diff))


def synth_greedy(lib, shared):
    g = json.load(open(os.path.join(GOLD, 'synth-greedy.json')))
    for mdl in g['models']:
        path = os.path.join(shared, 'models', 'synth', mdl['file'])
        if not os.path.exists(path) or sha256(path) != mdl['sha256']:
            print('skip %s: missing or different file' % mdl['file'])
            continue
        m = Model(lib, path)
        for c in mdl['cases']:
            ctx = m.ctx(n_ctx=512, n_threads=2)
            got = greedy(ctx, c['prompt_ids'], len(c['generated_ids']))
            ctx.free()
            same = sum(a == b for a, b in zip(got, c['generated_ids']))
            report(got == c['generated_ids'], '%-24s %-20r %d/%d ids identical' % (
                mdl['file'], c['prompt'][:20], same, len(got)))
        m.free()


def gemma_greedy(lib):
    g = json.load(open(os.path.join(GOLD, 'gemma3-270m-greedy.json')))
    root = os.environ.get('QUARREL_SOURCE', os.path.dirname(HERE))
    r = subprocess.run(['bash', os.path.join(root, 'scripts', 'default-model.sh')], capture_output=True, text=True)
    path = r.stdout.strip()
    if r.returncode != 0 or not os.path.exists(path) or sha256(path) != g['sha256']:
        print('skip Gemma 3 270M: the default model is not available (or differs)')
        return
    long_ok = os.environ.get('QUARREL_ENGINE_LONG') == '1'
    m = Model(lib, path)
    for c in g['cases']:
        if c['n_prompt'] > 64 and not long_ok:
            print('skip gemma %s (%d prompt tokens; set QUARREL_ENGINE_LONG=1)' % (c['name'], c['n_prompt']))
            continue
        if m.tokenize(c['prompt']) != c['prompt_ids']:
            print('note: quarrel tokenizes %r differently from llama.cpp' % c['name'])
        ctx = m.ctx(n_ctx=2048, n_threads=2)
        got = greedy(ctx, c['prompt_ids'], len(c['generated_ids']))
        ctx.free()
        same = sum(a == b for a, b in zip(got, c['generated_ids']))
        report(got == c['generated_ids'], 'gemma-3-270m %-10s %d/%d ids identical' % (c['name'], same, len(got)))
    m.free()


def main():
    if not os.path.isdir(GOLD):
        skip('no tests/data/golden')
    lib = load_lib()
    shared = shared_dir()
    with tempfile.TemporaryDirectory() as tmp:
        if shared and os.path.exists(os.environ.get('QUARREL_BIN', '')):
            arch_logits(lib, shared, tmp)
            synth_greedy(lib, shared)
        else:
            print('skip synth parts: ../shared or QUARREL_BIN missing')
        gemma_greedy(lib)
    if RAN[0] == 0:
        skip('no golden case could run here')
    print('%d failure(s)' % len(FAILS) if FAILS else 'all %d ok' % RAN[0])
    return 1 if FAILS else 0


if __name__ == '__main__':
    sys.exit(main())
