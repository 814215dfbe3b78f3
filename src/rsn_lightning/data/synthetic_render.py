"""Drawing of the synthetic people: scene sampling, rendering and per-joint visibility.

Everything is first drawn into a *label map* (uint8, one value per body part of each person, drawn
back to front), and the colour image is made from it by a colour lookup. Visibility flags, the
annotation area and the person masks are read from the same label map, so the annotation always
agrees with what was drawn: a joint is visible (2) when the top-most thing at its pixel is one of the
joint's own parts, occluded (1) when some other part, person or object covers it, and unlabelled (0)
when it is outside the image.

Person geometry is a 2D projection of a crude 3D body: a yaw angle foreshortens shoulders and hips,
decides which side's limbs pass behind the torso (self-occlusion) and which face features (eyes,
nose, ears) are seen. Left limbs are drawn in warm colours and right limbs in cool ones, so a model
can tell left from right even on a person seen from the back.
"""

from __future__ import annotations

from dataclasses import dataclass, field

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


@dataclass
class RenderedPerson:
    slot: int
    joints: np.ndarray  # [17, 2] float, image pixels, where the joint really is (also when hidden)
    visibility: np.ndarray  # [17] int: 0 outside the image (or nothing drawn there), 1 covered, 2 seen
    area: int  # visible pixels of the person
    bbox: tuple[float, float, float, float]  # tight box of the visible pixels, COCO [x, y, w, h]
    full_area: int  # pixels the person would cover alone and unclipped (for detection difficulty)

    @property
    def num_keypoints(self) -> int:
        return int((self.visibility > 0).sum())


@dataclass
class RenderedImage:
    image: np.ndarray  # [H, W, 3] uint8 BGR
    labels: np.ndarray  # [H, W] uint8 label map (see module docstring)
    persons: list[RenderedPerson] = field(default_factory=list)

    def person_mask(self, slot: int) -> np.ndarray:
        """Pixels where person `slot` is the top-most thing drawn."""
        return (self.labels // PARTS_PER_PERSON) == slot + 1

    def part_at(self, x: float, y: float) -> tuple[int, int]:
        """(slot, part) drawn on top at the pixel nearest to (x, y); slot -1 = background/object."""
        lab = int(self.labels[int(np.floor(y + 0.5)), int(np.floor(x + 0.5))])
        if lab == 0 or lab == OCCLUDER:
            return -1, lab
        return lab // PARTS_PER_PERSON - 1, lab % PARTS_PER_PERSON


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


def _sample_person(rng: np.random.Generator, height: float):
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


def _draw(canvas: np.ndarray, prim: _Prim, value: int, offset: np.ndarray) -> None:
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
# colours and background


def _hsv_to_bgr(h: float, s: float, v: float) -> np.ndarray:
    px = np.array([[[h % 180, s, v]]], dtype=np.uint8)
    return cv2.cvtColor(px, cv2.COLOR_HSV2BGR)[0, 0].astype(np.float32)


_SKIN = np.array([[190, 210, 240], [150, 180, 225], [110, 150, 200], [70, 105, 160], [45, 70, 110]],
                 np.float32)


def _person_palette(rng: np.random.Generator) -> np.ndarray:
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


_NOISE_TILE: dict[int, np.ndarray] = {}


def _noise_tile(size: int = 512) -> np.ndarray:
    """A fixed fine-grain noise texture; images take random windows of it (cheaper than fresh noise)."""
    if size not in _NOISE_TILE:
        _NOISE_TILE[size] = np.random.default_rng(12345).integers(0, 13, (size, size, 3), dtype=np.uint8)
    return _NOISE_TILE[size]


def _background(rng: np.random.Generator, W: int, H: int) -> np.ndarray:
    base = rng.uniform(60, 190, 3)
    grey = base.mean()
    base = grey + (base - grey) * 0.5  # muted, so saturated people stand out
    coarse = rng.uniform(-45, 45, (rng.integers(2, 5), rng.integers(2, 5), 3)).astype(np.float32)
    fh, fw = int(rng.integers(8, 20)), int(rng.integers(10, 26))
    fine = rng.uniform(-18, 18, (fh, fw, 3)).astype(np.float32)
    # blend at the fine grid's resolution, then one upscale to the image
    low = base.astype(np.float32) + cv2.resize(coarse, (fw, fh), interpolation=cv2.INTER_CUBIC) + fine
    img = cv2.resize(low, (W, H), interpolation=cv2.INTER_LINEAR)
    img = np.clip(img, 0, 255).astype(np.uint8)
    scale = max(W, H) / 320.0
    for _ in range(int(rng.integers(5, 14))):
        col = rng.uniform(30, 225, 3)
        col = tuple(float(c) for c in col.mean() + (col - col.mean()) * 0.45)
        kind = rng.random()
        x, y = int(rng.integers(0, W)), int(rng.integers(0, H))
        if kind < 0.35:
            x2, y2 = int(rng.integers(0, W)), int(rng.integers(0, H))
            cv2.line(img, (x, y), (x2, y2), col, int(rng.integers(1, 6) * scale) or 1, cv2.LINE_AA)
        elif kind < 0.65:
            w, h = int(rng.integers(8, W // 3)), int(rng.integers(8, H // 3))
            cv2.rectangle(img, (x, y), (x + w, y + h), col, -1)
        elif kind < 0.85:
            cv2.circle(img, (x, y), int(rng.integers(4, max(5, H // 6))), col, -1, cv2.LINE_AA)
        else:
            pts = np.stack([rng.integers(0, W, 4), rng.integers(0, H, 4)], 1).astype(np.int32)
            cv2.polylines(img, [pts], False, col, int(rng.integers(1, 4)), cv2.LINE_AA)
    return img


# ----------------------------------------------------------------------------------------------
# scene


def _too_close(a, b) -> bool:
    """Boxes overlapping so much that one person would mostly hide the other."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    area_a, area_b = (a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1])
    return inter > 0.45 * (area_a + area_b - inter) or inter > 0.6 * min(area_a, area_b)


def _visibility(labels: np.ndarray, joints: np.ndarray, slot: int) -> np.ndarray:
    H, W = labels.shape
    vis = np.zeros(NUM_JOINTS, np.int64)
    base = (slot + 1) * PARTS_PER_PERSON
    for k in range(NUM_JOINTS):
        # a joint is labelled only where it lies in the image itself: rounding to the nearest pixel
        # would also label points up to half a pixel outside, with negative coordinates
        if not (0 <= joints[k, 0] <= W - 1 and 0 <= joints[k, 1] <= H - 1):
            continue
        xi, yi = int(np.floor(joints[k, 0] + 0.5)), int(np.floor(joints[k, 1] + 0.5))
        lab = int(labels[yi, xi])
        if lab in [base + p for p in JOINT_PARTS[k]]:
            vis[k] = 2
        elif lab != 0:
            vis[k] = 1
        # lab == 0: nothing at all drawn there (a hidden face point just off a tiny head): unlabelled
    return vis


def render_scene(rng: np.random.Generator, image_size: tuple[int, int], max_persons: int = 4
                 ) -> RenderedImage:
    """Draw one image with 1..max_persons people; returns the image, its label map and annotations."""
    W, H = image_size
    if not 1 <= max_persons <= MAX_PERSONS:
        raise ValueError(f"max_persons must be in 1..{MAX_PERSONS}, got {max_persons}")
    weights = np.array([0.32, 0.3, 0.22, 0.16, 0.1, 0.08])[:max_persons]
    n = int(rng.choice(max_persons, p=weights / weights.sum())) + 1
    # heights log-uniform from 0.25 to 1.4 image heights: COCO's medium and large areas both common
    heights = np.sort(np.exp(rng.uniform(np.log(0.25 * H), np.log(1.4 * H), n)))

    placed = []  # (joints, prims, extent box in image coords)
    for h in heights:  # smallest first: farther away, drawn first
        joints, prims, ext = _sample_person(rng, float(h))
        ew, eh = ext[2] - ext[0], ext[3] - ext[1]
        # some people are put next to one placed before (groups, so people occlude each other)
        near = placed[int(rng.integers(len(placed)))][3] if placed and rng.random() < 0.6 else None
        for _ in range(25):
            if near is not None:
                cx = rng.choice([near[0], near[2]]) + rng.uniform(-0.45, 0.45) * ew
            else:
                cx = rng.uniform(-0.1 * W, 1.1 * W)
            cy = rng.uniform(0.35 * H, 0.65 * H) if eh < H else rng.uniform(0.3 * H, 0.9 * H)
            box = (cx - ew / 2, cy - eh / 2, cx + ew / 2, cy + eh / 2)
            inside = (max(0, min(W, box[2]) - max(0, box[0])) * max(0, min(H, box[3]) - max(0, box[1])))
            if inside < 0.5 * ew * eh:
                continue
            if any(_too_close(box, b) for _, _, _, b in placed):
                continue
            offset = np.array([box[0] - ext[0], box[1] - ext[1]])
            placed.append((joints + offset, prims, offset, box))
            break

    labels = np.zeros((H, W), np.uint8)
    occluder_after = int(rng.integers(0, len(placed) + 1)) if rng.random() < 0.15 else -1
    full_areas = []
    for slot, (_, prims, offset, box) in enumerate(placed):
        value0 = (slot + 1) * PARTS_PER_PERSON
        for prim in sorted(prims, key=lambda p: -p.depth):
            _draw(labels, prim, value0 + prim.part, offset)
        if slot + 1 == occluder_after:
            _draw_occluder(rng, labels)
        full_areas.append(_full_area(prims, offset, box))
    if occluder_after == 0 and placed:
        _draw_occluder(rng, labels)

    image = _colourise(rng, labels, len(placed))

    persons = []
    for slot, (joints, _, _, _) in enumerate(placed):
        mask = (labels // PARTS_PER_PERSON) == slot + 1
        area = int(mask.sum())
        if area == 0:
            continue
        xs, ys = np.flatnonzero(mask.any(0)), np.flatnonzero(mask.any(1))
        bbox = (float(xs[0]), float(ys[0]), float(xs[-1] - xs[0] + 1), float(ys[-1] - ys[0] + 1))
        persons.append(RenderedPerson(slot, joints, _visibility(labels, joints, slot), area, bbox,
                                      full_areas[slot]))
    return RenderedImage(image, labels, persons)


def _full_area(prims, offset, box) -> int:
    """Pixel area of the person drawn alone without clipping (the amodal area)."""
    x0, y0 = int(np.floor(box[0])) - 2, int(np.floor(box[1])) - 2
    x1, y1 = int(np.ceil(box[2])) + 2, int(np.ceil(box[3])) + 2
    canvas = np.zeros((y1 - y0, x1 - x0), np.uint8)
    for prim in prims:
        _draw(canvas, prim, 1, offset - np.array([x0, y0]))
    return int(canvas.sum())


def _draw_occluder(rng: np.random.Generator, labels: np.ndarray) -> None:
    """A foreground object (a bar, a post or a box) covering parts of the people behind it."""
    H, W = labels.shape
    k = rng.random()
    if k < 0.4:  # a low wall / table edge across the lower part of the image
        y = int(rng.uniform(0.6, 0.85) * H)
        x0 = int(rng.uniform(-0.2, 0.5) * W)
        x1, y1 = x0 + int(rng.uniform(0.3, 0.8) * W), y + int(rng.uniform(0.08, 0.2) * H)
        cv2.rectangle(labels, (x0, y), (x1, y1), OCCLUDER, -1)
    elif k < 0.75:  # a post
        x = int(rng.uniform(0.05, 0.95) * W)
        cv2.rectangle(labels, (x, 0), (x + int(rng.uniform(0.025, 0.06) * W), H), OCCLUDER, -1)
    else:  # a box somewhere
        cx, cy = int(rng.uniform(0, W)), int(rng.uniform(0.3, 1.0) * H)
        w, h = int(rng.uniform(0.1, 0.25) * W), int(rng.uniform(0.1, 0.25) * H)
        cv2.rectangle(labels, (cx - w // 2, cy - h // 2), (cx + w // 2, cy + h // 2), OCCLUDER, -1)


def _colourise(rng: np.random.Generator, labels: np.ndarray, n_persons: int) -> np.ndarray:
    H, W = labels.shape
    lut = np.zeros((256, 3), np.float32)
    for slot in range(n_persons):
        base = (slot + 1) * PARTS_PER_PERSON
        lut[base:base + PARTS_PER_PERSON] = _person_palette(rng)
    occ = rng.uniform(40, 200, 3)
    lut[OCCLUDER] = occ.mean() + (occ - occ.mean()) * 0.5
    lut_u8 = np.clip(lut, 0, 255).astype(np.uint8)

    img = _background(rng, W, H)
    fg = labels > 0
    img[fg] = lut_u8[labels[fg]]
    # dark outlines between differently labelled regions: parts of one colour family stay apart
    edge = np.zeros((H, W), bool)
    edge[:, 1:] |= labels[:, 1:] != labels[:, :-1]
    edge[1:, :] |= labels[1:, :] != labels[:-1, :]
    edge &= fg | np.roll(fg, 1, 0) | np.roll(fg, 1, 1)
    img[edge] = (img[edge] * 0.45).astype(np.uint8)

    # soft lighting and texture over the whole image
    shade = rng.uniform(0.78 * 128, 1.12 * 128, (int(rng.integers(2, 5)), int(rng.integers(2, 5)), 1))
    shade = cv2.resize(np.repeat(shade.astype(np.float32), 3, 2), (W, H), interpolation=cv2.INTER_CUBIC)
    img = cv2.multiply(img, np.clip(shade, 0, 255).astype(np.uint8), scale=1 / 128)
    img = cv2.GaussianBlur(img, (3, 3), 0.6)
    tile = _noise_tile(max(512, W + 1, H + 1))
    tx, ty = int(rng.integers(0, tile.shape[1] - W + 1)), int(rng.integers(0, tile.shape[0] - H + 1))
    img = cv2.add(img, tile[ty:ty + H, tx:tx + W])
    img = cv2.subtract(img, tile[tile.shape[0] - H - ty:tile.shape[0] - ty, tx:tx + W])
    return img
