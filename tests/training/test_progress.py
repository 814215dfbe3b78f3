"""A real ``rsn-train`` with stdout going to a file (as under SLURM or nohup): plain progress lines, the
model summary's real FLOPs, and one last.ckpt beside the best checkpoint."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from pytorch_lightning.callbacks import RichProgressBar

from rsn_lightning.training.progress import PlainProgress, progress_bar

# 6 steps of 8 people per epoch: a line every 4 steps and at each epoch's end
TRAIN_TO_FILE = [
    "experiment=quickstart", "data.synthetic.num_train=24", "+trainer.limit_train_batches=6",
    "data.synthetic.num_val=8", "data.batch_size=8",
    "data.input_size=[64,96]", "trainer.max_epochs=2", "trainer.check_val_every_n_epoch=1",
    "callbacks.progress_bar.every_n_steps=4", "callbacks.last_every_interval.minutes=1e-6",
    "callbacks.last_every_interval.check_every_n_steps=5",
]
STEP_LINE = re.compile(
    r"^epoch (\d+)/2  step (\d+)/(\d+)  loss (\d+\.\d+)  lr (\d\.\d\de[-+]\d\d)  (\d+\.\d) img/s  ETA (\d+:\d\d:\d\d)$"
)


def test_progress_bar_is_rich_in_a_terminal_and_plain_in_a_file():
    assert isinstance(progress_bar(terminal=True), RichProgressBar)
    plain = progress_bar(every_n_steps=7, terminal=False)
    assert isinstance(plain, PlainProgress) and plain.every_n_steps == 7
    with pytest.raises(ValueError, match="every_n_steps"):
        PlainProgress(0)


@pytest.fixture(scope="module")
def run_to_file(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("to_file")
    log = cwd / "train.out"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    script = Path(sys.executable).parent / "rsn-train"
    with open(log, "w") as out:
        proc = subprocess.run([script, *TRAIN_TO_FILE], cwd=cwd, stdout=out, stderr=subprocess.PIPE, text=True,
                              env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return cwd, log.read_text()


def test_plain_progress_lines_in_a_file(run_to_file):
    _, text = run_to_file
    steps = [STEP_LINE.match(line).groups() for line in text.splitlines() if STEP_LINE.match(line)]
    assert [(s[0], s[1], s[2]) for s in steps] == [("1", "4", "6"), ("1", "6", "6"), ("2", "4", "6"), ("2", "6", "6")]
    assert all(float(s[5]) > 0 for s in steps)
    assert steps[-1][6] == "0:00:00"  # nothing left at the fit's last step
    lrs = [float(s[4]) for s in steps]
    assert lrs == sorted(lrs) and lrs[0] < lrs[-1]  # the quickstart's 100-step warm-up is still rising
    validations = [line for line in text.splitlines() if "validation  val/AP" in line]
    assert [v.split("  ")[0] for v in validations] == ["epoch 1/2", "epoch 2/2", "evaluation"]


def test_model_summary_shows_the_real_flops(run_to_file):
    """Lightning's total (torch's flop counter: 2 per multiply-add) equals twice our own MAC count."""
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate
    from pytorch_lightning.utilities.model_summary.model_summary import get_human_readable_count

    from rsn_lightning.cli.common import config_dir
    from rsn_lightning.models.flops import count_macs

    _, text = run_to_file
    total = re.search(r"Total FLOPs: (.+?)\s*$", text, re.MULTILINE).group(1)
    with initialize_config_dir(config_dir(), version_base="1.3"):
        cfg = compose("train", overrides=["experiment=quickstart"])
    macs = count_macs(instantiate(cfg.model.net), input_size=(64, 96))
    assert total == get_human_readable_count(2 * macs)
    assert total != "0"


def test_one_last_checkpoint(run_to_file):
    cwd, _ = run_to_file
    (run,) = (cwd / "logs" / "train" / "runs").iterdir()
    names = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert len(names) == 2 and names[1] == "last.ckpt" and names[0].startswith("best_ap_epoch"), names
