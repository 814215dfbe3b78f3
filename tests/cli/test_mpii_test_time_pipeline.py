"""Issue 12's acceptance, through the console scripts a user types: an MPII-style model trained for two steps
records its codec and test-time settings, and rsn-eval, rsn-predict and rsn-export all crop and decode with
them (MPII: a square box x1.25, blur kernel 9 before the authors' decoding, flip test on). rsn-predict on the
validation's boxes gives rsn-eval's keypoints; the ONNX file carries the same codec and settings, and its
heatmaps of rsn-predict's crops decode to rsn-predict's keypoints."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

BIN = Path(sys.executable).parent


def _run(tool: str, args, cwd: Path) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(BIN / tool), *args], cwd=cwd, capture_output=True, text=True, timeout=600,
                          env={**__import__("os").environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "offline"})
    assert proc.returncode == 0, f"{tool} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    return proc


def _mpii_boxes(ann_file: Path) -> dict[str, list[float]]:
    """Each MPII person's box as the authors' loader builds it, written out independently of the library:
    centre moved down 15 x scale px and to 0-based pixels, a square of scale x 200 px."""
    boxes = {}
    for entry in json.loads(ann_file.read_text()):
        s = float(entry["scale"])
        cx, cy = entry["center"][0] - 1.0, entry["center"][1] + 15.0 * s - 1.0
        side = 200.0 * s
        assert entry["image"] not in boxes, "one person per image in mpii_mini"
        boxes[entry["image"]] = [cx - side / 2, cy - side / 2, side, side]
    return boxes


@pytest.fixture(scope="module")
def mpii_run(mpii_mini_dir, tmp_path_factory):
    work = tmp_path_factory.mktemp("mpii_pipeline")
    ann = mpii_mini_dir / "test_mpii.json"
    data = [f"data.root={mpii_mini_dir}", f"data.train_ann_file={ann}", f"data.val_ann_file={ann}",
            f"data.train_image_dir={mpii_mini_dir}", f"data.val_image_dir={mpii_mini_dir}", "data.num_workers=0",
            "data.persistent_workers=false", "data.batch_size=2", "trainer=cpu", "trainer.precision=32-true",
            "logger=csv", "+trainer.num_sanity_val_steps=0"]
    # the paper's MPII experiment on a small model: its codec (blur 9) and box extension (x1.25) get recorded
    _run("rsn-train", ["experiment=mpii_4xrsn50_256x256", "model=rsn_tiny", "data.input_size=[64,64]",
                       "trainer.max_epochs=1", "+trainer.limit_train_batches=2", "test=false",
                       "hydra.run.dir=train", *data], work)
    ckpt = work / "train" / "checkpoints" / "last.ckpt"
    # rsn-eval with the plain eval config (not the experiment): everything test-time comes from the checkpoint
    _run("rsn-eval", [f"ckpt_path={ckpt}", "data=mpii", "monitor=val/PCKh",
                      "hydra.run.dir=eval", *data], work)
    dets = work / "boxes.json"
    dets.write_text(json.dumps({name: [[*box, 1.0]] for name, box in _mpii_boxes(ann).items()}))
    predict = _run("rsn-predict", [f"ckpt_path={ckpt}", f"input={mpii_mini_dir}", f"detections={dets}",
                                   "device=cpu", "draw=false", "hydra.run.dir=predict"], work)
    export = _run("rsn-export", [str(ckpt), "model.onnx"], work)
    return work, ckpt, predict.stdout + predict.stderr, export.stdout


def _keypoints_by_image(results, name_key):
    return {Path(r[name_key]).name: np.reshape(r["keypoints"], (-1, 3)) for r in results}


def test_the_checkpoint_records_the_mpii_codec_and_box(mpii_run):
    _, ckpt, predict_log, _ = mpii_run
    recorded = torch.load(ckpt, map_location="cpu", weights_only=True)
    assert recorded["keypoints"] == "mpii"
    assert recorded["codec"]["input_size"] == [64, 64] and recorded["codec"]["blur_kernel"] == 9
    assert recorded["codec"]["decode"] == "authors"
    assert recorded["test"]["box_extension"] == [0.25, 0.25] and recorded["test"]["flip"] is True
    assert "box extension x1.25/x1.25, flip test on, authors decoding" in predict_log


def test_rsn_predict_gives_rsn_evals_keypoints_on_the_same_boxes(mpii_run):
    work, _, _, _ = mpii_run
    evaluated = json.loads(sorted((work / "eval" / "results").glob("val_*.json"))[-1].read_text())
    predicted = json.loads((work / "predict" / "results.json").read_text())
    ours, theirs = _keypoints_by_image(predicted, "file_name"), _keypoints_by_image(evaluated, "image")
    assert sorted(ours) == sorted(theirs) and len(theirs) == 5
    for name, kp in theirs.items():
        np.testing.assert_allclose(ours[name][:, :2], kp[:, :2], atol=1e-3, err_msg=name)
        np.testing.assert_allclose(ours[name][:, 2], kp[:, 2], atol=1e-4, err_msg=name)


def test_the_onnx_export_carries_the_codec_and_decodes_to_rsn_predicts_keypoints(mpii_run, mpii_mini_dir):
    onnx = pytest.importorskip("onnx", reason="rsn-export needs the export extra (onnx, onnxruntime)")
    ort = pytest.importorskip("onnxruntime", reason="rsn-export needs the export extra (onnx, onnxruntime)")
    import cv2

    from rsn_lightning.codec import HeatmapCodec
    from rsn_lightning.inference.predictor import Predictor
    from rsn_lightning.keypoints import MPII_KEYPOINTS
    from rsn_lightning.models.tta import flip_heatmaps

    work, ckpt, _, export_log = mpii_run
    assert "input [N, 3, 64, 64]" in export_log
    recorded = torch.load(ckpt, map_location="cpu", weights_only=True)
    meta = {p.key: p.value for p in onnx.load(str(work / "model.onnx")).metadata_props}
    assert json.loads(meta["codec"]) == recorded["codec"]
    assert json.loads(meta["test_settings"]) == recorded["test"]

    # a user of the .onnx: rsn-predict's crops, the ONNX heatmaps with the flip test, the recorded codec
    codec, test = HeatmapCodec.from_dict(json.loads(meta["codec"])), json.loads(meta["test_settings"])
    predictor = Predictor(str(ckpt), device="cpu")
    session = ort.InferenceSession(str(work / "model.onnx"), providers=["CPUExecutionProvider"])
    predicted = _keypoints_by_image(json.loads((work / "predict" / "results.json").read_text()), "file_name")
    for name, box in _mpii_boxes(mpii_mini_dir / "test_mpii.json").items():
        crops, centers, scales = predictor.crops(cv2.imread(str(mpii_mini_dir / name)), np.array([box]))
        heatmaps = session.run(["heatmaps"], {"input": crops})[0]
        if test["flip"]:
            mirrored = session.run(["heatmaps"], {"input": np.ascontiguousarray(crops[..., ::-1])})[0]
            heatmaps = (heatmaps + flip_heatmaps(torch.from_numpy(mirrored), MPII_KEYPOINTS.flip_index,
                                                 shift=test["flip_shift"]).numpy()) * 0.5
        coords, scores = codec.decode(heatmaps, centers, scales)
        np.testing.assert_allclose(coords[0], predicted[name][:, :2], atol=1e-2, err_msg=name)
        np.testing.assert_allclose(scores[0], predicted[name][:, 2], atol=1e-3, err_msg=name)
