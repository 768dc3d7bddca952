"""`minitransfer profile` and `minitransfer graph` end to end on a tiny checkpoint."""
import importlib.util
import json
from pathlib import Path

import pytest

from minitransfer.cli import main

TORCH = importlib.util.find_spec("torch") is not None and importlib.util.find_spec("transformers") is not None


@pytest.mark.parametrize("task", ["cls", "qa", "mlm"])
def test_profile_one_training_step(tiny_model, task, tmp_path, capsys):
    trace = tmp_path / "step.json"
    argv = ["profile", "--model", str(tiny_model), "--task", task, "--batch-size", "2", "--seq-len", "8",
            "--trace", str(trace)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "one training step on a 2x8 batch" in out and "AdamW.step" in out and "(unaccounted)" in out
    assert out.count("; ") == 2 and "biggest costs: " in out
    assert any(e["cat"] == "backward" for e in json.loads(trace.read_text())["traceEvents"])


def test_profile_inference_from_a_data_file_by_layer(tiny_model, tmp_path, capsys):
    data = tmp_path / "data.tsv"
    data.write_text("sentence\tlabel\na charming journey\t1\nbleak\t0\nthe best film of the year\t1\n")
    argv = ["profile", "--model", str(tiny_model), "--data", str(data), "--batch-size", "3", "--inference",
            "--group-by", "layer", "--freeze-layers", "1"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "inference on a 3x" in out and "bert.encoder.layer.1" in out and "AdamW" not in out


def _profile_torch():
    """benchmarks/profile_torch.py as a module (benchmarks/ is no package: the library never imports torch)."""
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "profile_torch.py"
    spec = importlib.util.spec_from_file_location("profile_torch", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(not TORCH, reason="needs torch and transformers")
def test_profile_beside_torch(tiny_model, capsys):
    argv = ["--model", str(tiny_model), "--batch-size", "2", "--seq-len", "8"]
    assert _profile_torch().main(argv) == 0
    out = capsys.readouterr().out
    assert "one training step on a 2x8 batch" in out
    assert "PyTorch" in out and "Self CPU" in out and "aten::" in out


def test_profile_beside_torch_without_torch_says_how_to_get_it(tiny_model, monkeypatch, capsys):
    script = _profile_torch()
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "torch" else real(name, *a))
    assert script.main(["--model", str(tiny_model)]) == 2
    assert "pip install torch transformers" in capsys.readouterr().err


def test_graph_of_a_one_layer_model(tiny_model, tmp_path, capsys, monkeypatch):
    out = tmp_path / "graph.dot"
    assert main(["graph", "--model", str(tiny_model), "--layers", "1", "--out", str(out)]) == 0
    dot = out.read_text()
    assert dot.startswith("digraph autograd {") and "bert.encoder.layer.0.output.dense.weight" in dot
    assert "bert.encoder.layer.1" not in dot
    monkeypatch.setitem(__import__("sys").modules, "graphviz", None)
    assert main(["graph", "--model", str(tiny_model), "--out", str(tmp_path / "graph.svg")]) == 1
    assert "pip install graphviz" in capsys.readouterr().err
    assert main(["graph", "--model", str(tiny_model), "--layers", "3", "--out", str(out)]) == 2
