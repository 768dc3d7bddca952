"""A whole training step of a tiny BERT through the Cuda classes, under the CUDA simulator, against the CPU path.

Without a GPU no CuPy array exists, so here the dispatch is told that NumPy float32 arrays are the CUDA kernels'
(each ops module's `cupy_float`) and the CPU kernels take none (every Fused class's `supports`): the model then
runs every Cuda class on NumPy arrays in the simulator, inside the real model code (strided q/k/v views, the key
mask, packed and padded attention, seeds drawn in the model's order). Forward, backward, clipping and an AdamW step
must match the default CPU path, dropout included (one RNG, kernels/dropout_rng.py). On a GPU,
test_cuda_path.py does the same with CuPy.
"""
import importlib

import numpy as np
import pytest

pytest.importorskip("numba_cuda")

from numba import config  # noqa: E402

import minitransfer as mt  # noqa: E402
from minitransfer import ops  # noqa: E402
from minitransfer.ops.dispatch import numpy_float  # noqa: E402
from minitransfer.optim import AdamW, clip_grad_norm_  # noqa: E402

pytestmark = pytest.mark.skipif(not config.ENABLE_CUDASIM, reason="on a GPU, test_cuda_path.py runs this with CuPy")
MODULES = ["ops.activations", "ops.attention", "ops.dropout", "ops.losses", "ops.normalization",
           "ops.varlen_attention", "optim.adamw", "optim.clipping"]
CONFIG = {"model_type": "bert", "vocab_size": 50, "hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
          "intermediate_size": 32, "max_position_embeddings": 16, "hidden_dropout_prob": 0.1,
          "attention_probs_dropout_prob": 0.1}


def route_numpy_to_the_cuda_classes(monkeypatch) -> list:
    """Patch the dispatch as described above; returns the list of class names `pick` will choose."""
    chosen = []
    for name in MODULES:
        module = importlib.import_module(f"minitransfer.{name}")
        for attribute in dir(module):
            cls = getattr(module, attribute)
            if isinstance(cls, type) and cls.__name__.startswith("Fused") and cls.__module__ == module.__name__:
                monkeypatch.setattr(cls, "supports", classmethod(lambda cls, *arrays: False))
        if hasattr(module, "cupy_float"):
            monkeypatch.setattr(module, "cupy_float", lambda *a, dtypes=(np.float32, np.float16): numpy_float(*a))
        monkeypatch.setattr(module, "pick", lambda reference, fused, *inputs, _pick=module.pick: _record(
            chosen, _pick(reference, fused, *inputs)))
    return chosen


def _record(chosen: list, cls: type) -> type:
    chosen.append(cls.__name__)
    return cls


def training_step(padding_free: bool):
    """(last hidden state, loss, the gradient norm, every parameter after one clipped AdamW step)."""
    mt.manual_seed(0)
    model = mt.AutoModel.from_config(mt.ModelConfig.from_dict({**CONFIG, "padding_free": padding_free})).train()
    rng = np.random.default_rng(0)
    ids, mask = rng.integers(5, 50, (2, 8)), np.ones((2, 8), np.int64)
    mask[1, 5:] = 0  # one padded row: 5 real tokens
    targets = rng.integers(0, 32, 16)
    targets[::3] = -100
    mt.manual_seed(1)  # the dropout seeds
    hidden = model(ids, mask).last_hidden_state
    loss = ops.cross_entropy(ops.bias_gelu(hidden, hidden[0, 0]).reshape(16, 32), targets)
    loss.backward()
    norm = clip_grad_norm_(model.parameters(), 0.5)
    AdamW(model.parameters(), lr=1e-2, weight_decay=0.01).step()
    return hidden.numpy(), float(loss.data), norm, [p.data.copy() for p in model.parameters()]


@pytest.mark.parametrize("padding_free", [True, False])
def test_a_training_step_through_the_cuda_classes_is_the_cpu_step(monkeypatch, padding_free):
    cpu = training_step(padding_free)
    chosen = route_numpy_to_the_cuda_classes(monkeypatch)
    cuda = training_step(padding_free)
    attention = "CudaVarlenAttention" if padding_free else "CudaAttention"
    assert {attention, "CudaBiasDropoutResidualLayerNorm", "CudaBiasGELU", "CudaLayerNorm", "CudaCrossEntropy",
            "CudaGradNorm", "CudaAdamWUpdate"} <= set(chosen)
    assert not any(name.startswith("Fused") for name in chosen)
    np.testing.assert_allclose(cuda[0], cpu[0], atol=2e-5)
    np.testing.assert_allclose(cuda[1], cpu[1], rtol=1e-5)
    np.testing.assert_allclose(cuda[2], cpu[2], rtol=1e-5)
    for i, (ours, theirs) in enumerate(zip(cuda[3], cpu[3])):
        np.testing.assert_allclose(ours, theirs, atol=1e-5, err_msg=f"parameter {i}")
