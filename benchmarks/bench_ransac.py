"""RANSAC benchmark: milliseconds per image pair for our vectorized affine RANSAC (landmarks.verification) and
scikit-image's ransac + AffineTransform (DELF's), same matches, same settings (3 samples, 20 px, 1000 trials),
with their agreement (Jaccard of the inlier sets).

    .venv/bin/python benchmarks/bench_ransac.py
"""
import landmarks  # noqa: F401
import time, warnings

import numpy as np

from landmarks.verification import ransac_affine, skimage_ransac, synthetic_matches


def bench(n, pairs=5, inlier_frac=0.3):
    out = {}
    for name, f in (('ours', ransac_affine), ('scikit-image', skimage_ransac), ('opencv', None)):
        if f is None: continue
        t = time.perf_counter(); res = []
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            for s in range(pairs):
                src, dst, _, truth = synthetic_matches(n, inlier_frac, seed=s)
                res.append((f(src, dst, seed=s)[1], truth))
        out[name] = ((time.perf_counter() - t) / pairs * 1e3, res)
    jac = np.mean([(a & b).sum() / max(1, (a | b).sum()) for (a, _), (b, _) in zip(out['ours'][1], out['scikit-image'][1])])
    acc = {k: np.mean([(m == t).mean() for m, t in v[1]]) for k, v in out.items()}
    print(f"{n:>6} matches: ours {out['ours'][0]:8.2f} ms/pair  scikit-image {out['scikit-image'][0]:8.2f} ms/pair"
          f"  speed-up {out['scikit-image'][0] / out['ours'][0]:5.1f}x  agreement {jac:.3f}"
          f"  accuracy vs truth {acc['ours']:.3f} / {acc['scikit-image']:.3f}", flush=True)


if __name__ == '__main__':
    for n in (50, 200, 1000):
        bench(n)
