"""Runs that never lose work and never lie: divergence, resume checks, locks, damaged checkpoints, kills."""
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from minitransfer.errors import CheckpointError, TrainingError
from minitransfer.io.safetensors_io import load_safetensors
from minitransfer.training import Trainer
from minitransfer.training.run_guard import OutputDirLock, verify_manifest, write_manifest
from tests.training.test_trainer import losses, make_trainer, toy_dataset


@pytest.fixture
def time_limit():
    """Fail instead of hanging: SIGALRM after 120 s."""
    def expired(signum, frame):
        raise TimeoutError("the run did not finish in 120 s (a resume loop?)")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(120)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


class StopAtStep(Trainer):
    stop_at = 6

    def log(self, logs):
        super().log(logs)
        if self.state.global_step == self.stop_at and "loss" in logs:
            raise KeyboardInterrupt


def interrupted(path, **overrides):
    trainer = make_trainer(path, **overrides)
    trainer.__class__ = StopAtStep
    with pytest.raises(KeyboardInterrupt):
        trainer.train()
    return trainer


def test_resume_on_other_data_is_refused_instead_of_looping(tmp_path, time_limit):
    interrupted(tmp_path, num_train_epochs=2)
    smaller = make_trainer(tmp_path, num_train_epochs=2)
    smaller.train_dataset = toy_dataset(16)  # the old position lies past this epoch's end
    with pytest.raises(TrainingError, match="training data"):
        smaller.train(resume_from_checkpoint=True)


def test_resume_with_changed_arguments_lists_the_differences(tmp_path):
    interrupted(tmp_path)
    changed = make_trainer(tmp_path, learning_rate=1e-3, per_device_train_batch_size=8)
    with pytest.raises(TrainingError, match=r"learning_rate: 0\.003 -> 0\.001.*global_train_batch_size: 16 -> 8"):
        changed.train(resume_from_checkpoint=True)


def test_a_diverging_run_stops_with_the_step_and_keeps_no_nan_weights(tmp_path):
    trainer = make_trainer(tmp_path, learning_rate=float("inf"), save_strategy="steps", save_steps=1,
                           eval_strategy="no")
    with pytest.raises(TrainingError, match=r"training diverged at step \d+|weights hold inf or nan"):
        trainer.train()
    for checkpoint in tmp_path.glob("checkpoint-*"):
        weights = load_safetensors(checkpoint / "model.safetensors")
        assert all(np.isfinite(w).all() for w in weights.values()), checkpoint


def test_nan_loss_names_the_step(tmp_path):
    trainer = make_trainer(tmp_path, max_steps=5, eval_strategy="no")
    original = trainer.compute_loss

    def poisoned(model, inputs):
        loss = original(model, inputs)
        return loss * float("nan") if trainer.state.global_step == 2 else loss

    trainer.compute_loss = poisoned
    with pytest.raises(TrainingError, match="training diverged at step 3: the loss is nan"):
        trainer.train()


def test_a_folder_held_by_a_live_run_is_refused_and_a_stale_lock_taken_over(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        (tmp_path / ".lock").write_text(str(holder.pid))
        with pytest.raises(TrainingError, match=f"in use by another run \\(pid {holder.pid}"):
            make_trainer(tmp_path, max_steps=1).train()
    finally:
        holder.kill()
        holder.wait()
    make_trainer(tmp_path, max_steps=1, eval_strategy="no").train()  # the holder died: its lock is stale
    assert not (tmp_path / ".lock").exists(), "the lock is released at the end"
    lock = OutputDirLock(tmp_path).acquire()
    assert (tmp_path / ".lock").read_text() == str(os.getpid())
    lock.release()


def test_output_dir_naming_a_file_is_one_clear_error(tmp_path):
    (tmp_path / "out").write_text("not a folder")
    from minitransfer.errors import InputError

    with pytest.raises(InputError, match="is a file"):
        make_trainer(tmp_path / "out").train()


@pytest.mark.parametrize("damage", ["trainer_state", "optimizer", "manifest"])
def test_damaged_checkpoints_are_refused_by_name(tmp_path, damage):
    interrupted(tmp_path)
    checkpoint = tmp_path / "checkpoint-6"
    verify_manifest(checkpoint)
    if damage == "trainer_state":
        (checkpoint / "trainer_state.json").write_text("{ not json")
    elif damage == "optimizer":
        data = (checkpoint / "optimizer.npz").read_bytes()
        (checkpoint / "optimizer.npz").write_bytes(data[: len(data) // 2])
    else:
        (checkpoint / "manifest.json").unlink()
    with pytest.raises(CheckpointError, match={"trainer_state": "trainer_state.json is damaged",
                                               "optimizer": "optimizer.npz is damaged",
                                               "manifest": "manifest.json is missing"}[damage]):
        make_trainer(tmp_path).train(resume_from_checkpoint=True)


def test_a_whole_checkpoint_missing_its_rng_state_is_a_clear_error(tmp_path):
    interrupted(tmp_path)
    checkpoint = tmp_path / "checkpoint-6"
    state = json.loads((checkpoint / "trainer_state.json").read_text())
    state.pop("rng_state")
    (checkpoint / "trainer_state.json").write_text(json.dumps(state))
    write_manifest(checkpoint)  # whole, but written by something else
    with pytest.raises(CheckpointError, match="rng_state"):
        make_trainer(tmp_path).train(resume_from_checkpoint=True)


class StopInFinalEvaluation(Trainer):
    def evaluate(self, *args, **kwargs):
        if self.state.global_step == self.state.max_steps and not getattr(self, "stopped", False):
            self.stopped = True
            raise KeyboardInterrupt
        return super().evaluate(*args, **kwargs)


def test_an_interrupt_in_the_final_evaluation_is_evaluated_on_resume(tmp_path):
    trainer = make_trainer(tmp_path, num_train_epochs=1)
    trainer.__class__ = StopInFinalEvaluation
    with pytest.raises(KeyboardInterrupt):
        trainer.train()
    assert not any("eval_accuracy" in json.loads(line) for line in open(tmp_path / "metrics.jsonl"))
    resumed = make_trainer(tmp_path, num_train_epochs=1)
    resumed.train(resume_from_checkpoint=True)
    evals = [r for r in map(json.loads, open(tmp_path / "metrics.jsonl")) if "eval_accuracy" in r]
    assert len(evals) == 1 and evals[0]["step"] == 12


KILLED_RUN = textwrap.dedent("""
    import sys
    sys.path.insert(0, {root!r})
    from tests.training.test_trainer import make_trainer
    trainer = make_trainer({out!r}, max_steps=24, save_strategy="steps", save_steps=1, eval_strategy="no")
    trainer.train(resume_from_checkpoint=bool(list(trainer.output_dir.glob("checkpoint-*"))))
    print("DONE")
""")


def test_runs_killed_at_random_points_end_with_the_uninterrupted_weights(tmp_path):
    """SIGKILL mid-step and mid-checkpoint, resumed each time: the same final weights, every checkpoint whole."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    straight = make_trainer(tmp_path / "straight", max_steps=24, save_strategy="no", eval_strategy="no")
    straight.train()
    script = KILLED_RUN.format(root=root, out=str(tmp_path / "killed"))
    rng = np.random.default_rng(0)
    kills, out = 0, tmp_path / "killed"
    targets = sorted(rng.choice(np.arange(2, 22), size=4, replace=False))  # kill once past each of these steps

    def latest_step():
        steps = [int(p.name.split("-")[1]) for p in out.glob("checkpoint-*") if p.name.split("-")[1].isdigit()]
        return max(steps, default=0)

    for target in [*targets, None]:  # four runs killed mid-way (mid-step or mid-checkpoint), then one to the end
        proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
        if target is not None:
            deadline = time.time() + 300
            while proc.poll() is None and latest_step() < target and time.time() < deadline:
                time.sleep(0.02)
            time.sleep(float(rng.uniform(0, 0.3)))  # anywhere in the next step or its checkpoint write
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                kills += 1
            proc.communicate()
            for checkpoint in out.glob("checkpoint-*"):
                if checkpoint.name.split("-")[1].isdigit():
                    verify_manifest(checkpoint)
            continue
        stdout, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-2000:]
        assert "DONE" in stdout
    assert kills >= 1, "no kill landed: the test tested nothing"
    assert latest_step() == 24
    final = out / "checkpoint-24"
    ours = load_safetensors(final / "model.safetensors")
    theirs = straight.model.state_dict()
    assert max(float(np.abs(ours[k] - theirs[k]).max()) for k in theirs) < 1e-6
    assert losses(tmp_path / "straight")[-1] == pytest.approx(losses(tmp_path / "killed")[-1], rel=1e-6)
