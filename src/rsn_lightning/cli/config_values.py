"""The checks one config value gets: a collector of problems, each naming its key, the value given and
what was expected."""

from __future__ import annotations

import math
import numbers

from omegaconf import DictConfig, OmegaConf

ABSENT = object()


def get_value(cfg: DictConfig, key: str):
    return OmegaConf.select(cfg, key, default=None)


def is_int(v) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def is_number(v) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)


class Problems(list):
    def check(self, ok: bool, key: str, value, expected: str) -> None:
        if not ok:
            self.append(f"{key}={value!r}: expected {expected}")

    def int_at_least(self, cfg, key: str, low: int, optional: bool = False) -> None:
        v = get_value(cfg, key)
        if v is None and (optional or OmegaConf.select(cfg, key, default="absent") == "absent"):
            return
        self.check(is_int(v) and v >= low, key, v, f"an integer >= {low}" + (" or null" if optional else ""))

    def number_in(self, cfg, key: str, low: float, high: float, optional: bool = True,
                  low_open: bool = False) -> None:
        v = get_value(cfg, key)
        if v is None:
            return
        ok = is_number(v) and (v > low if low_open else v >= low) and v <= high
        bracket = "(" if low_open else "["
        self.check(ok, key, v, f"a number in {bracket}{low}, {high}]" + (" or null" if optional else ""))

    def one_of(self, cfg, key: str, choices, optional: bool = True) -> None:
        v = get_value(cfg, key)
        if v is None and optional:
            return
        self.check(v in choices, key, v, f"one of {list(choices)}")

    def input_size(self, cfg, key: str) -> None:
        from rsn_lightning.models.rsn import INPUT_DIVISOR

        v = get_value(cfg, key)
        if v is None:
            return
        v = list(v) if OmegaConf.is_list(v) or isinstance(v, (list, tuple)) else v
        ok = isinstance(v, list) and len(v) == 2 and all(is_int(x) and x > 0 and x % INPUT_DIVISOR == 0
                                                         for x in v)
        self.check(ok, key, v, f"[W, H], two positive multiples of {INPUT_DIVISOR} (e.g. [192, 256])")

    def odd_kernels(self, cfg, key: str) -> None:
        v = get_value(cfg, key)
        if v is None:
            return
        values = list(v) if OmegaConf.is_list(v) else [v]
        self.check(all(is_int(x) and x > 0 and x % 2 == 1 for x in values), key,
                   values if OmegaConf.is_list(v) else v, "odd positive integers (Gaussian kernel sizes)")
