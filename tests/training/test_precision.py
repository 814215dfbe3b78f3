"""Precision: emulated mixed precision falls back to float32 with a warning, through the real Trainer."""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from rsn_lightning.cli.common import instantiate_trainer
from rsn_lightning.training.precision import checked_precision, native_bf16


def _cpu_flags() -> set[str]:
    path = Path("/proc/cpuinfo")
    if not path.is_file():
        pytest.skip("no /proc/cpuinfo to read the CPU's flags from")
    for line in path.read_text().splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    pytest.skip("/proc/cpuinfo lists no flags")


def _trainer(precision: str):
    cfg = OmegaConf.create({"_target_": "pytorch_lightning.Trainer", "accelerator": "cpu", "devices": 1,
                            "precision": precision, "logger": False, "enable_progress_bar": False,
                            "enable_model_summary": False})
    return instantiate_trainer(cfg)


def test_native_bf16_agrees_with_the_cpu_flags():
    flags = _cpu_flags()
    assert native_bf16("cpu") == bool({"avx512_bf16", "amx_bf16"} & flags)


def test_float32_is_kept():
    assert checked_precision("32-true", "cpu") == "32-true"
    assert _trainer("32-true").precision == "32-true"


def test_emulated_fp16_on_cpu_trains_in_float32_with_a_warning():
    if "amx_fp16" in _cpu_flags():
        pytest.skip("this CPU computes fp16 natively (AMX-FP16)")
    with pytest.warns(UserWarning, match=r"trainer.precision=16-mixed is emulated on this CPU.*32-true"):
        trainer = _trainer("16-mixed")
    assert trainer.precision == "32-true"


def test_bf16_is_kept_only_where_native():
    native = bool({"avx512_bf16", "amx_bf16"} & _cpu_flags())
    if native:
        assert _trainer("bf16-mixed").precision == "bf16-mixed"
    else:
        with pytest.warns(UserWarning, match="emulated"):
            assert _trainer("bf16-mixed").precision == "32-true"
