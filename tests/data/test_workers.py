"""Loader workers of the real PoseDataModule compute in one thread each (OpenCV and torch), so that 8 DDP ranks x
4-8 workers on a node do not each start a pool of one thread per core; the main process keeps its threads."""

from __future__ import annotations

import cv2
import torch
from torch.utils.data import DataLoader, Dataset

from rsn_lightning.data.datamodule import PoseDataModule


class ReportsThreads(Dataset):
    """The real training set, each sample carrying the thread counts of the process that loaded it."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def reseed(self, seed: int) -> None:
        self.dataset.reseed(seed)

    def __getitem__(self, idx) -> dict:
        sample = self.dataset[idx]
        # after the sample: its decode and warpAffine ran in this process with these settings
        sample["cv2_threads"] = cv2.getNumThreads()
        sample["torch_threads"] = torch.get_num_threads()
        return sample


def test_every_loader_worker_computes_in_one_thread(synthetic_root):
    main_threads = (cv2.getNumThreads(), torch.get_num_threads())
    dm = PoseDataModule(kind="coco", root=str(synthetic_root), layout="synthetic", val_boxes="detections",
                        batch_size=4, num_workers=2, persistent_workers=False, input_size=(48, 64),
                        image_cache_gib=0)
    dm.setup("fit")
    dm.train_dataset = ReportsThreads(dm.train_dataset)
    batches = list(dm.train_dataloader())
    assert len(batches) > 2  # both workers loaded batches
    for b in batches:
        assert b["cv2_threads"].tolist() == [1] * 4 and b["torch_threads"].tolist() == [1] * 4
        assert b["target_weight"].sum() > 0  # real samples, decoded in the worker
    assert (cv2.getNumThreads(), torch.get_num_threads()) == main_threads
    if main_threads[0] > 1:
        # without the worker_init_fn a forked worker keeps the main process's OpenCV pool: the test can see
        # the difference (on a machine with one core both are 1 and this has nothing to show)
        plain = DataLoader(dm.train_dataset, batch_size=4, sampler=dm._train_sampler, num_workers=2)
        assert next(iter(plain))["cv2_threads"].tolist() == [main_threads[0]] * 4
