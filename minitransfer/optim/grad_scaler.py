"""Dynamic loss scaling for float16 training, as torch.amp.GradScaler.

float16 gradients underflow below ~6e-8, so the loss is multiplied by a scale before backward and the float32
gradients are divided by it before the update. When any gradient is inf or nan the scale was too high: the step
is skipped and the scale lowered; after `growth_interval` good steps in a row it is raised again.

    scaler.scale(loss).backward()
    scaler.unscale_(optimizer)          # before clipping, so the clip sees the true gradients
    clip_grad_norm_(params, 1.0)
    scaler.step(optimizer)              # skipped when unscale_ found inf or nan
    scaler.update()
"""
from __future__ import annotations

from minitransfer import backend


class GradScaler:
    """torch's GradScaler over NumPy or CuPy gradients; with enabled=False every method passes through."""

    def __init__(self, init_scale: float = 2.0**16, growth_factor: float = 2.0, backoff_factor: float = 0.5,
                 growth_interval: int = 2000, enabled: bool = True):
        self.scale_value, self.growth_factor, self.backoff_factor = float(init_scale), growth_factor, backoff_factor
        self.growth_interval, self.enabled = growth_interval, enabled
        self.growth_tracker = 0  # good steps since the scale last changed
        self.found_inf: dict[int, bool] = {}  # id(optimizer) -> inf/nan seen by this step's unscale_

    def is_enabled(self) -> bool:
        return self.enabled

    def get_scale(self) -> float:
        return self.scale_value if self.enabled else 1.0

    def scale(self, loss):
        """The loss times the scale (a Tensor, for backward)."""
        return loss * self.scale_value if self.enabled else loss

    def unscale_(self, optimizer) -> None:
        """Divide every gradient of the optimizer's parameters by the scale, in place, noting any inf or nan."""
        if not self.enabled:
            return
        if id(optimizer) in self.found_inf:
            raise RuntimeError("unscale_() has already been called on this optimizer since the last update()")
        grads = [p.grad.data for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        finite = True
        for g in grads:
            g *= g.dtype.type(1.0 / self.scale_value)  # a power of two: exact
            # One device-side flag per tensor, combined without a host sync until the end.
            finite = finite & backend.get_array_module(g).isfinite(g).all()
        self.found_inf[id(optimizer)] = not bool(finite)

    def step(self, optimizer) -> None:
        """optimizer.step() unless unscale_ (called here if it was not) found inf or nan in the gradients."""
        if not self.enabled:
            return optimizer.step()
        if id(optimizer) not in self.found_inf:
            self.unscale_(optimizer)
        if not self.found_inf[id(optimizer)]:
            return optimizer.step()
        return None

    def update(self) -> None:
        """Lower the scale after a step that found inf or nan; raise it after growth_interval good steps."""
        if not self.enabled:
            return
        if any(self.found_inf.values()):
            self.scale_value *= self.backoff_factor
            self.growth_tracker = 0
        else:
            self.growth_tracker += 1
            if self.growth_tracker == self.growth_interval:
                self.scale_value *= self.growth_factor
                self.growth_tracker = 0
        self.found_inf = {}

    def state_dict(self) -> dict:
        """JSON-friendly: what resumes the scaling exactly (torch's keys); empty when disabled, as torch's."""
        if not self.enabled:
            return {}
        return {"scale": self.scale_value, "growth_factor": self.growth_factor, "backoff_factor": self.backoff_factor,
                "growth_interval": self.growth_interval, "_growth_tracker": self.growth_tracker}

    def load_state_dict(self, state: dict) -> None:
        if not self.enabled:
            return
        self.scale_value, self.growth_factor = float(state["scale"]), float(state["growth_factor"])
        self.backoff_factor, self.growth_interval = float(state["backoff_factor"]), int(state["growth_interval"])
        self.growth_tracker = int(state["_growth_tracker"])
