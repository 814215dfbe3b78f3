"""rsn-bench's report: the markdown tables and the JSON list of entries with the machine's information."""

from __future__ import annotations

import json
import math


def _fmt(v, spec=".1f") -> str:
    return "" if v is None else format(v, spec)


def compile_break_even(entries: list[dict]) -> list[str]:
    """For each compiled preset: the first call's time and the images after which compiling has paid
    (first call minus one default step, over the time compile saves per image)."""
    lines = []
    default = {(e["model"], e["input"]): e for e in entries if e["model"] is not None and e["mode"] == "default"}
    for e in entries:
        base = default.get((e["model"], e["input"]))
        if e["model"] is None or e["mode"] != "compile" or base is None:
            continue
        for kind, name in (("train", "training"), ("infer", "inference")):
            first, fast, slow = e.get(f"{kind}_first_call_s"), e[f"{kind}_images_per_s"], base[f"{kind}_images_per_s"]
            if first is None or not fast or not slow:
                continue
            saved = 1 / slow - 1 / fast  # seconds per image
            extra = first - e["batch"] / slow
            pays = (f"pays after {math.ceil(extra / saved):,} images" if saved > 0 else
                    "never pays (not faster than the default)")
            lines.append(f"- torch.compile, {e['model']} {e['input']} {name}: first call {first:.1f} s "
                         f"(compiling), then {fast:.1f} against {slow:.1f} images/s: {pays}")
    return [""] + lines if lines else []


def markdown(entries: list[dict], info: dict) -> str:
    lines = [f"rsn-bench on {info['device']} ({info['threads']} threads, torch {info['torch']}); "
             f"float32 GEMM ceiling {info['gemm_gflops']:.1f} GFLOP/s at the start ({info['gemm_n']}^3 sgemm; "
             f"utilisation uses the best ceilings measured beside each preset's training and inference rounds, "
             f"column GEMM); "
             f"native bf16: {info['native_bf16']}; memory allocator: {info.get('allocator', 'default')}; "
             f"load average at start {info['load_average']}.", "",
             "| model | input | mode | batch | params (M) | GMAC/image | train img/s | infer img/s | "
             "GEMM GFLOP/s train/infer | "
             "train util. | infer util. | train peak MiB | infer peak MiB |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for e in entries:
        if e["model"] is None:
            continue
        util = {k: None if e[f"{k}_utilisation"] is None else 100 * e[f"{k}_utilisation"] for k in ("train", "infer")}
        mode = e["mode"] + (f" (skipped: {e['skipped']})" if e.get("skipped") else "")
        lines.append(f"| {e['model']} | {e['input']} | {mode} | {e['batch']} | {e['params_m']:.2f} | "
                     f"{e['gmac_per_image']:.2f} | {_fmt(e['train_images_per_s'])} | {_fmt(e['infer_images_per_s'])} | "
                     f"{_fmt(e['train_gemm_gflops'], '.0f')}/{_fmt(e['infer_gemm_gflops'], '.0f')} | "
                     f"{_fmt(util['train'], '.0f')}{'%' if util['train'] is not None else ''} | "
                     f"{_fmt(util['infer'], '.0f')}{'%' if util['infer'] is not None else ''} | "
                     f"{_fmt(e['train_peak_mb'], '.0f')} | {_fmt(e['infer_peak_mb'], '.0f')} |")
    lines += compile_break_even(entries)
    evals = [e for e in entries if str(e["mode"]).startswith("coco-eval")]
    if evals:
        lines += ["", "| COCO keypoint evaluation | images | detections | seconds | AP | largest stat difference |",
                  "|---|---:|---:|---:|---:|---:|"]
        for e in evals:
            lines.append(f"| {e['mode'].split(':', 1)[1]} | {e['num_images']} | {e['num_detections']} | "
                         f"{_fmt(e.get('eval_seconds'), '.2f') or 'skipped: ' + e.get('skipped', '')} | "
                         f"{_fmt(e.get('AP'), '.4f')} | {_fmt(e.get('max_stat_difference'), '.1e')} |")
    data = [e for e in entries if e["mode"] == "data"]
    for d in data:
        lines += ["", f"Data ({d['source']}, {d['input']}, one thread): JPEG decode only "
                  f"{d['decode_images_per_s']:.0f} images/s, full training sample {d['samples_per_s_per_worker']:.0f} "
                  f"samples/s per worker ({d['sample_to_decode']:.2f} of decode)."]
        for e in entries:
            if e["model"] is not None and e["mode"] == "default" and e["train_images_per_s"]:
                need = math.ceil(e["train_images_per_s"] / d["samples_per_s_per_worker"])
                lines.append(f"- {e['model']} {e['input']}: {e['train_images_per_s']:.1f} training images/s "
                             f"needs {need} loader worker(s)")
    return "\n".join(lines) + "\n"



def json_text(entries: list[dict], info: dict) -> str:
    """The entries as a JSON list, each with the machine's information under ``machine``."""
    return json.dumps([{**e, "machine": info} for e in entries], indent=1)
