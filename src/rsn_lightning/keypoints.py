"""Keypoint sets: names, left/right flip pairs, skeleton, OKS sigmas and body halves.

One `KeypointSpec` describes everything the data pipeline, the loss, decoding, the metrics and the
drawing code need to know about a keypoint set, so a custom COCO-format set only has to provide one.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class KeypointSpec:
    name: str
    names: tuple[str, ...]
    flip_pairs: tuple[tuple[int, int], ...]
    # 0-based joint index pairs; the limbs drawn and the COCO category's skeleton (1-based there)
    skeleton: tuple[tuple[int, int], ...]
    # per-joint OKS sigmas (COCO's are the published ones; others are a reasonable default)
    sigmas: tuple[float, ...]
    upper_body_ids: tuple[int, ...]
    lower_body_ids: tuple[int, ...]
    extra: dict = field(default_factory=dict, compare=False)

    def __post_init__(self):
        k = len(self.names)
        if len(self.sigmas) != k:
            raise ValueError(f"keypoint set '{self.name}': {len(self.sigmas)} sigmas for {k} keypoints")
        for a, b in (*self.flip_pairs, *self.skeleton):
            if not (0 <= a < k and 0 <= b < k):
                raise ValueError(f"keypoint set '{self.name}': pair ({a}, {b}) outside 0..{k - 1}")

    @property
    def num_keypoints(self) -> int:
        return len(self.names)

    @property
    def flip_index(self) -> np.ndarray:
        """Permutation that maps each joint to its mirror partner (itself for central joints)."""
        idx = np.arange(self.num_keypoints)
        for a, b in self.flip_pairs:
            idx[a], idx[b] = b, a
        return idx

    def coco_category(self, category_id: int = 1) -> dict:
        """The category entry of a COCO keypoint annotation file (skeleton is 1-based there)."""
        return {
            "id": category_id,
            "name": "person",
            "supercategory": "person",
            "keypoints": list(self.names),
            "skeleton": [[a + 1, b + 1] for a, b in self.skeleton],
        }

    @classmethod
    def from_coco_category(cls, category: dict, flip_pairs=None, sigmas=None, name="custom") -> KeypointSpec:
        """Build a spec for a custom COCO-format keypoint set.

        Flip pairs default to names that differ only by a left/right prefix; sigmas default to 0.05
        (about COCO's mean), which a user should replace with measured ones for a new set.
        """
        names = tuple(category["keypoints"])
        skeleton = tuple((a - 1, b - 1) for a, b in category.get("skeleton", []))
        if flip_pairs is None:
            flip_pairs = infer_flip_pairs(names)
        if sigmas is None:
            sigmas = (0.05,) * len(names)
        upper = tuple(range(len(names)))
        return cls(name, names, tuple(map(tuple, flip_pairs)), skeleton, tuple(sigmas), upper, ())


def infer_flip_pairs(names) -> tuple[tuple[int, int], ...]:
    pairs = []
    index = {n: i for i, n in enumerate(names)}
    for i, n in enumerate(names):
        for left, right in (("left_", "right_"), ("l_", "r_"), ("left", "right")):
            if n.startswith(left) and right + n[len(left):] in index:
                pairs.append((i, index[right + n[len(left):]]))
                break
    return tuple(pairs)


COCO_KEYPOINTS = KeypointSpec(
    name="coco",
    names=(
        "nose", "left_eye", "right_eye", "left_ear", "right_ear",
        "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
        "left_wrist", "right_wrist", "left_hip", "right_hip",
        "left_knee", "right_knee", "left_ankle", "right_ankle",
    ),
    flip_pairs=((1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16)),
    # COCO's own category skeleton, converted to 0-based
    skeleton=(
        (15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6), (5, 7),
        (6, 8), (7, 9), (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6),
    ),
    sigmas=(
        0.026, 0.025, 0.025, 0.035, 0.035, 0.079, 0.079, 0.072, 0.072,
        0.062, 0.062, 0.107, 0.107, 0.087, 0.087, 0.089, 0.089,
    ),
    # the authors' split (dataset/attribute.py): hips count as upper body too
    upper_body_ids=tuple(range(13)),
    lower_body_ids=(11, 12, 13, 14, 15, 16),
)

MPII_KEYPOINTS = KeypointSpec(
    name="mpii",
    names=(
        "right_ankle", "right_knee", "right_hip", "left_hip", "left_knee", "left_ankle",
        "pelvis", "thorax", "upper_neck", "head_top",
        "right_wrist", "right_elbow", "right_shoulder", "left_shoulder", "left_elbow", "left_wrist",
    ),
    flip_pairs=((0, 5), (1, 4), (2, 3), (10, 15), (11, 14), (12, 13)),
    skeleton=(
        (0, 1), (1, 2), (2, 6), (6, 3), (3, 4), (4, 5), (6, 7), (7, 8), (8, 9),
        (7, 12), (12, 11), (11, 10), (7, 13), (13, 14), (14, 15),
    ),
    # MPII has no OKS sigmas; these (mmpose's choice) only matter for OKS-NMS on MPII
    sigmas=(0.089, 0.083, 0.107, 0.107, 0.083, 0.089, 0.026, 0.026, 0.026, 0.026,
            0.062, 0.072, 0.179, 0.179, 0.072, 0.062),
    upper_body_ids=(7, 8, 9, 10, 11, 12, 13, 14, 15),
    lower_body_ids=(0, 1, 2, 3, 4, 5, 6),
)

KEYPOINT_SPECS = {"coco": COCO_KEYPOINTS, "mpii": MPII_KEYPOINTS}


def get_keypoint_spec(name: str) -> KeypointSpec:
    try:
        return KEYPOINT_SPECS[name]
    except KeyError:
        raise KeyError(f"unknown keypoint set '{name}'; known: {sorted(KEYPOINT_SPECS)}") from None
