#!/usr/bin/env python3
"""`quarrel diff --a cpu --b cuda` on a GPU (ctest label `cuda`; skipped visibly where the
build has no CUDA backend or no GPU is present).

On stories260K, over the prompt and 32 greedy tokens: exit 0 at the default tolerance
1e-2 (every op of every step, and the final logits of every position, within 1e-2
relative L2 of quarrel's CPU backend), the same top-1 token at every position, every op
of every layer matched between the backends (11 per layer, as many layers as the gguf
package reads from the file, plus embd, result_norm, logits; none on one side only).
The synthetic models of ../shared/models/synth are diffed too and their largest errors
printed, for information only (random weights amplify rounding differences)."""
import glob
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from diff_util import finish, run_diff_json  # noqa: E402
from engine_pyapi import report as check, shared_dir, skip  # noqa: E402

PROMPT = 'Once upon a time, there was a little girl named Lily. She loved to play'


def diff(model, n_gen):
    r, j = run_diff_json(['-m', model, '-p', PROMPT, '--a', 'cpu', '--b', 'cuda', '-n', str(n_gen)], 600)
    if r.returncode == 2 and 'device cuda:' in r.stderr:
        skip(r.stderr.strip())
    return r, j


def rel(v):
    return float('inf') if v is None else v  # null: non-finite (NaN, or a reference of zeros)


def worst(j):
    op = max(j['ops'], key=lambda o: rel(o['rel_l2']))
    return op, max(rel(p['rel_l2']) for p in j['logits'])


def block_count(model):
    """llama.block_count from the gguf package, or (the device machine has no gguf
    package) from `quarrel inspect`'s metadata listing."""
    try:
        import gguf
        return int(gguf.GGUFReader(model).fields['llama.block_count'].parts[-1][0])
    except ImportError:
        out = subprocess.run([os.environ['QUARREL_BIN'], 'inspect', model], capture_output=True, text=True).stdout
        return int(next(l.split()[-1] for l in out.splitlines() if l.split()[:1] == ['llama.block_count']))


def main():
    shared = shared_dir()
    if not shared:
        skip('../shared is not available')
    model = os.path.join(shared, 'models', 'stories260K.gguf')
    if not os.path.exists(model):
        skip(model + ' is missing')
    n_layer = block_count(model)
    r, j = diff(model, 32)
    check(j is not None, 'JSON report (exit %d, %s)' % (r.returncode, r.stderr.strip()[-300:]))
    if j:
        op, pos = worst(j)
        print('largest op error: layer %d %s %.3e; largest logits error %.3e; first over: %s' %
              (op['layer'], op['op'], rel(op['rel_l2']), pos, j['first_over']))
        check(r.returncode == 0 and j['ok'], 'exit 0: every op and position within 1e-2 (first over: %s)' %
              j['first_over'])
        check(len(j['logits']) == j['n_prompt'] + 32, 'prompt + 32 generated positions compared')
        bad = [p for p in j['logits'] if rel(p['rel_l2']) > 1e-2]
        check(not bad, 'final logits within 1e-2 at every position (%s)' % bad[:3])
        diff_top = [p['position'] for p in j['logits'] if p['top1_a'] != p['top1_b']]
        check(not diff_top, 'same top-1 token at every position (differs at %s)' % diff_top)
        check(j['n_unmatched'] == 0, 'every op matched between the backends (%s)' % j['unmatched'][:3])
        check(len(j['ops']) == 11 * n_layer + 3, '%d ops compared (%d layers)' % (len(j['ops']), n_layer))
    for m in sorted(glob.glob(os.path.join(shared, 'models', 'synth', '*.gguf'))):
        r, j = diff(m, 8)
        if not j:
            check(False, '%s: JSON report (exit %d, %s)' % (os.path.basename(m), r.returncode, r.stderr.strip()[-300:]))
            continue
        op, pos = worst(j)
        print('info %-24s exit %d  largest op error: layer %d %s %.3e  logits %.3e  top-1 %d/%d  first over: %s' %
              (os.path.basename(m), r.returncode, op['layer'], op['op'], rel(op['rel_l2']), pos,
               j['top1_agree'], len(j['logits']), j['first_over']))
        check(j['n_unmatched'] == 0, '%s: every op matched' % os.path.basename(m))
    finish()


if __name__ == '__main__':
    main()
