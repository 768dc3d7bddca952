"""The CuPy path on a CUDA GPU: the same models and ops as on the CPU, compared with the CPU's results.

Skipped cleanly where CuPy or a CUDA device is missing (CI and the development machine have neither). On the GPU
the fused ops hand CuPy float32/float16 arrays to their Cuda classes (kernels/*_cuda.py, numba-cuda; the other
ops run as CuPy compositions), so these tests pin that the dispatch picks them, that results match the CPU's
(NumPy kernels) to float32 rounding, and that dropout drops the same elements on both for the same seed (one RNG:
kernels/dropout_rng.py). Every kernel also runs under numba's CUDA simulator in CI (the other tests/gpu files).
Last run on a GPU: never (no GPU machine was lent to this project's sessions; benchmarks/RESULTS.md).
"""
import numpy as np
import pytest

cupy = pytest.importorskip("cupy")
try:
    _devices = cupy.cuda.runtime.getDeviceCount()
except Exception:  # noqa: BLE001 -- CuPy without a driver raises CUDARuntimeError and friends
    _devices = 0
pytestmark = pytest.mark.skipif(_devices == 0, reason="no CUDA device")

import minitransfer as mt  # noqa: E402
from minitransfer import Tensor, ops  # noqa: E402
from minitransfer.ops.activations import CudaBiasGELU  # noqa: E402
from minitransfer.ops.normalization import CudaBiasDropoutResidualLayerNorm  # noqa: E402
from minitransfer.optim import AdamW  # noqa: E402

TINY = {"bert": {"model_type": "bert", "vocab_size": 100, "hidden_size": 32, "num_hidden_layers": 2,
                 "num_attention_heads": 4, "intermediate_size": 64, "max_position_embeddings": 64},
        "distilbert": {"model_type": "distilbert", "vocab_size": 100, "dim": 32, "n_layers": 2, "n_heads": 4,
                       "hidden_dim": 64, "max_position_embeddings": 64}}


def tiny_model(kind, dropout=0.0):
    keys = ("hidden_dropout_prob", "attention_probs_dropout_prob") if kind == "bert" else ("dropout",
                                                                                         "attention_dropout")
    config = mt.ModelConfig.from_dict({**TINY[kind], **{k: dropout for k in keys}})
    mt.manual_seed(0)
    return mt.AutoModel.from_config(config)


def inputs():
    rng = np.random.default_rng(0)
    ids = rng.integers(5, 100, (3, 16))
    mask = np.ones((3, 16), np.int64)
    mask[1, 10:] = 0  # padding in one row
    return ids, mask


@pytest.mark.parametrize("kind", ["bert", "distilbert"])
def test_forward_on_the_gpu_matches_the_cpu(kind):
    ids, mask = inputs()
    model = tiny_model(kind).eval()
    with mt.no_grad():
        cpu = model(ids, mask).last_hidden_state.numpy()
        model.to("cuda")
        gpu = model(cupy.asarray(ids), cupy.asarray(mask)).last_hidden_state
    assert isinstance(gpu.data, cupy.ndarray)
    np.testing.assert_allclose(cupy.asnumpy(gpu.data), cpu, atol=1e-4)


@pytest.mark.parametrize("kind", ["bert", "distilbert"])
def test_gradients_on_the_gpu_match_the_cpu(kind):
    ids, mask = inputs()
    grads = {}
    for device in ("cpu", "cuda"):
        model = tiny_model(kind).to(device).train()  # dropout 0: the two runs see the same function
        xp = cupy if device == "cuda" else np
        loss = model(xp.asarray(ids), xp.asarray(mask)).last_hidden_state.sum()
        loss.backward()
        grads[device] = {n: mt.backend.to_numpy(p.grad.data) for n, p in model.named_parameters() if p.grad is not None}
    assert grads["cpu"].keys() == grads["cuda"].keys()
    for name, g in grads["cpu"].items():
        np.testing.assert_allclose(grads["cuda"][name], g, rtol=1e-3, atol=1e-5, err_msg=name)


@pytest.mark.parametrize("kind", ["bert", "distilbert"])
def test_dropout_on_the_gpu_drops_what_the_cpu_drops(kind):
    ids, mask = inputs()
    hidden = {}
    for device in ("cpu", "cuda"):
        model = tiny_model(kind, dropout=0.2).to(device).train()
        xp = cupy if device == "cuda" else np
        mt.manual_seed(7)  # the same seeds, drawn in the same order: the same masks
        hidden[device] = mt.backend.to_numpy(model(xp.asarray(ids), xp.asarray(mask)).last_hidden_state.data)
    np.testing.assert_allclose(hidden["cuda"], hidden["cpu"], atol=1e-4)


def test_fused_block_ops_run_their_cuda_kernels_on_cupy():
    rng = np.random.default_rng(1)
    y, residual = rng.standard_normal((2, 5, 8), np.float32), rng.standard_normal((2, 5, 8), np.float32)
    bias, weight, ln_bias = (rng.standard_normal(8, np.float32) for _ in range(3))
    cpu = ops.bias_dropout_residual_layer_norm(y, bias, residual, weight, ln_bias, 1e-12, 0.1, False).numpy()
    arrays = [Tensor(cupy.asarray(a), requires_grad=True) for a in (y, bias, residual, weight, ln_bias)]
    gpu = ops.bias_dropout_residual_layer_norm(*arrays, 1e-12, 0.1, False)
    assert type(gpu.creator) is CudaBiasDropoutResidualLayerNorm
    np.testing.assert_allclose(cupy.asnumpy(gpu.data), cpu, atol=1e-5)
    cpu_gelu = ops.bias_gelu(y, bias).numpy()
    gpu_gelu = ops.bias_gelu(arrays[0], arrays[1])
    assert type(gpu_gelu.creator) is CudaBiasGELU
    np.testing.assert_allclose(cupy.asnumpy(gpu_gelu.data), cpu_gelu, atol=1e-5)


def test_adamw_step_on_the_gpu_matches_the_cpu():
    rng = np.random.default_rng(2)
    start, grad = rng.standard_normal((7, 5), np.float32), rng.standard_normal((7, 5), np.float32)
    results = []
    for xp in (np, cupy):
        p = mt.nn.Parameter(xp.asarray(start.copy()))
        p.grad = Tensor(xp.asarray(grad))
        optimizer = AdamW([p], lr=1e-2, weight_decay=0.01)
        for _ in range(3):
            optimizer.step()
        results.append(mt.backend.to_numpy(p.data))
    np.testing.assert_allclose(results[1], results[0], rtol=1e-5, atol=1e-7)
