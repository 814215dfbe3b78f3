"""The test-time settings: what a checkpoint records beside its codec and every inference path applies
(validation, rsn-eval, rsn-predict, rsn-export's metadata). Their defaults are the authors'
(caiyuanhao1998/RSN: ``test.py`` and ``dataset/attribute.py``): flip test without shift, the box
extension of the keypoint set, their rescoring, no OKS-NMS."""

from __future__ import annotations

# the names, in the order a checkpoint's ``test`` entry lists them
TEST_SETTINGS = ("flip", "flip_shift", "box_extension", "rescore", "score_threshold", "oks_nms", "nms_threshold")

# the authors' test box extension (x, y): x1.09 / x1.135 for COCO, x1.25 for MPII
AUTHORS_BOX_EXTENSION = {"coco": (0.09, 0.135), "mpii": (0.25, 0.25)}


def authors_test_settings(keypoints: str = "coco") -> dict:
    """The authors' test-time settings for the keypoint set ``keypoints`` (COCO's for a set they never used)."""
    x_ext, y_ext = AUTHORS_BOX_EXTENSION.get(str(keypoints), AUTHORS_BOX_EXTENSION["coco"])
    return {"flip": True, "flip_shift": False, "box_extension": [x_ext, y_ext], "rescore": "authors",
            "score_threshold": 0.2, "oks_nms": None, "nms_threshold": None}


def recorded_test_settings(record: dict) -> dict:
    """The settings a checkpoint dict records (its ``test`` entry), the authors' for the keys it lacks."""
    recorded = {k: v for k, v in (record.get("test") or {}).items() if k in TEST_SETTINGS}
    return {**authors_test_settings(record.get("keypoints") or "coco"), **recorded}


def with_given(settings: dict, given: dict) -> dict:
    """``settings`` with the values a user gave (not None) in their place: the one rule by which a typed
    value wins over a checkpoint's recorded one."""
    unknown = set(given) - set(TEST_SETTINGS)
    if unknown:
        raise ValueError(f"unknown test settings {sorted(unknown)}; expected some of {list(TEST_SETTINGS)}")
    return {**settings, **{k: v for k, v in given.items() if v is not None}}
