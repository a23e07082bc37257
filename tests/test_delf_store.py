"""The feature store survives a kill: a run killed mid-way and restarted stores every image once and recomputes
nothing that was stored."""
import landmarks  # noqa: F401
import collections, signal, subprocess, sys, textwrap, time
from pathlib import Path
import h5py, numpy as np, pandas as pd
from PIL import Image
from landmarks.delf import RootSIFT, demo_image, read_image
from landmarks.features import parts_dir, read_features, stored_ids

N = 24

SCRIPT = textwrap.dedent('''
    import landmarks, logging, sys, time
    import pandas as pd
    from landmarks.delf import RootSIFT, extract_features
    frame_csv, h5, logfile, delay = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
    logging.basicConfig(filename=logfile, level=logging.DEBUG, format='%(message)s')
    class Slow(RootSIFT):
        "Real RootSIFT, slowed down so that the kill lands mid-run."
        def __call__(self, images):
            time.sleep(delay)
            return super().__call__(images)
    extract_features(pd.read_csv(frame_csv), h5, Slow(max_features=200), batch_size=2, workers=1, progress=False)
''')


def _frame(d: Path) -> Path:
    rows = []
    for i in range(N):
        p = d/'img'/f'{i:02d}.png'
        p.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(demo_image(80, i)).save(p)
        rows.append((f'id{i:02d}', str(p)))
    pd.DataFrame(rows, columns=['id', 'path']).to_csv(d/'frame.csv', index=False)
    return d/'frame.csv'


def _logged(logfile: Path, what: str) -> list:
    return ([l.split(' ', 1)[1] for l in logfile.read_text().splitlines() if l.startswith(what + ' ')]
            if logfile.exists() else [])


def _shard_ids(h5: Path) -> list:
    ids = []
    for fn in sorted(parts_dir(h5).glob('*.h5')):
        with h5py.File(fn, 'r') as f: ids += list(f.keys())
    return ids


def test_killed_run_resumes(tmp_path):
    csv, h5 = _frame(tmp_path), tmp_path/'feats.h5'
    script = tmp_path/'run.py'
    script.write_text(SCRIPT)
    p = subprocess.Popen([sys.executable, str(script), str(csv), str(h5), str(tmp_path/'run1.log'), '0.4'])
    t0 = time.time()
    while len(list(parts_dir(h5).glob('*.h5'))) < 3 and time.time() - t0 < 120 and p.poll() is None: time.sleep(0.05)
    assert p.poll() is None, 'the first run ended before it could be killed'
    p.send_signal(signal.SIGKILL)
    p.wait()

    assert not h5.exists()                                # never merged: the run did not finish
    first = _shard_ids(h5)                                # every shard left behind is a readable HDF5 file
    assert 0 < len(first) < N and len(first) == len(set(first))
    assert set(first) == stored_ids(h5)

    p = subprocess.run([sys.executable, str(script), str(csv), str(h5), str(tmp_path/'run2.log'), '0'], timeout=300)
    assert p.returncode == 0
    second = _logged(tmp_path/'run2.log', 'extracted')
    assert not set(second) & set(first), 'stored images were recomputed'
    stored = collections.Counter(first + _logged(tmp_path/'run2.log', 'stored'))
    assert sorted(stored) == [f'id{i:02d}' for i in range(N)] and set(stored.values()) == {1}

    feats = read_features(h5)
    assert sorted(feats) == [f'id{i:02d}' for i in range(N)] and not parts_dir(h5).exists()
    frame = pd.read_csv(csv)
    for i in (0, N - 1):                                  # resumed and first-run features are the real ones
        ref = RootSIFT(max_features=200)([read_image(frame.path[i])])[0]
        np.testing.assert_allclose(feats[frame.id[i]]['descriptors'], ref['descriptors'])
        np.testing.assert_allclose(feats[frame.id[i]]['locations'], ref['locations'], atol=1e-4)
