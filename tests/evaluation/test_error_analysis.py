"""The Ronchi & Perona error taxonomy (evaluation/error_analysis.py) on hand-made cases whose answer is
known, and on a crafted coco_mini results file against the numbers matteorr/coco-analyze gives."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rsn_lightning.evaluation.error_analysis import ErrorAnalysis, analyze
from rsn_lightning.evaluation.keypoint_errors import classify_keypoints
from rsn_lightning.keypoints import COCO_KEYPOINTS

from .crafted_results import crafted_results, distance_for_similarity

# a standing person 60 px wide, 100 px tall (COCO joint order), offsets from the body centre
TEMPLATE = np.array([(0, -40), (4, -44), (-4, -44), (8, -42), (-8, -42), (15, -25), (-15, -25), (22, -5), (-22, -5),
                     (25, 15), (-25, 15), (10, 10), (-10, 10), (12, 30), (-12, 30), (12, 48), (-12, 48)], float)
AREA = 10000.0
L_WRIST, R_WRIST = 9, 10


def person(cx, cy=100.0):
    kp = np.c_[TEMPLATE + (cx, cy), np.full(17, 2.0)]
    return kp


def ground_truth(centres):
    anns = []
    for i, cx in enumerate(centres):
        kp = person(cx)
        anns.append({"id": i + 1, "image_id": 1, "category_id": 1, "iscrowd": 0, "num_keypoints": 17, "area": AREA,
                     "bbox": [cx - 30, 50, 60, 100], "keypoints": kp.reshape(-1).tolist()})
    return {"images": [{"id": 1, "width": 400, "height": 200, "file_name": "x.jpg"}], "annotations": anns,
            "categories": [COCO_KEYPOINTS.coco_category()]}


def detection(kp, score=0.9):
    kp = np.asarray(kp, float).copy()
    kp[:, 2] = 1.0
    return {"image_id": 1, "category_id": 1, "keypoints": kp.reshape(-1).tolist(), "score": score}


def labels_of(gt, results):
    a = ErrorAnalysis(gt, results)
    a.find_keypoint_errors()
    return a, {d: {k: np.flatnonzero(v).tolist() for k, v in lab.items()} for d, lab in a.labels.items()}


def test_exchanged_wrists_are_inversions():
    gt = ground_truth([60, 200])
    p = person(60)
    p[[L_WRIST, R_WRIST]] = p[[R_WRIST, L_WRIST]]
    _, labels = labels_of(gt, [detection(p), detection(person(200))])
    assert labels[1]["inversion"] == [L_WRIST, R_WRIST]
    assert labels[1]["good"] == [j for j in range(17) if j not in (L_WRIST, R_WRIST)]
    assert labels[2]["good"] == list(range(17))


def test_wrist_on_another_persons_wrist_is_a_swap():
    gt = ground_truth([60, 200])
    p = person(60)
    p[L_WRIST] = person(200)[L_WRIST]
    _, labels = labels_of(gt, [detection(p)])
    assert labels[1]["swap"] == [L_WRIST]
    assert labels[1]["miss"] == labels[1]["jitter"] == labels[1]["inversion"] == []


def test_small_offset_is_jitter_and_far_is_miss():
    gt = ground_truth([60, 200])
    p = person(60)
    p[L_WRIST, 0] += distance_for_similarity(AREA, L_WRIST, 0.7)  # similarity 0.7: in [0.5, 0.85)
    p[R_WRIST, 1] += 80.0  # far below, near nobody's keypoint
    a, labels = labels_of(gt, [detection(p)])
    assert labels[1]["jitter"] == [L_WRIST]
    assert labels[1]["miss"] == [R_WRIST]
    # corrected keypoints sit on the person's, moved along x; coco-analyze's distance is
    # sqrt(-2 ln(t) area sigma^2), which puts them at similarity t^(1/4), not t (0.96 for jitter, 0.84 for miss)
    gt_kp = person(60)
    for joint, t in ((L_WRIST, 0.85), (R_WRIST, 0.5)):
        np.testing.assert_allclose(a.corrected[1][joint, 1], gt_kp[joint, 1])
        np.testing.assert_allclose(a.corrected[1][joint, 0], gt_kp[joint, 0] + distance_for_similarity(
            AREA, joint, t ** 0.25), rtol=1e-9)


def test_unlabelled_keypoints_get_no_label():
    gt = person(60)
    gt[3, 2] = 0
    labels, corrected = classify_keypoints(person(60)[:, :2] + 50, gt, AREA, flip_index=COCO_KEYPOINTS.flip_index)
    assert sum(v[3] for v in labels.values()) == 0
    assert sum(v.sum() for v in labels.values()) == 16
    np.testing.assert_array_equal(corrected[3], person(60)[3, :2] + 50)  # left where the detection put it


def test_undetected_person_is_a_false_negative_and_everything_corrected_gives_ap_1():
    gt = ground_truth([60, 200, 330])
    p = person(60)
    p[[L_WRIST, R_WRIST]] = p[[R_WRIST, L_WRIST]]
    q = person(200)
    q[:, 0] += 3.0
    background = person(330)
    background[:, 1] -= 200  # nobody up there
    report = analyze(gt, [detection(p, 0.5), detection(q, 0.9), detection(background, 0.95)])
    assert report["false_negatives"]["count"] == 1
    assert report["false_negatives"]["annotation_ids"] == [3]
    assert report["background_fp"]["count"] == 1
    assert report["background_fp"]["result_indices"] == [2]
    assert report["keypoint_errors"]["inversion"] == 2
    steps = report["ap_after_correction"]
    assert [s["error"] for s in steps] == ["original", "miss", "swap", "inversion", "jitter", "score",
                                           "background_fp", "false_negatives"]
    assert steps[0]["AP"] < 0.7
    assert steps[-1]["AP"] == steps[-1]["AP50"] == steps[-1]["AP75"] == 1.0
    assert all(b["AP"] >= a["AP"] - 1e-12 for a, b in zip(steps, steps[1:]))


# matteorr/coco-analyze's numbers for crafted_results(coco_mini/test_coco.json): see the docstring below
CA_KEYPOINT_ERRORS = {"good": 139, "jitter": 18, "inversion": 5, "swap": 1, "miss": 3}
CA_PER_KEYPOINT = {
    "good": [9, 8, 8, 5, 9, 9, 9, 8, 8, 8, 6, 9, 9, 9, 9, 8, 8],
    "jitter": [1, 1, 0, 1, 0, 1, 1, 2, 2, 1, 1, 1, 0, 2, 2, 1, 1],
    "inversion": [0, 0, 0, 0, 0, 1, 1, 0, 0, 1, 1, 0, 1, 0, 0, 0, 0],
    "swap": [0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0],
    "miss": [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0, 0, 1, 0],
}
_A, _B, _C, _D, _E = 0.8349834983, 0.7707539985, 0.6397562833, 0.5209444021, 0.3180779616
_F, _G, _H = 0.9108910891, 0.8316831683, 0.4204805096
CA_CUMULATIVE = {  # AP at OKS 0.5, 0.55, ..., 0.95 after each cumulative correction (area "all", 20 dets)
    "original": [_A, _A, _B, _B, _B, _B, _C, _D, _E, 0.2330540746],
    "miss": [_A, _A, _B, _B, _B, _B, _B, _C, _H, _E],
    "swap": [_A, _A, _B, _B, _B, _B, _B, _C, _H, _H],
    "inversion": [_A, _A, _A, _B, _B, _B, _B, _B, 0.676590736, 0.676590736],
    "jitter": [_A] * 8 + [0.7560756076] * 2,
    "score": [_F] * 8 + [_G] * 2,
    "background_fp": [_F] * 8 + [_G] * 2,
    "false_negatives": [1.0] * 10,
}
CA_ALONE = {  # errorsAPImpact: each correction on its own (false negatives on top of background FPs)
    "miss": [_A, _A, _B, _B, _B, _B, _B, _C, _H, _E],
    "swap": [_A, _A, _B, _B, _B, _B, _C, _D, _E, _E],
    "inversion": [_A, _A, _A, _B, _B, _B, _B, _C, 0.5441390293, _E],
    "jitter": [_A] * 7 + [0.5643564356, 0.3717371737, 0.2330540746],
    "score": [_F] * 6 + [_G, 0.7524752475, 0.5841584158, 0.504950495],
    "background_fp": [_F] * 6 + [_G, 0.7524752475, 0.5841584158, 0.504950495],
    "false_negatives": [1.0] * 10,
}
CA_FALSE_POS_PER_OKS = [2, 2, 2, 2, 2, 2, 3, 4, 6, 7]
CA_FALSE_NEG_PER_OKS = [3, 3, 3, 3, 3, 3, 4, 5, 7, 8]  # every unmatched annotation, ignored ones included


def test_crafted_coco_mini_results_match_coco_analyze(coco_mini_dir, tmp_path):
    """The crafted file (``crafted_results``) against matteorr/coco-analyze, run once by hand:

    fetched github.com/matteorr/coco-analyze at commit 9eb8a0a; in /tmp, its ``pycocotools/cocoeval.py``
    and ``cocoanalyze.py`` laid over a copy of the installed pycocotools (for ``coco.py``/``_mask``),
    with local shims for today's numpy (``np.float = float``; an int ``num`` in ``np.linspace``) and
    empty stand-ins for the plotting-only ``colour`` and ``skimage.io`` imports. A driver loaded the
    results as its ``run_analysis.py`` does (top 20 per image by score, ``loadRes``), then read:
    the counts as ``analysisAPI/localizationErrors.py`` sets up (area [32^2, 1e10], ``analyze(True,
    False, False)``, sums of each matched detection's good/jitter/inversion/swap/miss flags); the
    cumulative AP from ``params.err_types = ['miss', 'swap', 'inversion', 'jitter']``, ``analyze(True,
    True, True)``, ``summarize()`` (``stats`` 'auc' per OKS threshold); the each-alone AP as
    ``analysisAPI/errorsAPImpact.py`` loops; the false positives/negatives per OKS from its
    ``false_pos_dts``/``false_neg_gts`` after ``analyze(False, False, True)``. coco-analyze lists the
    false-negative step's per-threshold values in reverse threshold order (``_summarize_bckgd_errors``
    stores them ascending, every other step descending); here they are all 1.0, so the order does not
    show. The same driver on 6 randomly perturbed files and coco_mini's example predictions gave
    identical numbers too (not part of the suite)."""
    gt = json.loads((coco_mini_dir / "test_coco.json").read_text())
    results = tmp_path / "crafted.json"
    results.write_text(json.dumps(crafted_results(gt)))
    report = analyze(coco_mini_dir / "test_coco.json", results)

    assert report["keypoint_errors"] == CA_KEYPOINT_ERRORS
    for label, counts in CA_PER_KEYPOINT.items():
        assert [report["per_keypoint"][n][label] for n in COCO_KEYPOINTS.names] == counts, label
    for step in report["ap_after_correction"]:
        np.testing.assert_allclose(step["AP_per_oks"], CA_CUMULATIVE[step["error"]], atol=1e-9, err_msg=step["error"])
        assert step["AP50"] == pytest.approx(CA_CUMULATIVE[step["error"]][0], abs=1e-9)
        assert step["AP75"] == pytest.approx(CA_CUMULATIVE[step["error"]][5], abs=1e-9)
    for step in report["ap_each_alone"]:
        np.testing.assert_allclose(step["AP_per_oks"], CA_ALONE[step["error"]], atol=1e-9, err_msg=step["error"])
    assert list(report["background_fp"]["per_oks"].values()) == CA_FALSE_POS_PER_OKS
    assert list(report["false_negatives"]["per_oks_all_annotations"].values()) == CA_FALSE_NEG_PER_OKS
    # what the crafted file was built to contain
    assert report["false_negatives"]["annotation_ids"] == [531914]
    assert report["background_fp"]["result_indices"] == [5, 12]  # the low-scored duplicate and the empty corner
    assert report["ap_after_correction"][-1]["AP"] == 1.0


def test_rsn_analyze_console_script(coco_mini_dir, tmp_path):
    """The README's command, through the installed console script, from a folder outside the repo."""
    gt = json.loads((coco_mini_dir / "test_coco.json").read_text())
    (tmp_path / "crafted.json").write_text(json.dumps(crafted_results(gt)))
    cmd = [str(Path(sys.executable).parent / "rsn-analyze")]  # installed by pip install -e . (pyproject)
    proc = subprocess.run([*cmd, str(coco_mini_dir / "test_coco.json"), "crafted.json", "--out", "analysis"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "inversion" in proc.stdout and "false negatives: 1 of 12 people" in proc.stdout
    report = json.loads((tmp_path / "analysis" / "error_analysis.json").read_text())
    assert report["keypoint_errors"] == CA_KEYPOINT_ERRORS
    for name in ("keypoint_errors.png", "ap_improvement.png", "oks_by_size.png"):
        assert (tmp_path / "analysis" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    bad = subprocess.run([*cmd, str(coco_mini_dir / "test_coco.json"), "missing.json", "--out", "x"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "missing.json" in bad.stderr
