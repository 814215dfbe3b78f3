"""Why a pose model loses AP: the error taxonomy of Ronchi & Perona ("Benchmarking and Error Diagnosis
in Multi-Instance Pose Estimation", ICCV 2017), computed as their release matteorr/coco-analyze
(commit 9eb8a0a) computes it, count for count (tests/evaluation/test_error_analysis.py compares both
on a crafted results file). Pure: numpy and pycocotools, no Lightning.

The definitions, as in coco-analyze:

- Detections are matched to people by pycocotools' greedy matching at OKS 0.1 (``localization_oks``)
  over people of area >= 32^2 (coco-analyze's "all": ``area_range``), 20 detections per image.
- Each keypoint of a matched detection is labelled good, jitter, inversion, swap or miss and
  corrected as ``evaluation.keypoint_errors`` describes.
- Scoring: each detection's optimal score is its best OKS to any person of the evaluated area range
  (at OKS 0.5, after the keypoint corrections), then a Gaussian soft-NMS over each image
  (``score * exp(-oks^2 / 0.5)``, OKS between detections on the mean keypoint-box area).
- Background false positives: detections matched to nobody at an OKS threshold; false negatives:
  people matched by no detection there. Correcting them ignores those detections / people.

AP after correction: cumulative in the order miss, swap, inversion, jitter, score, background FP,
false negatives (the AP after the last step is 1.0 whenever every person has a keypoint), and each
alone (coco-analyze's errorsAPImpact: the false negatives alone are measured on top of the background
FPs, as there).
"""

from __future__ import annotations

import contextlib
import copy
import io

import numpy as np

from rsn_lightning.evaluation.coco_checks import check_results, load_results, person_category
from rsn_lightning.evaluation.coco_eval import load_coco_gt
from rsn_lightning.evaluation.keypoint_errors import KEYPOINT_ERRORS, LABELS, AnalysisParams, classify_keypoints
from rsn_lightning.keypoints import COCO_KEYPOINTS, infer_flip_pairs


@contextlib.contextmanager
def _quiet():
    with contextlib.redirect_stdout(io.StringIO()):
        yield


class ErrorAnalysis:
    """The analysis of one results file against one ground truth; :meth:`run` returns the report.

    ``gt``: a COCO keypoint file path, dict or pycocotools COCO; ``results``: a results file path or
    list. As coco-analyze's ``run_analysis.py``, results for images outside the ground truth are
    dropped and only the ``max_dets`` highest-scored detections of each image are kept.
    """

    def __init__(self, gt, results, params: AnalysisParams | None = None):
        from pycocotools.cocoeval import COCOeval

        self.gt = load_coco_gt(gt)
        category = person_category(self.gt)
        self.names = tuple(category["keypoints"])
        if params is None:
            if self.names == COCO_KEYPOINTS.names:
                params = AnalysisParams()
            else:  # a custom keypoint set: flip pairs by name, the KeypointSpec default sigma
                flip = np.arange(len(self.names))
                for a, b in infer_flip_pairs(self.names):
                    flip[a], flip[b] = b, a
                params = AnalysisParams(sigmas=(0.05,) * len(self.names), flip_index=tuple(flip.tolist()))
        if len(params.sigmas) != len(self.names) or len(params.flip_index) != len(self.names):
            raise ValueError(f"{len(params.sigmas)} sigmas / {len(params.flip_index)} flip indices for a ground "
                             f"truth with {len(self.names)} keypoints")
        self.params = params
        self.category_id = category["id"]
        raw = check_results(load_results(results), self.gt, len(self.names))
        for i, r in enumerate(raw):
            if r.get("category_id", self.category_id) != self.category_id:
                raise ValueError(f"result #{i} has category_id {r['category_id']}; the ground truth's keypoint "
                                 f"category is {self.category_id}")
        by_image: dict[int, list] = {}
        for i, r in enumerate(raw):
            by_image.setdefault(r["image_id"], []).append({**r, "category_id": self.category_id, "result_index": i})
        kept = [d for dts in by_image.values() for d in sorted(dts, key=lambda d: -d["score"])[: params.max_dets]]
        if not kept:
            raise ValueError("no results for the ground truth's images: nothing to analyse")
        with _quiet():
            self.dt = self.gt.loadRes(copy.deepcopy(kept))
        self.dts = self.dt.loadAnns(self.dt.getAnnIds())
        self._original = {d["id"]: (list(d["keypoints"]), d["score"]) for d in self.dts}
        self.team_max_dets = max(len(v) for v in by_image.values())
        self.coco_eval = COCOeval(self.gt, self.dt, "keypoints")
        self.coco_eval.params.kpt_oks_sigmas = np.asarray(params.sigmas, np.float64)
        self.coco_eval.params.imgIds = sorted(self.gt.getImgIds())
        self.coco_eval.params.catIds = [self.category_id]
        self.coco_eval.params.areaRng = [list(params.area_range)]
        self.coco_eval.params.areaRngLbl = ["all"]
        self.labels: dict[int, dict] = {}  # detection id -> keypoint labels
        self.corrected: dict[int, np.ndarray] = {}  # detection id -> corrected [K, 3]
        self.matches: dict[int, tuple[int, float]] = {}  # detection id -> (person id, OKS) at localization_oks

    # -- evaluation plumbing -------------------------------------------------------------------------
    def _reset(self):
        for d in self.dts:
            d["keypoints"], d["score"] = self._original[d["id"]]

    def _evaluate(self, thresholds, max_dets=None):
        p = self.coco_eval.params
        p.iouThrs = np.asarray(sorted(thresholds), np.float64)
        p.maxDets = [max_dets or self.params.max_dets]
        with _quiet():
            self.coco_eval.evaluate()
        return [e for e in self.coco_eval.evalImgs if e is not None]

    def _precision(self) -> np.ndarray:
        with _quiet():
            self.coco_eval.accumulate()
        return self.coco_eval.eval["precision"][:, :, 0, 0, 0].copy()  # [T, R]

    def _ap(self, step: str) -> dict:
        return self._ap_of(step, self._precision())

    def _ap_of(self, step: str, precision: np.ndarray) -> dict:
        thr = np.asarray(self.params.oks_thresholds)
        per_oks = [float(np.mean(p[p > -1])) if (p > -1).any() else -1.0 for p in precision]
        valid = precision[precision > -1]

        def at(t):
            i = np.flatnonzero(np.isclose(thr, t))
            return per_oks[int(i[0])] if len(i) else None

        return {"error": step, "AP": float(valid.mean()) if valid.size else -1.0, "AP50": at(0.5), "AP75": at(0.75),
                "AP_per_oks": per_oks}

    def _matches(self, thresholds):
        """{threshold: (detection id -> person id, matched person ids)} by pycocotools' matching."""
        evals = self._evaluate(thresholds)
        out = {}
        for t_index, t in enumerate(sorted(thresholds)):
            dt_to_gt, gts = {}, set()
            for e in evals:
                for d_index, dt_id in enumerate(e["dtIds"]):
                    g = int(e["dtMatches"][t_index][d_index])
                    if g:
                        dt_to_gt[dt_id] = g
                        gts.add(g)
                for g_index, gt_id in enumerate(e["gtIds"]):
                    if int(e["gtMatches"][t_index][g_index]):
                        gts.add(gt_id)
            out[t] = (dt_to_gt, gts)
        return out

    # -- keypoint errors -------------------------------------------------------------------------------
    def find_keypoint_errors(self):
        self._reset()
        t = self.params.localization_oks
        evals = self._evaluate([t])
        k = len(self.names)
        for e in evals:
            img = e["image_id"]
            ious = self.coco_eval.ious[img, self.category_id]
            gts_order = [g["id"] for g in self.coco_eval._gts[img, self.category_id]]
            dts_order = [d["id"] for d in sorted(self.coco_eval._dts[img, self.category_id],
                                                 key=lambda d: -d["score"])]
            anns = self.gt.loadAnns(self.gt.getAnnIds(imgIds=img))
            for d_index, dt_id in enumerate(e["dtIds"]):
                gt_id = int(e["dtMatches"][0][d_index])
                if not gt_id:
                    continue
                oks = float(ious[dts_order.index(dt_id), gts_order.index(gt_id)])
                self.matches[dt_id] = (gt_id, oks)
                gt = self.gt.anns[gt_id]
                if gt["num_keypoints"] == 0:  # nothing to diagnose, as coco-analyze
                    continue
                dt = np.asarray(self.dt.anns[dt_id]["keypoints"], np.float64).reshape(k, 3)
                others = [(a["keypoints"], a["area"]) for a in anns if a["id"] != gt_id]
                labels, xy = classify_keypoints(dt[:, :2], gt["keypoints"], gt["area"], others, self.params.sigmas,
                                                self.params.flip_index, self.params.jitter_range)
                self.labels[dt_id] = labels
                self.corrected[dt_id] = np.concatenate([xy, dt[:, 2:]], axis=1)

    def _apply_keypoint_corrections(self, errors):
        """Move the keypoints labelled with any of ``errors`` to their corrected place."""
        for d in self.dts:
            labels = self.labels.get(d["id"])
            if labels is None:
                continue
            mask = np.sum([labels[e] for e in errors], axis=0) == 1
            if not mask.any():
                continue
            kpts = np.asarray(d["keypoints"], np.float64).reshape(-1, 3).copy()
            kpts[mask, :2] = self.corrected[d["id"]][mask, :2]
            d["keypoints"] = kpts.reshape(-1).tolist()

    # -- scores ------------------------------------------------------------------------------------------
    def optimal_scores(self) -> dict[int, float]:
        """Each detection's best OKS to a person of the area range, then soft-NMS (on the current
        keypoints, i.e. after whatever corrections are applied)."""
        evals = self._evaluate([min(self.params.oks_thresholds)], max_dets=self.team_max_dets)
        best = {d["id"]: 0.0 for d in self.dts}
        for e in evals:
            img = e["image_id"]
            ious = np.asarray(self.coco_eval.ious[img, self.category_id])
            kept = [i for i, g in enumerate(self.coco_eval._gts[img, self.category_id]) if not g["_ignore"]]
            if ious.size == 0 or not kept or not e["dtIds"]:
                continue
            row_max = ious[:, kept].max(axis=1)
            for dt_id, value in zip(e["dtIds"], row_max):
                best[dt_id] = float(value)
        variances = (np.asarray(self.params.sigmas) * 2) ** 2
        scores = {}
        for img in self.coco_eval.params.imgIds:
            pending = [{"id": d["id"], "kpts": np.asarray(d["keypoints"], np.float64), "score": best[d["id"]]}
                       for d in self.coco_eval._dts[img, self.category_id]]
            while pending:
                pending.sort(key=lambda c: -c["score"])
                top = pending.pop(0)
                scores[top["id"]] = top["score"]
                mx, my = top["kpts"][0::3], top["kpts"][1::3]
                m_area = (mx.max() - mx.min()) * (my.max() - my.min())
                for c in pending:
                    cx, cy = c["kpts"][0::3], c["kpts"][1::3]
                    c_area = (cx.max() - cx.min()) * (cy.max() - cy.min())
                    e = ((cx - mx) ** 2 + (cy - my) ** 2) / variances / ((.5 * (m_area + c_area)) + np.spacing(1)) / 2
                    oks = np.sum(np.exp(-e)) / e.shape[0]
                    c["score"] = c["score"] * np.exp(-(oks ** 2) / .5)
        return scores

    def _apply_scores(self, scores):
        for d in self.dts:
            d["score"] = scores[d["id"]]

    # -- background errors -----------------------------------------------------------------------------
    def _background(self):
        """Per OKS threshold, the unmatched detections and people, on the current detections."""
        matches = self._matches(self.params.oks_thresholds)
        all_gt = self.gt.getAnnIds()
        fp = {t: {d["id"] for d in self.dts if d["id"] not in m[0]} for t, m in matches.items()}
        fn = {t: {g for g in all_gt if g not in m[1]} for t, m in matches.items()}
        return fp, fn

    def _background_aps(self, fp, fn):
        """AP without the background FPs, then also without the false negatives (on the current
        detections), as coco-analyze's _summarize_bckgd_errors."""
        thresholds = sorted(self.params.oks_thresholds)
        evals = self._evaluate(thresholds)
        for t_index, t in enumerate(thresholds):
            for e in evals:
                for d_index, dt_id in enumerate(e["dtIds"]):
                    if dt_id in fp[t]:
                        e["dtIgnore"][t_index][d_index] = True
        without_fp = self._precision()
        without_fn = np.empty_like(without_fp)
        for t_index, t in enumerate(thresholds):
            for e in evals:
                for g_index, gt_id in enumerate(e["gtIds"]):
                    if gt_id in fn[t]:
                        e["gtIgnore"][g_index] = 1
            without_fn[t_index] = self._precision()[t_index]
        return without_fp, without_fn

    # -- the whole study -------------------------------------------------------------------------------
    def run(self) -> dict:
        thresholds = self.params.oks_thresholds
        self._reset()
        self._evaluate(thresholds)
        baseline = self._ap("original")
        self.find_keypoint_errors()

        cumulative = [baseline]
        self._reset()
        for err in KEYPOINT_ERRORS:
            self._apply_keypoint_corrections([err])
            self._evaluate(thresholds)
            cumulative.append(self._ap(err))
        self._reset()
        self._apply_keypoint_corrections(KEYPOINT_ERRORS)
        self._apply_scores(self.optimal_scores())
        self._evaluate(thresholds)
        cumulative.append(self._ap("score"))
        fp, fn = self._background()
        without_fp, without_fn = self._background_aps(fp, fn)
        cumulative += [self._ap_of("background_fp", without_fp), self._ap_of("false_negatives", without_fn)]

        alone = []
        for err in KEYPOINT_ERRORS:
            self._reset()
            self._apply_keypoint_corrections([err])
            self._evaluate(thresholds)
            alone.append(self._ap(err))
        self._reset()
        self._apply_scores(self.optimal_scores())
        self._evaluate(thresholds)
        alone.append(self._ap("score"))
        self._reset()
        fp0, fn0 = self._background()
        alone_fp, alone_fn = self._background_aps(fp0, fn0)
        alone += [self._ap_of("background_fp", alone_fp), self._ap_of("false_negatives", alone_fn)]
        self._reset()
        return self._report(cumulative, alone, fp0, fn0)

    def _report(self, cumulative, alone, fp, fn) -> dict:
        names = self.names
        counts = {name: np.zeros(len(names), int) for name in LABELS}
        for labels in self.labels.values():
            for name in LABELS:
                counts[name] += labels[name]
        base = cumulative[0]
        # the false negatives alone are measured on top of the background FPs (errorsAPImpact)
        reference = {e["error"]: base for e in alone}
        reference["false_negatives"] = alone[-2]
        improvement = {e["error"]: {m: e[m] - reference[e["error"]][m] for m in ("AP", "AP50", "AP75")} for e in alone}
        first = min(self.params.oks_thresholds)
        fp_all = sorted(fp[first])
        fn_all = sorted(fn[first])

        def counted(gt_id):  # a person the evaluation counts (not crowd, has keypoints, in the area range)
            g = self.gt.anns[gt_id]
            lo, hi = self.params.area_range
            return not g.get("iscrowd", 0) and g.get("num_keypoints", 0) > 0 and lo <= g["area"] <= hi

        return {
            "ground_truth_people": sum(counted(g) for g in self.gt.getAnnIds()),
            "detections": len(self.dts),
            "matched_detections": len(self.labels),
            "params": {"localization_oks": self.params.localization_oks, "jitter_range": list(self.params.jitter_range),
                       "area_range": list(self.params.area_range), "max_dets": self.params.max_dets,
                       "oks_thresholds": list(self.params.oks_thresholds)},
            "keypoint_errors": {name: int(counts[name].sum()) for name in LABELS},
            "per_keypoint": {n: {name: int(counts[name][j]) for name in LABELS} for j, n in enumerate(names)},
            "ap_after_correction": cumulative,
            "ap_each_alone": alone,
            "ap_improvement_alone": improvement,
            "background_fp": {
                "count": len(fp_all),
                "per_oks": {f"{t:g}": len(v) for t, v in fp.items()},
                "result_indices": sorted(self.dt.anns[i]["result_index"] for i in fp_all),
            },
            "false_negatives": {
                "count": sum(counted(g) for g in fn_all),
                "per_oks": {f"{t:g}": sum(counted(g) for g in v) for t, v in fn.items()},
                "annotation_ids": [g for g in fn_all if counted(g)],
                # coco-analyze's own count also lists people the evaluation ignores (crowd, no keypoints, small)
                "per_oks_all_annotations": {f"{t:g}": len(v) for t, v in fn.items()},
            },
            "matches": [{"result_index": self.dt.anns[d]["result_index"], "annotation_id": g, "oks": oks,
                         "area": float(self.gt.anns[g]["area"])} for d, (g, oks) in sorted(self.matches.items())],
        }


def analyze(gt, results, params: AnalysisParams | None = None) -> dict:
    """The error-analysis report (a JSON-ready dict) of ``results`` against ``gt``."""
    return ErrorAnalysis(gt, results, params).run()
