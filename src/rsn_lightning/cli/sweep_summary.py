"""The Hydra callback that closes every multirun: summary.csv and summary.md in the sweep folder (one row
per job: swept values, model size, final and best validation, throughput, status and error), and the
table printed. Configured in conf/hydra/default.yaml, so every ``rsn-train -m`` gets it."""

from __future__ import annotations

import logging
from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from rsn_lightning.evaluation.sweeps import SUMMARY_CSV, SUMMARY_MD, summary_text, write_summary

log = logging.getLogger(__name__)


class SweepSummary(Callback):
    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        folder = Path(str(config.hydra.sweep.dir))
        try:
            columns, rows = write_summary(folder)
        except FileNotFoundError as e:  # a sweep whose jobs were never started (e.g. --cfg, an empty grid)
            log.warning("no sweep summary: %s", e)
            return
        failed = [r["job"] for r in rows if r["status"] != "ok"]
        print(f"\nSweep summary ({len(rows)} jobs, {len(failed)} failed): {folder / SUMMARY_CSV}, {SUMMARY_MD}")
        print(summary_text(columns, rows))
        if failed:  # the command's exit status says so (Hydra turns a callback's exceptions into warnings)
            raise SystemExit(f"{len(failed)} of {len(rows)} jobs failed (jobs {', '.join(failed)}); "
                               f"their errors are in {folder / SUMMARY_MD} and each job's {folder}/<job>/train.log")
