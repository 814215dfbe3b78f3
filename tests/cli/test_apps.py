"""The Hydra apps end to end on a tiny synthetic set: rsn-train (train, evaluate) and rsn-eval."""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_configs import compose_train

from rsn_lightning.cli.evaluate import evaluate
from rsn_lightning.cli.train import train

TINY = [
    "experiment=quickstart", "logger=csv",
    "data.synthetic.num_train=12", "data.synthetic.num_val=4", "data.num_workers=0",
    "data.batch_size=4", "data.persistent_workers=false", "data.input_size=[64,96]",
    "trainer.max_epochs=1", "+trainer.limit_train_batches=2", "trainer.check_val_every_n_epoch=1",
    "+trainer.enable_progress_bar=false", "+trainer.num_sanity_val_steps=0",
]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("app")
    ckpt = "+callbacks.model_checkpoint."
    cfg = compose_train(tmp, [*TINY, "callbacks=none",
                              ckpt + "_target_=pytorch_lightning.callbacks.ModelCheckpoint",
                              f"{ckpt}dirpath={tmp}/out/checkpoints", ckpt + "monitor=val/AP", ckpt + "mode=max"])
    metrics, paths = train(cfg)
    return tmp, metrics, paths


def test_train_app_generates_data_trains_and_evaluates(trained):
    tmp, metrics, paths = trained
    assert (tmp / "data" / "synthetic" / "annotations" / "person_keypoints_val.json").is_file()
    assert "val/AP" in metrics and 0.0 <= metrics["val/AP"] <= 1.0
    assert paths["checkpoint"].endswith(".ckpt")
    results = sorted((tmp / "out" / "results").glob("val_*.json"))
    assert results and isinstance(json.loads(results[-1].read_text()), list)


def test_eval_app_scores_a_checkpoint_and_writes_results(trained, tmp_path):
    tmp, metrics, paths = trained
    cfg = compose_train(tmp, [*TINY, f"ckpt_path='{paths['checkpoint']}'"], config_name="eval")
    cfg.paths.output_dir = str(tmp_path / "eval")
    eval_metrics, eval_paths = evaluate(cfg)
    # the same weights, data and decoding as the training app's own final evaluation
    assert eval_metrics["val/AP"] == pytest.approx(metrics["val/AP"], abs=1e-6)
    written = list((tmp_path / "eval" / "results").glob("val_*.json"))
    assert written
    entries = json.loads(written[0].read_text())
    assert all(len(e["keypoints"]) == 51 for e in entries)


def test_train_app_without_training_scores_near_zero(trained, tmp_path):
    """The quickstart's AP is learnt: the same job with training skipped evaluates the seeded initial
    weights, which localise nothing."""
    from rsn_lightning.cli.train import _report_title

    tmp, _, _ = trained
    cfg = compose_train(tmp, [*TINY, "train=false", "callbacks=none"])
    cfg.paths.output_dir = str(tmp_path / "untrained")
    metrics, paths = train(cfg)
    assert metrics["val/AP"] < 0.02
    assert _report_title(paths["evaluated"], paths["checkpoint"]) == "Validation (untrained weights)"


def test_checkpoint_records_how_it_was_validated_and_predict_reuses_it(trained, tmp_path):
    """A quickstart checkpoint (DARK decoding, no flip test, 64x96 here) carries those settings: the
    Predictor decodes as the validation did and finds the validation's people from the same detections."""
    from rsn_lightning import load_model
    from rsn_lightning.evaluation.coco_eval import coco_keypoint_stats
    from rsn_lightning.inference.predict_files import run_predictions
    from rsn_lightning.inference.predictor import Predictor

    tmp, metrics, paths = trained
    net = load_model(paths["checkpoint"])
    assert net.input_size == (64, 96)
    assert net.codec.decode_method == "dark" and net.test_settings["flip"] is False

    predictor = Predictor(net)
    assert (predictor.codec.decode_method, predictor.settings["flip"], predictor.input_size) == \
        ("dark", False, (64, 96))
    explicit = Predictor(net, codec={"target_type": "kernel", "decode": "authors"}, flip=True)
    assert explicit.codec.decode_method == "authors"  # explicit wins

    synth = tmp / "data" / "synthetic"
    gt = synth / "annotations" / "person_keypoints_val.json"
    run = run_predictions(predictor, synth / "images" / "val", tmp_path / "pred", draw=False, image_ids=gt,
                          detections=synth / "annotations" / "person_detections_val.json")
    # the same people as the validation (its detections), scored by pycocotools; the instance-level
    # agreement needs a trained model (measured on the quickstart checkpoint: AP 0.7831 against the
    # validation's 0.7840, which ran in bf16) -- this barely trained one has flat heatmaps
    predicted = json.loads(run.results_path.read_text())
    validated = json.loads(sorted((tmp / "out" / "results").glob("val_*.json"))[-1].read_text())
    assert sorted(r["image_id"] for r in predicted) == sorted(r["image_id"] for r in validated)
    assert np.isfinite(coco_keypoint_stats(gt, predicted)["AP"])


def test_checkpoint_carries_the_configured_codec_and_test_settings(trained):
    import torch
    from hydra.utils import instantiate

    tmp, _, paths = trained
    configured = instantiate(compose_train(tmp, TINY).codec)
    recorded = torch.load(paths["checkpoint"], weights_only=True)
    assert recorded["codec"] == configured.to_dict()
    assert (configured.target_type, configured.decode_method, configured.input_size) == ("unbiased", "dark", (64, 96))
    # the quickstart's model.test and the synthetic set's (COCO) test box extension, x1.09 / x1.135
    assert recorded["test"] == {"flip": False, "flip_shift": False, "box_extension": [0.09, 0.135],
                                "rescore": "authors", "score_threshold": 0.2, "oks_nms": None, "nms_threshold": None}


# the tiny synthetic set of ``trained`` without the quickstart experiment or an input size: rsn-eval's
# defaults (authors' codec, 192x256, flip test) all differ from the quickstart checkpoint's
EVAL_DATA = [o for o in TINY if o.split("=")[0] not in ("experiment", "data.input_size")]


def test_eval_takes_the_checkpoints_codec_and_settings_not_the_configs(trained, tmp_path, caplog):
    from rsn_lightning.cli.common import cpu_mixed_precision

    tmp, _, paths = trained
    # the quickstart's precision (eval's default trainer is float32)
    cfg = compose_train(tmp, [*EVAL_DATA, f"ckpt_path='{paths['checkpoint']}'", "logger=csv",
                              f"trainer.precision={cpu_mixed_precision()}"], config_name="eval")
    assert (cfg.codec.decode, list(cfg.data.input_size), cfg.model.test.flip) == ("authors", [192, 256], True)
    cfg.paths.output_dir = str(tmp_path / "own")
    with caplog.at_level("INFO", logger="rsn_lightning.cli.checkpoint_settings"):
        evaluate(cfg)
    # the same keypoints as an evaluation configured like the training (the quickstart: DARK decoding, 64x96,
    # no flip test), so none of the config's own codec, input size or flip test was used
    ref = compose_train(tmp, [*TINY, f"ckpt_path='{paths['checkpoint']}'"], config_name="eval")
    ref.paths.output_dir = str(tmp_path / "ref")
    evaluate(ref)
    own_results, ref_results = (json.loads(next((tmp_path / run / "results").glob("val_*.json")).read_text())
                                for run in ("own", "ref"))
    assert [r["image_id"] for r in own_results] == [r["image_id"] for r in ref_results]
    np.testing.assert_allclose([r["keypoints"] for r in own_results], [r["keypoints"] for r in ref_results])
    ignored = [r.getMessage() for r in caplog.records if "ignored" in r.getMessage()]
    assert len(ignored) == 1 and "codec.decode=authors (checkpoint: dark)" in ignored[0]
    assert "data.input_size=[192, 256] (checkpoint: [64, 96])" in ignored[0] and "model.test.flip=True" in ignored[0]

    caplog.clear()
    cfg = compose_train(tmp, [*EVAL_DATA, f"ckpt_path='{paths['checkpoint']}'", "logger=csv",
                              f"trainer.precision={cpu_mixed_precision()}", "codec.target_type=kernel",
                              "codec.decode=authors"], config_name="eval")
    cfg.paths.output_dir = str(tmp_path / "typed")
    with caplog.at_level("INFO", logger="rsn_lightning.cli.checkpoint_settings"):
        evaluate(cfg)
    departures = [r.getMessage() for r in caplog.records if "as typed on the command line" in r.getMessage()]
    assert len(departures) == 1 and "codec.decode=authors (checkpoint: dark)" in departures[0]
    # the typed decoding ran: the same detections, other keypoints
    typed_results = json.loads(next((tmp_path / "typed" / "results").glob("val_*.json")).read_text())
    assert [r["image_id"] for r in own_results] == [r["image_id"] for r in typed_results]
    assert not np.allclose([r["keypoints"] for r in own_results], [r["keypoints"] for r in typed_results])


def test_eval_crops_with_the_checkpoints_box_extension_unless_one_is_typed(trained):
    """The quickstart checkpoint records the COCO test box extension (x1.09 / x1.135); evaluated with MPII's
    augmentation preset (x1.25) it keeps its own, unless the extension is typed."""
    from types import SimpleNamespace

    from rsn_lightning import load_model
    from rsn_lightning.cli.checkpoint_settings import CheckpointSettings
    from rsn_lightning.data.transforms import AUGMENT_PRESETS

    tmp, _, paths = trained
    net = load_model(paths["checkpoint"])
    cfg = compose_train(tmp, [*TINY, f"ckpt_path='{paths['checkpoint']}'", "data.augment_preset=mpii"],
                        config_name="eval")
    for typed, expected in ((set(), (0.09, 0.135)), ({"data.augment.test_x_ext"}, (0.25, 0.25))):
        data = SimpleNamespace(augment=AUGMENT_PRESETS["mpii"])
        settings = CheckpointSettings(net, cfg, typed)
        settings.apply_box_extension(data)
        assert (data.augment.test_x_ext, data.augment.test_y_ext) == expected
        assert data.augment.rotation == AUGMENT_PRESETS["mpii"].rotation  # only the box extension changes
        listed = settings.departures if typed else settings.ignored
        assert listed == ["data.augment.test_x_ext/test_y_ext=[0.25, 0.25] (checkpoint: [0.09, 0.135])"]


def test_mpii_style_run_records_the_authors_mpii_decoding_and_crop_and_eval_reuses_them(mpii_mini_dir, tmp_path):
    """A few steps of the MPII experiment (rsn_tiny, 64x64, on ../shared's 5 MPII images): the checkpoint
    records blur 9 and the x1.25 box, and rsn-eval (its config: 256x256 and the authors' COCO blur 5)
    evaluates with them: the same PCKh and validation loss as the training app's own final validation."""
    import torch

    ann = mpii_mini_dir / "test_mpii.json"
    data = [f"data.root={mpii_mini_dir}", f"data.train_ann_file={ann}", f"data.val_ann_file={ann}",
            f"data.train_image_dir={mpii_mini_dir}", f"data.val_image_dir={mpii_mini_dir}", "data.batch_size=2",
            "data.num_workers=0", "data.persistent_workers=false", "trainer=cpu", "logger=csv",
            "+trainer.num_sanity_val_steps=0", "model.net.num_keypoints=16"]
    cfg = compose_train(tmp_path, ["experiment=mpii_4xrsn50_256x256", "model=rsn_tiny", "data.input_size=[64,64]",
                                   "trainer.max_epochs=1", "+trainer.limit_train_batches=2",
                                   "trainer.check_val_every_n_epoch=1", "callbacks=default", *data])
    metrics, paths = train(cfg)
    recorded = torch.load(paths["checkpoint"], weights_only=True)
    assert recorded["keypoints"] == "mpii"
    assert (recorded["codec"]["input_size"], recorded["codec"]["blur_kernel"], recorded["codec"]["decode"]) == (
        [64, 64], 9, "authors")
    assert recorded["test"]["box_extension"] == [0.25, 0.25] and recorded["test"]["flip"] is True

    ev = compose_train(tmp_path, ["data=mpii", "monitor=val/PCKh", f"ckpt_path='{paths['checkpoint']}'", *data],
                       config_name="eval")
    assert (ev.codec.blur_kernel, list(ev.data.input_size)) == (5, [256, 256])
    ev.paths.output_dir = str(tmp_path / "eval")
    evaluated, _ = evaluate(ev)
    assert evaluated["val/PCKh"] == pytest.approx(metrics["val/PCKh"], abs=1e-6)
    # the validation loss against the codec's targets on the same crops, up to the folded batch norm's rounding
    assert evaluated["val/loss"] == pytest.approx(metrics["val/loss"], rel=1e-4)


def test_train_command_refuses_an_incompatible_codec_and_names_moved_keys(tmp_path):
    """Through the console script, from a folder outside the repository: exit 2, the reasons, no traceback,
    nothing run (the data root does not exist)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    rsn_train = Path(sys.executable).parent / "rsn-train"
    proc = subprocess.run([str(rsn_train), "codec.target_type=unbiased", "+data.target_type=unbiased",
                           f"data.root={tmp_path / 'no_data'}", f"hydra.run.dir={tmp_path / 'run'}"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "offline"})
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "codec.target_type='unbiased' cannot be decoded with codec.decode='authors'" in proc.stderr
    assert "Use codec=dark (unbiased targets, DARK decoding)" in proc.stderr
    assert "data.target_type: this key moved to codec.target_type" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "run" / "checkpoints").exists()


def test_unvalidated_final_epochs_are_counted(tmp_path):
    import pytorch_lightning as pl

    from rsn_lightning.cli.train import _unvalidated_final_epochs

    def trainer(**kw):
        return pl.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False,
                          default_root_dir=str(tmp_path), **kw)

    assert _unvalidated_final_epochs(trainer(max_epochs=10, check_val_every_n_epoch=6)) == 4
    assert _unvalidated_final_epochs(trainer(max_epochs=12, check_val_every_n_epoch=6)) == 0
    assert _unvalidated_final_epochs(trainer(max_epochs=10, check_val_every_n_epoch=6, limit_val_batches=0)) == 0
