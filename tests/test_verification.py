"""Voting and verification (06): the vectorized RANSAC against scikit-image's and OpenCV's, on the same matches."""
import landmarks  # noqa: F401
import warnings
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from landmarks.index import Neighbours
from landmarks.verification import (apply_affine, ransac, ransac_affine, ransac_masks, shortlist, synthetic_matches,
                                    verify, neighbours_within)


def skimage_affine(src, dst, seed):
    "The reference: scikit-image's ransac + AffineTransform as DELF calls it (20 px, 1000 trials); the inlier mask."
    from skimage.measure import ransac as sk_ransac
    from skimage.transform import AffineTransform
    _, inl = sk_ransac((src, dst), AffineTransform, min_samples=3, residual_threshold=20., max_trials=1000, rng=seed)
    return np.zeros(len(src), bool) if inl is None else np.asarray(inl, bool)


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000), st.integers(12, 400), st.floats(0.35, 1.0))
def test_recovers_planted_inliers(seed, n, frac):
    src, dst, A, truth = synthetic_matches(n, frac, noise=0.5, seed=seed)
    if truth.sum() < 6: return
    Ahat, inl = ransac_affine(src, dst, seed=seed)
    assert inl[truth].mean() >= 0.95                         # the planted matches are found...
    assert (inl & ~truth).sum() <= max(2, 0.05 * n)          # ...and few random ones lie within 20 px by chance
    p = np.array([[0., 0.], [640, 640], [0, 640]])
    assert np.abs(apply_affine(Ahat, p) - apply_affine(A, p)).max() < 10


@pytest.mark.parametrize('seed', range(5))
def test_agrees_with_skimage_and_opencv(seed):
    src, dst, A, truth = synthetic_matches(200, 0.3, seed=seed)
    _, ours = ransac_affine(src, dst, seed=seed)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        sk = skimage_affine(src, dst, seed)
    _, cvm = ransac(src, dst, 'affine', 'ransac', threshold=20., seed=seed)  # the package's wrapper: OpenCV's
    _, rep = ransac(src, dst, 'affine', 'report', threshold=20., seed=seed)
    assert (rep == ours).all()
    for other in (sk, cvm):
        assert (ours & other).sum() / (ours | other).sum() >= 0.95


def test_seeded_and_degenerate():
    src, dst, _, _ = synthetic_matches(100, 0.2, seed=3)
    a, b = ransac_affine(src, dst, seed=7)[1], ransac_affine(src, dst, seed=7)[1]
    assert (a == b).all()
    line = np.stack([np.arange(20.), np.arange(20.)], 1)
    assert ransac_affine(line, line * 2)[0] is None           # collinear points define no affine map
    with pytest.raises(ValueError, match='min_samples'): ransac_affine(src, dst, min_samples=2)


def test_shortlist_votes_once_per_feature_and_excludes():
    rng = np.random.default_rng(0)
    img = rng.integers(-1, 30, (500, 10)).astype(np.int32)
    ids, votes = shortlist(Neighbours(None, img, None), top=100, exclude=[4])
    expect = {i: sum(i in set(r) for r in img) for i in range(30) if i != 4}
    assert dict(zip(ids.tolist(), votes.tolist())) == {i: v for i, v in expect.items() if v}
    assert (np.diff(votes) <= 0).all() and 4 not in ids


def test_verify_ranks_by_inliers_then_votes():
    src, dst, A, truth = synthetic_matches(120, 1.0, noise=0.5, seed=1)
    n = len(src)
    img = np.full((n, 3), 9, np.int32)
    img[:, 0] = 2                      # image 9: a vote from everyone, no geometry
    loc = np.random.default_rng(1).uniform(0, 640, (n, 3, 2)).astype(np.float32)
    loc[:, 0] = dst
    c = verify(Neighbours(np.zeros((n, 3), np.float32), img, loc), src)
    assert [x.image for x in c] == [2, 9] and c[0].inliers == n and c[1].inliers < 10
    d = np.tile(np.float32([0.1, 0.5, 0.9]), (n, 1))
    assert (neighbours_within(Neighbours(d, img, loc), k=2, max_distance=0.3).images[:, 1] == -1).all()


@settings(max_examples=10, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 60), st.floats(0.2, 1.0)), min_size=1, max_size=12), st.integers(0, 99))
def test_batch_equals_one_pair_at_a_time(specs, seed):
    pairs = [synthetic_matches(n, f, seed=i)[:2] for i, (n, f) in enumerate(specs)]
    batch = ransac_masks(pairs, seed=seed)
    for (s, d), m in zip(pairs, batch):
        assert (m == ransac_affine(s, d, seed=seed)[1]).all()
        assert len(s) >= 3 or not m.any()
