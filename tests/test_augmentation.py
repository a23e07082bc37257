"""Augmentation and class balancing (landmarks.augmentation) on images the tests write."""
import landmarks  # noqa: F401
from collections import Counter

import matplotlib
matplotlib.use('Agg')
import numpy as np, pandas as pd, pytest, torch
from hypothesis import given, settings, strategies as st
from PIL import Image

from landmarks.augmentation import (LandmarkImages, balance_weights, balanced_sampler, denormalize, eval_transform,
                                    plot_balance, rare_classes, show_batch, train_transform)


@pytest.fixture(scope='module')
def images(tmp_path_factory):
    "Six small RGB images on disk: a frame with path and landmark_id (class 1 is rare)."
    d = tmp_path_factory.mktemp('imgs')
    rng = np.random.default_rng(0)
    rows = []
    for i, lid in enumerate([7, 7, 7, 7, 3, 9]):
        p = d/f'{i}.jpg'
        Image.fromarray(rng.integers(0, 255, (80, 100, 3), dtype=np.uint8)).save(p)
        rows.append((f'id{i}', str(p), lid))
    return pd.DataFrame(rows, columns=['id', 'path', 'landmark_id'])


@given(st.lists(st.integers(0, 5), min_size=1, max_size=60), st.floats(1, 20))
@settings(max_examples=60, deadline=None)
def test_class_mass_is_capped_inverse_frequency(labels, cap):
    w = balance_weights(labels, cap)
    counts = Counter(labels)
    n_max = max(counts.values())
    mass = {c: w[np.array(labels) == c].sum() for c in counts}
    for c, n in counts.items():
        assert mass[c] == pytest.approx(min(n_max, cap * n))   # every class gets min(n_max, cap * n_c)
        assert mass[c] <= n_max + 1e-9                          # never more than the largest class


def test_sampler_is_reproducible_from_generator_state():
    labels = list('aaaaaaaabbbc')
    g = torch.Generator().manual_seed(3)
    s = balanced_sampler(labels, 4, generator=g)
    first = list(s)
    state = g.get_state()                    # what a checkpoint saves between epochs
    second = list(s)
    g.set_state(state)
    assert list(s) == second                 # restored state: the same next epoch
    assert first != second                   # and epochs differ
    assert len(first) == len(labels)


def test_balancing_flattens_a_long_tail():
    labels = [0] * 200 + [1] * 20 + [2] * 5
    g = torch.Generator().manual_seed(0)
    drawn = Counter(np.array(labels)[list(balanced_sampler(labels, cap=10, num_samples=30000, generator=g))])
    share = np.array([drawn[0], drawn[1], drawn[2]]) / 30000
    np.testing.assert_allclose(share, np.array([200, 200, 50]) / 450, atol=0.02)


def test_bad_cap_names_the_parameter():
    with pytest.raises(ValueError, match='cap=0'): balance_weights([1, 2], cap=0)


def test_rare_classes():
    assert rare_classes([1, 1, 1, 2, 2, 3]) == {3}
    assert rare_classes([1, 1, 1, 2, 2, 3], rare_below=3) == {2, 3}
    assert rare_classes([5, 5]) == set()


def test_transforms(images):
    img = Image.open(images.path[0]).convert('RGB')
    tf = train_transform(48, 40)
    torch.manual_seed(0)
    a = tf(img)
    torch.manual_seed(0)
    b = tf(img)
    assert a.shape == (3, 40, 40) and torch.equal(a, b)              # seeded: reproducible
    outs = {tuple(tf(img).flatten()[:50].tolist()) for _ in range(5)}
    assert len(outs) > 1                                              # random crops and flips
    e = eval_transform(48, 40)
    assert torch.equal(e(img), e(img))
    # the centre crop of the resized image, normalized
    ref = np.asarray(img.resize((48, 48), Image.BILINEAR), dtype=np.float32)[4:44, 4:44] / 255
    np.testing.assert_allclose(denormalize(e(img)), ref, atol=0.02)
    assert train_transform(48, 40, strong=True)(img).shape == (3, 40, 40)
    with pytest.raises(ValueError, match='crop_size=64'): eval_transform(48, 64)


def test_dataset_labels_and_rare_transform(images):
    classes = {7: 0, 3: 1, 9: 2}
    ds = LandmarkImages(images, classes, transform=lambda im: 'plain', strong=lambda im: 'strong', rare={3, 9})
    got = [ds[i] for i in range(len(ds))]
    assert [y for _, y in got] == [0, 0, 0, 0, 1, 2]
    assert [x for x, _ in got] == ['plain'] * 4 + ['strong'] * 2
    unknown = LandmarkImages(images.assign(landmark_id=42), classes)
    assert unknown[0][1] == -1


def test_unreadable_image_names_the_file(tmp_path):
    bad = tmp_path/'broken.jpg'
    bad.write_bytes(b'\xff\xd8 not really')
    with pytest.raises(OSError, match='broken.jpg'): LandmarkImages(pd.DataFrame({'path': [str(bad)]}))[0]


def test_figures(images):
    fig = show_batch(images.path[:3], 48, 40, rows=2)
    assert len(fig.axes) == 9
    fig = plot_balance(images.landmark_id, cap=2)
    heights = [p.get_height() for p in fig.axes[0].patches]
    assert heights[:3] == [4, 1, 1]                  # before: the dataset's counts, most frequent first
    assert sum(heights[3:]) == len(images)           # after: one epoch of the same length
