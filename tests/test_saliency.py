"""The saliency filter (07): hull areas of known shapes, and the filter only re-orders (demote) or removes (reject)."""
import landmarks  # noqa: F401
import numpy as np
from hypothesis import given, settings, strategies as st

from landmarks.saliency import apply_saliency, hull_area_fraction, saliency
from landmarks.verification import Candidate


@settings(deadline=None, max_examples=30)
@given(st.floats(1, 500), st.floats(1, 500), st.floats(0, 100), st.floats(0, 100), st.integers(0, 30))
def test_rectangle_area(h, w, y0, x0, n_inside):
    rng = np.random.default_rng(n_inside)
    corners = np.array([[y0, x0], [y0 + h, x0], [y0, x0 + w], [y0 + h, x0 + w]])
    inside = np.column_stack([rng.uniform(y0, y0 + h, n_inside), rng.uniform(x0, x0 + w, n_inside)])
    H, W = 1000, 800
    assert np.isclose(hull_area_fraction(np.vstack([corners, inside]), (H, W)), h * w / (H * W), rtol=1e-6)


@settings(deadline=None, max_examples=30)
@given(st.integers(0, 1000), st.floats(0, 0.5), st.floats(0, 0.5))
def test_filter_reorders_or_removes(seed, qmin, dmin):
    rng = np.random.default_rng(seed)
    cands = []
    for i in range(8):
        n = int(rng.integers(0, 30))
        s = rng.uniform(0, rng.uniform(1, 100), (n, 2))
        m = rng.random(n) < 0.7
        cands.append(Candidate(i, 30 - i, int(m.sum()), s, s * 0.9, m))
    sizes = np.full((8, 2), 100)
    dem = apply_saliency(cands, (100, 100), sizes, qmin, dmin)
    rej = apply_saliency(cands, (100, 100), sizes, qmin, dmin, mode='reject')
    assert sorted(c.image for c in dem) == list(range(8))
    passing = [c.image for c in cands
               if (qmin <= 0 and dmin <= 0) or c.inliers >= 3 and saliency(c, (100, 100), sizes[c.image])[0] >= qmin
               and saliency(c, (100, 100), sizes[c.image])[1] >= dmin]
    assert [c.image for c in rej] == passing and [c.image for c in dem][:len(passing)] == passing


def _grid(rows):
    import pandas as pd
    return pd.DataFrame([dict(k=k, distance_quantile=q, max_distance=q, query_min=qm, db_min=dm, mAP=m)
                         for k, q, qm, dm, m in rows])


@settings(deadline=None, max_examples=40)
@given(st.lists(st.floats(0, 1), min_size=8, max_size=8))
def test_best_settings_filter_row_is_on(maps):
    """Whatever the grid's numbers, the tuned settings give the filter a nonzero threshold, at the k and distance
    chosen with the filter off, and say whether it helped."""
    from landmarks.saliency import best_settings
    combos = [(k, q, qm, dm) for k in (5, 10) for q in (0.5, 1.0) for qm, dm in ((0, 0), (0.03, 0))]
    g = _grid([c + (m,) for c, m in zip(combos, maps)])
    b = best_settings(g)
    assert b['query_min'] > 0 or b['db_min'] > 0
    off = g[(g.query_min == 0) & (g.db_min == 0)]
    assert b['mAP_without'] == off.mAP.max()
    assert b['filter_helps'] == (b['mAP'] > b['mAP_without'])


@settings(deadline=None, max_examples=30)
@given(st.integers(0, 10_000), st.integers(1, 8))
def test_distance_thresholds_are_measured_quantiles(seed, k):
    from landmarks.index import Neighbours
    from landmarks.saliency import distance_thresholds
    rng = np.random.default_rng(seed)
    d = np.sort(rng.uniform(0, 2, (50, 8)).astype(np.float32), axis=1)
    nb = Neighbours(d, np.zeros((50, 8), np.int32), np.zeros((50, 8, 2), np.float32))
    th = distance_thresholds({'q': (nb, None, None)}, k, (0.1, 0.5, 1.0))
    assert th[0] <= th[1] < th[2] == np.inf
    assert np.isclose(th[1], np.median(d[:, :k]))
    inside = (d[:, :k] <= th[0]).mean()
    assert 0.05 <= inside <= 0.2   # about a tenth of the measured distances pass the first threshold


def _pattern_seeds(n, k=0):
    "Seeds whose generator draws shared pattern `k` first (add_shared_pattern's first draw picks the pattern)."
    from landmarks.data import N_PATTERNS
    return [s for s in range(10_000) if np.random.default_rng(s).integers(N_PATTERNS) == k][:n]


def test_shared_pattern_is_verified_on_a_small_hull():
    """Two scenes with nothing in common but a shared pattern: verification accepts the pair, with many more
    inliers than the same scenes without it, and the inliers cover a small part of the images."""
    import cv2
    from landmarks.data import add_shared_pattern, render_clutter
    from landmarks.delf import RootSIFT, mutual_nn
    from landmarks.verification import ransac_affine
    sift = RootSIFT(1000)
    def verified(ims):
        f1, f2 = sift([cv2.cvtColor(im, cv2.COLOR_BGR2RGB) for im in ims])
        m = mutual_nn(f1['descriptors'], f2['descriptors'])
        if len(m) < 3: return 0, 1.0
        src, dst = f1['locations'][m[:, 0]], f2['locations'][m[:, 1]]
        _, mask = ransac_affine(src, dst, 20., 1000, seed=0)
        hulls = hull_area_fraction(src[mask], (256, 256)), hull_area_fraction(dst[mask], (256, 256))
        return int(mask.sum()), min(hulls)
    seeds = _pattern_seeds(8)
    with_p, without, hulls = [], [], []
    for a, b in zip(seeds[::2], seeds[1::2]):
        scenes = [render_clutter(np.random.default_rng(s + 1), 256) for s in (a, b)]
        n, h = verified([add_shared_pattern(im, np.random.default_rng(s), seed=0) for im, s in zip(scenes, (a, b))])
        with_p.append(n)
        hulls.append(h)
        without.append(verified(scenes)[0])
    assert np.mean(with_p) > 2 * np.mean(without) and min(with_p) >= 8, (with_p, without)
    assert np.median(hulls) < 0.1, hulls
