"""DELF extraction precision (03): bfloat16 features agree with float32, the folded trunk computes the same
function, and a store records its precision so that one made in float32 is never extended in bfloat16."""
import landmarks  # noqa: F401
import pandas as pd, pytest, torch
from PIL import Image

from landmarks.delf import DELF, DELFExtractor, demo_image, extract_features, feature_agreement
from landmarks.features import feature_settings, read_features


@pytest.fixture(scope='module')
def model():
    torch.manual_seed(0)
    m = DELF('resnet18', hidden=32).eval()
    for bn in (x for x in m.modules() if isinstance(x, torch.nn.BatchNorm2d)):  # statistics worth folding
        bn.running_mean.uniform_(-0.2, 0.2)
        bn.running_var.uniform_(0.5, 2.0)
        bn.bias.data.uniform_(-0.1, 0.1)
    return m


def test_bf16_agrees_with_fp32(model):
    ims = [demo_image(160, i) for i in range(3)]
    kw = dict(scales=(0.5, 1.0, 1.4142), max_features=150, device='cpu')  # fewer kept than candidates: ranking counts
    ref = DELFExtractor(model, amp='fp32', **kw)(ims)
    for r, o in zip(ref, DELFExtractor(model, amp='bf16', **kw)(ims)):
        same, cos = feature_agreement(r, o)
        assert same >= 0.95 and cos >= 0.99, (same, cos)


def test_folded_trunk_is_the_same_function(model):
    x = torch.randn(2, 3, 96, 128)
    ext = DELFExtractor(model, amp='fp32', device='cpu')
    with torch.no_grad():
        f0, a0 = model(x)
        f1, a1 = ext._forward(x)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in ext.body.modules())
    torch.testing.assert_close(f1, f0, rtol=1e-4, atol=1e-4 * f0.abs().max().item())
    torch.testing.assert_close(a1, a0, rtol=1e-4, atol=1e-5)


def test_store_records_precision(model, tmp_path):
    paths = []
    for i in range(3):
        paths.append(tmp_path/f'{i}.png')
        Image.fromarray(demo_image(96, i)).save(paths[-1])
    frame = pd.DataFrame(dict(id=[f'im{i}' for i in range(3)], path=[str(p) for p in paths]))
    kw = dict(scales=(1.0,), max_features=50, device='cpu')
    h5 = extract_features(frame, tmp_path/'f.h5', DELFExtractor(model, amp='fp32', **kw), workers=0, progress=False)
    assert feature_settings(h5)['amp'] == 'fp32' and sorted(read_features(h5)) == ['im0', 'im1', 'im2']
    with pytest.raises(ValueError, match='other settings'):
        extract_features(frame, h5, DELFExtractor(model, amp='bf16', **kw), workers=0, progress=False)
    with pytest.raises(ValueError, match="amp='half'"): DELFExtractor(model, amp='half')
