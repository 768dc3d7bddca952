"""AdamW on the GPU (numba-cuda): one kernel, a multi-tensor apply over flat buffers, launched per parameter.

    m = m + (1 - beta1) * (g - m)                 (torch's lerp)           g = grad * grad_scale
    v = beta2 * v + (1 - beta2) * g * g
    p = p * (1 - lr * wd) - step_size * m / (sqrt(v) / sqrt(1 - beta2**t) + eps),  step_size = lr / (1 - beta1**t)

as adamw_reference.py (the reference) and adamw_cpu.py (decoupled weight decay, bias-corrected). numba kernels
take arrays, not tables of pointers, so a launch over several tensors needs them in one flat buffer each (the
tensors views of it, as apex's and Megatron's contiguous buffers): `multi_tensor_layout` cuts the buffers
into chunks of one tensor each, and block b updates chunk b with tensor chunks[b, 0]'s scalars, a row of the
(tensors, 4) table from `adamw_scalars` (per tensor: its group's lr and weight decay and its own step count;
rebuilt on the host when they change, a few KB). grad_scale: a (1,) device array multiplied into every gradient
as it is read (grad_norm_cuda's clip_coef, or 1 / loss scale), or None.
optim.AdamW keeps each parameter and its moments as arrays of their own (its state_dict, freezing and
param groups work on them), so ops CudaAdamWUpdate calls `adamw_update`: the same kernel over one tensor, one
launch per parameter (~100-200 for BERT; packing copies of p, g, m and v into flat buffers each step would cost
more passes than the launches do). A flat-buffer optimizer could use `adamw_multi_tensor` as it is.
fp32 arithmetic; parameters and moments float32, gradients float32 or float16.
FLOPs/bytes per element: ~15 FLOPs and a sqrt; reads p, g, m, v and writes p, m, v: 28 bytes in fp32.
BERT-base's 110 M parameters: 3.1 GB, ~0.7 ms at 4.5 TB/s.
"""
from __future__ import annotations

import math

import numpy as np
from numba import cuda, float32

from .arrays_cuda import THREADS, from_host, stream

CHUNK = 8 * THREADS  # elements per block: 8 per thread


@cuda.jit
def _update(param, grad, exp_avg, exp_avg_sq, chunks, scalars, beta2, one_minus_beta1, one_minus_beta2, eps,
            grad_scale):
    chunk = cuda.blockIdx.x
    tensor, start, end = chunks[chunk, 0], chunks[chunk, 1], chunks[chunk, 2]
    decay, step_size, bias2_sqrt, active = (scalars[tensor, 0], scalars[tensor, 1], scalars[tensor, 2],
                                            scalars[tensor, 3])
    if active == 0:  # a parameter without a gradient this step: untouched, as AdamW.step skips it
        return
    scale = float32(1.0) if grad_scale is None else float32(grad_scale[0])
    for i in range(start + cuda.threadIdx.x, end, cuda.blockDim.x):
        g = float32(grad[i]) * scale
        m = exp_avg[i]
        m += one_minus_beta1 * (g - m)
        v = beta2 * exp_avg_sq[i] + one_minus_beta2 * g * g
        exp_avg[i] = m
        exp_avg_sq[i] = v
        param[i] = param[i] * decay - step_size * m / (float32(math.sqrt(v)) / bias2_sqrt + eps)


def multi_tensor_layout(sizes) -> tuple[np.ndarray, np.ndarray]:
    """(offsets (T + 1,) int64, chunks (blocks, 3) int64 rows of (tensor, start, end)) for tensors of `sizes`
    laid end to end in one flat buffer; built once per model on the host, the chunks then copied to the device."""
    offsets = np.concatenate([[0], np.cumsum(np.asarray(sizes, dtype=np.int64))])
    chunks = [(t, start, min(start + CHUNK, offsets[t + 1]))
              for t in range(len(sizes)) for start in range(offsets[t], offsets[t + 1], CHUNK)]
    return offsets, np.array(chunks, dtype=np.int64).reshape(-1, 3)


def adamw_scalars(lrs, weight_decays, steps, beta1: float, beta2: float, active=None) -> np.ndarray:
    """(T, 4) float32 rows of (1 - lr * wd, lr / (1 - beta1**t), sqrt(1 - beta2**t), active) per tensor; steps:
    each tensor's 1-based step count after this update; active: 0 for tensors to leave untouched (default all 1)."""
    lr, wd, t = (np.asarray(a, dtype=np.float64) for a in (lrs, weight_decays, steps))
    on = np.ones_like(t) if active is None else np.asarray(active, dtype=np.float64)
    return np.stack([1.0 - lr * wd, lr / (1.0 - beta1 ** t), np.sqrt(1.0 - beta2 ** t), on], axis=1).astype(np.float32)


def adamw_multi_tensor(param, grad, exp_avg, exp_avg_sq, chunks, scalars, beta1: float, beta2: float, eps: float,
                       grad_scale=None) -> None:
    """One AdamW step in place on the flat buffers param, exp_avg, exp_avg_sq (N,) float32 from grad (N,);
    chunks from multi_tensor_layout, scalars from adamw_scalars, both on the device."""
    # 1 - beta in float64 first: in float32, 1 - 0.999 would be off by 5e-5 relative
    _update[chunks.shape[0], THREADS, stream(param)](param, grad, exp_avg, exp_avg_sq, chunks, scalars,
                                                      *np.float32([beta2, 1.0 - beta1, 1.0 - beta2, eps]), grad_scale)


_layouts: dict = {}  # (size, device) -> a one-tensor chunk table where the kernels run, built once per size


def adamw_update(param, grad, exp_avg, exp_avg_sq, step: int, lr: float, beta1: float, beta2: float, eps: float,
                 weight_decay: float) -> None:
    """adamw_reference.adamw_update's interface: one parameter's AdamW step in place, one launch of the kernel over
    it (C-contiguous param, moments float32, grad float32 or float16); step is the 1-based step count."""
    key = (param.size, getattr(getattr(param, "device", None), "id", None))
    if key not in _layouts:
        _layouts[key] = from_host(multi_tensor_layout([param.size])[1], param)
    scalars = from_host(adamw_scalars([lr], [weight_decay], [step], beta1, beta2), param)
    adamw_multi_tensor(param.reshape(-1), grad.reshape(-1), exp_avg.reshape(-1), exp_avg_sq.reshape(-1),
                       _layouts[key], scalars, beta1, beta2, eps)
