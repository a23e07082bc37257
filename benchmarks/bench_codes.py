"""Code bytes against recall@1 (chapter 10): why the out-of-core index keeps 18-byte 4-bit codes after a PCA.

    flock /work/wt/bench.lock nice -n 5 python benchmarks/bench_codes.py --n 1e6 --queries 2000

The scale targets ask for at most 28 bytes per stored feature (ids and geometry included) and recall@1 of at least
0.8 against exact search. faiss keeps an 8-byte id (our packed geometry) beside every code, so 28 bytes leaves
20 bytes of code before the coarse quantizer's share. This benchmark measures, on the same SynthVectors as
bench_scale.py (one size, in memory: the codes and not the storage are compared), recall@1 of random query
features against exact search for the faiss codes of 20 bytes and fewer that fit 40-D vectors: PQ20x8 (the
default), OPQ before PQ20x8, PQ20x7 (18 bytes), PQ40x4 (20 bytes of 4-bit codes), OPQ to 38 dimensions with
PQ19x8 (19 bytes), PQ10x8 (10 bytes), and PQ40x4fs / PQ20x4fs: faiss's fast-scan 4-bit codes (SIMD look-ups) of the
vectors themselves, not of their residuals (one look-up table per query), and the same after a PCA to 38 or 36
dimensions (PCA36,PQ36x4fs: 18 bytes, the out-of-core default with re-ranking, landmarks.index.index_settings).
Same coarse quantizer (flat, nlist = index_settings(n)), same nprobe; search_s is the time of the search at that
nprobe (all queries, one call).
`--rerank R` also measures recall@1 once the top R candidates are re-ranked by exact distance (the vectors read
back: landmarks.scale.Reranked), the out-of-core index's default; `recall1_reranked` in the CSV.
Writes benchmarks/results/scale_codes.csv with the command and the 1-minute load average at the start.
"""
import landmarks  # noqa: F401  (imports triton before anything can import tensorflow)
import argparse, os, shlex, sys, time
from pathlib import Path

import faiss
import numpy as np
import pandas as pd

from landmarks.data import atomic_path
from landmarks.index import index_settings
from landmarks.scale import RERANK, Reranked, SynthVectors

RESULTS = Path(__file__).resolve().parent / 'results'
CODES = ('PQ20x8', 'OPQ20,PQ20x8', 'PQ20x7', 'PQ40x4', 'OPQ19_38,PQ19x8', 'PQ10x8', 'PQ40x4fs', 'PCA38,PQ38x4fs',
         'PCA36,PQ36x4fs', 'PQ20x4fs')


def exact_nn(src, q):
    "Ids of the exact nearest stored vector of each query (one batch: the size is in memory)."
    ids, x = src.batch(0)
    return ids[faiss.knn(q, x, 1)[1][:, 0]]


def measure(code, src, q, truth, nlist, nprobe, rerank):
    "Train, fill and search one IVF index with this code: its bytes, recall@1, and recall@1 after exact re-ranking."
    pre, _, pq = code.rpartition(',')
    index = faiss.index_factory(src.d, f"{pre + ',' if pre else ''}IVF{nlist},{pq}")
    if pq.endswith('fs'): faiss.extract_index_ivf(index).by_residual = False   # as landmarks.scale's fast-scan codes
    t0 = time.perf_counter()
    index.train(src.sample(max(64 * nlist, 256 * 64), seed=0))
    ids, x = src.batch(0)
    index.add(x)
    t1 = time.perf_counter()
    ivf = faiss.extract_index_ivf(index)
    ivf.nprobe = nprobe
    found = index.search(q, 1)[1][:, 0]
    t2 = time.perf_counter()
    reranked = Reranked(index, x, rerank).search(q, 1)[1][:, 0] if rerank else found
    return dict(code=code, code_bytes=int(ivf.code_size), bytes_with_id=int(ivf.code_size) + 8,
                recall1_random=float(np.mean(found == truth)), rerank=rerank,
                recall1_reranked=float(np.mean(reranked == truth)), build_s=t1 - t0, search_s=t2 - t1)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--n', default='1e6', help='features in the index (held in memory)')
    p.add_argument('--queries', type=int, default=2000, help='random query features checked against exact search')
    p.add_argument('--codes', default=','.join(c.replace(',', '+') for c in CODES),
                   help="faiss codes, comma-separated ('+' for a pre-transform: OPQ20+PQ20x8)")
    p.add_argument('--rerank', type=int, default=RERANK, help='candidates re-ranked by exact distance (0: none)')
    a = p.parse_args()
    load = os.getloadavg()[0]
    faiss.omp_set_num_threads(os.cpu_count())
    n = int(float(a.n))
    src = SynthVectors(n, batch_size=n)
    s = index_settings(n, src.d)
    q = src.queries(a.queries, seed=7)
    truth = exact_nn(src, q)
    rows = []
    for code in a.codes.split(','):
        rows.append(dict(n=n, nlist=s['nlist'], nprobe=s['nprobe'], queries=a.queries,
                         **measure(code.replace('+', ','), src, q, truth, s['nlist'], s['nprobe'], a.rerank)))
        print(rows[-1], flush=True)
    command = 'python benchmarks/bench_codes.py ' + ' '.join(shlex.quote(x) for x in sys.argv[1:])
    table = pd.DataFrame(rows).assign(load=load, command=command)
    RESULTS.mkdir(exist_ok=True)
    with atomic_path(RESULTS / 'scale_codes.csv') as tmp: table.to_csv(tmp, index=False)
    print(table.drop(columns='command').to_string(index=False))


if __name__ == '__main__':
    main()
