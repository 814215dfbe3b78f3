"""The callbacks that keep host syncs out of the training step, on the real Trainer: the wall-time
last.ckpt and the throughput timed at the logged steps."""

from __future__ import annotations

import pytest
import pytorch_lightning as pl
import torch
from lightning_fabric.utilities import throughput as fabric_throughput
from module_settings import lit_module
from test_module import make_datamodule, make_trainer, tiny_net

from rsn_lightning.training.callbacks import LastCheckpointEvery, ThroughputMonitor, batch_size


class SavedSteps(pl.Callback):
    """The global step of every checkpoint the trainer writes."""

    def __init__(self):
        self.steps = []

    def on_save_checkpoint(self, trainer, pl_module, checkpoint):
        self.steps.append(checkpoint["global_step"])


def fit(root, tmp_path, callbacks, steps=6, **trainer_kw):
    pl.seed_everything(0)
    dm = make_datamodule(root, batch_size=2)
    module = lit_module(tiny_net(), dm, optimizer={"lr": 1e-3, "scale_lr": False})
    trainer = make_trainer(tmp_path, max_epochs=1, limit_train_batches=steps, limit_val_batches=0,
                           callbacks=callbacks, **trainer_kw)
    trainer.fit(module, datamodule=dm)
    return trainer


@pytest.mark.parametrize(("minutes", "expected"), [(1e-9, [2, 4, 6]), (60, [6])])
def test_last_checkpoint_is_refreshed_by_wall_time_at_the_check_steps(synthetic_root, tmp_path, minutes, expected):
    saved = SavedSteps()
    every = LastCheckpointEvery(minutes=minutes, check_every_n_steps=2, dirpath=str(tmp_path / "ckpt"),
                                enable_version_counter=False)
    fit(synthetic_root, tmp_path, [every, saved])
    # due: a save at every check (steps 2, 4, 6); not yet due: none mid-epoch, only Lightning's save of
    # last.ckpt at the fit's end
    assert saved.steps == expected
    assert torch.load(tmp_path / "ckpt" / "last.ckpt", weights_only=True)["global_step"] == 6


def test_last_checkpoint_every_refuses_a_bad_interval():
    with pytest.raises(ValueError, match="minutes"):
        LastCheckpointEvery(minutes=0)


def test_throughput_is_timed_at_the_logged_steps_and_counts_every_batch(synthetic_root, tmp_path, monkeypatch):
    timed = []
    update = fabric_throughput.Throughput.update

    def counted(self, **kw):  # the real update, counted: each call is a clock read (a GPU sync on CUDA)
        timed.append(kw["batches"])
        return update(self, **kw)

    monkeypatch.setattr(fabric_throughput.Throughput, "update", counted)
    logger = pl.loggers.CSVLogger(str(tmp_path))
    trainer = fit(synthetic_root, tmp_path, [ThroughputMonitor(batch_size_fn=batch_size, window_size=2)], steps=9,
                  log_every_n_steps=3, logger=logger)
    assert timed == [3, 6, 9]  # Lightning's own monitor times all 9
    logged = trainer.logged_metrics
    assert float(logged["train/batches"]) == 9 and float(logged["train/samples"]) == 18
    assert float(logged["train/device/samples_per_sec"]) > 0
