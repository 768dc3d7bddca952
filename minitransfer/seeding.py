"""Seeded random numbers for dropout, masking and initialization, on NumPy and CuPy alike."""
from __future__ import annotations

import random

import numpy as np

from minitransfer import backend

_seed = 0
_numpy_rng = np.random.default_rng(_seed)


def manual_seed(seed: int) -> None:
    """Seed every generator minitransfer draws from (dropout masks, MLM masking, head initialization)."""
    global _seed, _numpy_rng
    _seed = int(seed)
    _numpy_rng = np.random.default_rng(_seed)
    random.seed(_seed)  # the standard library generator too, for code that draws from it
    if backend._cupy is not None:
        backend._cupy.random.seed(_seed)


def rng(xp=np):
    """The generator for arrays of module `xp` (numpy.random.Generator or cupy.random)."""
    if xp is np:
        return _numpy_rng
    return xp.random


def numpy_rng() -> np.random.Generator:
    return _numpy_rng
