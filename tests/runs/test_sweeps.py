"""Reading a sweep back: a real `rsn-train -m` multirun of two tiny jobs, then load_sweep on its folder."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from rsn_lightning.evaluation.coco_eval import coco_keypoint_stats
from rsn_lightning.runs.sweeps import load_sweep, sweep_table, swept_keys

TINY = [
    "experiment=quickstart", "logger=csv", "callbacks=model_checkpoint",
    "data.synthetic.num_train=12", "data.synthetic.num_val=4", "data.batch_size=4", "data.input_size=[64,96]",
    "trainer.max_epochs=2", "+trainer.limit_train_batches=2", "trainer.check_val_every_n_epoch=1",
    "+trainer.enable_progress_bar=false", "+trainer.num_sanity_val_steps=0",
]


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sweep")
    app = Path(sys.executable).with_name("rsn-train")
    cmd = [str(app)] if app.exists() else [sys.executable, "-m", "rsn_lightning.cli.train"]
    # as a user types it: from a folder outside the repo, no path overrides (data and logs land under it)
    proc = subprocess.run([*cmd, "-m", *TINY, "model.optimizer.lr=1e-3,3e-3"], capture_output=True, text=True,
                          timeout=600, cwd=tmp)
    assert proc.returncode == 0, proc.stderr[-3000:]
    [folder] = (tmp / "logs" / "train" / "multiruns").iterdir()
    folder.rename(tmp / "sweep")  # one short name for the tests below
    return tmp


def test_load_sweep_reads_every_job_with_its_swept_value_and_metrics(sweep):
    runs = load_sweep(sweep / "sweep")
    assert [r.job for r in runs] == ["0", "1"]
    assert swept_keys(runs) == ["model.optimizer.lr"]
    assert [r.overrides["model.optimizer.lr"] for r in runs] == ["0.001", "0.003"]  # as Hydra writes the swept values
    gt = sweep / "data" / "synthetic" / "annotations" / "person_keypoints_val.json"
    for r in runs:
        assert r.problem is None
        assert [epoch for epoch, _ in r.curve][:2] == [0, 1]  # one validation per epoch
        assert r.best["val/AP"] == max(ap for _, ap in r.curve)
        # the logged AP is pycocotools' AP of the results file the same validation wrote
        results = sorted((r.path / "results").glob("val_*.json"))[-1]
        assert coco_keypoint_stats(gt, json.loads(results.read_text()))["AP"] == pytest.approx(r.last["val/AP"])
    table = sweep_table(runs).splitlines()
    assert table[0].split()[:3] == ["job", "model.optimizer.lr", "val/AP"]
    assert len(table) == 3


def test_a_failed_job_is_reported_not_dropped(sweep, tmp_path):
    copy = tmp_path / "sweep"
    shutil.copytree(sweep / "sweep", copy)
    shutil.rmtree(copy / "1" / "csv")  # as a job that crashed before logging
    runs = load_sweep(copy)
    assert runs[1].problem and "metrics.csv" in runs[1].problem
    assert sweep_table(runs).splitlines()[-1].startswith("1: no csv/metrics.csv")


def test_not_a_sweep_folder_names_what_is_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="no job folders"):
        load_sweep(tmp_path)
    (tmp_path / "0" / ".hydra").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="overrides.yaml"):
        load_sweep(tmp_path)


def test_ablation_sweep_notebook_runs_on_the_sweep(sweep, monkeypatch, capsys):
    """notebooks/ablation_sweep.py's cells, in order, on the real sweep above (no kernel): the table,
    and its figures written as PNGs."""
    jupytext = pytest.importorskip("jupytext", reason="the notebooks are jupytext pairs (dev extra)")
    matplotlib = pytest.importorskip("matplotlib", reason="the notebook needs matplotlib (dev/notebooks extra)")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    notebook = Path(__file__).resolve().parents[2] / "notebooks" / "ablation_sweep.py"
    cells = [c for c in jupytext.read(notebook).cells if c.cell_type == "code"]
    monkeypatch.setenv("RSN_SWEEP", str(sweep / "sweep"))
    monkeypatch.delenv("RSN_FIGURES", raising=False)
    scope: dict = {}  # one kernel: cells share their names
    for cell in cells:
        exec(compile(cell.source, str(notebook), "exec"), scope)
    plt.close("all")
    out = capsys.readouterr().out
    assert "2 runs; swept: model.optimizer.lr" in out
    figures = sweep / "sweep" / "figures"
    assert (figures / "ap_by_model.optimizer.lr.png").is_file()
    assert (figures / "ap_vs_gflops.png").is_file()
