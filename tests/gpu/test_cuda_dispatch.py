"""ops/dispatch.py hands CuPy arrays of the kernels' dtypes to the Cuda classes, and NumPy arrays never.

No CuPy here: a stub module in sys.modules["cupy"] whose `ndarray` carries only what `supports` reads (dtype,
shape, flags) stands in for it, so these test the choice alone (test_cuda_ops.py runs the classes). And the CPU
paths must not load numba-cuda, nor `import minitransfer` numba.
"""
import importlib
import os
import subprocess
import sys
import types

import numpy as np
import pytest

from minitransfer.ops import dispatch
from minitransfer.ops.activations import CudaBiasGELU, CudaGELU, ReferenceBiasGELU, ReferenceGELU
from minitransfer.ops.attention import CudaAttention, ReferenceAttention
from minitransfer.ops.losses import CrossEntropy, CudaCrossEntropy
from minitransfer.ops.normalization import (
    CudaBiasDropoutResidualLayerNorm,
    CudaLayerNorm,
    ReferenceBiasDropoutResidualLayerNorm,
    ReferenceLayerNorm,
)
from minitransfer.ops.varlen_attention import CudaVarlenAttention, FusedVarlenAttention, ReferenceVarlenAttention
from minitransfer.optim.adamw import CudaAdamWUpdate, FusedAdamWUpdate, ReferenceAdamWUpdate
from minitransfer.optim.clipping import CudaGradNorm, ReferenceGradNorm

varlen_module = importlib.import_module("minitransfer.ops.varlen_attention")  # ops.varlen_attention: the function


class StubCupyArray:
    def __init__(self, shape, dtype, contiguous=True):
        self.shape, self.dtype = shape, np.dtype(dtype)
        self.flags = types.SimpleNamespace(c_contiguous=contiguous)


@pytest.fixture
def cupy(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", types.SimpleNamespace(ndarray=StubCupyArray))
    monkeypatch.setattr(dispatch, "_has_numba_cuda", lambda: True)  # as where numba-cuda is installed


# (Reference, Cuda, shapes of the arrays `supports` gets)
OPS = [
    (ReferenceGELU, CudaGELU, [(2, 3)]),
    (ReferenceBiasGELU, CudaBiasGELU, [(2, 3), (3,)]),
    (ReferenceLayerNorm, CudaLayerNorm, [(2, 3), (3,), (3,)]),
    (ReferenceBiasDropoutResidualLayerNorm, CudaBiasDropoutResidualLayerNorm, [(2, 3), (3,), (2, 3), (3,), (3,)]),
    (ReferenceAttention, CudaAttention, [(1, 2, 512, 4)] * 3),
    (ReferenceVarlenAttention, CudaVarlenAttention, [(9, 2, 4)] * 3),
    (CrossEntropy, CudaCrossEntropy, [(4, 7)]),
    (ReferenceAdamWUpdate, CudaAdamWUpdate, [(5,)] * 4),
    (ReferenceGradNorm, CudaGradNorm, [(5,), (2, 3)]),
]


@pytest.mark.parametrize("reference, cuda, shapes", OPS, ids=[cuda.__name__ for _, cuda, _ in OPS])
def test_cupy_arrays_of_the_kernels_dtypes_go_to_the_cuda_class(cupy, reference, cuda, shapes):
    for dtype in (np.float32, np.float16):
        arrays = [StubCupyArray(s, dtype) for s in shapes]
        if cuda is CudaAdamWUpdate:  # param and moments float32, the gradient float32 or float16
            arrays = [StubCupyArray(s, np.float32 if i != 1 else dtype) for i, s in enumerate(shapes)]
        assert dispatch.pick(reference, [cuda], *arrays) is cuda
        with dispatch.kernels("reference"):
            assert dispatch.pick(reference, [cuda], *arrays) is reference
    assert dispatch.pick(reference, [cuda], *(StubCupyArray(s, np.float64) for s in shapes)) is reference
    mixed = [StubCupyArray(s, np.float32) for s in shapes[:-1]] + [np.zeros(shapes[-1], np.float32)]
    assert dispatch.pick(reference, [cuda], *mixed) is reference  # every array on the GPU, or the reference


@pytest.mark.parametrize("reference, cuda, shapes", OPS, ids=[cuda.__name__ for _, cuda, _ in OPS])
def test_numpy_arrays_never_go_to_the_cuda_class(cupy, reference, cuda, shapes):
    for dtype in (np.float16, np.float32, np.float64):
        assert dispatch.pick(reference, [cuda], *(np.zeros(s, dtype) for s in shapes)) is reference


def test_no_cuda_class_without_numba_cuda(cupy, monkeypatch):
    monkeypatch.setattr(dispatch, "_has_numba_cuda", lambda: False)
    assert dispatch.pick(ReferenceLayerNorm, [CudaLayerNorm], *(StubCupyArray((3,), np.float32),) * 3) is \
        ReferenceLayerNorm


def test_attention_past_512_keys_and_strided_adamw_arrays_get_the_reference(cupy):
    long = [StubCupyArray((1, 2, 513, 4), np.float32)] * 3
    assert dispatch.pick(ReferenceAttention, [CudaAttention], *long) is ReferenceAttention
    strided = [StubCupyArray((5,), np.float32, contiguous=i != 0) for i in range(4)]
    assert dispatch.pick(ReferenceAdamWUpdate, [FusedAdamWUpdate, CudaAdamWUpdate], *strided) is ReferenceAdamWUpdate


@pytest.mark.parametrize("lengths, listed", [([512, 3], True), ([513], False)])
def test_varlen_lists_its_cuda_class_only_for_sequences_its_kernel_takes(monkeypatch, lengths, listed):
    seen = []

    class Picked(Exception):
        pass

    def pick(reference, fused, *inputs):
        seen.append(fused)
        raise Picked  # the choice is all this test needs

    monkeypatch.setattr(varlen_module, "pick", pick)
    x = np.zeros((sum(lengths), 1, 4), np.float32)
    with pytest.raises(Picked):
        varlen_module.varlen_attention(x, x, x, np.cumsum([0, *lengths]))
    assert seen == [[FusedVarlenAttention, CudaVarlenAttention] if listed else [FusedVarlenAttention]]


def test_the_cpu_paths_load_no_numba_cuda_and_import_loads_no_numba():
    script = ("import sys, numpy as np\n"
              "import minitransfer as mt\n"
              "from minitransfer import Tensor, ops, optim\n"
              "assert 'numba' not in sys.modules, 'import minitransfer imported numba'\n"
              "x = Tensor(np.ones((2, 3), np.float32), requires_grad=True)\n"
              "loss = ops.cross_entropy(ops.layer_norm(ops.bias_gelu(x, x[0]), x[0], x[0]), np.array([0, 2]))\n"
              "loss.backward()\n"
              "optim.clip_grad_norm_([x], 1.0)\n"
              "optim.AdamW([x]).step()\n"
              "assert 'numba' in sys.modules  # the CPU kernels ran\n"
              "assert not {'numba_cuda', 'numba.cuda'} & set(sys.modules), 'a CPU path loaded numba-cuda'\n")
    env = {k: v for k, v in os.environ.items() if k not in dispatch.VARIABLES}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
