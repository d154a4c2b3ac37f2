#!/usr/bin/env python3
"""`quarrel run`: bad input gets a clear one-line message and exit code 1 (missing model
file, unsupported architecture, prompt longer than the context, invalid flag values);
--dump-activations writes well-formed statistics; --check-numerics stops at a NaN planted
in a known tensor and names its layer. Models: stories260K (../shared) and files written
here with the gguf package."""
import json
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from engine_pyapi import shared_dir, skip  # noqa: E402

FAILS = []


def check(cond, what):
    print(('ok   ' if cond else 'FAIL ') + what)
    if not cond:
        FAILS.append(what)


def run(args, timeout=300):
    r = subprocess.run([os.environ['QUARREL_BIN'], 'run'] + args, capture_output=True, text=True, timeout=timeout)
    errs = [l for l in r.stderr.splitlines() if ' warn ' not in l]
    return r.returncode, r.stdout, '\n'.join(errs)


def expect_error(args, needle, what):
    rc, _, err = run(args)
    check(rc == 1 and needle in err, '%s: exit %d, stderr %r' % (what, rc, err[-160:]))


def write_unsupported(path):
    import gguf
    w = gguf.GGUFWriter(path, 'gpt2')
    w.add_context_length(64)
    w.add_embedding_length(8)
    w.add_block_count(1)
    w.add_head_count(2)
    import numpy as np
    w.add_tensor('token_embd.weight', np.zeros((4, 8), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def plant_nan(src, dst, tensor):
    import gguf
    import numpy as np
    shutil.copy(src, dst)
    r = gguf.GGUFReader(src)
    t = [t for t in r.tensors if t.name == tensor][0]
    with open(dst, 'r+b') as f:
        f.seek(t.data_offset + 4 * 10)
        f.write(np.array([np.nan] * 4, dtype=np.float32).tobytes())


def main():
    if not os.path.exists(os.environ.get('QUARREL_BIN', '')):
        skip('QUARREL_BIN is missing')
    shared = shared_dir()
    if not shared:
        skip('../shared (stories260K.gguf) is not available')
    stories = os.path.join(shared, 'models', 'stories260K.gguf')
    with tempfile.TemporaryDirectory() as tmp:
        expect_error(['-m', os.path.join(tmp, 'none.gguf'), '-p', 'x'], 'none.gguf', 'missing model file')
        bad = os.path.join(tmp, 'gpt2.gguf')
        write_unsupported(bad)
        expect_error(['-m', bad, '-p', 'x'], "unsupported architecture 'gpt2'", 'unsupported architecture')
        expect_error(['-m', stories, '-p', 'Once upon a time there was a dog and a cat', '-c', '8'],
                     'longer than the context', 'prompt longer than the context')
        for flag, val in (('--temp', 'abc'), ('--temp', '-1'), ('-n', '-5'), ('--top-p', '2'), ('-t', '0'),
                          ('--min-p', 'nan'), ('--seed', '-3'), ('-c', '12x')):
            expect_error(['-m', stories, '-p', 'x', flag, val], "invalid value '%s' for %s" % (val, flag),
                         'invalid value %s %s' % (flag, val))
        rc, _, err = run(['-m', stories, '-p', 'x', '--bogus', '1'])
        check(rc == 2 and 'unknown option' in err, 'unknown option is a usage error (exit 2)')

        # Greedy output equals the team's golden text from llama.cpp.
        gold = json.load(open(os.path.join(shared, 'golden', 'stories260K-greedy.json')))['cases'][0]
        rc, out, err = run(['-m', stories, '-p', gold['prompt'], '-n', str(gold['n_predict']), '--temp', '0'])
        norm = lambda s: ' '.join(s.split())  # noqa: E731
        check(rc == 0 and norm(out) == norm(gold['output']), 'greedy text equals llama-completion output')
        check('prompt' in err and 't/s' in err and 'load' in err, 'stats line on stderr: %r' % err[-120:])

        dump = os.path.join(tmp, 'acts.jsonl')
        rc, _, err = run(['-m', stories, '-p', 'Once upon a time', '-n', '3', '--temp', '0',
                          '--dump-activations', dump])
        lines = [json.loads(l) for l in open(dump)] if rc == 0 else []
        ops = [l for l in lines if 'op' in l]
        logit_lines = [l for l in lines if 'logits' in l]
        check(rc == 0 and len(logit_lines) == 3, 'dump has one logits line per generated token')
        check(all(l['layer'] in range(-1, 5) for l in ops) and {l['layer'] for l in ops} == set(range(-1, 5)),
              'dump covers the embedding, every layer and the output')
        check(all(l['min'] <= l['mean'] <= l['max'] and l['rms'] >= abs(l['mean']) - 1e-6 and l['nan'] == 0
                  for l in ops), 'dump statistics are consistent (min <= mean <= max, rms >= |mean|, no NaN)')
        first = [l for l in ops if l['step'] == 0 and l['layer'] == 0]
        check(first and first[0]['rows'] == 5 and first[0]['cols'] == 64, 'step 0 covers the 5 prompt rows')
        check(all(l['logits']['entropy'] >= 0 and l['logits']['top2_margin'] >= 0 for l in logit_lines),
              'logit entropy and top-2 margin are non-negative')

        nan_model = os.path.join(tmp, 'nan.gguf')
        plant_nan(stories, nan_model, 'blk.2.ffn_up.weight')
        rc, _, err = run(['-m', nan_model, '-p', 'Once upon a time', '-n', '3', '--check-numerics'])
        check(rc == 1 and 'layer 2' in err and 'ffn_act' in err and 'NaN' in err,
              '--check-numerics names the layer and op of a planted NaN: %r' % err[-200:])
    print('%d failure(s)' % len(FAILS) if FAILS else 'all ok')
    return 1 if FAILS else 0


if __name__ == '__main__':
    sys.exit(main())
