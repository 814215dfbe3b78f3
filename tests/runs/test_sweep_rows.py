"""runs/sweep_rows.py: the Pareto front, and a sweep's rows read back from its summary or its job folders."""

from __future__ import annotations

from rsn_lightning.runs import sweep_rows

from .sweep_folders import write_sweep


def test_pareto_front_keeps_the_runs_nothing_beats():
    costs = [1.0, 2.0, 2.0, 3.0, 0.5, None]
    scores = [0.60, 0.70, 0.65, 0.68, 0.50, 0.99]
    assert sweep_rows.pareto_front(costs, scores) == [4, 0, 1]  # (3.0, 0.68) is beaten by (2.0, 0.70)


def test_summary_csv_and_job_folders_give_the_same_rows(tmp_path):
    sweep = write_sweep(tmp_path / "sweep")
    from_csv = sweep_rows.load_sweep_rows(sweep)
    (sweep / "summary.csv").unlink()
    from_jobs = sweep_rows.load_sweep_rows(sweep)
    keys = ("job", "status", "model.net.num_stages", "input_size", "num_stages", "gflops", "final_AP", "best_AP",
            "images_per_s")
    assert [[r.get(k) for k in keys] for r in from_csv] == [[r.get(k) for k in keys] for r in from_jobs]
    assert from_jobs[1]["final_AP"] == 0.66 and from_jobs[1]["input_size"] == "96x128"
    assert from_jobs[-1]["status"] == "failed" and from_jobs[-1]["error"] == "CUDA out of memory"
    assert sweep_rows.swept_columns(from_jobs) == ["data.input_size", "model.net.num_stages"]
    front = sweep_rows.pareto_front([r["gflops"] for r in from_jobs], [r["final_AP"] for r in from_jobs])
    assert [from_jobs[i]["job"] for i in front] == ["0", "1", "2", "4"]
