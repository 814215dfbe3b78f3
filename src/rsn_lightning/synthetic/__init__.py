"""The synthetic COCO-format dataset: a tool that writes a COCO root (images and annotations) from a seed.

``write.py`` checks the parameters and writes the root, ``pool.py`` runs the drawing in worker processes,
``sample.py`` makes one image with its annotations and detections, ``render.py`` draws a scene and
``people.py`` holds the body model.
"""

from rsn_lightning.synthetic.people import MAX_PERSONS
from rsn_lightning.synthetic.sample import DEFAULT_IMAGE_SIZE, render_sample
from rsn_lightning.synthetic.write import DEFAULT_NUM_TRAIN, DEFAULT_NUM_VAL, generate, is_generated

__all__ = ["generate", "is_generated", "render_sample", "DEFAULT_IMAGE_SIZE", "DEFAULT_NUM_TRAIN", "DEFAULT_NUM_VAL",
           "MAX_PERSONS"]
