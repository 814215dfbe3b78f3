"""The Hydra callback around every multirun. At its start: a sweep folder that already holds a sweep
(``sweep_name=<name>`` or ``hydra.sweep.dir=<folder>`` given again) is resumed only by the same command
(the same swept values), else refused before any job runs. At its end: summary.csv and summary.md in the
sweep folder (one row per job: swept values, model size, final and best validation, throughput, status and
error), and the table printed. Configured in conf/hydra/default.yaml, so every ``rsn-train -m`` gets it."""

from __future__ import annotations

import logging
from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from rsn_lightning.cli.common import register_resolvers
from rsn_lightning.runs.sweeps import SUMMARY_CSV, SUMMARY_MD, summary_text, write_summary

log = logging.getLogger(__name__)

# Hydra's launchers unpickle this callback in each job process they start (joblib workers, SLURM jobs), which
# composes its job's config again: the resolvers must be registered there first
register_resolvers()


class SweepSummary(Callback):
    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        import sys

        import yaml

        folder = Path(str(config.hydra.sweep.dir))
        earlier = folder / "multirun.yaml"
        if not earlier.is_file():
            return
        before = list(((yaml.safe_load(earlier.read_text()) or {}).get("hydra") or {}).get("overrides", {})
                      .get("task") or [])
        now = list(config.hydra.overrides.task)
        if sorted(before) != sorted(now):
            print(f"error: the sweep folder {folder} holds another sweep (its multirun.yaml: "
                  f"{' '.join(before) or '(no overrides)'}); this command is {' '.join(now) or '(no overrides)'}. "
                  "The same command resumes a sweep; a new one needs its own sweep_name=<name> "
                  "(or hydra.sweep.dir=<a new folder>)", file=sys.stderr)
            raise SystemExit(2)
        log.info("resuming the sweep in %s: jobs done are skipped, unfinished ones resume from their "
                 "checkpoints/last.ckpt, failed ones run again", folder)

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
