"""`landmarks organize` (07c) through the real dispatcher on flat folders of SynthLandmarks photos with names that say
nothing: every photo listed once, reruns extract and match only new photos and keep group numbers, labelled photos
name the groups, and index.html renders in a real browser (headless chromium, installed by tools/ensure_chromium.sh)."""
import landmarks  # noqa: F401
import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from landmarks.cli import main
from landmarks.data import dataset_root, load_gld

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope='module')
def photos(tmp_path_factory):
    "30 training photos of synth:tiny's three largest landmarks, then 6 more, as flat folders; and their truth."
    d = tmp_path_factory.mktemp('org')
    g = load_gld(dataset_root('synth:tiny', d / 'data', progress=False))
    big = g.train.landmark_id.value_counts().index[:3]
    pick = g.train[g.train.landmark_id.isin(big)].sample(frac=1, random_state=0).head(36)
    names = [hashlib.sha1(i.encode()).hexdigest()[:8] + '.jpg' for i in pick.id]
    truth = dict(zip(names, pick.landmark_id))
    return d, list(zip(names, pick.path)), truth, g


def _link(folder, items):
    folder.mkdir(parents=True, exist_ok=True)
    for name, path in items:
        if not (folder / name).exists(): os.symlink(path, folder / name)


def _organize(photos, out, *extra):
    main(['organize', str(photos), '--out', str(out), '--max-features', '200', '--image-size', '0', *map(str, extra)])
    return pd.read_csv(out / 'groups.csv', dtype={'image': str})


def test_every_photo_once_and_incremental(photos, caplog):
    d, items, truth, _ = photos
    folder, out = d / 'flat', d / 'out'
    _link(folder, items[:30])
    caplog.set_level(logging.DEBUG, logger='landmarks.delf')
    first = _organize(folder, out)
    assert list(first.columns) == ['image', 'group', 'confidence']
    assert sorted(first.image) == sorted(n for n, _ in items[:30])       # every photo exactly once
    assert sum('extracted' in r.getMessage() for r in caplog.records) == 30
    assert (first.group >= 0).sum() >= 10 and first.group.max() >= 1
    assert first.confidence.between(0, 1).all() and (first.confidence[first.group < 0] == 0).all()
    linked = list((out / 'groups').rglob('*.jpg'))
    assert len(linked) == 30 and all(p.is_symlink() for p in linked)
    edges_before = pd.read_csv(out / 'work' / 'edges.csv', dtype={'a': str, 'b': str})

    caplog.clear()
    _link(folder, items[30:])                                               # six new photos
    second = _organize(folder, out)
    new = sorted(n for n, _ in items[30:])
    assert sum('extracted' in r.getMessage() for r in caplog.records) == 6  # only the new photos are extracted ...
    state = json.loads((out / 'work' / 'edges.json').read_text())
    assert sorted(state['last_run']) == new                                 # ... and queried
    edges = pd.read_csv(out / 'work' / 'edges.csv', dtype={'a': str, 'b': str})
    old = edges[~edges.a.isin(new)].reset_index(drop=True)
    pd.testing.assert_frame_equal(old, edges_before)                        # old photos' matches untouched
    assert sorted(second.image) == sorted(truth)
    before = {g: set(m.image) for g, m in first[first.group >= 0].groupby('group')}
    after = {g: set(m.image) for g, m in second[second.group >= 0].groupby('group')}
    for g, m in before.items():                                             # unchanged groups keep their numbers
        if m in after.values(): assert after.get(g) == m, (g, m, after)
    grown = [g for g, m in before.items() if g in after and m <= after[g]]  # a grown group keeps its number too
    assert grown, (before, after)

    caplog.clear()
    mtime = (out / 'work' / 'edges.csv').stat().st_mtime
    third = _organize(folder, out)                                          # nothing new: nothing recomputed
    assert not any('extracted' in r.getMessage() for r in caplog.records)
    assert (out / 'work' / 'edges.csv').stat().st_mtime == mtime
    pd.testing.assert_frame_equal(third, second)


def test_quality_beats_chance(photos):
    from landmarks.organize import pairwise_scores
    d, items, truth, _ = photos
    g = pd.read_csv(d / 'out' / 'groups.csv', dtype={'image': str}) if (d / 'out' / 'groups.csv').exists() else None
    if g is None:
        _link(d / 'flat', items)
        g = _organize(d / 'flat', d / 'out')
    s = pairwise_scores(dict(zip(g.image, g.group)), {k: int(v) for k, v in truth.items()})
    assert s['precision'] > 0.6 and s['ari'] > 0.2, s


def test_labelled_names_and_copy(photos, tmp_path):
    d, items, truth, g = photos
    folder = tmp_path / 'flat'
    _link(folder, items[:24])
    used = {Path(p).resolve() for _, p in items}
    lab = tmp_path / 'labelled'
    for lm, rows in g.train[g.train.landmark_id.isin(set(truth.values()))].groupby('landmark_id'):
        for r in rows.itertuples():
            if Path(r.path).resolve() in used: continue                     # labelled photos are other photos
            (lab / f'place{lm}').mkdir(parents=True, exist_ok=True)
            shutil.copy(r.path, lab / f'place{lm}' / f'{r.id}.jpg')
    out = tmp_path / 'out'
    res = _organize(folder, out, '--labelled', lab, '--copy')
    assert list(res.columns) == ['image', 'group', 'confidence', 'name']
    named = res[(res.group >= 0) & res.name.notna()]
    assert len(named), res
    right = [n == f'place{truth[i]}' for i, n in zip(named.image, named.name)]
    assert np.mean(right) > 0.6, named
    for n in set(named.name): assert (out / 'groups' / n).is_dir() or any((out / 'groups').glob(f'{n}-*'))
    files = list((out / 'groups').rglob('*.jpg'))
    assert len(files) == 24 and not any(p.is_symlink() for p in files)   # --copy: real files


def test_bad_input_errors(tmp_path, capsys):
    cmd = [sys.executable, '-m', 'landmarks.cli', 'organize', str(tmp_path / 'nope'), '--out', str(tmp_path / 'o')]
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert r.returncode != 0 and 'nope' in r.stderr.strip().splitlines()[-1]
    assert 'Traceback' not in r.stderr
    (tmp_path / 'empty').mkdir()
    with pytest.raises(SystemExit) as e:                       # the command's one-line error, exit status 2
        main(['organize', str(tmp_path / 'empty'), '--out', str(tmp_path / 'o')])
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and len(err) == 1 and 'no jpg' in err[0]
    with pytest.raises(ValueError, match='no jpg'):             # --debug: the exception itself
        main(['organize', str(tmp_path / 'empty'), '--out', str(tmp_path / 'o'), '--debug'])


def test_index_html_in_chromium(photos, tmp_path):
    "index.html opens in headless chromium: every group's section is in the rendered page; a screenshot is drawn."
    d, items, _, _ = photos
    out = d / 'out'
    if not (out / 'index.html').exists():
        _link(d / 'flat', items)
        _organize(d / 'flat', out)
    r = subprocess.run(['bash', str(ROOT / 'tools' / 'ensure_chromium.sh')], capture_output=True, text=True)
    if r.returncode != 0: pytest.skip(f'no chromium: {r.stderr.strip()}')
    chromium = r.stdout.strip().splitlines()[-1]
    flags = ['--headless', '--no-sandbox', '--disable-gpu', f'--user-data-dir={tmp_path / "profile"}']
    url = (out / 'index.html').resolve().as_uri()
    dom = subprocess.run([chromium, *flags, '--dump-dom', url], capture_output=True, text=True, timeout=300).stdout
    groups = pd.read_csv(out / 'groups.csv')
    for g in set(groups.group):
        assert f'id="group-{g}"' in dom, g
    n_img = dom.count('<img')
    assert n_img >= len(groups) + (groups.group >= 0).any()                 # every thumbnail and a pair figure
    shot = tmp_path / 'shot.png'
    subprocess.run([chromium, *flags, f'--screenshot={shot}', '--window-size=1200,2000', url], capture_output=True,
                   timeout=300)
    im = np.asarray(Image.open(shot).convert('L'), np.float32)
    assert im.shape == (2000, 1200) and im.std() > 10                        # drawn, not a blank page


@pytest.mark.parametrize('backend', ['delf', 'delf-tfhub'])
def test_delf_backends(photos, tmp_path, backend):
    "`--features delf` (a train_delf-format checkpoint) and `--features delf-tfhub` (a SavedModel with TF-Hub DELF's"
    " signature) run the same command: every photo once, and the feature store records the backend."
    import torch
    from landmarks.delf import DELF, save_delf, save_tiny_tfhub_delf
    from landmarks.features import feature_settings
    d, items, _, _ = photos
    folder = tmp_path / 'flat'
    _link(folder, items[:12])
    if backend == 'delf':
        torch.manual_seed(0)
        model = save_delf(DELF('resnet18', 4, 16), tmp_path / 'delf_resnet18.pt', {str(i): i for i in range(4)})
    else:
        model = save_tiny_tfhub_delf(tmp_path / 'hub')
    out = tmp_path / 'out'
    main(['organize', str(folder), '--out', str(out), '--features', backend, '--model', str(model),
          '--image-size', '128'])
    groups = pd.read_csv(out / 'groups.csv', dtype={'image': str})
    assert sorted(groups.image) == sorted(n for n, _ in items[:12])
    assert groups.group.ge(-1).all() and groups.confidence.between(0, 1).all()
    stores = list((out / 'work').rglob('*.h5'))
    assert stores, 'no feature store written'
    assert {feature_settings(s)['backend'] for s in stores} == {backend}
