"""Standard benchmarks (08a): the revisited layout (a fixture cut from SynthLandmarks), its download on a loopback
server, retrieval with cropped queries, the CLIs, GLD v2 solution files in the released layout, the bench profile."""
import landmarks  # noqa: F401  (import order, see landmarks/__init__)
import io, json, os, pickle, subprocess, sys, tarfile

import numpy as np
import pytest
from PIL import Image

from landmarks.benchmarks import (PUBLISHED_REVISITED, check_gld_v2_solution, gld_v2_scores, is_revisited,
                                  load_revisited, read_distractors, revisited_benchmark, revisited_fixture,
                                  revisited_table)
from landmarks.download import DownloadError, LoopbackServer, REVISITED_IMAGES, download_cli, download_revisited
from landmarks.evaluation import read_submission, revisited_map, revisited_ranking

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FAST = dict(timeout=3, retries=2, backoff=0.01, progress=False)


def _cli(*args):
    env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL='2')
    return subprocess.run([sys.executable, '-m', 'landmarks.cli', *map(str, args)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)


@pytest.fixture(scope='module')
def fixture(tmp_path_factory):
    "A revisited-layout benchmark cut from synth:tiny (its own data_dir)."
    d = tmp_path_factory.mktemp('bench')
    return revisited_fixture(d/'rtiny', 'synth:tiny', data_dir=d/'data', n_queries=6, seed=0)


@pytest.fixture(scope='module')
def bench_run(fixture, tmp_path_factory):
    out = tmp_path_factory.mktemp('bench-out')
    return out, revisited_benchmark(fixture, out, 'sift', 'kdtree', 100, progress=False, max_features=200)


def test_fixture_has_the_distributed_layout(fixture):
    assert is_revisited(fixture)
    assert sorted(p.name for p in fixture.iterdir()) == ['gnd_rtiny.pkl', 'jpg']
    with open(fixture/'gnd_rtiny.pkl', 'rb') as f: raw = pickle.load(f)
    assert sorted(raw) == ['gnd', 'imlist', 'qimlist'] and len(raw['gnd']) == len(raw['qimlist']) == 6
    assert all(sorted(g) == ['bbx', 'easy', 'hard', 'junk'] for g in raw['gnd'])
    ds = load_revisited(fixture)
    assert ds.name == 'rtiny' and len(ds.index) == len(raw['imlist'])
    assert ds.queries.bbox.tolist() == [tuple(map(float, g['bbx'])) for g in raw['gnd']]
    for g in ds.gnd['gnd']:
        assert len(g['easy']) >= 1 and not set(g['easy']) & set(g['hard']) and not set(g['junk']) & set(g['easy'])
    assert revisited_fixture(fixture, 'synth:tiny') == fixture               # present: skipped


def test_distractors_join_the_database(fixture, tmp_path):
    r1m = tmp_path/'revisitop1m'
    (r1m/'jpg'/'00').mkdir(parents=True)
    (r1m/'revisitop1m.txt').write_text('00/d1.jpg\n00/d2.jpg\n00/d3.jpg\n')
    assert read_distractors(r1m).id.tolist() == ['00/d1', '00/d2', '00/d3']
    assert read_distractors(r1m, limit=2).path.tolist() == [str(r1m/'jpg'/'00'/'d1.jpg'), str(r1m/'jpg'/'00'/'d2.jpg')]
    ds = load_revisited(fixture, distractors=r1m, n_distractors=2)
    assert ds.index.id.tolist()[-2:] == ['00/d1', '00/d2']


def test_benchmark_crops_queries_and_agrees_with_the_cli(fixture, bench_run):
    from landmarks.features import read_features
    out, js = bench_run
    d = json.loads(js.read_text())
    ds = load_revisited(fixture)
    sub = read_submission(d['submission'], 'retrieval')
    assert set(sub) <= set(ds.gnd['qimlist'])
    assert all(set(v) <= set(ds.gnd['imlist']) for v in sub.values())
    assert d['scores'] == revisited_map(revisited_ranking(sub, ds.gnd), ds.gnd)
    # the query store holds crops: its image sizes are the boxes', rounded as PIL rounds them
    q_store = next(p for p in (out/'work'/'features').glob('*-queries-sift*.h5'))
    feats = read_features(q_store)
    for q, box in zip(ds.queries.id, ds.queries.bbox):
        w, h = Image.open(fixture/'jpg'/f'{q}.jpg').size
        x1, y1, x2, y2 = (round(v) for v in box)
        assert tuple(feats[q]['image_size']) == (min(h, y2) - max(0, y1), min(w, x2) - max(0, x1))
        assert (min(h, y2) - max(0, y1)) < h
    r = _cli('evaluate', '--protocol', 'revisited', '--gnd', fixture/'gnd_rtiny.pkl', '--predictions', d['submission'],
             '--json', out/'cli.json')
    assert r.returncode == 0, r.stderr
    assert json.loads((out/'cli.json').read_text()) == d['scores']
    assert revisited_benchmark(fixture, out, 'sift', 'kdtree', 100, progress=False, max_features=200) == js   # cached


def test_retrieve_cli_takes_a_revisited_folder(fixture, bench_run):
    out, _ = bench_run
    r = _cli('retrieve', '--index', fixture, '--queries', fixture, '--out', out/'cli-sub.csv', '--work-dir', out/'work',
             '--max-features', 200)
    assert r.returncode == 0, r.stderr
    ds = load_revisited(fixture)
    sub = read_submission(out/'cli-sub.csv', 'retrieval')
    assert set(sub) <= set(ds.gnd['qimlist']) and sub
    assert all(set(v) <= set(ds.gnd['imlist']) for v in sub.values())


def test_published_table_and_our_row(bench_run):
    _, js = bench_run
    t = revisited_table({'roxford5k': js, 'rparis6k': None})
    assert t.method.tolist()[:2] == ['DELF-ASMK*+SP', 'DELG+GV']
    pub = PUBLISHED_REVISITED.set_index('method')
    assert pub.loc['DELG+GV', ['roxford5k_medium', 'roxford5k_hard', 'rparis6k_medium', 'rparis6k_hard']].tolist() == \
        [81.2, 64.0, 87.2, 72.8]
    d = json.loads(js.read_text())
    assert t.roxford5k_hard.iloc[-1] == pytest.approx(100 * d['scores']['hard']['mAP'])


# ---------------------------------------------------------------- download on the loopback server
def _jpeg(seed):
    rng = np.random.default_rng(seed)
    b = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (40, 56, 3), dtype=np.uint8)).save(b, 'JPEG')
    return b.getvalue()


def _tgz(members):
    b = io.BytesIO()
    with tarfile.open(fileobj=b, mode='w:gz') as tf:
        for k, (name, data) in enumerate(members):
            info = tarfile.TarInfo(name)
            if data is None:
                info.type, info.linkname = tarfile.SYMTYPE, '/etc/passwd'
                tf.addfile(info)
                continue
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return b.getvalue()


def _paris_files():
    "rparis6k as distributed: two archives with one folder per landmark, and the gnd pickle (numpy arrays)."
    names = [f'paris_{lm}_{k:06d}' for lm in ('louvre', 'eiffel') for k in range(3)]
    a1 = _tgz([(f'paris/louvre/{n}.jpg', _jpeg(k)) for k, n in enumerate(names[:3])] + [('paris/link.jpg', None)])
    a2 = _tgz([(f'paris/eiffel/{n}.jpg', _jpeg(9 + k)) for k, n in enumerate(names[3:])] + [('../../up.jpg', _jpeg(7))])
    gnd = [dict(easy=np.array([0, 1]), hard=np.array([], np.int64), junk=np.array([2]),
                bbx=np.array([1., 1., 30., 20.])),
           dict(easy=np.array([3]), hard=np.array([2]), junk=np.array([], np.int64), bbx=np.array([0., 0., 56., 40.]))]
    cfg = dict(imlist=names[1:3] + names[4:] + ['up'], qimlist=[names[0], names[3]], gnd=gnd)
    files = {f'/vgg/{rel}': data for rel, data in zip(REVISITED_IMAGES['rparis6k'], (a1, a2))}
    return files | {'/gnd/rparis6k/gnd_rparis6k.pkl': pickle.dumps(cfg, protocol=2)}, cfg


def test_download_revisited_resumes_after_a_failed_archive(tmp_path):
    files, cfg = _paris_files()
    second = f"/vgg/{REVISITED_IMAGES['rparis6k'][1]}"
    with LoopbackServer(files, faults={second: 404}) as srv:
        with pytest.raises(DownloadError, match='404'):
            download_revisited('rparis6k', tmp_path, image_url=srv.url('vgg'), gnd_url=srv.url('gnd'), **FAST)
        assert not (tmp_path/'rparis6k'/'jpg').exists()
        srv.faults.clear()
        out = download_revisited('rparis6k', tmp_path, image_url=srv.url('vgg'), gnd_url=srv.url('gnd'), **FAST)
        fetched = [p for p, *_ in srv.log]
    assert fetched.count('/gnd/rparis6k/gnd_rparis6k.pkl') == 1                      # kept from the first run
    assert fetched.count(f"/vgg/{REVISITED_IMAGES['rparis6k'][0]}") == 1
    assert sorted(p.stem for p in (out/'jpg').iterdir()) == sorted(cfg['imlist'] + cfg['qimlist'])
    assert not any(p.is_symlink() for p in (out/'jpg').iterdir())
    assert not (tmp_path/'up.jpg').exists() and not (tmp_path.parent/'up.jpg').exists()
    ds = load_revisited(out)
    assert ds.name == 'rparis6k' and ds.queries.bbox.tolist() == [(1., 1., 30., 20.), (0., 0., 56., 40.)]


def test_download_cli_refuses_an_unsafe_gnd(tmp_path):
    class Evil:
        def __reduce__(self): return (os.system, ('true',))
    files, _ = _paris_files()
    files['/gnd/roxford5k/gnd_roxford5k.pkl'] = pickle.dumps(dict(imlist=[], qimlist=[], gnd=[Evil()]))
    with LoopbackServer(files) as srv:
        with pytest.raises(ValueError, match=r'gnd_roxford5k\.pkl: refused to load posix\.system'):
            download_cli(['roxford5k', '--root', str(tmp_path), '--image_url', srv.url('vgg'),
                          '--gnd_url', srv.url('gnd'), '--quiet'])
    assert not (tmp_path/'roxford5k'/'gnd_roxford5k.pkl').exists()


# ---------------------------------------------------------------- GLD v2 as released
REC = """id,landmarks,Usage
0000000000000001,10,Public
0000000000000002,20 21,Public
0000000000000003,,Public
0000000000000004,30,Private
0000000000000005,,Private
0000000000000006,,Ignored
"""
RET = """id,images,Usage
00000000000000a1,f000000000000001 f000000000000002,Public
00000000000000a2,f000000000000003,Private
00000000000000a3,None,Ignored
"""


def test_gld_v2_scores_on_the_released_layout(tmp_path):
    (tmp_path/'recognition_solution_v2.1.csv').write_text(REC)
    (tmp_path/'retrieval_solution_v2.1.csv').write_text(RET)
    (tmp_path/'rec.csv').write_text('id,landmarks\n0000000000000001,10 0.9\n0000000000000002,21 0.5\n'
                                    '0000000000000003,10 0.8\n0000000000000004,31 0.7\n0000000000000005,40 0.95\n'
                                    '0000000000000006,1 0.99\n')
    (tmp_path/'ret.csv').write_text('id,images\n00000000000000a1,f000000000000002 f000000000000009 f000000000000001\n'
                                    '00000000000000a2,f000000000000009 f000000000000003\n'
                                    '00000000000000a3,f000000000000001\n')
    t = gld_v2_scores(tmp_path, recognition=tmp_path/'rec.csv', retrieval=tmp_path/'ret.csv').set_index('task')
    # Public GAP: 1 (0.9, right) 1/1; 3 (0.8, a non-landmark image: wrong); 2 (0.5, right) 2/3; over 2 landmark images
    assert t.loc['recognition', 'Public'] == pytest.approx((1 + 2/3) / 2, abs=1e-12)
    assert t.loc['recognition', 'Private'] == 0.0
    # Public mAP@100: a1 hits at ranks 1 and 3: (1/1 + 2/3) / 2; Private: a2 hit at rank 2: 1/2
    assert t.loc['retrieval', 'Public'] == pytest.approx((1 + 2/3) / 2, abs=1e-12)
    assert t.loc['retrieval', 'Private'] == pytest.approx(0.5, abs=1e-12)
    assert check_gld_v2_solution(tmp_path/'retrieval_solution_v2.1.csv', 'retrieval') == \
        {'Public': 1, 'Private': 1, 'Ignored': 1}


@pytest.mark.parametrize('text, where', [
    (RET.replace('id,images,Usage', 'id,images'), "header 'id,images'"),
    (RET.replace('00000000000000a2', '00000000000000A2'), 'line 3'),
    (RET.replace('None,Ignored', 'None,Private'), 'line 4'),
    (RET.replace('f000000000000003,Private', 'f000000000000003,Hidden'), 'line 3, column 3 (Usage)'),
])
def test_gld_v2_solution_layout_errors_say_where(tmp_path, text, where):
    (tmp_path/'retrieval_solution_v2.1.csv').write_text(text)
    with pytest.raises(ValueError) as e:
        check_gld_v2_solution(tmp_path/'retrieval_solution_v2.1.csv', 'retrieval')
    assert where in str(e.value) and 'retrieval_solution_v2.1.csv' in str(e.value)


def test_bench_profile_is_declared():
    from landmarks.runner import check_profile, load_profiles, notebook_parameters, profile_params, stages
    profs, nbs = load_profiles(), stages()
    check_profile(profs, 'bench', nbs)
    p = profile_params(profs, 'bench', '08a_benchmarks')
    assert p['revisited'] == ['roxford5k', 'rparis6k'] and p['profile'] == 'bench'
    declared = notebook_parameters(next(n for n in nbs if n.stem == '08a_benchmarks'))
    assert declared['revisited'] == [] and 'revisited_dir' in declared
