"""The profiler's bookkeeping: every op recorded with its module path, times that add up to the wall clock, the
table, the Chrome trace, MINITRANSFER_DEBUG, and nothing installed when it is off."""
import contextlib
import json
import time

import numpy as np
import pytest

import minitransfer as mt
from minitransfer import autograd
from minitransfer.errors import ConfigError
from minitransfer.optim import AdamW
from minitransfer.profiler import debug_from_environment
from tests.profiler.conftest import IDS, MASK, tiny_classifier


def _train_step(model, optimizer, prof=None):
    model(input_ids=IDS, attention_mask=MASK, labels=np.array([0, 1])).loss.backward()
    with prof.region("AdamW.step") if prof is not None else contextlib.nullcontext():
        optimizer.step()
    optimizer.zero_grad()


@pytest.fixture(scope="module")
def profiled():
    """(profile, wall seconds measured around the step) of one training step of a tiny BERT, after a warm-up."""
    model = tiny_classifier()
    model.train()
    optimizer = AdamW(list(model.parameters()), lr=1e-3)
    _train_step(model, optimizer)
    with mt.profile() as prof:
        start = time.perf_counter()
        _train_step(model, optimizer, prof)
        wall = time.perf_counter() - start
    return prof, wall


def test_off_by_default_and_restored_after():
    assert autograd.observer is None
    with mt.profile() as outer:
        with mt.profile() as inner:
            assert autograd.observer is inner
        assert autograd.observer is outer
    assert autograd.observer is None


def test_times_add_up_to_the_wall_clock(profiled):
    prof, wall = profiled
    totals = prof.totals()
    assert set(totals) >= {"wall_s", "op_s", "flops", "bytes"}
    assert 0 < totals["op_s"] <= totals["wall_s"]
    assert totals["op_s"] + totals["unaccounted_s"] == pytest.approx(wall, rel=0.10)
    for group_by in ("op", "module", "layer", "kind"):
        rows = prof.rows(group_by)
        assert sum(r.seconds for r in rows) + totals["unaccounted_s"] == pytest.approx(totals["wall_s"], rel=1e-9)
        assert sum(r.flops or 0 for r in rows) == totals["flops"]


def test_records_name_the_module_each_op_ran_in(profiled):
    prof, _ = profiled
    modules = {(r.name, r.module) for r in prof.records if r.phase == "forward"}
    assert ("Linear", "bert.encoder.layer.1.attention.self.query") in modules
    assert ("Embedding", "bert.embeddings.word_embeddings") in modules
    assert ("FusedBiasGELU", "bert.encoder.layer.0.intermediate") in modules
    attention = [r for r in prof.records if "VarlenAttention" in r.name]
    assert [r.phase for r in attention].count("backward") == 2  # backward inherits the forward's module
    assert {r.module for r in attention} == {f"bert.encoder.layer.{i}.attention.self" for i in (0, 1)}
    assert all(r.saved_bytes > 0 for r in attention if r.phase == "forward")  # q, k, v, out, logsumexp
    assert {r.name for r in prof.records if r.phase == "region"} == {"AdamW.step"}


def test_table_groups_and_sorts(profiled):
    prof, _ = profiled
    by_op = prof.table()
    assert by_op.splitlines()[0].split()[:5] == ["name", "calls", "fwd", "ms", "bwd"]
    assert "(unaccounted)" in by_op and "wall clock" in by_op and "AdamW.step" in by_op
    layer_rows = [line.split()[0] for line in prof.table(group_by="layer", sort_by="name").splitlines()[2:6]]
    assert layer_rows == sorted(layer_rows)
    assert "bert.encoder.layer.0" in prof.table(group_by="layer")
    assert "GEMMs" in prof.table(group_by="kind")
    assert "more rows not shown" in prof.table(group_by="module", limit=2)
    words = prof.biggest_costs()
    assert words.count(";") == 2 and "%" in words
    with pytest.raises(ValueError, match="group_by"):
        prof.table(group_by="device")
    with pytest.raises(ValueError, match="sort_by"):
        prof.table(sort_by="speed")


def test_chrome_trace_is_json_with_complete_events(profiled, tmp_path):
    prof, _ = profiled
    trace = json.loads(prof.export_chrome_trace(tmp_path / "step.json").read_text())
    events = trace["traceEvents"]
    assert events and all(e["ph"] == "X" and e["dur"] >= 0 and {"name", "ts", "pid", "tid"} <= set(e) for e in events)
    assert {"forward", "backward", "module", "region"} <= {e["cat"] for e in events}
    assert any(e["name"] == "bert.encoder.layer.0" for e in events)


def test_debug_2_prints_one_line_per_op(monkeypatch, capsys):
    monkeypatch.setenv("MINITRANSFER_DEBUG", "2")
    x = mt.Tensor(np.ones((2, 3), np.float32), requires_grad=True)
    with mt.profile():
        (x * x).sum().backward()
    lines = capsys.readouterr().err.splitlines()
    assert [line.split()[1:3] for line in lines] == [["fwd", "Mul"], ["fwd", "Sum"], ["bwd", "Sum"], ["bwd", "Mul"]]
    assert "(2, 3)x(2, 3)" in lines[0] and " ms " in lines[0]


def test_debug_1_prints_a_summary_per_backward(monkeypatch, capsys):
    monkeypatch.setattr(autograd, "observer", None)  # restored after the test
    monkeypatch.setenv("MINITRANSFER_DEBUG", "1")
    debug_from_environment()
    x = mt.Tensor(np.ones((2, 3), np.float32), requires_grad=True)
    for _ in range(2):
        (x * x).sum().backward()
    assert not autograd.observer.records  # keeps nothing between steps
    lines = capsys.readouterr().err.splitlines()
    assert [line.split()[1:4] for line in lines] == [["step", "1:", "2"], ["step", "2:", "2"]]
    assert "forward" in lines[0] and "backward" in lines[0] and "GFLOP" in lines[0]
    monkeypatch.setenv("MINITRANSFER_DEBUG", "3")
    with pytest.warns(UserWarning, match="MINITRANSFER_DEBUG"):  # at import: a warning, not a traceback
        debug_from_environment()
    with pytest.raises(ConfigError, match="MINITRANSFER_DEBUG"):
        mt.profile()


def test_a_retained_graph_walked_twice_keeps_module_and_flops():
    x = mt.Tensor(np.ones((2, 3), np.float32), requires_grad=True)
    with mt.profile() as prof:
        loss = (x * x).sum()
        loss.backward(retain_graph=True)
        loss.backward()
    backward = [r for r in prof.records if r.phase == "backward" and r.name == "Mul"]
    assert [r.flops for r in backward] == [12, 12]  # 6 elements, both inputs need a gradient
