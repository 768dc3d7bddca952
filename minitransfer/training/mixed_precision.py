"""The Trainer's fp16 (TrainingArguments.fp16): the forward and loss under mt.autocast(float16), float32 master
weights and optimizer state, and a GradScaler whose state is saved in each checkpoint-N/scaler.json.

On the CPU it is refused: NumPy has no fast half GEMM, so float16 there is slower than float32, not faster.
MINITRANSFER_ALLOW_CPU_HALF=1 lets it run on the CPU anyway, for tests and for studying the mechanism.
"""
from __future__ import annotations

import contextlib
import os

import numpy as np

from minitransfer.errors import ConfigError
from minitransfer.ops.autocast import autocast
from minitransfer.optim import GradScaler

ALLOW_CPU_HALF = "MINITRANSFER_ALLOW_CPU_HALF"
SCALER_FILE = "scaler.json"


def grad_scaler(args, model) -> GradScaler:
    """fp16: an enabled GradScaler, once the model's device can use it; otherwise a disabled one (a pass-through)."""
    if args.fp16 and model.device == "cpu" and os.environ.get(ALLOW_CPU_HALF) != "1":
        raise ConfigError("fp16 on the CPU: NumPy has no fast half GEMM: fp16 is for --device cuda (CuPy), where it "
                          f"is the fast path; {ALLOW_CPU_HALF}=1 runs it on the CPU anyway (slowly: for tests and for "
                          "studying the mechanism)")
    return GradScaler(enabled=args.fp16)


def forward_precision(args):
    """The context of a training forward and loss: float16 GEMMs under fp16, as they are otherwise."""
    return autocast(np.float16) if args.fp16 else contextlib.nullcontext()
