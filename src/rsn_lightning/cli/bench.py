"""rsn-bench: the whole workload's speed, measured against this machine's float32 GEMM ceiling.

For each preset and input size, and each mode (the library's default, whose inference is the network
rsn-predict and rsn-eval run: BN folded into the convolutions, channels-last; the unfolded forward;
torch.compile, with its first call's time; ONNX Runtime; mixed precision where the device computes it
natively; activation checkpointing; the plain NCHW layout): parameters, multiply-adds counted by
``torch.utils.flop_counter``, training-step and inference images/s, peak memory, and utilisation =
the model's FLOP/s over the float32 GEMM rate measured in the same run (a large matrix product; the
figure that carries from one machine to another). Training counts 3x the forward's FLOPs. Modes are
timed in interleaved rounds, so load from other processes affects them alike, and each rate is the
best round's.

Optionally also the evaluation time of a COCO-scale keypoint results file (generated: 5,000 images,
100,000 detections) with pycocotools and faster-coco-eval, and the data pipeline's samples/s per
loader worker beside JPEG decode alone, with the workers needed to feed the measured training rate.

    rsn-bench --model rsn18 rsn50 --input 192 256 --batch 16 --json bench.json --markdown bench.md
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import math
import os
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

# default: what the library runs: training in channels-last, inference with models.fuse.inference_network
# (BN folded into the convolutions, channels-last), as rsn-predict and rsn-eval do
MODES = ("default", "plain", "nchw", "compile", "onnxruntime", "amp", "checkpoint")
INFERENCE_ONLY = ("plain", "onnxruntime")
TRAIN_ONLY = ("checkpoint",)
DEFAULT_MODES = ("default", "plain", "onnxruntime", "amp")
# training = forward + backward (about twice the forward's multiply-adds) = 3x the forward
TRAIN_FLOP_FACTOR = 3


def _device(device: str):
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _sync(dev) -> None:
    import torch

    if dev.type == "cuda":
        torch.cuda.synchronize()


# ---------------------------------------------------------------------------------------- ceiling
def gemm_ceiling(device: str = "auto", n: int = 2048, repeats: int = 5) -> float:
    """The machine's float32 matrix-product rate (GFLOP/s): the best of ``repeats`` n x n products."""
    import torch

    dev = _device(device)
    a = torch.randn(n, n, device=dev)
    b = torch.randn(n, n, device=dev)
    out = torch.empty(n, n, device=dev)
    torch.mm(a, b, out=out)  # warm-up (thread pool, caches)
    _sync(dev)
    best = math.inf
    for _ in range(repeats):
        t = time.perf_counter()
        torch.mm(a, b, out=out)
        _sync(dev)
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best / 1e9


# ----------------------------------------------------------------------------------- peak memory
def peak_memory_mb(fn, dev) -> float:
    """Peak memory allocated by tensors while ``fn()`` runs, above what was allocated before (MiB).

    CUDA: the caching allocator's peak. CPU: tracemalloc does not see torch's allocator, so the
    allocations and frees the profiler records are replayed in time order and their running sum's
    maximum is taken.
    """
    import torch

    if dev.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats(dev)
        before = torch.cuda.memory_allocated(dev)
        fn()
        torch.cuda.synchronize()
        return (torch.cuda.max_memory_allocated(dev) - before) / 2**20
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    # an operator's own allocations are attributed to it (self memory); frees outside any operator are
    # "[memory]" events with negative sizes
    deltas = sorted((e.time_range.start, e.cpu_memory_usage if e.name == "[memory]" else e.self_cpu_memory_usage)
                    for e in prof.events())
    running = peak = 0
    for _, delta in deltas:
        running += delta
        peak = max(peak, running)
    return peak / 2**20


# ----------------------------------------------------------------------------------------- models
class _Workload:
    """One preset at one input size in one mode: a training step and an inference step to time.

    ``infer_output()`` is the mode's inference output as a float32 tensor and ``reference_output()`` the
    plain float32 eval forward (NCHW, BN unfolded) of the same weights on the same batch, so that tests
    compare every mode with it."""

    def __init__(self, model: str, input_size, batch: int, mode: str, dev, channels_last: bool, net=None):
        import torch

        from rsn_lightning.models.fuse import inference_network
        from rsn_lightning.models.registry import create_model
        from rsn_lightning.training.loss import RSNLoss
        from rsn_lightning.training.precision import autocast_dtype

        self.mode, self.dev = mode, dev
        self.skipped: str | None = None
        self.compile_seconds: dict[str, float] = {}
        w, h = input_size
        layout = torch.channels_last if channels_last and mode != "nchw" else torch.contiguous_format
        if net is None:
            net = create_model(model, checkpoint_activations=(mode == "checkpoint"))
        net = copy.deepcopy(net).to(dev)
        # inference runs copies taken before any training step: every mode infers with the same weights
        # (trained ones can hold denormal values, which slow CPU arithmetic down)
        self.plain = copy.deepcopy(net).eval()
        self.net = net.to(memory_format=layout)
        gen = torch.Generator().manual_seed(0)
        self.x = torch.randn(batch, 3, h, w, generator=gen).to(dev).contiguous(memory_format=layout)
        k = net.num_keypoints
        self.targets = (torch.rand(batch, 5, k, h // 4, w // 4, generator=gen) * 255).to(dev)
        self.vis = torch.full((batch, k), 2.0, device=dev)
        self.criterion = RSNLoss()
        self.opt = torch.optim.Adam(self.net.parameters(), lr=1e-4, fused=True)  # model.optimizer.fused
        self.autocast = contextlib.nullcontext
        self.train_fn = self._train_step
        self.infer_fn = self._infer_step
        self.forward_all = self.net.forward_all
        if mode in ("plain", "nchw"):
            self.forward = copy.deepcopy(self.net).eval()
        else:
            self.forward = inference_network(self.plain, dev, channels_last=channels_last)
        if mode == "amp":
            dtype = autocast_dtype(dev.type)
            if dtype is None:
                self.skipped = (f"no native bf16/fp16 on this {dev.type.upper()}: autocast would be emulated "
                                "and slower than float32 (the default mode)")
                warnings.warn(f"rsn-bench: amp skipped, {self.skipped}", stacklevel=2)
            else:
                self.autocast = lambda: torch.autocast(dev.type, dtype=dtype)
        elif mode == "compile":
            self.forward_all = self._first_call_timed("train", torch.compile(self.net.forward_all))
            self.forward = self._first_call_timed("infer", torch.compile(self.forward))
        elif mode == "onnxruntime":
            self._onnx_session(model, input_size)
        if mode in INFERENCE_ONLY:
            self.train_fn = None
        if mode in TRAIN_ONLY:
            self.infer_fn = None

    def _first_call_timed(self, kind: str, fn):
        """``fn``, recording how long its first call took (torch.compile compiles there) in compile_seconds."""

        def call(*args):
            if kind in self.compile_seconds:
                return fn(*args)
            t = time.perf_counter()
            out = fn(*args)
            self.compile_seconds[kind] = time.perf_counter() - t
            return out

        return call

    def infer_output(self):
        import torch

        out = self.infer_fn()
        out = torch.as_tensor(out[0]) if isinstance(out, list) else out
        return out.float().cpu().contiguous()

    def reference_output(self):
        import torch

        with torch.no_grad():
            return self.plain(self.x.contiguous()).float().cpu()

    def _onnx_session(self, model: str, input_size) -> None:
        import torch

        try:
            import onnxruntime as ort

            from rsn_lightning.inference.export import export_onnx
        except ImportError as err:
            self.skipped = f"onnxruntime not installed ({err}); pip install 'rsn-lightning[export]'"
            return
        if self.dev.type != "cpu":
            self.skipped = "ONNX Runtime is measured on CPU only here"
            return
        self._tmp = tempfile.TemporaryDirectory(prefix="rsn-bench-")
        path = Path(self._tmp.name) / f"{model}.onnx"
        export_onnx(copy.deepcopy(self.plain).float(), path, input_size)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = torch.get_num_threads()
        # ONNX Runtime's threads otherwise busy-wait after each run, stealing the cores from the modes
        # timed after it in the same process
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        feed = {"input": self.x.contiguous().cpu().numpy()}
        self.infer_fn = lambda: session.run(None, feed)[:1]

    def _train_step(self) -> None:
        import torch

        self.net.train()
        with self.autocast():
            loss, _ = self.criterion(self.forward_all(self.x), self.targets, self.vis)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        del loss
        torch.cuda.synchronize() if self.dev.type == "cuda" else None

    def _infer_step(self) -> None:
        import torch

        with torch.no_grad(), self.autocast():
            out = self.forward(self.x)
        torch.cuda.synchronize() if self.dev.type == "cuda" else None
        return out


def bench_models(models, input_sizes, batch: int = 16, modes=DEFAULT_MODES, steps: int = 3, warmup: int = 2,
                 rounds: int = 2, device: str = "auto", channels_last: bool = True, memory: bool = True,
                 gemm_size: int = 2048, progress=print) -> list[dict]:
    """One entry per (preset, input size, mode); modes of one preset and size are timed in interleaved
    rounds of ``steps`` steps each (after ``warmup`` steps), and each rate is the best round's (the one
    least disturbed by other processes, as ``timeit`` takes the minimum). The GEMM ceiling is measured
    after every round too, and each utilisation uses its best over the rounds of the same kind
    (training or inference), so that model and ceiling are read alike."""
    import torch

    from rsn_lightning.models.flops import count_macs, count_params
    from rsn_lightning.models.registry import create_model

    dev = _device(device)
    entries = []
    for model in models:
        ref = create_model(model)
        params_m = count_params(ref) / 1e6
        for size in input_sizes:
            w, h = int(size[0]), int(size[1])
            gmac = count_macs(ref, (w, h)) / 1e9
            loads = {}
            for mode in modes:
                progress(f"  {model} {w}x{h} {mode}: set-up")
                loads[mode] = _Workload(model, (w, h), batch, mode, dev, channels_last)
            rates: dict[tuple[str, str], list[float]] = {}
            ceilings: dict[str, list[float]] = {}
            for kind in ("train", "infer"):
                runnable = [(m, getattr(wl, f"{kind}_fn")) for m, wl in loads.items()
                            if not wl.skipped and getattr(wl, f"{kind}_fn") is not None]
                for _, fn in runnable:
                    for _ in range(warmup):
                        fn()
                for r in range(rounds):
                    for mode, fn in runnable:
                        t = time.perf_counter()
                        for _ in range(steps):
                            fn()
                        rates.setdefault((mode, kind), []).append(batch * steps / (time.perf_counter() - t))
                    ceilings.setdefault(kind, []).append(gemm_ceiling(str(dev), n=gemm_size, repeats=3))
                    progress(f"  {model} {w}x{h} {kind} round {r + 1}/{rounds}: " + ", ".join(
                        f"{m} {rates[(m, kind)][-1]:.1f}" for m, _ in runnable) + " images/s")
            gemm = {kind: max(c) for kind, c in ceilings.items()}
            gemm_gflops = max(c for cs in ceilings.values() for c in cs)
            for mode, wl in loads.items():
                entry = {"model": model, "input": f"{w}x{h}", "mode": mode, "batch": batch, "device": str(dev),
                         "params_m": round(params_m, 3), "gmac_per_image": round(gmac, 4),
                         "gemm_gflops": round(gemm_gflops, 1), "skipped": wl.skipped}
                for kind, factor in (("train", TRAIN_FLOP_FACTOR), ("infer", 1)):
                    got = rates.get((mode, kind))
                    ips = max(got) if got else None
                    entry[f"{kind}_images_per_s"] = None if ips is None else round(ips, 2)
                    entry[f"{kind}_gemm_gflops"] = round(gemm[kind], 1) if kind in gemm else None
                    entry[f"{kind}_utilisation"] = (None if ips is None else
                                                    round(ips * factor * 2 * gmac / gemm[kind], 3))
                    fn = getattr(wl, f"{kind}_fn")
                    entry[f"{kind}_peak_mb"] = (round(peak_memory_mb(fn, dev), 1)
                                                if memory and fn is not None and not wl.skipped
                                                and mode not in ("onnxruntime", "compile") else None)
                if wl.compile_seconds:
                    # the first call's time (compiling included): what a user's run pays once
                    for kind in ("train", "infer"):
                        entry[f"{kind}_first_call_s"] = (round(wl.compile_seconds[kind], 1)
                                                         if kind in wl.compile_seconds else None)
                entries.append(entry)
            del loads
            if dev.type == "cuda":
                torch.cuda.empty_cache()
    return entries


# ------------------------------------------------------------------------------------- evaluation
def synthetic_keypoint_results(num_images: int = 5000, dets_per_image: int = 20, seed: int = 0):
    """A COCO person-keypoint ground truth and a results list of ``num_images * dets_per_image``
    detections (noisy copies of the people and random false positives), as plain dicts."""
    from rsn_lightning.keypoints import COCO_KEYPOINTS

    rng = np.random.default_rng(seed)
    k = COCO_KEYPOINTS.num_keypoints
    images, anns, results = [], [], []
    for img_id in range(1, num_images + 1):
        images.append({"id": img_id, "width": 640, "height": 480, "file_name": f"{img_id:012d}.jpg"})
        people = []
        for _ in range(int(rng.integers(1, 4))):
            bw, bh = rng.uniform(40, 300), rng.uniform(80, 400)
            x0, y0 = rng.uniform(0, 640 - bw), rng.uniform(0, 480 - bh)
            kps = np.stack([x0 + rng.uniform(0, bw, k), y0 + rng.uniform(0, bh, k),
                            rng.choice([0, 1, 2], k, p=[0.2, 0.1, 0.7])], axis=1)
            kps[kps[:, 2] == 0, :2] = 0
            people.append((kps, (x0, y0, bw, bh)))
            anns.append({"id": len(anns) + 1, "image_id": img_id, "category_id": 1, "iscrowd": 0,
                         "area": float(bw * bh * 0.6), "bbox": [x0, y0, bw, bh],
                         "num_keypoints": int((kps[:, 2] > 0).sum()),
                         "keypoints": kps.round(2).reshape(-1).tolist()})
        for d in range(dets_per_image):
            if d < 2 * len(people):
                kps, (x0, y0, bw, bh) = people[d % len(people)]
                xy = kps[:, :2] + rng.normal(0, 0.05 * math.sqrt(bw * bh), (k, 2))
            else:
                bw, bh = rng.uniform(30, 200), rng.uniform(60, 300)
                xy = np.stack([rng.uniform(0, 640, k), rng.uniform(0, 480, k)], axis=1)
            pred = np.concatenate([xy, rng.uniform(0.1, 1, (k, 1))], axis=1)
            results.append({"image_id": img_id, "category_id": 1, "keypoints": pred.round(2).reshape(-1).tolist(),
                            "score": float(rng.uniform(0.05, 1))})
    gt = {"images": images, "annotations": anns,
          "categories": [{"id": 1, "name": "person", "supercategory": "person",
                          "keypoints": list(COCO_KEYPOINTS.names), "skeleton": []}]}
    return gt, results


def bench_eval(num_images: int = 5000, dets_per_image: int = 20, backends=("pycocotools", "faster_coco_eval"),
               progress=print) -> list[dict]:
    """Seconds to score a generated COCO-scale results file with each backend (load, evaluate,
    accumulate, summarise), and the largest difference of each backend's stats from the first's."""
    from rsn_lightning.evaluation.coco_eval import coco_keypoint_stats

    gt, results = synthetic_keypoint_results(num_images, dets_per_image)
    out = []
    with tempfile.TemporaryDirectory(prefix="rsn-bench-eval-") as tmp:
        gt_path, res_path = Path(tmp) / "gt.json", Path(tmp) / "results.json"
        gt_path.write_text(json.dumps(gt))
        res_path.write_text(json.dumps(results))
        reference = None
        for backend in backends:
            progress(f"  COCO evaluation of {len(results)} detections on {num_images} images with {backend}")
            entry = {"model": None, "input": None, "mode": f"coco-eval:{backend}", "batch": None,
                     "num_images": num_images, "num_detections": len(results)}
            try:
                t = time.perf_counter()
                stats = coco_keypoint_stats(gt_path, res_path, backend=backend)
                entry["eval_seconds"] = round(time.perf_counter() - t, 2)
            except ImportError as err:
                entry.update(eval_seconds=None, skipped=str(err))
                out.append(entry)
                continue
            entry["AP"] = round(stats["AP"], 6)
            if reference is None:
                reference = stats
            entry["max_stat_difference"] = max(abs(stats[k] - reference[k]) for k in reference)
            out.append(entry)
    return out


# ------------------------------------------------------------------------------------------- data
def bench_data(root=None, ann_file: str | None = None, input_size=(192, 256), seconds: float = 5.0,
               rounds: int = 5, progress=print) -> dict:
    """Samples/s of one loader worker (decode, augmented warp, every target level, normalisation) beside
    JPEG decode alone, interleaved in rounds, one thread as in a DataLoader worker.

    ``root`` is a COCO-format folder with ``ann_file`` (default: a small synthetic set generated in a
    temporary folder)."""
    import cv2
    import torch

    from rsn_lightning.data.coco import CocoKeypointDataset, layout_paths
    from rsn_lightning.data.images import read_image
    from rsn_lightning.data.transforms import TopDownTransform
    from rsn_lightning.keypoints import COCO_KEYPOINTS

    threads = cv2.getNumThreads(), torch.get_num_threads()
    cv2.setNumThreads(1)
    torch.set_num_threads(1)
    tmp = None
    try:
        if root is None:
            from rsn_lightning.data.synthetic import generate

            tmp = tempfile.TemporaryDirectory(prefix="rsn-bench-data-")
            progress("  generating 40 synthetic images for the data benchmark")
            generate(tmp.name, num_train=40, num_val=1, seed=0, workers=1)
            paths = layout_paths(tmp.name, "synthetic")
            ann, image_dir, source = paths["train_ann_file"], paths["train_image_dir"], "synthetic (40 images)"
        else:
            ann, image_dir, source = Path(root) / ann_file, Path(root), str(root)
        transform = TopDownTransform(tuple(input_size), COCO_KEYPOINTS, train=True)
        transform.seed(0)
        ds = CocoKeypointDataset(ann, image_dir, transform)
        files = [r["image_path"] for r in ds.records]

        def decode_only(deadline):
            n = 0
            while time.perf_counter() < deadline:
                if read_image(files[n % len(files)]) is None:
                    raise OSError(f"cannot decode {files[n % len(files)]}")
                n += 1
            return n

        def full(deadline):
            n = 0
            while time.perf_counter() < deadline:
                ds[n % len(ds)]
                n += 1
            return n

        full(time.perf_counter() + 0.3)  # warm caches (kernel tables, file cache)
        counts, elapsed = {"decode": 0, "full": 0}, {"decode": 0.0, "full": 0.0}
        for _ in range(rounds):
            for name, fn in (("decode", decode_only), ("full", full)):
                t0 = time.perf_counter()
                counts[name] += fn(t0 + seconds / rounds)
                elapsed[name] += time.perf_counter() - t0
    finally:
        cv2.setNumThreads(threads[0])
        torch.set_num_threads(threads[1])
        if tmp is not None:
            tmp.cleanup()
    decode = counts["decode"] / elapsed["decode"]
    sample = counts["full"] / elapsed["full"]
    return {"model": None, "input": f"{input_size[0]}x{input_size[1]}", "mode": "data", "batch": None,
            "source": source, "num_images": len(set(files)), "num_persons": len(ds),
            "decode_images_per_s": round(decode, 1), "samples_per_s_per_worker": round(sample, 1),
            "sample_to_decode": round(sample / decode, 3)}


# ----------------------------------------------------------------------------------------- report
def _fmt(v, spec=".1f") -> str:
    return "" if v is None else format(v, spec)


def _compile_break_even(entries: list[dict]) -> list[str]:
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
    lines += _compile_break_even(entries)
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


def _load_average() -> str:
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "unknown"


def run(args) -> tuple[list[dict], dict]:
    import torch

    from rsn_lightning.allocator import keep_freed_memory
    from rsn_lightning.training.precision import native_bf16

    allocator = keep_freed_memory(args.device)  # as rsn-train, rsn-eval and rsn-predict run
    dev = _device(args.device)
    say = print if not args.quiet else (lambda *a, **k: None)
    info = {"device": str(dev) if dev.type == "cpu" else torch.cuda.get_device_name(dev),
            "threads": torch.get_num_threads(), "torch": torch.__version__, "native_bf16": native_bf16(dev.type),
            "load_average": _load_average(), "gemm_n": args.gemm_size, "allocator": allocator}
    say(f"rsn-bench: float32 GEMM ceiling ({args.gemm_size}^3)")
    info["gemm_gflops"] = gemm_ceiling(str(dev), n=args.gemm_size)
    say(f"  {info['gemm_gflops']:.1f} GFLOP/s")
    modes = list(args.modes)
    if args.amp and "amp" not in modes:
        modes.append("amp")
    sizes = [tuple(args.input[i:i + 2]) for i in range(0, len(args.input), 2)]
    entries = bench_models(args.model, sizes, batch=args.batch, modes=modes, steps=args.steps,
                           warmup=args.warmup, rounds=args.rounds, device=args.device,
                           channels_last=not args.no_channels_last, memory=not args.no_memory,
                           gemm_size=args.gemm_size, progress=say)
    if args.eval_images > 0:
        entries += bench_eval(args.eval_images, args.dets_per_image, progress=say)
    if args.data_seconds > 0:
        say("  data pipeline")
        entries.append(bench_data(args.data_root, args.data_ann, tuple(sizes[0]), args.data_seconds, progress=say))
    return entries, info


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", nargs="+", default=["rsn18"], help="preset names (rsn_lightning.models.list_models())")
    p.add_argument("--input", type=int, nargs="+", default=[192, 256], metavar="W H",
                   help="input width and height; several sizes as W H W H ...")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--modes", nargs="+", default=list(DEFAULT_MODES), choices=MODES,
                   help="default: the library's settings (training in channels-last float32; inference with "
                        "BN folded into the convolutions, channels-last, as rsn-predict/rsn-eval run it); "
                        "plain: the unfolded channels-last eval forward (inference); nchw: the plain layout; "
                        "compile: torch.compile of the default (first call's time reported); "
                        "onnxruntime: exported and run by ONNX Runtime (inference, CPU); amp: bf16/fp16 "
                        "autocast where native, skipped elsewhere; checkpoint: activation checkpointing (training)")
    p.add_argument("--amp", action="store_true", help="add the amp mode (skipped with a warning where emulated)")
    p.add_argument("--steps", type=int, default=3, help="steps per timed round")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps first (oneDNN builds its kernels)")
    p.add_argument("--rounds", type=int, default=2, help="interleaved rounds; rates are the best round's")
    p.add_argument("--device", default="auto")
    p.add_argument("--no-channels-last", action="store_true", help="run the default mode in NCHW")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory measurement")
    p.add_argument("--gemm-size", type=int, default=2048)
    p.add_argument("--eval-images", type=int, default=0,
                   help="time COCO evaluation of a generated results file over this many images (5000: COCO val)")
    p.add_argument("--dets-per-image", type=int, default=20)
    p.add_argument("--data-seconds", type=float, default=0.0, help="time the data pipeline for this long (0: skip)")
    p.add_argument("--data-root", default=None, help="COCO-format folder for the data benchmark (default: synthetic)")
    p.add_argument("--data-ann", default="annotations.json", help="annotation file under --data-root")
    p.add_argument("--json", default=None, metavar="PATH", help="write the entries as a JSON list")
    p.add_argument("--markdown", default=None, metavar="PATH", help="write the tables as markdown (else printed)")
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--memory-estimate", action="store_true",
                   help="print the float32 training-memory estimate of every conf/experiment preset at its per-GPU "
                        "batch (saved activations + weights + grads + Adam, on the meta device) and exit")
    p.add_argument("--experiments", nargs="+", default=None, metavar="NAME",
                   help="with --memory-estimate: only these conf/experiment presets (default: all)")
    return p


def main(argv=None) -> None:
    args = build_parser().parse_args(argv)
    if args.memory_estimate:
        from rsn_lightning.cli.common import config_dir
        from rsn_lightning.models.memory import memory_markdown, memory_table

        try:
            rows = memory_table(config_dir(), experiments=args.experiments)
        except ValueError as err:
            raise SystemExit(f"rsn-bench --experiments: {err}") from None
        text = memory_markdown(rows)
        if args.markdown:
            Path(args.markdown).parent.mkdir(parents=True, exist_ok=True)
            Path(args.markdown).write_text(text)
        print(text, end="")
        return
    if len(args.input) % 2:
        raise SystemExit(f"rsn-bench: --input takes width height pairs, got {args.input}")
    entries, info = run(args)
    text = markdown(entries, info)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps([{**e, "machine": info} for e in entries], indent=1))
    if args.markdown:
        Path(args.markdown).parent.mkdir(parents=True, exist_ok=True)
        Path(args.markdown).write_text(text)
    print(text, end="")


if __name__ == "__main__":
    main()
