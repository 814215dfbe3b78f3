"""An independent, functional RSN forward that reads a state dict in the authors' or mmpose's layout.

It follows the structure of the authors' network.py (caiyuanhao1998/RSN, exps/4XRSN18.coco) and of
mmpose's RSN backbone + MSPNHead directly with F.conv2d / F.batch_norm, key by key, sharing no code
with rsn_lightning.models. It is validated against the fixture outputs produced by the real reference
implementations, and then serves as the reference for layouts no fixture covers (multi-stage, RSN-50,
the authors' PRM). ``make_keys`` writes the key list (with shapes) those codes would save.
"""

from __future__ import annotations

import json
import re

import torch
import torch.nn.functional as F

LAYOUTS = ("official", "mmpose")


def _names(layout: str) -> dict:
    if layout == "official":
        return dict(
            top="top.conv",
            stage="stage{s}",
            rsb_out="conv_bn_relu3",
            lateral="u_skip",
            skip1="skip1",
            skip2="skip2",
            head="stage{s}.upsample.up{u1}.res_conv{k1}",
            bias=True,
        )
    return dict(
        top="backbone.top.top.0",
        stage="backbone.multi_stage_rsn.{s}",
        rsb_out="conv_bn3",
        lateral="in_skip",
        skip1="out_skip1",
        skip2="out_skip2",
        head="head.predict_layers.{i}.conv_layers.{k}",
        bias=False,
    )


def _cbr(sd, p, x, stride=1, groups=1, relu=True):
    w = sd[p + ".conv.weight"]
    x = F.conv2d(x, w, sd.get(p + ".conv.bias"), stride=stride, padding=w.shape[-1] // 2, groups=groups)
    x = F.batch_norm(
        x,
        sd[p + ".bn.running_mean"],
        sd[p + ".bn.running_var"],
        sd[p + ".bn.weight"],
        sd[p + ".bn.bias"],
        False,
        0.0,
        1e-5,
    )
    return F.relu(x) if relu else x


def _rsb(sd, p, x, stride, out_name):
    out = _cbr(sd, p + ".conv_bn_relu1", x, stride=stride)
    n = len({k for k in sd if k.startswith(p + ".conv_bn_relu2_") and k.endswith("_1.conv.weight")})
    ch = sd[p + ".conv_bn_relu2_1_1.conv.weight"].shape[0]
    spx = torch.split(out, ch, 1)
    outs = []
    for i in range(n):
        row = []
        for j in range(i + 1):
            inp = spx[i] if j == 0 else row[j - 1]
            if i > j:
                inp = inp + outs[i - 1][j]
            row.append(_cbr(sd, p + f".conv_bn_relu2_{i + 1}_{j + 1}", inp))
        outs.append(row)
    out = _cbr(sd, p + "." + out_name, torch.cat([r[-1] for r in outs], 1), relu=False)
    if p + ".downsample.conv.weight" in sd:
        x = _cbr(sd, p + ".downsample", x, stride=stride, relu=False)
    return F.relu(out + x)


def reference_forward(sd: dict, x: torch.Tensor, layout: str) -> list[list[torch.Tensor]]:
    """All heatmaps: per stage, 4 units coarse -> fine; the authors' PRM (if present) on the last one."""
    nm = _names(layout)
    prefix = nm["stage"].split("{")[0]
    num_stages = len({int(re.match(re.escape(prefix) + r"(\d+)", k)[1]) for k in sd if k.startswith(prefix)})
    out_hw = (x.shape[2] // 4, x.shape[3] // 4)
    x = F.max_pool2d(_cbr(sd, nm["top"], x, stride=2), 3, 2, 1)
    skip1 = skip2 = None
    outputs = []
    for s in range(num_stages):
        sp = nm["stage"].format(s=s)
        feats = []
        for layer in range(1, 5):
            nblocks = len(
                {
                    k.split(".")[0]
                    for k in (
                        k[len(f"{sp}.downsample.layer{layer}.") :]
                        for k in sd
                        if k.startswith(f"{sp}.downsample.layer{layer}.")
                    )
                }
            )
            for b in range(nblocks):
                x = _rsb(
                    sd,
                    f"{sp}.downsample.layer{layer}.{b}",
                    x,
                    2 if (b == 0 and layer > 1) else 1,
                    nm["rsb_out"],
                )
            if skip1 is not None:
                x = x + skip1[layer - 1] + skip2[layer - 1]
            feats.append(x)
        res, s1, s2, cross, out = [], [], [], None, None
        for u, feat in enumerate(reversed(feats)):
            up = f"{sp}.upsample.up{u + 1}"
            cur = _cbr(sd, f"{up}.{nm['lateral']}", feat, relu=False)
            if u > 0:
                prev = F.interpolate(out, size=feat.shape[2:], mode="bilinear", align_corners=True)
                cur = cur + _cbr(sd, f"{up}.up_conv", prev, relu=False)
            out = F.relu(cur)
            h0 = nm["head"].format(s=s, u1=u + 1, k1=1, i=s * 4 + u, k=0)
            h1 = nm["head"].format(s=s, u1=u + 1, k1=2, i=s * 4 + u, k=1)
            r = _cbr(sd, h1, _cbr(sd, h0, out), relu=False)
            res.append(F.interpolate(r, size=out_hw, mode="bilinear", align_corners=True))
            if f"{up}.{nm['skip1']}.conv.weight" in sd:
                s1.append(_cbr(sd, f"{up}.{nm['skip1']}", feat))
                s2.append(_cbr(sd, f"{up}.{nm['skip2']}", out))
            if f"{up}.cross_conv.conv.weight" in sd:
                cross = _cbr(sd, f"{up}.cross_conv", out)
        outputs.append(res)
        skip1, skip2, x = s1[::-1] or None, s2[::-1] or None, cross
    if "prm.conv_bn_relu_prm_1.conv.weight" in sd:
        f = _cbr(sd, "prm.conv_bn_relu_prm_1", outputs[-1][-1])
        c = F.adaptive_avg_pool2d(f, (1, 1))
        c = torch.sigmoid(_cbr(sd, "prm.conv_bn_relu_prm_2_2", _cbr(sd, "prm.conv_bn_relu_prm_2_1", c)))
        k = f.shape[1]
        sp_ = torch.sigmoid(
            _cbr(sd, "prm.conv_bn_relu_prm_3_2", _cbr(sd, "prm.conv_bn_relu_prm_3_1", f), groups=k)
        )
        outputs[-1][-1] = f * (1 + c * sp_)
    return outputs


def make_keys(
    layout: str,
    num_stages=1,
    blocks=(2, 2, 2, 2),
    num_keypoints=17,
    prm=False,
    decoder_channels=256,
    branches=4,
) -> list[tuple[str, list[int]]]:
    """The (sorted) state-dict keys and shapes the authors' or mmpose's code creates for this config."""
    nm = _names(layout)
    keys = []

    def cbr(p, cin, cout, k=1, groups=1):
        keys.append((p + ".conv.weight", [cout, cin // groups, k, k]))
        if nm["bias"]:
            keys.append((p + ".conv.bias", [cout]))
        for b in ("weight", "bias", "running_mean", "running_var"):
            keys.append((f"{p}.bn.{b}", [cout]))
        keys.append((p + ".bn.num_batches_tracked", []))

    cbr(nm["top"], 3, 64, 7)
    planes = [64, 128, 256, 512]
    for s in range(num_stages):
        sp = nm["stage"].format(s=s)
        cin = 64
        for layer, (width, n) in enumerate(zip(planes, blocks), start=1):
            for b in range(n):
                p = f"{sp}.downsample.layer{layer}.{b}"
                ch = cin * 26 // 64
                cbr(p + ".conv_bn_relu1", cin, branches * ch)
                for i in range(branches):
                    for j in range(i + 1):
                        cbr(f"{p}.conv_bn_relu2_{i + 1}_{j + 1}", ch, ch, 3)
                cbr(f"{p}.{nm['rsb_out']}", branches * ch, width)
                if b == 0 and (layer > 1 or cin != width):
                    cbr(p + ".downsample", cin, width)
                cin = width
        has_next = s < num_stages - 1
        for u, cin in enumerate(planes[::-1]):
            up = f"{sp}.upsample.up{u + 1}"
            cbr(f"{up}.{nm['lateral']}", cin, decoder_channels)
            if u > 0:
                cbr(up + ".up_conv", decoder_channels, decoder_channels)
            if has_next:
                cbr(f"{up}.{nm['skip1']}", cin, cin)
                cbr(f"{up}.{nm['skip2']}", decoder_channels, cin)
                if u == 3:
                    cbr(up + ".cross_conv", decoder_channels, 64)
            cbr(nm["head"].format(s=s, u1=u + 1, k1=1, i=s * 4 + u, k=0), decoder_channels, decoder_channels)
            cbr(nm["head"].format(s=s, u1=u + 1, k1=2, i=s * 4 + u, k=1), decoder_channels, num_keypoints, 3)
    if prm:
        k = num_keypoints
        cbr("prm.conv_bn_relu_prm_1", k, k, 3)
        cbr("prm.conv_bn_relu_prm_2_1", k, k)
        cbr("prm.conv_bn_relu_prm_2_2", k, k)
        cbr("prm.conv_bn_relu_prm_3_1", k, k)
        cbr("prm.conv_bn_relu_prm_3_2", k, k, 9, groups=k)
    return sorted(keys)


def write_keys_json(path, keys, seed: int) -> None:
    with open(path, "w") as f:
        json.dump({"seed": seed, "keys": keys}, f)
