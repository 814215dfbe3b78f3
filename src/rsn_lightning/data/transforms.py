"""The top-down sample: box -> crop, geometric augmentation, one affine warp, targets, normalisation.

Geometry follows the authors' ``JointsDataset`` (box enlargement, random scale, rotation, horizontal
flip with left/right swap, half-body crops), with one difference in how it is applied: the flip is
composed into the crop's affine matrix instead of mirroring the whole image first, so the image is
resampled exactly once and the full-size mirror copy is never made. The crop is identical: mirroring
about ``x = W - 1 - x`` and then cropping around the mirrored centre equals cropping with the composed
matrix.

Photometric augmentation (albumentations, applied to the small warped crop) is off by default, as the
authors train without it (``ADD_MORE_AUG = False``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from rsn_lightning.codec import CodecError, HeatmapCodec, joint_target_weight
from rsn_lightning.geometry import (
    apply_affine,
    box_to_center_scale,
    crop_affine,
    fit_aspect_ratio,
    is_valid_crop,
)
from rsn_lightning.keypoints import KeypointSpec
from rsn_lightning.normalization import InputNormalization
from rsn_lightning.test_settings import AUTHORS_BOX_EXTENSION


@dataclass(frozen=True)
class AugmentConfig:
    """Crop enlargement and augmentation; defaults are the authors' COCO settings (``attribute.py``).

    Box enlargement at train time: ``scale *= (1 + basic_ext)``, then per axis ``*= (1 + r * ext)`` with
    ``r ~ U(0, 1)`` when ``random_ext`` else ``r = 1``; at test time ``*= (1 + test_ext)``. The box is
    then grown to the input's aspect ratio. Random scale multiplies the crop by
    ``scale_shrink * U(1 + scale_low, 1 + scale_high)``.
    """

    basic_ext: float = 0.05
    random_ext: bool = True
    x_ext: float = 0.6
    y_ext: float = 0.8
    # the authors' test box extension: one place defines it (test_settings.py)
    test_x_ext: float = AUTHORS_BOX_EXTENSION["coco"][0]
    test_y_ext: float = AUTHORS_BOX_EXTENSION["coco"][1]
    scale_low: float = -0.25
    scale_high: float = 0.25
    scale_shrink: float = 0.8
    rotation: float = 45.0
    prob_rotation: float = 0.5
    prob_flip: float = 0.5
    # half-body: only when more than ``half_body_min_joints`` joints are labelled
    prob_half_body: float = 0.3
    half_body_min_joints: int = 3
    half_body_x_ext: float = 0.6
    half_body_y_ext: float = 0.8
    # the authors pick the upper body when ``np.random.randn() < 0.5``, i.e. with probability
    # Phi(0.5) = 0.69, not 0.5; kept so the crops' statistics match theirs
    half_body_upper_prob: float = 0.6915
    # photometric (albumentations) probabilities; 0 disables each
    color_prob: float = 0.0
    brightness: float = 0.2
    contrast: float = 0.2
    saturation: float = 0.2
    hue: float = 0.0
    blur_prob: float = 0.0
    blur_limit: tuple[int, int] = (3, 5)

    @classmethod
    def from_dict(cls, d: dict | None, base: AugmentConfig | None = None) -> AugmentConfig:
        base = base or cls()
        if not d:
            return base
        d = dict(d)
        unknown = set(d) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"unknown augmentation keys {sorted(unknown)}")
        if "blur_limit" in d:
            d["blur_limit"] = tuple(int(v) for v in d["blur_limit"])
        return dataclasses.replace(base, **d)


COCO_AUGMENT = AugmentConfig()
# the authors' MPII settings: a fixed x1.25 box, no shrink, rotation up to 60 degrees, half-body on
# more than 8 joints with p = 0.5
MPII_AUGMENT = AugmentConfig(
    basic_ext=0.0, random_ext=False, x_ext=0.25, y_ext=0.25, test_x_ext=AUTHORS_BOX_EXTENSION["mpii"][0],
    test_y_ext=AUTHORS_BOX_EXTENSION["mpii"][1],
    scale_shrink=1.0, rotation=60.0, prob_rotation=0.5, prob_flip=0.5, prob_half_body=0.5,
    half_body_min_joints=8, half_body_x_ext=0.6, half_body_y_ext=0.6,
)
AUGMENT_PRESETS = {"coco": COCO_AUGMENT, "mpii": MPII_AUGMENT}


def flip_matrix(image_width: int) -> np.ndarray:
    """2x3 mirror of an image of this width about its pixel centres (x -> W - 1 - x)."""
    return np.array([[-1.0, 0.0, image_width - 1.0], [0.0, 1.0, 0.0]])


def compose_affine(outer: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """2x3 matrices: the map p -> outer(inner(p))."""
    lin = outer[:, :2] @ inner[:, :2]
    t = outer[:, :2] @ inner[:, 2] + outer[:, 2]
    return np.concatenate([lin, t[:, None]], axis=1)


def swap_flip_pairs(arr: np.ndarray, flip_pairs) -> np.ndarray:
    out = arr.copy()
    for a, b in flip_pairs:
        out[a], out[b] = arr[b], arr[a]
    return out


def half_body_center_scale(joints, visibility, spec: KeypointSpec, aspect_ratio: float, cfg: AugmentConfig,
                           rng: np.random.Generator):
    """The authors' half-body crop: (center, scale) around the upper or lower body's labelled joints,
    or None when the chosen half has fewer than 3 of them or its joints span no area (all on one point or
    one line: there is nothing to crop)."""
    labelled = np.asarray(visibility) > 0
    upper_ids = set(spec.upper_body_ids)
    upper = [i for i in np.flatnonzero(labelled) if i in upper_ids]
    lower = [i for i in np.flatnonzero(labelled) if i not in upper_ids]
    if rng.random() < cfg.half_body_upper_prob and len(upper) > 3:
        chosen = upper
    else:
        chosen = lower if len(lower) > 3 else upper
    if len(chosen) < 3:
        return None
    pts = np.asarray(joints, np.float64)[chosen, :2]
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    center = ((lo + hi) * 0.5).astype(np.float32)
    w = (hi[0] - lo[0]) * (1.0 + rng.random() * cfg.half_body_x_ext)
    h = (hi[1] - lo[1]) * (1.0 + rng.random() * cfg.half_body_y_ext)
    scale = fit_aspect_ratio((w, h), aspect_ratio)
    if not is_valid_crop(center, scale):
        return None
    return center, scale


def _photometric(cfg: AugmentConfig):
    if cfg.color_prob <= 0 and cfg.blur_prob <= 0:
        return None
    from rsn_lightning.extras import import_extra

    A = import_extra("albumentations", "augment",
                     "photometric augmentation (data.augment.color_prob or blur_prob > 0)")

    ops = []
    if cfg.color_prob > 0:
        ops.append(A.ColorJitter(brightness=cfg.brightness, contrast=cfg.contrast, saturation=cfg.saturation,
                                 hue=cfg.hue, p=cfg.color_prob))
    if cfg.blur_prob > 0:
        ops.append(A.GaussianBlur(blur_limit=cfg.blur_limit, p=cfg.blur_prob))
    return A.Compose(ops)


def normalization_lut(norm: InputNormalization) -> np.ndarray:
    """1x256x3 float32 table: BGR byte value -> normalised value of that channel."""
    v = np.arange(256, dtype=np.float32)[:, None] * np.float32(1.0 / 255.0)
    mean, std = np.asarray(norm.mean, np.float32), np.asarray(norm.std, np.float32)
    if norm.channel_order == "RGB":
        # the statistics are given in RGB order; the table is indexed by the BGR input channel
        mean, std = mean[::-1], std[::-1]
    return np.ascontiguousarray(((v - mean) / std)[None].astype(np.float32))


class TopDownTransform:
    """(BGR image, record) -> the sample dict of docs/architecture.md.

    A record holds the raw crop before enlargement: ``center`` (x, y) and ``scale`` (w, h) in image
    pixels (a COCO box's centre and size; MPII's square person box), ``joints`` [K, 3] in image pixels
    with visibility, and the metadata ``image_id``, ``box_score``, ``area``, ``index``. ``codec`` encodes
    the targets (default: the authors' ``HeatmapCodec`` at ``input_size``).
    """

    def __init__(self, input_size, spec: KeypointSpec, train: bool, augment: AugmentConfig | None = None,
                 codec: HeatmapCodec | None = None,
                 normalization: InputNormalization | None = None, with_targets: bool | None = None):
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.aspect_ratio = self.input_size[0] / self.input_size[1]
        self.spec = spec
        self.train = bool(train)
        self.cfg = augment or COCO_AUGMENT
        self.codec = codec or HeatmapCodec(self.input_size)
        if self.codec.input_size != self.input_size:
            raise CodecError(f"the codec's input size {list(self.codec.input_size)} is not the crop's "
                             f"{list(self.input_size)}")
        self.normalization = normalization or InputNormalization()
        self.with_targets = self.train if with_targets is None else bool(with_targets)
        self._photo = _photometric(self.cfg) if self.train else None
        self._lut = normalization_lut(self.normalization)
        self.rng = np.random.default_rng()

    def seed(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        if self._photo is not None:
            self._photo.set_random_seed(int(seed) % (2**32))

    def normalize(self, crop: np.ndarray) -> np.ndarray:
        """``self.normalization(crop)`` through a per-channel lookup table: the same numbers, several
        times faster than the float arithmetic on every pixel (it dominated a sample's cost)."""
        out = cv2.LUT(crop, self._lut)
        if self.normalization.channel_order == "RGB":
            out = out[..., ::-1]
        return np.ascontiguousarray(out.transpose(2, 0, 1))

    # ------------------------------------------------------------------ geometry
    def crop_params(self, record: dict, image_width: int) -> tuple[np.ndarray, np.ndarray, float, bool]:
        """(center, scale, rotation, flip) of this sample's crop; random only at train time."""
        cfg, rng = self.cfg, self.rng
        raw_center = np.asarray(record["center"], np.float64)
        raw_scale = np.asarray(record["scale"], np.float64)
        box = (raw_center[0] - raw_scale[0] / 2, raw_center[1] - raw_scale[1] / 2, raw_scale[0], raw_scale[1])
        if not self.train:
            center, scale = box_to_center_scale(box, self.aspect_ratio, cfg.test_x_ext, cfg.test_y_ext)
            return center, scale, 0.0, False
        rx = rng.random() if cfg.random_ext else 1.0
        ry = rng.random() if cfg.random_ext else 1.0
        x_ext = (1.0 + cfg.basic_ext) * (1.0 + rx * cfg.x_ext) - 1.0
        y_ext = (1.0 + cfg.basic_ext) * (1.0 + ry * cfg.y_ext) - 1.0
        center, scale = box_to_center_scale(box, self.aspect_ratio, x_ext, y_ext)
        joints = np.asarray(record["joints"], np.float64)
        vis = joints[:, 2]
        if (cfg.prob_half_body > 0 and int((vis > 0).sum()) > cfg.half_body_min_joints
                and rng.random() < cfg.prob_half_body):
            half = half_body_center_scale(joints, vis, self.spec, self.aspect_ratio, cfg, rng)
            if half is not None:
                center, scale = half
        scale = scale * (cfg.scale_shrink * rng.uniform(1.0 + cfg.scale_low, 1.0 + cfg.scale_high))
        rotation = 0.0
        if cfg.rotation > 0 and rng.random() < cfg.prob_rotation:
            rotation = float(rng.uniform(-cfg.rotation, cfg.rotation))
        flip = bool(cfg.prob_flip > 0 and rng.random() < cfg.prob_flip)
        return np.asarray(center, np.float32), np.asarray(scale, np.float32), rotation, flip

    def sample_affine(self, center, scale, rotation: float, flip: bool, image_width: int) -> np.ndarray:
        """The one 2x3 matrix from original image pixels to input pixels (flip composed in)."""
        if not flip:
            return crop_affine(center, scale, rotation, self.input_size)
        mirrored = np.array([image_width - 1.0 - float(center[0]), float(center[1])])
        crop = crop_affine(mirrored, scale, rotation, self.input_size)
        return compose_affine(crop, flip_matrix(image_width))

    # ------------------------------------------------------------------ sample
    def __call__(self, image: np.ndarray, record: dict) -> dict[str, Any]:
        img_w = image.shape[1]
        center, scale, rotation, flip = self.crop_params(record, img_w)
        m = self.sample_affine(center, scale, rotation, flip, img_w)
        crop = cv2.warpAffine(image, m, self.input_size, flags=cv2.INTER_LINEAR)
        if self._photo is not None:
            # albumentations' colour ops assume RGB
            crop = np.ascontiguousarray(self._photo(image=crop[..., ::-1])["image"][..., ::-1])

        k = self.spec.num_keypoints
        joints = np.zeros((k, 3), np.float32)
        src = np.asarray(record.get("joints", np.zeros((k, 3))), np.float64)
        vis = src[:, 2].copy()
        finite = np.isfinite(src[:, :2]).all(axis=1)
        vis[~finite] = 0
        xy = np.zeros((k, 2))
        xy[finite] = apply_affine(src[finite, :2], m)
        if flip:
            xy, vis = swap_flip_pairs(xy, self.spec.flip_pairs), swap_flip_pairs(vis, self.spec.flip_pairs)
        joints[:, :2], joints[:, 2] = xy, vis

        sample: dict[str, Any] = {"image": self.normalize(crop)}
        if self.with_targets:
            heatmaps, weight = self.codec.encode(xy, vis)
            sample["heatmaps"] = heatmaps
        else:
            weight = joint_target_weight(xy, vis, self.input_size)
        sample["target_weight"] = weight
        sample["joints"] = joints
        sample["image_id"] = np.int64(record.get("image_id", -1))
        sample["center"] = np.asarray(center, np.float32)
        sample["scale"] = np.asarray(scale, np.float32)
        sample["box_score"] = np.float32(record.get("box_score", 1.0))
        sample["area"] = np.float32(record.get("area", 0.0))
        sample["index"] = np.int64(record.get("index", -1))
        return sample
