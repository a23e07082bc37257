"""Real photos (issue 19): retrieval and recognition by retrieval against exhaustive affine matching of every pair.

    nice -n 10 python benchmarks/bench_realphotos.py --photos ../shared/data/real-landmarks-dev/images \\
        --work /tmp/realphotos/bench --sizes 100,1000

`--part dev`: `landmarks.retrieval.real_photos_experiment` at the frozen defaults on the dev photos (mAP@100, GAP,
seconds), to results/realphotos.csv. `--part cv`: query expansion and recognition settings chosen by 3-fold
cross-validation (folds by landmark) on the inliers of every pair of dev photos, to results/realphotos_cv.csv.
`--part scale`: seconds per query of the indexed pipeline and of exhaustive matching with the dev photos plus
SynthLandmarks distractors as the index (`--sizes` images), side by side in one run, to results/realphotos_scale.csv.
Every CSV names the command that made it. Times are measured on a shared machine (other jobs running): compare
the ratios within one run.
"""
import argparse, shlex, sys, time
from urllib.parse import quote
from pathlib import Path

import h5py
import numpy as np
import pandas as pd

from landmarks.data import atomic_path, dataset_root, load_gld
from landmarks.delf import extract_features, mutual_nn, read_features
from landmarks.download import load_folder
from landmarks.evaluation import global_average_precision, mean_average_precision
from landmarks.retrieval import (EXPAND, EXPAND_MIN, EXPAND_WEIGHT, MAX_FEATURES, MIN_INLIERS, UPRIGHT,
                                 UprightRootSIFT, features_of, real_photos_experiment, retrieval_candidates)
from landmarks.verification import ransac_affine, verify_pair

RESULTS = Path(__file__).parent / 'results'
COMMAND = 'python benchmarks/bench_realphotos.py ' + ' '.join(shlex.quote(a) for a in sys.argv[1:])


def _write(frame, name):
    "Write `frame` to results/`name` with the command that made it."
    RESULTS.mkdir(exist_ok=True)
    with atomic_path(RESULTS / name) as tmp: frame.assign(command=COMMAND).to_csv(tmp, index=False)
    print(frame.to_string(index=False))


def dev(photos, work):
    "The frozen defaults against the exhaustive baseline on the dev photos."
    table = pd.read_csv(real_photos_experiment(photos, work, overwrite=True, progress=False))
    _write(table, 'realphotos.csv')


def _pair_inliers(h5):
    "(ids, (n,n) inliers of every pair) at the default verification (cached beside the store)."
    cache = Path(f'{h5}.pairs.npz')
    if cache.exists(): return list(np.load(cache)['ids']), np.load(cache)['inliers']
    f = read_features(h5)
    ids = sorted(f)
    inl = np.zeros((len(ids), len(ids)), np.int64)
    for a in range(len(ids)):  # one direction per pair (the ratio test is not symmetric: a's view is used)
        for b in range(a + 1, len(ids)):
            inl[a, b] = inl[b, a] = verify_pair(f[ids[a]], f[ids[b]])[0]
    np.savez(cache, ids=np.array(ids), inliers=inl)
    return ids, inl


def _expanded(inl, expand, expand_min, weight):
    "Scores after verified query expansion, as `expand_query` computes them (from the pair inliers)."
    score = inl.astype(float).copy()
    for q in range(len(inl)):
        row = inl[q].astype(float).copy()
        row[q] = -1
        top = [e for e in np.argsort(-row, kind='stable')[:expand] if row[e] >= expand_min]
        if top: score[q] = np.where(row < expand_min, row + weight * inl[top].max(0), row)
    return score


def cv(photos, work, folds=3, seed=0, pairs=None):
    "Query expansion and recognition settings by cross-validation, folds by landmark."
    gld = load_folder(photos)
    if pairs:  # inliers of every pair computed before (.npy, rows and columns in sorted id order)
        ids, inl = sorted(gld.index.id), np.load(pairs)
    else:
        h5 = features_of(photos, 'index', Path(work) / 'work', 'sift', progress=False, max_features=MAX_FEATURES,
                         image_size=None, upright=UPRIGHT or None)
        ids, inl = _pair_inliers(h5)
    sol = {q: set(v.split()) for q, v in zip(gld.retrieval_solution.id, gld.retrieval_solution.images)}
    lab = dict(zip(gld.train.id, gld.train.landmark_id))
    rs = gld.recognition_solution
    truth = {q: {int(v)} if v else set() for q, v in zip(rs.id, rs.landmarks)}
    lms = np.random.default_rng(seed).permutation(sorted(set(lab.values())))
    fold_of = {q: int(np.flatnonzero(lms == lab[q])[0]) % folds if q in lab else -1 for q in ids}
    L = np.array([lab.get(i, -1) for i in ids])
    grid = [dict(expand=e, expand_min=t, expand_weight=w, min_inliers=m) for e in (0, 1, 2, 3) for t in (10, 15, 25)
            for w in (0.5, 1.0) for m in (4, 8, 15) if e or (t == 10 and w == 0.5)]

    def scores(g, queries):
        s = _expanded(inl, g['expand'], g['expand_min'], g['expand_weight']) if g['expand'] else inl.astype(float)
        pos = [ids.index(q) for q in queries]
        rank = {ids[a]: [ids[j] for j in np.lexsort((np.arange(len(ids)), -s[a])) if j != a][:100] for a in pos}
        m = mean_average_precision({q: rank[q] for q in queries if q in sol}, {q: sol[q] for q in queries if q in sol})
        votes = {}
        for a in pos:
            row = np.where((L >= 0) & (np.arange(len(ids)) != a), inl[a], -1)
            acc = {}
            for j in np.argsort(-row, kind='stable')[:5]:
                if row[j] >= g['min_inliers']: acc[L[j]] = acc.get(L[j], 0) + row[j]
            best = max(acc, key=lambda k: (acc[k], -k)) if acc else None
            votes[ids[a]] = None if best is None else (int(best), acc[best] / (acc[best] + 20.))
        return m, global_average_precision(votes, {q: truth[q] for q in votes})
    rows = []
    for k in range(folds):
        train = [q for q in ids if fold_of[q] != k]   # distractor queries (fold -1) are in every training set
        test = [q for q in ids if fold_of[q] == k] + [q for q in ids if fold_of[q] == -1]
        tried = [(scores(g, train), g) for g in grid]
        (tm, tg), best = max(tried, key=lambda r: r[0][0] + r[0][1])
        m, gp = scores(best, test)
        base = scores(dict(expand=0, expand_min=10, expand_weight=0.5, min_inliers=4), test)
        rows.append(dict(fold=k, test_queries=len(test), **best, train_mAP=tm, train_GAP=tg, test_mAP=m, test_GAP=gp,
                         test_mAP_no_expansion=base[0], test_GAP_min_inliers_4=base[1]))
    frozen = dict(expand=EXPAND, expand_min=EXPAND_MIN, expand_weight=EXPAND_WEIGHT, min_inliers=MIN_INLIERS)
    m, gp = scores(frozen, ids)
    rows.append(dict(fold='all (frozen defaults)', test_queries=len(ids), **frozen, test_mAP=m, test_GAP=gp))
    _write(pd.DataFrame(rows), 'realphotos_cv.csv')


def _merged(stores, out):
    "One feature store holding the images of `stores` (their settings must agree)."
    if out.exists(): return out
    with atomic_path(out) as tmp, h5py.File(tmp, 'w') as dst:
        for i, s in enumerate(stores):
            with h5py.File(s, 'r') as src:
                if i == 0:
                    for k, v in src.attrs.items(): dst.attrs[k] = v
                for k in src.keys(): src.copy(src[k], dst, name=k)
    return out


def _exhaustive_query(q, feats, ids):
    "Seconds to match query features `q` with every index image (mutual NN + the report's affine RANSAC)."
    t = time.perf_counter()
    for i in ids:
        m = mutual_nn(q['descriptors'], feats[i]['descriptors'])
        if len(m) >= 3: ransac_affine(q['locations'][m[:, 0]], feats[i]['locations'][m[:, 1]])
    return time.perf_counter() - t


def scale(photos, work, sizes, n_queries=6, seed=0):
    "Seconds per query of the indexed pipeline and of exhaustive matching as the index grows with distractors."
    import torch
    torch.set_num_threads(1)
    work = Path(work)
    dev_h5 = features_of(photos, 'index', work / 'work', 'sift', progress=False, max_features=MAX_FEATURES,
                         image_size=None, upright=UPRIGHT or None)
    dev_ids = sorted(read_features(dev_h5))
    gld = load_folder(photos)
    queries = sorted(gld.retrieval_solution.id)[::max(1, len(gld.retrieval_solution) // n_queries)][:n_queries]
    q_h5 = work / 'queries.h5'
    if not q_h5.exists():
        with atomic_path(q_h5) as tmp, h5py.File(dev_h5, 'r') as src, h5py.File(tmp, 'w') as dst:
            for k, v in src.attrs.items(): dst.attrs[k] = v
            for q in queries: src.copy(src[quote(q, safe='')], dst, name=quote(q, safe=''))
    n_synth = max(sizes) - len(dev_ids)
    spec = f'synth:cpu,landmarks=50,train=0,index={n_synth},test=0,seed=7'
    synth = load_gld(dataset_root(spec, str(work / 'data')))
    distract = synth.index[['id', 'path']].assign(id=lambda d: 'synth-' + d.id.astype(str))
    syn_h5 = extract_features(distract, work / 'synth.h5', features=UprightRootSIFT(MAX_FEATURES), progress=False)
    rows = []
    for n in sizes:
        keep = sorted(read_features(syn_h5))[:n - len(dev_ids)]
        part = work / f'synth-{n}.h5'
        if not part.exists():
            with atomic_path(part) as tmp, h5py.File(syn_h5, 'r') as src, h5py.File(tmp, 'w') as dst:
                for k, v in src.attrs.items(): dst.attrs[k] = v
                for i in keep: src.copy(src[quote(i, safe='')], dst, name=quote(i, safe=''))
        ix_h5 = _merged([dev_h5, part], work / f'index-{n}.h5')
        retrieval_candidates(ix_h5, q_h5, work / 'work', progress=False)  # builds and caches the index (not timed)
        t = time.perf_counter()
        index, cands = retrieval_candidates(ix_h5, q_h5, work / 'work', progress=False)
        ours = (time.perf_counter() - t) / len(queries)
        feats = read_features(ix_h5)
        qf = read_features(q_h5)
        ex = np.mean([_exhaustive_query(qf[q], feats, [i for i in feats if i != q]) for q in queries[:2]])
        sol = {q: set(v.split()) for q, v in zip(gld.retrieval_solution.id, gld.retrieval_solution.images)}
        ranks = {q: [index.image_ids[c.image] for c in cs][:100] for q, cs in cands.items()}
        n_features = int(sum(len(f['descriptors']) for f in feats.values()))
        rows.append(dict(index_images=len(feats), index_features=n_features,
                         queries=len(queries), indexed_seconds_per_query=ours, exhaustive_seconds_per_query=ex,
                         speedup=ex / ours, indexed_mAP=mean_average_precision(ranks, {q: sol[q] for q in ranks})))
        _write(pd.DataFrame(rows), 'realphotos_scale.csv')  # after each size: a long run keeps what it measured


if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--photos', default='../shared/data/real-landmarks-dev/images')
    p.add_argument('--work', default='/tmp/realphotos/bench')
    p.add_argument('--part', default='dev,cv,scale')
    p.add_argument('--sizes', default='100,1000')
    p.add_argument('--pairs', default=None, help='cv: a saved (n,n) inliers matrix')
    a = p.parse_args()
    parts = a.part.split(',')
    if 'dev' in parts: dev(a.photos, a.work)
    if 'cv' in parts: cv(a.photos, a.work, pairs=a.pairs)
    if 'scale' in parts: scale(a.photos, a.work, [int(s) for s in a.sizes.split(',')])
