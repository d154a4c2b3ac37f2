#!/usr/bin/env python3
"""`quarrel serve` chat with the default model (Gemma 3 270M) and its real template, through
the `openai` client.

The file has no tokenizer.chat_template, so the server uses the `gemma` template (as `quarrel
chat` does). Independent references: the conversation rendered with Google's Gemma 3 Jinja
template (tests/data/chat_templates/gemma3-it.jinja, jinja2) must have the token count the
server reports as usage.prompt_tokens, and the greedy replies must equal llama.cpp's
(tests/data/chat/gemma3-270m-greedy-chat.json: llama-completion on the same rendered
conversations), streamed and not, or leave them only at a near tie (within 0.2 nats: the
server's batch-invariant summation order differs from llama.cpp's prompt path). Two turns run concurrently to check they do not disturb
each other. Skips visibly when the model is absent (make model installs it)."""
import concurrent.futures as cf
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import server_util as su  # noqa: E402
from server_util import check  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def render(messages):
    import jinja2
    src = open(os.path.join(HERE, 'data', 'chat_templates', 'gemma3-it.jinja')).read()
    env = jinja2.Environment(trim_blocks=True, lstrip_blocks=True)
    env.globals['raise_exception'] = lambda msg: (_ for _ in ()).throw(Exception(msg))
    return env.from_string(src).render(messages=messages, add_generation_prompt=True, bos_token='')


def check_reply(i, r, reply):
    """The greedy reply equals llama.cpp's, or leaves it only at a near tie. The server's
    context is batch-invariant (every row summed in the decode order), which rounds the
    prompt differently from llama.cpp's batched prompt path (docs/api.md); at a step where
    two tokens are within 0.2 nats, that may pick the other one. The divergence must be such
    a near tie: llama.cpp's token among our top 5, within 0.2 nats of ours."""
    ours = r.choices[0].message.content
    if ours == reply:
        check(True, f'turn {i + 1}: greedy reply equals llama.cpp\'s ({ours[:40]!r}...)')
        return
    done = ''
    for k, t in enumerate(r.choices[0].logprobs.content):
        rest = reply[len(done):]
        if not rest.startswith(t.token):
            alt = [a for a in t.top_logprobs if a.token and rest.startswith(a.token)]
            gap = t.logprob - alt[0].logprob if alt else float('inf')
            check(gap < 0.2, f'turn {i + 1}: reply leaves llama.cpp\'s at token {k} only at a near tie '
                             f'(ours {t.token!r} {t.logprob:.4f}, llama.cpp\'s {alt[0].token if alt else None!r}, '
                             f'gap {gap:.3f} nats)')
            return
        done += t.token
    check(False, f'turn {i + 1}: reply {ours!r} differs from llama.cpp\'s {reply!r}')


def main():
    try:
        import openai
    except ImportError:
        su.skip('the openai package is not installed (scripts/setup.sh puts it in .cache/pydeps)')
    cache = os.environ.get('QUARREL_CACHE', os.path.join(HERE, '..', '.cache'))
    model = os.path.join(cache, 'models', 'gemma-3-270m-q4_k_m.gguf')
    if not os.path.exists(model):
        su.skip(f'the default model {model} is absent (make model)')
    ref = json.load(open(os.path.join(HERE, 'data', 'chat', 'gemma3-270m-greedy-chat.json')))
    convs, msgs = [], []
    for user, turn in zip(ref['messages'], ref['turns']):
        msgs = msgs + [{'role': 'user', 'content': user}]
        reply = turn['llama_completion_stdout'][:-2]  # llama-completion's stdout ends with an extra "\n\n"
        convs.append((list(msgs), reply))
        msgs = msgs + [{'role': 'assistant', 'content': reply}]
    srv = su.Server(model, '-np', '2', '-c', '2048')
    try:
        client = openai.OpenAI(base_url=srv.base + '/v1', api_key='none', max_retries=0, timeout=600)
        for i, (conv, reply) in enumerate(convs):
            r = client.chat.completions.create(model='gemma', messages=conv, max_tokens=24, temperature=0,
                                               logprobs=True, top_logprobs=5)
            n_ref = len(json.loads(srv.request('POST', '/tokenize', {'content': render(conv),
                                                                      'add_special': True})[2])['tokens'])
            check(r.usage.prompt_tokens == n_ref,
                  f'turn {i + 1}: prompt = Gemma 3 Jinja rendering ({r.usage.prompt_tokens} vs {n_ref} tokens)')
            check_reply(i, r, reply)
        # Turns 2 and 3 together (one streamed), sharing the cached conversation prefix.
        def streamed(conv):
            chunks = client.chat.completions.create(model='gemma', messages=conv, max_tokens=24, temperature=0,
                                                    stream=True)
            return ''.join(c.choices[0].delta.content or '' for c in chunks if c.choices)

        def plain(conv):
            return client.chat.completions.create(model='gemma', messages=conv, max_tokens=24,
                                                  temperature=0).choices[0].message.content
        with cf.ThreadPoolExecutor(2) as ex:
            a = ex.submit(streamed, convs[1][0])
            b = ex.submit(plain, convs[2][0])
            check(a.result() == convs[1][1], 'turn 2 streamed, concurrently: llama.cpp\'s reply')
            check(b.result() == convs[2][1], 'turn 3 concurrently: llama.cpp\'s reply')
        m = srv.metrics()
        check(m['quarrel_prefix_cache_hit_tokens_total'] > 0, 'later turns reused the cached conversation prefix')
    finally:
        rc = srv.stop()
    check(rc == 0, f'clean shutdown (exit {rc})')
    su.finish('server_gemma_test')


if __name__ == '__main__':
    main()
