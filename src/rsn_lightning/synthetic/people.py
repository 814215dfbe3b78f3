"""The synthetic people: body model, drawing primitives, part labels and colours.

Person geometry is a 2D projection of a crude 3D body: a yaw angle foreshortens shoulders and hips,
decides which side's limbs pass behind the torso (self-occlusion) and which face features (eyes,
nose, ears) are seen. Left limbs are drawn in warm colours and right limbs in cool ones, so a model
can tell left from right even on a person seen from the back.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from rsn_lightning.keypoints import COCO_KEYPOINTS

NUM_JOINTS = COCO_KEYPOINTS.num_keypoints

# label value = (slot + 1) * PARTS_PER_PERSON + part; slot 0..MAX_PERSONS-1, so values stay < OCCLUDER
PARTS_PER_PERSON = 32
MAX_PERSONS = 6
OCCLUDER = 255

PARTS = (
    "torso", "head", "nose", "left_eye", "right_eye", "left_ear", "right_ear",
    "left_upper_arm", "right_upper_arm", "left_forearm", "right_forearm",
    "left_thigh", "right_thigh", "left_shin", "right_shin",
)
P = {name: i for i, name in enumerate(PARTS)}

# the parts a joint is the centre of: a joint is visible when one of these is on top at its pixel
JOINT_PARTS: tuple[tuple[int, ...], ...] = (
    (P["nose"],),
    (P["left_eye"],),
    (P["right_eye"],),
    (P["left_ear"],),
    (P["right_ear"],),
    (P["left_upper_arm"],),
    (P["right_upper_arm"],),
    (P["left_upper_arm"], P["left_forearm"]),
    (P["right_upper_arm"], P["right_forearm"]),
    (P["left_forearm"],),
    (P["right_forearm"],),
    (P["left_thigh"],),
    (P["right_thigh"],),
    (P["left_thigh"], P["left_shin"]),
    (P["right_thigh"], P["right_shin"]),
    (P["left_shin"],),
    (P["right_shin"],),
)

_SHIFT = 4  # OpenCV drawing with 4 fractional bits, so joints need not sit on pixel centres
_ONE = 1 << _SHIFT
_MIN_THICK = 3  # a capsule at least 3 px thick always covers the pixel nearest to its end points


# ----------------------------------------------------------------------------------------------
# person geometry


def _unit(deg: float) -> np.ndarray:
    r = np.deg2rad(deg)
    return np.array([np.cos(r), np.sin(r)])


@dataclass
class _Prim:
    depth: float  # larger = farther from the camera, drawn first
    part: int
    kind: str  # capsule | poly | circle | ellipse
    args: tuple


def sample_person(rng: np.random.Generator, height: float):
    """A person in local coordinates (pelvis near the origin, y down).

    Returns the joints [17, 2], the drawing primitives and the amodal extent (x0, y0, x1, y1).
    Proportions are in units of the torso length T (neck to pelvis), a person being about 3.3 T tall.
    """
    T = height / 3.3

    def jit() -> float:  # per-person proportion jitter, one draw per segment
        return float(rng.uniform(0.92, 1.08))

    R = 0.23 * T * jit()  # head radius
    SW, HW = 0.42 * T * jit(), 0.27 * T * jit()  # shoulder and hip half widths
    UA, FA = 0.62 * T * jit(), 0.55 * T * jit()  # upper arm, forearm
    TH, SH = 0.85 * T * jit(), 0.82 * T * jit()  # thigh, shin
    t_ua, t_fa = 0.19 * T, 0.16 * T  # limb thicknesses
    t_th, t_sh = 0.28 * T, 0.22 * T
    thick_t = 0.24 * T  # torso half-depth, its apparent half width seen from the side

    # body yaw psi: 0 faces the camera (left side on the image right), +-90 profile, 180 back view
    mode = rng.random()
    if mode < 0.55:
        psi = float(rng.normal(0.0, 22.0))
    elif mode < 0.85:
        psi = float(rng.choice([-1, 1]) * rng.uniform(40.0, 100.0))
    else:
        psi = float(rng.choice([-1, 1]) * rng.uniform(110.0, 180.0))
    cpsi, spsi = np.cos(np.deg2rad(psi)), np.sin(np.deg2rad(psi))
    # in-plane lean of the whole body
    beta = float(rng.normal(0.0, 6.0)) if rng.random() < 0.85 else float(rng.uniform(-40.0, 40.0))
    s = _unit(beta)  # image "right" of the body plane
    u = np.array([s[1], -s[0]])  # body up (image y grows downwards)
    down = -u
    fwd = 1.0 if spsi >= 0 else -1.0  # the side (along s) the nose points to in profile

    def direction(theta_deg: float) -> np.ndarray:
        """Body-down rotated by theta towards +s."""
        t = np.deg2rad(theta_deg)
        return down * np.cos(t) + s * np.sin(t)

    joints = np.zeros((NUM_JOINTS, 2))
    prims: list[_Prim] = []
    pelvis = np.zeros(2)
    neck = pelvis + u * T
    shoulder_y = -u * 0.06 * T
    joints[5] = neck + s * (cpsi * SW) + shoulder_y
    joints[6] = neck - s * (cpsi * SW) + shoulder_y
    joints[11] = pelvis + s * (cpsi * HW)
    joints[12] = pelvis - s * (cpsi * HW)

    # torso: a polygon whose corners are the shoulders/hips seen from the front, the body's depth
    # seen from the side, so a far-side shoulder or hip in profile lies inside it
    # (corners a little inside the joints, so whether a shoulder or hip is hidden is clear-cut)
    wt = max(abs(cpsi) * SW * 0.85, thick_t)
    wb = max(abs(cpsi) * HW * 0.75, thick_t * 0.85)
    ww = 0.9 * min(wt, wb)
    top, bot = neck + shoulder_y + u * 0.08 * T, pelvis - u * 0.07 * T
    waist = pelvis + u * 0.45 * T
    torso = np.array([top + s * wt, waist + s * ww, bot + s * wb, bot - s * wb, waist - s * ww, top - s * wt])
    prims.append(_Prim(0.0, P["torso"], "poly", (torso,)))

    # head and neck; the head may turn a little relative to the body
    tilt = np.deg2rad(rng.uniform(-15, 15))
    u_head = u @ np.array([[np.cos(tilt), np.sin(tilt)], [-np.sin(tilt), np.cos(tilt)]])
    s_head = np.array([-u_head[1], u_head[0]])
    head = neck + u_head * (0.14 * T + R)
    prims.append(_Prim(0.0, P["torso"], "capsule", (neck, head, 0.22 * T)))
    prims.append(_Prim(-0.01 * T, P["head"], "circle", (head, R)))
    psi_h = psi + float(rng.uniform(-25.0, 25.0))

    def face_point(gamma: float, rho: float, dy: float) -> tuple[np.ndarray, float]:
        """Point on the head sphere at angle gamma from the nose (left positive): position, facing."""
        a = np.deg2rad(psi_h + gamma)
        return head + s_head * (rho * R * np.sin(a)) - u_head * (dy * R), float(np.cos(a))

    # (joint, part, angle from the nose, radius fraction, drop below centre, seen if cos > , mark size)
    for j, part, gamma, rho, dy, seen, size in (
        (0, "nose", 0.0, 0.88, 0.12, 0.05, 0.17),
        (1, "left_eye", 35.0, 0.78, -0.14, 0.2, 0.13),
        (2, "right_eye", -35.0, 0.78, -0.14, 0.2, 0.13),
        (3, "left_ear", 90.0, 0.9, 0.0, -0.2, 0.2),
        (4, "right_ear", -90.0, 0.9, 0.0, -0.2, 0.2),
    ):
        pos, facing = face_point(gamma, rho, dy)
        joints[j] = pos
        if facing > seen:
            r = max(1.5, size * R)
            if part.endswith("ear"):
                # an ear sticks out of the head's outline; its mark is centred a bit further out
                out, _ = face_point(gamma, 1.0, dy)
                prims.append(_Prim(-0.011 * T, P[part], "ellipse", (out, (r * 0.8, r * 1.3), beta)))
            else:
                prims.append(_Prim(-0.012 * T, P[part], "circle", (pos, r)))

    # arms and legs; a small negative depth bias puts frontal limbs in front of the torso, while in
    # profile the far-side limbs go behind it
    for side, sh, el, wr in ((1.0, 5, 7, 9), (-1.0, 6, 8, 10)):
        name = "left" if side > 0 else "right"
        lx = side * cpsi
        out = np.sign(lx) if abs(lx) > 0.35 else float(rng.choice([-1.0, 1.0]))
        depth = side * spsi * SW - 0.03 * T
        m = rng.random()
        if m < 0.5:  # hanging, slightly out
            th_u = out * rng.uniform(-5.0, 35.0)
            th_f = th_u + rng.choice([-1.0, 1.0]) * rng.uniform(0.0, 50.0)
        elif m < 0.85:  # raised or swinging
            th_u = out * rng.uniform(30.0, 165.0)
            th_f = th_u + rng.choice([-1.0, 1.0]) * rng.uniform(0.0, 130.0)
        else:  # across the chest, in front of everything else of the body
            th_u = -out * rng.uniform(0.0, 35.0)
            th_f = th_u - out * rng.uniform(60.0, 145.0)
            depth = -0.6 * T
        joints[el] = joints[sh] + direction(th_u) * UA * rng.uniform(0.7, 1.0)
        fa_dir = direction(th_f)
        joints[wr] = joints[el] + fa_dir * FA * rng.uniform(0.75, 1.0)
        prims.append(_Prim(depth, P[f"{name}_upper_arm"], "capsule", (joints[sh], joints[el], t_ua)))
        prims.append(_Prim(depth - 1e-3, P[f"{name}_forearm"], "capsule", (joints[el], joints[wr], t_fa)))
        hand = joints[wr] + fa_dir * 0.12 * T
        prims.append(_Prim(depth - 1e-3, P[f"{name}_forearm"], "circle", (hand, 0.11 * T)))

    squat = rng.random() < 0.1
    for side, hp, kn, an in ((1.0, 11, 13, 15), (-1.0, 12, 14, 16)):
        name = "left" if side > 0 else "right"
        lx = side * cpsi
        depth = side * spsi * HW - 0.02 * T
        if abs(cpsi) > 0.5:  # seen from the front or back: legs spread sideways, knees foreshortened
            out = np.sign(lx)
            if squat:
                th_t, f_t = out * rng.uniform(20.0, 70.0), rng.uniform(0.35, 0.6)
                th_s = out * rng.uniform(-20.0, 10.0)
            else:
                th_t, f_t = out * rng.uniform(-5.0, 28.0), rng.uniform(0.8, 1.0)
                th_s = th_t + out * rng.uniform(-25.0, 8.0)
            foot_dir = direction(out * 70.0)
        else:  # profile: stride forward/back, the knee bends backwards
            th_t, f_t = fwd * rng.uniform(-35.0, 55.0), rng.uniform(0.85, 1.0)
            th_s = float(np.clip(th_t - fwd * rng.uniform(0.0, 100.0), -100.0, 100.0))
            foot_dir = direction(fwd * 80.0)
        joints[kn] = joints[hp] + direction(th_t) * TH * f_t
        joints[an] = joints[kn] + direction(th_s) * SH * rng.uniform(0.85, 1.0)
        prims.append(_Prim(depth, P[f"{name}_thigh"], "capsule", (joints[hp], joints[kn], t_th)))
        prims.append(_Prim(depth - 1e-3, P[f"{name}_shin"], "capsule", (joints[kn], joints[an], t_sh)))
        foot = joints[an] + foot_dir * 0.22 * T
        prims.append(_Prim(depth - 1e-3, P[f"{name}_shin"], "capsule", (joints[an], foot, 0.15 * T)))

    pts = np.concatenate([joints, torso] + [np.asarray(p.args[:2]) for p in prims if p.kind == "capsule"]
                         + [np.asarray(p.args[0])[None] for p in prims if p.kind in ("circle", "ellipse")])
    pad = max(R, t_th) + 1.0  # the largest radius around any of those points
    extent = (pts[:, 0].min() - pad, pts[:, 1].min() - pad, pts[:, 0].max() + pad, pts[:, 1].max() + pad)
    return joints, prims, extent


def _fx(p) -> tuple[int, int]:
    return int(round(p[0] * _ONE)), int(round(p[1] * _ONE))


def draw_primitive(canvas: np.ndarray, prim: _Prim, value: int, offset: np.ndarray) -> None:
    a = prim.args
    if prim.kind == "capsule":
        thick = max(_MIN_THICK, int(round(a[2])))
        cv2.line(canvas, _fx(a[0] + offset), _fx(a[1] + offset), value, thick, cv2.LINE_8, _SHIFT)
    elif prim.kind == "poly":
        pts = np.round((a[0] + offset) * _ONE).astype(np.int32)
        cv2.fillPoly(canvas, [pts], value, cv2.LINE_8, _SHIFT)
    elif prim.kind == "circle":
        radius = max(int(round(a[1] * _ONE)), _ONE)
        cv2.circle(canvas, _fx(a[0] + offset), radius, value, -1, cv2.LINE_8, _SHIFT)
    elif prim.kind == "ellipse":
        axes = (max(int(round(a[1][0] * _ONE)), _ONE), max(int(round(a[1][1] * _ONE)), _ONE))
        cv2.ellipse(canvas, _fx(a[0] + offset), axes, float(a[2]), 0, 360, value, -1, cv2.LINE_8, _SHIFT)
    else:  # pragma: no cover - internal
        raise ValueError(prim.kind)


# ----------------------------------------------------------------------------------------------
# colours


def _hsv_to_bgr(h: float, s: float, v: float) -> np.ndarray:
    px = np.array([[[h % 180, s, v]]], dtype=np.uint8)
    return cv2.cvtColor(px, cv2.COLOR_HSV2BGR)[0, 0].astype(np.float32)


_SKIN = np.array([[190, 210, 240], [150, 180, 225], [110, 150, 200], [70, 105, 160], [45, 70, 110]],
                 np.float32)


def person_palette(rng: np.random.Generator) -> np.ndarray:
    """[PARTS_PER_PERSON, 3] BGR colours: warm left limbs, cool right limbs, a third hue for the torso."""
    pal = np.zeros((PARTS_PER_PERSON, 3), np.float32)
    hl, hr = rng.uniform(0, 22), rng.uniform(95, 125)
    sat = rng.uniform(170, 255)
    for side, h in (("left", hl), ("right", hr)):
        pal[P[f"{side}_upper_arm"]] = _hsv_to_bgr(h, sat, 240)
        pal[P[f"{side}_forearm"]] = _hsv_to_bgr(h + 4, sat, 175)
        pal[P[f"{side}_thigh"]] = _hsv_to_bgr(h + 8, sat * 0.8, 215)
        pal[P[f"{side}_shin"]] = _hsv_to_bgr(h + 12, sat * 0.8, 150)
    torso_h = rng.choice([rng.uniform(45, 80), rng.uniform(135, 165)])
    pal[P["torso"]] = _hsv_to_bgr(torso_h, rng.uniform(120, 230), rng.uniform(110, 230))
    skin = _SKIN[rng.integers(len(_SKIN))] + rng.uniform(-12, 12, 3)
    pal[P["head"]] = skin
    pal[P["left_ear"]] = pal[P["right_ear"]] = skin * 0.8
    pal[P["left_eye"]] = pal[P["right_eye"]] = (25, 25, 25)
    pal[P["nose"]] = skin * np.array([0.45, 0.45, 0.75])
    return np.clip(pal, 0, 255)
