"""A job killed with SIGKILL loses at most the steps since its last checkpoint, and never leaves a torn
last.ckpt: a real training process is killed half-way through writing a checkpoint, then resumed; the
resumed run ends with the weights of the run that was never killed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from module_settings import lit_module
from test_module import make_datamodule, make_trainer, tiny_net

from rsn_lightning import load_model
from rsn_lightning.models.checkpoint import load_checkpoint_dict

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX SIGKILL")

EVERY = 2  # checkpoint every 2 steps
KILL_AT_SAVE = 3  # the third save (step 6) is cut half-way through its write
STEPS = 8  # one epoch of 8 batches


def build(root, out):
    """The same module, data and trainer in the killed process and in the resumed one."""
    pl.seed_everything(7, workers=True)
    dm = make_datamodule(root, batch_size=4)
    module = lit_module(tiny_net(), dm, optimizer={"lr": 1e-3, "scale_lr": False},
                        scheduler={"name": "linear", "warmup_steps": 2}, output_dir=str(out))
    ckpt = pl.callbacks.ModelCheckpoint(dirpath=str(out / "checkpoints"), save_top_k=0, save_last=True,
                                        every_n_train_steps=EVERY)
    trainer = make_trainer(out, max_epochs=1, limit_train_batches=STEPS, limit_val_batches=0, callbacks=[ckpt])
    return module, dm, trainer


CHILD = textwrap.dedent(f"""
    import os, signal, sys
    from pathlib import Path
    sys.path.insert(0, {str(Path(__file__).parent)!r})
    import fsspec.implementations.local as local
    from test_kill_resume import build

    saves = 0
    write = local.LocalFileOpener.write

    def write_then_die(self, data):
        # the kill lands mid-save: half the bytes are on disk (in the transaction's temp file)
        global saves
        saves += 1
        if saves == {KILL_AT_SAVE}:
            write(self, bytes(data)[: len(data) // 2])
            self.flush()
            os.kill(os.getpid(), signal.SIGKILL)
        return write(self, data)

    local.LocalFileOpener.write = write_then_die
    module, dm, trainer = build(Path(sys.argv[1]), Path(sys.argv[2]))
    trainer.fit(module, datamodule=dm)
""")


def test_sigkill_mid_save_keeps_the_previous_checkpoint_and_resume_loses_at_most_the_interval(
        synthetic_root, tmp_path):
    out = tmp_path / "run"
    script = tmp_path / "killed_job.py"
    script.write_text(CHILD)
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    proc = subprocess.run([sys.executable, str(script), str(synthetic_root), str(out)], env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]

    last = out / "checkpoints" / "last.ckpt"
    assert last.is_file()
    # the file on disk is the complete previous save (step 4), not the half-written step-6 one
    raw = torch.load(last, map_location="cpu", weights_only=True)
    assert raw["global_step"] == (KILL_AT_SAVE - 1) * EVERY
    saved = load_checkpoint_dict(last)["state_dict"]
    load_model(last)  # and it builds the network

    # resuming continues from step 4: two steps lost of the six done, and the epoch completes
    module, dm, trainer = build(synthetic_root, out)
    start = {}

    class RecordStart(pl.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            start.setdefault("step", trainer.global_step)
            start.setdefault("weights", {k: v.clone() for k, v in pl_module.net.state_dict().items()})

    trainer.callbacks.append(RecordStart())
    trainer.fit(module, datamodule=dm, ckpt_path="last")
    assert start["step"] == (KILL_AT_SAVE - 1) * EVERY
    for name, value in saved.items():
        assert torch.equal(start["weights"][name], value), f"{name} not restored from the checkpoint"
    assert trainer.global_step == STEPS

    # mid-epoch resume is exact: the same remaining batches with the same augmentations
    straight, dm, trainer = build(synthetic_root, tmp_path / "straight")
    trainer.fit(straight, datamodule=dm)
    for (name, a), (_, b) in zip(straight.net.state_dict().items(), module.net.state_dict().items()):
        assert torch.equal(a, b), f"{name} differs from the uninterrupted run"
