"""Index benchmark: kdtree (PCA-10, the report's), ivfpq (faiss IVF-PQ, PCA-40) and flat (exact) on DELF-like
40-D descriptors. Prints, per database size: build time, bytes per stored feature (the saved folder: codes or
vectors, ids, geometry, image ids), query time for one image of 1,000 features, and recall@k against exact search.

    .venv/bin/python benchmarks/bench_index.py                      # 1e5 and 1e6
    .venv/bin/python benchmarks/bench_index.py --sizes 1e7 --repeat 1 --niter 10 --exact 100  # the 1e7 row (~4 GB)

flat is always built first: it is the exact answer the others' recall is measured against.
"""
import landmarks  # noqa: F401  (first: import order with tensorflow)
import argparse, gc, resource, tempfile, time
from pathlib import Path

import numpy as np

from landmarks.index import Index, delf_like, recall_at_k, _nbytes


def _best(f, repeat=3):
    "Best wall time of `repeat` calls, and the last result."
    best = np.inf
    for _ in range(repeat):
        t = time.perf_counter()
        out = f()
        best = min(best, time.perf_counter() - t)
    return best, out


def bench(n, n_query=1000, k=10, features_per_image=1000, nprobe=8, m=20, seed=0, kinds=('flat', 'kdtree', 'ivfpq'),
          repeat=3, niter=20, n_exact=None):
    n_exact = n_exact or n_query
    rng = np.random.default_rng(seed)
    db = delf_like(n, seed=seed)
    images, locations = np.arange(n) // features_per_image, rng.uniform(0, 1024, (n, 2)).astype(np.float32)
    q = db[rng.choice(n, n_query, replace=False)] + 0.05 * rng.standard_normal((n_query, 40)).astype(np.float32)
    nlist = int(min(4 * np.sqrt(n), 4096))
    settings = dict(kdtree={}, flat={}, ivfpq=dict(nlist=nlist, m=m, nprobe=nprobe, niter=niter))
    rows, exact = [], None
    for kind in kinds:
        t = time.perf_counter()
        ix = Index.from_arrays(kind, db, images, locations, seed=seed, **settings[kind])
        build = time.perf_counter() - t
        with tempfile.TemporaryDirectory(dir='/tmp') as d: nbytes = _nbytes(ix.save(Path(d) / kind))
        if kind == 'flat':  # exact answers for the first `n_exact` query features; time scaled to all of them
            qt, exact = _best(lambda: ix.search(q[:n_exact], k=k), repeat)
            qt *= n_query / n_exact
            found = exact
        else:
            qt, found = _best(lambda: ix.search(q, k=k), repeat)
            found = found._replace(**{f: getattr(found, f)[:n_exact] for f in found._fields})
        rows.append((n, kind, build, nbytes / n, qt * 1e3, recall_at_k(found, exact), str(ix.settings)))
        print(f"{n:>10,} {kind:7s} build {build:8.2f} s  {nbytes / n:7.1f} B/feature  query {qt * 1e3:8.1f} ms"
              f"  recall@{k} {rows[-1][5]:.3f}  {ix.settings}", flush=True)
        del ix
        gc.collect()
    return rows


if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--sizes', default='1e5,1e6', help='database sizes, comma-separated')
    p.add_argument('--nprobe', type=int, default=8, help='IVF lists visited per query feature')
    p.add_argument('--m', type=int, default=20, help='PQ sub-quantizers (bytes per code); must divide 40')
    p.add_argument('--repeat', type=int, default=3, help='query timings: best of this many')
    p.add_argument('--threads', type=int, default=0, help='faiss OpenMP threads (0: its default)')
    p.add_argument('--niter', type=int, default=20, help='IVF k-means iterations')
    p.add_argument('--exact', type=int, default=0,
                   help='query features searched exactly (0: all 1,000); flat time scaled')
    a = p.parse_args()
    if a.threads:
        import faiss
        faiss.omp_set_num_threads(a.threads)
    print(f"{'features':>10} {'index':7s} (query: one image of 1,000 features, k=10; recall against flat)")
    rows = []
    for n in [int(float(s)) for s in a.sizes.split(',')]:
        rows += bench(n, nprobe=a.nprobe, m=a.m, repeat=a.repeat, niter=a.niter, n_exact=a.exact or None)
        gc.collect()
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GB")
    by = {(r[0], r[1]): r for r in rows}
    for n in sorted({r[0] for r in rows}):
        if (n, 'ivfpq') in by and (n, 'kdtree') in by:
            iv, kd = by[n, 'ivfpq'], by[n, 'kdtree']
            print(f"target at {n:,}: ivfpq query {iv[4] / kd[4]:.3f} x kdtree's (< 0.1), "
                  f"recall {iv[5]:.3f} vs {kd[5]:.3f}"
                  f" (higher), {iv[3]:.1f} B/feature (<= 32)")
