"""Learning-rate schedules: transformers' warmup schedules over a LambdaLR-like stepper.

A schedule multiplies each param group's initial lr by `lr_lambda(step)`. As with torch's LambdaLR,
constructing it already sets the lr for step 0, so the first optimizer step runs at `lr * lr_lambda(0)`;
call `schedule.step()` after each `optimizer.step()`.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial

from minitransfer.errors import CheckpointError, ConfigError


class LambdaSchedule:
    """Sets `group["lr"] = group["initial_lr"] * lr_lambda(last_epoch)` for every param group of `optimizer`.

    `initial_lr` is written into each group the first time (setdefault, as torch does), so a schedule built
    over an optimizer restored from a checkpoint keeps the original base lr.
    """

    def __init__(self, optimizer, lr_lambda: Callable[[int], float]):
        self.optimizer = optimizer
        self.lr_lambda = lr_lambda
        for group in optimizer.param_groups:
            group.setdefault("initial_lr", group["lr"])
        self.base_lrs = [float(group["initial_lr"]) for group in optimizer.param_groups]
        self.last_epoch = -1
        self._last_lr: list[float] = []
        self.step()

    def step(self) -> None:
        """Advance one step and write the new lr into every param group."""
        self.last_epoch += 1
        self._apply()

    def _apply(self) -> None:
        factor = self.lr_lambda(self.last_epoch)
        self._last_lr = [base * factor for base in self.base_lrs]
        for group, lr in zip(self.optimizer.param_groups, self._last_lr):
            group["lr"] = lr

    def get_last_lr(self) -> list[float]:
        """The lr of each param group as last set by this schedule."""
        return list(self._last_lr)

    def state_dict(self) -> dict:
        """{"last_epoch": int, "base_lrs": list[float]}: enough to resume (plain values; np.savez- and pickle-able)."""
        return {"last_epoch": self.last_epoch, "base_lrs": list(self.base_lrs)}

    def load_state_dict(self, state: dict) -> None:
        """Resume at the saved step; also rewrites each group's lr, so it matches even if the optimizer's state
        was not restored. Accepts the values back as NumPy arrays (as from np.load)."""
        base_lrs = [float(b) for b in list(state["base_lrs"])]
        if len(base_lrs) != len(self.optimizer.param_groups):
            raise CheckpointError(f"schedule state has {len(base_lrs)} param groups but the optimizer has "
                              f"{len(self.optimizer.param_groups)}: it was saved for a different optimizer")
        self.base_lrs = base_lrs
        self.last_epoch = int(state["last_epoch"])
        self._apply()


def _linear_lambda(step: int, *, num_warmup_steps: int, num_training_steps: int) -> float:
    if step < num_warmup_steps:
        return float(step) / float(max(1, num_warmup_steps))
    return max(0.0, float(num_training_steps - step) / float(max(1, num_training_steps - num_warmup_steps)))


def _constant_lambda(step: int, *, num_warmup_steps: int) -> float:
    if step < num_warmup_steps:
        return float(step) / float(max(1.0, num_warmup_steps))
    return 1.0


def _cosine_lambda(step: int, *, num_warmup_steps: int, num_training_steps: int, num_cycles: float) -> float:
    if step < num_warmup_steps:
        return float(step) / float(max(1, num_warmup_steps))
    progress = float(step - num_warmup_steps) / float(max(1, num_training_steps - num_warmup_steps))
    return max(0.0, 0.5 * (1.0 + math.cos(math.pi * float(num_cycles) * 2.0 * progress)))


def get_linear_schedule_with_warmup(optimizer, num_warmup_steps: int, num_training_steps: int) -> LambdaSchedule:
    """lr rises linearly 0 → lr over `num_warmup_steps`, then falls linearly to 0 at `num_training_steps`."""
    _check_steps(num_warmup_steps, num_training_steps)
    return LambdaSchedule(optimizer, partial(_linear_lambda, num_warmup_steps=num_warmup_steps,
                                             num_training_steps=num_training_steps))


def get_constant_schedule_with_warmup(optimizer, num_warmup_steps: int) -> LambdaSchedule:
    """lr rises linearly 0 → lr over `num_warmup_steps`, then stays at lr."""
    _check_steps(num_warmup_steps, None)
    return LambdaSchedule(optimizer, partial(_constant_lambda, num_warmup_steps=num_warmup_steps))


def get_cosine_schedule_with_warmup(optimizer, num_warmup_steps: int, num_training_steps: int,
                                   num_cycles: float = 0.5) -> LambdaSchedule:
    """Linear warmup, then a cosine from lr down to 0 (`num_cycles`=0.5: half a cosine wave) at the end."""
    _check_steps(num_warmup_steps, num_training_steps)
    return LambdaSchedule(optimizer, partial(_cosine_lambda, num_warmup_steps=num_warmup_steps,
                                             num_training_steps=num_training_steps, num_cycles=num_cycles))


SCHEDULES = ("linear", "constant", "cosine")


def get_scheduler(name: str, optimizer, num_warmup_steps: int, num_training_steps: int) -> LambdaSchedule:
    """The schedule called `name` ("linear", "constant" or "cosine"), as transformers' get_scheduler."""
    if name == "linear":
        return get_linear_schedule_with_warmup(optimizer, num_warmup_steps, num_training_steps)
    if name == "constant":
        return get_constant_schedule_with_warmup(optimizer, num_warmup_steps)
    if name == "cosine":
        return get_cosine_schedule_with_warmup(optimizer, num_warmup_steps, num_training_steps)
    raise ConfigError(f"unknown lr schedule {name!r}: choose one of {', '.join(SCHEDULES)}")


def _check_steps(num_warmup_steps: int, num_training_steps: int | None) -> None:
    if num_warmup_steps < 0:
        raise ConfigError(f"num_warmup_steps must be >= 0, got {num_warmup_steps}")
    if num_training_steps is not None and num_training_steps < 0:
        raise ConfigError(f"num_training_steps must be >= 0, got {num_training_steps}")
