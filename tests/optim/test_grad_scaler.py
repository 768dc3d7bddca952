"""GradScaler: the loss scaled, gradients unscaled in place, a step with inf/nan skipped and the scale backed off,
the scale grown after growth_interval good steps, its state saved and restored; checked against torch's."""
import numpy as np
import pytest

from minitransfer.autograd import Tensor
from minitransfer.nn import Parameter
from minitransfer.optim import AdamW, GradScaler


def optimizer_with_grads(*grads):
    params = [Parameter(np.ones(len(g), np.float32)) for g in grads]
    for p, g in zip(params, grads):
        p.grad = Tensor(np.asarray(g, np.float32))
    return params, AdamW(params, lr=0.1)


def test_scale_multiplies_the_loss():
    scaler = GradScaler(init_scale=8.0)
    assert scaler.scale(Tensor(np.float32(1.5))).item() == 12.0
    assert GradScaler(enabled=False).scale(Tensor(np.float32(1.5))).item() == 1.5


def test_unscale_divides_the_gradients_in_place():
    params, optimizer = optimizer_with_grads([8.0, -4.0], [2.0])
    scaler = GradScaler(init_scale=4.0)
    scaler.unscale_(optimizer)
    np.testing.assert_array_equal(params[0].grad.data, [2.0, -1.0])
    np.testing.assert_array_equal(params[1].grad.data, [0.5])
    assert scaler.found_inf[id(optimizer)] is False
    with pytest.raises(RuntimeError, match="already been called"):
        scaler.unscale_(optimizer)


@pytest.mark.parametrize("bad", [np.inf, -np.inf, np.nan])
def test_a_non_finite_gradient_skips_the_step_and_halves_the_scale(bad):
    params, optimizer = optimizer_with_grads([1.0, bad], [2.0])
    scaler = GradScaler(init_scale=1024.0)
    scaler.step(optimizer)  # unscale_ inside
    scaler.update()
    for p in params:
        np.testing.assert_array_equal(p.data, np.ones(p.shape, np.float32))  # not updated
    assert optimizer.state == {}
    assert scaler.get_scale() == 512.0


def test_good_steps_update_and_grow_the_scale_after_growth_interval():
    params, optimizer = optimizer_with_grads([1.0, 2.0])
    scaler = GradScaler(init_scale=4.0, growth_interval=3)
    for step in range(1, 7):
        params[0].grad = Tensor(np.array([4.0, 8.0], np.float32))
        scaler.step(optimizer)
        scaler.update()
        assert scaler.get_scale() == (4.0 if step < 3 else 8.0 if step < 6 else 16.0)
    assert optimizer.state[id(params[0])]["step"] == 6
    assert (params[0].data < 1).all()


def test_growth_tracker_restarts_after_an_overflow():
    params, optimizer = optimizer_with_grads([1.0])
    scaler = GradScaler(init_scale=4.0, growth_interval=2)
    for grad, expected in [(1.0, 4.0), (np.inf, 2.0), (1.0, 2.0), (1.0, 4.0)]:
        params[0].grad = Tensor(np.array([grad], np.float32))
        scaler.step(optimizer)
        scaler.update()
        assert scaler.get_scale() == expected


def test_state_dict_round_trip():
    scaler = GradScaler(init_scale=256.0, growth_interval=5)
    params, optimizer = optimizer_with_grads([1.0])
    scaler.step(optimizer)
    scaler.update()
    restored = GradScaler()
    restored.load_state_dict(scaler.state_dict())
    assert restored.state_dict() == scaler.state_dict() == {
        "scale": 256.0, "growth_factor": 2.0, "backoff_factor": 0.5, "growth_interval": 5, "_growth_tracker": 1}
    assert GradScaler(enabled=False).state_dict() == {}
    assert GradScaler(enabled=False).get_scale() == 1.0


def test_same_scales_as_torch():
    torch = pytest.importorskip("torch")
    grads = [1.0, np.inf, 1.0, 1.0, 1.0, np.nan, 1.0, 1.0, 1.0]
    ours, theirs = GradScaler(init_scale=64.0, growth_interval=2), torch.amp.GradScaler("cpu", init_scale=64.0,
                                                                                        growth_interval=2)
    params, optimizer = optimizer_with_grads([1.0])
    weight = torch.nn.Parameter(torch.ones(1))
    torch_optimizer = torch.optim.SGD([weight], lr=0.1)
    for g in grads:
        params[0].grad = Tensor(np.array([g], np.float32))
        ours.step(optimizer)
        ours.update()
        theirs.scale(torch.ones(()))  # torch's scaler makes its scale tensor here
        weight.grad = torch.tensor([g])
        theirs.step(torch_optimizer)
        theirs.update()
        assert ours.get_scale() == theirs.get_scale()
