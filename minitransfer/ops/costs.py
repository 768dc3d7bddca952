"""How many FLOPs an op does, forward and backward: the formulas each op class declares as its `cost`.

A Function declares its count as a method `cost(self, inputs, outputs) -> (forward_flops, backward_flops)`
(inputs, outputs: the raw arrays of its forward; `self.needs_input_grad` says which gradients backward computes),
usually one line beside the class: `cost = costs.linear`. The profiler (minitransfer/profiler) reads it; an op
without one counts as unknown. Bytes are not here: the profiler counts every input and output array as read or
written once.

Conventions (model FLOPs, as MFU counts them: what the math needs, not what a kernel recomputes):
- a multiply-add is 2 FLOPs: a GEMM (n, k) @ (k, m) is 2·n·k·m; its backward is one GEMM of the same size per
  input that needs a gradient, so 2x the forward when both do (a frozen weight: 1x);
- attention is its two GEMMs per head, q·kᵀ and p·v: 4·S²·d per (batch, head) padded (padding included: the
  padded path computes it), 4·Σ Lᵢ²·d per head packed (each sequence to itself); backward is dV, dP, dQ, dK
  (2x), without the recomputation of the probabilities that the fused kernels do; softmax is not counted;
- elementwise ops count per element, a transcendental (exp, erf, tanh) as 1 FLOP; their backward counts per
  element per input that needs a gradient; passing a gradient through (Add, Sub) or moving data (reshape,
  gather, scatter, the embedding lookup) is 0 FLOPs, known, not unknown.
"""
from __future__ import annotations

import numpy as np


def _needs(fn, i: int) -> int:
    needs = fn.needs_input_grad
    return int(i < len(needs) and needs[i])


def _gemm_size(rows: int, k: int, cols: int) -> int:
    return 2 * rows * k * cols


def linear(fn, inputs, outputs):
    """x (..., in) @ W.T (out, in) [+ b]: 2·rows·in·out (+ rows·out for the bias); backward dX, dW (+ db)."""
    x, weight = inputs[0], inputs[1]
    rows = x.size // x.shape[-1]
    gemm, bias = _gemm_size(rows, weight.shape[1], weight.shape[0]), rows * weight.shape[0]
    has_bias = len(inputs) > 2
    forward = gemm + bias * has_bias
    return forward, gemm * (_needs(fn, 0) + _needs(fn, 1)) + bias * _needs(fn, 2)


def matmul(fn, inputs, outputs):
    """a (..., n, k) @ b (..., k, m): 2·k per output element; backward one GEMM per input needing a gradient."""
    forward = 2 * outputs[0].size * inputs[0].shape[-1]
    return forward, forward * (_needs(fn, 0) + _needs(fn, 1))


def _attention_backward(fn, forward: int) -> int:
    """Each of dV = pᵀ·dO, dP = dO·vᵀ, dQ = dS·k, dK = dSᵀ·q is half the forward's two GEMMs."""
    need_q, need_k, need_v = _needs(fn, 0), _needs(fn, 1), _needs(fn, 2)
    return forward // 2 * (need_v + (need_q or need_k) + need_q + need_k)


def attention(fn, inputs, outputs):
    """Padded q, k, v (batch, heads, S, d): 4·batch·heads·S²·d."""
    batch, heads, seq, head_dim = inputs[0].shape
    forward = 4 * batch * heads * seq * seq * head_dim
    return forward, _attention_backward(fn, forward)


def varlen_attention(fn, inputs, outputs):
    """Packed q, k, v (tokens, heads, d) split by fn.cu_seqlens: 4·heads·d·Σ Lᵢ²."""
    _, heads, head_dim = inputs[0].shape
    lengths = np.diff(np.asarray(fn.cu_seqlens, dtype=np.int64))
    forward = 4 * heads * head_dim * int((lengths * lengths).sum())
    return forward, _attention_backward(fn, forward)


def per_element(forward: int, backward: int, reduction: bool = False):
    """`forward` FLOPs per output element (per input element for a reduction), `backward` per element per input
    that needs a gradient."""

    def cost(fn, inputs, outputs):
        n = inputs[0].size if reduction else outputs[0].size
        return forward * n, backward * n * sum(_needs(fn, i) for i in range(len(inputs)))

    return cost


def layer_norm(fn, inputs, outputs):
    """x (..., h): forward 7/element (mean, centre, square-accumulate 2, ×rstd, ×weight, +bias); backward dX
    8/element (×weight, two row means 3, two subtractions, ×x̂, ×rstd), dWeight 2, dBias 1."""
    n = inputs[0].size
    return 7 * n, n * (8 * _needs(fn, 0) + 2 * _needs(fn, 1) + _needs(fn, 2))


def residual_layer_norm(fn, inputs, outputs):
    """layer_norm(dropout(y + bias) + residual): inputs y, bias, residual, weight, ln_bias. Forward 10/element
    (bias add, dropout scale, residual add, LayerNorm's 7); backward LayerNorm's dX 8 and the dropout scale 1
    whenever y, bias or residual need one, the bias sum 1, dWeight 2, dLnBias 1."""
    n = inputs[0].size
    through = _needs(fn, 0) or _needs(fn, 1) or _needs(fn, 2)
    return 10 * n, n * (9 * through + _needs(fn, 1) + 2 * _needs(fn, 3) + _needs(fn, 4))


def bias_gelu(fn, inputs, outputs):
    """gelu(y + bias): GELU's 5 + the bias add per element; backward GELU's 11 per element, + the bias sum."""
    n = inputs[0].size
    return 6 * n, n * (11 * (_needs(fn, 0) or _needs(fn, 1)) + _needs(fn, 1))


def cross_entropy(fn, inputs, outputs):
    """logits (N, C): the log-softmax's 5 per element; backward exp and scale, 2 per element."""
    n = inputs[0].size
    return 5 * n, 2 * n * _needs(fn, 0)


def embedding(fn, inputs, outputs):
    """A gather (0 FLOPs); backward adds each output row into its weight row: 1 per output element."""
    return 0, outputs[0].size * _needs(fn, 0)


def mean(fn, inputs, outputs):
    """The sum (1 per input element) and one division per output element; backward divides the gradient."""
    return inputs[0].size + outputs[0].size, outputs[0].size * _needs(fn, 0)


def data_movement(fn, inputs, outputs):
    """Reshapes, views, gathers and scatters: no arithmetic (known: 0, not unknown)."""
    return 0, 0


# Softmax: max, subtract, exp, sum, divide; backward gy·y, row sum, subtract, ×y. LogSoftmax alike.
softmax = per_element(5, 4)
# GELU = x·Φ(x) with the erf form: x/√2, erf, +1, ×0.5, ×x; backward Φ(x) (4) + x·φ(x) (6) and ×gradient.
gelu = per_element(5, 11)
