"""MINITRANSFER_DEBUG: 2 prints one line per op as it runs (tinygrad's DEBUG=2), 1 a summary per step.

A step is one `backward()` from a root (with gradient accumulation, several per optimizer step): the summary
covers every op since the previous one, evaluation forwards included. Lines go to stderr.
"""
from __future__ import annotations

import os

from minitransfer.errors import ConfigError


def debug_level() -> int:
    """MINITRANSFER_DEBUG as 0, 1 or 2 (unset or empty: 0)."""
    value = os.environ.get("MINITRANSFER_DEBUG", "").strip()
    if value not in ("", "0", "1", "2"):
        raise ConfigError(f"MINITRANSFER_DEBUG={value!r}: set it to 1 (a summary per step) or 2 (a line per op)")
    return int(value or 0)


def _rate(flops: int | None, seconds: float) -> str:
    return f"{flops / seconds / 1e9:8.2f} GFLOP/s" if flops and seconds > 0 else " " * 15 + "-"


def op_line(record) -> str:
    """`fwd Linear  (16, 32)x(32, 32)  bert.encoder.layer.0.attention.self  0.021 ms  1.20 GFLOP/s`."""
    shapes = "x".join(str(tuple(s)) for s in record.shapes)
    phase = {"forward": "fwd", "backward": "bwd"}.get(record.phase, record.phase)
    return (f"[minitransfer] {phase} {record.name:<28} {shapes:<36} {record.module or '(top level)':<40} "
            f"{record.seconds * 1e3:9.3f} ms {_rate(record.flops, record.seconds)}")


def step_summary(step: int, records) -> str:
    """`step 3: 212 ops, forward 31.2 ms, backward 55.0 ms, 1.23 GFLOP at 14.1 GFLOP/s, 12.0 MB saved`."""
    seconds = {phase: sum(r.seconds for r in records if r.phase == phase) for phase in ("forward", "backward")}
    flops = sum(r.flops or 0 for r in records)
    saved = sum(r.saved_bytes for r in records)
    ops = sum(r.phase == "forward" for r in records)
    total = seconds["forward"] + seconds["backward"]
    return (f"[minitransfer] step {step}: {ops} ops, forward {seconds['forward'] * 1e3:.1f} ms, backward "
            f"{seconds['backward'] * 1e3:.1f} ms, {flops / 1e9:.3g} GFLOP at {_rate(flops, total).strip()}, "
            f"{saved / 1e6:.3g} MB saved for backward")
