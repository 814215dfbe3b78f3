#!/usr/bin/env bash
# Set up a virtual environment in .venv with rsn_lightning installed (editable) and its dev tools.
#
# torch is installed first, so that pip never resolves it on its own: on a machine without an
# NVIDIA GPU that would fetch the multi-GB CUDA build. Without a GPU we take the CPU build (the
# PyTorch CPU index, or a local CPU wheel where pip is configured with one); with a GPU, the normal
# CUDA build. Override with TORCH_VERSION=..., TORCH_INDEX_URL=..., EXTRAS=export,notebooks,...
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
TORCH_VERSION=${TORCH_VERSION:-2.13.0}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
# shellcheck disable=SC1091
. .venv/bin/activate
export PIP_DISABLE_PIP_VERSION_CHECK=1

if ! python -c "import torch" >/dev/null 2>&1; then
  if [ -n "${TORCH_INDEX_URL:-}" ]; then
    pip install -q "torch==${TORCH_VERSION}" --index-url "$TORCH_INDEX_URL"
  elif command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    echo "setup: NVIDIA GPU found: installing the CUDA build of torch ${TORCH_VERSION}"
    pip install -q "torch==${TORCH_VERSION}"
  else
    echo "setup: no NVIDIA GPU: installing the CPU build of torch ${TORCH_VERSION}"
    pip install -q --retries 1 "torch==${TORCH_VERSION}" --extra-index-url https://download.pytorch.org/whl/cpu
  fi
fi
pip install -q -e ".[dev${EXTRAS:+,$EXTRAS}]"
python -c "import torch, rsn_lightning; print('setup: torch', torch.__version__, '| CUDA available:', torch.cuda.is_available(), '| rsn_lightning', rsn_lightning.__version__)"
