#!/usr/bin/env python3
"""quarrel bench and llama.cpp's llama-bench side by side on the same models.

    bench/compare-llamacpp.py --llama-bin DIR [--quarrel BIN] [-t 2] [-p 512] [-n 128]
                              [-r 3] [--json OUT.json] MODEL.gguf [MODEL.gguf ...]

DIR holds a llama.cpp build's llama-bench (this script never builds llama.cpp). Each model
file is read once before timing (so neither engine pays for the page cache), then the two
engines alternate, one repetition each, R times per test, so that both see the same
machine conditions. Printed: per model and test both engines' mean +/- stddev tokens/s,
the ratio quarrel / llama.cpp, quarrel's fraction of the bandwidth roofline, and quarrel's
peak RSS against the model file plus the KV cache plus 10%.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys


def read_once(path):
    with open(path, 'rb') as f:
        while f.read(1 << 24):
            pass


def run_json(cmd, env=None):
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if r.returncode != 0:
        sys.exit('failed (%d): %s\n%s' % (r.returncode, ' '.join(cmd), r.stderr[-2000:]))
    out = r.stdout
    start = out.find('[')
    return json.loads(out[start:])


def llama_run(args, model, test):
    n_p, n_g = test
    cmd = [os.path.join(args.llama_bin, 'llama-bench'), '-m', model, '-t', str(args.threads), '-r', '1',
           '-p', str(n_p), '-n', str(n_g), '-o', 'json']
    env = dict(os.environ)
    env['LD_LIBRARY_PATH'] = args.llama_bin + ':' + env.get('LD_LIBRARY_PATH', '')
    rows = run_json(cmd, env)
    row = [r for r in rows if r['n_prompt'] == n_p and r['n_gen'] == n_g][0]
    return row['avg_ts'], row


def quarrel_run(args, model, test, bandwidth_mb):
    n_p, n_g = test
    cmd = [args.quarrel, 'bench', '-m', model, '-t', str(args.threads), '-r', '1', '-p', str(n_p), '-n', str(n_g),
           '-o', 'json', '--bandwidth-mb', str(bandwidth_mb)]
    rows = run_json(cmd)
    return rows[0]['avg_ts'], rows[0]


def fmt(samples):
    if len(samples) < 2:
        return '%.2f' % samples[0]
    return '%.2f ± %.2f' % (statistics.mean(samples), statistics.stdev(samples))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--llama-bin', required=True, help='folder with llama.cpp\'s llama-bench (not built here)')
    ap.add_argument('--quarrel', default=os.path.join(os.path.dirname(__file__), '..', 'build', 'bin', 'quarrel'))
    ap.add_argument('-t', '--threads', type=int, default=2)
    ap.add_argument('-p', '--n-prompt', type=int, default=512)
    ap.add_argument('-n', '--n-gen', type=int, default=128)
    ap.add_argument('-r', '--reps', type=int, default=3)
    ap.add_argument('--json', help='also write every sample here')
    ap.add_argument('models', nargs='+')
    args = ap.parse_args()
    if not os.access(os.path.join(args.llama_bin, 'llama-bench'), os.X_OK):
        sys.exit('no llama-bench in %s (build llama.cpp yourself; this script does not)' % args.llama_bin)
    if not os.access(args.quarrel, os.X_OK):
        sys.exit('no quarrel binary at %s (make build, or --quarrel)' % args.quarrel)
    commit = subprocess.run(['git', '-C', os.path.dirname(os.path.abspath(__file__)), 'rev-parse', '--short', 'HEAD'],
                            capture_output=True, text=True).stdout.strip() or 'unknown'
    tests = [t for t in [(args.n_prompt, 0), (0, args.n_gen)] if t[0] or t[1]]
    results = []
    lines = ['| model | test | llama.cpp t/s | quarrel t/s | ratio | quarrel of roofline |',
             '| --- | --- | ---: | ---: | ---: | ---: |']
    notes = []
    llama_commit = '?'
    for model in args.models:
        name = os.path.basename(model)
        read_once(model)
        rss_max, info, kv = 0, None, 0
        for test in tests:
            ls, qs = [], []
            for rep in range(args.reps):
                lv, lrow = llama_run(args, model, test)
                llama_commit = lrow.get('build_commit', '?')
                # bandwidth once per model (last tg repetition): it is the roofline's denominator
                last = rep == args.reps - 1 and test[1] > 0
                qv, qrow = quarrel_run(args, model, test, 1024 if last else 0)
                ls.append(lv)
                qs.append(qv)
                rss_max = max(rss_max, qrow['peak_rss_bytes'])
                kv = max(kv, qrow['kv_cache_bytes'])
                if last:
                    info = qrow
            tname = ('pp%d' % test[0]) if test[0] else ('tg%d' % test[1])
            ratio = statistics.mean(qs) / statistics.mean(ls)
            roof = ''
            if info and test[1] and info['roofline_ts'] > 0:
                roof = '%.0f%% of %.1f' % (100 * statistics.mean(qs) / info['roofline_ts'], info['roofline_ts'])
            lines.append('| %s | %s | %s | %s | %.2fx | %s |' % (name, tname, fmt(ls), fmt(qs), ratio, roof))
            results.append({'model': model, 'test': tname, 'llamacpp_ts': ls, 'quarrel_ts': qs, 'ratio': ratio})
        if info:
            size = os.path.getsize(model)
            limit = 1.1 * (size + kv)
            notes.append('%s: file %.1f MiB + KV %.1f MiB; quarrel peak RSS %.1f MiB (limit +10%%: %.1f MiB, %s); '
                         'read bandwidth %.1f GB/s' % (name, size / 2**20, kv / 2**20, rss_max / 2**20, limit / 2**20,
                                                      'ok' if rss_max <= limit else 'OVER', info['read_bandwidth_gbs']))
    print('quarrel %s vs llama.cpp %s, %d threads, %d repetitions alternating\n' %
          (commit, llama_commit, args.threads, args.reps))
    print('\n'.join(lines))
    print()
    print('\n'.join(notes))
    if args.json:
        with open(args.json, 'w') as f:
            json.dump({'quarrel_commit': commit, 'llamacpp_commit': llama_commit, 'threads': args.threads,
                       'results': results}, f, indent=1)


if __name__ == '__main__':
    main()
