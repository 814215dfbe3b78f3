"""CPU tensors that behave like accelerator tensors toward host code, to prove GPU code paths on a CPU.

On a GPU, ``np.asarray(t)`` and ``t.numpy()`` of a device tensor fail ("can't convert cuda:0 device type
tensor to numpy"), an operation between a device tensor and a host tensor of one or more dimensions fails
("Expected all tensors to be on the same device"), and ``item()``, ``bool()``, ``float()``, ``tolist()``
and ``.cpu()`` wait for the device to finish its queued work (a host sync). On a CPU none of this shows.

With ``RSN_STRICT_DEVICE=1`` in the environment, the batches that the Lightning module receives
(``RSNLitModule.transfer_batch_to_device``) and the crops the Predictor feeds its network
(:func:`to_device`) are :class:`DeviceTensor`\\ s: plain CPU tensors with the same numbers, whose
results stay ``DeviceTensor``\\ s, and which

- raise :class:`HostConversionError` on ``numpy()`` / ``__array__`` (what a CUDA tensor does);
- raise :class:`HostDeviceMixError` when an operation combines them with a host tensor of one or more
  dimensions (parameters, buffers and the optimiser's fused step are device-resident; indexing with a
  host index tensor and copies are allowed, as CUDA allows them);
- count each host sync (``item``, ``bool``, ``float``, ``int``, ``tolist``, ``.cpu()``) in
  :data:`SYNCS`, by operation, so tests can assert which code syncs how often;
- return a plain tensor from ``.cpu()``.

The module's buffers become ``DeviceTensor``\\ s too (its parameters stay ``nn.Parameter``\\ s), so a
device-resident counter that host code reads is counted. Everything else is unchanged: the same
numbers, the same ``device`` (cpu), at some cost in speed (each operation passes through Python).
"""

from __future__ import annotations

import os
from collections import Counter

import torch
from torch import nn
from torch.utils._pytree import tree_flatten, tree_map

ENV = "RSN_STRICT_DEVICE"

# every host sync a DeviceTensor saw, by operation name; tests reset it and read it
SYNCS: Counter = Counter()


class HostConversionError(TypeError):
    """A device tensor was converted to a host array without ``.cpu()`` first."""


class HostDeviceMixError(RuntimeError):
    """An operation mixed a device tensor with a host tensor."""


def enabled() -> bool:
    return os.environ.get(ENV, "").strip().lower() in ("1", "true", "yes", "on")


_T = torch.Tensor
_CONVERSIONS = {_T.numpy, _T.__array__}
_SYNCS = {_T.item, _T.__bool__, _T.__float__, _T.__int__, _T.__index__, _T.tolist}
# operations that accept host tensors beside device ones on CUDA: indexing with a host index, copies and
# conversions between devices, and metadata
_MIX_ALLOWED = {_T.__getitem__, _T.to, _T.copy_, _T.cpu, _T.__repr__, _T.__format__, _T.new_tensor,
                _T.type_as, _T.__setstate__, _T.__reduce_ex__, _T.__deepcopy__}


def _is_host(t) -> bool:
    return (isinstance(t, torch.Tensor) and not isinstance(t, (DeviceTensor, nn.Parameter))
            and t.dim() > 0 and t.device.type == "cpu")


class DeviceTensor(torch.Tensor):
    """A CPU tensor that refuses host conversions and host/device mixing and counts host syncs
    (see the module docstring)."""

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", str(func))
        if func in _CONVERSIONS:
            raise HostConversionError(
                f"{name}() of a device tensor: on a GPU this fails (can't convert a cuda tensor to numpy); "
                "call .cpu() first")
        if func in _SYNCS:
            SYNCS[name] += 1
        elif func is _T.cpu:
            SYNCS["cpu"] += 1
            with torch._C.DisableTorchFunctionSubclass():
                out = func(*args, **kwargs)
            return out.as_subclass(torch.Tensor)
        elif func not in _MIX_ALLOWED and not name.startswith(("_foreach", "_fused")):
            host = [t for t in tree_flatten((args, kwargs))[0] if _is_host(t)]
            if host:
                shapes = ", ".join(str(tuple(t.shape)) for t in host)
                raise HostDeviceMixError(
                    f"{name}: a device tensor with host tensor(s) of shape {shapes}; on a GPU this fails "
                    "(Expected all tensors to be on the same device): move them with .to(device)")
        return super().__torch_function__(func, types, args, kwargs)

    def __deepcopy__(self, memo):
        # torch's default deep copy needs new_empty to keep the subclass; copy the plain tensor instead
        with torch._C.DisableTorchFunctionSubclass():
            plain = self.as_subclass(torch.Tensor)
        return plain.__deepcopy__(memo).as_subclass(DeviceTensor)


def to_device(data, device=None, module: nn.Module | None = None):
    """``data`` (a tensor, or a dict/list/tuple of them) on ``device``; with ``RSN_STRICT_DEVICE=1`` its
    tensors become :class:`DeviceTensor`\\ s, and so do ``module``'s buffers."""
    if device is not None:
        data = tree_map(lambda t: t.to(device) if isinstance(t, torch.Tensor) else t, data)
    if not enabled():
        return data
    if module is not None:
        as_device_buffers(module)
    return tree_map(lambda t: t.as_subclass(DeviceTensor) if isinstance(t, torch.Tensor)
                    and not isinstance(t, DeviceTensor) else t, data)


def as_device_buffers(module: nn.Module) -> None:
    """Make ``module``'s buffers :class:`DeviceTensor`\\ s in place (state-dict keys and values unchanged)."""
    for sub in module.modules():
        for key, buf in sub._buffers.items():
            if buf is not None and not isinstance(buf, DeviceTensor):
                sub._buffers[key] = buf.as_subclass(DeviceTensor)
