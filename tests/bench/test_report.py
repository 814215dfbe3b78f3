"""The benchmark report: torch.compile's break-even line."""

from __future__ import annotations

from rsn_lightning.bench.report import compile_break_even


def test_compile_break_even_counts_the_images_that_pay_for_compiling():
    entries = [{"model": "m", "input": "64x64", "mode": "default", "batch": 2, "train_images_per_s": 1.0,
                "infer_images_per_s": 4.0},
               {"model": "m", "input": "64x64", "mode": "compile", "batch": 2, "train_images_per_s": 2.0,
                "infer_images_per_s": 4.0, "train_first_call_s": 10.0, "infer_first_call_s": 3.0}]
    lines = "\n".join(compile_break_even(entries))
    # training: the first call (10 s) replaces one 2-image step of 2 s, so compiling costs 8 s more and saves
    # 1/1 - 1/2 = 0.5 s per image: it has paid after 16 images; inference is not faster: it never pays
    assert "training: first call 10.0 s (compiling), then 2.0 against 1.0 images/s: pays after 16 images" in lines
    assert "inference: first call 3.0 s (compiling), then 4.0 against 4.0 images/s: never pays" in lines
