"""The array backend: NumPy on the CPU, CuPy on the GPU, behind three small functions.

CuPy is imported lazily, on first use of a GPU array, so everything on the CPU works where it is missing.
"""
from __future__ import annotations

import numpy as np

from minitransfer.errors import ConfigError

_cupy = None


def cupy_module():
    """Return the cupy module, importing it on first use; a clear error where it is not installed."""
    global _cupy
    if _cupy is None:
        try:
            import cupy  # noqa: PLC0415 (lazy on purpose)
        except ImportError as e:  # pragma: no cover - depends on the machine
            raise RuntimeError(
                "device 'cuda' needs CuPy: pip install 'minitransfer[gpu]' (CUDA 12) or '[gpu13]' (CUDA 13)"
            ) from e
        _cupy = cupy
    return _cupy


def get_array_module(*arrays):
    """numpy or cupy, whichever the arrays belong to (numpy when none is a CuPy array)."""
    if _cupy is not None:
        for a in arrays:
            if isinstance(a, _cupy.ndarray):
                return _cupy
    return np


def is_gpu_array(a) -> bool:
    return _cupy is not None and isinstance(a, _cupy.ndarray)


def to_numpy(a) -> np.ndarray:
    """A NumPy copy (or view) of a NumPy or CuPy array."""
    if is_gpu_array(a):
        return a.get()
    return np.asarray(a)


def to_device(a, device: str):
    """Move an array to 'cpu' or 'cuda' (also 'cuda:N')."""
    device = normalize_device(device)
    if device == "cpu":
        return to_numpy(a)
    cp = cupy_module()
    index = int(device.split(":")[1]) if ":" in device else 0
    with cp.cuda.Device(index):
        return cp.asarray(a)


def normalize_device(device: str) -> str:
    device = str(device).lower()
    if device == "cpu" or device == "cuda" or (device.startswith("cuda:") and device[5:].isdigit()):
        return device
    raise ValueError(f"unknown device {device!r}: use 'cpu' or 'cuda' (or 'cuda:N')")


def device_of(a) -> str:
    return "cuda" if is_gpu_array(a) else "cpu"


def check_device(device: str) -> str:
    """`device` normalized ('cpu', 'cuda', 'cuda:N') after checking it runs here: a GPU needs CuPy and a CUDA
    device, else a ConfigError naming the extra to install."""
    try:
        device = normalize_device(device)
    except ValueError as e:
        raise ConfigError(str(e)) from e
    if device == "cpu":
        return device
    install = "pip install 'minitransfer[gpu]' (CUDA 12) or 'minitransfer[gpu13]' (CUDA 13)"
    try:
        cp = cupy_module()
    except RuntimeError:
        raise ConfigError(f"device {device!r} needs CuPy, which is not installed: {install}") from None
    try:
        count = cp.cuda.runtime.getDeviceCount()
    except Exception as e:  # noqa: BLE001 (CuPy without a driver raises CUDARuntimeError and friends)
        count, why = 0, f" ({type(e).__name__}: {e})"
    else:
        why = ""
    index = int(device.split(":")[1]) if ":" in device else 0
    if index >= count:
        raise ConfigError(f"device {device!r}: CuPy sees {count} CUDA GPU(s){why}; run on a machine with an NVIDIA "
                          f"GPU and its driver, with the extra for its CUDA version: {install}")
    return device
