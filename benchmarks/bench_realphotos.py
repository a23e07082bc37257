"""Real photos (issue 19): retrieval and recognition by retrieval against exhaustive affine matching of every pair.

    flock /work/wt/bench.lock nice -n 5 python benchmarks/bench_realphotos.py --part cv   # then dev, then scale

`--part features`: the indexed pipeline at the frozen settings with 1,000, 2,000 and 4,000 upright RootSIFT features per
photo (`--counts`), side by side, to results/realphotos_features.csv. `--part index`: the indexed pipeline at the frozen
settings with the KD-tree on PCA-10 and with faiss on the full RootSIFT descriptors, side by side on the dev photos, to
results/realphotos_index.csv. `--part cv`: the shortlists, query expansion and recognition settings chosen by 3-fold
cross-validation (folds by landmark) on the dev photos, running the indexed pipeline itself for every setting (pairs
verified once, shared by the runs), to results/realphotos_cv.csv; the setting most folds choose (among equally many, the
best mean training score) is frozen as the defaults (`landmarks.retrieval`). `--part dev`:
`landmarks.retrieval.real_photos_experiment` at those settings on the dev photos (mAP@100, GAP, seconds and pairs
verified per query) beside exhaustive affine matching of every pair, in one run, to results/realphotos.csv. `--part
scale`: seconds per query of the indexed pipeline and of exhaustive matching with the dev photos plus SynthLandmarks
distractors as the index (`--sizes` images), side by side in one run (exhaustive timed on `--exhaustive-queries` of the
queries), to results/realphotos_scale.csv (`--part distractors` makes and extracts the distractors alone, so that a
large size can be split into two locked runs). Every CSV names the command that made it and the 1-minute load average
when it started (above 2.5: under load; compare the ratios within one run).
"""
import argparse, json, os, shlex, sys, time
from urllib.parse import quote
from pathlib import Path

import h5py
import numpy as np
import pandas as pd

from landmarks.data import atomic_path, dataset_root, load_folder, load_gld
from landmarks.delf import extract_features, mutual_nn
from landmarks.features import read_features, stored_ids
from landmarks.evaluation import global_average_precision, mean_average_precision
from landmarks.retrieval import (FILL, INDEX_TYPE, MAX_FEATURES, UPRIGHT, UprightRootSIFT, features_of, landmark_votes,
                                 real_photos_experiment, retrieval_candidates)
from landmarks.saliency import rankings
from landmarks.verification import ransac_affine

RESULTS = Path(__file__).parent / 'results'
COMMAND = 'python benchmarks/bench_realphotos.py ' + ' '.join(shlex.quote(a) for a in sys.argv[1:])
LOAD = os.getloadavg()[0]  # 1-minute load average at the start


def _write(frame, name):
    "Write `frame` to results/`name` with the command that made it."
    RESULTS.mkdir(exist_ok=True)
    with atomic_path(RESULTS / name) as tmp: frame.assign(command=COMMAND).to_csv(tmp, index=False)
    print(frame.to_string(index=False))


def chosen() -> dict:
    "The settings the cross-validation chose (results/realphotos_cv.csv): the defaults of landmarks.retrieval."
    t = pd.read_csv(RESULTS / 'realphotos_cv.csv')
    row = t[t.fold.astype(str).str.startswith('all')].iloc[0]
    out = {k: int(row[k]) for k in ('shortlist', 'expand', 'expand_shortlist', 'min_inliers')}
    if 'expand_weight' in row and pd.notna(row['expand_weight']): out['expand_weight'] = float(row['expand_weight'])
    return out


def dev(photos, work):
    "The settings chosen by cross-validation against the exhaustive baseline on the dev photos, in one run."
    settings = chosen()
    table = pd.read_csv(real_photos_experiment(photos, work, overwrite=True, progress=False, **settings))
    _write(table.assign(**settings, fill=FILL), 'realphotos.csv')


def _dev_set(photos, work, max_features=MAX_FEATURES):
    "The dev photos' folder, feature store (RootSIFT as the defaults), retrieval and recognition truth, landmarks."
    gld = load_folder(photos)
    h5 = features_of(photos, 'index', Path(work) / 'work', 'sift', progress=False, max_features=max_features,
                     image_size=None, upright=UPRIGHT or None)
    sol = {q: set(v.split()) for q, v in zip(gld.retrieval_solution.id, gld.retrieval_solution.images)}
    lab = dict(zip(gld.train.id, gld.train.landmark_id))
    rs = gld.recognition_solution
    truth = {q: {int(v)} if v else set() for q, v in zip(rs.id, rs.landmarks)}
    return gld, h5, sol, lab, truth


def index_types(photos, work, kinds=('kdtree', 'faiss'), counts=(MAX_FEATURES,), name='realphotos_index.csv',
                seed=0):
    "The indexed pipeline at the frozen settings with each index kind (and feature count) on the dev photos, one run."
    settings = chosen()
    min_inliers = settings.pop('min_inliers')
    rows = []
    for count, kind in [(c, k) for c in counts for k in kinds]:
        gld, h5, sol, lab, truth = _dev_set(photos, work, count)
        t = time.perf_counter()
        retrieval_candidates(h5, h5, Path(work) / 'work', index_type=kind, progress=False, shortlist=1, expand=0)
        build = time.perf_counter() - t  # the index (built once; not in the time per query)
        stats = {}
        t = time.perf_counter()
        index, cands = retrieval_candidates(h5, h5, Path(work) / 'work', index_type=kind, progress=False, seed=seed,
                                            stats=stats, **settings)
        dt = time.perf_counter() - t
        L = np.array([lab.get(i, -1) for i in index.image_ids])
        ranks = rankings(cands, index.image_ids)
        votes = {q: landmark_votes(cs, L, min_inliers=min_inliers) for q, cs in cands.items()}
        rows.append(dict(index_type=kind, index_settings=json.dumps(index.settings, sort_keys=True),
                         mAP=mean_average_precision({q: ranks[q] for q in sol}, sol),
                         GAP=global_average_precision(votes, truth), seconds_per_query=dt / len(cands),
                         build_seconds=build, pairs_per_query=stats['pairs'] / stats['queries'], images=len(cands),
                         fill=FILL, load=LOAD, max_features=count, **settings, min_inliers=min_inliers))
        print(rows[-1], flush=True)
    _write(pd.DataFrame(rows), name)


def _folds(ids, lab, folds, seed):
    "{image id: fold} with folds by landmark (every image of a landmark in one fold); distractors: -1."
    lms = np.random.default_rng(seed).permutation(sorted(set(lab.values())))
    fold = {lm: n % folds for n, lm in enumerate(lms)}
    return {q: fold[lab[q]] if q in lab else -1 for q in ids}


def cv(photos, work, folds=3, seed=0):
    "Shortlists, query expansion and recognition settings by cross-validation on the dev photos, folds by landmark."
    gld, h5, sol, lab, truth = _dev_set(photos, work)
    ids = sorted(gld.index.id)
    fold_of = _folds(ids, lab, folds, seed)
    grid = [dict(shortlist=s, expand=e, expand_shortlist=x, expand_weight=w) for s in (10, 20, 30)
            for e, x in ((0, 10), (1, 10), (2, 5), (2, 10), (3, 10)) for w in ((0.5,) if e == 0 else (0.5, 1.0))]
    memo, runs = {}, []  # verified pairs shared by the runs: each pair is verified once
    for g in grid:
        stats = {}
        index, cands = retrieval_candidates(h5, h5, Path(work) / 'work', progress=False, memo=memo, stats=stats,
                                            seed=seed, **g)
        L = np.array([lab.get(i, -1) for i in index.image_ids])
        ranks = rankings(cands, index.image_ids)
        for m in (4, 8, 15):
            votes = {q: landmark_votes(cs, L, min_inliers=m) for q, cs in cands.items()}
            runs.append((dict(g, min_inliers=m), ranks, votes, stats['asked'] / stats['queries']))
        print(g, f"{len(memo)} pairs verified so far", flush=True)

    def score(ranks, votes, queries):
        q_sol = [q for q in queries if q in sol]
        m = mean_average_precision({q: ranks[q] for q in q_sol}, {q: sol[q] for q in q_sol})
        return m, global_average_precision({q: votes[q] for q in queries}, {q: truth[q] for q in queries})
    rows, chosen, held_in = [], [], {}
    for k in range(folds):
        train = [q for q in ids if fold_of[q] != k]   # distractor queries (fold -1) are in every training set
        test = [q for q in ids if fold_of[q] == k] + [q for q in ids if fold_of[q] == -1]
        scored = [(score(r, v, train), g, r, v) for g, r, v, _ in runs]
        for (tm, tg), g, _, _ in scored:   # each setting's training-set mAP + GAP, averaged over the folds
            key = json.dumps(g, sort_keys=True)
            held_in[key] = held_in.get(key, 0) + (tm + tg) / folds
        (tm, tg), g, ranks, votes = max(scored, key=lambda t: t[0][0] + t[0][1])
        m, gp = score(ranks, votes, test)
        chosen.append(json.dumps(g, sort_keys=True))
        rows.append(dict(fold=k, test_queries=len(test), **g, train_mAP=tm, train_GAP=tg, test_mAP=m, test_GAP=gp))
    # the setting most folds chose; among equally many, the one with the best mean training score over the folds
    best = json.loads(max(set(chosen), key=lambda c: (chosen.count(c), held_in[c])))
    for g, ranks, votes, pairs in runs:
        if g == best:
            m, gp = score(ranks, votes, ids)
            rows.append(dict(fold='all (chosen by most folds, then best mean training score: frozen)',
                             test_queries=len(ids), **g, test_mAP=m, test_GAP=gp, pairs_per_query=pairs,
                             mean_train_score=held_in[json.dumps(g, sort_keys=True)]))
    _write(pd.DataFrame(rows).assign(index_type=INDEX_TYPE, fill=FILL, load=LOAD), 'realphotos_cv.csv')


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


def distractors(work, n_synth, minutes=None, chunk=2500):
    "Feature stores of `n_synth` SynthLandmarks distractors in chunks (seeds 7, 8...), each made and extracted once."
    t0, stores = time.perf_counter(), []
    for c, start in enumerate(range(0, n_synth, chunk)):
        m = min(chunk, n_synth - start)
        h5 = Path(work) / f'synth-{m}-seed{7 + c}.h5'
        if not h5.exists() and minutes is not None and time.perf_counter() - t0 > 60 * minutes:
            print(f"distractors: {minutes} min spent; run again for the chunks left from {start}", flush=True)
            return None
        spec = f'synth:cpu,landmarks=50,train=0,index={m},test=0,seed={7 + c}'
        synth = load_gld(dataset_root(spec, str(Path(work) / 'data')))
        distract = synth.index[['id', 'path']].assign(id=lambda d: f'synth{c}-' + d.id.astype(str))
        stores.append(extract_features(distract, h5, features=UprightRootSIFT(MAX_FEATURES), progress=False))
        print(f"distractors: {start + m} of {n_synth} at {time.perf_counter() - t0:.0f} s", flush=True)
    return stores


def _copy(stores, ids, out):
    "A feature store `out` holding images `ids` of `stores` (made once)."
    if out.exists(): return out
    want = {quote(i, safe='') for i in ids}
    with atomic_path(out) as tmp, h5py.File(tmp, 'w') as dst:
        for n, s in enumerate(stores):
            with h5py.File(s, 'r') as src:
                if n == 0:
                    for k, v in src.attrs.items(): dst.attrs[k] = v
                for k in src.keys():
                    if k in want: src.copy(src[k], dst, name=k)
    return out


def scale(photos, work, sizes, n_queries=6, n_exhaustive=2, seed=0):
    "Seconds per query of the indexed pipeline and of exhaustive matching as the index grows with distractors."
    work = Path(work)
    settings = {k: v for k, v in chosen().items() if k != 'min_inliers'}  # retrieval only
    dev_h5 = features_of(photos, 'index', work / 'work', 'sift', progress=False, max_features=MAX_FEATURES,
                         image_size=None, upright=UPRIGHT or None)
    dev_ids = sorted(read_features(dev_h5))
    gld = load_folder(photos)
    queries = sorted(gld.retrieval_solution.id)[::max(1, len(gld.retrieval_solution) // n_queries)][:n_queries]
    q_h5 = _copy([dev_h5], queries, work / f'queries-{n_queries}.h5')
    n_synth = max(sizes) - len(dev_ids)
    stores = distractors(work, n_synth)
    synth_ids = [i for s in stores for i in sorted(stored_ids(s))]
    sol = {q: set(v.split()) for q, v in zip(gld.retrieval_solution.id, gld.retrieval_solution.images)}
    rows = []
    for n in sizes:
        part = _copy(stores, synth_ids[:n - len(dev_ids)], work / f'synth-{n_synth}-{n}.h5')
        ix_h5 = _merged([dev_h5, part], work / f'index-{n_synth}-{n}.h5')
        retrieval_candidates(ix_h5, q_h5, work / 'work', progress=False, shortlist=1, expand=0)  # the index: not timed
        stats = {}
        t = time.perf_counter()
        index, cands = retrieval_candidates(ix_h5, q_h5, work / 'work', progress=False, stats=stats, seed=seed,
                                            **settings)
        ours = (time.perf_counter() - t) / len(queries)
        feats = read_features(ix_h5)
        qf = read_features(q_h5)
        timed = queries[:n_exhaustive]
        ex = np.mean([_exhaustive_query(qf[q], feats, [i for i in feats if i != q]) for q in timed])
        ranks = {q: [index.image_ids[c.image] for c in cs][:100] for q, cs in cands.items()}
        n_features = int(sum(len(f['descriptors']) for f in feats.values()))
        del feats
        rows.append(dict(index_images=len(index.image_ids), index_features=n_features, queries=len(queries),
                         exhaustive_queries=len(timed), indexed_seconds_per_query=ours,
                         indexed_pairs_per_query=stats['pairs'] / stats['queries'],
                         exhaustive_seconds_per_query=ex, exhaustive_pairs_per_query=len(index.image_ids) - 1,
                         speedup=ex / ours, indexed_mAP=mean_average_precision(ranks, {q: sol[q] for q in ranks}),
                         index_type=INDEX_TYPE, index_settings=json.dumps(index.settings, sort_keys=True), fill=FILL,
                         load=LOAD, **settings))
        _write(pd.DataFrame(rows), 'realphotos_scale.csv')  # after each size: a long run keeps what it measured


if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--photos', default='../shared/data/real-landmarks-dev/images')
    p.add_argument('--work', default='/tmp/realphotos/bench')
    p.add_argument('--part', default='dev,cv,scale')
    p.add_argument('--sizes', default='100,1000')
    p.add_argument('--counts', default='1000,2000,4000', help='features: RootSIFT features per photo compared')
    p.add_argument('--queries', type=int, default=6, help='scale: queries timed on the indexed pipeline')
    p.add_argument('--exhaustive-queries', type=int, default=2, help='scale: of those, the queries timed exhaustively')
    p.add_argument('--minutes', type=float, help='distractors: start no chunk after this (run again to go on)')
    a = p.parse_args()
    parts = a.part.split(',')
    if 'cv' in parts: cv(a.photos, a.work)
    if 'index' in parts: index_types(a.photos, a.work)
    if 'features' in parts:
        index_types(a.photos, a.work, ('faiss',), [int(c) for c in a.counts.split(',')], 'realphotos_features.csv')
    if 'dev' in parts: dev(a.photos, a.work)
    if 'distractors' in parts: distractors(a.work, max(int(s) for s in a.sizes.split(',')) - 93, a.minutes)
    if 'scale' in parts: scale(a.photos, a.work, [int(s) for s in a.sizes.split(',')], a.queries,
                               a.exhaustive_queries)
