"""Training order and per-sample augmentation seeds: independent of the loader workers, and an epoch
can be resumed part-way with the same batches."""

from __future__ import annotations

import pytest
import torch

from rsn_lightning.data.datamodule import PoseDataModule
from rsn_lightning.data.sampling import EpochSeededSampler


def test_sampler_draws_a_permutation_and_seeds_and_resumes_mid_epoch():
    gen = torch.Generator().manual_seed(5)
    sampler = EpochSeededSampler(10, gen)
    first = list(sampler)
    assert sorted(i for i, _ in first) == list(range(10))
    assert len({s for _, s in first}) == 10
    start = sampler.epoch_start_state
    second = list(sampler)
    assert [i for i, _ in second] != [i for i, _ in first]  # a new epoch, a new order

    sampler.resume_at(start, 4)
    assert list(sampler) == first[4:]
    assert list(sampler) == second  # and the epoch after continues as it did
    with pytest.raises(ValueError, match="11 samples"):
        sampler.resume_at(start, 11)


def _batches(root, workers: int, n: int = 3):
    torch.manual_seed(0)
    dm = PoseDataModule(kind="coco", root=str(root), layout="synthetic", input_size=(64, 96), batch_size=4,
                        num_workers=workers, persistent_workers=False, pin_memory=False,
                        augment={"prob_flip": 0.5, "prob_rotation": 1.0})
    dm.setup("fit")
    out = []
    for i, batch in enumerate(dm.train_dataloader()):
        if i == n:
            break
        out.append(batch)
    return out


def test_augmentations_do_not_depend_on_the_number_of_workers(synthetic_root):
    inline, workers = _batches(synthetic_root, 0), _batches(synthetic_root, 2)
    for a, b in zip(inline, workers, strict=True):
        assert torch.equal(a["index"], b["index"])
        assert torch.equal(a["image"], b["image"])
        assert torch.equal(a["joints"], b["joints"])
