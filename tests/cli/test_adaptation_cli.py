"""Adaptation commands end to end on a tiny random BERT with MiniLM's vocabulary and the shipped data:
train mlm → perplexity → fill-mask --compare → zero-shot / few-shot → probe-bias; train classification →
convert → distill."""
import json

import pytest

from minitransfer.cli import main
from minitransfer.data.shipped import shipped_data_path
from minitransfer.models import BertForMaskedLM

REVIEWS = str(shipped_data_path("movie_reviews/reviews.txt"))
SST_TRAIN = str(shipped_data_path("sst2/train_subset.tsv"))
SST_DEV = str(shipped_data_path("sst2/dev.tsv"))


@pytest.fixture(scope="module")
def adapted(tiny_model, tmp_path_factory):
    out = tmp_path_factory.mktemp("adapted")
    code = main(["train", "mlm", "--model", str(tiny_model), "--text", REVIEWS, "--out", str(out), "--max-length", "32",
                 "--max-train-examples", "8", "--max-steps", "2", "--batch-size", "4", "--no-progress",
                 "--whole-word-mask"])
    assert code == 0
    return out


def test_train_mlm_reports_new_head_and_perplexity(adapted, capsys):
    report = json.loads((adapted / "perplexity.json").read_text())
    assert report["heldout_lines"] == 6 and report["heldout_masked_tokens"] > 0
    assert report["perplexity_before"] > 1 and report["perplexity_after"] > 1
    assert "pseudo-perplexity" in report["perplexity_note"]
    model = BertForMaskedLM.from_pretrained(adapted)  # the head was saved: no allow_new_head needed
    assert model.loading_info["missing_keys"] == []
    # The standalone command scores the same held-out masking: the same figure as the run's "after".
    assert main(["perplexity", "--model", str(adapted), "--text", REVIEWS, "--holdout", "0.1",
                 "--max-length", "32"]) == 0
    scored = json.loads(capsys.readouterr().out)
    assert scored["masked_tokens"] == report["heldout_masked_tokens"]
    assert scored["perplexity"] == pytest.approx(report["perplexity_after"], rel=1e-5)


def test_train_mlm_prints_the_new_head(tiny_model, tmp_path, capsys):
    assert main(["train", "mlm", "--model", str(tiny_model), "--text", REVIEWS, "--out", str(tmp_path),
                 "--max-length", "16", "--max-train-examples", "2", "--max-steps", "1", "--no-progress",
                 "--head-only", "--holdout", "0"]) == 0
    printed = capsys.readouterr().out
    assert "new masked-LM head" in printed and "cls.predictions.transform.dense.weight" in printed
    assert "tensors frozen" in printed and "perplexity_before" not in printed


def test_fill_mask_compare_prints_both_columns(adapted, capsys):
    assert main(["fill-mask", "--compare", str(adapted), str(adapted), "This is a great [MASK]."]) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = [line for line in lines if line[:1].isdigit()]
    assert len(rows) == 5
    left, right = rows[0].split()[1:3], rows[0].split()[3:5]
    assert left == right  # the same model on both sides gives the same predictions


def test_zero_and_few_shot(adapted, tmp_path, capsys):
    assert main(["zero-shot", "--model", str(adapted), "--data", SST_DEV, "--max-eval-examples", "12"]) == 0
    printed = capsys.readouterr().out
    metrics = json.loads(printed[printed.index("{"):])
    assert metrics["examples"] == 12 and sum(metrics["predicted_counts"]) == 12 and not metrics["random_head"]
    assert main(["zero-shot", "--model", str(adapted), "--data", SST_DEV, "--max-eval-examples", "12",
                 "--train", SST_TRAIN, "--few-shot", "2,4", "--max-steps", "1", "--out", str(tmp_path),
                 "--no-progress", "--compare-classifier"]) == 0
    table = capsys.readouterr().out.split("mean acc")[-1].splitlines()[1:]
    assert sorted(line.split()[:2] for line in table if line.strip()) == [
        ["classifier", "2"], ["classifier", "4"], ["prompt", "2"], ["prompt", "4"]]
    result = json.loads((tmp_path / "few_shot.json").read_text())
    assert len(result["runs"]) == 4 and all(0 <= r["accuracy"] <= 1 for r in result["runs"])
    assert len((tmp_path / "k4-seed0" / "train.jsonl").read_text().splitlines()) == 4


def test_probe_bias_two_models_and_a_template_file(adapted, tmp_path, capsys):
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text("The critic said he was [MASK].\tThe critic said she was [MASK].\n")
    out = tmp_path / "bias.json"
    assert main(["probe-bias", "--model", str(adapted), "--model", str(adapted), "--templates", str(pairs),
                 "--no-builtin", "--top", "3", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "The critic said he was [MASK].  |  The critic said she was [MASK]." in printed
    assert printed.count(": total variation") == 2 and "mean total variation" in printed
    results = json.loads(out.read_text())
    assert len(results[str(adapted)]) == 1 and len(results[str(adapted)][0]["toward_first"]) == 3


def test_distill_reports_accuracy_and_speed(tiny_model, tmp_path, capsys):
    teacher, student, out = tmp_path / "teacher", tmp_path / "student", tmp_path / "distilled"
    assert main(["train", "classification", "--model", str(tiny_model), "--train", SST_TRAIN, "--eval", SST_DEV,
                 "--max-train-examples", "16", "--max-eval-examples", "8", "--max-steps", "1", "--out", str(teacher),
                 "--no-progress"]) == 0
    assert main(["convert", "bert-to-distilbert", str(tiny_model), str(student), "--layers", "0"]) == 0
    capsys.readouterr()
    assert main(["distill", "--teacher", str(teacher), "--student", str(student), "--train", SST_TRAIN, "--eval",
                 SST_DEV, "--max-train-examples", "16", "--max-eval-examples", "8", "--max-steps", "2", "--out",
                 str(out), "--no-progress", "--temperature", "3", "--alpha", "0.7", "--speed-repeats", "1"]) == 0
    printed = capsys.readouterr().out
    assert "teacher" in printed and "student keeps" in printed
    result = json.loads((out / "distillation.json").read_text())
    assert result["student_parameters"] < result["teacher_parameters"]
    assert result["teacher_examples_per_s"] > 0 and result["student_examples_per_s"] > 0
    assert result["temperature"] == 3 and result["alpha"] == 0.7 and result["eval_examples"] == 8


@pytest.mark.parametrize("argv,message", [
    (["fill-mask", "This is [MASK]."], "fill-mask needs --model"),
    (["zero-shot", "--model", "x", "--data", SST_DEV, "--few-shot", "16"], "--few-shot needs --train"),
    (["zero-shot", "--model", "x", "--data", SST_DEV, "--few-shot", "a,b", "--train", "t"], "comma-separated integers"),
    (["probe-bias", "--model", "x", "--no-builtin"], "leaves no template pair"),
    (["zero-shot", "--model", "x", "--data", SST_DEV, "--resume"], "no checkpoint to resume"),
    (["zero-shot", "--model", "x", "--data", SST_DEV, "--seeds", ","], "--seeds is empty"),
    (["convert", "bert-to-distilbert", "x", "y", "--layers", "0,a"], "comma-separated layer numbers"),
])
def test_usage_errors_print_one_line_and_exit_2(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and "Traceback" not in err


def test_headless_model_in_fill_mask_compare_is_a_clear_error(tiny_model, adapted, capsys):
    assert main(["fill-mask", "--compare", str(tiny_model), str(adapted), "A [MASK]."]) == 1  # the model, not the call
    assert "has no masked-LM head" in capsys.readouterr().err
