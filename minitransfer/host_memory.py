"""Keep freed host memory in the process for the next array, instead of returning it to the kernel.

A training step allocates and frees the same few hundred megabytes of activations and gradients every step.
glibc's malloc serves blocks above its mmap threshold with fresh mmap()s and gives trimmed heap back, so each
step re-faults its memory page by page (~50k page faults per MiniLM step, zeroed by the kernel), partly inside
the GEMMs that first write it. Raising the mmap threshold to its maximum (32 MiB) and the trim threshold to
1 GiB keeps that memory mapped and reused: measured on the 2-core CPU, page faults down 4.5x, and a MiniLM
training step 1-14% and inference 2-13% faster in 3 of 3 alternating pairs each (benchmarks/RESULTS.md).
This is what PyTorch's CPU tuning guide gets from swapping in jemalloc/tcmalloc, done with glibc's own knobs.

The cost: the process keeps its peak heap after a step instead of shrinking. Set
MINITRANSFER_KEEP_FREED_MEMORY=0 to leave malloc as it was (e.g. a long-lived server that must shrink).
No effect (and no error) on other C libraries or platforms.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameter numbers (malloc.h)
MMAP_THRESHOLD = 32 * 1024 * 1024  # glibc's largest allowed value on 64-bit (HEAP_MAX_SIZE / 2)
TRIM_THRESHOLD = 1024 * 1024 * 1024


def keep_freed_memory() -> bool:
    """Set glibc's malloc to reuse freed blocks instead of unmapping them; True if it was set."""
    if os.environ.get("MINITRANSFER_KEEP_FREED_MEMORY", "1").strip().lower() in ("0", "false", "no", "off"):
        return False
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return False
    if not hasattr(libc, "gnu_get_libc_version"):  # not glibc: the parameter numbers above are glibc's
        return False
    mallopt = libc.mallopt
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
