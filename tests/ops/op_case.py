"""One op case, checked forward and backward (tinygrad's helper_test_op, chainer's FunctionTestCase).

A Case is a function of Tensors (`fn`), its inputs as arrays, and optionally the same math in torch. Each check
below takes one Case; tests/ops/test_ops.py runs every check over its table of cases, so adding an op is adding
one row there. Every floating input is differentiated; integer and boolean
inputs (ids, targets, masks, cu_seqlens) are passed as constant Tensors, so the layout and in-place checks cover
them too. A random upstream gradient makes every output element count.

Ops that draw a dropout mask give a `seed`: the generator is reseeded before every forward, so each evaluation
draws the same mask and finite differences see one fixed linear map, whose gradient is backward's only if backward
reuses forward's mask.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pytest

from minitransfer import Tensor, manual_seed
from minitransfer.ops import dispatch
from tests.gradcheck import check_gradients

SAME = "same"  # torch_fn=SAME: fn itself runs on torch tensors too (operators, indexing, .sum(axis=...))


@dataclass
class Case:
    name: str
    fn: Callable  # Tensors (one per input) -> Tensor
    inputs: list  # arrays; floating ones are run in float64 (and float32 for the dtype check)
    torch_fn: Callable | str | None = None  # torch tensors (one per input) -> torch tensor, or SAME
    seed: int | None = None  # reseed before every forward: ops that draw a dropout mask
    kernels: str = "auto"  # the kernel switch while fn runs: "reference" runs the Reference classes
    finite_differences: bool = True  # False where the gradient is not the derivative (padding_idx)
    f32_tol: float | None = 1e-4  # float32 vs float64; None: float32 checks the dtype only (masks drawn by dtype)
    xfail: dict = field(default_factory=dict)  # check name -> reason, for a known library bug

    @property
    def differentiated(self) -> tuple:
        """Indices of the inputs that get a gradient: the floating ones."""
        return tuple(i for i, a in enumerate(self.inputs) if np.asarray(a).dtype.kind == "f")


def params(cases, check: str, when: Callable = lambda case: True) -> list:
    """pytest params for `check` over the cases it applies to, each id'd by name, xfailed where a bug is known."""
    return [pytest.param(c, id=c.name, marks=[pytest.mark.xfail(strict=True, reason=c.xfail[check])]
                         if check in c.xfail else []) for c in cases if when(c)]


def _arrays(case: Case, dtype=np.float64) -> list:
    """Fresh copies of the inputs, floating ones in `dtype`."""
    return [np.array(a, dtype=dtype) if np.asarray(a).dtype.kind == "f" else np.array(a) for a in case.inputs]


def _upstream(shape, dtype=np.float64) -> np.ndarray:
    return np.asarray(np.random.default_rng(0).standard_normal(shape), dtype=dtype)


def _forward(case: Case, fn: Callable, args):
    with dispatch.kernels(case.kernels):
        if case.seed is not None:
            manual_seed(case.seed)
        return fn(*args)


def _run(case: Case, arrays, upstream=None) -> tuple:
    """(output, gradients of the differentiated inputs, upstream used), all NumPy; inputs are not copied."""
    tensors = [Tensor(a, requires_grad=i in case.differentiated) for i, a in enumerate(arrays)]
    out = _forward(case, case.fn, tensors)
    upstream = _upstream(out.shape, out.dtype) if upstream is None else upstream
    out.backward(upstream)
    return out.numpy(), [tensors[i].grad.numpy() for i in case.differentiated], upstream


def check_finite_differences(case: Case) -> None:
    """Every differentiated input's gradient equals central finite differences, in float64."""
    check_gradients(lambda *ts: _forward(case, case.fn, ts), _arrays(case), wrt=list(case.differentiated))


def check_torch(case: Case) -> None:
    """Output and gradients equal torch's for the same math, in float64 (skipped where torch is not installed)."""
    torch = pytest.importorskip("torch")
    arrays = _arrays(case)
    out, grads, upstream = _run(case, [a.copy() for a in arrays])
    tensors = [torch.tensor(a, requires_grad=i in case.differentiated) for i, a in enumerate(arrays)]
    t_out = _forward(case, case.fn if case.torch_fn == SAME else case.torch_fn, tensors)
    t_out.backward(torch.from_numpy(upstream))
    np.testing.assert_allclose(out, t_out.detach().numpy(), rtol=1e-9, atol=1e-10, err_msg="output")
    for i, g in zip(case.differentiated, grads):
        np.testing.assert_allclose(g, tensors[i].grad.numpy(), rtol=1e-9, atol=1e-10, err_msg=f"gradient of input {i}")


def _transposed(a: np.ndarray) -> np.ndarray:
    """The same values in Fortran order (a transposed view of a C-ordered array), or as a strided view where
    Fortran order is C order too (1-D, or one non-unit axis)."""
    fortran = np.asfortranarray(a)
    return _strided(a) if fortran.flags.c_contiguous else fortran


def _strided(a: np.ndarray) -> np.ndarray:
    """The same values as every second element of a twice-as-wide array: a view with a gap between elements."""
    if a.ndim == 0:
        return a
    wide = np.repeat(a, 2, axis=-1)
    return wide[..., ::2]


def check_layouts(case: Case) -> None:
    """Transposed and strided views of the same values (inputs and upstream gradient) give the same output and
    gradients as C-ordered arrays."""
    out, grads, upstream = _run(case, _arrays(case))
    for layout in (_transposed, _strided):
        views = [layout(a) for a in _arrays(case)]
        assert not any(v.flags.c_contiguous for v in views if v.size > 1 and v.ndim), layout.__name__
        v_out, v_grads, _ = _run(case, views, layout(upstream.copy()))
        np.testing.assert_allclose(v_out, out, rtol=1e-12, atol=1e-12, err_msg=f"{layout.__name__} output")
        for i, g, want in zip(case.differentiated, v_grads, grads):
            np.testing.assert_allclose(g, want, rtol=1e-12, atol=1e-12, err_msg=f"{layout.__name__} gradient {i}")


def check_c_ordered_gradients(case: Case) -> None:
    """C-ordered inputs get C-ordered gradients, in float64 and float32, whichever internal layout backward chose
    (optimizers' kernels take flat views of them and fall back to slower code otherwise)."""
    for dtype in (np.float64, np.float32):
        _, grads, _ = _run(case, _arrays(case, dtype))
        for i, g in zip(case.differentiated, grads):
            assert g.flags.c_contiguous, f"{dtype.__name__} gradient of input {i} is not C-ordered ({g.strides})"


def check_no_input_modified(case: Case) -> None:
    """Forward and backward leave the inputs and the upstream gradient as they were; and nothing backward reads
    aliases a gradient it returned: after overwriting the first gradients in place (as optimizers do), a second
    backward over the retained graph gives them again, with output and inputs untouched."""
    arrays = _arrays(case)
    before = [a.copy() for a in arrays]
    tensors = [Tensor(a, requires_grad=i in case.differentiated) for i, a in enumerate(arrays)]
    out = _forward(case, case.fn, tensors)
    out_before = out.numpy().copy()
    _assert_unchanged(arrays, before, "forward")
    upstream = _upstream(out.shape)
    upstream_before = upstream.copy()
    out.backward(upstream, retain_graph=True)
    _assert_unchanged(arrays, before, "backward")
    np.testing.assert_array_equal(upstream, upstream_before, err_msg="backward wrote into the upstream gradient")
    grads = [tensors[i].grad.numpy().copy() for i in case.differentiated]
    for i in case.differentiated:
        tensors[i].grad.data[...] = np.nan
    _assert_unchanged(arrays, before, "overwriting a gradient")
    np.testing.assert_array_equal(out.numpy(), out_before, err_msg="overwriting a gradient changed the output")
    for i in case.differentiated:
        tensors[i].grad = None
    out.backward(upstream)
    for i, g in zip(case.differentiated, grads):
        np.testing.assert_array_equal(tensors[i].grad.numpy(), g, err_msg=f"second backward, gradient of input {i}")


def _assert_unchanged(arrays, before, when: str) -> None:
    for i, (a, b) in enumerate(zip(arrays, before)):
        np.testing.assert_array_equal(a, b, err_msg=f"{when} modified input {i} in place")


def check_float32(case: Case) -> None:
    """float32 inputs give a float32 output and gradients, close to float64 on the same (float32) values."""
    arrays32 = _arrays(case, np.float32)
    out, grads, upstream = _run(case, arrays32)
    assert out.dtype == np.float32, f"output is {out.dtype}"
    assert all(g.dtype == np.float32 for g in grads), [g.dtype for g in grads]
    if case.f32_tol is None:
        return
    out64, grads64, _ = _run(case, [a.astype(np.float64) if a.dtype.kind == "f" else a for a in arrays32],
                             upstream.astype(np.float64))
    tol = case.f32_tol
    np.testing.assert_allclose(out, out64, rtol=tol, atol=tol, err_msg="output")
    for i, g, want in zip(case.differentiated, grads, grads64):
        np.testing.assert_allclose(g, want, rtol=tol, atol=tol, err_msg=f"gradient of input {i}")
