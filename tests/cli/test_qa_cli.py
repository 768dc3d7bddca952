"""QA end to end on a tiny random BERT and the shipped SQuAD slice: train, predict, eval-squad, qa."""
import json

from minitransfer.cli import main
from minitransfer.tasks.squad import sample_path
from minitransfer.tasks.squad.recipe import QuestionAnswerer


def test_train_predict_evaluate_and_ask(tiny_model, tmp_path, capsys):
    out = tmp_path / "qa"
    assert main(["train", "qa", "--model", str(tiny_model), "--train", str(sample_path()), "--out", str(out),
                 "--max-steps", "2", "--batch-size", "4", "--max-length", "64", "--doc-stride", "16",
                 "--max-train-examples", "16", "--max-eval-examples", "8", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "held out for validation" in printed and '"f1"' in printed
    assert "trivial baseline on these validation questions" in printed  # what EM/F1 are read against
    assert json.loads((out / "qa_args.json").read_text()) == {"max_length": 64, "doc_stride": 16}
    preds = tmp_path / "predictions.json"
    assert main(["predict", "qa", str(out), "--data", str(sample_path()), "--out", str(preds)]) == 0
    predictions = json.loads(preds.read_text())
    assert len(predictions) == 204 and all(isinstance(v, str) for v in predictions.values())
    capsys.readouterr()
    assert main(["eval-squad", str(preds), str(sample_path())]) == 0
    scores = json.loads(capsys.readouterr().out)
    assert set(scores) == {"exact_match", "f1"} and 0 <= scores["f1"] <= 100
    context = "The abbey was founded in 1132. " * 40 + "It was led by an abbot named Robert."
    assert main(["qa", str(out), "--question", "Who led it?", "--context", context]) == 0
    line = capsys.readouterr().out
    assert "characters" in line
    result = QuestionAnswerer(str(out)).answer("Who led it?", context)
    assert context[result["start"]:result["end"]] == result["answer"]


def test_empty_question_is_a_clear_error(tiny_model, tmp_path, capsys):
    assert main(["qa", str(tiny_model), "--question", " ", "--context", "text"]) == 2
    assert "question is empty" in capsys.readouterr().err
