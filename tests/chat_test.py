#!/usr/bin/env python3
"""`quarrel chat`: a three-turn greedy conversation with the default model (Gemma 3 270M,
no tokenizer.chat_template in its GGUF, so the `gemma` fallback) driven through stdin.

Checks:
- three replies, each non-empty (split out of stdout with the per-turn byte counts that
  `-v` prints on stderr);
- the KV cache is reused: turn 1 decodes the whole prompt; turns 2 and 3 reuse everything the
  previous turn left in the cache and decode only the new tokens. "The new tokens" are
  computed independently: the conversation is rendered with Google's own Gemma 3 Jinja
  template (tests/data/chat_templates/gemma3-it.jinja, with jinja2) and the text added since
  the previous turn is tokenized with `quarrel tokenize --special`;
- each turn's conversation length equals the token count of that Jinja rendering (BOS +
  special tokens parsed);
- the replies equal llama.cpp's greedy replies (llama-completion on the same rendered
  conversation, tests/data/chat/gemma3-270m-greedy-chat.json; the default model is the base
  model, so the replies are repetitive, but they must be the same tokens);
- the replies equal those of a fresh run that re-decodes the whole conversation every turn
  (`--no-cache`), i.e. reuse changes nothing.
Also: stories260K (no chat template, architecture llama) fails with a clear message naming
--chat-template, and an unknown template name lists the supported ones."""
import json
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from engine_pyapi import shared_dir, skip  # noqa: E402

FAILS = []
MESSAGES = ['What is the capital of France?', 'And what is the capital of Italy?', 'Thank you. Say goodbye.']
STATS = re.compile(r'turn (\d+): conversation (\d+) tokens, reused (\d+), decoded (\d+) .*?generated (\d+) '
                   r'\(.*?, (end of turn|-n limit)\), reply (\d+) bytes, cache (\d+)/(\d+)')
HERE = os.path.dirname(os.path.abspath(__file__))


def check(cond, what):
    print(('ok   ' if cond else 'FAIL ') + what)
    if not cond:
        FAILS.append(what)


def quarrel(args, stdin='', timeout=1200):
    env = dict(os.environ, QUARREL_LOG_LEVEL='error')
    r = subprocess.run([os.environ['QUARREL_BIN']] + args, input=stdin.encode(), capture_output=True,
                       timeout=timeout, env=env)
    return r.returncode, r.stdout, r.stderr.decode('utf-8', 'replace')


def chat(model, extra):
    rc, out, err = quarrel(['chat', '-m', model, '--temp', '0', '-n', '24', '-c', '1024', '-v'] + extra,
                           '\n'.join(MESSAGES) + '\n')
    turns = [dict(zip(('turn', 'conv', 'reused', 'decoded', 'gen', 'why', 'bytes', 'cache', 'n_ctx'),
                      [int(m.group(i)) if i != 6 else m.group(i) for i in range(1, 10)]))
             for m in STATS.finditer(err)]
    replies, pos = [], 0
    for t in turns:  # stdout is reply_1 "\n" reply_2 "\n" ...
        replies.append(out[pos:pos + t['bytes']].decode('utf-8', 'replace'))
        pos += t['bytes'] + 1
    ok = rc == 0 and len(turns) == len(MESSAGES) and pos == len(out)
    return ok, turns, replies, err


def jinja_render(msgs, gen_prompt):
    import jinja2
    import jinja2.ext
    import jinja2.sandbox
    env = jinja2.sandbox.ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                                       extensions=[jinja2.ext.loopcontrols])

    def raise_exception(m):
        raise jinja2.exceptions.TemplateError(m)
    env.globals['raise_exception'] = raise_exception
    src = open(os.path.join(HERE, 'data', 'chat_templates', 'gemma3-it.jinja')).read()
    # bos_token '' : quarrel's convention, the tokenizer adds BOS (docs/chat-templates.md)
    return env.from_string(src).render(messages=msgs, add_generation_prompt=gen_prompt, bos_token='')


def n_tokens(model, text, bos):
    rc, out, _ = quarrel(['tokenize', '-m', model, '-p', text, '--ids', '--special'] + (['--bos'] if bos else []))
    return len(out.split()) if rc == 0 else -1


def check_reuse(model, turns, replies):
    msgs = []
    prev_text = None
    for k, (t, msg) in enumerate(zip(turns, MESSAGES)):
        msgs.append({'role': 'user', 'content': msg})
        text = jinja_render(msgs, True)
        check(t['conv'] == n_tokens(model, text, True),
              'turn %d: conversation length %d = tokens of the Jinja rendering' % (k + 1, t['conv']))
        if k == 0:
            check(t['reused'] == 0 and t['decoded'] == t['conv'], 'turn 1 decodes the whole prompt')
        else:
            prev = turns[k - 1]
            check(t['reused'] == prev['cache'] and t['decoded'] == t['conv'] - prev['cache'],
                  'turn %d reuses the whole cache of turn %d (%d tokens) and decodes %d' %
                  (k + 1, k, prev['cache'], t['decoded']))
            cached_text = prev_text + replies[k - 1]
            if text.startswith(cached_text):
                new = n_tokens(model, text[len(cached_text):], False)
                check(t['decoded'] == new, 'turn %d decodes only its new tokens: %d (Jinja suffix: %d)' %
                      (k + 1, t['decoded'], new))
            else:
                print('note: turn %d: the template trimmed reply %d; suffix check skipped' % (k + 1, k))
        msgs.append({'role': 'assistant', 'content': replies[k]})
        prev_text = text


def check_no_template(shared):
    stories = os.path.join(shared, 'models', 'stories260K.gguf')
    rc, out, err = quarrel(['chat', '-m', stories], 'Hello\n')
    check(rc == 1 and 'no chat template' in err and '--chat-template' in err and not out,
          'stories260K without a template: clear error (%r)' % err.strip()[-140:])
    rc, _, err = quarrel(['chat', '-m', stories, '--chat-template', 'nosuch'], 'Hello\n')
    check(rc == 1 and 'chatml' in err and 'gemma' in err, 'unknown template name lists the supported ones')
    rc, out, err = quarrel(['chat', '-m', stories, '--chat-template', 'chatml', '--temp', '0', '-n', '8', '-v'],
                           'One\n\nTwo\n')
    check(rc == 0 and len(STATS.findall(err)) == 2, 'stories260K with --chat-template chatml: two turns (blank line skipped)')
    rc, _, err = quarrel(['chat', '-m', stories, '--chat-template', 'chatml', '-c', '32', '--temp', '0'],
                         'Once upon a time there was a very long story about a dog and a cat and a bird\n')
    check(rc == 1 and 'context full' in err, 'a conversation longer than the context fails clearly (%r)' % err.strip()[-120:])


def main():
    if not os.path.exists(os.environ.get('QUARREL_BIN', '')):
        skip('QUARREL_BIN is missing')
    shared = shared_dir()
    if shared:
        check_no_template(shared)
    else:
        print('note: ../shared is absent: stories260K checks skipped')
    model = os.path.join(os.environ.get('QUARREL_CACHE', ''), 'models', 'gemma-3-270m-q4_k_m.gguf')
    if not os.path.exists(model):
        if not shared:
            skip('neither the default model (%s) nor ../shared is available' % model)
        print('SKIPPED (part): default model %s is absent (scripts/default-model.sh installs it)' % model)
    else:
        ok, turns, replies, err = chat(model, [])
        check(ok, 'three turns with stats lines; stdout is exactly the replies (%r)' % err.strip()[-300:])
        for k, r in enumerate(replies):
            print('reply %d: %r' % (k + 1, r))
            check(r.strip() != '', 'reply %d is non-empty' % (k + 1))
        if ok:
            check_reuse(model, turns, replies)
        gold = json.load(open(os.path.join(HERE, 'data', 'chat', 'gemma3-270m-greedy-chat.json')))
        want = [t['llama_completion_stdout'][:-2] for t in gold['turns']]
        check(replies == want, "the replies equal llama.cpp's greedy replies (llama-completion, -n 24)")
        ok2, turns2, replies2, err2 = chat(model, ['--no-cache'])
        check(ok2 and all(t['reused'] == 0 and t['decoded'] == t['conv'] for t in turns2),
              'fresh run (--no-cache) re-decodes the whole conversation every turn')
        check(ok2 and replies2 == replies and [t['conv'] for t in turns2] == [t['conv'] for t in turns],
              'fresh run gives the same greedy replies')
    print('%d failure(s)' % len(FAILS) if FAILS else 'all ok')
    return 1 if FAILS else 0


if __name__ == '__main__':
    sys.exit(main())
