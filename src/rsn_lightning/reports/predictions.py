"""Predictions drawn: matched detections on their images with the labelled keypoints, and one person
through the network (the heatmaps of every stage and unit, the PRM's attention)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np


def instance_oks(report: dict) -> list[dict]:
    """The matched detections of an error-analysis report, worst OKS first."""
    return sorted(report["matches"], key=lambda m: m["oks"])


def plot_instances(matches, gt: dict, results: list, image_dir, spec=None, ncols: int = 4, margin: float = 0.15):
    """A grid of matched detections (entries of a report's ``matches``): each person's box region
    with the predicted skeleton (coloured by side) and the labelled keypoints (white), titled by OKS."""
    import cv2
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from rsn_lightning.keypoints import COCO_KEYPOINTS
    from rsn_lightning.visualize import draw_pose

    spec = spec or COCO_KEYPOINTS
    anns = {a["id"]: a for a in gt["annotations"]}
    files = {i["id"]: i["file_name"] for i in gt["images"]}
    n = max(1, len(matches))
    rows = math.ceil(n / ncols)
    fig, axes = plt.subplots(rows, ncols, figsize=(3 * ncols, 3.4 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, m in zip(axes.flat, matches):
        ann = anns[m["annotation_id"]]
        path = Path(image_dir) / files[ann["image_id"]]
        image = cv2.imread(str(path))
        if image is None:
            raise FileNotFoundError(f"image {path} of annotation {ann['id']} not found (set the image folder)")
        det = np.asarray(results[m["result_index"]]["keypoints"], np.float64).reshape(-1, 3)
        drawn = draw_pose(image, det[None, :, :2], np.ones((1, len(det))), spec, score_thr=0.0)
        kp = np.asarray(ann["keypoints"], np.float64).reshape(-1, 3)
        for x, y, v in kp:
            if v > 0:
                cv2.circle(drawn, (int(round(x)), int(round(y))), 2, (255, 255, 255), -1, cv2.LINE_AA)
        x, y, w, h = ann["bbox"]
        x0, y0 = int(max(0, x - margin * w)), int(max(0, y - margin * h))
        x1, y1 = int(min(drawn.shape[1], x + (1 + margin) * w)), int(min(drawn.shape[0], y + (1 + margin) * h))
        ax.imshow(cv2.cvtColor(drawn[y0:y1, x0:x1], cv2.COLOR_BGR2RGB))
        ax.set_title(f"OKS {m['oks']:.2f} (image {ann['image_id']})", fontsize="small")
    fig.tight_layout()
    return fig


def person_crop(predictor, image_bgr, box_xywh):
    """The crop a :class:`~rsn_lightning.inference.Predictor` feeds the network for one person box:
    ``(crop_rgb uint8 [H, W, 3], normalised [3, H, W])``."""
    import cv2

    from rsn_lightning.geometry import crop_affine

    normalised, centers, scales = predictor.crops(image_bgr, np.asarray([box_xywh], np.float64))
    m = crop_affine(centers[0], scales[0], 0.0, predictor.input_size)
    crop = cv2.warpAffine(image_bgr, m, tuple(predictor.input_size), flags=cv2.INTER_LINEAR)
    return cv2.cvtColor(crop, cv2.COLOR_BGR2RGB), normalised[0]


def network_maps(net, crop) -> dict:
    """Run one normalised crop ``crop`` [3, H, W] (numpy or tensor) through an RSN: ``units`` is
    [stages][units] of heatmaps [K, h, w] (coarse -> fine, the last after the PRM, as ``forward_all``),
    and with a PRM ``prm`` holds its input (``before``), ``attention`` (channel x spatial) and output
    (``after``), each [K, h, w]."""
    import torch

    x = torch.as_tensor(np.asarray(crop, np.float32))[None]
    captured = {}
    hook = None
    if getattr(net, "prm", None) is not None:
        hook = net.prm.register_forward_hook(lambda m, inp, out: captured.update(before=inp[0].detach()))
    try:
        with torch.no_grad():
            units = net.eval().forward_all(x)
            maps = {"units": [[u[0].float().numpy() for u in stage] for stage in units]}
            if "before" in captured:
                parts = net.prm.attention(captured["before"])
                maps["prm"] = {"before": captured["before"][0].numpy(), "attention": parts["attention"][0].numpy(),
                               "after": parts["output"][0].numpy()}
    finally:
        if hook is not None:
            hook.remove()
    return maps


def plot_stage_heatmaps(maps: dict, joint: int, joint_name: str = "", crop_rgb=None):
    """Grid of one joint's heatmaps: a row per stage, a column per unit (coarse -> fine)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    units = maps["units"]
    rows, cols = len(units), len(units[0])
    fig, axes = plt.subplots(rows, cols, figsize=(2.2 * cols, 2.6 * rows), squeeze=False)
    for s, stage in enumerate(units):
        for u, hm in enumerate(stage):
            ax = axes[s][u]
            if crop_rgb is not None:
                h, w = hm.shape[-2:]
                ax.imshow(crop_rgb, extent=(0, w, h, 0))
                ax.imshow(hm[joint], cmap="jet", alpha=0.55, extent=(0, w, h, 0))
            else:
                ax.imshow(hm[joint], cmap="jet")
            ax.set_title(f"stage {s + 1} unit {u + 1}" + (" (PRM)" if s == rows - 1 and u == cols - 1 and
                                                           "prm" in maps else ""), fontsize="small")
            ax.axis("off")
    fig.suptitle(f"{joint_name or f'joint {joint}'}: heatmaps coarse (left) to fine (right)", fontsize="small")
    fig.tight_layout()
    return fig


def plot_prm_attention(maps: dict, joint: int, joint_name: str = ""):
    """One joint's heatmap before the PRM, the PRM's attention (channel x spatial), and after."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(7, 3))
    if "prm" not in maps:
        for ax in axes:
            ax.axis("off")
        axes[1].text(0.5, 0.5, "this network has no PRM", ha="center")
        return fig
    for ax, key in zip(axes, ("before", "attention", "after")):
        im = ax.imshow(maps["prm"][key][joint], cmap="jet")
        fig.colorbar(im, ax=ax, fraction=0.046)
        ax.set_title(f"{key} PRM" if key != "attention" else "attention", fontsize="small")
        ax.axis("off")
    fig.suptitle(joint_name or f"joint {joint}", fontsize="small")
    fig.tight_layout()
    return fig
