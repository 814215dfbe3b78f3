"""COCO keypoint metrics against pycocotools itself, on the real coco_mini files."""

from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from rsn_lightning.evaluation.coco_eval import STAT_NAMES, CocoKeypointEvaluator, coco_keypoint_stats
from rsn_lightning.keypoints import COCO_KEYPOINTS


def pycocotools_stats(gt_path, results, sigmas=None):
    """The reference: pycocotools' COCOeval called directly."""
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(gt_path))
        dt = gt.loadRes(results if isinstance(results, str) else [dict(r) for r in results])
        ev = COCOeval(gt, dt, "keypoints")
        if sigmas is not None:
            ev.params.kpt_oks_sigmas = np.asarray(sigmas)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return dict(zip(STAT_NAMES, ev.stats.tolist()))


@pytest.fixture(scope="module")
def paths(coco_mini_dir):
    return coco_mini_dir / "test_coco.json", coco_mini_dir / "example_coco_preds.json"


def gt_as_results(gt_path):
    gt = json.loads(gt_path.read_text())
    return [{"image_id": a["image_id"], "category_id": 1, "keypoints": a["keypoints"], "score": 1.0}
            for a in gt["annotations"] if a["num_keypoints"] > 0]


def test_ground_truth_gives_ap_one(paths):
    gt_path, _ = paths
    stats = coco_keypoint_stats(gt_path, gt_as_results(gt_path), per_keypoint=True)
    assert stats["AP"] == pytest.approx(1.0) and stats["AR"] == pytest.approx(1.0)
    # coco_mini has medium and large people, so every figure is defined
    for name in STAT_NAMES:
        assert stats[name] == pytest.approx(1.0), name
    assert all(v == pytest.approx(1.0) for v in stats["per_keypoint"]["oks"].values())
    assert all(v == pytest.approx(1.0) for v in stats["per_keypoint"]["accuracy"].values())


def test_example_predictions_match_pycocotools(paths):
    gt_path, res_path = paths
    expected = pycocotools_stats(gt_path, str(res_path))
    got = coco_keypoint_stats(str(gt_path), str(res_path))
    assert [got[n] for n in STAT_NAMES] == [expected[n] for n in STAT_NAMES]
    assert got["AP"] == pytest.approx(0.8609, abs=5e-5) and got["AR"] == pytest.approx(0.8750, abs=5e-5)


def test_custom_sigmas_are_used(paths):
    gt_path, res_path = paths
    sig = np.asarray(COCO_KEYPOINTS.sigmas) * 0.5
    expected = pycocotools_stats(gt_path, str(res_path), sigmas=sig)
    got = coco_keypoint_stats(gt_path, res_path, sigmas=sig)
    assert [got[n] for n in STAT_NAMES] == [expected[n] for n in STAT_NAMES]
    assert got["AP"] < coco_keypoint_stats(gt_path, res_path)["AP"]
    with pytest.raises(ValueError, match="sigmas"):
        coco_keypoint_stats(gt_path, res_path, sigmas=sig[:5])


def parse_results(path):
    res = json.loads(path.read_text())
    kp = np.array([r["keypoints"] for r in res], dtype=np.float64).reshape(len(res), -1, 3)
    scores = np.array([r["score"] for r in res])
    return res, kp[..., :2], kp[..., 2], scores, np.array([r["image_id"] for r in res])


def test_evaluator_from_arrays_matches_pycocotools(paths, tmp_path):
    gt_path, res_path = paths
    res, coords, jscores, scores, ids = parse_results(res_path)
    expected = pycocotools_stats(gt_path, str(res_path))
    ev = CocoKeypointEvaluator(gt_path, rescore="none")
    out = tmp_path / "results" / "val.json"
    # every instance twice with the same sample index, as a DDP sampler's padding would repeat them
    idx = np.arange(len(res))
    stats = ev.evaluate_arrays(np.concatenate([coords, coords]), np.concatenate([jscores, jscores]),
                               np.concatenate([scores, scores]), np.concatenate([ids, ids]),
                               results_path=out, sample_index=np.concatenate([idx, idx]))
    assert [stats[n] for n in STAT_NAMES] == [expected[n] for n in STAT_NAMES]
    written = json.loads(out.read_text())
    assert len(written) == len(res)
    assert [stats[n] for n in STAT_NAMES] == [pycocotools_stats(gt_path, str(out))[n] for n in STAT_NAMES]
    assert set(stats["per_keypoint"]["oks"]) == set(COCO_KEYPOINTS.names)


def test_evaluator_update_compute_with_authors_rescoring(paths):
    gt_path, res_path = paths
    _, coords, jscores, _, ids = parse_results(res_path)
    box = np.linspace(0.5, 1.0, len(ids))
    ev = CocoKeypointEvaluator(str(gt_path))
    half = len(ids) // 2
    ev.update(coords[:half], jscores[:half], box[:half], ids[:half])
    ev.update(coords[half:], jscores[half:], box[half:], ids[half:])
    stats = ev.compute()
    ref = [{"image_id": int(i), "category_id": 1, "score": float(b * s.mean()),
            "keypoints": np.concatenate([c, s[:, None]], 1).reshape(-1).tolist()}
           for c, s, b, i in zip(coords, jscores, box, ids)]
    expected = pycocotools_stats(gt_path, ref)
    assert [stats[n] for n in STAT_NAMES] == pytest.approx([expected[n] for n in STAT_NAMES], abs=1e-12)
    ev.reset()
    with pytest.warns(UserWarning, match="no keypoint results"):
        assert ev.compute()["AP"] == 0.0


def test_oks_nms_switch_removes_duplicates(paths):
    gt_path, res_path = paths
    _, coords, jscores, scores, ids = parse_results(res_path)
    dup = lambda a: np.concatenate([a, a])  # noqa: E731
    ev = CocoKeypointEvaluator(gt_path, rescore="none", oks_nms=True)
    results = ev.to_results({"coords": dup(coords), "scores": dup(jscores), "box_scores": dup(scores),
                             "image_ids": dup(ids), "areas": np.zeros(2 * len(ids)),
                             "index": np.full(2 * len(ids), -1)})
    assert len(results) <= len(ids)
    plain = CocoKeypointEvaluator(gt_path, rescore="none")
    assert len(plain.to_results({"coords": dup(coords), "scores": dup(jscores), "box_scores": dup(scores),
                                 "image_ids": dup(ids), "areas": np.zeros(2 * len(ids)),
                                 "index": np.full(2 * len(ids), -1)})) == 2 * len(ids)


def test_unknown_image_ids_dropped_with_warning(paths):
    gt_path, res_path = paths
    res = json.loads(res_path.read_text())
    extra = [dict(res[0], image_id=123456789), dict(res[1], image_id=987654321)]
    with pytest.warns(UserWarning, match="dropped 2 of"):
        got = coco_keypoint_stats(gt_path, res + extra)
    assert got == coco_keypoint_stats(gt_path, res)


def test_empty_results_give_zeros(paths):
    gt_path, _ = paths
    with pytest.warns(UserWarning, match="no keypoint results"):
        got = coco_keypoint_stats(gt_path, [])
    assert got == {n: 0.0 for n in STAT_NAMES}


def test_wrong_keypoint_length_names_the_entry(paths):
    gt_path, res_path = paths
    res = json.loads(res_path.read_text())
    res[5] = dict(res[5], keypoints=res[5]["keypoints"][:-3])
    with pytest.raises(ValueError, match=r"result #5 \(image_id=\d+\) has 48 keypoint values; expected 51"):
        coco_keypoint_stats(gt_path, res)


def test_missing_backend_is_a_clear_error(paths):
    pytest.importorskip("pycocotools")
    try:
        import faster_coco_eval  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="faster-coco-eval"):
            coco_keypoint_stats(paths[0], paths[1], backend="faster_coco_eval")
    with pytest.raises(ValueError, match="unknown COCO evaluation backend"):
        coco_keypoint_stats(paths[0], paths[1], backend="nope")


def test_per_keypoint_figures_single_out_the_perturbed_joint(paths):
    gt_path, _ = paths
    gt = json.loads(gt_path.read_text())
    anns = [a for a in gt["annotations"] if a["num_keypoints"] > 0]
    j, offset = 9, 6.0  # left wrist moved 6 px to the right in every prediction
    results = []
    for a in anns:
        kp = np.asarray(a["keypoints"], np.float64).reshape(17, 3)
        kp[j, 0] += offset
        results.append({"image_id": a["image_id"], "category_id": 1, "keypoints": kp.reshape(-1).tolist(),
                        "score": 1.0})
    fig = coco_keypoint_stats(gt_path, results, per_keypoint=True)["per_keypoint"]
    # COCO's per-joint term for that error, averaged over people whose left wrist is labelled
    var = (2 * COCO_KEYPOINTS.sigmas[j]) ** 2
    labelled = [a for a in anns if a["keypoints"][3 * j + 2] > 0]
    expected = np.mean([np.exp(-offset ** 2 / var / a["area"] / 2) for a in labelled])
    assert fig["oks"]["left_wrist"] == pytest.approx(expected, rel=1e-9)
    assert fig["count"]["left_wrist"] == len(labelled)
    assert fig["oks"]["right_wrist"] == pytest.approx(1.0)
    terms = [np.exp(-offset ** 2 / var / a["area"] / 2) for a in labelled]
    assert fig["accuracy"]["left_wrist"] == pytest.approx(np.mean(np.asarray(terms) >= 0.5))
