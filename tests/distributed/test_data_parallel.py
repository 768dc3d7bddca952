"""Data-parallel training: N ranks x batch b walk the batches of 1 process x batch N*b, through the CLI and the
Trainer; weights stay identical; a checkpoint resumes on another number of ranks; a killed rank ends the job."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from minitransfer.cli import main
from minitransfer.distributed import communicator
from tests.conftest import save_tiny_bert
from tests.distributed.mpi_run import HAVE_MPI, MPIEXEC, SCRIPTS

pytestmark = pytest.mark.skipif(not HAVE_MPI, reason="needs mpi4py and mpiexec (pip install 'minitransfer[mpi]')")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WORDS = ["good", "great", "bad", "awful", "fine", "dull", "lovely", "poor", "the", "film", "was", "very"]


def mpi_env() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in communicator.MPI_LAUNCH_VARIABLES}
    env.update(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", NUMBA_NUM_THREADS="1",
               PYTHONPATH=ROOT + os.pathsep + env.get("PYTHONPATH", ""))
    return env


@pytest.fixture(scope="module")
def tiny_no_dropout(tmp_path_factory, minilm_path):
    return save_tiny_bert(tmp_path_factory.mktemp("tiny-dp"), minilm_path, hidden_dropout_prob=0.0,
                          attention_probs_dropout_prob=0.0)


@pytest.fixture(scope="module")
def train_file(tmp_path_factory):
    rng = np.random.default_rng(0)
    rows = ["sentence\tlabel"]
    for _ in range(650):  # 20 global batches of 32 and an uneven tail of 10
        rows.append(" ".join(rng.choice(WORDS, int(rng.integers(2, 12)))) + f"\t{int(rng.integers(0, 2))}")
    path = tmp_path_factory.mktemp("dp-data") / "train.tsv"
    path.write_text("\n".join(rows) + "\n")
    return path


def losses(out):
    return [r["loss"] for r in map(json.loads, open(out / "metrics.jsonl")) if "loss" in r]


def cli(model, data, out, batch, steps):
    return ["train", "classification", "--model", str(model), "--train", str(data), "--out", str(out), "--epochs",
            "2", "--max-steps", str(steps), "--batch-size", str(batch), "--logging-steps", "1", "--no-progress",
            "--warmup", "0.1", "--lr", "1e-3"]


def test_two_ranks_of_16_walk_the_loss_curve_of_one_process_of_32_through_the_cli(tiny_no_dropout, train_file,
                                                                                  tmp_path):
    assert main(cli(tiny_no_dropout, train_file, tmp_path / "one", 32, 21)) == 0
    env = dict(mpi_env(), MINITRANSFER_CHECK_REPLICAS="1")  # every step: all ranks hold the same weights
    result = subprocess.run([MPIEXEC, "-n", "2", sys.executable, "-m", "minitransfer",
                             *cli(tiny_no_dropout, train_file, tmp_path / "two", 16, 21)],
                            env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    one, two = losses(tmp_path / "one"), losses(tmp_path / "two")
    assert len(one) == len(two) == 21, "step 21 is the epoch's uneven tail of 10 examples"
    np.testing.assert_allclose(two, one, rtol=1e-5, atol=1e-6)
    assert result.stdout.count('"train_runtime_s"') == 1, "only rank 0 prints"
    assert (tmp_path / "two" / "model.safetensors").exists() and not (tmp_path / "two" / ".lock").exists()


def trainer_run(out, ranks, batch, resume=False):
    args = [sys.executable, str(SCRIPTS / "dp_trainer.py"), str(out), str(batch), "1" if resume else "0"]
    command = [MPIEXEC, "-n", str(ranks), *args] if ranks > 1 else args
    result = subprocess.run(command, env=mpi_env(), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


def test_a_checkpoint_of_two_ranks_resumes_on_one_process_and_back(tmp_path):
    trainer_run(tmp_path / "two", 2, 16)
    trainer_run(tmp_path / "one", 1, 32)
    np.testing.assert_allclose(losses(tmp_path / "two"), losses(tmp_path / "one"), rtol=1e-5, atol=1e-6)
    for source, target, ranks, batch in (("two", "two-then-one", 1, 32), ("one", "one-then-two", 2, 16)):
        (tmp_path / target).mkdir()
        shutil.copytree(tmp_path / source / "checkpoint-10", tmp_path / target / "checkpoint-10")
        trainer_run(tmp_path / target, ranks, batch, resume=True)
        np.testing.assert_allclose(losses(tmp_path / target), losses(tmp_path / source)[10:], rtol=1e-5,
                                   atol=1e-6)


def test_a_killed_rank_ends_the_job_with_a_non_zero_exit(tiny_no_dropout, train_file, tmp_path):
    out = tmp_path / "killed-run"
    proc = subprocess.Popen([MPIEXEC, "-n", "2", sys.executable, "-m", "minitransfer",
                             *cli(tiny_no_dropout, train_file, out, 16, 100000)], env=mpi_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 60
        ranks = []
        while time.time() < deadline and len(ranks) < 2:
            time.sleep(1)
            found = subprocess.run(["pgrep", "-f", f"minitransfer train .*{out}"], capture_output=True, text=True)
            ranks = [int(p) for p in found.stdout.split() if int(p) != proc.pid]
        assert len(ranks) >= 2, "both ranks should be running"
        time.sleep(3)  # into training
        os.kill(ranks[-1], signal.SIGKILL)
        started = time.time()
        code = proc.wait(timeout=60)
        assert code != 0 and time.time() - started < 60
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
