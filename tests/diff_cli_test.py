#!/usr/bin/env python3
"""`quarrel diff` on the CPU alone (stories260K from ../shared).

- cpu against cpu with another thread count, and with the scalar kernels against the
  best SIMD level, over the prompt and 8 greedy tokens: every op's and every position's
  error is exactly 0 and the exit status is 0 even at --tol 0 (the CPU backend promises
  results independent of both, docs/usage.md);
- --json lists every layer's 11 ops plus embd, result_norm and logits, with widths equal
  to the file's dimensions as the gguf package reads them (n_layer, n_embd, n_head_kv x
  head size, n_ff, vocabulary size) and as many rows as the prompt has tokens;
- an F32 KV cache on side b changes only what reads the cache: at --tol 0 the first op
  flagged is layer 0's `attn`, everything before it is exactly equal, and the exit status
  is 1; at the default tolerance (1e-2) it passes with exit 0;
- usage errors (no -m, bad --tol, bad device, --b-kernels on a cuda side) exit 2 with a
  message naming the flag, and on a build or machine without CUDA `--b cuda` exits 2 with
  "device cuda: ..." (tests/diff_cuda_test.py covers the GPU)."""
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from diff_util import finish, run_diff as diff, run_diff_json as diff_json  # noqa: E402
from engine_pyapi import report as check, shared_dir, skip  # noqa: E402

LAYER_OPS = ['attn_norm', 'q', 'k', 'v', 'attn', 'attn_out', 'ffn_inp', 'ffn_norm', 'ffn_act', 'ffn_out', 'l_out']
PROMPT = 'Once upon a time, there was a little girl named Lily. She loved to play'


def file_dims(model):
    import gguf
    reader = gguf.GGUFReader(model)

    def field(key):
        return int(reader.fields['llama.' + key].parts[-1][0])
    n_embd, n_head = field('embedding_length'), field('attention.head_count')
    return {'n_layer': field('block_count'), 'n_embd': n_embd, 'n_kv': field('attention.head_count_kv') * (n_embd // n_head),
            'n_ff': field('feed_forward_length'), 'n_vocab': len(reader.fields['tokenizer.ggml.tokens'].data)}


def all_exact(j):
    return (all(o['rel_l2'] == 0 and o['max_abs'] == 0 for o in j['ops']) and
            all(p['rel_l2'] == 0 and p['max_abs'] == 0 and p['top1_a'] == p['top1_b'] for p in j['logits']))


def check_identical(model, extra, what):
    r, j = diff_json(['-m', model, '-p', PROMPT, '--a', 'cpu', '--b', 'cpu', '-n', '8', '--tol', '0'] + extra)
    check(r.returncode == 0 and j is not None, '%s: exit 0 at --tol 0 (%s)' % (what, r.stderr.strip()[-200:]))
    if j:
        check(all_exact(j) and j['first_over'] is None and j['ok'], '%s: every error exactly 0' % what)
        check(j['n_generated'] == 8 and len(j['logits']) == j['n_prompt'] + 8, '%s: prompt + 8 positions' % what)
        check(j['n_unmatched'] == 0, '%s: no unmatched op' % what)


def check_layout(model, dims):
    r, j = diff_json(['-m', model, '-p', PROMPT, '--a', 'cpu', '--b', 'cpu'])
    check(r.returncode == 0 and j is not None, '--json parses, exit 0')
    if not j:
        return
    n = j['n_prompt']
    width = {'attn_norm': dims['n_embd'], 'q': dims['n_embd'], 'k': dims['n_kv'], 'v': dims['n_kv'],
             'attn': dims['n_embd'], 'attn_out': dims['n_embd'], 'ffn_inp': dims['n_embd'],
             'ffn_norm': dims['n_embd'], 'ffn_act': dims['n_ff'], 'ffn_out': dims['n_embd'], 'l_out': dims['n_embd']}
    want = [(-1, 'embd', dims['n_embd'])]
    want += [(il, op, width[op]) for il in range(dims['n_layer']) for op in LAYER_OPS]
    want += [(-1, 'result_norm', dims['n_embd']), (-1, 'logits', dims['n_vocab'])]
    got = [(o['layer'], o['op'], o['cols']) for o in j['ops']]
    check(got == want, '%d ops in forward order, widths from the gguf file (%d layers)' % (len(want), dims['n_layer']))
    check(len({o['layer'] for o in j['ops'] if o['layer'] >= 0}) == dims['n_layer'], 'every layer listed')
    check(all(o['rows'] == n for o in j['ops']), 'every op has one row per prompt token (%d)' % n)
    check([p['position'] for p in j['logits']] == list(range(n)), 'logits of every prompt position')
    r2 = diff(['-m', model, '-p', PROMPT, '--a', 'cpu', '--b', 'cpu'])
    check(r2.returncode == 0 and 'first over tolerance' not in r2.stdout and
          'result: every op and position within' in r2.stdout, 'text report: all within tolerance')
    with tempfile.NamedTemporaryFile('w', suffix='.txt', delete=False) as f:
        f.write(PROMPT)
    try:
        r3, j3 = diff_json(['-m', model, '-f', f.name, '--a', 'cpu', '--b', 'cpu'])
        check(r3.returncode == 0 and j3 and j3['n_prompt'] == n, '-f FILE reads the same prompt')
    finally:
        os.unlink(f.name)


def check_kv_f32(model):
    r, j = diff_json(['-m', model, '-p', PROMPT, '--a', 'cpu', '--b', 'cpu', '--b-kv-f32', '--tol', '0'])
    check(r.returncode == 1 and j is not None, 'F32 KV cache on b at --tol 0: exit 1 (%d)' % r.returncode)
    if not j:
        return
    first = j['first_over']
    check(first is not None and (first['layer'], first['op']) == (0, 'attn'),
          'first op over tolerance is layer 0 attn (%s)' % first)
    ops = [(o['layer'], o['op']) for o in j['ops']]
    i = ops.index((0, 'attn')) if (0, 'attn') in ops else 0
    check(i > 0 and all(o['rel_l2'] == 0 and o['steps_over'] == 0 for o in j['ops'][:i]),
          'every op before it is exactly equal (%d ops)' % i)
    check(j['ops'][i]['rel_l2'] > 0 and j['ops'][i]['steps_over'] == 1, 'attn differs')
    check(0 <= first['position'] < j['n_prompt'] and first['step'] == 0, 'its worst row is a prompt position')
    check(not j['ok'] and j['ops_over'] > 0, 'the JSON says not ok')
    r = diff(['-m', model, '-p', PROMPT, '--a', 'cpu', '--b', 'cpu', '--b-kv-f32'])
    check(r.returncode == 0, 'F32 KV cache on b within the default 1e-2: exit 0')
    r = diff(['-m', model, '-p', PROMPT, '--a', 'cpu', '--b', 'cpu', '--b-kv-f32', '--tol', '0'])
    check('* first over tolerance' in r.stdout and 'first: layer 0 op attn' in r.stdout, 'text report names it')


def check_errors(model):
    for args, needle in [(['-p', PROMPT], '-m MODEL'), (['-m', model], '-p PROMPT'),
                         (['-m', model, '-p', PROMPT, '--tol', 'abc'], '--tol'),
                         (['-m', model, '-p', PROMPT, '--tol', '-1'], '--tol'),
                         (['-m', model, '-p', PROMPT, '--a', 'gpu'], '--a'),
                         (['-m', model, '-p', PROMPT, '--b', 'cuda', '--b-kernels', 'scalar'], '--b-kernels'),
                         (['-m', model, '-p', PROMPT, '--a-kernels', 'sse'], '--a-kernels'),
                         (['-m', model, '-p', PROMPT, '--frobnicate', '1'], '--frobnicate'),
                         (['-m', '/nonexistent.gguf', '-p', PROMPT], 'nonexistent')]:
        r = diff(args)
        check(r.returncode == 2 and needle in r.stderr, 'exit 2 naming %s (%d: %s)' % (needle, r.returncode,
                                                                                  r.stderr.strip()[-120:]))
    r = diff(['-m', model, '-p', PROMPT, '--b', 'cuda'])
    if r.returncode == 2:
        check('device cuda:' in r.stderr, 'no CUDA here: exit 2 with "%s"' % r.stderr.strip())
    else:
        print('note: a GPU is present (exit %d); tests/diff_cuda_test.py checks it' % r.returncode)


def main():
    shared = shared_dir()
    if not shared:
        skip('../shared is not available')
    model = os.path.join(shared, 'models', 'stories260K.gguf')
    check_identical(model, ['--a-threads', '1', '--b-threads', '2'], '1 thread against 2')
    check_identical(model, ['--a-kernels', 'scalar', '--b-kernels', 'auto'], 'scalar kernels against the best')
    check_layout(model, file_dims(model))
    check_kv_f32(model)
    check_errors(model)
    finish()


if __name__ == '__main__':
    main()
