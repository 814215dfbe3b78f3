"""COCO keypoint AP/AR through pycocotools (or faster-coco-eval), and the validation evaluator.

``coco_keypoint_stats`` hands the results to ``COCOeval(..., "keypoints")`` unchanged, so its 10 numbers
are exactly pycocotools' for the same files. Before that it checks every entry, because pycocotools
takes anything and answers a number: results whose keypoints are all NaN score AP 1.000, NaN scores
give an arbitrary ranking, a wrong ``category_id`` gives AP 0, and keypoints given as strings crash it.
Such entries are errors naming the entry (``on_invalid="raise"``, the default) or are dropped with one
warning counting them per reason (``on_invalid="drop"``). Results for images outside the ground truth
are dropped with a warning. Ground-truth annotations pycocotools cannot score (a wrong number of
keypoint values, non-numeric or non-finite ones) are left out with a warning, as the data loader skips
them, so validation never crashes on them.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import logging
import warnings
from pathlib import Path

import numpy as np

from rsn_lightning.errors import BadInputError, load_json
from rsn_lightning.evaluation.coco_checks import check_results, load_results, person_category, scorable_annotations
from rsn_lightning.evaluation.postprocess import RESCORE_MODES, coco_results, nms_mode, select_instances
from rsn_lightning.keypoints import COCO_KEYPOINTS

log = logging.getLogger(__name__)

STAT_NAMES = ("AP", "AP50", "AP75", "APM", "APL", "AR", "AR50", "AR75", "ARM", "ARL")
BACKENDS = ("pycocotools", "faster_coco_eval")


def _backend_classes(backend: str):
    if backend == "pycocotools":
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval

        return COCO, COCOeval
    if backend in ("faster_coco_eval", "faster-coco-eval"):
        try:
            from faster_coco_eval import COCO, COCOeval_faster
        except ImportError as err:
            raise ImportError(
                "backend='faster_coco_eval' needs the faster-coco-eval package, which is not installed: "
                "pip install 'rsn-lightning[fast-eval]' (or use backend='pycocotools')"
            ) from err
        return COCO, COCOeval_faster
    raise ValueError(f"unknown COCO evaluation backend {backend!r}; expected one of {BACKENDS}")


def load_coco_gt(gt_json, backend: str = "pycocotools"):
    """A COCO ground-truth object from a path, a dict or an existing COCO object (printing silenced)."""
    coco_cls, _ = _backend_classes(backend)
    if isinstance(gt_json, coco_cls):
        return gt_json
    if isinstance(gt_json, dict):
        dataset, source = copy.deepcopy(gt_json), "the ground truth"
    else:
        dataset, source = load_json(gt_json, "COCO ground-truth file"), str(gt_json)
    if not isinstance(dataset, dict) or not isinstance(dataset.get("annotations"), list) \
            or not isinstance(dataset.get("images"), list):
        raise ValueError(f"{source} is not a COCO annotation file (needs 'images' and 'annotations' lists)")
    dataset["annotations"] = scorable_annotations(dataset, source)
    with contextlib.redirect_stdout(io.StringIO()):
        gt = coco_cls()
        gt.dataset = dataset
        gt.createIndex()
    return gt


def _zero_stats() -> dict[str, float]:
    return {name: 0.0 for name in STAT_NAMES}


def run_cocoeval(gt, results: list[dict], sigmas, backend: str = "pycocotools"):
    """An evaluated, accumulated, summarised COCOeval (keypoints) of ``results`` (already checked)."""
    _, eval_cls = _backend_classes(backend)
    # loadRes writes area/bbox/id into the entries: hand it copies, the caller's list stays intact
    dts = [dict(r) for r in results]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        dt = gt.loadRes(dts)
        ev = eval_cls(gt, dt, "keypoints")
        ev.params.kpt_oks_sigmas = np.asarray(sigmas, dtype=np.float64)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    log.debug("COCOeval summary:\n%s", out.getvalue())
    return ev


def coco_keypoint_stats(gt_json, results_json, sigmas=None, backend: str = "pycocotools",
                        per_keypoint: bool = False, per_keypoint_thr: float = 0.5,
                        on_invalid: str = "raise") -> dict:
    """COCO keypoint AP/AR (pycocotools' ``COCOeval('keypoints').stats``) of a results file or list.

    ``sigmas`` default to COCO's; a custom keypoint set passes its own (as pycocotools'
    ``params.kpt_oks_sigmas``). Results for unknown image ids are dropped with a warning; no results
    gives all zeros with a warning; an entry that cannot be scored (wrong number of keypoint values,
    NaN/Inf/text keypoints or score, another category, no integer image_id) raises naming it, or with
    ``on_invalid="drop"`` is left out with a warning. With
    ``per_keypoint=True`` the dict also holds ``"per_keypoint"`` (see ``analysis``).
    """
    gt = load_coco_gt(gt_json, backend)
    cat = person_category(gt)
    names = tuple(cat["keypoints"])
    sig = np.asarray(COCO_KEYPOINTS.sigmas if sigmas is None else sigmas, dtype=np.float64)
    if len(sig) != len(names):
        raise ValueError(f"{len(sig)} OKS sigmas for a ground truth with {len(names)} keypoints "
                         f"({names[:3]}...): pass the keypoint set's sigmas")
    results = check_results(load_results(results_json), gt, len(names), on_invalid)
    if not results:
        warnings.warn("no keypoint results to evaluate: every COCO statistic is 0", stacklevel=2)
        stats = _zero_stats()
        if per_keypoint:
            from rsn_lightning.evaluation.analysis import per_keypoint_summary

            stats["per_keypoint"] = per_keypoint_summary(np.zeros((0, len(names))), names, per_keypoint_thr)
        return stats
    ev = run_cocoeval(gt, results, sig, backend)
    stats = {name: float(v) for name, v in zip(STAT_NAMES, ev.stats)}
    if per_keypoint:
        from rsn_lightning.evaluation.analysis import per_keypoint_from_cocoeval

        try:
            stats["per_keypoint"] = per_keypoint_from_cocoeval(ev, names, sig, per_keypoint_thr)
        except (KeyError, TypeError, AttributeError) as err:
            # the figures read pycocotools' evalImgs layout; another backend may keep it differently
            if backend == "pycocotools":
                raise
            warnings.warn(f"per-keypoint figures unavailable with backend {backend!r}: {err}", stacklevel=2)
    return stats


class CocoKeypointEvaluator:
    """Collects top-down predictions, writes the COCO results JSON and computes AP/AR.

    Use ``reset() / update(...) / compute(path)`` per validation epoch, or ``evaluate_arrays`` on
    arrays already gathered from all ranks. Instance scores follow ``rescore``: ``"authors"`` (box score
    x mean joint score), ``"mmpose"`` (mean of joint scores above ``score_threshold``) or ``"none"``
    (``box_scores`` are taken as the final instance scores). ``oks_nms`` (off by default) suppresses
    duplicates per image: True/"oks" (hard, ``nms_threshold`` 0.9) or "soft" (soft-OKS, 0.3).
    """

    def __init__(self, ann_file, sigmas=None, rescore: str = "authors", score_threshold: float = 0.2,
                 oks_nms=None, nms_threshold: float | None = None, backend: str = "pycocotools",
                 category_id: int | None = None, per_keypoint_thr: float = 0.5):
        if rescore not in RESCORE_MODES:
            raise ValueError(f"rescore must be one of {RESCORE_MODES}, got {rescore!r}")
        self.ann_file = ann_file
        self.sigmas = None if sigmas is None else tuple(float(s) for s in sigmas)
        self.rescore = rescore
        self.score_threshold = float(score_threshold)
        self.nms_mode = nms_mode(oks_nms)
        self.nms_threshold = nms_threshold
        self.backend = backend
        self.category_id = category_id
        self.per_keypoint_thr = per_keypoint_thr
        self._gt = None
        self.reset()

    # ---------------------------------------------------------------- accumulation
    def reset(self) -> None:
        self._parts: list[dict[str, np.ndarray]] = []

    def update(self, coords, scores, box_scores, image_ids, areas=None, sample_index=None) -> None:
        """Add N instances: coords [N, K, 2] image px, joint scores [N, K], box scores [N], image ids [N];
        optional areas [N] (for OKS-NMS) and unique sample indices [N] (for de-duplication)."""
        coords = np.asarray(coords, np.float64)
        n = coords.shape[0]
        part = {
            "coords": coords,
            "scores": np.asarray(scores, np.float64).reshape(n, -1),
            "box_scores": np.asarray(box_scores, np.float64).reshape(n),
            "image_ids": np.asarray(image_ids).reshape(n).astype(np.int64),
            "areas": np.zeros(n) if areas is None else np.asarray(areas, np.float64).reshape(n),
            "index": np.full(n, -1, np.int64) if sample_index is None
            else np.asarray(sample_index).reshape(n).astype(np.int64),
        }
        if part["scores"].shape[1] != coords.shape[1]:
            raise ValueError(f"coords have {coords.shape[1]} keypoints but scores {part['scores'].shape[1]}")
        self._parts.append(part)

    def _collected(self) -> dict[str, np.ndarray]:
        if not self._parts:
            return {}
        data = {k: np.concatenate([p[k] for p in self._parts]) for k in self._parts[0]}
        has_index = data["index"] >= 0
        if has_index.any():
            # DDP samplers repeat samples to even out ranks: keep each sample index's first occurrence
            _, first = np.unique(data["index"][has_index], return_index=True)
            keep = np.concatenate([np.flatnonzero(has_index)[first], np.flatnonzero(~has_index)])
            keep.sort()
            data = {k: v[keep] for k, v in data.items()}
        return data

    # ---------------------------------------------------------------- results
    @property
    def gt(self):
        if self._gt is None:
            self._gt = load_coco_gt(self.ann_file, self.backend)
        return self._gt

    def _sigmas(self, num_keypoints: int):
        if self.sigmas is not None:
            return self.sigmas
        if num_keypoints == COCO_KEYPOINTS.num_keypoints:
            return COCO_KEYPOINTS.sigmas
        raise ValueError(f"{num_keypoints} keypoints but no sigmas given: pass the keypoint set's OKS sigmas")

    def to_results(self, data: dict[str, np.ndarray]) -> list[dict]:
        """COCO results entries (image_id, category_id, keypoints, score) after rescoring and NMS."""
        if not data or data["coords"].shape[0] == 0:
            return []
        coords = data["coords"]
        sigmas = self._sigmas(coords.shape[1]) if self.nms_mode is not None else None
        keep, inst = select_instances(coords, data["scores"], data["box_scores"], data["image_ids"], data["areas"],
                                      self.rescore, self.score_threshold, self.nms_mode, self.nms_threshold, sigmas)
        cat_id = self.category_id if self.category_id is not None else int(person_category(self.gt)["id"])
        return coco_results(data["image_ids"][keep], coords[keep], data["scores"][keep], inst[keep], cat_id)

    def compute(self, results_path=None) -> dict:
        """Write the results JSON to ``results_path`` (if given) and return the 10 COCO stats plus
        ``"per_keypoint"`` figures (a nested dict: per-joint mean OKS term and OKS accuracy)."""
        data = self._collected()
        if data:
            finite = np.isfinite(data["coords"]).all(axis=(1, 2)) & np.isfinite(data["scores"]).all(axis=1)
            finite &= np.isfinite(data["box_scores"])
            if not finite.all():
                raise BadInputError(
                    f"{int((~finite).sum())} of {finite.size} predictions have NaN/Inf keypoints or scores "
                    f"(e.g. image ids {data['image_ids'][~finite][:5].tolist()}): the network's outputs are "
                    "not finite (diverged or broken weights), so no AP is computed")
        results = self.to_results(data)
        if results_path is not None:
            path = Path(results_path)
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "w") as f:
                json.dump(results, f, allow_nan=False)
        k = data["coords"].shape[1] if data else len(person_category(self.gt)["keypoints"])
        return coco_keypoint_stats(self.gt, results, sigmas=self._sigmas(k), backend=self.backend,
                                   per_keypoint=True, per_keypoint_thr=self.per_keypoint_thr)

    def evaluate_arrays(self, coords, scores, box_scores, image_ids, results_path=None, sample_index=None,
                        areas=None) -> dict:
        """One-shot evaluation of arrays (e.g. gathered from all DDP ranks): reset, update, compute."""
        self.reset()
        self.update(coords, scores, box_scores, image_ids, areas=areas, sample_index=sample_index)
        return self.compute(results_path)
