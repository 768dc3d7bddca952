"""Every CUDA kernel compiles to PTX for sm_90 (H100/H200) with numba's real CUDA compiler, where a GPU is not needed.

The simulator runs the kernels as Python, so it cannot catch what only numba's CUDA typing sees (a type that does
not unify, an unsupported call, a float16 store). This test compiles each kernel, in a subprocess without
NUMBA_ENABLE_CUDASIM, for the argument types the launchers pass: float16 storage, and the None of each optional
array. It needs NVVM and NVRTC from a CUDA toolkit (no driver); it is skipped where they are missing. Without a toolkit:
`pip install --target DIR nvidia-cuda-nvrtc nvidia-nvvm` (one command: both fill DIR/nvidia/cu13) and run the
tests with CUDA_HOME=DIR/nvidia/cu13.
"""
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("numba_cuda")


def signatures():
    """(kernel, argument types) for every kernel, with float16 storage (float32 where a kernel takes only that)."""
    from numba import types as t

    from minitransfer.kernels import (
        adamw_cuda,
        attention_cuda,
        cross_entropy_cuda,
        gelu_cuda,
        grad_norm_cuda,
        layer_norm_cuda,
        reduce_cuda,
    )

    f, i8 = t.float32, t.int64
    v16, v32, vi8, v64 = t.float16[::1], t.float32[::1], t.int64[::1], t.float64[::1]
    m16, m32, mi8 = t.float16[:, ::1], t.float32[:, ::1], t.int64[:, ::1]
    drop = (t.uint64, t.uint32, f)
    a, ln, ce = attention_cuda, layer_norm_cuda, cross_entropy_cuda
    return [
        (a._padded_forward, (v16, mi8, i8, i8, i8, f, *drop, v16, v16)),
        (a._padded_forward, (v32, t.none, i8, i8, i8, f, *drop, v32, t.none)),
        (a._padded_backward, (v16, v16, mi8, i8, i8, i8, f, *drop, v16, v16)),
        (a._padded_backward, (v32, v32, t.none, i8, i8, i8, f, *drop, v32, t.none)),
        (a._packed_forward, (v16, vi8, i8, f, *drop, v16, v16)),
        (a._packed_backward, (v32, v32, vi8, i8, f, *drop, v32, t.none)),
        (gelu_cuda._forward, (m16, v16, m16)),
        (gelu_cuda._forward, (m32, t.none, m32)),  # plain GELU
        (gelu_cuda._backward, (m16, v16, m16, m16, m32)),
        (gelu_cuda._backward, (m32, t.none, m32, m32, t.none)),
        (reduce_cuda._column_sums, (m32, v16)),
        (ln.normalize_rows, (m16, v16, m16, v32, v32, f, *drop, t.boolean, m16, m16, v32, v32)),
        (ln.normalize_rows, (m32, t.none, t.none, v32, v32, f, *drop, t.boolean, t.none, m32, v32, v32)),
        (ln.backward_rows, (m16, m16, v32, v32, v32, *drop, m16, m16)),
        (ln.backward_rows, (m32, m32, v32, v32, v32, *drop, m32, t.none)),
        (ln.backward_columns, (m16, m16, v32, v32, m16, m32)),
        (ln.backward_columns, (m32, m32, v32, v32, t.none, m32)),
        (ce._row_losses, (m16, vi8, i8, v32, v32)),
        (ce._mean, (v32, vi8, i8, v32, v32)),
        (ce._backward, (m16, vi8, i8, v32, v32, v32, m16)),
        (grad_norm_cuda._partial_squares, (v16, v32)),
        (grad_norm_cuda._finish, (v32, t.float64, v64, v32)),
        (adamw_cuda._update, (v32, v16, v32, v32, mi8, m32, f, f, f, f, v32)),
        (adamw_cuda._update, (v32, v32, v32, v32, mi8, m32, f, f, f, f, t.none)),
    ]


def compile_all() -> None:
    from types import SimpleNamespace

    from numba import cuda
    from numba.cuda import dispatcher

    # A device function asks the current GPU for its compute capability; there is none: say sm_90.
    dispatcher.get_current_device = lambda: SimpleNamespace(compute_capability=(9, 0))
    for kernel, types in signatures():
        cuda.compile_ptx(kernel.py_func, types, cc=(9, 0))
    print("compiled", len(signatures()))


def test_every_kernel_compiles_to_ptx():
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).resolve().parents[2]), env.get("PYTHONPATH", "")])
    probe_code = "from numba import cuda; cuda.compile_ptx(lambda: None, (), cc=(9, 0))"
    probe = subprocess.run([sys.executable, "-c", probe_code], env=env, capture_output=True, text=True)
    if probe.returncode != 0:
        why = next((line for line in reversed(probe.stderr.splitlines()) if line.strip()), "")
        pytest.skip(f"numba cannot compile PTX here (it needs NVVM and NVRTC from a CUDA toolkit): {why}")
    run = subprocess.run([sys.executable, __file__], env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-3000:]


if __name__ == "__main__":
    compile_all()
