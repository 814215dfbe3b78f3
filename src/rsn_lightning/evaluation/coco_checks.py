"""What pycocotools can score: the checks of COCO keypoint results entries and ground-truth annotations,
which pycocotools itself takes unchecked (NaN keypoints score AP 1.000, text keypoints crash it)."""

from __future__ import annotations

import math
import numbers
import warnings
from pathlib import Path

from rsn_lightning.errors import load_json


def _finite_numbers(values, length: int | None = None) -> bool:
    if not isinstance(values, (list, tuple)) or (length is not None and len(values) != length):
        return False
    return all(isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v) for v in values)


def scorable_annotations(dataset: dict, source: str = "the ground truth") -> list:
    """The ground-truth annotations pycocotools can score: those of the keypoint category with a list
    of 3 x K finite numbers, a finite area and box (annotations of other categories pass unchanged).
    The rest are left out with one warning counting them: the data loader skips them too."""
    cats = [c for c in dataset.get("categories", []) if isinstance(c, dict) and c.get("keypoints")]
    if not cats:
        return dataset["annotations"]
    k, cat_id = len(cats[0]["keypoints"]), cats[0].get("id")
    kept, dropped = [], {}
    for ann in dataset["annotations"]:
        reason = None
        if not isinstance(ann, dict) or "image_id" not in ann or "id" not in ann:
            reason = "malformed entry (no image_id or id)"
        elif ann.get("category_id") == cat_id:
            if not _finite_numbers(ann.get("keypoints"), 3 * k):
                reason = f"keypoints not {3 * k} finite numbers"
            elif not _finite_numbers([ann.get("area", 0.0)]) or not _finite_numbers(ann.get("bbox", [0] * 4), 4):
                reason = "area or bbox not finite numbers"
        if reason is None:
            kept.append(ann)
        else:
            dropped.setdefault(reason, []).append(ann.get("id", "?") if isinstance(ann, dict) else "?")
    for reason, ids in dropped.items():
        warnings.warn(f"{source}: left out {len(ids)} ground-truth annotations pycocotools cannot score: "
                      f"{reason} (e.g. ids {ids[:5]})", stacklevel=3)
    return kept


def person_category(gt) -> dict:
    """The ground truth's keypoint category (the first category with ``keypoints``)."""
    cats = [c for c in gt.dataset.get("categories", []) if c.get("keypoints")]
    if not cats:
        raise ValueError("the ground truth has no category with 'keypoints': not a COCO keypoint file")
    return cats[0]


def load_results(results_json) -> list[dict]:
    """COCO keypoint results as a list, from a JSON file path or a list already loaded."""
    if isinstance(results_json, (str, Path)):
        results = load_json(results_json, "COCO results file")
    else:
        results = results_json
    if isinstance(results, dict):
        raise ValueError("COCO keypoint results must be a JSON list of {image_id, category_id, keypoints, "
                         "score} entries, got an object (is this a ground-truth file?)")
    return list(results)


ON_INVALID = ("raise", "drop")


def result_problem(r, num_keypoints: int, category_id) -> str | None:
    """Why a results entry cannot be scored, or None when it can."""
    if not isinstance(r, dict):
        return f"is a {type(r).__name__}, not an object"
    missing = [k for k in ("image_id", "keypoints", "score") if k not in r]
    if missing:
        return f"lacks {missing}"
    image_id = r["image_id"]
    if not isinstance(image_id, numbers.Integral) or isinstance(image_id, bool):
        return f"has image_id {image_id!r}, not an integer"
    if r.get("category_id", category_id) != category_id:
        return (f"has category_id {r.get('category_id')!r}, but the ground truth's keypoint category is "
                f"{category_id}")
    kps = r["keypoints"]
    if not isinstance(kps, (list, tuple)) or len(kps) != 3 * num_keypoints:
        n = len(kps) if isinstance(kps, (list, tuple)) else type(kps).__name__
        return (f"has {n} keypoint values; expected {3 * num_keypoints} (x, y, score for each of the "
                f"{num_keypoints} keypoints)")
    if not _finite_numbers(kps):
        return "has keypoint values that are not finite numbers (NaN, Inf or text)"
    if not _finite_numbers([r["score"]]):
        return f"has score {r['score']!r}, not a finite number"
    return None


def check_results(results: list, gt, num_keypoints: int, on_invalid: str = "raise") -> list[dict]:
    """Validate entries (``on_invalid``: 'raise' names the first bad entry; 'drop' leaves bad ones out
    with a warning counting them) and drop those for images outside the ground truth (with a warning)."""
    if on_invalid not in ON_INVALID:
        raise ValueError(f"on_invalid must be one of {ON_INVALID}, got {on_invalid!r}")
    category_id = person_category(gt).get("id")
    good, bad = [], {}
    for i, r in enumerate(results):
        problem = result_problem(r, num_keypoints, category_id)
        if problem is None:
            good.append(r)
            continue
        image_id = r.get("image_id") if isinstance(r, dict) else None
        if on_invalid == "raise":
            raise ValueError(f"result #{i} (image_id={image_id}) {problem}; pass on_invalid='drop' to "
                             "leave such entries out")
        bad.setdefault(problem.split(",")[0], []).append(i)
    for problem, idx in bad.items():
        warnings.warn(f"dropped {len(idx)} of {len(results)} results that cannot be scored: {problem} "
                      f"(e.g. entries {idx[:5]})", stacklevel=3)
    results = good
    known = set(gt.getImgIds())
    kept = [r for r in results if r["image_id"] in known]
    dropped = len(results) - len(kept)
    if dropped:
        unknown = sorted({r["image_id"] for r in results if r["image_id"] not in known})
        warnings.warn(
            f"dropped {dropped} of {len(results)} results whose image ids are not in the ground truth "
            f"({len(unknown)} image ids, e.g. {unknown[:5]})",
            stacklevel=3,
        )
    return kept
