#!/usr/bin/env python3
"""Independent reference logits for quarrel's `mistral` architecture (GGUF arch `llama` with
`llama.attention.sliding_window`), computed with Hugging Face transformers'
MistralForCausalLM. llama.cpp cannot serve as the reference here: it ignores that key and
runs full causal attention (../shared/MODELS.md, "Sliding window").

Two steps, because the GPU machine that ran step 2 had torch + transformers but no `gguf`:

  1. export (needs numpy + gguf):  for each GGUF, dequantize every tensor with
     gguf.quants.dequantize, undo the llama converter's Q/K row permutation, and save the
     HF-named float32 weights + the config to an .npz
       make_reference.py export OUT_DIR MODEL.gguf...

  2. reference (needs torch + transformers): build MistralForCausalLM from each .npz
     (float64, attn_implementation="eager" so the sliding window is honoured), check that
     the window really masks (attention probabilities), and write the logits of every
     position of the prompt as float32 [n_tokens][n_vocab] little-endian
       make_reference.py reference OUT_DIR PROMPT_IDS_JSON NPZ...

The prompt ids are those of ../synth-arch-logits/manifest.json. See ../README.md.
"""
import json
import os
import sys

import numpy as np


# ---- step 1: GGUF -> npz ----------------------------------------------------------------

def _kv(reader, key):
    f = reader.fields.get(key)
    if f is None:
        return None
    v = f.parts[f.data[0]]
    if len(f.types) and f.types[0].name == 'STRING':
        return bytes(v).decode()
    return v.tolist()[0]


def _unpermute(w, n_head):
    """GGUF rows of one head are (HF row 0, HF row hd/2, HF row 1, HF row hd/2+1, ...):
    the llama converter interleaved the rotate-half pairs for NORM RoPE. Undo it."""
    rows, cols = w.shape
    hd = rows // n_head
    return w.reshape(n_head, hd // 2, 2, cols).swapaxes(1, 2).reshape(rows, cols)


def export(out_dir, paths):
    import gguf
    os.makedirs(out_dir, exist_ok=True)
    for path in paths:
        r = gguf.GGUFReader(path)
        arch = _kv(r, 'general.architecture')
        assert arch == 'llama', path
        cfg = {
            'n_embd': _kv(r, 'llama.embedding_length'),
            'n_layer': _kv(r, 'llama.block_count'),
            'n_head': _kv(r, 'llama.attention.head_count'),
            'n_head_kv': _kv(r, 'llama.attention.head_count_kv'),
            'n_ff': _kv(r, 'llama.feed_forward_length'),
            'n_ctx': _kv(r, 'llama.context_length'),
            'eps': _kv(r, 'llama.attention.layer_norm_rms_epsilon'),
            'rope_base': _kv(r, 'llama.rope.freq_base') or 10000.0,
            'n_rot': _kv(r, 'llama.rope.dimension_count'),
            'head_dim': _kv(r, 'llama.attention.key_length'),
            'sliding_window': _kv(r, 'llama.attention.sliding_window'),
        }
        if cfg['head_dim'] is None:
            cfg['head_dim'] = cfg['n_embd'] // cfg['n_head']
        w = {}
        for t in r.tensors:
            a = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float32)
            shape = tuple(int(x) for x in reversed(t.shape.tolist()))
            w[t.name] = a.reshape(shape)
        cfg['n_vocab'] = int(w['token_embd.weight'].shape[0])
        cfg['tied'] = 'output.weight' not in w
        assert cfg['n_rot'] in (None, cfg['head_dim']), 'partial RoPE not handled'
        hf = {'model.embed_tokens.weight': w['token_embd.weight'],
              'model.norm.weight': w['output_norm.weight']}
        if not cfg['tied']:
            hf['lm_head.weight'] = w['output.weight']
        for i in range(cfg['n_layer']):
            p, q = 'blk.%d.' % i, 'model.layers.%d.' % i
            hf[q + 'self_attn.q_proj.weight'] = _unpermute(w[p + 'attn_q.weight'], cfg['n_head'])
            hf[q + 'self_attn.k_proj.weight'] = _unpermute(w[p + 'attn_k.weight'], cfg['n_head_kv'])
            hf[q + 'self_attn.v_proj.weight'] = w[p + 'attn_v.weight']
            hf[q + 'self_attn.o_proj.weight'] = w[p + 'attn_output.weight']
            hf[q + 'mlp.gate_proj.weight'] = w[p + 'ffn_gate.weight']
            hf[q + 'mlp.up_proj.weight'] = w[p + 'ffn_up.weight']
            hf[q + 'mlp.down_proj.weight'] = w[p + 'ffn_down.weight']
            hf[q + 'input_layernorm.weight'] = w[p + 'attn_norm.weight']
            hf[q + 'post_attention_layernorm.weight'] = w[p + 'ffn_norm.weight']
        extra = set(w) - {'token_embd.weight', 'output_norm.weight', 'output.weight'} - {
            'blk.%d.%s.weight' % (i, n) for i in range(cfg['n_layer']) for n in
            ('attn_q', 'attn_k', 'attn_v', 'attn_output', 'ffn_gate', 'ffn_up', 'ffn_down',
             'attn_norm', 'ffn_norm')}
        assert not extra, 'unhandled tensors (biases?): %s' % sorted(extra)
        name = os.path.splitext(os.path.basename(path))[0]
        np.savez(os.path.join(out_dir, name + '.npz'), __config__=json.dumps(cfg), **hf)
        print('exported', name, cfg)


# ---- step 2: npz -> HF logits -----------------------------------------------------------

def _build(npz, torch, dtype, device):
    from transformers import MistralConfig, MistralForCausalLM
    z = np.load(npz)
    cfg = json.loads(str(z['__config__']))
    conf = MistralConfig(
        vocab_size=cfg['n_vocab'], hidden_size=cfg['n_embd'], intermediate_size=cfg['n_ff'],
        num_hidden_layers=cfg['n_layer'], num_attention_heads=cfg['n_head'],
        num_key_value_heads=cfg['n_head_kv'], head_dim=cfg['head_dim'],
        max_position_embeddings=cfg['n_ctx'], rms_norm_eps=cfg['eps'],
        rope_theta=cfg['rope_base'], sliding_window=cfg['sliding_window'],
        tie_word_embeddings=cfg['tied'], hidden_act='silu', attention_dropout=0.0,
        attn_implementation='eager', bos_token_id=1, eos_token_id=2)
    conf._attn_implementation = 'eager'
    model = MistralForCausalLM(conf)
    sd = {k: torch.from_numpy(z[k]) for k in z.files if k != '__config__'}
    missing, unexpected = model.load_state_dict(sd, strict=False)
    missing = [m for m in missing if not (cfg['tied'] and m == 'lm_head.weight')]
    assert not missing and not unexpected, (missing, unexpected)
    if cfg['tied']:
        model.tie_weights()
    return model.to(device=device, dtype=dtype).eval(), cfg


def reference(out_dir, ids_json, npzs):
    import torch
    import transformers
    ids = json.load(open(ids_json))['prompt_ids']
    dev = 'cuda' if torch.cuda.is_available() else 'cpu'
    info = {'torch': torch.__version__, 'transformers': transformers.__version__,
            'device': torch.cuda.get_device_name(0) if dev == 'cuda' else 'cpu',
            'dtype': 'float64', 'attn_implementation': 'eager', 'files': []}
    torch.backends.cuda.matmul.allow_tf32 = False
    os.makedirs(out_dir, exist_ok=True)
    for npz in npzs:
        model, cfg = _build(npz, torch, torch.float64, dev)
        W, L = cfg['sliding_window'], cfg['n_layer']
        x = torch.tensor([ids], device=dev)
        with torch.no_grad():
            out = model(x, output_attentions=True, use_cache=False)
        logits = out.logits[0].double().cpu().numpy()
        # The window, checked where it acts: query q may see keys q-W+1..q only
        # (llama.cpp's is_masked_swa / HF's sliding_window convention).
        att = torch.stack(out.attentions)[:, 0].cpu().numpy()  # [L][H][q][k]
        q, k = np.meshgrid(np.arange(len(ids)), np.arange(len(ids)), indexing='ij')
        outside = (q - k >= W) | (k > q)
        max_outside = float(np.abs(att[..., outside]).max())
        min_inside = float(att[..., (q - k == W - 1)].min())
        assert max_outside == 0.0 and min_inside > 0.0, (max_outside, min_inside)
        # Receptive field: position p depends on tokens >= p - L*(W-1) only.
        p, far = len(ids) - 1, len(ids) - 1 - L * (W - 1) - 1
        pert = list(ids)
        pert[far] = (pert[far] + 7) % cfg['n_vocab']
        near = far + 1
        pert2 = list(ids)
        pert2[near] = (pert2[near] + 7) % cfg['n_vocab']
        with torch.no_grad():
            lp = model(torch.tensor([pert], device=dev), use_cache=False).logits[0, p].cpu().numpy()
            lp2 = model(torch.tensor([pert2], device=dev), use_cache=False).logits[0, p].cpu().numpy()
        d_far = float(np.abs(lp - logits[p]).max())
        d_near = float(np.abs(lp2 - logits[p]).max())
        assert d_far == 0.0 and d_near > 0.0, (d_far, d_near)
        # The same model without the window must differ (the prompt is longer than W).
        model.config.sliding_window = None
        for layer in model.model.layers:
            if hasattr(layer.self_attn, 'sliding_window'):
                layer.self_attn.sliding_window = None
        with torch.no_grad():
            full = model(x, use_cache=False).logits[0].double().cpu().numpy()
        d_full = float(np.abs(full - logits).max())
        name = os.path.splitext(os.path.basename(npz))[0]
        logits.astype('<f4').tofile(os.path.join(out_dir, name + '.f32'))
        rec = {'name': name, 'window': W, 'n_layer': L,
               'attn_prob_max_outside_window': max_outside,
               'attn_prob_min_at_distance_W_minus_1': min_inside,
               'perturb_token_%d_dlogit_at_%d' % (far, p): d_far,
               'perturb_token_%d_dlogit_at_%d' % (near, p): d_near,
               'no_window_max_dlogit': d_full,
               'argmax': [int(a) for a in logits.argmax(1)]}
        info['files'].append(rec)
        print(json.dumps(rec))
    with open(os.path.join(out_dir, 'reference_info.json'), 'w') as f:
        json.dump(info, f, indent=1)
    print(json.dumps({k: v for k, v in info.items() if k != 'files'}))


if __name__ == '__main__':
    if len(sys.argv) >= 4 and sys.argv[1] == 'export':
        export(sys.argv[2], sys.argv[3:])
    elif len(sys.argv) >= 5 and sys.argv[1] == 'reference':
        reference(sys.argv[2], sys.argv[3], sys.argv[4:])
    else:
        sys.exit(__doc__)
