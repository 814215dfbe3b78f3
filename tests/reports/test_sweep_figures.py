"""reports/sweep_figures.py: the PNGs of a sweep's rows, and the per-keypoint OKS of its best and worst job."""

from __future__ import annotations

from pathlib import Path

from rsn_lightning.reports import sweep_figures
from rsn_lightning.runs.sweep_rows import load_sweep_rows
from rsn_lightning.runs.sweeps import SweepRun
from runs.sweep_folders import write_sweep  # tests/ is on sys.path (its conftest)


def test_sweep_figures_of_the_rows_rebuilt_from_the_job_folders(tmp_path):
    sweep = write_sweep(tmp_path / "sweep")
    (sweep / "summary.csv").unlink()
    from_jobs = load_sweep_rows(sweep)
    names = sorted(p.name for p in sweep_figures.sweep_figures(from_jobs, tmp_path / "figures"))
    assert "ap_vs_gflops.png" in names and "ap_by_num_stages.png" in names


def test_keypoint_oks_of_the_best_and_the_worst_job():
    def run(job, ap, oks):
        best = {"val/AP": ap, **{f"val/per_keypoint/oks/{n}": v for n, v in zip(("nose", "left_eye"), oks)}}
        return SweepRun(job=job, path=Path(job), overrides={}, best=best)

    runs = [run("0", 0.5, (0.4, 0.6)), run("1", 0.7, (0.8, 0.9)), run("2", 0.6, (0.5, 0.7))]
    ax = sweep_figures.plot_keypoint_oks_best_worst(runs)
    worst, best = ax.containers
    assert [b.get_height() for b in worst] == [0.4, 0.6] and [b.get_height() for b in best] == [0.8, 0.9]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["job 0: val/AP 0.500", "job 1: val/AP 0.700"]
    assert sweep_figures.plot_keypoint_oks_best_worst([SweepRun("0", Path("0"), {}, best={"val/AP": 0.5})]) is None
