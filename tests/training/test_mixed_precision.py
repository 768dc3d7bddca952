"""fp16 training on the CPU (NumPy float16, MINITRANSFER_ALLOW_CPU_HALF=1) on a tiny BERT: a loss curve close to
float32's, float32 master weights and optimizer state, overflowing steps skipped without moving the schedule, the
scaler's state in each checkpoint and back on resume; fp16 refused on the CPU without the variable, bf16 always."""
import json
import shutil

import numpy as np
import pytest

from minitransfer import backend
from minitransfer.errors import ConfigError
from minitransfer.training import TrainingArguments
from minitransfer.training.run_guard import write_manifest
from tests.training.test_trainer import losses, make_trainer


@pytest.fixture
def cpu_half(monkeypatch):
    monkeypatch.setenv("MINITRANSFER_ALLOW_CPU_HALF", "1")


def log_entries(path):
    return [json.loads(line) for line in (path / "metrics.jsonl").read_text().splitlines()]


def test_fp16_follows_the_float32_loss_curve_with_float32_master_weights(tmp_path, cpu_half):
    fp32 = make_trainer(tmp_path / "fp32", dropout=0.0, max_steps=36, eval_strategy="no", save_strategy="no")
    fp32.train()
    fp16 = make_trainer(tmp_path / "fp16", dropout=0.0, max_steps=36, eval_strategy="no", save_strategy="no",
                        fp16=True)
    fp16.train()
    ours, reference = np.array(losses(tmp_path / "fp16")), np.array(losses(tmp_path / "fp32"))
    # float16 GEMMs round each product to ~3 decimal digits (relative 5e-4); over 36 AdamW steps on a tiny
    # model that drifts the loss by a few hundredths, while learning moves it by ~0.3: 0.05 absolute
    assert len(ours) == len(reference) == 36
    np.testing.assert_allclose(ours, reference, atol=0.05)
    assert ours[-6:].mean() < ours[:6].mean() - 0.1  # it learns
    assert all(p.dtype == np.float32 for p in fp16.model.parameters())
    assert all(s["exp_avg"].dtype == np.float32 for s in fp16.optimizer.state.values())
    assert all(e["loss_scale"] > 0 for e in log_entries(tmp_path / "fp16") if "loss" in e and "grad_norm" in e)


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning", "ignore:invalid value:RuntimeWarning")
def test_an_overflowing_step_is_skipped_and_the_schedule_waits(tmp_path, cpu_half):
    trainer = make_trainer(tmp_path, dropout=0.0, max_steps=3, eval_strategy="no", save_strategy="no", fp16=True)
    trainer.train()
    weights = {n: p.data.copy() for n, p in trainer.model.named_parameters()}
    last_epoch = trainer.lr_scheduler.state_dict()["last_epoch"]
    scale = trainer.scaler.get_scale()
    trainer.scaler.scale_value = 1e30  # float16's largest is 65504: every gradient overflows
    trainer._accumulate(trainer._epoch_steps(0)[0])
    trainer._optimizer_step()
    assert trainer.scaler.get_scale() == 5e29
    assert trainer.lr_scheduler.state_dict()["last_epoch"] == last_epoch
    for name, p in trainer.model.named_parameters():
        np.testing.assert_array_equal(p.data, weights[name], err_msg=name)
    assert scale == 2.0**16  # 3 good steps: no overflow, no growth yet (growth_interval 2000)


def test_resume_restores_the_scaler_state(tmp_path, cpu_half):
    first = make_trainer(tmp_path, dropout=0.0, max_steps=24, fp16=True)
    first.train()
    saved = json.loads((tmp_path / "checkpoint-12" / "scaler.json").read_text())
    assert saved["scale"] == 2.0**16 and saved["_growth_tracker"] == 12
    saved.update(scale=1024.0, _growth_tracker=7)
    (tmp_path / "checkpoint-12" / "scaler.json").write_text(json.dumps(saved))
    write_manifest(tmp_path / "checkpoint-12")  # the edited file is the checkpoint's now
    shutil.rmtree(tmp_path / "checkpoint-24")
    resumed = make_trainer(tmp_path, dropout=0.0, max_steps=24, fp16=True)
    resumed.train(resume_from_checkpoint=True)
    assert resumed.scaler.state_dict()["_growth_tracker"] == 7 + 12
    assert resumed.scaler.get_scale() == 1024.0


def test_fp16_on_the_cpu_is_refused_without_the_variable(tmp_path, monkeypatch):
    monkeypatch.delenv("MINITRANSFER_ALLOW_CPU_HALF", raising=False)
    trainer = make_trainer(tmp_path, max_steps=2, fp16=True)
    with pytest.raises(ConfigError, match="NumPy has no fast half GEMM: fp16 is for --device cuda"):
        trainer.train()


def test_bf16_is_refused_naming_fp16():
    with pytest.raises(ConfigError, match="no bfloat16 dtype.*fp16 is the supported half type"):
        TrainingArguments("out", bf16=True)


def test_device_cuda_without_cupy_or_gpu_is_a_config_error_naming_the_extra(tmp_path):
    try:
        backend.check_device("cuda")
    except ConfigError as e:
        assert "pip install 'minitransfer[gpu]'" in str(e)
    else:
        pytest.skip("a CUDA GPU is present")
    with pytest.raises(ConfigError, match=r"minitransfer\[gpu\]"):
        make_trainer(tmp_path, device="cuda")  # the Trainer moves the model when it is made
