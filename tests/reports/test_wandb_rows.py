"""reports/wandb_rows.py: sweep rows from wandb runs, offline run files read without an account."""

from __future__ import annotations

import pytest

from rsn_lightning.reports import wandb_rows


def test_a_wandb_run_of_a_preset_reads_its_null_keys_from_the_registry():
    config = {"model": {"net": {"_target_": "rsn_lightning.models.create_model", "name": "rsn_tiny",
                                "num_stages": None, "width_mult": 0.25, "prm": None}}}
    row = wandb_rows._row_from_wandb("0", config, {"val/AP": 0.5})
    assert (row["model"], row["num_stages"], row["width_mult"], row["prm"]) == ("rsn_tiny", 1, 0.25, "last_unit")


def test_offline_wandb_runs_are_read_without_an_account(tmp_path, monkeypatch):
    wandb = pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    for stages, ap in ((1, 0.61), (2, 0.66)):
        run = wandb.init(dir=tmp_path, project="rsn", config={"model": {"net": {"num_stages": stages}},
                                                               "data": {"input_size": [96, 128]}})
        run.log({"val/AP": ap - 0.1})
        run.log({"val/AP": ap, "train/device/samples_per_sec": 100.0 / stages})
        run.finish()
    wandb.teardown()  # the wandb service writes run files in the background: wait for it, as at a job's exit
    rows = sorted(wandb_rows.load_wandb_rows(tmp_path), key=lambda r: r["num_stages"])
    assert [(r["num_stages"], r["final_AP"], r["images_per_s"], r["input_size"]) for r in rows] == [
        (1, 0.61, 100.0, "96x128"), (2, 0.66, 50.0, "96x128")]
    with pytest.raises(FileNotFoundError, match="no wandb run files"):
        wandb_rows.load_wandb_rows(tmp_path / "wandb" / "latest-run" / "files")
