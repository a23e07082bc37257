"""Cost versus size (chapter 10): the out-of-core IVF-PQ index at 1e6, 8e6, 5e7 features, and extraction on Ray.

Each index size is built and searched in fresh processes (landmarks.scale.measure_index) with the settings
landmarks.index.index_settings chooses for the size and --recall: build time, peak resident memory (VmHWM,
measured), bytes per feature on disk, query time per 1,000-feature image (one by one and batched, after the kept
vectors are read once in order: Reranked.warm holds them in memory when they fit, as a serving index does), recall@1
against exact search (after the exact re-ranking of the top --rerank candidates, from the vectors kept on disk,
float16 by default: --vectors-dtype). Rows are
appended to benchmarks/results/scale_index.csv as they finish, with the command that made them, the commit and the
machine's load; sizes already there (for the same --recall) are skipped (--redo replaces
them). A long size can run in two parts: `--part build --work DIR` builds and keeps the index (and its build.json),
`--part query --work DIR` then searches it and writes the row (each part under the benchmark lock on its own).
`--extract` times the same images through the single-process engine and through Ray with 1 and 2 workers
(benchmarks/results/scale_extract.csv). `--ray-shards N` builds the index at the first size, splits it in N shards and
times the same query images on the single index and on N Ray actors (local Ray, or `--address` to join a cluster),
checking that both give the same neighbours (benchmarks/results/scale_ray.csv).
Run heavy sizes niced: `nice -n 10 python benchmarks/bench_scale.py`.
"""
import landmarks  # noqa: F401  (imports triton before anything can import tensorflow)
import argparse, os, sys, tempfile, time
from pathlib import Path
import numpy as np, pandas as pd
from landmarks.scale import (RERANK, KEPT_DTYPE, cost_table, measure_extraction, SynthVectors, build_ooc_index,
                             shard_index, load_index, RayIndex, same_answers)
import subprocess
from landmarks.index import index_settings

RESULTS = Path(__file__).resolve().parent / 'results'

def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--sizes', default='1e6,8e6,5e7', help='numbers of features, comma-separated')
    p.add_argument('--recall', type=float, default=0.8, help='recall@1 aimed at (picks m and nprobe)')
    p.add_argument('--nlist', type=int, default=None, help='default: chosen by size (index_settings)')
    p.add_argument('--m', type=int, default=None, help='default: chosen by --recall')
    p.add_argument('--nprobe', type=int, default=None, help='default: chosen by --recall')
    p.add_argument('--rerank', type=int, default=RERANK,
                   help='candidates re-ranked exactly, from the kept vectors (0: none, and 8-bit PQ codes '
                        'scanned on disk instead of 4-bit fast-scan codes)')
    p.add_argument('--vectors-dtype', default=KEPT_DTYPE, choices=['float16', 'float32'],
                   help='type of the vectors kept for the re-ranking (float16: half the bytes)')
    p.add_argument('--recall-queries', type=int, default=1000,
                   help='query features of each kind checked against exact search (1,000: a standard error of '
                        'about 0.013 on a recall near 0.8)')
    p.add_argument('--batch-size', type=int, default=1_000_000)
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--query-images', type=int, default=3)
    p.add_argument('--work', default=None, help='scratch folder for the indexes (default: a temporary folder)')
    p.add_argument('--redo', action='store_true', help='measure sizes already in the CSV again (their rows replaced)')
    p.add_argument('--part', default='all', choices=['all', 'build', 'query'],
                   help='build: build and keep the index in --work; query: search the index built there (the row)')
    p.add_argument('--extract', action='store_true', help='also time extraction on Ray with 1 and 2 workers')
    p.add_argument('--dataset', default='synth:cpu', help='images for --extract')
    p.add_argument('--max-images', type=int, default=0, help='--extract: only the first N images (0: all)')
    p.add_argument('--features', default='sift', help='--extract: sift | delf (needs --model)')
    p.add_argument('--model', default=None, help='--extract: a DELF checkpoint (landmarks.delf.train_delf)')
    p.add_argument('--image-size', type=int, default=None, help='--extract: longest image side (px)')
    p.add_argument('--scales', default=None, help='--extract, delf: comma-separated scales')
    p.add_argument('--shard-size', type=int, default=32, help='--extract: images per shard')
    p.add_argument('--data-dir', default=str(RESULTS.parent.parent / 'data'))
    p.add_argument('--ray-shards', type=int, default=0, help='time the search split in this many Ray actors')
    p.add_argument('--nprobes', default=None,
                   help='with --part query: search the built index at each of these nprobe (comma-separated) and '
                        'write recall and time per size and nprobe to scale_nprobe.csv (the rows of scale_index.csv '
                        'stay as they are)')
    p.add_argument('--address', default=None, help='--ray-shards: a Ray cluster to join (default: a local Ray)')
    a = p.parse_args()
    csv = RESULTS / 'scale_index.csv'
    sizes = [int(float(s)) for s in a.sizes.split(',') if s]
    if a.extract: return extract(a)
    if a.ray_shards: return ray_search(a, sizes[0])
    if a.part != 'all' and not a.work: raise SystemExit('bench_scale: --part build|query needs --work DIR (kept)')
    if a.work: Path(a.work).mkdir(parents=True, exist_ok=True)
    if a.nprobes: return sweep(a, sizes)
    if a.redo and csv.exists() and a.part != 'build':
        old = pd.read_csv(csv)
        old[~(old.n.isin(sizes) & (old.recall_target == a.recall))].to_csv(csv, index=False)
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix='bench-scale-', dir=a.work) as tmp:
        work = Path(a.work) if a.part != 'all' else tmp
        extra = dict(command=_command(), commit=_commit(), load=load,
                     machine=f'shared {os.cpu_count()}-core machine, other jobs running (load average {load:.1f} at '
                             f'start{", under load" if load > 2.5 else ""}): times are upper bounds',
                     date=time.strftime('%Y-%m-%d %H:%M'))
        t = cost_table(sizes, work, csv=csv, extra=extra, recall=a.recall, nlist=a.nlist, m=a.m, nprobe=a.nprobe,
                       rerank=a.rerank, vectors_dtype=a.vectors_dtype,
                       batch_size=a.batch_size, threads=a.threads, n_images=a.query_images,
                       recall_queries=a.recall_queries, part=a.part)
    if a.part == 'build': return print(f'built {a.sizes} in {a.work} (load average {load:.1f} at start)')
    for r in t.itertuples():
        print(f"index n={r.n:>11,}: build {r.build_s:8.1f} s ({r.n / r.build_s:10,.0f} features/s), "
              f"peak {r.peak_rss_mb:7.0f} MB, "
              f"{r.bytes_per_feature:5.1f} B/feature, query {r.query_s_per_image:6.3f} s per 1,000-feature image "
              f"({1000 / r.query_s_per_image:8,.0f} query features/s), recall@1 {r.recall1_matched:.3f} matched, "
              f"{r.recall1_random:.3f} random (nlist {r.nlist}, m {r.m}, nprobe {r.nprobe}, {r.quantizer}, "
              f"re-rank {r.rerank})")

def sweep(a, sizes):
    "Recall@1 and query time of indexes built with --part build, at each nprobe of --nprobes (scale_nprobe.csv)."
    if a.part != 'query': raise SystemExit('bench_scale: --nprobes needs --part query --work DIR (built indexes)')
    from landmarks.scale import measure_index
    csv, rows = RESULTS / 'scale_nprobe.csv', []
    for n in sizes:
        for nprobe in [int(x) for x in a.nprobes.split(',')]:
            load = os.getloadavg()[0]
            r = measure_index(n, a.work, recall=a.recall, nlist=a.nlist, m=a.m, nprobe=nprobe, rerank=a.rerank,
                              vectors_dtype=a.vectors_dtype, batch_size=a.batch_size, threads=a.threads,
                              n_images=a.query_images, recall_queries=a.recall_queries, part='query')
            rows.append({k: r[k] for k in ('n', 'nlist', 'm', 'nprobe', 'rerank', 'quantizer', 'recall1_random',
                                           'recall1_matched', 'recallk_random', 'recall_queries', 'query_s_per_image')}
                        | dict(load=load, command=_command(), commit=_commit(), date=time.strftime('%Y-%m-%d %H:%M')))
            print(rows[-1], flush=True)
    new = pd.DataFrame(rows)
    old = pd.read_csv(csv) if csv.exists() else new.iloc[:0]
    old = old[~(old.n.isin(sizes) & (old.rerank == a.rerank))]
    pd.concat([old, new]).sort_values(['n', 'rerank', 'nprobe']).to_csv(csv, index=False)

def _command(): return ' '.join(['python benchmarks/bench_scale.py'] + sys.argv[1:])

def _commit():
    "The commit of the code measured (its short hash)."
    r = subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], capture_output=True, text=True, cwd=RESULTS.parent)
    return r.stdout.strip() or 'unknown'

def ray_search(a, n):
    "Time query images on the single out-of-core index and on its shards over Ray actors; append to scale_ray.csv."
    load = os.getloadavg()[0]
    src, s = SynthVectors(n, batch_size=a.batch_size), index_settings(n, 40, a.recall)
    images = [src.queries(1000, seed=100 + i) for i in range(a.query_images)]
    with tempfile.TemporaryDirectory(prefix='bench-ray-', dir=a.work) as work:
        path = build_ooc_index(src, Path(work) / 'ooc', recall=a.recall)
        shards = shard_index(Path(work) / 'ooc', a.ray_shards)
        single, rows = load_index(path, s['nprobe']), []
        with RayIndex(shards, nprobe=s['nprobe'], address=a.address) as ri:
            for q in images:
                t0 = time.perf_counter()
                D, I = single.search(q, 100)
                t1 = time.perf_counter()
                Dr, Ir = ri.search(q, 100)
                t2 = time.perf_counter()
                rows.append(dict(single_s=t1 - t0, ray_s=t2 - t1, same_distances=bool(np.allclose(D, Dr, atol=1e-4)),
                                 same_first=float((I[:, 0] == Ir[:, 0]).mean()), same=same_answers(Dr, Ir, D, I)))
            hosts = len({x['host'] for x in ri.shards})
            import ray
            cluster = (f"{'joined ' + a.address if a.address else 'a local Ray started here'}: "
                       f"{len([x for x in ray.nodes() if x['Alive']])} node(s), "
                       f"{ray.cluster_resources().get('CPU', 0):g} CPUs")
    r = pd.DataFrame(rows)
    out = dict(n=n, shards=a.ray_shards, hosts=hosts, address=a.address or 'local', cluster=cluster, **s,
               single_s_per_image=r.single_s.median(), ray_s_per_image=r.ray_s.median(),
               same_distances=bool(r.same_distances.all()), same_first=r.same_first.mean(),
               same_answers=bool(r.same.all()), command=_command(), commit=_commit(), load=load,
               machine=f'shared {os.cpu_count()}-core machine, other jobs running (load average {load:.1f} at '
                       f'start{", under load" if load > 2.5 else ""})', date=time.strftime('%Y-%m-%d %H:%M'))
    csv = RESULTS / 'scale_ray.csv'
    pd.concat([pd.read_csv(csv) if csv.exists() else None, pd.DataFrame([out])]).to_csv(csv, index=False)
    print(out)

def extract(a):
    "Time extraction of the same images: the default engine, then Ray with 1 and 2 workers (scale_extract.csv)."
    from landmarks.data import image_frame
    images = image_frame(a.dataset, a.data_dir)
    if a.max_images: images = images.iloc[:a.max_images]
    kw = dict(model=a.model, image_size=a.image_size)
    if a.scales: kw['scales'] = tuple(float(s) for s in a.scales.split(','))
    with tempfile.TemporaryDirectory(prefix='bench-extract-', dir=a.work) as work:
        e = measure_extraction(images, work, workers=(1, 2), features=a.features, data_dir=a.data_dir,
                               shard_size=a.shard_size, **kw)
    e = e.assign(dataset=a.dataset, image_size=a.image_size, scales=a.scales,
                 model=Path(a.model).name if a.model else None, date=time.strftime('%Y-%m-%d %H:%M'))
    csv = RESULTS / 'scale_extract.csv'
    old = pd.read_csv(csv) if csv.exists() else None
    if old is not None: old = old[old.backend != a.features]
    pd.concat([old, e]).to_csv(csv, index=False)
    for r in e.itertuples():
        print(f"extract {r.backend} {r.engine:>6} workers={r.workers}: {r.images_per_s:7.2f} images/s, "
              f"{r.features_per_s:9,.0f} features/s")

if __name__ == '__main__': main()
