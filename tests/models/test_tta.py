"""Flip test and ensembles on real (randomly initialised) convolutional networks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from rsn_lightning.keypoints import COCO_KEYPOINTS
from rsn_lightning.models.tta import EnsembleNet, flip_heatmaps, flip_test


def small_net(seed=0, k=17):
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.ReLU(), nn.Conv2d(8, 16, 3, 2, 1), nn.ReLU(),
                        nn.Conv2d(16, k, 3, 1, 1))
    return net.eval()


def test_flip_heatmaps_numpy_and_torch_agree_and_invert():
    x = torch.randn(2, 17, 16, 12)
    idx = COCO_KEYPOINTS.flip_index
    t = flip_heatmaps(x, idx)
    n = flip_heatmaps(x.numpy(), idx)
    np.testing.assert_allclose(t.numpy(), n)
    torch.testing.assert_close(flip_heatmaps(t, idx), x)
    # joint 1 (left eye) of the result is joint 2's (right eye) map mirrored
    torch.testing.assert_close(t[:, 1], x[:, 2].flip(-1))
    shifted = flip_heatmaps(x, idx, shift=True)
    torch.testing.assert_close(shifted[..., 1:], t[..., :-1])


def test_flip_test_of_symmetric_input_is_symmetric():
    net = small_net()
    img = torch.randn(2, 3, 64, 48)
    sym = img + img.flip(-1)
    idx = COCO_KEYPOINTS.flip_index
    out = flip_test(net, sym, idx)
    torch.testing.assert_close(flip_heatmaps(out, idx), out, atol=1e-5, rtol=0)
    # the plain network output is not symmetric, so the check above can fail
    plain = net(sym).detach()
    assert (flip_heatmaps(plain, idx) - plain).abs().max() > 1e-3
    shifted = flip_test(net, sym, idx, shift=True)
    assert (flip_heatmaps(shifted, idx) - shifted).abs().max() > 1e-3


def test_ensemble_averages_members():
    a, b = small_net(0), small_net(1)
    a.keypoints = b.keypoints = "coco"
    ens = EnsembleNet([a, b])
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(ens(x), (a(x) + b(x)) / 2)
    assert ens.keypoints == "coco"
    c = small_net(2)
    c.keypoints = "mpii"
    with pytest.raises(ValueError, match="keypoints"):
        EnsembleNet([a, c])
    with pytest.raises(ValueError, match="heatmap shape"), torch.no_grad():
        EnsembleNet([a, small_net(3, k=16)])(x)
