"""GPU code paths proven on a CPU: with RSN_STRICT_DEVICE=1 the batches behave like CUDA tensors toward host
code (strict_device.py). The real rsn-train (sanity check, training with the flip-tested validation, final
evaluation), rsn-eval and the Predictor run through it, and the training step is shown to make no host sync
between its logging steps."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import RichProgressBar

from rsn_lightning import strict_device
from rsn_lightning.strict_device import SYNCS, DeviceTensor, HostConversionError, HostDeviceMixError
from rsn_lightning.training.callbacks import LastCheckpointEvery, ThroughputMonitor, batch_size
from rsn_lightning.training.metrics import ValidationPredictions
from rsn_lightning.training.progress import RichProgress

BIN = Path(sys.executable).parent
TRAIN = [
    "experiment=quickstart", "data.synthetic.num_train=12", "data.synthetic.num_val=4", "data.batch_size=4",
    "data.input_size=[64,96]", "+trainer.limit_train_batches=3", "trainer.max_epochs=2",
    "trainer.check_val_every_n_epoch=1", "+trainer.num_sanity_val_steps=1", "model.test.flip=true",
    "trainer.log_every_n_steps=2",
]


def strict_env(tmp: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WANDB_", "RSN_"))}
    return {**env, "NETRC": str(tmp / "no-netrc"), "OMP_NUM_THREADS": "1", strict_device.ENV: "1"}


def test_device_tensors_refuse_what_cuda_tensors_refuse_and_count_syncs():
    x = torch.arange(6.0).reshape(2, 3).as_subclass(DeviceTensor)
    with pytest.raises(HostConversionError, match="call .cpu"):
        np.asarray(x)
    with pytest.raises(HostConversionError):
        x.numpy()
    with pytest.raises(HostDeviceMixError, match=r"\(3,\)"):
        x + torch.ones(3)  # a host tensor of one dimension: CUDA refuses it
    assert isinstance(x * 2 + torch.tensor(1.0), DeviceTensor)  # a host scalar tensor: CUDA takes it
    assert isinstance(x[:, torch.tensor([0, 2])], DeviceTensor)  # a host index: CUDA takes it
    SYNCS.clear()
    host = x.cpu()
    assert type(host) is torch.Tensor and np.asarray(host).tolist() == [[0, 1, 2], [3, 4, 5]]
    assert bool(x.sum() > 0) and x.max().item() == 5.0
    assert dict(SYNCS) == {"cpu": 1, "__bool__": 1, "item": 1}


def test_validation_predictions_take_device_tensors():
    """What validation_step hands the metric: box scores, image ids and indices as device tensors (the
    batch's), keypoints as host arrays (the codec's). np.asarray on the device tensors was the GPU crash."""
    metric = ValidationPredictions()
    device = {k: torch.tensor(v).as_subclass(DeviceTensor) for k, v in
              (("box_score", [0.9, 0.8]), ("image_id", [5, 7]), ("index", [1, 0]))}
    metric.update(coords=np.ones((2, 3, 2)), scores=np.ones((2, 3)), center=np.zeros((2, 2)),
                  scale=np.ones((2, 2)), **device)
    out = metric.compute()
    assert out["image_id"].tolist() == [5, 7] and out["box_score"].dtype == np.float32


@pytest.fixture(scope="module")
def strict_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("strict")
    proc = subprocess.run([str(BIN / "rsn-train"), *TRAIN], cwd=tmp, env=strict_env(tmp), capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    (run,) = (tmp / "logs" / "train" / "runs").iterdir()
    return tmp, run, proc


def test_rsn_train_runs_with_device_tensors(strict_run):
    tmp, run, proc = strict_run
    assert "val/AP" in proc.stdout  # the final evaluation's table
    # two validations while training, then the final evaluation
    assert sorted(p.name for p in (run / "results").glob("val_epoch*.json")) == [
        "val_epoch000.json", "val_epoch001.json", "val_epoch002.json"]
    assert (run / "checkpoints" / "last.ckpt").is_file() and (run / "pictures" / "val_epoch001.png").is_file()


def test_rsn_eval_runs_with_device_tensors(strict_run, tmp_path):
    tmp, run, _ = strict_run
    ckpt = run / "checkpoints" / "last.ckpt"
    data = [o for o in TRAIN if o.startswith("data.synthetic") or o.startswith("data.batch_size")]
    proc = subprocess.run([str(BIN / "rsn-eval"), f"ckpt_path={ckpt}", "experiment=quickstart", *data,
                           "data.input_size=[64,96]", f"paths.output_dir={tmp_path / 'eval'}",
                           f"data.root={tmp / 'data' / 'synthetic'}"],
                          cwd=tmp, env=strict_env(tmp), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    results = json.loads(next((tmp_path / "eval" / "results").glob("val_*.json")).read_text())
    assert results and all(len(r["keypoints"]) == 17 * 3 for r in results)


def test_predictor_runs_with_device_tensors(strict_run, monkeypatch):
    from rsn_lightning.inference.predictor import Predictor

    tmp, run, _ = strict_run
    image = np.random.default_rng(0).integers(0, 255, (128, 96, 3), dtype=np.uint8)
    ckpt, box = str(run / "checkpoints" / "last.ckpt"), [[10, 10, 60, 100]]
    plain = Predictor(ckpt, device="cpu", flip=True).predict_image(image, box)
    monkeypatch.setenv(strict_device.ENV, "1")
    SYNCS.clear()
    strict = Predictor(ckpt, device="cpu", flip=True).predict_image(image, box)
    assert SYNCS["cpu"] >= 1  # its heatmaps came to the host through .cpu()
    np.testing.assert_array_equal(strict.keypoints, plain.keypoints)
    np.testing.assert_array_equal(strict.scores, plain.scores)


# ----------------------------------------------------------------------------- host syncs per training step
class SyncsPerStep(pl.Callback):
    """The host syncs of each training step: from one step's start to the next step's start."""

    def __init__(self):
        self.per_step: dict[int, int] = {}
        self._at = None

    def _close(self, trainer):
        if self._at is not None:
            self.per_step[self._at[0]] = sum(SYNCS.values()) - self._at[1]

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self._close(trainer)
        self._at = (trainer.global_step + 1, sum(SYNCS.values()))

    def on_train_epoch_end(self, trainer, pl_module):
        self._close(trainer)
        self._at = None


def fit_counting_syncs(root, tmp_path, bar, monkeypatch, steps=8, every=4, prog_bar_loss=False):
    sys.path.insert(0, str(Path(__file__).parent / "training"))
    from module_settings import lit_module
    from test_module import make_datamodule, tiny_net

    monkeypatch.setenv(strict_device.ENV, "1")
    pl.seed_everything(0)
    counter = SyncsPerStep()
    callbacks = [counter, bar, ThroughputMonitor(batch_size_fn=batch_size, window_size=2),
                 LastCheckpointEvery(minutes=60, check_every_n_steps=every, dirpath=str(tmp_path / "ckpt"))]
    trainer = pl.Trainer(accelerator="cpu", max_epochs=1, limit_train_batches=steps, limit_val_batches=0,
                         log_every_n_steps=every, logger=pl.loggers.CSVLogger(str(tmp_path)), callbacks=callbacks,
                         enable_model_summary=False, default_root_dir=str(tmp_path))
    module = lit_module(tiny_net(), optimizer={"lr": 1e-3, "scale_lr": False})
    if prog_bar_loss:  # the loss on Lightning's progress bar, as the module logged it before
        step = module.training_step

        def training_step(batch, batch_idx):
            loss = step(batch, batch_idx)
            module.log("loss_on_bar", loss, prog_bar=True, batch_size=2)
            return loss

        module.training_step = training_step
    SYNCS.clear()
    trainer.fit(module, datamodule=make_datamodule(root, batch_size=2))
    return counter.per_step


def test_training_steps_sync_with_the_host_only_at_logging_steps(synthetic_root, tmp_path, monkeypatch):
    per_step = fit_counting_syncs(synthetic_root, tmp_path, RichProgress(every_n_steps=4), monkeypatch)
    assert sorted(per_step) == list(range(1, 9))
    assert {s for s, n in per_step.items() if n} <= {4, 8}, per_step
    assert per_step[1] == per_step[2] == per_step[3] == 0


def test_a_progress_bar_metric_syncs_every_step(synthetic_root, tmp_path, monkeypatch):
    """The same count sees a sync per step where there is one: Lightning turns every metric logged with
    prog_bar=True into a number at each batch, and its rich bar reads them at each batch."""
    per_step = fit_counting_syncs(synthetic_root, tmp_path, RichProgressBar(), monkeypatch, prog_bar_loss=True)
    assert all(per_step[s] >= 1 for s in (1, 2, 3, 5, 6, 7)), per_step
