"""ResNet transfer learning (landmarks.transfer) with real torchvision models on a tiny SynthLandmarks set."""
import landmarks  # noqa: F401
import os, subprocess, sys, textwrap
from pathlib import Path

import pandas as pd, pytest, torch, torchvision

from landmarks.data import dataset_root, load_gld
from landmarks.evaluation import global_average_precision, read_solution, read_submission
from landmarks.transfer import (as_predictions, build_model, imagenet_file, imagenet_state_dict, load_model, predict,
                                recognize, threshold_curve, train)

ROOT = Path(__file__).resolve().parents[1]
TINY = dict(image_size=40, crop_size=32, batch_size=8, seed=0, progress=False, threads=1)


@pytest.fixture(scope='module')
def data_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp('data')
    dataset_root('synth:tiny', d, progress=False)
    return d


@pytest.fixture(scope='module')
def gld(data_dir): return load_gld(dataset_root('synth:tiny', data_dir, progress=False))


@pytest.fixture(scope='module')
def frozen(gld, tmp_path_factory):
    "A resnet18 trained from nothing (the 'source'), then a frozen-backbone model on top of it."
    out = tmp_path_factory.mktemp('models')
    src = train(gld, out/'source', 'resnet18', 'finetune', 'none', epochs=1, lr=0.02, **TINY)
    return src, train(gld, out, 'resnet18', 'frozen', src, epochs=2, lr=0.05, **TINY)


def _run(script, *args):
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS='1', TQDM_DISABLE='1')
    return subprocess.run([sys.executable, '-c', textwrap.dedent(script), *map(str, args)], capture_output=True,
                          text=True, env=env, cwd=ROOT, timeout=600)


# ---------------------------------------------------------------- ImageNet weights
def test_imagenet_offline_without_cache_stops_at_once_with_the_file_name(tmp_path, monkeypatch, gld):
    monkeypatch.setenv('TORCH_HOME', str(tmp_path))
    monkeypatch.setenv('LANDMARKS_OFFLINE', '1')
    with pytest.raises(FileNotFoundError) as e: imagenet_state_dict('resnet50')
    msg = str(e.value)
    assert 'resnet50-11ad3fa6.pth' in msg and str(tmp_path/'hub'/'checkpoints') in msg
    assert 'https://download.pytorch.org/models/resnet50-11ad3fa6.pth' in msg
    # through train(): it fails before writing any checkpoint
    with pytest.raises(FileNotFoundError, match='resnet18-f37072fd.pth'):
        train(gld, tmp_path/'out', 'resnet18', 'finetune', 'imagenet', epochs=1, **TINY)
    assert not list((tmp_path/'out').rglob('*.pt'))


def test_imagenet_from_the_hub_cache(tmp_path, monkeypatch):
    monkeypatch.setenv('TORCH_HOME', str(tmp_path))
    monkeypatch.setenv('LANDMARKS_OFFLINE', '1')
    f = imagenet_file('resnet18')
    assert f == tmp_path/'hub'/'checkpoints'/'resnet18-f37072fd.pth'
    ref = torchvision.models.resnet18()           # random numbers under the real name: the same loading code path
    f.parent.mkdir(parents=True)
    torch.save(ref.state_dict(), f)
    model, origin = build_model('resnet18', 5, 'imagenet')
    assert origin == 'imagenet' and model.fc.out_features == 5
    for k, v in ref.state_dict().items():
        if not k.startswith('fc.'): assert torch.equal(model.state_dict()[k], v), k


# ---------------------------------------------------------------- training stage
def test_checkpoint_is_self_describing(frozen, gld):
    src, ck = frozen
    model, meta = load_model(ck)
    assert meta['architecture'] == 'resnet18' and meta['mode'] == 'frozen' and meta['epoch'] == 2
    assert set(meta['classes']) == set(gld.train.landmark_id)
    assert sorted(meta['classes'].values()) == list(range(gld.train.landmark_id.nunique()))
    assert meta['mean'] == [0.485, 0.456, 0.406] and meta['crop_size'] == 32 and meta['image_size'] == 40
    assert 'resnet18_finetune' in meta['weights']                        # where its backbone came from
    metrics = pd.read_csv(Path(ck).parent/'metrics.csv')
    assert list(metrics.epoch) == [1, 2] and {'loss', 'train_acc', 'val_acc', 'lr', 'seconds'} <= set(metrics.columns)
    assert sorted(p.name for p in Path(ck).parent.glob('*.pt')) == ['epoch_001.pt', 'epoch_002.pt', 'model.pt']


def test_frozen_backbone_does_not_move_and_head_does(frozen):
    src, ck = frozen
    a, _ = load_model(src)
    b, _ = load_model(ck)
    for k, v in a.state_dict().items():
        if not k.startswith('fc.'): assert torch.equal(v, b.state_dict()[k]), k   # BN statistics included
    assert a.fc.weight.shape == b.fc.weight.shape and not torch.equal(a.fc.weight, b.fc.weight)


def test_skip_when_complete_and_refuse_other_settings(frozen, gld):
    src, ck = frozen
    t = ck.stat().st_mtime_ns
    again = train(gld, ck.parents[2], 'resnet18', 'frozen', src, epochs=2, lr=0.05, **TINY)
    assert again == ck and ck.stat().st_mtime_ns == t
    with pytest.raises(ValueError, match='lr: 0.05 -> 0.1'):
        train(gld, ck.parents[2], 'resnet18', 'frozen', src, epochs=2, lr=0.1, **TINY)


def test_bad_parameters_are_named(gld, tmp_path):
    with pytest.raises(ValueError, match='parameter arch'): train(gld, tmp_path, 'vgg16')
    with pytest.raises(ValueError, match='parameter mode'): train(gld, tmp_path, 'resnet18', 'thawed')
    with pytest.raises(ValueError, match='parameter epochs'): train(gld, tmp_path, 'resnet18', epochs=0)
    with pytest.raises(ValueError, match='parameter amp'): train(gld, tmp_path, 'resnet18', amp='fp8')
    (tmp_path/'junk.pt').write_bytes(b'junk')
    with pytest.raises(ValueError, match='junk.pt'): load_model(tmp_path/'junk.pt')


KILLABLE = '''
import os, sys, landmarks
from landmarks.transfer import train
data_dir, out, kill, amp, keep = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] or None, int(sys.argv[5])
def on_batch(epoch, i):
    if kill and epoch == 1 and i == 2: os._exit(17)      # killed in the middle of the second epoch
train('synth:tiny', out, 'resnet18', 'finetune', 'none', epochs=3, image_size=40, crop_size=32, batch_size=8,
      lr=0.02, seed=0, data_dir=data_dir, progress=False, threads=1, amp=amp, keep=keep,
      on_batch=on_batch)
'''


# float32; bfloat16 autocast with channels-last on the CPU; and keeping only the newest epoch checkpoint
@pytest.mark.parametrize('amp,keep', [('', 0), ('bf16', 0), ('', 1)])
def test_killed_mid_epoch_resumes_to_the_same_result(data_dir, tmp_path, amp, keep):
    whole = _run(KILLABLE, data_dir, tmp_path/'a', 0, amp, keep)
    assert whole.returncode == 0, whole.stderr
    killed = _run(KILLABLE, data_dir, tmp_path/'b', 1, amp, keep)
    assert killed.returncode == 17, killed.stderr
    mdir = tmp_path/'b'/'models'/'resnet18_finetune'
    assert [p.name for p in sorted(mdir.glob('*.pt'))] == ['epoch_001.pt']   # no partial epoch, no final model
    assert len(pd.read_csv(mdir/'metrics.csv')) == 1
    t1 = (mdir/'epoch_001.pt').stat().st_mtime_ns
    resumed = _run(KILLABLE, data_dir, tmp_path/'b', 0, amp, keep)
    assert resumed.returncode == 0, resumed.stderr
    if keep: assert [p.name for p in sorted(mdir.glob('*.pt'))] == ['epoch_003.pt', 'model.pt']
    else: assert (mdir/'epoch_001.pt').stat().st_mtime_ns == t1              # epoch 1 was not trained again
    ma = pd.read_csv(tmp_path/'a'/'models'/'resnet18_finetune'/'metrics.csv').drop(columns='seconds')
    mb = pd.read_csv(mdir/'metrics.csv').drop(columns='seconds')
    pd.testing.assert_frame_equal(ma, mb, check_exact=True)
    assert len(ma) == 3
    a = torch.load(tmp_path/'a'/'models'/'resnet18_finetune'/'model.pt', weights_only=True)['state_dict']
    b = torch.load(mdir/'model.pt', weights_only=True)['state_dict']
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# ---------------------------------------------------------------- prediction and submission
def test_predict_and_submission(frozen, gld, tmp_path):
    _, ck = frozen
    p = predict(ck, gld.test, progress=False, threads=1)
    assert list(p.columns) == ['id', 'landmark_id', 'score'] and list(p.id) == list(gld.test.id)
    assert p.score.between(0, 1).all() and set(p.landmark_id) <= set(gld.train.landmark_id)
    assert p.landmark_id.map(type).eq(int).all()                       # same id type as the solution
    sub = recognize(ck, gld.test, tmp_path/'sub.csv', progress=False, threads=1)
    lines = sub.read_text().splitlines()
    assert lines[0] == 'id,landmarks' and len(lines) == 1 + len(gld.test)
    sol, _ = read_solution(gld.recognition_solution, 'recognition')
    assert global_average_precision(read_submission(sub), sol) == pytest.approx(
        global_average_precision(as_predictions(p), sol))
    # a threshold above every score leaves no prediction: GAP 0, every id still listed
    none = recognize(ck, gld.test, tmp_path/'none.csv', threshold=1.01, progress=False, threads=1)
    assert read_submission(none) == {} and len(none.read_text().splitlines()) == 1 + len(gld.test)
    # the cache rule: the same settings skip, a changed threshold recomputes
    mtime = sub.stat().st_mtime_ns
    assert recognize(ck, gld.test, sub, progress=False, threads=1) == sub and sub.stat().st_mtime_ns == mtime
    assert read_submission(recognize(ck, gld.test, sub, threshold=1.01, progress=False, threads=1)) == {}
    c = threshold_curve(p, sol, [0.0, 1.01])
    assert c.gap.iloc[1] == 0 and c.kept.tolist() == [1.0, 0.0]
    with pytest.raises(ValueError, match="column 'path'"): predict(ck, gld.test[['id']])


def test_cli_train_and_recognize(data_dir, tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS='1', TQDM_DISABLE='1')
    cmd = [sys.executable, '-m', 'landmarks.cli']
    r = subprocess.run(cmd + ['train', 'synth:tiny', str(tmp_path), '--arch', 'resnet18', '--mode', 'frozen',
                              '--weights', 'none', '--epochs', '1', '--image_size', '40', '--crop_size', '32',
                              '--data_dir', str(data_dir)], capture_output=True, text=True, env=env, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    ck = Path(r.stdout.strip().splitlines()[-1])
    assert ck == tmp_path/'models'/'resnet18_frozen'/'model.pt' and ck.exists()
    r = subprocess.run(cmd + ['recognize', str(ck), 'synth:tiny', str(tmp_path/'sub.csv'), '--data_dir', str(data_dir)],
                       capture_output=True, text=True, env=env, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert 'GAP' in r.stdout and (tmp_path/'sub.csv').exists()


def test_table1_train_accuracy_is_a_clean_pass_and_gains_are_paired(frozen, gld):
    from landmarks.transfer import clean_accuracy, gains, paired_bootstrap, per_image_correct, trained_images
    _, ck = frozen
    tr = trained_images(ck, gld)
    assert set(tr.id) < set(gld.train.id) and len(tr) > len(gld.train) / 2        # the validation share is held out
    p1, p2 = (predict(ck, tr, batch_size=4, progress=False, threads=1) for _ in range(2))
    assert clean_accuracy(p1, tr) == clean_accuracy(p2, tr)                       # no augmentation: deterministic
    assert clean_accuracy(p1, tr) == (p1.landmark_id.values == tr.landmark_id.values).mean()
    sol, _ = read_solution(gld.recognition_solution, 'recognition')
    c = per_image_correct(predict(ck, gld.test, progress=False, threads=1), sol)
    assert len(c) == sum(1 for v in sol.values() if v)
    rng = __import__('numpy').random.default_rng(0)
    a, b = rng.random(600) < 0.5, rng.random(600) < 0.6
    g = paired_bootstrap(a, b, n=3000)
    d = b.astype(float) - a
    assert abs(g['gain_se'] - d.std() / len(d) ** 0.5) < 0.1 * g['gain_se']       # the SE of a mean, resampled
    t = gains(pd.DataFrame(dict(test_acc=[a.mean(), b.mean()])), [a, b])
    assert pd.isna(t.test_acc_gain[0]) and abs(t.test_acc_gain[1] - d.mean()) < 1e-12 and t.gain_beyond_se[1]
