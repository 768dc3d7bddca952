"""AdamW's update for one parameter in one pass (numba): read p, g, m, v once, write p, m, v once.

    m = m + (1 - beta1) * (g - m)                 (torch's lerp)
    v = beta2 * v + (1 - beta2) * g * g
    p = p * (1 - lr * wd) - step_size * m / (sqrt(v) / sqrt(1 - beta2**t) + eps),  step_size = lr / (1 - beta1**t)

The NumPy composition in minitransfer/optim/adamw.py (kept as the reference and for CuPy) makes ~12 passes
over each parameter through a scratch buffer; AdamW is memory-bound, so one pass is what counts. Scalars
are float64 and each element is computed in float64 and stored in the parameter's dtype, which rounds once
instead of after every operation (results stay within torch's float32 AdamW to ~1e-7 relative per step).
Two threads (prange): unlike LayerNorm's short rows, one call streams megabytes, enough to split.
"""
from __future__ import annotations

import numpy as np

_kernel = None


def _build():
    global _kernel
    if _kernel is None:
        from minitransfer.kernels.numba_cache import tolerate_cache_failures  # noqa: PLC0415
        from numba import njit, prange  # noqa: PLC0415 (imported on first use)

        @njit(parallel=True, fastmath={"contract"}, error_model="numpy", cache=True)
        def update(p, g, m, v, decay, beta1, beta2, step_size, bias2_sqrt, eps):
            for i in prange(p.shape[0]):
                gi = np.float64(g[i])
                mi = m[i] + (1.0 - beta1) * (gi - m[i])
                vi = beta2 * v[i] + (1.0 - beta2) * gi * gi
                m[i] = mi
                v[i] = vi
                p[i] = p[i] * decay - step_size * mi / (np.sqrt(vi) / bias2_sqrt + eps)

        tolerate_cache_failures(update)  # a failed cache save must not fail the call
        _kernel = update
    return _kernel


def supports(param, grad, exp_avg, exp_avg_sq) -> bool:
    """True when all four are C-contiguous NumPy arrays of one float dtype (flat views then alias them)."""
    arrays = (param, grad, exp_avg, exp_avg_sq)
    return (all(isinstance(a, np.ndarray) and a.flags.c_contiguous for a in arrays)
            and param.dtype in (np.float32, np.float64) and all(a.dtype == param.dtype for a in arrays)
            and param.flags.writeable)


def adamw_update(param: np.ndarray, grad: np.ndarray, exp_avg: np.ndarray, exp_avg_sq: np.ndarray, step: int,
                 lr: float, beta1: float, beta2: float, eps: float, weight_decay: float) -> None:
    """One AdamW step in place on param, exp_avg and exp_avg_sq (same shape and dtype, C-contiguous); step is
    the 1-based step count after this update, for the bias corrections."""
    _build()(param.reshape(-1), grad.reshape(-1), exp_avg.reshape(-1), exp_avg_sq.reshape(-1),
             1.0 - lr * weight_decay, beta1, beta2, lr / (1.0 - beta1 ** step), (1.0 - beta2 ** step) ** 0.5, eps)
