"""A sweep folder in the format of the sweep-summary contract, written by hand for the notebook, sweep-row
and sweep-figure tests: summary.csv and each job's job_result.json."""

from __future__ import annotations

import csv
import json
from pathlib import Path

COLUMNS = ["job", "status", "model.net.num_stages", "data.input_size", "model", "input_size", "num_stages",
           "width_mult", "prm", "params_m", "gflops", "final_AP", "final_AR", "best_AP", "best_AR", "images_per_s",
           "wall_time_s", "error", "output_dir"]


def write_sweep(folder: Path) -> Path:
    """A sweep folder as the sweep-summary contract describes it: summary.csv and per-job job_result.json."""
    jobs = [  # stages, input, gflops, AP, images/s (made up, shaped like a stages x resolution grid)
        (1, [96, 128], 0.07, 0.61, 180.0), (2, [96, 128], 0.13, 0.66, 110.0), (4, [96, 128], 0.26, 0.69, 60.0),
        (1, [192, 256], 0.26, 0.67, 50.0), (2, [192, 256], 0.52, 0.72, 30.0), (4, [192, 256], 1.04, 0.71, 15.0),
    ]
    folder.mkdir(parents=True)
    rows = []
    for i, (stages, size, gflops, ap, ips) in enumerate(jobs):
        job = folder / str(i)
        overrides = [f"model.net.num_stages={stages}", f"data.input_size=[{size[0]},{size[1]}]"]
        result = {"status": "ok", "error": None, "overrides": overrides, "model": f"{stages}xrsn_tiny",
                  "input_size": size, "num_stages": stages, "width_mult": 1.0, "prm": True, "params_m": 0.6 * stages,
                  "gflops": gflops, "final": {"AP": ap, "AR": ap + 0.03},
                  "best": {"AP": ap, "AR": ap + 0.03, "epoch": 3},
                  "images_per_s": ips, "wall_time_s": 100.0, "output_dir": str(job), "checkpoint": str(job / "x.ckpt")}
        job.mkdir()
        (job / "job_result.json").write_text(json.dumps(result))
        rows.append([str(i), "ok", str(stages), f"[{size[0]},{size[1]}]", result["model"], f"{size[0]}x{size[1]}",
                     stages, 1.0, True, result["params_m"], gflops, ap, ap + 0.03, ap, ap + 0.03, ips, 100.0, "",
                     str(job)])
    failed = folder / "6"
    failed.mkdir()
    (failed / "job_result.json").write_text(json.dumps({"status": "failed", "error": "CUDA out of memory",
                                                          "overrides": ["model.net.num_stages=8"]}))
    rows.append(["6", "failed", "8", "", "", "", "", "", "", "", "", "", "", "", "", "", "", "CUDA out of memory",
                 str(failed)])
    with (folder / "summary.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(COLUMNS)
        writer.writerows(rows)
    return folder
