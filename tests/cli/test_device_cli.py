"""--device and --fp16 / --bf16 on the command line: a missing CuPy is one error line naming the extra (exit 1,
before any work), fp16 on the CPU and bf16 are refused with their reasons, and fp16 runs on the CPU when allowed."""
import sys

import pytest

from minitransfer import backend
from minitransfer.cli import main

COMMANDS = [["train", "classification", "--model", "M", "--train", "T", "--out", "O"],
            ["train", "qa", "--model", "M", "--train", "T", "--out", "O"],
            ["train", "mlm", "--model", "M", "--train", "T", "--out", "O"],
            ["eval", "M", "--data", "D"], ["predict", "M", "some text"],
            ["predict", "qa", "M", "--data", "D", "--out", "O"], ["qa", "M", "--question", "Q", "--context", "C"]]


@pytest.fixture
def without_cupy(monkeypatch):
    monkeypatch.setattr(backend, "_cupy", None)
    monkeypatch.setitem(sys.modules, "cupy", None)  # `import cupy` raises ImportError


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c[:2]))
def test_device_cuda_without_cupy_exits_1_naming_the_extra(command, without_cupy, tmp_path, capsys):
    assert main(command + ["--device", "cuda"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: device 'cuda' needs CuPy") and "pip install 'minitransfer[gpu]'" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_a_bad_device_is_an_error(capsys):
    assert main(["eval", "M", "--data", "D", "--device", "tpu"]) == 1
    assert "unknown device 'tpu'" in capsys.readouterr().err


def train_command(tiny_model, data, out, *flags):
    return ["train", "classification", "--model", str(tiny_model), "--train", str(data), "--out", str(out),
            "--max-steps", "3", "--batch-size", "4", "--no-progress", *flags]


@pytest.fixture
def data(tmp_path):
    rows = ["sentence\tlabel"] + [f"{t}\t{y}" for t, y in [("a charming journey", 1), ("bleak and flat", 0)] * 6]
    (tmp_path / "train.tsv").write_text("\n".join(rows) + "\n")
    return tmp_path / "train.tsv"


def test_fp16_on_the_cpu_is_refused_and_bf16_always(tiny_model, data, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("MINITRANSFER_ALLOW_CPU_HALF", raising=False)
    assert main(train_command(tiny_model, data, tmp_path / "a", "--fp16")) == 1
    assert "NumPy has no fast half GEMM: fp16 is for --device cuda" in capsys.readouterr().err
    assert main(train_command(tiny_model, data, tmp_path / "b", "--bf16")) == 1
    assert "no bfloat16 dtype" in capsys.readouterr().err


def test_fp16_trains_on_the_cpu_when_allowed(tiny_model, data, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MINITRANSFER_ALLOW_CPU_HALF", "1")
    assert main(train_command(tiny_model, data, tmp_path / "run", "--fp16", "--device", "cpu")) == 0
    assert (tmp_path / "run" / "model.safetensors").exists()
    assert list((tmp_path / "run").glob("checkpoint-*/scaler.json"))
