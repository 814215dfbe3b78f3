"""The validation predictions of one epoch, accumulated as a torchmetrics ``Metric``.

Each rank adds the instances it decoded; ``compute()`` concatenates every rank's states (torchmetrics'
``dist_reduce_fx="cat"`` gather) and keeps each sample once: Lightning's DistributedSampler pads the
last batches with repeats so that every rank gets as many samples, and those repeats carry the index of
the sample they repeat.
"""

from __future__ import annotations

import numpy as np
import torch
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

# per instance: keypoints [K, 2] (image px) and their scores [K], the box's score, the image id, the
# sample's index in the val dataset, and the crop's centre and size (image px)
FIELDS = ("coords", "scores", "box_score", "image_id", "index", "center", "scale")


class ValidationPredictions(Metric):
    full_state_update = False

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        for name in FIELDS:
            self.add_state(name, default=[], dist_reduce_fx="cat")

    def update(self, **fields) -> None:
        """One batch: every name of ``FIELDS``, arrays or tensors (on any device) with the instances first.
        The states live on the metric's device (the module's), where DDP gathers them."""
        if set(fields) != set(FIELDS):
            raise ValueError(f"expected the fields {FIELDS}, got {sorted(fields)}")
        for name, value in fields.items():
            dtype = torch.int64 if name in ("image_id", "index") else torch.float32
            if isinstance(value, torch.Tensor):  # a device tensor has no host array to take
                state = value.detach().to(device=self.device, dtype=dtype)
            else:
                state = torch.as_tensor(np.asarray(value), dtype=dtype, device=self.device)
            getattr(self, name).append(state)

    def compute(self) -> dict[str, np.ndarray]:
        """Every rank's instances, each sample index once (its first occurrence), in the order added."""
        # after a DDP gather a state is one tensor, before it a list of batches
        if isinstance(self.index, list) and not self.index:
            return {}
        data = {name: dim_zero_cat(getattr(self, name)).cpu().numpy() for name in FIELDS}
        _, first = np.unique(data["index"], return_index=True)
        keep = np.sort(first)
        return {name: value[keep] for name, value in data.items()}
