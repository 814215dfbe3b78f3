"""What rsn-bench times: a preset's training step and inference step in each mode, and the timed rounds."""

from __future__ import annotations

import contextlib
import copy
import tempfile
import time
import warnings
from pathlib import Path

from rsn_lightning.bench.measure import gemm_ceiling, peak_memory_mb, torch_device

# default: what the library runs: training in channels-last, inference with models.fuse.inference_network
# (BN folded into the convolutions, channels-last), as rsn-predict and rsn-eval do
MODES = ("default", "plain", "nchw", "compile", "onnxruntime", "amp", "checkpoint")
INFERENCE_ONLY = ("plain", "onnxruntime")
TRAIN_ONLY = ("checkpoint",)
DEFAULT_MODES = ("default", "plain", "onnxruntime", "amp")
# training = forward + backward (about twice the forward's multiply-adds) = 3x the forward
TRAIN_FLOP_FACTOR = 3


class Workload:
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

    dev = torch_device(device)
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
                loads[mode] = Workload(model, (w, h), batch, mode, dev, channels_last)
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
