"""The heatmap codec: what encodes the training targets also decodes the network's heatmaps.

``HeatmapCodec`` (``heatmap_codec.py``) is configured once (``conf/codec/*.yaml``) and recorded in
every checkpoint; ``targets.py`` is the encoding, ``decode.py`` the decoding. Pure numpy / OpenCV.
"""

from rsn_lightning.codec.decode import METHODS, decode_heatmaps, decode_heatmaps_to_input, decode_quantisation
from rsn_lightning.codec.heatmap_codec import (
    AUTHORS_BLUR_KERNEL,
    AUTHORS_INPUT_SIZE,
    INCOMPATIBLE,
    CodecError,
    HeatmapCodec,
    authors_codec,
)
from rsn_lightning.codec.targets import (
    DEFAULT_KERNELS,
    PEAK,
    TARGET_TYPES,
    HeatmapTargetGenerator,
    blur_profile_table,
    joint_target_weight,
    kernel_sigma,
    unit_target_level,
)

__all__ = [
    "AUTHORS_BLUR_KERNEL", "AUTHORS_INPUT_SIZE", "DEFAULT_KERNELS", "INCOMPATIBLE", "METHODS", "PEAK",
    "TARGET_TYPES", "CodecError", "HeatmapCodec", "HeatmapTargetGenerator", "authors_codec",
    "blur_profile_table", "decode_heatmaps", "decode_heatmaps_to_input", "decode_quantisation",
    "joint_target_weight", "kernel_sigma", "unit_target_level",
]
