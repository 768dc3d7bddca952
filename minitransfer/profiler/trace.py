"""The profile as a Chrome trace (the JSON "trace event format"): open it in https://ui.perfetto.dev.

Every op's forward and backward and every module's forward call is one complete ("X") event on one thread,
so Perfetto nests each op under the modules it ran in; times are microseconds from the profile's start.
"""
from __future__ import annotations

import json
from pathlib import Path


def trace_events(records, spans, start: float) -> list[dict]:
    events = [{"name": s.module, "cat": "module", "ph": "X", "ts": (s.start - start) * 1e6,
               "dur": s.seconds * 1e6, "pid": 1, "tid": 1} for s in spans]
    for r in records:
        args = {"module": r.module, "shapes": [list(s) for s in r.shapes], "flops": r.flops, "bytes": r.bytes,
                "saved_bytes": r.saved_bytes}
        events.append({"name": r.name, "cat": r.phase, "ph": "X", "ts": (r.start - start) * 1e6,
                       "dur": r.seconds * 1e6, "pid": 1, "tid": 1, "args": args})
    return sorted(events, key=lambda e: (e["ts"], -e["dur"]))  # a parent before the children it contains


def write_chrome_trace(path: str | Path, records, spans, start: float) -> Path:
    path = Path(path)
    path.write_text(json.dumps({"traceEvents": trace_events(records, spans, start), "displayTimeUnit": "ms"}))
    return path
