# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Qualitative: best and worst predictions, every stage's heatmaps, and the PRM's attention
#
# The best and the worst detections of a results file (by OKS with the person they are matched to),
# drawn with their skeletons; then, for one person, the heatmaps of every stage and unit of the
# network (coarse to fine, as the loss supervises them with kernels 15 -> 5) and the Pose Refine
# Machine's input, attention (channel x spatial) and output.
#
# **Run it**: after `rsn-train experiment=quickstart`, open this notebook, or run it headless with
# `jupyter execute notebooks/qualitative.ipynb`. Settings (environment variables): `RSN_CKPT` a
# checkpoint (default: the newest `logs/train/runs/*/checkpoints/*.ckpt`), `RSN_GT` the COCO
# keypoint ground truth (default: the synthetic val split), `RSN_IMAGES` its image folder (default:
# `images/val` beside the ground truth's `annotations/`), `RSN_RESULTS` a results file (default: the
# newest of the checkpoint's run), `RSN_JOINT` the joint to show (default `left_wrist`), `RSN_FIGURES`
# where the PNGs go (default `<checkpoint's run>/qualitative`).

# %%
import json
import os
from pathlib import Path

import cv2

from rsn_lightning import load_model
from rsn_lightning.evaluation.error_analysis import analyze
from rsn_lightning.inference import Predictor
from rsn_lightning.reports import predictions


def newest(pattern):
    return sorted((p for base in (Path("."), Path("..")) for p in base.glob(pattern)), key=lambda p: p.stat().st_mtime)


if os.environ.get("RSN_CKPT"):
    CKPT = Path(os.environ["RSN_CKPT"])
elif newest("logs/train/runs/*/checkpoints/*.ckpt"):
    CKPT = newest("logs/train/runs/*/checkpoints/*.ckpt")[-1]
else:
    raise FileNotFoundError("no checkpoint: run `rsn-train experiment=quickstart` first, or set RSN_CKPT "
                            "(and RSN_GT, RSN_IMAGES, RSN_RESULTS)")
RUN = CKPT.parent.parent
GT = Path(os.environ.get("RSN_GT") or next(iter(newest("data/synthetic/annotations/person_keypoints_val.json")),
                                            "data/synthetic/annotations/person_keypoints_val.json"))
IMAGES = Path(os.environ.get("RSN_IMAGES") or GT.parent.parent / "images" / "val")
RESULTS = Path(os.environ.get("RSN_RESULTS") or sorted((RUN / "results").glob("*.json"))[-1])
JOINT = os.environ.get("RSN_JOINT", "left_wrist")
FIGURES = Path(os.environ.get("RSN_FIGURES") or RUN / "qualitative")
FIGURES.mkdir(parents=True, exist_ok=True)
gt = json.loads(GT.read_text())
results = json.loads(RESULTS.read_text())
report = analyze(GT, results)
ranked = predictions.instance_oks(report)
if ranked:
    print(f"{len(ranked)} detections matched; OKS from {ranked[0]['oks']:.3f} to {ranked[-1]['oks']:.3f}")
else:
    print("no detection matches a person at OKS >= 0.1 (an untrained model?): no best or worst to draw")

# %% [markdown]
# The best predictions (top) and the worst (bottom); white dots are the labelled keypoints.

# %%
best = predictions.plot_instances(ranked[::-1][:4], gt, results, IMAGES)
best.suptitle("best")
best.savefig(FIGURES / "best.png")
worst = predictions.plot_instances(ranked[:4], gt, results, IMAGES)
worst.suptitle("worst")
worst.savefig(FIGURES / "worst.png")

# %% [markdown]
# One person (the worst-predicted one, else the first labelled one) through the network: every stage
# and unit, coarse to fine.

# %%
net = load_model(CKPT)
predictor = Predictor(net, flip=False)
people = {a["id"]: a for a in gt["annotations"] if a.get("num_keypoints", 0) > 0}
ann = people[ranked[0]["annotation_id"]] if ranked else next(iter(people.values()))
image = cv2.imread(str(IMAGES / {i["id"]: i["file_name"] for i in gt["images"]}[ann["image_id"]]))
crop_rgb, crop = predictions.person_crop(predictor, image, ann["bbox"])
maps = predictions.network_maps(net, crop)
joint = predictor.spec.names.index(JOINT)
predictions.plot_stage_heatmaps(maps, joint, JOINT, crop_rgb).savefig(FIGURES / "stage_heatmaps.png")

# %% [markdown]
# The PRM on the final heatmaps: its input, its attention (channel weight x spatial map) and its output.

# %%
predictions.plot_prm_attention(maps, joint, JOINT).savefig(FIGURES / "prm_attention.png")
print("figures in", FIGURES)
