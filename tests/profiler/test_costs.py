"""FLOP counts equal the analytic formulas: Linear, attention (padded and packed, both implementations), a GEMM's
backward, and a whole tiny BERT forward."""
import numpy as np
import pytest

import minitransfer as mt
from minitransfer import ops
from minitransfer.autograd import Tensor
from minitransfer.ops.attention import FusedAttention, ReferenceAttention
from minitransfer.ops.varlen_attention import FusedVarlenAttention, ReferenceVarlenAttention
from minitransfer.profiler import op_flops
from tests.profiler.conftest import IDS, MASK, SIZES, tiny_classifier


def _tensor(*shape, requires_grad=True):
    return Tensor(np.random.default_rng(0).standard_normal(shape).astype(np.float32), requires_grad=requires_grad)


def _flops(prof, name, phase):
    return sum(r.flops for r in prof.records if r.name == name and r.phase == phase)


@pytest.mark.parametrize("weight_trainable", [True, False])
def test_linear_forward_and_backward(weight_trainable):
    rows, n_in, n_out = 4 * 5, 8, 6
    x, w, b = _tensor(4, 5, n_in), _tensor(n_out, n_in, requires_grad=weight_trainable), _tensor(n_out)
    with mt.profile() as prof:
        ops.linear(x, w, b).sum().backward()
    gemm = 2 * rows * n_in * n_out
    assert _flops(prof, "Linear", "forward") == gemm + rows * n_out
    # backward: dX and (if W trains) dW, one GEMM each, and db's row sum
    assert _flops(prof, "Linear", "backward") == gemm * (1 + weight_trainable) + rows * n_out


def test_matmul_backward_is_twice_the_forward():
    a, b = _tensor(3, 4, 5), _tensor(3, 5, 2)
    with mt.profile() as prof:
        (a @ b).sum().backward()
    assert _flops(prof, "MatMul", "forward") == 2 * 3 * 4 * 5 * 2
    assert _flops(prof, "MatMul", "backward") == 2 * _flops(prof, "MatMul", "forward")


@pytest.mark.parametrize("attention", [ReferenceAttention, FusedAttention])
def test_padded_attention(attention):
    batch, heads, seq, head_dim = 2, 3, 5, 4
    q, k, v = (_tensor(batch, heads, seq, head_dim) for _ in range(3))
    mask = np.array([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
    with mt.profile() as prof:
        attention(mask, 0.0)(q, k, v).sum().backward()
    forward = 4 * batch * heads * seq * seq * head_dim  # q·kᵀ and p·v, padding included
    assert _flops(prof, attention.__name__, "forward") == forward
    assert _flops(prof, attention.__name__, "backward") == 2 * forward  # dV, dP, dQ, dK


@pytest.mark.parametrize("attention", [ReferenceVarlenAttention, FusedVarlenAttention])
def test_packed_attention(attention):
    heads, head_dim, cu_seqlens = 3, 4, np.array([0, 3, 7])
    q, k, v = (_tensor(7, heads, head_dim) for _ in range(3))
    with mt.profile() as prof:
        attention(cu_seqlens, 0.0)(q, k, v).sum().backward()
    forward = 4 * heads * head_dim * (3**2 + 4**2)  # each sequence attends to itself: Σ Lᵢ²
    assert _flops(prof, attention.__name__, "forward") == forward
    assert _flops(prof, attention.__name__, "backward") == 2 * forward


def test_frozen_query_and_key_skip_their_attention_gradients():
    q, k, v = _tensor(7, 2, 4, requires_grad=False), _tensor(7, 2, 4, requires_grad=False), _tensor(7, 2, 4)
    with mt.profile() as prof:
        ReferenceVarlenAttention(np.array([0, 3, 7]), 0.0)(q, k, v).sum().backward()
    forward = 4 * 2 * 4 * (9 + 16)
    assert _flops(prof, "ReferenceVarlenAttention", "backward") == forward // 2  # dV only


def test_whole_tiny_bert_forward():
    model = tiny_classifier().bert  # BertModel with its pooler
    model.eval()
    with mt.no_grad(), mt.profile() as prof:
        model(input_ids=IDS, attention_mask=MASK)
    assert all(r.flops is not None for r in prof.records), [r.name for r in prof.records if r.flops is None]
    tokens, batch, hidden, inner, layers = 10, 2, SIZES["hidden_size"], SIZES["intermediate_size"], 2
    sum_squares = 6**2 + 4**2
    embeddings = 2 * tokens * hidden + 7 * tokens * hidden  # word + position + type (two adds), LayerNorm
    layer = (3 * (2 * tokens * hidden * hidden + tokens * hidden)  # q, k, v projections with their biases
             + 4 * hidden * sum_squares  # attention, heads x head_dim = hidden
             + 2 * tokens * hidden * hidden + 10 * tokens * hidden  # output dense, bias+dropout+residual+LayerNorm
             + 2 * tokens * hidden * inner + 6 * tokens * inner  # intermediate dense, bias+GELU
             + 2 * tokens * inner * hidden + 10 * tokens * hidden)  # output dense, bias+dropout+residual+LayerNorm
    pooler = 2 * batch * hidden * hidden + batch * hidden + batch * hidden  # dense with bias, tanh
    assert prof.totals()["flops"] == embeddings + layers * layer + pooler


def test_an_op_declares_its_own_cost():
    class Double(mt.autograd.Function):
        def forward(self, x):
            return 2 * x

        def cost(self, inputs, outputs):
            return outputs[0].size, 0

    assert op_flops(Double(), (np.ones(3),), (np.ones(3),)) == (3, 0)
    assert op_flops(type("Unknown", (mt.autograd.Function,), {})(), (), ()) == (None, None)  # counted as unknown
    from minitransfer.ops.activations import FusedGELU, Softmax
    from minitransfer.ops.arithmetic import Linear, MatMul
    from minitransfer.ops.embedding import Embedding
    from minitransfer.ops.losses import CrossEntropy
    from minitransfer.ops.normalization import FusedLayerNorm

    for op in (Linear, MatMul, FusedLayerNorm, FusedGELU, Softmax, Embedding, CrossEntropy):
        assert callable(op.cost), op  # declared by the class (a Fused class inherits its Reference's)
