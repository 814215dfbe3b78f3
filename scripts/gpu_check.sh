#!/usr/bin/env bash
# The GPU check: on a machine with one NVIDIA GPU, run the real console scripts briefly on it, then the
# GPU tests, and print one table (step, ok/FAIL, seconds, key figure). Exits non-zero if any step failed.
#
#   bash scripts/gpu_check.sh                      # on the GPU (about 5 minutes with .venv set up)
#   GPU_CHECK_DEVICE=cpu bash scripts/gpu_check.sh # dry run of the same commands on the CPU: checks the
#                                                  # overrides and paths only (16-mixed and the CUDA
#                                                  # parts are skipped, the DDP run uses ddp_cpu)
#
# Every command runs from a fresh temporary folder outside the repository (its logs/ and data/ go there;
# GPU_CHECK_DIR=... keeps them somewhere else), so the check also covers running from any folder.
# .venv is used as it is when its torch sees the GPU; else scripts/setup.sh creates or completes it (it
# installs the CUDA build of torch where nvidia-smi sees a GPU; that needs the package index).
set -uo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
DEVICE=${GPU_CHECK_DEVICE:-cuda}
case "$DEVICE" in
  cuda|cpu) ;;
  *) echo "gpu_check: GPU_CHECK_DEVICE must be cuda (default) or cpu (a dry run), got '$DEVICE'" >&2; exit 2 ;;
esac
BIN=$REPO/.venv/bin

if [ "$DEVICE" = cuda ]; then
  if ! "$BIN/python" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
    echo "gpu_check: .venv missing or its torch sees no GPU: running scripts/setup.sh"
    bash "$REPO/scripts/setup.sh" || { echo "gpu_check: scripts/setup.sh failed" >&2; exit 1; }
    if ! "$BIN/python" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
      echo "gpu_check: torch in .venv still sees no CUDA GPU ($("$BIN/python" -c 'import torch; print(torch.__version__)')):" \
           "a CPU build? Remove .venv and rerun, or set TORCH_INDEX_URL (e.g. https://download.pytorch.org/whl/cu128);" \
           "GPU_CHECK_DEVICE=cpu runs the dry run instead" >&2
      exit 1
    fi
  fi
else
  [ -x "$BIN/python" ] || bash "$REPO/scripts/setup.sh" || exit 1
fi

WORK=${GPU_CHECK_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/rsn_gpu_check.XXXXXX")}
mkdir -p "$WORK"
cd "$WORK" || exit 1
export WANDB_MODE=offline PYTHONUNBUFFERED=1
echo "gpu_check: device $DEVICE, working in $WORK (each step's output: $WORK/<step>.log)"

STEPS=() STATUS=() SECONDS_TAKEN=() FIGURES=()
FAILED=0

# run_step NAME CMD...: run CMD (output to NAME.log) under a time limit, record ok/FAIL and its seconds
run_step() {
  local name=$1; shift
  local start end rc
  start=$(date +%s.%N)
  timeout "${GPU_CHECK_STEP_TIMEOUT:-300}" "$@" >"$WORK/$name.log" 2>&1
  rc=$?
  end=$(date +%s.%N)
  STEPS+=("$name")
  SECONDS_TAKEN+=("$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", b - a }')")
  if [ "$rc" -eq 0 ]; then
    STATUS+=("ok")
  else
    STATUS+=("FAIL")
    FAILED=1
    echo "gpu_check: step $name failed (exit $rc); last lines of $WORK/$name.log:" >&2
    tail -n 15 "$WORK/$name.log" >&2
  fi
  FIGURES+=("")
}

# figure TEXT: set the key figure of the last step
figure() { FIGURES[${#FIGURES[@]}-1]=$1; }

skip_step() { STEPS+=("$1"); STATUS+=("skip"); SECONDS_TAKEN+=("-"); FIGURES+=("$2"); }

# "AP     0.1234" of the validation table the training and evaluation commands print
ap_of() { awk '$1 == "AP" { v = $2 } END { print (v == "" ? "no AP line" : "AP " v) }' "$WORK/$1.log"; }

# The quickstart, cut to a few steps: 64 generated images (once, into ./data), 4 training batches of 16,
# one validation and the final evaluation of last.ckpt (conf/experiment/quickstart.yaml; the size limits
# as tests/cli/test_readme_commands.py runs the README's command)
QUICK=(experiment=quickstart data.synthetic.num_train=64 data.synthetic.num_val=16 data.batch_size=16
       trainer.max_epochs=1 +trainer.limit_train_batches=4 trainer.check_val_every_n_epoch=1 logger=csv
       model.channels_last=true)
if [ "$DEVICE" = cuda ]; then
  ON_DEVICE=(trainer=gpu trainer.devices=1)
  PRECISIONS=(32-true bf16-mixed 16-mixed)
  DDP=(trainer=ddp trainer.devices=1)
else
  ON_DEVICE=(trainer=cpu)
  PRECISIONS=(32-true bf16-mixed)  # 16-mixed autocast is a GPU mode (Lightning refuses it on a CPU)
  DDP=(trainer=ddp_cpu trainer.devices=1)
fi

for precision in "${PRECISIONS[@]}"; do
  run_step "train-$precision" "$BIN/rsn-train" "${QUICK[@]}" "${ON_DEVICE[@]}" "trainer.precision=$precision" \
    "hydra.run.dir=$WORK/runs/train-$precision"
  figure "$(ap_of "train-$precision")"
done
[ "$DEVICE" = cuda ] || skip_step "train-16-mixed" "GPU only"

CKPT=$WORK/runs/train-32-true/checkpoints/last.ckpt
run_step eval "$BIN/rsn-eval" experiment=quickstart "ckpt_path=$CKPT" data.synthetic.num_train=64 \
  data.synthetic.num_val=16 "${ON_DEVICE[@]}" logger=csv "hydra.run.dir=$WORK/runs/eval"
figure "$(ap_of eval)"

IMAGE=$REPO/../shared/data/coco_mini/000000000785.jpg
[ -f "$IMAGE" ] || IMAGE=$(find "$WORK/data/synthetic" -name '*.jpg' 2>/dev/null | sort | head -n 1)
run_step predict "$BIN/rsn-predict" "ckpt_path=$CKPT" "input=$IMAGE" "device=$DEVICE" \
  "hydra.run.dir=$WORK/runs/predict"
figure "$("$BIN/python" -c "import json, sys; r = json.load(open(sys.argv[1])); print(len(r), 'people')" \
  "$WORK/runs/predict/results.json" 2>/dev/null || echo "no results.json")"

# rsn-export checks the ONNX file against the checkpoint with onnxruntime on the CPU; with onnxruntime-gpu
# the same file then runs on the CUDA execution provider against the network on the GPU
EXPORT_CHECK=$(cat <<'EOF'
import sys

import numpy as np
import onnxruntime as ort
import torch

from rsn_lightning import load_model

onnx_path, ckpt, device = sys.argv[1:]
provider = "CUDAExecutionProvider" if device == "cuda" and "CUDAExecutionProvider" in ort.get_available_providers() \
    else "CPUExecutionProvider"
session = ort.InferenceSession(onnx_path, providers=[provider])
net = load_model(ckpt).eval()
w, h = net.codec.input_size
x = torch.randn(2, 3, h, w)
(out,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
with torch.no_grad():
    ref = net(x).numpy()
err = float(np.abs(out - ref).max() / np.abs(ref).max())
print(f"{session.get_providers()[0]} max error {err:.1e} of the largest value")
sys.exit(0 if err < 1e-3 else 1)  # float32 both sides: rsn-export's own check is 1e-4
EOF
)
run_step export bash -c "'$BIN/rsn-export' '$CKPT' '$WORK/model.onnx' && \
  '$BIN/python' -c \"\$1\" '$WORK/model.onnx' '$CKPT' '$DEVICE'" _ "$EXPORT_CHECK"
figure "$(tail -n 1 "$WORK/export.log" | grep -o '^[A-Za-z]*ExecutionProvider.*' || echo "see export.log")"

if [ "$DEVICE" = cuda ]; then
  BENCH=(--model rsn18 --input 192 256 --batch 32 --modes default amp --steps 5 --rounds 1 --warmup 2)
else
  BENCH=(--model rsn_tiny --input 64 64 --batch 2 --modes default --steps 1 --rounds 1 --warmup 1 --gemm-size 256)
fi
run_step bench "$BIN/rsn-bench" --device "$DEVICE" "${BENCH[@]}" --json "$WORK/bench.json"
figure "$("$BIN/python" - "$WORK/bench.json" <<'EOF' 2>/dev/null || echo "no bench.json"
import json, sys
e = next(e for e in json.load(open(sys.argv[1])) if e["mode"] == "default")
print(f"{e['model']} {e['input']} b{e['batch']}: train {e['train_images_per_s']} img/s, "
      f"infer {e['infer_images_per_s']} img/s, train peak {e['train_peak_mb']:.0f} MiB")
EOF
)"

run_step ddp "$BIN/rsn-train" "${QUICK[@]}" "${DDP[@]}" "hydra.run.dir=$WORK/runs/ddp"
figure "$(ap_of ddp)"

run_step pytest-gpu bash -c "cd '$REPO' && '$BIN/pytest' -m gpu -q -p no:cacheprovider tests/gpu"
figure "$(grep -E '(passed|failed|skipped|error)' "$WORK/pytest-gpu.log" | tail -n 1 | sed 's/=//g; s/^ *//')"

echo
echo "gpu_check ($DEVICE): $WORK"
printf '%-18s %-6s %8s  %s\n' step status seconds "key figure"
for i in "${!STEPS[@]}"; do
  printf '%-18s %-6s %8s  %s\n' "${STEPS[$i]}" "${STATUS[$i]}" "${SECONDS_TAKEN[$i]}" "${FIGURES[$i]}"
done
exit "$FAILED"
