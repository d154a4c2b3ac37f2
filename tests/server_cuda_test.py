#!/usr/bin/env python3
"""`quarrel serve --device cuda` (ctest py_server_cuda_test, label `cuda`): the server's
promises on the CUDA backend, on stories260K. Only the standard library is used (the device
machine has no `openai` package; tests/server_test.py checks the API shapes with it).

- prefix sharing: while request A streams, request B, whose prompt shares A's long prefix,
  arrives; the server gives B's slot A's cached prefix (qr_ctx_seq_copy: shared pages, and
  copies on write that the CUDA forward must repeat on the device). A and B must each equal
  the same request alone, the prefix-cache metrics must count the reused tokens, and pages
  must be shared afterwards;
- batch invariance: 32 concurrent greedy clients (half streamed; one ~700-token prompt
  prefilled in chunks while the others decode) must each get exactly what the same request
  gets alone.

The independent reference is each request run alone on a --parallel 1 CUDA server (one
slot: its prompts are computed, never copied from another sequence) with the same context
size: CUDA attention splits a row's cells into a number of chunks set by -c, so servers of
different -c may differ in the last bits (docs/server.md).

Skipped (exit 77) where `quarrel run --device cuda` reports no CUDA device or no CUDA
backend. QUARREL_CUDA_SERVER_MODEL overrides the model (e.g. a `quarrel synth --arch gemma3
--window 16` file, whose sliding-window cells are copied too); requests send ignore_eos, so
any model generates max_tokens tokens. QUARREL_CUDA_SERVER_DEVICE=cpu runs the same checks
on the CPU backend (a dry run of the test itself where there is no GPU)."""
import concurrent.futures as cf
import http.client
import json
import os
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import server_util as su  # noqa: E402
from server_util import check  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
CTX = '8192'
PREFIX = 'Once upon a time, there was a little girl named Lily. She loved to play in the park. ' * 8


DEVICE = os.environ.get('QUARREL_CUDA_SERVER_DEVICE', 'cuda')


def probe_device(model):
    """Skips the test unless a context on DEVICE can be made here."""
    r = subprocess.run([os.environ['QUARREL_BIN'], 'run', '--device', DEVICE, '-m', model, '-n', '1', '-p', 'Once',
                        '--temp', '0'], capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        msg = (r.stderr.strip().splitlines() or ['?'])[-1]
        if 'no CUDA device' in msg or 'no CUDA backend' in msg:
            su.skip(f'quarrel run --device {DEVICE}: {msg}')
        check(False, f'quarrel run --device {DEVICE} works ({msg})')
        su.finish('server_cuda_test')


def complete(port, prompt, n, stream, first_chunk=None):
    """Greedy completion text (POST /v1/completions); a streamed one is read event by
    event, and first_chunk (an Event) is set when its first text arrives."""
    body = {'prompt': prompt, 'max_tokens': n, 'temperature': 0, 'ignore_eos': True, 'stream': stream}
    conn = http.client.HTTPConnection('127.0.0.1', port, timeout=600)
    conn.request('POST', '/v1/completions', body=json.dumps(body), headers={'Content-Type': 'application/json'})
    resp = conn.getresponse()
    if resp.status != 200:
        raise RuntimeError(f'HTTP {resp.status}: {resp.read()[:300]!r}')
    if not stream:
        text = json.loads(resp.read())['choices'][0]['text']
        conn.close()
        return text
    pieces = []
    for line in iter(resp.readline, b''):
        if not line.startswith(b'data: ') or line.strip() == b'data: [DONE]':
            continue
        for ch in json.loads(line[6:]).get('choices') or []:
            pieces.append(ch.get('text') or '')
            if first_chunk is not None and pieces[-1]:
                first_chunk.set()
    conn.close()
    return ''.join(pieces)


def test_prefix_pair(srv, solo):
    a_prompt, b_prompt = PREFIX + 'One day she went to the', PREFIX + 'Her mom said'
    n_a, n_b = 1500, 48  # A runs long enough that B arrives and finishes while A streams
    _, _, tok = srv.request('POST', '/tokenize', {'content': PREFIX, 'add_special': True})
    n_prefix = len(json.loads(tok)['tokens'])
    before = srv.metrics()
    started = threading.Event()
    done = {}
    with cf.ThreadPoolExecutor(1) as ex:
        fut_a = ex.submit(complete, srv.port, a_prompt, n_a, True, started)
        while not started.wait(0.1) and not fut_a.done():
            pass
        check(started.is_set(), 'request A started streaming')
        b = complete(srv.port, b_prompt, n_b, False)
        done['b'] = time.monotonic()
        a = fut_a.result()
        done['a'] = time.monotonic()
    check(done['b'] < done['a'], 'request B ran while A was still generating')
    after = srv.metrics()
    hits = after['quarrel_prefix_cache_hit_tokens_total'] - before['quarrel_prefix_cache_hit_tokens_total']
    check(hits >= n_prefix - 2, f'B reused the shared prefix ({hits:.0f} of its {n_prefix} prefix tokens)')
    check(after['quarrel_kv_pages_shared'] >= 1, f'pages are shared ({after["quarrel_kv_pages_shared"]:.0f})')
    check(b == complete(solo.port, b_prompt, n_b, False), 'B (prefix copied from A) equals B alone')
    check(a == complete(solo.port, a_prompt, n_a, False), 'A (prefix shared with B) equals A alone')


def prompts_32():
    base = ['Once upon a time', 'The little dog', 'Lily wanted to', 'One day, a little bird', 'Tom and Sue went to the',
            'The sun was shining and', 'In the big park there was', 'Max had a red ball. He', 'Mom said',
            'The big dog ran', 'Ben liked to', 'She was very happy']
    out = [base[i % len(base)] + ('' if i < len(base) else ' ' + ['and', 'the', 'a', 'it'][i % 4]) for i in range(32)]
    # One long prompt (~700 tokens: three chunks of the 256-row batch) prefilled while the
    # others decode.
    out[5] = 'Once upon a time, there was a little girl named Lily. ' * 50 + 'One day'
    return out


def test_batch_invariance(srv, solo):
    n = 48
    prompts = prompts_32()
    alone = [complete(solo.port, p, n, False) for p in prompts]
    before = srv.metrics()
    with cf.ThreadPoolExecutor(32) as ex:
        futs = [ex.submit(complete, srv.port, p, n, i % 2 == 1) for i, p in enumerate(prompts)]
        together = [f.result() for f in futs]
    same = sum(a == b for a, b in zip(alone, together))
    check(same == 32, f'32 concurrent greedy requests on {DEVICE} equal the same requests alone ({same}/32)')
    after = srv.metrics()
    steps = after['quarrel_batch_rows_count'] - before['quarrel_batch_rows_count']
    rows = after['quarrel_batch_rows_sum'] - before['quarrel_batch_rows_sum']
    check(steps > 0 and rows / steps > 4, f'requests shared forward passes ({rows / max(steps, 1):.1f} rows/pass)')
    check(after['quarrel_active_sequences'] == 0 and after['quarrel_queue_length'] == 0, 'all sequences done')


def main():
    model = os.environ.get('QUARREL_CUDA_SERVER_MODEL')
    if not model:
        shared = os.environ.get('QUARREL_SHARED', os.path.join(HERE, '..', '..', 'shared'))
        model = os.path.join(shared, 'models', 'stories260K.gguf')
    if not os.path.exists(model):
        su.skip(f'needs ../shared ({model} is absent)')
    probe_device(model)
    srv = su.Server(model, '-np', '32', '-c', CTX, device=DEVICE)
    solo = su.Server(model, '-np', '1', '-c', CTX, device=DEVICE)
    try:
        check(f'device {DEVICE}' in srv.banner and f'device {DEVICE}' in solo.banner,
              f'the banner names the device ({srv.banner.strip()!r})')
        test_prefix_pair(srv, solo)  # first: no other slot holds a cached prefix yet
        test_batch_invariance(srv, solo)
    finally:
        rc, rc_solo = srv.stop(), solo.stop()
    check(rc == 0 and rc_solo == 0, f'{DEVICE} servers shut down cleanly on SIGTERM (exit {rc}, {rc_solo})')
    su.finish('server_cuda_test')


if __name__ == '__main__':
    main()
