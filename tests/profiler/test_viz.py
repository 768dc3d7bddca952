"""The autograd graph as DOT: a two-op graph exactly, frozen layers marked, the packed and padded paths shown."""
import sys

import numpy as np
import pytest

import minitransfer as mt
from minitransfer import viz
from minitransfer.errors import MiniTransferError
from minitransfer.nn import Module, Parameter
from tests.profiler.conftest import IDS, MASK, tiny_classifier

TWO_OPS = r"""digraph autograd {
  rankdir=BT;
  node [shape=box, fontname="Helvetica", fontsize=10];
  f0 [label="Sum\n()"];
  f1 -> f0;
  f1 [label="Mul\n(2, 3)"];
  t0 [label="x\n(2, 3)", shape=ellipse, style=filled, fillcolor="#c8e6c9"];
  t0 -> f1;
  t1 [label="scale\n(3,)", shape=ellipse, style=filled, fillcolor="#c8e6c9"];
  t1 -> f1;
}
"""


class Scale(Module):
    def __init__(self):
        super().__init__()
        self.scale = Parameter(np.ones(3, np.float32))


def _two_op_loss():
    model = Scale()
    x = mt.Tensor(np.ones((2, 3), np.float32), requires_grad=True, name="x")
    return (x * model.scale).sum(), model


def test_two_op_graph_exactly():
    loss, model = _two_op_loss()
    assert viz.to_dot(loss, model=model) == TWO_OPS
    assert 't1 [label="parameter\\n(3,)"' in viz.to_dot(loss)  # no model: a Parameter without a name


def _classification_loss(model):
    model.train()
    return model(input_ids=IDS, attention_mask=MASK, labels=np.array([0, 1])).loss


def test_a_frozen_layer_is_grey():
    model = tiny_classifier()
    model.bert.encoder.layer[1].requires_grad_(False)  # gradients still flow through it to layer 0
    dot = viz.to_dot(_classification_loss(model), model=model)
    assert f'label="bert.encoder.layer.1.attention.self.query.weight\\n(16, 16)\\nfrozen", {viz.FROZEN}' in dot
    assert f'label="bert.encoder.layer.0.attention.self.query.weight\\n(16, 16)", {viz.TRAINABLE}' in dot
    assert f'"Linear\\n(10, 16)", {viz.FROZEN_OP}' in dot
    assert "not in the graph" not in dot


def test_frozen_layers_below_the_graph_are_listed():
    model = tiny_classifier()
    mt.apply_freezing(model, freeze_layers=1)  # backward stops above layer 0: its ops are not in the graph
    dot = viz.to_dot(_classification_loss(model), model=model)
    assert 'frozen [label="frozen, not in the graph:\\nbert.embeddings\\nbert.encoder.layer.0"' in dot
    assert "bert.encoder.layer.0.attention" not in dot


def test_the_packed_path_shows():
    dot = viz.to_dot(_classification_loss(tiny_classifier()))
    assert 'TakeRows\\n(2, 16)\\npack: gather rows", ' + viz.PACKED in dot
    assert "VarlenAttention\\n(10, 2, 8)\\npacked: 2 sequences" in dot
    padded = viz.to_dot(_classification_loss(tiny_classifier(padding_free=False)))
    assert "Attention\\n(2, 2, 6, 8)\\npadded: (batch, seq) mask" in padded and "TakeRows" not in padded


def test_a_freed_graph_is_an_error():
    loss, _ = _two_op_loss()
    loss.backward()
    with pytest.raises(RuntimeError, match="before backward"):
        viz.to_dot(loss)


def test_save_writes_dot_and_renders_through_graphviz(tmp_path, monkeypatch):
    loss, model = _two_op_loss()
    assert viz.save(loss, tmp_path / "g.dot", model=model).read_text() == TWO_OPS
    monkeypatch.setitem(sys.modules, "graphviz", None)  # as if not installed
    with pytest.raises(MiniTransferError, match="pip install graphviz"):
        viz.save(loss, tmp_path / "g.svg")
    rendered = []

    class Source:
        def __init__(self, text):
            self.text = text

        def render(self, outfile, format, cleanup):
            rendered.append((self.text, outfile, format))

    fake = type(sys)("graphviz")
    fake.Source, fake.ExecutableNotFound = Source, RuntimeError
    monkeypatch.setitem(sys.modules, "graphviz", fake)
    viz.save(loss, tmp_path / "g.svg", model=model)
    assert rendered == [(TWO_OPS, tmp_path / "g.svg", "svg")]
