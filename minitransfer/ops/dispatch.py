"""One way to pick a kernel: every fused op is a Reference/Fused pair behind `pick`, and one switch for all.

`Reference<Name>` is the plain NumPy/CuPy composition (kernels/<op>_reference.py): it runs on every array and
is what the kernels are tested against. `Fused<Name>` runs one CPU kernel (kernels/<op>_cpu.py) on NumPy arrays,
`Cuda<Name>` CUDA kernels (kernels/<op>_cuda.py, numba-cuda) on CuPy arrays; each says which arrays it takes with
a classmethod `supports(*arrays)`. Each op passes its kernel classes to `pick` in a list, first match wins:

    def layer_norm(x, weight, bias, eps):
        return pick(ReferenceLayerNorm, [FusedLayerNorm, CudaLayerNorm], x, weight, bias)(eps)(x, weight, bias)

The switch, read from the environment and checked on first use (a bad value is a ConfigError):
    MINITRANSFER_KERNELS=auto        the default: a fused kernel wherever one supports the arrays
    MINITRANSFER_KERNELS=reference   the reference everywhere (to compare, or to rule the kernels out)
    MINITRANSFER_ATTENTION=reference the same, under its older name
`with kernels("reference"):` sets it for a block (tests, benchmarks). NUMBA_DISABLE_JIT=1 runs the numba kernels
as plain Python, to step into them with a debugger.
"""
from __future__ import annotations

import contextlib
import functools
import importlib
import importlib.util
import os
import sys
from collections.abc import Iterator, Mapping, Sequence

import numpy as np

from minitransfer.autograd import Tensor
from minitransfer.errors import ConfigError

VARIABLES = ("MINITRANSFER_KERNELS", "MINITRANSFER_ATTENTION")  # the switch, then its older name
CHOICES = ("auto", "reference")
_choice: str | None = None  # None until first read


def _checked(choice: str, where: str) -> str:
    if choice not in CHOICES:
        raise ConfigError(f"{where}={choice!r} is not understood: use 'reference' for the plain NumPy/CuPy ops "
                          "everywhere or 'auto' (the default) for the fused kernels where they apply")
    return choice


def read_switch(environ: Mapping[str, str] = os.environ) -> str:
    """'auto' or 'reference', from MINITRANSFER_KERNELS or else MINITRANSFER_ATTENTION (unset or empty: 'auto')."""
    for name in VARIABLES:
        value = environ.get(name, "").strip().lower()
        if value:
            return _checked(value, name)
    return "auto"


def current() -> str:
    """The switch in force: what `kernels()` set, else the environment's (read once)."""
    global _choice
    if _choice is None:
        _choice = read_switch()
    return _choice


@contextlib.contextmanager
def kernels(choice: str) -> Iterator[None]:
    """Run the block with the switch at `choice` ('auto' or 'reference'), whatever the environment says."""
    global _choice
    previous, _choice = _choice, _checked(choice, "kernels()")
    try:
        yield
    finally:
        _choice = previous


def pick(reference: type, fused: Sequence[type], *inputs) -> type:
    """The first class in `fused` whose `supports` takes the inputs' arrays (Tensors or arrays), or `reference`
    when none does or the switch says 'reference'."""
    if current() == "auto":
        arrays = tuple(x.data if isinstance(x, Tensor) else x for x in inputs)
        for candidate in fused:
            if candidate.supports(*arrays):
                return candidate
    return reference


def numpy_float(*arrays, dtypes=(np.float32, np.float64)) -> bool:
    """Whether every array is a NumPy array of one dtype among `dtypes`: what the CPU kernels take."""
    return (isinstance(arrays[0], np.ndarray) and arrays[0].dtype in dtypes
            and all(isinstance(a, np.ndarray) and a.dtype == arrays[0].dtype for a in arrays))


def cupy_float(*arrays, dtypes=(np.float32, np.float16)) -> bool:
    """Whether every array is a CuPy array of one dtype among `dtypes` and numba-cuda is installed: what the CUDA
    kernels take. Imports neither (a CuPy array exists only once CuPy is loaded)."""
    cupy = sys.modules.get("cupy")
    return (cupy is not None and all(isinstance(a, cupy.ndarray) for a in arrays) and arrays[0].dtype in dtypes
            and all(a.dtype == arrays[0].dtype for a in arrays) and _has_numba_cuda())


@functools.cache
def _has_numba_cuda() -> bool:
    return importlib.util.find_spec("numba_cuda") is not None


class LazyModule:
    """A kernel module imported on first use, so that `import minitransfer` never loads numba."""

    def __init__(self, name: str):
        self.name = name

    def __getattr__(self, attribute: str):
        return getattr(importlib.import_module(self.name), attribute)
