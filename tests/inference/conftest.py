"""Small randomly initialised RSNs and a geometry-checking stand-in network for the inference tests."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from rsn_lightning.normalization import InputNormalization


def tiny_rsn(seed: int = 0, num_keypoints: int = 17):
    from rsn_lightning.models.rsn import RSN

    torch.manual_seed(seed)
    net = RSN(blocks=(1, 1, 1, 1), width_mult=0.25, stem_channels=16, decoder_channels=32,
              num_keypoints=num_keypoints).eval()
    net.normalization = InputNormalization()
    net.keypoints = "coco"
    return net


@pytest.fixture()
def small_net():
    return tiny_rsn()


class DotNet(nn.Module):
    """Finds the brightest input pixel and answers every joint's heatmap with a 255-peak Gaussian at
    its cell ``floor(x/4)``: the ideal network for a picture of one bright dot, so the Predictor's
    crop geometry, flip test and decoding can be checked against where the dot really is."""

    def __init__(self, num_keypoints: int = 17):
        super().__init__()
        self.k = num_keypoints
        self.keypoints = "coco"
        self.normalization = InputNormalization()

    def forward(self, x):
        n, _, h, w = x.shape
        flat = x.sum(1).reshape(n, -1).argmax(1)
        py, px = flat // w, flat % w
        cy, cx = (py // 4).float(), (px // 4).float()
        yy = torch.arange(h // 4, dtype=torch.float32).view(1, -1, 1)
        xx = torch.arange(w // 4, dtype=torch.float32).view(1, 1, -1)
        d2 = (yy - cy.view(-1, 1, 1)) ** 2 + (xx - cx.view(-1, 1, 1)) ** 2
        g = 255.0 * torch.exp(-d2 / (2 * 2.0 ** 2))
        return g[:, None].expand(n, self.k, h // 4, w // 4).contiguous()


@pytest.fixture()
def dot_net():
    return DotNet()
