"""AdamW + schedule + clipping against torch.optim.AdamW and transformers' schedules, step by step.

Tolerance: both sides do the same operations in the same order; what is left is rounding (torch rounds
to float32 after each operation, our fused kernel once per element from float64; torch's lerp/addcdiv may
fuse a multiply-add), a few ulp after 10 steps, so rtol=1e-6 with atol=1e-7 for entries near zero.
"""
import pickle

import numpy as np
import pytest

from minitransfer.autograd import Tensor
from minitransfer.errors import CheckpointError, ConfigError
from minitransfer.nn import Parameter
from minitransfer.ops import dispatch
from minitransfer.optim import (
    AdamW,
    clip_grad_norm_,
    get_cosine_schedule_with_warmup,
    get_linear_schedule_with_warmup,
)

SHAPES = {"weight": (6, 5), "bias": (5,), "other": (4,), "sometimes": (3, 2), "frozen": (7,)}
STEPS, WARMUP, LR, WD = 10, 3, 1e-2, 0.1


def make_arrays(seed=0):
    rng = np.random.default_rng(seed)
    return {k: rng.standard_normal(s).astype(np.float32) for k, s in SHAPES.items()}


def make_params(arrays):
    params = {k: Parameter(a.copy()) for k, a in arrays.items()}
    params["frozen"].requires_grad = False
    return params


def make_optimizer(params, schedule):
    groups = [{"params": [params["weight"], params["other"], params["sometimes"], params["frozen"]]},
              {"params": [params["bias"]], "weight_decay": 0.0}]
    optimizer = AdamW(groups, lr=LR, betas=(0.9, 0.98), eps=1e-6, weight_decay=WD)
    return optimizer, schedule(optimizer, num_warmup_steps=WARMUP, num_training_steps=STEPS)


def step_grads(step, seed=1):
    """Random gradients for one step; 'sometimes' gets none on odd steps (its step count falls behind)."""
    rng = np.random.default_rng([seed, step])
    grads = {k: rng.standard_normal(s).astype(np.float32) for k, s in SHAPES.items() if k != "frozen"}
    if step % 2:
        del grads["sometimes"]
    return grads


def run_ours(params, optimizer, schedule, steps, max_norm=1.0):
    lrs, norms = [], []
    for step in steps:
        optimizer.zero_grad()
        for k, g in step_grads(step).items():
            params[k].grad = Tensor(g.copy())
        norms.append(clip_grad_norm_(params.values(), max_norm))
        lrs.append(schedule.get_last_lr())
        optimizer.step()
        schedule.step()
    return lrs, norms


@pytest.mark.parametrize("kind", ["linear", "cosine"])
def test_matches_torch_adamw_with_transformers_schedule_and_clipping(kind):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    ours_schedule = {"linear": get_linear_schedule_with_warmup, "cosine": get_cosine_schedule_with_warmup}[kind]
    theirs_schedule = {"linear": transformers.get_linear_schedule_with_warmup,
                       "cosine": transformers.get_cosine_schedule_with_warmup}[kind]
    arrays = make_arrays()

    params = make_params(arrays)
    optimizer, schedule = make_optimizer(params, ours_schedule)
    lrs, norms = run_ours(params, optimizer, schedule, range(STEPS))

    tparams = {k: torch.nn.Parameter(torch.from_numpy(a.copy())) for k, a in arrays.items()}
    tparams["frozen"].requires_grad_(False)
    topt = torch.optim.AdamW(
        [{"params": [tparams["weight"], tparams["other"], tparams["sometimes"], tparams["frozen"]]},
         {"params": [tparams["bias"]], "weight_decay": 0.0}],
        lr=LR, betas=(0.9, 0.98), eps=1e-6, weight_decay=WD, foreach=False)
    tsched = theirs_schedule(topt, num_warmup_steps=WARMUP, num_training_steps=STEPS)
    tlrs, tnorms = [], []
    for step in range(STEPS):
        topt.zero_grad(set_to_none=True)
        for k, g in step_grads(step).items():
            tparams[k].grad = torch.from_numpy(g.copy())
        tnorms.append(float(torch.nn.utils.clip_grad_norm_(list(tparams.values()), 1.0)))
        tlrs.append(tsched.get_last_lr())
        topt.step()
        tsched.step()

    np.testing.assert_allclose(lrs, tlrs, rtol=1e-12)
    assert lrs[0] == [0.0, 0.0] and max(max(lr) for lr in lrs) == pytest.approx(LR)
    np.testing.assert_allclose(norms, tnorms, rtol=1e-6)
    assert max(norms) > 1.0, "clipping must actually engage in this test"
    for k in SHAPES:
        np.testing.assert_allclose(params[k].data, tparams[k].detach().numpy(), rtol=1e-6, atol=1e-7, err_msg=k)
        if k != "frozen":
            assert np.abs(params[k].data - arrays[k]).max() > 1e-3, f"{k} should have moved"
    np.testing.assert_array_equal(params["frozen"].data, arrays["frozen"])
    assert optimizer.state[id(params["sometimes"])]["step"] == STEPS // 2


@pytest.mark.parametrize("via", ["npz", "pickle"])
def test_state_dict_round_trip_resumes_exactly(tmp_path, via):
    arrays = make_arrays()
    params = make_params(arrays)
    optimizer, schedule = make_optimizer(params, get_linear_schedule_with_warmup)
    run_ours(params, optimizer, schedule, range(5))

    opt_state, sched_state = optimizer.state_dict(), schedule.state_dict()
    if via == "npz":
        np.savez(tmp_path / "opt.npz", **opt_state)
        np.savez(tmp_path / "sched.npz", **sched_state)
        opt_state = np.load(tmp_path / "opt.npz", allow_pickle=False)
        sched_state = np.load(tmp_path / "sched.npz", allow_pickle=False)
    else:
        opt_state, sched_state = pickle.loads(pickle.dumps((opt_state, sched_state)))

    resumed_params = make_params({k: p.data for k, p in params.items()})
    # A fresh optimizer built as at the start of training (lr=LR), then restored.
    resumed_opt, resumed_sched = make_optimizer(resumed_params, get_linear_schedule_with_warmup)
    resumed_opt.load_state_dict(opt_state)
    resumed_sched.load_state_dict(sched_state)
    assert resumed_sched.get_last_lr() == schedule.get_last_lr()

    lrs, _ = run_ours(params, optimizer, schedule, range(5, 10))
    resumed_lrs, _ = run_ours(resumed_params, resumed_opt, resumed_sched, range(5, 10))
    assert lrs == resumed_lrs
    for k in SHAPES:
        np.testing.assert_array_equal(resumed_params[k].data, params[k].data, err_msg=k)


def test_load_state_dict_rejects_a_different_model():
    params = make_params(make_arrays())
    optimizer, schedule = make_optimizer(params, get_linear_schedule_with_warmup)
    run_ours(params, optimizer, schedule, range(2))
    other = AdamW([Parameter(np.zeros(3, np.float32))])
    with pytest.raises(CheckpointError, match="param groups"):
        other.load_state_dict(optimizer.state_dict())
    reshaped = make_params({k: np.zeros(np.prod(s) + 1, np.float32) for k, s in SHAPES.items()})
    fresh, _ = make_optimizer(reshaped, get_linear_schedule_with_warmup)
    with pytest.raises(CheckpointError, match="shape"):
        fresh.load_state_dict(optimizer.state_dict())


def test_frozen_parameters_get_no_state_and_stay_untouched():
    rng = np.random.default_rng(0)
    trainable = Parameter(rng.standard_normal((4, 3)).astype(np.float32))
    frozen = Parameter(rng.standard_normal((5,)).astype(np.float32), requires_grad=False)
    no_grad_yet = Parameter(rng.standard_normal((2,)).astype(np.float32))
    before = frozen.data.copy()
    optimizer = AdamW([trainable, frozen, no_grad_yet], lr=0.1, weight_decay=0.5)
    for _ in range(3):
        trainable.grad = Tensor(rng.standard_normal((4, 3)).astype(np.float32))
        frozen.grad = Tensor(np.ones(5, np.float32))  # even a stray gradient must not move a frozen parameter
        optimizer.step()
    assert set(optimizer.state) == {id(trainable)}
    np.testing.assert_array_equal(frozen.data, before)
    assert [k for k in optimizer.state_dict() if k.startswith("state.")] == \
        ["state.0.step", "state.0.exp_avg", "state.0.exp_avg_sq"]
    optimizer.zero_grad()
    assert trainable.grad is None and frozen.grad is None


def test_step_updates_in_place():
    p = Parameter(np.ones((3, 3), np.float32))
    data = p.data
    optimizer = AdamW([p], lr=0.1, weight_decay=0.1)
    p.grad = Tensor(np.full((3, 3), 0.5, np.float32))
    optimizer.step()
    assert p.data is data
    # First step: m_hat = g, v_hat = g*g, so the Adam step is lr * g / (|g| + eps) = lr (after decay).
    np.testing.assert_allclose(p.data, (1 - 0.1 * 0.1) - 0.1 * 0.5 / (0.5 + 1e-8), rtol=1e-6)


@pytest.mark.parametrize("bad, match", [
    ({"lr": -1.0}, "learning rate"), ({"betas": (0.9, 1.0)}, "betas"), ({"eps": -1e-8}, "eps"),
    ({"weight_decay": -0.1}, "weight_decay"),
])
def test_bad_hyperparameters_are_reported(bad, match):
    with pytest.raises(ConfigError, match=match):
        AdamW([Parameter(np.zeros(2, np.float32))], **bad)


def test_bad_param_lists_are_reported():
    with pytest.raises(ConfigError, match="empty parameter list"):
        AdamW([])
    p = Parameter(np.zeros(2, np.float32))
    with pytest.raises(ConfigError, match="more than one"):
        AdamW([{"params": [p]}, {"params": [p]}])
    with pytest.raises(ConfigError, match="group 1"):
        AdamW([{"params": [p]}, {"params": [], "lr": -1.0}])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fused_kernel_matches_the_array_composition(dtype):
    """kernels/adamw_cpu.py (what NumPy parameters take) against the reference composition CuPy takes, 10 steps."""
    rng = np.random.default_rng(3)
    start = rng.standard_normal((33, 17)).astype(dtype)
    fused, composed = Parameter(start.copy()), Parameter(start.copy())
    opt_fused = AdamW([fused], lr=1e-2, betas=(0.9, 0.98), eps=1e-6, weight_decay=0.1)
    opt_composed = AdamW([composed], lr=1e-2, betas=(0.9, 0.98), eps=1e-6, weight_decay=0.1)
    for _ in range(10):
        g = rng.standard_normal((33, 17)).astype(dtype)
        fused.grad, composed.grad = Tensor(g.copy()), Tensor(g.copy())
        opt_fused.step()
        with dispatch.kernels("reference"):  # the reference path, on NumPy arrays
            opt_composed.step()
    tol = {"rtol": 1e-12, "atol": 1e-14} if dtype == np.float64 else {"rtol": 1e-6, "atol": 1e-7}
    np.testing.assert_allclose(fused.data, composed.data, **tol)
    for key in ("exp_avg", "exp_avg_sq"):
        np.testing.assert_allclose(opt_fused.state[id(fused)][key], opt_composed.state[id(composed)][key], **tol)
    assert fused.data.dtype == dtype and np.abs(fused.data - start).mean() > 1e-2  # it did train
