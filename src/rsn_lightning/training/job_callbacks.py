"""The Lightning callback that collects what a job's ``job_result.json`` reports of its training."""

from __future__ import annotations

import pytorch_lightning as pl
from pytorch_lightning.trainer.states import TrainerFn

from rsn_lightning.runs.jobs import finite, metric_names


class TrainingRecord(pl.Callback):
    """Collects, on rank zero: the network's size and multiply-adds (at ``setup``), every validation during
    training (the best by ``monitor``), and the training throughput as Lightning's ThroughputMonitor
    (conf/callbacks/throughput.yaml) last logged it: images of all devices over the training time, data
    loading included, validation excluded (None without that callback, without a logger, or when no step
    was logged: fewer steps than ``trainer.log_every_n_steps``)."""

    def __init__(self, monitor: str, input_size) -> None:
        self.monitor, self.input_size = monitor, tuple(int(v) for v in input_size)
        self.model: dict = {}
        self.best: dict | None = None
        self.throughput: float | None = None

    def setup(self, trainer, pl_module, stage: str) -> None:
        net = getattr(pl_module, "net", None)
        if self.model or net is None or not trainer.is_global_zero:
            return
        from rsn_lightning.models.flops import complexity

        arch = net.arch_config() if hasattr(net, "arch_config") else {}
        size = complexity(net, self.input_size)
        self.model = {"num_stages": arch.get("num_stages"), "width_mult": arch.get("width_mult"),
                      "prm": arch.get("prm", arch.get("use_prm")), "params_m": round(size["mparams"], 4),
                      "gflops": round(size["gmacs"], 4)}

    def on_validation_end(self, trainer, pl_module) -> None:
        if trainer.state.fn != TrainerFn.FITTING or trainer.sanity_checking:
            return
        metrics = {k: finite(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}
        score = metrics.get(self.monitor)
        if score is not None and (self.best is None or score > self.best[self.monitor]):
            self.best = {**metrics, "epoch": trainer.current_epoch}

    def on_train_end(self, trainer, pl_module) -> None:
        # ThroughputMonitor's running totals of one device (rank zero)
        samples, seconds = trainer.logged_metrics.get("train/samples"), trainer.logged_metrics.get("train/time")
        if samples and seconds:
            self.throughput = round(float(samples) * trainer.world_size / float(seconds), 3)

    def best_summary(self) -> dict:
        names = metric_names(self.monitor)
        best = self.best or {}
        return {**{m: best.get(f"val/{m}") for m in names}, "epoch": best.get("epoch")}
