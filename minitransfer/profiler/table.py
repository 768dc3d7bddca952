"""The profile as a table: records grouped by op, module, layer or kind, with a line for the time no op took.

Times are wall-clock seconds of each forward/backward call; GFLOP/s divides an op's FLOPs by them; % peak
compares that to the machine's measured fp32 GEMM rate (peak.py). The "(unaccounted)" line is the wall time
of the profiled block minus every op's and region's time (Python, the framework, the profiler itself), so
the rows add up to the wall clock.
"""
from __future__ import annotations

from dataclasses import dataclass

GROUPS = ("op", "module", "layer", "kind")
SORT_KEYS = ("total", "forward", "backward", "calls", "flops", "name")
UNACCOUNTED = "(unaccounted)"
# What each kind's op class names contain, first match wins (the fused LayerNorm holds "Dropout" too).
KINDS = (("GEMMs", ("Linear", "MatMul")), ("attention", ("Attention",)), ("LayerNorm", ("LayerNorm",)),
         ("GELU", ("GELU",)), ("softmax and loss", ("Softmax", "CrossEntropy")), ("embeddings", ("Embedding",)),
         ("dropout", ("Dropout",)), ("packing", ("TakeRows", "ScatterRows")))


def kind_of(name: str) -> str:
    return next((kind for kind, parts in KINDS if any(p in name for p in parts)), "other ops")


def layer_of(path: str) -> str:
    """The block a module path belongs to: up to the layer number (`bert.encoder.layer.3`), else its first two
    names (`bert.embeddings`, `classifier`)."""
    parts = path.split(".")
    for i, part in enumerate(parts):
        if part.isdigit():
            return ".".join(parts[: i + 1])
    return ".".join(parts[:2])


def group_key(record, group_by: str) -> str:
    if group_by not in GROUPS:
        raise ValueError(f"group_by={group_by!r}: use one of {', '.join(GROUPS)}")
    if record.phase == "region" or group_by == "op":
        return record.name
    if group_by == "kind":
        return kind_of(record.name)
    path = record.module if group_by == "module" else layer_of(record.module)
    return path or "(top level)"


@dataclass
class Row:
    key: str
    calls: int = 0
    forward_s: float = 0.0
    backward_s: float = 0.0
    region_s: float = 0.0
    flops: int | None = None
    saved_bytes: int = 0

    @property
    def seconds(self) -> float:
        return self.forward_s + self.backward_s + self.region_s

    def rate(self) -> float | None:
        """FLOP/s over the time of this row's calls, None where no op in it declares FLOPs."""
        return self.flops / self.seconds if self.flops is not None and self.seconds > 0 else None


def rows(records, group_by: str = "op") -> list[Row]:
    """One Row per group, in the order the groups first ran."""
    table: dict[str, Row] = {}
    for r in records:
        key = group_key(r, group_by)
        row = table.setdefault(key, Row(key))
        row.calls += r.phase != "backward"
        setattr(row, f"{r.phase}_s", getattr(row, f"{r.phase}_s") + r.seconds)
        if r.flops is not None:
            row.flops = (row.flops or 0) + r.flops
        row.saved_bytes += r.saved_bytes
    return list(table.values())


def _sort(table: list[Row], sort_by: str) -> list[Row]:
    if sort_by not in SORT_KEYS:
        raise ValueError(f"sort_by={sort_by!r}: use one of {', '.join(SORT_KEYS)}")
    if sort_by == "name":
        return sorted(table, key=lambda r: r.key)
    attribute = {"total": "seconds", "forward": "forward_s", "backward": "backward_s"}.get(sort_by, sort_by)
    return sorted(table, key=lambda r: getattr(r, attribute) or 0, reverse=True)


def format_table(table: list[Row], wall_s: float, peak_flops: float, sort_by: str = "total",
                 limit: int | None = None) -> str:
    """The rows (the first `limit` after sorting), the unaccounted line and the wall clock, as aligned text."""
    shown = _sort(table, sort_by)[:limit]
    width = max([len(r.key) for r in shown] + [len(UNACCOUNTED), 24])
    head = (f"{'name':<{width}} {'calls':>6} {'fwd ms':>9} {'bwd ms':>9} {'total ms':>9} {'% wall':>7} "
            f"{'GFLOP':>9} {'GFLOP/s':>8} {'% peak':>7} {'saved MB':>9}")
    lines = [head, "-" * len(head)]
    for r in shown:
        rate = r.rate()
        numbers = (f"{r.flops / 1e9:9.3f} {rate / 1e9:8.2f} {100 * rate / peak_flops:7.1f}" if rate is not None
                   else f"{'-':>9} {'-':>8} {'-':>7}")
        lines.append(f"{r.key:<{width}} {r.calls:>6} {r.forward_s * 1e3:9.2f} {r.backward_s * 1e3:9.2f} "
                     f"{r.seconds * 1e3:9.2f} {_percent(r.seconds, wall_s):>7} {numbers} {r.saved_bytes / 1e6:9.2f}")
    unaccounted = wall_s - sum(r.seconds for r in table)
    blank = " " * 28  # under calls, fwd ms and bwd ms
    lines += ["-" * len(head),
              f"{UNACCOUNTED:<{width}} {blank} {unaccounted * 1e3:9.2f} {_percent(unaccounted, wall_s):>7}",
              f"{'wall clock':<{width}} {blank} {wall_s * 1e3:9.2f} {'100.0':>7}"
              f"   (peak: {peak_flops / 1e9:.1f} GFLOP/s, a float32 GEMM measured on this machine)"]
    if len(shown) < len(table):
        lines.insert(-3, f"({len(table) - len(shown)} more rows not shown)")
    return "\n".join(lines)


def _percent(seconds: float, wall_s: float) -> str:
    return f"{100 * seconds / wall_s:.1f}" if wall_s > 0 else "-"


def biggest_costs(records, wall_s: float, peak_flops: float, count: int = 3) -> str:
    """The `count` biggest kinds of work in words: "GEMMs 71% at 165 GFLOP/s (60% of peak); attention 12% ..."."""
    table = rows(records, "kind")
    table.append(Row(UNACCOUNTED, region_s=wall_s - sum(r.seconds for r in table)))
    parts = []
    for r in _sort(table, "total")[:count]:
        rate = r.rate()
        speed = f" at {rate / 1e9:.1f} GFLOP/s ({100 * rate / peak_flops:.0f}% of peak)" if rate else ""
        parts.append(f"{r.key} {_percent(r.seconds, wall_s)}%{speed}")
    return "; ".join(parts)
