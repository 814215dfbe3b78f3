"""Each paper preset composes with the authors' recipe, and rsn-train reports the final weights.

The recipe table below is written from the authors' released code, caiyuanhao1998/RSN at commit
ca3ba3a253ddc75c72dd2c1eff390aaecabda37d (the only public source of their recipe; the paper gives fewer
details):
- exps/RSN18.coco/config.py, exps/4XRSN18.coco/config.py (SOLVER.*, LOSS.*): Adam, BASE_LR 5e-4,
  IMS_PER_GPU 32, MAX_ITER 96000, WARMUP_ITERS 2400, WARMUP_FACTOR 0.1, WARMUP_METHOD linear,
  WEIGHT_DECAY 1e-5; OHKM top-8, coarse-to-fine.
- exps/RSN18.mpii/config.py: the same but MAX_ITER 28800.
- lib/utils/solver.py: lr = BASE_LR * num_gpu; LambdaLR warm-up from WARMUP_FACTOR, then linear to 0
  at MAX_ITER (no milestones).
- exps/RSN18.coco/train.py: MAX_ITER is for 8 GPUs ("default num_gpu: 8"); plain DistributedDataParallel
  of a network of nn.BatchNorm2d (per-GPU batch norm), no autocast or half precision (float32).
- dataset/attribute.py: GAUSSIAN_KERNELS 15/11/9/7/5; TEST.FLIP True, SHIFT_RATIOS [0.25],
  TEST.GAUSSIAN_KERNEL 5 (COCO) and 9 (MPII); input 256x192 (COCO), 256x256 (MPII).
- dataset/COCO/coco.py: detection boxes used as given (no clipping to the image).
- README.md "Test": `test.py -i iter_num`, the numbers of a chosen (the final) iteration.
Training-set sizes used to turn iterations into epochs: 149,813 COCO train2017 people and 22,246 MPII
train people, as HRNet's data loaders count them (the splits of the authors' gt_json).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from test_configs import compose_train
from test_model_presets import composed_arch

from rsn_lightning.training.schedule import lr_multiplier, scaled_lr

AUTHORS_GPUS = 8
AUTHORS = {
    "coco": dict(iterations=96000, train_people=149_813, blur_kernel=5, input_size=[192, 256]),
    "mpii": dict(iterations=28800, train_people=22_246, blur_kernel=9, input_size=[256, 256]),
}
AUTHORS_COMMON = dict(
    ims_per_gpu=32, base_lr_per_gpu=5e-4, weight_decay=1e-5, optimizer="adam", warmup_iters=2400,
    warmup_factor=0.1, schedule="linear", milestones=[], sync_batchnorm=False, precision="32-true",
    flip_test=True, decode="authors", shift=0.25, ohkm=True, topk=8, coarse_to_fine=True,
    target_kernels=[15, 11, 9, 7, 5], target_type="kernel", clip_boxes="none", reported="last",
    init="authors",
)
PRESETS = {
    "coco_rsn18_256x192": "coco", "coco_rsn50_256x192": "coco", "coco_rsn101_256x192": "coco",
    "coco_2xrsn50_256x192": "coco", "coco_3xrsn50_256x192": "coco", "coco_4xrsn50_256x192": "coco",
    "coco_4xrsn50_384x288": "coco", "coco_rsn18_256x192_noprm": "coco", "mpii_4xrsn50_256x256": "mpii",
}


def _authors_lr(iteration: int, max_iter: int) -> float:
    """lib/utils/solver.py's lr_lambda, restated."""
    w, f = AUTHORS_COMMON["warmup_iters"], AUTHORS_COMMON["warmup_factor"]
    return f + (1 - f) * iteration / w if iteration < w else 1 - (iteration - w) / (max_iter - w)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_preset_composes_with_the_authors_recipe(name, tmp_path):
    cfg = compose_train(tmp_path, [f"experiment={name}"])
    a = {**AUTHORS_COMMON, **AUTHORS[PRESETS[name]]}
    assert list(cfg.data.input_size) == ([288, 384] if name.endswith("384x288") else a["input_size"])
    assert cfg.data.batch_size == a["ims_per_gpu"]
    # epochs x people / (8 GPUs x 32) is the authors' iteration count to within 0.5%
    steps_at_8_gpus = cfg.trainer.max_epochs * a["train_people"] / (AUTHORS_GPUS * a["ims_per_gpu"])
    assert steps_at_8_gpus == pytest.approx(a["iterations"], rel=5e-3)
    assert cfg.trainer.max_epochs % cfg.trainer.check_val_every_n_epoch == 0  # the final epoch is validated
    opt = cfg.model.optimizer
    sched = cfg.model.scheduler
    assert opt.name == a["optimizer"] and opt.weight_decay == a["weight_decay"]
    assert opt.scale_lr and opt.reference_batch == a["ims_per_gpu"]
    total_batch = AUTHORS_GPUS * cfg.data.batch_size
    assert scaled_lr(opt.lr, total_batch, opt.reference_batch) == pytest.approx(
        a["base_lr_per_gpu"] * AUTHORS_GPUS)
    assert (sched.name, sched.warmup_steps, sched.warmup_factor) == (
        a["schedule"], a["warmup_iters"], a["warmup_factor"])
    assert list(sched.milestones) == a["milestones"] and not sched.milestone_epochs and sched.warmup_epochs is None
    for it in (0, 1200, 2399, 2400, a["iterations"] // 2, a["iterations"] - 1):
        ours = lr_multiplier(it, sched.name, a["iterations"], sched.warmup_steps, sched.warmup_factor)
        assert ours == pytest.approx(_authors_lr(it, a["iterations"]), abs=1e-12), it
    assert cfg.trainer.sync_batchnorm is a["sync_batchnorm"]
    assert str(cfg.trainer.precision) == a["precision"]
    codec = cfg.codec
    assert (cfg.model.test.flip, codec.decode, codec.blur_kernel, codec.shift) == (
        a["flip_test"], a["decode"], a["blur_kernel"], a["shift"])
    loss = cfg.model.loss
    assert (loss.ohkm, loss.topk, loss.coarse_to_fine) == (a["ohkm"], a["topk"], a["coarse_to_fine"])
    assert list(codec.kernels) == a["target_kernels"] and codec.target_type == a["target_type"]
    assert list(codec.input_size) == list(cfg.data.input_size)
    assert cfg.data.clip_boxes == a["clip_boxes"]
    assert cfg.eval_checkpoint == a["reported"]
    assert composed_arch(cfg)["init"] == a["init"]


def test_the_prm_ablation_pair_differs_only_in_prm(tmp_path):
    with_prm = compose_train(tmp_path, ["experiment=coco_rsn18_256x192"])
    without = compose_train(tmp_path, ["experiment=coco_rsn18_256x192_noprm"])
    assert (composed_arch(with_prm)["prm"], composed_arch(without)["prm"]) == ("last_unit", "none")
    with_prm, without = OmegaConf.to_container(with_prm), OmegaConf.to_container(without)
    for cfg in (with_prm, without):
        del cfg["model"]["net"]["prm"], cfg["tags"]
    assert with_prm == without


def test_rsn_train_reports_the_final_weights_and_keeps_the_best_labelled(tmp_path):
    """The user's command: rsn-train evaluates last.ckpt, holding the weights of the final step, and
    prints the best-on-val checkpoint beside it."""
    app = Path(sys.executable).with_name("rsn-train")
    cmd = [str(app)] if app.exists() else [sys.executable, "-m", "rsn_lightning.cli.train"]
    tiny = [
        "experiment=quickstart", "logger=none", "callbacks=model_checkpoint",
        "data.synthetic.num_train=12", "data.synthetic.num_val=4",
        "data.batch_size=4", "data.input_size=[64,96]", "trainer.max_epochs=2",
        "+trainer.limit_train_batches=2", "trainer.check_val_every_n_epoch=1",
        "+trainer.enable_progress_bar=false", "+trainer.num_sanity_val_steps=0",
        f"paths.root_dir={tmp_path}", f"hydra.run.dir={tmp_path}/run",
    ]
    proc = subprocess.run([*cmd, *tiny], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Validation (last checkpoint)" in proc.stdout
    lines = dict(line.strip().split(": ", 1) for line in proc.stdout.splitlines() if ": " in line)
    assert Path(lines["checkpoint"]).name == "last.ckpt"
    assert Path(lines["best_on_val"]).name.startswith("best_ap_epoch")
    last = torch.load(lines["checkpoint"], map_location="cpu", weights_only=True)
    assert last["global_step"] == 4  # 2 epochs x 2 batches: the final step's weights


def test_mmpose_schedule_is_an_override(tmp_path):
    """mmpose's RSN-50 recipe (td-hm_rsn50_8xb32-210e_coco-256x192.py: Adam 5e-3 per 256 images, no
    weight decay, LinearLR warm-up over 500 iterations from 0.001, x0.1 at epochs 170 and 200 of 210)
    composes from the README's overrides."""
    cfg = compose_train(tmp_path, [
        "experiment=coco_rsn50_256x192", "model.scheduler.name=multistep", "model.scheduler.warmup_steps=500",
        "model.scheduler.warmup_factor=0.001", "model.scheduler.milestone_epochs=[170,200]",
        "trainer.max_epochs=210", "trainer.check_val_every_n_epoch=10", "model.optimizer.lr=6.25e-4",
        "model.optimizer.weight_decay=0"])
    opt, sched = cfg.model.optimizer, cfg.model.scheduler
    assert scaled_lr(opt.lr, 8 * cfg.data.batch_size, opt.reference_batch) == pytest.approx(5e-3)
    steps_per_epoch = 149_813 // 256
    milestones = [e * steps_per_epoch for e in sched.milestone_epochs]
    mult = [lr_multiplier(s, sched.name, 210 * steps_per_epoch, sched.warmup_steps, sched.warmup_factor,
                          milestones, sched.gamma) for s in (0, 500, milestones[0], milestones[1])]
    assert mult == pytest.approx([0.001, 1.0, 0.1, 0.01])
