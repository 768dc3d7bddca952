"""(forward, backward) FLOPs of one op call, from the `cost` its class declares (minitransfer/ops/costs.py)."""
from __future__ import annotations


def op_flops(fn, inputs, outputs) -> tuple[int | None, int | None]:
    """(forward FLOPs, backward FLOPs) of one call of Function `fn`, or (None, None) when the op declares none."""
    own = getattr(fn, "cost", None)
    if own is None:
        return None, None
    forward, backward = own(inputs, outputs)
    return int(forward), int(backward)
