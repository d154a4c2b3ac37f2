#!/usr/bin/env python3
"""`quarrel serve` driven by the real `openai` client (PyPI) on stories260K.

Independent references:
- llama.cpp's greedy continuations and top-5 log-probabilities of stories260K
  (../shared/golden/stories260K-greedy.json, from llama-completion / llama-server 3f545bec):
  completions, streamed and not, must reproduce the text and the chosen tokens' logprobs;
- the chat prompt: the `chatml` template rendered with jinja2 from
  tests/data/chat_templates/chatml-openhermes-2.5.jinja; usage.prompt_tokens must equal its
  token count, and the reply must equal a plain completion of that rendered text;
- batch invariance: 32 concurrent greedy clients (half streamed) against a --parallel 32
  server must each get exactly what the same request gets alone on a --parallel 1 server;
- bad input (malformed JSON, wrong types, unknown endpoint, wrong method, body over the
  limit, prompt over the context, max_tokens <= 0, wrong/missing API key, n > 1, client
  disconnects mid-stream and mid-request, a flood beyond the queue, too many connections):
  each gets its documented status and an OpenAI-shaped error body, and the server keeps
  answering correctly afterwards.

QUARREL_SERVER_ASAN=1 runs a shorter version (the `server_asan` ctest entry of a
-DQUARREL_SANITIZE=ON build sets it, so `make test-asan` runs it against a server built with
-fsanitize=address,undefined) and also requires a clean shutdown with no sanitizer report."""
import concurrent.futures as cf
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import server_util as su  # noqa: E402
from server_util import check  # noqa: E402

ASAN = os.environ.get('QUARREL_SERVER_ASAN') == '1'
HERE = os.path.dirname(os.path.abspath(__file__))
KEY = 'sk-quarrel-test'
EOS_BAN = {'2': -100}  # stories260K's </s>: generation runs to max_tokens


def need(path, why):
    if not os.path.exists(path):
        su.skip(f'{why} ({path} is absent)')
    return path


def import_openai():
    try:
        import openai  # noqa: F401
        return openai
    except ImportError:
        su.skip('the openai package is not installed (scripts/setup.sh puts it in .cache/pydeps)')


# ---- Completions and chat against the references -------------------------------------------------

def test_golden_completions(client, golden):
    from openai.types import Completion
    cases = golden['cases'][:1] if ASAN else golden['cases']
    for case in cases:
        n = case['n_predict']
        expect = case['output'][len(case['prompt']) + 1:-2]  # echo " PROMPT" ... "\n\n" (not generated)
        r = client.completions.create(model='stories260K', prompt=case['prompt'], max_tokens=n, temperature=0,
                                      logprobs=5)
        check(isinstance(r, Completion) and r.object == 'text_completion', 'completion parses as openai Completion')
        c = r.choices[0]
        check(c.text == expect, f'greedy completion of {case["prompt"]!r} equals llama.cpp\'s ({c.text[:40]!r}...)')
        check(c.finish_reason == 'length' and r.usage.completion_tokens == n and
              r.usage.prompt_tokens == len(case['prompt_ids']), 'finish_reason length, usage counts')
        lp = c.logprobs
        ref = [step[0][1] for step in case['top5_logprobs_per_step']]
        worst = max(abs(a - b) for a, b in zip(lp.token_logprobs, ref))
        check(len(lp.token_logprobs) == n and worst < 2e-3,
              f'chosen-token logprobs match llama-server\'s (max diff {worst:.2e})')
        tops_ok = all(len(t) == 5 and abs(max(t.values()) - step[0][1]) < 2e-3
                      for t, step in zip(lp.top_logprobs, case['top5_logprobs_per_step']))
        check(tops_ok, 'top-5 logprobs: five alternatives, the best matching llama-server\'s')
        chunks = list(client.completions.create(model='stories260K', prompt=case['prompt'], max_tokens=n,
                                                temperature=0, stream=True, stream_options={'include_usage': True}))
        text = ''.join(ch.choices[0].text for ch in chunks if ch.choices)
        finals = [ch.choices[0].finish_reason for ch in chunks if ch.choices and ch.choices[0].finish_reason]
        check(all(isinstance(ch, Completion) for ch in chunks) and text == expect and finals == ['length'],
              'streamed completion: chunks parse, concatenate to the same text, one finish_reason')
        check(chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == n,
              'stream_options.include_usage: a final usage chunk')


def render_chatml(messages):
    import jinja2
    src = open(os.path.join(HERE, 'data', 'chat_templates', 'chatml-openhermes-2.5.jinja')).read()
    env = jinja2.Environment(trim_blocks=True, lstrip_blocks=True)
    return env.from_string(src).render(messages=messages, add_generation_prompt=True, bos_token='', eos_token='</s>')


def test_chat(srv, client):
    from openai.types.chat import ChatCompletion, ChatCompletionChunk
    msgs = [{'role': 'system', 'content': 'You tell short stories.'},
            {'role': 'user', 'content': 'Once upon a time'}]
    r = client.chat.completions.create(model='stories260K', messages=msgs, max_tokens=40, temperature=0)
    check(isinstance(r, ChatCompletion) and r.object == 'chat.completion', 'chat parses as openai ChatCompletion')
    m = r.choices[0].message
    rendered = render_chatml(msgs)
    _, _, tok = srv.request('POST', '/tokenize', {'content': rendered, 'add_special': True}, headers=auth())
    n_ref = len(json.loads(tok)['tokens'])
    check(r.usage.prompt_tokens == n_ref,
          f'chat prompt = the chatml Jinja rendering ({r.usage.prompt_tokens} vs {n_ref} tokens)')
    plain = client.completions.create(model='stories260K', prompt=rendered, max_tokens=40, temperature=0)
    check(m.role == 'assistant' and m.content == plain.choices[0].text and len(m.content) > 0,
          'chat reply equals a completion of the rendered prompt')
    chunks = list(client.chat.completions.create(model='stories260K', messages=msgs, max_tokens=40, temperature=0,
                                                 stream=True))
    check(all(isinstance(c, ChatCompletionChunk) for c in chunks), 'chat chunks parse as ChatCompletionChunk')
    check(chunks[0].choices[0].delta.role == 'assistant', 'first chunk carries the assistant role')
    text = ''.join(c.choices[0].delta.content or '' for c in chunks if c.choices)
    check(text == m.content and chunks[-1].choices[0].finish_reason == r.choices[0].finish_reason,
          'streamed chat equals the non-streamed reply')
    r = client.chat.completions.create(model='stories260K', messages=msgs, max_tokens=5, temperature=0,
                                       logprobs=True, top_logprobs=3)
    lp = r.choices[0].logprobs.content
    check(len(lp) == 5 and all(len(t.top_logprobs) == 3 and t.top_logprobs[0].logprob >= t.logprob - 1e-6 for t in lp),
          'chat logprobs: one entry per token, three alternatives each')


def test_parameters(srv, client, golden):
    case = golden['cases'][0]
    greedy = case['output'][len(case['prompt']) + 1:-2]
    r = client.completions.create(model='m', prompt=case['prompt'], max_tokens=64, temperature=0, stop=[' Lily', 'zzz'])
    cut = greedy[:greedy.index(' Lily')]
    check(r.choices[0].text == cut and r.choices[0].finish_reason == 'stop', 'stop string cuts the text before it')
    a = client.completions.create(model='m', prompt='The cat', max_tokens=30, temperature=0.9, seed=42)
    b = client.completions.create(model='m', prompt='The cat', max_tokens=30, temperature=0.9, seed=42)
    check(a.choices[0].text == b.choices[0].text, 'same seed, same sampled text')
    first = case['generated_ids'][0]
    r = client.completions.create(model='m', prompt=case['prompt'], max_tokens=1, temperature=0, logprobs=1,
                                  logit_bias={str(first): -100})
    check(not greedy.startswith(r.choices[0].text), 'logit_bias -100 bans the greedy token')
    models = client.models.list()
    check([m.id for m in models.data] == ['stories260K.gguf'], 'GET /v1/models lists the model')
    s, _, body = srv.request('POST', '/tokenize', {'content': case['prompt'], 'add_special': True}, headers=auth())
    toks = json.loads(body)['tokens']
    check(s == 200 and toks == case['prompt_ids'], '/tokenize gives llama-server\'s prompt ids')
    s, _, body = srv.request('POST', '/detokenize', {'tokens': case['generated_ids']}, headers=auth())
    check(s == 200 and json.loads(body)['content'] == greedy, '/detokenize gives llama.cpp\'s text')


# ---- Batch invariance ----------------------------------------------------------------------------

def prompts_32(golden):
    base = [c['prompt'] for c in golden['cases']]
    more = ['Once upon a time, there was a', 'Tom and Sue', 'The sun', 'One day, a little bird', 'Max had a red',
            'In the park', 'Mom said', 'The big dog ran', 'Ben liked to', 'She was very happy', 'Once upon a time']
    out = []
    i = 0
    while len(out) < 32:
        p = (base + more)[i % (len(base) + len(more))]
        out.append(p if i < 14 else p + ' ' + ['and', 'the', 'a', 'it'][i % 4])
        i += 1
    # One long prompt (~700 tokens, three chunks of the 256-row batch) prefilled while the
    # others decode.
    out[5] = 'Once upon a time, there was a little girl named Lily. ' * 50 + 'One day'
    return out


def one_request(port, prompt, stream, n):
    import openai
    c = openai.OpenAI(base_url=f'http://127.0.0.1:{port}/v1', api_key=KEY, max_retries=0, timeout=600)
    if stream:
        chunks = c.completions.create(model='m', prompt=prompt, max_tokens=n, temperature=0, stream=True,
                                      logit_bias=EOS_BAN)
        return ''.join(ch.choices[0].text for ch in chunks if ch.choices)
    return c.completions.create(model='m', prompt=prompt, max_tokens=n, temperature=0,
                                logit_bias=EOS_BAN).choices[0].text


def test_batch_invariance(srv, solo, golden):
    n = 16 if ASAN else 48
    prompts = prompts_32(golden)
    alone = [one_request(solo.port, p, False, n) for p in prompts]
    before = srv.metrics(auth())
    with cf.ThreadPoolExecutor(32) as ex:
        futs = [ex.submit(one_request, srv.port, p, i % 2 == 1, n) for i, p in enumerate(prompts)]
        together = [f.result() for f in futs]
    same = sum(a == b for a, b in zip(alone, together))
    check(same == 32, f'32 concurrent greedy requests equal the same requests alone ({same}/32)')
    after = srv.metrics(auth())
    steps = after['quarrel_batch_rows_count'] - before['quarrel_batch_rows_count']
    rows = after['quarrel_batch_rows_sum'] - before['quarrel_batch_rows_sum']
    check(steps > 0 and rows / steps > 4, f'requests shared forward passes ({rows / max(steps, 1):.1f} rows/pass)')
    hits = after['quarrel_prefix_cache_hit_tokens_total'] - before['quarrel_prefix_cache_hit_tokens_total']
    check(hits > 0 and after['quarrel_prefix_cache_hit_ratio'] > 0, f'shared prompt prefixes reused ({hits:.0f} tokens)')
    check(after['quarrel_active_sequences'] == 0 and after['quarrel_queue_length'] == 0, 'all sequences done')


# ---- Bad input -----------------------------------------------------------------------------------

def auth(key=KEY):
    return {'Authorization': f'Bearer {key}'}


def expect_error(srv, what, status, method, path, body=None, raw=None, headers=None, param=None, code=None):
    s, h, text = srv.request(method, path, body=body, raw=raw, headers=headers if headers is not None else auth())
    e = su.error_body(text)
    ok = s == status and e is not None and (param is None or e['param'] == param) and (code is None or e['code'] == code)
    check(ok, f'{what}: {status} with an OpenAI error body (got {s} {text[:120]!r})')
    return h


def test_bad_input(srv, client, golden):
    import openai
    P = '/v1/completions'
    expect_error(srv, 'malformed JSON', 400, 'POST', P, raw=b'{"prompt": "x", ')
    expect_error(srv, 'body not an object', 400, 'POST', P, raw=b'[1, 2]')
    expect_error(srv, 'prompt of the wrong type', 400, 'POST', P, {'prompt': 5}, param='prompt')
    expect_error(srv, 'max_tokens of the wrong type', 400, 'POST', P, {'prompt': 'x', 'max_tokens': 'ten'},
                 param='max_tokens')
    expect_error(srv, 'temperature of the wrong type', 400, 'POST', P, {'prompt': 'x', 'temperature': 'hot'},
                 param='temperature')
    expect_error(srv, 'stop of the wrong type', 400, 'POST', P, {'prompt': 'x', 'stop': 5}, param='stop')
    expect_error(srv, 'stream of the wrong type', 400, 'POST', P, {'prompt': 'x', 'stream': 'yes'}, param='stream')
    expect_error(srv, 'messages of the wrong type', 400, 'POST', '/v1/chat/completions', {'messages': 'hi'},
                 param='messages')
    expect_error(srv, 'logit_bias with a bad token id', 400, 'POST', P, {'prompt': 'x', 'logit_bias': {'99999': 1}},
                 param='logit_bias')
    expect_error(srv, 'n = 2', 400, 'POST', P, {'prompt': 'x', 'n': 2}, param='n')
    expect_error(srv, 'max_tokens 0', 400, 'POST', P, {'prompt': 'x', 'max_tokens': 0}, param='max_tokens')
    expect_error(srv, 'max_tokens -5', 400, 'POST', P, {'prompt': 'x', 'max_tokens': -5}, param='max_tokens')
    expect_error(srv, 'max_tokens over --max-tokens', 400, 'POST', P, {'prompt': 'x', 'max_tokens': 10 ** 6},
                 param='max_tokens')
    expect_error(srv, 'unknown endpoint', 404, 'POST', '/v1/nope', {'prompt': 'x'}, code='not_found')
    expect_error(srv, 'wrong method', 405, 'GET', P)
    expect_error(srv, 'body over --max-body', 413, 'POST', P, raw=json.dumps({'prompt': 'a ' * 60000}).encode(),
                 code='request_too_large')
    expect_error(srv, 'wrong API key', 401, 'POST', P, {'prompt': 'x'}, headers=auth('sk-wrong'),
                 code='invalid_api_key')
    expect_error(srv, 'missing API key', 401, 'GET', '/v1/models', headers={}, code='invalid_api_key')
    s, _, text = srv.request('GET', '/health', headers={})
    check(s == 200 and json.loads(text)['status'] == 'ok', '/health needs no key')
    try:
        client.completions.create(model='m', prompt='Once upon a time ' * 2500, max_tokens=4)
        check(False, 'prompt over the context is refused')
    except openai.BadRequestError as e:
        check(e.status_code == 400 and e.code == 'context_length_exceeded',
              'prompt over the context: openai.BadRequestError, code context_length_exceeded')
    bad = openai.OpenAI(base_url=srv.base + '/v1', api_key='sk-wrong', max_retries=0)
    try:
        bad.models.list()
        check(False, 'wrong key is refused')
    except openai.AuthenticationError as e:
        check(e.status_code == 401, 'wrong key: openai.AuthenticationError')
    case = golden['cases'][0]
    r = client.completions.create(model='m', prompt=case['prompt'], max_tokens=64, temperature=0)
    check(r.choices[0].text == case['output'][len(case['prompt']) + 1:-2], 'after all that, still correct')


def read_until(sock, marker, limit=1 << 20):
    data = b''
    while marker not in data and len(data) < limit:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def test_disconnect(srv):
    before = srv.metrics(auth())
    body = {'prompt': 'Once upon a time', 'max_tokens': 3000, 'temperature': 0, 'stream': True, 'logit_bias': EOS_BAN}
    s = su.post_raw(srv.port, '/v1/completions', body, f'Authorization: Bearer {KEY}\r\n')
    got = read_until(s, b'data: ')
    s.close()
    check(b'200 OK' in got, 'stream started')
    gone = su.wait_until(lambda: srv.metrics(auth())['quarrel_requests_cancelled_total'] >=
                         before['quarrel_requests_cancelled_total'] + 1)
    m = srv.metrics(auth())
    check(gone and m['quarrel_active_sequences'] == 0, 'client gone mid-stream: sequence cancelled')
    generated = m['quarrel_generated_tokens_total'] - before['quarrel_generated_tokens_total']
    check(generated < 3000, f'...before its 3000 tokens ({generated:.0f} generated)')
    body['stream'] = False
    s = su.post_raw(srv.port, '/v1/completions', body, f'Authorization: Bearer {KEY}\r\n')
    time.sleep(0.05)
    s.close()
    gone = su.wait_until(lambda: srv.metrics(auth())['quarrel_requests_cancelled_total'] >=
                         before['quarrel_requests_cancelled_total'] + 2)
    check(gone and srv.metrics(auth())['quarrel_active_sequences'] == 0,
          'client gone mid-request (not streamed): sequence cancelled')
    m = srv.metrics(auth())
    check(m['quarrel_kv_pages_free'] > 0 and m['quarrel_kv_pages_used'] <= before['quarrel_kv_pages_used'] + 1,
          'cancelled sequences gave their pages back')


def flood_request(port, n):
    import http.client
    c = http.client.HTTPConnection('127.0.0.1', port, timeout=600)
    c.request('POST', '/v1/completions', body=json.dumps(
        {'prompt': 'Once upon a time', 'max_tokens': n, 'temperature': 0, 'logit_bias': EOS_BAN}),
        headers={'Content-Type': 'application/json'})
    r = c.getresponse()
    return r.status, r.getheader('Retry-After'), r.read().decode()


def test_priority(srv, n):
    """One slot: while a long request runs, a low-priority request queues, then a
    high-priority one; the high one must be admitted (and finish) first. The requests are
    sent in step with the server's gauges (the long one running, then one queued, then
    two), not on timers: on a loaded machine a timer once let the high one arrive before
    the long one was admitted. If the long one ends before both are queued, the scenario
    is run again (three tries)."""
    import http.client

    def send(priority, tokens, done):
        c = http.client.HTTPConnection('127.0.0.1', srv.port, timeout=600)
        c.request('POST', '/v1/completions', body=json.dumps(
            {'prompt': 'The cat', 'max_tokens': tokens, 'temperature': 0, 'priority': priority,
             'logit_bias': EOS_BAN}), headers={'Content-Type': 'application/json'})
        status = c.getresponse().status
        done.append((priority, status))

    def wait_for(cond, done, n_done):
        """Polls /metrics until cond holds (True) or n_done requests have answered (False)."""
        deadline = time.time() + 60
        while time.time() < deadline and len(done) < n_done:
            if cond(srv.metrics()):
                return True
            time.sleep(0.005)
        return False

    for _ in range(3):
        done = []
        with cf.ThreadPoolExecutor(3) as ex:
            futs = [ex.submit(send, 0, n * 4, done)]
            staged = wait_for(lambda m: m.get('quarrel_active_sequences') == 1, done, 1)
            if staged:
                futs.append(ex.submit(send, 1, 96, done))
                staged = wait_for(lambda m: m.get('quarrel_queue_length') == 1, done, 1)
            if staged:
                futs.append(ex.submit(send, 9, 4, done))
                staged = wait_for(lambda m: m.get('quarrel_queue_length') == 2, done, 1)
            for f in futs:
                f.result()
        if staged:
            break
    check(staged, 'priority: both requests queued behind the long one (in one of three tries)')
    check([p for p, _ in done] == [0, 9, 1] and all(s == 200 for _, s in done),
          f'priority: the later high-priority request ran before the earlier low one ({done})')


def test_flood(model):
    n = 64 if ASAN else 256
    srv = su.Server(model, '-np', '1', '--max-queue', '2', '--max-connections', '16')
    try:
        with cf.ThreadPoolExecutor(12) as ex:
            results = list(ex.map(lambda _: flood_request(srv.port, n), range(12)))
        ok = [r for r in results if r[0] == 200]
        busy = [r for r in results if r[0] == 503]
        check(len(ok) + len(busy) == 12 and len(busy) >= 1 and len(ok) >= 2,
              f'flood beyond --max-queue: {len(ok)} served, {len(busy)} refused with 503')
        check(all(r[1] == '1' and (su.error_body(r[2]) or {}).get('code') == 'queue_full' for r in busy),
              '503s carry Retry-After and code queue_full')
        texts = {json.loads(r[2])['choices'][0]['text'] for r in ok}
        alone = flood_request(srv.port, n)
        check(alone[0] == 200 and texts == {json.loads(alone[2])['choices'][0]['text']},
              'the served ones are all correct (equal to the request alone afterwards)')
        test_priority(srv, n)
        socks = [su.raw_socket(srv.port) for _ in range(17)]
        time.sleep(0.2)
        s, _, text = srv.request('GET', '/v1/models')
        check(s == 503 and (su.error_body(text) or {}).get('code') == 'too_many_connections',
              f'connections beyond --max-connections: 503 too_many_connections (got {s})')
        for sk in socks:
            sk.close()
        check(su.wait_until(lambda: srv.request('GET', '/v1/models')[0] == 200), 'served again once they close')
    finally:
        rc = srv.stop()
    check(rc == 0, f'flood server shut down cleanly (exit {rc})')
    return srv


def sanitizer_clean(srv, name):
    log = ''.join(srv.stderr_lines)
    bad = [w for w in ('AddressSanitizer', 'LeakSanitizer', 'runtime error:') if w in log]
    check(not bad, f'{name}: no sanitizer report' + (f' ({bad}): ' + log[-2000:] if bad else ''))


def main():
    import_openai()
    import openai
    shared = os.environ.get('QUARREL_SHARED', os.path.join(HERE, '..', '..', 'shared'))
    model = need(os.path.join(shared, 'models', 'stories260K.gguf'), 'needs ../shared')
    golden = json.load(open(need(os.path.join(shared, 'golden', 'stories260K-greedy.json'), 'needs ../shared')))
    srv = su.Server(model, '-np', '32', '-c', '8192', '--api-key', KEY, '--chat-template', 'chatml',
                    '--max-body', '65536', '--max-tokens', '4000')
    solo = su.Server(model, '-np', '1', '-c', '2048', '--api-key', KEY, '--chat-template', 'chatml')
    try:
        client = openai.OpenAI(base_url=srv.base + '/v1', api_key=KEY, max_retries=0, timeout=600)
        test_golden_completions(client, golden)
        test_chat(srv, client)
        test_parameters(srv, client, golden)
        test_batch_invariance(srv, solo, golden)
        test_bad_input(srv, client, golden)
        test_disconnect(srv)
        flood = test_flood(model)
        m = srv.metrics(auth())
        check(m.get('quarrel_requests_total{endpoint="completions",status="200"}', 0) > 30 and
              m.get('quarrel_requests_total{endpoint="completions",status="400"}', 0) >= 10 and
              m['quarrel_time_to_first_token_seconds_count'] > 30 and m['quarrel_kv_pages_total'] > 0,
              '/metrics counts requests by status, TTFT, KV pages')
    finally:
        rc, rc_solo = srv.stop(), solo.stop()
    check(rc == 0 and rc_solo == 0, f'servers shut down cleanly on SIGTERM (exit {rc}, {rc_solo})')
    if ASAN:
        for s, name in ((srv, 'main server'), (solo, 'solo server'), (flood, 'flood server')):
            sanitizer_clean(s, name)
    su.finish('server_test' + (' (ASan)' if ASAN else ''))


if __name__ == '__main__':
    main()
