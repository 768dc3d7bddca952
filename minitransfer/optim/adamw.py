"""AdamW: Adam with decoupled weight decay, step for step the same as torch.optim.AdamW.

Per parameter with a gradient (torch's order, bias-corrected):
    p *= 1 - lr * wd
    m  = m + (1 - beta1) * (g - m)            # torch's lerp
    v  = beta2 * v + (1 - beta2) * g * g
    p -= lr / (1 - beta1**t) * m / (sqrt(v) / sqrt(1 - beta2**t) + eps)
The update runs in place on `p.data`, picked like every fused op (ops/dispatch.py): ReferenceAdamWUpdate, array
operations on any array module (kernels/adamw_reference.py), FusedAdamWUpdate, one pass over NumPy arrays
(kernels/adamw_cpu.py), or CudaAdamWUpdate, one launch of kernels/adamw_cuda.py's multi-tensor kernel per CuPy
parameter (the state stays one array per parameter, so no flat buffers to pack). Frozen parameters
(requires_grad=False) and parameters without a gradient are skipped and get no state, so freezing most of a model
makes the optimizer cheap too.
"""
from __future__ import annotations

import json

import numpy as np

from minitransfer import backend
from minitransfer.autograd import Tensor
from minitransfer.errors import CheckpointError, ConfigError
from minitransfer.kernels import adamw_reference
from minitransfer.ops.dispatch import LazyModule, cupy_float, numpy_float, pick

DEFAULTS_KEYS = ("lr", "betas", "eps", "weight_decay")


class ReferenceAdamWUpdate:
    """One parameter's AdamW step in place, as array operations on NumPy or CuPy arrays."""

    kernels = adamw_reference

    @classmethod
    def apply(cls, param, grad, exp_avg, exp_avg_sq, step: int, lr: float, beta1: float, beta2: float, eps: float,
              weight_decay: float) -> None:
        cls.kernels.adamw_update(param, grad, exp_avg, exp_avg_sq, step, lr, beta1, beta2, eps, weight_decay)


class FusedAdamWUpdate(ReferenceAdamWUpdate):
    """The same in one pass, for C-contiguous NumPy arrays of one float dtype (flat views then alias them)."""

    kernels = LazyModule("minitransfer.kernels.adamw_cpu")

    @classmethod
    def supports(cls, param, grad, exp_avg, exp_avg_sq) -> bool:
        arrays = (param, grad, exp_avg, exp_avg_sq)
        return numpy_float(*arrays) and param.flags.writeable and all(a.flags.c_contiguous for a in arrays)


class CudaAdamWUpdate(ReferenceAdamWUpdate):
    """The same in one kernel launch (fp32 arithmetic), for C-contiguous CuPy arrays: param and moments float32,
    grad float32 or float16."""

    kernels = LazyModule("minitransfer.kernels.adamw_cuda")

    @classmethod
    def supports(cls, param, grad, exp_avg, exp_avg_sq) -> bool:
        arrays = (param, grad, exp_avg, exp_avg_sq)
        return (cupy_float(param, exp_avg, exp_avg_sq, dtypes=(np.float32,)) and cupy_float(grad)
                and all(a.flags.c_contiguous for a in arrays))


class AdamW:
    """AdamW over Parameters (or param-group dicts like torch's: `{"params": [...], "weight_decay": 0.0}`).

    `param_groups` is a list of dicts holding "params", "lr", "betas", "eps", "weight_decay"; schedules edit
    each group's "lr" between steps. `state[id(p)]` holds "step" (int), "exp_avg" and "exp_avg_sq"
    (arrays shaped like p, on p's device) for every parameter that has been updated at least once.
    """

    def __init__(self, params, lr: float = 5e-5, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0):
        self.defaults = {"lr": lr, "betas": tuple(betas), "eps": eps, "weight_decay": weight_decay}
        _check_hyperparameters(self.defaults, where="AdamW")
        self.param_groups: list[dict] = []
        self.state: dict[int, dict] = {}
        groups = list(params) if not isinstance(params, Tensor) else [params]
        if not groups:
            raise ConfigError("AdamW got an empty parameter list: pass model.parameters() or param groups")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        seen: set[int] = set()
        for i, group in enumerate(groups):
            self._add_param_group(group, i, seen)

    def _add_param_group(self, group: dict, index: int, seen: set[int]) -> None:
        if not isinstance(group, dict) or "params" not in group:
            raise ConfigError(
                f"AdamW param group {index} must be a dict with a 'params' key, got {type(group).__name__}")
        params = group["params"]
        params = [params] if isinstance(params, Tensor) else list(params)
        for p in params:
            if not isinstance(p, Tensor):
                raise ConfigError(f"AdamW param group {index} holds a {type(p).__name__}, not a Parameter")
            if id(p) in seen:
                raise ConfigError(f"a parameter appears in more than one AdamW param group (group {index}): "
                                  "each parameter may be in one group only")
            seen.add(id(p))
        full = dict(self.defaults)
        full.update({k: v for k, v in group.items() if k != "params"})
        full["betas"] = tuple(full["betas"])
        _check_hyperparameters(full, where=f"AdamW param group {index}")
        full["params"] = params
        self.param_groups.append(full)

    # ---- the update ----
    def zero_grad(self) -> None:
        """Drop every gradient (p.grad = None), so the next backward allocates fresh ones."""
        for group in self.param_groups:
            for p in group["params"]:
                p.grad = None

    def step(self) -> None:
        """One AdamW update of every trainable parameter that has a gradient, in place on `p.data`."""
        for group in self.param_groups:
            lr, wd, eps = float(group["lr"]), float(group["weight_decay"]), float(group["eps"])
            beta1, beta2 = (float(b) for b in group["betas"])
            for p in group["params"]:
                if not p.requires_grad or p.grad is None:
                    continue
                state = self.state.get(id(p))
                if state is None:
                    xp = backend.get_array_module(p.data)
                    state = self.state[id(p)] = {"step": 0, "exp_avg": xp.zeros_like(p.data),
                                                  "exp_avg_sq": xp.zeros_like(p.data)}
                state["step"] += 1
                m, v = state["exp_avg"], state["exp_avg_sq"]
                update = pick(ReferenceAdamWUpdate, [FusedAdamWUpdate, CudaAdamWUpdate], p.data, p.grad.data, m, v)
                update.apply(p.data, p.grad.data, m, v, state["step"], lr, beta1, beta2, eps, wd)

    # ---- saving and resuming ----
    def _all_params(self) -> list[Tensor]:
        return [p for group in self.param_groups for p in group["params"]]

    def state_dict(self) -> dict[str, np.ndarray]:
        """A flat dict of NumPy arrays (np.savez- and pickle-friendly) that resumes training exactly.

        Keys: "param_groups" (a JSON string: hyperparameters and each group's parameter count) and, for the
        parameter at position i over all groups, "state.{i}.step", "state.{i}.exp_avg", "state.{i}.exp_avg_sq".
        """
        groups = [{k: v for k, v in g.items() if k != "params"} | {"num_params": len(g["params"])}
                  for g in self.param_groups]
        out: dict[str, np.ndarray] = {"param_groups": np.array(json.dumps(groups))}
        for i, p in enumerate(self._all_params()):
            state = self.state.get(id(p))
            if state is not None:
                out[f"state.{i}.step"] = np.array(state["step"], dtype=np.int64)
                out[f"state.{i}.exp_avg"] = backend.to_numpy(state["exp_avg"]).copy()
                out[f"state.{i}.exp_avg_sq"] = backend.to_numpy(state["exp_avg_sq"]).copy()
        return out

    def load_state_dict(self, state_dict) -> None:
        """Restore hyperparameters and moments saved by `state_dict()` onto this optimizer's parameters, by
        position; the moments go to each parameter's device. Accepts a dict or an `np.load(...)` result."""
        groups = json.loads(str(np.asarray(state_dict["param_groups"])))
        counts = [len(g["params"]) for g in self.param_groups]
        if [g.get("num_params") for g in groups] != counts:
            raise CheckpointError(
                f"optimizer state has param groups of sizes {[g.get('num_params') for g in groups]} but this "
                f"optimizer has {counts}: it was saved for a different model or a different freezing")
        params = self._all_params()
        new_state: dict[int, dict] = {}
        for i, p in enumerate(params):
            if f"state.{i}.step" not in state_dict:
                continue
            m, v = np.asarray(state_dict[f"state.{i}.exp_avg"]), np.asarray(state_dict[f"state.{i}.exp_avg_sq"])
            if m.shape != p.shape or v.shape != p.shape:
                raise CheckpointError(f"optimizer state for parameter {i} has shape {m.shape} but the parameter "
                                      f"has shape {tuple(p.shape)}: it was saved for a different model")
            xp = backend.get_array_module(p.data)
            new_state[id(p)] = {"step": int(np.asarray(state_dict[f"state.{i}.step"])),
                                    "exp_avg": xp.array(m, dtype=p.dtype), "exp_avg_sq": xp.array(v, dtype=p.dtype)}
        for group, saved in zip(self.param_groups, groups):
            saved.pop("num_params")
            saved["betas"] = tuple(saved["betas"])
            group.update(saved)
        self.state = new_state

    def __repr__(self) -> str:
        lines = [f"  group {i}: " + ", ".join(f"{k}={g[k]}" for k in DEFAULTS_KEYS) + f", params={len(g['params'])}"
                 for i, g in enumerate(self.param_groups)]
        return "AdamW(\n" + "\n".join(lines) + "\n)"


def _check_hyperparameters(h: dict, where: str) -> None:
    beta1, beta2 = h["betas"]
    if not float(h["lr"]) >= 0.0:
        raise ConfigError(f"{where}: learning rate must be >= 0, got {h['lr']}")
    if not float(h["eps"]) >= 0.0:
        raise ConfigError(f"{where}: eps must be >= 0, got {h['eps']}")
    if not (0.0 <= beta1 < 1.0 and 0.0 <= beta2 < 1.0):
        raise ConfigError(f"{where}: betas must each be in [0, 1), got {h['betas']}")
    if not float(h["weight_decay"]) >= 0.0:
        raise ConfigError(f"{where}: weight_decay must be >= 0, got {h['weight_decay']}")
