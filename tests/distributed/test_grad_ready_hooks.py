"""Grad-ready hooks: a leaf is told once per backward, exactly when its gradient is final (autograd.py)."""
import numpy as np
import pytest

from minitransfer import Tensor, ops
from minitransfer.models import BertForMaskedLM, ModelConfig
from minitransfer.seeding import manual_seed


def record(*leaves):
    """Hook every leaf; returns the log of (leaf index, its .grad at that moment)."""
    log = []
    for i, leaf in enumerate(leaves):
        leaf.register_grad_ready_hook(lambda t, i=i: log.append((i, None if t.grad is None else t.grad.numpy().copy())))
    return log


def test_a_tied_weight_fires_once_after_its_last_contribution_frozen_and_unused_leaves_never():
    rng = np.random.default_rng(0)
    x = Tensor(rng.standard_normal((3, 4)))
    w = Tensor(rng.standard_normal((4, 4)), requires_grad=True)  # used three times: matmul, then w * w
    b = Tensor(rng.standard_normal(4), requires_grad=True)
    frozen = Tensor(rng.standard_normal(4))  # requires_grad=False: part of the graph, gets no gradient
    unused = Tensor(rng.standard_normal(4), requires_grad=True)
    log = record(w, b, frozen, unused)
    loss = ((x @ w + b) * frozen).sum() + (w * w).sum()
    loss.backward()
    assert sorted(i for i, _ in log) == [0, 1]
    for i, grad_then in log:
        np.testing.assert_array_equal(grad_then, (w, b)[i].grad.numpy())  # nothing was added after the hook
    np.testing.assert_allclose(w.grad.numpy(), x.data.T @ np.broadcast_to(frozen.data, (3, 4)) + 2 * w.data)
    assert unused.grad is None and frozen.grad is None


def test_the_last_layer_fires_first_and_a_second_backward_fires_again():
    rng = np.random.default_rng(1)
    x = Tensor(rng.standard_normal((2, 3)))
    w1, w2 = (Tensor(rng.standard_normal((3, 3)), requires_grad=True) for _ in range(2))
    log = record(w1, w2)
    y = ops.tanh(x @ w1) @ w2
    y.sum().backward(retain_graph=True)
    assert [i for i, _ in log] == [1, 0]
    y.sum().backward()
    assert [i for i, _ in log] == [1, 0, 1, 0]
    np.testing.assert_allclose(log[3][1], 2 * log[1][1])  # the second call's gradient includes the first


def test_a_removed_hook_is_silent_and_a_leaf_root_fires_too():
    w = Tensor(np.ones(3), requires_grad=True)
    calls = []
    handle = w.register_grad_ready_hook(calls.append)
    w.backward(np.ones(3))  # backward on the leaf itself
    (w * 2.0).sum().backward()
    handle.remove()
    (w * 2.0).sum().backward()
    assert calls == [w, w]
    with pytest.raises(RuntimeError, match="leaf"):
        (w * 2.0).register_grad_ready_hook(calls.append)


def test_every_parameter_of_a_model_with_tied_embeddings_fires_once_with_its_final_gradient():
    manual_seed(0)
    model = BertForMaskedLM(ModelConfig("bert", vocab_size=40, hidden_size=16, num_hidden_layers=2,
                                        num_attention_heads=2, intermediate_size=32, max_position_embeddings=16,
                                        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0))
    params = list(model.parameters())
    assert model.cls.predictions.decoder.weight is model.bert.embeddings.word_embeddings.weight
    model.bert.embeddings.token_type_embeddings.weight.requires_grad = False
    log = record(*params)
    rng = np.random.default_rng(0)
    ids = rng.integers(1, 40, (2, 6))
    labels = np.where(rng.random((2, 6)) < 0.5, ids, -100)
    model(input_ids=ids, attention_mask=np.ones_like(ids), labels=labels).loss.backward()
    fired = [i for i, _ in log]
    trainable = [i for i, p in enumerate(params) if p.requires_grad]
    assert sorted(fired) == trainable  # each trainable parameter once, the frozen one never
    for i, grad_then in log:
        np.testing.assert_array_equal(grad_then, params[i].grad.numpy())
