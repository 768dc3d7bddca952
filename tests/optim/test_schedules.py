"""lr schedules: the multiplier at every step against transformers' own schedules."""
import numpy as np
import pytest

from minitransfer.errors import ConfigError
from minitransfer.nn import Parameter
from minitransfer.optim import AdamW, get_constant_schedule_with_warmup, get_scheduler


def optimizer(lr=2e-5):
    return AdamW([{"params": [Parameter(np.zeros(2, np.float32))]},
                  {"params": [Parameter(np.zeros(2, np.float32))], "lr": 1e-3}], lr=lr)


@pytest.mark.parametrize("name", ["linear", "constant", "cosine"])
@pytest.mark.parametrize("warmup, total", [(0, 7), (3, 10), (10, 10)])
def test_lrs_match_transformers(name, warmup, total):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    ours = get_scheduler(name, optimizer(), num_warmup_steps=warmup, num_training_steps=total)
    topt = torch.optim.AdamW([{"params": [torch.zeros(2, requires_grad=True)]},
                              {"params": [torch.zeros(2, requires_grad=True)], "lr": 1e-3}], lr=2e-5)
    theirs = transformers.get_scheduler(name if name != "constant" else "constant_with_warmup", topt,
                                        num_warmup_steps=warmup, num_training_steps=total)
    for _ in range(total + 3):  # a few past the end: linear and cosine stay at 0
        assert ours.get_last_lr() == pytest.approx(theirs.get_last_lr(), rel=1e-12, abs=0)
        assert [g["lr"] for g in ours.optimizer.param_groups] == ours.get_last_lr()
        ours.step()
        topt.step()
        theirs.step()


def test_construction_sets_the_lr_of_step_zero():
    opt = optimizer()
    schedule = get_constant_schedule_with_warmup(opt, num_warmup_steps=4)
    assert schedule.get_last_lr() == [0.0, 0.0]
    schedule.step()
    assert schedule.get_last_lr() == pytest.approx([0.5e-5, 0.25e-3])
    assert [g["initial_lr"] for g in opt.param_groups] == [2e-5, 1e-3]


def test_state_dict_resumes_at_the_saved_step():
    schedule = get_scheduler("linear", optimizer(), num_warmup_steps=2, num_training_steps=10)
    for _ in range(4):
        schedule.step()
    fresh_opt = optimizer()
    fresh = get_scheduler("linear", fresh_opt, num_warmup_steps=2, num_training_steps=10)
    fresh.load_state_dict({k: np.asarray(v) for k, v in schedule.state_dict().items()})  # as np.load returns
    assert fresh.last_epoch == 4
    assert fresh.get_last_lr() == schedule.get_last_lr() == [g["lr"] for g in fresh_opt.param_groups]
    schedule.step()
    fresh.step()
    assert fresh.get_last_lr() == schedule.get_last_lr()


def test_unknown_schedule_and_bad_steps_are_reported():
    with pytest.raises(ConfigError, match="unknown lr schedule 'step'.*linear, constant, cosine"):
        get_scheduler("step", optimizer(), 0, 10)
    with pytest.raises(ConfigError, match="num_warmup_steps"):
        get_scheduler("linear", optimizer(), -1, 10)
