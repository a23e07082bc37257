"""PCA over a feature store: recovers a planted subspace, from a sample spread over many images and shards."""
import landmarks  # noqa: F401
import numpy as np
from landmarks.features import write_shard, parts_dir
from landmarks.pca import fit_pca, load_pca, pca_features
from landmarks.features import read_features


def _store(path, n_img=30, per=200, D=64, k=5, seed=0, shards=False):
    "A store whose L2-normalised descriptors vary mostly within a planted k-dim subspace."
    rng = np.random.default_rng(seed)
    basis = np.linalg.qr(rng.normal(size=(D, k)))[0].T
    centre = rng.normal(size=D) * 3
    items = []
    for i in range(n_img):
        d = centre + (rng.normal(size=(per, k)) * np.linspace(3, 1, k)) @ basis + 0.01 * rng.normal(size=(per, D))
        items.append((f'img/{i}', dict(locations=rng.uniform(0, 99, (per, 2)).astype(np.float32),
                                       scales=np.ones(per, np.float32), descriptors=d.astype(np.float32),
                                       attention=np.ones(per, np.float32), image_size=np.array([100, 100], np.int32))))
    st = dict(backend='test', dims=D)
    if shards:       # an unfinished run: the store is only shards
        parts_dir(path).mkdir(parents=True)
        for j in range(0, n_img, 7): write_shard(parts_dir(path)/f'x-{j:06d}.h5', items[j:j+7], st)
    else: write_shard(path, items, st)
    return basis, np.concatenate([d['descriptors'] for _, d in items])


def test_recovers_subspace_from_sample(tmp_path):
    basis, x = _store(tmp_path/'f.h5', shards=True)
    pca = load_pca(fit_pca(tmp_path/'f.h5', tmp_path/'p.npz', dims=(5, 3), sample=1500, seed=1))
    assert pca.settings['n_fitted'] == 1500
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    # the top-5 components span the subspace the normalised descriptors vary in
    exact = np.linalg.svd(xn - xn.mean(0), full_matrices=False)[2][:5]
    overlap = np.linalg.svd(exact @ pca.components[:5].T, compute_uv=False)
    assert overlap.min() > 0.95, overlap
    assert pca.explained[:5].sum() > 0.95
    # other seeds sample other descriptors, yet find the same subspace
    other = load_pca(fit_pca(tmp_path/'f.h5', tmp_path/'q.npz', dims=(5, 3), sample=1500, seed=2))
    assert not np.allclose(other.mean, pca.mean)
    assert np.linalg.svd(other.components[:5] @ pca.components[:5].T, compute_uv=False).min() > 0.95


def test_pca_store_keeps_layout(tmp_path):
    _store(tmp_path/'f.h5', n_img=4, per=50)
    npz = fit_pca(tmp_path/'f.h5', tmp_path/'p.npz', dims=(8,))
    out = read_features(pca_features(tmp_path/'f.h5', npz, tmp_path/'r.h5', dim=8, float16=True))
    src = read_features(tmp_path/'f.h5')
    assert sorted(out) == sorted(src) == [f'img/{i}' for i in range(4)]
    assert out['img/0']['descriptors'].shape == (50, 8) and out['img/0']['descriptors'].dtype == np.float16
    np.testing.assert_array_equal(out['img/3']['locations'], src['img/3']['locations'])
    np.testing.assert_allclose(np.linalg.norm(out['img/1']['descriptors'].astype(np.float32), axis=1), 1, atol=2e-3)
