"""The test-time pipeline over a checkpoint, as a Python API: person boxes in, keypoints out.

Every step is the evaluation's own, configured by what the checkpoint records (``load_model``: ``net.codec``
and ``net.test_settings``) unless a keyword overrides it:

1. crop: ``TopDownTransform(train=False)``, the validation transform, with the recorded box extension
   (x1.09/x1.135 for the authors' COCO, x1.25 for MPII) and the checkpoint's input normalisation;
2. network: ``inference_network`` (batch norm folded, channels-last), with the flip test
   (``models.tta``) when recorded;
3. decoding: ``codec.decode`` back to image pixels;
4. post-processing (``evaluation.postprocess``): rescoring, per-image OKS-NMS, the COCO results entries.

A network that records nothing (a bare ``nn.Module``, or a file written without them) gets the authors'
settings for its keypoint set (``codec.authors_codec`` / ``test_settings.authors_test_settings``), with a
warning. A network whose weights or outputs are not finite is refused. Files, folders, videos and
detection files are ``inference.predict_files``' (what ``rsn-predict`` runs); detection files are parsed
by ``inference.detections``.
"""

from __future__ import annotations

import dataclasses
import logging
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from rsn_lightning.codec import HeatmapCodec, authors_codec
from rsn_lightning.data.transforms import AUGMENT_PRESETS, TopDownTransform
from rsn_lightning.errors import BadInputError
from rsn_lightning.evaluation.postprocess import RESCORE_MODES, coco_results, nms_mode, select_instances
from rsn_lightning.inference.detections import box_is_valid
from rsn_lightning.keypoints import KeypointSpec, get_keypoint_spec
from rsn_lightning.models.fuse import inference_network
from rsn_lightning.models.tta import flip_test
from rsn_lightning.normalization import InputNormalization
from rsn_lightning.strict_device import to_device
from rsn_lightning.test_settings import TEST_SETTINGS, authors_test_settings, with_given

log = logging.getLogger(__name__)


@dataclass
class PoseResult:
    """One image's people: keypoints [P, K, 2] image px, joint scores [P, K], boxes [P, 4] xywh,
    box scores [P] and instance scores [P]."""

    keypoints: np.ndarray
    scores: np.ndarray
    boxes: np.ndarray
    box_scores: np.ndarray
    instance_scores: np.ndarray
    image_id: int = 0
    file_name: str = ""
    frame: int | None = None

    def __len__(self) -> int:
        return int(self.keypoints.shape[0])

    def to_coco(self, category_id: int = 1) -> list[dict]:
        """COCO results entries, with the person ``bbox``, ``file_name`` and, for video frames, ``frame``."""
        entries = coco_results(np.full(len(self), self.image_id), self.keypoints, self.scores,
                               self.instance_scores, category_id, boxes=self.boxes)
        for entry in entries:
            entry["file_name"] = self.file_name
            if self.frame is not None:
                entry["frame"] = self.frame
        return entries


@dataclass
class ImageInput:
    """One uint8 BGR image with its person boxes [P, 4] xywh and box scores [P], for ``Predictor.predict_stream``."""

    image: np.ndarray
    boxes: np.ndarray
    box_scores: np.ndarray
    image_id: int = 0
    file_name: str = ""
    frame: int | None = None


def resolve_device(device) -> torch.device:
    if device in (None, "auto", ""):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _recorded_settings(model: nn.Module, keypoints: str) -> tuple[HeatmapCodec, dict]:
    codec, test = getattr(model, "codec", None), getattr(model, "test_settings", None)
    missing = [name for name, value in (("codec", codec), ("test_settings", test)) if value is None]
    if missing:
        log.warning("the network records no %s: predicting with the authors' settings for %s keypoints",
                    " or ".join(missing), keypoints)
    if codec is None:
        codec = authors_codec(keypoints, getattr(model, "input_size", None))
    return codec, {**authors_test_settings(keypoints), **(test or {})}


class Predictor:
    """Pose prediction from a checkpoint path (``rsn_lightning.load_model``) or a network.

    The network's ``codec`` (input size, decoding), ``test_settings`` (flip test, box extension,
    rescoring, OKS-NMS), ``normalization`` and ``keypoints`` are applied. Keywords left as None keep
    them; given ones win: ``codec`` (a ``HeatmapCodec``, or a dict of its fields to change, e.g.
    ``{"decode": "dark"}``), and the test settings ``flip``, ``flip_shift``, ``box_extension`` [x, y],
    ``rescore``, ``score_threshold``, ``oks_nms``, ``nms_threshold``.
    """

    def __init__(self, model, device=None, batch_size: int = 32, *, codec: HeatmapCodec | dict | None = None,
                 flip: bool | None = None, flip_shift: bool | None = None, box_extension=None,
                 rescore: str | None = None, score_threshold: float | None = None, oks_nms=None,
                 nms_threshold: float | None = None, keypoint_spec: KeypointSpec | None = None,
                 normalization: InputNormalization | None = None):
        if isinstance(model, (str, Path)):
            from rsn_lightning import load_model

            model = load_model(model)
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a checkpoint path or an nn.Module, got {type(model).__name__}")
        broken = [name for name, t in list(model.named_parameters()) + list(model.named_buffers())
                  if t.is_floating_point() and not bool(torch.isfinite(t).all())]
        if broken:
            raise BadInputError(f"the network has NaN/Inf values in {len(broken)} weight tensors (e.g. "
                                f"{broken[:3]}): a diverged or damaged checkpoint, whose predictions would be "
                                "meaningless; refusing to predict with it")
        if keypoint_spec is None:
            kp = getattr(model, "keypoints", None) or "coco"
            keypoint_spec = kp if isinstance(kp, KeypointSpec) else get_keypoint_spec(str(kp))
        self.spec = keypoint_spec
        recorded_codec, recorded = _recorded_settings(model, self.spec.name)
        if isinstance(codec, dict):
            codec = recorded_codec.replace(**{k: v for k, v in codec.items() if v is not None})
        self.codec: HeatmapCodec = codec or recorded_codec
        given = {"flip": flip, "flip_shift": flip_shift, "box_extension": box_extension, "rescore": rescore,
                 "score_threshold": score_threshold, "oks_nms": oks_nms, "nms_threshold": nms_threshold}
        self.settings = with_given({k: recorded.get(k) for k in TEST_SETTINGS}, given)
        self._check_settings()
        norm = normalization or getattr(model, "normalization", None)
        self.normalization = norm if isinstance(norm, InputNormalization) else InputNormalization.from_dict(norm)
        x_ext, y_ext = (float(v) for v in self.settings["box_extension"])
        augment = dataclasses.replace(AUGMENT_PRESETS["coco"], test_x_ext=x_ext, test_y_ext=y_ext)
        self.transform = TopDownTransform(self.codec.input_size, self.spec, train=False, augment=augment,
                                          normalization=self.normalization, with_targets=False)
        self.device = resolve_device(device)
        self.net = inference_network(model, self.device)
        self.batch_size = max(1, int(batch_size))

    def _check_settings(self) -> None:
        s = self.settings
        ext = s["box_extension"]
        if np.ndim(ext) != 1 or len(ext) != 2 or not all(np.isfinite(float(v)) and float(v) >= 0 for v in ext):
            raise ValueError(f"box_extension={ext!r}: expected [x, y], two numbers >= 0 (0.25 enlarges by 25%)")
        if s["rescore"] not in RESCORE_MODES:
            raise ValueError(f"rescore={s['rescore']!r}: expected one of {RESCORE_MODES}")
        nms_mode(s["oks_nms"])

    @property
    def input_size(self) -> tuple[int, int]:
        return self.codec.input_size

    def describe(self) -> str:
        """The settings in one line, for logs."""
        s = self.settings
        return (f"input {self.input_size[0]}x{self.input_size[1]}, box extension x{1 + s['box_extension'][0]:g}/"
                f"x{1 + s['box_extension'][1]:g}, flip test {'on' if s['flip'] else 'off'}, "
                f"{self.codec.decode_method} decoding, rescoring {s['rescore']}, OKS-NMS {s['oks_nms'] or 'off'}")

    # ------------------------------------------------------------------ core
    @torch.no_grad()
    def heatmaps(self, batch: np.ndarray) -> np.ndarray:
        """Normalised crops [N, 3, H, W] -> heatmaps [N, K, H/4, W/4] (flip test if enabled)."""
        out = []
        for start in range(0, batch.shape[0], self.batch_size):
            x = to_device(torch.from_numpy(np.ascontiguousarray(batch[start:start + self.batch_size])), self.device,
                          module=self.net)
            x = x.contiguous(memory_format=torch.channels_last)
            if self.settings["flip"]:
                hm = flip_test(self.net, x, self.spec.flip_index, bool(self.settings["flip_shift"]))
            else:
                hm = self.net(x)
            if not bool(torch.isfinite(hm).all()):
                raise BadInputError("the network's heatmaps contain NaN/Inf: its predictions would be "
                                    "meaningless; refusing to write them")
            out.append(hm.float().cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, self.spec.num_keypoints, 1, 1), np.float32)

    def crops(self, image_bgr: np.ndarray, boxes: np.ndarray):
        """Person boxes [P, 4] xywh -> (normalised crops [P, 3, H, W], centers [P, 2], scales [P, 2]), cut by
        the validation transform (the record holds the box's centre and size, as the datasets' do)."""
        samples = []
        for x, y, w, h in np.asarray(boxes, np.float64).reshape(-1, 4):
            record = {"center": np.array([x + w * 0.5, y + h * 0.5], np.float32),
                      "scale": np.array([w, h], np.float32)}
            samples.append(self.transform(image_bgr, record))
        if not samples:
            w, h = self.input_size
            return np.zeros((0, 3, h, w), np.float32), np.zeros((0, 2)), np.zeros((0, 2))
        return tuple(np.stack([s[key] for s in samples]) for key in ("image", "center", "scale"))

    def _finish(self, item: ImageInput, coords, scores, scales) -> PoseResult:
        s = self.settings
        keep, inst = select_instances(coords, scores, item.box_scores, np.zeros(len(coords)),
                                      np.prod(scales, axis=1), s["rescore"], s["score_threshold"], s["oks_nms"],
                                      s["nms_threshold"], self.spec.sigmas)
        return PoseResult(coords[keep], scores[keep], item.boxes[keep], item.box_scores[keep], inst[keep],
                          item.image_id, item.file_name, item.frame)

    def _process(self, group: list[ImageInput]) -> Iterator[PoseResult]:
        parts = [self.crops(it.image, it.boxes) for it in group]
        batch = np.concatenate([p[0] for p in parts])
        if batch.shape[0]:
            coords, scores = self.codec.decode(self.heatmaps(batch), np.concatenate([p[1] for p in parts]),
                                               np.concatenate([p[2] for p in parts]))
        start = 0
        for it, (crops, _, scales) in zip(group, parts):
            n = crops.shape[0]
            if n == 0:
                k = self.spec.num_keypoints
                yield self._finish(it, np.zeros((0, k, 2)), np.zeros((0, k)), np.zeros((0, 2)))
            else:
                yield self._finish(it, coords[start:start + n], scores[start:start + n], scales)
            start += n

    # ------------------------------------------------------------------ python API
    def predict_stream(self, items: Iterable[ImageInput]) -> Iterator[PoseResult]:
        """One ``PoseResult`` per ``ImageInput``, in order; crops of several images share a network batch."""
        group, count = [], 0
        for it in items:
            group.append(it)
            count += len(it.boxes)
            if count >= self.batch_size:
                yield from self._process(group)
                group, count = [], 0
        if group:
            yield from self._process(group)

    def predict_image(self, image_bgr: np.ndarray, boxes=None, box_scores=None, image_id: int = 0,
                      file_name: str = "") -> PoseResult:
        """People in one uint8 BGR image: ``boxes`` [P, 4] xywh (None: the whole image is one person;
        an empty array: nobody, an empty result)."""
        if image_bgr is None or image_bgr.ndim != 3 or image_bgr.shape[2] != 3:
            raise ValueError("predict_image needs an HxWx3 uint8 BGR image (as cv2.imread returns)")
        if boxes is None:
            h, w = image_bgr.shape[:2]
            boxes, box_scores = np.array([[0.0, 0.0, w, h]]), np.ones(1)
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        box_scores = np.ones(len(boxes)) if box_scores is None else np.asarray(box_scores, np.float64).reshape(-1)
        valid = np.array([box_is_valid(b) for b in boxes], bool).reshape(-1)
        if not valid.all():
            warnings.warn(f"skipped {int((~valid).sum())} boxes of zero size or with NaN/Inf values: "
                          f"{boxes[~valid][:3].tolist()}", stacklevel=2)
            boxes, box_scores = boxes[valid], box_scores[valid]
        return next(self.predict_stream([ImageInput(image_bgr, boxes, box_scores, image_id, file_name)]))
