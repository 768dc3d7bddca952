"""AdamW's update for one parameter in one pass (numba): read p, g, m, v once, write p, m, v once.

    m = m + (1 - beta1) * (g - m)                 (torch's lerp)
    v = beta2 * v + (1 - beta2) * g * g
    p = p * (1 - lr * wd) - step_size * m / (sqrt(v) / sqrt(1 - beta2**t) + eps),  step_size = lr / (1 - beta1**t)

The reference, adamw_reference.py (same interface; what CuPy runs), makes ~12 passes over each parameter through a
scratch array; AdamW is memory-bound, so one pass is what counts: per call on P elements ~14 P FLOPs and
7 P * itemsize bytes (p, g, m, v read; p, m, v written). Scalars are float64 and each element is computed in
float64 and stored in the parameter's dtype, which rounds once instead of after every operation (results stay
within torch's float32 AdamW to ~1e-7 relative per step). Two threads (prange): unlike LayerNorm's short rows, one
call streams megabytes, enough to split.
"""
from __future__ import annotations

import numba
import numpy as np

from .numba_cache import tolerate_cache_failures


@numba.njit(parallel=True, fastmath={"contract"}, error_model="numpy", cache=True)
def adamw_flat(p, g, m, v, decay, beta1, beta2, step_size, bias2_sqrt, eps):
    for i in numba.prange(p.shape[0]):
        gi = np.float64(g[i])
        mi = m[i] + (1.0 - beta1) * (gi - m[i])
        vi = beta2 * v[i] + (1.0 - beta2) * gi * gi
        m[i] = mi
        v[i] = vi
        p[i] = p[i] * decay - step_size * mi / (np.sqrt(vi) / bias2_sqrt + eps)


tolerate_cache_failures(adamw_flat)  # a failed cache save must not fail the call


def adamw_update(param: np.ndarray, grad: np.ndarray, exp_avg: np.ndarray, exp_avg_sq: np.ndarray, step: int,
                 lr: float, beta1: float, beta2: float, eps: float, weight_decay: float) -> None:
    """One AdamW step in place on param, exp_avg and exp_avg_sq (same shape and dtype, C-contiguous); step is
    the 1-based step count after this update, for the bias corrections."""
    adamw_flat(param.reshape(-1), grad.reshape(-1), exp_avg.reshape(-1), exp_avg_sq.reshape(-1),
               1.0 - lr * weight_decay, beta1, beta2, lr / (1.0 - beta1 ** step), (1.0 - beta2 ** step) ** 0.5, eps)
