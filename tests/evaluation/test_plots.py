"""evaluation/plots.py: the Pareto front, reading sweeps and wandb runs back, and the figures."""

from __future__ import annotations

import pytest

from rsn_lightning.evaluation import plots

from .sweep_folders import write_sweep


def test_pareto_front_keeps_the_runs_nothing_beats():
    costs = [1.0, 2.0, 2.0, 3.0, 0.5, None]
    scores = [0.60, 0.70, 0.65, 0.68, 0.50, 0.99]
    assert plots.pareto_front(costs, scores) == [4, 0, 1]  # (3.0, 0.68) is beaten by (2.0, 0.70)


def test_summary_csv_and_job_folders_give_the_same_rows(tmp_path):
    sweep = write_sweep(tmp_path / "sweep")
    from_csv = plots.load_sweep_rows(sweep)
    (sweep / "summary.csv").unlink()
    from_jobs = plots.load_sweep_rows(sweep)
    keys = ("job", "status", "model.net.num_stages", "input_size", "num_stages", "gflops", "final_AP", "best_AP",
            "images_per_s")
    assert [[r.get(k) for k in keys] for r in from_csv] == [[r.get(k) for k in keys] for r in from_jobs]
    assert from_jobs[1]["final_AP"] == 0.66 and from_jobs[1]["input_size"] == "96x128"
    assert from_jobs[-1]["status"] == "failed" and from_jobs[-1]["error"] == "CUDA out of memory"
    assert plots.swept_columns(from_jobs) == ["data.input_size", "model.net.num_stages"]
    front = plots.pareto_front([r["gflops"] for r in from_jobs], [r["final_AP"] for r in from_jobs])
    assert [from_jobs[i]["job"] for i in front] == ["0", "1", "2", "4"]
    names = sorted(p.name for p in plots.sweep_figures(from_jobs, tmp_path / "figures"))
    assert "ap_vs_gflops.png" in names and "ap_by_num_stages.png" in names


def test_a_wandb_run_of_a_preset_reads_its_null_keys_from_the_registry():
    config = {"model": {"net": {"_target_": "rsn_lightning.models.create_model", "name": "rsn_tiny",
                                "num_stages": None, "width_mult": 0.25, "prm": None}}}
    row = plots._row_from_wandb("0", config, {"val/AP": 0.5})
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
    rows = sorted(plots.load_wandb_rows(tmp_path), key=lambda r: r["num_stages"])
    assert [(r["num_stages"], r["final_AP"], r["images_per_s"], r["input_size"]) for r in rows] == [
        (1, 0.61, 100.0, "96x128"), (2, 0.66, 50.0, "96x128")]
    with pytest.raises(FileNotFoundError, match="no wandb run files"):
        plots.load_wandb_rows(tmp_path / "wandb" / "latest-run" / "files")


def test_keypoint_oks_of_the_best_and_the_worst_job():
    from pathlib import Path

    from rsn_lightning.evaluation.sweeps import SweepRun

    def run(job, ap, oks):
        best = {"val/AP": ap, **{f"val/per_keypoint/oks/{n}": v for n, v in zip(("nose", "left_eye"), oks)}}
        return SweepRun(job=job, path=Path(job), overrides={}, best=best)

    runs = [run("0", 0.5, (0.4, 0.6)), run("1", 0.7, (0.8, 0.9)), run("2", 0.6, (0.5, 0.7))]
    ax = plots.plot_keypoint_oks_best_worst(runs)
    worst, best = ax.containers
    assert [b.get_height() for b in worst] == [0.4, 0.6] and [b.get_height() for b in best] == [0.8, 0.9]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["job 0: val/AP 0.500", "job 1: val/AP 0.700"]
    assert plots.plot_keypoint_oks_best_worst([SweepRun("0", Path("0"), {}, best={"val/AP": 0.5})]) is None
