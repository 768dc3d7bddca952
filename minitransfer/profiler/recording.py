"""The observer autograd and Module call while the profiler is on: one Record per Function forward and backward.

Installed as `autograd.observer`, it runs each Function's forward/backward itself, timing it, and tracks which
module is running (a stack pushed by Module.__call__), so each op knows its path (`bert.encoder.layer.3.attention`).
Paths are the root module's `named_modules()` names, computed once per root. Nothing here runs when it is off.
"""
from __future__ import annotations

import sys
from time import perf_counter
from typing import NamedTuple

from minitransfer.profiler.costs import op_flops
from minitransfer.profiler.debug import op_line, step_summary


class Record(NamedTuple):
    """One timed piece of work. phase: "forward", "backward", or "region" (a named block, e.g. the optimizer)."""

    name: str
    phase: str
    shapes: tuple
    module: str
    start: float
    seconds: float
    flops: int | None
    bytes: int
    saved_bytes: int = 0


class Span(NamedTuple):
    """A module's forward call, for the trace."""

    module: str
    start: float
    seconds: float


def _is_array(value) -> bool:
    return hasattr(value, "nbytes") and hasattr(value, "ndim")  # NumPy or CuPy


def _arrays(values):
    """The arrays among values, one level into lists and tuples (what a Function keeps on itself)."""
    for v in values:
        if isinstance(v, (list, tuple)):
            yield from filter(_is_array, v)
        elif _is_array(v):
            yield v


def _nbytes(arrays) -> int:
    return sum(a.nbytes for a in arrays if a is not None)


def saved_bytes(fn, leaf_arrays: set[int]) -> int:
    """Bytes of the arrays forward stored on `fn` (kept until its backward), leaves' data (weights) aside."""
    seen = set(leaf_arrays)
    total = 0
    for a in _arrays(vars(fn).values()):
        if id(a) not in seen:
            seen.add(id(a))
            total += a.nbytes
    return total


class Recorder:
    """Collects Records (and module Spans) while installed; `echo` 2 prints one line per op as it runs, 1 a
    summary per step (a step: one backward() from a root). keep=False drops records once a step is summarized."""

    def __init__(self, echo: int = 0, keep: bool = True):
        self.echo, self.keep = echo, keep
        self.records: list[Record] = []
        self.spans: list[Span] = []
        self._stack: list[str] = []  # paths of the modules running now
        self._names: dict[int, dict[int, str]] = {}  # id(root) -> {id(module): qualified name}
        self._root_names: dict[int, str] = {}
        self._pending: dict[int, tuple[Record, int | None]] = {}  # id(Function) -> (forward record, backward flops)
        self._steps, self._summarized = 0, 0  # backward() calls so far; records already in a step summary

    # ---- called by autograd and Module ----
    def forward(self, fn, tensors):
        arrays = tuple(t.data for t in tensors)
        start = perf_counter()
        outputs = fn.forward(*arrays)
        seconds = perf_counter() - start
        outs = outputs if isinstance(outputs, tuple) else (outputs,)
        forward_flops, backward_flops = op_flops(fn, arrays, outs)
        kept = any(fn.needs_input_grad)  # else no graph is kept and what forward saved is freed at once
        saved = saved_bytes(fn, {id(t.data) for t in tensors if t.creator is None}) if kept else 0
        record = Record(type(fn).__name__, "forward", tuple(a.shape for a in arrays),
                        self._stack[-1] if self._stack else "", start, seconds, forward_flops,
                        _nbytes(arrays) + _nbytes(outs), saved)
        if kept:
            self._pending[id(fn)] = (record, backward_flops)
        self.add(record)
        return outputs

    def backward(self, fn, out_grads):
        # Kept after this backward: a graph kept by retain_graph=True is walked again (the id stays the Function's
        # while it lives; a new Function under a freed one's id overwrites the entry in its forward).
        forward, flops = self._pending.get(id(fn), (None, None))
        saved = forward.saved_bytes if forward else 0  # backward reads what forward saved
        start = perf_counter()
        in_grads = fn.backward(*out_grads)
        seconds = perf_counter() - start
        grads = in_grads if isinstance(in_grads, tuple) else (in_grads,)
        self.add(Record(type(fn).__name__, "backward", forward.shapes if forward else (),
                        forward.module if forward else "", start, seconds, flops,
                        _nbytes(out_grads) + _nbytes(grads) + saved))
        return in_grads

    def backward_finished(self) -> None:
        self._steps += 1
        if self.echo == 1:
            print(step_summary(self._steps, self.records[self._summarized:]), file=sys.stderr)
        if not self.keep:
            self.records.clear()
            self._pending.clear()
        self._summarized = len(self.records)

    def module_call(self, module, args, kwargs):
        if not self._stack:  # a root: name its modules once
            root = id(module)
            if root not in self._names:
                self._names[root] = {id(m): name for name, m in module.named_modules()}
            self._root_names = self._names[root]
        path = self._root_names.get(id(module))
        if path is None:  # a module outside the root's tree: named under its caller
            path = f"{self._stack[-1]}.{type(module).__name__}".lstrip(".")
        self._stack.append(path)
        start = perf_counter()
        try:
            return module.forward(*args, **kwargs)
        finally:
            self._stack.pop()
            if self.keep:
                self.spans.append(Span(path or type(module).__name__, start, perf_counter() - start))

    # ---- bookkeeping ----
    def add(self, record: Record) -> None:
        if self.echo == 2:
            print(op_line(record), file=sys.stderr)
        if self.keep or self.echo == 1:
            self.records.append(record)
