"""rsn-predict runs the evaluation's test-time pipeline: on the same checkpoint, images and boxes it gives
rsn-eval's keypoints, and its crop and decoding come from the checkpoint (COCO x1.09/x1.135, MPII x1.25)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import open_dict

from rsn_lightning.cli.common import config_dir

TINY = [
    "experiment=quickstart", "logger=csv", "data.synthetic.num_train=8", "data.synthetic.num_val=4",
    "data.batch_size=4", "data.input_size=[64,96]", "trainer.max_epochs=1", "+trainer.limit_train_batches=2",
    "+trainer.enable_progress_bar=false", "+trainer.num_sanity_val_steps=0",
    # float32 (the quickstart validates in bf16 where the CPU has it; rsn-predict runs float32) and boxes as
    # the detections file gives them (the synthetic config clips validation boxes to the image)
    "trainer.precision=32-true", "data.clip_boxes=none",
]


def _compose(root: Path, out: Path, overrides, config_name: str):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose(config_name=config_name, return_hydra_config=True,
                      overrides=[f"paths.root_dir={root}", *overrides])
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        cfg.paths.output_dir = str(out)
        del cfg["hydra"]
    return cfg


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    """A quickstart-style checkpoint trained 2 steps at 64x96 (DARK decoding, no flip test), and rsn-eval's
    results for it on the synthetic val split with its detections."""
    from rsn_lightning.cli.evaluate import evaluate
    from rsn_lightning.cli.train import train

    root = tmp_path_factory.mktemp("parity")
    _, paths = train(_compose(root, root / "train", [*TINY, "callbacks=none", "test=false",
                                                      "+callbacks.last._target_=pytorch_lightning.callbacks."
                                                      "ModelCheckpoint", f"+callbacks.last.dirpath={root}/ckpt",
                                                      "+callbacks.last.save_last=true"], "train"))
    ckpt = root / "ckpt" / "last.ckpt"
    assert ckpt.is_file(), paths
    evaluate(_compose(root, root / "eval", [*TINY, f"ckpt_path='{ckpt}'", "data.val_boxes=detections"], "eval"))
    results = sorted((root / "eval" / "results").glob("val_*.json"))
    return root, ckpt, json.loads(results[-1].read_text())


def _by_image(results):
    out = {}
    for r in results:
        out.setdefault(r["image_id"], []).append(np.reshape(r["keypoints"], (-1, 3)))
    return out


def test_rsn_predict_gives_rsn_evals_keypoints(evaluated, tmp_path):
    root, ckpt, validated = evaluated
    synth = root / "data" / "synthetic"
    exe = str(Path(sys.executable).parent / "rsn-predict")
    proc = subprocess.run(
        [exe, f"ckpt_path={ckpt}", f"input={synth / 'images' / 'val'}", "device=cpu", "draw=false",
         f"detections={synth / 'annotations' / 'person_detections_val.json'}",
         f"image_ids={synth / 'annotations' / 'person_keypoints_val.json'}", "hydra.run.dir=out"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "box extension x1.09/x1.135, flip test off, dark decoding" in proc.stdout + proc.stderr
    predicted = json.loads((tmp_path / "out" / "results.json").read_text())
    assert len(predicted) == len(validated) > 4
    ours, theirs = _by_image(predicted), _by_image(validated)
    assert sorted(ours) == sorted(theirs)
    worst = 0.0
    for image_id, people in theirs.items():
        # detections with the same box give the same instance: match each to its nearest prediction
        for kp in people:
            dist = [np.abs(p[:, :2] - kp[:, :2]).max() for p in ours[image_id]]
            best = ours[image_id][int(np.argmin(dist))]
            np.testing.assert_allclose(best[:, 2], kp[:, 2], atol=1e-4)
            worst = max(worst, min(dist))
    # rsn-eval runs the plain network, rsn-predict the one with batch norm folded: float rounding only
    assert worst <= 1e-3, worst


def _crop_geometry(ckpt, **overrides):
    from rsn_lightning.inference.predictor import Predictor

    predictor = Predictor(ckpt, device="cpu", **overrides)
    image = np.zeros((300, 400, 3), np.uint8)
    _, centers, scales = predictor.crops(image, np.array([[10.0, 20.0, 80.0, 160.0]]))
    return predictor, centers[0], scales[0]


@pytest.mark.parametrize("keypoints", ["mpii", "coco"])
def test_converted_checkpoint_crops_and_decodes_as_its_keypoint_sets_authors(keypoints, tmp_path):
    """A converted checkpoint (no recorded settings) gets the authors' for its keypoint set: MPII crops the
    box x1.25 at 256x256 and blurs 9 before decoding, COCO x1.09/x1.135 at 192x256 and blurs 5."""
    from rsn_lightning.models.checkpoint import save_checkpoint
    from rsn_lightning.models.rsn import RSN

    torch.manual_seed(0)
    net = RSN(blocks=(1, 1, 1, 1), width_mult=0.25, stem_channels=16, decoder_channels=32,
              num_keypoints=16 if keypoints == "mpii" else 17)
    ckpt = save_checkpoint(tmp_path / "converted.pth", net, keypoints=keypoints)
    predictor, center, scale = _crop_geometry(ckpt)
    np.testing.assert_allclose(center, [50.0, 100.0])
    if keypoints == "mpii":
        # box 80x160 -> x1.25 = 100x200 -> square input: 200x200
        np.testing.assert_allclose(scale, [200.0, 200.0], rtol=1e-6)
        assert (predictor.input_size, predictor.codec.blur_kernel) == ((256, 256), 9)
        # an explicit setting wins over the checkpoint's
        _, _, scale = _crop_geometry(ckpt, box_extension=[0.09, 0.135])
        np.testing.assert_allclose(scale, [181.6, 181.6], rtol=1e-6)
    else:
        # 80x160 -> x1.09/x1.135 = 87.2x181.6 -> 3:4 input: 136.2x181.6
        np.testing.assert_allclose(scale, [136.2, 181.6], rtol=1e-6)
        assert (predictor.input_size, predictor.codec.blur_kernel) == ((192, 256), 5)
    assert predictor.codec.decode_method == "authors" and predictor.settings["flip"] is True


def test_duplicate_boxes_are_suppressed_as_the_evaluator_does(dot_net):
    """The Predictor's OKS-NMS is the evaluator's: the same box twice gives one person with the checkpoint's
    setting off by default, and one kept with oks_nms="oks"; soft-NMS keeps both, the second decayed."""
    from rsn_lightning.inference.predictor import Predictor

    img = np.zeros((240, 320, 3), np.uint8)
    img[100:104, 150:154] = 255
    boxes, box_scores = np.array([[100.0, 40.0, 120.0, 160.0]] * 2), np.array([0.9, 0.8])
    assert len(Predictor(dot_net, flip=False).predict_image(img, boxes, box_scores)) == 2
    hard = Predictor(dot_net, flip=False, oks_nms="oks").predict_image(img, boxes, box_scores)
    assert len(hard) == 1 and hard.box_scores.tolist() == [0.9]
    soft = Predictor(dot_net, flip=False, oks_nms="soft").predict_image(img, boxes, box_scores)
    # identical poses: OKS 1, so the second score decays by exp(-1 / 0.3)
    np.testing.assert_allclose(soft.instance_scores, [0.9 * 1.5, 0.8 * 1.5 * np.exp(-1 / 0.3)], rtol=1e-6)


def test_predict_config_errors_name_each_key(tmp_path):
    from rsn_lightning.cli.config_checks import validate_config
    from rsn_lightning.errors import ConfigError

    cfg = _compose(tmp_path, tmp_path / "out", [
        f"ckpt_path={tmp_path / 'none.ckpt'}", "input=x.jpg", "test.box_extension=[0.25]", "test.oks_nms=hard",
        "test.flip=maybe", "codec.decode=foo", "codec.blur_kernel=4"], "predict")
    with pytest.raises(ConfigError) as err:
        validate_config(cfg, "predict")
    for key in ("test.box_extension=[0.25]", "test.oks_nms='hard'", "test.flip='maybe'", "codec.decode='foo'",
                "codec.blur_kernel=4", "ckpt_path="):
        assert key in str(err.value)


def test_mpii_checkpoint_crops_as_rsn_evals_mpii_data(mpii_mini_dir, tmp_path):
    """The Predictor's crops of an MPII checkpoint are those rsn-eval's MPII validation data feeds the
    network (same centre, x1.25 square scale and pixels), given each record's person box."""
    from hydra.utils import instantiate

    from rsn_lightning.inference.predictor import Predictor
    from rsn_lightning.models.checkpoint import save_checkpoint
    from rsn_lightning.models.rsn import RSN

    net = RSN(blocks=(1, 1, 1, 1), width_mult=0.25, stem_channels=16, decoder_channels=32, num_keypoints=16)
    ckpt = save_checkpoint(tmp_path / "mpii.pth", net, keypoints="mpii")
    cfg = _compose(tmp_path, tmp_path / "eval", [
        f"ckpt_path={ckpt}", "data=mpii", f"data.root={mpii_mini_dir}",
        f"data.val_ann_file={mpii_mini_dir / 'test_mpii.json'}", f"data.val_image_dir={mpii_mini_dir}"], "eval")
    dataset = instantiate(cfg.data).build_dataset("val")
    predictor = Predictor(ckpt, device="cpu")
    assert len(dataset) >= 4
    for i, record in enumerate(dataset.records):
        sample = dataset[i]
        image, _ = dataset.load_image(record)
        (cx, cy), (w, h) = record["center"], record["scale"]
        crops, centers, scales = predictor.crops(image, np.array([[cx - w / 2, cy - h / 2, w, h]]))
        np.testing.assert_allclose(centers[0], sample["center"], atol=1e-3)
        np.testing.assert_allclose(scales[0], sample["scale"], rtol=1e-6)
        np.testing.assert_allclose(scales[0], np.asarray(record["scale"]) * 1.25, rtol=1e-6)
        np.testing.assert_allclose(crops[0], sample["image"], atol=1e-5)
