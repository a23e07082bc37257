"""`landmarks retrieve` and `landmarks recognize --by-retrieval` (07a) through the real dispatcher, on a GLD-layout
dataset, a photo folder and feature stores; a query is never returned for itself; the real photos when present."""
import landmarks  # noqa: F401
import shutil

import numpy as np
import pytest

from landmarks.cli import main
from landmarks.data import dataset_root, dev_photos, load_gld
from landmarks.data import load_folder
from landmarks.evaluation import evaluate, mean_average_precision, read_submission

REAL = dev_photos()  # the dev photos, or None


@pytest.fixture(scope='module')
def gld(tmp_path_factory):
    d = tmp_path_factory.mktemp('ret')
    return d, load_gld(dataset_root('synth:tiny', d / 'data', progress=False))


def _run(*args):
    main([str(a) for a in args])


@pytest.mark.parametrize('kind', ['kdtree', 'ivfpq', 'flat', 'faiss'])
def test_retrieve_gld(gld, kind):
    d, g = gld
    out = d / f'sub-{kind}.csv'
    _run('retrieve', '--index', g.root, '--queries', g.root, '--out', out, '--index_type', kind, '--work_dir', d / 'w',
         '--max_features', 150)
    preds = read_submission(out, task='retrieval')
    assert set(preds) <= set(g.test.id) and all(len(v) <= 100 and set(v) <= set(g.index.id) for v in preds.values())
    sol = set(g.retrieval_solution.id)
    score = evaluate(g.retrieval_solution, {q: v for q, v in preds.items() if q in sol}, task='retrieval')['All']
    assert score > 0.25, score


def test_store_as_index_and_queries_never_returns_itself(gld):
    d, g = gld
    store = next((d / 'w' / 'features').glob('*-index-sift*.h5'))   # written by test_retrieve_gld
    _run('retrieve', '--index', store, '--queries', store, '--out', d / 'self.csv', '--work_dir', d / 'w')
    preds = read_submission(d / 'self.csv', task='retrieval')
    assert len(preds) == len(g.index) and all(q not in v for q, v in preds.items())
    # the same features found their own image first when not excluded: the exclusion is what keeps them out
    from landmarks.index import Index
    from landmarks.features import read_features
    ix = Index.load(next((d / 'w' / 'index').glob(f'{store.stem}-faiss')))   # the default index, built just above
    assert ix.kind == 'faiss' and ix.dim == 128 and ix.pca is None          # the full RootSIFT descriptors
    f = read_features(store, ids=[ix.image_ids[2]])[ix.image_ids[2]]
    assert np.bincount(ix.search(f['descriptors'], k=1).images[:, 0]).argmax() == 2


def _unit(n, d=128, seed=0):
    x = np.abs(np.random.default_rng(seed).standard_normal((n, d))).astype(np.float32)  # RootSIFT-like: >= 0, norm 1
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_faiss_index_finds_the_exact_neighbours():
    "The `faiss` kind: exact below flat_max (the same neighbours as numpy), and an IVF visiting every list agrees."
    from landmarks.index import Index
    db, q = _unit(3000), _unit(50, seed=1)
    images, locs = np.arange(3000) // 30, np.zeros((3000, 2), np.float32)
    exact = np.argsort(((q[:, None] - db[None]) ** 2).sum(-1), axis=1)[:, :5] // 30
    flat = Index.from_arrays('faiss', db, images, locs)
    assert flat.settings['nlist'] == 0 and flat.dim == 128
    assert (flat.search(q, k=5).images == exact).all()
    ivf = Index.from_arrays('faiss', db, images, locs, nlist=16, nprobe=16)
    assert ivf.settings['nlist'] == 16
    assert (ivf.search(q, k=1).images[:, 0] == exact[:, 0]).mean() >= 0.95   # 8-bit codes: near ties may swap
    own = ivf.search(db[:300], k=1).images[:, 0]                             # stored vectors find their own image
    assert (own == images[:300]).mean() >= 0.99


def test_recognize_by_retrieval_photo_folder(gld, tmp_path):
    d, g = gld
    photos = tmp_path / 'photos'
    for r in g.train.groupby('landmark_id').head(4).itertuples():
        (photos / f'lm{r.landmark_id}').mkdir(parents=True, exist_ok=True)
        shutil.copy(r.path, photos / f'lm{r.landmark_id}' / f'{r.id}.jpg')
    (photos / 'distractor').mkdir()
    for r in g.test.itertuples():
        if r.id in set(g.recognition_solution.id[g.recognition_solution.landmarks == '']):
            shutil.copy(r.path, photos / 'distractor' / f'{r.id}.jpg')
    out = tmp_path / 'rec.csv'
    _run('recognize', '--by-retrieval', '--index', photos, '--queries', photos, '--out', out,
         '--work_dir', tmp_path / 'w', '--max_features', 150)
    preds = read_submission(out, task='recognition')
    folder = load_folder(photos)
    gap = evaluate(folder.recognition_solution, out, task='recognition')['All']
    assert gap > 0.3, gap
    truth = dict(zip(folder.recognition_solution.id, folder.recognition_solution.landmarks))
    lm = [s for q, (_, s) in preds.items() if truth[q]]
    non = [s for q, (_, s) in preds.items() if not truth[q]]
    if non: assert np.mean(non) < np.mean(lm)
    # a photo folder is its own index and queries: still never itself
    _run('retrieve', '--index', photos, '--queries', photos, '--out', tmp_path / 'r.csv', '--work_dir', tmp_path / 'w',
         '--max_features', 150)
    assert all(q not in v for q, v in read_submission(tmp_path / 'r.csv', task='retrieval').items())


def test_errors_name_the_input(tmp_path, capsys):
    for args, name in ((('--index', tmp_path / 'nope', '--queries', tmp_path, '--out', tmp_path / 'x.csv'), 'nope'),
                       (('--index', tmp_path, '--out', tmp_path / 'x.csv'), '--queries'),
                       (('--index', tmp_path, '--queries', tmp_path, '--index_type', 'annoy'), '--index-type')):
        with pytest.raises(SystemExit) as e: _run('retrieve', *args)
        err = capsys.readouterr().err
        assert e.value.code == 2 and name in err and len(err.strip().splitlines()) == 1, err
    with pytest.raises(ValueError, match='nope'):                  # --debug: the exception itself
        _run('retrieve', '--index', tmp_path / 'nope', '--queries', tmp_path, '--out', tmp_path / 'x.csv', '--debug')


@pytest.mark.skipif(REAL is None, reason='the real photos are not on this machine')
def test_real_photos_subset(tmp_path):
    "Three real landmarks and the distractors (linked, never copied): landmark queries find their landmark first."
    photos = tmp_path / 'photos'
    names = sorted(p.name for p in REAL.iterdir()
                   if p.is_dir() and p.name != 'distractor' and len(list(p.iterdir())) >= 3)[:3]
    for n in names + ['distractor']:
        (photos / n).mkdir(parents=True)
        [(photos / n / f.name).symlink_to(f) for f in (REAL / n).iterdir()]
    _run('retrieve', '--index', photos, '--queries', photos, '--out', tmp_path / 'r.csv', '--work_dir', tmp_path / 'w',
         '--max_features', 400, '--image_size', 512, '--index_type', 'flat')
    folder = load_folder(photos)
    preds = read_submission(tmp_path / 'r.csv', task='retrieval')
    sol = {q: set(v.split()) for q, v in zip(folder.retrieval_solution.id, folder.retrieval_solution.images)}
    score = mean_average_precision({q: preds[q] for q in sol}, sol)
    rng = np.random.default_rng(0)     # chance: the same candidates in random orders
    chance = np.mean([mean_average_precision({q: list(rng.permutation(preds[q])) for q in sol}, sol)
                      for _ in range(20)])
    assert score > chance + 0.1, (score, chance)


def test_geometry_and_expansion_options(gld, tmp_path, capsys):
    "--geometry, --expand and --oriented reach the pipeline; a bad geometry is a one-line error naming it."
    d, g = gld
    for extra in (('--geometry', 'fundamental', '--expand', '0'), ('--geometry', 'index-affine', '--oriented')):
        out = tmp_path / f'{extra[1]}.csv'
        _run('retrieve', '--index', g.root, '--queries', g.root, '--out', out, '--work_dir', d / 'w', '--max_features',
             200, *extra)
        preds = read_submission(out, task='retrieval')
        sol = {q: set(v.split()) for q, v in zip(g.retrieval_solution.id, g.retrieval_solution.images)}
        assert mean_average_precision({q: preds[q] for q in sol}, sol) > 0.2, extra
    capsys.readouterr()  # the progress bars of the runs above
    with pytest.raises(SystemExit) as e:
        _run('retrieve', '--index', g.root, '--queries', g.root, '--geometry', 'similarity')
    err = capsys.readouterr().err
    assert e.value.code == 2 and '--geometry' in err and len(err.strip().splitlines()) == 1, err


@pytest.mark.parametrize('cmd', [('retrieve',), ('recognize', '--by-retrieval')])
@pytest.mark.parametrize('option,value', [('--shortlist', 0), ('--expand', -1), ('--expand_shortlist', 0),
                                          ('--max_distance', 0), ('--geometry', 'similarity')])
def test_bad_values_are_one_line_errors(gld, cmd, option, value, capsys):
    "Every verification and expansion option: a bad value exits before any work with one line naming it."
    d, g = gld
    with pytest.raises(SystemExit) as e:
        _run(*cmd, '--index', g.root, '--queries', g.root, option, value, '--work_dir', d / 'w-bad')
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and len(err.splitlines()) == 1, err
    assert option.lstrip('-').replace('_', '-') in err and str(value) in err, err
    assert not (d / 'w-bad').exists()
