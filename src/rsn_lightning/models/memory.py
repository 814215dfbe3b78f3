"""Training-memory estimate of a network without a GPU: the tensors autograd saves for backward, plus the
weights, their gradients and Adam's two moment buffers.

The saved tensors are counted on a real forward pass in training mode: ``saved_tensors_hooks`` sees every
tensor autograd keeps for backward, and distinct storages are summed once (views of one buffer share it;
parameters are counted apart). On the meta device the same forward allocates nothing and takes about a
second even for 4xRSN-50 at batch 32, so the estimate is taken at the real batch, not scaled from a small
one. What it leaves out (say so where it is quoted): the transient buffers of backward itself, cuDNN
workspaces, the CUDA context (~0.5 GiB) and the caching allocator's fragmentation; a measured peak
(``rsn-bench --device cuda``) is therefore higher.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

GIB = 2**30
MIB = 2**20


def saved_activation_bytes(net: nn.Module, x: torch.Tensor) -> int:
    """Bytes of the distinct storages autograd saves for backward in ``net(x)`` (parameters excluded),
    on whatever device ``net`` and ``x`` are on (``meta``: nothing is allocated)."""
    parameter_storages = {p.untyped_storage()._cdata for p in net.parameters()}
    saved: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if storage._cdata not in parameter_storages:
            saved[storage._cdata] = storage.nbytes()
        return t

    # the storages must stay alive until the sum: a freed one's key could be reused by a later tensor
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = net(x)
    total = sum(saved.values())
    del out
    return total


@dataclass(frozen=True)
class TrainingMemory:
    """One preset's estimate; every size in bytes."""

    name: str
    input_size: tuple[int, int]  # (width, height), as data.input_size
    batch: int
    params: int  # number of parameters
    weight_bytes: int
    activation_bytes: int  # saved for backward

    @property
    def optimizer_bytes(self) -> int:
        """Gradients plus Adam's exp_avg and exp_avg_sq: three more copies of the float32 weights."""
        return 3 * self.weight_bytes

    @property
    def total_bytes(self) -> int:
        return self.weight_bytes + self.optimizer_bytes + self.activation_bytes

    def fits(self, gpu_gib: float) -> bool:
        """Whether the estimate is below ``gpu_gib`` GiB (a lower bound of the need: see the module docstring)."""
        return self.total_bytes < gpu_gib * GIB


def estimate_training_memory(name: str, input_size=(192, 256), batch: int = 32, device: str = "meta",
                             channels_last: bool = True, **overrides) -> TrainingMemory:
    """Float32 training memory of preset ``name`` (``create_model(name, **overrides)``) at ``batch`` images
    of ``input_size`` = (width, height). ``device="meta"`` (the default) allocates nothing; ``"cpu"``
    runs the forward for real (the row-wise batch norm then saves its own tensors, see batchnorm.py)."""
    from rsn_lightning.models.registry import create_model

    width, height = (int(v) for v in input_size)
    if batch < 2:
        # the PRM's batch norm after global pooling has one value per channel at batch 1 and refuses to train
        raise ValueError(f"batch must be >= 2 for a training forward (got {batch})")
    with torch.device(device):
        net = create_model(name, **overrides)
        x = torch.empty(batch, 3, height, width)
    net.train()
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    params = sum(p.numel() for p in net.parameters())
    weight_bytes = sum(p.numel() * p.element_size() for p in net.parameters())
    return TrainingMemory(name=name, input_size=(width, height), batch=batch, params=params,
                          weight_bytes=weight_bytes, activation_bytes=saved_activation_bytes(net, x))


_MODEL_KEYS = ("num_keypoints", "prm", "num_stages", "width_mult")


def experiment_presets(conf_dir) -> list[dict]:
    """Each experiment of ``conf_dir/experiment``: its model config, input size (width, height), per-GPU batch
    and architecture overrides, read from the YAML files themselves. An experiment without ``override /model``
    that starts from another experiment (the no-PRM ablation) takes its parent's values under its own."""
    from pathlib import Path

    import yaml

    configs = {p.stem: yaml.safe_load(p.read_text()) or {} for p in sorted(Path(conf_dir, "experiment").glob("*.yaml"))}

    def resolve(name: str, depth: int = 0) -> dict | None:
        cfg = configs.get(name)
        if cfg is None or depth > 5:
            return None
        defaults = cfg.get("defaults", [])
        models = [e["override /model"] for e in defaults if isinstance(e, dict) and "override /model" in e]
        parents = [e for e in defaults if isinstance(e, str) and e != "_self_"]
        base = resolve(parents[0], depth + 1) if not models and parents else None
        if not models and base is None:
            return None
        data = cfg.get("data") or {}
        net = ((cfg.get("model") or {}).get("net")) or {}
        return {"experiment": name, "model": models[0] if models else base["model"],
                "input_size": tuple(data.get("input_size", base["input_size"] if base else (192, 256))),
                "batch": int(data.get("batch_size", base["batch"] if base else 32)),
                "overrides": {**(base["overrides"] if base else {}),
                              **{k: v for k, v in net.items() if k in _MODEL_KEYS}}}

    return [row for row in map(resolve, configs) if row is not None]


def model_preset_name(conf_dir, model_config: str) -> str:
    """The registry preset a ``conf/model/<model_config>.yaml`` names (``net.name``)."""
    from pathlib import Path

    import yaml

    cfg = yaml.safe_load(Path(conf_dir, "model", f"{model_config}.yaml").read_text())
    return cfg["net"]["name"]


def memory_table(conf_dir, experiments=None, device: str = "meta") -> list[dict]:
    """The estimate for every experiment preset (or those named in ``experiments``) at its per-GPU batch and
    input size."""
    presets = experiment_presets(conf_dir)
    unknown = set(experiments or ()) - {r["experiment"] for r in presets}
    if unknown:
        known = [r["experiment"] for r in presets]
        raise ValueError(f"unknown experiment(s) {sorted(unknown)}; expected some of {known}")
    rows = []
    for row in presets:
        if experiments and row["experiment"] not in experiments:
            continue
        est = estimate_training_memory(model_preset_name(conf_dir, row["model"]), row["input_size"], row["batch"],
                                       device=device, **row["overrides"])
        rows.append({"experiment": row["experiment"], "model": est.name,
                     "input": f"{est.input_size[1]}x{est.input_size[0]}", "batch": est.batch,
                     "params_mib": est.weight_bytes / MIB, "activations_gib": est.activation_bytes / GIB,
                     "total_gib": est.total_bytes / GIB,
                     # a "40 GB" A100 has 40 GiB (nvidia-smi: 40960 MiB), an 80 GB one 80 GiB
                     "fits_40gb": est.fits(40), "fits_80gb": est.fits(80)})
    return rows


def memory_markdown(rows: list[dict]) -> str:
    lines = ["| experiment | model | input (HxW) | batch/GPU | params MiB | activations GiB | total GiB | fits 40 GB | "
             "fits 80 GB |", "|---|---|---|---:|---:|---:|---:|---|---|"]
    for r in rows:
        lines.append(f"| {r['experiment']} | {r['model']} | {r['input']} | {r['batch']} | {r['params_mib']:.1f} | "
                     f"{r['activations_gib']:.2f} | {r['total_gib']:.2f} | {'yes' if r['fits_40gb'] else 'no'} | "
                     f"{'yes' if r['fits_80gb'] else 'no'} |")
    return "\n".join(lines) + "\n"
