"""The Index (05_kdtree): packed geometry, the three kinds against brute force, save/load, and build_index on a
real feature store (RootSIFT extracted by 03_delf from SynthLandmarks images, PCA from 04_pca)."""
import landmarks  # noqa: F401
import json
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from landmarks.index import Index, build_index, delf_like, pack_geometry, unpack_geometry, recall_at_k, _nbytes
from landmarks.data import same_settings


@settings(deadline=None)
@given(st.lists(st.tuples(st.integers(0, 2**31 - 1), st.integers(0, 65535), st.integers(0, 65535)),
                min_size=1, max_size=50))
def test_geometry_roundtrip(rows):
    img, y2, x2 = map(np.array, zip(*rows))
    yx = np.stack([y2, x2], 1) / 2
    i, l = unpack_geometry(pack_geometry(img, yx))
    assert (i == img).all() and (l == yx).all()


def _data(n=4000, seed=0):
    rng = np.random.default_rng(seed)
    db = delf_like(n, seed=seed, n_clusters=50)
    return db, np.arange(n) // 50, rng.uniform(0, 500, (n, 2)), rng


@pytest.mark.parametrize('kind', ['flat', 'kdtree'])
def test_exact_kinds_match_brute_force(kind):
    db, img, loc, rng = _data()
    q = db[rng.choice(len(db), 30)] + 0.05 * rng.standard_normal((30, 40)).astype(np.float32)
    ix = Index.from_arrays(kind, db, img, loc)
    dim = 40 if kind == 'flat' else 10
    x = db[:, :dim] / np.linalg.norm(db[:, :dim], axis=1, keepdims=True)
    qq = q[:, :dim] / np.linalg.norm(q[:, :dim], axis=1, keepdims=True)
    d = np.sqrt(((qq[:, None] - x[None]) ** 2).sum(-1))
    order = np.argsort(d, 1)[:, :5]
    nb = ix.search(q, k=5, chunk=7)
    np.testing.assert_allclose(nb.distances, np.take_along_axis(d, order, 1), atol=1e-4)
    assert (nb.images == img[order]).mean() > 0.99           # ties aside, the same neighbours
    np.testing.assert_allclose(nb.locations, np.rint(loc[order] * 2) / 2, atol=1e-6)


def test_max_distance_and_missing():
    db, img, loc, rng = _data(2000)
    ix = Index.from_arrays('kdtree', db, img, loc)
    nb = ix.search(db[:20], k=8, max_distance=0.3)
    assert (nb.distances[nb.images >= 0] <= 0.3).all()
    assert np.isinf(nb.distances[nb.images < 0]).all() and np.isnan(nb.locations[nb.images < 0]).all()
    assert (nb.images[:, 0] == img[:20]).all()               # each finds itself at distance 0


def test_ivfpq_recall_and_bytes(tmp_path):
    n = 30_000
    db, img, loc, rng = _data(n)
    q = db[rng.choice(n, 300)] + 0.05 * rng.standard_normal((300, 40)).astype(np.float32)
    exact = Index.from_arrays('flat', db, img, loc).search(q, k=10)
    ix = Index.from_arrays('ivfpq', db, img, loc, nlist=128, nprobe=16)
    assert recall_at_k(ix.search(q, k=10), exact) > 0.5
    assert ix.engine.code_size + 8 <= 32                    # code + packed id (the geometry)
    assert _nbytes(ix.save(tmp_path / 'ivf')) / n <= 32     # everything on disk, image ids included
    back = Index.load(tmp_path / 'ivf')
    assert (back.search(q, k=10).images == ix.search(q, k=10).images).all()


def test_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match='meta.json'): Index.load(tmp_path)


@pytest.fixture(scope='module')
def store(tmp_path_factory):
    from landmarks.data import dataset_root, load_gld
    from landmarks.delf import extract_features
    d = tmp_path_factory.mktemp('kd')
    gld = load_gld(dataset_root('synth:tiny', d / 'data', progress=False))
    return d, gld, extract_features(gld.index, d / 'index.h5', features='sift', max_features=100, progress=False)


@pytest.mark.parametrize('kind', ['kdtree', 'ivfpq', 'flat'])
def test_build_index_from_store(store, kind):
    from landmarks.features import read_features
    from landmarks.pca import fit_pca
    d, gld, h5 = store
    pca = fit_pca(h5, d / 'pca.npz', dims=(40, 10))
    p = build_index(h5, d / 'out', kind=kind, pca_npz=pca)
    ix = Index.load(p)
    feats = read_features(h5)
    assert ix.image_ids == sorted(feats) and ix.ntotal == sum(len(f['descriptors']) for f in feats.values())
    assert (ix.image_sizes == np.stack([feats[i]['image_size'] for i in ix.image_ids])).all()
    i = ix.image_ids[3]
    nb = ix.search(feats[i]['descriptors'], k=1)         # raw 128-D RootSIFT in, the stored PCA applied
    assert (nb.images[:, 0] == 3).mean() > (0.9 if kind != 'ivfpq' else 0.5)
    # skipped when on disk with the same settings, rebuilt when asked or when a build was killed
    mtime = (p / 'meta.json').stat().st_mtime_ns
    assert build_index(h5, d / 'out', kind=kind, pca_npz=pca) == p and (p / 'meta.json').stat().st_mtime_ns == mtime
    (p / 'meta.json').unlink()
    assert build_index(h5, d / 'out', kind=kind, pca_npz=pca) == p and (p / 'meta.json').exists()
    assert json.loads((p / 'meta.json').read_text())['record']['kind'] == kind


def test_build_index_changed_settings_rebuild(store):
    "The cache rule: the same record skips the build, a changed setting (leafsize) rebuilds and is recorded."
    d, gld, h5 = store
    p = build_index(h5, d / 'cache', kind='kdtree', leafsize=16)
    mtime = (p / 'meta.json').stat().st_mtime_ns
    assert build_index(h5, d / 'cache', kind='kdtree', leafsize=16) == p
    assert (p / 'meta.json').stat().st_mtime_ns == mtime
    assert build_index(h5, d / 'cache', kind='kdtree', leafsize=8) == p
    assert json.loads((p / 'meta.json').read_text())['record']['leafsize'] == 8
    assert Index.load(p).settings['leafsize'] == 8


def test_index_built_under_other_size_rules_is_rebuilt(store):
    "An index cached under other by-size defaults (faiss_settings' niter 20, as an older version chose) is rebuilt."
    from landmarks.index import size_rules
    d, gld, h5 = store
    p = build_index(h5, d / 'rules', kind='faiss')
    meta = json.loads((p / 'meta.json').read_text())
    assert same_settings(meta['record']['rules'], size_rules('faiss'))
    meta['record']['rules']['faiss_settings']['niter'] = 20          # what the older defaults recorded
    (p / 'meta.json').write_text(json.dumps(meta))
    mtime = (p / 'meta.json').stat().st_mtime_ns
    assert build_index(h5, d / 'rules', kind='faiss') == p and (p / 'meta.json').stat().st_mtime_ns != mtime
    assert same_settings(json.loads((p / 'meta.json').read_text())['record']['rules'], size_rules('faiss'))


def test_build_index_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match='nope.h5'): build_index(tmp_path / 'nope.h5', tmp_path)
