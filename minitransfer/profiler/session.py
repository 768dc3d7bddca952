"""`with mt.profile() as prof:` — the profiler's user side: install the Recorder, then read what it saw.

    with mt.profile() as prof:
        loss = model(**batch, labels=labels).loss
        loss.backward()
        with prof.region("AdamW.step"):   # work that is not a Function, timed under a name
            optimizer.step()
    print(prof.table(group_by="layer"))   # or "op", "module", "kind"
    prof.totals()                         # {"wall_s", "op_s", "flops", "bytes", ...}
    prof.export_chrome_trace("step.json")

Off by default: outside the block autograd's observer is None, and every Function call and Module call
costs one `is None` check. Times are the host's: on CuPy arrays an op's time is its launch, not the GPU's work.
"""
from __future__ import annotations

import contextlib
import warnings
from pathlib import Path
from time import perf_counter

from minitransfer import autograd
from minitransfer.errors import ConfigError
from minitransfer.profiler import table as tables
from minitransfer.profiler.debug import debug_level
from minitransfer.profiler.peak import measured_peak_flops
from minitransfer.profiler.recording import Record, Recorder
from minitransfer.profiler.trace import write_chrome_trace


class Profile(Recorder):
    """A Recorder installed for the duration of a `with` block; MINITRANSFER_DEBUG=2 still prints each op."""

    def __init__(self):
        super().__init__(echo=debug_level())
        self.start = self.end = None
        self._previous = None

    def __enter__(self) -> Profile:
        self._previous, autograd.observer = autograd.observer, self
        self.start = perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        self.end = perf_counter()
        autograd.observer = self._previous

    @contextlib.contextmanager
    def region(self, name: str, flops: int | None = None):
        """Time a block that is not a Function (an optimizer step) as one row named `name`."""
        start = perf_counter()
        try:
            yield
        finally:
            self.add(Record(name, "region", (), name, start, perf_counter() - start, flops, 0))

    @property
    def wall_s(self) -> float:
        return ((self.end or perf_counter()) - self.start) if self.start is not None else 0.0

    def totals(self) -> dict:
        """wall_s (the block), op_s (every op and region), unaccounted_s, forward_s, backward_s, flops (known),
        bytes (moved, each array once) and saved_bytes (what forward kept for backward)."""
        phase = {p: sum(r.seconds for r in self.records if r.phase == p) for p in ("forward", "backward", "region")}
        op_s = sum(phase.values())
        return {"wall_s": self.wall_s, "op_s": op_s, "unaccounted_s": self.wall_s - op_s,
                "forward_s": phase["forward"], "backward_s": phase["backward"],
                "flops": sum(r.flops or 0 for r in self.records), "bytes": sum(r.bytes for r in self.records),
                "saved_bytes": sum(r.saved_bytes for r in self.records)}

    def rows(self, group_by: str = "op") -> list[tables.Row]:
        return tables.rows(self.records, group_by)

    def table(self, group_by: str = "op", sort_by: str = "total", limit: int | None = None) -> str:
        """calls, forward/backward ms, GFLOP/s and % of the measured peak per op (or module, layer, kind)."""
        return tables.format_table(self.rows(group_by), self.wall_s, measured_peak_flops(), sort_by, limit)

    def biggest_costs(self, count: int = 3) -> str:
        """The biggest kinds of work in words: "GEMMs 71% at 165 GFLOP/s (60% of peak); attention 12% ..."."""
        return tables.biggest_costs(self.records, self.wall_s, measured_peak_flops(), count)

    def export_chrome_trace(self, path: str | Path) -> Path:
        return write_chrome_trace(path, self.records, self.spans, self.start or 0.0)


def profile() -> Profile:
    """A profiler for a `with` block: every Function's forward and backward, with its module, time and FLOPs."""
    return Profile()


def debug_from_environment() -> None:
    """MINITRANSFER_DEBUG=1|2 installs a Recorder that prints per step (1) or per op (2) and keeps nothing.

    A value it does not understand is a warning here (at import, before the CLI can report errors cleanly) and
    an error in `profile()`."""
    try:
        level = debug_level()
    except ConfigError as e:
        warnings.warn(str(e), stacklevel=2)
        return
    if level and autograd.observer is None:
        autograd.observer = Recorder(echo=level, keep=False)
