"""The (multi-stage) Residual Steps Network with the Pose Refine Machine.

Stage layout and cross-stage aggregation follow the authors' 4xRSN network.py: one shared stem;
each stage is an encoder (four RSB layers) and a decoder (four upsample units, 4 heatmaps); a
non-final stage passes its finest decoder feature (1x1 conv-BN-ReLU to the stem's width) as the next
stage's input and, per resolution, two skip features added to the next encoder's layer outputs.

Where the PRM sits is this library's reading of the paper, not the authors' released code (their
4xRSN-18 network.py defines a PRM class and never instantiates it): ``prm="last_unit"`` (default)
refines the last unit's heatmaps of the last stage, ``"last_stage"`` each of the last stage's four
unit outputs (one PRM each), ``"none"`` none, so the paper's PRM ablation can be rerun.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from rsn_lightning.models.decoder import Decoder
from rsn_lightning.models.encoder import Encoder, Stem
from rsn_lightning.models.layers import init_weights
from rsn_lightning.models.prm import PoseRefineMachine

BASE_CHANNELS = (64, 128, 256, 512)  # one decoder unit per encoder layer
# the input must split evenly down to the encoder's last layer (stem /4, three strided layers /8)
INPUT_DIVISOR = 32
IN_CHANNELS = 3
# where the Pose Refine Machine refines heatmaps (see the module docstring)
PRM_PLACEMENTS = ("last_unit", "last_stage", "none")
# which convolutions start Kaiming-normal: every one (mmpose's backbone) or the encoders' only (the
# authors'; their stem, decoder and PRM keep PyTorch's default init)
INITS = ("kaiming", "authors")


def prm_placement(prm: str | bool | None, use_prm: bool | None = None) -> str:
    """The PRM placement named by ``prm``; ``use_prm`` (older configs and checkpoints) maps True/False
    to ``last_unit``/``none``, the two layouts that existed then."""
    if isinstance(prm, bool):
        prm = "last_unit" if prm else "none"
    if prm is None:
        prm = "none"
    if prm not in PRM_PLACEMENTS:
        raise ValueError(f"prm must be one of {PRM_PLACEMENTS} (or true/false), got {prm!r}")
    if use_prm is not None:
        legacy = "last_unit" if use_prm else "none"
        if prm not in ("last_unit", legacy):
            raise ValueError(f"prm={prm!r} contradicts use_prm={use_prm}; give prm only")
        prm = legacy
    return prm


class RSNStage(nn.Module):
    def __init__(
        self,
        in_channels: int,
        channels: Sequence[int],
        blocks: Sequence[int],
        num_keypoints: int,
        decoder_channels: int,
        has_next: bool,
        num_branches: int,
        branch_ratio: float,
        conv_bias: bool,
        efficient: bool,
    ):
        super().__init__()
        self.encoder = Encoder(
            in_channels, channels, blocks, num_branches, branch_ratio, conv_bias, efficient
        )
        self.decoder = Decoder(
            channels,
            decoder_channels,
            num_keypoints,
            gen_skip=has_next,
            cross_channels=in_channels if has_next else None,
            conv_bias=conv_bias,
            efficient=efficient,
        )

    def forward(self, x: torch.Tensor, skips=None):
        feats = self.encoder(x, None if skips is None else list(zip(*skips)))
        return self.decoder(feats)


class RSN(nn.Module):
    """Residual Steps Network.

    Args:
        num_stages: stages (1 for RSN-18/50/101, N for N x RSN).
        blocks: RSBs per encoder layer, e.g. (2,2,2,2) RSN-18, (3,4,6,3) RSN-50, (3,4,23,3) RSN-101.
        num_keypoints: heatmap channels K.
        width_mult: scales the encoder layer widths 64/128/256/512.
        stem_channels: stem output width (also the cross-stage feature's width).
        decoder_channels: width of the upsample units (256 in the paper).
        num_branches: RSB branches (4 in the paper); branch_ratio: branch width / block input width.
        prm: where the Pose Refine Machine refines heatmaps: ``"last_unit"`` (the last stage's last
            unit, the default), ``"last_stage"`` (each unit of the last stage), ``"none"``; True/False
            mean last_unit/none.
        init: ``"kaiming"`` (Kaiming-normal for every conv, as mmpose) or ``"authors"`` (for the encoders
            only, the rest at PyTorch's default, as the authors' network.py).
        use_prm: the older boolean form of ``prm`` (True = last_unit), kept so that older configs and
            checkpoints' ``arch`` still build; ``arch_config()`` writes ``prm``.
        checkpoint_activations: activation checkpointing per RSB and per upsample unit: training stores
            only the block inputs and recomputes the rest in backward (memory for compute).
        efficient: the authors' name for ``checkpoint_activations`` (kept so their configs and older
            checkpoints' arch dicts still load); either turns it on.
        conv_bias: convolutions with a bias, as in the authors' checkpoints.
        output_gain: constant factor on every heatmap the network emits (1 in the paper). The heads end
            in batch norm, whose outputs start near unit scale while the targets peak at 255; the
            paper's 96k-iteration schedule has time to grow the scale, a few-minute CPU run does not.
            A gain of ~16 is equivalent (under Adam) to training on targets scaled by 1/16, without
            changing the targets, the decoding or the joint scores.
    """

    def __init__(
        self,
        num_stages: int = 1,
        blocks: Sequence[int] = (2, 2, 2, 2),
        num_keypoints: int = 17,
        width_mult: float = 1.0,
        stem_channels: int = 64,
        decoder_channels: int = 256,
        num_branches: int = 4,
        branch_ratio: float = 26 / 64,
        prm: str | bool = "last_unit",
        checkpoint_activations: bool = False,
        conv_bias: bool = False,
        output_gain: float = 1.0,
        init: str = "kaiming",
        use_prm: bool | None = None,
        efficient: bool = False,
    ):
        super().__init__()
        prm = prm_placement(prm, use_prm)
        if init not in INITS:
            raise ValueError(f"init must be one of {INITS}, got {init!r}")
        if num_stages < 1:
            raise ValueError(f"num_stages must be >= 1, got {num_stages}")
        if len(blocks) != len(BASE_CHANNELS):
            raise ValueError(
                f"blocks needs {len(BASE_CHANNELS)} entries (one per encoder layer), got {list(blocks)}"
            )
        checkpoint_activations = bool(checkpoint_activations or efficient)
        if width_mult <= 0:
            raise ValueError(f"width_mult must be > 0, got {width_mult}")
        self._config = dict(
            num_stages=int(num_stages),
            blocks=[int(b) for b in blocks],
            num_keypoints=int(num_keypoints),
            width_mult=float(width_mult),
            stem_channels=int(stem_channels),
            decoder_channels=int(decoder_channels),
            num_branches=int(num_branches),
            branch_ratio=float(branch_ratio),
            prm=prm,
            checkpoint_activations=checkpoint_activations,
            conv_bias=bool(conv_bias),
            output_gain=float(output_gain),
            init=init,
        )
        self.num_keypoints = num_keypoints
        channels = [max(1, round(c * width_mult)) for c in BASE_CHANNELS]
        self.stem = Stem(IN_CHANNELS, stem_channels, conv_bias)
        self.stages = nn.ModuleList(
            RSNStage(
                stem_channels,
                channels,
                blocks,
                num_keypoints,
                decoder_channels,
                has_next=s < num_stages - 1,
                num_branches=num_branches,
                branch_ratio=branch_ratio,
                conv_bias=conv_bias,
                efficient=checkpoint_activations,
            )
            for s in range(num_stages)
        )
        # ``prm`` names the last unit's PRM in every placement, so checkpoints written before the
        # placement option (``prm.*`` keys) load unchanged
        self.prm = PoseRefineMachine(num_keypoints, conv_bias) if prm != "none" else None
        self.coarse_unit_prms = (
            nn.ModuleList(PoseRefineMachine(num_keypoints, conv_bias) for _ in range(len(BASE_CHANNELS) - 1))
            if prm == "last_stage"
            else None
        )
        for module in [stage.encoder for stage in self.stages] if init == "authors" else [self]:
            init_weights(module)

    def arch_config(self) -> dict:
        """Plain JSON-able constructor arguments: ``RSN(**net.arch_config())`` rebuilds this network."""
        return {k: (list(v) if isinstance(v, list) else v) for k, v in self._config.items()}

    @property
    def checkpoint_activations(self) -> bool:
        return self._config["checkpoint_activations"]

    efficient = checkpoint_activations

    def _check_input(self, x: torch.Tensor) -> None:
        if x.dim() != 4 or x.shape[1] != IN_CHANNELS:
            raise ValueError(f"RSN expects images [N, {IN_CHANNELS}, H, W], got shape {tuple(x.shape)}")
        h, w = x.shape[-2:]
        if h % INPUT_DIVISOR or w % INPUT_DIVISOR:
            raise ValueError(
                f"RSN expects H and W divisible by {INPUT_DIVISOR} (e.g. 256x192, 384x288), got {h}x{w}"
            )

    def forward_all(self, x: torch.Tensor) -> list[list[torch.Tensor]]:
        """Per stage, the 4 unit heatmaps coarse -> fine, each [N, K, H/4, W/4], PRM-refined where ``prm`` says."""
        self._check_input(x)
        x = self.stem(x)
        skips = None
        outputs = []
        for stage in self.stages:
            heatmaps, skips, x = stage(x, skips)
            outputs.append(heatmaps)
        if self.coarse_unit_prms is not None:
            for unit, prm in enumerate(self.coarse_unit_prms):
                outputs[-1][unit] = prm(outputs[-1][unit])
        if self.prm is not None:
            outputs[-1][-1] = self.prm(outputs[-1][-1])
        gain = self._config["output_gain"]
        if gain != 1.0:
            outputs = [[h * gain for h in units] for units in outputs]
        return outputs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Final heatmaps [N, K, H/4, W/4] (last unit of the last stage, after its PRM if any)."""
        return self.forward_all(x)[-1][-1]
