"""Every Cuda<Name> class of the ops (and of optim) run directly, forward and backward through autograd, against
its Reference class on the same inputs, under the CUDA simulator (NumPy arrays) or on a GPU (CuPy arrays).

`supports` is bypassed (it takes only CuPy arrays; test_cuda_dispatch.py tests it). Dropout: both draw their seed
from the same `manual_seed`, so they must drop the same elements. The references run in float64 on the same
(rounded) values: the kernels' fp32 arithmetic agrees to ~1e-6 on values of order 1 (2e-5 leaves room for sums of
40 rows); float16 storage rounds every stored result to 2^-11 relative, and gradients through two roundings
(softmax, LayerNorm) to ~1e-2.
"""
import numpy as np
import pytest

pytest.importorskip("numba_cuda")

import minitransfer as mt  # noqa: E402
from minitransfer import Tensor  # noqa: E402
from minitransfer.ops.activations import CudaBiasGELU, CudaGELU, ReferenceBiasGELU, ReferenceGELU  # noqa: E402
from minitransfer.ops.attention import CudaAttention, ReferenceAttention  # noqa: E402
from minitransfer.ops.losses import CrossEntropy, CudaCrossEntropy  # noqa: E402
from minitransfer.ops.normalization import (  # noqa: E402
    CudaBiasDropoutResidualLayerNorm,
    CudaLayerNorm,
    ReferenceBiasDropoutResidualLayerNorm,
    ReferenceLayerNorm,
)
from minitransfer.ops.varlen_attention import CudaVarlenAttention, ReferenceVarlenAttention  # noqa: E402
from minitransfer.optim.adamw import CudaAdamWUpdate, ReferenceAdamWUpdate  # noqa: E402
from minitransfer.optim.clipping import CudaGradNorm, ReferenceGradNorm  # noqa: E402

TOL = {np.float32: {"atol": 2e-5, "rtol": 1e-5}, np.float16: {"atol": 2e-2, "rtol": 1e-2}}
CU_SEQLENS = np.array([0, 5, 6, 9])  # lengths 5, 1 and 3


def key_mask(batch=4, seq=8):
    """Rows of seq, 1, 0 (all padding) and 5 real keys, the last with a hole."""
    mask = (np.arange(seq)[None, :] < np.resize([seq, 1, 0, 5], batch)[:, None]).astype(np.int64)
    mask[3::4, 2] = 0
    return mask


def normal(rng, *shape, scale=1.0, shift=0.0):
    return rng.standard_normal(shape) * scale + shift


# name -> (Cuda class, Reference class, constructor arguments, input shapes, input scale)
CASES = {
    "LayerNorm": (CudaLayerNorm, ReferenceLayerNorm, (1e-5,), [(2, 3, 40), (40,), (40,)], 1.0),
    "BiasDropoutResidualLayerNorm": (CudaBiasDropoutResidualLayerNorm, ReferenceBiasDropoutResidualLayerNorm,
                                     (1e-12, 0.0), [(2, 3, 40), (40,), (2, 3, 40), (40,), (40,)], 1.0),
    "BiasDropoutResidualLayerNorm-dropout": (CudaBiasDropoutResidualLayerNorm, ReferenceBiasDropoutResidualLayerNorm,
                                             (1e-12, 0.2), [(6, 40), (40,), (6, 40), (40,), (40,)], 1.0),
    "GELU": (CudaGELU, ReferenceGELU, (), [(5, 40)], 2.0),
    "BiasGELU": (CudaBiasGELU, ReferenceBiasGELU, (), [(40, 32), (32,)], 2.0),  # two bias-gradient chunks
    "Attention": (CudaAttention, ReferenceAttention, (key_mask(),), [(4, 2, 8, 4)] * 3, 1.0),
    "Attention-dropout": (CudaAttention, ReferenceAttention, (key_mask(), 0.3), [(4, 2, 8, 4)] * 3, 1.0),
    "VarlenAttention": (CudaVarlenAttention, ReferenceVarlenAttention, (CU_SEQLENS,), [(9, 2, 4)] * 3, 1.0),
    "VarlenAttention-dropout": (CudaVarlenAttention, ReferenceVarlenAttention, (CU_SEQLENS, 0.3), [(9, 2, 4)] * 3,
                                1.0),
}


def run(function, arrays, gout, put=np.asarray, get=np.asarray):
    """(output, input gradients) of function(*arrays) with upstream gradient gout, after manual_seed(0)."""
    mt.manual_seed(0)
    tensors = [Tensor(put(a), requires_grad=True) for a in arrays]
    out = function(*tensors)
    out.backward(put(gout))
    return get(out.data), [get(t.grad.data) for t in tensors]


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
@pytest.mark.parametrize("name", CASES)
def test_the_cuda_class_is_its_reference(device, name, dtype):
    cuda_class, reference_class, args, shapes, scale = CASES[name]
    rng = np.random.default_rng(0)
    arrays = [normal(rng, *shape, scale=scale, shift=0.5).astype(dtype) for shape in shapes]
    gout = normal(rng, *shapes[0]).astype(dtype)  # every output has its first input's shape
    out, grads = run(cuda_class(*args), arrays, gout, device.put, device.get)
    want_out, want_grads = run(reference_class(*args), [a.astype(np.float64) for a in arrays], gout.astype(np.float64))
    assert out.dtype == dtype and out.shape == want_out.shape
    np.testing.assert_allclose(out, want_out, **TOL[dtype])
    for i, (got, want) in enumerate(zip(grads, want_grads)):
        assert got.dtype == dtype, f"gradient {i}"
        np.testing.assert_allclose(got, want, **TOL[dtype], err_msg=f"gradient {i}")


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_cuda_cross_entropy_is_the_reference_with_a_float32_loss(device, dtype):
    rng = np.random.default_rng(0)
    logits = (3 * rng.standard_normal((6, 40))).astype(dtype)
    targets = rng.integers(0, 40, 6)
    targets[1::3] = -100  # ignored rows
    loss, (grad,) = run(CudaCrossEntropy(device.put(targets)), [logits], np.float32(2.0), device.put, device.get)
    want_loss, (want_grad,) = run(CrossEntropy(targets), [logits.astype(np.float64)], 2.0)
    assert loss.dtype == np.float32 and grad.dtype == dtype  # the loss stays fp32 for half logits
    np.testing.assert_allclose(loss, want_loss, rtol=1e-6)
    np.testing.assert_allclose(grad, want_grad, **TOL[dtype])
    assert (grad[[1, 4]] == 0).all()
    every_row_ignored = run(CudaCrossEntropy(device.put(np.full(6, -100))), [logits], np.float32(1.0), device.put,
                            device.get)
    assert every_row_ignored[0] == 0 and (every_row_ignored[1][0] == 0).all()


def test_cuda_adamw_update_is_the_reference_over_steps(device):
    shapes = [(3,), (7, 33), (2 * 2048 + 5,)]  # the last spans three of the kernel's chunks
    start = [np.random.default_rng(1).standard_normal(s).astype(np.float32) for s in shapes]
    grads = [[np.random.default_rng(2 + t).standard_normal(s).astype(np.float32) for s in shapes] for t in range(3)]
    results = {}
    for update in (CudaAdamWUpdate, ReferenceAdamWUpdate):
        put, get = (device.put, device.get) if update is CudaAdamWUpdate else (np.array, np.asarray)
        params = [put(p) for p in start]
        moments = [(put(np.zeros_like(p)), put(np.zeros_like(p))) for p in start]
        for step, step_grads in enumerate(grads, 1):
            for p, g, (m, v), wd in zip(params, step_grads, moments, (0.0, 0.01, 0.1)):
                update.apply(p, put(g), m, v, step, 1e-2, 0.9, 0.999, 1e-8, wd)
        results[update] = [get(p) for p in params] + [get(a) for mv in moments for a in mv]
    for ours, reference in zip(results[CudaAdamWUpdate], results[ReferenceAdamWUpdate]):
        np.testing.assert_allclose(ours, reference, rtol=2e-6, atol=1e-7)


def test_cuda_grad_norm_is_the_reference(device):
    rng = np.random.default_rng(0)
    grads = [rng.standard_normal(shape).astype(np.float32) for shape in [(1,), (7,), (30, 10), (1000,)]]
    np.testing.assert_allclose(CudaGradNorm.norm([device.put(g) for g in grads]), ReferenceGradNorm.norm(grads),
                               rtol=1e-6)
