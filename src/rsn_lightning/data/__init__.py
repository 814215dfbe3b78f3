"""Datasets, augmentation, heatmap targets and the DataModule (see docs/architecture.md, "Data")."""

from rsn_lightning.data.coco import COCO_LAYOUTS, CocoKeypointDataset, TopDownDataset, layout_paths
from rsn_lightning.data.heatmap_targets import HeatmapTargetGenerator, unit_target_level
from rsn_lightning.data.images import probe_image, read_image
from rsn_lightning.data.mpii import MPIIDataset
from rsn_lightning.data.transforms import COCO_AUGMENT, MPII_AUGMENT, AugmentConfig, TopDownTransform

__all__ = [
    "COCO_LAYOUTS", "CocoKeypointDataset", "TopDownDataset", "layout_paths",
    "HeatmapTargetGenerator", "unit_target_level", "probe_image", "read_image", "MPIIDataset",
    "COCO_AUGMENT", "MPII_AUGMENT", "AugmentConfig", "TopDownTransform", "PoseDataModule",
]


def __getattr__(name):
    # the DataModule imports Lightning; keep `import rsn_lightning.data` light for the pure parts
    if name == "PoseDataModule":
        from rsn_lightning.data.datamodule import PoseDataModule

        return PoseDataModule
    raise AttributeError(name)
