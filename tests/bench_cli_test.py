#!/usr/bin/env python3
"""`quarrel bench`: its JSON report checked against independent facts, and its errors.

On stories260K (../shared): every sample is a positive rate, avg and stddev are the mean
and sample standard deviation of the samples, model size and parameter count equal the
file's tensors as the gguf package reads them, bytes_per_token equals all tensor bytes
minus all but one row of token_embd (the roofline's numerator), the roofline fraction is
avg / roofline, and the peak RSS is at least the file's tensor bytes (all of them are read
while generating). Bad flags fail with exit code 2 and a message naming the flag."""
import json
import os
import statistics
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from engine_pyapi import shared_dir, skip  # noqa: E402

FAILS = []


def check(cond, what):
    print(('ok   ' if cond else 'FAIL ') + what)
    if not cond:
        FAILS.append(what)


def bench(args):
    env = dict(os.environ, QUARREL_LOG_LEVEL='error')
    return subprocess.run([os.environ['QUARREL_BIN'], 'bench'] + args, capture_output=True, text=True, timeout=300,
                          env=env)


def main():
    shared = shared_dir()
    if not shared:
        skip('../shared is not available')
    import gguf
    model = os.path.join(shared, 'models', 'stories260K.gguf')
    r = bench(['-m', model, '-p', '32', '-n', '8', '-r', '3', '-t', '2', '-o', 'json', '--bandwidth-mb', '64'])
    check(r.returncode == 0, 'bench runs (%s)' % r.stderr.strip()[-200:])
    rows = json.loads(r.stdout)
    check([(x['n_prompt'], x['n_gen']) for x in rows] == [(32, 0), (0, 8)], 'one pp32 and one tg8 result')
    reader = gguf.GGUFReader(model)
    total = sum(int(t.n_bytes) for t in reader.tensors)
    n_params = sum(int(t.n_elements) for t in reader.tensors)
    emb = [t for t in reader.tensors if t.name == 'token_embd.weight'][0]
    per_token = total - int(emb.n_bytes) + int(emb.n_bytes) // int(emb.shape[1])
    for x in rows:
        name = 'pp%d' % x['n_prompt'] if x['n_prompt'] else 'tg%d' % x['n_gen']
        s = x['samples_ts']
        check(len(s) == 3 and all(v > 0 for v in s), '%s: 3 positive samples' % name)
        check(abs(x['avg_ts'] - statistics.mean(s)) <= 1e-3 * statistics.mean(s), '%s: avg is the mean' % name)
        check(abs(x['stddev_ts'] - statistics.stdev(s)) <= 1e-3 * statistics.mean(s) + 1e-3, '%s: sample stddev' % name)
        check(x['model_size'] == os.path.getsize(model), '%s: model size = file size' % name)
        check(x['model_n_params'] == n_params, '%s: parameters = gguf tensor elements (%d)' % (name, n_params))
        check(x['bytes_per_token'] == per_token, '%s: bytes per token %d = tensors minus embedding rows (%d)' %
              (name, x['bytes_per_token'], per_token))
        check(x['read_bandwidth_gbs'] > 0.1, '%s: a bandwidth was measured' % name)
        check(abs(x['roofline_fraction'] - x['avg_ts'] / x['roofline_ts']) < 1e-3, '%s: fraction = t/s / roofline' % name)
        check(x['peak_rss_bytes'] >= total, '%s: peak RSS covers the weights' % name)
    md = bench(['-m', model, '-p', '16', '-n', '4', '-r', '1', '--bandwidth-mb', '0'])
    check(md.returncode == 0 and '| pp16 |' in md.stdout and '| tg4 |' in md.stdout, 'markdown table')
    for args, flag in [(['-m', model, '-o', 'xml'], '-o'), (['-m', model, '-r', '0'], '-r'),
                       (['-m', model, '-p', '1,x'], '-p'), (['-p', '8'], '-m')]:
        e = bench(args)
        check(e.returncode in (1, 2) and flag in e.stderr, 'bad %s: exit %d, message names it' % (flag, e.returncode))
    e = bench(['-m', '/nonexistent.gguf'])
    check(e.returncode == 1 and 'nonexistent' in e.stderr, 'missing model: exit 1 naming the file')
    if FAILS:
        print('%d failure(s)' % len(FAILS))
        sys.exit(1)
    print('ok')


if __name__ == '__main__':
    main()
