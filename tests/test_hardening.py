"""Bad input gets one line and destroys nothing; every command exits 0 on success; caches follow their sources;
work folders and datasets cannot read, write or run anything outside their place (issue 18). Commands run through
the real console entry (`python -m landmarks.cli`)."""
import landmarks  # noqa: F401
import os, pickle, shutil, signal, subprocess, sys, time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from landmarks.cli import main
from landmarks.evaluation import read_submission

ROOT = Path(__file__).resolve().parents[1]
ENV = dict(os.environ, PYTHONPATH=str(ROOT))


def cli(*args, cwd=None):
    "(exit status, stdout, stderr) of `python -m landmarks.cli ARGS`."
    r = subprocess.run([sys.executable, '-m', 'landmarks.cli', *map(str, args)], capture_output=True, text=True,
                       env=ENV, cwd=cwd, timeout=300)
    return r.returncode, r.stdout, r.stderr


def run(capsys, *args):
    "(exit status, stdout, stderr) of `main(ARGS)` in this process: the function the console script calls."
    try: code = main([str(a) for a in args])
    except SystemExit as e: code = e.code
    out = capsys.readouterr()
    return code or 0, out.out, out.err


def one_line_error(code, err):
    "A failure as the user must see it: non-zero exit, exactly one line on stderr, no traceback."
    assert code not in (0, None), err
    assert 'Traceback' not in err and len(err.strip().splitlines()) == 1, err


@pytest.fixture(scope='module')
def work(tmp_path_factory):
    "A tiny SynthLandmarks dataset made by the CLI, and a photo folder built from it."
    d = tmp_path_factory.mktemp('harden')
    args = ['--landmarks', '3', '--size', '64', '--train', '9', '--index', '6', '--test', '4', '--workers', '1']
    assert main(['synth', str(d / 'ds'), *args]) is None           # the console script exits with what main returns
    from landmarks.data import load_gld
    g = load_gld(d / 'ds')
    photos = d / 'photos'
    for r in g.train.itertuples():
        (photos / f'lm{r.landmark_id}').mkdir(parents=True, exist_ok=True)
        shutil.copy(r.path, photos / f'lm{r.landmark_id}' / f'{r.id}.jpg')
    return d, g, photos


def test_every_command_exits_0(work):
    "retrieve, recognize --by-retrieval and evaluate exit 0 (synth: the fixture; extract: below)."
    d, g, photos = work
    sub = d / 'sub.csv'
    for args in (('retrieve', '--index', d / 'ds', '--queries', d / 'ds', '--out', sub, '--work_dir', d / 'w',
                  '--max_features', 100),
                 ('recognize', '--by-retrieval', '--index', d / 'ds', '--queries', d / 'ds', '--out', d / 'rec.csv',
                  '--work_dir', d / 'w', '--max_features', 100),
                 ('evaluate', '--solution', d / 'ds' / 'recognition_solution.csv', '--predictions', d / 'rec.csv')):
        code, out, err = cli(*args)
        assert code == 0, (args, err[-2000:])


def test_help_exits_0(capsys):
    for args in (('download', '--help'), ('synth', '--help'), ('evaluate', '--help'), ('--help',)):
        code, out, err = run(capsys, *args)
        assert code == 0 and 'usage' in out, (args, err)


BAD = [  # (arguments, what the one line must name)
    (['retrieve', '--index', '{d}/ds', '--queries', '{d}/ds', '--k', '0'], '--k=0'),
    (['retrieve', '--index', '{d}/ds', '--queries', '{d}/ds', '--k', '-1'], '--k=-1'),
    (['retrieve', '--index', '{d}/ds', '--queries', '{d}/ds', '--k', '1000000'], '--k=1000000'),
    (['retrieve', '--index', '{d}/ds', '--queries', '{d}/ds', '--max-distance', '-1'], '--max-distance=-1.0'),
    (['retrieve', '--index', '{d}/ds', '--queries', '{d}/ds', '--k', 'ten'], "invalid int value: 'ten'"),
    (['retrieve', '--index', '{d}/nope', '--queries', '{d}/ds'], 'nope'),
    (['recognize', '--by-retrieval', '--index', '{d}/ds', '--queries', '{d}/ds', '--labels', '{d}/no.csv'], '--labels'),
    (['synth', '{d}/s1', '--landmarks', '0'], '--landmarks=0'),
    (['synth', '{d}/s1', '--landmarks', '-3'], '--landmarks=-3'),
    (['synth', '{d}/s1', '--size', '0'], '--size=0'),
    (['synth', '{d}/s1', '--landmarks', '4', '--train', '2'], '--train=2'),
    (['extract', '--images', '{d}/photos', '--out', '{d}/x.h5', '--features', 'surf'], '--features'),
    (['extract', '--images', '{d}/photos', '--out', '{d}/x.h5', '--batch-size', '0'], '--batch-size=0'),
    (['extract', '--images', '{d}/photos', '--out', '{d}/x.h5', '--splits', 'val'], '--splits'),
    (['evaluate', '--solution', '{d}/nope.csv', '--predictions', '{d}/nope.csv'], 'nope.csv'),
    (['evaluate', '--solution', '{d}/ds/recognition_solution.csv', '--predictions', '{d}/latin1.csv'], 'not UTF-8'),
    (['evaluate', '--solution', '{d}/ds/recognition_solution.csv', '--predictions', '{d}/unknown.csv'], 'unknown.csv'),
    (['download', 'gld-v9'], 'unknown source'),
    (['download', 'gld-v2', '--workers', 'x'], "invalid int value: 'x'"),
    (['nosuch'], "unknown command 'nosuch'"),
]


def test_bad_input_one_line(work, capsys):
    "In process (the same `main` the console script runs): exit 2, one line naming the parameter, nothing made."
    d, g, photos = work
    (d / 'latin1.csv').write_bytes('id,landmarks\nimg\xe9,1 0.5\n'.encode('latin-1'))
    (d / 'unknown.csv').write_text('id,landmarks\nnot-a-test-id,1 0.5\n')
    before = sorted(p.name for p in d.iterdir())
    for args, name in BAD:
        with pytest.raises(SystemExit) as e: main([a.format(d=d) for a in args])
        err = capsys.readouterr().err
        one_line_error(e.value.code, err)
        assert name in err, (args, err)
    assert sorted(p.name for p in d.iterdir()) == before          # no .partial, no .lock, no output


TRAIN_BAD = [  # `landmarks train` / `recognize` options checked before any work
    (['train', '{d}/ds', '{d}/t', '--arch', 'vgg16'], '--arch'),
    (['train', '{d}/ds', '{d}/t', '--mode', 'half'], '--mode'),
    (['train', '{d}/ds', '{d}/t', '--weights', '{d}/missing.pt'], '--weights'),
    (['train', '{d}/ds', '{d}/t', '--epochs', '0'], '--epochs'),
    (['train', '{d}/ds', '{d}/t', '--image_size', '64', '--crop_size', '96'], '--crop_size'),
    (['train', '{d}/ds', '{d}/t', '--lr', '-0.1'], '--lr'),
    (['train', '{d}/ds', '{d}/t', '--momentum', '1.5'], '--momentum'),
    (['recognize', '{d}/missing.pt', '{d}/ds', '{d}/sub.csv'], 'checkpoint'),
]


def test_train_and_recognize_check_options(work, capsys):
    "train and recognize refuse bad options with one line naming the option, and write nothing."
    d, g, photos = work
    before = sorted(p.name for p in d.iterdir())
    for args, name in TRAIN_BAD:
        code, out, err = run(capsys, *[a.format(d=d) for a in args])
        one_line_error(code, err)
        assert name in err, (args, err)
    assert sorted(p.name for p in d.iterdir()) == before


def test_bad_input_console(work):
    "The same through the console entry: `retrieve --k 0`."
    d, g, photos = work
    code, out, err = cli('retrieve', '--index', d / 'ds', '--queries', d / 'ds', '--k', 0)
    one_line_error(code, err)
    assert '--k=0' in err


def test_synth_overwrite_keeps_a_foreign_folder(tmp_path, capsys):
    thesis = tmp_path / 'thesis'
    (thesis / 'photos').mkdir(parents=True)
    (thesis / 'thesis.tex').write_text('years of work')
    (thesis / 'photos' / 'a.jpg').write_bytes(b'\xff\xd8 not much')
    code, out, err = run(capsys, 'synth', thesis, '--overwrite', '--landmarks', 3, '--size', 64, '--workers', 1)
    one_line_error(code, err)
    assert sorted(str(p.relative_to(thesis)) for p in thesis.rglob('*')) == ['photos', 'photos/a.jpg', 'thesis.tex']
    assert (thesis / 'thesis.tex').read_text() == 'years of work'
    assert sorted(p.name for p in tmp_path.iterdir()) == ['thesis']   # and nothing beside it


def test_truncated_jpeg_is_skipped_and_named(work, tmp_path):
    d, g, photos = work
    mine = tmp_path / 'photos'
    shutil.copytree(photos, mine)
    first = sorted(mine.rglob('*.jpg'))[0]
    data = first.read_bytes()
    (first.parent / 'cut.jpg').write_bytes(data[:len(data) // 2])
    (first.parent / 'zero.jpg').write_bytes(b'')
    code, out, err = cli('extract', '--images', mine, '--out', tmp_path / 'f.h5', '--features', 'sift',
                         '--max_features', 50, '--workers', 0)
    assert code == 0, err
    cut, zero = (f'{first.parent.name}/{n}' for n in ('cut', 'zero'))
    assert cut in out and 'skipped 2' in out, out
    report = pd.read_csv(f'{tmp_path}/f.h5.skipped.csv')
    assert sorted(report.id) == sorted([cut, zero]) and report.reason.str.len().min() > 10

def test_strict_makes_unreadable_images_errors(work, tmp_path, capsys):
    d, g, photos = work
    mine = tmp_path / 'photos'
    shutil.copytree(photos, mine)
    (sorted(mine.iterdir())[0] / 'zero.jpg').write_bytes(b'')
    code, out, err = run(capsys, 'extract', '--images', mine, '--out', tmp_path / 'g.h5', '--features', 'sift',
                         '--workers', 0, '--strict')
    one_line_error(code, err)
    assert 'zero.jpg' in err, err


def test_no_pickle_of_project_caches():
    hits = [f'{p.name}:{n}' for p in (ROOT / 'landmarks').glob('*.py') if p.name != '_modidx.py'
            for n, line in enumerate(p.read_text().splitlines(), 1) if 'pickle.load' in line]
    assert hits == [], hits


class _Boom:
    "A pickle that, when loaded, would create a file."
    def __init__(self, path): self.path = str(path)
    def __reduce__(self): return (Path.touch, (Path(self.path),))


def test_planted_pickle_never_runs(work, tmp_path, capsys):
    "A kdtree.pkl planted in the work folder is never loaded (and a rerun still succeeds)."
    d, g, photos = work
    wd = tmp_path / 'w'
    args = ('retrieve', '--index', photos, '--queries', photos, '--out', tmp_path / 's.csv', '--work_dir', wd,
            '--max_features', 50)
    assert run(capsys, *args)[0] == 0
    pwned = tmp_path / 'pwned'
    for folder in (wd / 'index').iterdir():
        (folder / 'kdtree.pkl').write_bytes(pickle.dumps(_Boom(pwned)))
    code, out, err = run(capsys, *args)
    assert code == 0, err
    assert not pwned.exists()


def test_feature_cache_follows_the_folder(work, tmp_path, capsys):
    "A photo removed from the folder no longer comes back, as a query or as a result."
    d, g, photos = work
    mine = tmp_path / 'photos'
    shutil.copytree(photos, mine)
    args = ('retrieve', '--index', mine, '--queries', mine, '--out', tmp_path / 's.csv', '--work_dir', tmp_path / 'w',
            '--max_features', 50)
    assert run(capsys, *args)[0] == 0
    gone = sorted(mine.rglob('*.jpg'))[0]
    gone_id = f'{gone.parent.name}/{gone.stem}'
    assert gone_id in read_submission(tmp_path / 's.csv', task='retrieval')
    gone.unlink()
    assert run(capsys, *args)[0] == 0
    preds = read_submission(tmp_path / 's.csv', task='retrieval')
    assert gone_id not in preds and all(gone_id not in v for v in preds.values())


def test_ids_cannot_leave_the_dataset(work, tmp_path, capsys):
    "An id like ../../x in a dataset CSV is refused, naming the file and line; train_val_split writes nothing outside."
    d, g, photos = work
    evil = tmp_path / 'evil'
    shutil.copytree(d / 'ds', evil)
    idx = (evil / 'index.csv').read_text().splitlines()
    (evil / 'index.csv').write_text('\n'.join(idx[:2] + ['../../../../etc/hostname'] + idx[2:]) + '\n')
    code, out, err = run(capsys, 'extract', '--images', evil, '--out', tmp_path / 'f.h5', '--features', 'sift',
                         '--workers', 0)
    one_line_error(code, err)
    assert 'index.csv, line 3' in err and 'not an image id' in err, err
    from landmarks.data import train_val_split
    bad = pd.DataFrame({'id': ['../../x'], 'landmark_id': [1], 'path': [str(g.train.path.iloc[0])]})
    with pytest.raises(ValueError, match='not an image id'): train_val_split(bad, copies_dir=tmp_path / 'copies')
    assert not (tmp_path / 'copies').exists() and not (tmp_path.parent / 'x_copy.jpg').exists()


def test_truncated_store_names_the_file(work, tmp_path, capsys):
    d, g, photos = work
    assert run(capsys, 'extract', '--images', photos, '--out', tmp_path / 'f.h5', '--features', 'sift', '--workers', 0,
               '--max_features', 50)[0] == 0
    data = (tmp_path / 'f.h5').read_bytes()
    (tmp_path / 'cut.h5').write_bytes(data[:len(data) // 2])
    for args in (('retrieve', '--index', tmp_path / 'cut.h5', '--queries', tmp_path / 'cut.h5',
                  '--out', tmp_path / 's.csv', '--work_dir', tmp_path / 'w'),
                 ('extract', '--images', photos, '--out', tmp_path / 'cut.h5', '--features', 'sift', '--workers', 0)):
        code, out, err = run(capsys, *args)
        one_line_error(code, err)
        assert 'cut.h5' in err, err


def _children(pid):
    "Pids whose parent is `pid`."
    out = []
    for p in Path('/proc').iterdir():
        if not p.name.isdigit(): continue
        try: stat = (p / 'stat').read_text()
        except OSError: continue
        if int(stat.rsplit(')', 1)[1].split()[1]) == pid: out.append(int(p.name))
    return out


def _alive(pid):
    try: state = Path(f'/proc/{pid}/stat').read_text().rsplit(')', 1)[1].split()[0]
    except OSError: return False
    return state != 'Z'


@pytest.mark.skipif(not sys.platform.startswith('linux'), reason='parent-death signal is Linux only')
def test_killed_extract_leaves_no_loader(tmp_path):
    "SIGKILL of `extract` takes its DataLoader workers with it."
    photos = tmp_path / 'photos' / 'lm'
    photos.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(40):
        Image.fromarray(rng.integers(0, 255, (512, 512, 3), dtype=np.uint8)).save(photos / f'{i:03d}.jpg')
    p = subprocess.Popen([sys.executable, '-m', 'landmarks.cli', 'extract', '--images', str(tmp_path / 'photos'),
                          '--out', str(tmp_path / 'f.h5'), '--features', 'sift', '--workers', '2', '--batch_size', '1'],
                         env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        kids, t = [], time.monotonic()
        while len(kids) < 2 and p.poll() is None and time.monotonic() - t < 120:
            kids = [k for k in _children(p.pid) if _alive(k)]
            time.sleep(0.02)
        if len(kids) < 2: pytest.skip('the run ended before its loader workers could be seen')
    finally: os.kill(p.pid, signal.SIGKILL)
    p.wait()
    t = time.monotonic()
    while any(_alive(k) for k in kids) and time.monotonic() - t < 4: time.sleep(0.05)   # torch's own check: 5 s
    assert not any(_alive(k) for k in kids), [k for k in kids if _alive(k)]


def test_delf_input_bounded_by_max_side():
    "A photo larger than max_side is shrunk before the pyramid (memory bound); keypoints stay in its own pixels."
    import torch
    from landmarks.delf import DELF, DELFExtractor, demo_image, shrink
    torch.manual_seed(0)
    model = DELF('resnet18')
    im = np.ascontiguousarray(demo_image(512)[:, :384])                          # 512 x 384
    small = DELFExtractor(model, scales=[1.0], max_side=128, amp='fp32')
    big = DELFExtractor(model, scales=[1.0], max_side=4096, amp='fp32')
    assert small.settings['max_side'] == 128 and big.settings['max_side'] == 4096   # another bound, another store
    assert shrink(im, small.max_side).shape[:2] == (128, 96)
    f_small, f_big = small([im])[0], big([im])[0]
    assert 0 < len(f_small['locations']) < len(f_big['locations'])               # fewer cells: the image was shrunk
    for f in (f_small, f_big):
        loc = f['locations']
        assert (loc >= -1).all() and (loc[:, 0] <= im.shape[0]).all() and (loc[:, 1] <= im.shape[1]).all()
    assert f_small['locations'][:, 1].max() > im.shape[1] / 2                   # spread over the whole image
