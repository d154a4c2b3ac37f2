#!/usr/bin/env python3
"""Load generator for OpenAI-compatible servers (quarrel serve, llama.cpp's llama-server).

N concurrent streams each send R streamed completion requests back to back to
POST /v1/completions on a running server and time them on the client side:

  - aggregate generated tokens/s: all completion tokens of a level / its wall time;
  - latency: request sent -> last byte (p50, p99);
  - TTFT: request sent -> first chunk with text (p50, p99).

Tokens are counted from the final usage chunk (stream_options.include_usage) when the
server sends one, else as the number of chunks with text (one token per chunk in both
servers). Every request sends ignore_eos so each generates exactly --max-tokens tokens on
both servers, and temperature 0. Prompts rotate through a fixed list (both servers cache
prompt prefixes the same way, so neither is favoured).

Only the standard library is used, so it runs anywhere Python 3 does:

  bench/serve-load.py --url http://127.0.0.1:8080 --streams 1,8,32 --max-tokens 128
  bench/serve-load.py --url ... --json results.json --label quarrel
"""
import argparse
import http.client
import json
import statistics
import sys
import threading
import time
import urllib.parse

PROMPTS = [
    'Once upon a time', 'The little dog', 'Lily wanted to', 'One day, a little bird', 'Tom and Sue went to the',
    'The sun was shining and', 'In the big park there was', 'Max had a red ball. He',
]


def percentile(xs, q):
    if not xs:
        return float('nan')
    s = sorted(xs)
    k = (len(s) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def one_request(host, port, path, body, headers):
    """Streams one completion; returns (latency s, ttft s, tokens)."""
    conn = http.client.HTTPConnection(host, port, timeout=3600)
    t0 = time.perf_counter()
    conn.request('POST', path, body=json.dumps(body), headers=headers)
    resp = conn.getresponse()
    if resp.status != 200:
        raise RuntimeError(f'HTTP {resp.status}: {resp.read()[:300]!r}')
    ttft, chunks, usage_tokens, buf = None, 0, None, b''
    while True:
        data = resp.read1(65536) if hasattr(resp, 'read1') else resp.read(1)
        if not data:
            break
        buf += data
        while b'\n\n' in buf:
            event, buf = buf.split(b'\n\n', 1)
            for line in event.split(b'\n'):
                if not line.startswith(b'data: '):
                    continue
                payload = line[6:].strip()
                if payload == b'[DONE]':
                    continue
                obj = json.loads(payload)
                if obj.get('usage') and obj['usage'].get('completion_tokens') is not None:
                    usage_tokens = obj['usage']['completion_tokens']
                for ch in obj.get('choices') or []:
                    if ch.get('text'):
                        chunks += 1
                        if ttft is None:
                            ttft = time.perf_counter() - t0
    latency = time.perf_counter() - t0
    conn.close()
    return latency, ttft if ttft is not None else latency, usage_tokens if usage_tokens is not None else chunks


def run_level(args, n_streams):
    u = urllib.parse.urlparse(args.url)
    headers = {'Content-Type': 'application/json'}
    if args.api_key:
        headers['Authorization'] = f'Bearer {args.api_key}'
    results, errors = [], []
    lock = threading.Lock()

    def stream(si):
        for r in range(args.requests):
            body = {'model': args.model, 'prompt': PROMPTS[(si + r) % len(PROMPTS)], 'max_tokens': args.max_tokens,
                    'temperature': 0, 'stream': True, 'ignore_eos': True, 'stream_options': {'include_usage': True}}
            try:
                res = one_request(u.hostname, u.port or 80, '/v1/completions', body, headers)
                with lock:
                    results.append(res)
            except Exception as e:  # noqa: BLE001 - reported below
                with lock:
                    errors.append(str(e))

    threads = [threading.Thread(target=stream, args=(i,)) for i in range(n_streams)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    lat = [r[0] for r in results]
    ttft = [r[1] for r in results]
    tokens = sum(r[2] for r in results)
    return {'streams': n_streams, 'requests': len(results), 'errors': len(errors), 'wall_s': wall,
            'tokens': tokens, 'tok_per_s': tokens / wall if wall > 0 else 0.0,
            'latency_p50_s': percentile(lat, 0.5), 'latency_p99_s': percentile(lat, 0.99),
            'ttft_p50_s': percentile(ttft, 0.5), 'ttft_p99_s': percentile(ttft, 0.99),
            'first_error': errors[0] if errors else None}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--url', default='http://127.0.0.1:8080')
    ap.add_argument('--streams', default='1,8,32', help='comma-separated concurrency levels')
    ap.add_argument('--requests', type=int, default=2, help='requests per stream at each level')
    ap.add_argument('--max-tokens', type=int, default=128)
    ap.add_argument('--model', default='default')
    ap.add_argument('--api-key', default=None)
    ap.add_argument('--label', default='server')
    ap.add_argument('--json', default=None, help='also write the results to this file')
    args = ap.parse_args()
    # Warm-up: one short request, not timed.
    args_w = argparse.Namespace(**vars(args))
    args_w.requests, args_w.max_tokens = 1, 4
    run_level(args_w, 1)
    rows = []
    print(f'{args.label}: {args.url}, max_tokens {args.max_tokens}, {args.requests} requests per stream')
    print(f'{"streams":>7} {"reqs":>5} {"gen tok/s":>10} {"lat p50":>9} {"lat p99":>9} {"ttft p50":>9} {"ttft p99":>9}')
    for n in [int(x) for x in args.streams.split(',')]:
        r = run_level(args, n)
        rows.append(r)
        print(f'{n:>7} {r["requests"]:>5} {r["tok_per_s"]:>10.1f} {r["latency_p50_s"]:>8.3f}s {r["latency_p99_s"]:>8.3f}s '
              f'{r["ttft_p50_s"]:>8.3f}s {r["ttft_p99_s"]:>8.3f}s' + (f'  ({r["errors"]} errors: {r["first_error"]})'
                                                                      if r['errors'] else ''), flush=True)
    if args.json:
        with open(args.json, 'w') as f:
            json.dump({'label': args.label, 'url': args.url, 'max_tokens': args.max_tokens,
                       'requests_per_stream': args.requests, 'levels': rows}, f, indent=1)
    return 1 if any(r['errors'] for r in rows) else 0


if __name__ == '__main__':
    sys.exit(main())
