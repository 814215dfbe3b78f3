"""Input normalisation and channel order, recorded in every checkpoint.

The authors feed BGR images as pixel/255 with mean/std given in BGR order; mmpose feeds RGB with the
same ImageNet statistics in 0-255 units. The statistics are therefore equal per colour, and only the
channel order differs: a converted checkpoint records which one its weights expect, and the data
pipeline and the predictor apply what the checkpoint says.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class InputNormalization:
    channel_order: str = "BGR"
    # per channel, in ``channel_order``, for pixel values divided by 255
    mean: tuple[float, float, float] = (0.406, 0.456, 0.485)
    std: tuple[float, float, float] = (0.225, 0.224, 0.229)

    def __post_init__(self):
        if self.channel_order not in ("BGR", "RGB"):
            raise ValueError(f"channel_order must be 'BGR' or 'RGB', got {self.channel_order!r}")
        if len(self.mean) != 3 or len(self.std) != 3:
            raise ValueError("mean and std need 3 values each")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["mean"], d["std"] = list(self.mean), list(self.std)
        return d

    @classmethod
    def from_dict(cls, d: dict | None) -> InputNormalization:
        if d is None:
            return cls()
        return cls(str(d["channel_order"]), tuple(map(float, d["mean"])), tuple(map(float, d["std"])))

    def __call__(self, image_bgr: np.ndarray) -> np.ndarray:
        """uint8 HxWx3 BGR image (OpenCV's order) -> float32 3xHxW network input."""
        img = image_bgr[..., ::-1] if self.channel_order == "RGB" else image_bgr
        img = img.astype(np.float32) * (1.0 / 255.0)
        img = (img - np.asarray(self.mean, np.float32)) / np.asarray(self.std, np.float32)
        return np.ascontiguousarray(img.transpose(2, 0, 1))

    def denormalize(self, chw: np.ndarray) -> np.ndarray:
        """Inverse of ``__call__``: float 3xHxW -> uint8 HxWx3 BGR, for drawing inputs."""
        img = chw.transpose(1, 2, 0) * np.asarray(self.std) + np.asarray(self.mean)
        img = np.clip(img * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return np.ascontiguousarray(img[..., ::-1] if self.channel_order == "RGB" else img)


AUTHORS_NORMALIZATION = InputNormalization()
MMPOSE_NORMALIZATION = InputNormalization("RGB", (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
