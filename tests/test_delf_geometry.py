"""DELF keypoints: the receptive-field centre of a ResNet50 conv4_x cell maps back to the right original pixel at
every pyramid scale (gradient tracing through the real pyramid resampling and trunk)."""
import landmarks  # noqa: F401
import math
import numpy as np, pytest
from landmarks.delf import DELF, DELF_SCALES, _positive, cell_centres, receptive_field, traced_centre


@pytest.fixture(scope='module')
def trunk():
    return _positive(DELF('resnet50').body)


def test_resnet50_geometry(trunk):
    g = receptive_field(trunk)
    assert (g['size'], g['stride'], g['padding']) == (267, 16, 133.0)


@pytest.mark.parametrize('scale', DELF_SCALES)
def test_cell_centre_at_every_scale(trunk, scale):
    g = receptive_field(trunk)
    H, W = math.ceil(300 / scale), math.ceil(316 / scale)        # level about 300 x 316: a 267-px field fits
    lh, lw = round(H * scale), round(W * scale)
    got = {}
    for cell in [(9, 9), (9, 10)]:
        want = [cell_centres(cell[0] + 1, lh, H, g)[-1], cell_centres(cell[1] + 1, lw, W, g)[-1]]
        got[cell] = traced_centre(trunk, (H, W), scale, cell)
        np.testing.assert_allclose(got[cell], want, atol=1.0 / scale + 0.51)
    # one cell further is one stride further, in original pixels
    a, b = got[(9, 9)], got[(9, 10)]
    assert abs((b - a)[1] - 16 / scale) <= 2 / scale + 1 and abs((b - a)[0]) <= 1 / scale + 1
