"""AdamW's update of one parameter in place, as array operations on NumPy or CuPy: the reference of adamw_cpu.py
(same interface), and what CuPy parameters run.

    p *= 1 - lr * wd
    m  = m + (1 - beta1) * (g - m)            (torch's lerp)
    v  = beta2 * v + (1 - beta2) * g * g
    p -= lr / (1 - beta1**t) * m / (sqrt(v) / sqrt(1 - beta2**t) + eps)

Each line is an array operation in place or through one scratch array of p's shape (~12 passes over the
parameter; ~14 P FLOPs for P elements).
"""
from __future__ import annotations

from minitransfer.backend import get_array_module


def adamw_update(param, grad, exp_avg, exp_avg_sq, step: int, lr: float, beta1: float, beta2: float, eps: float,
                 weight_decay: float) -> None:
    """One AdamW step in place on param, exp_avg and exp_avg_sq (one shape); step is the 1-based step count after
    this update, for the bias corrections."""
    xp = get_array_module(param)
    m, v, tmp = exp_avg, exp_avg_sq, xp.empty_like(param)
    if weight_decay != 0.0:
        xp.multiply(param, 1.0 - lr * weight_decay, out=param)
    xp.subtract(grad, m, out=tmp)  # m.lerp_(g, 1 - beta1) = m + (1 - beta1) * (g - m)
    tmp *= 1.0 - beta1
    m += tmp
    xp.multiply(grad, 1.0 - beta2, out=tmp)  # v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
    tmp *= grad
    v *= beta2
    v += tmp
    xp.sqrt(v, out=tmp)  # denom = sqrt(v) / sqrt(1 - beta2**t) + eps
    tmp /= (1.0 - beta2 ** step) ** 0.5
    tmp += eps
    xp.divide(m, tmp, out=tmp)
    tmp *= -lr / (1.0 - beta1 ** step)
    param += tmp
