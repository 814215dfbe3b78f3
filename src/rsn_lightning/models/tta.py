"""Flip test and heatmap-averaging ensembles.

The authors average the heatmaps of the image and of its mirror image, the mirror's heatmaps flipped
back and their left/right channels swapped (``flip_back`` in their ``transforms.py``), without any
shift. Some codebases (HRNet's ``SHIFT_HEATMAP``) also move the flipped-back maps one column to the
right to compensate the half-pixel asymmetry of the cell grid; ``shift=True`` selects that.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


def flip_heatmaps(heatmaps, flip_index, shift: bool = False):
    """Mirror [N, K, h, w] heatmaps of a mirrored input back: flip the width, reorder the joints by
    ``flip_index`` (each joint takes its mirror partner's map) and optionally shift right by one.
    Works on torch tensors and numpy arrays alike."""
    idx = np.asarray(flip_index, dtype=np.int64)
    if isinstance(heatmaps, torch.Tensor):
        out = heatmaps.flip(-1)[:, torch.as_tensor(idx, device=heatmaps.device)]
        if shift:
            out = out.clone()
            out[..., 1:] = out[..., :-1].clone()
        return out
    out = np.asarray(heatmaps)[..., ::-1][:, idx].copy()
    if shift:
        out[..., 1:] = out[..., :-1].copy()
    return out


@torch.no_grad()
def average_with_mirror(heatmaps, mirrored_heatmaps, flip_index, shift: bool = False):
    """The flip test's average: the heatmaps of the images and the flipped-back ones of their mirrors."""
    return (heatmaps + flip_heatmaps(mirrored_heatmaps, flip_index, shift=shift)) * 0.5


def flip_test(model: nn.Module, images: torch.Tensor, flip_index, shift: bool = False) -> torch.Tensor:
    """Average of ``model(images)`` and the flipped-back heatmaps of the mirrored images."""
    return average_with_mirror(model(images), model(images.flip(-1)), flip_index, shift)


class EnsembleNet(nn.Module):
    """Average the final heatmaps of several networks with the same keypoints and input.

    The members must agree on the keypoint set, the input normalisation and the heatmap shape; the
    ensemble exposes the first member's ``.normalization`` and ``.keypoints`` so that the Predictor
    and the flip test treat it as one network.
    """

    def __init__(self, nets, weights=None):
        super().__init__()
        nets = list(nets)
        if not nets:
            raise ValueError("EnsembleNet needs at least one network")
        first = nets[0]
        for i, net in enumerate(nets[1:], start=1):
            for attr in ("normalization", "keypoints"):
                a, b = getattr(first, attr, None), getattr(net, attr, None)
                if a is not None and b is not None and a != b:
                    raise ValueError(f"EnsembleNet member {i} has {attr}={b!r}, member 0 has {a!r}")
        self.nets = nn.ModuleList(nets)
        w = np.ones(len(nets)) if weights is None else np.asarray(weights, dtype=np.float64)
        if w.shape != (len(nets),) or w.sum() <= 0:
            raise ValueError(f"need {len(nets)} non-negative weights with a positive sum, got {weights!r}")
        self.register_buffer("weights", torch.as_tensor(w / w.sum(), dtype=torch.float32), persistent=False)
        self.normalization = getattr(first, "normalization", None)
        self.keypoints = getattr(first, "keypoints", None)
        if hasattr(first, "input_size"):
            self.input_size = first.input_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = None
        for w, net in zip(self.weights, self.nets):
            y = net(x)
            if out is not None and y.shape != out.shape:
                raise ValueError(f"ensemble members disagree on the heatmap shape: {tuple(y.shape)} vs "
                                 f"{tuple(out.shape)}")
            out = y * w if out is None else out + y * w
        return out
