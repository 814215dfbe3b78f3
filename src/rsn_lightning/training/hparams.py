"""The LightningModule's settings groups as plain Python, checked against what takes them."""

from __future__ import annotations

import inspect
from typing import Any

from omegaconf import DictConfig, OmegaConf


def checked_settings(group: str, given: Any, takes) -> dict:
    """``model.<group>`` as plain Python (so hyper-parameters load with weights_only=True) with exactly
    the settings ``takes`` (a tuple, or a callable's keyword-only or else all parameters)."""
    if callable(takes):
        params = inspect.signature(takes).parameters.values()
        takes = [p.name for p in params if p.kind is p.KEYWORD_ONLY] or [p.name for p in params]
    given = OmegaConf.to_container(given, resolve=True) if isinstance(given, DictConfig) else dict(given or {})
    wrong = [f"{label} keys {sorted(keys)}" for label, keys in
             (("unknown", set(given) - set(takes)), ("missing", set(takes) - set(given))) if keys]
    if wrong:
        raise ValueError(f"model.{group}: {', '.join(wrong)}; expected {sorted(takes)} "
                         "(conf/model/rsn18.yaml sets each)")
    return given
