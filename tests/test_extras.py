"""Optional dependencies (pyproject extras): the feature that needs a missing one says which extra to
install; the README's first command needs none of them."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from rsn_lightning.data.mpii import load_head_boxes
from rsn_lightning.data.transforms import COCO_AUGMENT, AugmentConfig, TopDownTransform
from rsn_lightning.errors import UserFacingError
from rsn_lightning.extras import MissingExtraError
from rsn_lightning.keypoints import COCO_KEYPOINTS

COLOR = AugmentConfig.from_dict(dict(color_prob=1.0), COCO_AUGMENT)


def test_photometric_augmentation_without_albumentations_names_the_extra(monkeypatch):
    TopDownTransform((96, 128), COCO_KEYPOINTS, train=True, augment=COLOR)  # installed here (dev): builds
    monkeypatch.setitem(sys.modules, "albumentations", None)  # what `import albumentations` meets when absent
    with pytest.raises(MissingExtraError, match=r"color_prob.*albumentations.*rsn-lightning\[augment\]") as err:
        TopDownTransform((96, 128), COCO_KEYPOINTS, train=True, augment=COLOR)
    assert isinstance(err.value, UserFacingError)  # the apps print it without a traceback
    TopDownTransform((96, 128), COCO_KEYPOINTS, train=True, augment=COCO_AUGMENT)  # off by default: not needed


def test_mpii_mat_head_boxes_without_scipy_name_the_extra(monkeypatch, tmp_path):
    mat = tmp_path / "gt_valid.mat"
    mat.write_bytes(b"MATLAB 5.0 MAT-file")
    monkeypatch.setitem(sys.modules, "scipy.io", None)
    with pytest.raises(MissingExtraError, match=r"gt_valid\.mat.*scipy.*rsn-lightning\[mpii\]"):
        load_head_boxes(mat)
    boxes = tmp_path / "head_boxes.npy"
    np.save(boxes, np.array([[0.0, 0.0, 10.0, 12.0]]))
    assert load_head_boxes(boxes)[0].tolist() == [[0.0, 0.0, 10.0, 12.0]]  # json/npy need no extra
