"""Photos per second of `landmarks organize` (07c) on flat folders of SynthLandmarks photos, stage by stage, and of a
rerun after adding 10% new photos (only those are extracted and matched).

    python benchmarks/bench_organize.py --sizes 1000 [10000] [--max-features 300]

Appends rows to benchmarks/results/organize.csv (with the command that made them). Times on a shared machine are
wall-clock under whatever else runs; `load_start` and `load` give the 1-minute load average at the start and the end of
each row. Each size runs in its own process, so `peak_rss_mb` is that size's peak (the index, not the pairs, sets it).
The stages run with `organize`'s own settings, so the rerun finds the first run's edges and extends them."""
import argparse, concurrent.futures, hashlib, inspect, multiprocessing, os, resource, shutil, sys, time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from landmarks.data import dataset_root, load_gld  # noqa: E402
from landmarks.runner import machine  # noqa: E402
from landmarks.organize import (photo_frame, collection_features, match_edges, cluster_graph,  # noqa: E402
                                stable_numbers, write_groups, contact_sheet, organize)


def flat_folder(n, data_dir, work):
    "n training photos of a SynthLandmarks set (n/20 landmarks) linked into work/photos under names that say nothing."
    spec = f"synth:small,landmarks={max(10, n // 20)},train={n},index=10,test=10"
    g = load_gld(dataset_root(spec, data_dir))
    photos = work / 'photos'
    shutil.rmtree(photos, ignore_errors=True)
    photos.mkdir(parents=True)
    items = [(hashlib.sha1(i.encode()).hexdigest()[:12] + '.jpg', p) for i, p in zip(g.train.id, g.train.path)]
    return photos, items, spec


def run(n, max_features, data_dir, work):
    "One benchmark row: organize n photos stage by stage, then rerun after adding n/10 more."
    load_start = round(os.getloadavg()[0], 1)
    o = {k: v.default for k, v in inspect.signature(organize).parameters.items()}
    photos, items, spec = flat_folder(n + n // 10, data_dir, work)
    for name, p in items[:n]: os.symlink(p, photos / name)
    out = work / 'out'
    shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    frame = photo_frame(photos, out / 'work' / 'oriented')
    h5 = collection_features(frame, out / 'work', 'sift', progress=False, max_features=max_features, image_size=None)
    t1 = time.perf_counter()
    e = match_edges(h5, list(frame.id), out / 'work', o['k'], o['max_distance'], o['shortlist'],
                    residual=o['residual'], seed=o['seed'], progress=False)
    edges = pd.read_csv(e, dtype={'a': str, 'b': str})
    t2 = time.perf_counter()
    groups = stable_numbers(cluster_graph(edges, frame.id, o['min_inliers'], o['strong'], o['min_ratio']))
    write_groups(groups, photos, out)
    contact_sheet(groups, frame, edges, h5, out)
    t3 = time.perf_counter()
    for name, p in items[n:]: os.symlink(p, photos / name)
    organize(photos, out, max_features=max_features, image_size=None, progress=False)
    t4 = time.perf_counter()
    g = pd.read_csv(out / 'groups.csv')
    return dict(photos=n, dataset=spec, features='sift', max_features=max_features, seconds=round(t3 - t0, 1),
                extract_s=round(t1 - t0, 1), match_s=round(t2 - t1, 1), cluster_and_output_s=round(t3 - t2, 1),
                photos_per_s=round(n / (t3 - t0), 2), edges=len(edges), groups=int(g.group[g.group >= 0].nunique()),
                assigned=int((g.group >= 0).sum()), rerun_new_photos=len(items) - n, rerun_s=round(t4 - t3, 1),
                peak_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
                load_start=load_start, load=round(os.getloadavg()[0], 1), cpus=os.cpu_count(),
                cpu_model=machine()['cpu_model'])


if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--sizes', type=int, nargs='+', default=[1000])
    ap.add_argument('--max-features', type=int, default=300)
    ap.add_argument('--data-dir', default=str(ROOT / 'data'))
    ap.add_argument('--work', default='/tmp/bench_organize')
    ap.add_argument('--out', default=str(ROOT / 'benchmarks' / 'results' / 'organize.csv'))
    a = ap.parse_args()
    command = 'python benchmarks/bench_organize.py ' + ' '.join(sys.argv[1:])
    for n in a.sizes:
        spawn = multiprocessing.get_context('spawn')
        with concurrent.futures.ProcessPoolExecutor(1, mp_context=spawn) as pool:  # one process per size: its own peak
            row = pool.submit(run, n, a.max_features, a.data_dir, Path(a.work) / str(n)).result()
        row = dict(row, command=command)
        print(row, flush=True)
        old = pd.read_csv(a.out) if Path(a.out).exists() else None
        df = pd.DataFrame([row]) if old is None else pd.concat([old, pd.DataFrame([row])], ignore_index=True)
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        df.to_csv(a.out, index=False)
