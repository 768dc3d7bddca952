"""Optimization for fine-tuning: AdamW, warmup lr schedules, gradient clipping, weight-decay groups, loss scaling."""
from minitransfer.optim.adamw import AdamW
from minitransfer.optim.clipping import clip_grad_norm_
from minitransfer.optim.grad_scaler import GradScaler
from minitransfer.optim.param_groups import decay_parameter_names, param_groups_for_weight_decay
from minitransfer.optim.schedules import (
    LambdaSchedule,
    get_constant_schedule_with_warmup,
    get_cosine_schedule_with_warmup,
    get_linear_schedule_with_warmup,
    get_scheduler,
)

__all__ = [
    "AdamW",
    "GradScaler",
    "LambdaSchedule",
    "clip_grad_norm_",
    "decay_parameter_names",
    "get_constant_schedule_with_warmup",
    "get_cosine_schedule_with_warmup",
    "get_linear_schedule_with_warmup",
    "get_scheduler",
    "param_groups_for_weight_decay",
]
