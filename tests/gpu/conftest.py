"""GPU tests: every test here is marked ``gpu`` and skips without CUDA (``pytest -m gpu`` runs them).

The Lightning helpers of tests/training/test_module.py are reused as they are: that folder is not a
package, so it is put on the import path the way pytest itself does when it collects it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

TRAINING_TESTS = str(Path(__file__).resolve().parents[1] / "training")
if TRAINING_TESTS not in sys.path:
    sys.path.insert(0, TRAINING_TESTS)


@pytest.fixture(autouse=True)
def exact_float32_on_cuda():
    """Float32 comparisons against the CPU need true float32 matmuls and convolutions: TF32 (on by default
    for cuDNN convolutions on Ampere and later) keeps 10 mantissa bits, which would make them bf16-like."""
    if not torch.cuda.is_available():
        yield
        return
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved
