"""Drawing of one synthetic scene: people placed and drawn, occluders, background, per-joint visibility.

Everything is first drawn into a *label map* (uint8, one value per body part of each person, drawn
back to front), and the colour image is made from it by a colour lookup. Visibility flags, the
annotation area and the person masks are read from the same label map, so the annotation always
agrees with what was drawn: a joint is visible (2) when the top-most thing at its pixel is one of the
joint's own parts, occluded (1) when some other part, person or object covers it, and unlabelled (0)
when it is outside the image.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from rsn_lightning.synthetic.people import (
    JOINT_PARTS,
    MAX_PERSONS,
    NUM_JOINTS,
    OCCLUDER,
    PARTS_PER_PERSON,
    draw_primitive,
    person_palette,
    sample_person,
)


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
# background


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
        joints, prims, ext = sample_person(rng, float(h))
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
            draw_primitive(labels, prim, value0 + prim.part, offset)
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
        draw_primitive(canvas, prim, 1, offset - np.array([x0, y0]))
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
        lut[base:base + PARTS_PER_PERSON] = person_palette(rng)
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
