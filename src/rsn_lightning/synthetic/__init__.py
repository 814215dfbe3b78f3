"""The synthetic COCO-format dataset: a tool that writes a COCO root (images and annotations) from a seed."""
