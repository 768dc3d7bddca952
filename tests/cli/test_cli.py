"""The command line end to end on a tiny random BERT and real sentences: train, eval, predict, compare."""
import json
import subprocess
import sys

import pytest

from minitransfer.cli import main

TRAIN = [("a charming and often affecting journey", 1), ("unflinchingly bleak and desperate", 0),
         ("the best film of the year", 1), ("a flat , lifeless rehash", 0)] * 6


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    path = tmp_path_factory.mktemp("data")
    for split in ("train", "dev"):
        rows = ["sentence\tlabel"] + [f"{t}\t{y}" for t, y in TRAIN]
        (path / f"{split}.tsv").write_text("\n".join(rows) + "\n")
    return path


def test_train_predict_eval(tiny_model, data, tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["train", "classification", "--model", str(tiny_model), "--train", str(data / "train.tsv"),
                 "--eval", str(data / "dev.tsv"), "--out", str(out), "--epochs", "1", "--batch-size", "8",
                 "--no-progress", "--freeze-layers", "1"])
    assert code == 0
    printed = capsys.readouterr().out
    assert '"accuracy"' in printed and "tensors frozen" in printed
    assert (out / "model.safetensors").exists() and (out / "metrics.jsonl").exists()
    assert main(["predict", str(out), "a charming journey", "bleak"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and lines[0].split("\t")[0] in {"0", "1"}
    assert main(["eval", str(out), "--data", str(data / "dev.tsv")]) == 0
    assert 0.0 <= json.loads(capsys.readouterr().out)["accuracy"] <= 1.0


def test_compare_prints_one_row_per_recipe(tiny_model, data, tmp_path, capsys):
    code = main(["compare", "--model", str(tiny_model), "--train", str(data / "train.tsv"), "--eval",
                 str(data / "dev.tsv"), "--out", str(tmp_path), "--max-steps", "2", "--batch-size", "8",
                 "--no-progress", "--recipes", "full,scratch,head-only"])
    assert code == 0
    table = capsys.readouterr().out.split("recipe")[-1]
    for name in ("full", "scratch", "head-only"):
        assert f"\n{name} " in table
    assert set(json.loads((tmp_path / "compare.json").read_text())) == {"full", "scratch", "head-only"}


@pytest.mark.parametrize("argv,message,code", [
    (["predict", "/no/such/dir", "text"], "no model directory at /no/such/dir", 1),  # failures while running: 1
    (["train", "classification", "--train", "/no/such.tsv", "--out", "x"], "no/such.tsv", 1),
    (["compare", "--train", "x", "--out", "y", "--recipes", "half"], "unknown recipe 'half'", 2),  # usage: 2
    (["compare", "--train", "x", "--out", "y", "--recipes", ","], "--recipes is empty", 2),
    (["compare", "--train", "x", "--out", "y"], "compare needs --eval", 2),
    (["predict", "/no/such/dir", "a", "b", "--pair", "c"], "2 texts but 1 --pair", 2),
])
def test_user_errors_print_one_line(argv, message, code, capsys):
    assert main(argv) == code
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and "Traceback" not in err and err.count("\n") == 1


def test_console_entry_point_runs(tiny_model):
    result = subprocess.run([sys.executable, "-m", "minitransfer", "predict", str(tiny_model / "missing"), "x"],
                            capture_output=True, text=True)
    assert result.returncode == 1 and result.stderr.startswith("error:") and "Traceback" not in result.stderr


def train_argv(model, data, out, *extra):
    return ["train", "classification", "--model", str(model), "--train", str(data / "train.tsv"), "--eval",
            str(data / "dev.tsv"), "--out", str(out), "--epochs", "1", "--batch-size", "8", "--no-progress", *extra]


def test_a_finished_run_is_kept_unless_overwrite_or_resume(tiny_model, data, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(train_argv(tiny_model, data, out)) == 0
    before = (out / "model.safetensors").read_bytes()
    capsys.readouterr()
    assert main(train_argv(tiny_model, data, out)) == 1
    err = capsys.readouterr().err
    assert "already holds a run" in err and "--overwrite-output-dir" in err and "Traceback" not in err
    assert (out / "model.safetensors").read_bytes() == before, "the finished run's model is untouched"
    assert main(train_argv(tiny_model, data, out, "--overwrite-output-dir", "--seed", "7")) == 0
    assert (out / "model.safetensors").read_bytes() != before


def test_out_equal_to_the_model_and_conflicting_freezing_are_usage_errors(tiny_model, data, tmp_path, capsys):
    assert main(train_argv(tiny_model, data, tiny_model)) == 2
    assert "is the model folder itself" in capsys.readouterr().err
    assert main(train_argv(tiny_model, data, tmp_path / "x", "--head-only", "--freeze-layers", "2")) == 2
    assert "--head-only already freezes" in capsys.readouterr().err


def test_a_diverging_run_fails_with_the_step_and_saves_no_model(tiny_model, data, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(train_argv(tiny_model, data, out, "--lr", "inf")) == 1
    err = capsys.readouterr().err
    assert ("training diverged at step" in err or "weights hold inf or nan" in err) and "Traceback" not in err
    assert not (out / "model.safetensors").exists()


def test_predict_on_a_model_without_a_trained_head_is_refused(tiny_model, capsys):
    assert main(["predict", str(tiny_model), "a charming journey"]) == 1
    assert "has no weights for" in capsys.readouterr().err


def test_boolean_input_ids_are_one_clear_error(tiny_model):
    import numpy as np

    from minitransfer import AutoModel, InputError

    with pytest.raises(InputError, match="booleans"):
        AutoModel.from_pretrained(tiny_model)(input_ids=np.ones((1, 3), dtype=bool))
