"""Which floating-point precision a device computes fast, and a guard for the ones it only emulates.

Mixed precision pays only where the hardware computes the narrow type natively: a CPU with AVX-512-BF16
or AMX, a GPU with bf16 (Ampere and later) or fp16 tensor cores. Elsewhere PyTorch emulates it and a
training step runs several times slower than float32 (issue 13 measured bf16 autocast on a 2-core CPU
without AVX-512-BF16 at 0.5 images/s against 3.4 in float32 for RSN-18), so asking for it there gets a
warning and float32 instead.
"""

from __future__ import annotations

import warnings

import torch

FLOAT32 = "32-true"
# Lightning's precision names (and their legacy aliases) that compute in a 16-bit type
BF16_PRECISIONS = {"bf16-mixed", "bf16-true", "bf16"}
FP16_PRECISIONS = {"16-mixed", "16-true", "16", "16.0"}


def _cpu_probe(name: str) -> bool:
    try:
        return bool(getattr(torch.cpu, name)())
    except (AttributeError, RuntimeError):  # private probes: absent on some builds/platforms
        return False


def native_bf16(device_type: str = "cpu") -> bool:
    """True where ``device_type`` ("cpu" or "cuda") computes bf16 in hardware."""
    if device_type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False)
    return _cpu_probe("_is_avx512_bf16_supported") or _cpu_probe("_is_amx_tile_supported")


def native_fp16(device_type: str = "cpu") -> bool:
    """True where ``device_type`` computes fp16 in hardware (every CUDA GPU; CPUs with AMX-FP16)."""
    if device_type == "cuda":
        return torch.cuda.is_available()
    return _cpu_probe("_is_amx_fp16_supported")


def cpu_mixed_precision() -> str:
    """Lightning precision for CPU training: ``bf16-mixed`` where the CPU computes bf16 natively
    (AVX-512 BF16 or AMX), else ``32-true`` (emulated bf16 is slower than float32)."""
    return "bf16-mixed" if native_bf16("cpu") else FLOAT32


def autocast_dtype(device_type: str) -> torch.dtype | None:
    """The 16-bit type autocast should use on ``device_type``, or None where none is native."""
    if native_bf16(device_type):
        return torch.bfloat16
    if native_fp16(device_type):
        return torch.float16
    return None


def trainer_device_type(accelerator: str | None) -> str:
    """"cuda" or "cpu" for a Lightning ``accelerator`` setting ("auto" picks CUDA when present)."""
    acc = str(accelerator or "auto").lower()
    if acc in ("gpu", "cuda"):
        return "cuda"
    if acc == "auto" and torch.cuda.is_available():
        return "cuda"
    return "cpu"


def checked_precision(precision, accelerator: str | None = "auto") -> str:
    """``precision`` unchanged where the device computes it natively; else a warning and ``32-true``."""
    name = str(precision)
    device = trainer_device_type(accelerator)
    if name in BF16_PRECISIONS:
        native = native_bf16(device)
    elif name in FP16_PRECISIONS:
        native = native_fp16(device)
    else:
        return name
    if native:
        return name
    message = (
        f"trainer.precision={name} is emulated on this {device.upper()} (no native "
        f"{'bf16' if name in BF16_PRECISIONS else 'fp16'}): it would run several times slower than float32, "
        f"so this run uses trainer.precision={FLOAT32}. Set trainer.precision=32-true to silence this warning."
    )
    warnings.warn(message, stacklevel=2)
    return FLOAT32
