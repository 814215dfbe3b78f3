"""``PoseDataModule``: the Lightning glue around the pure datasets, transforms and targets.

Configured from ``conf/data/{coco,mpii,synthetic}.yaml``. DDP sampling is left to Lightning (it wraps
the loaders' samplers in a DistributedSampler). Randomness: the training order and one augmentation
seed per sample come from the DataModule's own generator at each epoch's start
(``sampling.EpochSeededSampler``), so augmentations do not depend on the number of loader workers, and
a checkpoint taken mid-epoch (single process) resumes the same batches with the same augmentations.
Loader workers seed numpy, ``random`` and the transform per worker (``workers.py``).
"""

from __future__ import annotations

import fcntl
import logging
import multiprocessing
import os
from pathlib import Path

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from rsn_lightning.codec import CodecError, HeatmapCodec
from rsn_lightning.data.coco import CocoKeypointDataset, keypoint_category, layout_paths, spec_for_category
from rsn_lightning.data.image_cache import GIB, cache_images
from rsn_lightning.data.loader import WatchedDataLoader
from rsn_lightning.data.mpii import MPIIDataset
from rsn_lightning.data.sampling import EpochSeededSampler
from rsn_lightning.data.transforms import AUGMENT_PRESETS, AugmentConfig, TopDownTransform
from rsn_lightning.data.workers import seed_main_process, seed_worker
from rsn_lightning.errors import load_json
from rsn_lightning.keypoints import KeypointSpec, get_keypoint_spec
from rsn_lightning.normalization import InputNormalization
from rsn_lightning.synthetic import generate

log = logging.getLogger(__name__)

KINDS = ("coco", "mpii")
# which person boxes of a COCO-format set are clipped to the image (HRNet's x2 = min(W - 1, x + w - 1)):
# none (the authors' code clips none), train (HRNet and mmpose clip the ground-truth training boxes),
# all (training and validation boxes, ground truth or detected)
CLIP_BOXES = ("none", "train", "all")


def _as_list(v):
    if v is None:
        return None
    if isinstance(v, (str, Path)):
        return str(v)
    return [str(x) for x in v]


class PoseDataModule(pl.LightningDataModule):
    """Train / val loaders for COCO-format sets (COCO, synthetic, custom) and MPII.

    Paths: either a ``layout`` preset under ``root`` (``coco2017``, ``minival2014``, ``synthetic``; see
    ``coco.COCO_LAYOUTS``) or explicit ``train_ann_file``/``train_image_dir``/``val_ann_file``/
    ``val_image_dir``/``det_file`` (explicit ones win). ``val_boxes``: ``"gt"`` or ``"detections"``.
    ``keypoints``: ``"coco"``/``"mpii"``, ``"auto"`` (read the category of the val annotation file), or a
    dict ``{name, flip_pairs, sigmas}`` for a custom COCO-format set (category read from the file).
    ``augment``: overrides of the ``augment_preset`` (default: the preset named like ``kind``).
    ``synthetic``: ``{num_train, num_val, seed, image_size}`` makes ``prepare_data`` generate the
    synthetic set under ``root`` on first use. ``clip_boxes``: ``CLIP_BOXES`` (MPII has no boxes).
    ``codec``: the ``HeatmapCodec`` that encodes the targets (default: the authors' at ``input_size``).
    ``image_cache_gib``: when training, the decoded images of a split are held in memory once
    (``image_cache.py``) when they fit this budget, which is the node's total: each of the node's training
    processes (DDP ranks) gets an equal share, filled by the train split first and the val split with what
    is left; 0 never caches.
    """

    def __init__(self, kind: str = "coco", root: str | None = None, layout: str | None = None,
                 train_ann_file: str | None = None, train_image_dir=None, val_ann_file: str | None = None,
                 val_image_dir=None, det_file: str | None = None, val_boxes: str = "gt",
                 det_score_threshold: float = 0.0, head_boxes: str | None = None,
                 keypoints="coco", input_size=(192, 256), codec: HeatmapCodec | None = None,
                 augment: dict | None = None,
                 augment_preset: str | None = None, normalization: dict | None = None,
                 batch_size: int = 32, val_batch_size: int | None = None, num_workers: int = 4,
                 pin_memory: bool = True, persistent_workers: bool = True, drop_last: bool = True,
                 val_targets: bool = True, check_images: bool = True, synthetic: dict | None = None,
                 clip_boxes: str = "none", image_cache_gib: float = 2.0):
        super().__init__()
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        if clip_boxes not in CLIP_BOXES:
            raise ValueError(f"clip_boxes must be one of {CLIP_BOXES}, got {clip_boxes!r}")
        self.clip_boxes = clip_boxes
        if val_boxes not in ("gt", "detections"):
            raise ValueError(f"val_boxes must be 'gt' or 'detections', got {val_boxes!r}")
        self.kind = kind
        self.root = str(root) if root is not None else None
        paths = layout_paths(self.root or ".", layout) if layout else {}
        self.train_ann_file = str(train_ann_file) if train_ann_file else paths.get("train_ann_file")
        self.train_image_dir = _as_list(train_image_dir) or paths.get("train_image_dir")
        self._val_ann_file = str(val_ann_file) if val_ann_file else paths.get("val_ann_file")
        self.val_image_dir = _as_list(val_image_dir) or paths.get("val_image_dir")
        self.det_file = str(det_file) if det_file else paths.get("det_file")
        self.val_boxes = val_boxes
        self.det_score_threshold = float(det_score_threshold)
        self.head_boxes = head_boxes
        self._keypoints = keypoints
        self._spec: KeypointSpec | None = None
        self.input_size = (int(input_size[0]), int(input_size[1]))
        # the one codec of the run: rsn-train hands the same object to the LightningModule
        self.codec = codec or HeatmapCodec(self.input_size)
        if self.codec.input_size != self.input_size:
            raise CodecError(f"data.input_size={list(self.input_size)} but the codec's input size is "
                             f"{list(self.codec.input_size)}: set codec.input_size: ${{data.input_size}}")
        preset = AUGMENT_PRESETS[augment_preset or kind]
        self.augment = AugmentConfig.from_dict(dict(augment) if augment else None, preset)
        self.normalization = InputNormalization.from_dict(dict(normalization) if normalization else None)
        self.batch_size = int(batch_size)
        self.val_batch_size = int(val_batch_size or batch_size)
        self.num_workers = int(num_workers)
        self.pin_memory = bool(pin_memory)
        self.persistent_workers = bool(persistent_workers)
        self.drop_last = bool(drop_last)
        self.val_targets = bool(val_targets)
        self.check_images = bool(check_images)
        self.image_cache_gib = float(image_cache_gib)
        self._train_generator: torch.Generator | None = None
        self._train_sampler: EpochSeededSampler | None = None
        self._resume: tuple[torch.Tensor, int] | None = None  # a mid-epoch checkpoint's, until the loader exists
        self.synthetic = dict(synthetic) if synthetic else None
        self.train_dataset = None
        self.val_dataset = None

    # ------------------------------------------------------------------ what the module reads
    @property
    def dataset_kind(self) -> str:
        return self.kind

    @property
    def val_ann_file(self) -> str | None:
        """COCO ground truth for COCO evaluation; None for MPII (PCKh uses ``val_dataset``)."""
        return self._val_ann_file if self.kind == "coco" else None

    @property
    def keypoint_spec(self) -> KeypointSpec:
        if self._spec is None:
            self._spec = self._resolve_spec()
        return self._spec

    @property
    def num_keypoints(self) -> int:
        return self.keypoint_spec.num_keypoints

    @property
    def heatmap_size(self) -> tuple[int, int]:
        return self.codec.heatmap_size

    def _resolve_spec(self) -> KeypointSpec:
        kp = self._keypoints
        if isinstance(kp, str) and kp != "auto":
            return get_keypoint_spec(kp)
        if self.kind == "mpii":
            raise ValueError("MPII takes keypoints='mpii'")
        ann = self._val_ann_file or self.train_ann_file
        if ann is None:
            raise ValueError("keypoints='auto' needs an annotation file to read the category from")
        category = keypoint_category(load_json(ann, "COCO annotation file"), ann)
        if isinstance(kp, str):
            return spec_for_category(category)
        kp = dict(kp)
        return spec_for_category(category, kp.get("flip_pairs"), kp.get("sigmas"), kp.get("name", "custom"))

    # ------------------------------------------------------------------ set-up
    def prepare_data(self) -> None:
        if self.synthetic is None:
            return
        if self.root is None:
            raise ValueError("the synthetic data set needs a root folder")
        params = {k: v for k, v in self.synthetic.items() if v is not None}
        if "image_size" in params:
            params["image_size"] = tuple(int(v) for v in params["image_size"])
        root = Path(self.root)
        root.parent.mkdir(parents=True, exist_ok=True)
        # the jobs of a parallel sweep (joblib, submitit, SLURM) share the root: one generates, the others
        # wait for it and reuse the set (generating twice at once deletes files the other job writes)
        with (root.parent / f".{root.name}.lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            out = generate(root, **params)
        if not out.get("reused"):
            log.info("generated the synthetic data set in %s", self.root)

    def _transform(self, train: bool, with_targets: bool) -> TopDownTransform:
        return TopDownTransform(self.input_size, self.keypoint_spec, train, self.augment, self.codec,
                                self.normalization, with_targets=with_targets)

    def _check_paths(self, ann_file, image_dir, split: str) -> None:
        if self.root is not None and not Path(self.root).is_dir() and self.synthetic is None:
            raise FileNotFoundError(f"data root not found: {self.root} (set data.root or paths.data_dir)")
        if not ann_file:
            raise ValueError(f"no {split} annotation file configured (data.{split}_ann_file or data.layout)")
        if not Path(ann_file).is_file():
            raise FileNotFoundError(f"{split} annotation file not found: {ann_file}")
        if not image_dir:
            raise ValueError(f"no {split} image folder configured (data.{split}_image_dir or data.layout)")

    def build_dataset(self, split: str, train: bool | None = None):
        """The dataset of ``split`` ('train' or 'val'); ``train`` picks augmentation (default: split)."""
        train = (split == "train") if train is None else train
        ann = self.train_ann_file if split == "train" else self._val_ann_file
        image_dir = self.train_image_dir if split == "train" else self.val_image_dir
        self._check_paths(ann, image_dir, split)
        dets = split != "train" and self.val_boxes == "detections"
        transform = self._transform(train, with_targets=train or (self.val_targets and not dets))
        if self.kind == "mpii":
            return MPIIDataset(ann, image_dir, transform, self.keypoint_spec,
                               head_boxes=self.head_boxes if split != "train" else None,
                               check_images=self.check_images, name=f"mpii {split}",
                               report_head_source=split != "train")
        if dets and not self.det_file:
            raise ValueError("val_boxes='detections' needs data.det_file (or a layout that names one)")
        return CocoKeypointDataset(ann, image_dir, transform, self.keypoint_spec,
                                   det_file=self.det_file if dets else None,
                                   det_score_threshold=self.det_score_threshold,
                                   check_images=self.check_images,
                                   clip_boxes=self.clip_boxes == "all"
                                   or (self.clip_boxes == "train" and split == "train"),
                                   name=f"{self.kind} {split}"
                                   + (" (detections)" if dets else ""))

    def setup(self, stage: str | None = None) -> None:
        fit = stage in (None, "fit")
        # this process's share of the node's image cache (data.image_cache_gib), spent by the train split
        # first: its images are decoded once per person per epoch, the val split's only every few epochs
        left = self.image_cache_share_gib() if fit else 0.0
        if fit and self.train_dataset is None:
            self.train_dataset = self.build_dataset("train")
            seed_main_process(self.train_dataset)
            left -= self._cache_images(self.train_dataset, "train", left, self._budget_note(left))
        if self.val_dataset is None:
            self.val_dataset = self.build_dataset("val")
            if fit:  # validated every few epochs; a one-pass evaluation decodes each image about once anyway
                note = self._budget_note(self.image_cache_share_gib())
                if self.train_dataset is not None and self.train_dataset.decoded is not None:
                    note = f"{left:.3g} GiB left of {note} after the train split"
                self._cache_images(self.val_dataset, "val", left, note)
        for name, ds in (("train", self.train_dataset), ("val", self.val_dataset)):
            if ds is not None and len(ds) == 0:
                raise ValueError(f"the {name} set is empty after skipping unusable entries: "
                                 "see the warnings above")

    def processes_on_this_node(self) -> int:
        """How many training processes share this node's memory: the trainer's devices per node once
        Lightning has attached it (before ``setup``), else torchrun's LOCAL_WORLD_SIZE, else 1."""
        trainer = getattr(self, "trainer", None)
        if trainer is not None:
            return max(1, int(trainer.num_devices))
        try:
            return max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
        except ValueError:
            return 1

    def image_cache_share_gib(self) -> float:
        """This process's share of ``data.image_cache_gib``, the budget of the whole node: each DDP rank
        decodes its own copy of the images, so 8 ranks with their full budget each would hold 8 times it."""
        return self.image_cache_gib / self.processes_on_this_node()

    def _budget_note(self, share: float) -> str:
        ranks = self.processes_on_this_node()
        if ranks == 1:
            return f"data.image_cache_gib={self.image_cache_gib:g}"
        return (f"{share:.3g} GiB per process: data.image_cache_gib={self.image_cache_gib:g} on this node / "
                f"{ranks} processes")

    def _cache_images(self, ds, split: str, max_gib: float, budget: str) -> float:
        """Decode the split into memory when it fits ``max_gib``; returns the GiB it took (0 if not held)."""
        # the start method the loader's workers will use (the platform's default unless one was set),
        # read without fixing it
        method = multiprocessing.get_start_method(allow_none=True) or multiprocessing.get_all_start_methods()[0]
        if self.num_workers > 0 and method != "fork":
            log.info("%s %s: images are decoded from disk: loader workers started by %r would each get a "
                     "copy of images held in memory", self.kind, split, method)
            return 0.0
        decoded = cache_images(ds, max_gib, f"{self.kind} {split}", budget)
        return decoded.nbytes / GIB if decoded is not None else 0.0

    def state_dict(self) -> dict:
        """The training order's generator, saved in checkpoints so a resumed run draws the batches and
        augmentations the uninterrupted one would. Mid-epoch (one process) also the epoch's start state
        and the samples already trained, so the resumed epoch skips exactly those."""
        state = {}
        if self._train_generator is not None:
            state["train_generator"] = self._train_generator.get_state()
        trainer = getattr(self, "trainer", None)
        sampler = self._train_sampler
        if trainer is not None and sampler is not None and sampler.epoch_start_state is not None \
                and trainer.world_size == 1:
            # processed, not completed: a save in on_train_batch_end comes after the batch's step but
            # before Lightning counts it completed (it does so itself on restart)
            done = trainer.fit_loop.epoch_loop.batch_progress.current.processed
            if 0 < done < trainer.num_training_batches:
                state["train_epoch_start"] = sampler.epoch_start_state
                state["train_samples_done"] = int(done) * self.batch_size
        return state

    def load_state_dict(self, state_dict: dict) -> None:
        if state_dict.get("train_generator") is not None:
            # in place: Lightning may already hold a loader built on this generator
            if self._train_generator is None:
                self._train_generator = torch.Generator()
            self._train_generator.set_state(state_dict["train_generator"])
        if state_dict.get("train_epoch_start") is not None:
            self._resume = (state_dict["train_epoch_start"], int(state_dict["train_samples_done"]))
            if self._train_sampler is not None:
                self._train_sampler.resume_at(*self._resume)
                self._resume = None

    # ------------------------------------------------------------------ loaders
    def _loader(self, ds, batch_size: int, shuffle: bool, drop_last: bool) -> DataLoader:
        workers = self.num_workers
        sampler = None
        if shuffle:
            # order and augmentation seeds from the DataModule's own generator (seeded from the run's
            # seed), so its state can be checkpointed and a resumed run draws the same batches
            if self._train_generator is None:
                seed = torch.initial_seed() % (2**63)
                trainer = getattr(self, "trainer", None)
                if trainer is not None and trainer.world_size > 1:
                    # Lightning's DistributedSampler wrapper splits this order between the ranks: every rank
                    # must draw the same one, also when no global seed was set (seed=null)
                    seed = int(trainer.strategy.broadcast(seed, src=0))
                self._train_generator = torch.Generator().manual_seed(seed)
            sampler = self._train_sampler = EpochSeededSampler(len(ds), self._train_generator)
            if self._resume is not None:
                sampler.resume_at(*self._resume)
                self._resume = None
        return WatchedDataLoader(
            ds, batch_size=batch_size, sampler=sampler, shuffle=False, num_workers=workers,
            pin_memory=self.pin_memory and torch.cuda.is_available(),
            persistent_workers=self.persistent_workers and workers > 0,
            drop_last=drop_last, worker_init_fn=seed_worker if workers > 0 else None,
        )

    def train_dataloader(self) -> DataLoader:
        if self.train_dataset is None:
            self.setup("fit")
        drop = self.drop_last and len(self.train_dataset) >= self.batch_size
        return self._loader(self.train_dataset, self.batch_size, True, drop)

    def val_dataloader(self) -> DataLoader:
        if self.val_dataset is None:
            self.setup("validate")
        return self._loader(self.val_dataset, self.val_batch_size, False, False)

    def test_dataloader(self) -> DataLoader:
        return self.val_dataloader()
