"""RANSAC benchmark, measured side by side in one run: milliseconds per image pair of our vectorized affine RANSAC
(landmarks.verification.ransac_affine), scikit-image's ransac + AffineTransform (DELF's) and OpenCV's
estimateAffine2D, on the same matches with the same settings (20 px, 1000 trials), with the agreement of the inlier
sets (Jaccard); then per query: a shortlist of 100 candidates verified in one batch (`verify`) beside the votes-only
time of a PCA-40 IVF-PQ search over a synthetic database (Table 2's rows 'votes only' and '+ RANSAC').

    .venv/bin/python benchmarks/bench_ransac.py [--pairs 5] [--queries 10] [--out benchmarks/results/ransac.csv]
"""
import landmarks  # noqa: F401
import argparse, os, sys, time, warnings

import numpy as np
import pandas as pd

from landmarks.index import Index, delf_like
from landmarks.verification import ransac, ransac_affine, shortlist, synthetic_matches, verify


def opencv_ransac(src, dst, seed=0):
    "OpenCV's estimateAffine2D (RANSAC) through the package's wrapper (20 px, 1000 trials); (model, inlier mask)."
    return ransac(src, dst, 'affine', 'ransac', threshold=20., seed=seed)


def skimage_ransac(src, dst, seed=0):
    "scikit-image's ransac + AffineTransform as DELF calls it (20 px, 1000 trials); (model, inlier mask)."
    from skimage.measure import ransac as sk_ransac
    from skimage.transform import AffineTransform
    model, inl = sk_ransac((src, dst), AffineTransform, min_samples=3, residual_threshold=20., max_trials=1000,
                           rng=seed)
    return model, (np.zeros(len(src), bool) if inl is None else np.asarray(inl, bool))


def timed(f, *args, **kw):
    "(milliseconds, result) of one call."
    t = time.perf_counter()
    r = f(*args, **kw)
    return (time.perf_counter() - t) * 1e3, r


def per_pair(n, pairs, inlier_frac=0.3):
    "Median ms per pair of each estimator on the same `pairs` synthetic pairs of `n` matches, called in turn."
    ms, jac = {'ours': [], 'scikit-image': [], 'opencv': []}, {'scikit-image': [], 'opencv': []}
    for s in range(pairs):
        src, dst, _, _ = synthetic_matches(n, inlier_frac, seed=s)
        t, (_, ours) = timed(ransac_affine, src, dst, seed=s)
        ms['ours'].append(t)
        for name, f in (('scikit-image', skimage_ransac), ('opencv', opencv_ransac)):
            with warnings.catch_warnings():
                warnings.simplefilter('ignore')
                t, (_, other) = timed(f, src, dst, seed=s)
            ms[name].append(t)
            jac[name].append((ours & other).sum() / max(1, (ours | other).sum()))
    return {k: float(np.median(v)) for k, v in ms.items()}, {k: float(np.mean(v)) for k, v in jac.items()}


def query_database(n_images=300, per_image=300, seed=0):
    "A synthetic database of `n_images` images of `per_image` DELF-like features at random keypoints."
    rng = np.random.default_rng(seed)
    x = delf_like(n_images * per_image, seed=seed)
    loc = rng.uniform(0, 512, (len(x), 2)).astype(np.float32)
    img = np.repeat(np.arange(n_images), per_image)
    return x, img, loc


def per_query(queries, top=100, k=10):
    "Per query ms of IVF-PQ search + votes, and of search + verification of the top-100 in one batch."
    x, img, loc = query_database()
    ix = Index.from_arrays('ivfpq', x, img, loc, image_ids=[str(i) for i in range(img.max() + 1)])
    rng = np.random.default_rng(1)
    votes, ransac, verify_only, pairs_n = [], [], [], []
    for q in range(queries):  # query q: 300 noisy copies of image q's features, half of them an affine view
        sel = np.flatnonzero(img == q)
        d = x[sel] + 0.02 * rng.standard_normal((len(sel), x.shape[1])).astype(np.float32)
        A = np.array([[0.9, 0.1], [-0.1, 0.9], [10, 20]])
        qloc = (loc[sel] - A[2]) @ np.linalg.inv(A[:2])  # the database image is an affine view of the query
        qloc[::2] = rng.uniform(0, 512, (len(qloc[::2]), 2))
        t0 = time.perf_counter()
        nb = ix.search(d, k=k)
        t1 = time.perf_counter()
        shortlist(nb, top)
        t2 = time.perf_counter()
        cands = verify(nb, qloc, top=top)
        t3 = time.perf_counter()
        votes.append((t2 - t0) * 1e3)
        verify_only.append((t3 - t2) * 1e3)
        ransac.append((t1 - t0 + t3 - t2) * 1e3)
        pairs_n += [len(c.src) for c in cands]
    return dict(votes_ms=float(np.median(votes)), ransac_ms=float(np.median(ransac)),
                verify_ms=float(np.median(verify_only)), candidates=top, median_matches=float(np.median(pairs_n)))


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--pairs', type=int, default=5)
    p.add_argument('--queries', type=int, default=10)
    p.add_argument('--out', default='benchmarks/results/ransac.csv')
    a = p.parse_args()
    command = ' '.join(['.venv/bin/python'] + sys.argv)
    load = os.getloadavg()[0]
    print(f'{os.cpu_count()} CPUs, load average {load:.1f} at the start (timings are wall clock, side by side)')
    rows = []
    for n in (10, 30, 100, 300, 1000):
        ms, jac = per_pair(n, a.pairs)
        for ref in ('scikit-image', 'opencv'):
            rows.append(dict(command=command, what='ms per pair', n_matches=n, ours_ms=ms['ours'], reference=ref,
                             reference_ms=ms[ref], ratio=ms[ref] / ms['ours'], jaccard=jac[ref], load=load))
        print(f"{n:>5} matches: ours {ms['ours']:7.2f} ms/pair  scikit-image {ms['scikit-image']:8.2f} "
              f"({ms['scikit-image'] / ms['ours']:6.1f}x, Jaccard {jac['scikit-image']:.3f})  opencv "
              f"{ms['opencv']:6.2f} ({ms['opencv'] / ms['ours']:5.2f}x, Jaccard {jac['opencv']:.3f})", flush=True)
    q = per_query(a.queries)
    rows.append(dict(command=command, what='ms per query, IVF-PQ votes only', n_matches=q['median_matches'],
                     ours_ms=q['votes_ms'], reference='', reference_ms=np.nan, ratio=np.nan, jaccard=np.nan, load=load))
    rows.append(dict(command=command, what='ms per query, IVF-PQ + RANSAC (100 candidates, one batch)',
                     n_matches=q['median_matches'], ours_ms=q['ransac_ms'], reference='votes only',
                     reference_ms=q['votes_ms'], ratio=q['ransac_ms'] / q['votes_ms'], jaccard=np.nan, load=load))
    rows.append(dict(command=command, what='ms per candidate pair in the batch', n_matches=q['median_matches'],
                     ours_ms=q['verify_ms'] / q['candidates'], reference='', reference_ms=np.nan, ratio=np.nan,
                     jaccard=np.nan, load=load))
    print(f"per query (median of {a.queries}): IVF-PQ votes only {q['votes_ms']:.1f} ms, + RANSAC of "
          f"{q['candidates']} candidates {q['ransac_ms']:.1f} ms ({q['ransac_ms'] / q['votes_ms']:.2f}x; "
          f"{q['verify_ms'] / q['candidates']:.2f} ms per pair, median {q['median_matches']:.0f} matches)")
    os.makedirs(os.path.dirname(a.out), exist_ok=True)
    pd.DataFrame(rows).to_csv(a.out, index=False, float_format='%.4g')
    print(f'wrote {a.out}')


if __name__ == '__main__': main()
