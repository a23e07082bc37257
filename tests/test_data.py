"""Foundation tests: import order, the SynthLandmarks CLI, the GLD readers."""
import hashlib, os, subprocess, sys
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given, settings, strategies as st

import landmarks  # noqa: F401
from landmarks.data import (DEV_PHOTOS_DIR, DEV_PHOTOS_VAR, GLDFormatError, dev_photos, image_path, load_gld,
                            read_gld_csv, synth_landmarks, train_val_split, zipf_counts)

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def test_import_landmarks_then_tensorflow_then_torch_in_one_process():
    code = ("import landmarks, tensorflow as tf, torchvision, torch\n"
            "m = torchvision.models.resnet18(num_classes=3)\n"
            "opt = torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9)\n"
            "m(torch.randn(2, 3, 32, 32)).sum().backward(); opt.step()\n"
            "x = tf.reduce_sum(tf.ones((2, 2))).numpy(); assert x == 4.0\n"
            "print('ok')\n")
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=300,
                       env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2'))
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip().endswith('ok')


def _digest(root):
    return {str(f.relative_to(root)): hashlib.md5(f.read_bytes()).hexdigest()
            for f in sorted(Path(root).rglob('*')) if f.is_file()}


@pytest.fixture(scope='module')
def synth50(tmp_path_factory):
    "The acceptance command, at a small image size to keep the suite fast, run into two folders."
    d = tmp_path_factory.mktemp('synth')
    outs = []
    for name in ('a', 'b'):
        r = subprocess.run([str(BIN/'landmarks'), 'synth', str(d/name), '--landmarks', '50', '--seed', '1',
                            '--size', '64'], capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stderr[-2000:]
        outs.append(d/name)
    return outs


def test_synth_cli_layout(synth50):
    root = synth50[0]
    for f in ('train.csv', 'index.csv', 'test.csv', 'recognition_solution.csv', 'retrieval_solution.csv'):
        assert (root/f).exists(), f
    g = load_gld(root, strict=True)
    assert g.train.landmark_id.nunique() == 50
    assert all(len(i) == 16 and int(i, 16) >= 0 for i in g.train.id)
    assert (g.train.landmark_id.value_counts() == 1).any(), 'no single-image landmark'
    rec = g.recognition_solution
    assert (rec.landmarks == '').any(), 'no non-landmark test image'
    assert set(rec.Usage) == {'Public', 'Private'}
    for i in rec.id: assert image_path(root, 'test', i).exists()
    ret = g.retrieval_solution
    for s in ret.images[ret.Usage != 'Ignored']:
        for i in s.split(): assert image_path(root, 'index', i).exists()
    assert list(ret.id) == list(rec.id)                   # every test image, as GLD v2.1's retrieval solution
    assert list(ret.Usage == 'Ignored') == list(rec.landmarks == '')
    assert (ret.images[ret.Usage == 'Ignored'] == 'None').all()


def test_synth_cli_is_deterministic_and_skips_when_complete(synth50):
    a, b = synth50
    assert _digest(a) == _digest(b)
    before = {f: f.stat().st_mtime_ns for f in a.rglob('*.jpg')}
    r = subprocess.run([str(BIN/'landmarks'), 'synth', str(a), '--landmarks', '50', '--seed', '1', '--size', '64'],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0
    assert before == {f: f.stat().st_mtime_ns for f in a.rglob('*.jpg')}


def test_synth_resumes_after_kill(tmp_path):
    "A generation killed half-way resumes: the images already written are kept, the result equals a clean run."
    code = ("import os, landmarks.data as d\n"
            "orig = d._render_one; n = [0]\n"
            "def f(a):\n    n[0] += 1\n    orig(a)\n    if n[0] == 30: os._exit(3)\n"
            "d._render_one = f\n"
            f"d.synth_landmarks({str(tmp_path/'k')!r}, n_landmarks=6, n_train=60, n_index=30, n_test=24, size=64, "
            "workers=1, progress=False)\n")
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 3
    assert not (tmp_path/'k').exists() and len(list((tmp_path/'k.partial').rglob('*.jpg'))) == 30
    out = synth_landmarks(tmp_path/'k', n_landmarks=6, n_train=60, n_index=30, n_test=24, size=64, workers=1,
                          progress=False)
    clean = synth_landmarks(tmp_path/'clean', n_landmarks=6, n_train=60, n_index=30, n_test=24, size=64, workers=1,
                            progress=False)
    assert _digest(out) == _digest(clean)


def test_one_wrong_header_character_names_file_and_column(tmp_path):
    (tmp_path/'train.csv').write_text('id,url,landmark_id\n0123456789abcdef,u,3\n')
    (tmp_path/'index.csv').write_text('id\n')
    (tmp_path/'test.csv').write_text('ib\n')
    with pytest.raises(GLDFormatError, match=r"test\.csv, line 1: missing column 'id' \(column 1 is 'ib'\)"):
        load_gld(tmp_path)


@given(n=st.integers(1, 300), extra=st.integers(0, 3000), z=st.floats(0.5, 2.5))
@settings(max_examples=60, deadline=None)
def test_zipf_counts_properties(n, extra, z):
    c = zipf_counts(n, n + extra, z)
    assert len(c) == n and c.sum() == n + extra and c.min() >= 1
    if n > 1: assert (c == 1).any()


@given(ids=st.lists(st.text('0123456789abcdef', min_size=16, max_size=16), min_size=1, max_size=30, unique=True),
       bad=st.integers(0, 29))
@settings(max_examples=40, deadline=None)
def test_read_gld_csv_reports_the_line_of_a_bad_landmark_id(tmp_path_factory, ids, bad):
    f = tmp_path_factory.mktemp('csv')/'train.csv'
    bad = bad % len(ids)
    lines = ['id,url,landmark_id'] + [f'{i},u,{"x7" if k == bad else k}' for k, i in enumerate(ids)]
    f.write_text('\n'.join(lines) + '\n')
    with pytest.raises(GLDFormatError, match=fr'line {bad + 2}, column 3 \(landmark_id\)'):
        read_gld_csv(f, ['id', 'url', 'landmark_id'], int_columns=['landmark_id'])


def test_v1_layout(tmp_path):
    (tmp_path/'train').mkdir()
    (tmp_path/'index').mkdir()
    (tmp_path/'test').mkdir()
    (tmp_path/'train.csv').write_text('id,url,landmark_id\nabc,http://x/abc.jpg,12\n')
    (tmp_path/'index.csv').write_text('id,url\ndef,http://x/def.jpg\n')
    (tmp_path/'test.csv').write_text('id,url\nghi,http://x/ghi.jpg\n')
    (tmp_path/'train'/'abc.jpg').write_bytes(b'x')
    g = load_gld(tmp_path, version=1)
    assert list(g.index.columns) == ['id', 'url', 'path']
    assert len(g.missing) == 2 and set(g.missing.split) == {'index', 'test'}
    assert pd.read_csv(tmp_path/'missing_images.csv').shape[0] == 2


def test_split_needs_copies_dir_for_single_image_classes(tmp_path):
    root = synth_landmarks(tmp_path/'s', n_landmarks=6, n_train=60, n_index=30, n_test=24, size=64, workers=1,
                           progress=False)
    g = load_gld(root)
    with pytest.raises(ValueError, match='copies_dir'):
        train_val_split(g.train)


def _dev_tree(root):
    "A clone beside a shared/ folder that holds the dev photos: root/clone/nbs and root/shared/data/..."
    (root / DEV_PHOTOS_DIR / 'lm').mkdir(parents=True)
    (root / 'clone' / 'nbs').mkdir(parents=True)
    return (root / DEV_PHOTOS_DIR).resolve()


def test_dev_photos_from_the_variable(tmp_path, monkeypatch):
    photos = _dev_tree(tmp_path / 'a')
    monkeypatch.setenv(DEV_PHOTOS_VAR, str(photos))
    monkeypatch.chdir(tmp_path)
    assert dev_photos(required=True, start=tmp_path) == photos  # the variable first, whatever the search would find
    monkeypatch.setenv(DEV_PHOTOS_VAR, str(tmp_path / 'nowhere'))
    with pytest.raises(FileNotFoundError, match=DEV_PHOTOS_VAR):
        dev_photos()


def test_dev_photos_found_upward_from_the_cwd(tmp_path, monkeypatch):
    photos = _dev_tree(tmp_path)
    monkeypatch.delenv(DEV_PHOTOS_VAR, raising=False)
    monkeypatch.chdir(tmp_path / 'clone' / 'nbs')
    assert dev_photos() == photos
    assert dev_photos(start=tmp_path / 'clone') == photos
    assert dev_photos(path='') is None  # an explicit '' skips them


def test_dev_photos_missing(tmp_path, monkeypatch):
    monkeypatch.delenv(DEV_PHOTOS_VAR, raising=False)
    (tmp_path / 'clone').mkdir()
    assert dev_photos(start=tmp_path / 'clone') is None
    with pytest.raises(FileNotFoundError, match=DEV_PHOTOS_VAR) as e:
        dev_photos(required=True, start=tmp_path / 'clone')
    assert '\n' not in str(e.value)
    with pytest.raises(FileNotFoundError, match='path='):
        dev_photos(required=True, path=tmp_path / 'nope')
