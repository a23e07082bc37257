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
        n = int(rng.integers(0, 30)); s = rng.uniform(0, rng.uniform(1, 100), (n, 2)); m = rng.random(n) < 0.7
        cands.append(Candidate(i, 30 - i, int(m.sum()), s, s * 0.9, m))
    sizes = np.full((8, 2), 100)
    dem = apply_saliency(cands, (100, 100), sizes, qmin, dmin)
    rej = apply_saliency(cands, (100, 100), sizes, qmin, dmin, mode='reject')
    assert sorted(c.image for c in dem) == list(range(8))
    passing = [c.image for c in cands if (qmin <= 0 and dmin <= 0) or c.inliers >= 3 and saliency(c, (100, 100), sizes[c.image])[0] >= qmin
               and saliency(c, (100, 100), sizes[c.image])[1] >= dmin]
    assert [c.image for c in rej] == passing and [c.image for c in dem][:len(passing)] == passing
