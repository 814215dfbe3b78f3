"""Datasets, augmentation, and the DataModule (targets: rsn_lightning.codec) (see docs/architecture.md, "Data")."""

from rsn_lightning.data.coco import COCO_LAYOUTS, CocoKeypointDataset, layout_paths
from rsn_lightning.data.images import probe_image, read_image
from rsn_lightning.data.mpii import MPIIDataset
from rsn_lightning.data.topdown import TopDownDataset
from rsn_lightning.data.transforms import COCO_AUGMENT, MPII_AUGMENT, AugmentConfig, TopDownTransform

__all__ = [
    "COCO_LAYOUTS", "CocoKeypointDataset", "TopDownDataset", "layout_paths",
    "probe_image", "read_image", "MPIIDataset",
    "COCO_AUGMENT", "MPII_AUGMENT", "AugmentConfig", "TopDownTransform", "PoseDataModule",
]


def __getattr__(name):
    # the DataModule imports Lightning; keep `import rsn_lightning.data` light for the pure parts
    if name == "PoseDataModule":
        from rsn_lightning.data.datamodule import PoseDataModule

        return PoseDataModule
    raise AttributeError(name)
