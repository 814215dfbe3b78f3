"""The Predictor on real photos (coco_mini with its person detections), videos and bad inputs."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import cv2
import numpy as np
import pytest

from rsn_lightning.geometry import box_to_center_scale
from rsn_lightning.inference.detections import Detections
from rsn_lightning.inference.predict_files import run_predictions
from rsn_lightning.inference.predictor import Predictor


def test_real_photo_with_detections_draws_skeleton(coco_mini_dir, small_net, tmp_path):
    image = coco_mini_dir / "000000000785.jpg"
    dets = coco_mini_dir / "test_coco_det_AP_H_56.json"
    pred = Predictor(small_net, batch_size=8)
    run = run_predictions(pred, [image], tmp_path, detections=dets, score_thr=0.3)
    original = cv2.imread(str(image))
    pic = tmp_path / "pictures" / "000000000785.png"
    assert run.pictures == [pic] and pic.is_file()
    drawn = cv2.imread(str(pic))
    assert drawn.shape == original.shape
    results = json.loads(run.results_path.read_text())
    n_boxes = sum(1 for d in json.loads(dets.read_text()) if d["image_id"] == 785)
    assert len(results) == n_boxes > 0
    assert all(r["image_id"] == 785 and len(r["keypoints"]) == 51 for r in results)
    h, w = original.shape[:2]
    checked = 0
    for r in results:
        kp = np.asarray(r["keypoints"]).reshape(17, 3)
        for x, y, s in kp:
            xi, yi = int(round(x)), int(round(y))
            if s > 0.3 and 0 <= xi < w and 0 <= yi < h:
                assert np.any(drawn[yi, xi] != original[yi, xi]), (x, y)
                checked += 1
    assert checked > 0


def test_crop_geometry_and_decoding_end_to_end(dot_net):
    """A bright dot in a real-size image comes back where it is, within the decoder's quantisation."""
    img = np.zeros((480, 640, 3), np.uint8)
    dot = np.array([411.0, 157.0])
    cv2.rectangle(img, (409, 155), (413, 159), (255, 255, 255), -1)
    box = np.array([[330.0, 60.0, 150.0, 260.0]])
    for flip in (False, True):
        pred = Predictor(dot_net, flip=flip)
        res = pred.predict_image(img, boxes=box, box_scores=[0.9])
        _, scale = box_to_center_scale(box[0], 192 / 256, 0.09, 0.135)
        # cell centre (2 px) + 0.25-cell step (1 px) per axis in input px, plus half the dot, in image px
        bound = 3.0 * scale / np.array([192.0, 256.0]) + 2.0
        assert np.all(np.abs(res.keypoints[0] - dot) <= bound), (res.keypoints[0, 0], dot, bound)
        np.testing.assert_allclose(res.scores, 1.5, atol=1e-4)
        np.testing.assert_allclose(res.instance_scores, [0.9 * 1.5])


def test_folder_batching_whole_image_and_missing_detections(coco_mini_dir, small_net, tmp_path, caplog):
    pred = Predictor(small_net, batch_size=3, flip=False)
    # whole images (no detections): one person each, the folder's 4 photos, json files skipped
    run = run_predictions(pred, coco_mini_dir, tmp_path / "whole")
    results = json.loads(run.results_path.read_text())
    assert run.num_images == 4 and len(results) == 4 and len(run.pictures) == 4
    assert sorted(r["image_id"] for r in results) == [785, 40083, 196141, 197388]
    # a mapping that knows one image only: the other gets no people, a warning and its plain picture
    image = coco_mini_dir / "000000040083.jpg"
    mapping = tmp_path / "boxes.json"
    boxes = [[280, 44, 218, 346, 0.9], {"bbox": [10, 10, 50, 80]}]
    mapping.write_text(json.dumps({"000000000785.jpg": boxes}))
    with caplog.at_level(logging.WARNING):
        run = run_predictions(pred, [coco_mini_dir / "000000000785.jpg", image], tmp_path / "map",
                              detections=mapping)
    assert "no person boxes for 000000040083.jpg" in caplog.text
    assert run.images_without_boxes == ["000000040083.jpg"]
    results = json.loads(run.results_path.read_text())
    assert [r["image_id"] for r in results] == [785, 785]
    joint_scores = np.reshape(results[0]["keypoints"], (17, 3))[:, 2]
    assert results[0]["score"] == pytest.approx(0.9 * joint_scores.mean(), rel=1e-4)
    plain = cv2.imread(str(tmp_path / "map" / "pictures" / "000000040083.png"))
    np.testing.assert_array_equal(plain, cv2.imread(str(image)))
    empty = pred.predict_image(cv2.imread(str(image)), boxes=np.zeros((0, 4)))
    assert len(empty) == 0 and empty.keypoints.shape == (0, 17, 2)


def test_detections_parsing(tmp_path):
    dets = Detections.from_data([
        {"image_id": 1, "bbox": [0, 0, 10, 20], "score": 0.9, "category_id": 1},
        {"image_id": 1, "bbox": [5, 5, 10, 20], "score": 0.1, "category_id": 1},
        {"image_id": 1, "bbox": [5, 5, 10, 20], "score": 0.9, "category_id": 3},
        {"file_name": "a.jpg", "bbox": [1, 2, 3, 4], "score": 0.5},
    ], score_thr=0.2)
    boxes, scores = dets.lookup(image_id=1)
    np.testing.assert_array_equal(boxes, [[0, 0, 10, 20]])
    np.testing.assert_array_equal(scores, [0.9])
    assert dets.lookup(file_name="dir/a.jpg")[1].tolist() == [0.5]
    assert dets.lookup(image_id=2) is None
    with pytest.raises(ValueError, match="entry #0"):
        Detections.from_data([{"image_id": 1}])
    with pytest.raises(ValueError, match="ground-truth"):
        Detections.from_data({"images": [], "annotations": []})
    with pytest.raises(FileNotFoundError):
        Detections.load(tmp_path / "none.json")


def test_video_in_and_out(small_net, tmp_path):
    src = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(src), cv2.VideoWriter_fourcc(*"mp4v"), 10, (96, 128))
    rng = np.random.default_rng(0)
    for _ in range(3):
        writer.write(rng.integers(0, 255, (128, 96, 3), dtype=np.uint8))
    writer.release()
    run = run_predictions(Predictor(small_net, flip=False), src, tmp_path / "out")
    assert run.num_images == 3
    assert [r["image_id"] for r in json.loads(run.results_path.read_text())] == [0, 1, 2]
    out = run.videos[0]
    assert out.suffix == ".mp4" and out.is_file()
    cap = cv2.VideoCapture(str(out))
    assert cap.isOpened() and int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 3
    cap.release()


def test_unreadable_inputs_are_skipped_and_listed(small_net, tmp_path):
    bad_video = tmp_path / "broken.mp4"
    bad_video.write_text("not a video")
    bad_image = tmp_path / "broken.jpg"
    bad_image.write_bytes(b"\x00\x01")
    cv2.imwrite(str(tmp_path / "a.jpg"), np.full((64, 48, 3), 90, np.uint8))
    cv2.imwrite(str(tmp_path / "1.jpg"), np.full((64, 48, 3), 90, np.uint8))
    pred = Predictor(small_net, flip=False)
    run = run_predictions(pred, [bad_video, bad_image, tmp_path / "a.jpg", tmp_path / "1.jpg"], tmp_path / "o1",
                          draw=False)
    assert run.num_images == 2
    listed = json.loads(run.skipped_path.read_text())
    assert [Path(s["file_name"]).name for s in listed] == ["broken.jpg", "broken.mp4"]
    # 1.jpg keeps its number; a.jpg takes the next free id (it took the running index 1 before)
    assert sorted(r["image_id"] for r in json.loads(run.results_path.read_text())) == [1, 2]
    with pytest.raises(FileNotFoundError, match="input not found"):
        run_predictions(pred, tmp_path / "missing.png", tmp_path / "o3")
