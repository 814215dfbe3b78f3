"""The keypoint errors of Ronchi & Perona's taxonomy for one detection matched to one person, as
matteorr/coco-analyze (commit 9eb8a0a) labels and corrects them, and coco-analyze's parameters:

- Each keypoint labelled in the matched person is scored by its keypoint similarity (KS) to every
  labelled keypoint of every person in the image, as labelled and left/right flipped. With the best
  KS ``m``: good if ``m > 0.85`` on the matched person's own keypoint; jitter if ``0.5 <= m < 0.85``
  there; inversion if ``m >= 0.5`` on the matched person's flipped keypoint; swap if ``m >= 0.5`` on
  another person (as labelled or flipped); miss if ``m < 0.5``.
- A corrected keypoint sits on the person's keypoint, moved along x by coco-analyze's distance
  ``sqrt(-2 ln(t) area sigma^2)`` with t = 0.85 (jitter), 0.5 (miss) or the KS it had with the wrong
  keypoint (inversion, swap). As COCO's KS is ``exp(-d^2 / (8 sigma^2 area))``, that distance gives a
  KS of t^(1/4) (0.96 for jitter, 0.84 for a miss), not t; kept so the numbers equal coco-analyze's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rsn_lightning.keypoints import COCO_KEYPOINTS

KEYPOINT_ERRORS = ("miss", "swap", "inversion", "jitter")  # coco-analyze's correction order
LABELS = ("good", "jitter", "inversion", "swap", "miss")
CORRECTIONS = (*KEYPOINT_ERRORS, "score", "background_fp", "false_negatives")


@dataclass(frozen=True)
class AnalysisParams:
    """coco-analyze's parameters (``pycocotools/cocoanalyze.py`` Params and analysisAPI)."""

    sigmas: tuple[float, ...] = COCO_KEYPOINTS.sigmas
    flip_index: tuple[int, ...] = tuple(COCO_KEYPOINTS.flip_index.tolist())
    oks_thresholds: tuple[float, ...] = (.5, .55, .6, .65, .7, .75, .8, .85, .9, .95)
    localization_oks: float = 0.1
    jitter_range: tuple[float, float] = (0.5, 0.85)
    max_dets: int = 20
    # coco-analyze's "all" leaves people under 32^2 pixels out (COCO's own "all" starts at 0)
    area_range: tuple[float, float] = (32.0 ** 2, 1e5 ** 2)


def classify_keypoints(dt_xy, gt_kpts, gt_area, others=(), sigmas=COCO_KEYPOINTS.sigmas,
                       flip_index=None, jitter_range=(0.5, 0.85)):
    """Label each keypoint of one detection matched to one person.

    ``dt_xy`` [K, 2] detected keypoints; ``gt_kpts`` [K, 3] the matched person's (x, y, v) and
    ``gt_area`` its area; ``others`` the image's other people as ``(kpts [K, 3], area)``.
    Returns ``(labels, corrected_xy)``: ``labels`` maps each of good/jitter/inversion/swap/miss to a
    0/1 int array [K] (all 0 for keypoints unlabelled in the person) and ``corrected_xy`` [K, 2] holds
    the corrected keypoints (see the module docstring).
    """
    dt_xy = np.asarray(dt_xy, np.float64).reshape(-1, 2)
    k = len(dt_xy)
    gt_kpts = np.asarray(gt_kpts, np.float64).reshape(k, 3)
    sigmas = np.asarray(sigmas, np.float64)
    flip = np.asarray(flip_index if flip_index is not None else np.arange(k))
    people = [(gt_kpts, float(gt_area))] + [(np.asarray(p, np.float64).reshape(k, 3), float(a)) for p, a in others]
    n = len(people)
    # rows: the matched person, the others, then the same people flipped (coco-analyze's layout)
    rows = [p for p, _ in people] + [p[flip] for p, _ in people]
    pts = np.stack([r[:, :2] for r in rows])
    vis = np.stack([r[:, 2] for r in rows])
    areas = np.array([a for _, a in people] * 2)
    sq = ((pts - dt_xy[None]) ** 2).sum(-1)
    ks = np.exp(-sq / (sigmas * 2) ** 2 / (areas[:, None] + np.spacing(1)) / 2) * (vis > 0) - 1 * (vis == 0)
    best = ks.max(axis=0)
    best[best < 0] = 0
    where = ks.argmax(axis=0)
    lo, hi = jitter_range
    labelled = gt_kpts[:, 2] != 0
    labels = {
        "good": (best > hi) & (where == 0) & labelled,
        "jitter": (best >= lo) & (best < hi) & (where == 0) & labelled,
        "inversion": (best >= lo) & (where == n) & labelled,
        "swap": (best >= lo) & (where != 0) & (where != n) & labelled,
        "miss": (best < lo) & labelled,
    }
    labels = {name: v.astype(int) for name, v in labels.items()}
    # the distance along x at which the person's own keypoint has a given similarity
    var_area = 2 * gt_area * sigmas ** 2
    to_lo = np.sqrt(-np.log(lo) * var_area)
    to_hi = np.sqrt(-np.log(hi) * var_area)
    best_open = best + np.spacing(1) * (best == 0) - np.spacing(1) * (best == 1)
    to_best = np.sqrt(-np.log(best_open) * var_area)
    gx, gy = gt_kpts[:, 0], gt_kpts[:, 1]
    unlabelled = (~labelled).astype(int)
    good, jit, inv, swap, miss = (labels[n_] for n_ in LABELS)
    cx = (dt_xy[:, 0] * good + (gx + to_hi) * jit + (gx + to_lo) * miss + dt_xy[:, 0] * unlabelled
          + (gx + to_best) * inv + (gx + to_best) * swap)
    cy = dt_xy[:, 1] * good + gy * jit + gy * miss + dt_xy[:, 1] * unlabelled + gy * inv + gy * swap
    return labels, np.stack([cx, cy], axis=1)
