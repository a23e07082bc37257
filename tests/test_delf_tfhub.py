"""The TF-Hub DELF adapter runs a SavedModel with the google/delf/1 signature and gives the PyTorch DELF's structure."""
import landmarks  # noqa: F401  (before tensorflow)
import numpy as np, pandas as pd, pytest
from PIL import Image
from landmarks.delf import DELF, DELFExtractor, TFHubDELF, demo_image, extract_features, save_tiny_tfhub_delf
from landmarks.features import feature_settings, read_features


@pytest.fixture(scope='module')
def hub_dir(tmp_path_factory):
    return save_tiny_tfhub_delf(tmp_path_factory.mktemp('hub')/'delf')


def test_adapter_follows_the_signature(hub_dir):
    im = demo_image(96, 0)
    ext = TFHubDELF(hub_dir, scales=(0.5, 1.0), threshold=0.0, max_features=50)
    f = ext([im])[0]
    assert ext.settings['dims'] == 40 and f['descriptors'].shape == (50, 40)
    assert set(np.unique(f['scales'])) <= {0.5, 1.0}
    assert (np.diff(f['attention']) <= 0).all()                   # the module's top-k order
    assert ((f['locations'] >= -0.5) & (f['locations'] <= 95.5)).all()
    # the threshold and max_feature_num reach the module
    few = TFHubDELF(hub_dir, scales=(1.0,), threshold=float(np.median(f['attention'])), max_features=1000)([im])[0]
    assert 0 < len(few['locations']) < 144 and (few['attention'] >= np.median(f['attention'])).all()


def test_same_structure_as_pytorch_delf(hub_dir, tmp_path):
    paths = []
    for i in range(3):
        paths.append(tmp_path/f'{i}.png')
        Image.fromarray(demo_image(64, i)).save(paths[-1])
    fr = pd.DataFrame(dict(id=['a', 'b', 'c'], path=paths))
    tf_h5 = extract_features(fr, tmp_path/'tf.h5', 'delf-tfhub', hub_dir, scales=(1.0,), threshold=0.0, max_features=30,
                             workers=0)
    pt = DELFExtractor(DELF('resnet18', hidden=16), {'arch': 'resnet18'}, scales=(1.0, 2.0), max_features=30)
    pt_h5 = extract_features(fr, tmp_path/'pt.h5', pt, workers=0)
    a, b = read_features(tf_h5), read_features(pt_h5)
    assert sorted(a) == sorted(b) == ['a', 'b', 'c']
    for k in a:
        assert sorted(a[k]) == sorted(b[k])
        for n in a[k]:
            assert a[k][n].dtype == b[k][n].dtype and a[k][n].ndim == b[k][n].ndim, n
            assert len(a[k][n]) == (2 if n == 'image_size' else 30)
            assert len(b[k][n]) == (2 if n == 'image_size' else 30)
        assert (a[k]['image_size'] == b[k]['image_size']).all()
    assert feature_settings(tf_h5)['backend'] == 'delf-tfhub' and feature_settings(pt_h5)['backend'] == 'delf'


def test_bad_module_named(tmp_path):
    with pytest.raises(FileNotFoundError, match='no_such_module'):
        TFHubDELF(tmp_path/'no_such_module')
